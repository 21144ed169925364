/**
 * The AEAD algorithms we implement, keyed by their number in the IANA "AEAD Algorithms" registry
 * (RFC 5116 §6), as negotiated in the NTS-KE AEAD Algorithm Negotiation record (RFC 8915 §4.1.5).
 * Every one is the RFC 5116 interface of AES-SIV-CMAC (RFC 5297 §6): S2V over (A, N, P), so the
 * associated data comes first and the nonce last before the plaintext, as NTS uses it (RFC 8915 §5.6).
 */
import { UsageError } from '../proto/errors.js';
import { SIV_TAG_LENGTH, AesSiv } from './siv.js';

/** IANA AEAD registry ids (RFC 5297 §6.1-6.3). 15 is mandatory to implement for NTS (RFC 8915 §5.1). */
export const AEAD_AES_SIV_CMAC_256 = 15;
export const AEAD_AES_SIV_CMAC_384 = 16;
export const AEAD_AES_SIV_CMAC_512 = 17;

/** Names as the configuration spells them (`nts.aead`). */
export type AeadName = 'AES-SIV-CMAC-256' | 'AES-SIV-CMAC-384' | 'AES-SIV-CMAC-512';

export interface AeadAlgorithm {
  /** IANA AEAD registry number. */
  readonly id: number;
  /** Configuration name. */
  readonly name: AeadName;
  /** Registry name, e.g. `AEAD_AES_SIV_CMAC_256`. */
  readonly ianaName: string;
  /** K_LEN in bytes; also the length of each key exported for NTS (RFC 8915 §5.1). */
  readonly keyLength: number;
  /** Nonce length we generate. */
  readonly nonceLength: number;
  /** N_MIN (RFC 5297 §6.1): shorter nonces are refused. */
  readonly minNonceLength: number;
  /** Bytes the ciphertext adds to the plaintext: the synthetic IV in front. */
  readonly tagLength: number;
}

function siv(id: number, name: AeadName, ianaName: string, keyLength: number): AeadAlgorithm {
  // RFC 5297 §6.1-6.3: N_MIN = 1, N_MAX unbounded, tag 16. We generate one-block (16-byte) nonces.
  return Object.freeze({ id, name, ianaName, keyLength, nonceLength: 16, minNonceLength: 1, tagLength: SIV_TAG_LENGTH });
}

/** Supported algorithms, in our order of preference for negotiation. */
export const AEAD_ALGORITHMS: readonly AeadAlgorithm[] = Object.freeze([
  siv(AEAD_AES_SIV_CMAC_256, 'AES-SIV-CMAC-256', 'AEAD_AES_SIV_CMAC_256', 32),
  siv(AEAD_AES_SIV_CMAC_512, 'AES-SIV-CMAC-512', 'AEAD_AES_SIV_CMAC_512', 64),
  siv(AEAD_AES_SIV_CMAC_384, 'AES-SIV-CMAC-384', 'AEAD_AES_SIV_CMAC_384', 48),
]);

const BY_ID = new Map(AEAD_ALGORITHMS.map((a) => [a.id, a]));
const BY_NAME = new Map<string, AeadAlgorithm>(AEAD_ALGORITHMS.flatMap((a) => [[a.name, a], [a.ianaName, a]]));

/** The algorithm with IANA id `id`, or undefined when we do not implement it. */
export function aeadById(id: number): AeadAlgorithm | undefined {
  return BY_ID.get(id);
}

/** The algorithm named `name` (configuration name or IANA name, exact spelling), or undefined. */
export function aeadByName(name: string): AeadAlgorithm | undefined {
  return BY_NAME.get(name);
}

/** An AEAD id off the wire: one we implement, or any other 16-bit value kept as it was. */
export type AeadIdValue = { readonly known: AeadAlgorithm } | { readonly unknown: number };

export function decodeAeadId(id: number): AeadIdValue {
  const known = BY_ID.get(id);
  return known === undefined ? { unknown: id } : { known };
}

export function encodeAeadId(value: AeadIdValue): number {
  return 'known' in value ? value.known.id : value.unknown;
}

/** One key of one algorithm (RFC 5116 §2 interface). Not re-entrant: one call at a time per instance. */
export interface Aead {
  readonly algorithm: AeadAlgorithm;
  /** Returns SIV ‖ ciphertext (`tagLength` bytes longer than `plaintext`). Throws UsageError on a nonce shorter than N_MIN. */
  seal(nonce: Uint8Array, plaintext: Uint8Array, associatedData?: Uint8Array): Uint8Array;
  /**
   * As `seal`, but writes SIV ‖ ciphertext to `out[offset..offset+tagLength+plaintext.length)`. The output
   * may follow the associated data in the same buffer (the AD is read before anything is written).
   * Throws UsageError on a short nonce or when the output does not fit.
   */
  sealInto(nonce: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array, out: Uint8Array, offset: number): void;
  /** Returns the plaintext, or null for a short nonce, a short input or a failed authentication. Never throws. */
  open(nonce: Uint8Array, ciphertext: Uint8Array, associatedData?: Uint8Array): Uint8Array | null;
}

const NO_AD = new Uint8Array(0);

class SivAead implements Aead {
  readonly #siv: AesSiv;
  /** The one-string AD list handed to S2V, reused rather than built per call. */
  readonly #ad: Uint8Array[] = [NO_AD];

  constructor(
    readonly algorithm: AeadAlgorithm,
    key: Uint8Array,
  ) {
    this.#siv = new AesSiv(key);
  }

  seal(nonce: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array = NO_AD): Uint8Array {
    if (nonce.length < this.algorithm.minNonceLength) {
      throw new UsageError('CRYPTO_BAD_NONCE_LENGTH', `${this.algorithm.name} needs a nonce of at least ${this.algorithm.minNonceLength} byte(s)`);
    }
    // The AD is always one S2V string, even when empty (RFC 5297 §6).
    this.#ad[0] = associatedData;
    return this.#siv.sealWithNonce(nonce, plaintext, this.#ad);
  }

  sealInto(nonce: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array, out: Uint8Array, offset: number): void {
    if (nonce.length < this.algorithm.minNonceLength) {
      throw new UsageError('CRYPTO_BAD_NONCE_LENGTH', `${this.algorithm.name} needs a nonce of at least ${this.algorithm.minNonceLength} byte(s)`);
    }
    this.#ad[0] = associatedData;
    this.#siv.sealWithNonceInto(nonce, plaintext, this.#ad, out, offset);
  }

  open(nonce: Uint8Array, ciphertext: Uint8Array, associatedData: Uint8Array = NO_AD): Uint8Array | null {
    if (nonce.length < this.algorithm.minNonceLength) return null;
    this.#ad[0] = associatedData;
    return this.#siv.openWithNonce(nonce, ciphertext, this.#ad);
  }
}

/**
 * An AEAD for algorithm `id` (IANA number or a descriptor from this module) under `key`.
 * Throws UsageError for an algorithm we do not implement or a key of the wrong length.
 */
export function createAead(id: number | AeadAlgorithm, key: Uint8Array): Aead {
  const algorithm = typeof id === 'number' ? BY_ID.get(id) : BY_ID.get(id.id);
  if (algorithm === undefined) {
    throw new UsageError('CRYPTO_UNKNOWN_AEAD', `AEAD algorithm ${typeof id === 'number' ? id : id.id} is not supported`);
  }
  if (key.length !== algorithm.keyLength) {
    throw new UsageError('CRYPTO_BAD_KEY_LENGTH', `${algorithm.name} needs a ${algorithm.keyLength}-byte key, got ${key.length}`);
  }
  return new SivAead(algorithm, key);
}
