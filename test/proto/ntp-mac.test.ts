// Symmetric-key MAC authentication in the NTP responder (RFC 5905 §7.3, RFC 8573; docs/eks.md §7): static keys
// from a keys file and ephemeral keys derived from the key ring, every refusal a crypto-NAK with its outcome,
// NTS + MAC dropped, rate limiting before any cryptography, and fuzzing that no forged MAC ever verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { createAead } from '../../src/crypto/aead.js';
import { AEAD_AES_SIV_CMAC_256 } from '../../src/crypto/aead.js';
import { EphemeralKeys, deriveEphemeralKey } from '../../src/crypto/ephemeral-keys.js';
import { KeyRing, type KeyRingPolicy } from '../../src/crypto/keyring.js';
import { PreparedMac, computeSymmetricMac, type SymmetricKey } from '../../src/crypto/symmetric-mac.js';
import { ClientTable, type ClientTableOptions } from '../../src/proto/ntp/client-table.js';
import { encodeExtensionField } from '../../src/proto/ntp/extensions.js';
import { parseKeysFile } from '../../src/proto/ntp/keys-file.js';
import { StaticAndEphemeralKeys, staticMacKeys, type MacKeyResolution, type MacKeyResolver } from '../../src/proto/ntp/mac-keys.js';
import { NTP_HEADER_LENGTH, type NtpHeader, decodeNtpPacket, encodeNtpHeader } from '../../src/proto/ntp/packet.js';
import { NtpResponder, type NtpDecision, type TimeQuality } from '../../src/proto/ntp/server.js';
import { buildNtsRequest } from '../../src/proto/nts/client.js';
import { COOKIE_NONCE_LENGTH, sealCookie } from '../../src/proto/nts/cookie.js';
import { NTS_NONCE_LENGTH } from '../../src/proto/nts/extension-fields.js';
import { clientHeader as baseClientHeader } from '../helpers/nts-client.js';

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

const START = 1_750_000_000_123_456; // Unix µs
const HOUR = 3_600_000_000;
const DAY = 24 * HOUR;
const LIFETIME = 2 * DAY;
const POLICY: KeyRingPolicy = { rotationMicros: DAY, keysKept: 2 };
const CLIENT = '198.51.100.7';

const QUALITY: TimeQuality = {
  leap: 'none',
  stratum: 2,
  refid: 0xc000_0201,
  precision: -20,
  rootDelayMicros: 1_500,
  rootDispersionMicros: 250_000,
  referenceTimeMicros: START - 64_000_000,
};

// The operator's keys file: ids 1..3 are static keys of the three algorithms.
const KEYS_FILE = ['1 MD5 md5-secret-key', '2 SHA1 0123456789abcdef0123456789abcdef01234567', '3 AES128CMAC 000102030405060708090a0b0c0d0e0f', '4 M another-md5-key'].join('\n');
const STATIC_KEYS = (() => {
  const parsed = parseKeysFile(KEYS_FILE);
  assert.ok(parsed.ok);
  return parsed.value.keys;
})();
const staticKey = (id: number): SymmetricKey => STATIC_KEYS.get(id) as SymmetricKey;

interface Setup {
  now: number;
  ring: KeyRing;
  revoked: Set<number>;
  eks: EphemeralKeys;
  responder: NtpResponder;
  resolves: number;
}

