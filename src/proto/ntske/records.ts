/**
 * NTS-KE records (RFC 8915 §4.1): typed bodies on top of the generic framing in `framing.ts`.
 *
 * `fromRawRecord` validates a body against its record type and returns a coded `DecodeError` (NTSKE_...) for a
 * malformed one. It does not judge the critical bit or where a record appears: those are message-level rules,
 * checked by `message.ts`. Record types this module does not know come back as `{ kind: 'unknown', type,
 * critical, body }` and re-encode byte for byte.
 */

import { type Result, UsageError, decodeError, ok } from '../errors.js';
import { RECORD_HEADER_LENGTH, type RawRecord, encodeRawRecord } from './framing.js';
import { type RegistryValue, defineRegistry } from './registry.js';

/** NTS-KE record types (RFC 8915 §4.1, IANA registry §7.6). */
export const RecordType = {
  /** §4.1.1: empty body; MUST be the final record of every message; Critical Bit MUST be set. */
  END_OF_MESSAGE: 0,
  /** §4.1.2: list of u16 Protocol IDs; exactly once per message; Critical Bit MUST be set. */
  NEXT_PROTOCOL: 1,
  /** §4.1.3: u16 error code; Critical Bit MUST be set; never in requests. */
  ERROR: 2,
  /** §4.1.4: u16 warning code; Critical Bit MUST be set; never in requests. */
  WARNING: 3,
  /** §4.1.5: list of u16 AEAD algorithm ids; Critical Bit MAY be set. */
  AEAD_ALGORITHM: 4,
  /** §4.1.6: opaque cookie; Critical Bit SHOULD NOT be set; server only. */
  NEW_COOKIE: 5,
  /** §4.1.7: ASCII host name, IPv4 or IPv6 address of the NTP server; Critical Bit MAY be set. */
  SERVER: 6,
  /** §4.1.8: u16 UDP port of the NTP server; Critical Bit MAY be set. */
  PORT: 7,
} as const;

/** NTS Next Protocols registry (RFC 8915 §4.1.2, §7.7). */
export const NextProtocols = defineRegistry('next protocol', {
  /** §7.7: Protocol ID 0 is NTPv4. */
  NTPV4: 0,
});
export type NextProtocolId = RegistryValue<keyof typeof NextProtocols.values>;

/** NTS-KE error codes (RFC 8915 §4.1.3, §7.8). */
export const ErrorCodes = defineRegistry('NTS-KE error code', {
  /** §4.1.3: a critical record the peer does not understand. */
  UNRECOGNIZED_CRITICAL_RECORD: 0,
  /** §4.1.3: the request is malformed or violates the protocol. */
  BAD_REQUEST: 1,
  /** §4.1.3: the server cannot answer for a reason of its own. */
  INTERNAL_SERVER_ERROR: 2,
});
export type ErrorCode = RegistryValue<keyof typeof ErrorCodes.values>;

/** NTS-KE warning codes (RFC 8915 §4.1.4, §7.9): none are assigned yet. */
export const WarningCodes = defineRegistry('NTS-KE warning code', {});
export type WarningCode = RegistryValue<never>;

/**
 * AEAD algorithms (IANA "AEAD Algorithms" registry, RFC 5116 §7) that matter for NTS. Ids not listed here are
 * kept as `{ unknown: n }`.
 */
export const AeadAlgorithms = defineRegistry('AEAD algorithm', {
  /** RFC 5297 §6; mandatory to implement for NTPv4 servers (RFC 8915 §5.1). */
  AEAD_AES_SIV_CMAC_256: 15,
  /** RFC 5297 §6. */
  AEAD_AES_SIV_CMAC_384: 16,
  /** RFC 5297 §6. */
  AEAD_AES_SIV_CMAC_512: 17,
  /** RFC 8452 §8. */
  AEAD_AES_128_GCM_SIV: 30,
  /** RFC 8452 §8. */
  AEAD_AES_256_GCM_SIV: 31,
});
export type AeadAlgorithmId = RegistryValue<keyof typeof AeadAlgorithms.values>;

