// Helpers for interop tests against real chrony and NTPsec programs, unpacked into .peers/ by
// scripts/install-peers.sh (or installed on the system).
//
// Safety rules enforced here, not left to each test:
// - every peer runs under `setpriv` without CAP_SYS_TIME (bounding and inheritable sets), chronyd always with
//   -x, NTPsec with `disable ntp` unless a test asks otherwise (`enable ntp` is still safe: its clock calls
//   fail with EPERM, logged as "adj_systime: Operation not permitted"); each started daemon's capability sets
//   are checked in /proc and the daemon is killed if CAP_SYS_TIME is still there;
// - chronyd binds loopback only (bindaddress 127.0.0.1 / ::1, unless a test sets its own); NTPsec, whose ports
//   are fixed, runs only inside a private network namespace holding nothing but `lo`;
// - every daemon runs in its own process group with a parent-death signal (SIGKILL), every start function
//   registers cleanup (with the test's `t.after` when given, with a file-level `after` hook, and a synchronous
//   kill on process exit), so a failing test still kills its processes, deletes its namespaces and temp dirs.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { webcrypto } from 'node:crypto';
import { freeTestPort } from '../helpers/daemon.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** `node --import tsx` as the test runner resolves it, so a script or ntptsd starts the same whatever the child's cwd. */
export const TSX_LOADER = import.meta.resolve('tsx');
/** Where scripts/install-peers.sh unpacks the peers; NTPTSD_PEERS_ROOT overrides it. */
export const PEERS_ROOT = process.env['NTPTSD_PEERS_ROOT'] ?? join(REPO_ROOT, '.peers', 'root');

/** Drops CAP_SYS_TIME for good and kills the peer if the test process dies. Prefixed to every peer command. */
export const NO_SYS_TIME = ['setpriv', '--pdeathsig', 'KILL', '--bounding-set', '-sys_time', '--inh-caps', '-sys_time', '--'];
const CAP_SYS_TIME_BIT = 25n;

export type PeerTool = 'chronyd' | 'chronyc' | 'ntpd' | 'ntpq' | 'ntpdig';
const TOOLS: Record<PeerTool, string> = {
  chronyd: 'usr/sbin/chronyd',
  chronyc: 'usr/bin/chronyc',
  ntpd: 'usr/sbin/ntpd',
  ntpq: 'usr/bin/ntpq',
  ntpdig: 'usr/bin/ntpdig',
};
const PYTHON_TOOLS: ReadonlySet<PeerTool> = new Set(['ntpq', 'ntpdig']);

export interface Peers {
  /** The tree the tools were found in: .peers/root, $NTPTSD_PEERS_ROOT or / (system packages). */
  root: string;
  chronyd: string;
  chronyc: string;
  /** NTPsec's ntpd. */
  ntpd: string;
  /** Python scripts: run them as `python script`, with `env` (see command()). */
  ntpq: string;
  ntpdig: string;
  /** The interpreter that can import the NTPsec `ntp` module (Debian's /usr/bin/python3 preferred). */
  python: string;
  /** Folder holding the `ntp` Python module. */
  pythonPath: string;
  /** Extra environment for ntpq/ntpdig (PYTHONPATH). */
  env: Record<string, string>;
  /** First line of each tool's version output. */
  versions: Record<PeerTool, string>;
}

export type PeersLookup = { ok: true; peers: Peers } | { ok: false; reason: string };

let cachedLookup: PeersLookup | undefined;

function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

