import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import type { NtpHeader, NtpPacketInit } from '../../src/proto/ntp/packet.js';
import {
  decodeKissCode,
  decodeNtpHeader,
  decodeNtpPacket,
  encodeKissCode,
  encodeNtpHeader,
  encodeNtpPacket,
  KNOWN_KISS_CODES,
  kissCodeOf,
  kissCodeText,
  NtpLeap,
  NtpMode,
  peekNtpMode,
  refIdFromAscii,
  refIdFromIPv4,
  refIdFromIPv6,
  renderRefId,
  writeNtpHeader,
} from '../../src/proto/ntp/packet.js';
import { encodeExtensionField } from '../../src/proto/ntp/extensions.js';
import { ntpShortToMicros, ntpTimestampToUnixMicros } from '../../src/proto/ntp/timestamp.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/**
 * Captured NTPv4 exchange (ntpd-rs client ↔ ptbtime server, published as test vectors in ntpd-rs),
 * written out field by field. One table drives both decode and encode.
 */
const VECTORS: { name: string; bytes: Buffer; header: NtpHeader }[] = [
  {
    name: 'client request (mode 3)',
    bytes: hex(`
      23 02 06 e8  000003ff  0000037d  5ec69f0f
      e5f66298 7b61b9af  e5f66366 7b64995d  e5f66366 81405590  e5f663a8 761dde48`),
    header: {
      leap: NtpLeap.NoWarning,
      version: 4,
      mode: NtpMode.Client,
      stratum: 2,
      poll: 6,
      precision: -24,
      rootDelay: 0x3ff,
      rootDispersion: 0x37d,
      referenceId: 0x5ec69f0f,
      referenceTimestamp: { seconds: 0xe5f66298, fraction: 0x7b61b9af },
      originTimestamp: { seconds: 0xe5f66366, fraction: 0x7b64995d },
      receiveTimestamp: { seconds: 0xe5f66366, fraction: 0x81405590 },
      transmitTimestamp: { seconds: 0xe5f663a8, fraction: 0x761dde48 },
    },
  },
  {
    name: 'server response (mode 4)',
    bytes: hex(`
      24 02 06 e9  00000236  000003b7  c035676c
      e5f661fd 6f165f03  e5f663a8 7619ef40  e5f663a8 798c6581  e5f663a8 798eae2b`),
    header: {
      leap: NtpLeap.NoWarning,
      version: 4,
      mode: NtpMode.Server,
      stratum: 2,
      poll: 6,
      precision: -23,
      rootDelay: 0x236,
      rootDispersion: 0x3b7,
      referenceId: 0xc035676c,
      referenceTimestamp: { seconds: 0xe5f661fd, fraction: 0x6f165f03 },
      originTimestamp: { seconds: 0xe5f663a8, fraction: 0x7619ef40 },
      receiveTimestamp: { seconds: 0xe5f663a8, fraction: 0x798c6581 },
      transmitTimestamp: { seconds: 0xe5f663a8, fraction: 0x798eae2b },
    },
  },
  {
    name: 'RATE kiss-o-death (hand-built)',
    bytes: hex(`
      e4 00 06 ec  00000000  00000000  52415445
      00000000 00000000  e5f663a8 761dde48  00000000 00000000  00000000 00000000`),
    header: {
      leap: NtpLeap.Unsynchronized,
      version: 4,
      mode: NtpMode.Server,
      stratum: 0,
      poll: 6,
      precision: -20,
      rootDelay: 0,
      rootDispersion: 0,
      referenceId: 0x52415445,
      referenceTimestamp: { seconds: 0, fraction: 0 },
      originTimestamp: { seconds: 0xe5f663a8, fraction: 0x761dde48 },
      receiveTimestamp: { seconds: 0, fraction: 0 },
      transmitTimestamp: { seconds: 0, fraction: 0 },
    },
  },
];

for (const vector of VECTORS) {
  test(`decode: ${vector.name}`, () => {
    const result = decodeNtpPacket(vector.bytes);
    assert.ok(result.ok, result.ok ? '' : result.error.message);
    assert.deepEqual(result.value.header, vector.header);
    assert.deepEqual(result.value.extensions, []);
    assert.equal(result.value.mac, null);
    assert.equal(result.value.macOffset, 48);
  });
  test(`encode: ${vector.name}`, () => {
    assert.deepEqual(encodeNtpHeader(vector.header), vector.bytes);
    assert.deepEqual(encodeNtpPacket({ header: vector.header }), vector.bytes);
    const out = Buffer.alloc(60, 0xaa);
    assert.equal(writeNtpHeader(vector.header, out, 6), 54);
    assert.deepEqual(out.subarray(6, 54), vector.bytes);
    assert.equal(out[5], 0xaa);
    assert.equal(out[54], 0xaa);
  });
}

