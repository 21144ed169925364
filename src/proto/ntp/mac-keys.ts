/**
 * Which keys a symmetric-key MAC in an NTP request (RFC 5905 §7.3; AES-128-CMAC per RFC 8573) may verify
 * under: the operator's static keys (`ntp.keys-file`) and the ephemeral keys derived from the key ring
 * (docs/eks.md §3, §4, §7). The responder asks a `MacKeyResolver` per request.
 *
 * - Static keys have ids 1..32767; ephemeral ids are 32768..65535 (docs/eks.md §3), so an id selects
 *   exactly one of the two and they can never collide. `staticMacKeys` refuses a keys file that would.
 * - A static id resolves to its one key, and the responder verifies. An ephemeral id resolves to a verifier
 *   (`EphemeralKeys`) that the responder hands the MAC to: which generation a client holds is only known by
 *   trying (docs/eks.md §4), and the verifier derives candidate keys lazily, only as far as it has to.
 * - Resolving allocates nothing: the answer for every static key and the ephemeral answer are built once.
 */

import { EPHEMERAL_KEY_ID_MAX, EPHEMERAL_KEY_ID_MIN, type EphemeralMacCheck, isEphemeralKeyId } from '../../crypto/ephemeral-keys.js';
import { PreparedMac, type SymmetricKey } from '../../crypto/symmetric-mac.js';
import { UsageError, decodeError, ok, type Result } from '../errors.js';

/** What became of a request's MAC, as counted by the NTP service (docs/eks.md §7). */
export type MacKeyOutcome = 'verified_static' | 'verified_ephemeral' | 'unknown_key' | 'bad_mac' | 'expired' | 'revoked';

/**
 * Checks a MAC under an ephemeral key id (`EphemeralKeys.verify`): the outcome, and on success the key that
 * signs the response. Revocation, expiry and the generations of the ring are its business.
 */
export interface EphemeralMacVerifier {
  verify(keyId: number, message: Uint8Array, digest: Uint8Array, nowMicros: number): EphemeralMacCheck;
}

export type MacKeyResolution =
  | { readonly kind: 'static'; readonly key: PreparedMac }
  | { readonly kind: 'ephemeral'; readonly verifier: EphemeralMacVerifier }
  | { readonly kind: 'refused'; readonly reason: 'unknown_key' | 'revoked' };

export interface MacKeyResolver {
  resolve(keyId: number, nowMicros: number): MacKeyResolution;
}

/** Highest key id a static key may use (docs/eks.md §3). */
export const STATIC_KEY_ID_MAX = EPHEMERAL_KEY_ID_MIN - 1;

const UNKNOWN_KEY: MacKeyResolution = Object.freeze({ kind: 'refused', reason: 'unknown_key' });
const NO_STATIC_KEYS: ReadonlyMap<number, PreparedMac> = new Map();

/**
 * The static keys of a keys file, prepared for the NTP service. Fails with `NTP_KEYS_EPHEMERAL_RANGE` for
 * the first key id in 32768..65535 (reserved for ephemeral keys, docs/eks.md §3), `NTP_KEYS_KEY_ID_RANGE`
 * for an id outside 1..65535, or the key's own code (e.g. `MAC_BAD_KEY_LENGTH`) for an unusable key. The
 * error's `offset` is the failing key's index in `keys`, so the caller can name its line.
 */
export function staticMacKeys(keys: Iterable<SymmetricKey>): Result<Map<number, PreparedMac>> {
  const prepared = new Map<number, PreparedMac>();
  let index = -1;
  for (const key of keys) {
    index++;
    if (isEphemeralKeyId(key.keyId)) {
      return decodeError(
        'NTP_KEYS_EPHEMERAL_RANGE',
        `key id ${key.keyId} is in the ephemeral key range ${EPHEMERAL_KEY_ID_MIN}..${EPHEMERAL_KEY_ID_MAX}: static keys must use 1..${STATIC_KEY_ID_MAX}`,
        index,
      );
    }
    if (!Number.isInteger(key.keyId) || key.keyId < 1 || key.keyId > STATIC_KEY_ID_MAX) {
      return decodeError('NTP_KEYS_KEY_ID_RANGE', `key id ${key.keyId} is outside 1..${STATIC_KEY_ID_MAX}`, index);
    }
    try {
      prepared.set(key.keyId, new PreparedMac(key));
    } catch (error) {
      if (error instanceof UsageError) return decodeError(error.code, `key ${key.keyId}: ${error.message}`, index);
      throw error;
    }
  }
  return ok(prepared);
}

export interface StaticAndEphemeralKeysOptions {
  /** From `staticMacKeys`: ids 1..32767 only. */
  readonly static?: ReadonlyMap<number, PreparedMac>;
  /** `EphemeralKeys`; null (or absent) when this node does not verify ephemeral keys. */
  readonly ephemeral?: EphemeralMacVerifier | null;
}

/**
 * Ids 1..32767 from the static map, 32768..65535 to the ephemeral verifier (which also judges revocation);
 * anything else is an unknown key.
 */
export class StaticAndEphemeralKeys implements MacKeyResolver {
  /** The answer for each static key, built once: resolving allocates nothing. */
  readonly #static = new Map<number, MacKeyResolution>();
  readonly #ephemeral: MacKeyResolution;

  /** Throws UsageError when a static key id lies in the ephemeral range (use `staticMacKeys`). */
  constructor(options: StaticAndEphemeralKeysOptions = {}) {
    const verifier = options.ephemeral ?? null;
    this.#ephemeral = verifier === null ? UNKNOWN_KEY : Object.freeze({ kind: 'ephemeral', verifier });
    for (const [id, key] of options.static ?? NO_STATIC_KEYS) {
      if (isEphemeralKeyId(id)) throw new UsageError('NTP_KEYS_EPHEMERAL_RANGE', `static key id ${id} is in the ephemeral key range`);
      if (key.keyId !== id) throw new UsageError('NTP_KEYS_ID_MISMATCH', `static key ${key.keyId} is filed under id ${id}`);
      this.#static.set(id, Object.freeze({ kind: 'static', key }));
    }
  }

  resolve(keyId: number, _nowMicros: number): MacKeyResolution {
    if (isEphemeralKeyId(keyId)) return this.#ephemeral;
    return this.#static.get(keyId) ?? UNKNOWN_KEY;
  }
}