interface RecordBase {
  readonly critical: boolean;
}
export interface EndOfMessageRecord extends RecordBase {
  readonly kind: 'end-of-message';
}
export interface NextProtocolRecord extends RecordBase {
  readonly kind: 'next-protocol';
  readonly protocols: readonly NextProtocolId[];
}
export interface ErrorRecord extends RecordBase {
  readonly kind: 'error';
  readonly code: ErrorCode;
}
export interface WarningRecord extends RecordBase {
  readonly kind: 'warning';
  readonly code: WarningCode;
}
export interface AeadAlgorithmRecord extends RecordBase {
  readonly kind: 'aead-algorithm';
  readonly algorithms: readonly AeadAlgorithmId[];
}
export interface NewCookieRecord extends RecordBase {
  readonly kind: 'new-cookie';
  readonly cookie: Uint8Array;
}
export interface ServerRecord extends RecordBase {
  readonly kind: 'server';
  /** ASCII host name (A-labels), dotted-quad IPv4 or RFC 4291 text IPv6 address. */
  readonly server: string;
}
export interface PortRecord extends RecordBase {
  readonly kind: 'port';
  readonly port: number;
}
/** A record type not defined by RFC 8915 (or a private one, §7.6: 16384-32767), kept verbatim. */
export interface UnknownRecord extends RecordBase {
  readonly kind: 'unknown';
  readonly type: number;
  readonly body: Uint8Array;
}

export type NtsKeRecord =
  | EndOfMessageRecord
  | NextProtocolRecord
  | ErrorRecord
  | WarningRecord
  | AeadAlgorithmRecord
  | NewCookieRecord
  | ServerRecord
  | PortRecord
  | UnknownRecord;

/** §4.1.7 puts no explicit bound on the body; a DNS name has at most 253 text characters, IPv6 text 45. */
export const MAX_SERVER_NAME_LENGTH = 255;

// ---------------------------------------------------------------------------------------------------------------
// Constructors with the critical bit the RFC requires or recommends.

export function endOfMessage(): EndOfMessageRecord {
  return { kind: 'end-of-message', critical: true }; // §4.1.1 MUST
}

export function nextProtocolRecord(protocols: readonly NextProtocolId[]): NextProtocolRecord {
  return { kind: 'next-protocol', critical: true, protocols }; // §4.1.2 MUST
}

export function errorRecord(code: ErrorCode): ErrorRecord {
  return { kind: 'error', critical: true, code }; // §4.1.3 MUST
}

export function warningRecord(code: WarningCode): WarningRecord {
  return { kind: 'warning', critical: true, code }; // §4.1.4 MUST
}

/**
 * §4.1.5 says MAY; critical by default because a peer that ignored it could not derive the keys anyway, so
 * failing loudly (error 0) beats a silent mismatch.
 */
export function aeadAlgorithmRecord(algorithms: readonly AeadAlgorithmId[], critical = true): AeadAlgorithmRecord {
  return { kind: 'aead-algorithm', critical, algorithms };
}

export function newCookieRecord(cookie: Uint8Array): NewCookieRecord {
  return { kind: 'new-cookie', critical: false, cookie }; // §4.1.6 SHOULD NOT
}

/**
 * §4.1.7 says MAY; critical by default: a client that skipped it would use the NTS-KE server's address, where
 * the cookies may not be accepted.
 */
export function serverRecord(server: string, critical = true): ServerRecord {
  return { kind: 'server', critical, server };
}

/** §4.1.8 says MAY; critical by default for the same reason as `serverRecord`. */
export function portRecord(port: number, critical = true): PortRecord {
  return { kind: 'port', critical, port };
}

export function unknownRecord(type: number, critical: boolean, body: Uint8Array): UnknownRecord {
  return { kind: 'unknown', type, critical, body };
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies.

function u16List(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => {
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function u16(value: number, what: string): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new UsageError('NTSKE_VALUE_RANGE', `${what} ${value} is not a u16`);
  return u16List([value]);
}

function readU16List(body: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < body.length; i += 2) out.push(((body[i] ?? 0) << 8) | (body[i + 1] ?? 0));
  return out;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** RFC 4291 §2.2 text forms (full, "::"-compressed, with a trailing dotted quad); no zone id (RFC 6874). */
function ipv6Problem(text: string): string | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return 'IPv6 address with more than one "::"';
  const parts = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  let groups = 0;
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1 && !text.endsWith(':');
    if (last && part.includes('.')) {
      if (!DOTTED_QUAD.test(part)) return 'IPv6 address with a bad embedded IPv4 address';
      groups += 2;
    } else if (HEX_GROUP.test(part)) {
      groups += 1;
    } else {
      return 'not an IPv6 address in RFC 4291 text form';
    }
  }
  if (halves.length === 2 ? groups > 7 : groups !== 8) return 'IPv6 address with the wrong number of groups';
  return undefined;
}