function setup(options: { rateLimit?: ClientTableOptions['rateLimit']; resolver?: 'none' | 'static-only' | 'both' } = {}): Setup {
  const s = { now: START, ring: KeyRing.create(START, random), revoked: new Set<number>(), resolves: 0 } as Setup;
  s.eks = new EphemeralKeys({ keyRing: () => s.ring, lifetimeMicros: () => LIFETIME, isRevoked: (id) => s.revoked.has(id) });
  const statics = staticMacKeys(STATIC_KEYS.values());
  assert.ok(statics.ok);
  const kind = options.resolver ?? 'both';
  const inner = new StaticAndEphemeralKeys({ static: statics.value, ephemeral: kind === 'both' ? s.eks : null });
  // Counts the calls, to show what never reaches the keys.
  const counting: MacKeyResolver = {
    resolve: (keyId, now): MacKeyResolution => {
      s.resolves++;
      return inner.resolve(keyId, now);
    },
  };
  const clients = new ClientTable({ capacity: 1024, rateLimit: options.rateLimit ?? { enabled: false, intervalMicros: 1_000_000, burst: 1, kod: true } });
  s.responder = new NtpResponder({ clients, keyRing: () => s.ring, quality: () => QUALITY, random, ...(kind === 'none' ? {} : { macKeys: counting }) });
  return s;
}

function send(s: Setup, bytes: Uint8Array, address = CLIENT): NtpDecision {
  return s.responder.handle(address, bytes, s.now, s.now + 41);
}

/** A client-mode NTPv4 header with a fixed transmit timestamp, and `overrides`. */
function clientHeader(overrides: Partial<NtpHeader> = {}): NtpHeader {
  return { ...baseClientHeader({ seconds: 0xeb12_3456, fraction: 0x89ab_cdef }), ...overrides };
}

function u32(value: number): Uint8Array {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}

/** header (+ fields) ‖ key id ‖ digest of everything before the key id, as ntpd/NTPsec/chrony send it. */
function macRequest(key: Pick<SymmetricKey, 'algorithm' | 'key'>, keyId: number, options: { header?: NtpHeader; fields?: Uint8Array[] } = {}): Uint8Array {
  const covered = Buffer.concat([encodeNtpHeader(options.header ?? clientHeader()), ...(options.fields ?? [])]);
  return new Uint8Array(Buffer.concat([covered, u32(keyId), computeSymmetricMac(key, covered)]));
}

function ephemeralKey(key: Uint8Array): Pick<SymmetricKey, 'algorithm' | 'key'> {
  return { algorithm: 'AES128CMAC', key };
}

type Respond = Extract<NtpDecision, { kind: 'respond' }>;

function expectRespond(decision: NtpDecision): Respond {
  assert.equal(decision.kind, 'respond', `expected a response, got ${JSON.stringify(decision)}`);
  return decision as Respond;
}

/** A verified answer: header ‖ the request's key id ‖ MAC of the header under the same key. */
function expectVerified(decision: NtpDecision, key: Pick<SymmetricKey, 'algorithm' | 'key'>, keyId: number, outcome: 'verified_static' | 'verified_ephemeral'): Respond {
  const out = expectRespond(decision);
  assert.equal(out.auth, 'mac');
  assert.equal(out.kiss, undefined);
  assert.deepEqual(out.mac, { outcome, keyId });
  const decoded = decodeNtpPacket(out.bytes);
  assert.ok(decoded.ok);
  assert.equal(decoded.value.macOffset, NTP_HEADER_LENGTH);
  assert.equal(decoded.value.header.mode, 4);
  assert.equal(decoded.value.header.stratum, 2);
  assert.deepEqual(decoded.value.header.originTimestamp, clientHeader().transmitTimestamp);
  const mac = decoded.value.mac;
  assert.ok(mac?.kind === 'mac');
  assert.equal(mac.keyId, keyId);
  assert.deepEqual(mac.digest, computeSymmetricMac(key, out.bytes.subarray(0, NTP_HEADER_LENGTH)), 'the response MAC verifies under the key');
  return out;
}

/** A refusal: the response header ‖ key id 0 (RFC 5905 §7.4), unauthenticated, with the outcome. */
function expectCryptoNak(decision: NtpDecision, outcome: string, keyId: number): void {
  const out = expectRespond(decision);
  assert.equal(out.kiss, 'CRYPTO_NAK');
  assert.equal(out.auth, 'none');
  assert.deepEqual(out.mac, { outcome, keyId });
  assert.equal(out.bytes.length, NTP_HEADER_LENGTH + 4);
  assert.equal(Buffer.from(out.bytes).readUInt32BE(NTP_HEADER_LENGTH), 0);
  assert.equal((out.bytes[0] as number) & 7, 4);
}

