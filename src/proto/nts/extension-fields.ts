/**
 * NTS extension fields for NTPv4 (RFC 8915 §5.3–5.7): layouts only; the AEAD lives in src/crypto/.
 *
 * Authenticator and Encrypted Extension Fields body (RFC 8915 §5.6):
 *
 *     | Nonce Length (u16)            | Ciphertext Length (u16)       |
 *     | Nonce, zero-padded to a multiple of 4                         |
 *     | Ciphertext, zero-padded to a multiple of 4                    |
 *     | Additional Padding                                            |
 *
 * Both lengths exclude their padding. Additional padding (§5.6): let N_REQ be the lesser of 16 and the
 * AEAD's maximum nonce length, rounded up to a multiple of 4; the padded nonce plus the additional padding
 * must take at least N_REQ octets, and a server discards packets that do not. That is `minNonceSpace`
 * (default 16: AES-SIV-CMAC has no nonce maximum; pass 12 for AES-128-GCM-SIV). We send 16-octet nonces
 * (`NTS_NONCE_LENGTH`), which meets N_REQ for every registered AEAD with no additional padding. Padding
 * octets are written as zeros and not checked on receipt (they are outside the associated data).
 *
 * Authentication scope (§5.6, §5.7): the associated data is the packet from the first header octet up to
 * the start of the authenticator field. Fields before it are authenticated; fields inside its ciphertext
 * are encrypted too; fields after it are neither. §5.7 allows such trailing fields and has the receiver
 * discard them and process the packet as if they were absent, so `decodeNtsView` reports them separately
 * and by default ignores them; `trailingFields: 'reject'` makes any trailing field an error instead.
 *
 * Plaintext fields inside the ciphertext may be shorter than the RFC 7822 minimums but are still
 * multiples of 4 octets (§5.6).
 */

import { decodeError, ok, UsageError } from '../errors.js';
import type { Result } from '../errors.js';
import { readU16, writeU16 } from '../ntp/bytes.js';
import {
  decodeExtensionFieldList,
  EF_HEADER_LENGTH,
  EF_MAX_LENGTH,
  EF_MIN_LENGTH,
  encodeExtensionField,
  encodeExtensionFieldList,
  ExtensionFieldType,
  extensionFieldLength,
} from '../ntp/extensions.js';
import type { ExtensionField, ExtensionFieldInit, ExtensionListDecodeOptions, MacTrailer } from '../ntp/extensions.js';

/** NTS field types (RFC 8915 §5.3–5.6, IANA "NTP Extension Field Types"). */
export const NtsFieldType = {
  UniqueIdentifier: ExtensionFieldType.UniqueIdentifier,
  Cookie: ExtensionFieldType.NtsCookie,
  CookiePlaceholder: ExtensionFieldType.NtsCookiePlaceholder,
  Authenticator: ExtensionFieldType.NtsAuthenticator,
} as const;

/** RFC 8915 §5.3: the Unique Identifier is at least 32 octets. */
export const NTS_MIN_UNIQUE_ID_LENGTH = 32;
/** Nonce length we send; meets N_REQ (§5.6) for every AEAD without additional padding. */
export const NTS_NONCE_LENGTH = 16;
/** §5.6 N_REQ for AEADs whose maximum nonce is at least 16 octets (AES-SIV-CMAC-256/384/512). */
export const NTS_DEFAULT_MIN_NONCE_SPACE = 16;
/** Every AEAD registered for NTS has a 16-octet tag (AES-SIV-CMAC, RFC 5297; AES-GCM-SIV, RFC 8452). */
export const NTS_DEFAULT_MIN_CIPHERTEXT_LENGTH = 16;
/** The nonce/ciphertext length header inside the authenticator body. */
const AUTH_LENGTHS_SIZE = 4;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

// --- typed view of single fields ---

export interface NtsAuthenticator {
  readonly nonce: Uint8Array;
  /** AEAD output: the encrypted fields and the tag, in the AEAD's own order. */
  readonly ciphertext: Uint8Array;
  /** Octets after the padded ciphertext. */
  readonly additionalPadding: number;
}

export type NtsField =
  | { readonly kind: 'unique-identifier'; readonly id: Uint8Array }
  | { readonly kind: 'cookie'; readonly cookie: Uint8Array }
  | { readonly kind: 'cookie-placeholder'; readonly bodyLength: number }
  | ({ readonly kind: 'authenticator' } & NtsAuthenticator)
  | { readonly kind: 'other'; readonly type: number; readonly body: Uint8Array };

