/**
 * EKS messages (docs/eks.md §2): the one request and the one response of an exchange, as values.
 *
 * Framing is NTS-KE's (RFC 8915 §4): `decodeEksMessage` (or a decoder from `createEksDecoder`, fed by the TLS
 * socket) yields the raw records, and `parseEksRequest` / `parseEksResponse` judge them against the record table.
 * Parsers never throw: a broken message gives a coded `EksViolation`, which also says which Error record a server
 * answers with (docs/eks.md §2, error codes). Encoders throw `UsageError` for values the wire cannot carry.
 */

import { DecodeError, type Result, UsageError, fail, ok } from '../errors.js';
import { NEED_DATA, RecordDecoder, type RecordDecoderOptions } from '../ntske/decoder.js';
import { RECORD_HEADER_LENGTH, type RawRecord, encodeRawRecords } from '../ntske/framing.js';
import { MAX_SERVER_NAME_LENGTH, serverNameProblem } from '../ntske/records.js';
import {
  EKS_AES128CMAC_KEY_LENGTH,
  EKS_MAX_BODY_LENGTH,
  EKS_MAX_MESSAGE_LENGTH,
  EKS_MAX_RECORDS,
  EKS_NTP_DEFAULT_PORT,
  EKS_RENEW_PROOF_LENGTH,
  EKS_TOKEN_MAX_LENGTH,
  EksErrorCode,
  EksMacAlgorithm,
  EksRecordType,
  isU16,
  isU32,
} from './records.js';

export interface EksRequest {
  /** MAC algorithm ids in the client's order of preference (docs/eks.md §2); at least one. */
  algorithms: number[];
  /** docs/eks.md §6: sent when the server requires one (or the operator configured one). */
  token: string | null;
  /** docs/eks.md §5: the key held and the proof of possession bound to this TLS connection. */
  renew: { keyId: number; proof: Uint8Array } | null;
}

export interface EksKeyResponse {
  algorithm: number;
  keyId: number;
  key: Uint8Array;
  /** Unix time in seconds (u64 on the wire, within Number.MAX_SAFE_INTEGER here). */
  expirySeconds: number;
  /** Seconds from the response to the expiry: what a client with a wrong clock schedules from (§2). */
  lifetimeSeconds: number;
  /** Where to send NTP; null means the EKS server's address. */
  ntpServer: string | null;
  /** null means 123. */
  ntpPort: number | null;
  warnings: number[];
}

export type EksParsedResponse =
  | ({ kind: 'key' } & EksKeyResponse)
  | {
      kind: 'error';
      errorCode: number;
      warnings: number[];
    };

/** Stable codes of `EksViolation`s (and of `decodeEksMessage` failures, which come from the record decoder). */
export const EksViolationCodes = {
  /** §1: a critical record of an unknown type. Answered with Error 0; takes precedence over every other code. */
  UNKNOWN_CRITICAL: 'EKS_UNKNOWN_CRITICAL',
  /** §2: the record table sets the C bit on types 0-9 (as RFC 8915 §4.1.1-§4.1.4 does on End of Message to Warning). */
  CRITICAL_BIT_MISSING: 'EKS_CRITICAL_BIT_MISSING',
  /** §2: End of Message is last, once. */
  MISSING_END: 'EKS_MISSING_END',
  END_NOT_LAST: 'EKS_END_NOT_LAST',
  /** §2: every record but Warning appears at most once. */
  DUPLICATE_RECORD: 'EKS_DUPLICATE_RECORD',
  /** §2: a body of the wrong length or value (odd list, short Renew, key id 0, port 0, ...). */
  BAD_BODY: 'EKS_BAD_BODY',
  /** §2: MAC Algorithm is required in both directions. */
  MISSING_ALGORITHM: 'EKS_MISSING_ALGORITHM',
  /** §2: a request offers at least one algorithm. */
  EMPTY_ALGORITHM_LIST: 'EKS_EMPTY_ALGORITHM_LIST',
  /** §2: a Token is 1..256 octets of UTF-8. */
  BAD_TOKEN: 'EKS_BAD_TOKEN',
  /** §2: Error, Warning, Key Id, Key, Expiry, Lifetime, NTP Server and NTP Port are never in a request. */
  RESPONSE_RECORD_IN_REQUEST: 'EKS_RESPONSE_RECORD_IN_REQUEST',
  /** §2: Token and Renew are never in a response. */
  REQUEST_RECORD_IN_RESPONSE: 'EKS_REQUEST_RECORD_IN_RESPONSE',
  /** §2: a response names exactly one algorithm. */
  ALGORITHM_COUNT: 'EKS_ALGORITHM_COUNT',
  /** §2: Key Id, Key, Expiry and Lifetime are each required in a key response. */
  MISSING_RECORD: 'EKS_MISSING_RECORD',
  /** §3: key id 0 is not a key (RFC 5905 §7.4 uses it for the crypto-NAK). */
  BAD_KEY_ID: 'EKS_BAD_KEY_ID',
  /** §2: a key is not empty, and is 16 octets for AES-128-CMAC. */
  BAD_KEY: 'EKS_BAD_KEY',
  /** §2: an expiry past Number.MAX_SAFE_INTEGER seconds cannot be held exactly. */
  EXPIRY_RANGE: 'EKS_EXPIRY_RANGE',
  /** §2: ASCII host name or address (checked as RFC 8915 §4.1.7 Server bodies are). */
  BAD_NTP_SERVER: 'EKS_BAD_NTP_SERVER',
  /** §2: an Error record is alone with End of Message (Warnings aside). */
  ERROR_NOT_ALONE: 'EKS_ERROR_NOT_ALONE',
  /** From `decodeEksMessage`: the bytes end before End of Message. */
  TRUNCATED: 'EKS_TRUNCATED',
} as const;