function expectDrop(decision: NtpDecision, reason: string): void {
  assert.equal(decision.kind, 'drop', `expected a drop (${reason}), got ${JSON.stringify(decision)}`);
  if (decision.kind === 'drop') assert.equal(decision.reason, reason, `detail: ${decision.detail ?? ''}`);
}

// --- static keys ----------------------------------------------------------------------------------------------

test('static MD5, SHA1 and AES128CMAC keys: verified, answered with a MAC under the same key, as long as the request', () => {
  const s = setup();
  for (const id of [1, 2, 3, 4]) {
    const request = macRequest(staticKey(id), id);
    const out = expectVerified(send(s, request), staticKey(id), id, 'verified_static');
    assert.equal(out.bytes.length, request.length);
  }
  // NTPv3 clients (ntpd 4 speaks v4, older ones and some appliances v3) get the same.
  const v3 = clientHeader({ version: 3 });
  const out = expectVerified(send(s, macRequest(staticKey(3), 3, { header: v3 })), staticKey(3), 3, 'verified_static');
  assert.equal(((out.bytes[0] as number) >> 3) & 7, 3, 'the response keeps the version');
});

test('a MAC after extension fields covers them too (RFC 7822 §3); the answer is shorter than the request', () => {
  const s = setup();
  const field = encodeExtensionField(0x2222, random(24));
  const request = macRequest(staticKey(2), 2, { fields: [field] });
  const out = expectVerified(send(s, request), staticKey(2), 2, 'verified_static');
  assert.ok(out.bytes.length < request.length);
  // The field is covered: changing it breaks the MAC.
  const tampered = request.slice();
  tampered[NTP_HEADER_LENGTH + 10]! ^= 1;
  expectCryptoNak(send(s, tampered), 'bad_mac', 2);
});

test('tampered MAC, tampered header, another key id, a key of the other algorithm: bad_mac', () => {
  const s = setup();
  for (const id of [1, 2, 3]) {
    const request = macRequest(staticKey(id), id);
    const badDigest = request.slice();
    badDigest[request.length - 1]! ^= 0x01;
    expectCryptoNak(send(s, badDigest), 'bad_mac', id);
    const badHeader = request.slice();
    badHeader[40]! ^= 0x80; // the transmit timestamp
    expectCryptoNak(send(s, badHeader), 'bad_mac', id);
  }
  // MD5 key 1's MAC labelled as MD5 key 4 (same length), and as AES key 3 (same length, other algorithm).
  const md5 = macRequest(staticKey(1), 1);
  for (const id of [4, 3]) {
    const relabelled = md5.slice();
    relabelled.set(u32(id), NTP_HEADER_LENGTH);
    expectCryptoNak(send(s, relabelled), 'bad_mac', id);
  }
  // An MD5 digest (16 octets) presented under SHA1 key 2 (20): the length alone refuses it.
  const asSha1 = md5.slice();
  asSha1.set(u32(2), NTP_HEADER_LENGTH);
  expectCryptoNak(send(s, asSha1), 'bad_mac', 2);
});

test('truncated MACs: a 12-octet digest is not a MAC at all (malformed); SHA1 cut to 16 octets is bad_mac', () => {
  const s = setup();
  const sha1 = macRequest(staticKey(2), 2);
  const cut16 = sha1.subarray(0, NTP_HEADER_LENGTH + 4 + 16);
  expectCryptoNak(send(s, cut16), 'bad_mac', 2);
  const md5 = macRequest(staticKey(1), 1);
  const cut12 = md5.subarray(0, NTP_HEADER_LENGTH + 4 + 12);
  expectDrop(send(s, cut12), 'malformed');
  assert.equal(s.resolves, 1, 'only the decodable MAC reached the keys');
});

