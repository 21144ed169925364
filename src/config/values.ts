/**
 * Parsers and formatters for the value syntaxes used in the config file: durations, `host:port`, bare hosts,
 * CIDR ranges, refids, octal modes. Pure functions over strings; each returns a result whose error is the
 * reason text used in the `key.path: reason` problem line.
 */
import ipaddr from 'ipaddr.js';

export type ValueResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const ok = <T>(value: T): ValueResult<T> => ({ ok: true, value });
const bad = (error: string): ValueResult<never> => ({ ok: false, error });

// ---------------------------------------------------------------------------------------------------------------
// Durations

const UNIT_MS = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
type DurationUnit = keyof typeof UNIT_MS;
const UNIT_LIST = 'ms, s, m, h, d or w';

/** Node timers overflow above 2^31-1 ms (they then fire at once), so no configured duration may exceed it. */
export const MAX_DURATION_MS = 24 * UNIT_MS.d;

export interface DurationOptions {
  /** Accept "0s" (root delay and dispersion); every other duration must be positive. */
  readonly allowZero?: boolean;
  readonly maxMs?: number;
}

/** `"250ms"`, `"30s"`, `"1h30m"` → milliseconds. Integer amounts only; units in any order. */
export function parseDuration(text: string, options: DurationOptions = {}): ValueResult<number> {
  const max = options.maxMs ?? MAX_DURATION_MS;
  const quoted = JSON.stringify(text);
  if (text === '') return bad('empty duration (expected e.g. "30s")');
  if (text.startsWith('-')) return bad(`invalid duration ${quoted}: must be positive`);
  const re = /(\d+)([^\d]*)/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null) return bad(`invalid duration ${quoted}: expected a number at "${text.slice(pos)}"`);
    const [, digits = '', unit = ''] = m;
    if (unit.startsWith('.') || unit.startsWith(',')) {
      return bad(`invalid duration ${quoted}: fractions are not supported, use a smaller unit (e.g. "1500ms")`);
    }
    if (unit === '') return bad(`invalid duration ${quoted}: missing unit after ${digits} (use ${UNIT_LIST})`);
    if (!Object.hasOwn(UNIT_MS, unit)) {
      return bad(`invalid duration ${quoted}: unknown unit ${JSON.stringify(unit)} (use ${UNIT_LIST})`);
    }
    total += Number(digits) * UNIT_MS[unit as DurationUnit];
    pos = re.lastIndex;
  }
  if (total === 0 && !options.allowZero) return bad(`invalid duration ${quoted}: must be positive`);
  if (total > max) return bad(`duration ${quoted} is too long (at most ${formatDuration(max)})`);
  return ok(total);
}

/** Milliseconds → compound form, e.g. 5_400_000 → "1h30m", 0 → "0s". Weeks only for whole weeks ("2w", but "10d"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % UNIT_MS.w === 0) return `${ms / UNIT_MS.w}w`;
  let rest = ms;
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_MS)) {
    if (unit === 'w') continue;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Hosts and addresses

export type HostFamily = 'ipv4' | 'ipv6' | 'name';

/** A parsed `host:port`. `host` is normalised (IPv6 compressed, no brackets; names lower-cased). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  readonly family: HostFamily;
}

export interface Host {
  readonly host: string;
  readonly family: HostFamily;
}

export interface HostPortOptions {
  /** Port 0 means "any free port" for addresses we bind (listeners, `ntp.listen`), never for ones we connect to. */
  readonly allowPortZero?: boolean;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function normaliseIpv6(text: string): string {
  const addr = ipaddr.IPv6.parse(text);
  // ipaddr prints mapped addresses as hex (::ffff:102:304); keep the familiar dotted form.
  return addr.isIPv4MappedAddress() ? `::ffff:${addr.toIPv4Address().toString()}` : addr.toString();
}

/** A bare host: IPv4 dotted quad, IPv6 (brackets optional) or a DNS name. */
export function parseHost(text: string): ValueResult<Host> {
  if (text === '') return bad('missing host');
  if (text.startsWith('[') && text.endsWith(']')) {
    const inner = text.slice(1, -1);
    if (ipaddr.IPv6.isValid(inner)) return ok({ host: normaliseIpv6(inner), family: 'ipv6' });
    return bad(`invalid IPv6 address ${JSON.stringify(inner)}`);
  }
  if (text.includes(':')) {
    if (ipaddr.IPv6.isValid(text)) return ok({ host: normaliseIpv6(text), family: 'ipv6' });
    return bad(`invalid IPv6 address ${JSON.stringify(text)}`);
  }
  if (/^[\d.]+$/.test(text)) {
    if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ok({ host: ipaddr.IPv4.parse(text).toString(), family: 'ipv4' });
    return bad(`invalid IPv4 address ${JSON.stringify(text)}`);
  }
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length > 253 || !name.split('.').every((label) => LABEL.test(label))) {
    return bad(`invalid host name ${JSON.stringify(text)}`);
  }
  return ok({ host: name.toLowerCase(), family: 'name' });
}