test('captured response reads as the expected times and refid', () => {
  const header = VECTORS[1]!.header;
  const ref = Date.parse('2022-01-01T00:00:00Z') * 1000;
  assert.equal(ntpTimestampToUnixMicros(header.transmitTimestamp, ref), Date.parse('2022-04-05T06:43:52Z') * 1000 + 474_833);
  assert.equal(ntpShortToMicros(header.rootDelay), 8_636); // 566/65536 s
  assert.equal(renderRefId(header.referenceId, header.stratum), '192.53.103.108');
  assert.equal(kissCodeOf(header), null);
  assert.deepEqual(kissCodeOf(VECTORS[2]!.header), { known: 'RATE' });
});

test('versions: 1..4 decode and are reported; 0 and 5..7 are rejected', () => {
  const base = VECTORS[1]!.bytes;
  for (let version = 0; version < 8; version++) {
    const bytes = Buffer.from(base);
    bytes[0] = (bytes[0]! & 0xc7) | (version << 3);
    const result = decodeNtpPacket(bytes);
    if (version >= 1 && version <= 4) {
      assert.ok(result.ok);
      assert.equal(result.value.header.version, version);
    } else {
      assert.ok(!result.ok);
      assert.equal(result.error.code, 'NTP_BAD_VERSION');
    }
  }
});

test('short datagrams and the control/private modes are rejected with codes', () => {
  assert.equal(expectError(decodeNtpPacket(new Uint8Array(0))), 'NTP_TOO_SHORT');
  assert.equal(expectError(decodeNtpPacket(VECTORS[0]!.bytes.subarray(0, 47))), 'NTP_TOO_SHORT');
  assert.equal(expectError(decodeNtpHeader(VECTORS[0]!.bytes.subarray(0, 1))), 'NTP_TOO_SHORT');
  const control = Buffer.from(VECTORS[0]!.bytes);
  control[0] = 0x16; // v2, mode 6, as ntpq sends
  assert.equal(expectError(decodeNtpPacket(control)), 'NTP_UNSUPPORTED_MODE');
  assert.equal(expectError(decodeNtpPacket(control.subarray(0, 12))), 'NTP_UNSUPPORTED_MODE');
  control[0] = 0x27;
  assert.equal(expectError(decodeNtpPacket(control)), 'NTP_UNSUPPORTED_MODE');
  assert.equal(peekNtpMode(control), 7);
  assert.equal(peekNtpMode(new Uint8Array(0)), undefined);
});

test('every leap/mode combination of the time modes round-trips', () => {
  const header = VECTORS[0]!.header;
  for (let leap = 0; leap < 4; leap++) {
    for (let mode = 0; mode < 6; mode++) {
      const h = { ...header, leap, mode };
      const decoded = decodeNtpPacket(encodeNtpHeader(h));
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value.header, h);
    }
  }
});

test('header with a MAC and with extension fields', () => {
  const header = VECTORS[0]!.header;
  const digest = Buffer.alloc(16, 0x5a);
  const withMac = encodeNtpPacket({ header, mac: { kind: 'mac', keyId: 0x8000_0001, digest } });
  assert.equal(withMac.length, 68);
  assert.deepEqual(withMac.subarray(48), hex(`80000001 ${'5a'.repeat(16)}`));
  const decoded = decodeNtpPacket(withMac);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value.mac, { kind: 'mac', keyId: 0x8000_0001, digest });
  assert.equal(decoded.value.macOffset, 48);

  const ef = encodeExtensionField(0xf123, Buffer.from('hello'), 28);
  const withEf = encodeNtpPacket({ header, extensions: [{ type: 0xf123, body: ef.subarray(4) }] });
  const decodedEf = decodeNtpPacket(withEf);
  assert.ok(decodedEf.ok);
  assert.equal(decodedEf.value.extensions.length, 1);
  assert.equal(decodedEf.value.extensions[0]!.type, 0xf123);
  assert.equal(decodedEf.value.extensions[0]!.offset, 48);
  assert.deepEqual(decodedEf.value.extensions[0]!.body, ef.subarray(4));
});

