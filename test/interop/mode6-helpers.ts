// Helpers for the mode 6 interop tests: an NTPsec with real associations, and a way to run our client next to
// it. NTPsec's ports are fixed, so it runs in a namespace of its own, and so does its upstream (a chronyd with
// `local stratum 8` serving on UDP 123); a veth pair links the two namespaces. Nothing here touches the host's
// network: the veth pair is created directly between the two namespaces and vanishes with them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { TSX_LOADER, createNetns, makeTempDir, runInNetns, startChronyd, startNtpsec, waitFor, type Chronyd, type Netns, type NtpsecNtpd } from './peers.js';

/** Keys of the test key file, in NTPsec's ntp.keys syntax. Key 1 is the control key. */
export const TEST_KEYS = [
  { keyId: 1, type: 'MD5', secret: 'mode6-control' },
  { keyId: 2, type: 'SHA1', secret: '0123456789abcdef0123456789abcdef01234567' },
  { keyId: 3, type: 'AES128CMAC', secret: '000102030405060708090a0b0c0d0e0f' },
] as const;
export const CONTROL_KEY_ID = 1;

/** Writes ntp.keys (mode 0600) into `dir`; returns its path. */
export function writeTestKeys(dir: string): string {
  const path = join(dir, 'ntp.keys');
  writeFileSync(path, `# mode 6 interop keys\n${TEST_KEYS.map((k) => `${k.keyId} ${k.type} ${k.secret}`).join('\n')}\n`, { mode: 0o600 });
  return path;
}

let linkCounter = 0;

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
}

/**
 * Links two namespaces with a veth pair: `a` gets `addressA`, `b` gets `addressB` (both /30 in CIDR form).
 * The pair is created inside `a` with its peer end placed in `b`, so it never exists in the host namespace.
 */
export function linkNetns(a: Netns, b: Netns, addressA: string, addressB: string, t: TestContext): void {
  const n = `${process.pid % 100000}${++linkCounter}`;
  const endA = `m6a${n}`.slice(0, 15);
  const endB = `m6b${n}`.slice(0, 15);
  ip(['-n', a.name, 'link', 'add', endA, 'type', 'veth', 'peer', 'name', endB, 'netns', b.name]);
  t.after(() => {
    spawnSync('ip', ['-n', a.name, 'link', 'del', endA], { timeout: 10_000 }); // gone already if the namespace is
  });
  // No IPv6 link-local addresses: they appear a moment after the link comes up and NTPsec would pick them up
  // as new interfaces halfway through a test.
  ip(['-n', a.name, 'link', 'set', endA, 'addrgenmode', 'none']);
  ip(['-n', b.name, 'link', 'set', endB, 'addrgenmode', 'none']);
  ip(['-n', a.name, 'addr', 'add', addressA, 'dev', endA]);
  ip(['-n', b.name, 'addr', 'add', addressB, 'dev', endB]);
  ip(['-n', a.name, 'link', 'set', endA, 'up']);
  ip(['-n', b.name, 'link', 'set', endB, 'up']);
}

export interface Mode6Lab {
  netns: Netns;
  upstreamNetns: Netns;
  ntpd: NtpsecNtpd;
  upstream: Chronyd;
  dir: string;
  keysPath: string;
  /** The address NTPsec reaches its upstream at. */
  upstreamAddress: string;
  /** A configured server that cannot be reached (no route): listed by READSTAT, reach 0. */
  unreachableAddress: string;
}

/**
 * NTPsec in orphan mode (`tos orphan 10`, `disable ntp`: it never touches a clock) with the test keys,
 * `controlkey 1`, and two associations: a chronyd upstream at stratum 8 it reaches over a veth pair, polled
 * every 8 s, and an unreachable 192.0.2.1. Returns once NTPsec has heard from the upstream and is in orphan
 * mode (about 2.5 s after start). Observed: NTPsec selects the upstream as sys.peer only ~11 s after start,
 * whatever the poll interval (4 or 8 s), so the lab does not wait for that.
 */
