/**
 * NTP control messages (mode 6, RFC 9327 §2): one datagram, header + data + padding + optional MAC.
 *
 *     0: LI(2) VN(3) Mode=6(3) | R E M Opcode(5) | Sequence (16)
 *     4: Status (16)                               | Association ID (16)
 *     8: Offset (16)                               | Count (16)
 *    12: Data (Count octets), zero padding to a multiple of 4
 *        [authenticated: padding to a multiple of 8, Key ID (32), digest (16 or 20)]
 *
 * Requests never fragment (ntpd refuses a request with the M bit or a non-zero offset); responses may, each
 * fragment carrying at most 468 data octets (NTPsec's CTL_MAX_DATA_LEN) at `offset` of the whole answer.
 *
 * Where the MAC sits: a request puts it at the first multiple of 8 after the data, as ntpd expects
 * (`properlen` in ntp_control.c). NTPsec signs a data response the same way, but signs an error response
 * right after the 12-octet header (ctl_error). The padding octets are not guaranteed to be zero (NTPsec
 * leaves the key id and older bytes there), so the only reliable way to find a response MAC is to know its
 * digest length: pass `macLength` and the decoder looks at both positions. Without it, the first position
 * (multiple of 8, then multiple of 4) whose remainder is a key id + 16 or 20 octets is taken.
 *
 * The decoder reports values and rejects only what cannot be a mode 6 datagram; it never throws.
 */

import { computeSymmetricMac, SYMMETRIC_MAC_DIGEST_LENGTH, verifySymmetricMac, type SymmetricKey } from '../../crypto/symmetric-mac.js';
import { decodeError, ok, UsageError, type Result } from '../errors.js';
import { readU16, readU32, writeU16, writeU32 } from '../ntp/bytes.js';

/** RFC 9327 §2: the fixed header. */
export const MODE6_HEADER_LENGTH = 12;
/** RFC 9327 §2: the mode field of a control message. */
export const MODE6_MODE = 6;
/**
 * Data octets in one fragment: NTPsec and ntpd send at most 468 per datagram (CTL_MAX_DATA_LEN) and refuse a
 * request with more. Responses are checked against this by default.
 */
export const MODE6_MAX_FRAGMENT_DATA = 468;
/**
 * Version we send: 2, what ntpq sends (NTP_OLDVERSION + 1). ntpd answers versions 1..4 with the version of the
 * request, and ntpq's tally characters (" x.-+#*o") assume anything above 1.
 */
export const MODE6_DEFAULT_VERSION = 2;
/** RFC 9327 §2: versions a response may carry (ntpd: NTP_OLDVERSION..NTP_VERSION). */
export const MODE6_MIN_VERSION = 1;
export const MODE6_MAX_VERSION = 4;
/** The whole answer's data is addressed by a 16-bit offset (RFC 9327 §2). */
export const MODE6_MAX_OFFSET = 0xffff;
/** RFC 9327 §2 flag bits in the second octet. */
export const MODE6_RESPONSE_BIT = 0x80;
export const MODE6_ERROR_BIT = 0x40;
export const MODE6_MORE_BIT = 0x20;
export const MODE6_OPCODE_MASK = 0x1f;
/** Key id (4) + the digest lengths NTP uses (16: MD5, AES-CMAC; 20: SHA-1). */
export const MODE6_MAC_LENGTHS: readonly number[] = [20, 24];

/** RFC 9327 §2 opcodes (SETTRAP, ASYNCMSG, SAVECONFIG and UNSETTRAP are gone from NTPsec). */
export const Mode6Opcode = {
  Unspecified: 0,
  ReadStatus: 1,
  ReadVariables: 2,
  WriteVariables: 3,
  ReadClock: 4,
  WriteClock: 5,
  SetTrap: 6,
  AsyncMessage: 7,
  Configure: 8,
  SaveConfig: 9,
  ReadMru: 10,
  ReadOrderedList: 11,
  RequestNonce: 12,
  UnsetTrap: 31,
} as const;

const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'UNSPECIFIED',
  1: 'READSTAT',
  2: 'READVAR',
  3: 'WRITEVAR',
  4: 'READCLOCK',
  5: 'WRITECLOCK',
  6: 'SETTRAP',
  7: 'ASYNCMSG',
  8: 'CONFIGURE',
  9: 'SAVECONFIG',
  10: 'READ_MRU',
  11: 'READ_ORDLIST_A',
  12: 'REQ_NONCE',
  31: 'UNSETTRAP',
};