export interface NtsAuthenticatorOptions {
  /** N_REQ of RFC 8915 §5.6; default 16. */
  readonly minNonceSpace?: number;
  /** Shortest accepted ciphertext (the AEAD tag); default 16. */
  readonly minCiphertextLength?: number;
}

/**
 * Parses a Unique Identifier body (RFC 8915 §5.3). The id is the whole body including any padding: the
 * server echoes the body and the client compares bodies, so padding is part of the identity.
 */
export function decodeNtsUniqueIdentifier(body: Uint8Array): Result<Uint8Array> {
  if (body.length < NTS_MIN_UNIQUE_ID_LENGTH) {
    return decodeError('NTS_BAD_UNIQUE_ID', `unique identifier of ${body.length} octets is shorter than ${NTS_MIN_UNIQUE_ID_LENGTH}`);
  }
  return ok(body);
}

/**
 * Parses an Authenticator and Encrypted Extension Fields body (RFC 8915 §5.6). Nonce and ciphertext are
 * views into `body`. Total: never throws.
 */
export function decodeNtsAuthenticator(body: Uint8Array, options?: NtsAuthenticatorOptions): Result<NtsAuthenticator> {
  if (body.length < AUTH_LENGTHS_SIZE) return decodeError('NTS_AUTH_TRUNCATED', 'authenticator body cannot hold the nonce and ciphertext lengths', 0);
  const nonceLength = readU16(body, 0);
  const ciphertextLength = readU16(body, 2);
  if (nonceLength === 0) return decodeError('NTS_AUTH_BAD_NONCE', 'authenticator nonce is empty', 0);
  const minCiphertext = options?.minCiphertextLength ?? NTS_DEFAULT_MIN_CIPHERTEXT_LENGTH;
  if (ciphertextLength < minCiphertext) return decodeError('NTS_AUTH_BAD_CIPHERTEXT', `ciphertext of ${ciphertextLength} octets is shorter than ${minCiphertext}`, 2);
  const ciphertextStart = AUTH_LENGTHS_SIZE + pad4(nonceLength);
  const ciphertextEnd = ciphertextStart + pad4(ciphertextLength);
  if (ciphertextEnd > body.length) {
    return decodeError('NTS_AUTH_TRUNCATED', `nonce (${nonceLength}) and ciphertext (${ciphertextLength}) overrun the ${body.length}-octet body`, 0);
  }
  // §5.6: padded nonce + additional padding >= N_REQ, i.e. everything that is not lengths or ciphertext.
  const minNonceSpace = pad4(options?.minNonceSpace ?? NTS_DEFAULT_MIN_NONCE_SPACE);
  if (body.length - AUTH_LENGTHS_SIZE - pad4(ciphertextLength) < minNonceSpace) {
    return decodeError('NTS_AUTH_MISSING_PADDING', `nonce of ${nonceLength} octets lacks the additional padding to reach ${minNonceSpace}`, 0);
  }
  return ok({
    nonce: body.subarray(AUTH_LENGTHS_SIZE, AUTH_LENGTHS_SIZE + nonceLength),
    ciphertext: body.subarray(ciphertextStart, ciphertextStart + ciphertextLength),
    additionalPadding: body.length - ciphertextEnd,
  });
}

/**
 * Typed view of one field. Cookie Placeholder bodies are not inspected (§5.5: the server ignores their
 * contents; only the length matters). Unknown types come back as `other`. Total: never throws.
 */
export function decodeNtsField(field: ExtensionField, options?: NtsAuthenticatorOptions): Result<NtsField> {
  switch (field.type) {
    case NtsFieldType.UniqueIdentifier: {
      const id = decodeNtsUniqueIdentifier(field.body);
      return id.ok ? ok({ kind: 'unique-identifier', id: id.value }) : decodeError(id.error.code, id.error.message, field.offset);
    }
    case NtsFieldType.Cookie:
      return ok({ kind: 'cookie', cookie: field.body });
    case NtsFieldType.CookiePlaceholder:
      return ok({ kind: 'cookie-placeholder', bodyLength: field.body.length });
    case NtsFieldType.Authenticator: {
      const auth = decodeNtsAuthenticator(field.body, options);
      if (!auth.ok) return decodeError(auth.error.code, auth.error.message, field.offset + EF_HEADER_LENGTH + (auth.error.offset ?? 0));
      return ok({ kind: 'authenticator', ...auth.value });
    }
    default:
      return ok({ kind: 'other', type: field.type, body: field.body });
  }
}