function lookupPeers(): PeersLookup {
  const problems: string[] = [];
  if (process.platform !== 'linux') return { ok: false, reason: `interop peers need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) problems.push('must run as root (network namespaces, setpriv)');
  for (const cmd of ['setpriv', 'ip']) if (which(cmd) === undefined) problems.push(`'${cmd}' not found in PATH`);

  const roots = [...new Set([PEERS_ROOT, '/'])];
  const root = roots.find((r) => Object.values(TOOLS).every((rel) => existsSync(join(r, rel))));
  if (root === undefined) {
    const missing = Object.entries(TOOLS)
      .filter(([, rel]) => !existsSync(join(PEERS_ROOT, rel)))
      .map(([tool]) => tool);
    problems.push(`${missing.join(', ')} not found in ${PEERS_ROOT} nor on the system: run scripts/install-peers.sh`);
    return { ok: false, reason: problems.join('; ') };
  }
  const path = (tool: PeerTool): string => join(root, TOOLS[tool]);
  const pythonPath = join(root, 'usr/lib/python3/dist-packages');
  const env = { PYTHONPATH: pythonPath };

  const candidates = [...new Set(['/usr/bin/python3', which('python3')].filter((p): p is string => p !== undefined && existsSync(p)))];
  let python: string | undefined;
  const pyErrors: string[] = [];
  for (const cand of candidates) {
    const r = spawnSync(cand, ['-c', 'import ntp.ntpc, ntp.packet, ntp.util'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });
    if (r.status === 0) {
      python = cand;
      break;
    }
    pyErrors.push(`${cand}: ${firstLine((r.stderr ?? '').split('\n').slice(-2).join('\n')) || String(r.error ?? r.status)}`);
  }
  if (python === undefined) {
    problems.push(`no python3 can import the NTPsec 'ntp' module from ${pythonPath} (${pyErrors.join('; ') || 'no python3 found'})`);
    return { ok: false, reason: problems.join('; ') };
  }

  const versions = {} as Record<PeerTool, string>;
  const versionArgs: Record<PeerTool, string[]> = { chronyd: ['-v'], chronyc: ['-v'], ntpd: ['--version'], ntpq: ['--version'], ntpdig: ['--version'] };
  for (const tool of Object.keys(TOOLS) as PeerTool[]) {
    const file = PYTHON_TOOLS.has(tool) ? python : path(tool);
    const args = PYTHON_TOOLS.has(tool) ? [path(tool), ...versionArgs[tool]] : versionArgs[tool];
    const r = spawnSync(file, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
    const out = firstLine(`${r.stdout ?? ''}\n${r.stderr ?? ''}`);
    if (r.status !== 0 || out === '') problems.push(`${tool} does not run (${out || String(r.error ?? `exit ${r.status}`)})`);
    versions[tool] = out;
  }
  if (problems.length > 0) return { ok: false, reason: problems.join('; ') };
  return {
    ok: true,
    peers: {
      root,
      chronyd: path('chronyd'),
      chronyc: path('chronyc'),
      ntpd: path('ntpd'),
      ntpq: path('ntpq'),
      ntpdig: path('ntpdig'),
      python,
      pythonPath,
      env,
      versions,
    },
  };
}

/** Locates chronyd, chronyc, NTPsec ntpd, ntpq and ntpdig and checks they run. Cached per process. */
export function findPeers(): PeersLookup {
  cachedLookup ??= lookupPeers();
  return cachedLookup;
}

/**
 * For a test that needs the peers: returns them, or fails the test with the reason they are missing.
 */
export function requirePeers(t: TestContext): Peers {
  const found = findPeers();
  if (found.ok) return found.peers;
  // Interop tests never skip: `npm test` installs the peers first (scripts/run-tests.mjs).
  throw new Error(`${t.name}: interop peers unavailable: ${found.reason} (run: sudo bash scripts/install-peers.sh)`);
}

function peersOrThrow(): Peers {
  const found = findPeers();
  if (!found.ok) throw new Error(`interop peers unavailable: ${found.reason}`);
  return found.peers;
}

/** How to run a peer tool: python scripts go through the chosen interpreter, with PYTHONPATH set. */
export function peerCommand(tool: PeerTool, args: readonly string[], peers: Peers = peersOrThrow()): { file: string; args: string[]; env: Record<string, string> } {
  if (PYTHON_TOOLS.has(tool)) return { file: peers.python, args: [peers[tool], ...args], env: peers.env };
  return { file: peers[tool], args: [...args], env: {} };
}

// ---------------------------------------------------------------------------------------------------------------
// Cleanup registry

interface Resource {
  /** Orderly release. */
  release(): Promise<void>;
  /** Last resort at process exit: synchronous, best effort. */
  releaseSync(): void;
}

const resources = new Set<Resource>();

function track(resource: Resource, t: TestContext | undefined): void {
  resources.add(resource);
  t?.after(() => releaseResource(resource));
}

async function releaseResource(resource: Resource): Promise<void> {
  if (!resources.delete(resource)) return;
  await resource.release();
}

/** Releases everything still alive, newest first (processes before the namespaces and dirs they use). */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  for (const r of [...resources].reverse()) {
    try {
      await releaseResource(r);
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'interop cleanup failed');
}

after(cleanupAll);
process.once('exit', () => {
  for (const r of [...resources].reverse()) {
    try {
      r.releaseSync();
    } catch {
      // best effort
    }
  }
  resources.clear();
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const TEMP_PREFIX = 'ntptsd-interop-';
let tempReaped = false;

/** Deletes temp dirs left by earlier runs of this harness whose process is gone (e.g. after a SIGKILL). */
function reapStaleTempDirs(): void {
  if (tempReaped) return;
  tempReaped = true;
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^ntptsd-interop-(\d+)-/.exec(n);
    if (m?.[1] === undefined || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    rmSync(join(tmpdir(), n), { recursive: true, force: true });
  }
}

/** A temp dir (mode 0700) that is deleted with the test. Named ntptsd-interop-<pid>-<name>-XXXXXX. */
export function makeTempDir(name: string, t?: TestContext): string {
  reapStaleTempDirs();
  const dir = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${process.pid}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  track({ release: async () => remove(), releaseSync: remove }, t);
  return dir;
}

// ---------------------------------------------------------------------------------------------------------------
// Small utilities

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after timeoutMs), never throwing for a non-zero exit. */
export function runCommand(
  file: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: { ...process.env, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (child.stdin !== null) {
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs ?? 15_000} ms]`;
      killGroup(child, 'SIGKILL');
    }, opts.timeoutMs ?? 15_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Polls `probe` until it returns something other than undefined/false, or throws after timeoutMs with `what`
 * and the last value/error seen.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${what} (last: ${last === undefined ? 'nothing' : String(last)})`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}

/** A port that is free right now on host (UDP or TCP), outside the kernel's ephemeral range (test/helpers/daemon.ts). */
export function freePort(kind: 'udp' | 'tcp', host = '127.0.0.1'): Promise<number> {
  return freeTestPort(kind, host);
}

/** "Key : value" lines (chronyc tracking/ntpdata, …) into a map. */
export function parseColonFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** ntpq `rv` output (`a=1, b="x", …` over several lines) into a map; quotes removed. */
export function parseNtpqVars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([A-Za-z_][\w.]*)=("[^"]*"|[^,\s]*)/g)) {
    const key = m[1];
    const value = m[2];
    if (key !== undefined && value !== undefined) out[key] = value.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Daemons

export interface PeerProcess {
  pid: number;
  /** Everything the daemon wrote to stdout and stderr so far. */
  logs(): string;
  /** SIGTERM to its process group, SIGKILL after 5 s; resolves once it is gone. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when the process exits (by itself or by stop()). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
}

function capabilityMask(pid: number, field: 'CapBnd' | 'CapEff' | 'CapPrm' | 'CapInh' | 'CapAmb'): bigint | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s*([0-9a-f]+)`, 'm').exec(status);
    return m?.[1] !== undefined ? BigInt(`0x${m[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

/** Throws if the process still holds (or could regain) CAP_SYS_TIME. */
export function assertNoSysTime(pid: number): void {
  for (const field of ['CapBnd', 'CapEff', 'CapPrm', 'CapInh', 'CapAmb'] as const) {
    const mask = capabilityMask(pid, field);
    if (mask === undefined) throw new Error(`cannot read ${field} of pid ${pid}`);
    if ((mask >> CAP_SYS_TIME_BIT) & 1n) throw new Error(`pid ${pid} has CAP_SYS_TIME in ${field}: refusing to run it`);
  }
}

function startProcess(name: string, argv: readonly string[], env: Record<string, string>, t: TestContext | undefined): PeerProcess {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('empty command');
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const append = (d: string): void => {
    output += d;
    if (output.length > 1_000_000) output = output.slice(-500_000);
  };
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', append);
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      append(`\n[${name}: spawn failed: ${err.message}]\n`);
      running = false;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: spawn of ${file} failed`);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!running) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      killGroup(child, 'SIGKILL'); // helpers left in the group (chronyd's NTS-KE helper), if any
    })();
    return stopping;
  };
  const proc: PeerProcess = {
    pid,
    logs: () => output,
    stop,
    exited,
    get running() {
      return running;
    },
  };
  track(
    {
      release: stop,
      releaseSync: () => {
        if (running) killGroup(child, 'SIGKILL');
      },
    },
    t,
  );
  return proc;
}

