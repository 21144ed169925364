/**
 * Ephemeral MAC keys (docs/eks.md §3-§5): AES-128-CMAC keys (RFC 8573) for NTP clients without NTS, never
 * stored, derived from the key ring's master keys and the key id.
 *
 * Theory of operation:
 * - Key ids are 32768..65535 (§3), so they can never collide with an operator's static keys (1..32767).
 * - key = HKDF-SHA256(IKM = master key, salt = empty, info = "ntptsd eks v1" ‖ u32 master id ‖ u32 key id ‖
 *   u16 algorithm, L = 16) (RFC 5869; §4). Every node holding the ring derives the same key; the key id
 *   and the generation (master key) select it, so nothing per client has to be shared or persisted.
 * - A key expires at its generation's creation time plus the lifetime (§4): the expiry is a property of
 *   the generation, not of the moment of issue, which is what lets a verifier work without any table.
 * - `EphemeralKeys` is the stateless verifier over the ring: for a key id it offers the derived keys of
 *   every generation still in the ring, split into live and expired ones (newest first), and checks
 *   renewal proofs (§5). Derived keys are cached (LRU, bounded) since HKDF and the CMAC subkeys cost
 *   several hash and cipher calls; a cached key is only ever returned for a master key that is still in
 *   the ring, and keys of generations that left the ring are forgotten at the next lookup after a rotation.
 * - The time, the ring, the lifetime and the revocation list are arguments: nothing here reads a clock.
 */

import { hkdfSync } from 'node:crypto';
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
/** RFC 8573 §4: AES-128-CMAC takes a 16-octet key. */
export const EPHEMERAL_KEY_LENGTH = 16;
/** Default bound on cached derived keys: 8192 × (key + CMAC state) is a few MB at most. */
export const DEFAULT_EPHEMERAL_CACHE_SIZE = 8192;

const INFO_LABEL = new TextEncoder().encode('ntptsd eks v1');
const EMPTY = new Uint8Array(0);

export function isEphemeralKeyId(id: number): boolean {
  return Number.isInteger(id) && id >= EPHEMERAL_KEY_ID_MIN && id <= EPHEMERAL_KEY_ID_MAX;
}

/**
 * The ephemeral key `keyId` of generation `master` (docs/eks.md §4, RFC 5869 with SHA-256):
 *
 *     HKDF-SHA256(IKM = master.key, salt = "", info = "ntptsd eks v1" ‖ u32 master.id ‖ u32 keyId ‖ u16 algorithm, L = 16)
 *
 * An empty salt is HashLen zero octets (RFC 5869 §2.2); the master key is already uniformly random, so no
 * salt is needed for extraction. The master id and algorithm in `info` keep keys of different generations
 * and algorithms independent even for the same key id. Throws UsageError for an id outside 32768..65535
 * or an algorithm that is not a u16.
 */
export function deriveEphemeralKey(master: MasterKey, keyId: number, algorithm: number = EKS_AES128CMAC): Uint8Array {
  if (!isEphemeralKeyId(keyId)) throw new UsageError('EKS_BAD_KEY_ID', `ephemeral key ids are ${EPHEMERAL_KEY_ID_MIN}..${EPHEMERAL_KEY_ID_MAX}, got ${keyId}`);
  if (!Number.isInteger(algorithm) || algorithm < 0 || algorithm > 0xffff) throw new UsageError('EKS_BAD_ALGORITHM', `algorithm id must be a u16, got ${algorithm}`);
  if (!Number.isInteger(master.id) || master.id < 0 || master.id > 0xffff_ffff) throw new UsageError('EKS_BAD_MASTER', `master key id must be a u32, got ${master.id}`);
  const info = new Uint8Array(INFO_LABEL.length + 10);
  const view = new DataView(info.buffer);
  info.set(INFO_LABEL, 0);
  view.setUint32(INFO_LABEL.length, master.id);
  view.setUint32(INFO_LABEL.length + 4, keyId);
  view.setUint16(INFO_LABEL.length + 8, algorithm);
  return new Uint8Array(hkdfSync('sha256', master.key, EMPTY, info, EPHEMERAL_KEY_LENGTH));
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
  /** `eks.key-lifetime` in microseconds, read per call so that a reload applies at once. */
  readonly lifetimeMicros: () => number;
  readonly isRevoked: (keyId: number) => boolean;
  /** Most derived keys kept; least recently used are dropped first. Default 8192. */
  readonly cacheSize?: number;
}

export type EphemeralLookup =
  | { readonly kind: 'candidates'; readonly live: PreparedMac[]; readonly expired: PreparedMac[] }
  | { readonly kind: 'refused'; readonly reason: 'revoked' | 'not_ephemeral' };

export type EphemeralProofCheck = { readonly ok: true; readonly generation: number } | { readonly ok: false; readonly reason: 'revoked' | 'not_ephemeral' | 'bad_proof' };

export interface EphemeralIssue {
  readonly key: Uint8Array;
  /** The master key id the key was derived under. */
  readonly generation: number;
  readonly expiryMicros: number;
}

