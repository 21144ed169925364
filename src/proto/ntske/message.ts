/**
 * Whole NTS-KE messages (RFC 8915 §4): encoding a record list, and a structured view of a received one.
 *
 * The collector reports what the peer sent and which RFC 8915 rules it broke; it takes no decisions (which
 * protocol or AEAD to pick, whether to reject) — those belong to the server and client logic.
 *
 * Theory of operation (MessageCollector)
 * - `add()` takes framed records in wire order; each body is typed with `fromRawRecord`. A malformed body is
 *   listed under `malformed` and as a violation, and leaves the view otherwise unchanged.
 * - Singular records (Next Protocol, AEAD, Server, Port) keep their first occurrence; later ones are violations.
 * - Record type 0 (End of Message, §4.1.1) completes the message, even with a malformed body; records added
 *   afterwards are violations and are not part of the view.
 * - `finish()` adds the whole-message rules (missing records, empty lists) and returns an immutable snapshot;
 *   it does not change the collector, so it may be called again after more records.
 */

import { DecodeError, type Result, UsageError, fail, ok } from '../errors.js';
import { RecordDecoder, NEED_DATA, type RecordDecoderOptions } from './decoder.js';
import { RECORD_HEADER_LENGTH, type RawRecord, encodeRawRecords } from './framing.js';
import {
  type AeadAlgorithmId,
  type ErrorCode,
  type NextProtocolId,
  type NtsKeRecord,
  type UnknownRecord,
  type WarningCode,
  NextProtocols,
  RecordType,
  endOfMessage,
  fromRawRecord,
  toRawRecord,
} from './records.js';

/** Which side sent the message: rules differ (§4.1.2-§4.1.6). */
export type MessageRole = 'request' | 'response';

export interface Violation {
  /** Stable code, NTSKE_... (body codes come from `fromRawRecord`). */
  readonly code: string;
  readonly message: string;
  /** Position of the offending record in the message, when one record is to blame. */
  readonly index?: number;
  /** Error code a server sends when it rejects a request for this reason (§4.1.3); a client simply aborts. */
  readonly answer: ErrorCode;
}

export interface MalformedRecord {
  readonly index: number;
  readonly record: RawRecord;
  readonly error: DecodeError;
}

export interface NtsKeMessage {
  readonly role: MessageRole;
  /** Every well-formed record up to and including End of Message, in order. */
  readonly records: readonly NtsKeRecord[];
  /** End of Message was seen. */
  readonly complete: boolean;
  /** From the first Next Protocol record; undefined when there is none. */
  readonly nextProtocols: readonly NextProtocolId[] | undefined;
  /** From the first AEAD Algorithm record; undefined when there is none. */
  readonly aeadAlgorithms: readonly AeadAlgorithmId[] | undefined;
  readonly cookies: readonly Uint8Array[];
  /** From the first Server record. */
  readonly server: string | undefined;
  /** From the first Port record. */
  readonly port: number | undefined;
  readonly errors: readonly ErrorCode[];
  readonly warnings: readonly WarningCode[];
  /** Records of types RFC 8915 does not define, critical or not. */
  readonly unknown: readonly UnknownRecord[];
  readonly malformed: readonly MalformedRecord[];
  /** RFC 8915 rules this message breaks, in record order, then whole-message rules. */
  readonly violations: readonly Violation[];
}

