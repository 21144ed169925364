/**
 * Runs the command-line programs of src/cli the way a user does (`node --import tsx src/cli/NAME.ts ARGS…`,
 * from the repository root) and collects what they print.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `ntptsd ARGS` / `ntptsc ARGS` exactly as `npm start` runs them: spawned, to completion. */
export function runCli(entry: 'ntptsd' | 'ntptsc', ...args: string[]): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `src/cli/${entry}.ts`, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Output sinks for a CLI `main()` run in this process, and what they collected. */
export interface CapturedIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Runs a CLI `main()` in this process with `stdout`/`stderr` collected: for usage errors, no spawn. */
export async function runInProcess(main: (io: CapturedIo) => Promise<number>): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main({ stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

/** Exit 1 and exactly one `ntptsc: ...` line on stderr, matching `reason`. */
export function assertFailure(run: CliRun, reason: RegExp): void {
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /^ntptsc: [^\n]+\n$/);
  assert.match(run.stderr, reason);
}

/** Exit 2 (usage), nothing on stdout, one `ntptsc: ...` line on stderr matching `reason`. */
export function assertUsage(run: CliRun, reason: RegExp): void {
  assert.equal(run.code, 2, `${run.stdout}${run.stderr}`);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^ntptsc: [^\n]+\n$/);
  assert.match(run.stderr, reason);
}
