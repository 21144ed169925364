/**
 * Ephemeral MAC keys (docs/eks.md §3-§5): AES-128-CMAC keys (RFC 8573) for NTP clients without NTS, never
 * stored, derived from the key ring's master keys and the key id.
 *
 * Theory of operation:
 * - Key ids are 32768..65535 (§3), so they can never collide with an operator's static keys (1..32767).
 * - key = HKDF-SHA256(IKM = master key, salt = empty, info = "ntptsd eks v1" ‖ u32 master id ‖ u32 key id ‖
 *   u16 algorithm, L = 16) (RFC 5869; §4). Every node holding the ring derives the same key; the key id
 *   and the generation (master key) select it, so nothing per client has to be shared or persisted.
 * - HKDF is computed in its two steps (RFC 5869 §2.2-2.3): the Extract step depends on the master key only,
 *   so its PRK is kept per generation and a key id costs one HMAC-SHA256 (Expand, L = 16 ≤ HashLen).
 * - A key expires at its generation's creation time plus the lifetime (§4): the expiry is a property of
 *   the generation, not of the moment of issue, which is what lets a verifier work without any table.
 * - `EphemeralKeys` is the stateless verifier over the ring. `verify` checks a MAC under a key id and
 *   derives lazily: keys already cached first, then the live generations newest first, each derived only
 *   when the previous one failed, and the expired generations only when no live one verified (they only
 *   tell `expired` from `bad_mac`). It also checks renewal proofs (§5).
 * - Derived keys are cached (LRU, bounded) since the Expand and the CMAC subkeys cost a hash and cipher
 *   setup. Only keys that verified a MAC or proof enter the cache: a request under a random id costs its
 *   derivations but evicts nobody's key. A cached key is only ever used for a master key that is still in
 *   the ring; keys and PRKs of generations that left the ring are forgotten at the next call after a rotation.
 * - The time, the ring, the lifetime and the revocation list are arguments: nothing here reads a clock.
 */

import { createHmac } from 'node:crypto';
import { UsageError } from '../proto/errors.js';
import { aesCmac } from './cmac.js';
import { constantTimeEqual } from './constant-time.js';
import type { KeyRing, MasterKey } from './keyring.js';
import { PreparedMac } from './symmetric-mac.js';

/** docs/eks.md §3: the top half of the 16-bit key id space ntpd and NTPsec accept. */
export const EPHEMERAL_KEY_ID_MIN = 32768;
export const EPHEMERAL_KEY_ID_MAX = 65535;
/** docs/eks.md §2: MAC algorithm id 1 = AES-128-CMAC (RFC 8573). */
export const EKS_AES128CMAC = 1;
/** RFC 8573 §4: AES-128-CMAC takes a 16-octet key (and its MAC is 16 octets too). */
export const EPHEMERAL_KEY_LENGTH = 16;
/** Default bound on cached derived keys: 8192 × (key + CMAC state) is a few MB at most. */
export const DEFAULT_EPHEMERAL_CACHE_SIZE = 8192;

const INFO_LABEL = new TextEncoder().encode('ntptsd eks v1');
/** RFC 5869 §2.2: an absent salt is HashLen (32 for SHA-256) zero octets. */
const ZERO_SALT = new Uint8Array(32);
/** info ‖ 0x01, the input of T(1) (RFC 5869 §2.3), rebuilt per call: HMAC update() copies it. */
const EXPAND_INPUT = new Uint8Array(INFO_LABEL.length + 10 + 1);
const EXPAND_VIEW = new DataView(EXPAND_INPUT.buffer);
EXPAND_INPUT.set(INFO_LABEL, 0);
EXPAND_INPUT[EXPAND_INPUT.length - 1] = 1;

export function isEphemeralKeyId(id: number): boolean {
  return Number.isInteger(id) && id >= EPHEMERAL_KEY_ID_MIN && id <= EPHEMERAL_KEY_ID_MAX;
}

