/**
 * Starts the two servers of `npm run bench -- server` on loopback, each the leader of its own process group
 * (so its CPU, helpers included, is the group's) and each optionally pinned to one CPU with taskset:
 *
 * - ntptsd: as installed, i.e. compiled by tsc and run by plain node (`buildForBench`; tsx's on-the-fly
 *   transform runs measurably slower code), `node OUT/src/cli/ntptsd.js -c CONF --log-format json`, ready at its
 *   "ready" log line;
 * - chronyd: `setpriv --pdeathsig KILL --bounding-set -sys_time --inh-caps -sys_time -- chronyd -d -x -u root -f
 *   CONF` (never with CAP_SYS_TIME: checked in /proc before it is used), ready once it answers NTP and accepts
 *   NTS-KE connections.
 *
 * Both get the same certificate chain and key (ECDSA P-256, made here with the openssl CLI), NTP on a free UDP
 * port, NTS-KE on a free TCP port, and no rate limiting. Only processes started here are ever signalled, by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processGroupMembers } from './procstat.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Compiles src/ and bench/lib/ with the project's tsc settings (no type check: `npm run typecheck` does that)
 * into `dir`, with a package.json (ESM, the version) and a node_modules link, so that `node DIR/src/cli/ntptsd.js`
 * runs exactly what `npm run build` would ship. Returns `dir`.
 */
export function buildForBench(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const tsconfig = join(dir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(REPO_ROOT, 'tsconfig.json'),
      compilerOptions: {
        rootDir: REPO_ROOT,
        outDir: dir,
        noEmit: false,
        noCheck: true,
        sourceMap: false,
        declaration: false,
        typeRoots: [join(REPO_ROOT, 'node_modules', '@types')],
      },
      include: [join(REPO_ROOT, 'src'), join(REPO_ROOT, 'bench', 'lib')],
    }),
  );
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', tsconfig], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module' }));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  // The native module (batched UDP), found two levels above the compiled src/server as in the package.
  if (existsSync(join(REPO_ROOT, 'build'))) symlinkSync(join(REPO_ROOT, 'build'), join(dir, 'build'));
  return dir;
}

export interface BenchCa {
  readonly caPem: string;
  readonly chainFile: string;
  readonly keyFile: string;
}

export interface RunningServer {
  readonly name: string;
  readonly pid: number;
  readonly ntpPort: number;
  readonly kePort: number;
  readonly version: string;
  /** Output kept for error messages (the last ~64 KiB). */
  output(): string;
  stop(): Promise<void>;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
});

/** SIGKILLs `child` (by its PID) if it is still running when the bench exits. */
export function killOnExit(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
}
// Ctrl-C or a kill: leave through process.exit() so the handler above runs (servers also die with us by their
// parent-death signal, set with setpriv --pdeathsig).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));

function which(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  return undefined;
}

/** `taskset -c CPU` when pinning is asked for and possible, else nothing. */
export function pinPrefix(cpu: number | undefined): string[] {
  if (cpu === undefined) return [];
  return which('taskset') === undefined ? [] : ['taskset', '-c', String(cpu)];
}

export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address !== null && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A CA and a server certificate for localhost / 127.0.0.1 (ECDSA P-256), made with the openssl CLI in `dir`. */
export function makeCa(dir: string): BenchCa {
  const run = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr || r.error?.message}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ntptsd bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt']);
  const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const chainFile = join(dir, 'server-chain.crt');
  writeFileSync(chainFile, readFileSync(join(dir, 'server.crt'), 'utf8') + caPem);
  return { caPem, chainFile, keyFile: join(dir, 'server.key') };
}