// --- whole-packet view ---

export interface NtsViewOptions extends NtsAuthenticatorOptions {
  /**
   * 'request' additionally requires exactly one NTS Cookie before the authenticator (RFC 8915 §5.7).
   * 'response' and 'any' (default) only require the Unique Identifier and the authenticator.
   */
  readonly role?: 'request' | 'response' | 'any';
  /** Fields after the authenticator: 'ignore' (default, RFC 8915 §5.7) or 'reject' (`NTS_TRAILING_FIELDS`). */
  readonly trailingFields?: 'ignore' | 'reject';
}

/** The NTS reading of a decoded NTP packet. Every `Uint8Array` is a view into the datagram. */
export interface NtsView {
  /** Body of the single Unique Identifier field (authenticated). */
  readonly uniqueIdentifier: Uint8Array;
  /** Bodies of NTS Cookie fields before the authenticator, in order. */
  readonly cookies: readonly Uint8Array[];
  /** Body lengths of Cookie Placeholder fields before the authenticator, in order. */
  readonly placeholderLengths: readonly number[];
  readonly authenticator: NtsAuthenticator;
  /** Offset of the authenticator field: the associated data is datagram octets [0, associatedDataEnd). */
  readonly associatedDataEnd: number;
  /** Every field before the authenticator, in order, unknown types included. */
  readonly authenticatedFields: readonly ExtensionField[];
  /** Fields after the authenticator: unauthenticated, to be ignored (RFC 8915 §5.7). */
  readonly unauthenticatedFields: readonly ExtensionField[];
}

const NONE: readonly ExtensionField[] = Object.freeze([]);

/**
 * Reads the NTS structure of a packet decoded by `decodeNtpPacket` (pass its `extensions` and `mac`).
 * Checks: exactly one authenticator; exactly one Unique Identifier of at least 32 octets before it; for a
 * request exactly one cookie before it; no legacy MAC trailer (NTS packets carry none, so one seen there
 * is really a short trailing field: re-decode with `legacyMac: false` if it matters). NTS fields after the
 * authenticator are never used. Total: never throws.
 */
export function decodeNtsView(packet: { readonly extensions: readonly ExtensionField[]; readonly mac?: MacTrailer | null }, options?: NtsViewOptions): Result<NtsView> {
  const fields = packet.extensions;
  if (packet.mac !== undefined && packet.mac !== null) return decodeError('NTS_UNEXPECTED_MAC', 'an NTS packet must not end in a legacy MAC');
  let authIndex = -1;
  for (let i = 0; i < fields.length; i++) {
    if ((fields[i] as ExtensionField).type === NtsFieldType.Authenticator) {
      if (authIndex >= 0) return decodeError('NTS_DUPLICATE_AUTHENTICATOR', 'more than one authenticator field', (fields[i] as ExtensionField).offset);
      authIndex = i;
    }
  }
  if (authIndex < 0) return decodeError('NTS_NO_AUTHENTICATOR', 'no NTS authenticator field');
  const authField = fields[authIndex] as ExtensionField;
  const auth = decodeNtsAuthenticator(authField.body, options);
  if (!auth.ok) return decodeError(auth.error.code, auth.error.message, authField.offset + EF_HEADER_LENGTH + (auth.error.offset ?? 0));
  if (options?.trailingFields === 'reject' && authIndex < fields.length - 1) {
    return decodeError('NTS_TRAILING_FIELDS', `${fields.length - 1 - authIndex} extension fields follow the authenticator`, (fields[authIndex + 1] as ExtensionField).offset);
  }

  let uniqueIdentifier: Uint8Array | undefined;
  const cookies: Uint8Array[] = [];
  const placeholderLengths: number[] = [];
  for (let i = 0; i < authIndex; i++) {
    const field = fields[i] as ExtensionField;
    if (field.type === NtsFieldType.UniqueIdentifier) {
      if (uniqueIdentifier !== undefined) return decodeError('NTS_DUPLICATE_UNIQUE_ID', 'more than one unique identifier', field.offset);
      const id = decodeNtsUniqueIdentifier(field.body);
      if (!id.ok) return decodeError(id.error.code, id.error.message, field.offset);
      uniqueIdentifier = id.value;
    } else if (field.type === NtsFieldType.Cookie) {
      cookies.push(field.body);
    } else if (field.type === NtsFieldType.CookiePlaceholder) {
      placeholderLengths.push(field.body.length);
    }
  }
  if (uniqueIdentifier === undefined) return decodeError('NTS_NO_UNIQUE_ID', 'no authenticated unique identifier');
  if (options?.role === 'request' && cookies.length !== 1) {
    return decodeError('NTS_BAD_COOKIE_COUNT', `a request carries exactly one cookie, got ${cookies.length}`);
  }
  return ok({
    uniqueIdentifier,
    cookies,
    placeholderLengths,
    authenticator: auth.value,
    associatedDataEnd: authField.offset,
    authenticatedFields: fields.slice(0, authIndex),
    unauthenticatedFields: authIndex === fields.length - 1 ? NONE : fields.slice(authIndex + 1),
  });
}

