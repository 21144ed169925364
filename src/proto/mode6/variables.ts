/**
 * The text of READVAR, READ_MRU and READ_ORDLIST_A answers (RFC 9327 §4: "variable lists"):
 *
 *     name=value, name="quoted, value",\r\nflag, name=value\r\n
 *
 * Items are separated by commas (ntpd adds a space, or CR LF every ~72 characters); a value is everything after
 * the first `=` up to the next comma, or a double-quoted string that may hold commas and `=`; an item without
 * `=` is a flag. Order and unknown names are kept; a name may repeat (`get` returns the last, as ntpq's
 * dictionary does).
 *
 * Real daemons send garbage now and then (NTPsec 1.2.2 puts uninitialised octets before the numbers of
 * filtdelay/filtoffset/filtdisp; ntpd leaves NULs at the end of some answers). The parser never throws and
 * never gives up on the rest of the text: what it could not read as an item is skipped, non-printable
 * octets in values are replaced by `\xHH` escapes, and every such problem is listed with its offset. The
 * Result is ok only when there was none; otherwise the error carries everything that did parse.
 */

import { DecodeError, fail, ok, UsageError, type Result } from '../errors.js';
import type { NtpTimestamp } from '../ntp/timestamp.js';

export interface Mode6Variable {
  readonly name: string;
  /** Null for a flag (an item without `=`); the text between the quotes for a quoted value. */
  readonly value: string | null;
  readonly quoted: boolean;
}

export interface Mode6VariableProblem {
  readonly code: string;
  readonly message: string;
  /** Octet offset in the text. */
  readonly offset: number;
}

export const Mode6VariableErrors = {
  BINARY: 'MODE6_VARS_BINARY',
  NUL: 'MODE6_VARS_NUL',
  EMPTY_ITEM: 'MODE6_VARS_EMPTY_ITEM',
  EMPTY_NAME: 'MODE6_VARS_EMPTY_NAME',
  BAD_NAME: 'MODE6_VARS_BAD_NAME',
  UNTERMINATED_QUOTE: 'MODE6_VARS_UNTERMINATED_QUOTE',
  TEXT_AFTER_QUOTE: 'MODE6_VARS_TEXT_AFTER_QUOTE',
  TOO_MANY_ITEMS: 'MODE6_VARS_TOO_MANY_ITEMS',
  TOO_LONG: 'MODE6_VARS_TOO_LONG',
} as const;

/** An ordered variable list with lookups by name. */
export class Mode6Variables {
  readonly items: readonly Mode6Variable[];
  readonly #byName = new Map<string, Mode6Variable>();

  constructor(items: readonly Mode6Variable[]) {
    this.items = items;
    for (const item of items) this.#byName.set(item.name, item);
  }

  get size(): number {
    return this.items.length;
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The value of the last item called `name`: null for a flag, undefined when absent. */
  get(name: string): string | null | undefined {
    const item = this.#byName.get(name);
    return item === undefined ? undefined : item.value;
  }

  item(name: string): Mode6Variable | undefined {
    return this.#byName.get(name);
  }

  /** Names in first-seen order, each once. */
  names(): string[] {
    return [...new Set(this.items.map((i) => i.name))];
  }

  /** name → value (flags as ''), last value wins, for JSON output. */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const item of this.items) out[item.name] = item.value ?? '';
    return out;
  }
}

/** The parse found problems; `partial` holds every item that could be read, `problems` each problem. */
export class Mode6VariablesError extends DecodeError {
  constructor(
    readonly partial: Mode6Variables,
    readonly problems: readonly Mode6VariableProblem[],
  ) {
    const first = problems[0] as Mode6VariableProblem;
    super(first.code, problems.length === 1 ? first.message : `${first.message} (and ${problems.length - 1} more problems)`, first.offset);
  }
}

export interface Mode6VariablesParseOptions {
  /** Most items kept; the rest is reported once and dropped. Default 20000 (an MRU page of 128 fragments holds ~3000). */
  readonly maxItems?: number;
  /** Longest text accepted; longer text is cut there. Default 65535 (the 16-bit offset space). */
  readonly maxLength?: number;
}

export const MODE6_VARS_DEFAULT_MAX_ITEMS = 20000;
export const MODE6_VARS_DEFAULT_MAX_LENGTH = 0xffff;

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
const isPrintable = (c: number): boolean => c >= 0x20 && c <= 0x7e;
const COMMA = 0x2c;
const EQUALS = 0x3d;
const QUOTE = 0x22;

