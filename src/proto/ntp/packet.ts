/**
 * The NTP packet header (RFC 5905 §7.3) and the whole-packet codec for the time modes (0–5).
 *
 *     0: LI(2) VN(3) Mode(3) | Stratum | Poll (s8) | Precision (s8)
 *     4: Root Delay (16.16)        8: Root Dispersion (16.16)      12: Reference ID
 *    16: Reference Timestamp      24: Origin Timestamp             32: Receive Timestamp
 *    40: Transmit Timestamp       48: extension fields / MAC (see extensions.ts)
 *
 * The decoder reports values; it rejects only what cannot be parsed as this layout: fewer than 48 octets,
 * version 0 or above 4, modes 6 and 7 (control and private messages have their own layouts, RFC 9327), and
 * a malformed remainder. Policy (e.g. dropping mode 0 or stratum 16+) belongs to the caller.
 * Root delay and dispersion stay raw 16.16 integers, the reference id a u32, so re-encoding is exact.
 */

import { createHash } from 'node:crypto';
import { decodeError, ok, UsageError } from '../errors.js';
import type { Result } from '../errors.js';
import { readU32, writeU32 } from './bytes.js';
import { decodeNtpTrailer, ntpTrailerLength, writeNtpTrailer } from './extensions.js';
import type { ExtensionDecodeOptions, ExtensionField, ExtensionFieldInit, MacTrailer } from './extensions.js';
import { readNtpTimestamp, writeNtpTimestamp } from './timestamp.js';
import type { NtpTimestamp } from './timestamp.js';

export const NTP_HEADER_LENGTH = 48;
/** RFC 5905 §7.3: the current version. */
export const NTP_VERSION = 4;

/** Association modes (RFC 5905 §7.3). 0 is reserved. */
export const NtpMode = {
  Reserved: 0,
  SymmetricActive: 1,
  SymmetricPassive: 2,
  Client: 3,
  Server: 4,
  Broadcast: 5,
  /** NTP control message (RFC 9327): not decoded here. */
  Control: 6,
  /** Reserved for private use (ntpdc): not decoded here. */
  Private: 7,
} as const;

/** Leap indicator (RFC 5905 §7.3). */
export const NtpLeap = {
  NoWarning: 0,
  /** Last minute of the day has 61 seconds. */
  AddSecond: 1,
  /** Last minute of the day has 59 seconds. */
  DeleteSecond: 2,
  /** Clock unsynchronized. */
  Unsynchronized: 3,
} as const;

/** RFC 5905 §7.3: stratum 16 means unsynchronized; 17–255 are reserved. */
export const NTP_STRATUM_UNSYNCHRONIZED = 16;

export interface NtpHeader {
  /** 0..3, see `NtpLeap`. */
  readonly leap: number;
  /** 1..4 when decoded. */
  readonly version: number;
  /** 0..7, see `NtpMode`. */
  readonly mode: number;
  /** 0 = kiss-o'-death / unspecified, 1 = primary, 2..15 secondary, 16 unsynchronized. */
  readonly stratum: number;
  /** log2 seconds, signed 8-bit. */
  readonly poll: number;
  /** log2 seconds, signed 8-bit. */
  readonly precision: number;
  /** Raw 16.16 short format (see `ntpShortToMicros`). */
  readonly rootDelay: number;
  /** Raw 16.16 short format. */
  readonly rootDispersion: number;
  /** The 4 octets as a big-endian u32 (see `renderRefId`, `decodeKissCode`). */
  readonly referenceId: number;
  readonly referenceTimestamp: NtpTimestamp;
  readonly originTimestamp: NtpTimestamp;
  readonly receiveTimestamp: NtpTimestamp;
  readonly transmitTimestamp: NtpTimestamp;
}

export interface NtpPacket {
  readonly header: NtpHeader;
  /** Extension fields in wire order; offsets are positions in the decoded datagram. */
  readonly extensions: readonly ExtensionField[];
  readonly mac: MacTrailer | null;
  /** A MAC covers octets [0, macOffset); equals the datagram length when there is no MAC. */
  readonly macOffset: number;
}

