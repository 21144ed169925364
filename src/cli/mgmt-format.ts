/**
 * Pure helpers of `ntptsc`'s management commands: results of the management protocol (the types of
 * src/proto/mgmt/types.ts, never redefined here) as aligned tables and `key: value` lines for people, errors as
 * one line, and the live view of `ntptsc watch`; also the argument values of `ntptsc ntpd ...` and `ntptsc eks ...`. No I/O, no
 * clock: tests call them directly. Scripts use `--json`, which prints the raw result instead.
 */
import { isIP } from 'node:net';
import { MgmtError, rpcCodeName, type MgmtConnectionError, type MgmtNotification } from '../client/mgmt.js';
import type { JsonValue } from '../proto/mgmt/jsonrpc.js';
import {
  LIMITS,
  type ClientsResult,
  type EksListResult,
  type EksRevokeResult,
  type EventParams,
  type KeysResult,
  type LogLevelResult,
  type NtpdMruEntry,
  type NtpdMrulistResult,
  type NtpdPeer,
  type NtpdPeersResult,
  type NtpdSysstatsResult,
  type NtpdVarsResult,
  type ReloadResult,
  type RotateKeysResult,
  type ServicesResult,
  type StatsResult,
  type StatusResult,
  type UnknownEvent,
} from '../proto/mgmt/types.js';
import { prettyInterval } from '../proto/mode6/peers.js';
import { formatEndpoint, formatRows, formatSeconds, oneLine, type Parsed, type Rows } from './format.js';

// ---------------------------------------------------------------------------------------------------------------
// Building blocks

export type Align = 'left' | 'right';

