/**
 * Starts the real ntptsd (src/cli/ntptsd.ts through tsx) as a child process on loopback for end-to-end tests,
 * waits for its "ready" log line (never a fixed sleep) and cleans up after the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

export interface RunningDaemon {
  readonly pid: number;
  readonly dir: string;
  readonly stateDir: string;
  readonly configPath: string;
  /** The ready line's fields: ntp addresses and listeners. */
  readonly ready: { ntp: string[]; ntpIo: 'batch' | 'dgram'; listeners: Array<{ name: string; services: string[]; address: string }> };
  /** Every JSON log line so far. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the first log line matching `predicate` (seen already or arriving within `timeoutMs`). */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  signal(name: NodeJS.Signals): void;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  readonly process: ChildProcess;
}

export interface DaemonOptions {
  /** TOML text; `STATE_DIR` is replaced by the state directory. */
  readonly config: string;
  /** Reuse this directory (e.g. to restart on the same state); otherwise a fresh temp dir. */
  readonly dir?: string;
  readonly readyTimeoutMs?: number;
  /** Keep the directory after stop (for restart tests); the caller removes it. */
  readonly keepDir?: boolean;
}

const running = new Set<RunningDaemon>();
process.on('exit', () => {
  for (const daemon of running) daemon.process.kill('SIGKILL');
});

/**
 * Ports for daemons under test are picked below the kernel's ephemeral range (32768-60999 on Linux): a port the
 * kernel hands out for "port 0" can be taken by any outgoing connection of a concurrent test (as its source port)
 * between the moment it is found free and the moment the daemon binds it. Random within the range, checked by
 * binding it, so concurrent test processes rarely pick the same one.
 */
const TEST_PORT_LOW = 20_000;
const TEST_PORT_HIGH = 32_767;

function bindable(kind: 'udp' | 'tcp', port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (kind === 'udp') {
      const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', () => socket.close(() => resolve(false)));
      socket.bind(port, host, () => socket.close(() => resolve(true)));
    } else {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, host, () => server.close(() => resolve(true)));
    }
  });
}

/** A port free right now on `host`, outside the ephemeral range (see above). */
export async function freeTestPort(kind: 'udp' | 'tcp', host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = TEST_PORT_LOW + Math.floor(Math.random() * (TEST_PORT_HIGH - TEST_PORT_LOW + 1));
    if (await bindable(kind, port, host)) return port;
  }
  throw new Error(`no free ${kind} port in ${TEST_PORT_LOW}-${TEST_PORT_HIGH}`);
}

export function freeUdpPort(): Promise<number> {
  return freeTestPort('udp');
}

export function freeTcpPort(): Promise<number> {
  return freeTestPort('tcp');
}

/** A loopback config: NTP on `ntpPort`, NTS-KE on `kePort`, plus `extra` TOML appended. */
export function loopbackConfig(ntpPort: number, kePort: number, extra = ''): string {
  return `[daemon]
state-dir = "STATE_DIR"
log-level = "debug"

[ntp]
listen = ["127.0.0.1:${ntpPort}"]

[nts]
ntp-port = ${ntpPort}

[[listener]]
address = "127.0.0.1:${kePort}"
services = ["nts-ke"]
default-service = "nts-ke"
${extra}`;
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ntptsd-e2e-'));
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'ntptsd.toml');
  writeFileSync(configPath, options.config.replaceAll('STATE_DIR', stateDir));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/ntptsd.ts', '-c', configPath, '--log-format', 'json'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ predicate: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let buffered = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: text, raw: true };
      }
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const waitForLog = (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const seen = lines.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; logs:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      waiters.push({ predicate, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  };

  const readyOrExit = await Promise.race([
    waitForLog((l) => l.msg === 'ready', options.readyTimeoutMs ?? 15_000),
    exited.then((code) => {
      throw new Error(`ntptsd exited with ${code} before it was ready:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    }),
  ]).catch((error: unknown) => {
    child.kill('SIGKILL');
    if (options.dir === undefined && options.keepDir !== true) rmSync(dir, { recursive: true, force: true });
    throw error;
  });

  const daemon: RunningDaemon = {
    pid: child.pid as number,
    dir,
    stateDir,
    configPath,
    ready: readyOrExit as unknown as RunningDaemon['ready'],
    logs: () => [...lines],
    waitForLog,
    signal: (name) => child.kill(name),
    async stop() {
      running.delete(daemon);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      if (options.dir === undefined && options.keepDir !== true) rmSync(dir, { recursive: true, force: true });
      return code;
    },
    process: child,
  };
  running.add(daemon);
  return daemon;
}

/** Runs the daemon with a config expected to fail; returns its exit code and log lines. */
export async function runDaemonExpectingFailure(config: string, dir?: string): Promise<{ code: number | null; logs: Array<Record<string, unknown>> }> {
  const base = dir ?? mkdtempSync(join(tmpdir(), 'ntptsd-e2e-'));
  const configPath = join(base, 'ntptsd.toml');
  writeFileSync(configPath, config.replaceAll('STATE_DIR', join(base, 'state')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/ntptsd.ts', '-c', configPath, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (text += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  if (dir === undefined) rmSync(base, { recursive: true, force: true });
  const logs = text.split('\n').filter(Boolean).map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return { msg: l, raw: true };
    }
  });
  return { code, logs };
}
