/**
 * What follows the 48-byte NTP header: extension fields (RFC 5905 §7.5 as updated by RFC 7822 §3), then
 * optionally a legacy MAC (key id + digest, RFC 5905 §7.3) or a crypto-NAK (a lone key id of 0; its 4-octet
 * length is listed in RFC 7822 §3).
 *
 * Extension field (RFC 7822 §3):
 *
 *     0                   1                   2                   3
 *     | Field Type (u16)              | Length (u16, whole field)     |
 *     | Value ... | Padding (zeros) to a multiple of 4                 |
 *
 * Telling a trailing MAC apart from extension fields (RFC 7822 §3). The MAC has no type/length header, so
 * the parser relies on lengths alone:
 *   - a MAC is 20 or 24 octets (key id + 16- or 20-octet digest); a crypto-NAK is 4 (key id 0 only);
 *   - every extension field is at least 16 octets, and when no MAC follows, the last one is at least 28.
 * Hence the rule implemented here: starting after the header, while MORE than 24 octets remain, what follows
 * is an extension field; once 24 or fewer remain at a field boundary, they are the trailer, which must be
 * exactly 0 (none), 4 (crypto-NAK), 20 or 24 (MAC) octets. A last field shorter than 28 without a MAC is
 * therefore rejected, as RFC 7822 requires. The encoder (`ntpTrailerLength`) refuses layouts that this
 * rule would misread, so what we send always decodes back to itself.
 *
 * NTS (RFC 8915 §5.6) lets encrypted fields be shorter than 16 octets (`allowShortFields`). An NTS packet
 * never carries a legacy MAC, so a caller that knows it is parsing NTS may set `legacyMac: false`: then
 * every octet after the header must be extension fields, and a short last field is not mistaken for a MAC.
 *
 * Extension fields are only defined for NTPv4 (RFC 5905 §7.5); for versions 1–3 the remainder may only be
 * a MAC or crypto-NAK.
 *
 * Unknown field types are kept numerically with their body byte for byte, so re-encoding is exact.
 */

import { decodeError, ok, UsageError } from '../errors.js';
import type { Result } from '../errors.js';
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';

/** IANA "NTP Extension Field Types" that this project interprets. Others are kept as plain numbers. */
export const ExtensionFieldType = {
  /** RFC 8915 §5.3 */
  UniqueIdentifier: 0x0104,
  /** RFC 8915 §5.4 */
  NtsCookie: 0x0204,
  /** RFC 8915 §5.5 */
  NtsCookiePlaceholder: 0x0304,
  /** RFC 8915 §5.6 */
  NtsAuthenticator: 0x0404,
} as const;
export type KnownExtensionFieldType = keyof typeof ExtensionFieldType;

/** Registry view of a field type: a known name, or the number kept as is. */
export type ExtensionFieldTypeInfo = { readonly known: KnownExtensionFieldType } | { readonly unknown: number };

const TYPE_NAMES = new Map<number, KnownExtensionFieldType>(
  (Object.keys(ExtensionFieldType) as KnownExtensionFieldType[]).map((name) => [ExtensionFieldType[name], name]),
);

export function describeExtensionFieldType(type: number): ExtensionFieldTypeInfo {
  const known = TYPE_NAMES.get(type);
  return known === undefined ? { unknown: type } : { known };
}

/** An extension field as decoded: a view into the packet, never a copy. */
export interface ExtensionField {
  /** Field Type, kept numerically (known values in `ExtensionFieldType`). */
  readonly type: number;
  /** Everything after the 4-octet field header: value plus padding (the codec cannot tell them apart). */
  readonly body: Uint8Array;
  /** Offset of the field's first octet (its type) in the buffer that was decoded. */
  readonly offset: number;
}

/** What the encoders take: a type and a body whose length is already a multiple of 4. */
export interface ExtensionFieldInit {
  readonly type: number;
  readonly body: Uint8Array;
}

/** Legacy symmetric-key MAC (RFC 5905 §7.3, §9; RFC 8573), or a crypto-NAK: a lone key id of 0. */
export type MacTrailer = { readonly kind: 'mac'; readonly keyId: number; readonly digest: Uint8Array } | { readonly kind: 'crypto-nak' };

/** RFC 7822 §3: minimum length of any extension field. */
export const EF_MIN_LENGTH = 16;
/** RFC 7822 §3: minimum length of the last extension field when no MAC follows. */
export const EF_MIN_LAST_LENGTH_NO_MAC = 28;
/** The 4-octet type + length header; also the shortest field RFC 8915 §5.6 permits (empty value). */
export const EF_HEADER_LENGTH = 4;
/** Largest value the 16-bit Length can hold that is a multiple of 4. */
export const EF_MAX_LENGTH = 65532;
/** RFC 7822 §3: the longest legacy MAC (key id + 20-octet digest); more than this remaining means a field. */
export const MAC_MAX_LENGTH = 24;
/** RFC 7822 §3 / RFC 5905 §7.3: key id (4) + 128-bit digest (e.g. MD5, AES-CMAC per RFC 8573). */
export const MAC_LENGTH_16 = 20;
/** RFC 7822 §3: key id (4) + 160-bit digest (SHA-1). */
export const MAC_LENGTH_20 = 24;
/** RFC 5905 §7.4 (crypto-NAK): key id 0 and no digest. */
export const CRYPTO_NAK_LENGTH = 4;

