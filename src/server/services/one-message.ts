/**
 * The exchange shape NTS-KE (RFC 8915 §4) and EKS (docs/eks.md §1) share: the client sends one message of
 * records framed like NTS-KE, the server answers once and closes. This shell feeds the socket to the pure stream
 * decoder, hands over every record, reports a framing error (including bytes after End of Message that came with
 * the message) or the complete message, and makes sure exactly one answer is written and the socket ended once.
 */
import type net from 'node:net';
import { DecodeError } from '../../proto/errors.js';
import { NEED_DATA, type RecordDecoder } from '../../proto/ntske/decoder.js';
import type { RawRecord } from '../../proto/ntske/framing.js';

export interface OneMessageHandlers {
  readonly record: (record: RawRecord) => void;
  /** End of Message arrived; the handler answers with `finish` (now or later). */
  readonly complete: () => void;
  /** The request broke the framing; the handler answers with `finish`. */
  readonly framingError: (error: DecodeError) => void;
  /** The socket closed; `answered` is false when it closed before `finish` (an incomplete exchange). */
  readonly closed: (answered: boolean) => void;
}

export class OneMessageExchange {
  #answered = false;
  readonly #socket: net.Socket;
  readonly #decoder: RecordDecoder;
  readonly #handlers: OneMessageHandlers;
  readonly #onData = (chunk: Buffer): void => {
    this.#decoder.push(chunk);
    for (;;) {
      const next = this.#decoder.next();
      if (next === NEED_DATA) return;
      if (next instanceof DecodeError) {
        this.#stopReading();
        this.#handlers.framingError(next);
        return;
      }
      this.#handlers.record(next);
      if (this.#decoder.messageComplete) {
        this.#stopReading();
        const after = this.#decoder.next();
        if (after instanceof DecodeError) this.#handlers.framingError(after);
        else this.#handlers.complete();
        return;
      }
    }
  };

  constructor(socket: net.Socket, decoder: RecordDecoder, handlers: OneMessageHandlers) {
    this.#socket = socket;
    this.#decoder = decoder;
    this.#handlers = handlers;
    socket.on('data', this.#onData);
    socket.once('close', () => {
      const answered = this.#answered;
      this.#answered = true;
      handlers.closed(answered);
    });
  }

  #stopReading(): void {
    this.#socket.removeListener('data', this.#onData);
  }

  /** Writes `response` (if any) and ends our side; false when the exchange had already ended. */
  finish(response: Uint8Array | null): boolean {
    if (this.#answered) return false;
    this.#answered = true;
    this.#stopReading();
    if (response !== null) this.#socket.end(response);
    else this.#socket.end();
    return true;
  }
}
