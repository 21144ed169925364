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

export function sealCookie(ring: KeyRing, keys: CookieKeys, nonce: Uint8Array): Uint8Array {
  const algorithm = aeadById(keys.aead);
  if (algorithm === undefined || keys.c2s.length !== algorithm.keyLength || keys.s2c.length !== algorithm.keyLength) {
    throw new UsageError('COOKIE_BAD_KEYS', `keys do not fit AEAD ${keys.aead}`);
  }
  if (nonce.length !== COOKIE_NONCE_LENGTH) throw new UsageError('COOKIE_BAD_NONCE', `cookie nonce must be ${COOKIE_NONCE_LENGTH} bytes`);
  const master = ring.current;
  const plaintext = new Uint8Array(4 + 2 * algorithm.keyLength);
  plaintext[0] = keys.aead >>> 8;
  plaintext[1] = keys.aead & 0xff;
  plaintext.set(keys.c2s, 4);
  plaintext.set(keys.s2c, 4 + algorithm.keyLength);
  const sealed = (ring.aead(master.id) as NonNullable<ReturnType<KeyRing['aead']>>).seal(nonce, plaintext);
  const cookie = new Uint8Array(HEADER_LENGTH + sealed.length);
  const id = master.id;
  cookie[0] = id >>> 24;
  cookie[1] = (id >>> 16) & 0xff;
  cookie[2] = (id >>> 8) & 0xff;
  cookie[3] = id & 0xff;
  cookie.set(nonce, 4);
  cookie.set(sealed, HEADER_LENGTH);
  return cookie;
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