export type NtpDecodeOptions = ExtensionDecodeOptions;

/** Mode of a datagram without decoding it (for dispatch to the mode 6 codec); undefined when empty. */
export function peekNtpMode(bytes: Uint8Array): number | undefined {
  const first = bytes[0];
  return first === undefined ? undefined : first & 7;
}

/** Decodes the 48-octet header only (the caller ignores what follows). Total: never throws. */
export function decodeNtpHeader(bytes: Uint8Array): Result<NtpHeader> {
  const first = bytes[0];
  if (first === undefined) return decodeError('NTP_TOO_SHORT', 'empty datagram', 0);
  const version = (first >>> 3) & 7;
  // RFC 5905 §7.3: version 4; earlier versions (RFC 1059/1119/1305) share this header. 0 and 5–7 do not.
  if (version === 0 || version > NTP_VERSION) return decodeError('NTP_BAD_VERSION', `unsupported NTP version ${version}`, 0);
  const mode = first & 7;
  if (mode === NtpMode.Control || mode === NtpMode.Private) {
    return decodeError('NTP_UNSUPPORTED_MODE', `mode ${mode} messages do not use the time packet layout`, 0);
  }
  if (bytes.length < NTP_HEADER_LENGTH) return decodeError('NTP_TOO_SHORT', `${bytes.length} octets is shorter than the 48-octet header`, bytes.length);
  return ok({
    leap: first >>> 6,
    version,
    mode,
    stratum: bytes[1] as number,
    poll: ((bytes[2] as number) << 24) >> 24,
    precision: ((bytes[3] as number) << 24) >> 24,
    rootDelay: readU32(bytes, 4),
    rootDispersion: readU32(bytes, 8),
    referenceId: readU32(bytes, 12),
    referenceTimestamp: readNtpTimestamp(bytes, 16),
    originTimestamp: readNtpTimestamp(bytes, 24),
    receiveTimestamp: readNtpTimestamp(bytes, 32),
    transmitTimestamp: readNtpTimestamp(bytes, 40),
  });
}

/** Decodes a whole datagram: header, extension fields and MAC trailer. Total: never throws. */
export function decodeNtpPacket(bytes: Uint8Array, options?: NtpDecodeOptions): Result<NtpPacket> {
  const header = decodeNtpHeader(bytes);
  if (!header.ok) return header;
  const trailer = decodeNtpTrailer(bytes, NTP_HEADER_LENGTH, header.value.version, options);
  if (!trailer.ok) return trailer;
  return ok({ header: header.value, extensions: trailer.value.extensions, mac: trailer.value.mac, macOffset: trailer.value.macOffset });
}

/** Writes the 48-octet header at `offset`; returns the end offset. Throws `UsageError` on unrepresentable values. */
export function writeNtpHeader(header: NtpHeader, out: Uint8Array, offset = 0): number {
  if (offset < 0 || offset + NTP_HEADER_LENGTH > out.length) throw new UsageError('BUFFER_TOO_SMALL', `the NTP header needs 48 octets at offset ${offset}`);
  checkInt(header.leap, 0, 3, 'leap');
  checkInt(header.version, 0, 7, 'version');
  checkInt(header.mode, 0, 7, 'mode');
  checkInt(header.stratum, 0, 255, 'stratum');
  checkInt(header.poll, -128, 127, 'poll');
  checkInt(header.precision, -128, 127, 'precision');
  checkInt(header.rootDelay, 0, 0xffff_ffff, 'rootDelay');
  checkInt(header.rootDispersion, 0, 0xffff_ffff, 'rootDispersion');
  checkInt(header.referenceId, 0, 0xffff_ffff, 'referenceId');
  out[offset] = (header.leap << 6) | (header.version << 3) | header.mode;
  out[offset + 1] = header.stratum;
  out[offset + 2] = header.poll & 0xff;
  out[offset + 3] = header.precision & 0xff;
  writeU32(out, offset + 4, header.rootDelay);
  writeU32(out, offset + 8, header.rootDispersion);
  writeU32(out, offset + 12, header.referenceId);
  writeNtpTimestamp(header.referenceTimestamp, out, offset + 16);
  writeNtpTimestamp(header.originTimestamp, out, offset + 24);
  writeNtpTimestamp(header.receiveTimestamp, out, offset + 32);
  writeNtpTimestamp(header.transmitTimestamp, out, offset + 40);
  return offset + NTP_HEADER_LENGTH;
}

