/**
 * Paging through ntpd's MRU list (READ_MRU, opcode 10) as a pure state machine: `start`, then feed it each
 * answer (`onResponse`), error response (`onServerError`) or lost answer (`onTimeout`); every call returns the
 * next action: send a request, done, or failed. Time is an argument (Unix µs), never read.
 *
 * Protocol (NTPsec ntp_control.c read_mru_list, RFC 9327 §4 opcodes 10 and 12):
 * - REQ_NONCE (12) answers `nonce=<hex>`. Every READ_MRU request must echo a nonce ntpd issued to this address
 *   less than 16 s ago (NONCE_TIMEOUT); a request with a missing, wrong or stale nonce gets NO answer at all.
 * - A READ_MRU request is `nonce=…, frags=N` (at most N datagrams back) or `limit=N` (at most N entries), the
 *   filters (mincount, mindrop, minscore, laddr, resall/resany as 0x hex, maxlstint, minlstint; `recent` on
 *   the first request only) and, after the first page, the newest entries already received as
 *   `addr.K=…, last.K=…` (K = 0..15, newest first, as many as fit in one 468-octet request).
 * - The answer carries a fresh `nonce=`, the entries oldest first as addr.N, last.N, first.N, ct.N, mv.N, rs.N
 *   (NTPsec adds sc.N and dr.N, and a random three-letter `xyz.N` to keep clients honest: ignored here),
 *   `last.older`/`addr.older` naming the entry it resumed after, and — on the last page only — `now=` and,
 *   when it returned entries, `last.newest=`.
 *
 * Recovery rules (those of ntpq, with the rows it does not need left out):
 * - UNKNOWN_VARIABLE (5): none of the resume entries sent is still unchanged in ntpd's list (they were all
 *   hit again and moved to the front). They stop being used as resume points (they will come back, newer)
 *   and the next request sends older ones; with none left, paging restarts from the oldest entry. More than
 *   `maxRestarts` (8) of these in a row: failed, the list changes faster than it can be read.
 * - BAD_VALUE (6): ntpd refused the frags/limit value. Switch from frags= to limit= (at most 256, ntpd's
 *   MRU_ROW_LIMIT); if already on limit=, lower it by one, down to 2 (limit=1 means something else).
 * - A lost answer (timeout, or fragments missing): ntpd may have dropped the request because the nonce went
 *   stale, so ask for a new nonce first; and halve frags (or limit), down to 2, in case the answer was too
 *   large to get through. More than `maxTimeouts` (3) in a row: failed.
 * - frags is at least 2: ntpd counts the datagram it is filling, so frags=1 brings no entry. A page with
 *   neither an entry nor `now=` makes no progress; 3 in a row: failed.
 * - The nonce is renewed before a request when the last one is older than 12 s (16 s less a margin for the
 *   round trip and clock rate differences). Its age counts from when the request that brought it was sent:
 *   ntpd stamps a nonce with the time it received that request.
 * - After each good page frags grows by one again, up to `frags` (32 by default, ntpq's MAXFRAGS).
 * - Other error codes end the paging.
 *
 * Result: entries deduplicated by host, keeping the one with the newest `last` (a host heard from during the
 * paging appears twice; ntpd keys its list on the address alone, the port being the last one seen), oldest
 * `last` first, as the server orders them. At most `maxEntries` distinct entries are
 * kept and at most `maxRequests` requests sent; past either the paging stops with `truncated: true`.
 */

import { DecodeError, UsageError } from '../errors.js';
import { ntpTimestampDiffMicros, type NtpTimestamp } from '../ntp/timestamp.js';
import { MODE6_MAX_FRAGMENT_DATA, Mode6ErrorCode, Mode6Opcode, mode6ErrorName } from './packet.js';
import { encodeVariableList, formatVariableTimestamp, parseVariableList, variableHex, variableInteger, variableNumber, variableTimestamp, variablesOf, type Mode6RequestItem } from './variables.js';

