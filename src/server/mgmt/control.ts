/**
 * What the management service may see and do in the daemon: one small interface, implemented by daemon.ts.
 * The service never reaches into other services; everything it shows or changes goes through `DaemonControl`,
 * and everything that happens elsewhere reaches it as a `DaemonEvent` on `events`.
 */
import { EventEmitter } from 'node:events';
import type { MgmtConfig } from '../../config/types.js';
import type {
  CertificateInfo,
  EksListResult,
  EksRevokeResult,
  KeysResult,
  KnownEvent,
  LogLevel,
  NtpdMrulistResult,
  NtpdPeersResult,
  NtpdSysstatsResult,
  NtpdVarsResult,
  Params,
  ReloadResult,
  RotateKeysResult,
  ServicesResult,
  StatsResult,
  StatusResult,
} from '../../proto/mgmt/types.js';
import type { ClientEntry } from '../../proto/ntp/client-table.js';
import type { JsonObject } from '../../proto/mgmt/jsonrpc.js';

/** An event as the daemon reports it; `at` and `missed` are added per subscriber by the service. */
export type DaemonEvent = KnownEvent extends infer E ? (E extends KnownEvent ? Omit<E, 'at' | 'missed'> : never) : never;

export type ControlErrorCode = 'CONFLICT' | 'BACKEND_UNAVAILABLE' | 'CONFIG_INVALID' | 'NOT_FOUND';

/** A failed `rotateKeys` or `reload`, coded so the service can answer the documented JSON-RPC error. */
export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    readonly code: ControlErrorCode,
    message: string,
    /** Extra members of the JSON-RPC error's `data` (`backend`, `problems`). */
    readonly data: JsonObject = {},
  ) {
    super(message);
  }
}

/** Emits `'event'` with a `DaemonEvent`. */
export class DaemonEvents extends EventEmitter<{ event: [DaemonEvent] }> {
  constructor() {
    super();
    // One listener per subscribed management connection: hundreds are normal, not a leak.
    this.setMaxListeners(0);
  }

  emitEvent(event: DaemonEvent): void {
    this.emit('event', event);
  }
}

export interface ClientTableView {
  readonly size: number;
  /** Most recently seen first. */
  mostRecent(limit?: number): ClientEntry[];
}

/** The local ntpd over mode 6 (the bridge). Every method throws `ControlError` when ntpd cannot answer. */
export interface NtpdView {
  peers(): Promise<NtpdPeersResult>;
  vars(params: Params<'ntpd.vars'>): Promise<NtpdVarsResult>;
  mrulist(params: Params<'ntpd.mrulist'>): Promise<NtpdMrulistResult>;
  sysstats(): Promise<NtpdSysstatsResult>;
}

/** The ephemeral key service's issuance table on this node (docs/eks.md §6): no key material ever leaves it. */
export interface EksView {
  /** Issued keys, most recently issued first, at most `params.limit`; expired ones too with `params.expired`. */
  list(params: Params<'eks.list'>): EksListResult;
  /**
   * Revokes `keyId` (32768..65535) until every key that could carry it has expired, saves the table and emits
   * `key-revoked`; `by`: the admin's identity. Throws `ControlError('BACKEND_UNAVAILABLE', …, { backend:
   * 'state-dir' })` when the table cannot be saved.
   */
  revoke(keyId: number, by: string): Promise<EksRevokeResult>;
}

export interface DaemonControl {
  readonly events: DaemonEvents;
  /** The status result without the caller's session and without `connections` (the service adds both). */
  status(): Omit<StatusResult, 'session' | 'connections'>;
  services(): ServicesResult;
  stats(): StatsResult;
  /** Open connections over all listeners. */
  connections(): number;
  clients(): ClientTableView;
  keys(): KeysResult;
  /** `by`: the admin's identity, for logs and the `key-rotated` event. Throws `ControlError`. */
  rotateKeys(by: string): Promise<RotateKeysResult>;
  /** Same as SIGHUP; `by` as above. Throws `ControlError` (`CONFIG_INVALID` with `data.problems`). */
  reload(by: string): Promise<ReloadResult>;
  logLevel(): LogLevel;
  setLogLevel(level: LogLevel): void;
  /** The `[mgmt]` settings in force (they change on reload). */
  mgmtConfig(): MgmtConfig;
  /** True when `tls.client-ca` is set, so TLS listeners ask for client certificates. */
  clientCaConfigured(): boolean;
  /** The ntpd at `ntpd.address`. */
  ntpd(): NtpdView;
  /** The ephemeral keys this node issued. */
  eks(): EksView;
}

/** `2025-01-02T03:04:05.678901Z` from Unix microseconds. */
export function isoMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const sub = Math.floor(micros - ms * 1000);
  const base = new Date(ms).toISOString(); // ...SS.mmmZ
  return `${base.slice(0, -1)}${String(sub).padStart(3, '0')}Z`;
}

export type { CertificateInfo };
