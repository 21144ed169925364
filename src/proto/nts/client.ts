/**
 * The client half of NTS-protected NTP (RFC 8915 §5.7): building an authenticated request and checking a
 * response. Pure: the caller supplies the header (with its transmit timestamp), random bytes and keys.
 */

import type { Aead } from '../../crypto/aead.js';
import { type DecodeError, type Result, decodeError, ok } from '../errors.js';
import { EF_HEADER_LENGTH, extensionFieldLength, writeExtensionField } from '../ntp/extensions.js';
import { NTP_HEADER_LENGTH, type NtpHeader, decodeNtpPacket, encodeKissCode, writeNtpHeader } from '../ntp/packet.js';
import { NtsFieldType, decodeNtsPlaintext, decodeNtsView, findNtsUniqueIdentifier, ntsAuthenticatorLayout, writeNtsAuthenticatorFrame } from './extension-fields.js';

export interface NtsRequestParams {
  readonly header: NtpHeader;
  /** At least 32 random bytes (RFC 8915 §5.3). */
  readonly uniqueIdentifier: Uint8Array;
  readonly cookie: Uint8Array;
  /** Placeholders to ask for more cookies, each the size of `cookie` (RFC 8915 §5.5). */
  readonly placeholders: number;
  readonly c2s: Aead;
  readonly nonce: Uint8Array;
}

export function buildNtsRequest(params: NtsRequestParams): Uint8Array {
  const { uniqueIdentifier, cookie, placeholders, c2s, nonce } = params;
  const cookieField = extensionFieldLength(cookie.length, EF_HEADER_LENGTH);
  const fieldsLength = extensionFieldLength(uniqueIdentifier.length, EF_HEADER_LENGTH) + cookieField * (1 + placeholders);
  const ciphertextLength = c2s.algorithm.tagLength; // empty plaintext: nothing to hide in a request
  const layout = ntsAuthenticatorLayout(nonce.length, ciphertextLength);
  const out = new Uint8Array(NTP_HEADER_LENGTH + fieldsLength + layout.fieldLength);
  let offset = writeNtpHeader(params.header, out, 0);
  offset = writeExtensionField(NtsFieldType.UniqueIdentifier, uniqueIdentifier, out, offset, EF_HEADER_LENGTH);
  offset = writeExtensionField(NtsFieldType.Cookie, cookie, out, offset, EF_HEADER_LENGTH);
  for (let i = 0; i < placeholders; i++) {
    const end = offset + cookieField;
    out[offset] = NtsFieldType.CookiePlaceholder >>> 8;
    out[offset + 1] = NtsFieldType.CookiePlaceholder & 0xff;
    out[offset + 2] = cookieField >>> 8;
    out[offset + 3] = cookieField & 0xff;
    offset = end; // body stays zero: its content is ignored (§5.5)
  }
  const ciphertext = c2s.seal(nonce, new Uint8Array(0), out.subarray(0, offset));
  writeNtsAuthenticatorFrame(out, offset, nonce.length, ciphertext.length);
  out.set(nonce, offset + layout.nonceOffset);
  out.set(ciphertext, offset + layout.ciphertextOffset);
  return out;
}

export type NtsResponse =
  | { readonly kind: 'ok'; readonly header: NtpHeader; readonly cookies: readonly Uint8Array[] }
  /** An NTS NAK (kiss code NTSN) echoing our identifier: the cookie was refused, run NTS-KE again. */
  | { readonly kind: 'nak'; readonly header: NtpHeader };

const NTSN = encodeKissCode('NTSN');
const DECODE_OPTIONS = { allowShortFields: true, legacyMac: false } as const;

/**
 * Checks a response to a request with `uniqueIdentifier`: the identifier must match and the authenticator
 * must verify under the S2C key; the new cookies come from the encrypted part (RFC 8915 §5.7).
 * Anything else is a coded error: the caller drops the packet and keeps waiting.
 */
export function openNtsResponse(bytes: Uint8Array, uniqueIdentifier: Uint8Array, s2c: Aead): Result<NtsResponse, DecodeError> {
  const decoded = decodeNtpPacket(bytes, DECODE_OPTIONS);
  if (!decoded.ok) return decoded;
  const { header, extensions } = decoded.value;
  if (header.stratum === 0 && header.referenceId === NTSN) {
    // An unauthenticated NAK is only believed when it echoes our identifier (§5.7).
    const echoed = findNtsUniqueIdentifier(extensions);
    if (echoed === null || !sameBytes(echoed.subarray(0, uniqueIdentifier.length), uniqueIdentifier)) {
      return decodeError('NTS_NAK_WRONG_UNIQUE_ID', 'NTS NAK does not echo our unique identifier');
    }
    return ok({ kind: 'nak', header });
  }
  const view = decodeNtsView({ extensions }, { role: 'response' });
  if (!view.ok) return view;
  if (!sameBytes(view.value.uniqueIdentifier.subarray(0, uniqueIdentifier.length), uniqueIdentifier)) {
    return decodeError('NTS_WRONG_UNIQUE_ID', 'response carries another request\'s unique identifier');
  }
  const { authenticator, associatedDataEnd } = view.value;
  const plaintext = s2c.open(authenticator.nonce, authenticator.ciphertext, bytes.subarray(0, associatedDataEnd));
  if (plaintext === null) return decodeError('NTS_AUTH_FAILED', 'response authenticator does not verify');
  const inner = decodeNtsPlaintext(plaintext);
  if (!inner.ok) return inner;
  const cookies = inner.value.filter((f) => f.type === NtsFieldType.Cookie).map((f) => Uint8Array.from(f.body));
  return ok({ kind: 'ok', header, cookies });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
