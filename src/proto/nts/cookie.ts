/**
 * NTS cookies (RFC 8915 §6): the server's state, handed to the client and given back in each request.
 *
 * Layout (our choice; RFC 8915 §6 only recommends the shape):
 *   master key id (u32) ‖ nonce (16) ‖ AES-SIV-CMAC-256_master(nonce, plaintext)
 *   plaintext = AEAD id (u16) ‖ reserved (u16, zero) ‖ C2S key ‖ S2C key
 * The two reserved bytes make every cookie a multiple of 4 bytes long (104, 136 or 168 for AEAD 15, 16, 17),
 * so the cookie fills its extension field exactly and needs no padding that a receiver would have to strip
 * (RFC 7822 §3 requires field lengths to be multiples of 4). Any node holding the key ring opens any cookie.
 */

import { aeadById } from '../../crypto/aead.js';
import type { KeyRing } from '../../crypto/keyring.js';
import { UsageError } from '../errors.js';

export const COOKIE_NONCE_LENGTH = 16;
const HEADER_LENGTH = 4 + COOKIE_NONCE_LENGTH;
const TAG_LENGTH = 16;
const EMPTY_AD = new Uint8Array(0);

export interface CookieKeys {
  readonly aead: number;
  readonly c2s: Uint8Array;
  readonly s2c: Uint8Array;
}

export type CookieOpenFailure = 'COOKIE_MALFORMED' | 'COOKIE_UNKNOWN_KEY' | 'COOKIE_NOT_AUTHENTIC' | 'COOKIE_BAD_CONTENT';

/** Length of a cookie carrying keys of `aead`. */
export function cookieLength(aead: number): number {
  const algorithm = aeadById(aead);
  if (algorithm === undefined) throw new UsageError('COOKIE_UNKNOWN_AEAD', `AEAD ${aead} is not supported`);
  return HEADER_LENGTH + TAG_LENGTH + 4 + 2 * algorithm.keyLength;
}

/** Largest cookie plaintext: AEAD id, reserved, two 64-byte keys (AES-SIV-CMAC-512). */
const MAX_PLAINTEXT = 4 + 2 * 64;
/** Reused for every plaintext: sealing copies it before returning, and it is wiped after each use. */
const plaintextScratch = new Uint8Array(MAX_PLAINTEXT);
const plaintextViews = new Map<number, Uint8Array>();

/** A new cookie for `keys`, sealed under the ring's current key with `nonce` (16 random bytes). */
export function sealCookie(ring: KeyRing, keys: CookieKeys, nonce: Uint8Array): Uint8Array {
  const algorithm = aeadById(keys.aead);
  // An unknown AEAD gets an empty buffer here and COOKIE_BAD_KEYS from sealCookieInto.
  const cookie = new Uint8Array(algorithm === undefined ? 0 : HEADER_LENGTH + TAG_LENGTH + 4 + 2 * algorithm.keyLength);
  sealCookieInto(ring, keys, nonce, cookie, 0);
  return cookie;
}

/**
 * As `sealCookie`, written to `out[offset..offset+cookieLength(keys.aead))`; returns the end offset.
 * Lets the server put cookies straight into the plaintext of its response.
 */
export function sealCookieInto(ring: KeyRing, keys: CookieKeys, nonce: Uint8Array, out: Uint8Array, offset: number): number {
  const algorithm = aeadById(keys.aead);
  if (algorithm === undefined || keys.c2s.length !== algorithm.keyLength || keys.s2c.length !== algorithm.keyLength) {
    throw new UsageError('COOKIE_BAD_KEYS', `keys do not fit AEAD ${keys.aead}`);
  }
  if (nonce.length !== COOKIE_NONCE_LENGTH) throw new UsageError('COOKIE_BAD_NONCE', `cookie nonce must be ${COOKIE_NONCE_LENGTH} bytes`);
  const length = HEADER_LENGTH + TAG_LENGTH + 4 + 2 * algorithm.keyLength;
  if (!Number.isInteger(offset) || offset < 0 || offset + length > out.length) {
    throw new UsageError('BUFFER_TOO_SMALL', `a cookie needs ${length} bytes at offset ${offset}`);
  }
  const master = ring.current;
  const plaintextLength = 4 + 2 * algorithm.keyLength;
  let plaintext = plaintextViews.get(plaintextLength);
  if (plaintext === undefined) {
    plaintext = plaintextScratch.subarray(0, plaintextLength);
    plaintextViews.set(plaintextLength, plaintext);
  }
  plaintext[0] = keys.aead >>> 8;
  plaintext[1] = keys.aead & 0xff;
  plaintext[2] = 0;
  plaintext[3] = 0;
  plaintext.set(keys.c2s, 4);
  plaintext.set(keys.s2c, 4 + algorithm.keyLength);
  const id = master.id;
  out[offset] = id >>> 24;
  out[offset + 1] = (id >>> 16) & 0xff;
  out[offset + 2] = (id >>> 8) & 0xff;
  out[offset + 3] = id & 0xff;
  out.set(nonce, offset + 4);
  (ring.aead(master.id) as NonNullable<ReturnType<KeyRing['aead']>>).sealInto(nonce, plaintext, EMPTY_AD, out, offset + HEADER_LENGTH);
  plaintext.fill(0);
  return offset + length;
}

export type CookieOpenResult =
  | {
      ok: true;
      keys: CookieKeys;
      keyId: number;
    }
  | { ok: false; reason: CookieOpenFailure };

export function openCookie(ring: KeyRing, cookie: Uint8Array): CookieOpenResult {
  if (cookie.length < HEADER_LENGTH + TAG_LENGTH + 4) return { ok: false, reason: 'COOKIE_MALFORMED' };
  const keyId = ((cookie[0]! << 24) | (cookie[1]! << 16) | (cookie[2]! << 8) | cookie[3]!) >>> 0;
  const aead = ring.aead(keyId);
  if (aead === undefined) return { ok: false, reason: 'COOKIE_UNKNOWN_KEY' };
  const plaintext = aead.open(cookie.subarray(4, HEADER_LENGTH), cookie.subarray(HEADER_LENGTH));
  if (plaintext === null) return { ok: false, reason: 'COOKIE_NOT_AUTHENTIC' };
  const aeadId = ((plaintext[0] ?? 0) << 8) | (plaintext[1] ?? 0);
  const algorithm = aeadById(aeadId);
  if (algorithm === undefined || plaintext.length !== 4 + 2 * algorithm.keyLength) return { ok: false, reason: 'COOKIE_BAD_CONTENT' };
  return {
    ok: true,
    keyId,
    keys: { aead: aeadId, c2s: plaintext.subarray(4, 4 + algorithm.keyLength), s2c: plaintext.subarray(4 + algorithm.keyLength) },
  };
}
