/** Messages between bench/server.ts and its load generator process (bench/lib/loadgen.ts), over Node's IPC channel. */

export type Operation = 'ntp' | 'nts' | 'ntske';

export interface PhaseRequest {
  readonly type: 'phase';
  readonly op: Operation;
  /** For messages only: "ntptsd" or "chrony". */
  readonly server: string;
  readonly host: string;
  readonly ntpPort: number;
  readonly kePort: number;
  /** PEM of the CA that issued the server certificate; TLS connections verify against it. */
  readonly caPem: string;
  readonly servername: string;
  /** Process group of the server: its CPU is read from /proc at the start and end of the measured window. */
  readonly serverPgid: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** A request (or NTS-KE exchange) not answered within this long counts as a timeout. */
  readonly timeoutMs: number;
  /** UDP sockets (ntp, nts): each NTS one is a separate client with its own NTS-KE session and cookie pool. */
  readonly sockets: number;
  /** Requests outstanding per socket (nts: at most the 8 cookies of a client). */
  readonly window: number;
  /** NTS-KE connections in progress at once. */
  readonly concurrency: number;
  /** NTS: NTS-KE sessions over all sockets, used in turn by each socket's requests (at least `sockets`; absent:
   *  one per socket). More sessions than the server caches per-session state for make every request a miss. */
  readonly ntsSessions?: number;
  /** NTS: fully verify (openNtsResponse) every Nth response; 1 = every response. */
  readonly verifyEvery: number;
  /** Requests (NTS-KE: connections) started per second, paced from the start of the phase; 0 = as fast as the
   *  window or concurrency allows. */
  readonly rate: number;
  /** Hard cap on requests (or NTS-KE connections) over the whole phase, a bound besides the time. */
  readonly maxOperations: number;
}

export interface PhaseResult {
  readonly type: 'result';
  readonly op: Operation;
  readonly server: string;
  /** Valid responses (or complete NTS-KE exchanges) inside the measured window. */
  readonly completed: number;
  /** Length of the measured window, ms. */
  readonly windowMs: number;
  /** Server CPU (utime + stime of its process group) inside the window, µs. */
  readonly serverCpuUs: number;
  /** The generator's own CPU inside the window, µs. */
  readonly generatorCpuUs: number;
  /** Over the whole phase (warm-up, window and drain): invalid responses by reason. */
  readonly errors: Record<string, number>;
  /** Over the whole phase: requests not answered within timeoutMs. */
  readonly timeouts: number;
  /** NTS: responses fully verified (authenticator, unique identifier, new cookie) over the whole phase. */
  readonly verified: number;
  /** Valid responses over the whole phase. */
  readonly totalCompleted: number;
  /** NTS: NTS-KE exchanges run to get cookies (setup and re-keys). */
  readonly keExchanges: number;
  /** Processes counted as the server. */
  readonly serverPids: readonly number[];
  /** The phase hit `maxOperations` and stopped sending early: its figures are not valid. */
  readonly capped: boolean;
}

export interface PhaseFailure {
  readonly type: 'failure';
  readonly op: Operation;
  readonly server: string;
  readonly message: string;
}

export type GeneratorReply = PhaseResult | PhaseFailure;
