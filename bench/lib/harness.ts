/**
 * Pieces shared by the bench drivers (bench/server.ts, bench/mgmt.ts): option parsing, pinning, the figures of a
 * measured window, number and table formatting, and the optional CPU profile of ntptsd.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hotSpots, type HotSpot } from './profile.js';
import { pinPrefix, REPO_ROOT } from './servers.js';

// ---------------------------------------------------------------------------------------------------------------
// Options

export interface ArgReader {
  /** The text of `--name VALUE` or `--name=VALUE`; undefined when absent. */
  value(name: string): string | undefined;
  /** A number from `min` to `max` (`fallback` when absent). */
  num(name: string, fallback: number, min: number, max: number): number;
  /** One of `allowed` (`fallback` when absent). */
  choice<T extends string>(name: string, allowed: readonly T[], fallback: T): T;
  /** Whether the bare `--name` is given. */
  flag(name: string): boolean;
}

/** Reads `args`; with `known`, any `--option` not in it is an error. */
export function argReader(args: string[], known?: readonly string[]): ArgReader {
  if (known !== undefined) {
    for (const a of args) {
      if (a.startsWith('--') && !known.includes(a.slice(2).split('=')[0] as string)) throw new Error(`unknown option ${a} (known: ${known.map((k) => `--${k}`).join(' ')})`);
    }
  }
  const value = (name: string): string | undefined => {
    const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    const arg = args[i] as string;
    return arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args[i + 1];
  };
  return {
    value,
    num: (name, fallback, min, max) => {
      const text = value(name);
      if (text === undefined) return fallback;
      const n = Number(text);
      if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got ${text}`);
      return n;
    },
    choice: <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
      const text = value(name) ?? fallback;
      if (!(allowed as readonly string[]).includes(text)) throw new Error(`--${name} must be one of ${allowed.join(', ')}, got ${text}`);
      return text as T;
    },
    flag: (name) => args.includes(`--${name}`),
  };
}

/** The machine's CPU count and whether to pin: asked for, two CPUs or more, and taskset available. */
export function pinning(wanted: boolean): { cpus: number; pin: boolean } {
  const cpus = availableParallelism();
  return { cpus, pin: wanted && cpus >= 2 && pinPrefix(0).length > 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// Figures

/** What a load generator reports about its measured window. */
export interface WindowCounts {
  /** Operations completed inside the window. */
  readonly completed: number;
  /** Length of the window, ms. */
  readonly windowMs: number;
  /** The server's CPU (its process group) inside the window, µs. */
  readonly serverCpuUs: number;
  /** The generator's own CPU inside the window, µs. */
  readonly generatorCpuUs: number;
}

export interface Measurement<R extends WindowCounts> {
  readonly opsPerSecond: number;
  /** All of the server's CPU per completed operation. */
  readonly cpuUsPerOp: number;
  /** Server CPU over the window as a share of one CPU. */
  readonly serverCpuShare: number;
  readonly generatorCpuShare: number;
  readonly result: R;
}

export function measurement<R extends WindowCounts>(result: R): Measurement<R> {
  const seconds = result.windowMs / 1000;
  return {
    opsPerSecond: result.completed / seconds,
    cpuUsPerOp: result.completed > 0 ? result.serverCpuUs / result.completed : Number.NaN,
    serverCpuShare: result.serverCpuUs / 1e6 / seconds,
    generatorCpuShare: result.generatorCpuUs / 1e6 / seconds,
    result,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

/** Three significant digits at most (µs or ms). */
export function fmt3(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** A text table: the first column left-aligned, the others right-aligned. */
export function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n');
}

/** `extra` then `errors` as `key=count`, space-separated; `none` when there are none. */
export function listProblems(errors: Record<string, number>, extra: string[] = []): string {
  const all = [...extra, ...Object.entries(errors).map(([k, v]) => `${k}=${v}`)];
  return all.length === 0 ? 'none' : all.join(' ');
}

// ---------------------------------------------------------------------------------------------------------------
// CPU profile of ntptsd (--profile)

export interface Profile {
  readonly file: string;
  readonly busyMs: number;
  readonly spots: HotSpot[];
}

/** A fresh directory for `node --cpu-prof` when profiling, and the node arguments that write there. */
export function profiling(enabled: boolean): { dir: string | undefined; nodeArgs: { nodeArgs?: string[] } } {
  const dir = enabled ? mkdtempSync(join(tmpdir(), 'ntptsd-bench-profile-')) : undefined;
  return { dir, nodeArgs: dir !== undefined ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] } : {} };
}

/** The hot spots of the profile written in `dir`; a note when there is none. */
export function readProfile(dir: string | undefined, notes: string[]): Profile | undefined {
  if (dir === undefined) return undefined;
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) {
    notes.push(`profile: no .cpuprofile written in ${dir}`);
    return undefined;
  }
  return { file: join(dir, file), ...hotSpots(join(dir, file), REPO_ROOT) };
}

export function printProfile(profile: Profile, busyLabel: string): void {
  console.log(`\nntptsd CPU profile ${profile.file} (${profile.busyMs.toFixed(0)} ms ${busyLabel}), top functions by self time:`);
  for (const s of profile.spots) console.log(`  ${(s.share * 100).toFixed(1).padStart(5)}%  ${s.selfMs.toFixed(0).padStart(6)} ms  ${s.name}`);
}