/**
 * The Unique Identifier of a packet without an authenticator, e.g. an NTS NAK (kiss code NTSN, RFC 8915
 * §5.7), which echoes the client's identifier unauthenticated. Null when there is none or it is malformed.
 */
export function findNtsUniqueIdentifier(fields: readonly ExtensionField[]): Uint8Array | null {
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as ExtensionField;
    if (field.type === NtsFieldType.UniqueIdentifier) return field.body.length >= NTS_MIN_UNIQUE_ID_LENGTH ? field.body : null;
  }
  return null;
}

/** Decodes the plaintext of the authenticator as a sequence of fields (§5.6: minimum 4 octets each). */
export function decodeNtsPlaintext(plaintext: Uint8Array, options?: ExtensionListDecodeOptions): Result<ExtensionField[]> {
  return decodeExtensionFieldList(plaintext, options);
}

/** Concatenates fields for encryption (bodies padded to 4, no RFC 7822 minimum, §5.6). */
export function encodeNtsPlaintext(fields: readonly ExtensionFieldInit[]): Buffer {
  return encodeExtensionFieldList(fields);
}

// --- builders ---

/** A Unique Identifier field (RFC 8915 §5.3); `id` must be at least 32 octets. */
export function encodeNtsUniqueIdentifier(id: Uint8Array, minFieldLength: number = EF_MIN_LENGTH): Buffer {
  if (id.length < NTS_MIN_UNIQUE_ID_LENGTH) throw new UsageError('NTS_UNIQUE_ID_TOO_SHORT', `a unique identifier needs at least 32 octets, got ${id.length}`);
  return encodeExtensionField(NtsFieldType.UniqueIdentifier, id, minFieldLength);
}

/**
 * An NTS Cookie field (RFC 8915 §5.4). The body is the cookie zero-padded to a multiple of 4, so a cookie
 * format whose length is not a multiple of 4 must tolerate trailing zeros when it is parsed back.
 */
export function encodeNtsCookie(cookie: Uint8Array, minFieldLength: number = EF_MIN_LENGTH): Buffer {
  return encodeExtensionField(NtsFieldType.Cookie, cookie, minFieldLength);
}

/** A Cookie Placeholder field (RFC 8915 §5.5): `cookieLength` zero octets (padded like a cookie of that length). */
export function encodeNtsCookiePlaceholder(cookieLength: number, minFieldLength: number = EF_MIN_LENGTH): Buffer {
  const out = Buffer.alloc(extensionFieldLength(cookieLength, minFieldLength));
  writeU16(out, 0, NtsFieldType.CookiePlaceholder);
  writeU16(out, 2, out.length);
  return out;
}

/** Positions inside an authenticator field, relative to the field's first octet. */
export interface NtsAuthenticatorLayout {
  /** Whole field, 4-octet field header included. */
  readonly fieldLength: number;
  readonly nonceOffset: number;
  readonly ciphertextOffset: number;
  readonly additionalPadding: number;
}

export interface NtsAuthenticatorEncodeOptions {
  /** N_REQ of §5.6; default 16. */
  readonly minNonceSpace?: number;
  /** Pad the field with additional padding to at least this length (e.g. 16 or 28 for RFC 7822); default 0. */
  readonly minFieldLength?: number;
}