/**
 * Checks the §4.1.7 body text: an FQDN in ASCII (internationalized labels only as A-labels), a dotted-decimal
 * IPv4 address, or an IPv6 address in RFC 4291 text form without a zone identifier. Returns the reason it is
 * not acceptable, or undefined.
 */
export function serverNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty server name';
  if (name.length > MAX_SERVER_NAME_LENGTH) return `server name longer than ${MAX_SERVER_NAME_LENGTH} characters`;
  if (name.includes(':')) return ipv6Problem(name);
  const labels = (name.endsWith('.') ? name.slice(0, -1) : name).split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) return `invalid host name label ${JSON.stringify(label)}`;
  }
  // A top-level label is never all digits (RFC 3696 §2), so such a name must be an IPv4 address.
  if (/^\d+$/.test(labels[labels.length - 1] ?? '') && !DOTTED_QUAD.test(name)) return 'not a dotted-decimal IPv4 address';
  return undefined;
}

function ascii(body: Uint8Array): string {
  let s = '';
  for (const b of body) s += String.fromCharCode(b);
  return s;
}

/** The raw form of a typed record. Throws `UsageError` for values the wire cannot carry. */
export function toRawRecord(record: NtsKeRecord): RawRecord {
  const critical = record.critical;
  switch (record.kind) {
    case 'end-of-message':
      return { type: RecordType.END_OF_MESSAGE, critical, body: new Uint8Array(0) };
    case 'next-protocol':
      return { type: RecordType.NEXT_PROTOCOL, critical, body: u16List(record.protocols.map((p) => NextProtocols.encode(p))) };
    case 'error':
      return { type: RecordType.ERROR, critical, body: u16(ErrorCodes.encode(record.code), 'error code') };
    case 'warning':
      return { type: RecordType.WARNING, critical, body: u16(WarningCodes.encode(record.code), 'warning code') };
    case 'aead-algorithm':
      return { type: RecordType.AEAD_ALGORITHM, critical, body: u16List(record.algorithms.map((a) => AeadAlgorithms.encode(a))) };
    case 'new-cookie':
      if (record.cookie.length === 0) throw new UsageError('NTSKE_EMPTY_COOKIE', 'a cookie cannot be empty');
      return { type: RecordType.NEW_COOKIE, critical, body: record.cookie };
    case 'server': {
      const problem = serverNameProblem(record.server);
      if (problem !== undefined) throw new UsageError('NTSKE_BAD_SERVER_NAME', problem);
      return { type: RecordType.SERVER, critical, body: Uint8Array.from(record.server, (c) => c.charCodeAt(0)) };
    }
    case 'port':
      return { type: RecordType.PORT, critical, body: u16(record.port, 'port') };
    case 'unknown':
      if (record.type <= RecordType.PORT) {
        throw new UsageError('NTSKE_UNKNOWN_RECORD_TYPE', `record type ${record.type} is defined by RFC 8915: use its typed form`);
      }
      return { type: record.type, critical, body: record.body };
  }
}

export function encodeRecord(record: NtsKeRecord): Uint8Array {
  return encodeRawRecord(toRawRecord(record));
}

/**
 * Types the body of a framed record. Total: any `RawRecord` gives a record or a coded `DecodeError`. `offset`
 * (the record's position in the stream, when known) is reported in errors.
 */
