/**
 * Reassembly of one fragmented mode 6 response (RFC 9327 §2: "Offset" and "Count" place each fragment's data
 * in the whole answer; the M bit is set on every fragment but the last).
 *
 * Theory of operation
 * - One instance per request attempt: it knows the opcode, sequence number and association id it waits for.
 *   Datagrams for anything else (a late answer to an earlier attempt, a request, another association) are
 *   ignored and counted by reason; they never end the request.
 * - Fragments are kept sorted by offset and never overlap. An exact duplicate (same offset, count and octets)
 *   is ignored; the same range with other octets, or any partial overlap, fails the request: the answer can
 *   no longer be trusted, and the caller asks again.
 * - The fragment without the M bit fixes the total length. A second "last" fragment with another end, or a
 *   fragment reaching past the end, fails the request. A non-final fragment with no data is ignored (ntpq
 *   does the same): it carries nothing and cannot be placed.
 * - The answer is complete when the last fragment has been seen and the fragments cover [0, end) without a
 *   hole. Its status word is the last fragment's (ntpd puts the same one in every fragment).
 * - An error response (E bit) for this request ends it with the RFC 9327 §3.4 code from the status word.
 * - Limits are checked before anything is stored: at most `maxFragments` fragments and `maxDataLength` octets.
 * - The first terminal state (complete or failed) is final; later datagrams are counted as `AFTER_END`.
 */

import { DecodeError } from '../errors.js';
import { describeMode6Error, MODE6_MAX_FRAGMENT_DATA, mode6ErrorCodeOf, mode6ErrorName, type Mode6ErrorInfo, type Mode6Packet } from './packet.js';

/** Most fragments one answer may have: NTPsec's MRU_FRAGS_LIMIT, the most ntpd sends for any request. */
export const MODE6_DEFAULT_MAX_FRAGMENTS = 128;
/** Most data one answer may carry by default: 128 full fragments of 468 octets. */
export const MODE6_DEFAULT_MAX_RESPONSE_DATA = MODE6_DEFAULT_MAX_FRAGMENTS * MODE6_MAX_FRAGMENT_DATA;

export interface Mode6Expectation {
  readonly opcode: number;
  readonly sequence: number;
  readonly associationId: number;
}

export interface Mode6ReassemblyOptions {
  /** Default 128. */
  readonly maxFragments?: number;
  /** Default 59904 (128 × 468). */
  readonly maxDataLength?: number;
}

/** Why a datagram did not contribute to the answer, without ending it. */
export type Mode6IgnoreReason = 'NOT_RESPONSE' | 'WRONG_SEQUENCE' | 'WRONG_OPCODE' | 'WRONG_ASSOCIATION' | 'DUPLICATE' | 'EMPTY_FRAGMENT' | 'AFTER_END';

export const Mode6ReassemblyErrors = {
  SERVER_ERROR: 'MODE6_SERVER_ERROR',
  FRAGMENT_OVERLAP: 'MODE6_FRAGMENT_OVERLAP',
  FRAGMENT_CONFLICT: 'MODE6_FRAGMENT_CONFLICT',
  FRAGMENT_AFTER_LAST: 'MODE6_FRAGMENT_AFTER_LAST',
  TWO_LAST_FRAGMENTS: 'MODE6_TWO_LAST_FRAGMENTS',
  TOO_MANY_FRAGMENTS: 'MODE6_TOO_MANY_FRAGMENTS',
  RESPONSE_TOO_LARGE: 'MODE6_RESPONSE_TOO_LARGE',
} as const;

export type Mode6ReassemblyState =
  | {
      readonly kind: 'incomplete';
      readonly fragments: number;
      /** Data octets held so far. */
      readonly received: number;
      /** What happened to the datagram just accepted, null when it was stored. */
      readonly ignored: Mode6IgnoreReason | null;
    }
  | {
      readonly kind: 'complete';
      readonly data: Uint8Array;
      readonly status: number;
      readonly associationId: number;
      readonly fragments: number;
    }
  | {
      readonly kind: 'failed';
      readonly error: DecodeError;
      /** Set when the server answered with an error response (RFC 9327 §3.4). */
      readonly serverError: Mode6ErrorInfo | null;
      /** Status word of the error response (the code is its high octet), when there was one. */
      readonly status: number | null;
    };

interface Fragment {
  readonly offset: number;
  readonly end: number;
  readonly data: Uint8Array;
  readonly more: boolean;
}