/** NTPsec ntp_control.h NONCE_TIMEOUT: a nonce is honoured for 16 s. */
export const MRU_NONCE_TIMEOUT_MICROS = 16_000_000;
/** Renew the nonce when it is this old: the timeout less 4 s of margin. */
export const MRU_NONCE_REFRESH_MICROS = 12_000_000;
/** ntpq's MAXFRAGS: datagrams asked for per page at most. */
export const MRU_DEFAULT_FRAGS = 32;
/**
 * Smallest useful frags: ntpd counts the datagram it is filling as the first (res_frags starts at 1 and
 * entries are added while res_frags < frags), so frags=1 gets a page with no entries at all.
 */
export const MRU_MIN_FRAGS = 2;
/** Pages in a row that bring neither an entry nor the end before the paging is given up. */
export const MRU_MAX_EMPTY_PAGES = 3;
/** NTPsec MRU_FRAGS_LIMIT: ntpd refuses frags above this with BAD_VALUE. */
export const MRU_MAX_FRAGS = 128;
/** NTPsec MRU_ROW_LIMIT: ntpd refuses limit above this with BAD_VALUE. */
export const MRU_MAX_LIMIT = 256;
/** ntpd reads resume entries addr.0..addr.15 only. */
export const MRU_MAX_RESUME_ENTRIES = 16;
export const MRU_DEFAULT_MAX_ENTRIES = 100_000;
export const MRU_DEFAULT_MAX_REQUESTS = 2_000;
export const MRU_DEFAULT_MAX_RESTARTS = 8;
export const MRU_DEFAULT_MAX_TIMEOUTS = 3;

export interface MruFilters {
  /** Entries with at least this many packets. */
  readonly mincount?: number;
  /** Entries with at least this many dropped packets (NTPsec). */
  readonly mindrop?: number;
  /** Entries with at least this score (NTPsec). */
  readonly minscore?: number;
  /** Entries received on this local address. */
  readonly laddr?: string;
  /** Restriction bits that must all be set. */
  readonly resall?: number;
  /** Restriction bits of which one must be set. */
  readonly resany?: number;
  /** Entries whose last packet is at most this many seconds old. */
  readonly maxlstint?: number;
  /** Entries whose last packet is at least this many seconds old. */
  readonly minlstint?: number;
  /** Roughly the newest N entries only (first request). */
  readonly recent?: number;
}

export interface MruOptions {
  /** Datagrams per page to start with and grow back to. Default 32; 2..128. */
  readonly frags?: number;
  readonly maxEntries?: number;
  readonly maxRequests?: number;
  readonly maxRestarts?: number;
  readonly maxTimeouts?: number;
}

export interface MruEntry {
  /** Address and port as ntpd prints them: `192.0.2.1:123`, `[2001:db8::1]:123`. */
  readonly address: string;
  readonly host: string;
  readonly port: number | null;
  readonly last: NtpTimestamp;
  readonly first: NtpTimestamp | null;
  readonly count: number | null;
  /** Mode and version of the last packet (from mv: version << 3 | mode). */
  readonly mode: number | null;
  readonly version: number | null;
  /** Restriction flags (RES_* bits). */
  readonly restrictions: number | null;
  /** NTPsec's score and dropped-packet count, when sent. */
  readonly score: number | null;
  readonly dropped: number | null;
}

export interface MruResult {
  readonly entries: readonly MruEntry[];
  /** The server's time at the end of the paging. */
  readonly now: NtpTimestamp | null;
  readonly lastNewest: NtpTimestamp | null;
  readonly requests: number;
  readonly restarts: number;
  readonly timeouts: number;
  readonly nonceRequests: number;
  /** Entries that could not be used (no address or no last time). */
  readonly skippedEntries: number;
  /** Problems found in the answers' text (counted; entries around them were kept). */
  readonly textProblems: number;
  /** True when maxEntries or maxRequests stopped the paging before `now=` arrived. */
  readonly truncated: boolean;
}

export type MruAction =
  | { readonly kind: 'send'; readonly opcode: number; readonly data: string }
  | { readonly kind: 'done'; readonly result: MruResult }
  | { readonly kind: 'failed'; readonly error: DecodeError };