/**
 * HKDF-Extract (RFC 5869 §2.2) of generation `master` with an empty salt: PRK = HMAC-SHA256(32 zero octets,
 * master.key). The same for every key id of the generation. Throws UsageError for a master id that is not a u32.
 */
export function ephemeralPrk(master: MasterKey): Uint8Array {
  if (!Number.isInteger(master.id) || master.id < 0 || master.id > 0xffff_ffff) throw new UsageError('EKS_BAD_MASTER', `master key id must be a u32, got ${master.id}`);
  const digest = createHmac('sha256', ZERO_SALT).update(master.key).digest();
  const prk = Uint8Array.from(digest);
  digest.fill(0);
  return prk;
}

/**
 * HKDF-Expand (RFC 5869 §2.3) for L = 16: T(1) = HMAC-SHA256(prk, info ‖ 0x01), its first 16 octets, with
 * info = "ntptsd eks v1" ‖ u32 masterId ‖ u32 keyId ‖ u16 algorithm (docs/eks.md §4). Throws UsageError for
 * an id outside 32768..65535, a master id that is not a u32 or an algorithm that is not a u16.
 */
export function expandEphemeralKey(prk: Uint8Array, masterId: number, keyId: number, algorithm: number = EKS_AES128CMAC): Uint8Array {
  if (!isEphemeralKeyId(keyId)) throw new UsageError('EKS_BAD_KEY_ID', `ephemeral key ids are ${EPHEMERAL_KEY_ID_MIN}..${EPHEMERAL_KEY_ID_MAX}, got ${keyId}`);
  if (!Number.isInteger(algorithm) || algorithm < 0 || algorithm > 0xffff) throw new UsageError('EKS_BAD_ALGORITHM', `algorithm id must be a u16, got ${algorithm}`);
  if (!Number.isInteger(masterId) || masterId < 0 || masterId > 0xffff_ffff) throw new UsageError('EKS_BAD_MASTER', `master key id must be a u32, got ${masterId}`);
  EXPAND_VIEW.setUint32(INFO_LABEL.length, masterId);
  EXPAND_VIEW.setUint32(INFO_LABEL.length + 4, keyId);
  EXPAND_VIEW.setUint16(INFO_LABEL.length + 8, algorithm);
  const t1 = createHmac('sha256', prk).update(EXPAND_INPUT).digest();
  const key = new Uint8Array(EPHEMERAL_KEY_LENGTH);
  key.set(t1.subarray(0, EPHEMERAL_KEY_LENGTH));
  t1.fill(0);
  return key;
}

/**
 * The ephemeral key `keyId` of generation `master` (docs/eks.md §4, RFC 5869 with SHA-256):
 *
 *     HKDF-SHA256(IKM = master.key, salt = "", info = "ntptsd eks v1" ‖ u32 master.id ‖ u32 keyId ‖ u16 algorithm, L = 16)
 *
 * An empty salt is HashLen zero octets (RFC 5869 §2.2); the master key is already uniformly random, so no
 * salt is needed for extraction. The master id and algorithm in `info` keep keys of different generations
 * and algorithms independent even for the same key id. Throws UsageError for an id outside 32768..65535,
 * an algorithm that is not a u16 or a master id that is not a u32. `EphemeralKeys` computes the same with
 * the Extract step cached per generation.
 */
export function deriveEphemeralKey(master: MasterKey, keyId: number, algorithm: number = EKS_AES128CMAC): Uint8Array {
  if (!isEphemeralKeyId(keyId)) throw new UsageError('EKS_BAD_KEY_ID', `ephemeral key ids are ${EPHEMERAL_KEY_ID_MIN}..${EPHEMERAL_KEY_ID_MAX}, got ${keyId}`);
  const prk = ephemeralPrk(master);
  try {
    return expandEphemeralKey(prk, master.id, keyId, algorithm);
  } finally {
    prk.fill(0);
  }
}

