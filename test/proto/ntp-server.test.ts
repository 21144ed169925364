// The NTP responder as a pure function of (address, bytes, receive time, transmit time): plain NTP, NTS
// (RFC 8915 §5), NTS NAK, rate limiting and the drop reasons, plus fuzzing that it never throws and never
// answers with more bytes than it received.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { AEAD_AES_SIV_CMAC_256, AEAD_AES_SIV_CMAC_384, AEAD_AES_SIV_CMAC_512, aeadById, createAead, type Aead } from '../../src/crypto/aead.js';
import { KeyRing, type KeyRingPolicy } from '../../src/crypto/keyring.js';
import { ClientTable, type ClientTableOptions } from '../../src/proto/ntp/client-table.js';
import { EF_HEADER_LENGTH, decodeNtpTrailer, encodeExtensionField } from '../../src/proto/ntp/extensions.js';
import { NTP_HEADER_LENGTH, type NtpHeader, decodeNtpPacket, encodeKissCode, encodeNtpHeader, refIdFromAscii } from '../../src/proto/ntp/packet.js';
import { NtpResponder, type NtpDecision, type TimeQuality } from '../../src/proto/ntp/server.js';
import { microsToNtpShort, unixMicrosToNtpTimestamp } from '../../src/proto/ntp/timestamp.js';
import { buildNtsRequest, openNtsResponse } from '../../src/proto/nts/client.js';
import { COOKIE_NONCE_LENGTH, cookieLength, openCookie, sealCookie } from '../../src/proto/nts/cookie.js';
import { NTS_NONCE_LENGTH, NtsFieldType, encodeNtsAuthenticator } from '../../src/proto/nts/extension-fields.js';

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** A hand-driven clock: tests move time explicitly, nothing reads the system clock. */
class ManualClock {
  constructor(public nowMicros: number) {}
  advance(micros: number): number {
    this.nowMicros += micros;
    return this.nowMicros;
  }
}

const START = 1_750_000_000_123_456; // Unix µs, mid-2025
const CLIENT = '192.0.2.10';
const ROTATION: KeyRingPolicy = { rotationMicros: 86_400_000_000, keysKept: 1 };

const SYNCED: TimeQuality = {
  leap: 'none',
  stratum: 2,
  refid: 0xc000_0201, // 192.0.2.1
  precision: -20,
  rootDelayMicros: 1_500,
  rootDispersionMicros: 250_000,
  referenceTimeMicros: START - 64_000_000,
};

interface Setup {
  clock: ManualClock;
  ring: KeyRing;
  clients: ClientTable;
  responder: NtpResponder;
  quality: TimeQuality;
}

function setup(options: { quality?: TimeQuality; rateLimit?: ClientTableOptions['rateLimit'] } = {}): Setup {
  const clock = new ManualClock(START);
  const state = {
    clock,
    ring: KeyRing.create(START, random),
    clients: new ClientTable({ capacity: 1024, rateLimit: options.rateLimit ?? { enabled: false, intervalMicros: 1_000_000, burst: 1, kod: true } }),
    quality: options.quality ?? SYNCED,
  } as Setup;
  state.responder = new NtpResponder({ clients: state.clients, keyRing: () => state.ring, quality: () => state.quality, random });
  return state;
}

/** Hands a request to the responder: received now, transmitted 37 µs later. */
function send(s: Setup, bytes: Uint8Array, address = CLIENT): NtpDecision {
  const rx = s.clock.nowMicros;
  return s.responder.handle(address, bytes, rx, rx + 37);
}

function clientHeader(overrides: Partial<NtpHeader> = {}): NtpHeader {
  return {
    leap: 0,
    version: 4,
    mode: 3,
    stratum: 0,
    poll: 6,
    precision: -24,
    rootDelay: 0,
    rootDispersion: 0,
    referenceId: 0,
    referenceTimestamp: { seconds: 0, fraction: 0 },
    originTimestamp: { seconds: 0, fraction: 0 },
    receiveTimestamp: { seconds: 0, fraction: 0 },
    transmitTimestamp: { seconds: 0xeb12_3456, fraction: 0x89ab_cdef },
    ...overrides,
  };
}

function expectRespond(decision: NtpDecision): Extract<NtpDecision, { kind: 'respond' }> {
  assert.equal(decision.kind, 'respond', `expected a response, got ${JSON.stringify(decision)}`);
  return decision as Extract<NtpDecision, { kind: 'respond' }>;
}

