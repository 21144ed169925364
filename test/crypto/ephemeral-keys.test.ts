// Ephemeral MAC keys (docs/eks.md §3-§5): the HKDF derivation (Extract cached per generation, Expand per id)
// pinned by node's hkdfSync, an independent HKDF and a fixed vector; the renewal proof; and EphemeralKeys'
// lazy verification, its cache (only keys that verified enter it) and proof checks over a rotating key ring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import {
  EKS_AES128CMAC,
  EPHEMERAL_KEY_ID_MAX,
  EPHEMERAL_KEY_ID_MIN,
  EPHEMERAL_KEY_LENGTH,
  EphemeralKeys,
  type EphemeralMacCheck,
  deriveEphemeralKey,
  ephemeralExpiryMicros,
  ephemeralPrk,
  expandEphemeralKey,
  isEphemeralKeyId,
  renewalProof,
} from '../../src/crypto/ephemeral-keys.js';
import { KeyRing, parseKeyRing, type KeyRingPolicy, type MasterKey } from '../../src/crypto/keyring.js';
import { PreparedMac } from '../../src/crypto/symmetric-mac.js';
import { UsageError } from '../../src/proto/errors.js';
import { hex, toHex } from './helpers.js';

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const HOUR = 3_600_000_000;
const DAY = 24 * HOUR;
const T0 = 1_750_000_000_000_000;
const POLICY: KeyRingPolicy = { rotationMicros: DAY, keysKept: 2 };

/** RFC 5869 §2.2-2.3 written out with HMAC-SHA256: extract with a salt of HashLen zeros, then T(1)..T(n). */
function referenceHkdf(ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const prk = createHmac('sha256', Buffer.alloc(32)).update(ikm).digest();
  const out: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    previous = createHmac('sha256', prk).update(previous).update(info).update(Uint8Array.of(i)).digest();
    out.push(previous);
  }
  return Uint8Array.from(Buffer.concat(out).subarray(0, length));
}

function referenceInfo(masterId: number, keyId: number, algorithm: number): Uint8Array {
  const info = Buffer.alloc(13 + 10);
  info.write('ntptsd eks v1', 0, 'ascii');
  info.writeUInt32BE(masterId, 13);
  info.writeUInt32BE(keyId, 17);
  info.writeUInt16BE(algorithm, 21);
  return Uint8Array.from(info);
}

const FIXED_MASTER: MasterKey = { id: 0x0102_0304, key: Uint8Array.from({ length: 32 }, (_, i) => i), createdAtMicros: T0 };

function master(id: number, createdAtMicros: number): MasterKey {
  return { id, key: random(32), createdAtMicros };
}

/** The MAC a client holding key `keyId` of generation `m` computes. */
function clientMac(m: MasterKey, keyId: number): PreparedMac {
  return new PreparedMac({ keyId, algorithm: 'AES128CMAC', key: deriveEphemeralKey(m, keyId) });
}

const MESSAGE = new TextEncoder().encode('forty-eight octets of an NTP client request...');

/** node's own HKDF (RFC 5869), the reference every derivation must equal byte for byte. */
function nodeHkdf(m: MasterKey, keyId: number, algorithm = EKS_AES128CMAC): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', m.key, new Uint8Array(0), referenceInfo(m.id, keyId, algorithm), 16));
}

function setup(keys: MasterKey[], options: { lifetime?: number; revoked?: Set<number>; cacheSize?: number } = {}) {
  const state = { ring: KeyRing.fromKeys(keys), lifetime: options.lifetime ?? 2 * DAY, revoked: options.revoked ?? new Set<number>() };
  const eks = new EphemeralKeys({
    keyRing: () => state.ring,
    lifetimeMicros: () => state.lifetime,
    isRevoked: (id) => state.revoked.has(id),
    ...(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize }),
  });
  return { state, eks };
}

/** What `verify` says of the MAC a client holding key `keyId` of generation `m` sends. */
function verifyHeld(eks: EphemeralKeys, m: MasterKey, keyId: number, now: number): EphemeralMacCheck {
  return eks.verify(keyId, MESSAGE, clientMac(m, keyId).compute(MESSAGE), now);
}

/** The outcome, with the generation when verified: `verified 33`, `expired`, `bad_mac`. */
function outcomeOf(check: EphemeralMacCheck): string {
  return check.outcome === 'verified' ? `verified ${check.generation}` : check.outcome;
}