const IGNORE_REASONS: readonly Mode6IgnoreReason[] = ['NOT_RESPONSE', 'WRONG_SEQUENCE', 'WRONG_OPCODE', 'WRONG_ASSOCIATION', 'DUPLICATE', 'EMPTY_FRAGMENT', 'AFTER_END'];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Mode6Reassembly {
  readonly expect: Mode6Expectation;
  readonly maxFragments: number;
  readonly maxDataLength: number;
  /** Datagrams ignored so far, by reason. */
  readonly ignored: Record<Mode6IgnoreReason, number>;
  readonly #fragments: Fragment[] = [];
  #received = 0;
  /** End of the answer, known once the fragment without M arrived. */
  #end: number | null = null;
  #lastStatus = 0;
  #terminal: Mode6ReassemblyState | null = null;

  constructor(expect: Mode6Expectation, options?: Mode6ReassemblyOptions) {
    this.expect = expect;
    this.maxFragments = options?.maxFragments ?? MODE6_DEFAULT_MAX_FRAGMENTS;
    this.maxDataLength = options?.maxDataLength ?? MODE6_DEFAULT_MAX_RESPONSE_DATA;
    this.ignored = Object.fromEntries(IGNORE_REASONS.map((r) => [r, 0])) as Record<Mode6IgnoreReason, number>;
  }

  /** The current state (incomplete until the answer is whole or has failed). */
  get state(): Mode6ReassemblyState {
    return this.#terminal ?? this.#incomplete(null);
  }

  /** Fragments stored. */
  get fragmentCount(): number {
    return this.#fragments.length;
  }

  /**
   * Missing ranges of the answer so far, `end: null` for the open range after the highest fragment when the
   * last one has not arrived. Empty once complete.
   */
  holes(): { start: number; end: number | null }[] {
    const out: { start: number; end: number | null }[] = [];
    let at = 0;
    for (const f of this.#fragments) {
      if (f.offset > at) out.push({ start: at, end: f.offset });
      at = Math.max(at, f.end);
    }
    if (this.#end === null) out.push({ start: at, end: null });
    else if (at < this.#end) out.push({ start: at, end: this.#end });
    return out;
  }

  /** Feeds one decoded datagram; returns the state after it. Never throws. */
  accept(packet: Mode6Packet): Mode6ReassemblyState {
    if (this.#terminal !== null) return this.#ignore('AFTER_END');
    if (!packet.response) return this.#ignore('NOT_RESPONSE');
    if (packet.sequence !== this.expect.sequence) return this.#ignore('WRONG_SEQUENCE');
    if (packet.opcode !== this.expect.opcode) return this.#ignore('WRONG_OPCODE');
    if (packet.associationId !== this.expect.associationId) return this.#ignore('WRONG_ASSOCIATION');
    if (packet.error) {
      const code = mode6ErrorCodeOf(packet);
      return this.#fail(new DecodeError(Mode6ReassemblyErrors.SERVER_ERROR, `the server answered with error ${mode6ErrorName(code)} (${code})`, 4), describeMode6Error(code), packet.status);
    }
    if (packet.more && packet.count === 0) return this.#ignore('EMPTY_FRAGMENT');

    const offset = packet.offset;
    const end = offset + packet.count;
    if (end > this.maxDataLength) {
      return this.#fail(new DecodeError(Mode6ReassemblyErrors.RESPONSE_TOO_LARGE, `fragment at ${offset}+${packet.count} exceeds the ${this.maxDataLength}-octet answer limit`, 8));
    }
    for (const f of this.#fragments) {
      if (f.offset === offset && f.end === end) {
        if (f.more === packet.more && sameBytes(f.data, packet.data)) return this.#ignore('DUPLICATE');
        return this.#fail(new DecodeError(Mode6ReassemblyErrors.FRAGMENT_CONFLICT, `two different fragments for octets ${offset}..${end}`, 8));
      }
      if (offset < f.end && f.offset < end) {
        return this.#fail(new DecodeError(Mode6ReassemblyErrors.FRAGMENT_OVERLAP, `fragment ${offset}..${end} overlaps the one at ${f.offset}..${f.end}`, 8));
      }
    }
    if (this.#end !== null) {
      if (packet.more && end > this.#end) {
        return this.#fail(new DecodeError(Mode6ReassemblyErrors.FRAGMENT_AFTER_LAST, `fragment ${offset}..${end} lies past the last fragment's end ${this.#end}`, 8));
      }
      if (!packet.more && end !== this.#end) {
        return this.#fail(new DecodeError(Mode6ReassemblyErrors.TWO_LAST_FRAGMENTS, `a second last fragment ends at ${end}, the first at ${this.#end}`, 1));
      }
    } else if (!packet.more) {
      const beyond = this.#fragments.find((f) => f.end > end);
      if (beyond !== undefined) {
        return this.#fail(new DecodeError(Mode6ReassemblyErrors.FRAGMENT_AFTER_LAST, `the last fragment ends at ${end} but octets up to ${beyond.end} were already received`, 8));
      }
    }
    if (this.#fragments.length >= this.maxFragments) {
      return this.#fail(new DecodeError(Mode6ReassemblyErrors.TOO_MANY_FRAGMENTS, `more than ${this.maxFragments} fragments`, 8));
    }

    let at = this.#fragments.length;
    while (at > 0 && (this.#fragments[at - 1] as Fragment).offset > offset) at--;
    this.#fragments.splice(at, 0, { offset, end, data: packet.data.slice(), more: packet.more });
    this.#received += packet.count;
    if (!packet.more) {
      this.#end = end;
      this.#lastStatus = packet.status;
    }
    if (this.#end !== null && this.#received === this.#end) {
      // No overlaps are stored, so octets received == end means [0, end) is covered.
      const data = new Uint8Array(this.#end);
      for (const f of this.#fragments) data.set(f.data, f.offset);
      this.#terminal = { kind: 'complete', data, status: this.#lastStatus, associationId: this.expect.associationId, fragments: this.#fragments.length };
      return this.#terminal;
    }
    return this.#incomplete(null);
  }

  #incomplete(ignored: Mode6IgnoreReason | null): Mode6ReassemblyState {
    return { kind: 'incomplete', fragments: this.#fragments.length, received: this.#received, ignored };
  }

  #ignore(reason: Mode6IgnoreReason): Mode6ReassemblyState {
    this.ignored[reason]++;
    return this.#terminal ?? this.#incomplete(reason);
  }

  #fail(error: DecodeError, serverError: Mode6ErrorInfo | null = null, status: number | null = null): Mode6ReassemblyState {
    this.#terminal = { kind: 'failed', error, serverError, status };
    return this.#terminal;
  }
}