test('encoder rejects unrepresentable header values', () => {
  const header = VECTORS[0]!.header;
  for (const bad of [{ leap: 4 }, { version: 8 }, { mode: -1 }, { stratum: 256 }, { poll: 128 }, { precision: -129 }, { rootDelay: 2 ** 32 }, { referenceId: 1.5 }]) {
    assert.throws(() => encodeNtpHeader({ ...header, ...bad }), UsageError, JSON.stringify(bad));
  }
  assert.throws(() => encodeNtpHeader({ ...header, transmitTimestamp: { seconds: 2 ** 32, fraction: 0 } }), UsageError);
  assert.throws(() => writeNtpHeader(header, new Uint8Array(47)), UsageError);
  assert.throws(() => encodeNtpPacket({ header: { ...header, version: 3 }, extensions: [{ type: 1, body: new Uint8Array(24) }] }), UsageError);
});

test('reference id rendering follows the stratum', () => {
  assert.equal(renderRefId(refIdFromAscii('GPS'), 1), 'GPS');
  assert.equal(renderRefId(refIdFromAscii('PPS'), 1), 'PPS');
  assert.equal(renderRefId(refIdFromAscii('RATE'), 0), 'RATE');
  assert.equal(renderRefId(refIdFromAscii('INIT'), 16), 'INIT');
  assert.equal(renderRefId(0xc0000201, 16), '192.0.2.1');
  assert.equal(renderRefId(0xc0000201, 3), '192.0.2.1');
  assert.equal(renderRefId(refIdFromAscii('GPS'), 2), '71.80.83.0');
  assert.equal(renderRefId(0x4701_0a5c, 1), 'G\\x01\\x0a\\x5c'); // control chars and backslash escaped
  assert.equal(renderRefId(0x4700_5300, 1), 'G\\x00S'); // an interior NUL is shown, trailing ones dropped
  assert.equal(renderRefId(0, 1), '');
});

test('reference ids from text and addresses', () => {
  assert.equal(refIdFromAscii('GPS'), 0x47505300);
  assert.equal(refIdFromAscii(''), 0);
  assert.equal(refIdFromIPv4('192.53.103.108'), 0xc035676c);
  assert.equal(refIdFromIPv4('0.0.0.0'), 0);
  assert.equal(refIdFromIPv4('255.255.255.255'), 0xffff_ffff);
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '01.2.3.4', '1.2.3.x', ' 1.2.3.4', '-1.2.3.4']) {
    assert.throws(() => refIdFromIPv4(bad), UsageError, bad);
  }
  assert.throws(() => refIdFromAscii('TOOLONG'), UsageError);
  assert.throws(() => refIdFromAscii('é'), UsageError);
  // MD5(::1) = cf404dc8..., MD5(2001:db8::1) = 39ab9b37... (RFC 5905 §7.3: first four octets)
  assert.equal(refIdFromIPv6(hex('00000000000000000000000000000001')), 0xcf404dc8);
  assert.equal(refIdFromIPv6(hex('20010db8000000000000000000000001')), 0x39ab9b37);
  assert.throws(() => refIdFromIPv6(new Uint8Array(4)), UsageError);
});

test('kiss codes: every registered code, and unknown ones kept', () => {
  for (const code of KNOWN_KISS_CODES) {
    const refId = encodeKissCode(code);
    assert.deepEqual(decodeKissCode(refId), { known: code });
    assert.equal(encodeKissCode(decodeKissCode(refId)), refId);
    assert.equal(kissCodeText(decodeKissCode(refId)), code);
  }
  assert.deepEqual(decodeKissCode(refIdFromAscii('NTSN')), { known: 'NTSN' });
  const odd = decodeKissCode(refIdFromAscii('XYZ'));
  assert.deepEqual(odd, { unknown: 0x58595a00 });
  assert.equal(encodeKissCode(odd), 0x58595a00);
  assert.equal(kissCodeText(odd), 'XYZ');
  assert.equal(kissCodeText(decodeKissCode(0xffff_ffff)), '\\xff\\xff\\xff\\xff');
});