/** Derivations `f` caused. */
function derivations(eks: EphemeralKeys, f: () => void): number {
  const before = eks.derivedKeys;
  f();
  return eks.derivedKeys - before;
}

const forgery = (): Uint8Array => random(16);
const randomEphemeralId = (): number => EPHEMERAL_KEY_ID_MIN + (randomBytes(2).readUInt16BE(0) % 32768);

// --- constants and derivation ---------------------------------------------------------------------------------

test('the ephemeral key id range is 32768..65535 (docs/eks.md §3)', () => {
  assert.equal(EPHEMERAL_KEY_ID_MIN, 32768);
  assert.equal(EPHEMERAL_KEY_ID_MAX, 65535);
  assert.equal(EKS_AES128CMAC, 1);
  assert.equal(EPHEMERAL_KEY_LENGTH, 16);
  for (const id of [32768, 40000, 65535]) assert.ok(isEphemeralKeyId(id), String(id));
  for (const id of [0, 1, 32767, 65536, 0xffff_ffff, -32768, 32768.5, Number.NaN]) assert.ok(!isEphemeralKeyId(id), String(id));
});

test('KDF: HKDF-SHA256 with the docs/eks.md §4 info, pinned by a fixed vector and an independent HKDF', () => {
  const vectors: Array<[MasterKey, number, string]> = [
    [FIXED_MASTER, 32768, 'dc7583135782023b4c331d9ea9b3edf5'],
    [{ ...FIXED_MASTER, id: 0xfedc_ba98 }, 65535, '485f245a37e421db5010f54cf542ffa3'],
  ];
  for (const [m, keyId, expected] of vectors) {
    const key = deriveEphemeralKey(m, keyId);
    assert.equal(key.length, EPHEMERAL_KEY_LENGTH);
    assert.equal(toHex(key), expected);
    assert.deepEqual(key, referenceHkdf(m.key, referenceInfo(m.id, keyId, EKS_AES128CMAC), 16));
  }
  // Random masters, ids and algorithms agree with the reference too.
  for (let i = 0; i < 50; i++) {
    const m = master(randomBytes(4).readUInt32BE(0), T0);
    const keyId = EPHEMERAL_KEY_ID_MIN + randomBytes(2).readUInt16BE(0) % 32768;
    const algorithm = randomBytes(2).readUInt16BE(0);
    assert.deepEqual(deriveEphemeralKey(m, keyId, algorithm), referenceHkdf(m.key, referenceInfo(m.id, keyId, algorithm), 16));
  }
});

test('KDF: Extract once per generation, Expand per id, equal to node\'s hkdfSync byte for byte', () => {
  for (const [m, keyId] of [
    [FIXED_MASTER, 32768],
    [{ ...FIXED_MASTER, id: 0 }, 65535],
    [{ ...FIXED_MASTER, id: 0xffff_ffff }, 40000],
  ] as const) {
    assert.deepEqual(deriveEphemeralKey(m, keyId), nodeHkdf(m, keyId));
  }
  for (let i = 0; i < 50; i++) {
    const m = master(randomBytes(4).readUInt32BE(0), T0);
    // PRK = HMAC-SHA256(salt = 32 zero octets, IKM = master key) (RFC 5869 §2.2: an empty salt is HashLen zeros).
    const prk = ephemeralPrk(m);
    assert.deepEqual(prk, new Uint8Array(createHmac('sha256', Buffer.alloc(32)).update(m.key).digest()));
    assert.deepEqual(prk, new Uint8Array(createHmac('sha256', Buffer.alloc(0)).update(m.key).digest()), 'HMAC pads an empty key with zeros too');
    // One PRK serves every id and algorithm of the generation.
    for (let j = 0; j < 5; j++) {
      const keyId = randomEphemeralId();
      const algorithm = j === 0 ? EKS_AES128CMAC : randomBytes(2).readUInt16BE(0);
      const expected = nodeHkdf(m, keyId, algorithm);
      assert.deepEqual(expandEphemeralKey(prk, m.id, keyId, algorithm), expected);
      assert.deepEqual(deriveEphemeralKey(m, keyId, algorithm), expected);
    }
  }
  // What EphemeralKeys issues and verifies with (its PRKs cached per generation) is the same key.
  const keys = [master(101, T0), master(202, T0 + DAY)];
  const { eks } = setup(keys);
  for (let i = 0; i < 20; i++) {
    const keyId = randomEphemeralId();
    const issued = eks.issue(keyId, T0 + DAY);
    assert.deepEqual(issued.key, nodeHkdf(keys[1] as MasterKey, keyId));
    const digest = new PreparedMac({ keyId, algorithm: 'AES128CMAC', key: nodeHkdf(keys[0] as MasterKey, keyId) }).compute(MESSAGE);
    assert.equal(outcomeOf(eks.verify(keyId, MESSAGE, digest, T0 + DAY)), 'verified 101');
  }
});

