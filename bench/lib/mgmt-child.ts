/**
 * A load process of the benches (the NTP generator bench/lib/loadgen.js, or the management load
 * bench/lib/mgmt-load.js, both from the bench build), driven over IPC one request at a time: each request gets
 * exactly one reply, within a time limit. Optionally pinned to a CPU and run at a lower priority (nice). The process exits when the channel closes;
 * `close()` closes it and SIGKILLs this one child (by its PID) if it has not exited 5 s later.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { killOnExit, pinPrefix, REPO_ROOT } from './servers.js';

export class IpcChild<Request extends object, Reply extends object> {
  readonly #child: ChildProcess;
  readonly #name: string;
  #pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;

  /** `nice`: run at this niceness (0..19: only ever lower than ours), through nice(1). */
  constructor(name: string, script: string, cpu: number | undefined, nice = 0) {
    this.#name = name;
    const argv = [...pinPrefix(cpu), ...(nice > 0 ? ['nice', '-n', String(nice)] : []), process.execPath, script];
    this.#child = spawn(argv[0] as string, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    killOnExit(this.#child);
    this.#child.on('message', (reply: Reply) => {
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.resolve(reply);
    });
    this.#child.once('exit', (code, signal) => {
      this.#pending?.reject(new Error(`${this.#name} exited (${code ?? signal})`));
      this.#pending = undefined;
    });
  }

  /** The process's PID (taskset and setpriv exec it, so this is node's). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Sends `request` and resolves with the reply; rejects after `limitMs` without one. */
  request(request: Request, limitMs: number): Promise<Reply> {
    if (this.#pending !== undefined) return Promise.reject(new Error(`${this.#name}: a request is already waiting`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending = undefined;
        reject(new Error(`${this.#name} gave no answer within ${limitMs} ms`));
      }, limitMs);
      this.#pending = {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      this.#child.send(request);
    });
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    if (this.#child.connected) this.#child.disconnect();
    const timer = setTimeout(() => this.#child.pid !== undefined && process.kill(this.#child.pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