export async function startMode6Lab(t: TestContext): Promise<Mode6Lab> {
  const dir = makeTempDir('mode6-lab', t);
  const keysPath = writeTestKeys(dir);
  const netns = createNetns('m6-ntpsec', t);
  const upstreamNetns = createNetns('m6-upstream', t);
  linkNetns(netns, upstreamNetns, '10.123.45.1/30', '10.123.45.2/30', t);
  const upstreamAddress = '10.123.45.2';
  const unreachableAddress = '192.0.2.1';
  const upstream = await startChronyd({
    t,
    netns: upstreamNetns,
    name: 'm6-upstream-chronyd',
    confLines: ['port 123', `bindaddress ${upstreamAddress}`, 'allow 10.123.45.0/30', 'local stratum 8'],
  });
  const ntpd = await startNtpsec({
    t,
    netns,
    name: 'm6-ntpsec',
    confLines: [
      'tos orphan 10 orphanwait 1',
      `keys ${keysPath}`,
      `trustedkey ${TEST_KEYS.map((k) => k.keyId).join(' ')}`,
      `controlkey ${CONTROL_KEY_ID}`,
      `server ${upstreamAddress} iburst minpoll 3 maxpoll 3`,
      `server ${unreachableAddress} minpoll 4 maxpoll 4`,
    ],
  });
  await waitFor(
    'NTPsec to reach its chronyd upstream',
    async () => {
      const row = parseNtpqPeers(await ntpd.ntpq(['-p'])).find((r) => r.remote === upstreamAddress);
      return row !== undefined && row.reach !== '0' && row.st === '8' ? row : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 250 },
  );
  // Orphan mode takes over about a second after start (leap 11 → 00, stratum 10): wait for it, so the state
  // the tests compare only changes again when NTPsec selects its upstream (~10 s later) or at a poll.
  await waitFor('NTPsec to enter orphan mode', async () => /leap=00/.test(await ntpd.ntpq(['-c', 'rv 0 leap'])), { timeoutMs: 10_000, intervalMs: 250 });
  return { netns, upstreamNetns, ntpd, upstream, dir, keysPath, upstreamAddress, unreachableAddress };
}

export interface NtpqPeerLine {
  line: string;
  tally: string;
  remote: string;
  refid: string;
  st: string;
  t: string;
  when: string;
  poll: string;
  reach: string;
  delay: string;
  offset: string;
  jitter: string;
}

/**
 * The rows of `ntpq -p -n` (80 columns): tally, remote (15), refid (15), then blank-separated columns. Only
 * lines after the "remote refid" header count, so the output of other commands around it is ignored. A bare
 * row (no header at all) is parsed too.
 */
export function parseNtpqPeers(text: string): NtpqPeerLine[] {
  const rows: NtpqPeerLine[] = [];
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^\s+remote\s+refid\s+st t when poll reach/.test(l));
  for (const line of header < 0 ? lines : lines.slice(header + 1)) {
    if (line.startsWith('=')) continue;
    if (line.trim() === '') {
      if (header >= 0 && rows.length > 0) break;
      continue;
    }
    const [st = '', t = '', when = '', poll = '', reach = '', delay = '', offset = '', jitter = ''] = line.slice(32).trim().split(/\s+/);
    rows.push({ line, tally: line[0] ?? '', remote: line.slice(1, 16).trim(), refid: line.slice(17, 32).trim(), st, t, when, poll, reach, delay, offset, jitter });
  }
  return rows;
}

/**
 * Writes `source` (an ES module in TypeScript that prints one JSON line last) into the lab's temp dir and runs
 * it inside the namespace with tsx; returns the parsed JSON. The script receives `arg` as its first argument.
 */
export async function runScriptInNetns<T>(t: TestContext, netns: Netns, name: string, source: string, arg: unknown): Promise<T> {
  const dir = makeTempDir(`m6-${name}`, t);
  const script = join(dir, `${name}.mts`);
  writeFileSync(script, source);
  const run = await runInNetns(netns, process.execPath, ['--import', TSX_LOADER, script, JSON.stringify(arg)], { timeoutMs: 15_000 });
  assert.equal(run.code, 0, `${name} failed (exit ${run.code}, signal ${run.signal}):\n${run.stdout}\n${run.stderr}`);
  const last = run.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    assert.fail(`${name} printed no JSON:\n${run.stdout}\n${run.stderr}`);
  }
}