function expectDrop(decision: NtpDecision, reason: string): void {
  assert.equal(decision.kind, 'drop', `expected a drop (${reason}), got a response`);
  if (decision.kind === 'drop') assert.equal(decision.reason, reason, `drop detail: ${decision.detail ?? ''}`);
}

function headerOf(bytes: Uint8Array): NtpHeader {
  const decoded = decodeNtpPacket(bytes, { allowShortFields: true, legacyMac: false });
  assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message);
  return decoded.value.header;
}

// --- NTS client side ------------------------------------------------------------------------------------------

interface Session {
  aead: number;
  c2s: Aead;
  s2c: Aead;
  keys: { aead: number; c2s: Uint8Array; s2c: Uint8Array };
  cookie: Uint8Array;
}

/** What NTS-KE would have given the client: two keys and a cookie sealed with the ring. */
function session(s: Setup, aead = AEAD_AES_SIV_CMAC_256): Session {
  const keyLength = (aeadById(aead) as NonNullable<ReturnType<typeof aeadById>>).keyLength;
  const keys = { aead, c2s: random(keyLength), s2c: random(keyLength) };
  return { aead, c2s: createAead(aead, keys.c2s), s2c: createAead(aead, keys.s2c), keys, cookie: sealCookie(s.ring, keys, random(COOKIE_NONCE_LENGTH)) };
}

function ntsRequest(sess: Session, options: { placeholders?: number; uid?: Uint8Array; cookie?: Uint8Array; header?: NtpHeader } = {}) {
  const uid = options.uid ?? random(32);
  const bytes = buildNtsRequest({
    header: options.header ?? clientHeader(),
    uniqueIdentifier: uid,
    cookie: options.cookie ?? sess.cookie,
    placeholders: options.placeholders ?? 0,
    c2s: sess.c2s,
    nonce: random(NTS_NONCE_LENGTH),
  });
  return { bytes, uid };
}

/** Any request layout: fields (already encoded) in the associated data, then an authenticator made with `c2s`. */
function customNtsRequest(c2s: Aead, fields: readonly Uint8Array[], options: { header?: NtpHeader; trailing?: readonly Uint8Array[] } = {}): Uint8Array {
  const ad = Buffer.concat([encodeNtpHeader(options.header ?? clientHeader()), ...fields]);
  const nonce = random(NTS_NONCE_LENGTH);
  const auth = encodeNtsAuthenticator(nonce, c2s.seal(nonce, new Uint8Array(0), ad));
  return new Uint8Array(Buffer.concat([ad, auth, ...(options.trailing ?? [])]));
}

const uidField = (uid: Uint8Array) => encodeExtensionField(NtsFieldType.UniqueIdentifier, uid, EF_HEADER_LENGTH);
const cookieField = (cookie: Uint8Array) => encodeExtensionField(NtsFieldType.Cookie, cookie, EF_HEADER_LENGTH);
const placeholderField = (length: number) => encodeExtensionField(NtsFieldType.CookiePlaceholder, new Uint8Array(length), EF_HEADER_LENGTH);

function openOk(bytes: Uint8Array, uid: Uint8Array, sess: Session) {
  const opened = openNtsResponse(bytes, uid, sess.s2c);
  assert.ok(opened.ok, opened.ok ? '' : `${opened.error.code}: ${opened.error.message}`);
  assert.equal(opened.value.kind, 'ok');
  return opened.value as Extract<typeof opened.value, { kind: 'ok' }>;
}

function fieldsOf(bytes: Uint8Array) {
  const trailer = decodeNtpTrailer(bytes, NTP_HEADER_LENGTH, 4, { allowShortFields: true, legacyMac: false });
  assert.ok(trailer.ok);
  return trailer.value.extensions;
}

// --- plain NTP --------------------------------------------------------------------------------------------------

test('a plain client request is answered with every header field filled in (RFC 5905 §7.3, §8)', () => {
  const s = setup();
  const request = encodeNtpHeader(clientHeader());
  const rx = s.clock.nowMicros;
  const out = expectRespond(s.responder.handle(CLIENT, request, rx, rx + 37));
  assert.equal(out.auth, 'none');
  assert.equal(out.kiss, undefined);
  assert.equal(out.bytes.length, NTP_HEADER_LENGTH);
  const h = headerOf(out.bytes);
  assert.equal(h.mode, 4);
  assert.equal(h.version, 4);
  assert.equal(h.leap, 0);
  assert.equal(h.stratum, 2);
  assert.equal(h.poll, 6, 'poll echoed');
  assert.equal(h.precision, -20);
  assert.equal(h.referenceId, 0xc000_0201);
  assert.equal(h.rootDelay, microsToNtpShort(1_500));
  assert.equal(h.rootDispersion, microsToNtpShort(250_000));
  assert.deepEqual(h.referenceTimestamp, unixMicrosToNtpTimestamp(SYNCED.referenceTimeMicros));
  assert.deepEqual(h.originTimestamp, { seconds: 0xeb12_3456, fraction: 0x89ab_cdef }, 'origin = the request transmit timestamp');
  assert.deepEqual(h.receiveTimestamp, unixMicrosToNtpTimestamp(rx));
  assert.deepEqual(h.transmitTimestamp, unixMicrosToNtpTimestamp(rx + 37));
});

