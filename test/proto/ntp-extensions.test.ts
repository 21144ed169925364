import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import {
  decodeExtensionFieldList,
  decodeNtpTrailer,
  describeExtensionFieldType,
  encodeExtensionField,
  encodeExtensionFieldList,
  encodeMacTrailer,
  extensionFieldLength,
  ntpTrailerLength,
  writeExtensionField,
  writeMacTrailer,
} from '../../src/proto/ntp/extensions.js';
import type { ExtensionDecodeOptions, ExtensionField } from '../../src/proto/ntp/extensions.js';
import { decodeNtpPacket } from '../../src/proto/ntp/packet.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
/** A minimal NTPv4 client header (LI 0, VN 4, mode 3), all other fields zero. */
const HEADER_V4 = Buffer.concat([hex('23'), Buffer.alloc(47)]);
const HEADER_V3 = Buffer.concat([hex('1b'), Buffer.alloc(47)]);

function ef(type: number, totalLength: number, fill = 0x11): Buffer {
  const out = Buffer.alloc(totalLength, fill);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(totalLength, 2);
  return out;
}

const mac20 = hex(`00000007 ${'ab'.repeat(16)}`);
const mac24 = hex(`00000009 ${'cd'.repeat(20)}`);
const nak = hex('00000000');

function parse(tail: Buffer, options?: ExtensionDecodeOptions, header = HEADER_V4) {
  return decodeNtpPacket(Buffer.concat([header, tail]), options);
}

function shape(tail: Buffer, options?: ExtensionDecodeOptions, header = HEADER_V4): string {
  const result = parse(tail, options, header);
  if (!result.ok) return `error ${result.error.code}`;
  const fields = result.value.extensions.map((f) => 4 + f.body.length).join('+');
  const mac = result.value.mac === null ? 'none' : result.value.mac.kind === 'mac' ? `mac${4 + result.value.mac.digest.length}` : 'nak';
  return `fields[${fields}] ${mac}`;
}

test('field padding: to a multiple of 4 and to the minimum', () => {
  assert.deepEqual(encodeExtensionField(0x1234, Buffer.from('abcde')), hex('12340010 6162636465 00000000000000'));
  assert.deepEqual(encodeExtensionField(0x1234, Buffer.from('abcde'), 4), hex('1234000c 6162636465 000000'));
  assert.deepEqual(encodeExtensionField(0x0001, new Uint8Array(0), 4), hex('00010004'));
  assert.equal(extensionFieldLength(0), 16);
  assert.equal(extensionFieldLength(12), 16);
  assert.equal(extensionFieldLength(13), 20);
  assert.equal(extensionFieldLength(1, 28), 28);
  assert.equal(extensionFieldLength(1, 4), 8);
  assert.equal(extensionFieldLength(65528, 4), 65532);
  assert.throws(() => extensionFieldLength(65529, 4), UsageError);
  const out = Buffer.alloc(24, 0xee);
  assert.equal(writeExtensionField(0xabcd, Buffer.from([1, 2, 3]), out, 4), 20);
  assert.deepEqual(out, hex(`eeeeeeee abcd0010 010203 ${'00'.repeat(9)} eeeeeeee`));
  assert.throws(() => writeExtensionField(0x10000, new Uint8Array(4), Buffer.alloc(16), 0), UsageError);
  assert.throws(() => writeExtensionField(1, new Uint8Array(20), Buffer.alloc(16), 0), UsageError);
});

test('MAC trailers and crypto-NAK encode as RFC 5905 / RFC 7822 §3 lay them out', () => {
  assert.deepEqual(encodeMacTrailer({ kind: 'mac', keyId: 7, digest: Buffer.alloc(16, 0xab) }), mac20);
  assert.deepEqual(encodeMacTrailer({ kind: 'mac', keyId: 9, digest: Buffer.alloc(20, 0xcd) }), mac24);
  assert.deepEqual(encodeMacTrailer({ kind: 'crypto-nak' }), nak);
  assert.throws(() => encodeMacTrailer({ kind: 'mac', keyId: 1, digest: new Uint8Array(32) }), UsageError);
  assert.throws(() => encodeMacTrailer({ kind: 'mac', keyId: -1, digest: new Uint8Array(16) }), UsageError);
  assert.throws(() => writeMacTrailer({ kind: 'crypto-nak' }, new Uint8Array(3), 0), UsageError);
});