test('unknown static key ids, key id 0 and ids above 65535: unknown_key', () => {
  const s = setup();
  for (const id of [5, 99, 32767, 0, 65536, 0xffff_ffff]) expectCryptoNak(send(s, macRequest(staticKey(1), id)), 'unknown_key', id);
});

test('without a resolver every MAC gets a crypto-NAK as unknown_key; without ephemeral keys so do ephemeral ids', () => {
  const none = setup({ resolver: 'none' });
  expectCryptoNak(send(none, macRequest(staticKey(1), 1)), 'unknown_key', 1);
  expectCryptoNak(send(none, macRequest(staticKey(3), 40000)), 'unknown_key', 40000);
  const staticOnly = setup({ resolver: 'static-only' });
  expectVerified(send(staticOnly, macRequest(staticKey(3), 3)), staticKey(3), 3, 'verified_static');
  const issued = staticOnly.eks.issue(40000, START);
  expectCryptoNak(send(staticOnly, macRequest(ephemeralKey(issued.key), 40000)), 'unknown_key', 40000);
});

test('a crypto-NAK from a client is answered with a crypto-NAK, as before, and names no key', () => {
  const s = setup();
  const request = new Uint8Array(Buffer.concat([encodeNtpHeader(clientHeader()), u32(0)]));
  const out = expectRespond(send(s, request));
  assert.equal(out.kiss, 'CRYPTO_NAK');
  assert.equal(out.auth, 'none');
  assert.equal(out.mac, undefined);
  assert.equal(out.bytes.length, NTP_HEADER_LENGTH + 4);
  assert.equal(s.resolves, 0);
});

test('plain requests never reach the keys and carry no MAC outcome', () => {
  const s = setup();
  const out = expectRespond(send(s, encodeNtpHeader(clientHeader())));
  assert.equal(out.auth, 'none');
  assert.equal(out.mac, undefined);
  assert.equal(s.resolves, 0);
});

// --- ephemeral keys ---------------------------------------------------------------------------------------------

test('ephemeral keys: an issued key verifies, and the response MAC verifies under it', () => {
  const s = setup();
  const issued = s.eks.issue(40000, START);
  const request = macRequest(ephemeralKey(issued.key), 40000);
  const out = expectVerified(send(s, request), ephemeralKey(issued.key), 40000, 'verified_ephemeral');
  assert.equal(out.bytes.length, request.length);
  // Any id of the range works once issued; the key is derived, not looked up in a table.
  for (const id of [32768, 65535]) {
    const key = s.eks.issue(id, START).key;
    expectVerified(send(s, macRequest(ephemeralKey(key), id)), ephemeralKey(key), id, 'verified_ephemeral');
  }
});

test('ephemeral keys: a key of an older generation still in the ring and not expired verifies after rotations', () => {
  const s = setup();
  const issued = s.eks.issue(41000, START);
  s.now = START + DAY;
  s.ring.rotate(s.now, random, POLICY);
  s.now = START + DAY + HOUR;
  expectVerified(send(s, macRequest(ephemeralKey(issued.key), 41000)), ephemeralKey(issued.key), 41000, 'verified_ephemeral');
  // A key issued under the new generation verifies too (newest first).
  const renewed = s.eks.issue(41000, s.now);
  expectVerified(send(s, macRequest(ephemeralKey(renewed.key), 41000)), ephemeralKey(renewed.key), 41000, 'verified_ephemeral');
});

test('ephemeral keys: expired at generation creation + lifetime, exactly', () => {
  const s = setup();
  const issued = s.eks.issue(42000, START);
  assert.equal(issued.expiryMicros, START + LIFETIME);
  s.now = issued.expiryMicros - 1;
  expectVerified(send(s, macRequest(ephemeralKey(issued.key), 42000)), ephemeralKey(issued.key), 42000, 'verified_ephemeral');
  s.now = issued.expiryMicros;
  expectCryptoNak(send(s, macRequest(ephemeralKey(issued.key), 42000)), 'expired', 42000);
  // Still expired (not bad_mac) after a rotation, while its generation is in the ring ...
  s.ring.rotate(s.now, random, POLICY);
  expectCryptoNak(send(s, macRequest(ephemeralKey(issued.key), 42000)), 'expired', 42000);
  // ... and a forged MAC under the same id is bad_mac, not expired.
  const forged = macRequest(ephemeralKey(random(16)), 42000);
  expectCryptoNak(send(s, forged), 'bad_mac', 42000);
});