/** Name of an opcode (`READVAR`), or `OPCODE_<n>` for one without a name. */
export function mode6OpcodeName(opcode: number): string {
  return OPCODE_NAMES[opcode] ?? `OPCODE_${opcode}`;
}

/** RFC 9327 §3.4: error codes carried in the high octet of the status word when E is set. */
export const Mode6ErrorCode = {
  Unspecified: 0,
  AuthFailure: 1,
  BadFormat: 2,
  UnknownOpcode: 3,
  UnknownAssociation: 4,
  UnknownVariable: 5,
  BadValue: 6,
  PermissionDenied: 7,
} as const;

export type Mode6ErrorName =
  | 'UNSPECIFIED'
  | 'AUTH_FAILURE'
  | 'BAD_FORMAT'
  | 'UNKNOWN_OPCODE'
  | 'UNKNOWN_ASSOCIATION'
  | 'UNKNOWN_VARIABLE'
  | 'BAD_VALUE'
  | 'PERMISSION_DENIED';

const ERROR_NAMES: readonly Mode6ErrorName[] = [
  'UNSPECIFIED',
  'AUTH_FAILURE',
  'BAD_FORMAT',
  'UNKNOWN_OPCODE',
  'UNKNOWN_ASSOCIATION',
  'UNKNOWN_VARIABLE',
  'BAD_VALUE',
  'PERMISSION_DENIED',
];

/** `{ known: name }` for the RFC 9327 §3.4 codes, `{ unknown: code }` for the rest (kept, never defaulted). */
export type Mode6ErrorInfo = { readonly known: Mode6ErrorName; readonly code: number } | { readonly unknown: number; readonly code: number };

export function describeMode6Error(code: number): Mode6ErrorInfo {
  const name = ERROR_NAMES[code];
  return name !== undefined ? { known: name, code } : { unknown: code, code };
}

/** Name of an error code, `ERROR_<n>` for one RFC 9327 does not define. */
export function mode6ErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `ERROR_${code}`;
}

/** The key id and digest found after the data; `offset` is where it starts (the MAC covers [0, offset)). */
export interface Mode6Mac {
  readonly keyId: number;
  readonly digest: Uint8Array;
  readonly offset: number;
}

export interface Mode6Packet {
  readonly leap: number;
  readonly version: number;
  readonly response: boolean;
  readonly error: boolean;
  readonly more: boolean;
  readonly opcode: number;
  readonly sequence: number;
  /** Whole status word: a system/peer/clock status, or the error code in the high octet when `error`. */
  readonly status: number;
  readonly associationId: number;
  readonly offset: number;
  readonly count: number;
  /** The `count` data octets (a view into the datagram). */
  readonly data: Uint8Array;
  readonly mac: Mode6Mac | null;
  /** Octets after the padded data that are neither padding nor a recognised MAC (ignored, as ntpq does). */
  readonly extraLength: number;
}

export interface Mode6DecodeOptions {
  /** Expected digest length (16 or 20) when the request was authenticated: finds the MAC unambiguously. */
  readonly macLength?: number;
  /** Largest data count accepted in one datagram. Default 468 (MODE6_MAX_FRAGMENT_DATA). */
  readonly maxFragmentData?: number;
}

export const Mode6DecodeErrors = {
  TOO_SHORT: 'MODE6_TOO_SHORT',
  NOT_MODE6: 'MODE6_NOT_MODE6',
  BAD_VERSION: 'MODE6_BAD_VERSION',
  NOT_RESPONSE: 'MODE6_NOT_RESPONSE',
  NOT_PADDED: 'MODE6_NOT_PADDED',
  COUNT_BEYOND_DATAGRAM: 'MODE6_COUNT_BEYOND_DATAGRAM',
  FRAGMENT_TOO_LARGE: 'MODE6_FRAGMENT_TOO_LARGE',
  OFFSET_BEYOND_LIMIT: 'MODE6_OFFSET_BEYOND_LIMIT',
} as const;

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

function findMac(bytes: Uint8Array, dataEnd: number, macLength: number | undefined): Mode6Mac | null {
  const candidates = [roundUp(dataEnd, 8), roundUp(dataEnd, 4)];
  for (const at of candidates) {
    const rest = bytes.length - at;
    if (rest < 0) continue;
    const fits = macLength !== undefined ? rest === 4 + macLength : MODE6_MAC_LENGTHS.includes(rest);
    if (fits) return { keyId: readU32(bytes, at), digest: bytes.subarray(at + 4), offset: at };
  }
  return null;
}