test('the version of the request is echoed for NTPv1..v4', () => {
  const s = setup();
  for (const version of [1, 2, 3, 4]) {
    const out = expectRespond(send(s, encodeNtpHeader(clientHeader({ version }))));
    assert.equal(headerOf(out.bytes).version, version);
    assert.equal(headerOf(out.bytes).mode, 4);
  }
});

test('leap indicator follows the quality; an unsynchronized source says leap 3 and stratum 16', () => {
  const cases: Array<[Partial<TimeQuality>, number, number]> = [
    [{ leap: 'none' }, 0, 2],
    [{ leap: 'add' }, 1, 2],
    [{ leap: 'delete' }, 2, 2],
    [{ leap: 'unsynchronized' }, 3, 16],
    [{ leap: 'none', stratum: 16 }, 3, 16],
    [{ leap: 'add', stratum: 17 }, 3, 16],
  ];
  for (const [patch, leap, stratum] of cases) {
    const s = setup({ quality: { ...SYNCED, ...patch } });
    const h = headerOf(expectRespond(send(s, encodeNtpHeader(clientHeader()))).bytes);
    assert.equal(h.leap, leap, JSON.stringify(patch));
    assert.equal(h.stratum, stratum, JSON.stringify(patch));
  }
});

test('a reference time of 0 (unknown) is sent as the zero timestamp', () => {
  const s = setup({ quality: { ...SYNCED, referenceTimeMicros: 0 } });
  const h = headerOf(expectRespond(send(s, encodeNtpHeader(clientHeader()))).bytes);
  assert.deepEqual(h.referenceTimestamp, { seconds: 0, fraction: 0 });
});

test('every mode but client (3) is dropped with reason bad_mode', () => {
  const s = setup();
  for (const mode of [0, 1, 2, 4, 5, 6, 7]) {
    const request = encodeNtpHeader(clientHeader());
    request[0] = (4 << 3) | mode;
    const decision = send(s, request);
    expectDrop(decision, 'bad_mode');
    if (decision.kind === 'drop') assert.equal(decision.detail, `mode ${mode}`);
  }
});

test('versions 0 and 5..7 are dropped as malformed', () => {
  const s = setup();
  for (const version of [0, 5, 6, 7]) {
    const request = encodeNtpHeader(clientHeader());
    request[0] = (version << 3) | 3;
    expectDrop(send(s, request), 'malformed');
  }
});

test('datagrams of 0..47 bytes are dropped as malformed', () => {
  const s = setup();
  const full = encodeNtpHeader(clientHeader());
  for (let length = 0; length < NTP_HEADER_LENGTH; length++) {
    const decision = send(s, full.subarray(0, length));
    expectDrop(decision, 'malformed');
    if (decision.kind === 'drop') assert.equal(decision.detail, 'NTP_TOO_SHORT');
  }
});

test('trailers that are neither extension fields, a MAC nor a crypto-NAK are dropped as malformed', () => {
  const s = setup();
  const header = encodeNtpHeader(clientHeader());
  for (const extra of [1, 2, 3, 4, 5, 7, 8, 12, 16, 19, 21, 22, 23, 25, 26, 27, 30, 31]) {
    const request = Buffer.concat([header, Buffer.alloc(extra, 0xff)]);
    expectDrop(send(s, request), 'malformed');
  }
  // A field whose length runs past the end, one that is not a multiple of 4, one shorter than 16.
  for (const [type, length, total] of [
    [0x2222, 64, 28],
    [0x2222, 30, 32],
    [0x2222, 8, 28],
  ] as const) {
    const field = Buffer.alloc(total);
    field.writeUInt16BE(type, 0);
    field.writeUInt16BE(length, 2);
    expectDrop(send(s, Buffer.concat([header, field])), 'malformed');
  }
  // NTPv3 has no extension fields (RFC 5905 §7.5): 28 octets after its header are malformed.
  const v3 = encodeNtpHeader(clientHeader({ version: 3 }));
  expectDrop(send(s, Buffer.concat([v3, encodeExtensionField(0x2222, new Uint8Array(24))])), 'malformed');
});