test('ephemeral keys: a revoked id is refused at once, whatever the MAC', () => {
  const s = setup();
  const issued = s.eks.issue(43000, START);
  const request = macRequest(ephemeralKey(issued.key), 43000);
  expectVerified(send(s, request), ephemeralKey(issued.key), 43000, 'verified_ephemeral');
  s.revoked.add(43000);
  expectCryptoNak(send(s, request), 'revoked', 43000);
  expectCryptoNak(send(s, macRequest(ephemeralKey(random(16)), 43000)), 'revoked', 43000);
});

test('ephemeral keys: once the generation has left the ring the key cannot be told from a forgery: bad_mac', () => {
  const s = setup();
  const first = s.ring.current;
  const issued = s.eks.issue(44000, START);
  const policy: KeyRingPolicy = { rotationMicros: DAY, keysKept: 1 };
  s.ring.rotate(START + DAY, random, policy);
  s.ring.rotate(START + 2 * DAY, random, policy);
  assert.equal(s.ring.get(first.id), undefined);
  s.now = START + 2 * DAY;
  expectCryptoNak(send(s, macRequest(ephemeralKey(issued.key), 44000)), 'bad_mac', 44000);
  // A key derived by hand from the dropped master key is no better.
  expectCryptoNak(send(s, macRequest(ephemeralKey(deriveEphemeralKey(first, 44000)), 44000)), 'bad_mac', 44000);
});

test('ephemeral keys: the MAC must be AES-128-CMAC; a SHA1-sized digest or an MD5 MAC with the key is bad_mac', () => {
  const s = setup();
  const issued = s.eks.issue(45000, START);
  expectCryptoNak(send(s, macRequest({ algorithm: 'SHA1', key: issued.key }, 45000)), 'bad_mac', 45000);
  expectCryptoNak(send(s, macRequest({ algorithm: 'MD5', key: issued.key }, 45000)), 'bad_mac', 45000);
});

test('ephemeral keys: forgeries under random ids cost derivations but cache nothing; a client key stays cached', () => {
  const s = setup();
  // A full default ring: keys-kept 7, so 8 generations, two of them live.
  const policy: KeyRingPolicy = { rotationMicros: DAY, keysKept: 7 };
  for (let day = 1; day <= 7; day++) s.ring.rotate(START + day * DAY, random, policy);
  assert.equal(s.ring.keys.length, 8);
  s.now = START + 7 * DAY + HOUR;
  const issued = s.eks.issue(47000, s.now);
  const request = macRequest(ephemeralKey(issued.key), 47000);
  expectVerified(send(s, request), ephemeralKey(issued.key), 47000, 'verified_ephemeral');
  const cached = s.eks.cachedKeys;
  assert.equal(cached, 1);
  let derived = s.eks.derivedKeys;
  // One forgery under a fresh id: each of the 8 generations derived once (2 live, then 6 expired), never more.
  expectCryptoNak(send(s, macRequest(ephemeralKey(random(16)), 47001)), 'bad_mac', 47001);
  assert.equal(s.eks.derivedKeys - derived, 8);
  derived = s.eks.derivedKeys;
  for (let i = 0; i < 1000; i++) {
    const id = 32768 + (randomBytes(2).readUInt16BE(0) % 32768);
    const decision = expectRespond(send(s, macRequest(ephemeralKey(random(16)), id)));
    assert.equal(decision.mac?.outcome, 'bad_mac');
  }
  assert.ok(s.eks.derivedKeys - derived <= 8000, `${s.eks.derivedKeys - derived} derivations for 1000 forgeries`);
  assert.equal(s.eks.cachedKeys, cached, 'no forgery entered the cache');
  derived = s.eks.derivedKeys;
  expectVerified(send(s, request), ephemeralKey(issued.key), 47000, 'verified_ephemeral');
  assert.equal(s.eks.derivedKeys, derived, "the client's key is still cached: verified without a derivation");
});