/** Waits until the daemon is ready, failing early (with its logs) if it exits or still holds CAP_SYS_TIME. */
async function awaitReady(name: string, proc: PeerProcess, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  try {
    await waitFor(`${name} to become ready`, async () => {
      if (!proc.running) throw new Error(`${name} exited early`);
      assertNoSysTime(proc.pid);
      return probe();
    }, { timeoutMs, intervalMs: 100 });
    assertNoSysTime(proc.pid);
  } catch (err) {
    await proc.stop();
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`${msg}\n--- ${name} output ---\n${proc.logs()}`, { cause: err });
  }
}

function hasDirective(lines: readonly string[], directive: string): boolean {
  const re = new RegExp(`^\\s*${directive}(\\s|$)`);
  return lines.some((l) => re.test(l));
}

/**
 * Starts any long-running program (e.g. ntptsd itself, to face NTPsec on port 123 inside a namespace) the way
 * the peers are started: without CAP_SYS_TIME, in its own process group, killed with the test. `ready` is
 * polled (never a fixed sleep) until it returns true.
 */
export async function startDaemon(opts: {
  name: string;
  argv: readonly string[];
  netns?: Netns | string;
  env?: Record<string, string>;
  t?: TestContext;
  ready: () => Promise<boolean>;
  timeoutMs?: number;
}): Promise<PeerProcess> {
  const netns = typeof opts.netns === 'string' ? opts.netns : opts.netns?.name;
  const argv = netns !== undefined ? ['ip', 'netns', 'exec', netns, ...NO_SYS_TIME, ...opts.argv] : [...NO_SYS_TIME, ...opts.argv];
  const proc = startProcess(opts.name, argv, opts.env ?? {}, opts.t);
  await awaitReady(opts.name, proc, opts.ready, opts.timeoutMs ?? 15_000);
  return proc;
}

