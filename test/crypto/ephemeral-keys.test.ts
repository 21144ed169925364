// Ephemeral MAC keys (docs/eks.md §3-§5): the HKDF derivation pinned by an independent HKDF and a fixed
// vector, the renewal proof, and EphemeralKeys' lookup, cache and proof checks over a rotating key ring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import {
  EKS_AES128CMAC,
  EPHEMERAL_KEY_ID_MAX,
  EPHEMERAL_KEY_ID_MIN,
  EPHEMERAL_KEY_LENGTH,
  EphemeralKeys,
  deriveEphemeralKey,
  ephemeralExpiryMicros,
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

/** Which generation each candidate belongs to, told by its digest. */
function generationsOf(candidates: readonly PreparedMac[], ring: readonly MasterKey[], keyId: number): number[] {
  return candidates.map((mac) => {
    const digest = toHex(mac.compute(MESSAGE));
    const found = ring.find((m) => toHex(clientMac(m, keyId).compute(MESSAGE)) === digest);
    assert.ok(found !== undefined, 'a candidate from no generation of the ring');
    return found.id;
  });
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

function candidates(eks: EphemeralKeys, keyId: number, now: number) {
  const found = eks.lookup(keyId, now);
  assert.equal(found.kind, 'candidates', JSON.stringify(found));
  return found as Extract<typeof found, { kind: 'candidates' }>;
}

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
});

test('renewal proof = AES-128-CMAC(key, exported) (RFC 4493 §4 example 2); keys must be 16 octets', () => {
  const proof = renewalProof(hex('2b7e1516 28aed2a6 abf71588 09cf4f3c'), hex('6bc1bee2 2e409f96 e93d7e11 7393172a'));
  assert.equal(toHex(proof), '070a16b46b4d4144f79bdd9dd04a287c');
  assert.throws(() => renewalProof(new Uint8Array(32), new Uint8Array(16)), (e: unknown) => e instanceof UsageError && e.code === 'EKS_BAD_KEY_LENGTH');
});

test('expiry = the generation creation time + lifetime (docs/eks.md §4)', () => {
  assert.equal(ephemeralExpiryMicros(FIXED_MASTER, 2 * DAY), T0 + 2 * DAY);
});

// --- lookup -----------------------------------------------------------------------------------------------------

test('lookup: every generation of the ring, newest first, each derived as a client derives it', () => {
  const keys = [master(11, T0), master(22, T0 + DAY), master(33, T0 + 2 * DAY)];
  const { eks } = setup(keys, { lifetime: 10 * DAY });
  const found = candidates(eks, 40000, T0 + 2 * DAY + HOUR);
  assert.deepEqual(generationsOf(found.live, keys, 40000), [33, 22, 11]);
  assert.deepEqual(found.expired, []);
  for (const mac of found.live) {
    assert.equal(mac.keyId, 40000);
    assert.equal(mac.algorithm, 'AES128CMAC');
  }
  // A MAC a client computed with its key verifies under the first candidate.
  const digest = clientMac(keys[2] as MasterKey, 40000).compute(MESSAGE);
  assert.ok(found.live[0]?.verify(MESSAGE, digest));
  assert.ok(!found.live[1]?.verify(MESSAGE, digest));
});

test('lookup: a generation is live until creation + lifetime, exclusive, then expired; both lists newest first', () => {
  const lifetime = 2 * DAY;
  const keys = [master(1, T0), master(2, T0 + DAY), master(3, T0 + 2 * DAY)];
  const { eks } = setup(keys, { lifetime });
  const at = (now: number) => {
    const found = candidates(eks, 50000, now);
    return { live: generationsOf(found.live, keys, 50000), expired: generationsOf(found.expired, keys, 50000) };
  };
  assert.deepEqual(at(T0 + lifetime - 1), { live: [3, 2, 1], expired: [] });
  assert.deepEqual(at(T0 + lifetime), { live: [3, 2], expired: [1] });
  assert.deepEqual(at(T0 + DAY + lifetime - 1), { live: [3, 2], expired: [1] });
  assert.deepEqual(at(T0 + DAY + lifetime), { live: [3], expired: [2, 1] });
  assert.deepEqual(at(T0 + 10 * DAY), { live: [], expired: [3, 2, 1] });
});

test('lookup: the lifetime is read per call (a reload applies at once)', () => {
  const keys = [master(1, T0)];
  const { state, eks } = setup(keys, { lifetime: DAY });
  assert.equal(candidates(eks, 32768, T0 + DAY).live.length, 0);
  state.lifetime = 2 * DAY;
  assert.equal(candidates(eks, 32768, T0 + DAY).live.length, 1);
});