/** `onText`: sees all the output as it comes, before any of it is dropped. */
function spawnServer(name: string, argv: string[], cwd: string, onText?: (text: string) => void): { child: ChildProcess; output: () => string } {
  const [file, ...args] = argv;
  // detached: the server leads a new process group, which is how its CPU (helpers included) is found.
  const child = spawn(file as string, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  killOnExit(child);
  let text = '';
  const keep = (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    text += s;
    if (text.length > 128 * 1024) text = text.slice(-64 * 1024);
    onText?.(s);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('error', (error) => keep(Buffer.from(`\n[${name}: spawn failed: ${error.message}]\n`)));
  return { child, output: () => text };
}

/** SIGTERM to the server (its own PID), SIGKILL after 5 s, then SIGKILL to any helper left in its group. */
async function stopServer(child: ChildProcess, pid: number): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  // Helpers it forked (chronyd's NTS-KE helper) are ours too: end any that outlived it, one PID at a time.
  for (const helper of processGroupMembers(pid)) {
    try {
      process.kill(helper, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

class FatalProbeError extends Error {}

async function waitUntil(what: string, child: ChildProcess, output: () => string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited early:\n${output()}`);
    // A FatalProbeError (e.g. CAP_SYS_TIME seen) ends the wait; anything else means "not yet".
    if (await probe().catch((error: unknown) => (error instanceof FatalProbeError ? Promise.reject(error) : false))) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One plain NTP request; true when a server-mode response with a usable stratum comes back. */
function ntpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 300);
    socket.on('message', (msg) => done(msg.length >= 48 && (msg[0]! & 7) === 4 && msg[1]! >= 1 && msg[1]! <= 15));
    socket.on('error', () => done(false));
    const request = Buffer.alloc(48);
    request[0] = 0x23;
    request.writeUInt32BE(1, 44);
    socket.send(request, port, '127.0.0.1');
  });
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** ntptsd's "ready" log line (--log-format json): the addresses it listens on. */
export interface ReadyLine {
  msg: 'ready';
  ntp: string[];
  listeners: Array<{ name: string; services: string[]; address: string }>;
}

/** How the benches start ntptsd: in `dir` (config, state), from the bench build `build`, with the bench certificate. */
export interface NtptsdOptions {
  dir: string;
  build: string;
  ca: BenchCa;
  cpu?: number;
  logLevel?: string;
  /** Extra arguments for node (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
}

export interface LaunchedNtptsd {
  readonly pid: number;
  readonly ready: ReadyLine;
  readonly version: string;
  /** Output kept for error messages (the last ~64 KiB). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Writes `dir`/ntptsd.toml (state in `stateDir`, the bench certificate, NTP on `ntpListen` without rate limiting,
 * then `extraConfig`) and starts ntptsd as shipped (`build`, see buildForBench) by plain node, optionally pinned,
 * dying with the bench (setpriv --pdeathsig when available). Resolves at its "ready" log line.
 */
export async function launchNtptsd(
  opts: NtptsdOptions & {
    stateDir: string;
    ntpListen: string;
    /** TOML appended to the common part (start it with a blank line). */
    extraConfig: string;
  },
): Promise<LaunchedNtptsd> {
  const configPath = join(opts.dir, 'ntptsd.toml');
  writeFileSync(
    configPath,
    `[daemon]
state-dir = "${opts.stateDir}"
log-level = "${opts.logLevel ?? 'info'}"

[tls]
certificate = "${opts.ca.chainFile}"
private-key = "${opts.ca.keyFile}"

[ntp]
listen = ["${opts.ntpListen}"]

[ntp.rate-limit]
enabled = false
${opts.extraConfig}`,
  );
  const entry = join(opts.build, 'src', 'cli', 'ntptsd.js');
  // setpriv only for the parent-death signal: ntptsd dies with the bench even if the bench is SIGKILLed.
  const deathSignal = which('setpriv') === undefined ? [] : ['setpriv', '--pdeathsig', 'KILL', '--'];
  const argv = [...pinPrefix(opts.cpu), ...deathSignal, process.execPath, ...(opts.nodeArgs ?? []), entry, '-c', configPath, '--log-format', 'json'];
  let ready: ReadyLine | undefined;
  let partial = '';
  const watch = (s: string) => {
    if (ready !== undefined) return;
    partial += s;
    let newline: number;
    while ((newline = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      if (!line.includes('"ready"')) continue;
      try {
        const parsed = JSON.parse(line) as Partial<ReadyLine>;
        if (parsed.msg === 'ready') ready = parsed as ReadyLine;
      } catch {
        // not JSON: not the ready line
      }
    }
  };
  const { child, output } = spawnServer('ntptsd', argv, REPO_ROOT, watch);
  const pid = child.pid as number;
  const stop = () => stopServer(child, pid);
  try {
    await waitUntil('ntptsd', child, output, async () => ready !== undefined, 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const version = (() => {
    try {
      return `ntptsd ${(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version} (tsc build, node ${process.version})`;
    } catch {
      return 'ntptsd';
    }
  })();
  return { pid, ready: ready as unknown as ReadyLine, version, output, stop };
}

/**
 * The NTS-KE floor reference (tls-floor.ts): a bare node:tls server with the same certificate, pinned like
 * the servers; NTS-KE only (ntpPort 0).
 */
export async function startTlsFloor(opts: { build: string; ca: BenchCa; cpu?: number }): Promise<RunningServer> {
  const kePort = await freeTcpPort();
  const deathSignal = which('setpriv') === undefined ? [] : ['setpriv', '--pdeathsig', 'KILL', '--'];
  const argv = [...pinPrefix(opts.cpu), ...deathSignal, process.execPath, join(opts.build, 'bench', 'lib', 'tls-floor.js'), String(kePort), opts.ca.chainFile, opts.ca.keyFile];
  const { child, output } = spawnServer('node:tls floor', argv, REPO_ROOT);
  const pid = child.pid as number;
  const stop = () => stopServer(child, pid);
  try {
    await waitUntil('node:tls floor', child, output, async () => output().includes('listening'), 15_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { name: 'node:tls floor', pid, ntpPort: 0, kePort, version: `node ${process.version}, OpenSSL ${process.versions.openssl}`, output, stop };
}

export async function startNtptsd(opts: NtptsdOptions): Promise<RunningServer> {
  const ntpPort = await freeUdpPort();
  const kePort = await freeTcpPort();
  const { pid, version, output, stop } = await launchNtptsd({
    ...opts,
    stateDir: join(opts.dir, 'ntptsd-state'),
    ntpListen: `127.0.0.1:${ntpPort}`,
    extraConfig: `
[nts]
ntp-port = ${ntpPort}

[[listener]]
address = "127.0.0.1:${kePort}"
services = ["nts-ke"]
default-service = "nts-ke"
`,
  });
  return { name: 'ntptsd', pid, ntpPort, kePort, version, output, stop };
}

/** chronyd from .peers/root (scripts/install-peers.sh), $NTPTSD_PEERS_ROOT or the system; undefined when absent. */
export function findChronyd(): string | undefined {
  const roots = [process.env['NTPTSD_PEERS_ROOT'], join(REPO_ROOT, '.peers', 'root'), '/'].filter((r): r is string => r !== undefined);
  for (const root of roots) {
    const path = join(root, 'usr/sbin/chronyd');
    if (existsSync(path)) return path;
  }
  return undefined;
}

const CAP_SYS_TIME = 25n;

/** Throws when `pid` holds CAP_SYS_TIME in any capability set (or its sets cannot be read). */
function assertWithoutSysTime(pid: number): void {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
    const hex = new RegExp(`^${set}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1];
    if (hex === undefined) throw new FatalProbeError(`cannot read ${set} of pid ${pid}`);
    if ((BigInt(`0x${hex}`) >> CAP_SYS_TIME) & 1n) throw new FatalProbeError(`pid ${pid} holds CAP_SYS_TIME (${set}): refusing to use it`);
  }
}

export async function startChronyd(opts: { dir: string; ca: BenchCa; chronyd: string; cpu?: number }): Promise<RunningServer> {
  const ntpPort = await freeUdpPort();
  const kePort = await freeTcpPort();
  const dir = opts.dir;
  const confPath = join(dir, 'chrony.conf');
  writeFileSync(
    confPath,
    [
      `port ${ntpPort}`,
      `ntsport ${kePort}`,
      'bindaddress 127.0.0.1',
      'allow 127.0.0.1',
      'local stratum 10',
      `ntsservercert ${opts.ca.chainFile}`,
      `ntsserverkey ${opts.ca.keyFile}`,
      // No ratelimit / ntsratelimit lines: chronyd limits neither NTP nor NTS-KE unless told to.
      `driftfile ${join(dir, 'chrony.drift')}`,
      `pidfile ${join(dir, 'chronyd.pid')}`,
      `ntsdumpdir ${dir}`,
      `dumpdir ${dir}`,
      `bindcmdaddress ${join(dir, 'chronyd.sock')}`,
      'cmdport 0',
      '',
    ].join('\n'),
  );
  const version = spawnSync(opts.chronyd, ['-v'], { encoding: 'utf8', timeout: 10_000 }).stdout?.split('\n')[0]?.trim() ?? 'chronyd';
  const noSysTime = ['setpriv', '--pdeathsig', 'KILL', '--bounding-set', '-sys_time', '--inh-caps', '-sys_time', '--'];
  const argv = [...pinPrefix(opts.cpu), ...noSysTime, opts.chronyd, '-d', '-x', '-u', 'root', '-f', confPath];
  const { child, output } = spawnServer('chronyd', argv, dir);
  const pid = child.pid as number;
  try {
    await waitUntil(
      'chronyd',
      child,
      output,
      async () => {
        // setpriv (and taskset) exec chronyd in the same process: check the capabilities once it is chronyd.
        if (readFileSync(`/proc/${pid}/comm`, 'latin1').trim() !== 'chronyd') return false;
        assertWithoutSysTime(pid);
        return (await ntpAnswers(ntpPort)) && (await tcpAccepts(kePort));
      },
      15_000,
    );
    for (const member of processGroupMembers(pid)) assertWithoutSysTime(member);
  } catch (error) {
    await stopServer(child, pid);
    throw error;
  }
  return { name: 'chrony', pid, ntpPort, kePort, version, output, stop: () => stopServer(child, pid) };
}
