/**
 * Synchronous streaming decoder for NTS-KE-framed records (RFC 8915 §4), generic over record types (NTS-KE and
 * the ephemeral key service share it). Bring your own I/O: `push(chunk)` what the TLS socket delivered, then
 * call `next()` until it returns `NEED_DATA`.
 *
 * Theory of operation
 * - Pushed chunks are queued by reference, never concatenated; a record's body is copied out once, when the
 *   whole record is buffered, so the work per byte is constant whatever the chunking.
 * - Every limit is checked from the 4-byte header, before the body is waited for or allocated: body length
 *   (`maxBodyLength`), bytes of the current message including headers (`maxMessageLength`) and records in the
 *   current message including End of Message (`maxRecords`).
 * - A message ends with a record of type `endOfMessageType` (End of Message, §4.1.1). With `singleMessage`
 *   (the default; NTS-KE has one request and one response per connection, §4) any byte after it is an error;
 *   otherwise the counters reset and the next message starts.
 * - The first error is final: `next()` keeps returning it and `push()` drops further input.
 * - In single-message mode at most `maxMessageLength + 1` bytes are ever stored: any byte past that is certain
 *   to be an error, and the stored ones are enough to report which. In multi-message mode the caller drains
 *   with `next()` after each `push()`, so the queue holds at most one partial record plus one chunk.
 */

import { DecodeError, UsageError } from '../errors.js';
import { CRITICAL_BIT, MAX_BODY_LENGTH, MAX_RECORD_TYPE, RECORD_HEADER_LENGTH, type RawRecord } from './framing.js';

/** Returned by `next()` when no complete record is buffered. */
export const NEED_DATA: unique symbol = Symbol('NEED_DATA');
export type NeedData = typeof NEED_DATA;

export interface RecordDecoderOptions {
  /**
   * Largest accepted body. Default 1024: the largest NTS-KE body is a cookie, ~100-200 bytes in deployed servers
   * (ours: key id 4 + nonce 16 + sealed AEAD id and two keys of at most 64 bytes each + tag 16 = 166); a server
   * name is at most 255. Four times the largest cookie seen leaves room for other implementations.
   */
  readonly maxBodyLength?: number;
  /**
   * Largest message, headers included. Default 16 KiB: a response with 8 cookies of 1 KiB would still fit; a
   * typical one is under 2 KiB.
   */
  readonly maxMessageLength?: number;
  /** Most records in one message, End of Message included. Default 64; a normal response has about 12. */
  readonly maxRecords?: number;
  /** One message per stream (RFC 8915 §4): bytes after End of Message are an error. Default true. */
  readonly singleMessage?: boolean;
  /** Record type that ends a message. Default 0 (End of Message, RFC 8915 §4.1.1). */
  readonly endOfMessageType?: number;
  /** Prefix of error codes, e.g. `EKS` gives `EKS_RECORD_TOO_LONG`. Default `NTSKE`. */
  readonly errorPrefix?: string;
}

export const DEFAULT_MAX_BODY_LENGTH = 1024;
export const DEFAULT_MAX_MESSAGE_LENGTH = 16 * 1024;
export const DEFAULT_MAX_RECORDS = 64;

/** Suffixes of the codes `next()` and `end()` return, after `${errorPrefix}_`. */
export const DecoderErrorCodes = {
  RECORD_TOO_LONG: 'RECORD_TOO_LONG',
  MESSAGE_TOO_LONG: 'MESSAGE_TOO_LONG',
  TOO_MANY_RECORDS: 'TOO_MANY_RECORDS',
  DATA_AFTER_END: 'DATA_AFTER_END',
  TRUNCATED: 'TRUNCATED',
} as const;

function limit(name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > max) throw new UsageError('DECODER_OPTION_RANGE', `${name} ${value} is outside 0..${max}`);
  return value;
}

export class RecordDecoder {
  readonly maxBodyLength: number;
  readonly maxMessageLength: number;
  readonly maxRecords: number;
  readonly singleMessage: boolean;
  private readonly endType: number;
  private readonly prefix: string;

  private readonly chunks: Uint8Array[] = [];
  /** Index of the first live chunk, and the read position inside it. */
  private head = 0;
  private headOffset = 0;
  private buffered = 0;
  /** Bytes accepted by `push` over the stream's life (for the single-message storage bound). */
  private stored = 0;
  /** Stream offset of the next unread byte. */
  private position = 0;
  private messageBytes = 0;
  private messageRecords = 0;
  private complete = false;
  private completed = 0;
  private error: DecodeError | undefined;

  constructor(options: RecordDecoderOptions = {}) {
    this.maxBodyLength = limit('maxBodyLength', options.maxBodyLength, DEFAULT_MAX_BODY_LENGTH, MAX_BODY_LENGTH);
    this.maxMessageLength = limit('maxMessageLength', options.maxMessageLength, DEFAULT_MAX_MESSAGE_LENGTH, Number.MAX_SAFE_INTEGER);
    this.maxRecords = limit('maxRecords', options.maxRecords, DEFAULT_MAX_RECORDS, Number.MAX_SAFE_INTEGER);
    this.singleMessage = options.singleMessage ?? true;
    this.endType = limit('endOfMessageType', options.endOfMessageType, 0, MAX_RECORD_TYPE);
    this.prefix = options.errorPrefix ?? 'NTSKE';
  }