/**
 * A table: a header line, then one line per row, columns separated by two spaces, each as wide as its widest
 * cell; `right` columns (numbers) are right-aligned. Trailing blanks are removed. `(none)` for no rows.
 */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, align: readonly Align[] = []): string {
  if (rows.length === 0) return `${headers.join('  ')}\n(none)\n`;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (align[i] === 'right' ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** `2025-01-02T03:04:05.000000Z` → `2025-01-02 03:04:05Z` (whole seconds are enough for people); other text unchanged. */
export function formatTime(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$/.exec(iso);
  return m === null ? iso : `${m[1]} ${m[2]}Z`;
}

/** Seconds as `3d 4h 5m 6s` (largest units first, zero units left out; below a minute, `12.3s`). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return String(seconds);
  if (seconds < 60) return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)}s`;
  let rest = Math.floor(seconds);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n}${unit}`);
  }
  if (rest > 0) parts.push(`${rest}s`);
  return parts.join(' ');
}

/** A 32-bit master key id as cookies carry it: `0xdeadbeef`. */
export function formatKeyId(id: number): string {
  return `0x${(id >>> 0).toString(16).padStart(8, '0')}`;
}

const list = (items: readonly string[]): string => (items.length === 0 ? 'none' : items.join(', '));

// ---------------------------------------------------------------------------------------------------------------
// Methods

export function statusRows(s: StatusResult): Rows {
  const t = s.time;
  const session = s.session;
  return [
    ['server', `${s.server} ${s.version}`],
    ['started', `${formatTime(s.startedAt)} (up ${formatDuration(s.uptime)})`],
    ['config', s.config ?? 'built-in defaults'],
    ['log level', s.logLevel],
    ['time source', `${t.source}, ${t.synchronized ? 'synchronized' : 'not synchronized'}`],
    ['stratum', String(t.stratum)],
    ['refid', t.refid],
    ['leap', t.leap],
    ['root delay', formatSeconds(t.rootDelay)],
    ['root dispersion', formatSeconds(t.rootDispersion)],
    ['master key', `${formatKeyId(s.keys.current)} (${s.keys.count} kept), next rotation ${formatTime(s.keys.nextRotation)}`],
    ['certificate', `${s.certificate.subject}${s.certificate.selfSigned ? ' (self-signed)' : ''}`],
    ['valid', `${formatTime(s.certificate.notBefore)} to ${formatTime(s.certificate.notAfter)}`],
    ['sha256', s.certificate.sha256],
    ['connections', String(s.connections)],
    ['session', `${session.role} via ${session.via}${session.identity === null ? '' : ` (${session.identity})`}`],
  ];
}

export function formatStatus(s: StatusResult): string {
  return formatRows(statusRows(s));
}

export function formatServices(r: ServicesResult): string {
  const listeners = formatTable(
    ['LISTENER', 'ADDRESS', 'TRANSPORT', 'SERVICES', 'DEFAULT', 'CONNECTIONS'],
    r.listeners.map((l) => [l.name, l.address ?? l.path ?? '-', l.transport, l.services.join(','), l.defaultService ?? '-', `${l.connections}/${l.maxConnections}`]),
    ['left', 'left', 'left', 'left', 'left', 'right'],
  );
  const services = formatTable(
    ['SERVICE', 'ALPN', 'ACTIVE'],
    r.services.map((s) => [s.name, s.alpn ?? '-', String(s.active)]),
    ['left', 'left', 'right'],
  );
  return `${listeners}\n${services}`;
}

/** Every counter of a `stats` result as `[scope, counter, value]`, in the order the daemon sent them. */
export function statsCounters(r: StatsResult): Array<[string, string, number]> {
  const out: Array<[string, string, number]> = [];
  for (const [name, value] of Object.entries(r.ntp ?? {})) out.push(['ntp', name, value]);
  for (const [service, s] of Object.entries(r.services ?? {})) {
    out.push([`service ${service}`, 'active', s.active]);
    for (const [name, value] of Object.entries(s.counters ?? {})) out.push([`service ${service}`, name, value]);
  }
  for (const [listener, counters] of Object.entries(r.listeners ?? {})) {
    // Listener names read `listener[0] [::]:4460` already.
    const scope = listener.startsWith('listener') ? listener : `listener ${listener}`;
    for (const [name, value] of Object.entries(counters)) out.push([scope, name, value]);
  }
  return out;
}

export function formatStats(r: StatsResult): string {
  const head = formatRows([
    ['at', formatTime(r.at)],
    ['uptime', formatDuration(r.uptime)],
  ]);
  const table = formatTable(
    ['SCOPE', 'COUNTER', 'VALUE'],
    statsCounters(r).map(([scope, name, value]) => [scope, name, String(value)]),
    ['left', 'left', 'right'],
  );
  return `${head}\n${table}`;
}

export function formatClients(r: ClientsResult): string {
  const head = `${r.clients.length} shown, ${r.matched} matched, ${r.total} in the table\n`;
  const table = formatTable(
    ['ADDRESS', 'LAST SEEN', 'FIRST SEEN', 'PACKETS', 'DROPS', 'KODS', 'MODE', 'VER', 'AUTH'],
    r.clients.map((c) => [c.address, formatTime(c.lastSeen), formatTime(c.firstSeen), String(c.packets), String(c.drops), String(c.kods), String(c.mode), String(c.version), c.auth]),
    ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'left'],
  );
  return `${head}\n${table}`;
}

export function formatKeys(r: KeysResult): string {
  const head = formatRows([
    ['current', formatKeyId(r.current)],
    ['rotation', `every ${formatDuration(r.rotation)}, next ${formatTime(r.nextRotation)}`],
    ['kept', String(r.kept)],
  ]);
  const table = formatTable(
    ['ID', 'CREATED', 'CURRENT'],
    r.keys.map((k) => [formatKeyId(k.id), formatTime(k.createdAt), k.current ? 'yes' : '']),
  );
  return `${head}\n${table}`;
}

export function formatRotateKeys(r: RotateKeysResult): string {
  return formatRows([
    ['current', formatKeyId(r.current)],
    ['previous', formatKeyId(r.previous)],
    ['removed', list(r.removed.map(formatKeyId))],
  ]);
}

export function formatReload(r: ReloadResult): string {
  return formatRows([
    ['config', r.config ?? 'built-in defaults'],
    ['changed', list(r.changed)],
    ['restart required', list(r.restartRequired)],
    ['certificate reloaded', r.certificateReloaded ? 'yes' : 'no'],
  ]);
}

export function formatLogLevel(r: LogLevelResult): string {
  return formatRows([
    ['log level', r.level],
    ['previous', r.previous],
  ]);
}

// ---------------------------------------------------------------------------------------------------------------
// The local ntpd (`ntpd.*`, the mode 6 bridge)

/** Text that came from ntpd, safe on a terminal: control characters written as `\xNN`. */
export function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** `--names a,b,...`: ntpd variable names (letters, digits, `_`, `.`; 1 to 64 characters), at most `LIMITS.maxNtpdNames`. */
export function parseNtpdNames(text: string): Parsed<string[]> {
  const names = text.split(',').map((n) => n.trim());
  const wrong = names.find((n) => !/^[A-Za-z0-9_.]{1,64}$/.test(n));
  if (wrong !== undefined) {
    return { ok: false, error: wrong === '' ? `empty name in ${JSON.stringify(text)}` : `${JSON.stringify(wrong)} is not a variable name (letters, digits, _ and ., at most 64)` };
  }
  if (names.length > LIMITS.maxNtpdNames) return { ok: false, error: `at most ${LIMITS.maxNtpdNames} names, got ${names.length}` };
  return { ok: true, value: names };
}

/** `--resall`/`--resany`: restriction bits 0 to 0xffff, in hex with `0x` (as ntpq shows them) or in decimal. */
export function parseRestrictionBits(text: string): Parsed<number> {
  const n = /^0x[0-9a-f]{1,4}$/i.test(text) ? parseInt(text.slice(2), 16) : /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  return n >= 0 && n <= 0xffff ? { ok: true, value: n } : { ok: false, error: `expected restriction bits from 0x0 to 0xffff (or 0 to 65535), got ${JSON.stringify(text)}` };
}

/** `--laddr`: the local address ntpd received the packets on, IPv4 or IPv6 (brackets allowed). */
export function parseLocalAddress(text: string): Parsed<string> {
  const address = /^\[(.*)\]$/.exec(text)?.[1] ?? text;
  return isIP(address) === 0 ? { ok: false, error: `${JSON.stringify(text)} is not an IP address` } : { ok: true, value: address };
}

/** Milliseconds as ntpq prints delay, offset and jitter: 3 decimals; `-` when ntpd sent none. */
const millis = (ms: number | null): string => (ms === null || !Number.isFinite(ms) ? '-' : ms.toFixed(3));

/** Seconds as ntpq's `when` and `poll` columns: `64`, then `17m`, `2h`, `3d`; `-` when unknown or not positive. */
export function formatNtpdInterval(seconds: number | null): string {
  return seconds === null || !Number.isFinite(seconds) ? '-' : prettyInterval(Math.floor(seconds));
}

/** The cells of one `ntptsc ntpd peers` line: the tally character glued before the remote, as ntpq does. */
export function ntpdPeerCells(p: NtpdPeer): string[] {
  const tally = p.tally.length === 1 ? printable(p.tally) : ' ';
  return [
    `${tally}${printable(p.remote)}`,
    printable(p.refid),
    String(p.stratum),
    printable(p.type),
    formatNtpdInterval(p.when),
    formatNtpdInterval(p.poll),
    printable(p.reach),
    millis(p.delay),
    millis(p.offset),
    millis(p.jitter),
  ];
}

const serverLine = (server: string): string => `\nserver: ${printable(server)}\n`;

/** `ntpq -p`'s columns (delay, offset and jitter in ms), then the ntpd that answered. */
export function formatNtpdPeers(r: NtpdPeersResult): string {
  const table = formatTable(
    [' REMOTE', 'REFID', 'ST', 'T', 'WHEN', 'POLL', 'REACH', 'DELAY', 'OFFSET', 'JITTER'],
    r.peers.map(ntpdPeerCells),
    ['left', 'left', 'right', 'left', 'right', 'right', 'right', 'right', 'right', 'right'],
  );
  return `${table}${serverLine(r.server)}`;
}

/** A mode 6 status word as ntpq prints it: `0x0618`. */
export function formatStatusWord(status: number): string {
  return `0x${(status & 0xffff).toString(16).padStart(4, '0')}`;
}

/** `assoc N, status 0x0615`, then `name=value` in ntpd's order (a flag without a value: just its name). */
export function formatNtpdVars(r: NtpdVarsResult): string {
  const lines = [`assoc ${r.assoc}, status ${formatStatusWord(r.status)}`];
  for (const [name, value] of Object.entries(r.variables)) lines.push(value === null ? printable(name) : `${printable(name)}=${printable(value)}`);
  return `${lines.join('\n')}\n${serverLine(r.server)}`;
}

/** Seconds since the epoch of an ISO 8601 time, or null. */
function epochSeconds(iso: string | null): number | null {
  if (iso === null) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms / 1000;
}

/**
 * The cells of one `ntptsc ntpd mrulist` line, ntpq's mrulist columns: seconds since the last packet (at ntpd's
 * `now`), average seconds between packets, restriction bits (hex), packets, mode, version, address:port.
 */
export function ntpdMruCells(e: NtpdMruEntry, now: string | null): string[] {
  const at = epochSeconds(now);
  const last = epochSeconds(e.lastSeen);
  const first = epochSeconds(e.firstSeen);
  const lstint = at === null || last === null ? '-' : String(Math.max(0, Math.floor(at - last)));
  const avgint = first === null || last === null || e.count === null || e.count < 1 ? '-' : String(Math.max(0, Math.floor((last - first) / e.count)));
  const num = (n: number | null) => (n === null ? '-' : String(n));
  return [
    lstint,
    avgint,
    e.restrictions === null ? '-' : printable(e.restrictions.replace(/^0x/i, '')),
    num(e.count),
    num(e.mode),
    num(e.version),
    e.port === null ? printable(e.address) : formatEndpoint(printable(e.address), e.port),
  ];
}

/** ntpq's mrulist as an aligned table, then how many entries ntpd sent and which ntpd answered. */
export function formatNtpdMrulist(r: NtpdMrulistResult): string {
  const table = formatTable(
    ['LSTINT', 'AVGINT', 'RSTR', 'COUNT', 'MODE', 'VER', 'REMOTE'],
    r.entries.map((e) => ntpdMruCells(e, r.now)),
    ['right', 'right', 'right', 'right', 'right', 'right', 'left'],
  );
  return `${table}\n${r.entries.length} of ${r.total} entries${r.truncated ? ' (truncated)' : ''}\n${serverLine(r.server).slice(1)}`;
}

/** Labels of ntpd's `ss_*` counters, after ntpq's sysstats. */
const SYSSTATS_LABELS: ReadonlyMap<string, string> = new Map([
  ['ss_uptime', 'uptime'],
  ['ss_reset', 'sysstats reset'],
  ['ss_received', 'packets received'],
  ['ss_thisver', 'current version'],
  ['ss_oldver', 'older version'],
  ['ss_ver1', 'NTPv1 total'],
  ['ss_ver1client', 'NTPv1 clients'],
  ['ss_ver1zero', 'NTPv1 mode0'],
  ['ss_ver1symm', 'NTPv1 symm act'],
  ['ss_badformat', 'bad length or format'],
  ['ss_badauth', 'authentication failed'],
  ['ss_declined', 'declined'],
  ['ss_restricted', 'restricted'],
  ['ss_limited', 'rate limited'],
  ['ss_kodsent', 'KoD responses'],
  ['ss_processed', 'processed for time'],
]);

/** Counters that are durations in seconds: shown with the duration in words as well. */
const SYSSTATS_SECONDS: ReadonlySet<string> = new Set(['ss_uptime', 'ss_reset']);

export function ntpdSysstatsRows(r: NtpdSysstatsResult): Rows {
  return Object.entries(r.counters).map(([name, value]): [string, string] => {
    const label = SYSSTATS_LABELS.get(name) ?? printable(name);
    if (value === null) return [label, '-'];
    if (typeof value === 'string') return [label, printable(value)];
    return [label, SYSSTATS_SECONDS.has(name) && value >= 60 ? `${value} (${formatDuration(value)})` : String(value)];
  });
}

/** `label: value` lines like ntpq's sysstats (names this version does not know shown raw), then the ntpd asked. */
export function formatNtpdSysstats(r: NtpdSysstatsResult): string {
  const rows = ntpdSysstatsRows(r);
  return `${rows.length === 0 ? '(none)\n' : formatRows(rows)}${serverLine(r.server)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Ephemeral keys (`eks.*`, docs/eks.md)

/** `ntptsc eks revoke ID`: an ephemeral key id, 32768 to 65535, in decimal as keys files write it. */
export function parseEksKeyId(text: string): Parsed<number> {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  return n >= LIMITS.minEksKeyId && n <= LIMITS.maxEksKeyId
    ? { ok: true, value: n }
    : { ok: false, error: `expected an ephemeral key id from ${LIMITS.minEksKeyId} to ${LIMITS.maxEksKeyId}, got ${JSON.stringify(text)}` };
}

/** `2025-01-02T03:04:05.678901Z` → `2025-01-02T03:04:05Z`: ISO 8601 to the second; other text unchanged. */
export function isoSeconds(iso: string): string {
  return iso.replace(/^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.\d+Z$/, '$1Z');
}

/**
 * `ntptsc eks list`: how many keys are shown and live, the node's id range, the keys (generation as `keys`
 * shows master key ids), then the revocations in force when there are any.
 */
export function formatEksList(r: EksListResult): string {
  const head = `${r.keys.length} shown, ${r.live} live; key ids ${r.range.first}..${r.range.last}\n`;
  const keys = formatTable(
    ['KEY ID', 'GENERATION', 'ISSUED', 'EXPIRES', 'ADDRESS', 'TOKEN', 'RENEWALS'],
    r.keys.map((k) => [
      String(k.keyId),
      formatKeyId(k.generation),
      formatTime(k.issuedAt),
      `${formatTime(k.expiresAt)}${k.expired ? ' (expired)' : ''}`,
      printable(k.address),
      k.token === null ? '-' : printable(k.token),
      String(k.renewals),
    ]),
    ['right', 'left', 'left', 'left', 'left', 'left', 'right'],
  );
  if (r.revoked.length === 0) return `${head}\n${keys}`;
  const revoked = formatTable(
    ['KEY ID', 'REVOKED', 'UNTIL', 'BY'],
    r.revoked.map((v) => [String(v.keyId), formatTime(v.revokedAt), formatTime(v.until), printable(v.by)]),
    ['right', 'left', 'left', 'left'],
  );
  return `${head}\n${keys}\nrevoked:\n${revoked}`;
}

/** `ntptsc eks revoke ID`: one line. */
export function formatEksRevoke(r: EksRevokeResult): string {
  return `revoked key ${r.keyId} until ${isoSeconds(r.until)}${r.wasIssuedHere ? '' : ' (not issued by this node)'}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Events and the live view

/** One line for an event: known kinds in words, unknown kinds as their JSON members. */
export function formatEvent(e: EventParams | UnknownEvent): string {
  const at = formatTime(e.at);
  const missed = e.missed !== undefined && e.missed > 0 ? ` (${e.missed} events missed before)` : '';
  const known = e as EventParams;
  let text: string;
  switch (known.kind) {
    case 'key-rotated':
      text = `master key ${formatKeyId(known.previous)} → ${formatKeyId(known.current)} by ${known.by}${known.removed.length > 0 ? `, removed ${known.removed.map(formatKeyId).join(', ')}` : ''}`;
      break;
    case 'config-reloaded':
      text = `configuration reloaded by ${known.by}; changed: ${list(known.changed)}${known.restartRequired.length > 0 ? `; restart required: ${known.restartRequired.join(', ')}` : ''}`;
      break;
    case 'certificate-reloaded':
      text = `certificate reloaded: ${known.certificate.subject}, valid to ${formatTime(known.certificate.notAfter)}`;
      break;
    case 'client-rate-limited':
      text = `client ${known.address} rate-limited on ${known.service}${known.suppressed > 0 ? ` (${known.suppressed} more not shown)` : ''}`;
      break;
    case 'listener-error':
      text = `${known.listener}: ${known.code} ${known.message}`;
      break;
    case 'source-changed':
      text = `time source ${known.source}: stratum ${known.current.stratum}, refid ${known.current.refid}, leap ${known.current.leap}, ${known.current.synchronized ? 'synchronized' : 'not synchronized'}`;
      break;
    case 'key-revoked':
      text = `ephemeral key ${known.keyId} revoked by ${printable(known.by)} until ${formatTime(known.until)}`;
      break;
    default: {
      const { kind, at: _at, missed: _missed, ...rest } = e as UnknownEvent;
      return `${at}  ${kind}  ${JSON.stringify(rest)}${missed}`;
    }
  }
  return `${at}  ${known.kind}  ${text}${missed}`;
}

/** ANSI: cursor home, clear the screen. */
export const CLEAR_SCREEN = '\x1b[H\x1b[2J';

export interface WatchView {
  /** The socket path or `host:port`. */
  readonly where: string;
  readonly interval: number;
  readonly stats: StatsResult | undefined;
  /** Most recent last. */
  readonly events: readonly (EventParams | UnknownEvent)[];
}

/** The live view of `ntptsc watch` on a terminal: one screen, drawn after a clear. */
export function formatWatch(view: WatchView): string {
  const title = `ntptsd at ${view.where}: ${view.interval > 0 ? `stats every ${formatDuration(view.interval)}` : 'events only'} (Ctrl-C to quit)\n\n`;
  const stats = view.stats === undefined ? (view.interval > 0 ? 'waiting for stats...\n' : '') : formatStats(view.stats);
  const events = view.events.length === 0 ? 'no events yet\n' : view.events.map((e) => formatEvent(e)).join('\n') + '\n';
  return `${CLEAR_SCREEN}${title}${stats}\nrecent events:\n${events}`;
}

/** The NDJSON line of `ntptsc watch` when stdout is not a terminal (or with --json): one notification. */
export function notificationLine(n: MgmtNotification): string {
  return `${JSON.stringify({ method: n.method, params: n.params })}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Failures

function problemsText(data: JsonValue | undefined): string {
  const problems = typeof data === 'object' && data !== null && !Array.isArray(data) ? data['problems'] : undefined;
  if (!Array.isArray(problems)) return '';
  return problems
    .map((p) => (typeof p === 'object' && p !== null && !Array.isArray(p) ? `${String(p['path'])}: ${String(p['reason'])}` : String(p)))
    .join('; ');
}

/** What a failed mode 6 exchange means, by `data.mode6` of the bridge's -32004 (docs/management.md). */
const NTPD_FAILURES: Readonly<Record<string, string>> = {
  TIMEOUT: 'did not answer',
  SERVER_ERROR: 'refused the request',
  AUTH_REQUIRED: 'wants authenticated requests',
  AUTH_FAILED: 'did not accept the key',
  BAD_RESPONSE: 'sent an answer that could not be read',
  MRU_STALLED: 'changed its client list faster than it could be read',
  SOCKET: 'could not be reached',
};

/**
 * The ntpd behind the bridge failed (-32004, `backend: "ntpd"`): `ntpd at 127.0.0.1:123 did not answer
 * (TIMEOUT): no answer to READSTAT ...`. The bridge's message starts with `ntpd at HOST:PORT: `.
 */
function describeNtpdFailure(error: MgmtError): string {
  const mode6 = error.detail('mode6');
  const message = oneLine(error.message);
  const m = /^ntpd at (\S+): (.*)$/.exec(message);
  const where = m === null ? 'ntpd' : `ntpd at ${m[1]}`;
  const rest = m === null ? message : (m[2] as string);
  const kind = typeof mode6 === 'string' ? mode6 : undefined;
  const what = (kind !== undefined && Object.hasOwn(NTPD_FAILURES, kind) ? NTPD_FAILURES[kind] : undefined) ?? 'failed';
  return `${where} ${what}${kind === undefined ? '' : ` (${kind})`}: ${rest}`;
}

/**
 * The one-line reason `ntptsc` prints for a failed management request: the error code's name, then what it
 * means for this method (`forbidden: rotate-keys needs the admin role`). The ntpd bridge's failures read as
 * sentences about that ntpd instead (`ntpd at 127.0.0.1:123 did not answer (TIMEOUT): ...`).
 */
export function describeMgmtError(error: MgmtError): string {
  const name = rpcCodeName(error.code);
  const required = error.detail('required');
  const retryAfter = error.detail('retryAfter');
  const backend = error.detail('backend');
  let text: string;
  switch (error.code) {
    case -32001:
      text =
        error.method === 'auth'
          ? oneLine(error.message)
          : `${error.method} needs authentication: give --token, --token-file or --cert/--key (or use the Unix socket)`;
      break;
    case -32002:
      text = `${error.method} needs the ${typeof required === 'string' ? required : 'a higher'} role`;
      break;
    case -32003:
      text = `too many failed auth attempts${typeof retryAfter === 'number' ? `; retry in ${retryAfter} s` : ''}`;
      break;
    case -32004:
      if (backend === 'ntpd') return describeNtpdFailure(error);
      text = `${oneLine(error.message)}${typeof backend === 'string' && !error.message.includes(backend) ? ` (backend ${backend})` : ''}`;
      break;
    case -32005:
      // The bridge names the ntpd and the association: `ntpd at 127.0.0.1:123 has no association 12345`.
      if (error.method.startsWith('ntpd.')) return `${oneLine(error.message)}${error.detail('assoc') !== undefined ? ' (ntptsc ntpd peers lists them)' : ''}`;
      text = oneLine(error.message);
      break;
    case -32007: {
      const problems = problemsText(error.data);
      text = problems === '' ? oneLine(error.message) : `${oneLine(error.message)}: ${problems}`;
      break;
    }
    default:
      text = oneLine(error.message);
  }
  return `${name}: ${text}`;
}

/** The `--json` document of a failed management command (same shape as the other commands' `{"error": ...}`). */
export function mgmtErrorJson(error: MgmtError | MgmtConnectionError) {
  if (error instanceof MgmtError) {
    return { error: { code: error.code, reason: error.reason, message: oneLine(error.message), details: error.data ?? {} } };
  }
  return { error: { code: error.code, message: oneLine(error.message), details: error.details } };
}