export const MruErrors = {
  BAD_NONCE: 'MODE6_MRU_BAD_NONCE',
  STALLED: 'MODE6_MRU_STALLED',
  NO_PROGRESS: 'MODE6_MRU_NO_PROGRESS',
  TIMEOUT: 'MODE6_MRU_TIMEOUT',
  SERVER_ERROR: 'MODE6_MRU_SERVER_ERROR',
  BAD_VALUE: 'MODE6_MRU_BAD_VALUE',
} as const;

const FILTER_ORDER: readonly (keyof MruFilters)[] = ['mincount', 'mindrop', 'minscore', 'laddr', 'resall', 'resany', 'maxlstint', 'minlstint'];

function splitAddress(address: string): { host: string; port: number | null } {
  const v6 = /^\[(.*)\]:(\d+)$/.exec(address);
  if (v6?.[1] !== undefined) return { host: v6[1], port: Number(v6[2]) };
  const v4 = /^([^:]*):(\d+)$/.exec(address);
  if (v4?.[1] !== undefined) return { host: v4[1], port: Number(v4[2]) };
  return { host: address, port: null };
}

function checkCount(name: string, value: number | undefined, min: number, max: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) throw new UsageError('MODE6_MRU_OPTION', `${name} ${value} is outside ${min}..${max}`);
}

/** Encodes one filter value as ntpd parses it (resall/resany in 0x hex, the others decimal). */
function filterItems(filters: MruFilters, first: boolean): Mode6RequestItem[] {
  const out: Mode6RequestItem[] = [];
  if (first && filters.recent !== undefined) out.push(['recent', filters.recent]);
  for (const key of FILTER_ORDER) {
    const value = filters[key];
    if (value === undefined) continue;
    if (key === 'resall' || key === 'resany') out.push([key, `0x${(value as number).toString(16)}`]);
    else out.push([key, value]);
  }
  return out;
}

export class MruPager {
  readonly filters: MruFilters;
  readonly maxFrags: number;
  readonly maxEntries: number;
  readonly maxRequests: number;
  readonly maxRestarts: number;
  readonly maxTimeouts: number;

  #phase: 'idle' | 'nonce' | 'page' | 'ended' = 'idle';
  #nonce: string | null = null;
  /** When the request that brought the nonce was sent: ntpd stamps a nonce with its receive time, so it is no older than this. */
  #nonceAt = 0;
  /** When the outstanding request was issued. */
  #sentAt = 0;
  #frags: number;
  #limit: number | null = null;
  #first = true;
  /** Distinct entries by host (ntpd keys its MRU list on the address alone; the port is the last one seen). */
  readonly #entries = new Map<string, MruEntry>();
  /** Hosts in the order their latest copy arrived: resume candidates are taken from the end. */
  #arrival: string[] = [];
  /** Hosts that failed as resume points (bumped in ntpd's list): not used again until seen anew. */
  readonly #stale = new Set<string>();
  /** Hosts sent as resume points in the outstanding request. */
  #resumeSent: string[] = [];
  #requests = 0;
  #restarts = 0;
  #timeouts = 0;
  #consecutiveTimeouts = 0;
  #nonceRequests = 0;
  #skipped = 0;
  #textProblems = 0;
  /** An entry was left out because maxEntries was reached. */
  #capped = false;
  #emptyPages = 0;