function toCodes(data: Uint8Array | string): Uint8Array {
  if (typeof data !== 'string') return data;
  // A string is taken as latin1 (what the wire carries); characters above U+00FF become '?'.
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const c = data.charCodeAt(i);
    out[i] = c > 0xff ? 0x3f : c;
  }
  return out;
}

/** Text of [start, end) with non-printable octets (other than tab) escaped as \xHH. */
function textOf(codes: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = codes[i] as number;
    s += isPrintable(c) || c === 0x09 ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return s;
}

/** Parses a variable list. Never throws; see the module comment for what counts as a problem. */
export function parseVariableList(data: Uint8Array | string, options?: Mode6VariablesParseOptions): Result<Mode6Variables, Mode6VariablesError> {
  const maxItems = options?.maxItems ?? MODE6_VARS_DEFAULT_MAX_ITEMS;
  const maxLength = options?.maxLength ?? MODE6_VARS_DEFAULT_MAX_LENGTH;
  let codes = toCodes(data);
  const problems: Mode6VariableProblem[] = [];
  const problem = (code: string, message: string, offset: number): void => {
    problems.push({ code, message, offset });
  };
  if (codes.length > maxLength) {
    problem(Mode6VariableErrors.TOO_LONG, `${codes.length} octets of text exceed the ${maxLength}-octet limit; the rest is ignored`, maxLength);
    codes = codes.subarray(0, maxLength);
  }
  // Trailing NULs are padding some ntpd answers carry inside the count: not a problem.
  let length = codes.length;
  while (length > 0 && codes[length - 1] === 0) length--;

  const items: Mode6Variable[] = [];
  let pos = 0;
  while (pos < length) {
    // One item: [pos, item end). Skip leading white space.
    while (pos < length && isSpace(codes[pos] as number)) pos++;
    if (pos >= length) break;
    const itemStart = pos;
    if (codes[pos] === COMMA) {
      problem(Mode6VariableErrors.EMPTY_ITEM, 'empty item between two commas', pos);
      pos++;
      continue;
    }
    // Name: up to '=', ',' or the end.
    let nameEnd = pos;
    while (nameEnd < length && codes[nameEnd] !== EQUALS && codes[nameEnd] !== COMMA) nameEnd++;
    let trimmedNameEnd = nameEnd;
    while (trimmedNameEnd > itemStart && isSpace(codes[trimmedNameEnd - 1] as number)) trimmedNameEnd--;
    let value: string | null = null;
    let quoted = false;
    let next: number;
    if (nameEnd < length && codes[nameEnd] === EQUALS) {
      let v = nameEnd + 1;
      while (v < length && (codes[v] === 0x20 || codes[v] === 0x09)) v++;
      if (v < length && codes[v] === QUOTE) {
        quoted = true;
        let close = v + 1;
        while (close < length && codes[close] !== QUOTE) close++;
        if (close >= length) {
          problem(Mode6VariableErrors.UNTERMINATED_QUOTE, 'a quoted value is not closed', v);
          value = textOf(codes, v + 1, length);
          next = length;
        } else {
          value = textOf(codes, v + 1, close);
          next = close + 1;
          while (next < length && isSpace(codes[next] as number)) next++;
          if (next < length && codes[next] !== COMMA) {
            problem(Mode6VariableErrors.TEXT_AFTER_QUOTE, 'text after a closing quote', next);
            while (next < length && codes[next] !== COMMA) next++;
          }
        }
      } else {
        let end = v;
        while (end < length && codes[end] !== COMMA) end++;
        next = end;
        while (end > v && isSpace(codes[end - 1] as number)) end--;
        value = textOf(codes, v, end);
      }
      const raw = quoted ? v + 1 : v;
      for (let i = raw; i < next; i++) {
        const c = codes[i] as number;
        if (c === 0) {
          problem(Mode6VariableErrors.NUL, 'NUL octet inside the text', i);
          break;
        }
        if (!isPrintable(c) && !isSpace(c)) {
          problem(Mode6VariableErrors.BINARY, `non-printable octet 0x${c.toString(16).padStart(2, '0')} in the value of an item`, i);
          break;
        }
      }
    } else {
      next = nameEnd;
    }

    const name = textOf(codes, itemStart, trimmedNameEnd);
    let nameOk = trimmedNameEnd > itemStart;
    if (!nameOk) problem(Mode6VariableErrors.EMPTY_NAME, 'an item has a value but no name', itemStart);
    for (let i = itemStart; nameOk && i < trimmedNameEnd; i++) {
      const c = codes[i] as number;
      if (!isPrintable(c) || c === 0x20 || c === QUOTE) {
        problem(c === 0 ? Mode6VariableErrors.NUL : Mode6VariableErrors.BAD_NAME, `name ${JSON.stringify(name)} contains ${c === 0x20 ? 'a space' : `octet 0x${c.toString(16).padStart(2, '0')}`}`, i);
        nameOk = false;
      }
    }
    if (nameOk) {
      if (items.length >= maxItems) {
        problem(Mode6VariableErrors.TOO_MANY_ITEMS, `more than ${maxItems} items; the rest is ignored`, itemStart);
        break;
      }
      items.push({ name, value, quoted });
    }
    pos = next < length && codes[next] === COMMA ? next + 1 : next;
  }
  const list = new Mode6Variables(items);
  return problems.length === 0 ? ok(list) : fail(new Mode6VariablesError(list, problems));
}