/** Computes where nonce and ciphertext go, with the §5.6 additional padding. */
export function ntsAuthenticatorLayout(nonceLength: number, ciphertextLength: number, options?: NtsAuthenticatorEncodeOptions): NtsAuthenticatorLayout {
  if (!Number.isInteger(nonceLength) || nonceLength < 1 || nonceLength > 0xffff) throw new UsageError('NTS_AUTH_BAD_NONCE', `nonce length must be 1..65535, got ${nonceLength}`);
  if (!Number.isInteger(ciphertextLength) || ciphertextLength < 0 || ciphertextLength > 0xffff) {
    throw new UsageError('NTS_AUTH_BAD_CIPHERTEXT', `ciphertext length must be 0..65535, got ${ciphertextLength}`);
  }
  const minNonceSpace = pad4(options?.minNonceSpace ?? NTS_DEFAULT_MIN_NONCE_SPACE);
  const nonceSpace = pad4(nonceLength);
  let additionalPadding = nonceSpace < minNonceSpace ? minNonceSpace - nonceSpace : 0;
  const ciphertextOffset = EF_HEADER_LENGTH + AUTH_LENGTHS_SIZE + nonceSpace;
  let fieldLength = ciphertextOffset + pad4(ciphertextLength) + additionalPadding;
  const minField = pad4(options?.minFieldLength ?? 0);
  if (fieldLength < minField) {
    additionalPadding += minField - fieldLength;
    fieldLength = minField;
  }
  if (fieldLength > EF_MAX_LENGTH) throw new UsageError('EF_TOO_LONG', `authenticator field of ${fieldLength} octets exceeds ${EF_MAX_LENGTH}`);
  return { fieldLength, nonceOffset: EF_HEADER_LENGTH + AUTH_LENGTHS_SIZE, ciphertextOffset, additionalPadding };
}

/**
 * Writes the authenticator field header (type, length, nonce and ciphertext lengths) and zeroes every
 * padding region, leaving nonce and ciphertext to be filled in place at the layout's offsets. Lets the
 * AEAD encrypt straight into the datagram: associated data = `out[0, offset)`. Returns the end offset.
 */
export function writeNtsAuthenticatorFrame(out: Uint8Array, offset: number, nonceLength: number, ciphertextLength: number, options?: NtsAuthenticatorEncodeOptions): number {
  return writeFrame(out, offset, ntsAuthenticatorLayout(nonceLength, ciphertextLength, options), nonceLength, ciphertextLength);
}

/** Writes a complete authenticator field; returns the end offset. */
export function writeNtsAuthenticator(out: Uint8Array, offset: number, nonce: Uint8Array, ciphertext: Uint8Array, options?: NtsAuthenticatorEncodeOptions): number {
  const layout = ntsAuthenticatorLayout(nonce.length, ciphertext.length, options);
  const end = writeFrame(out, offset, layout, nonce.length, ciphertext.length);
  out.set(nonce, offset + layout.nonceOffset);
  out.set(ciphertext, offset + layout.ciphertextOffset);
  return end;
}

function writeFrame(out: Uint8Array, offset: number, layout: NtsAuthenticatorLayout, nonceLength: number, ciphertextLength: number): number {
  const end = offset + layout.fieldLength;
  if (!Number.isInteger(offset) || offset < 0 || end > out.length) throw new UsageError('BUFFER_TOO_SMALL', `authenticator field needs ${layout.fieldLength} octets at offset ${offset}`);
  writeU16(out, offset, NtsFieldType.Authenticator);
  writeU16(out, offset + 2, layout.fieldLength);
  writeU16(out, offset + 4, nonceLength);
  writeU16(out, offset + 6, ciphertextLength);
  out.fill(0, offset + layout.nonceOffset + nonceLength, offset + layout.ciphertextOffset);
  out.fill(0, offset + layout.ciphertextOffset + ciphertextLength, end);
  return end;
}

export function encodeNtsAuthenticator(nonce: Uint8Array, ciphertext: Uint8Array, options?: NtsAuthenticatorEncodeOptions): Buffer {
  const out = Buffer.allocUnsafe(ntsAuthenticatorLayout(nonce.length, ciphertext.length, options).fieldLength);
  writeNtsAuthenticator(out, 0, nonce, ciphertext, options);
  return out;
}