// -- chrony ------------------------------------------------------------------------------------------------------

export interface StartChronydOptions {
  /** Config lines of the test: server/port/ntsport/allow/local/ntsservercert/… */
  confLines: readonly string[];
  /** For temp dir names and messages. */
  name?: string;
  /** Run inside this network namespace (chronyc still reaches it through the Unix socket). */
  netns?: Netns | string;
  /** Register cleanup with this test (a file-level after hook and process exit cover it anyway). */
  t?: TestContext;
  timeoutMs?: number;
}

export interface Chronyd extends PeerProcess {
  dir: string;
  confPath: string;
  socketPath: string;
  /** Runs `chronyc -h SOCKET -n ARGS…` and returns stdout; throws on a non-zero exit. */
  chronyc(args: readonly string[]): Promise<string>;
  /** `chronyc ntpdata [address]` of one source as a map ("Authenticated" → "Yes", "Stratum" → "10", …). */
  ntpdata(address?: string): Promise<Record<string, string>>;
}

/**
 * Starts `chronyd -d -x -u root -f CONF` without CAP_SYS_TIME. The harness adds, after the test's lines:
 * driftfile, pidfile, ntsdumpdir, dumpdir in a temp dir, `bindcmdaddress DIR/chronyd.sock` + `cmdport 0`
 * (no UDP command port), and, unless the test sets them, `port 0` (no NTP server socket) and
 * `bindaddress 127.0.0.1` + `bindaddress ::1` (servers listen on loopback only). Ready once
 * `chronyc tracking` answers.
 */