/** The parsed list whether or not there were problems (for callers that tolerate garbage). */
export function variablesOf(result: Result<Mode6Variables, Mode6VariablesError>): { variables: Mode6Variables; problems: readonly Mode6VariableProblem[] } {
  return result.ok ? { variables: result.value, problems: [] } : { variables: result.error.partial, problems: result.error.problems };
}

// --- Request lists ---

/** One item of a request list: a bare name, [name, value], or { name, value }. */
export type Mode6RequestItem = string | readonly [string, string | number] | { readonly name: string; readonly value?: string | number };

const NAME_OK = /^[!#-+\--<>-~]+$/; // printable, no space, '"', ',' or '='

/**
 * Encodes a request list (`name, name=value`), as READVAR and READ_MRU take it. ntpd splits the request on
 * commas and does not understand quotes, so a value may not contain a comma, a quote or a line break
 * (UsageError); names are printable without space, comma, quote or `=`.
 */
export function encodeVariableList(items: readonly Mode6RequestItem[]): string {
  return items
    .map((item) => {
      const [name, value] = typeof item === 'string' ? [item, undefined] : Array.isArray(item) ? [item[0], item[1]] : [(item as { name: string }).name, (item as { value?: string | number }).value];
      if (typeof name !== 'string' || !NAME_OK.test(name)) throw new UsageError('MODE6_BAD_VARIABLE_NAME', `bad variable name ${JSON.stringify(name)}`);
      if (value === undefined) return name;
      const text = String(value);
      if (/[,"\r\n\0]/.test(text) || /[^\x20-\x7e]/.test(text)) throw new UsageError('MODE6_BAD_VARIABLE_VALUE', `value of ${name} cannot be sent: ${JSON.stringify(text)}`);
      return `${name}=${text}`;
    })
    .join(', ');
}

// --- Typed values, as ntpd prints them (ntp_control.c ctl_put*) ---

/** A decimal integer (`-24`, `123`) or a 0x-prefixed hex one (`0x1600`); undefined otherwise. */
export function variableInteger(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^[-+]?\d{1,15}$/.test(v)) return Number(v);
  if (/^0x[0-9a-f]{1,13}$/i.test(v)) return parseInt(v.slice(2), 16);
  return undefined;
}

/** A number as ctl_putdbl prints it (`0.000060`, `-1.5`, `6e-05`), or an integer; undefined otherwise. */
export function variableNumber(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^0x[0-9a-f]+$/i.test(v)) return variableInteger(v);
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(v)) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** A hex value as ctl_puthex prints it (`0x1f`), the prefix optional; undefined otherwise. */
export function variableHex(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const m = /^(?:0x)?([0-9a-f]{1,13})$/i.exec(value.trim());
  return m?.[1] === undefined ? undefined : parseInt(m[1], 16);
}

/** An NTP timestamp as ctl_putts prints it (`0xe9a0b3c1.80000000`, the prefix optional); undefined otherwise. */
export function variableTimestamp(value: string | null | undefined): NtpTimestamp | undefined {
  if (value === null || value === undefined) return undefined;
  const m = /^(?:0x)?([0-9a-f]{1,8})\.([0-9a-f]{1,8})$/i.exec(value.trim());
  if (m?.[1] === undefined || m[2] === undefined) return undefined;
  return { seconds: parseInt(m[1], 16), fraction: parseInt(m[2], 16) };
}

/** The ctl_putts text of a timestamp: `0x%08x.%08x` (what READ_MRU expects in last.N). */
export function formatVariableTimestamp(ts: NtpTimestamp): string {
  return `0x${ts.seconds.toString(16).padStart(8, '0')}.${ts.fraction.toString(16).padStart(8, '0')}`;
}
