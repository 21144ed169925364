/**
 * How busy the whole machine is, from /proc/stat (Linux), so that `npm run bench -- mgmt` can tell what other
 * processes took while it measured: busy time of all CPUs (user, nice, system, irq, softirq, steal; not idle or
 * iowait), minus the bench's own processes (their utime + stime from /proc/PID/stat, bench/lib/procstat.ts).
 */
import { readFileSync } from 'node:fs';
import { clockTicksPerSecond, cpuMicros } from './procstat.js';

/** Busy time summed over every CPU since boot, µs. */
export function systemBusyMicros(): number {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0] as string;
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"; guest time is already in user.
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return (busy * 1e6) / clockTicksPerSecond();
}

/** A span over which the CPU of processes other than the bench's own (`pids`, plus this process) is measured. */
export class OtherLoad {
  readonly #t0 = performance.now();
  readonly #busy0 = systemBusyMicros();
  readonly #self0 = process.cpuUsage();
  readonly #pids: readonly number[];
  readonly #ours0: number;

  /** `pids`: the bench's processes besides this one, running for the whole span. */
  constructor(pids: readonly number[]) {
    this.#pids = pids;
    this.#ours0 = cpuMicros(pids);
  }

  /** Other processes' CPU since the start, as a share of one CPU (2.0 = two CPUs fully busy); never below 0. */
  share(): number {
    const seconds = (performance.now() - this.#t0) / 1000;
    const self = process.cpuUsage(this.#self0);
    const ours = cpuMicros(this.#pids) - this.#ours0 + self.user + self.system;
    return Math.max(0, (systemBusyMicros() - this.#busy0 - ours) / 1e6 / seconds);
  }
}