/** The RFC 7822 §3 length rule, case by case: [tail after the header, expected reading]. */
const DISCRIMINATION: [string, Buffer, string, ExtensionDecodeOptions?][] = [
  ['nothing', Buffer.alloc(0), 'fields[] none'],
  ['crypto-NAK', nak, 'fields[] nak'],
  ['non-zero 4-octet trailer', hex('00000001'), 'error NTP_BAD_CRYPTO_NAK'],
  ['MAC with 16-octet digest', mac20, 'fields[] mac20'],
  ['MAC with 20-octet digest', mac24, 'fields[] mac24'],
  ['28-octet field, no MAC', ef(0x0104, 28), 'fields[28] none'],
  ['32-octet field, no MAC', ef(0x0104, 32), 'fields[32] none'],
  ['lone 16-octet field (last field without MAC must be >= 28)', ef(0x0104, 16), 'error NTP_BAD_LENGTH'],
  ['lone 24-octet field reads as a MAC (the ambiguity RFC 7822 forbids)', ef(0x0104, 24), 'fields[] mac24'],
  ['16-octet field + MAC20', Buffer.concat([ef(0x0104, 16), mac20]), 'fields[16] mac20'],
  ['16-octet field + MAC24', Buffer.concat([ef(0x0104, 16), mac24]), 'fields[16] mac24'],
  ['28-octet field + crypto-NAK', Buffer.concat([ef(0x0104, 28), nak]), 'fields[28] nak'],
  ['16 + 28 fields, no MAC', Buffer.concat([ef(0x0104, 16), ef(0x0204, 28)]), 'fields[16+28] none'],
  ['16 + 16 fields, no MAC', Buffer.concat([ef(0x0104, 16), ef(0x0204, 16)]), 'error NTP_BAD_LENGTH'],
  ['16 + 16 fields + MAC20', Buffer.concat([ef(0x0104, 16), ef(0x0204, 16), mac20]), 'fields[16+16] mac20'],
  ['12 stray octets', Buffer.alloc(12), 'error NTP_BAD_LENGTH'],
  ['2 stray octets', Buffer.alloc(2), 'error NTP_BAD_LENGTH'],
  ['field shorter than 16', Buffer.concat([ef(0x0104, 12), Buffer.alloc(16)]), 'error EF_BAD_LENGTH'],
  ['field length not a multiple of 4', Buffer.concat([ef(0x0104, 28).fill(0, 2, 4).fill(30, 3, 4)]), 'error EF_BAD_LENGTH'],
  ['field length zero', Buffer.concat([hex('01040000'), Buffer.alloc(28)]), 'error EF_BAD_LENGTH'],
  ['field overruns the datagram', ef(0x0104, 32).subarray(0, 28), 'error EF_TRUNCATED'],
  ['field followed by 1-3 stray octets', Buffer.concat([ef(0x0104, 28), Buffer.alloc(3)]), 'error NTP_BAD_LENGTH'],
  ['short fields allowed: 8 + MAC20', Buffer.concat([ef(0x0104, 8), mac20]), 'fields[8] mac20', { allowShortFields: true }],
  ['short fields, 8 + 12 read as a MAC by length', Buffer.concat([ef(0x0104, 8), ef(0x0204, 12)]), 'fields[] mac20', { allowShortFields: true }],
  ['short fields, no legacy MAC: 8 + 12', Buffer.concat([ef(0x0104, 8), ef(0x0204, 12)]), 'fields[8+12] none', { allowShortFields: true, legacyMac: false }],
  ['no legacy MAC: a MAC-shaped tail is an error', mac20, 'error EF_BAD_LENGTH', { legacyMac: false }],
  ['no legacy MAC: 3 stray octets', Buffer.concat([ef(0x0104, 28), Buffer.alloc(3)]), 'error EF_TRUNCATED', { legacyMac: false }],
  ['minFieldLength 8', Buffer.concat([ef(0x0104, 8), mac24]), 'fields[8] mac24', { minFieldLength: 8 }],
];