type ViolationKey = keyof typeof EksViolationCodes;

/** A message that breaks docs/eks.md §2, with the Error code a server answers it with (0 or 1). */
export class EksViolation extends DecodeError {
  constructor(
    code: string,
    message: string,
    /** docs/eks.md §2 error code: 0 for an unknown critical record, 1 (Bad Request) for everything else. */
    readonly errorCode: number,
    offset?: number,
  ) {
    super(code, message, offset);
  }
}

function violation(key: ViolationKey, message: string, offset?: number): { readonly ok: false; readonly error: EksViolation } {
  const errorCode = key === 'UNKNOWN_CRITICAL' ? EksErrorCode.UNRECOGNIZED_CRITICAL_RECORD : EksErrorCode.BAD_REQUEST;
  return fail(new EksViolation(EksViolationCodes[key], message, errorCode, offset));
}

// ---------------------------------------------------------------------------------------------------------------
// Record table (docs/eks.md §2).

const NAMES: readonly string[] = [
  'End of Message',
  'MAC Algorithm',
  'Error',
  'Warning',
  'Token',
  'Renew',
  'Key Id',
  'Key',
  'Expiry',
  'Lifetime',
  'NTP Server',
  'NTP Port',
];

function recordName(type: number): string {
  return NAMES[type] ?? `type ${type}`;
}

function isKnown(type: number): boolean {
  return type <= EksRecordType.NTP_PORT;
}

/** Column C of the table: set on everything but NTP Server and NTP Port. */
function criticalRequired(type: number): boolean {
  return type < EksRecordType.NTP_SERVER;
}

type Role = 'request' | 'response';

const REQUEST_ONLY: ReadonlySet<number> = new Set([EksRecordType.TOKEN, EksRecordType.RENEW]);

function allowedIn(role: Role, type: number): boolean {
  const shared = type === EksRecordType.END_OF_MESSAGE || type === EksRecordType.MAC_ALGORITHM;
  return shared || (role === 'request') === REQUEST_ONLY.has(type);
}

/** Called with each known, allowed record in order; returns the violation it finds, if any. */
type Visit = (type: number, body: Uint8Array, bodyOffset: number) => { readonly ok: false; readonly error: EksViolation } | undefined;

/**
 * The rules common to both directions, in record order after the unknown-critical scan. Offsets are the
 * records' positions in the message as the decoder read them (record lengths summed).
 */
