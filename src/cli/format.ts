/**
 * Pure helpers of `ntptsc`: reading its argument values (HOST[:PORT], ports, counts, AEAD lists, the order of
 * options around the command word) and turning library results into aligned `key: value` lines for people or
 * a JSON document for scripts. No I/O, no clock: tests call them directly.
 *
 * JSON documents use the library's names and units (seconds, except `durationMs`) and never carry key
 * material: cookies are reported by count and size only.
 */
import { isIP } from 'node:net';
import { AEAD_ALGORITHMS, aeadById } from '../crypto/aead.js';
import type { ClientError } from '../client/errors.js';
import type { TimeSample } from '../client/ntp.js';
import type { NtsKeResult } from '../client/ntske.js';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = (error: string): Parsed<never> => ({ ok: false, error });

// ---------------------------------------------------------------------------------------------------------------
// Arguments

export interface Endpoint {
  /** Name or address; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  /** False when `port` is the default because the text named none. */
  readonly portGiven: boolean;
}

const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/;

/** A port number 1..65535 written in decimal. */
export function parsePort(text: string): Parsed<number> {
  if (!/^\d{1,5}$/.test(text)) return bad(`invalid port ${JSON.stringify(text)} (expected 1 to 65535)`);
  const port = Number(text);
  return port >= 1 && port <= 65535 ? ok(port) : bad(`invalid port ${text} (expected 1 to 65535)`);
}

/**
 * `host`, `host:port`, `1.2.3.4:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal (`::1`, which can carry no
 * port since its colons are ambiguous).
 */
export function parseEndpoint(text: string, defaultPort: number): Parsed<Endpoint> {
  if (text === '') return bad('empty host');
  if (text.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
    if (m === null) return bad(`invalid address ${JSON.stringify(text)} (expected [IPv6] or [IPv6]:port)`);
    const [, host = '', portText] = m;
    if (isIP(host) !== 6) return bad(`${JSON.stringify(host)} is not an IPv6 address`);
    if (portText === undefined) return ok({ host, port: defaultPort, portGiven: false });
    const port = parsePort(portText);
    return port.ok ? ok({ host, port: port.value, portGiven: true }) : port;
  }
  const colons = text.split(':').length - 1;
  if (colons > 1) {
    if (isIP(text) === 6) return ok({ host: text, port: defaultPort, portGiven: false });
    return bad(`invalid address ${JSON.stringify(text)} (write an IPv6 address with a port as [address]:port)`);
  }
  const [host = '', portText] = text.split(':');
  if (isIP(host) !== 4 && !HOST_NAME.test(host)) return bad(`invalid host ${JSON.stringify(host)}`);
  if (portText === undefined) return ok({ host, port: defaultPort, portGiven: false });
  const port = parsePort(portText);
  return port.ok ? ok({ host, port: port.value, portGiven: true }) : port;
}

/** A whole number in `min..max`. */
export function parseCount(text: string, min: number, max: number): Parsed<number> {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  return n >= min && n <= max ? ok(n) : bad(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
}

const SUPPORTED_AEADS = AEAD_ALGORITHMS.map((a) => `${a.name} (${a.id})`).join(', ');

/**
 * Comma-separated AEAD algorithms, by name (`AES-SIV-CMAC-256`, `AEAD_AES_SIV_CMAC_256`, any case) or IANA id
 * (`15`), in the order to offer them. Only algorithms we implement: we could not use the keys of another.
 */
export function parseAeadList(text: string): Parsed<number[]> {
  const ids: number[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') return bad(`empty item in AEAD list ${JSON.stringify(text)}`);
    const upper = item.toUpperCase();
    const found = /^\d+$/.test(item) ? aeadById(Number(item)) : AEAD_ALGORITHMS.find((a) => a.name === upper || a.ianaName === upper);
    if (found === undefined) return bad(`unsupported AEAD algorithm ${JSON.stringify(item)} (supported: ${SUPPORTED_AEADS})`);
    if (ids.includes(found.id)) return bad(`AEAD algorithm ${found.name} named twice`);
    ids.push(found.id);
  }
  return ok(ids);
}

export interface HoistSpec {
  /** The command words. */
  readonly commands: readonly string[];
  /** Options that take a separate value (`--ca FILE`). */
  readonly valueOptions: readonly string[];
  /** Options that belong to the program itself and stay where they are (`--version`). */
  readonly programOptions: readonly string[];
}

/**
 * Moves the options written before the command word to just after it, so that `ntptsc --json time x` parses
 * like `ntptsc time --json x`. Left alone when no command word is found, after `--`, or when a program option
 * stands before the command.
 */
export function hoistOptions(argv: readonly string[], spec: HoistSpec): string[] {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') break;
    if (arg.startsWith('-')) {
      if (spec.programOptions.includes(arg)) break;
      if (spec.valueOptions.includes(arg)) i++;
      continue;
    }
    if (!spec.commands.includes(arg) || i === 0) break;
    return [arg, ...argv.slice(0, i), ...argv.slice(i + 1)];
  }
  return [...argv];
}

// ---------------------------------------------------------------------------------------------------------------
// Units

/** `[v6]:port` or `host:port`. */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Seconds in a unit people read at a glance: `s` from one second (µs resolution), `ms` from a millisecond,
 * `µs` below. `signed` puts `+` before positive values (offsets).
 */