export function encodeNtpHeader(header: NtpHeader): Buffer {
  const out = Buffer.allocUnsafe(NTP_HEADER_LENGTH);
  writeNtpHeader(header, out, 0);
  return out;
}

export interface NtpPacketInit {
  readonly header: NtpHeader;
  /** Bodies must already be padded to a multiple of 4 (see `encodeExtensionField`). */
  readonly extensions?: readonly ExtensionFieldInit[];
  readonly mac?: MacTrailer | null;
}

/**
 * Encodes header + fields + MAC. The layout is checked against the same rules (and options) the decoder
 * applies, so what this writes decodes back to the same value; a layout a peer would misread is a
 * `UsageError` (e.g. a last field under 28 octets without a MAC, RFC 7822 §3).
 */
export function encodeNtpPacket(packet: NtpPacketInit, options?: NtpDecodeOptions): Buffer {
  const extensions = packet.extensions ?? [];
  const mac = packet.mac ?? null;
  const out = Buffer.allocUnsafe(NTP_HEADER_LENGTH + ntpTrailerLength(extensions, mac, packet.header.version, options));
  writeNtpHeader(packet.header, out, 0);
  writeNtpTrailer(extensions, mac, out, NTP_HEADER_LENGTH);
  return out;
}

// --- Reference ID (RFC 5905 §7.3) ---

/**
 * Renders a reference id the way its stratum defines it (RFC 5905 §7.3): stratum 0 (kiss code) and 1
 * (reference clock) are left-justified, zero-padded ASCII; 2..15 an IPv4 address (or, for IPv6 upstreams,
 * the first 4 octets of an MD5 hash, which is shown dotted too). Stratum 16+ carries ASCII in practice
 * (ntpd sends "INIT", "STEP"), so it is shown as ASCII when it looks like it, else dotted.
 * Non-printable octets are escaped as \xHH so the text is safe for terminals and logs.
 */
export function renderRefId(refId: number, stratum: number): string {
  if (stratum <= 1) return refIdToAscii(refId);
  if (stratum >= NTP_STRATUM_UNSYNCHRONIZED && looksLikeAscii(refId)) return refIdToAscii(refId);
  return refIdToIPv4(refId);
}