test('an unknown extension field is ignored and the request answered in plain NTP', () => {
  const s = setup();
  const request = Buffer.concat([encodeNtpHeader(clientHeader()), encodeExtensionField(0x2222, new Uint8Array(24))]);
  const out = expectRespond(send(s, request));
  assert.equal(out.auth, 'none');
  assert.equal(out.bytes.length, NTP_HEADER_LENGTH);
});

test('a MAC (16- or 20-octet digest) under a key we do not hold gets a crypto-NAK (RFC 5905 §7.4)', () => {
  const s = setup();
  for (const digest of [16, 20]) {
    const mac = Buffer.alloc(4 + digest, 0x5a);
    mac.writeUInt32BE(42, 0);
    const request = Buffer.concat([encodeNtpHeader(clientHeader()), mac]);
    const out = expectRespond(send(s, request));
    assert.equal(out.kiss, 'CRYPTO_NAK');
    assert.equal(out.bytes.length, NTP_HEADER_LENGTH + 4);
    assert.equal(Buffer.from(out.bytes).readUInt32BE(NTP_HEADER_LENGTH), 0, 'key id 0');
    const h = headerOf(out.bytes.subarray(0, NTP_HEADER_LENGTH));
    assert.equal(h.mode, 4);
    assert.deepEqual(h.originTimestamp, clientHeader().transmitTimestamp);
  }
});

// --- NTS --------------------------------------------------------------------------------------------------------

test('NTS: the response authenticates, echoes the UID and carries 1 + placeholders fresh cookies that open with the ring', () => {
  for (const aead of [AEAD_AES_SIV_CMAC_256, AEAD_AES_SIV_CMAC_384, AEAD_AES_SIV_CMAC_512]) {
    const s = setup();
    const sess = session(s, aead);
    for (const placeholders of [0, 1, 3, 7]) {
      const { bytes, uid } = ntsRequest(sess, { placeholders });
      const rx = s.clock.nowMicros;
      const out = expectRespond(s.responder.handle(CLIENT, bytes, rx, rx + 5));
      assert.equal(out.auth, 'nts');
      assert.equal(out.kiss, undefined);
      assert.ok(out.bytes.length <= bytes.length, `response ${out.bytes.length} > request ${bytes.length}`);
      // Placeholders as long as the cookie: the response is exactly as long as the request.
      assert.equal(out.bytes.length, bytes.length);
      const opened = openOk(out.bytes, uid, sess);
      assert.equal(opened.header.mode, 4);
      assert.deepEqual(opened.header.originTimestamp, clientHeader().transmitTimestamp);
      assert.deepEqual(opened.header.receiveTimestamp, unixMicrosToNtpTimestamp(rx));
      assert.deepEqual(opened.header.transmitTimestamp, unixMicrosToNtpTimestamp(rx + 5));
      assert.equal(opened.header.stratum, 2);
      assert.equal(opened.cookies.length, 1 + placeholders);
      const seen = new Set<string>([Buffer.from(sess.cookie).toString('hex')]);
      for (const cookie of opened.cookies) {
        assert.equal(cookie.length, cookieLength(aead));
        const hexCookie = Buffer.from(cookie).toString('hex');
        assert.ok(!seen.has(hexCookie), 'every cookie is fresh');
        seen.add(hexCookie);
        const keys = openCookie(s.ring, cookie);
        assert.ok(keys.ok);
        assert.equal(keys.keyId, s.ring.current.id);
        assert.equal(keys.keys.aead, aead);
        assert.deepEqual(Buffer.from(keys.keys.c2s), Buffer.from(sess.keys.c2s));
        assert.deepEqual(Buffer.from(keys.keys.s2c), Buffer.from(sess.keys.s2c));
      }
      // The echoed UID is the first field, in the clear and authenticated.
      const first = fieldsOf(out.bytes)[0];
      assert.equal(first?.type, NtsFieldType.UniqueIdentifier);
      assert.deepEqual(Buffer.from(first?.body ?? []), Buffer.from(uid));
    }
  }
});

test('NTS: a fresh cookie works in the next request, and a longer UID is echoed whole', () => {
  const s = setup();
  const sess = session(s);
  const first = ntsRequest(sess, { placeholders: 1 });
  const cookies = openOk(expectRespond(send(s, first.bytes)).bytes, first.uid, sess).cookies;
  const uid = random(64);
  const second = ntsRequest(sess, { cookie: cookies[1] as Uint8Array, uid });
  const opened = openOk(expectRespond(send(s, second.bytes)).bytes, uid, sess);
  assert.equal(opened.cookies.length, 1);
});