export const DEFAULT_MAX_EXTENSION_FIELDS = 32;
/** Cap on the octets after the header; 8 large cookies plus an authenticator fit well inside. */
export const DEFAULT_MAX_EXTENSIONS_LENGTH = 4096;

export interface ExtensionDecodeOptions {
  /** Smallest accepted field length; default 16 (RFC 7822 §3). Must be a multiple of 4, at least 4. */
  readonly minFieldLength?: number;
  /** Shorthand for `minFieldLength: 4`, as RFC 8915 §5.6 allows for NTS. */
  readonly allowShortFields?: boolean;
  /** Most fields accepted before `EF_TOO_MANY`; default 32. */
  readonly maxFields?: number;
  /** Most octets accepted after the header before `NTP_TOO_LONG`; default 4096. */
  readonly maxTotalLength?: number;
  /** Recognise a trailing MAC / crypto-NAK by the RFC 7822 length rule (default true); false: all fields. */
  readonly legacyMac?: boolean;
}

/** Everything after the header. */
export interface NtpTrailer {
  readonly extensions: readonly ExtensionField[];
  readonly mac: MacTrailer | null;
  /** Where the MAC starts (the end of the input when there is none); a MAC covers octets [0, macOffset). */
  readonly macOffset: number;
}

const NO_FIELDS: readonly ExtensionField[] = Object.freeze([]);
const CRYPTO_NAK: MacTrailer = Object.freeze({ kind: 'crypto-nak' });

function minLengthOf(options: ExtensionDecodeOptions | undefined, fallback: number): number {
  if (options?.allowShortFields === true) return EF_HEADER_LENGTH;
  const min = options?.minFieldLength ?? fallback;
  if (!Number.isInteger(min) || min < EF_HEADER_LENGTH || min % 4 !== 0) {
    throw new UsageError('EF_BAD_OPTION', `minFieldLength must be a multiple of 4 and at least 4, got ${min}`);
  }
  return min;
}

/**
 * Decodes the octets of `bytes` from `start` to the end: extension fields, then the MAC / crypto-NAK
 * trailer. `version` is the packet's NTP version (fields only for 4). Total: never throws on any input.
 */
export function decodeNtpTrailer(bytes: Uint8Array, start: number, version: number, options?: ExtensionDecodeOptions): Result<NtpTrailer> {
  const end = bytes.length;
  const total = end - start;
  const maxTotal = options?.maxTotalLength ?? DEFAULT_MAX_EXTENSIONS_LENGTH;
  if (total > maxTotal) return decodeError('NTP_TOO_LONG', `${total} octets after the header exceed the limit of ${maxTotal}`, start);
  const legacyMac = options?.legacyMac ?? true;
  const minLength = minLengthOf(options, EF_MIN_LENGTH);
  const maxFields = options?.maxFields ?? DEFAULT_MAX_EXTENSION_FIELDS;

  let pos = start;
  let fields: ExtensionField[] | undefined;
  if (version >= 4) {
    // RFC 7822 §3: while more octets remain than the longest MAC, an extension field must start here.
    const stopAt = legacyMac ? MAC_MAX_LENGTH : 0;
    while (end - pos > stopAt) {
      const field = readField(bytes, pos, end, minLength);
      if (!field.ok) return field;
      fields ??= [];
      if (fields.length >= maxFields) return decodeError('EF_TOO_MANY', `more than ${maxFields} extension fields`, pos);
      fields.push(field.value);
      pos += EF_HEADER_LENGTH + field.value.body.length;
    }
  }

  const rest = end - pos;
  const extensions = fields ?? NO_FIELDS;
  if (rest === 0) return ok({ extensions, mac: null, macOffset: end });
  if (!legacyMac) return decodeError('NTP_BAD_LENGTH', `${rest} octets after the header are not extension fields`, pos);
  if (rest === CRYPTO_NAK_LENGTH) {
    if (readU32(bytes, pos) !== 0) return decodeError('NTP_BAD_CRYPTO_NAK', 'a 4-octet trailer must be a crypto-NAK (key id 0)', pos);
    return ok({ extensions, mac: CRYPTO_NAK, macOffset: pos });
  }
  if (rest === MAC_LENGTH_16 || rest === MAC_LENGTH_20) {
    return ok({ extensions, mac: { kind: 'mac', keyId: readU32(bytes, pos), digest: bytes.subarray(pos + 4, end) }, macOffset: pos });
  }
  return decodeError(
    'NTP_BAD_LENGTH',
    version >= 4
      ? `${rest} trailing octets are neither a MAC (20 or 24), a crypto-NAK (4) nor an extension field of at least ${EF_MIN_LAST_LENGTH_NO_MAC}`
      : `${rest} trailing octets after an NTPv${version} header are not a MAC (20 or 24) or crypto-NAK (4)`,
    pos,
  );
}

