/**
 * The daemon's configuration as domain types: camelCase, durations in milliseconds, addresses parsed,
 * empty strings of the file turned into `null`, relative socket paths resolved against the state dir.
 * docs/configuration.md documents the file form of every field.
 */
import type { Cidr, HostPort } from './values.js';

export type { Cidr, Host, HostFamily, HostPort } from './values.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Services a listener can serve; TLS ones are chosen by ALPN (`ntske/1`, `ntp-mgmt/1`, `ntp-eks/1`). */
export const SERVICE_NAMES = ['nts-ke', 'mgmt', 'metrics', 'eks'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export const TIME_SOURCES = ['static', 'ntpd', 'chrony', 'sources'] as const;
export type TimeSourceKind = (typeof TIME_SOURCES)[number];

/*
 * Availability: the names above are the whole design; these lists are what this version can actually run, so the
 * schema accepts only them (`ntptsd --check` must never accept a config that would fail when the daemon starts).
 * They grow as capabilities land; a known name that is not listed here is rejected with "not available in this
 * version", an unknown one with a did-you-mean. Settings that only matter to an unavailable value (`[ntpd]`,
 * `[mgmt]`, `tls.client-ca`) are still accepted and validated: they are harmless until their value arrives.
 */

/** Services this version serves; grows as capabilities land. */
export const AVAILABLE_SERVICES: readonly ServiceName[] = ['nts-ke', 'mgmt', 'metrics', 'eks'];

/** Time sources this version runs; grows as capabilities land. */
export const AVAILABLE_TIME_SOURCES: readonly TimeSourceKind[] = ['static', 'ntpd', 'chrony'];

export const LEAP_INDICATORS = ['none', 'add', 'delete'] as const;
export type LeapIndicator = (typeof LEAP_INDICATORS)[number];

/** In order of preference when listed in `nts.aead`. */
export const AEAD_NAMES = ['AES-SIV-CMAC-256', 'AES-SIV-CMAC-384', 'AES-SIV-CMAC-512'] as const;
export type AeadName = (typeof AEAD_NAMES)[number];

export const MGMT_ROLES = ['monitor', 'admin'] as const;
export type MgmtRole = (typeof MGMT_ROLES)[number];

export const ANONYMOUS_ROLES = ['none', 'monitor'] as const;
export type AnonymousRole = (typeof ANONYMOUS_ROLES)[number];

export interface DaemonConfig {
  readonly stateDir: string;
  /** Drop privileges to this user after binding; `null`: keep running as started. */
  readonly user: string | null;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

export interface TlsConfig {
  /** PEM chain; `null` (with `privateKey` null): use a self-signed certificate kept in the state dir. */
  readonly certificate: string | null;
  readonly privateKey: string | null;
  /** Accept client certificates issued by this CA (management). */
  readonly clientCa: string | null;
}

export interface RateLimitConfig {
  readonly enabled: boolean;
  /** Average interval allowed between requests of one client. */
  readonly intervalMs: number;
  readonly burst: number;
  /** Answer with a RATE kiss-o'-death instead of dropping silently. */
  readonly kod: boolean;
  /** Number of clients tracked. */
  readonly tableSize: number;
}

export interface NtpConfig {
  /** UDP addresses to bind; port 0 means any free port. */
  readonly listen: readonly HostPort[];
  /** Empty: everyone may query. */
  readonly allow: readonly Cidr[];
  readonly deny: readonly Cidr[];
  /** Static symmetric keys (ntpd keys file format). */
  readonly keysFile: string | null;
  /** Receive and answer datagrams in batches (recvmmsg/sendmmsg, Linux, native module); false: Node's dgram. */
  readonly batchIo: boolean;
  readonly rateLimit: RateLimitConfig;
}

export interface TimeConfig {
  readonly source: TimeSourceKind;
  readonly stratum: number;
  /** IPv4 text or 1–4 ASCII characters; see `refIdFromText` in proto/ntp/packet.ts. */
  readonly refid: string;
  /** log2 seconds. */
  readonly precision: number;
  readonly rootDelayMs: number;
  readonly rootDispersionMs: number;
  readonly leap: LeapIndicator;
}

/** How a listener's bytes are carried; implied by its services and kind. */
export type ListenerTransport = 'tls' | 'http' | 'plain';

interface ListenerCommon {
  readonly services: readonly ServiceName[];
  /** For TLS clients that offer no ALPN; `null`: such clients are refused. */
  readonly defaultService: ServiceName | null;
  readonly transport: ListenerTransport;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Bytes; the largest record, line or request accepted. */
  readonly maxMessageSize: number;
  /** TLS on OpenSSL directly (the native module) where the listener's services allow it; false: node:tls. */
  readonly nativeTls: boolean;
}

export interface TcpListenerConfig extends ListenerCommon {
  readonly kind: 'tcp';
  /** Port 0 means any free port. */
  readonly address: HostPort;
}

export interface UnixListenerConfig extends ListenerCommon {
  readonly kind: 'unix';
  /** Absolute. */
  readonly path: string;
  readonly mode: number;
}

export type ListenerConfig = TcpListenerConfig | UnixListenerConfig;

export interface NtsConfig {
  readonly aead: readonly AeadName[];
  /** Cookies handed out per NTS-KE exchange. */
  readonly cookies: number;
  /** Sent in the NTPv4 Server Negotiation record; `null`: none (clients use the NTS-KE host). */
  readonly ntpServer: string | null;
  /** Sent in the Port Negotiation record when it differs from 123. */
  readonly ntpPort: number;
  readonly keyRotationMs: number;
  readonly keysKept: number;
}

export interface NtpdConfig {
  /** Where the local ntpd/NTPsec answers mode 6 (loopback). */
  readonly address: HostPort;
  /** Mode 6 requests are authenticated with this key of `keysFile`; null: unauthenticated. */
  readonly keyId: number | null;
  /** An ntp.keys file holding `keyId`. */
  readonly keysFile: string | null;
  /** Between two reads of ntpd's system variables (time.source = "ntpd"). */
  readonly pollMs: number;
  /** How long ntpd may be unreachable before we serve "unsynchronised". */
  readonly graceMs: number;
  /** Per mode 6 request, before a retry. */
  readonly timeoutMs: number;
  /** Retries of a mode 6 request after a timeout. */
  readonly retries: number;
}

/** `[chrony]`: for time.source = "chrony", read with `chronyc -c tracking`. */
export interface ChronyConfig {
  readonly chronyc: string;
  /** Extra arguments before `-c tracking`, e.g. `["-h", "/run/chrony/chronyd.sock"]`. */
  readonly args: readonly string[];
  readonly pollMs: number;
  readonly graceMs: number;
  readonly timeoutMs: number;
}

export interface MgmtToken {
  readonly name: string;
  readonly role: MgmtRole;
  /** Lower-case hex SHA-256 of the token. */
  readonly sha256: string;
}

/** `[[mgmt.client-cert]]`: the role of a verified TLS client certificate whose subject CN is `commonName`. */
export interface MgmtClientCert {
  readonly commonName: string;
  readonly role: MgmtRole;
}

export interface MgmtConfig {
  readonly anonymous: AnonymousRole;
  readonly tokens: readonly MgmtToken[];
  /** Verified client certificates without a matching entry get no role beyond `anonymous`. */
  readonly clientCerts: readonly MgmtClientCert[];
  /** Requests per second over all management connections (0: no limit), so management cannot starve NTP. */
  readonly requestRate: number;
  /** Requests admitted at once after a quiet period. */
  readonly requestBurst: number;
}

export const EKS_ACCESS = ['anonymous', 'token'] as const;
export type EksAccess = (typeof EKS_ACCESS)[number];

/** `[[eks.token]]`: a token that may fetch ephemeral keys (docs/eks.md §6). */
export interface EksToken {
  readonly name: string;
  /** Lower-case hex SHA-256 of the token. */
  readonly sha256: string;
}

/** `[eks]`: the ephemeral key service (docs/eks.md). */
export interface EksConfig {
  readonly access: EksAccess;
  readonly tokens: readonly EksToken[];
  /** From the creation of the key ring generation a key is issued under to its expiry; default twice `nts.keyRotationMs`. */
  readonly keyLifetimeMs: number;
  /** Key ids this node allocates, within 32768..65535. */
  readonly keyIdFirst: number;
  readonly keyIdLast: number;
  /** Per source address: keys issued at once, then one every `issueIntervalMs`. */
  readonly issueBurst: number;
  readonly issueIntervalMs: number;
  /** Sent in the NTP Server record; `null`: none (clients use the EKS host). */
  readonly ntpServer: string | null;
  /** Sent in the NTP Port record when it differs from 123. */
  readonly ntpPort: number;
}

export interface Config {
  readonly daemon: DaemonConfig;
  readonly tls: TlsConfig;
  readonly ntp: NtpConfig;
  readonly time: TimeConfig;
  /** `[[listener]]` in the file. */
  readonly listeners: readonly ListenerConfig[];
  readonly nts: NtsConfig;
  readonly ntpd: NtpdConfig;
  readonly chrony: ChronyConfig;
  readonly mgmt: MgmtConfig;
  readonly eks: EksConfig;
}

/** One problem found in a config file. `path` uses the file's key names (`listener[1].services[0]`); empty when the problem is the whole file. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}
