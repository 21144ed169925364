/** Reads a V8 .cpuprofile (node --cpu-prof) and lists the functions with the most self time. */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  readonly name: string;
  /** Self time, ms. */
  readonly selfMs: number;
  /** Share of the non-idle time. */
  readonly share: number;
}

/** Top `limit` functions by self time (idle and GC-free "(program)" time excluded from the shares). */
export function hotSpots(file: string, root: string, limit = 25): { busyMs: number; spots: HotSpot[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${url.startsWith('file://') ? relative(root, new URL(url).pathname) : url}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  self.delete('(idle)');
  const busyMs = [...self.values()].reduce((a, b) => a + b, 0);
  const spots = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, selfMs]) => ({ name, selfMs, share: selfMs / busyMs }));
  return { busyMs, spots };
}
