/**
 * CPU time of server processes from /proc (Linux): utime + stime of /proc/PID/stat, which covers every thread
 * of the process. A server that forks helpers (chronyd's NTS-KE helper) is measured as its whole process
 * group: the launchers start each server as the leader of its own group.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of utime/stime (100 on practically every Linux). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
    const n = Number(r.stdout?.trim());
    ticksPerSecond = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

interface StatFields {
  pid: number;
  ppid: number;
  pgrp: number;
  /** utime + stime, clock ticks. */
  ticks: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined; // gone
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, pgrp 5, utime 14, stime 15.
  return { pid, ppid: Number(rest[1]), pgrp: Number(rest[2]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/** Every live process whose process group is `pgid` (the leader included). */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readStat(pid);
    if (stat !== undefined && stat.pgrp === pgid) members.push(pid);
  }
  return members;
}

/** utime + stime summed over `pids`, in microseconds (processes that exited count as 0). */
export function cpuMicros(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return (ticks * 1e6) / clockTicksPerSecond();
}