  constructor(filters: MruFilters = {}, options: MruOptions = {}) {
    checkCount('frags', options.frags, MRU_MIN_FRAGS, MRU_MAX_FRAGS);
    checkCount('maxEntries', options.maxEntries, 1, Number.MAX_SAFE_INTEGER);
    checkCount('maxRequests', options.maxRequests, 1, Number.MAX_SAFE_INTEGER);
    checkCount('maxRestarts', options.maxRestarts, 0, 1000);
    checkCount('maxTimeouts', options.maxTimeouts, 0, 1000);
    for (const key of ['mincount', 'mindrop', 'maxlstint', 'minlstint', 'recent', 'resall', 'resany'] as const) checkCount(key, filters[key], 0, 0xffff_ffff);
    if (filters.minscore !== undefined && !Number.isFinite(filters.minscore)) throw new UsageError('MODE6_MRU_OPTION', `minscore ${filters.minscore} is not a number`);
    // Filters go into the request text: check them once, here.
    encodeVariableList(filterItems(filters, true));
    this.filters = filters;
    this.maxFrags = options.frags ?? MRU_DEFAULT_FRAGS;
    this.#frags = this.maxFrags;
    this.maxEntries = options.maxEntries ?? MRU_DEFAULT_MAX_ENTRIES;
    this.maxRequests = options.maxRequests ?? MRU_DEFAULT_MAX_REQUESTS;
    this.maxRestarts = options.maxRestarts ?? MRU_DEFAULT_MAX_RESTARTS;
    this.maxTimeouts = options.maxTimeouts ?? MRU_DEFAULT_MAX_TIMEOUTS;
  }

  /** Current page size request: `{ frags }` or `{ limit }`. */
  get pageSize(): { frags: number } | { limit: number } {
    return this.#limit === null ? { frags: this.#frags } : { limit: this.#limit };
  }

  /** Opcode of the request now outstanding (REQ_NONCE or READ_MRU), null when none. */
  get outstanding(): number | null {
    return this.#phase === 'nonce' ? Mode6Opcode.RequestNonce : this.#phase === 'page' ? Mode6Opcode.ReadMru : null;
  }