// --- NTS + MAC, rate limiting ---------------------------------------------------------------------------------

test('NTS extension fields and a MAC in one request are dropped (nts_and_mac), never answered', () => {
  const s = setup();
  const keys = { aead: AEAD_AES_SIV_CMAC_256, c2s: random(32), s2c: random(32) };
  const cookie = sealCookie(s.ring, keys, random(COOKIE_NONCE_LENGTH));
  const nts = buildNtsRequest({ header: clientHeader(), uniqueIdentifier: random(32), cookie, placeholders: 1, c2s: createAead(keys.aead, keys.c2s), nonce: random(NTS_NONCE_LENGTH) });
  assert.equal(expectRespond(send(s, nts)).auth, 'nts', 'the NTS request alone is fine');
  const issued = s.eks.issue(46000, START);
  for (const [key, id] of [
    [staticKey(1), 1],
    [staticKey(2), 2],
    [ephemeralKey(issued.key), 46000],
  ] as const) {
    const withMac = new Uint8Array(Buffer.concat([nts, u32(id), computeSymmetricMac(key, nts)]));
    expectDrop(send(s, withMac), 'nts_and_mac');
  }
  assert.equal(s.resolves, 0, 'no key was even looked up');
  // A truncated NTS request whose tail happens to be MAC-sized stays malformed.
  expectDrop(send(s, nts.subarray(0, nts.length - 20)), 'malformed');
});

test('rate limiting runs before any MAC work: over the limit, no key is resolved', () => {
  const s = setup({ rateLimit: { enabled: true, intervalMicros: 1_000_000, burst: 2, kod: true } });
  const request = macRequest(staticKey(3), 3);
  for (let i = 0; i < 2; i++) expectVerified(send(s, request), staticKey(3), 3, 'verified_static');
  assert.equal(s.resolves, 2);
  const kod = expectRespond(send(s, request));
  assert.equal(kod.kiss, 'RATE');
  assert.equal(kod.mac, undefined);
  expectDrop(send(s, request), 'rate_limited');
  assert.equal(s.resolves, 2);
});

// --- resolver and keys-file checks ----------------------------------------------------------------------------

test('staticMacKeys: ids 1..32767 only; the first key in the ephemeral range is named', () => {
  const good = staticMacKeys(STATIC_KEYS.values());
  assert.ok(good.ok);
  assert.deepEqual([...good.value.keys()].sort((a, b) => a - b), [1, 2, 3, 4]);
  assert.ok(good.value.get(2) instanceof PreparedMac);
  assert.equal(good.value.get(2)?.algorithm, 'SHA1');
  const md5 = (keyId: number): SymmetricKey => ({ keyId, algorithm: 'MD5', key: Uint8Array.of(1, 2, 3) });
  const bad = staticMacKeys([md5(1), md5(32767), md5(40000), md5(32768)]);
  assert.ok(!bad.ok);
  assert.equal(bad.error.code, 'NTP_KEYS_EPHEMERAL_RANGE');
  assert.match(bad.error.message, /\b40000\b/);
  const zero = staticMacKeys([md5(0)]);
  assert.ok(!zero.ok && zero.error.code === 'NTP_KEYS_KEY_ID_RANGE');
  const shortAes = staticMacKeys([{ keyId: 5, algorithm: 'AES128CMAC', key: new Uint8Array(8) }]);
  assert.ok(!shortAes.ok && shortAes.error.code === 'MAC_BAD_KEY_LENGTH');
  // The keys-file parser accepts ids up to 65535 (NTPsec's limit); this is where the ephemeral range is kept free.
  const file = parseKeysFile('40000 AES128CMAC 000102030405060708090a0b0c0d0e0f');
  assert.ok(file.ok);
  const fromFile = staticMacKeys(file.value.keys.values());
  assert.ok(!fromFile.ok && fromFile.error.code === 'NTP_KEYS_EPHEMERAL_RANGE');
});