test('lookup: a revoked id is refused, and so is an id outside the ephemeral range', () => {
  const revoked = new Set([40000]);
  const { eks } = setup([master(1, T0)], { revoked });
  assert.deepEqual(eks.lookup(40000, T0), { kind: 'refused', reason: 'revoked' });
  assert.equal(eks.lookup(40001, T0).kind, 'candidates');
  for (const id of [0, 1, 32767, 65536]) assert.deepEqual(eks.lookup(id, T0), { kind: 'refused', reason: 'not_ephemeral' });
  revoked.delete(40000);
  assert.equal(eks.lookup(40000, T0).kind, 'candidates', 'revocation is asked per call');
});

test('lookup: keys of a generation rotated out of the ring are never offered again, even from the cache', () => {
  const ring = KeyRing.create(T0, random);
  const state = { ring };
  const eks = new EphemeralKeys({ keyRing: () => state.ring, lifetimeMicros: () => 3 * DAY, isRevoked: () => false });
  const first = ring.current;
  const held = clientMac(first, 45000).compute(MESSAGE);
  assert.ok(candidates(eks, 45000, T0).live.some((mac) => mac.verify(MESSAGE, held)));
  const policy: KeyRingPolicy = { rotationMicros: DAY, keysKept: 1 };
  // In place (KeyRing.rotate) ...
  ring.rotate(T0 + DAY, random, policy);
  assert.ok(candidates(eks, 45000, T0 + DAY).live.some((mac) => mac.verify(MESSAGE, held)), 'still in the ring after one rotation');
  ring.rotate(T0 + 2 * DAY, random, policy);
  assert.equal(ring.get(first.id), undefined);
  let found = candidates(eks, 45000, T0 + 2 * DAY);
  assert.equal(found.live.length + found.expired.length, 2);
  assert.ok(![...found.live, ...found.expired].some((mac) => mac.verify(MESSAGE, held)), 'rotated out');
  assert.ok(eks.cachedKeys <= 2, `the rotated-out generation's key is forgotten, ${eks.cachedKeys} cached`);
  // ... and as the key ring store does it: a new ring object, parsed from the rotated copy.
  const second = state.ring.current;
  const heldSecond = clientMac(second, 45000).compute(MESSAGE);
  const copy = parseKeyRing(state.ring.serialize());
  assert.ok(copy.ok);
  copy.value.rotate(T0 + 3 * DAY, random, policy);
  state.ring = copy.value;
  found = candidates(eks, 45000, T0 + 3 * DAY);
  assert.ok(found.live.some((mac) => mac.verify(MESSAGE, heldSecond)), 'the same master key in a new ring object still verifies');
  copy.value.rotate(T0 + 4 * DAY, random, policy);
  found = candidates(eks, 45000, T0 + 4 * DAY);
  assert.ok(![...found.live, ...found.expired].some((mac) => mac.verify(MESSAGE, heldSecond)));
});

test('lookup: a ring that reuses a master id with another key gets keys derived from the new key, not the cached ones', () => {
  const old = master(7, T0);
  const { state, eks } = setup([old]);
  const heldOld = clientMac(old, 33000).compute(MESSAGE);
  assert.ok(candidates(eks, 33000, T0).live[0]?.verify(MESSAGE, heldOld));
  const replacement = master(7, T0);
  state.ring = KeyRing.fromKeys([replacement]);
  const live = candidates(eks, 33000, T0).live;
  assert.equal(live.length, 1);
  assert.ok(!live[0]?.verify(MESSAGE, heldOld));
  assert.ok(live[0]?.verify(MESSAGE, clientMac(replacement, 33000).compute(MESSAGE)));
});

test('lookup: the cache is bounded (LRU) and answers stay right after eviction', () => {
  const keys = [master(1, T0), master(2, T0 + DAY)];
  const { eks } = setup(keys, { cacheSize: 5 });
  for (let id = 32768; id < 32768 + 40; id++) {
    const found = candidates(eks, id, T0 + DAY);
    assert.ok(eks.cachedKeys <= 5, `${eks.cachedKeys} cached`);
    assert.deepEqual(generationsOf(found.live, keys, id), [2, 1]);
  }
  assert.equal(eks.cachedKeys, 5);
  // The default bound is 8192 derived keys.
  const big = setup([master(1, T0)]).eks;
  for (let id = 32768; id < 32768 + 8300; id++) big.lookup(id, T0);
  assert.equal(big.cachedKeys, 8192);
  assert.throws(() => new EphemeralKeys({ keyRing: () => KeyRing.fromKeys(keys), lifetimeMicros: () => DAY, isRevoked: () => false, cacheSize: 0 }), UsageError);
});

test('lookup: a recently used key survives eviction (least recently used goes first)', () => {
  const keys = [master(1, T0)];
  const { eks } = setup(keys, { cacheSize: 3 });
  const hot = candidates(eks, 60000, T0).live[0];
  for (let id = 32768; id < 32778; id++) {
    eks.lookup(id, T0);
    assert.equal(candidates(eks, 60000, T0).live[0], hot, 'the same prepared key, from the cache');
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