test('NTS: placeholders shorter than the cookie get fewer cookies, never a longer response', () => {
  const s = setup();
  const sess = session(s);
  const tagLength = sess.s2c.algorithm.tagLength;
  for (const placeholderBody of [0, 16, 40, 100]) {
    for (const placeholders of [1, 3, 7]) {
      const uid = random(32);
      const request = customNtsRequest(sess.c2s, [uidField(uid), cookieField(sess.cookie), ...Array.from({ length: placeholders }, () => placeholderField(placeholderBody))]);
      const out = expectRespond(send(s, request));
      assert.ok(out.bytes.length <= request.length, `response ${out.bytes.length} > request ${request.length}`);
      // The most cookies that fit: header + UID field + authenticator (lengths, nonce, tag + cookie fields).
      const fixed = NTP_HEADER_LENGTH + EF_HEADER_LENGTH + uid.length + EF_HEADER_LENGTH + 4 + NTS_NONCE_LENGTH + tagLength;
      const per = EF_HEADER_LENGTH + sess.cookie.length;
      const expected = Math.min(1 + placeholders, Math.floor((request.length - fixed) / per));
      const opened = openOk(out.bytes, uid, sess);
      assert.equal(opened.cookies.length, expected, `placeholders ${placeholders} × ${placeholderBody}`);
      assert.ok(expected < 1 + placeholders);
    }
  }
});

test('NTS: a request whose first field is not an NTS field is still handled as NTS', () => {
  // RFC 8915 §5.7 fixes no order for the fields, and RFC 7822 lets other fields ride along.
  const s = setup();
  const sess = session(s);
  const uid = random(32);
  const other = encodeExtensionField(0x2222, new Uint8Array(12));
  const request = customNtsRequest(sess.c2s, [other, uidField(uid), cookieField(sess.cookie), placeholderField(sess.cookie.length)]);
  const out = expectRespond(send(s, request));
  assert.equal(out.auth, 'nts');
  assert.ok(out.bytes.length <= request.length);
  assert.equal(openOk(out.bytes, uid, sess).cookies.length, 2);
  // A forged cookie behind such a field gets its NAK too, and tampering is still caught.
  const forged = customNtsRequest(sess.c2s, [other, uidField(uid), cookieField(random(sess.cookie.length))]);
  assert.equal(expectRespond(send(s, forged)).kiss, 'NTSN');
  const tampered = Uint8Array.from(request);
  tampered[NTP_HEADER_LENGTH + 6]! ^= 1;
  expectDrop(send(s, tampered), 'nts_auth_failed');
});

test('a MAC after an unknown extension field is still a MAC (RFC 7822 §3), even if its key id looks like an NTS type', () => {
  const s = setup();
  const mac = Buffer.alloc(20, 0x33);
  mac.writeUInt32BE(0x0104_0014, 0); // reads as "Unique Identifier, 20 octets" if taken for a field
  const request = Buffer.concat([encodeNtpHeader(clientHeader()), encodeExtensionField(0x2222, new Uint8Array(24)), mac]);
  assert.equal(expectRespond(send(s, request)).kiss, 'CRYPTO_NAK');
});

test('NTS: fields after the authenticator are ignored (RFC 8915 §5.7) and still count for nothing', () => {
  const s = setup();
  const sess = session(s);
  const uid = random(32);
  const request = customNtsRequest(sess.c2s, [uidField(uid), cookieField(sess.cookie)], { trailing: [placeholderField(sess.cookie.length), encodeExtensionField(0x2222, new Uint8Array(24))] });
  const out = expectRespond(send(s, request));
  assert.equal(openOk(out.bytes, uid, sess).cookies.length, 1, 'an unauthenticated placeholder asks for nothing');
});

function expectNak(s: Setup, request: Uint8Array, uid: Uint8Array, sess: Session): void {
  const out = expectRespond(send(s, request));
  assert.equal(out.kiss, 'NTSN');
  assert.equal(out.auth, 'none');
  assert.ok(out.bytes.length <= request.length);
  const h = headerOf(out.bytes);
  assert.equal(h.stratum, 0);
  assert.equal(h.leap, 3);
  assert.equal(h.mode, 4);
  assert.equal(h.referenceId, encodeKissCode('NTSN'));
  assert.deepEqual(h.originTimestamp, clientHeader().transmitTimestamp);
  const fields = fieldsOf(out.bytes);
  assert.deepEqual(
    fields.map((f) => f.type),
    [NtsFieldType.UniqueIdentifier],
    'only the echoed UID: no authenticator, no cookies',
  );
  assert.deepEqual(Buffer.from(fields[0]?.body ?? []), Buffer.from(uid));
  const opened = openNtsResponse(out.bytes, uid, sess.s2c);
  assert.ok(opened.ok);
  assert.equal(opened.value.kind, 'nak');
}

