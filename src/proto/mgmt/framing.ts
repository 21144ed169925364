/**
 * Line framing of the management protocol (docs/management.md §3): one message per line, lines end with LF, an
 * optional CR before the LF is removed. Bring your own I/O: `push(chunk)` what the socket delivered, then call
 * `next()` until it returns `NEED_DATA`.
 *
 * Theory of operation
 * - Pushed chunks are queued by reference, never concatenated. `next()` resumes the newline search where the
 *   last call stopped, so every byte is scanned once and a line is copied once, when its LF has arrived: the
 *   work per byte is constant whatever the chunking.
 * - A line's length excludes its terminator (LF, or CR LF). A line longer than `maxLineLength` is reported once,
 *   as soon as that is certain (usually before its LF arrives), and its bytes are dropped up to and including the
 *   next LF. The decoder then goes on with the following line: one oversized line costs one error, not the
 *   connection. So at most `maxLineLength + 1` bytes of an unfinished line are held.
 * - Errors are per line, never final: `MGMT_LINE_TOO_LONG` and `MGMT_LINE_NOT_UTF8` (the line is not valid UTF-8).
 * - Lines are returned as strings, blank ones included; what a blank line means is the parser's business.
 * - Complete lines that the caller has not yet taken stay queued: the shell applies backpressure by not
 *   reading the socket while requests are pending (`buffered` tells how much is held).
 * - `end()` is called when the peer has finished sending: it returns the unterminated last line, if any.
 */

import { DecodeError, UsageError } from '../errors.js';

/** Returned by `next()` when no complete line is buffered. */
export const NEED_DATA: unique symbol = Symbol('NEED_DATA');
export type NeedData = typeof NEED_DATA;

/** 64 KiB, the default `max-message-size` of a listener: far above any request of the protocol (an `auth` line is < 1 KiB). */
export const DEFAULT_MAX_LINE_LENGTH = 64 * 1024;
/** Sanity bound on the option: 16 MiB, the largest `max-message-size` the configuration accepts. */
export const MAX_MAX_LINE_LENGTH = 16 * 1024 * 1024;

export const LineErrorCodes = {
  LINE_TOO_LONG: 'MGMT_LINE_TOO_LONG',
  LINE_NOT_UTF8: 'MGMT_LINE_NOT_UTF8',
} as const;
export type LineErrorCode = (typeof LineErrorCodes)[keyof typeof LineErrorCodes];

export interface LineDecoderOptions {
  /** Longest accepted line in bytes, terminator excluded. Default `DEFAULT_MAX_LINE_LENGTH`; 1..16 MiB. */
  readonly maxLineLength?: number;
}

const LF = 0x0a;
const CR = 0x0d;

export class LineDecoder {
  readonly maxLineLength: number;

  private readonly chunks: Uint8Array[] = [];
  /** Index of the first live chunk and the offset of the current line's first byte in it. */
  private head = 0;
  private headOffset = 0;
  /** Where the newline search resumes: chunk index and offset, and the bytes of the current line before it. */
  private scanChunk = 0;
  private scanOffset = 0;
  private scanned = 0;
  /** Bytes held (queued and not yet returned or dropped). */
  private held = 0;
  /** Stream offset of the current line's first byte (for error offsets). */
  private lineStart = 0;
  /** True while dropping the rest of an oversized line (its error was already returned). */
  private discarding = false;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  constructor(options: LineDecoderOptions = {}) {
    const max = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    if (!Number.isInteger(max) || max < 1 || max > MAX_MAX_LINE_LENGTH) {
      throw new UsageError('DECODER_OPTION_RANGE', `maxLineLength ${max} is outside 1..${MAX_MAX_LINE_LENGTH}`);
    }
    this.maxLineLength = max;
  }

  /** Bytes held by the decoder: complete lines not yet taken plus the unfinished one. */
  get buffered(): number {
    return this.held;
  }

