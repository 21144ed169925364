/**
 * The one definition of the management protocol's vocabulary, shared by the daemon's service, `ntptsc` and the
 * library: method names, who may call them, their params (zod schemas, also the runtime validators), their
 * results and the notifications (docs/management.md §6, §7). docs/management.md documents exactly the methods
 * and notifications of `METHODS` and `NOTIFICATIONS`; test/proto/mgmt-doc.test.ts fails when the two differ.
 *
 * Conventions of every result and notification: times are ISO 8601 strings in UTC (`2025-01-02T03:04:05.678901Z`,
 * microseconds where the daemon has them), durations are seconds as numbers, counters are plain numbers, names
 * are kebab-case. Readers must ignore members they do not know (later versions add some) and keep unknown
 * event kinds as `UnknownEvent`.
 *
 * Groups of methods have their own namespaces (`ntpd.*` the mode 6 bridge, `eks.*` the ephemeral keys); later ones
 * (`sources`) join the table when they exist.
 */

import { z } from 'zod';
import { fail, ok, type Result } from '../errors.js';
import { RpcErrorCode, rpcError, type JsonObject, type JsonValue, type RpcError } from './jsonrpc.js';

/** The TLS ALPN id of the protocol and the version announced in `hello`. */
export const MGMT_ALPN = 'ntp-mgmt/1';
export const MGMT_PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------------------------
// Roles

/** What a session may do: `monitor` reads, `admin` reads and writes. */
export const ROLES = ['monitor', 'admin'] as const;
export type Role = (typeof ROLES)[number];
/** A session's role: `none` until it authenticates (unless `mgmt.anonymous = "monitor"`). */
export type SessionRole = 'none' | Role;
/** What a method requires; `public` methods work with role `none`. */
export type MethodRole = 'public' | Role;

const RANK: Readonly<Record<SessionRole | MethodRole, number>> = { none: 0, public: 0, monitor: 1, admin: 2 };

/** True when a session with `role` may call a method that requires `required`. */
export function roleAllows(role: SessionRole, required: MethodRole): boolean {
  return RANK[role] >= RANK[required];
}

/** How the session got its role, as shown in `hello` and `auth`. */
export type AuthVia = 'anonymous' | 'token' | 'certificate' | 'peer';
/** Ways to authenticate that a listener offers: `token` (the `auth` method), `certificate` (at the TLS handshake), `peer` (Unix socket). */
export type AuthMethod = 'token' | 'certificate' | 'peer';

// ---------------------------------------------------------------------------------------------------------------
// Shared value sets

/** Same list and order as the configuration's `daemon.log-level` (checked by a test). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Sort orders of `clients`; every order is descending except `address` (ascending). */
export const CLIENT_SORT_KEYS = ['last-seen', 'first-seen', 'packets', 'drops', 'kods', 'address'] as const;
export type ClientSortKey = (typeof CLIENT_SORT_KEYS)[number];