test('NTS: a forged cookie gets an NTS NAK echoing the UID without an authenticator', () => {
  const s = setup();
  const sess = session(s);
  const forged: Array<[string, Uint8Array]> = [];
  forged.push(['random bytes', random(sess.cookie.length)]);
  const wrongKey = Uint8Array.from(sess.cookie);
  new DataView(wrongKey.buffer).setUint32(0, (s.ring.current.id + 1) >>> 0);
  forged.push(['unknown key id', wrongKey]);
  for (const at of [4, 19, 20, 40, sess.cookie.length - 1]) {
    const tampered = Uint8Array.from(sess.cookie);
    tampered[at]! ^= 0x01;
    forged.push([`byte ${at} flipped`, tampered]);
  }
  forged.push(['too short', sess.cookie.subarray(0, 36)]);
  forged.push(['truncated by 4', sess.cookie.subarray(0, sess.cookie.length - 4)]);
  forged.push(['empty', new Uint8Array(0)]);
  for (const [what, cookie] of forged) {
    const { bytes, uid } = ntsRequest(sess, { cookie, placeholders: 2 });
    assert.doesNotThrow(() => expectNak(s, bytes, uid, sess), what);
  }
});

test('NTS: a cookie whose master key was rotated out of the ring gets a NAK; one still in the ring works', () => {
  const s = setup();
  const sess = session(s);
  s.ring.rotate(s.clock.advance(ROTATION.rotationMicros), random, ROTATION); // keysKept 1: the old key is kept
  const kept = ntsRequest(sess);
  const opened = openOk(expectRespond(send(s, kept.bytes)).bytes, kept.uid, sess);
  const reissued = openCookie(s.ring, opened.cookies[0] as Uint8Array);
  assert.ok(reissued.ok);
  assert.equal(reissued.keyId, s.ring.current.id, 'fresh cookies use the new current key');

  s.ring.rotate(s.clock.advance(ROTATION.rotationMicros), random, ROTATION); // now the first key is gone
  const gone = ntsRequest(sess);
  expectNak(s, gone.bytes, gone.uid, sess);
});

test('NTS: a tampered authenticator, associated data or header byte is dropped as nts_auth_failed', () => {
  const s = setup();
  const sess = session(s);
  const { bytes } = ntsRequest(sess, { placeholders: 1 });
  const authStart = bytes.length - (EF_HEADER_LENGTH + 4 + NTS_NONCE_LENGTH + sess.c2s.algorithm.tagLength);
  const cookieStart = NTP_HEADER_LENGTH + EF_HEADER_LENGTH + 32;
  const cookieEnd = cookieStart + EF_HEADER_LENGTH + sess.cookie.length;
  const positions = [
    1, 2, 3, 4, 11, 12, 16, 24, 32, 40, 47, // header (not byte 0: that is mode/version)
    NTP_HEADER_LENGTH + 4, NTP_HEADER_LENGTH + 35, // UID body
    cookieEnd + 4, cookieEnd + 20, // placeholder body: associated data too
    authStart + 8, authStart + 8 + NTS_NONCE_LENGTH - 1, // nonce
    authStart + 8 + NTS_NONCE_LENGTH, bytes.length - 1, // tag
  ];
  for (const at of positions) {
    const tampered = Uint8Array.from(bytes);
    tampered[at]! ^= 0x80;
    expectDrop(send(s, tampered), 'nts_auth_failed');
  }
  // Sealed with the wrong key (the client confused its keys).
  const confused = { ...sess, c2s: sess.s2c };
  expectDrop(send(s, ntsRequest(confused).bytes), 'nts_auth_failed');
});