export function formatSeconds(seconds: number, signed = false): string {
  if (seconds === 0) return '0 s';
  const sign = seconds < 0 ? '-' : signed ? '+' : '';
  const abs = Math.abs(seconds);
  if (abs >= 1) return `${sign}${abs.toFixed(6)} s`;
  if (abs >= 1e-3) return `${sign}${(abs * 1e3).toFixed(3)} ms`;
  return `${sign}${(abs * 1e6).toFixed(1)} µs`;
}

export function formatMilliseconds(ms: number): string {
  return formatSeconds(ms / 1e3);
}

/** Byte sizes of a list of cookies: `8 × 168 bytes`, or `8 (104 to 168 bytes)` when they differ. */
export function formatCookies(sizes: readonly number[]): string {
  if (sizes.length === 0) return 'none';
  const min = Math.min(...sizes);
  const max = Math.max(...sizes);
  return min === max ? `${sizes.length} × ${min} bytes` : `${sizes.length} (${min} to ${max} bytes)`;
}

export type Rows = ReadonlyArray<readonly [key: string, value: string]>;

/** `key: value` lines with the values aligned, ending in a newline. */
export function formatRows(rows: Rows): string {
  const width = Math.max(0, ...rows.map(([key]) => key.length)) + 1;
  return rows.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`.trimEnd()).join('\n') + '\n';
}

/** Pretty JSON with a final newline: one document per run. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// ntptsc time

/** What `queryTime` returns: the best-delay sample, every sample, and the NTS-KE result when NTS was used. */
export type TimeResult = TimeSample & { readonly samples: readonly TimeSample[]; readonly ke?: NtsKeResult };

export function formatAuthentication(auth: TimeSample['authentication']): string {
  return auth.kind === 'none' ? 'none' : `NTS, ${auth.aeadName} (AEAD ${auth.aead})`;
}

export function timeRows(result: TimeResult): Rows {
  const rows: Array<[string, string]> = [
    ['offset', formatSeconds(result.offset, true)],
    ['delay', formatSeconds(result.delay)],
    ['stratum', String(result.stratum)],
    ['refid', result.refid],
    ['leap', result.leap],
    ['root delay', formatSeconds(result.rootDelay)],
    ['root dispersion', formatSeconds(result.rootDispersion)],
    ['authentication', formatAuthentication(result.authentication)],
    ['NTP server', formatEndpoint(result.server.address, result.server.port)],
  ];
  if (result.ke !== undefined) rows.push(['NTS-KE server', formatEndpoint(result.ke.keHost, result.ke.kePort)]);
  if (result.samples.length > 1) {
    const delays = result.samples.map((s) => s.delay);
    rows.push(['samples', `${result.samples.length}, best delay shown (delays ${formatSeconds(Math.min(...delays))} to ${formatSeconds(Math.max(...delays))})`]);
  }
  return rows;
}

const sampleJson = (s: TimeSample) => ({
  offset: s.offset,
  delay: s.delay,
  stratum: s.stratum,
  refid: s.refid,
  leap: s.leap,
  version: s.version,
  poll: s.poll,
  precision: s.precision,
  rootDelay: s.rootDelay,
  rootDispersion: s.rootDispersion,
  referenceTime: s.referenceTime,
  server: { address: s.server.address, port: s.server.port },
  authentication: s.authentication,
});

/** The `ntptsc time --json` document: the best sample's fields, then `ke` (null without NTS) and all samples. */
export function timeJson(result: TimeResult) {
  return { ...sampleJson(result), ke: result.ke === undefined ? null : keJson(result.ke), samples: result.samples.map(sampleJson) };
}

// ---------------------------------------------------------------------------------------------------------------
// ntptsc ke

export function keRows(ke: NtsKeResult): Rows {
  return [
    ['NTS-KE server', formatEndpoint(ke.keHost, ke.kePort)],
    ['TLS', ke.tlsVersion],
    ['ALPN', ke.alpn],
    ['AEAD', `${ke.aead.name} (${ke.aead.id})`],
    ['cookies', formatCookies(ke.cookies.map((c) => c.length))],
    ['Server record', ke.serverRecord ?? 'none'],
    ['Port record', ke.portRecord === undefined ? 'none' : String(ke.portRecord)],
    ['NTP server', formatEndpoint(ke.ntpHost, ke.ntpPort)],
    ['warnings', ke.warnings.length === 0 ? 'none' : ke.warnings.join(', ')],
    ['time taken', formatMilliseconds(ke.durationMs)],
  ];
}

/** The `ntptsc ke --json` document (no keys, no cookie contents). */
export function keJson(ke: NtsKeResult) {
  return {
    keServer: { host: ke.keHost, port: ke.kePort },
    tlsVersion: ke.tlsVersion,
    alpn: ke.alpn,
    aead: { id: ke.aead.id, name: ke.aead.name },
    cookies: { count: ke.cookies.length, sizes: ke.cookies.map((c) => c.length) },
    serverRecord: ke.serverRecord ?? null,
    portRecord: ke.portRecord ?? null,
    ntpServer: { host: ke.ntpHost, port: ke.ntpPort },
    warnings: [...ke.warnings],
    durationMs: ke.durationMs,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Failures

/** One line, whatever the message holds. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** The `--json` document of a failed command. */
export function errorJson(error: Pick<ClientError, 'code' | 'message' | 'details'>) {
  return { error: { code: error.code, message: oneLine(error.message), details: error.details } };
}
