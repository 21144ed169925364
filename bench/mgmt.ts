/**
 * `npm run bench -- mgmt [--seconds N] [--warmup S] [--clients N] [--transport mixed|unix|tls] [--json]
 *  [--no-pin] [--mgmt-cpu N] [--mgmt-nice N] [--sockets N] [--window N] [--ntp-rate R] [--mgmt-rate R]
 *  [--call-timeout MS] [--log-level L] [--profile]`
 *
 * What management costs the NTP service, and how fast management answers while NTP is busy (issue
 * "Management and monitoring over TCP"). One ntptsd (tsc build run by plain node, like bench/server.ts), NTP rate
 * limiting off, management on a Unix socket (the peer is admin) and on TLS 1.3 (a monitor token), loopback only.
 * Four phases, each `--warmup` + `--seconds` (default 1 + 5):
 *   A1  NTP load alone: bench/lib/loadgen.ts in its own process, 8 UDP sockets x 8 outstanding, unpaced unless
 *       --ntp-rate;
 *   M   management load alone: --clients (50) clients in their own process (bench/lib/mgmt-load.ts, the
 *       project's MgmtClient), each with one request in flight in a closed loop (or paced overall with
 *       --mgmt-rate), cycling status, stats, clients limit=20, keys; every answer verified. Gives the daemon's
 *       CPU per management answer with nothing else running;
 *   B   both loads at once, started together (the management connections are opened before);
 *   A2  NTP load alone again, so that drift over the run shows (A1 vs A2).
 * Reported: NTP responses/s per phase and B's drop against the mean of A1 and A2 (the project's bar: at most
 * 10 %), management requests/s and latency p50/p90/p99/max in B (all, per transport, per method; M's for
 * comparison), the daemon's CPU (utime+stime of its process group from /proc, as bench/server.ts) and the
 * generators' own. --transport mixed (default) deals the clients alternately to the Unix socket and to TLS.
 *
 * With two or more CPUs ntptsd is pinned to CPU 0 and both generators to CPU 1 (--mgmt-cpu N moves the
 * management generator, --mgmt-nice N lowers its priority; --no-pin: no pinning). On two CPUs the generators
 * share one in phase B, so the management generator's CPU can be taken from the NTP generator's and lower the
 * NTP rate without costing the daemon anything. Hence, besides the measured drop, the drop that the daemon's own
 * management work explains: B's management answers/s x M's daemon CPU per answer, as a share of the daemon's CPU
 * in A (when M is paced, its CPU per answer includes the daemon waking up for each request). The machine's other
 * load is measured per phase (/proc/stat minus the bench's processes) and flagged above 10 % of a CPU: other
 * processes on a two-CPU machine disturb every figure. --profile runs ntptsd under `node --cpu-prof` for the
 * whole run and lists its hottest functions afterwards.
 *
 * Bounds: loopback only; every phase stops by itself after its time, with a request cap besides; the daemon and
 * both generators are this bench's children, signalled by PID only, and die with it.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argReader, fmt3 as fmtMs, fmtInt, listProblems, measurement, pinning, printProfile, profiling, readProfile, table, type Measurement } from './lib/harness.js';
import { IpcChild } from './lib/mgmt-child.js';
import { startMgmtDaemon, type MgmtDaemon } from './lib/mgmt-daemon.js';
import { OtherLoad } from './lib/mgmt-sysload.js';
import {
  MGMT_MIX,
  MIX_LABELS,
  type LatencySummary,
  type MgmtReady,
  type MgmtReply,
  type MgmtRequest,
  type MgmtRunResult,
  type MgmtTarget,
  type MgmtTransport,
} from './lib/mgmt-protocol.js';
import type { GeneratorReply, PhaseRequest, PhaseResult } from './lib/protocol.js';
import { buildForBench, makeCa } from './lib/servers.js';

/** The project's bar: management load may cost the NTP service at most this share of its rate. */
const MAX_NTP_DROP = 0.1;
/** Below this daemon CPU share, the load, not the daemon, limited the rate. */
const SATURATED = 0.9;
/** Above this CPU share taken by other processes in a phase, the figures are flagged as disturbed. */
const BUSY_MACHINE = 0.1;