/** The 4 octets as ASCII, trailing NULs dropped, other non-printables escaped as \xHH. */
export function refIdToAscii(refId: number): string {
  let end = 4;
  while (end > 0 && octet(refId, end - 1) === 0) end--;
  let text = '';
  for (let i = 0; i < end; i++) {
    const c = octet(refId, i);
    text += c >= 0x20 && c <= 0x7e && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return text;
}

export function refIdToIPv4(refId: number): string {
  return `${octet(refId, 0)}.${octet(refId, 1)}.${octet(refId, 2)}.${octet(refId, 3)}`;
}

/** Builds a refid from up to 4 printable ASCII characters, zero-padded on the right (RFC 5905 §7.3). */
export function refIdFromAscii(text: string): number {
  if (text.length > 4) throw new UsageError('REFID_BAD_TEXT', `a reference id holds at most 4 characters, got ${JSON.stringify(text)}`);
  let value = 0;
  for (let i = 0; i < 4; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0;
    if (i < text.length && (c < 0x20 || c > 0x7e)) throw new UsageError('REFID_BAD_TEXT', `reference id must be printable ASCII, got ${JSON.stringify(text)}`);
    value = value * 256 + c;
  }
  return value;
}

/** Builds a refid from a dotted-quad IPv4 address (RFC 5905 §7.3, stratum 2+). */
export function refIdFromIPv4(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4) throw new UsageError('REFID_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(address)}`);
  let value = 0;
  for (const part of parts) {
    if (part.length === 0 || part.length > 3 || (part.length > 1 && part[0] === '0')) throw new UsageError('REFID_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(address)}`);
    let n = 0;
    for (let i = 0; i < part.length; i++) {
      const d = part.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) throw new UsageError('REFID_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(address)}`);
      n = n * 10 + d;
    }
    if (n > 255) throw new UsageError('REFID_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(address)}`);
    value = value * 256 + n;
  }
  return value;
}

/** A configured reference id: a dotted-quad IPv4 address, or up to 4 printable ASCII characters. */
export function refIdFromText(text: string): number {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(text) ? refIdFromIPv4(text) : refIdFromAscii(text);
}

/** RFC 5905 §7.3: for an IPv6 upstream, the first four octets of the MD5 hash of its 16-octet address. */
export function refIdFromIPv6(address: Uint8Array): number {
  if (address.length !== 16) throw new UsageError('REFID_BAD_ADDRESS', `an IPv6 address is 16 octets, got ${address.length}`);
  return readU32(createHash('md5').update(address).digest(), 0);
}

function octet(refId: number, index: number): number {
  return (refId >>> (24 - 8 * index)) & 0xff;
}

function looksLikeAscii(refId: number): boolean {
  const first = octet(refId, 0);
  if (first < 0x20 || first > 0x7e) return false;
  let seenNul = false;
  for (let i = 1; i < 4; i++) {
    const c = octet(refId, i);
    if (c === 0) seenNul = true;
    else if (seenNul || c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// --- Kiss-o'-Death codes (RFC 5905 §7.4; NTSN from RFC 8915 §5.7) ---

/** The kiss codes listed in RFC 5905 §7.4 plus NTSN (RFC 8915 §5.7). */
export const KNOWN_KISS_CODES = [
  'ACST', // association belongs to a unicast server
  'AUTH', // server authentication failed
  'AUTO', // Autokey sequence failed
  'BCST', // association belongs to a broadcast server
  'CRYP', // cryptographic authentication or identification failed
  'DENY', // access denied by remote server
  'DROP', // lost peer in symmetric mode
  'RSTR', // access denied due to local policy
  'INIT', // association not yet synchronized for the first time
  'MCST', // association belongs to a dynamically discovered server
  'NKEY', // no key found
  'RATE', // rate exceeded: the client must reduce its polling
  'RMOT', // alteration of association from a remote host running ntpdc
  'STEP', // a step change in system time has occurred
  'NTSN', // NTS negative acknowledgement: the cookie could not be opened (RFC 8915 §5.7)
] as const;
export type KnownKissCode = (typeof KNOWN_KISS_CODES)[number];

/** A kiss code as decoded: a registered name, or the reference id kept numerically. */
export type KissCode = { readonly known: KnownKissCode } | { readonly unknown: number };

const KISS_BY_REFID = new Map<number, { readonly known: KnownKissCode }>(KNOWN_KISS_CODES.map((code) => [refIdFromAscii(code), Object.freeze({ known: code })]));

/** Interprets a reference id as a kiss code (meaningful when stratum is 0). */
export function decodeKissCode(refId: number): KissCode {
  return KISS_BY_REFID.get(refId) ?? { unknown: refId };
}

/** The kiss code of a kiss-o'-death packet (stratum 0, RFC 5905 §7.4), or null for any other packet. */
export function kissCodeOf(header: NtpHeader): KissCode | null {
  return header.stratum === 0 ? decodeKissCode(header.referenceId) : null;
}

/** The reference id that carries `code` (unknown codes re-encode unchanged). */
export function encodeKissCode(code: KissCode | KnownKissCode): number {
  if (typeof code === 'string') return refIdFromAscii(code);
  return 'known' in code ? refIdFromAscii(code.known) : code.unknown;
}

/** Display text of a kiss code: the name, or the escaped ASCII of an unknown code. */
export function kissCodeText(code: KissCode): string {
  return 'known' in code ? code.known : refIdToAscii(code.unknown);
}

function checkInt(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError('NTP_HEADER_RANGE', `${what} must be an integer in [${min}, ${max}], got ${value}`);
}