  /** Queues bytes from the peer. The chunk is kept by reference until consumed: do not reuse its memory. */
  push(chunk: Uint8Array): void {
    if (this.error !== undefined || chunk.length === 0) return;
    let accepted = chunk;
    if (this.singleMessage) {
      const room = this.maxMessageLength + 1 - this.stored;
      if (room <= 0) return;
      if (accepted.length > room) accepted = accepted.subarray(0, room);
    }
    this.chunks.push(accepted);
    this.buffered += accepted.length;
    this.stored += accepted.length;
  }

  /** The next complete record, `NEED_DATA`, or the stream's (final) error. */
  next(): RawRecord | NeedData | DecodeError {
    if (this.error !== undefined) return this.error;
    if (this.buffered === 0) return NEED_DATA;
    if (this.complete && this.singleMessage) {
      return this.fail('DATA_AFTER_END', 'data after End of Message; one message per connection (RFC 8915 §4)');
    }
    // Any record needs a header, so these hold as soon as one byte of the next record is here.
    if (this.messageBytes + RECORD_HEADER_LENGTH > this.maxMessageLength) {
      return this.fail('MESSAGE_TOO_LONG', `message longer than ${this.maxMessageLength} bytes`);
    }
    if (this.messageRecords >= this.maxRecords) {
      return this.fail('TOO_MANY_RECORDS', `more than ${this.maxRecords} records in one message`);
    }
    if (this.buffered < RECORD_HEADER_LENGTH) return NEED_DATA;

    const header = this.peek(RECORD_HEADER_LENGTH);
    const word = ((header[0] ?? 0) << 8) | (header[1] ?? 0);
    const length = ((header[2] ?? 0) << 8) | (header[3] ?? 0);
    if (length > this.maxBodyLength) {
      return this.fail('RECORD_TOO_LONG', `record body of ${length} bytes exceeds the limit of ${this.maxBodyLength}`);
    }
    const total = RECORD_HEADER_LENGTH + length;
    if (this.messageBytes + total > this.maxMessageLength) {
      return this.fail('MESSAGE_TOO_LONG', `message longer than ${this.maxMessageLength} bytes`);
    }
    if (this.buffered < total) return NEED_DATA;

    this.skip(RECORD_HEADER_LENGTH);
    const body = this.take(length);
    const record: RawRecord = { type: word & MAX_RECORD_TYPE, critical: (word & CRITICAL_BIT) !== 0, body };
    this.position += total;
    this.messageBytes += total;
    this.messageRecords += 1;
    this.complete = false;
    if (record.type === this.endType) {
      this.complete = true;
      this.completed += 1;
      this.messageBytes = 0;
      this.messageRecords = 0;
    }
    return record;
  }

  /**
   * The peer closed its side. Returns the stream's error if it has one, `TRUNCATED` when the stream stopped
   * inside a message (or, in single-message mode, before the message ended), else undefined.
   */
  end(): DecodeError | undefined {
    if (this.error !== undefined) return this.error;
    const partial = this.buffered > 0 || this.messageRecords > 0;
    if (partial || (this.singleMessage && !this.complete)) {
      return this.fail('TRUNCATED', 'stream ended before End of Message');
    }
    return undefined;
  }

  /** True right after the End of Message record was returned (until the next record starts). */
  get messageComplete(): boolean {
    return this.complete;
  }

  /** Number of messages completed on this stream. */
  get messagesCompleted(): number {
    return this.completed;
  }

  /** Bytes pushed and not yet returned as records. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The stream's final error, once there is one. */
  get failure(): DecodeError | undefined {
    return this.error;
  }

  private fail(code: keyof typeof DecoderErrorCodes, message: string): DecodeError {
    this.error = new DecodeError(`${this.prefix}_${DecoderErrorCodes[code]}`, message, this.position);
    // Release the buffered input: a dead stream never reads it.
    this.chunks.length = 0;
    this.head = 0;
    this.headOffset = 0;
    this.buffered = 0;
    return this.error;
  }

  /** Copies the first `n` buffered bytes without consuming them (n <= buffered). */
  private peek(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let offset = this.headOffset;
    for (let i = this.head; filled < n; i++) {
      const chunk = this.chunks[i];
      if (chunk === undefined) break;
      const part = chunk.subarray(offset, offset + (n - filled));
      out.set(part, filled);
      filled += part.length;
      offset = 0;
    }
    return out;
  }

  /** Consumes and copies `n` bytes (n <= buffered). */
  private take(n: number): Uint8Array {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  private skip(n: number): void {
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head];
      if (chunk === undefined) break;
      const available = chunk.length - this.headOffset;
      if (available > left) {
        this.headOffset += left;
        left = 0;
      } else {
        left -= available;
        this.chunks[this.head] = EMPTY; // drop the reference now; compacted below
        this.head += 1;
        this.headOffset = 0;
      }
    }
    this.buffered -= n;
    if (this.head > 32 && this.head * 2 > this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

const EMPTY = new Uint8Array(0);
