/**
 * `npm run bench -- server [--seconds N] [--warmup S] [--rounds N] [--ops ntp,nts,ntske] [--json] [--no-pin]
 *  [--no-chrony] [--sockets N] [--window N] [--concurrency N] [--verify-every N] [--rate ntp=R,nts=R,ntske=R]
 *  [--nts-sessions N] [--profile] [--no-floor]`
 *
 * Server-side cost of ntptsd against chronyd, measured in the same run with the same load generator:
 *   ntp    plain NTP requests/s (48-byte client packets, several outstanding on each of a few UDP sockets);
 *   nts    NTS-protected NTP requests/s (cookies from one NTS-KE per client; each request spends one cookie and
 *          gets one back; responses verified with openNtsResponse, every one by default; --nts-sessions N spreads
 *          the requests round robin over N NTS-KE sessions instead of one per socket (ntptsd keeps no
 *          per-session state, so this checks that many distinct sessions cost what one does);
 *   ntske  NTS-KE exchanges/s (full TLS 1.3 handshakes, ALPN ntske/1, a few at once, certificate verified).
 * For each, the rate and the server's CPU time per operation: utime + stime from /proc of the server's whole
 * process group (chronyd's NTS-KE helper included) over the measured window, taken by the generator, which runs
 * in its own process. Both servers get the same certificate (ECDSA P-256), no rate limiting, loopback only.
 * With two or more CPUs the servers are pinned to CPU 0 and the generator to CPU 1 (--no-pin: no pinning).
 * --rounds N runs every phase N times, alternating servers, and reports each server's median round (by CPU/op).
 * --rate paces an operation at R requests (NTS-KE: connections) per second instead of "as fast as possible", so
 * both servers see the same offered load (see below).
 *
 * Reading the figures: CPU µs/op is the number that matters. Unpaced, the generator (one CPU, and Node) cannot
 * saturate chronyd, so ops/s is a lower bound for any server under 90% CPU (flagged with *). A server's CPU/op
 * also depends on its load: saturated, it handles several requests per wake-up (ntptsd usually is, chronyd is
 * not, which flatters ntptsd); with --rate both see the same offered load.
 *
 * chronyd comes from .peers/root (scripts/install-peers.sh) or the system and always runs with -x and without
 * CAP_SYS_TIME. ntptsd runs as shipped: src/ compiled by tsc (into a temp dir) and run by plain node, like
 * bin/ntptsd.js (tsx's on-the-fly transform is measurably slower); the generator too. Without chronyd, only
 * ntptsd is measured. --profile runs ntptsd under `node --cpu-prof` and lists its hottest functions afterwards
 * (use it with --ops to profile one operation).
 *
 * After NTS-KE, the same load runs against a bare node:tls server (lib/tls-floor.ts: same certificate and TLS
 * settings, the exporter, one canned response): what any NTS-KE server on node:tls costs at least, the reason
 * ntptsd's NTS-KE listeners run TLS on OpenSSL directly (native/tls_listener.c); --no-floor skips it.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argReader, fmt3 as fmtUs, fmtInt, listProblems, measurement, pinning, printProfile, profiling, readProfile, table, type Measurement as Figures } from './lib/harness.js';
import { IpcChild } from './lib/mgmt-child.js';
import type { GeneratorReply, Operation, PhaseRequest, PhaseResult } from './lib/protocol.js';
import { buildForBench, findChronyd, makeCa, startChronyd, startNtptsd, startTlsFloor, type RunningServer } from './lib/servers.js';

const OPERATIONS: Record<Operation, string> = {
  ntp: 'plain NTP requests',
  nts: 'NTS NTP requests',
  ntske: 'NTS-KE handshakes',
};
/** The project's target: ntptsd's CPU per operation at most this many times chrony's. */
const TARGET_RATIO = 2;

interface Options {
  seconds: number;
  warmup: number;
  rounds: number;
  ops: Operation[];
  json: boolean;
  pin: boolean;
  chrony: boolean;
  sockets: number;
  window: number;
  concurrency: number;
  verifyEvery: number;
  /** NTS-KE sessions the NTS load spreads its requests over (at least one per socket). */
  ntsSessions: number;
  /** Paced rate per operation; 0 = unpaced. */
  rate: Record<Operation, number>;
  profile: boolean;
  /** Measure the NTS-KE floor (a bare node:tls server) after NTS-KE; --no-floor skips it. */
  floor: boolean;
}

