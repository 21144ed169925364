/**
 * Classic NTP symmetric-key MACs, as ntpd and NTPsec compute them for NTP packets (RFC 5905 §7.3, key id +
 * digest after the header) and for mode 6 control messages (RFC 9327 §2, authenticator after the padding):
 *
 * - MD5: MD5(key ‖ message), 16 octets;
 * - SHA1: SHA-1(key ‖ message), 20 octets;
 * - AES128CMAC: AES-128-CMAC(key, message), 16 octets (RFC 8573 §4), using the project's CMAC.
 *
 * The digest algorithms are the historical "keyed hash" construction, not HMAC: that is what the peers
 * verify, so it is what must be sent. Comparison is constant-time.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../proto/errors.js';
import { AES_BLOCK, Cmac } from './cmac.js';
import { constantTimeEqual } from './constant-time.js';

export type SymmetricMacAlgorithm = 'MD5' | 'SHA1' | 'AES128CMAC';

export const SYMMETRIC_MAC_ALGORITHMS: readonly SymmetricMacAlgorithm[] = ['MD5', 'SHA1', 'AES128CMAC'];

/** Digest octets each algorithm produces (NTPsec truncates longer digests to 20; these three never need it). */
export const SYMMETRIC_MAC_DIGEST_LENGTH: Readonly<Record<SymmetricMacAlgorithm, number>> = Object.freeze({
  MD5: 16,
  SHA1: 20,
  AES128CMAC: 16,
});

/** RFC 8573 §4: AES-128-CMAC takes a 128-bit key. */
export const AES128CMAC_KEY_LENGTH = AES_BLOCK;

/** RFC 5905 §7.3: key identifiers are 32-bit; ntpd and NTPsec only use 1..65535 (NTP_MAXKEY). */
export const NTP_MAX_KEY_ID = 65535;

/** A key as ntp.keys defines it: id, algorithm and the secret bytes. */
export interface SymmetricKey {
  readonly keyId: number;
  readonly algorithm: SymmetricMacAlgorithm;
  readonly key: Uint8Array;
}

const HASH_NAME: Readonly<Record<'MD5' | 'SHA1', string>> = { MD5: 'md5', SHA1: 'sha1' };

function checkKey(key: Pick<SymmetricKey, 'algorithm' | 'key'>): void {
  if (!SYMMETRIC_MAC_ALGORITHMS.includes(key.algorithm)) {
    throw new UsageError('MAC_UNKNOWN_ALGORITHM', `unknown MAC algorithm ${String(key.algorithm)}`);
  }
  if (key.algorithm === 'AES128CMAC' && key.key.length !== AES128CMAC_KEY_LENGTH) {
    throw new UsageError('MAC_BAD_KEY_LENGTH', `AES128CMAC needs a ${AES128CMAC_KEY_LENGTH}-octet key, got ${key.key.length}`);
  }
  if (key.key.length === 0) throw new UsageError('MAC_BAD_KEY_LENGTH', 'empty MAC key');
}

/** The digest of the concatenation of `parts` under `key`. Throws UsageError for an unusable key. */
export function computeSymmetricMac(key: Pick<SymmetricKey, 'algorithm' | 'key'>, ...parts: Uint8Array[]): Uint8Array {
  checkKey(key);
  if (key.algorithm === 'AES128CMAC') return new Cmac(key.key).mac(...parts);
  const hash = createHash(HASH_NAME[key.algorithm]);
  hash.update(key.key);
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/**
 * True when `digest` is the MAC of `message` under `key`. Constant-time in the digest contents; a digest of
 * the wrong length is simply false.
 */
export function verifySymmetricMac(key: Pick<SymmetricKey, 'algorithm' | 'key'>, message: Uint8Array, digest: Uint8Array): boolean {
  return constantTimeEqual(computeSymmetricMac(key, message), digest);
}

/**
 * One key made ready for many packets (RFC 5905 §7.3 on the NTP service's request path): checked once, the
 * key bytes copied (a later change to the caller's buffer cannot change the key) and, for AES128CMAC, one
 * `Cmac` whose subkeys are computed here rather than per packet (RFC 4493 §2.3). MD5/SHA1 stay the keyed
 * hash digest(key ‖ message) of `computeSymmetricMac`. Not re-entrant, which a single thread never needs.
 */
export class PreparedMac {
  readonly keyId: number;
  readonly algorithm: SymmetricMacAlgorithm;
  readonly digestLength: number;
  readonly #key: Uint8Array;
  readonly #cmac: Cmac | null;

  /** Throws UsageError for an unusable key (unknown algorithm, empty key, AES key not 16 octets). */
  constructor(key: SymmetricKey) {
    checkKey(key);
    this.keyId = key.keyId;
    this.algorithm = key.algorithm;
    this.digestLength = SYMMETRIC_MAC_DIGEST_LENGTH[key.algorithm];
    this.#key = Uint8Array.from(key.key);
    this.#cmac = key.algorithm === 'AES128CMAC' ? new Cmac(this.#key) : null;
  }

  /** The digest of `message`: `digestLength` new octets. */
  compute(message: Uint8Array): Uint8Array {
    if (this.#cmac !== null) return this.#cmac.mac(message);
    const hash = createHash(HASH_NAME[this.algorithm as 'MD5' | 'SHA1']);
    hash.update(this.#key);
    hash.update(message);
    return new Uint8Array(hash.digest());
  }

  /** True when `digest` is the MAC of `message`. Constant-time in the contents; a wrong length is false. */
  verify(message: Uint8Array, digest: Uint8Array): boolean {
    return constantTimeEqual(this.compute(message), digest);
  }
}
