/**
 * The rows of `ntpq -p -n` (NTPsec 1.2's "peers" billboard), built from what mode 6 gives: the association list
 * of READSTAT and, per association, the READVAR variables and the status word of that READVAR answer.
 *
 * The rules are NTPsec ntpq's (pylib/util.py PeerSummary), so that a row here prints exactly as ntpq prints it:
 * - tally: " x.-+#*o"[selection] of the status word of the READVAR answer (RFC 9327 §3.2);
 * - remote: srcadr, unless it is 0.0.0.0, ::, or 127.127.x.x (a pool or a refclock), then srchost;
 * - refid: as sent, wrapped in dots (".INIT.") when it is neither an address nor contains a dot;
 * - type: from hmode — 'u' unicast client, 'p' pool (refid POOL), 'l' refclock (srchost has "("), 'a'
 *   manycast (224.x), a digit for NTS (the number of cookies), 'b' broadcast client, 'B'/'M' broadcast /
 *   multicast server, 's'/'S' symmetric active/passive, '?' otherwise;
 * - when: seconds since `rec` or `reftime`, whichever comes last in the answer (ntpd sends reftime first),
 *   shown '-' when not positive (never received: the zero timestamp lies in 2036);
 * - poll: 2^min(ppoll, hpoll) seconds (negative exponents count as 0);
 * - reach: the reach register in octal;
 * - delay, offset and jitter (dispersion when there is no jitter) in milliseconds, printed with 4 decimals
 *   when ntpd sent 6 (NTPsec), else 3.
 * Intervals over 2048 s are shown in minutes, hours or days like ntpq does.
 */

import { ntpTimestampToUnixMicrosRaw } from '../ntp/timestamp.js';
import { decodePeerStatus, PEER_TALLY, type PeerStatus } from './status.js';
import { variableTimestamp, type Mode6Variables } from './variables.js';

export interface PeerRowInput {
  readonly associationId: number;
  /** Status word of the READVAR answer for this association (the peer status word). */
  readonly status: number;
  readonly variables: Mode6Variables;
}

export interface PeerRowOptions {
  /**
   * Version the requests were sent with: above 1, the 8 tally characters " x.-+#*o"; version 1 uses the old
   * 4-character " .+*" on the low 2 bits. Default 2 (ntpq's).
   */
  readonly version?: number;
}

export interface PeerRow {
  readonly associationId: number;
  readonly status: PeerStatus;
  readonly tally: string;
  readonly remote: string;
  readonly refid: string;
  /** 20 when ntpd did not send one (ntpq's default). */
  readonly stratum: number;
  readonly type: string;
  /** Whole seconds since the last packet (or reference time), null when neither was sent. */
  readonly when: number | null;
  /** Seconds. */
  readonly poll: number;
  readonly reach: number;
  /** Milliseconds; null when missing or not a number. */
  readonly delay: number | null;
  readonly offset: number | null;
  /** Jitter in ms, or the dispersion when ntpd sent no jitter (see `jitterIsDispersion`). */
  readonly jitter: number | null;
  readonly jitterIsDispersion: boolean;
  /** The columns as ntpq prints them. */
  readonly columns: {
    readonly remote: string;
    readonly refid: string;
    readonly stratum: string;
    readonly type: string;
    readonly when: string;
    readonly poll: string;
    readonly reach: string;
    readonly delay: string;
    readonly offset: string;
    readonly jitter: string;
  };
  /** The whole line as `ntpq -p -n` prints it (80 columns terminal), without the newline. */
  readonly line: string;
}

/** The two header lines of `ntpq -p` on an 80-column terminal. */
export const PEERS_HEADER: readonly string[] = ['     remote           refid      st t when poll reach   delay   offset   jitter', '='.repeat(79)];

const NAME_WIDTH = 15;
const REFID_WIDTH = 15;