function walk(role: Role, records: readonly RawRecord[], visit: Visit): { readonly ok: false; readonly error: EksViolation } | undefined {
  const offsets: number[] = [];
  let position = 0;
  for (const r of records) {
    offsets.push(position);
    position += RECORD_HEADER_LENGTH + r.body.length;
  }
  // §1: an unrecognised critical record has its own error code (RFC 8915 §4.1.3), so it wins over any other fault.
  const unknown = records.findIndex((r) => r.critical && !isKnown(r.type));
  if (unknown >= 0) {
    return violation('UNKNOWN_CRITICAL', `critical record of unknown type ${records[unknown]?.type}`, offsets[unknown]);
  }
  const seen = new Set<number>();
  for (const [i, r] of records.entries()) {
    const at = offsets[i] ?? 0;
    if (!isKnown(r.type)) continue; // §1: a non-critical record we do not understand is ignored.
    const name = recordName(r.type);
    if (r.type === EksRecordType.END_OF_MESSAGE && i !== records.length - 1) {
      return violation('END_NOT_LAST', `End of Message is record ${i + 1} of ${records.length}`, at);
    }
    if (!allowedIn(role, r.type)) {
      const key = role === 'request' ? 'RESPONSE_RECORD_IN_REQUEST' : 'REQUEST_RECORD_IN_RESPONSE';
      return violation(key, `${name} record in a ${role}`, at);
    }
    if (criticalRequired(r.type) && !r.critical) return violation('CRITICAL_BIT_MISSING', `${name} record without the critical bit`, at);
    if (r.type !== EksRecordType.WARNING) {
      if (seen.has(r.type)) return violation('DUPLICATE_RECORD', `more than one ${name} record`, at);
      seen.add(r.type);
    }
    const bad = visit(r.type, r.body, at + RECORD_HEADER_LENGTH);
    if (bad !== undefined) return bad;
  }
  const last = records[records.length - 1];
  if (last?.type !== EksRecordType.END_OF_MESSAGE) return violation('MISSING_END', `${role} has no End of Message record`, position);
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies.

function readU16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

function readU32(b: Uint8Array, at: number): number {
  return readU16(b, at) * 0x10000 + readU16(b, at + 2);
}

function readU16List(body: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < body.length; i += 2) out.push(readU16(body, i));
  return out;
}

