/**
 * Stage 1 of config loading: a strict zod schema over the parsed TOML document (kebab-case keys, exactly as in
 * the file) that applies the named defaults and converts into the domain types of `types.ts`.
 *
 * Every table rejects unknown keys with a did-you-mean computed against the keys allowed at that level. zod keeps
 * validating siblings after a failure, so one parse reports every problem of this stage. Value syntaxes live in
 * `values.ts`; rules that relate several fields live in `check.ts` (stage 2), except the few that decide which
 * domain type a listener becomes.
 */
import { isAbsolute, join, normalize } from 'node:path';
import { z } from 'zod';
import {
  AEAD_NAMES,
  EKS_ACCESS,
  ANONYMOUS_ROLES,
  AVAILABLE_SERVICES,
  AVAILABLE_TIME_SOURCES,
  LEAP_INDICATORS,
  LOG_FORMATS,
  LOG_LEVELS,
  MGMT_ROLES,
  SERVICE_NAMES,
  TIME_SOURCES,
  type Config,
  type ListenerConfig,
  type ListenerTransport,
  type ServiceName,
} from './types.js';
import { didYouMean } from './suggest.js';
import { formatMode, parseCidr, parseDuration, parseHost, parseHostPort, parseMode, parseRefid, type DurationOptions, type ValueResult } from './values.js';

/** Used when `-c` is not given and this file exists. */
export const DEFAULT_CONFIG_PATH = '/etc/ntptsd/ntptsd.toml';

const DEFAULT_SOCKET_MODE = 0o660;

/** Per-listener defaults (file form). */
export const LISTENER_DEFAULTS = {
  'max-connections': 1024,
  'max-connections-per-address': 64,
  'handshake-timeout': '5s',
  'idle-timeout': '30s',
  'max-message-size': 65536,
  'native-tls': true,
  mode: formatMode(DEFAULT_SOCKET_MODE),
} as const;

/** The built-in defaults in file form; `defaultConfig()` is these run through the schema. */
export const DEFAULTS = {
  daemon: { 'state-dir': '/var/lib/ntptsd', user: '', 'log-level': 'info', 'log-format': 'text' },
  tls: { certificate: '', 'private-key': '', 'client-ca': '' },
  ntp: {
    listen: ['0.0.0.0:123', '[::]:123'],
    allow: [],
    deny: [],
    'keys-file': '',
    'batch-io': true,
    'rate-limit': { enabled: true, interval: '2s', burst: 16, kod: true, 'table-size': 65536 },
  },
  time: {
    source: 'static',
    stratum: 10,
    refid: 'LOCL',
    precision: -20,
    'root-delay': '0s',
    'root-dispersion': '0s',
    leap: 'none',
  },
  listener: [
    { address: '[::]:4460', services: ['nts-ke', 'eks'], 'default-service': 'nts-ke' },
    { address: '127.0.0.1:4461', services: ['mgmt'] },
    { path: 'ntptsd.sock', services: ['mgmt'] },
    { address: '127.0.0.1:9975', services: ['metrics'] },
  ],
  nts: {
    aead: ['AES-SIV-CMAC-256', 'AES-SIV-CMAC-512'],
    cookies: 8,
    'ntp-server': '',
    'ntp-port': 123,
    'key-rotation': '1d',
    'keys-kept': 7,
  },
  ntpd: { address: '127.0.0.1:123', 'key-id': 0, 'keys-file': '', poll: '4s', grace: '16s', timeout: '1s', retries: 2 },
  chrony: { chronyc: 'chronyc', args: [], poll: '4s', grace: '16s', timeout: '2s' },
  mgmt: { anonymous: 'none', token: [], 'client-cert': [], 'request-rate': 100, 'request-burst': 50 },
  eks: {
    access: 'anonymous',
    token: [],
    'key-lifetime': '',
    'key-id-range': [32768, 65535],
    'issue-burst': 5,
    'issue-interval': '1m',
    'ntp-server': '',
    'ntp-port': 123,
  },
} as const;

/** NTP short format (root delay, dispersion) tops out just below 65536 s. */
const MAX_ROOT_MS = 65535 * 1000;
const MAX_COUNT = 1_000_000;

// ---------------------------------------------------------------------------------------------------------------
// Messages