interface CacheEntry {
  /** The master key the MAC was derived from, to tell a ring that reuses an id with another key. */
  master: MasterKey;
  readonly mac: PreparedMac;
}

export class EphemeralKeys {
  readonly #options: EphemeralKeysOptions;
  readonly #cacheSize: number;
  /** By masterId × 65536 + keyId (at most 2^48: an exact number); Map order is the LRU order, oldest first. */
  readonly #cache = new Map<number, CacheEntry>();
  /** The current generation last seen: a change means a rotation or a new ring, so the cache is swept. */
  #lastCurrent: MasterKey | null = null;

  constructor(options: EphemeralKeysOptions) {
    const cacheSize = options.cacheSize ?? DEFAULT_EPHEMERAL_CACHE_SIZE;
    if (!Number.isInteger(cacheSize) || cacheSize < 1) throw new UsageError('EKS_BAD_CACHE_SIZE', `cacheSize must be a positive integer, got ${cacheSize}`);
    this.#options = options;
    this.#cacheSize = cacheSize;
  }

  /** Derived keys held now (never more than the cache size). */
  get cachedKeys(): number {
    return this.#cache.size;
  }

  /**
   * The keys a MAC under `keyId` may verify with (docs/eks.md §4): `live` — generations whose expiry is
   * after `nowMicros` — and `expired` — generations still in the ring whose expiry has passed (a MAC that
   * verifies only under one of these is answered as expired). Both newest first. Generations that left
   * the ring are not offered: such a MAC cannot be told from a forgery.
   */
  lookup(keyId: number, nowMicros: number): EphemeralLookup {
    if (!isEphemeralKeyId(keyId)) return { kind: 'refused', reason: 'not_ephemeral' };
    if (this.#options.isRevoked(keyId)) return { kind: 'refused', reason: 'revoked' };
    const ring = this.#ring();
    const lifetime = this.#options.lifetimeMicros();
    const live: PreparedMac[] = [];
    const expired: PreparedMac[] = [];
    const keys = ring.keys;
    for (let i = keys.length - 1; i >= 0; i--) {
      const master = keys[i] as MasterKey;
      const mac = this.#prepared(master, keyId);
      if (nowMicros < ephemeralExpiryMicros(master, lifetime)) live.push(mac);
      else expired.push(mac);
    }
    return { kind: 'candidates', live, expired };
  }

  /**
   * Checks a renewal proof (docs/eks.md §5): accepted under any generation still in the ring, expired or
   * not, so a client that was off for a while can renew. `nowMicros` is not needed for that rule and is
   * taken for symmetry with `lookup`. The comparison is constant-time (PreparedMac.verify).
   */
  verifyProof(keyId: number, exported: Uint8Array, proof: Uint8Array, _nowMicros: number): EphemeralProofCheck {
    if (!isEphemeralKeyId(keyId)) return { ok: false, reason: 'not_ephemeral' };
    if (this.#options.isRevoked(keyId)) return { ok: false, reason: 'revoked' };
    const keys = this.#ring().keys;
    for (let i = keys.length - 1; i >= 0; i--) {
      const master = keys[i] as MasterKey;
      if (this.#prepared(master, keyId).verify(exported, proof)) return { ok: true, generation: master.id };
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
    return { key: deriveEphemeralKey(current, keyId, EKS_AES128CMAC), generation: current.id, expiryMicros: ephemeralExpiryMicros(current, this.#options.lifetimeMicros()) };
  }

  /**
   * True while master key `generation` is in the ring: a key issued under it may still verify (§3: an id
   * is not reallocated while a key carrying it is live under any generation).
   */
  generationInRing(generation: number): boolean {
    return this.#ring().get(generation) !== undefined;
  }

  /** The ring, after forgetting the cached keys of generations that left it (key material should not linger). */
  #ring(): KeyRing {
    const ring = this.#options.keyRing();
    if (ring.current !== this.#lastCurrent) {
      this.#lastCurrent = ring.current;
      for (const [slot, entry] of this.#cache) {
        const master = ring.get(entry.master.id);
        if (master === undefined || !sameMaster(master, entry.master)) this.#cache.delete(slot);
      }
    }
    return ring;
  }

  /** The MAC of `keyId` under `master` (which is in the ring), from the cache or derived. */
  #prepared(master: MasterKey, keyId: number): PreparedMac {
    const slot = master.id * 65536 + keyId;
    const entry = this.#cache.get(slot);
    if (entry !== undefined && (entry.master === master || sameMaster(entry.master, master))) {
      // Most recently used goes last.
      this.#cache.delete(slot);
      this.#cache.set(slot, entry);
      entry.master = master;
      return entry.mac;
    }
    const mac = new PreparedMac({ keyId, algorithm: 'AES128CMAC', key: deriveEphemeralKey(master, keyId, EKS_AES128CMAC) });
    this.#cache.delete(slot);
    this.#cache.set(slot, { master, mac });
    while (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
    return mac;
  }
}

/** The same master key in another ring object (a ring re-read from disk): same id and key octets. */
function sameMaster(a: MasterKey, b: MasterKey): boolean {
  return a.id === b.id && a.key.length === b.key.length && constantTimeEqual(a.key, b.key);
}