function u16Body(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => {
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function u32Body(value: number): Uint8Array {
  return Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

function u64Body(value: number): Uint8Array {
  const out = new Uint8Array(8);
  out.set(u32Body(Math.floor(value / 0x1_0000_0000)), 0);
  out.set(u32Body(value % 0x1_0000_0000), 4);
  return out;
}

/** `fatal` rejects ill-formed UTF-8; `ignoreBOM` keeps a leading U+FEFF, so the string holds every octet sent. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const ENCODER = new TextEncoder();

function decodeUtf8(body: Uint8Array): string | undefined {
  try {
    return UTF8.decode(body);
  } catch {
    return undefined;
  }
}

function usage(code: string, message: string): never {
  throw new UsageError(code, message);
}

/** A list of u16s, each checked. */
function checkU16s(values: readonly number[], what: string): void {
  for (const v of values) if (!isU16(v)) usage('EKS_VALUE_RANGE', `${what} ${v} is not a u16`);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding.

function record(type: number, body: Uint8Array, critical = criticalRequired(type)): RawRecord {
  return { type, critical, body };
}

const END: RawRecord = record(EksRecordType.END_OF_MESSAGE, new Uint8Array(0));

/** Appends End of Message and checks the §1 limits, so that what we send the peer's decoder accepts. */
function encodeMessage(records: readonly RawRecord[]): Uint8Array {
  const all = [...records, END];
  if (all.length > EKS_MAX_RECORDS) usage('EKS_MESSAGE_TOO_LONG', `${all.length} records exceed the limit of ${EKS_MAX_RECORDS}`);
  for (const r of all) {
    if (r.body.length > EKS_MAX_BODY_LENGTH) {
      usage('EKS_MESSAGE_TOO_LONG', `${recordName(r.type)} body of ${r.body.length} octets exceeds ${EKS_MAX_BODY_LENGTH}`);
    }
  }
  const bytes = encodeRawRecords(all);
  if (bytes.length > EKS_MAX_MESSAGE_LENGTH) usage('EKS_MESSAGE_TOO_LONG', `message of ${bytes.length} octets exceeds ${EKS_MAX_MESSAGE_LENGTH}`);
  return bytes;
}

function tokenBody(token: string): Uint8Array {
  const body = ENCODER.encode(token);
  // TextEncoder replaces lone surrogates with U+FFFD: such a string would not arrive as sent.
  if (decodeUtf8(body) !== token) usage('EKS_BAD_TOKEN', 'token is not well-formed Unicode');
  if (body.length < 1 || body.length > EKS_TOKEN_MAX_LENGTH) usage('EKS_BAD_TOKEN', `token of ${body.length} octets is outside 1..${EKS_TOKEN_MAX_LENGTH}`);
  return body;
}

function checkKeyId(keyId: number): void {
  if (!isU32(keyId) || keyId === 0) usage('EKS_VALUE_RANGE', `key id ${keyId} is outside 1..0xffffffff`);
}

/** docs/eks.md §2: MAC Algorithm, Token?, Renew?, End of Message, all critical. */
export function encodeEksRequest(req: EksRequest): Uint8Array {
  if (req.algorithms.length === 0) usage('EKS_EMPTY_ALGORITHM_LIST', 'a request offers at least one algorithm');
  checkU16s(req.algorithms, 'algorithm id');
  const records = [record(EksRecordType.MAC_ALGORITHM, u16Body(req.algorithms))];
  if (req.token !== null) records.push(record(EksRecordType.TOKEN, tokenBody(req.token)));
  if (req.renew !== null) {
    checkKeyId(req.renew.keyId);
    if (req.renew.proof.length !== EKS_RENEW_PROOF_LENGTH) {
      usage('EKS_BAD_PROOF', `Renew proof of ${req.renew.proof.length} octets, not ${EKS_RENEW_PROOF_LENGTH}`);
    }
    const body = new Uint8Array(4 + EKS_RENEW_PROOF_LENGTH);
    body.set(u32Body(req.renew.keyId), 0);
    body.set(req.renew.proof, 4);
    records.push(record(EksRecordType.RENEW, body));
  }
  return encodeMessage(records);
}

function checkKey(algorithm: number, key: Uint8Array): string | undefined {
  if (key.length === 0) return 'empty key';
  if (algorithm === EksMacAlgorithm.AES128CMAC && key.length !== EKS_AES128CMAC_KEY_LENGTH) {
    return `AES-128-CMAC key of ${key.length} octets, not ${EKS_AES128CMAC_KEY_LENGTH}`;
  }
  return undefined;
}

/**
 * docs/eks.md §2: MAC Algorithm (one id), Key Id, Key, Expiry, Lifetime, NTP Server (non-critical) when set, NTP
 * Port (non-critical) when set and not 123, any Warnings, End of Message.
 */
export function encodeEksKeyResponse(resp: EksKeyResponse): Uint8Array {
  checkU16s([resp.algorithm], 'algorithm id');
  checkKeyId(resp.keyId);
  const keyProblem = checkKey(resp.algorithm, resp.key);
  if (keyProblem !== undefined) usage('EKS_BAD_KEY', keyProblem);
  if (!Number.isSafeInteger(resp.expirySeconds) || resp.expirySeconds < 0) usage('EKS_VALUE_RANGE', `expiry ${resp.expirySeconds} is not a safe u64`);
  if (!isU32(resp.lifetimeSeconds)) usage('EKS_VALUE_RANGE', `lifetime ${resp.lifetimeSeconds} is not a u32`);
  checkU16s(resp.warnings, 'warning code');
  const records = [
    record(EksRecordType.MAC_ALGORITHM, u16Body([resp.algorithm])),
    record(EksRecordType.KEY_ID, u32Body(resp.keyId)),
    record(EksRecordType.KEY, resp.key),
    record(EksRecordType.EXPIRY, u64Body(resp.expirySeconds)),
    record(EksRecordType.LIFETIME, u32Body(resp.lifetimeSeconds)),
  ];
  if (resp.ntpServer !== null) {
    const problem = serverNameProblem(resp.ntpServer);
    if (problem !== undefined) usage('EKS_BAD_NTP_SERVER', problem);
    records.push(record(EksRecordType.NTP_SERVER, Uint8Array.from(resp.ntpServer, (c) => c.charCodeAt(0))));
  }
  if (resp.ntpPort !== null && resp.ntpPort !== EKS_NTP_DEFAULT_PORT) {
    if (!isU16(resp.ntpPort) || resp.ntpPort === 0) usage('EKS_VALUE_RANGE', `NTP port ${resp.ntpPort} is outside 1..65535`);
    records.push(record(EksRecordType.NTP_PORT, u16Body([resp.ntpPort])));
  }
  for (const w of resp.warnings) records.push(record(EksRecordType.WARNING, u16Body([w])));
  return encodeMessage(records);
}

/** docs/eks.md §2: an Error record alone with End of Message. */
export function encodeEksError(code: number): Uint8Array {
  checkU16s([code], 'error code');
  return encodeMessage([record(EksRecordType.ERROR, u16Body([code]))]);
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing.

/** Judges a request (records as the decoder returned them, End of Message included) against docs/eks.md §2. */
export function parseEksRequest(records: readonly RawRecord[]): Result<EksRequest, EksViolation> {
  let algorithms: number[] | undefined;
  let token: string | null = null;
  let renew: EksRequest['renew'] = null;
  const bad = walk('request', records, (type, body, at) => {
    switch (type) {
      case EksRecordType.END_OF_MESSAGE:
        return body.length === 0 ? undefined : violation('BAD_BODY', `End of Message body of ${body.length} octets`, at);
      case EksRecordType.MAC_ALGORITHM:
        if (body.length % 2 !== 0) return violation('BAD_BODY', `MAC Algorithm body has odd length ${body.length}`, at);
        if (body.length === 0) return violation('EMPTY_ALGORITHM_LIST', 'request offers no MAC algorithm', at);
        algorithms = readU16List(body);
        return undefined;
      case EksRecordType.TOKEN: {
        if (body.length === 0 || body.length > EKS_TOKEN_MAX_LENGTH) {
          return violation('BAD_TOKEN', `token of ${body.length} octets is outside 1..${EKS_TOKEN_MAX_LENGTH}`, at);
        }
        const text = decodeUtf8(body);
        if (text === undefined) return violation('BAD_TOKEN', 'token is not valid UTF-8', at);
        token = text;
        return undefined;
      }
      case EksRecordType.RENEW: {
        if (body.length !== 4 + EKS_RENEW_PROOF_LENGTH) {
          return violation('BAD_BODY', `Renew body of ${body.length} octets, not ${4 + EKS_RENEW_PROOF_LENGTH}`, at);
        }
        const keyId = readU32(body, 0);
        if (keyId === 0) return violation('BAD_BODY', 'Renew for key id 0', at);
        renew = { keyId, proof: body.slice(4) };
        return undefined;
      }
      default:
        return undefined; // walk() lets only request records through.
    }
  });
  if (bad !== undefined) return bad;
  if (algorithms === undefined) return violation('MISSING_ALGORITHM', 'request has no MAC Algorithm record');
  return ok({ algorithms, token, renew });
}

/** Judges a response (records as the decoder returned them, End of Message included) against docs/eks.md §2. */
export function parseEksResponse(records: readonly RawRecord[]): Result<EksParsedResponse> {
  let algorithms: number[] | undefined;
  let errorCode: number | undefined;
  const warnings: number[] = [];
  let keyId: number | undefined;
  let key: Uint8Array | undefined;
  let keyAt = 0;
  let expiry: number | undefined;
  let lifetime: number | undefined;
  let ntpServer: string | null = null;
  let ntpPort: number | null = null;
  const u16 = (name: string, body: Uint8Array, at: number): number | { readonly ok: false; readonly error: EksViolation } =>
    body.length === 2 ? readU16(body, 0) : violation('BAD_BODY', `${name} body of ${body.length} octets, not 2`, at);

  const bad = walk('response', records, (type, body, at) => {
    switch (type) {
      case EksRecordType.END_OF_MESSAGE:
        return body.length === 0 ? undefined : violation('BAD_BODY', `End of Message body of ${body.length} octets`, at);
      case EksRecordType.MAC_ALGORITHM:
        if (body.length % 2 !== 0) return violation('BAD_BODY', `MAC Algorithm body has odd length ${body.length}`, at);
        if (body.length !== 2) return violation('ALGORITHM_COUNT', `response names ${body.length / 2} MAC algorithms, not 1`, at);
        algorithms = readU16List(body);
        return undefined;
      case EksRecordType.ERROR: {
        const code = u16('Error', body, at);
        if (typeof code !== 'number') return code;
        errorCode = code;
        return undefined;
      }
      case EksRecordType.WARNING: {
        const code = u16('Warning', body, at);
        if (typeof code !== 'number') return code;
        warnings.push(code);
        return undefined;
      }
      case EksRecordType.KEY_ID:
        if (body.length !== 4) return violation('BAD_BODY', `Key Id body of ${body.length} octets, not 4`, at);
        keyId = readU32(body, 0);
        return keyId === 0 ? violation('BAD_KEY_ID', 'key id 0', at) : undefined;
      case EksRecordType.KEY:
        if (body.length === 0) return violation('BAD_KEY', 'empty key', at);
        key = body.slice();
        keyAt = at;
        return undefined;
      case EksRecordType.EXPIRY: {
        if (body.length !== 8) return violation('BAD_BODY', `Expiry body of ${body.length} octets, not 8`, at);
        const high = readU32(body, 0);
        // 2^53 - 1 = 0x1fffff_ffffffff: the high word must fit in 21 bits.
        if (high > 0x1fffff) return violation('EXPIRY_RANGE', 'expiry beyond Number.MAX_SAFE_INTEGER seconds', at);
        expiry = high * 0x1_0000_0000 + readU32(body, 4);
        return undefined;
      }
      case EksRecordType.LIFETIME:
        if (body.length !== 4) return violation('BAD_BODY', `Lifetime body of ${body.length} octets, not 4`, at);
        lifetime = readU32(body, 0);
        return undefined;
      case EksRecordType.NTP_SERVER: {
        // ASCII only: anything else is refused before a string is built from it.
        if (body.length > MAX_SERVER_NAME_LENGTH) return violation('BAD_NTP_SERVER', `NTP Server of ${body.length} octets`, at);
        if (body.some((b) => b < 0x21 || b > 0x7e)) return violation('BAD_NTP_SERVER', 'NTP Server is not printable ASCII', at);
        const name = String.fromCharCode(...body);
        const problem = serverNameProblem(name);
        if (problem !== undefined) return violation('BAD_NTP_SERVER', problem, at);
        ntpServer = name;
        return undefined;
      }
      case EksRecordType.NTP_PORT: {
        const port = u16('NTP Port', body, at);
        if (typeof port !== 'number') return port;
        if (port === 0) return violation('BAD_BODY', 'NTP port 0', at);
        ntpPort = port;
        return undefined;
      }
      default:
        return undefined;
    }
  });
  if (bad !== undefined) return bad;

  if (errorCode !== undefined) {
    const others = [algorithms, keyId, key, expiry, lifetime, ntpServer, ntpPort].some((v) => v !== undefined && v !== null);
    if (others) return violation('ERROR_NOT_ALONE', 'Error record together with key records');
    return ok({ kind: 'error', errorCode, warnings });
  }
  if (algorithms === undefined) return violation('MISSING_ALGORITHM', 'response has no MAC Algorithm record');
  if (keyId === undefined) return violation('MISSING_RECORD', 'response has no Key Id record');
  if (key === undefined) return violation('MISSING_RECORD', 'response has no Key record');
  if (expiry === undefined) return violation('MISSING_RECORD', 'response has no Expiry record');
  if (lifetime === undefined) return violation('MISSING_RECORD', 'response has no Lifetime record');
  const algorithm = algorithms[0] ?? 0;
  const keyProblem = checkKey(algorithm, key);
  if (keyProblem !== undefined) return violation('BAD_KEY', keyProblem, keyAt);
  return ok({ kind: 'key', algorithm, keyId, key, expirySeconds: expiry, lifetimeSeconds: lifetime, ntpServer, ntpPort, warnings });
}

// ---------------------------------------------------------------------------------------------------------------
// Framing.

/** docs/eks.md §1: the record decoder settings for either direction (one message, EKS limits, EKS_ codes). */
export const EKS_DECODER_OPTIONS: RecordDecoderOptions = Object.freeze({
  maxBodyLength: EKS_MAX_BODY_LENGTH,
  maxMessageLength: EKS_MAX_MESSAGE_LENGTH,
  maxRecords: EKS_MAX_RECORDS,
  singleMessage: true,
  endOfMessageType: EksRecordType.END_OF_MESSAGE,
  errorPrefix: 'EKS',
});

/** A stream decoder for one EKS message, for the shell to feed from the TLS socket. */
export function createEksDecoder(): RecordDecoder {
  return new RecordDecoder(EKS_DECODER_OPTIONS);
}

/**
 * The records of one complete message held in `bytes`. Framing faults fail with the decoder's codes
 * (EKS_RECORD_TOO_LONG, EKS_MESSAGE_TOO_LONG, EKS_TOO_MANY_RECORDS, EKS_DATA_AFTER_END) and a message without
 * End of Message with EKS_TRUNCATED. The records are not judged: pass them to parseEksRequest/parseEksResponse.
 */
export function decodeEksMessage(bytes: Uint8Array): Result<RawRecord[]> {
  const decoder = createEksDecoder();
  decoder.push(bytes);
  const records: RawRecord[] = [];
  for (;;) {
    const next = decoder.next();
    if (next === NEED_DATA) break;
    if (next instanceof DecodeError) return fail(next);
    records.push(next);
  }
  const end = decoder.end();
  return end === undefined ? ok(records) : fail(end);
}