test('KDF: deterministic; another master key, master id, key id or algorithm gives another key', () => {
  const base = toHex(deriveEphemeralKey(FIXED_MASTER, 40000, 1));
  assert.equal(toHex(deriveEphemeralKey({ ...FIXED_MASTER, createdAtMicros: 0 }, 40000, 1)), base, 'the creation time does not enter');
  const others = [
    deriveEphemeralKey({ ...FIXED_MASTER, key: Uint8Array.from({ length: 32 }, (_, i) => 31 - i) }, 40000, 1),
    deriveEphemeralKey({ ...FIXED_MASTER, id: FIXED_MASTER.id + 1 }, 40000, 1),
    deriveEphemeralKey(FIXED_MASTER, 40001, 1),
    deriveEphemeralKey(FIXED_MASTER, 40000, 2),
    deriveEphemeralKey(FIXED_MASTER, 40000, 256),
  ].map(toHex);
  assert.equal(new Set([base, ...others]).size, 1 + others.length);
});

test('KDF: ids outside the ephemeral range and algorithms that are not u16 are caller errors', () => {
  for (const id of [0, 1, 32767, 65536, 1.5]) {
    assert.throws(() => deriveEphemeralKey(FIXED_MASTER, id), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_KEY_ID', String(id));
  }
  for (const algorithm of [-1, 65536, 0.5]) {
    assert.throws(() => deriveEphemeralKey(FIXED_MASTER, 32768, algorithm), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_ALGORITHM');
  }
  const prk = ephemeralPrk(FIXED_MASTER);
  assert.throws(() => expandEphemeralKey(prk, FIXED_MASTER.id, 32767), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_KEY_ID');
  assert.throws(() => expandEphemeralKey(prk, FIXED_MASTER.id, 32768, 65536), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_ALGORITHM');
  for (const id of [-1, 2 ** 32, 0.5]) {
    assert.throws(() => expandEphemeralKey(prk, id, 32768), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_MASTER');
    assert.throws(() => ephemeralPrk({ ...FIXED_MASTER, id }), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_MASTER');
  }
});

test('renewal proof = AES-128-CMAC(key, exported) (RFC 4493 §4 example 2); keys must be 16 octets', () => {
  const proof = renewalProof(hex('2b7e1516 28aed2a6 abf71588 09cf4f3c'), hex('6bc1bee2 2e409f96 e93d7e11 7393172a'));
  assert.equal(toHex(proof), '070a16b46b4d4144f79bdd9dd04a287c');
  assert.throws(() => renewalProof(new Uint8Array(32), new Uint8Array(16)), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_KEY_LENGTH');
});

test('expiry = the generation creation time + lifetime (docs/eks.md §4)', () => {
  assert.equal(ephemeralExpiryMicros(FIXED_MASTER, 2 * DAY), T0 + 2 * DAY);
});

// --- verify -----------------------------------------------------------------------------------------------------

test('verify: a key of any live generation verifies, reported with its generation and the key to answer with', () => {
  const keys = [master(11, T0), master(22, T0 + DAY), master(33, T0 + 2 * DAY)];
  const { eks } = setup(keys, { lifetime: 10 * DAY });
  const now = T0 + 2 * DAY + HOUR;
  for (const m of keys) {
    const check = verifyHeld(eks, m, 40000, now);
    assert.equal(outcomeOf(check), `verified ${m.id}`);
    assert.ok(check.outcome === 'verified');
    assert.equal(check.mac.keyId, 40000);
    assert.equal(check.mac.algorithm, 'AES128CMAC');
    // The key handed back is the client's: the response MAC it computes verifies at the client.
    assert.deepEqual(check.mac.compute(MESSAGE), clientMac(m, 40000).compute(MESSAGE));
  }
  // Another id's key, a key from no generation, a tampered message: bad_mac.
  assert.equal(eks.verify(40001, MESSAGE, clientMac(keys[2] as MasterKey, 40000).compute(MESSAGE), now).outcome, 'bad_mac');
  assert.equal(verifyHeld(eks, master(33, T0), 40000, now).outcome, 'bad_mac');
  assert.equal(eks.verify(40000, MESSAGE.subarray(1), clientMac(keys[2] as MasterKey, 40000).compute(MESSAGE), now).outcome, 'bad_mac');
});

test('verify: a generation is live until creation + lifetime, exclusive; then expired while in the ring', () => {
  const lifetime = 2 * DAY;
  const keys = [master(1, T0), master(2, T0 + DAY), master(3, T0 + 2 * DAY)];
  const { eks } = setup(keys, { lifetime });
  const at = (now: number) => keys.map((m) => outcomeOf(verifyHeld(eks, m, 50000, now)));
  assert.deepEqual(at(T0 + 2 * DAY - HOUR), ['verified 1', 'verified 2', 'verified 3']);
  assert.deepEqual(at(T0 + lifetime - 1), ['verified 1', 'verified 2', 'verified 3']);
  assert.deepEqual(at(T0 + lifetime), ['expired', 'verified 2', 'verified 3']);
  assert.deepEqual(at(T0 + DAY + lifetime - 1), ['expired', 'verified 2', 'verified 3']);
  assert.deepEqual(at(T0 + DAY + lifetime), ['expired', 'expired', 'verified 3']);
  assert.deepEqual(at(T0 + 10 * DAY), ['expired', 'expired', 'expired']);
  // A forgery is bad_mac whenever it is tried.
  for (const now of [T0 + 2 * DAY, T0 + 10 * DAY]) assert.equal(eks.verify(50000, MESSAGE, forgery(), now).outcome, 'bad_mac');
});

test('verify: the lifetime is read per call (a reload applies at once)', () => {
  const keys = [master(1, T0)];
  const { state, eks } = setup(keys, { lifetime: DAY });
  assert.equal(outcomeOf(verifyHeld(eks, keys[0] as MasterKey, 32768, T0 + DAY)), 'expired');
  state.lifetime = 2 * DAY;
  assert.equal(outcomeOf(verifyHeld(eks, keys[0] as MasterKey, 32768, T0 + DAY)), 'verified 1');
});

test('verify: a revoked id is refused, and so is an id outside the ephemeral range, before any derivation', () => {
  const revoked = new Set([40000]);
  const keys = [master(1, T0)];
  const { eks } = setup(keys, { revoked });
  const m = keys[0] as MasterKey;
  assert.equal(derivations(eks, () => assert.equal(verifyHeld(eks, m, 40000, T0).outcome, 'revoked')), 0);
  assert.equal(outcomeOf(verifyHeld(eks, m, 40001, T0)), 'verified 1');
  for (const id of [0, 1, 32767, 65536]) assert.equal(eks.verify(id, MESSAGE, forgery(), T0).outcome, 'not_ephemeral');
  revoked.delete(40000);
  assert.equal(outcomeOf(verifyHeld(eks, m, 40000, T0)), 'verified 1', 'revocation is asked per call');
});

test('verify: keys are derived lazily, live generations newest first, expired ones only when no live one verified', () => {
  // Four generations: two live (44, 33), two expired (22, 11).
  const keys = [master(11, T0), master(22, T0 + DAY), master(33, T0 + 2 * DAY), master(44, T0 + 3 * DAY)];
  const { eks } = setup(keys, { lifetime: 2 * DAY });
  const now = T0 + 3 * DAY + HOUR;
  const [g11, g22, g33, g44] = keys as [MasterKey, MasterKey, MasterKey, MasterKey];
  // The current generation's key: one derivation, then none (cached).
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, g44, 40000, now)), 'verified 44')), 1);
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, g44, 40000, now)), 'verified 44')), 0);
  // The previous generation's key: the current one is derived and fails, then this one; once cached, it is tried
  // first and the current one is not derived again.
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, g33, 40001, now)), 'verified 33')), 2);
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, g33, 40001, now)), 'verified 33')), 0);
  // An expired key: both live generations, then the expired ones newest first until it verifies.
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, g22, 40002, now)), 'expired')), 3);
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, g11, 40003, now)), 'expired')), 4);
  // A forgery: each generation derived once, none more.
  assert.equal(derivations(eks, () => assert.equal(eks.verify(40004, MESSAGE, forgery(), now).outcome, 'bad_mac')), 4);
  // A forgery under an id whose key is cached: the cached key is tried, the other three generations derived.
  assert.equal(derivations(eks, () => assert.equal(eks.verify(40000, MESSAGE, forgery(), now).outcome, 'bad_mac')), 3);
  // A digest that cannot be an AES-128-CMAC (not 16 octets) costs nothing.
  assert.equal(derivations(eks, () => assert.equal(eks.verify(40005, MESSAGE, random(20), now).outcome, 'bad_mac')), 0);
  assert.equal(derivations(eks, () => assert.equal(eks.verify(40005, MESSAGE, new Uint8Array(0), now).outcome, 'bad_mac')), 0);
});