test('NTS: two cookies, no cookie, no UID, a short UID, no or two authenticators are dropped as nts_malformed', () => {
  const s = setup();
  const sess = session(s);
  const uid = random(32);
  const malformed: Array<[string, Uint8Array]> = [
    ['two cookies', customNtsRequest(sess.c2s, [uidField(uid), cookieField(sess.cookie), cookieField(sess.cookie)])],
    ['no cookie', customNtsRequest(sess.c2s, [uidField(uid), placeholderField(sess.cookie.length)])],
    ['no UID', customNtsRequest(sess.c2s, [cookieField(sess.cookie), placeholderField(sess.cookie.length)])],
    ['short UID', customNtsRequest(sess.c2s, [uidField(random(16)), cookieField(sess.cookie)])],
    ['two UIDs', customNtsRequest(sess.c2s, [uidField(uid), uidField(random(32)), cookieField(sess.cookie)])],
    ['no authenticator', new Uint8Array(Buffer.concat([encodeNtpHeader(clientHeader()), uidField(uid), cookieField(sess.cookie)]))],
  ];
  const once = customNtsRequest(sess.c2s, [uidField(uid), cookieField(sess.cookie)]);
  const auth = once.subarray(NTP_HEADER_LENGTH + uidField(uid).length + cookieField(sess.cookie).length);
  malformed.push(['two authenticators', new Uint8Array(Buffer.concat([once, auth]))]);
  for (const [what, request] of malformed) {
    const decision = send(s, request);
    assert.equal(decision.kind, 'drop', what);
    if (decision.kind === 'drop') assert.equal(decision.reason, 'nts_malformed', `${what}: ${decision.detail ?? ''}`);
  }
});

test('NTS: a replayed request is answered again with an identically structured response (the server is stateless)', () => {
  // RFC 8915 §5.7 leaves replay protection to the client: it accepts one response per Unique Identifier and
  // checks the origin timestamp. The server keeps no per-request state (any node holding the key ring must be
  // able to answer), so a replay gets a new, equally valid response: the same length and fields, with fresh
  // cookies. That gives the replayer nothing: only the holder of the S2C key can read the cookies.
  const s = setup();
  const sess = session(s);
  const { bytes, uid } = ntsRequest(sess, { placeholders: 2 });
  const first = expectRespond(send(s, bytes));
  s.clock.advance(1_000_000);
  const second = expectRespond(send(s, bytes));
  assert.equal(second.bytes.length, first.bytes.length);
  assert.deepEqual(
    fieldsOf(second.bytes).map((f) => [f.type, f.body.length]),
    fieldsOf(first.bytes).map((f) => [f.type, f.body.length]),
  );
  const a = openOk(first.bytes, uid, sess);
  const b = openOk(second.bytes, uid, sess);
  assert.equal(b.cookies.length, a.cookies.length);
  assert.notDeepEqual(b.cookies, a.cookies, 'fresh cookies each time');
  assert.notDeepEqual(b.header.receiveTimestamp, a.header.receiveTimestamp);
});

// --- rate limiting ----------------------------------------------------------------------------------------------

const LIMITED = { enabled: true, intervalMicros: 1_000_000, burst: 4, kod: true };

test('rate limiting: a burst is answered, then one RATE kiss-o\'-death, then silence; refilled over time', () => {
  const s = setup({ rateLimit: LIMITED });
  const request = encodeNtpHeader(clientHeader());
  for (let i = 0; i < LIMITED.burst; i++) assert.equal(expectRespond(send(s, request)).kiss, undefined, `burst packet ${i}`);
  const kod = expectRespond(send(s, request));
  assert.equal(kod.kiss, 'RATE');
  assert.equal(kod.bytes.length, NTP_HEADER_LENGTH);
  const h = headerOf(kod.bytes);
  assert.equal(h.stratum, 0);
  assert.equal(h.leap, 3);
  assert.equal(h.mode, 4);
  assert.equal(h.referenceId, refIdFromAscii('RATE'));
  assert.deepEqual(h.originTimestamp, clientHeader().transmitTimestamp);
  for (let i = 0; i < 10; i++) expectDrop(send(s, request), 'rate_limited');
  // Another client is not affected.
  assert.equal(expectRespond(send(s, request, '192.0.2.99')).kiss, undefined);
  // One interval later: one token back, then the next excess gets a KoD again (at most one per interval).
  s.clock.advance(LIMITED.intervalMicros);
  assert.equal(expectRespond(send(s, request)).kiss, undefined);
  assert.equal(expectRespond(send(s, request)).kiss, 'RATE');
  expectDrop(send(s, request), 'rate_limited');
  assert.equal(s.clients.get(CLIENT)?.kods, 2);
});

test('rate limiting with kod = false drops silently', () => {
  const s = setup({ rateLimit: { ...LIMITED, kod: false } });
  const request = encodeNtpHeader(clientHeader());
  for (let i = 0; i < LIMITED.burst; i++) expectRespond(send(s, request));
  for (let i = 0; i < 5; i++) expectDrop(send(s, request), 'rate_limited');
});