// --- properties ---

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const NO_NULL_PROTO = { noNullPrototype: true };
const timestamp = fc.record({ seconds: u32, fraction: u32 }, NO_NULL_PROTO);
const headerArb: fc.Arbitrary<NtpHeader> = fc.record({
  leap: fc.integer({ min: 0, max: 3 }),
  version: fc.integer({ min: 1, max: 4 }),
  mode: fc.integer({ min: 0, max: 5 }),
  stratum: fc.integer({ min: 0, max: 255 }),
  poll: fc.integer({ min: -128, max: 127 }),
  precision: fc.integer({ min: -128, max: 127 }),
  rootDelay: u32,
  rootDispersion: u32,
  referenceId: u32,
  referenceTimestamp: timestamp,
  originTimestamp: timestamp,
  receiveTimestamp: timestamp,
  transmitTimestamp: timestamp,
}, NO_NULL_PROTO);

test('header encode → decode round trip (property)', () => {
  fc.assert(
    fc.property(headerArb, (header) => {
      const decoded = decodeNtpPacket(encodeNtpHeader(header));
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value.header, header);
    }),
    { numRuns: 500 },
  );
});

/** An NTPv4 packet with a valid RFC 7822 layout: fields of ≥16 octets, the last ≥28 unless a MAC follows. */
const packetArb: fc.Arbitrary<NtpPacketInit> = fc
  .tuple(
    headerArb.map((h) => ({ ...h, version: 4 })),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 3, max: 40 })), { maxLength: 5 }),
    fc.option(fc.oneof(fc.constant({ kind: 'crypto-nak' } as const), fc.record({ kind: fc.constant('mac' as const), keyId: u32, digest: fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 20, maxLength: 20 })) }, NO_NULL_PROTO))),
    fc.integer({ min: 0, max: 255 }),
  )
  .map(([header, shapes, mac, fill]) => {
    const extensions = shapes.map(([type, words], i) => {
      const last = i === shapes.length - 1;
      // RFC 7822 §3: every field ≥ 16; the last one plus the trailer must exceed 24 (≥ 28 without a MAC).
      const minWords = !last || mac?.kind === 'mac' ? 3 : mac === null ? 6 : 5;
      return { type, body: new Uint8Array(Math.max(words, minWords) * 4).fill(fill + i) };
    });
    return { header, extensions, mac };
  });

test('packet encode → decode round trip with fields and MAC (property)', () => {
  fc.assert(
    fc.property(packetArb, (packet) => {
      const bytes = encodeNtpPacket(packet);
      const decoded = decodeNtpPacket(bytes);
      assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.code);
      assert.deepEqual(decoded.value.header, packet.header);
      assert.deepEqual(
        decoded.value.extensions.map((f) => ({ type: f.type, body: new Uint8Array(f.body) })),
        packet.extensions!.map((f) => ({ type: f.type, body: new Uint8Array(f.body) })),
      );
      assert.deepEqual(decoded.value.mac === null ? null : normalizeMac(decoded.value.mac), packet.mac === null ? null : normalizeMac(packet.mac!));
      assert.equal(encodeNtpPacket({ header: decoded.value.header, extensions: decoded.value.extensions, mac: decoded.value.mac }).equals(bytes), true);
    }),
    { numRuns: 300 },
  );
});

test('random bytes never throw: a value or a DecodeError (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, short) => {
      checkTotal(bytes, short);
    }),
    { numRuns: 2000 },
  );
  // Random tails after a valid header reach the extension parser far more often.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (tail, short) => {
      checkTotal(Buffer.concat([VECTORS[0]!.bytes, tail]), short);
    }),
    { numRuns: 2000 },
  );
});

test('mutated valid packets never throw (property)', () => {
  fc.assert(
    fc.property(
      packetArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.nat(),
      fc.boolean(),
      (packet, flips, cut, short) => {
        const bytes = Buffer.from(encodeNtpPacket(packet));
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        checkTotal(bytes, short);
        checkTotal(bytes.subarray(0, cut % (bytes.length + 1)), short);
      },
    ),
    { numRuns: 1000 },
  );
});

function checkTotal(bytes: Uint8Array, allowShortFields: boolean): void {
  for (const legacyMac of [true, false]) {
    const result = decodeNtpPacket(bytes, { allowShortFields, legacyMac });
    if (!result.ok) {
      assert.ok(result.error instanceof DecodeError);
      assert.match(result.error.code, /^[A-Z0-9_]+$/);
    }
  }
}

function normalizeMac(mac: NonNullable<NtpPacketInit['mac']>): unknown {
  return mac.kind === 'mac' ? { kind: 'mac', keyId: mac.keyId, digest: new Uint8Array(mac.digest) } : mac;
}

function expectError(result: { ok: boolean; error?: DecodeError }): string {
  assert.equal(result.ok, false);
  return result.error!.code;
}