/** docs/eks.md §5: proof = AES-128-CMAC(held key, TLS exporter output), 16 octets. */
export function renewalProof(key: Uint8Array, exported: Uint8Array): Uint8Array {
  if (key.length !== EPHEMERAL_KEY_LENGTH) throw new UsageError('EKS_BAD_KEY_LENGTH', `an ephemeral key is ${EPHEMERAL_KEY_LENGTH} octets, got ${key.length}`);
  return aesCmac(key, exported);
}

/** docs/eks.md §4: every key of a generation expires at its creation time plus the lifetime. */
export function ephemeralExpiryMicros(master: MasterKey, lifetimeMicros: number): number {
  return master.createdAtMicros + lifetimeMicros;
}

export interface EphemeralKeysOptions {
  /** The ring as it is now (it may be replaced or rotated between calls). */
  readonly keyRing: () => KeyRing;
  /** `eks.key-lifetime` in microseconds, read per call (the daemon fixes it at start: docs/eks.md §4). */
  readonly lifetimeMicros: () => number;
  readonly isRevoked: (keyId: number) => boolean;
  /** Most derived keys kept; least recently used are dropped first. Default 8192. */
  readonly cacheSize?: number;
}

/**
 * What became of a MAC under an ephemeral key id (docs/eks.md §4, §7): verified under a live generation (with
 * the key, to sign the response), verified only under an expired generation still in the ring, verified
 * under none (or the generation left the ring), or refused before any key was tried.
 */
export type EphemeralMacCheck =
  | { readonly outcome: 'verified'; readonly mac: PreparedMac; readonly generation: number }
  | { readonly outcome: 'expired' | 'bad_mac' | 'revoked' | 'not_ephemeral' };

export type EphemeralProofCheck = { readonly ok: true; readonly generation: number } | { readonly ok: false; readonly reason: 'revoked' | 'not_ephemeral' | 'bad_proof' };

export interface EphemeralIssue {
  readonly key: Uint8Array;
  /** The master key id the key was derived under. */
  readonly generation: number;
  readonly expiryMicros: number;
}

interface CacheEntry {
  readonly slot: number;
  /** The master key the MAC was derived from, to tell a ring that reuses an id with another key. */
  master: MasterKey;
  readonly mac: PreparedMac;
  /** The answer of `verify` when this key verifies a live MAC, built once. */
  readonly verified: EphemeralMacCheck;
}

interface Generation {
  /** As for CacheEntry: the PRK belongs to these key octets. */
  master: MasterKey;
  readonly prk: Uint8Array;
}

const NOT_EPHEMERAL: EphemeralMacCheck = Object.freeze({ outcome: 'not_ephemeral' });
const REVOKED: EphemeralMacCheck = Object.freeze({ outcome: 'revoked' });
const EXPIRED: EphemeralMacCheck = Object.freeze({ outcome: 'expired' });
const BAD_MAC: EphemeralMacCheck = Object.freeze({ outcome: 'bad_mac' });

export class EphemeralKeys {
  readonly #options: EphemeralKeysOptions;
  readonly #cacheSize: number;
  /**
   * Keys that verified a MAC or proof, by masterId × 65536 + keyId (at most 2^48: an exact number); Map
   * order is the LRU order, oldest first.
   */
  readonly #cache = new Map<number, CacheEntry>();
  /** HKDF-Extract output per generation in the ring, by master id. */
  readonly #generations = new Map<number, Generation>();
  /** The current generation last seen: a change means a rotation or a new ring, so the caches are swept. */
  #lastCurrent: MasterKey | null = null;
  #derived = 0;

  constructor(options: EphemeralKeysOptions) {
    const cacheSize = options.cacheSize ?? DEFAULT_EPHEMERAL_CACHE_SIZE;
    if (!Number.isInteger(cacheSize) || cacheSize < 1) throw new UsageError('EKS_BAD_CACHE_SIZE', `cacheSize must be a positive integer, got ${cacheSize}`);
    this.#options = options;
    this.#cacheSize = cacheSize;
  }