  /** Queues bytes from the peer. The chunk is kept by reference until consumed: do not reuse its memory. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.held += chunk.length;
  }

  /** The next complete line (terminator removed), `NEED_DATA`, or the error of one bad line. */
  next(): string | NeedData | DecodeError {
    const found = this.scan();
    if (!found) {
      // CR LF allows one byte more than the limit before the LF; beyond that the line is too long for sure.
      if (!this.discarding && this.scanned > this.maxLineLength + 1) {
        const start = this.lineStart;
        this.discarding = true;
        this.drop(this.scanned);
        return new DecodeError(LineErrorCodes.LINE_TOO_LONG, `line exceeds ${this.maxLineLength} bytes`, start);
      }
      return NEED_DATA;
    }
    const start = this.lineStart;
    const lineBytes = this.take(this.scanned + 1);
    let length = lineBytes.length - 1;
    if (length > 0 && lineBytes[length - 1] === CR) length--;
    if (length > this.maxLineLength) return new DecodeError(LineErrorCodes.LINE_TOO_LONG, `line of ${length} bytes exceeds ${this.maxLineLength}`, start);
    return this.decode(lineBytes.subarray(0, length), start);
  }

  /**
   * The peer finished sending. Returns its unterminated last line (as `next()` would have, had an LF followed),
   * or null when nothing is left. Call after `next()` returned `NEED_DATA`; the decoder is empty afterwards.
   */
  end(): string | DecodeError | null {
    this.scan();
    if (this.discarding || this.held === 0) {
      this.reset();
      return null;
    }
    const start = this.lineStart;
    const bytes = this.take(this.held);
    this.reset();
    let length = bytes.length;
    if (length > 0 && bytes[length - 1] === CR) length--;
    if (length > this.maxLineLength) return new DecodeError(LineErrorCodes.LINE_TOO_LONG, `line of ${length} bytes exceeds ${this.maxLineLength}`, start);
    return this.decode(bytes.subarray(0, length), start);
  }

  /**
   * Advances the newline search over the held bytes; true when an LF was found, `scanned` bytes after the line
   * start. While discarding, scanned bytes are dropped at once; the LF ending the discarded line ends discarding.
   */
  private scan(): boolean {
    while (this.scanChunk < this.chunks.length) {
      const chunk = this.chunks[this.scanChunk] as Uint8Array;
      const at = chunk.indexOf(LF, this.scanOffset);
      if (at >= 0) {
        this.scanned += at - this.scanOffset;
        this.scanOffset = at;
        if (!this.discarding) return true;
        this.drop(this.scanned + 1);
        this.discarding = false;
        continue;
      }
      this.scanned += chunk.length - this.scanOffset;
      this.scanChunk++;
      this.scanOffset = 0;
      if (this.discarding) this.drop(this.scanned);
      // Stop early on an oversized line, so that it is never held whole.
      else if (this.scanned > this.maxLineLength + 1) return false;
    }
    return false;
  }

  /** Removes the first `count` held bytes and returns a copy of them. */
  private take(count: number): Uint8Array {
    const out = new Uint8Array(count);
    this.advance(count, out);
    return out;
  }

  /** Removes the first `count` held bytes. */
  private drop(count: number): void {
    this.advance(count, undefined);
  }

  private advance(count: number, out: Uint8Array | undefined): void {
    let done = 0;
    while (done < count) {
      const chunk = this.chunks[this.head] as Uint8Array;
      const n = Math.min(chunk.length - this.headOffset, count - done);
      if (out) out.set(chunk.subarray(this.headOffset, this.headOffset + n), done);
      done += n;
      this.headOffset += n;
      if (this.headOffset === chunk.length) {
        this.head++;
        this.headOffset = 0;
      }
    }
    this.held -= count;
    this.lineStart += count;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.chunks.length) {
      // Forget consumed chunks now and then, so that the queue does not grow without bound (amortised O(1)).
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
    this.scanChunk = this.head;
    this.scanOffset = this.headOffset;
    this.scanned = 0;
  }

  private decode(bytes: Uint8Array, start: number): string | DecodeError {
    try {
      return this.utf8.decode(bytes);
    } catch {
      return new DecodeError(LineErrorCodes.LINE_NOT_UTF8, 'line is not valid UTF-8', start);
    }
  }

  private reset(): void {
    this.chunks.length = 0;
    this.head = 0;
    this.headOffset = 0;
    this.scanChunk = 0;
    this.scanOffset = 0;
    this.scanned = 0;
    this.held = 0;
    this.discarding = false;
  }
}