type TransportChoice = 'mixed' | MgmtTransport;

interface Options {
  seconds: number;
  warmup: number;
  clients: number;
  transport: TransportChoice;
  json: boolean;
  pin: boolean;
  /** CPU of the management generator when pinning; undefined: the NTP generator's. */
  mgmtCpu: number | undefined;
  /** Niceness of the management generator (0: as the bench). */
  mgmtNice: number;
  /** Run ntptsd under `node --cpu-prof` and list its hottest functions. */
  profile: boolean;
  sockets: number;
  window: number;
  ntpRate: number;
  mgmtRate: number;
  callTimeoutMs: number;
  logLevel: string;
}

const OPTIONS = ['seconds', 'warmup', 'clients', 'transport', 'json', 'no-pin', 'mgmt-cpu', 'mgmt-nice', 'sockets', 'window', 'ntp-rate', 'mgmt-rate', 'call-timeout', 'log-level', 'profile'];

function parseArgs(args: string[]): Options {
  const { value, num, choice, flag } = argReader(args, OPTIONS);
  return {
    seconds: num('seconds', 5, 0.5, 20),
    warmup: num('warmup', 1, 0, 5),
    clients: Math.round(num('clients', 50, 1, 200)),
    transport: choice('transport', ['mixed', 'unix', 'tls'] as const, 'mixed'),
    json: flag('json'),
    pin: !flag('no-pin'),
    mgmtCpu: value('mgmt-cpu') === undefined ? undefined : Math.round(num('mgmt-cpu', 1, 0, 1023)),
    mgmtNice: Math.round(num('mgmt-nice', 0, 0, 19)),
    profile: flag('profile'),
    sockets: Math.round(num('sockets', 8, 1, 64)),
    window: Math.round(num('window', 8, 1, 64)),
    ntpRate: num('ntp-rate', 0, 0, 1_000_000),
    mgmtRate: num('mgmt-rate', 0, 0, 100_000),
    callTimeoutMs: Math.round(num('call-timeout', 2000, 100, 10_000)),
    logLevel: choice('log-level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const, 'info'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Figures

/** NTP figures of a phase; in B the daemon's CPU per operation includes its management work. */
type NtpFigures = Measurement<PhaseResult>;
/** Management figures of a phase; the daemon's CPU per answer is meaningful in M, where there is nothing else. */
type MgmtFigures = Measurement<MgmtRunResult>;

type PhaseName = 'A1' | 'M' | 'B' | 'A2';

interface Phase {
  readonly name: PhaseName;
  readonly label: string;
  readonly ntp?: NtpFigures;
  readonly mgmt?: MgmtFigures;
  /** CPU of other processes on the machine over the phase, as a share of one CPU. */
  readonly otherCpuShare: number;
}

/** A change as a signed percentage: `+1.9%`, `-82.5%`. */
const signedPct = (change: number) => (Number.isFinite(change) ? `${change >= 0 ? '+' : '-'}${(Math.abs(change) * 100).toFixed(1)}%` : '-');
const pct = (share: number) => (Number.isFinite(share) ? (share * 100).toFixed(0) : '-');

// ---------------------------------------------------------------------------------------------------------------

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args);
  const log = (text: string) => {
    if (!options.json) console.log(text);
  };
  if (process.platform !== 'linux') throw new Error('bench mgmt reads /proc: Linux only');

  const { cpus, pin } = pinning(options.pin);
  const daemonCpu = pin ? 0 : undefined;
  const ntpGeneratorCpu = pin ? 1 : undefined;
  const mgmtGeneratorCpu = pin ? (options.mgmtCpu ?? 1) : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'ntptsd-bench-mgmt-'));
  const { dir: profileDir, nodeArgs } = profiling(options.profile);
  const started = Date.now();
  let daemon: MgmtDaemon | undefined;
  let ntpGen: IpcChild<PhaseRequest, GeneratorReply> | undefined;
  let mgmtGen: IpcChild<MgmtRequest, MgmtReply> | undefined;
  const phases = new Map<PhaseName, Phase>();
  let ready: MgmtReady | undefined;
  const notes: string[] = [];
  try {
    const ca = makeCa(dir);
    const build = buildForBench(join(dir, 'build'));
    mkdirSync(join(dir, 'ntptsd'));
    daemon = await startMgmtDaemon({
      dir: join(dir, 'ntptsd'),
      build,
      ca,
      logLevel: options.logLevel,
      ...(daemonCpu !== undefined ? { cpu: daemonCpu } : {}),
      ...nodeArgs,
    });
    const d = daemon;

    const transports: MgmtTransport[] = options.transport === 'mixed' ? ['unix', 'tls'] : [options.transport];
    const targets: MgmtTarget[] = transports.map((t) =>
      t === 'unix'
        ? { transport: 'unix', socket: d.socketPath, expectRole: 'admin' }
        : { transport: 'tls', host: d.tls.host, port: d.tls.port, caPem: ca.caPem, servername: 'localhost', token: d.token, expectRole: 'monitor' },
    );
    const perTransport = (t: MgmtTransport) => {
      const i = transports.indexOf(t);
      return i < 0 ? 0 : Math.floor(options.clients / transports.length) + (i < options.clients % transports.length ? 1 : 0);
    };
    const split = [
      perTransport('unix') > 0 ? `${perTransport('unix')} on the Unix socket (admin)` : '',
      perTransport('tls') > 0 ? `${perTransport('tls')} on TLS 1.3 with a monitor token` : '',
    ].filter((s) => s !== '');

    log(
      `mgmt bench: ${d.version}; ${options.seconds} s per phase after ${options.warmup} s warm-up; ${cpus} CPUs, ` +
        (pin
          ? `ntptsd pinned to CPU ${daemonCpu}, ${mgmtGeneratorCpu === ntpGeneratorCpu ? `both load generators to CPU ${ntpGeneratorCpu}` : `NTP generator to CPU ${ntpGeneratorCpu}, management generator to CPU ${mgmtGeneratorCpu}`}`
          : 'no pinning'),
    );
    log(
      `load: NTP ${options.sockets} sockets x ${options.window} outstanding, ${options.ntpRate > 0 ? `paced at ${fmtInt(options.ntpRate)}/s` : 'unpaced'}, rate limiting off; ` +
        `management ${options.clients} clients (${split.join(', ')}), one request in flight each, ` +
        `${options.mgmtRate > 0 ? `paced at ${fmtInt(options.mgmtRate)}/s overall` : 'closed loop'}, mix ${MGMT_MIX.map((m) => MIX_LABELS[m]).join(' / ')}`,
    );

    const phaseMs = (options.warmup + options.seconds) * 1000;
    const ntpRequest: PhaseRequest = {
      type: 'phase',
      op: 'ntp',
      server: 'ntptsd',
      host: '127.0.0.1',
      ntpPort: d.ntpPort,
      kePort: 0, // unused by the NTP load
      caPem: ca.caPem,
      servername: 'localhost',
      serverPgid: d.pid,
      warmupMs: options.warmup * 1000,
      measureMs: options.seconds * 1000,
      timeoutMs: 500,
      sockets: options.sockets,
      window: options.window,
      concurrency: 1,
      verifyEvery: 1,
      rate: options.ntpRate,
      // Far above what one generator CPU can do in the phase's time: a count bound besides the time bound.
      maxOperations: Math.ceil((options.warmup + options.seconds) * 1_000_000),
    };
    const ntpPhase = async (): Promise<NtpFigures> => {
      const reply = await (ntpGen as IpcChild<PhaseRequest, GeneratorReply>).request(ntpRequest, phaseMs + 30_000);
      if (reply.type === 'failure') throw new Error(`NTP load failed: ${reply.message}`);
      if (reply.capped) throw new Error(`NTP load hit its cap of ${ntpRequest.maxOperations} requests before the phase ended`);
      return measurement(reply);
    };
    const mgmtPhase = async (): Promise<MgmtFigures> => {
      const reply = await (mgmtGen as IpcChild<MgmtRequest, MgmtReply>).request(
        {
          type: 'run',
          warmupMs: options.warmup * 1000,
          measureMs: options.seconds * 1000,
          rate: options.mgmtRate,
          // Far above what the daemon can answer in the phase's time: a count bound besides the time bound.
          maxRequests: Math.ceil((options.warmup + options.seconds) * 200_000),
          serverPgid: d.pid,
        },
        phaseMs + options.callTimeoutMs + 30_000,
      );
      if (reply.type !== 'result') throw new Error(`management load failed: ${reply.type === 'failure' ? reply.message : reply.type}`);
      if (reply.capped) throw new Error('management load hit its request cap before the phase ended');
      return measurement(reply);
    };
    /** Runs a phase, measuring what other processes on the machine took meanwhile. */
    const phase = async (name: PhaseName, label: string, work: () => Promise<Pick<Phase, 'ntp' | 'mgmt'>>): Promise<void> => {
      const pids = [d.pid, ntpGen?.pid, mgmtGen?.pid].filter((pid): pid is number => pid !== undefined);
      const other = new OtherLoad(pids);
      const figures = await work();
      record({ name, label, ...figures, otherCpuShare: other.share() });
    };
    const record = (p: Phase) => {
      phases.set(p.name, p);
      if (options.json) return;
      const parts = [
        p.ntp ? `NTP ${fmtInt(p.ntp.opsPerSecond)}/s` : '',
        p.mgmt ? `management ${fmtInt(p.mgmt.opsPerSecond)}/s (p50 ${fmtMs(p.mgmt.result.all.p50)} ms, p99 ${fmtMs(p.mgmt.result.all.p99)} ms)` : '',
        `ntptsd CPU ${pct((p.ntp ?? p.mgmt)?.serverCpuShare ?? Number.NaN)}%`,
        `other processes ${pct(p.otherCpuShare)}% of a CPU`,
      ];
      console.log(`  ${p.name} ${p.label}: ${parts.filter((s) => s !== '').join(', ')}`);
    };

    ntpGen = new IpcChild<PhaseRequest, GeneratorReply>('NTP load generator', join(build, 'bench', 'lib', 'loadgen.js'), ntpGeneratorCpu);
    await phase('A1', 'NTP alone', async () => ({ ntp: await ntpPhase() }));

    // The management process starts (and opens its connections: handshakes, hello, auth) between phases, so
    // that neither its start-up nor its idle connections touch A1 or A2.
    mgmtGen = new IpcChild<MgmtRequest, MgmtReply>('management load', join(build, 'bench', 'lib', 'mgmt-load.js'), mgmtGeneratorCpu, options.mgmtNice);
    const setupReply = await mgmtGen.request({ type: 'setup', clients: options.clients, targets, connectTimeoutMs: 5000, callTimeoutMs: options.callTimeoutMs }, 30_000);
    if (setupReply.type !== 'ready') throw new Error(`management setup failed: ${setupReply.type === 'failure' ? setupReply.message : setupReply.type}`);
    ready = setupReply;
    await phase('M', 'management alone', async () => ({ mgmt: await mgmtPhase() }));

    // Both loads start together, so their warm-ups and windows line up (within a few ms).
    await phase('B', 'NTP + management', async () => {
      const [ntp, mgmt] = await Promise.all([ntpPhase(), mgmtPhase()]);
      return { ntp, mgmt };
    });
    const closed = await mgmtGen.request({ type: 'close' }, 10_000);
    if (closed.type !== 'closed') notes.push(`closing the management connections: ${closed.type === 'failure' ? closed.message : closed.type}`);
    await mgmtGen.close();

    await phase('A2', 'NTP alone again', async () => ({ ntp: await ntpPhase() }));
  } finally {
    await mgmtGen?.close();
    await ntpGen?.close();
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const profile = readProfile(profileDir, notes);

  const a1 = phases.get('A1')?.ntp as NtpFigures;
  const a2 = phases.get('A2')?.ntp as NtpFigures;
  const m = phases.get('M')?.mgmt as MgmtFigures;
  const b = phases.get('B') as Phase & { ntp: NtpFigures; mgmt: MgmtFigures };
  const baseline = (a1.opsPerSecond + a2.opsPerSecond) / 2;
  const drop = 1 - b.ntp.opsPerSecond / baseline;
  const spread = Math.abs(a1.opsPerSecond - a2.opsPerSecond) / baseline;
  const within = drop <= MAX_NTP_DROP;
  // The daemon's own management work in B, at M's CPU per answer, as a share of the daemon's CPU with NTP alone.
  const daemonShareA = (a1.serverCpuShare + a2.serverCpuShare) / 2;
  const mgmtShareB = (b.mgmt.opsPerSecond * m.cpuUsPerOp) / 1e6;
  const explainedDrop = mgmtShareB / daemonShareA;
  const ntpCpuUs = (a1.cpuUsPerOp + a2.cpuUsPerOp) / 2;
  const busiest = Math.max(...[...phases.values()].map((p) => p.otherCpuShare));
  const limited = [...phases.values()].filter((p) => (p.ntp ?? p.mgmt)!.serverCpuShare < SATURATED).map((p) => p.name);
  if (limited.length > 0) {
    notes.push(
      `ntptsd under ${SATURATED * 100}% CPU in ${limited.join(', ')}: there ${[options.ntpRate > 0 ? 'the NTP pace' : '', options.mgmtRate > 0 ? 'the management pace' : '', 'the generators', busiest > BUSY_MACHINE ? 'other processes' : ''].filter((s) => s !== '').join(', ')}, not the daemon's own CPU, set the rate`,
    );
  }
  if (busiest > BUSY_MACHINE) {
    notes.push(`other processes took up to ${pct(busiest)}% of a CPU during a phase (column "other CPU %"): the machine was not quiet, so the figures are disturbed; rerun when it is`);
  }
  if (spread > 0.05) notes.push(`A1 and A2 differ by ${(spread * 100).toFixed(1)}%: the machine was not steady; drops of that size are noise`);
  if (Number.isFinite(explainedDrop) && drop - explainedDrop > Math.max(0.05, spread)) {
    const sharedCpu = pin && mgmtGeneratorCpu === ntpGeneratorCpu;
    const generatorsB = b.ntp.generatorCpuShare + b.mgmt.generatorCpuShare;
    const elsewhere =
      sharedCpu && generatorsB >= SATURATED
        ? `the two generators filled CPU ${ntpGeneratorCpu} in B (NTP ${pct(b.ntp.generatorCpuShare)}% + management ${pct(b.mgmt.generatorCpuShare)}%; the NTP generator had ${pct(a1.generatorCpuShare)}% in A1), so the NTP load itself slowed down`
        : `the daemon spending more per operation when the two loads interleave (B: ${pct(b.ntp.serverCpuShare)}% CPU for ${fmtInt(b.ntp.opsPerSecond)} NTP responses/s and ${fmtInt(b.mgmt.opsPerSecond)} answers/s, ` +
          `where A's and M's costs make ${pct((b.ntp.opsPerSecond * ntpCpuUs) / 1e6 + mgmtShareB)}%)${sharedCpu ? `, or the two generators sharing CPU ${ntpGeneratorCpu}` : ''}`;
    notes.push(
      `the daemon's own management work explains a drop of about ${(explainedDrop * 100).toFixed(1)}% (B's ${fmtInt(b.mgmt.opsPerSecond)} answers/s x M's ${fmtMs(m.cpuUsPerOp)} µs); ` +
        `the rest of the ${(drop * 100).toFixed(1)}% is likely ${elsewhere}`,
    );
  }
  const elapsed = (Date.now() - started) / 1000;

  if (options.json) {
    // Per-operation CPU only where one load ran alone: in B the daemon's CPU is both loads'.
    const ntpSide = (f: NtpFigures | undefined, alone: boolean) =>
      f === undefined
        ? null
        : {
            responsesPerSecond: f.opsPerSecond,
            daemonCpuShare: f.serverCpuShare,
            daemonSaturated: f.serverCpuShare >= SATURATED,
            daemonCpuUsPerResponse: alone ? f.cpuUsPerOp : null,
            generatorCpuShare: f.generatorCpuShare,
            completed: f.result.completed,
            windowMs: f.result.windowMs,
            daemonCpuUs: f.result.serverCpuUs,
            totalCompleted: f.result.totalCompleted,
            errors: f.result.errors,
            timeouts: f.result.timeouts,
          };
    const mgmtSide = (f: MgmtFigures | undefined, alone: boolean) =>
      f === undefined
        ? null
        : {
            requestsPerSecond: f.opsPerSecond,
            daemonCpuShare: f.serverCpuShare,
            daemonCpuUsPerAnswer: alone ? f.cpuUsPerOp : null,
            generatorCpuShare: f.generatorCpuShare,
            completed: f.result.completed,
            windowMs: f.result.windowMs,
            daemonCpuUs: f.result.serverCpuUs,
            latencyMs: { all: f.result.all, byTransport: f.result.byTransport, byMethod: f.result.byMethod },
            totalCompleted: f.result.totalCompleted,
            errors: f.result.errors,
            reconnects: f.result.reconnects,
          };
    const nullIfNaN = (n: number) => (Number.isFinite(n) ? n : null);
    console.log(
      JSON.stringify(
        {
          node: process.version,
          version: daemon?.version ?? null,
          options,
          cpus,
          pinned: pin,
          elapsedSeconds: elapsed,
          connections: ready === undefined ? null : { connected: ready.connected, connectMs: ready.connectMs },
          phases: [...phases.values()].map((p) => ({ phase: p.name, label: p.label, ntp: ntpSide(p.ntp, p.mgmt === undefined), mgmt: mgmtSide(p.mgmt, p.ntp === undefined), otherCpuShare: p.otherCpuShare })),
          ntpBaselinePerSecond: baseline,
          baselineSpread: spread,
          ntpDrop: drop,
          maxNtpDrop: MAX_NTP_DROP,
          withinBar: within,
          daemonCpuUsPerNtpResponse: nullIfNaN(ntpCpuUs),
          daemonCpuUsPerMgmtAnswer: nullIfNaN(m.cpuUsPerOp),
          ntpDropExplainedByDaemonMgmtWork: nullIfNaN(explainedDrop),
          notes,
          ...(profile !== undefined ? { profile } : {}),
        },
        (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
        2,
      ),
    );
    return;
  }

  const rows = [...phases.values()].map((p) => [
    `${p.name} ${p.label}`,
    p.ntp ? fmtInt(p.ntp.opsPerSecond) : '-',
    p.ntp ? signedPct(p.ntp.opsPerSecond / baseline - 1) : '-',
    p.mgmt ? fmtInt(p.mgmt.opsPerSecond) : '-',
    (() => {
      const share = (p.ntp ?? p.mgmt)!.serverCpuShare;
      return `${pct(share)}${share < SATURATED ? '*' : ''}`;
    })(),
    p.ntp ? pct(p.ntp.generatorCpuShare) : '-',
    p.mgmt ? pct(p.mgmt.generatorCpuShare) : '-',
    `${pct(p.otherCpuShare)}${p.otherCpuShare > BUSY_MACHINE ? '!' : ''}`,
  ]);
  console.log('');
  console.log(table(['phase', 'NTP responses/s', 'vs NTP alone', 'mgmt answers/s', 'ntptsd CPU %', 'NTP gen CPU %', 'mgmt gen CPU %', 'other CPU %'], rows));
  console.log('');
  const windowS = b.mgmt.result.windowMs / 1000;
  console.log(`management latency under NTP load (phase B, answers completed in its ${windowS.toFixed(1)} s window), ms:`);
  const row = (label: string, s: LatencySummary | undefined): string[] =>
    s === undefined ? [label, '-', '-', '-', '-', '-', '-', '-'] : [label, fmtInt(s.count), fmtInt(s.count / windowS), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.max), fmtMs(s.mean)];
  const body = [row('all', b.mgmt.result.all)];
  if (options.transport === 'mixed') {
    body.push(row('  Unix socket (admin)', b.mgmt.result.byTransport.unix));
    body.push(row('  TLS 1.3 (monitor token)', b.mgmt.result.byTransport.tls));
  }
  for (const method of MGMT_MIX) body.push(row(`  ${MIX_LABELS[method]}`, b.mgmt.result.byMethod[method]));
  console.log(table(['requests', 'answers', 'per s', 'p50', 'p90', 'p99', 'max', 'mean'], body));
  const alone = m.result.all;
  console.log(
    `management alone (phase M): ${fmtInt(m.opsPerSecond)} answers/s, p50 ${fmtMs(alone.p50)} ms, p90 ${fmtMs(alone.p90)} ms, p99 ${fmtMs(alone.p99)} ms, max ${fmtMs(alone.max)} ms; ` +
      `ntptsd CPU per answer ${fmtMs(m.cpuUsPerOp)} µs (per NTP response in A: ${fmtMs(ntpCpuUs)} µs)`,
  );
  console.log('');
  console.log(
    `NTP rate with management load: ${signedPct(-drop)} against NTP alone (${fmtInt(baseline)}/s, mean of A1 and A2; A1/A2 spread ${(spread * 100).toFixed(1)}%); ` +
      `bar: at most -${MAX_NTP_DROP * 100}% → ${within ? 'ok' : 'OVER THE BAR'}`,
  );
  if (Number.isFinite(explainedDrop)) {
    console.log(
      `of which the daemon's own management work explains ≈ ${(explainedDrop * 100).toFixed(1)}% (${fmtInt(b.mgmt.opsPerSecond)} answers/s x ${fmtMs(m.cpuUsPerOp)} µs = ` +
        `${(mgmtShareB * 100).toFixed(1)}% of a CPU, against ntptsd's ${pct(daemonShareA)}% with NTP alone)`,
    );
  }
  console.log('checks (whole phases: warm-up, window, drain):');
  for (const p of phases.values()) {
    if (p.ntp) {
      const r = p.ntp.result;
      console.log(`  ${p.name} NTP: ${fmtInt(r.totalCompleted)} valid responses; problems: ${listProblems(r.errors, r.timeouts > 0 ? [`timeouts=${r.timeouts}`] : [])}`);
    }
    if (p.mgmt) {
      const r = p.mgmt.result;
      console.log(`  ${p.name} management: ${fmtInt(r.totalCompleted)} verified answers; problems: ${listProblems(r.errors, r.reconnects > 0 ? [`reconnects=${r.reconnects}`] : [])}`);
    }
  }
  if (ready !== undefined) {
    const opened = [ready.connected.unix > 0 ? `${ready.connected.unix} Unix socket (admin by peer)` : '', ready.connected.tls > 0 ? `${ready.connected.tls} TLS (monitor by token)` : ''];
    console.log(`  management connections: ${opened.filter((o) => o !== '').join(', ')}, all opened and roles checked in ${fmtInt(ready.connectMs)} ms`);
  }
  console.log(
    `CPU = utime+stime from /proc (ntptsd: its process group; generators: their own), in % of one CPU; other = the machine's busy time (/proc/stat) minus the bench's; ` +
      `${pin ? 'pinned' : 'unpinned'}; whole run ${elapsed.toFixed(1)} s`,
  );
  if (limited.length > 0) console.log(`*: ntptsd under ${SATURATED * 100}% CPU: something else than its own CPU set the rate (see the notes)`);
  if (busiest > BUSY_MACHINE) console.log(`!: other processes took more than ${BUSY_MACHINE * 100}% of a CPU`);
  for (const note of notes) console.log(`note: ${note}`);
  if (profile !== undefined) printProfile(profile, 'busy over all phases');
}