test('verify: only keys that verified are cached; 1000 random-id forgeries evict no client key and cache nothing', () => {
  const keys = [master(1, T0 - 3 * DAY), master(2, T0 - 2 * DAY), master(3, T0 - DAY), master(4, T0)];
  const { eks } = setup(keys, { lifetime: 2 * DAY, cacheSize: 64 });
  const now = T0 + HOUR;
  const client = keys[3] as MasterKey;
  assert.equal(outcomeOf(verifyHeld(eks, client, 50000, now)), 'verified 4');
  assert.equal(eks.cachedKeys, 1);
  const derived = derivations(eks, () => {
    for (let i = 0; i < 1000; i++) assert.equal(eks.verify(randomEphemeralId(), MESSAGE, forgery(), now).outcome, 'bad_mac');
  });
  assert.ok(derived <= 1000 * keys.length, `${derived} derivations: at most one per generation and request`);
  assert.ok(derived >= 1000 * (keys.length - 1), `${derived} derivations`);
  assert.equal(eks.cachedKeys, 1, 'failed derivations are not cached');
  assert.equal(derivations(eks, () => assert.equal(outcomeOf(verifyHeld(eks, client, 50000, now)), 'verified 4')), 0, 'the client key is still cached');
});

test('verify: keys of a generation rotated out of the ring are never used again, even from the cache', () => {
  const ring = KeyRing.create(T0, random);
  const state = { ring };
  const eks = new EphemeralKeys({ keyRing: () => state.ring, lifetimeMicros: () => 3 * DAY, isRevoked: () => false });
  const first = ring.current;
  const held = clientMac(first, 45000).compute(MESSAGE);
  assert.equal(eks.verify(45000, MESSAGE, held, T0).outcome, 'verified');
  assert.equal(eks.cachedKeys, 1);
  const policy: KeyRingPolicy = { rotationMicros: DAY, keysKept: 1 };
  // In place (KeyRing.rotate) ...
  ring.rotate(T0 + DAY, random, policy);
  assert.equal(outcomeOf(eks.verify(45000, MESSAGE, held, T0 + DAY)), `verified ${first.id}`, 'still in the ring after one rotation');
  ring.rotate(T0 + 2 * DAY, random, policy);
  assert.equal(ring.get(first.id), undefined);
  assert.equal(eks.verify(45000, MESSAGE, held, T0 + 2 * DAY).outcome, 'bad_mac', 'rotated out');
  assert.equal(eks.cachedKeys, 0, "the rotated-out generation's key is forgotten");
  // ... and as the key ring store does it: a new ring object, parsed from the rotated copy.
  const second = state.ring.current;
  const heldSecond = clientMac(second, 45000).compute(MESSAGE);
  assert.equal(eks.verify(45000, MESSAGE, heldSecond, T0 + 2 * DAY).outcome, 'verified');
  const copy = parseKeyRing(state.ring.serialize());
  assert.ok(copy.ok);
  copy.value.rotate(T0 + 3 * DAY, random, policy);
  state.ring = copy.value;
  assert.equal(
    derivations(eks, () => assert.equal(outcomeOf(eks.verify(45000, MESSAGE, heldSecond, T0 + 3 * DAY)), `verified ${second.id}`)),
    0,
    'the same master key in a new ring object still verifies, from the cache',
  );
  copy.value.rotate(T0 + 4 * DAY, random, policy);
  assert.equal(eks.verify(45000, MESSAGE, heldSecond, T0 + 4 * DAY).outcome, 'bad_mac');
  assert.equal(eks.cachedKeys, 0);
});