/** Violation codes raised by the collector itself (body codes come from `fromRawRecord`). */
export const ViolationCodes = {
  /** §4: a critical record of an unknown type; answered with error 0. */
  UNRECOGNIZED_CRITICAL_RECORD: 'NTSKE_UNRECOGNIZED_CRITICAL_RECORD',
  /** §4.1.1-§4.1.4: End of Message, Next Protocol, Error and Warning MUST have the Critical Bit set. */
  CRITICAL_BIT_MISSING: 'NTSKE_CRITICAL_BIT_MISSING',
  /** §4.1.1: End of Message is the final record. */
  MISSING_END_OF_MESSAGE: 'NTSKE_MISSING_END_OF_MESSAGE',
  RECORD_AFTER_END: 'NTSKE_RECORD_AFTER_END',
  /** §4.1.2: exactly once in every request and response. */
  MISSING_NEXT_PROTOCOL: 'NTSKE_MISSING_NEXT_PROTOCOL',
  DUPLICATE_NEXT_PROTOCOL: 'NTSKE_DUPLICATE_NEXT_PROTOCOL',
  /** §4.1.2: a request lists at least one protocol. */
  EMPTY_NEXT_PROTOCOL: 'NTSKE_EMPTY_NEXT_PROTOCOL',
  /** §4.1.5: exactly once when NTPv4 is offered. */
  MISSING_AEAD: 'NTSKE_MISSING_AEAD',
  DUPLICATE_AEAD: 'NTSKE_DUPLICATE_AEAD',
  /** §4.1.5: a request lists at least one algorithm, a response at most one. */
  EMPTY_AEAD: 'NTSKE_EMPTY_AEAD',
  MULTIPLE_AEAD: 'NTSKE_MULTIPLE_AEAD',
  /** §4.1.3, §4.1.4, §4.1.6: clients send no Error, Warning or New Cookie records. */
  ERROR_IN_REQUEST: 'NTSKE_ERROR_IN_REQUEST',
  WARNING_IN_REQUEST: 'NTSKE_WARNING_IN_REQUEST',
  COOKIE_IN_REQUEST: 'NTSKE_COOKIE_IN_REQUEST',
  /** §4.1.6: at least one cookie when NTPv4 and an AEAD algorithm were agreed. */
  MISSING_COOKIE: 'NTSKE_MISSING_COOKIE',
  /** §4.1.7, §4.1.8: neither side sends more than one. */
  DUPLICATE_SERVER: 'NTSKE_DUPLICATE_SERVER',
  DUPLICATE_PORT: 'NTSKE_DUPLICATE_PORT',
} as const;

const BAD_REQUEST: ErrorCode = { known: 'BAD_REQUEST' };
const UNRECOGNIZED_CRITICAL: ErrorCode = { known: 'UNRECOGNIZED_CRITICAL_RECORD' };

/** Encodes `records` followed by End of Message. Throws `UsageError` if the list already holds one. */
export function encodeMessage(records: readonly NtsKeRecord[]): Uint8Array {
  if (records.some((r) => r.kind === 'end-of-message')) {
    throw new UsageError('NTSKE_END_OF_MESSAGE_IN_LIST', 'encodeMessage appends End of Message itself');
  }
  return encodeRawRecords([...records, endOfMessage()].map(toRawRecord));
}

export class MessageCollector {
  private readonly records: NtsKeRecord[] = [];
  private readonly violations: Violation[] = [];
  private readonly malformed: MalformedRecord[] = [];
  private readonly cookies: Uint8Array[] = [];
  private readonly errors: ErrorCode[] = [];
  private readonly warnings: WarningCode[] = [];
  private readonly unknown: UnknownRecord[] = [];
  private nextProtocols: readonly NextProtocolId[] | undefined;
  private aeadAlgorithms: readonly AeadAlgorithmId[] | undefined;
  private server: string | undefined;
  private port: number | undefined;
  private count = 0;
  private ended = false;

  constructor(readonly role: MessageRole) {}

  /** True once End of Message was added. */
  get complete(): boolean {
    return this.ended;
  }

  /** Adds the next framed record; `offset` (its stream position) is only used in error details. */
  add(raw: RawRecord, offset?: number): void {
    const index = this.count++;
    if (this.ended) {
      this.violate('RECORD_AFTER_END', `record of type ${raw.type} after End of Message`, index);
      return;
    }
    if (raw.type === RecordType.END_OF_MESSAGE) this.ended = true;
    const typed = fromRawRecord(raw, offset);
    if (!typed.ok) {
      this.malformed.push({ index, record: raw, error: typed.error });
      this.violations.push({ code: typed.error.code, message: typed.error.message, index, answer: BAD_REQUEST });
      return;
    }
    const record = typed.value;
    this.records.push(record);
    const request = this.role === 'request';
    switch (record.kind) {
      case 'end-of-message':
        this.requireCritical(record.critical, 'End of Message', index);
        break;
      case 'next-protocol':
        this.requireCritical(record.critical, 'Next Protocol', index);
        if (this.nextProtocols === undefined) this.nextProtocols = record.protocols;
        else this.violate('DUPLICATE_NEXT_PROTOCOL', 'more than one Next Protocol record', index);
        break;
      case 'error':
        this.requireCritical(record.critical, 'Error', index);
        this.errors.push(record.code);
        if (request) this.violate('ERROR_IN_REQUEST', 'Error record in a request', index);
        break;
      case 'warning':
        this.requireCritical(record.critical, 'Warning', index);
        this.warnings.push(record.code);
        if (request) this.violate('WARNING_IN_REQUEST', 'Warning record in a request', index);
        break;
      case 'aead-algorithm':
        if (this.aeadAlgorithms === undefined) this.aeadAlgorithms = record.algorithms;
        else this.violate('DUPLICATE_AEAD', 'more than one AEAD Algorithm record', index);
        break;
      case 'new-cookie':
        this.cookies.push(record.cookie);
        if (request) this.violate('COOKIE_IN_REQUEST', 'New Cookie record in a request', index);
        break;
      case 'server':
        if (this.server === undefined) this.server = record.server;
        else this.violate('DUPLICATE_SERVER', 'more than one Server record', index);
        break;
      case 'port':
        if (this.port === undefined) this.port = record.port;
        else this.violate('DUPLICATE_PORT', 'more than one Port record', index);
        break;
      case 'unknown':
        this.unknown.push(record);
        if (record.critical) {
          this.violate('UNRECOGNIZED_CRITICAL_RECORD', `critical record of unknown type ${record.type}`, index, UNRECOGNIZED_CRITICAL);
        }
        break;
    }
  }

