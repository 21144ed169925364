/**
 * Results and coded errors for the pure codecs.
 *
 * A decoder never throws on bad input: it returns `{ ok: false, error }` where `error.code` is stable and
 * matched by callers (never the message text). `DecodeError` means "the peer broke the protocol"; API
 * misuse by the caller (e.g. an encoder given an out-of-range value) throws `UsageError` instead.
 */

export type Result<T, E = DecodeError> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function fail<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}

/** The peer sent bytes that do not follow the protocol. Returned, never thrown, by decoders. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    /** Stable machine-readable reason, e.g. `NTP_TOO_SHORT`. Also used as the drop-counter label. */
    readonly code: string,
    message: string,
    /** Byte offset in the input where the problem was found, when known. */
    readonly offset?: number,
  ) {
    super(message);
  }
}

/** The caller misused an API (a bug on our side, not the peer's). Thrown. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function decodeError(code: string, message: string, offset?: number): { readonly ok: false; readonly error: DecodeError } {
  return fail(new DecodeError(code, message, offset));
}
