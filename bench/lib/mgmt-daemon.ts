/**
 * Starts ntptsd for `npm run bench -- mgmt`: as shipped (the bench build of bench/lib/servers.ts
 * `buildForBench`, run by plain node), the leader of its own process group (its CPU is read from /proc by the
 * NTP generator), optionally pinned to a CPU, dying with the bench (setpriv --pdeathsig). Loopback only:
 *
 * - NTP on 127.0.0.1, a free port picked by the daemon (port 0), rate limiting off;
 * - management over TLS 1.3 on 127.0.0.1 (port 0; ALPN ntp-mgmt/1, the bench CA's localhost certificate),
 *   anonymous role `none`, one `monitor` token (random, only its SHA-256 in the file);
 * - management on a Unix socket in the state directory (the peer is admin);
 * - no NTS-KE listener: the bench does not use it.
 *
 * The bound addresses are read from the daemon's "ready" log line. Only this process is ever signalled, by PID:
 * SIGTERM, then SIGKILL after 5 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinPrefix, REPO_ROOT, type BenchCa } from './servers.js';

export interface MgmtDaemon {
  readonly pid: number;
  readonly ntpPort: number;
  readonly tls: { readonly host: string; readonly port: number };
  readonly socketPath: string;
  /** The monitor token for TLS sessions. */
  readonly token: string;
  readonly version: string;
  /** The daemon's output (the last ~64 KiB), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
});

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, cmd)));
}

interface ReadyLine {
  msg: 'ready';
  ntp: string[];
  listeners: Array<{ name: string; services: string[]; address: string }>;
}

/** `host:port` or `[v6]:port` → its port. */
function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in "${address}"`);
  return port;
}

export async function startMgmtDaemon(opts: {
  dir: string;
  build: string;
  ca: BenchCa;
  cpu?: number;
  logLevel?: string;
  /** Extra arguments for node (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
}): Promise<MgmtDaemon> {
  const token = randomBytes(24).toString('base64url');
  const stateDir = join(opts.dir, 'state');
  const socketPath = join(stateDir, 'mgmt.sock');
  const configPath = join(opts.dir, 'ntptsd.toml');
  writeFileSync(
    configPath,
    `[daemon]
state-dir = "${stateDir}"
log-level = "${opts.logLevel ?? 'info'}"

[tls]
certificate = "${opts.ca.chainFile}"
private-key = "${opts.ca.keyFile}"

[ntp]
listen = ["127.0.0.1:0"]

[ntp.rate-limit]
enabled = false

[[listener]]
address = "127.0.0.1:0"
services = ["mgmt"]
default-service = "mgmt"
max-connections = 1024
max-connections-per-address = 1024

[[listener]]
path = "${socketPath}"
services = ["mgmt"]
max-connections = 1024
max-connections-per-address = 1024

[mgmt]
anonymous = "none"

[[mgmt.token]]
name = "bench"
role = "monitor"
sha256 = "${createHash('sha256').update(token, 'utf8').digest('hex')}"
`,
  );
  const entry = join(opts.build, 'src', 'cli', 'ntptsd.js');
  const deathSignal = onPath('setpriv') ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
  const argv = [...pinPrefix(opts.cpu), ...deathSignal, process.execPath, ...(opts.nodeArgs ?? []), entry, '-c', configPath, '--log-format', 'json'];
  // detached: the daemon leads a new process group, which is how the NTP generator finds its CPU.
  const child = spawn(argv[0] as string, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  started.add(child);
  const pid = child.pid as number;

  let text = '';
  let partial = '';
  let ready: ReadyLine | undefined;
  const onChunk = (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    text += s;
    if (text.length > 128 * 1024) text = text.slice(-64 * 1024);
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
  child.stdout?.on('data', onChunk);
  child.stderr?.on('data', onChunk);
  child.once('error', (error) => onChunk(Buffer.from(`\n[ntptsd: spawn failed: ${error.message}]\n`)));
  const output = () => text;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    started.delete(child);
  };

  const deadline = Date.now() + 30_000;
  while (ready === undefined) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`ntptsd exited early (${child.exitCode ?? child.signalCode}):\n${text}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`ntptsd not ready after 30 s:\n${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  try {
    const ntp = ready.ntp[0];
    const tls = ready.listeners.find((l) => l.services.includes('mgmt') && /:\d+$/.test(l.address) && !l.address.startsWith('/'));
    if (ntp === undefined || tls === undefined) throw new Error(`the ready line lacks the NTP or the TLS management address: ${JSON.stringify(ready)}`);
    if (!existsSync(socketPath)) throw new Error(`no management socket at ${socketPath}`);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    return {
      pid,
      ntpPort: portOf(ntp),
      tls: { host: '127.0.0.1', port: portOf(tls.address) },
      socketPath,
      token,
      version: `ntptsd ${pkg.version} (tsc build, node ${process.version})`,
      output,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