/** How a TOML value reads in a message: `an integer (5)`, `a table`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
  if (typeof value === 'number') return Number.isInteger(value) ? `an integer (${value})` : `a float (${value})`;
  if (typeof value === 'bigint') return `an integer (${value})`;
  if (typeof value === 'boolean') return `a boolean (${value})`;
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date/time';
  return 'a table';
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean (true or false)',
  array: 'an array',
  object: 'a table',
};

/** Parse-level error map: the generic messages. Schema-level messages (below) take precedence. */
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  if ((issue.code === 'invalid_type' || issue.code === 'invalid_value') && issue.input === undefined) return 'missing required key';
  if (issue.code === 'invalid_type') return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
  return undefined;
};

// ---------------------------------------------------------------------------------------------------------------
// Builders

/** A TOML table: known keys only; each unknown key is its own problem, with a suggestion. */
function table<S extends z.core.$ZodLooseShape>(shape: S) {
  const allowed = Object.keys(shape);
  return z.looseObject(shape).superRefine(
    (value, ctx) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
      for (const key of Object.keys(value)) {
        if (Object.hasOwn(shape, key)) continue;
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown key ${JSON.stringify(key)}${didYouMean(key, allowed)}` });
      }
    },
    // Report unknown keys even when a known key of the same table failed.
    { when: () => true },
  );
}

function arrayOfTables<T extends z.ZodType>(element: T, name: string) {
  return z.array(element, {
    error: (iss) => (iss.input === undefined ? undefined : `expected an array of tables ([[${name}]]), got ${describeValue(iss.input)}`),
  });
}

function int(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  return z.number({ error: (iss) => (iss.input === undefined ? undefined : `expected an integer, got ${describeValue(iss.input)}`) }).superRefine((n, ctx) => {
    if (!Number.isInteger(n)) ctx.addIssue({ code: 'custom', message: `must be an integer, got ${n}` });
    else if (n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
      ctx.addIssue({ code: 'custom', message: `must be ${range}, got ${n}` });
    }
  });
}

/**
 * One of `values`. With `available` (a subset, see `AVAILABLE_SERVICES` in types.ts), only those are accepted: a
 * known but unavailable value gets "not available in this version". Misspellings are matched against every known
 * value (the intended name is the likeliest one, available or not); the fallback list names the accepted ones.
 */
function oneOf<const T extends readonly [string, ...string[]]>(noun: string, values: T, available: readonly T[number][] = values) {
  const accepted = z.enum(values, {
    error: (iss) => {
      if (iss.input === undefined) return undefined;
      if (typeof iss.input !== 'string') return `expected a ${noun} string, got ${describeValue(iss.input)}`;
      const hint = didYouMean(iss.input, values) || ` (expected one of: ${available.join(', ')})`;
      return `unknown ${noun} ${JSON.stringify(iss.input)}${hint}`;
    },
  });
  if (available.length === values.length) return accepted;
  return accepted.superRefine((value, ctx) => {
    if (available.includes(value)) return;
    ctx.addIssue({
      code: 'custom',
      message: `${noun} ${JSON.stringify(value)} is not available in this version (available: ${available.join(', ')})`,
      input: value,
    });
  });
}

/** A string in some syntax, converted by `parse`; `kind` names the syntax for type errors. */
function syntax<T>(kind: string, parse: (text: string) => ValueResult<T>) {
  return z
    .string({ error: (iss) => (iss.input === undefined ? undefined : `expected ${kind}, got ${describeValue(iss.input)}`) })
    .transform((text, ctx) => {
      const r = parse(text);
      if (r.ok) return r.value;
      ctx.addIssue({ code: 'custom', message: r.error, input: text });
      return z.NEVER;
    });
}

const duration = (options: DurationOptions = {}) => syntax('a duration string like "30s"', (s) => parseDuration(s, options));
const bindAddress = () => syntax('an address string like "127.0.0.1:123"', (s) => parseHostPort(s, { allowPortZero: true }));
const peerAddress = () => syntax('an address string like "127.0.0.1:123"', (s) => parseHostPort(s));
const cidrList = () => z.array(syntax('a CIDR string like "10.0.0.0/8"', parseCidr));

/** A file path or name where `""` means "not set". */
const optionalText = () => z.string().transform((s) => (s === '' ? null : s));

const nonEmpty = () => z.string().refine((s) => s !== '', { error: 'must not be empty' });

const userName = () =>
  syntax('a user name string', (s): ValueResult<string | null> => {
    if (s === '') return { ok: true, value: null };
    return /^[A-Za-z0-9._-]+$/.test(s) ? { ok: true, value: s } : { ok: false, error: `invalid user name ${JSON.stringify(s)}` };
  });

const ntpServerName = () =>
  syntax('a host name or address string', (s): ValueResult<string | null> => {
    if (s === '') return { ok: true, value: null };
    const host = parseHost(s);
    return host.ok ? { ok: true, value: host.value.host } : host;
  });

const sha256Hex = () =>
  syntax('a hex string', (s): ValueResult<string> =>
    /^[0-9a-f]{64}$/i.test(s)
      ? { ok: true, value: s.toLowerCase() }
      : { ok: false, error: `must be 64 hexadecimal digits (the SHA-256 of the token), got ${s.length} characters${/^[0-9a-f]*$/i.test(s) ? '' : ' with non-hex ones'}` },
  );

const tokenName = () =>
  syntax('a name string', (s): ValueResult<string> =>
    /^[A-Za-z0-9._@-]{1,64}$/.test(s) ? { ok: true, value: s } : { ok: false, error: `invalid token name ${JSON.stringify(s)} (1-64 of A-Z a-z 0-9 . _ @ -)` },
  );

// ---------------------------------------------------------------------------------------------------------------
// Sections

const daemonSchema = table({
  'state-dir': nonEmpty().prefault(DEFAULTS.daemon['state-dir']),
  user: userName().prefault(DEFAULTS.daemon.user),
  'log-level': oneOf('log level', LOG_LEVELS).prefault(DEFAULTS.daemon['log-level']),
  'log-format': oneOf('log format', LOG_FORMATS).prefault(DEFAULTS.daemon['log-format']),
}).transform((r) => ({ stateDir: r['state-dir'], user: r.user, logLevel: r['log-level'], logFormat: r['log-format'] }));

const tlsSchema = table({
  certificate: optionalText().prefault(DEFAULTS.tls.certificate),
  'private-key': optionalText().prefault(DEFAULTS.tls['private-key']),
  'client-ca': optionalText().prefault(DEFAULTS.tls['client-ca']),
}).transform((r) => ({ certificate: r.certificate, privateKey: r['private-key'], clientCa: r['client-ca'] }));

const RL = DEFAULTS.ntp['rate-limit'];
const rateLimitSchema = table({
  enabled: z.boolean().prefault(RL.enabled),
  interval: duration().prefault(RL.interval),
  burst: int(1, MAX_COUNT).prefault(RL.burst),
  kod: z.boolean().prefault(RL.kod),
  'table-size': int(1, 16_777_216).prefault(RL['table-size']),
}).transform((r) => ({ enabled: r.enabled, intervalMs: r.interval, burst: r.burst, kod: r.kod, tableSize: r['table-size'] }));

const ntpSchema = table({
  listen: z.array(bindAddress()).prefault([...DEFAULTS.ntp.listen]),
  allow: cidrList().prefault([]),
  deny: cidrList().prefault([]),
  'keys-file': optionalText().prefault(DEFAULTS.ntp['keys-file']),
  'batch-io': z.boolean().prefault(DEFAULTS.ntp['batch-io']),
  'rate-limit': rateLimitSchema.prefault({}),
}).transform((r) => ({ listen: r.listen, allow: r.allow, deny: r.deny, keysFile: r['keys-file'], batchIo: r['batch-io'], rateLimit: r['rate-limit'] }));

const T = DEFAULTS.time;
const timeSchema = table({
  source: oneOf('time source', TIME_SOURCES, AVAILABLE_TIME_SOURCES).prefault(T.source),
  stratum: int(1, 15).prefault(T.stratum),
  refid: syntax('a refid string', parseRefid).prefault(T.refid),
  precision: int(-32, 0).prefault(T.precision),
  'root-delay': duration({ allowZero: true, maxMs: MAX_ROOT_MS }).prefault(T['root-delay']),
  'root-dispersion': duration({ allowZero: true, maxMs: MAX_ROOT_MS }).prefault(T['root-dispersion']),
  leap: oneOf('leap indicator', LEAP_INDICATORS).prefault(T.leap),
}).transform((r) => ({
  source: r.source,
  stratum: r.stratum,
  refid: r.refid,
  precision: r.precision,
  rootDelayMs: r['root-delay'],
  rootDispersionMs: r['root-dispersion'],
  leap: r.leap,
}));

const service = () => oneOf('service', SERVICE_NAMES, AVAILABLE_SERVICES);

/** How a listener's bytes are carried, implied by its kind and services (exported for tests). */
export function transportOf(kind: 'tcp' | 'unix', services: readonly ServiceName[]): ListenerTransport {
  if (services.includes('metrics')) return 'http';
  return kind === 'unix' ? 'plain' : 'tls';
}

const L = LISTENER_DEFAULTS;
const listenerSchema = table({
  address: bindAddress().optional(),
  path: nonEmpty().optional(),
  services: z.array(service()).min(1, { error: 'must list at least one service' }),
  'default-service': service().optional(),
  'max-connections': int(1, MAX_COUNT).prefault(L['max-connections']),
  'max-connections-per-address': int(1, MAX_COUNT).prefault(L['max-connections-per-address']),
  'handshake-timeout': duration().prefault(L['handshake-timeout']),
  'idle-timeout': duration().prefault(L['idle-timeout']),
  'max-message-size': int(1024, 16 * 1024 * 1024).prefault(L['max-message-size']),
  'native-tls': z.boolean().prefault(L['native-tls']),
  mode: syntax('an octal string like "0660"', parseMode).optional(),
}).transform((r, ctx): ListenerConfig => {
  // These decide the listener's kind, so they cannot wait for check().
  if (r.address !== undefined && r.path !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'set either "address" or "path", not both', input: r });
    return z.NEVER;
  }
  if (r.address === undefined && r.path === undefined) {
    ctx.addIssue({ code: 'custom', message: 'missing "address" (host:port) or "path" (Unix socket)', input: r });
    return z.NEVER;
  }
  if (r.address !== undefined && r.mode !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['mode'], message: 'only applies to path listeners', input: r.mode });
    return z.NEVER;
  }
  const common = {
    services: r.services,
    defaultService: r['default-service'] ?? (r.services.length === 1 ? (r.services[0] ?? null) : null),
    maxConnections: r['max-connections'],
    maxConnectionsPerAddress: r['max-connections-per-address'],
    handshakeTimeoutMs: r['handshake-timeout'],
    idleTimeoutMs: r['idle-timeout'],
    maxMessageSize: r['max-message-size'],
    nativeTls: r['native-tls'],
  };
  if (r.address !== undefined) return { kind: 'tcp', address: r.address, transport: transportOf('tcp', r.services), ...common };
  return {
    kind: 'unix',
    path: r.path ?? '',
    mode: r.mode ?? DEFAULT_SOCKET_MODE,
    transport: transportOf('unix', r.services),
    ...common,
  };
});

const N = DEFAULTS.nts;
const ntsSchema = table({
  aead: z.array(oneOf('AEAD algorithm', AEAD_NAMES)).min(1, { error: 'must list at least one AEAD algorithm' }).prefault([...N.aead]),
  cookies: int(1, 8).prefault(N.cookies),
  'ntp-server': ntpServerName().prefault(N['ntp-server']),
  'ntp-port': int(1, 65535).prefault(N['ntp-port']),
  'key-rotation': duration().prefault(N['key-rotation']),
  'keys-kept': int(1, 1000).prefault(N['keys-kept']),
}).transform((r) => ({
  aead: r.aead,
  cookies: r.cookies,
  ntpServer: r['ntp-server'],
  ntpPort: r['ntp-port'],
  keyRotationMs: r['key-rotation'],
  keysKept: r['keys-kept'],
}));

const D = DEFAULTS.ntpd;
const ntpdSchema = table({
  address: peerAddress().prefault(D.address),
  'key-id': int(0, 65535).prefault(D['key-id']),
  'keys-file': optionalText().prefault(D['keys-file']),
  poll: duration().prefault(D.poll),
  grace: duration({ allowZero: true }).prefault(D.grace),
  timeout: duration().prefault(D.timeout),
  retries: int(0, 10).prefault(D.retries),
}).transform((r) => ({
  address: r.address,
  keyId: r['key-id'] === 0 ? null : r['key-id'],
  keysFile: r['keys-file'],
  pollMs: r.poll,
  graceMs: r.grace,
  timeoutMs: r.timeout,
  retries: r.retries,
}));

const C = DEFAULTS.chrony;
const chronySchema = table({
  chronyc: nonEmpty().prefault(C.chronyc),
  args: z.array(z.string()).prefault([...C.args]),
  poll: duration().prefault(C.poll),
  grace: duration({ allowZero: true }).prefault(C.grace),
  timeout: duration().prefault(C.timeout),
}).transform((r) => ({ chronyc: r.chronyc, args: r.args, pollMs: r.poll, graceMs: r.grace, timeoutMs: r.timeout }));

const tokenSchema = table({
  name: tokenName(),
  role: oneOf('role', MGMT_ROLES),
  sha256: sha256Hex(),
}).transform((r) => ({ name: r.name, role: r.role, sha256: r.sha256 }));

/** A certificate subject CN: 1-64 printable characters (X.520 ub-common-name is 64). */
const commonName = () =>
  syntax('a common name string', (s): ValueResult<string> =>
    s.length >= 1 && s.length <= 64 && ![...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
      ? { ok: true, value: s }
      : { ok: false, error: `invalid common name ${JSON.stringify(s.slice(0, 80))} (1-64 characters, no control characters)` },
  );

const clientCertSchema = table({
  'common-name': commonName(),
  role: oneOf('role', MGMT_ROLES),
}).transform((r) => ({ commonName: r['common-name'], role: r.role }));

const mgmtSchema = table({
  anonymous: oneOf('anonymous role', ANONYMOUS_ROLES).prefault(DEFAULTS.mgmt.anonymous),
  token: arrayOfTables(tokenSchema, 'mgmt.token').prefault([]),
  'client-cert': arrayOfTables(clientCertSchema, 'mgmt.client-cert').prefault([]),
  'request-rate': int(0, 1_000_000).prefault(DEFAULTS.mgmt['request-rate']),
  'request-burst': int(1, 1_000_000).prefault(DEFAULTS.mgmt['request-burst']),
}).transform((r) => ({
  anonymous: r.anonymous,
  tokens: r.token,
  clientCerts: r['client-cert'],
  requestRate: r['request-rate'],
  requestBurst: r['request-burst'],
}));

const eksTokenSchema = table({
  name: tokenName(),
  sha256: sha256Hex(),
}).transform((r) => ({ name: r.name, sha256: r.sha256 }));

const E = DEFAULTS.eks;
/** docs/eks.md §3: ephemeral key ids are the top half of the 16-bit key ids ntpd and NTPsec accept. */
const keyIdRange = () =>
  z.tuple([int(32768, 65535), int(32768, 65535)], { error: (iss) => (iss.input === undefined ? undefined : 'must be [first, last] key ids within 32768..65535') }).superRefine(([first, last], ctx) => {
    if (first > last) ctx.addIssue({ code: 'custom', message: `first key id ${first} is above the last one ${last}` });
  });
const eksSchema = table({
  access: oneOf('EKS access policy', EKS_ACCESS).prefault(E.access),
  token: arrayOfTables(eksTokenSchema, 'eks.token').prefault([]),
  // "": twice nts.key-rotation (resolved with [nts] below), so a shorter rotation needs no EKS setting.
  'key-lifetime': syntax('a duration string like "2d"', (s): ValueResult<number | null> => (s === '' ? { ok: true, value: null } : parseDuration(s))).prefault(
    E['key-lifetime'],
  ),
  'key-id-range': keyIdRange().prefault([...E['key-id-range']]),
  'issue-burst': int(1, MAX_COUNT).prefault(E['issue-burst']),
  'issue-interval': duration().prefault(E['issue-interval']),
  'ntp-server': ntpServerName().prefault(E['ntp-server']),
  'ntp-port': int(1, 65535).prefault(E['ntp-port']),
}).transform((r) => ({
  access: r.access,
  tokens: r.token,
  keyLifetimeMs: r['key-lifetime'],
  keyIdFirst: r['key-id-range'][0],
  keyIdLast: r['key-id-range'][1],
  issueBurst: r['issue-burst'],
  issueIntervalMs: r['issue-interval'],
  ntpServer: r['ntp-server'],
  ntpPort: r['ntp-port'],
}));

/** The whole file. Parse with `{ error: errorMap }`. */
export const configSchema = table({
  daemon: daemonSchema.prefault({}),
  tls: tlsSchema.prefault({}),
  ntp: ntpSchema.prefault({}),
  time: timeSchema.prefault({}),
  listener: arrayOfTables(listenerSchema, 'listener').prefault(DEFAULTS.listener.map((l) => ({ ...l, services: [...l.services] }))),
  nts: ntsSchema.prefault({}),
  ntpd: ntpdSchema.prefault({}),
  chrony: chronySchema.prefault({}),
  mgmt: mgmtSchema.prefault({}),
  eks: eksSchema.prefault({}),
}).transform(
  (r): Config => ({
    daemon: r.daemon,
    tls: r.tls,
    ntp: r.ntp,
    time: r.time,
    // Relative socket paths live in the state dir, so a config can name "ntptsd.sock" and stay portable.
    listeners: r.listener.map((l) =>
      l.kind === 'unix' ? { ...l, path: isAbsolute(l.path) ? normalize(l.path) : join(r.daemon.stateDir, l.path) } : l,
    ),
    nts: r.nts,
    ntpd: r.ntpd,
    chrony: r.chrony,
    mgmt: r.mgmt,
    eks: { ...r.eks, keyLifetimeMs: r.eks.keyLifetimeMs ?? 2 * r.nts.keyRotationMs },
  }),
);
