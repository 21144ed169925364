/** Messages between bench/mgmt.ts and its management load process (bench/lib/mgmt-load.ts), over Node's IPC channel. */

export type MgmtTransport = 'unix' | 'tls';

/** The requests of the mix, in the order each client cycles through them (client i starts at i % length). */
export const MGMT_MIX = ['status', 'stats', 'clients', 'keys'] as const;
export type MixMethod = (typeof MGMT_MIX)[number];
/** How the mix is labelled in tables. */
export const MIX_LABELS: Record<MixMethod, string> = { status: 'status', stats: 'stats', clients: 'clients limit=20', keys: 'keys' };
/** `clients`' `limit` in the mix. */
export const CLIENTS_LIMIT = 20;

export interface MgmtTarget {
  readonly transport: MgmtTransport;
  /** Unix: the socket path. */
  readonly socket?: string;
  /** TLS: address, CA to verify against, name to verify, token to authenticate with. */
  readonly host?: string;
  readonly port?: number;
  readonly caPem?: string;
  readonly servername?: string;
  readonly token?: string;
  /** The role the session must have once connected (and authenticated). */
  readonly expectRole: 'monitor' | 'admin';
}

/** Opens `clients` connections, spread over `targets` in turn (client i uses targets[i % targets.length]). */
export interface MgmtSetupRequest {
  readonly type: 'setup';
  readonly clients: number;
  readonly targets: readonly MgmtTarget[];
  /** Connect (handshake, hello, auth) and per-call timeout, ms. */
  readonly connectTimeoutMs: number;
  readonly callTimeoutMs: number;
}

/** The closed loop: every client keeps one request in flight (or, with `rate` > 0, starts them at that pace overall). */
export interface MgmtRunRequest {
  readonly type: 'run';
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Requests started per second over all clients; 0: closed loop, as fast as the answers come. */
  readonly rate: number;
  /** Hard cap on requests over the whole run, a bound besides the time. */
  readonly maxRequests: number;
  /** Process group of the daemon: its CPU is read from /proc at the edges of the measured window. */
  readonly serverPgid: number;
}

export interface MgmtCloseRequest {
  readonly type: 'close';
}

export type MgmtRequest = MgmtSetupRequest | MgmtRunRequest | MgmtCloseRequest;

export interface MgmtReady {
  readonly type: 'ready';
  /** Wall time to open every connection (handshakes, hello, auth), ms. */
  readonly connectMs: number;
  readonly connected: Record<MgmtTransport, number>;
}

/** Latency figures of the requests completed inside the measured window, ms. */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface MgmtRunResult {
  readonly type: 'result';
  /** Length of the measured window, ms. */
  readonly windowMs: number;
  /** Verified answers completed inside the window. */
  readonly completed: number;
  /** The load process's own CPU inside the window, µs. */
  readonly generatorCpuUs: number;
  /** The daemon's CPU (utime + stime of its process group) inside the window, µs. */
  readonly serverCpuUs: number;
  readonly all: LatencySummary;
  readonly byTransport: Partial<Record<MgmtTransport, LatencySummary>>;
  readonly byMethod: Partial<Record<MixMethod, LatencySummary>>;
  /** Over the whole run (warm-up, window and drain): verified answers. */
  readonly totalCompleted: number;
  /** Over the whole run: failures by reason (`error:<reason>` for JSON-RPC errors, `connection:<code>`, `bad:<method>:<what>`). */
  readonly errors: Record<string, number>;
  /** Connections opened again after one failed. */
  readonly reconnects: number;
  /** The run hit `maxRequests` and stopped early: its figures are not valid. */
  readonly capped: boolean;
}

export interface MgmtClosed {
  readonly type: 'closed';
}

export interface MgmtFailure {
  readonly type: 'failure';
  readonly message: string;
}

export type MgmtReply = MgmtReady | MgmtRunResult | MgmtClosed | MgmtFailure;