/** `1.2.3.4:123`, `[::1]:123` or `name:123`. */
export function parseHostPort(text: string, options: HostPortOptions = {}): ValueResult<HostPort> {
  const quoted = JSON.stringify(text);
  let hostText: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return bad(`invalid address ${quoted}: missing "]"`);
    hostText = text.slice(1, close);
    if (!ipaddr.IPv6.isValid(hostText)) {
      return bad(`invalid address ${quoted}: ${JSON.stringify(hostText)} is not an IPv6 address (brackets are for IPv6 only)`);
    }
    const after = text.slice(close + 1);
    if (after === '') return bad(`invalid address ${quoted}: missing port (expected "[IPv6]:port")`);
    if (!after.startsWith(':')) return bad(`invalid address ${quoted}: expected ":port" after "]"`);
    portText = after.slice(1);
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 0) return bad(`invalid address ${quoted}: missing port (expected host:port, e.g. "127.0.0.1:123")`);
    if (colons > 1) return bad(`invalid address ${quoted}: IPv6 addresses need brackets, e.g. "[::1]:123"`);
    const colon = text.indexOf(':');
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText === '') return bad(`invalid address ${quoted}: missing host (use "0.0.0.0" or "[::]" for every address)`);
  }
  const host = text.startsWith('[') ? ok({ host: normaliseIpv6(hostText), family: 'ipv6' as const }) : parseHost(hostText);
  if (!host.ok) return bad(`invalid address ${quoted}: ${host.error}`);
  const port = parsePort(portText, options.allowPortZero ?? false);
  if (!port.ok) return bad(`invalid address ${quoted}: ${port.error}`);
  return ok({ host: host.value.host, family: host.value.family, port: port.value });
}

function parsePort(text: string, allowZero: boolean): ValueResult<number> {
  if (text === '') return bad('missing port');
  if (!/^\d+$/.test(text)) return bad(`invalid port ${JSON.stringify(text)}`);
  const port = Number(text);
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535) return bad(`port ${port} is out of range ${min}..65535`);
  return ok(port);
}

export function formatHost(host: Host): string {
  return host.family === 'ipv6' ? `[${host.host}]` : host.host;
}

export function formatHostPort(address: HostPort): string {
  return `${formatHost(address)}:${address.port}`;
}

// ---------------------------------------------------------------------------------------------------------------
// CIDR ranges

export interface Cidr {
  readonly family: 'ipv4' | 'ipv6';
  /** The network address, normalised. */
  readonly address: string;
  readonly prefixLength: number;
}

/** `"10.0.0.0/8"`, `"2001:db8::/32"`; a bare address means /32 or /128. Host bits must be zero. */
export function parseCidr(text: string): ValueResult<Cidr> {
  const quoted = JSON.stringify(text);
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const v4 = ipaddr.IPv4.isValidFourPartDecimal(addrText);
  if (!v4 && !ipaddr.IPv6.isValid(addrText)) return bad(`invalid CIDR ${quoted}: ${JSON.stringify(addrText)} is not an IP address`);
  const family = v4 ? 'ipv4' : 'ipv6';
  const bits = v4 ? 32 : 128;
  let prefixLength = bits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
      return bad(`invalid CIDR ${quoted}: prefix length must be 0..${bits}`);
    }
    prefixLength = Number(prefixText);
  }
  const address = v4 ? ipaddr.IPv4.parse(addrText).toString() : normaliseIpv6(addrText);
  const cidrText = `${addrText}/${prefixLength}`;
  const network = v4 ? ipaddr.IPv4.networkAddressFromCIDR(cidrText) : ipaddr.IPv6.networkAddressFromCIDR(cidrText);
  const networkText = v4 ? network.toString() : normaliseIpv6(network.toString());
  if (networkText !== address) {
    return bad(`invalid CIDR ${quoted}: host bits are set (did you mean "${networkText}/${prefixLength}"?)`);
  }
  return ok({ family, address, prefixLength });
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefixLength}`;
}

/**
 * Compiles a CIDR list into a predicate over textual client addresses (as Node reports them). IPv4-mapped
 * IPv6 addresses (`::ffff:a.b.c.d`, from dual-stack sockets) are matched against the IPv4 ranges.
 */
export function cidrMatcher(list: readonly Cidr[]): (ip: string) => boolean {
  const ranges = list.map((c) => [ipaddr.parse(c.address), c.prefixLength] as [ipaddr.IPv4 | ipaddr.IPv6, number]);
  return (ip) => {
    if (!ipaddr.isValid(ip)) return false;
    let addr = ipaddr.parse(ip);
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
    return ranges.some(([net, len]) => net.kind() === addr.kind() && addr.match(net, len));
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Small scalar syntaxes

/** NTP reference id: an IPv4 address, or 1–4 printable ASCII characters (RFC 5905 §7.3). */
export function parseRefid(text: string): ValueResult<string> {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ok(ipaddr.IPv4.parse(text).toString());
  if (text === '') return bad('refid must not be empty');
  if (!/^[\x20-\x7e]*$/.test(text)) return bad(`refid ${JSON.stringify(text)} must be printable ASCII`);
  if (text.length > 4) return bad(`refid ${JSON.stringify(text)} is too long (at most 4 ASCII characters, or an IPv4 address)`);
  return ok(text);
}

/** File mode for a Unix socket as an octal string, `"0660"` or `"660"`. */
export function parseMode(text: string): ValueResult<number> {
  if (!/^0?[0-7]{3}$/.test(text)) return bad(`invalid mode ${JSON.stringify(text)}: expected an octal permission string like "0660"`);
  return ok(parseInt(text, 8));
}

export function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}