/**
 * Decodes any control message, request or response (the fake servers of the tests decode requests with it).
 * Total: never throws.
 */
export function decodeMode6Packet(bytes: Uint8Array, options?: Mode6DecodeOptions): Result<Mode6Packet> {
  if (bytes.length < MODE6_HEADER_LENGTH) {
    return decodeError(Mode6DecodeErrors.TOO_SHORT, `${bytes.length} octets is shorter than the 12-octet control header`, bytes.length);
  }
  const first = bytes[0] as number;
  const mode = first & 7;
  if (mode !== MODE6_MODE) return decodeError(Mode6DecodeErrors.NOT_MODE6, `mode ${mode} is not a control message`, 0);
  const version = (first >>> 3) & 7;
  if (version < MODE6_MIN_VERSION || version > MODE6_MAX_VERSION) {
    return decodeError(Mode6DecodeErrors.BAD_VERSION, `control message version ${version} is outside 1..4`, 0);
  }
  // RFC 9327 §2: the datagram is padded to a 32-bit boundary; ntpq drops one that is not.
  if (bytes.length % 4 !== 0) return decodeError(Mode6DecodeErrors.NOT_PADDED, `${bytes.length} octets is not a multiple of 4`, bytes.length);
  const count = readU16(bytes, 10);
  const offset = readU16(bytes, 8);
  if (count > bytes.length - MODE6_HEADER_LENGTH) {
    return decodeError(Mode6DecodeErrors.COUNT_BEYOND_DATAGRAM, `count ${count} exceeds the ${bytes.length - MODE6_HEADER_LENGTH} octets after the header`, 10);
  }
  const maxFragmentData = options?.maxFragmentData ?? MODE6_MAX_FRAGMENT_DATA;
  if (count > maxFragmentData) {
    return decodeError(Mode6DecodeErrors.FRAGMENT_TOO_LARGE, `count ${count} exceeds the ${maxFragmentData}-octet fragment limit`, 10);
  }
  if (offset + count > MODE6_MAX_OFFSET) {
    return decodeError(Mode6DecodeErrors.OFFSET_BEYOND_LIMIT, `data at ${offset}+${count} runs past the 16-bit offset space`, 8);
  }
  const dataEnd = MODE6_HEADER_LENGTH + count;
  const mac = findMac(bytes, dataEnd, options?.macLength);
  const paddedEnd = Math.min(bytes.length, roundUp(dataEnd, 4));
  const second = bytes[1] as number;
  return ok({
    leap: first >>> 6,
    version,
    response: (second & MODE6_RESPONSE_BIT) !== 0,
    error: (second & MODE6_ERROR_BIT) !== 0,
    more: (second & MODE6_MORE_BIT) !== 0,
    opcode: second & MODE6_OPCODE_MASK,
    sequence: readU16(bytes, 2),
    status: readU16(bytes, 4),
    associationId: readU16(bytes, 6),
    offset,
    count,
    data: bytes.subarray(MODE6_HEADER_LENGTH, dataEnd),
    mac,
    extraLength: mac === null ? bytes.length - paddedEnd : 0,
  });
}

/** Decodes a datagram that must be a response (R bit set). Total: never throws. */
export function decodeMode6Response(bytes: Uint8Array, options?: Mode6DecodeOptions): Result<Mode6Packet> {
  const packet = decodeMode6Packet(bytes, options);
  if (packet.ok && !packet.value.response) return decodeError(Mode6DecodeErrors.NOT_RESPONSE, 'the R bit is clear: a request, not a response', 1);
  return packet;
}

/** The error code of an error response (RFC 9327 §3.4: high octet of the status word). */
export function mode6ErrorCodeOf(packet: Pick<Mode6Packet, 'status'>): number {
  return packet.status >>> 8;
}

export interface Mode6PacketInit {
  readonly opcode: number;
  readonly sequence: number;
  readonly associationId?: number;
  readonly status?: number;
  readonly offset?: number;
  readonly response?: boolean;
  readonly error?: boolean;
  readonly more?: boolean;
  readonly leap?: number;
  readonly version?: number;
  /** Text is sent as latin1 (one octet per character, as ntpd reads it). */
  readonly data?: Uint8Array | string;
  /**
   * Count to write instead of the data length: only for tests that need a lying header. The data is still
   * written as given.
   */
  readonly countOverride?: number;
}

export interface Mode6SignOptions {
  /**
   * Where the MAC starts: 8 (the next multiple of 8, for requests and data responses) or 4 (right after the
   * 4-octet padding: NTPsec's header-only error responses). Default 8.
   */
  readonly alignment?: 4 | 8;
}