  /** Derived keys held now (never more than the cache size): only keys that verified something. */
  get cachedKeys(): number {
    return this.#cache.size;
  }

  /** Keys derived so far (one HKDF-Expand and one CMAC key setup each): the cost of cache misses. */
  get derivedKeys(): number {
    return this.#derived;
  }

  /**
   * Checks `digest`, an AES-128-CMAC of `message` under key `keyId` (docs/eks.md §4, §7), deriving as few
   * keys as it can: keys of live generations found in the cache first, then the other live generations
   * newest first (each derived only if the previous one failed), and only when none verified, the expired
   * generations still in the ring, newest first: a MAC that verifies only under one of these is `expired`.
   * Live means `nowMicros` before the generation's creation + lifetime. Generations that left the ring are
   * not tried: such a MAC cannot be told from a forgery (`bad_mac`). A digest that is not 16 octets is
   * `bad_mac` without any derivation. Comparisons are constant-time (PreparedMac.verify).
   */
  verify(keyId: number, message: Uint8Array, digest: Uint8Array, nowMicros: number): EphemeralMacCheck {
    if (!isEphemeralKeyId(keyId)) return NOT_EPHEMERAL;
    if (this.#options.isRevoked(keyId)) return REVOKED;
    if (digest.length !== EPHEMERAL_KEY_LENGTH) return BAD_MAC;
    const keys = this.#ring().keys;
    const lifetime = this.#options.lifetimeMicros();
    // Each generation's liveness is judged on its own: a clock stepped back can leave the ring out of creation order.
    const live = (master: MasterKey): boolean => nowMicros < ephemeralExpiryMicros(master, lifetime);
    for (let i = keys.length - 1; i >= 0; i--) {
      const master = keys[i] as MasterKey;
      if (!live(master)) continue;
      const entry = this.#cached(master, keyId);
      if (entry !== undefined && entry.mac.verify(message, digest)) return this.#touch(entry).verified;
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const master = keys[i] as MasterKey;
      if (!live(master) || this.#cached(master, keyId) !== undefined) continue; // a cached one was tried above
      const entry = this.#deriveAndVerify(master, keyId, message, digest);
      if (entry !== null) return entry.verified;
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const master = keys[i] as MasterKey;
      if (!live(master) && this.#tryGeneration(master, keyId, message, digest) !== null) return EXPIRED;
    }
    return BAD_MAC;
  }

  /**
   * Checks a renewal proof (docs/eks.md §5): accepted under any generation still in the ring, expired or
   * not, so a client that was off for a while can renew. Generations are tried newest first, each key
   * derived only when the previous one failed. `nowMicros` is not needed for that rule and is taken for
   * symmetry with `verify`. The comparison is constant-time (PreparedMac.verify).
   */
  verifyProof(keyId: number, exported: Uint8Array, proof: Uint8Array, _nowMicros: number): EphemeralProofCheck {
    if (!isEphemeralKeyId(keyId)) return { ok: false, reason: 'not_ephemeral' };
    if (this.#options.isRevoked(keyId)) return { ok: false, reason: 'revoked' };
    if (proof.length !== EPHEMERAL_KEY_LENGTH) return { ok: false, reason: 'bad_proof' };
    const keys = this.#ring().keys;
    for (let i = keys.length - 1; i >= 0; i--) {
      const master = keys[i] as MasterKey;
      if (this.#tryGeneration(master, keyId, exported, proof) !== null) return { ok: true, generation: master.id };
    }
    return { ok: false, reason: 'bad_proof' };
  }

  /**
   * The key `keyId` under the current generation (docs/eks.md §4), with its expiry. Allocation and
   * revocation are the issuer's business; this only derives. `nowMicros` does not enter the expiry, which
   * belongs to the generation. Throws UsageError for an id outside the ephemeral range.
   */
  issue(keyId: number, _nowMicros: number): EphemeralIssue {
    const current = this.#ring().current;
    return { key: expandEphemeralKey(this.#prk(current), current.id, keyId, EKS_AES128CMAC), generation: current.id, expiryMicros: ephemeralExpiryMicros(current, this.#options.lifetimeMicros()) };
  }

  /**
   * True while master key `generation` is in the ring: a key issued under it may still verify (§3: an id
   * is not reallocated while a key carrying it is live under any generation).
   */
  generationInRing(generation: number): boolean {
    return this.#ring().get(generation) !== undefined;
  }

  /** The ring, after forgetting the keys and PRKs of generations that left it (key material should not linger). */
  #ring(): KeyRing {
    const ring = this.#options.keyRing();
    if (ring.current !== this.#lastCurrent) {
      this.#lastCurrent = ring.current;
      const gone = (held: MasterKey): boolean => {
        const master = ring.get(held.id);
        return master === undefined || !sameMaster(master, held);
      };
      for (const [slot, entry] of this.#cache) if (gone(entry.master)) this.#cache.delete(slot);
      for (const [id, generation] of this.#generations) {
        if (!gone(generation.master)) continue;
        generation.prk.fill(0);
        this.#generations.delete(id);
      }
    }
    return ring;
  }

  /** HKDF-Extract of `master` (which is in the ring), computed once per generation. */
  #prk(master: MasterKey): Uint8Array {
    const generation = this.#generations.get(master.id);
    if (generation !== undefined) {
      if (generation.master === master) return generation.prk;
      if (sameMaster(generation.master, master)) {
        generation.master = master;
        return generation.prk;
      }
      generation.prk.fill(0);
    }
    const prk = ephemeralPrk(master);
    this.#generations.set(master.id, { master, prk });
    return prk;
  }

  /** The cached key of `keyId` under `master`, without marking it used; a stale entry (same id, other key) is dropped. */
  #cached(master: MasterKey, keyId: number): CacheEntry | undefined {
    const slot = master.id * 65536 + keyId;
    const entry = this.#cache.get(slot);
    if (entry === undefined || entry.master === master) return entry;
    if (sameMaster(entry.master, master)) {
      entry.master = master;
      return entry;
    }
    this.#cache.delete(slot);
    return undefined;
  }

  /** Marks `entry` most recently used (Map order: it goes last). */
  #touch(entry: CacheEntry): CacheEntry {
    this.#cache.delete(entry.slot);
    this.#cache.set(entry.slot, entry);
    return entry;
  }

  /** The key of `keyId` under `master` if it verifies `digest` of `message`, from the cache or derived; else null. */
  #tryGeneration(master: MasterKey, keyId: number, message: Uint8Array, digest: Uint8Array): CacheEntry | null {
    const entry = this.#cached(master, keyId);
    if (entry !== undefined) return entry.mac.verify(message, digest) ? this.#touch(entry) : null;
    return this.#deriveAndVerify(master, keyId, message, digest);
  }

  /** Derives the key of `keyId` under `master`; it enters the cache only if it verifies `digest` of `message`. */
  #deriveAndVerify(master: MasterKey, keyId: number, message: Uint8Array, digest: Uint8Array): CacheEntry | null {
    this.#derived++;
    const key = expandEphemeralKey(this.#prk(master), master.id, keyId, EKS_AES128CMAC);
    const mac = new PreparedMac({ keyId, algorithm: 'AES128CMAC', key });
    key.fill(0); // PreparedMac keeps its own copy
    if (!mac.verify(message, digest)) return null;
    const slot = master.id * 65536 + keyId;
    const entry: CacheEntry = { slot, master, mac, verified: Object.freeze({ outcome: 'verified', mac, generation: master.id }) };
    this.#cache.delete(slot);
    this.#cache.set(slot, entry);
    while (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
    return entry;
  }
}

/** The same master key in another ring object (a ring re-read from disk): same id and key octets. */
function sameMaster(a: MasterKey, b: MasterKey): boolean {
  return a.id === b.id && a.key.length === b.key.length && constantTimeEqual(a.key, b.key);
}