  /** The first request: a nonce. */
  start(nowMicros: number): MruAction {
    if (this.#phase !== 'idle') throw new UsageError('MODE6_MRU_STATE', 'start() was already called');
    return this.#askNonce(nowMicros);
  }

  /** The data of a complete answer to the outstanding request. */
  onResponse(data: Uint8Array, nowMicros: number): MruAction {
    const phase = this.#phase;
    if (phase === 'idle' || phase === 'ended') throw new UsageError('MODE6_MRU_STATE', 'no request is outstanding');
    // Only a page counts as an answer for the timeout rule: ntpd answers nonce requests even while it drops
    // every page request.
    if (phase === 'page') this.#consecutiveTimeouts = 0;
    const parsed = variablesOf(parseVariableList(data));
    this.#textProblems += parsed.problems.length;
    const vars = parsed.variables;
    const nonce = vars.get('nonce');
    if (phase === 'nonce') {
      if (nonce === undefined || nonce === null || !/^[0-9a-f]{8,64}$/i.test(nonce)) {
        return this.#fail(new DecodeError(MruErrors.BAD_NONCE, 'the nonce answer holds no nonce= item', 0));
      }
      this.#nonce = nonce;
      this.#nonceAt = this.#sentAt;
      return this.#askPage(nowMicros);
    }

    // A page. Group the indexed items by index; keep the order of the indexes.
    if (nonce !== undefined && nonce !== null && /^[0-9a-f]{8,64}$/i.test(nonce)) {
      this.#nonce = nonce;
      this.#nonceAt = this.#sentAt;
    }
    const rows = new Map<number, Map<string, string | null>>();
    let now: NtpTimestamp | null = null;
    let lastNewest: NtpTimestamp | null = null;
    for (const item of vars.items) {
      if (item.name === 'now') {
        now = variableTimestamp(item.value) ?? null;
        continue;
      }
      if (item.name === 'last.newest') {
        lastNewest = variableTimestamp(item.value) ?? null;
        continue;
      }
      const m = /^(addr|last|first|ct|mv|rs|sc|dr)\.(\d{1,6})$/.exec(item.name);
      if (m?.[1] === undefined || m[2] === undefined) continue;
      const index = Number(m[2]);
      let row = rows.get(index);
      if (row === undefined) rows.set(index, (row = new Map()));
      row.set(m[1], item.value);
    }
    const indexes = [...rows.keys()].sort((a, b) => a - b);
    let progress = false;
    for (const index of indexes) {
      const row = rows.get(index) as Map<string, string | null>;
      const address = row.get('addr');
      const last = variableTimestamp(row.get('last'));
      if (address === undefined || address === null || address === '' || last === undefined) {
        this.#skipped++;
        continue;
      }
      const mv = variableInteger(row.get('mv'));
      const entry: MruEntry = {
        address,
        ...splitAddress(address),
        last,
        first: variableTimestamp(row.get('first')) ?? null,
        count: variableInteger(row.get('ct')) ?? null,
        mode: mv === undefined ? null : mv & 7,
        version: mv === undefined ? null : (mv >>> 3) & 7,
        restrictions: variableHex(row.get('rs')) ?? null,
        score: variableNumber(row.get('sc')) ?? null,
        dropped: variableInteger(row.get('dr')) ?? null,
      };
      progress = true;
      this.#remember(entry);
    }

    if (now !== null) return this.#finish(now, lastNewest, false);
    this.#emptyPages = progress ? 0 : this.#emptyPages + 1;
    if (this.#emptyPages >= MRU_MAX_EMPTY_PAGES) {
      return this.#fail(new DecodeError(MruErrors.NO_PROGRESS, `${this.#emptyPages} pages in a row brought no entry and no end of list`, 0));
    }
    if (this.#entries.size >= this.maxEntries || this.#requests >= this.maxRequests) return this.#finish(null, null, true);
    // A good page: grow the page size back towards the configured one (ntpq's rule).
    if (this.#limit === null) this.#frags = Math.min(this.maxFrags, this.#frags + 1);
    else this.#limit = Math.min(MRU_MAX_LIMIT, this.#limit + 1);
    this.#restarts = 0;
    return this.#next(nowMicros);
  }

  /** The outstanding request got an error response with this RFC 9327 §3.4 code. */
  onServerError(code: number, nowMicros: number): MruAction {
    const phase = this.#phase;
    if (phase === 'idle' || phase === 'ended') throw new UsageError('MODE6_MRU_STATE', 'no request is outstanding');
    if (phase === 'page') this.#consecutiveTimeouts = 0;
    if (phase === 'page' && code === Mode6ErrorCode.UnknownVariable) {
      this.#restarts++;
      if (this.#restarts > this.maxRestarts) {
        return this.#fail(new DecodeError(MruErrors.STALLED, `no resume entry was still unchanged ${this.#restarts} times in a row: the MRU list changes faster than it can be read`, 0));
      }
      for (const host of this.#resumeSent) this.#stale.add(host);
      return this.#next(nowMicros);
    }
    if (phase === 'page' && code === Mode6ErrorCode.BadValue) {
      if (this.#limit === null) this.#limit = Math.min(MRU_MAX_LIMIT, 3 * this.maxFrags);
      else if (this.#limit > 2) this.#limit--;
      else return this.#fail(new DecodeError(MruErrors.BAD_VALUE, 'ntpd refuses every page size', 0));
      return this.#next(nowMicros);
    }
    return this.#fail(new DecodeError(MruErrors.SERVER_ERROR, `ntpd answered ${phase === 'nonce' ? 'REQ_NONCE' : 'READ_MRU'} with ${mode6ErrorName(code)} (${code})`, 0));
  }

  /** The outstanding request got no (complete) answer in time. */
  onTimeout(nowMicros: number): MruAction {
    const phase = this.#phase;
    if (phase === 'idle' || phase === 'ended') throw new UsageError('MODE6_MRU_STATE', 'no request is outstanding');
    this.#timeouts++;
    this.#consecutiveTimeouts++;
    if (this.#consecutiveTimeouts > this.maxTimeouts) {
      return this.#fail(new DecodeError(MruErrors.TIMEOUT, `${this.#consecutiveTimeouts} requests in a row got no answer`, 0));
    }
    if (phase === 'page') {
      if (this.#limit === null) this.#frags = Math.max(MRU_MIN_FRAGS, Math.floor(this.#frags / 2));
      else this.#limit = Math.max(2, Math.floor(this.#limit / 2));
    }
    // ntpd drops requests whose nonce went stale without a word: get a new one before asking again.
    this.#nonce = null;
    return this.#askNonce(nowMicros);
  }

  /** Entries so far (deduplicated), oldest `last` first, e.g. to show partial results after a failure. */
  entries(): MruEntry[] {
    // Array.prototype.sort is stable: equal times keep the order they arrived in.
    return [...this.#entries.values()].sort((a, b) => ntpTimestampDiffMicros(a.last, b.last));
  }

  /** Keeps `entry` if its host is new or it is newer; true when it was kept. */
  #remember(entry: MruEntry): boolean {
    const host = entry.host;
    const known = this.#entries.get(host);
    if (known === undefined) {
      if (this.#entries.size >= this.maxEntries) {
        this.#capped = true;
        return false;
      }
    } else if (ntpTimestampDiffMicros(entry.last, known.last) <= 0) {
      return false;
    }
    this.#entries.set(host, entry);
    // A newer copy: it is a valid resume point again, and the newest arrival.
    this.#stale.delete(host);
    const at = this.#arrival.lastIndexOf(host);
    if (at >= 0) this.#arrival.splice(at, 1);
    this.#arrival.push(host);
    return true;
  }

  #next(nowMicros: number): MruAction {
    if (this.#requests >= this.maxRequests) return this.#finish(null, null, true);
    if (this.#nonce === null || nowMicros - this.#nonceAt >= MRU_NONCE_REFRESH_MICROS) return this.#askNonce(nowMicros);
    return this.#askPage(nowMicros);
  }

  #askNonce(nowMicros: number): MruAction {
    if (this.#requests >= this.maxRequests) return this.#finish(null, null, true);
    this.#phase = 'nonce';
    this.#sentAt = nowMicros;
    this.#requests++;
    this.#nonceRequests++;
    this.#resumeSent = [];
    return { kind: 'send', opcode: Mode6Opcode.RequestNonce, data: '' };
  }

  #askPage(nowMicros: number): MruAction {
    if (this.#requests >= this.maxRequests) return this.#finish(null, null, true);
    if (nowMicros - this.#nonceAt >= MRU_NONCE_REFRESH_MICROS) return this.#askNonce(nowMicros);
    this.#phase = 'page';
    this.#sentAt = nowMicros;
    this.#requests++;
    const size: Mode6RequestItem = this.#limit === null ? ['frags', this.#frags] : ['limit', this.#limit];
    let text = encodeVariableList([['nonce', this.#nonce as string], size, ...filterItems(this.filters, this.#first)]);
    this.#first = false;
    // Resume points: the newest entries not known to be stale, newest first, as many as fit.
    this.#resumeSent = [];
    for (let i = this.#arrival.length - 1; i >= 0 && this.#resumeSent.length < MRU_MAX_RESUME_ENTRIES; i--) {
      const host = this.#arrival[i] as string;
      if (this.#stale.has(host)) continue;
      const entry = this.#entries.get(host) as MruEntry;
      const k = this.#resumeSent.length;
      const more = `, addr.${k}=${entry.address}, last.${k}=${formatVariableTimestamp(entry.last)}`;
      if (text.length + more.length > MODE6_MAX_FRAGMENT_DATA) break;
      text += more;
      this.#resumeSent.push(host);
    }
    return { kind: 'send', opcode: Mode6Opcode.ReadMru, data: text };
  }

  #finish(now: NtpTimestamp | null, lastNewest: NtpTimestamp | null, truncated: boolean): MruAction {
    this.#phase = 'ended';
    return {
      kind: 'done',
      result: {
        entries: this.entries(),
        now,
        lastNewest,
        requests: this.#requests,
        restarts: this.#restarts,
        timeouts: this.#timeouts,
        nonceRequests: this.#nonceRequests,
        skippedEntries: this.#skipped,
        textProblems: this.#textProblems,
        truncated: truncated || this.#capped,
      },
    };
  }

  #fail(error: DecodeError): MruAction {
    this.#phase = 'ended';
    return { kind: 'failed', error };
  }
}