test('verify: a ring that reuses a master id with another key gets keys derived from the new key, not the cached ones', () => {
  const old = master(7, T0);
  const { state, eks } = setup([old]);
  const heldOld = clientMac(old, 33000).compute(MESSAGE);
  assert.equal(outcomeOf(eks.verify(33000, MESSAGE, heldOld, T0)), 'verified 7');
  assert.equal(eks.issue(33001, T0).key.length, 16); // the PRK of the old key is cached too
  const replacement = master(7, T0);
  state.ring = KeyRing.fromKeys([replacement]);
  assert.equal(eks.verify(33000, MESSAGE, heldOld, T0).outcome, 'bad_mac');
  assert.equal(outcomeOf(eks.verify(33000, MESSAGE, clientMac(replacement, 33000).compute(MESSAGE), T0)), 'verified 7');
  assert.deepEqual(eks.issue(33001, T0).key, nodeHkdf(replacement, 33001), 'no stale PRK');
});

test('verify: the cache is bounded (LRU) and answers stay right after eviction', () => {
  const keys = [master(1, T0), master(2, T0 + DAY)];
  const { eks } = setup(keys, { cacheSize: 5 });
  for (let id = 32768; id < 32768 + 40; id++) {
    for (const m of keys) assert.equal(outcomeOf(verifyHeld(eks, m, id, T0 + DAY)), `verified ${m.id}`);
    assert.ok(eks.cachedKeys <= 5, `${eks.cachedKeys} cached`);
  }
  assert.equal(eks.cachedKeys, 5);
  // The default bound is 8192 derived keys.
  const one = master(1, T0);
  const big = setup([one]).eks;
  for (let id = 32768; id < 32768 + 8300; id++) assert.equal(verifyHeld(big, one, id, T0).outcome, 'verified');
  assert.equal(big.cachedKeys, 8192);
  assert.throws(() => new EphemeralKeys({ keyRing: () => KeyRing.fromKeys(keys), lifetimeMicros: () => DAY, isRevoked: () => false, cacheSize: 0 }), UsageError);
});