function parseArgs(args: string[]): Options {
  const { value, num, flag } = argReader(args);
  const ops = (value('ops') ?? 'ntp,nts,ntske').split(',').map((s) => s.trim()) as Operation[];
  for (const op of ops) if (!(op in OPERATIONS)) throw new Error(`--ops: unknown operation "${op}" (known: ${Object.keys(OPERATIONS).join(', ')})`);
  const rate: Record<Operation, number> = { ntp: 0, nts: 0, ntske: 0 };
  for (const part of (value('rate') ?? '').split(',').filter((p) => p !== '')) {
    const [op, r] = part.split('=');
    const n = Number(r);
    if (op === undefined || !(op in OPERATIONS) || !Number.isFinite(n) || n < 0 || n > 1_000_000) {
      throw new Error(`--rate: expected OP=RATE[,OP=RATE] with OP one of ${Object.keys(OPERATIONS).join(', ')}, got "${part}"`);
    }
    rate[op as Operation] = n;
  }
  const sockets = Math.round(num('sockets', 8, 1, 64));
  const sessions = value('nts-sessions');
  const ntsSessions = sessions === undefined ? sockets : Number(sessions);
  if (!Number.isInteger(ntsSessions) || ntsSessions < sockets || ntsSessions > 20_000) {
    throw new Error(`--nts-sessions must be an integer from --sockets (${sockets}) to 20000, got ${sessions}`);
  }
  return {
    seconds: num('seconds', 3, 0.2, 20),
    warmup: num('warmup', 1, 0, 10),
    rounds: Math.round(num('rounds', 1, 1, 9)),
    ops,
    json: flag('json'),
    pin: !flag('no-pin'),
    chrony: !flag('no-chrony'),
    sockets,
    window: Math.round(num('window', 8, 1, 64)),
    concurrency: Math.round(num('concurrency', 8, 1, 64)),
    verifyEvery: Math.round(num('verify-every', 1, 1, 1_000_000)),
    ntsSessions,
    rate,
    profile: flag('profile'),
    floor: !flag('no-floor'),
  };
}

/** The generator process: one for the whole run, driven over IPC. */
type Generator = IpcChild<PhaseRequest, GeneratorReply>;

type Measurement = Figures<PhaseResult>;

type Outcome = Measurement | { error: string };

interface Row {
  readonly op: Operation;
  /** The median round (by CPU/op), or the first failure. */
  readonly ntptsd: Outcome;
  readonly chrony: Outcome | undefined;
  readonly cpuRatio: number | undefined;
  readonly rounds: { ntptsd: Outcome[]; chrony: Outcome[] };
  /** NTS-KE only: the bare node:tls server's median round (tls-floor.ts), what the runtime alone costs. */
  readonly floor?: Outcome | undefined;
}

/** Below this server CPU share the generator, not the server, limited the rate. */
const SATURATED = 0.9;

function median(outcomes: Outcome[]): Outcome | undefined {
  const failed = outcomes.find((o) => 'error' in o);
  if (failed !== undefined) return failed;
  const sorted = [...(outcomes as Measurement[])].sort((a, b) => a.cpuUsPerOp - b.cpuUsPerOp);
  return sorted[(sorted.length - 1) >> 1];
}

const isMeasurement = (m: Measurement | { error: string } | undefined): m is Measurement => m !== undefined && !('error' in m);