export function fromRawRecord(raw: RawRecord, offset?: number): Result<NtsKeRecord> {
  const { critical, body } = raw;
  const at = offset === undefined ? undefined : offset + RECORD_HEADER_LENGTH;
  const exactlyU16 = (code: string, what: string): Result<number> =>
    body.length === 2 ? ok(((body[0] ?? 0) << 8) | (body[1] ?? 0)) : decodeError(code, `${what} body must be 2 bytes, got ${body.length}`, at);
  const evenList = (what: string): Result<number[]> =>
    body.length % 2 === 0 ? ok(readU16List(body)) : decodeError('NTSKE_ODD_LIST_LENGTH', `${what} body has odd length ${body.length}`, at);

  switch (raw.type) {
    case RecordType.END_OF_MESSAGE:
      // §4.1.1: zero-length body.
      if (body.length !== 0) return decodeError('NTSKE_BAD_END_OF_MESSAGE', `End of Message body must be empty, got ${body.length} bytes`, at);
      return ok({ kind: 'end-of-message', critical });
    case RecordType.NEXT_PROTOCOL: {
      // §4.1.2: a response MAY be empty, so an empty list is valid here; the request rule is in message.ts.
      const list = evenList('Next Protocol');
      return list.ok ? ok({ kind: 'next-protocol', critical, protocols: list.value.map((n) => NextProtocols.decode(n)) }) : list;
    }
    case RecordType.ERROR: {
      const code = exactlyU16('NTSKE_BAD_ERROR_LENGTH', 'Error');
      return code.ok ? ok({ kind: 'error', critical, code: ErrorCodes.decode(code.value) }) : code;
    }
    case RecordType.WARNING: {
      const code = exactlyU16('NTSKE_BAD_WARNING_LENGTH', 'Warning');
      return code.ok ? ok({ kind: 'warning', critical, code: WarningCodes.decode(code.value) }) : code;
    }
    case RecordType.AEAD_ALGORITHM: {
      // §4.1.5: a response is empty when no offered algorithm is supported; the request rule is in message.ts.
      const list = evenList('AEAD Algorithm');
      return list.ok ? ok({ kind: 'aead-algorithm', critical, algorithms: list.value.map((n) => AeadAlgorithms.decode(n)) }) : list;
    }
    case RecordType.NEW_COOKIE:
      // §4.1.6: opaque, but an empty cookie could not be sent back in an NTS Cookie extension field (§5.4).
      if (body.length === 0) return decodeError('NTSKE_EMPTY_COOKIE', 'New Cookie record with an empty body', at);
      return ok({ kind: 'new-cookie', critical, cookie: body });
    case RecordType.SERVER: {
      // §4.1.7: ASCII only; anything else is rejected before building a string from it.
      if (body.length > MAX_SERVER_NAME_LENGTH) return decodeError('NTSKE_SERVER_NAME_TOO_LONG', `server name of ${body.length} bytes`, at);
      const bad = body.findIndex((b) => b < 0x21 || b > 0x7e);
      if (bad >= 0) return decodeError('NTSKE_BAD_SERVER_NAME', `server name has byte 0x${(body[bad] ?? 0).toString(16)} at ${bad}`, at);
      const server = ascii(body);
      const problem = serverNameProblem(server);
      if (problem !== undefined) return decodeError(body.length === 0 ? 'NTSKE_EMPTY_SERVER_NAME' : 'NTSKE_BAD_SERVER_NAME', problem, at);
      return ok({ kind: 'server', critical, server });
    }
    case RecordType.PORT: {
      // §4.1.8: exactly one u16.
      const port = exactlyU16('NTSKE_BAD_PORT_LENGTH', 'Port');
      return port.ok ? ok({ kind: 'port', critical, port: port.value }) : port;
    }
    default:
      return ok({ kind: 'unknown', type: raw.type, critical, body });
  }
}

/**
 * Decodes one complete record (header and body, nothing else) from `bytes`. Errors: NTSKE_TRUNCATED,
 * NTSKE_TRAILING_DATA, or a body error from `fromRawRecord`.
 */
export function decodeRecord(bytes: Uint8Array): Result<NtsKeRecord> {
  if (bytes.length < RECORD_HEADER_LENGTH) return decodeError('NTSKE_TRUNCATED', `record header needs 4 bytes, got ${bytes.length}`, 0);
  const word = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
  const length = ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0);
  const end = RECORD_HEADER_LENGTH + length;
  if (bytes.length < end) return decodeError('NTSKE_TRUNCATED', `record body needs ${length} bytes, got ${bytes.length - RECORD_HEADER_LENGTH}`, bytes.length);
  if (bytes.length > end) return decodeError('NTSKE_TRAILING_DATA', `${bytes.length - end} bytes after the record`, end);
  return fromRawRecord({ type: word & 0x7fff, critical: (word & 0x8000) !== 0, body: new Uint8Array(bytes.subarray(RECORD_HEADER_LENGTH, end)) }, 0);
}