test('rate limiting: NTS requests over the limit are dropped, never answered with an unauthenticated KoD or NAK', () => {
  const s = setup({ rateLimit: LIMITED });
  const sess = session(s);
  for (let i = 0; i < LIMITED.burst; i++) assert.equal(expectRespond(send(s, ntsRequest(sess).bytes)).auth, 'nts');
  for (let i = 0; i < 5; i++) expectDrop(send(s, ntsRequest(sess).bytes), 'rate_limited');
  // Limiting comes before cryptography: a forged cookie over the limit gets no NAK either.
  expectDrop(send(s, ntsRequest(sess, { cookie: random(sess.cookie.length) }).bytes), 'rate_limited');
});

test('rate limiting: malformed packets are dropped before they cost the sender a token', () => {
  const s = setup({ rateLimit: LIMITED });
  for (let i = 0; i < 50; i++) expectDrop(send(s, new Uint8Array(20)), 'malformed');
  for (let i = 0; i < LIMITED.burst; i++) assert.equal(expectRespond(send(s, encodeNtpHeader(clientHeader()))).kiss, undefined);
});

// --- fuzzing ----------------------------------------------------------------------------------------------------

const DROP_REASONS = new Set(['malformed', 'bad_mode', 'rate_limited', 'nts_malformed', 'nts_bad_cookie_aead', 'nts_auth_failed', 'nts_and_mac']);

function checkDecision(decision: NtpDecision, request: Uint8Array): void {
  if (decision.kind === 'drop') {
    assert.ok(DROP_REASONS.has(decision.reason), decision.reason);
    return;
  }
  assert.ok(decision.bytes.length <= request.length, `amplification: ${decision.bytes.length} > ${request.length}`);
  assert.ok(decision.bytes.length >= NTP_HEADER_LENGTH);
  assert.equal((decision.bytes[0] as number) & 7, 4, 'server mode');
}

test('fuzz: random datagrams never throw and are never answered with more bytes than they had', () => {
  const s = setup();
  const datagram = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 600 }),
    // Mostly well-formed starts: v1-v4 client mode, so the decoder goes deeper.
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: 47, maxLength: 600 })).map(([v, rest]) => Uint8Array.of((v << 3) | 3, ...rest)),
    // An NTS-looking first field followed by noise.
    fc.tuple(fc.constantFrom(0x0104, 0x0204, 0x0304, 0x0404), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 500 })).map(([type, length, rest]) => {
      const out = new Uint8Array(NTP_HEADER_LENGTH + 4 + rest.length);
      out[0] = 0x23;
      new DataView(out.buffer).setUint16(NTP_HEADER_LENGTH, type);
      new DataView(out.buffer).setUint16(NTP_HEADER_LENGTH + 2, length);
      out.set(rest, NTP_HEADER_LENGTH + 4);
      return out;
    }),
  );
  fc.assert(
    fc.property(datagram, (bytes) => {
      checkDecision(send(s, bytes), bytes);
    }),
    { numRuns: 3000 },
  );
});

test('fuzz: mutated valid NTS requests never throw, never amplify, and only verified ones get an NTS answer', () => {
  const s = setup();
  const sess = session(s);
  const base = ntsRequest(sess, { placeholders: 3 });
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
    fc.record({ kind: fc.constant('length' as const), field: fc.nat(6), value: fc.integer({ min: 0, max: 0xffff }) }),
  );
  const fieldStarts = fieldsOf(base.bytes).map((f) => f.offset);
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
      let bytes: Uint8Array = Uint8Array.from(base.bytes);
      for (const m of mutations) {
        if (m.kind === 'flip') bytes[m.at % bytes.length]! ^= 1 << m.bit;
        else if (m.kind === 'set') bytes[m.at % bytes.length] = m.value;
        else if (m.kind === 'truncate') bytes = bytes.subarray(0, m.at % (bytes.length + 1));
        else if (m.kind === 'append') bytes = Uint8Array.from([...bytes, ...m.bytes]);
        else {
          const at = fieldStarts[m.field % fieldStarts.length] as number;
          if (at + 4 <= bytes.length) new DataView(bytes.buffer, bytes.byteOffset).setUint16(at + 2, m.value);
        }
        if (bytes.length === 0) break;
      }
      const decision = send(s, bytes);
      checkDecision(decision, bytes);
      if (decision.kind === 'respond' && decision.auth === 'nts') {
        // Answered with NTS: the request still verified, so the response does too.
        openOk(decision.bytes, base.uid, sess);
      }
    }),
    { numRuns: 2000 },
  );
});