export const EVENT_KINDS = [
  'key-rotated',
  'config-reloaded',
  'certificate-reloaded',
  'client-rate-limited',
  'listener-error',
  'source-changed',
  'key-revoked',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export const LIMITS = {
  /** `ntpd.vars`: most variable names per request. */
  maxNtpdNames: 64,
  /** `ntpd.mrulist`: most entries per answer, and the default. */
  maxNtpdMru: 10_000,
  defaultNtpdMru: 100,
  /** `clients`: most entries per answer, and the default. */
  maxClients: 1000,
  defaultClients: 100,
  /** `subscribe`: seconds between `stats` notifications; 0 means events only. */
  maxInterval: 3600,
  defaultInterval: 10,
  /** `auth`: longest token accepted (bytes of UTF-8 are at most 4× this). */
  maxTokenLength: 512,
  /** `clients`: longest filter. */
  maxFilterLength: 64,
  /** `eks.list`: most keys per answer, and the default. */
  maxEksList: 100_000,
  defaultEksList: 1000,
  /** Ephemeral key ids (docs/eks.md §3): the upper half of ntpd's 16-bit key id space. */
  minEksKeyId: 32768,
  maxEksKeyId: 65535,
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Params (zod: the daemon validates with these, clients type their calls with z.input)

const NoParams = z.strictObject({});

/** A list param also takes one value on its own, which the text form produces for a key given once. */
function listOf<T extends z.ZodType<string>>(item: T, max: number) {
  return z.union([item.transform((v) => [v]), z.array(item).max(max)]);
}

export const AuthParams = z.strictObject({
  token: z.string().min(1).max(LIMITS.maxTokenLength),
});

export const ClientsParams = z.strictObject({
  limit: z.int().min(1).max(LIMITS.maxClients).default(LIMITS.defaultClients),
  sort: z.enum(CLIENT_SORT_KEYS).default('last-seen'),
  /** An address (`192.0.2.7`) or a CIDR prefix (`2001:db8::/32`); the daemon reports a bad one as invalid params. */
  filter: z.string().min(1).max(LIMITS.maxFilterLength).optional(),
});

export const LogLevelParams = z.strictObject({
  level: z.enum(LOG_LEVELS),
});

export const SubscribeParams = z.strictObject({
  interval: z.int().min(0).max(LIMITS.maxInterval).default(LIMITS.defaultInterval),
  events: listOf(z.enum(EVENT_KINDS), EVENT_KINDS.length).default([...EVENT_KINDS]),
});

/** `ntpd.vars`: association 0 is the system; `names` reads only those variables. */
export const NtpdVarsParams = z.strictObject({
  assoc: z.int().min(0).max(65535).default(0),
  names: listOf(z.string().regex(/^[A-Za-z0-9_.]{1,64}$/), LIMITS.maxNtpdNames).optional(),
});

export const NTPD_MRU_SORT_KEYS = ['last', 'first', 'count', 'address'] as const;
export type NtpdMruSortKey = (typeof NTPD_MRU_SORT_KEYS)[number];

/** `ntpd.mrulist`: ntpq's filters (RFC 9327 READ_MRU), then `sort` and `limit` applied by the daemon. */
export const NtpdMrulistParams = z.strictObject({
  limit: z.int().min(1).max(LIMITS.maxNtpdMru).default(LIMITS.defaultNtpdMru),
  sort: z.enum(NTPD_MRU_SORT_KEYS).default('last'),
  mincount: z.int().min(0).max(0xffffffff).optional(),
  laddr: z.string().min(1).max(64).optional(),
  resall: z.int().min(0).max(0xffff).optional(),
  resany: z.int().min(0).max(0xffff).optional(),
  maxlstint: z.int().min(0).max(0xffffffff).optional(),
});

/** `eks.list`: issued keys, most recently issued first; `expired` adds expired keys that can still be renewed. */
export const EksListParams = z.strictObject({
  limit: z.int().min(1).max(LIMITS.maxEksList).default(LIMITS.defaultEksList),
  expired: z.boolean().default(false),
});

/** `eks.revoke`: an ephemeral key id. */
export const EksRevokeParams = z.strictObject({
  keyId: z.int().min(LIMITS.minEksKeyId).max(LIMITS.maxEksKeyId),
});

// ---------------------------------------------------------------------------------------------------------------
// Results

export interface AuthResult {
  readonly role: Role;
  readonly via: 'token';
  /** The token's `name` in the configuration. */
  readonly identity: string;
}

export interface StatusResult {
  readonly server: 'ntptsd';
  readonly version: string;
  readonly startedAt: string;
  readonly uptime: number;
  readonly logLevel: LogLevel;
  /** The configuration file in use; null for the built-in defaults. */
  readonly config: string | null;
  readonly time: TimeStatus;
  readonly keys: { readonly current: number; readonly count: number; readonly nextRotation: string };
  readonly certificate: CertificateInfo;
  /** Open connections over all listeners. */
  readonly connections: number;
  /** The caller's own session. */
  readonly session: { readonly role: SessionRole; readonly via: AuthVia; readonly identity: string | null };
}

export interface TimeStatus {
  /** `static`, later `ntpd`, `chrony`, `sources`. */
  readonly source: string;
  readonly synchronized: boolean;
  readonly stratum: number;
  /** Printable refid: 1-4 ASCII characters, or an IPv4 address. */
  readonly refid: string;
  readonly leap: 'none' | 'add' | 'delete' | 'unsynchronized';
  /** Seconds. */
  readonly rootDelay: number;
  readonly rootDispersion: number;
}

export interface CertificateInfo {
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** SHA-256 of the DER, lower-case hex with no separators. */
  readonly sha256: string;
  readonly selfSigned: boolean;
}

export interface ServicesResult {
  readonly listeners: readonly ListenerInfo[];
  readonly services: readonly ServiceInfo[];
}

export interface ListenerInfo {
  /** As in logs, e.g. `listener[0] [::]:4460`. */
  readonly name: string;
  /** `host:port` actually bound (port 0 resolved), or null for a Unix socket. */
  readonly address: string | null;
  readonly path: string | null;
  readonly transport: 'tls' | 'plain';
  readonly services: readonly string[];
  readonly defaultService: string | null;
  readonly connections: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
}

export interface ServiceInfo {
  readonly name: string;
  readonly alpn: string | null;
  /** Open connections. */
  readonly active: number;
}

export interface StatsResult {
  /** When the snapshot was taken. */
  readonly at: string;
  readonly uptime: number;
  /** The UDP time service: `requests`, `responses.<auth>`, `drops.<reason>`, `kods.<code>`, ... (only counters that moved). */
  readonly ntp: Readonly<Record<string, number>>;
  /** Per service name: `{ active, counters }`. */
  readonly services: Readonly<Record<string, { readonly active: number; readonly counters: Readonly<Record<string, number>> }>>;
  /** Per listener name: `accepted`, `refused.<reason>`, `handshake-failures`, ... */
  readonly listeners: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** One association as `ntpq -p` shows it. */
export interface NtpdPeer {
  readonly assoc: number;
  /** ntpq's tally character: " x.-+#*o". */
  readonly tally: string;
  /** reject, falsetick, excess, outlier, candidate, backup, sys.peer, pps.peer. */
  readonly selection: string;
  readonly remote: string;
  readonly refid: string;
  readonly stratum: number;
  /** ntpq's type letter: u unicast, b broadcast, m multicast, l local (refclock), s symmetric, p pool, ... */
  readonly type: string;
  /** Seconds since the last packet; null before the first. */
  readonly when: number | null;
  /** Seconds. */
  readonly poll: number;
  /** The reach register, octal as ntpq prints it. */
  readonly reach: string;
  /** Milliseconds; null when ntpd did not say. */
  readonly delay: number | null;
  readonly offset: number | null;
  readonly jitter: number | null;
}

export interface NtpdPeersResult {
  /** The ntpd asked (`ntpd.address`). */
  readonly server: string;
  readonly peers: readonly NtpdPeer[];
}

export interface NtpdVarsResult {
  readonly server: string;
  readonly assoc: number;
  /** The status word of the answer (system or peer status, RFC 9327 §2.2). */
  readonly status: number;
  /** In ntpd's order, unknown names included; a flag without a value is null. Values as ntpd wrote them, unquoted. */
  readonly variables: Readonly<Record<string, string | null>>;
}

export interface NtpdMruEntry {
  readonly address: string;
  readonly port: number | null;
  readonly firstSeen: string | null;
  readonly lastSeen: string;
  readonly count: number | null;
  readonly mode: number | null;
  readonly version: number | null;
  /** ntpd's restriction flags (hex as ntpq prints them), null when not sent. */
  readonly restrictions: string | null;
}

export interface NtpdMrulistResult {
  readonly server: string;
  /** ntpd's clock at the end of the listing. */
  readonly now: string | null;
  /** Entries ntpd sent (after its filters, before `sort` and `limit`). */
  readonly total: number;
  /** True when the listing stopped early (too many entries or requests). */
  readonly truncated: boolean;
  readonly entries: readonly NtpdMruEntry[];
}

export interface NtpdSysstatsResult {
  readonly server: string;
  /** ntpd's packet counters (`ss_*` system variables), as numbers where they are numbers. */
  readonly counters: Readonly<Record<string, number | string | null>>;
}

export interface ClientsResult {
  /** Entries in the daemon's client table (before filter and limit). */
  readonly total: number;
  /** Entries matching the filter (before the limit). */
  readonly matched: number;
  readonly clients: readonly ClientInfo[];
}

export interface ClientInfo {
  readonly address: string;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly packets: number;
  readonly drops: number;
  readonly kods: number;
  /** NTP mode and version of the last request. */
  readonly mode: number;
  readonly version: number;
  /** How the last request was authenticated: `none`, `nts`, `mac`. */
  readonly auth: string;
}

export interface KeysResult {
  readonly current: number;
  /** Seconds between rotations (`nts.key-rotation`). */
  readonly rotation: number;
  readonly nextRotation: string;
  /** Keys kept (`nts.keys-kept`). */
  readonly kept: number;
  /** Oldest first; no key material, ever. */
  readonly keys: readonly { readonly id: number; readonly createdAt: string; readonly current: boolean }[];
}

export interface RotateKeysResult {
  readonly current: number;
  readonly previous: number;
  /** Ids dropped because more than `keys-kept` keys were held. */
  readonly removed: readonly number[];
}

export interface ReloadResult {
  /** The file read; null when running on the built-in defaults. */
  readonly config: string | null;
  /** Top-level keys (`nts`, `listener[1]`, ...) whose values changed and were applied. */
  readonly changed: readonly string[];
  /** Changed keys that take effect only after a restart (e.g. `daemon.state-dir`). */
  readonly restartRequired: readonly string[];
  readonly certificateReloaded: boolean;
}

export interface LogLevelResult {
  readonly previous: LogLevel;
  readonly level: LogLevel;
}

/** One key of the issuing node's table (docs/eks.md §6): never key material. */
export interface EksKeyInfo {
  readonly keyId: number;
  /** Id of the master key of the ring the key is derived from (as in `keys`). */
  readonly generation: number;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly expired: boolean;
  /** The client's address as the TLS connection saw it. */
  readonly address: string;
  /** The `[[eks.token]]` name the client presented; null for anonymous issuance. */
  readonly token: string | null;
  /** Renewals of this id so far (0 for a first issuance). */
  readonly renewals: number;
}

export interface EksRevocationInfo {
  readonly keyId: number;
  readonly revokedAt: string;
  /** When every key that could carry the id has expired and the revocation is forgotten. */
  readonly until: string;
  /** The identity of the admin who revoked it. */
  readonly by: string;
}

export interface EksListResult {
  /** The ids this node allocates (`eks.key-id-range`). */
  readonly range: { readonly first: number; readonly last: number };
  /** Live keys (issued and not expired) in the table, before `limit`. */
  readonly live: number;
  /** Most recently issued first. */
  readonly keys: readonly EksKeyInfo[];
  /** Revocations in force. */
  readonly revoked: readonly EksRevocationInfo[];
}

export interface EksRevokeResult {
  readonly keyId: number;
  readonly revokedAt: string;
  readonly until: string;
  /** False when the id is not in this node's table (revoked all the same: another node may have issued it). */
  readonly wasIssuedHere: boolean;
}

export interface SubscribeResult {
  readonly interval: number;
  readonly events: readonly EventKind[];
}

export interface UnsubscribeResult {
  /** False when the connection had no subscription (not an error). */
  readonly wasSubscribed: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// The method table

export interface MethodSpec {
  readonly role: MethodRole;
  /** Validates and completes params (defaults); unknown params are refused. */
  readonly params: z.ZodType;
  /** Parameter names that positional words of the text form fill, in order (`log-level debug`). */
  readonly positional: readonly string[];
  /** One line, as `ntptsc` shows it. */
  readonly description: string;
}

export const METHODS = {
  auth: {
    role: 'public',
    params: AuthParams,
    positional: ['token'],
    description: 'Authenticate with a token; the session takes the token’s role.',
  },
  status: {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'Version, uptime, time source, keys, certificate and the caller’s session.',
  },
  services: {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'Listeners and the services they serve, with open connections.',
  },
  stats: {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'Counters of the NTP service, of every service and of every listener.',
  },
  clients: {
    role: 'monitor',
    params: ClientsParams,
    positional: [],
    description: 'NTP clients recently seen (most recent first by default).',
  },
  keys: {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'Master key ids, their age and the next rotation (never key material).',
  },
  'rotate-keys': {
    role: 'admin',
    params: NoParams,
    positional: [],
    description: 'Make a new current master key now.',
  },
  reload: {
    role: 'admin',
    params: NoParams,
    positional: [],
    description: 'Reload the configuration file and the certificate, like SIGHUP.',
  },
  'log-level': {
    role: 'admin',
    params: LogLevelParams,
    positional: ['level'],
    description: 'Change the daemon’s log level until the next restart or reload.',
  },
  subscribe: {
    role: 'monitor',
    params: SubscribeParams,
    positional: [],
    description: 'Receive periodic stats and event notifications on this connection.',
  },
  unsubscribe: {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'Stop the notifications started by subscribe.',
  },
  'ntpd.peers': {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'The local ntpd’s associations, as ntpq -p shows them (mode 6).',
  },
  'ntpd.vars': {
    role: 'monitor',
    params: NtpdVarsParams,
    positional: ['assoc'],
    description: 'The local ntpd’s system variables, or an association’s (mode 6 READVAR).',
  },
  'ntpd.mrulist': {
    role: 'monitor',
    params: NtpdMrulistParams,
    positional: [],
    description: 'The local ntpd’s most-recently-used client list (mode 6 READ_MRU).',
  },
  'ntpd.sysstats': {
    role: 'monitor',
    params: NoParams,
    positional: [],
    description: 'The local ntpd’s packet counters (ntpq sysstats).',
  },
  'eks.list': {
    role: 'monitor',
    params: EksListParams,
    positional: [],
    description: 'Ephemeral keys this node issued, most recent first, and revocations (never key material).',
  },
  'eks.revoke': {
    role: 'admin',
    params: EksRevokeParams,
    positional: ['keyId'],
    description: 'Revoke an ephemeral key id on this node until every key that could carry it has expired.',
  },
} as const satisfies Readonly<Record<string, MethodSpec>>;

export type MethodName = keyof typeof METHODS;
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

/** Params as a client writes them (defaults optional). */
export type ParamsIn<M extends MethodName> = z.input<(typeof METHODS)[M]['params']>;
/** Params as the daemon receives them after validation (defaults filled in). */
export type Params<M extends MethodName> = z.output<(typeof METHODS)[M]['params']>;

export interface Results {
  auth: AuthResult;
  status: StatusResult;
  services: ServicesResult;
  stats: StatsResult;
  clients: ClientsResult;
  keys: KeysResult;
  'rotate-keys': RotateKeysResult;
  reload: ReloadResult;
  'log-level': LogLevelResult;
  subscribe: SubscribeResult;
  unsubscribe: UnsubscribeResult;
  'ntpd.peers': NtpdPeersResult;
  'ntpd.vars': NtpdVarsResult;
  'ntpd.mrulist': NtpdMrulistResult;
  'ntpd.sysstats': NtpdSysstatsResult;
  'eks.list': EksListResult;
  'eks.revoke': EksRevokeResult;
}
export type MethodResult<M extends MethodName> = Results[M];

// Compile-time guard: `Results` has exactly the methods of `METHODS`.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _resultsCoverMethods: Exact<keyof Results, MethodName> = true;
void _resultsCoverMethods;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

/**
 * What the dispatcher does after parsing: finds the method (-32601), binds the text form's positional words to
 * names, and validates the params (-32602). The role check (-32001/-32002) sits between the two, in the service,
 * which knows the session: call `lookupMethod`, check the role, then `checkParams`.
 */
export function lookupMethod(name: string): Result<MethodName, RpcError> {
  if (!isMethodName(name)) return fail(rpcError(RpcErrorCode.METHOD_NOT_FOUND, `no method ${JSON.stringify(name.slice(0, 64))}`, 'MGMT_METHOD_NOT_FOUND'));
  return ok(name);
}

/** Validated params of `method`, or the -32602 error to answer (`data.issues`: `[{ path, message }]`). */
export function checkParams<M extends MethodName>(method: M, params: JsonObject, args: readonly JsonValue[] = []): Result<Params<M>, RpcError> {
  const spec: MethodSpec = METHODS[method];
  let named: JsonObject = params;
  if (args.length > 0) {
    if (args.length > spec.positional.length) {
      const expected = spec.positional.length === 0 ? 'no positional words' : `at most ${spec.positional.length} (${spec.positional.join(', ')})`;
      return fail(rpcError(RpcErrorCode.INVALID_PARAMS, `${method} takes ${expected}; use key=value`, 'MGMT_TOO_MANY_ARGS'));
    }
    named = { ...params };
    for (const [i, value] of args.entries()) {
      const key = spec.positional[i] as string;
      if (Object.hasOwn(params, key)) {
        return fail(rpcError(RpcErrorCode.INVALID_PARAMS, `${key} given both by position and by name`, 'MGMT_DUPLICATE_PARAM'));
      }
      Object.defineProperty(named, key, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  const parsed = spec.params.safeParse(named);
  if (parsed.success) return ok(parsed.data as Params<M>);
  const issues = parsed.error.issues.slice(0, 8).map((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => k.slice(0, 32)) : undefined;
    const path = issue.path.map(String).join('.') || (keys ? keys.join(', ') : '');
    const message = issue.code === 'unrecognized_keys' ? `unknown param${keys && keys.length > 1 ? 's' : ''}` : issue.message;
    return { path, message };
  });
  const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  return fail(rpcError(RpcErrorCode.INVALID_PARAMS, `invalid params for ${method}: ${summary}`, 'MGMT_INVALID_PARAMS', { issues }));
}

// ---------------------------------------------------------------------------------------------------------------
// Notifications (server → client)

export interface HelloParams {
  readonly server: 'ntptsd';
  readonly version: string;
  /** `MGMT_PROTOCOL_VERSION`; a client refuses a major version it does not know. */
  readonly protocol: number;
  /** Ways to authenticate on this listener. */
  readonly auth: readonly AuthMethod[];
  /** The session's role now, and how it was obtained. */
  readonly role: SessionRole;
  readonly via: AuthVia;
  /** Token name, certificate subject CN, or `unix`; null when anonymous. */
  readonly identity: string | null;
  readonly limits: {
    readonly maxLineLength: number;
    readonly maxPending: number;
    /** Seconds; 0 when there is none. */
    readonly idleTimeout: number;
  };
}

/** Periodic, after `subscribe` with `interval` > 0: the same object as the `stats` result. */
export type StatsNotificationParams = StatsResult;

interface EventBase {
  readonly at: string;
  /** Events of this subscription dropped before this one because the connection did not read fast enough. */
  readonly missed?: number;
}

export type KnownEvent =
  | (EventBase & {
      readonly kind: 'key-rotated';
      readonly current: number;
      readonly previous: number;
      readonly removed: readonly number[];
      /** `schedule` (nts.key-rotation), or the identity of the admin who called `rotate-keys`. */
      readonly by: string;
    })
  | (EventBase & {
      readonly kind: 'config-reloaded';
      /** `signal` (SIGHUP) or the identity of the admin who called `reload`. */
      readonly by: string;
      readonly changed: readonly string[];
      readonly restartRequired: readonly string[];
    })
  | (EventBase & { readonly kind: 'certificate-reloaded'; readonly certificate: CertificateInfo })
  | (EventBase & {
      readonly kind: 'client-rate-limited';
      readonly address: string;
      /** `ntp`, or the stream service that refused the client. */
      readonly service: string;
      /** Rate-limit events not sent since the previous one of this kind (sampling, see the doc). */
      readonly suppressed: number;
    })
  | (EventBase & {
      readonly kind: 'listener-error';
      readonly listener: string;
      /** Stable code, e.g. `EADDRINUSE`, `EMFILE`. */
      readonly code: string;
      readonly message: string;
    })
  | (EventBase & {
      readonly kind: 'source-changed';
      readonly source: string;
      readonly previous: TimeStatus | null;
      readonly current: TimeStatus;
    })
  | (EventBase & {
      readonly kind: 'key-revoked';
      /** The ephemeral key id (32768..65535). */
      readonly keyId: number;
      /** The identity of the admin who called `eks.revoke`. */
      readonly by: string;
      /** When the revocation lapses (every key that could carry the id has expired). */
      readonly until: string;
    });

/** An event of a kind this version does not know: kept as it came. */
export interface UnknownEvent extends EventBase {
  readonly kind: string;
  readonly [member: string]: unknown;
}

export type EventParams = KnownEvent;

export interface NotificationSpec {
  readonly description: string;
}

export const NOTIFICATIONS = {
  hello: { description: 'Sent once, first, on every connection: server, version, auth methods and the current role.' },
  stats: { description: 'Periodic counters for a subscription with interval > 0; same object as the stats result.' },
  event: { description: 'Something happened: key rotated, configuration or certificate reloaded, client rate-limited, listener error, source changed, ephemeral key revoked.' },
} as const satisfies Readonly<Record<string, NotificationSpec>>;

export type NotificationName = keyof typeof NOTIFICATIONS;
export const NOTIFICATION_NAMES = Object.keys(NOTIFICATIONS) as NotificationName[];

export interface NotificationParamsMap {
  hello: HelloParams;
  stats: StatsNotificationParams;
  event: EventParams;
}
const _paramsCoverNotifications: Exact<keyof NotificationParamsMap, NotificationName> = true;
void _paramsCoverNotifications;

/** Narrows an event read by a client: known kinds keep their type, others stay `UnknownEvent`. */
export function isKnownEvent(event: KnownEvent | UnknownEvent): event is KnownEvent {
  return (EVENT_KINDS as readonly string[]).includes(event.kind);
}