  /** The view so far, with the whole-message rules applied. */
  finish(): NtsKeMessage {
    const violations = [...this.violations];
    const add = (key: keyof typeof ViolationCodes, message: string): void => {
      violations.push({ code: ViolationCodes[key], message, answer: BAD_REQUEST });
    };
    if (!this.ended) add('MISSING_END_OF_MESSAGE', 'message has no End of Message record');
    const request = this.role === 'request';
    // A response carrying an Error record ends the exchange (§4.1.3); servers send little else with it.
    if (request || this.errors.length === 0) {
      const protocols = this.nextProtocols;
      const aead = this.aeadAlgorithms;
      if (protocols === undefined) add('MISSING_NEXT_PROTOCOL', 'message has no Next Protocol record');
      else if (request && protocols.length === 0) add('EMPTY_NEXT_PROTOCOL', 'request offers no protocol');
      const ntpv4 = protocols?.some((p) => NextProtocols.is(p, 'NTPV4')) ?? false;
      if (ntpv4 && aead === undefined) add('MISSING_AEAD', 'NTPv4 negotiated without an AEAD Algorithm record');
      if (aead !== undefined && request && aead.length === 0) add('EMPTY_AEAD', 'request offers no AEAD algorithm');
      if (aead !== undefined && !request && aead.length > 1) add('MULTIPLE_AEAD', 'response names more than one AEAD algorithm');
      if (!request && ntpv4 && aead !== undefined && aead.length > 0 && this.cookies.length === 0) {
        add('MISSING_COOKIE', 'response agrees on NTPv4 and an AEAD algorithm but carries no cookie');
      }
    }
    return {
      role: this.role,
      records: [...this.records],
      complete: this.ended,
      nextProtocols: this.nextProtocols,
      aeadAlgorithms: this.aeadAlgorithms,
      cookies: [...this.cookies],
      server: this.server,
      port: this.port,
      errors: [...this.errors],
      warnings: [...this.warnings],
      unknown: [...this.unknown],
      malformed: [...this.malformed],
      violations,
    };
  }

  private requireCritical(critical: boolean, what: string, index: number): void {
    if (!critical) this.violate('CRITICAL_BIT_MISSING', `${what} record without the Critical Bit`, index);
  }

  private violate(key: keyof typeof ViolationCodes, message: string, index: number, answer: ErrorCode = BAD_REQUEST): void {
    this.violations.push({ code: ViolationCodes[key], message, index, answer });
  }
}

/** The structured view of an already framed record sequence. */
export function collectMessage(role: MessageRole, records: Iterable<RawRecord>): NtsKeMessage {
  const collector = new MessageCollector(role);
  for (const r of records) collector.add(r);
  return collector.finish();
}

/**
 * Decodes one complete message held in `bytes` (e.g. a captured exchange). Framing problems (limits, truncation,
 * bytes after End of Message) fail the whole decode; protocol rule breaks are listed in `violations`.
 */
export function decodeMessage(bytes: Uint8Array, role: MessageRole, options: RecordDecoderOptions = {}): Result<NtsKeMessage> {
  const decoder = new RecordDecoder({ ...options, singleMessage: true });
  const collector = new MessageCollector(role);
  decoder.push(bytes);
  let offset = 0;
  for (;;) {
    const next = decoder.next();
    if (next === NEED_DATA) break;
    if (next instanceof DecodeError) return fail(next);
    collector.add(next, offset);
    offset += RECORD_HEADER_LENGTH + next.body.length;
  }
  const end = decoder.end();
  if (end !== undefined) return fail(end);
  return ok(collector.finish());
}