export interface ExtensionListDecodeOptions {
  /** Smallest accepted field; default 4 (RFC 8915 §5.6: encrypted fields may be arbitrarily short). */
  readonly minFieldLength?: number;
  /** Default 32. */
  readonly maxFields?: number;
}

/**
 * Decodes a buffer that holds nothing but concatenated extension fields, e.g. the plaintext of the NTS
 * Authenticator and Encrypted Extension Fields field (RFC 8915 §5.6). Offsets are relative to `bytes`.
 */
export function decodeExtensionFieldList(bytes: Uint8Array, options?: ExtensionListDecodeOptions): Result<ExtensionField[]> {
  const minLength = minLengthOf(options, EF_HEADER_LENGTH);
  const maxFields = options?.maxFields ?? DEFAULT_MAX_EXTENSION_FIELDS;
  const fields: ExtensionField[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const field = readField(bytes, pos, bytes.length, minLength);
    if (!field.ok) return field;
    if (fields.length >= maxFields) return decodeError('EF_TOO_MANY', `more than ${maxFields} extension fields`, pos);
    fields.push(field.value);
    pos += EF_HEADER_LENGTH + field.value.body.length;
  }
  return ok(fields);
}

function readField(bytes: Uint8Array, pos: number, end: number, minLength: number): Result<ExtensionField> {
  if (end - pos < EF_HEADER_LENGTH) return decodeError('EF_TRUNCATED', `${end - pos} octets cannot hold an extension field header`, pos);
  const type = readU16(bytes, pos);
  const length = readU16(bytes, pos + 2);
  // RFC 7822 §3: the Length covers the whole field and padding keeps it on a 32-bit boundary.
  if (length % 4 !== 0) return decodeError('EF_BAD_LENGTH', `extension field length ${length} is not a multiple of 4`, pos);
  if (length < minLength) return decodeError('EF_BAD_LENGTH', `extension field length ${length} is below the minimum of ${minLength}`, pos);
  if (length > end - pos) return decodeError('EF_TRUNCATED', `extension field length ${length} exceeds the ${end - pos} octets left`, pos);
  return ok({ type, body: bytes.subarray(pos + EF_HEADER_LENGTH, pos + length), offset: pos });
}

// --- encoders ---

/** Length of a field carrying `valueLength` octets once padded to a multiple of 4 and to `minLength`. */
export function extensionFieldLength(valueLength: number, minLength: number = EF_MIN_LENGTH): number {
  const padded = (EF_HEADER_LENGTH + valueLength + 3) & ~3;
  const length = padded < minLength ? (minLength + 3) & ~3 : padded;
  if (!Number.isInteger(valueLength) || valueLength < 0 || length > EF_MAX_LENGTH) {
    throw new UsageError('EF_TOO_LONG', `an extension field cannot carry ${valueLength} octets`);
  }
  return length;
}

/**
 * Writes a field with `value` zero-padded to a multiple of 4 and to at least `minLength` octets in all
 * (default 16, RFC 7822 §3; pass 28 for a last field without MAC, 4 for NTS plaintext). Returns the end offset.
 */
export function writeExtensionField(type: number, value: Uint8Array, out: Uint8Array, offset: number, minLength: number = EF_MIN_LENGTH): number {
  checkU16(type, 'extension field type');
  const length = extensionFieldLength(value.length, minLength);
  if (offset + length > out.length) throw new UsageError('BUFFER_TOO_SMALL', `extension field needs ${length} octets at offset ${offset}`);
  writeU16(out, offset, type);
  writeU16(out, offset + 2, length);
  out.set(value, offset + EF_HEADER_LENGTH);
  out.fill(0, offset + EF_HEADER_LENGTH + value.length, offset + length);
  return offset + length;
}

/** As `writeExtensionField`, into a new buffer. */
export function encodeExtensionField(type: number, value: Uint8Array, minLength: number = EF_MIN_LENGTH): Buffer {
  const out = Buffer.allocUnsafe(extensionFieldLength(value.length, minLength));
  writeExtensionField(type, value, out, 0, minLength);
  return out;
}

/** Octets a MAC trailer takes on the wire. */
export function macTrailerLength(mac: MacTrailer): number {
  return mac.kind === 'crypto-nak' ? CRYPTO_NAK_LENGTH : 4 + mac.digest.length;
}