function problems(m: Measurement): string {
  return listProblems(m.result.errors, m.result.timeouts > 0 ? [`timeouts=${m.result.timeouts}`] : []);
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args);
  const log = (text: string) => {
    if (!options.json) console.log(text);
  };
  if (process.platform !== 'linux') throw new Error('bench server reads /proc: Linux only');

  const { cpus, pin } = pinning(options.pin);
  const serverCpu = pin ? 0 : undefined;
  const generatorCpu = pin ? 1 : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'ntptsd-bench-server-'));
  const { dir: profileDir, nodeArgs } = profiling(options.profile);
  const servers: RunningServer[] = [];
  let generator: Generator | undefined;
  const notes: string[] = [];
  const rows: Row[] = [];
  try {
    const ca = makeCa(dir);
    const build = buildForBench(join(dir, 'build'));
    mkdirSync(join(dir, 'ntptsd'));
    const ntptsd = await startNtptsd({
      dir: join(dir, 'ntptsd'),
      build,
      ca,
      ...(serverCpu !== undefined ? { cpu: serverCpu } : {}),
      ...nodeArgs,
    });
    servers.push(ntptsd);

    let chrony: RunningServer | undefined;
    const chronyd = options.chrony ? findChronyd() : undefined;
    if (!options.chrony) notes.push('chrony: skipped (--no-chrony)');
    else if (chronyd === undefined) notes.push('chrony: chronyd not found (run scripts/install-peers.sh); measuring ntptsd alone');
    else if (process.getuid?.() !== 0) notes.push('chrony: needs root (chronyd -u root, setpriv); measuring ntptsd alone');
    else {
      mkdirSync(join(dir, 'chrony'));
      try {
        chrony = await startChronyd({ dir: join(dir, 'chrony'), ca, chronyd, ...(serverCpu !== undefined ? { cpu: serverCpu } : {}) });
        servers.push(chrony);
      } catch (error) {
        notes.push(`chrony: failed to start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      }
    }

    log(
      `server bench: ${ntptsd.version}${chrony ? ` vs ${chrony.version}` : ''}; ${options.seconds} s per phase after ${options.warmup} s warm-up; ` +
        `${cpus} CPUs, ${pin ? `servers pinned to CPU ${serverCpu}, generator to CPU ${generatorCpu}` : 'no pinning'}`,
    );
    log(
      `load: ntp/nts ${options.sockets} sockets x ${options.window} outstanding (nts: at most 8, ` +
        `${options.ntsSessions === options.sockets ? 'one client and cookie pool per socket' : `${options.ntsSessions} NTS-KE sessions used round robin`}, ` +
        `verify ${options.verifyEvery === 1 ? 'every response' : `every ${options.verifyEvery}th response`}); ntske ${options.concurrency} connections at once`,
    );
    const paced = options.ops.filter((op) => options.rate[op] > 0);
    if (paced.length > 0) log(`paced: ${paced.map((op) => `${op} ${fmtInt(options.rate[op])}/s`).join(', ')} (same offered load for both servers)`);

    generator = new IpcChild<PhaseRequest, GeneratorReply>('load generator', join(build, 'bench', 'lib', 'loadgen.js'), generatorCpu);
    const phase = async (op: Operation, server: RunningServer): Promise<Measurement | { error: string }> => {
      const request: PhaseRequest = {
        type: 'phase',
        op,
        server: server.name,
        host: '127.0.0.1',
        ntpPort: server.ntpPort,
        kePort: server.kePort,
        caPem: ca.caPem,
        servername: 'localhost',
        serverPgid: server.pid,
        warmupMs: options.warmup * 1000,
        measureMs: options.seconds * 1000,
        timeoutMs: op === 'ntske' ? 5000 : 500,
        sockets: options.sockets,
        window: options.window,
        concurrency: options.concurrency,
        verifyEvery: options.verifyEvery,
        ntsSessions: options.ntsSessions,
        rate: options.rate[op],
        // Far above what one generator CPU can do in the phase's time: a count bound besides the time bound.
        // (NTS setup with many sessions happens before the phase's clock starts and is bounded by ntsSessions.)
        maxOperations: Math.ceil((options.warmup + options.seconds) * (op === 'ntske' ? 20_000 : 1_000_000)),
      };
      const reply = await (generator as Generator).request(request, (options.warmup + options.seconds) * 1000 + 60_000);
      if (reply.type === 'failure') return { error: reply.message };
      if (reply.capped) return { error: `hit the cap of ${request.maxOperations} operations before the phase ended` };
      const m = measurement(reply);
      if (!options.json) {
        process.stdout.write(
          `  ${OPERATIONS[op]} on ${server.name}: ${fmtInt(m.opsPerSecond)}/s, ${fmtUs(m.cpuUsPerOp)} µs CPU/op, ` +
            `server CPU ${(m.serverCpuShare * 100).toFixed(0)}%${m.serverCpuShare < SATURATED ? ' (not saturated)' : ''}, ` +
            `generator CPU ${(m.generatorCpuShare * 100).toFixed(0)}%, problems: ${problems(m)}\n`,
        );
      }
      return m;
    };

    for (const op of options.ops) {
      const rounds: Row['rounds'] = { ntptsd: [], chrony: [] };
      for (let round = 0; round < options.rounds; round++) {
        // Alternate who goes first, so that neither always runs right after the other's load.
        const order = round % 2 === 0 ? [ntptsd, chrony] : [chrony, ntptsd];
        for (const server of order) if (server !== undefined) rounds[server === ntptsd ? 'ntptsd' : 'chrony'].push(await phase(op, server));
      }
      const a = median(rounds.ntptsd) as Outcome;
      const b = median(rounds.chrony);
      const cpuRatio = isMeasurement(a) && isMeasurement(b) ? a.cpuUsPerOp / b.cpuUsPerOp : undefined;
      let floor: Outcome | undefined;
      if (op === 'ntske' && options.floor) {
        // The same exchange on a bare node:tls server: the part of NTS-KE's cost that is Node's and OpenSSL's.
        const reference = await startTlsFloor({ build, ca, ...(serverCpu !== undefined ? { cpu: serverCpu } : {}) });
        try {
          const floorRounds: Outcome[] = [];
          for (let round = 0; round < options.rounds; round++) floorRounds.push(await phase(op, reference));
          floor = median(floorRounds);
        } finally {
          await reference.stop();
        }
      }
      rows.push({ op, ntptsd: a, chrony: b, cpuRatio, rounds, floor });
    }
  } finally {
    await generator?.close();
    for (const server of servers.reverse()) await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const profile = readProfile(profileDir, notes);

  if (options.json) {
    const side = (m: Outcome | undefined) =>
      m === undefined
        ? null
        : 'error' in m
          ? m
          : {
              opsPerSecond: m.opsPerSecond,
              cpuUsPerOp: m.cpuUsPerOp,
              serverCpuShare: m.serverCpuShare,
              saturated: m.serverCpuShare >= SATURATED,
              generatorCpuShare: m.generatorCpuShare,
              completed: m.result.completed,
              windowMs: m.result.windowMs,
              serverCpuUs: m.result.serverCpuUs,
              totalCompleted: m.result.totalCompleted,
              verified: m.result.verified,
              errors: m.result.errors,
              timeouts: m.result.timeouts,
              keExchanges: m.result.keExchanges,
              serverPids: m.result.serverPids,
            };
    console.log(
      JSON.stringify(
        {
          node: process.version,
          versions: Object.fromEntries(servers.map((s) => [s.name, s.version])),
          options,
          pinned: pin,
          targetRatio: TARGET_RATIO,
          results: rows.map((r) => ({
            op: r.op,
            operation: OPERATIONS[r.op],
            ntptsd: side(r.ntptsd),
            chrony: side(r.chrony),
            cpuRatio: r.cpuRatio ?? null,
            withinTarget: r.cpuRatio === undefined ? null : r.cpuRatio <= TARGET_RATIO,
            rounds: { ntptsd: r.rounds.ntptsd.map(side), chrony: r.rounds.chrony.map(side) },
            ...(r.floor !== undefined ? { nodeTlsFloor: side(r.floor) } : {}),
          })),
          notes,
          ...(profile !== undefined ? { profile } : {}),
        },
        null,
        2,
      ),
    );
    return;
  }

  const cell = (m: Outcome | undefined, f: (m: Measurement) => string) => (m === undefined ? '-' : 'error' in m ? 'failed' : f(m));
  const cpuShare = (m: Measurement) => `${(m.serverCpuShare * 100).toFixed(0)}${m.serverCpuShare < SATURATED ? '*' : ''}`;
  console.log('');
  console.log(
    table(
      ['operation', 'ntptsd ops/s', 'chrony ops/s', 'ntptsd CPU µs/op', 'chrony CPU µs/op', 'CPU ratio (ntptsd/chrony)', 'server CPU % (ntptsd/chrony)'],
      rows.map((r) => [
        OPERATIONS[r.op],
        cell(r.ntptsd, (m) => fmtInt(m.opsPerSecond)),
        cell(r.chrony, (m) => fmtInt(m.opsPerSecond)),
        cell(r.ntptsd, (m) => fmtUs(m.cpuUsPerOp)),
        cell(r.chrony, (m) => fmtUs(m.cpuUsPerOp)),
        r.cpuRatio === undefined ? '-' : `${r.cpuRatio.toFixed(2)}x ${r.cpuRatio <= TARGET_RATIO ? '(ok)' : `(over ${TARGET_RATIO}x)`}`,
        `${cell(r.ntptsd, cpuShare)} / ${cell(r.chrony, cpuShare)}`,
      ]),
    ),
  );
  console.log('');
  console.log(`checks (whole phase: warm-up, window, drain${options.rounds > 1 ? '; all rounds summed' : ''}):`);
  for (const r of rows) {
    for (const name of ['ntptsd', 'chrony'] as const) {
      const outcomes = r.rounds[name];
      if (outcomes.length === 0) continue;
      for (const o of outcomes) if ('error' in o) console.log(`  ${OPERATIONS[r.op]} / ${name}: FAILED: ${o.error}`);
      const ok = outcomes.filter(isMeasurement);
      if (ok.length === 0) continue;
      const sum = (f: (m: Measurement) => number) => ok.reduce((acc, m) => acc + f(m), 0);
      const errors: Record<string, number> = {};
      for (const m of ok) for (const [k, v] of Object.entries(m.result.errors)) errors[k] = (errors[k] ?? 0) + v;
      const timeouts = sum((m) => m.result.timeouts);
      const extra = r.op === 'nts' ? `, ${fmtInt(sum((m) => m.result.verified))} fully verified, ${sum((m) => m.result.keExchanges)} NTS-KE for cookies` : '';
      console.log(`  ${OPERATIONS[r.op]} / ${name}: ${fmtInt(sum((m) => m.result.totalCompleted))} valid${extra}; problems: ${listProblems(errors, timeouts > 0 ? [`timeouts=${timeouts}`] : [])}`);
    }
  }
  console.log(`CPU = utime+stime of the server's process group (/proc, ${pin ? 'pinned' : 'unpinned'}); target: ntptsd at most ${TARGET_RATIO}x chrony per operation`);
  if (rows.some((r) => [r.ntptsd, r.chrony].some((m) => isMeasurement(m) && m.serverCpuShare < SATURATED))) {
    console.log(
      `*: server under ${SATURATED * 100}% CPU, so it was not the bottleneck: ` +
        (options.ops.some((op) => options.rate[op] > 0) ? 'the pace (--rate) or ' : '') +
        'the one-CPU generator was; ops/s is then a lower bound of its capacity, CPU/op still holds',
    );
  }
  for (const r of rows) {
    if (r.floor === undefined) continue;
    if (!isMeasurement(r.floor)) {
      console.log(`NTS-KE floor (bare node:tls server): FAILED: ${r.floor.error}`);
      continue;
    }
    const floorUs = r.floor.cpuUsPerOp;
    const vsChrony = isMeasurement(r.chrony) ? `, ${(floorUs / r.chrony.cpuUsPerOp).toFixed(2)}x chrony` : '';
    const ours = isMeasurement(r.ntptsd) ? `; ntptsd (TLS on OpenSSL directly, the whole service): ${fmtUs(r.ntptsd.cpuUsPerOp)} µs/op` : '';
    console.log(
      `NTS-KE reference: a bare node:tls server (node ${process.version}, OpenSSL ${process.versions.openssl}; same certificate, exporter, ` +
        `one canned response, no decoding or cookies) costs ${fmtUs(floorUs)} µs CPU/op${vsChrony}${ours}`,
    );
  }
  if (options.rounds > 1) console.log(`each figure: the median of ${options.rounds} rounds by CPU/op (all rounds in --json)`);
  for (const note of notes) console.log(`note: ${note}`);
  if (profile !== undefined) printProfile(profile, 'busy');
}