test('verify: a recently used key survives eviction (least recently used goes first)', () => {
  const keys = [master(1, T0)];
  const m = keys[0] as MasterKey;
  const { eks } = setup(keys, { cacheSize: 3 });
  const hot = verifyHeld(eks, m, 60000, T0);
  assert.ok(hot.outcome === 'verified');
  for (let id = 32768; id < 32778; id++) {
    assert.equal(verifyHeld(eks, m, id, T0).outcome, 'verified');
    const again = verifyHeld(eks, m, 60000, T0);
    assert.equal(again, hot, 'the same answer and prepared key, from the cache');
  }
});

// --- renewal proofs and issue --------------------------------------------------------------------------------------

test('verifyProof: a proof under any generation still in the ring is accepted, expired ones too (docs/eks.md §5)', () => {
  const keys = [master(101, T0), master(202, T0 + DAY), master(303, T0 + 2 * DAY)];
  const { eks } = setup(keys, { lifetime: 2 * DAY });
  const exported = random(16);
  const now = T0 + 5 * DAY; // every generation has expired
  for (const m of keys) {
    const proof = renewalProof(deriveEphemeralKey(m, 41000), exported);
    assert.deepEqual(eks.verifyProof(41000, exported, proof, now), { ok: true, generation: m.id });
  }
});