test('StaticAndEphemeralKeys: routes by id range; refuses static keys in the ephemeral range', () => {
  const ring = KeyRing.create(START, random);
  const revoked = new Set([50000]);
  const eks = new EphemeralKeys({ keyRing: () => ring, lifetimeMicros: () => LIFETIME, isRevoked: (id) => revoked.has(id) });
  const statics = staticMacKeys([staticKey(1)]);
  assert.ok(statics.ok);
  const keys = new StaticAndEphemeralKeys({ static: statics.value, ephemeral: eks });
  const one = keys.resolve(1, START);
  assert.equal(one.kind, 'static');
  assert.equal(one.kind === 'static' && one.key.keyId, 1);
  assert.equal(keys.resolve(1, START + 1), one, 'built once: resolving a static key allocates nothing');
  assert.deepEqual(keys.resolve(2, START), { kind: 'refused', reason: 'unknown_key' });
  // Every ephemeral id goes to the verifier, which judges revocation, expiry and the MAC itself; nothing is derived here.
  const eph = keys.resolve(40000, START);
  assert.ok(eph.kind === 'ephemeral' && eph.verifier === eks);
  assert.equal(keys.resolve(50000, START), eph);
  assert.equal(eks.derivedKeys, 0);
  const issued = eks.issue(40000, START);
  const digest = computeSymmetricMac(ephemeralKey(issued.key), Uint8Array.of(1, 2, 3));
  assert.equal(eph.verifier.verify(40000, Uint8Array.of(1, 2, 3), digest, START).outcome, 'verified');
  assert.equal(eph.verifier.verify(50000, Uint8Array.of(1, 2, 3), digest, START).outcome, 'revoked');
  assert.deepEqual(keys.resolve(70000, START), { kind: 'refused', reason: 'unknown_key' });
  assert.deepEqual(new StaticAndEphemeralKeys().resolve(40000, START), { kind: 'refused', reason: 'unknown_key' });
  const misfiled = new Map([[40000, new PreparedMac({ keyId: 40000, algorithm: 'MD5', key: Uint8Array.of(1) })]]);
  assert.throws(() => new StaticAndEphemeralKeys({ static: misfiled }), /ephemeral/);
});

// --- fuzzing ----------------------------------------------------------------------------------------------------

test('fuzz: random bytes appended as a MAC to a valid header never throw, never verify, never amplify', () => {
  const s = setup();
  s.eks.issue(40000, START); // issuing stores nothing; the id is as live as any other
  const header = encodeNtpHeader(clientHeader());
  const keyId = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 32767, 32768, 40000, 65535, 65536), fc.nat({ max: 0xffff_ffff }));
  const trailer = fc.oneof(
    // Well-formed MAC lengths: a key id and a 16- or 20-octet digest.
    fc.tuple(keyId, fc.constantFrom(16, 20)).chain(([id, length]) => fc.uint8Array({ minLength: length, maxLength: length }).map((digest) => Uint8Array.from([...u32(id), ...digest]))),
    // Anything at all.
    fc.uint8Array({ maxLength: 40 }),
  );
  fc.assert(
    fc.property(trailer, fc.integer({ min: 1, max: 4 }), (bytes, version) => {
      const head = Uint8Array.from(header);
      head[0] = (version << 3) | 3;
      const request = Uint8Array.from([...head, ...bytes]);
      const decision = send(s, request);
      if (decision.kind === 'drop') {
        assert.equal(decision.reason, 'malformed');
        return;
      }
      assert.notEqual(decision.auth, 'mac');
      assert.ok(decision.mac === undefined || !decision.mac.outcome.startsWith('verified'), JSON.stringify(decision.mac));
      assert.ok(decision.bytes.length <= request.length);
    }),
    { numRuns: 2000 },
  );
});