/** Python's `int(text, 0)`, then `float(text)`; what is neither stays text (ntpq prints it as is). */
function pyValue(raw: string | null | undefined): number | string | undefined {
  if (raw === null || raw === undefined) return undefined;
  const v = raw.trim();
  if (/^[-+]?(0x[0-9a-f](_?[0-9a-f])*|0o[0-7](_?[0-7])*|0b[01](_?[01])*|[1-9](_?\d)*|0+(_?0)*)$/i.test(v)) {
    const sign = v.startsWith('-') ? -1 : 1;
    const body = v.replace(/^[-+]/, '').replace(/_/g, '').toLowerCase();
    const n = body.startsWith('0x') ? parseInt(body.slice(2), 16) : body.startsWith('0o') ? parseInt(body.slice(2), 8) : body.startsWith('0b') ? parseInt(body.slice(2), 2) : Number(body);
    return sign * n;
  }
  if (/^[-+]?((\d+\.?\d*|\.\d+)(e[-+]?\d+)?|nan|inf|infinity)$/i.test(v)) {
    const lower = v.toLowerCase().replace(/^\+/, '');
    if (lower.endsWith('nan')) return NaN;
    if (lower.endsWith('inf') || lower.endsWith('infinity')) return lower.startsWith('-') ? -Infinity : Infinity;
    return Number(v);
  }
  return raw;
}

/** Python's '%.Nf' (round half to even on exact binary ties, '-' kept on negative zero). */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  let s = x.toFixed(digits);
  // toFixed rounds an exact tie away from zero; Python rounds it to even. Look at the exact expansion.
  const exact = Math.abs(x).toFixed(Math.min(100, digits + 60));
  const cut = exact.indexOf('.') + 1 + digits;
  const rest = exact.slice(cut);
  if (/^50*$/.test(rest)) {
    const truncated = exact.slice(0, digits === 0 ? cut - 1 : cut);
    const lastDigit = Number(truncated.replace('.', '').slice(-1));
    if (lastDigit % 2 === 0) s = (x < 0 ? '-' : '') + truncated;
  }
  if ((Object.is(x, -0) || x < 0) && !s.startsWith('-')) s = `-${s}`;
  return s;
}

/** ntpq's f8dot3/f8dot4: a number in 8 characters, fewer decimals as it grows; text passed through. */
function f8(value: number | string, four: boolean): string {
  if (typeof value === 'string') return value.padStart(8);
  if (Number.isNaN(value)) return '     nan';
  let digits: number | null;
  if (four) {
    if (value >= 0) digits = value < 1000 ? 4 : value < 10000 ? 3 : value < 100000 ? 2 : value < 1000000 ? 1 : null;
    else digits = value > -100 ? 4 : value > -1000 ? 3 : value > -10000 ? 2 : value > -100000 ? 1 : null;
  } else {
    if (value >= 0) digits = value < 10000 ? 3 : value < 100000 ? 2 : value < 1000000 ? 1 : null;
    else digits = value > -1000 ? 3 : value > -10000 ? 2 : value > -100000 ? 1 : null;
  }
  if (digits === null) return (Number.isFinite(value) ? String(Math.trunc(value)) : pyFixed(value, 0)).padStart(8);
  return pyFixed(value, digits).padStart(8);
}

/** ntpq's prettyinterval: seconds up to 2048, then minutes, hours, days; '-' when not positive. */
export function prettyInterval(seconds: number | null): string {
  if (seconds === null || !Number.isInteger(seconds) || seconds <= 0) return '-';
  if (seconds <= 2048) return String(seconds);
  let d = (seconds + 29) / 60;
  if (d <= 300) return `${Math.floor(d)}m`;
  d = (d + 29) / 60;
  if (d <= 96) return `${Math.floor(d)}h`;
  d = (d + 11) / 24;
  return `${Math.floor(d)}d`;
}

/** '%-W.Ws': left-justified, cut to W. */
const column = (text: string, width: number): string => text.slice(0, width).padEnd(width);
/** '%W.Ws': right-justified, cut to W. */
const rcolumn = (text: string, width: number): string => text.slice(0, width).padStart(width);

function highTruncate(text: string, width: number): string {
  return text.length <= width ? text : `-${text.slice(text.length - width + 1)}`;
}

const asNumber = (v: number | string | undefined): number | null => (typeof v === 'number' && !Number.isNaN(v) ? v : null);