export async function startChronyd(opts: StartChronydOptions): Promise<Chronyd> {
  const peers = peersOrThrow();
  const name = opts.name ?? 'chronyd';
  const dir = makeTempDir(`chronyd-${name}`, opts.t);
  const socketPath = join(dir, 'chronyd.sock');
  const confPath = join(dir, 'chrony.conf');
  const lines = [
    `# ${name}: lines from the test`,
    ...opts.confLines,
    '# added by test/interop/peers.ts',
    `driftfile ${join(dir, 'drift')}`,
    `pidfile ${join(dir, 'chronyd.pid')}`,
    `ntsdumpdir ${dir}`,
    `dumpdir ${dir}`,
    `bindcmdaddress ${socketPath}`,
    'cmdport 0',
  ];
  if (!hasDirective(opts.confLines, 'port')) lines.push('port 0');
  if (!hasDirective(opts.confLines, 'bindaddress')) lines.push('bindaddress 127.0.0.1', 'bindaddress ::1');
  writeFileSync(confPath, `${lines.join('\n')}\n`);

  const daemon = [peers.chronyd, '-d', '-x', '-u', 'root', '-f', confPath];
  const netns = typeof opts.netns === 'string' ? opts.netns : opts.netns?.name;
  const argv = netns !== undefined ? ['ip', 'netns', 'exec', netns, ...NO_SYS_TIME, ...daemon] : [...NO_SYS_TIME, ...daemon];
  const proc = startProcess(name, argv, {}, opts.t);

  const chronyc = async (args: readonly string[]): Promise<string> => {
    const r = await runCommand(peers.chronyc, ['-h', socketPath, '-n', ...args], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`chronyc ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  };
  await awaitReady(
    name,
    proc,
    async () => {
      if (!existsSync(socketPath)) return false;
      return (await runCommand(peers.chronyc, ['-h', socketPath, '-n', 'tracking'], { timeoutMs: 5_000 })).code === 0;
    },
    opts.timeoutMs ?? 10_000,
  );
  return Object.assign(proc, {
    dir,
    confPath,
    socketPath,
    chronyc,
    ntpdata: async (address?: string) => parseColonFields(await chronyc(address === undefined ? ['ntpdata'] : ['ntpdata', address])),
  });
}

// -- network namespaces ------------------------------------------------------------------------------------------

export interface Netns {
  name: string;
  /** Stops the processes started in it by this harness, then deletes it. Idempotent. */
  destroy(): Promise<void>;
}

let netnsCounter = 0;
const NETNS_PREFIX = 'ntptsd-';

function ipSync(args: readonly string[]): { ok: boolean; out: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** Deletes namespaces left by earlier runs of this harness whose process is gone (e.g. after a SIGKILL). */
function reapStaleNetns(): void {
  const list = ipSync(['netns', 'list']);
  if (!list.ok) return;
  for (const line of list.out.split('\n')) {
    const nsName = line.split(' ')[0] ?? '';
    const m = /^ntptsd-(\d+)-\d+/.exec(nsName);
    if (m?.[1] === undefined) continue;
    const owner = Number(m[1]);
    if (owner !== process.pid && !pidAlive(owner)) ipSync(['netns', 'del', nsName]);
  }
}

/**
 * Creates a private network namespace holding only `lo` (up: 127.0.0.1 and ::1). For peers whose ports are
 * fixed (NTPsec: UDP 123, NTS-KE 4460). Named ntptsd-<pid>-<n>-<label>.
 */
export function createNetns(label = 'ns', t?: TestContext): Netns {
  reapStaleNetns();
  const name = `${NETNS_PREFIX}${process.pid}-${++netnsCounter}-${label.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, 60);
  const add = ipSync(['netns', 'add', name]);
  if (!add.ok) throw new Error(`ip netns add ${name} failed: ${add.out}`);
  let gone = false;
  const del = (): void => {
    if (gone) return;
    gone = true;
    ipSync(['netns', 'del', name]);
  };
  const lo = ipSync(['-n', name, 'link', 'set', 'lo', 'up']);
  if (!lo.ok) {
    del();
    throw new Error(`ip -n ${name} link set lo up failed: ${lo.out}`);
  }
  const resource: Resource = { release: async () => del(), releaseSync: del };
  track(resource, t);
  return {
    name,
    destroy: async () => {
      // Resources registered after the namespace (its processes) go first.
      const later = [...resources];
      const idx = later.indexOf(resource);
      if (idx >= 0) for (const r of later.slice(idx + 1).reverse()) await releaseResource(r);
      await releaseResource(resource);
    },
  };
}

/**
 * Runs a command inside a namespace, without CAP_SYS_TIME, to completion. `cmd` may be a peer tool name
 * ('ntpdig', 'ntpq', 'chronyc', …: resolved, with python and PYTHONPATH) or any program.
 */
export async function runInNetns(
  netns: Netns | string,
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const name = typeof netns === 'string' ? netns : netns.name;
  const isTool = Object.hasOwn(TOOLS, cmd);
  const c = isTool ? peerCommand(cmd as PeerTool, args) : { file: cmd, args: [...args], env: {} };
  return runCommand('ip', ['netns', 'exec', name, ...NO_SYS_TIME, c.file, ...c.args], {
    env: { ...c.env, ...opts.env },
    timeoutMs: opts.timeoutMs ?? 15_000,
  });
}

// -- NTPsec ------------------------------------------------------------------------------------------------------

export interface StartNtpsecOptions {
  /** Config lines of the test: tos/server/nts …  */
  confLines: readonly string[];
  /** NTPsec binds UDP 123 and TCP 4460 on every address, so it always runs in a namespace. */
  netns: Netns | string;
  name?: string;
  t?: TestContext;
  timeoutMs?: number;
}

export interface NtpsecNtpd extends PeerProcess {
  dir: string;
  confPath: string;
  netns: string;
  /** Runs `ntpq -n ARGS… 127.0.0.1` inside the namespace; throws if ntpq reports an error. */
  ntpq(args: readonly string[]): Promise<string>;
  /** System variables (`ntpq -c rv`) as a map: leap, stratum, refid, version, … */
  sysvars(): Promise<Record<string, string>>;
}

const NTPQ_ERROR = /^\*\*\*|Request timed out|Socket error/m;

/**
 * Starts NTPsec `ntpd -n -c CONF` (foreground) in a namespace, without CAP_SYS_TIME. The harness adds after the
 * test's lines: driftfile and statsdir in a temp dir, `nts cookie DIR/nts-keys` (unless set), `disable kernel`,
 * `disable ntp` (unless the test says `enable ntp`), and `restrict 127.0.0.1` + `restrict ::1` unless the test
 * has its own restrict lines (without them ntpq's mode 6 queries time out). Ready once ntpq gets an answer.
 *
 * Observed with NTPsec 1.2.2: under `disable ntp` a client still selects a sys_peer (stratum/refid set) but its
 * system leap stays 11 (unsynchronised); with `enable ntp` (pass it in confLines) leap becomes 00 after the
 * first clock update. A plain (non-NTS) `server` line cannot name a port: NTPsec only speaks to port 123
 * (`server 127.0.0.1:11123` fails as a DNS lookup); with `nts`, `server NAME:KEPORT` is the NTS-KE port and the
 * NTP port comes from the server's Port Negotiation record.
 */
export async function startNtpsec(opts: StartNtpsecOptions): Promise<NtpsecNtpd> {
  const peers = peersOrThrow();
  const name = opts.name ?? 'ntpsec';
  const netns = typeof opts.netns === 'string' ? opts.netns : opts.netns.name;
  const dir = makeTempDir(`ntpsec-${name}`, opts.t);
  const confPath = join(dir, 'ntp.conf');
  const lines = [
    `# ${name}: lines from the test`,
    ...opts.confLines,
    '# added by test/interop/peers.ts',
    `driftfile ${join(dir, 'ntp.drift')}`,
    `statsdir ${dir}/`,
    'disable kernel',
  ];
  if (!opts.confLines.some((l) => /^\s*nts\s+cookie\s/.test(l))) lines.push(`nts cookie ${join(dir, 'nts-keys')}`);
  if (!opts.confLines.some((l) => /^\s*enable\s.*\bntp\b/.test(l))) lines.push('disable ntp');
  if (!hasDirective(opts.confLines, 'restrict')) lines.push('restrict 127.0.0.1', 'restrict ::1');
  writeFileSync(confPath, `${lines.join('\n')}\n`);

  const proc = startProcess(name, ['ip', 'netns', 'exec', netns, ...NO_SYS_TIME, peers.ntpd, '-n', '-c', confPath], {}, opts.t);
  const ntpq = async (args: readonly string[]): Promise<string> => {
    const r = await runInNetns(netns, 'ntpq', ['-n', ...args, '127.0.0.1'], { timeoutMs: 10_000 });
    const out = `${r.stdout}${r.stderr}`;
    if (r.code !== 0 || NTPQ_ERROR.test(out)) throw new Error(`ntpq ${args.join(' ')} failed: ${out.trim()}`);
    return r.stdout;
  };
  await awaitReady(name, proc, async () => /\bversion=/.test(await ntpq(['-c', 'rv 0 version'])), opts.timeoutMs ?? 15_000);
  return Object.assign(proc, {
    dir,
    confPath,
    netns,
    ntpq,
    sysvars: async () => parseNtpqVars(await ntpq(['-c', 'rv'])),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Peer setups and waits the tests share

/**
 * chronyd as an NTS server with the test CA's certificate, answering loopback clients from its LOCAL reference
 * at stratum 10: NTP on `port`, NTS-KE on `ntsport` (chrony's default, 4460, when not given).
 */
export function chronyNtsServerLines(ca: TestCa, ports: { port: number; ntsport?: number }): string[] {
  return [
    `port ${ports.port}`,
    ...(ports.ntsport !== undefined ? [`ntsport ${ports.ntsport}`] : []),
    'allow 127.0.0.1',
    'allow ::1',
    'local stratum 10',
    `ntsservercert ${ca.serverCert}`,
    `ntsserverkey ${ca.serverKey}`,
  ];
}

/**
 * chronyd as an NTS client of 127.0.0.1 trusting `caCert`: NTP and NTS-KE on the given ports (chrony's
 * defaults, 123 and 4460, when not given), polling every 2^poll s (default -2: every 250 ms).
 */
export function chronyNtsClientLines(caCert: string, o: { ntpPort?: number; ntsPort?: number; poll?: number } = {}): string[] {
  const port = o.ntpPort !== undefined ? ` port ${o.ntpPort}` : '';
  const ntsport = o.ntsPort !== undefined ? ` ntsport ${o.ntsPort}` : '';
  const poll = o.poll ?? -2;
  return [`server 127.0.0.1${port} nts${ntsport} iburst minpoll ${poll} maxpoll ${poll}`, `ntstrustedcerts ${caCert}`];
}

/**
 * NTPsec as an NTS server with a certificate of `ca`, in a new network namespace of its own (labelled
 * `names.netns`), in orphan mode: stratum 10 with no source at all, once orphanwait (1 s) has passed.
 */
export async function startNtpsecNtsServer(
  t: TestContext,
  ca: TestCa,
  names: { netns: string; ntpd: string },
): Promise<{ netns: Netns; ntpd: NtpsecNtpd }> {
  const netns = createNetns(names.netns, t);
  const ntpd = await startNtpsec({
    t,
    netns,
    name: names.ntpd,
    confLines: ['tos orphan 10 orphanwait 1', 'nts enable', `nts cert ${ca.serverCert}`, `nts key ${ca.serverKey}`],
  });
  return { netns, ntpd };
}

export interface ChronyNtsServer {
  chrony: Chronyd;
  ntpPort: number;
  ntsPort: number;
  ca: TestCa;
  /** PEM of the CA that issued chrony's certificate. */
  caPem: string;
}

/**
 * chronyd on the host loopback as an NTS server ({@link chronyNtsServerLines}) on free ports, with a certificate
 * of `ca` (a new test CA when not given); checked to run without CAP_SYS_TIME.
 */
export async function startChronyNtsServer(t: TestContext, name: string, ca?: TestCa): Promise<ChronyNtsServer> {
  requirePeers(t);
  const testCa = ca ?? (await makeTestCa({ t, via: 'x509' }));
  const ntpPort = await freePort('udp');
  const ntsPort = await freePort('tcp');
  const chrony = await startChronyd({ t, name, confLines: chronyNtsServerLines(testCa, { port: ntpPort, ntsport: ntsPort }) });
  assertNoSysTime(chrony.pid);
  return { chrony, ntpPort, ntsPort, ca: testCa, caPem: testCa.caCertPem };
}

/**
 * Waits until chronyd's source 127.0.0.1 is NTS-authenticated with at least `minGood` good samples (default 1);
 * returns its `ntpdata`. `what` names the wait in the timeout error.
 */
export function waitForChronyNtsSample(
  chrony: Chronyd,
  what: string,
  opts: { minGood?: number; timeoutMs?: number; intervalMs?: number } = {},
): Promise<Record<string, string>> {
  const minGood = opts.minGood ?? 1;
  return waitFor(
    what,
    async () => {
      const d = await chrony.ntpdata('127.0.0.1');
      return d['Authenticated'] === 'Yes' && Number(d['Total good RX']) >= minGood ? d : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 20_000, ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}) },
  );
}

/** Waits until NTPsec's first association is NTS-authenticated and reachable; returns its `rv &1` variables. */
export function waitForNtpsecNtsAssociation(ntpd: NtpsecNtpd, timeoutMs = 20_000): Promise<Record<string, string>> {
  return waitFor(
    'an NTS-authenticated, reachable association at the NTPsec client',
    async () => {
      const v = parseNtpqVars(await ntpd.ntpq(['-c', 'rv &1']));
      // Peer status word, high byte: 0x80 configured, 0x40 auth enabled, 0x20 authentic, 0x10 reachable.
      const flags = parseInt(v['status'] ?? '0', 16) >> 8;
      return (flags & 0x30) === 0x30 ? v : undefined;
    },
    { timeoutMs },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Test PKI

export interface TestCa {
  dir: string;
  /** PEM files. */
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** serverCert followed by caCert. */
  serverChain: string;
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

/**
 * A CA and a server certificate for DNS:localhost, IP:127.0.0.1, IP:::1 (ECDSA P-256, serverAuth, valid from
 * one hour ago for two days), written to a temp dir. Uses the openssl CLI when present, else @peculiar/x509.
 */
export async function makeTestCa(opts: { t?: TestContext; via?: 'openssl' | 'x509' } = {}): Promise<TestCa> {
  const dir = makeTempDir('ca', opts.t);
  const via = opts.via ?? (which('openssl') !== undefined ? 'openssl' : 'x509');
  const f = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    serverChain: join(dir, 'server-chain.crt'),
  };
  if (via === 'openssl') await caWithOpenssl(dir, f);
  else await caWithX509(f);
  const caCertPem = readFileSync(f.caCert, 'utf8');
  const serverCertPem = readFileSync(f.serverCert, 'utf8');
  writeFileSync(f.serverChain, serverCertPem + caCertPem);
  return { dir, ...f, caCertPem, serverCertPem, serverKeyPem: readFileSync(f.serverKey, 'utf8') };
}

async function caWithOpenssl(dir: string, f: { caCert: string; caKey: string; serverCert: string; serverKey: string }): Promise<void> {
  const openssl = async (args: string[]): Promise<void> => {
    const r = await runCommand('openssl', args, { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}`);
  };
  const serial = (): string => `0x${Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString('hex')}`;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', f.caKey, '-out', f.caCert, '-days', '2', '-set_serial', serial(), '-subj', '/CN=ntptsd interop test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const csr = join(dir, 'server.csr');
  await openssl(['req', '-new', ...ec, '-keyout', f.serverKey, '-out', csr, '-subj', '/CN=localhost']);
  const ext = join(dir, 'server.ext');
  writeFileSync(
    ext,
    [
      'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      '',
    ].join('\n'),
  );
  await openssl(['x509', '-req', '-in', csr, '-CA', f.caCert, '-CAkey', f.caKey, '-set_serial', serial(), '-days', '2', '-extfile', ext, '-out', f.serverCert]);
}

async function caWithX509(f: { caCert: string; caKey: string; serverCert: string; serverKey: string }): Promise<void> {
  await import('reflect-metadata'); // the CommonJS build of @peculiar/x509 uses tsyringe, which needs it first
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 2 * 86400_000);
  const serial = (): string => Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString('hex').replace(/^[89a-f]/, '1');
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=ntptsd interop test CA',
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const serverKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=localhost',
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const pkcs8 = async (key: webcrypto.CryptoKey): Promise<string> =>
    x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
  writeFileSync(f.caCert, `${ca.toString('pem')}\n`);
  writeFileSync(f.caKey, `${await pkcs8(caKeys.privateKey)}\n`, { mode: 0o600 });
  writeFileSync(f.serverCert, `${server.toString('pem')}\n`);
  writeFileSync(f.serverKey, `${await pkcs8(serverKeys.privateKey)}\n`, { mode: 0o600 });
}

export interface NtptsdTestConfigHead {
  ca: TestCa;
  ntpListen: readonly string[];
  /** The NTP port clients are told (NTS Port Negotiation). */
  ntpPort: number;
  aead?: readonly string[];
  keyRotation?: string;
  keysKept?: number;
}

/**
 * The part of an ntptsd test config that the interop tests share, through `[nts]`: the test CA's server
 * certificate, NTP on `ntpListen` without rate limiting (chrony polls every 250 ms in these tests, far above the
 * default limit of one request per 2 s), and the NTS settings. Listeners and other sections follow.
 */
export function ntptsdConfigHead(o: NtptsdTestConfigHead): string[] {
  const list = (items: readonly string[]): string => `[${items.map((i) => JSON.stringify(i)).join(', ')}]`;
  return [
    '[daemon]',
    'state-dir = "STATE_DIR"',
    'log-level = "debug"',
    '',
    '[tls]',
    `certificate = ${JSON.stringify(o.ca.serverCert)}`,
    `private-key = ${JSON.stringify(o.ca.serverKey)}`,
    '',
    '[ntp]',
    `listen = ${list(o.ntpListen)}`,
    '',
    '[ntp.rate-limit]',
    'enabled = false',
    '',
    '[nts]',
    `ntp-port = ${o.ntpPort}`,
    'ntp-server = ""',
    ...(o.aead !== undefined ? [`aead = ${list(o.aead)}`] : []),
    ...(o.keyRotation !== undefined ? [`key-rotation = ${JSON.stringify(o.keyRotation)}`] : []),
    ...(o.keysKept !== undefined ? [`keys-kept = ${o.keysKept}`] : []),
    '',
  ];
}