for (const [name, tail, expected, options] of DISCRIMINATION) {
  test(`MAC vs fields: ${name}`, () => {
    assert.equal(shape(tail, options), expected);
  });
}

test('versions 1-3 carry no extension fields: only a MAC or crypto-NAK may follow', () => {
  assert.equal(shape(mac20, undefined, HEADER_V3), 'fields[] mac20');
  assert.equal(shape(nak, undefined, HEADER_V3), 'fields[] nak');
  assert.equal(shape(Buffer.alloc(0), undefined, HEADER_V3), 'fields[] none');
  assert.equal(shape(ef(0x0104, 28), undefined, HEADER_V3), 'error NTP_BAD_LENGTH');
  assert.equal(shape(mac20, { legacyMac: false }, HEADER_V3), 'error NTP_BAD_LENGTH');
});

test('the MAC covers everything before it; digest is a view', () => {
  const bytes = Buffer.concat([HEADER_V4, ef(0x0104, 16), mac24]);
  const result = decodeNtpPacket(bytes);
  assert.ok(result.ok);
  assert.equal(result.value.macOffset, 64);
  assert.deepEqual(result.value.mac, { kind: 'mac', keyId: 9, digest: bytes.subarray(68) });
  assert.equal((result.value.mac as { digest: Uint8Array }).digest.buffer, bytes.buffer);
});

test('caps: number of fields and total length', () => {
  const three = Buffer.concat([ef(0x1, 16), ef(0x2, 16), ef(0x3, 28)]);
  assert.equal(shape(three), 'fields[16+16+28] none');
  assert.equal(shape(three, { maxFields: 2 }), 'error EF_TOO_MANY');
  assert.equal(shape(three, { maxTotalLength: 59 }), 'error NTP_TOO_LONG');
  assert.equal(shape(three, { maxTotalLength: 60 }), 'fields[16+16+28] none');
  const many = Buffer.concat(Array.from({ length: 40 }, () => ef(0x9, 28)));
  assert.equal(shape(many, { maxTotalLength: 65536 }), 'error EF_TOO_MANY'); // default cap: 32 fields
  assert.equal(shape(Buffer.alloc(5000)), 'error NTP_TOO_LONG'); // default cap: 4096 octets
});

test('unknown field types survive byte for byte', () => {
  const field = ef(0xbeef, 36, 0x77);
  field[10] = 0x01;
  const bytes = Buffer.concat([HEADER_V4, field]);
  const result = decodeNtpPacket(bytes);
  assert.ok(result.ok);
  const [only] = result.value.extensions;
  assert.equal(only!.type, 0xbeef);
  assert.deepEqual(describeExtensionFieldType(only!.type), { unknown: 0xbeef });
  assert.deepEqual(describeExtensionFieldType(0x0404), { known: 'NtsAuthenticator' });
  const out = Buffer.alloc(ntpTrailerLength(result.value.extensions, null, 4));
  assert.equal(out.length, 36);
  assert.deepEqual(encodeExtensionFieldList(result.value.extensions), field);
});

test('encoder refuses layouts a peer would misread (RFC 7822 §3)', () => {
  const body = (n: number): { type: number; body: Uint8Array } => ({ type: 0x0104, body: new Uint8Array(n) });
  assert.equal(ntpTrailerLength([body(24)], null, 4), 28);
  assert.equal(ntpTrailerLength([body(12)], { kind: 'mac', keyId: 1, digest: new Uint8Array(16) }, 4), 36);
  assert.throws(() => ntpTrailerLength([body(12)], null, 4), UsageError); // last field 16 without MAC
  assert.throws(() => ntpTrailerLength([body(16)], { kind: 'crypto-nak' }, 4), UsageError); // 20 + 4 = 24 reads as MAC
  assert.throws(() => ntpTrailerLength([body(8)], { kind: 'mac', keyId: 1, digest: new Uint8Array(16) }, 4), UsageError); // field < 16
  assert.throws(() => ntpTrailerLength([body(13)], null, 4), UsageError); // unpadded body
  assert.throws(() => ntpTrailerLength([body(24)], null, 3), UsageError); // fields need v4
  assert.throws(() => ntpTrailerLength([], { kind: 'crypto-nak' }, 4, { legacyMac: false }), UsageError);
  assert.equal(ntpTrailerLength([body(4)], null, 4, { allowShortFields: true, legacyMac: false }), 8);
  assert.throws(() => decodeNtpTrailer(HEADER_V4, 48, 4, { minFieldLength: 6 }), UsageError);
});