/** Builds one `ntpq -p -n` row. `nowMicros`: Unix time in µs, for the `when` column. */
export function buildPeerRow(input: PeerRowInput, nowMicros: number, options?: PeerRowOptions): PeerRow {
  const version = options?.version ?? 2;
  const vars = input.variables;
  let delay: number | string = '.';
  let offset: number | string = '.';
  let jitter: number | string = '.';
  let dispersion: number | string = '.';
  let haveJitter = false;
  let sawSix = false;
  let hmode = 0;
  let hpoll = 0;
  let ppoll = 0;
  let reach = 0;
  let refid = '';
  let lastSync: number | null = null;
  let srcadr: string | null = null;
  let srchost: string | null = null;
  let stratum = 20;
  let ntsCookies = -1;

  for (const item of vars.items) {
    const raw = item.value ?? '';
    const value = pyValue(item.value);
    switch (item.name) {
      case 'delay':
        delay = value ?? '';
        if (raw.length > 6 && raw[raw.length - 7] === '.') sawSix = true;
        break;
      case 'hmode':
        hmode = typeof value === 'number' ? value : 0;
        break;
      case 'hpoll':
        hpoll = typeof value === 'number' ? (value < 0 ? 0 : value) : 0;
        break;
      case 'ppoll':
        ppoll = typeof value === 'number' ? (value < 0 ? 0 : value) : 0;
        break;
      case 'jitter':
        jitter = value ?? '';
        haveJitter = true;
        break;
      case 'offset':
        offset = value ?? '';
        break;
      case 'reach':
        reach = typeof value === 'number' ? value : 0;
        break;
      case 'refid':
        refid = raw;
        break;
      case 'rec':
      case 'reftime': {
        const ts = variableTimestamp(raw);
        lastSync = ts === undefined ? null : Math.trunc((nowMicros - ntpTimestampToUnixMicrosRaw(ts, nowMicros)) / 1e6);
        break;
      }
      case 'rootdisp':
      case 'dispersion':
        dispersion = value ?? '';
        break;
      case 'srcadr':
      case 'peeradr':
        srcadr = raw;
        break;
      case 'srchost':
        srchost = raw;
        break;
      case 'stratum':
        stratum = typeof value === 'number' ? Math.trunc(value) : 20;
        break;
      case 'ntscookies':
        ntsCookies = typeof value === 'number' ? value : -1;
        break;
      default:
        break;
    }
  }

  let type = '?';
  const isClock = srchost !== null && srchost.includes('(');
  if (hmode === 6) type = 'b';
  else if (hmode === 5) type = srcadr?.startsWith('224.') === true ? 'M' : 'B';
  else if (hmode === 3) {
    if (isClock) type = 'l';
    else if (refid === 'POOL') type = 'p';
    else if (srcadr?.startsWith('224.') === true) type = 'a';
    else if (ntsCookies > -1) type = String.fromCharCode(Math.min(ntsCookies, 0x7e - 0x30) + 0x30);
    else type = 'u';
  } else if (hmode === 1) type = 's';
  else if (hmode === 2) type = 'S';

  const pollSeconds = 2 ** Math.min(ppoll, hpoll);
  const status = decodePeerStatus(input.status);
  const selectionBits = input.status >>> 8;
  const tally = version > 1 ? (PEER_TALLY[selectionBits & 7] as string) : (' .+*'[selectionBits & 3] as string);

  let remote: string;
  if (srcadr !== null && srcadr !== '0.0.0.0' && !srcadr.startsWith('127.127') && srcadr !== '::') remote = srcadr;
  else remote = srchost ?? srcadr ?? '';

  const dottedRefid = refid.includes('.') || refid.includes(':') ? refid : `.${refid}.`;
  const jitterValue = haveJitter ? jitter : dispersion;
  const columns = {
    remote: column(remote, NAME_WIDTH),
    refid: highTruncate(dottedRefid, REFID_WIDTH) + ' '.repeat(Math.max(0, REFID_WIDTH - dottedRefid.length)),
    stratum: String(stratum).padStart(2),
    type,
    when: rcolumn(prettyInterval(lastSync), 4),
    poll: rcolumn(prettyInterval(pollSeconds), 4),
    reach: reach.toString(8).padStart(3),
    delay: f8(delay, sawSix),
    offset: f8(offset, sawSix),
    jitter: f8(jitterValue, sawSix),
  };
  const line = `${tally}${columns.remote} ${columns.refid} ${columns.stratum} ${columns.type} ${columns.when} ${columns.poll}  ${columns.reach} ${columns.delay} ${columns.offset} ${columns.jitter}`;
  return {
    associationId: input.associationId,
    status,
    tally,
    remote,
    refid: dottedRefid,
    stratum,
    type,
    when: lastSync,
    poll: pollSeconds,
    reach,
    delay: asNumber(delay),
    offset: asNumber(offset),
    jitter: asNumber(jitterValue),
    jitterIsDispersion: !haveJitter,
    columns,
    line,
  };
}