function checkField(value: number, max: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new UsageError('MODE6_FIELD_RANGE', `${name} ${value} is outside 0..${max}`);
}

/** Latin1 bytes of `text`; every character must be in U+0000..U+00FF. */
export function mode6TextBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new UsageError('MODE6_NOT_LATIN1', `character U+${c.toString(16).padStart(4, '0')} at ${i} cannot be sent in a control message`);
    out[i] = c;
  }
  return out;
}

/**
 * Encodes any control message: header, data, zero padding to 4 octets, and with `key` zero padding to
 * `alignment` then key id + digest over everything before it (RFC 9327 §2). Throws UsageError on fields
 * outside their range or data over 468 octets.
 */
export function encodeMode6Packet(init: Mode6PacketInit, key?: SymmetricKey, sign?: Mode6SignOptions): Uint8Array {
  const data = typeof init.data === 'string' ? mode6TextBytes(init.data) : (init.data ?? new Uint8Array(0));
  if (data.length > MODE6_MAX_FRAGMENT_DATA) {
    throw new UsageError('MODE6_DATA_TOO_LONG', `${data.length} data octets exceed the ${MODE6_MAX_FRAGMENT_DATA} one control message carries`);
  }
  const version = init.version ?? MODE6_DEFAULT_VERSION;
  checkField(init.opcode, MODE6_OPCODE_MASK, 'opcode');
  checkField(init.sequence, 0xffff, 'sequence');
  checkField(init.associationId ?? 0, 0xffff, 'associationId');
  checkField(init.status ?? 0, 0xffff, 'status');
  checkField(init.offset ?? 0, 0xffff, 'offset');
  checkField(init.leap ?? 0, 3, 'leap');
  checkField(version, 7, 'version');
  const count = init.countOverride ?? data.length;
  checkField(count, 0xffff, 'count');
  const padded = roundUp(MODE6_HEADER_LENGTH + data.length, 4);
  let macAt = padded;
  let total = padded;
  if (key !== undefined) {
    checkField(key.keyId, 0xffff_ffff, 'keyId');
    macAt = roundUp(padded, sign?.alignment ?? 8);
    total = macAt + 4 + SYMMETRIC_MAC_DIGEST_LENGTH[key.algorithm];
  }
  const out = new Uint8Array(total);
  out[0] = ((init.leap ?? 0) << 6) | (version << 3) | MODE6_MODE;
  out[1] = (init.response === true ? MODE6_RESPONSE_BIT : 0) | (init.error === true ? MODE6_ERROR_BIT : 0) | (init.more === true ? MODE6_MORE_BIT : 0) | init.opcode;
  writeU16(out, 2, init.sequence);
  writeU16(out, 4, init.status ?? 0);
  writeU16(out, 6, init.associationId ?? 0);
  writeU16(out, 8, init.offset ?? 0);
  writeU16(out, 10, count);
  out.set(data, MODE6_HEADER_LENGTH);
  if (key !== undefined) {
    writeU32(out, macAt, key.keyId);
    out.set(computeSymmetricMac(key, out.subarray(0, macAt)), macAt + 4);
  }
  return out;
}

export interface Mode6RequestInit {
  readonly opcode: number;
  readonly sequence: number;
  readonly associationId?: number;
  readonly data?: Uint8Array | string;
  readonly version?: number;
}

/**
 * A request: R, E and M clear, offset 0, status 0 (RFC 9327 §2). With `key`, the MAC starts at the first
 * multiple of 8 after the data, where ntpd looks for it.
 */
export function encodeMode6Request(request: Mode6RequestInit, key?: SymmetricKey): Uint8Array {
  return encodeMode6Packet(
    {
      opcode: request.opcode,
      sequence: request.sequence,
      ...(request.associationId !== undefined ? { associationId: request.associationId } : {}),
      ...(request.data !== undefined ? { data: request.data } : {}),
      ...(request.version !== undefined ? { version: request.version } : {}),
    },
    key,
  );
}

/** True when the MAC of `packet` (decoded from `bytes`) verifies under `key`. False when there is none. */
export function verifyMode6Mac(bytes: Uint8Array, packet: Pick<Mode6Packet, 'mac'>, key: SymmetricKey): boolean {
  const mac = packet.mac;
  if (mac === null || mac.keyId !== key.keyId) return false;
  return verifySymmetricMac(key, bytes.subarray(0, mac.offset), mac.digest);
}