/** Writes a MAC (digest of 16 or 20 octets, RFC 7822 §3) or a crypto-NAK; returns the end offset. */
export function writeMacTrailer(mac: MacTrailer, out: Uint8Array, offset: number): number {
  const length = macTrailerLength(mac);
  if (offset + length > out.length) throw new UsageError('BUFFER_TOO_SMALL', `MAC trailer needs ${length} octets at offset ${offset}`);
  if (mac.kind === 'crypto-nak') {
    writeU32(out, offset, 0);
    return offset + CRYPTO_NAK_LENGTH;
  }
  if (mac.digest.length !== 16 && mac.digest.length !== 20) throw new UsageError('MAC_BAD_DIGEST', `a MAC digest is 16 or 20 octets, got ${mac.digest.length}`);
  if (!Number.isInteger(mac.keyId) || mac.keyId < 0 || mac.keyId > 0xffff_ffff) throw new UsageError('MAC_BAD_KEY_ID', `key id must be a u32, got ${mac.keyId}`);
  writeU32(out, offset, mac.keyId);
  out.set(mac.digest, offset + 4);
  return offset + length;
}

export function encodeMacTrailer(mac: MacTrailer): Buffer {
  const out = Buffer.allocUnsafe(macTrailerLength(mac));
  writeMacTrailer(mac, out, 0);
  return out;
}

/**
 * Checks that `fields` + `mac` decode back to themselves under `options` (the rule in the header comment)
 * and returns the octets they take. Throws `UsageError` when the layout would be misread by a peer.
 */
export function ntpTrailerLength(fields: readonly ExtensionFieldInit[], mac: MacTrailer | null, version: number, options?: ExtensionDecodeOptions): number {
  const legacyMac = options?.legacyMac ?? true;
  const minLength = minLengthOf(options, EF_MIN_LENGTH);
  if (fields.length > 0 && version < 4) throw new UsageError('EF_NOT_ALLOWED', 'extension fields need NTP version 4 (RFC 5905 §7.5)');
  if (mac !== null && !legacyMac) throw new UsageError('MAC_NOT_ALLOWED', 'legacyMac is off, so a MAC trailer would be misread');
  let total = 0;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as ExtensionFieldInit;
    checkU16(field.type, 'extension field type');
    const length = EF_HEADER_LENGTH + field.body.length;
    if (length % 4 !== 0 || length > EF_MAX_LENGTH) throw new UsageError('EF_BAD_BODY', `field body of ${field.body.length} octets is not padded to a multiple of 4`);
    if (length < minLength) throw new UsageError('EF_TOO_SHORT', `extension field of ${length} octets is below the minimum of ${minLength}`);
    total += length;
  }
  if (legacyMac && fields.length > 0) {
    // The last field must still look like a field, not a MAC, from where it starts (RFC 7822 §3).
    const last = fields[fields.length - 1] as ExtensionFieldInit;
    const tail = EF_HEADER_LENGTH + last.body.length + (mac === null ? 0 : macTrailerLength(mac));
    if (tail <= MAC_MAX_LENGTH) {
      throw new UsageError('EF_TOO_SHORT', `the last extension field plus trailer is ${tail} octets; without a MAC it must be at least ${EF_MIN_LAST_LENGTH_NO_MAC}`);
    }
  }
  return total + (mac === null ? 0 : macTrailerLength(mac));
}

/** Writes fields (bodies already padded) and the MAC; returns the end offset. Validate first with `ntpTrailerLength`. */
export function writeNtpTrailer(fields: readonly ExtensionFieldInit[], mac: MacTrailer | null, out: Uint8Array, offset: number): number {
  let pos = offset;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as ExtensionFieldInit;
    const length = EF_HEADER_LENGTH + field.body.length;
    if (pos + length > out.length) throw new UsageError('BUFFER_TOO_SMALL', `extension field needs ${length} octets at offset ${pos}`);
    writeU16(out, pos, field.type);
    writeU16(out, pos + 2, length);
    out.set(field.body, pos + EF_HEADER_LENGTH);
    pos += length;
  }
  return mac === null ? pos : writeMacTrailer(mac, out, pos);
}

/** Concatenated fields with no minimum beyond 4 octets, e.g. an NTS plaintext (RFC 8915 §5.6). */
export function encodeExtensionFieldList(fields: readonly ExtensionFieldInit[]): Buffer {
  const length = ntpTrailerLength(fields, null, 4, { minFieldLength: EF_HEADER_LENGTH, legacyMac: false });
  const out = Buffer.allocUnsafe(length);
  writeNtpTrailer(fields, null, out, 0);
  return out;
}

function checkU16(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new UsageError('EF_BAD_TYPE', `${what} must be a u16, got ${value}`);
}