test('verifyProof: revoked, non-ephemeral, tampered, other-exporter, other-id and rotated-out proofs are refused', () => {
  const gone = master(9, T0 - 3 * DAY);
  const keys = [master(101, T0), master(202, T0 + DAY)];
  const revoked = new Set<number>();
  const { eks } = setup(keys, { revoked });
  const exported = random(16);
  const proof = renewalProof(deriveEphemeralKey(keys[1] as MasterKey, 41000), exported);
  assert.deepEqual(eks.verifyProof(41000, exported, proof, T0), { ok: true, generation: 202 });
  const tampered = proof.slice();
  tampered[15] = (tampered[15] as number) ^ 1;
  assert.deepEqual(eks.verifyProof(41000, exported, tampered, T0), { ok: false, reason: 'bad_proof' });
  assert.deepEqual(eks.verifyProof(41000, exported, proof.subarray(0, 12), T0), { ok: false, reason: 'bad_proof' });
  assert.deepEqual(eks.verifyProof(41000, random(16), proof, T0), { ok: false, reason: 'bad_proof' }, 'bound to the TLS connection');
  assert.deepEqual(eks.verifyProof(41001, exported, proof, T0), { ok: false, reason: 'bad_proof' }, 'bound to the key id');
  const goneProof = renewalProof(deriveEphemeralKey(gone, 41000), exported);
  assert.deepEqual(eks.verifyProof(41000, exported, goneProof, T0), { ok: false, reason: 'bad_proof' }, 'generation not in the ring');
  assert.deepEqual(eks.verifyProof(1234, exported, proof, T0), { ok: false, reason: 'not_ephemeral' });
  revoked.add(41000);
  assert.deepEqual(eks.verifyProof(41000, exported, proof, T0), { ok: false, reason: 'revoked' });
});

test('verifyProof: generations derived newest first until one verifies; refused proofs cache nothing', () => {
  const keys = [master(101, T0), master(202, T0 + DAY), master(303, T0 + 2 * DAY)];
  const { eks } = setup(keys);
  const exported = random(16);
  const proofOf = (m: MasterKey, keyId: number) => renewalProof(deriveEphemeralKey(m, keyId), exported);
  assert.equal(derivations(eks, () => assert.equal(eks.verifyProof(41000, exported, forgery(), T0).ok, false)), 3);
  assert.equal(derivations(eks, () => assert.equal(eks.verifyProof(41000, exported, random(12), T0).ok, false)), 0);
  assert.equal(eks.cachedKeys, 0);
  assert.equal(derivations(eks, () => assert.deepEqual(eks.verifyProof(41000, exported, proofOf(keys[2] as MasterKey, 41000), T0), { ok: true, generation: 303 })), 1);
  assert.equal(derivations(eks, () => assert.deepEqual(eks.verifyProof(41001, exported, proofOf(keys[0] as MasterKey, 41001), T0), { ok: true, generation: 101 })), 3);
  assert.equal(eks.cachedKeys, 2);
});

test('issue: derives under the current generation, expiring at its creation + lifetime; the key proves itself', () => {
  const keys = [master(101, T0), master(202, T0 + DAY)];
  const { state, eks } = setup(keys, { lifetime: 2 * DAY });
  const issued = eks.issue(50001, T0 + DAY + HOUR);
  assert.equal(issued.generation, 202);
  assert.equal(issued.expiryMicros, T0 + DAY + 2 * DAY);
  assert.deepEqual(issued.key, deriveEphemeralKey(keys[1] as MasterKey, 50001));
  const exported = random(16);
  assert.deepEqual(eks.verifyProof(50001, exported, renewalProof(issued.key, exported), T0 + DAY + HOUR), { ok: true, generation: 202 });
  // After a rotation the same id is issued under the new generation (a renewal keeps its id).
  const rotated = state.ring.rotate(T0 + 2 * DAY, random, POLICY).added;
  const renewed = eks.issue(50001, T0 + 2 * DAY);
  assert.equal(renewed.generation, rotated.id);
  assert.notDeepEqual(renewed.key, issued.key);
  assert.throws(() => eks.issue(100, T0), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_KEY_ID');
});

test('generationInRing: true while the master key is in the ring, false once rotated out', () => {
  const keys = [master(101, T0), master(202, T0 + DAY)];
  const { state, eks } = setup(keys);
  assert.ok(eks.generationInRing(101));
  assert.ok(eks.generationInRing(202));
  assert.ok(!eks.generationInRing(303));
  state.ring.rotate(T0 + 2 * DAY, random, { rotationMicros: DAY, keysKept: 0 });
  assert.ok(!eks.generationInRing(101));
  assert.ok(!eks.generationInRing(202));
  assert.ok(eks.generationInRing(state.ring.current.id));
});