test('field lists (NTS plaintext): short fields allowed, still aligned', () => {
  const list = Buffer.concat([hex('00010004'), hex('0002000c 0102030405060708'), ef(0x0204, 40)]);
  const result = decodeExtensionFieldList(list);
  assert.ok(result.ok);
  assert.deepEqual(
    result.value.map((f) => [f.type, f.offset, f.body.length]),
    [
      [1, 0, 0],
      [2, 4, 8],
      [0x0204, 16, 36],
    ],
  );
  assert.deepEqual(encodeExtensionFieldList(result.value), list);
  assert.ok(decodeExtensionFieldList(new Uint8Array(0)).ok);
  assert.equal(errorCode(decodeExtensionFieldList(hex('00010000'))), 'EF_BAD_LENGTH');
  assert.equal(errorCode(decodeExtensionFieldList(hex('00010006 00000000'))), 'EF_BAD_LENGTH');
  assert.equal(errorCode(decodeExtensionFieldList(hex('00010004 0000'))), 'EF_TRUNCATED');
  assert.equal(errorCode(decodeExtensionFieldList(hex('00010008 0000'))), 'EF_TRUNCATED');
  assert.equal(errorCode(decodeExtensionFieldList(Buffer.concat(Array.from({ length: 3 }, () => hex('00010004'))), { maxFields: 2 })), 'EF_TOO_MANY');
  assert.equal(errorCode(decodeExtensionFieldList(hex('0001000c 0000000000000000'), { minFieldLength: 16 })), 'EF_BAD_LENGTH');
});

// --- properties ---

const fieldArb = fc.record(
  { type: fc.integer({ min: 0, max: 0xffff }), words: fc.integer({ min: 0, max: 12 }), seed: fc.integer({ min: 0, max: 255 }) },
  { noNullPrototype: true },
);

test('field list encode → decode round trip (property)', () => {
  fc.assert(
    fc.property(fc.array(fieldArb, { maxLength: 10 }), (specs) => {
      const fields = specs.map((s) => ({ type: s.type, body: new Uint8Array(s.words * 4).fill(s.seed) }));
      const bytes = encodeExtensionFieldList(fields);
      const decoded = decodeExtensionFieldList(bytes);
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value.map(plain), fields.map((f) => ({ type: f.type, body: [...f.body] })));
    }),
    { numRuns: 500 },
  );
});

test('value → field → value keeps the value plus zero padding (property)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 80 }), fc.constantFrom(4, 16, 28), (type, value, min) => {
      const bytes = encodeExtensionField(type, value, min);
      assert.equal(bytes.length % 4, 0);
      assert.ok(bytes.length >= min && bytes.length >= 4 + value.length && bytes.length < Math.max(min, 4 + value.length) + 4);
      const decoded = decodeExtensionFieldList(bytes);
      assert.ok(decoded.ok);
      const [field] = decoded.value;
      assert.equal(field!.type, type);
      assert.deepEqual([...field!.body.subarray(0, value.length)], [...value]);
      assert.ok(field!.body.subarray(value.length).every((b) => b === 0));
    }),
    { numRuns: 500 },
  );
});

test('random trailers never throw (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.boolean(), (tail, version, allowShortFields, legacyMac) => {
      const result = decodeNtpTrailer(tail, 0, version, { allowShortFields, legacyMac });
      if (!result.ok) assert.ok(result.error instanceof DecodeError);
      const list = decodeExtensionFieldList(tail);
      if (!list.ok) assert.ok(list.error instanceof DecodeError);
    }),
    { numRuns: 3000 },
  );
});

function plain(f: ExtensionField): { type: number; body: number[] } {
  return { type: f.type, body: [...f.body] };
}

function errorCode(result: { ok: boolean; error?: DecodeError }): string | undefined {
  return result.ok ? undefined : result.error!.code;
}
