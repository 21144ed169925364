// ChronySource against real chronyd processes (unpacked into .peers/ by scripts/install-peers.sh, run without
// CAP_SYS_TIME and with -x by the interop harness), and against a stand-in chronyc script for the failures a
// real one cannot be made to produce on demand (garbage, hanging).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { queryNtp } from '../../src/client/ntp.js';
import { CHRONY_REFID_LOCAL, parseChronyTracking } from '../../src/proto/chrony/tracking.js';
import { UNSYNCHRONISED_REFID } from '../../src/proto/ntp/quality.js';
import type { TimeQuality } from '../../src/proto/ntp/server.js';
import { ChronySource } from '../../src/source/chrony.js';
import type { ChronySourceSettings } from '../../src/source/chrony.js';
import { freePort, makeTempDir, peerCommand, requirePeers, startChronyd, waitFor } from '../interop/peers.js';
import type { Chronyd } from '../interop/peers.js';

interface LogEntry {
  level: number;
  msg: string;
  reason?: string;
  [key: string]: unknown;
}

interface Change {
  before: TimeQuality;
  after: TimeQuality;
  reason: string;
}

const WARN = 40;
const nowMicros = (): number => Date.now() * 1000;

function capture(): { logger: Logger; entries: LogEntry[]; changes: Change[]; onChange: (before: TimeQuality, after: TimeQuality, reason: string) => void } {
  const entries: LogEntry[] = [];
  const changes: Change[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void entries.push(JSON.parse(line) as LogEntry) });
  return { logger, entries, changes, onChange: (before, after, reason) => void changes.push({ before, after, reason }) };
}

function startSource(t: { after: (fn: () => Promise<void>) => void }, settings: ChronySourceSettings): ReturnType<typeof capture> & { source: ChronySource } {
  const c = capture();
  const source = new ChronySource(settings, { logger: c.logger, onChange: c.onChange });
  t.after(() => source.stop());
  return { ...c, source };
}

/** The .peers chronyc pointed at a harness chronyd's command socket. */
function chronycOf(chrony: Chronyd): Pick<ChronySourceSettings, 'chronyc' | 'args'> {
  return { chronyc: peerCommand('chronyc', []).file, args: ['-h', chrony.socketPath] };
}

function assertUnsynchronised(q: TimeQuality): void {
  assert.equal(q.leap, 'unsynchronized');
  assert.equal(q.stratum, 16);
  assert.equal(q.refid, UNSYNCHRONISED_REFID);
  assert.equal(q.referenceTimeMicros, 0);
}

/** Alive and not a zombie (an orphan killed under a non-reaping init stays in the table as Z). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function failures(entries: readonly LogEntry[], pattern: RegExp): LogEntry | undefined {
  return entries.find((e) => e.level === WARN && e.msg === 'chrony poll failed' && pattern.test(e.reason ?? ''));
}

test('mirrors a chronyd serving its local reference at stratum 7; unsynchronised once chronyd is gone for the grace period', { timeout: 20_000 }, async (t) => {
  requirePeers(t);
  const ntpPort = await freePort('udp');
  const chrony = await startChronyd({ t, name: 'local7', confLines: ['local stratum 7', `port ${ntpPort}`, 'allow 127.0.0.1'] });
  // What chronyc itself says, through the parser: the local reference is 7F7F0101 at the configured stratum.
  const direct = parseChronyTracking(await chrony.chronyc(['-c', 'tracking']));
  assert.ok(direct.ok);
  assert.equal(direct.value.refid, CHRONY_REFID_LOCAL);
  assert.equal(direct.value.stratum, 7);
  assert.equal(direct.value.leap, 'normal');

  const graceMs = 800;
  const { source, entries, changes } = startSource(t, { ...chronycOf(chrony), pollMs: 150, graceMs, timeoutMs: 3000 });
  await source.ready();
  assert.ok(source.synchronised, source.describe());
  const refTime = source.lastTracking?.refTimeMicros ?? 0;
  assert.ok(refTime > 0 && refTime < nowMicros());
  assert.deepEqual(source.current(nowMicros()), {
    leap: 'none',
    stratum: 7,
    refid: CHRONY_REFID_LOCAL,
    precision: -20,
    rootDelayMicros: 0,
    rootDispersionMicros: 0,
    referenceTimeMicros: refTime,
  });
  assert.equal(source.describe(), 'chrony (stratum 7, refid 127.127.1.1)');
  // What chronyd itself answers over NTP is what we serve.
  const answer = await queryNtp('127.0.0.1', { port: ntpPort, timeoutMs: 3000 });
  const served = source.current(nowMicros());
  assert.equal(answer.leap, served.leap);
  assert.equal(answer.stratum, served.stratum);
  assert.equal(answer.refid, '127.127.1.1');
  assert.equal(answer.rootDelay, 0);
  assert.equal(answer.rootDispersion, 0);
  assert.ok(answer.referenceTime !== null && Math.abs(answer.referenceTime * 1e6 - served.referenceTimeMicros) <= 2, `chronyd's reference time ${answer.referenceTime} vs ours ${served.referenceTimeMicros}`);
  assert.equal(changes.length, 1);
  assertUnsynchronised(changes[0]?.before as TimeQuality);
  assert.equal(changes[0]?.after.stratum, 7);
  assert.match(changes[0]?.reason ?? '', /chronyd synchronised: stratum 7, refid 127\.127\.1\.1/);

  await chrony.stop();
  const stoppedAt = Date.now();
  const failure = await waitFor('the failed poll to be logged', () => failures(entries, /exited with status 1: Could not open connection to daemon/), { timeoutMs: 3000, intervalMs: 10 });
  assert.ok(failure);
  // Within the grace period the last report is still served, and says the poll failed.
  assert.ok(source.synchronised);
  assert.equal(source.current(nowMicros()).stratum, 7);
  assert.match(source.describe(), /^chrony \(stratum 7, refid 127\.127\.1\.1; last poll failed: .*Could not open connection/);

  await waitFor('the source to give up on chronyd', () => !source.synchronised, { timeoutMs: 5000, intervalMs: 10 });
  assert.ok(Date.now() - stoppedAt >= graceMs - 20, `unsynchronised after ${Date.now() - stoppedAt} ms, before the ${graceMs} ms grace`);
  assertUnsynchronised(source.current(nowMicros()));
  assert.equal(changes.length, 2);
  assert.equal(changes[1]?.before.stratum, 7);
  assert.equal(changes[1]?.before.refid, CHRONY_REFID_LOCAL);
  assertUnsynchronised(changes[1]?.after as TimeQuality);
  assert.match(changes[1]?.reason ?? '', /no good answer from chronyd for 800 ms: .*Could not open connection to daemon/);
  assert.match(source.describe(), /^chrony \(unsynchronised: no good answer/);
  // One log line per distinct failure, not one per poll.
  assert.equal(entries.filter((e) => e.msg === 'chrony poll failed').length, 1);
});

test('a chronyd with no sources and no local reference is reported unsynchronised', { timeout: 20_000 }, async (t) => {
  requirePeers(t);
  const chrony = await startChronyd({ t, name: 'nosources', confLines: [] });
  const { source, changes, entries } = startSource(t, { ...chronycOf(chrony), pollMs: 100, graceMs: 500, timeoutMs: 3000 });
  await source.ready();
  await source.poll();
  assert.equal(source.synchronised, false);
  assertUnsynchronised(source.current(nowMicros()));
  assert.equal(source.lastTracking?.leap, 'unsynchronised');
  assert.equal(source.lastTracking?.stratum, 0);
  assert.equal(source.describe(), 'chrony (unsynchronised: chronyd is not synchronised (stratum 0, reference ID 00000000, leap status unsynchronised))');
  // Unsynchronised from the start to now: nothing changed that clients could see, and chronyd did answer.
  assert.equal(changes.length, 0);
  assert.equal(entries.filter((e) => e.level >= WARN).length, 0);
});

test('mirrors a chronyd synchronised to an upstream chronyd: its stratum, the upstream address as refid, its root delay', { timeout: 20_000 }, async (t) => {
  requirePeers(t);
  const port = await freePort('udp');
  const ntpPort = await freePort('udp');
  await startChronyd({ t, name: 'upstream', confLines: [`port ${port}`, 'allow 127.0.0.1', 'local stratum 2'] });
  const chrony = await startChronyd({
    t,
    name: 'downstream',
    confLines: [`server 127.0.0.1 port ${port} iburst minpoll -4 maxpoll -4`, `port ${ntpPort}`, 'allow 127.0.0.1'],
  });
  const { source, changes } = startSource(t, { ...chronycOf(chrony), pollMs: 100, graceMs: 2000, timeoutMs: 3000, precision: -24 });
  await waitFor('chronyd to synchronise to its upstream', () => source.synchronised, { timeoutMs: 15_000, intervalMs: 50 });

  const now = nowMicros();
  const q = { ...source.current(now) };
  assert.equal(q.leap, 'none');
  assert.equal(q.stratum, 3);
  assert.equal(q.refid, 0x7f000001);
  assert.equal(q.precision, -24);
  assert.ok(q.referenceTimeMicros <= now && q.referenceTimeMicros > now - 10_000_000, `reference time ${q.referenceTimeMicros} vs now ${now}`);
  assert.ok(q.rootDelayMicros >= 0 && q.rootDelayMicros < 10_000, `root delay ${q.rootDelayMicros} µs`);
  // Just after its first samples chronyd reports dispersions of about a second (seen: 1.02 s); any sane value is
  // below NTP's maximum dispersion of 16 s (RFC 5905 §7.2, MAXDISP).
  assert.ok(q.rootDispersionMicros >= 0 && q.rootDispersionMicros < 16_000_000, `root dispersion ${q.rootDispersionMicros} µs`);
  assert.equal(source.describe(), 'chrony (stratum 3, refid 127.0.0.1)');
  // Dispersion keeps growing between polls, as chronyd's own does.
  assert.ok(source.current(now + 60_000_000).rootDispersionMicros > q.rootDispersionMicros);

  // The same values chronyc shows (stratum and refid are stable once synchronised).
  const direct = parseChronyTracking(await chrony.chronyc(['-c', 'tracking']));
  assert.ok(direct.ok);
  assert.equal(direct.value.stratum, q.stratum);
  assert.equal(direct.value.refid, q.refid);
  assert.equal(direct.value.name, '127.0.0.1');
  // And what chronyd answers over NTP: same leap, stratum and refid; delay and dispersion of the same few µs.
  // Right after synchronising chronyd's dispersion still falls fast between two reads: compare a fresh reading
  // with the answer that follows it, until both come from the same settled state.
  let last: string = '';
  await waitFor(
    'our reading and chronyd\'s answer to agree',
    async () => {
      await source.poll();
      const answer = await queryNtp('127.0.0.1', { port: ntpPort, timeoutMs: 3000 });
      const served = source.current(nowMicros());
      assert.equal(answer.leap, served.leap);
      assert.equal(answer.stratum, served.stratum);
      assert.equal(answer.refid, '127.0.0.1');
      last = `root delay ${answer.rootDelay} s vs ${served.rootDelayMicros} µs, root dispersion ${answer.rootDispersion} s vs ${served.rootDispersionMicros} µs`;
      return Math.abs(answer.rootDelay * 1e6 - served.rootDelayMicros) < 1000 && Math.abs(answer.rootDispersion * 1e6 - served.rootDispersionMicros) < 1000;
    },
    { timeoutMs: 10_000, intervalMs: 200 },
  ).catch((error: unknown) => assert.fail(`${String(error)}; last: ${last}`));

  const change = changes.at(-1);
  assertUnsynchronised(change?.before as TimeQuality);
  assert.equal(change?.after.stratum, 3);
  assert.match(change?.reason ?? '', /stratum 3, refid 127\.0\.0\.1, leap none/);
});

// A stand-in chronyc: what it does is read from a file the test rewrites, so one source sees chronyc succeed,
// print garbage, hang and fail in turn.
const GOOD_LINE = '7F000001,127.0.0.1,3,1795711143.518564733,-0.000000616,0.000000098,0.000000229,0.080,0.015,0.506,0.000002762,0.000001360,0.1,Normal';
const SCRIPT = `#!/bin/sh
dir=$(dirname "$0")
echo "$$" > "$dir/sh.pid"
echo "$*" > "$dir/args"
echo run >> "$dir/runs"
case "$(cat "$dir/mode")" in
  good) echo '${GOOD_LINE}' ;;
  garbage) echo 'this is not, a tracking report' ;;
  fail) echo '506 Cannot talk to daemon' >&2; exit 1 ;;
  hang) sleep 30 & echo "$!" > "$dir/sleep.pid"; wait ;;
esac
`;

function fakeChronyc(t: Parameters<typeof makeTempDir>[1], mode: string): { path: string; dir: string; setMode: (m: string) => void; runs: () => number } {
  const dir = makeTempDir('fake-chronyc', t);
  const path = join(dir, 'chronyc');
  writeFileSync(path, SCRIPT);
  chmodSync(path, 0o755);
  // Replaced atomically: a stand-in reading a half-written file would fail for another reason than the test's.
  const setMode = (m: string): void => {
    writeFileSync(join(dir, 'mode.new'), m);
    renameSync(join(dir, 'mode.new'), join(dir, 'mode'));
  };
  setMode(mode);
  const runs = (): number => (existsSync(join(dir, 'runs')) ? readFileSync(join(dir, 'runs'), 'utf8').split('\n').filter(Boolean).length : 0);
  return { path, dir, setMode, runs };
}

test('stand-in chronyc: garbage, a hang and an error exit are logged with their reason and unsynchronise after the grace period', { timeout: 20_000 }, async (t) => {
  const fake = fakeChronyc(t, 'good');
  const graceMs = 500;
  const { source, entries, changes } = startSource(t, { chronyc: fake.path, args: ['-h', '/run/chrony/chronyd.sock'], pollMs: 100, graceMs, timeoutMs: 300 });
  await source.ready();
  assert.ok(source.synchronised);
  assert.equal(readFileSync(join(fake.dir, 'args'), 'utf8').trim(), '-h /run/chrony/chronyd.sock -c -n tracking');
  assert.equal(source.current(nowMicros()).stratum, 3);
  assert.equal(changes.length, 1);

  const step = async (mode: string, pattern: RegExp): Promise<void> => {
    fake.setMode(mode);
    const since = Date.now();
    await waitFor(`the ${mode} poll to be logged`, () => failures(entries, pattern), { timeoutMs: 3000, intervalMs: 10 });
    assert.ok(source.synchronised, `${mode}: still served within the grace period`);
    const count = changes.length;
    await waitFor(`${mode}: unsynchronised after the grace period`, () => !source.synchronised, { timeoutMs: 3000, intervalMs: 10 });
    assert.ok(Date.now() - since >= graceMs - 20);
    assertUnsynchronised(source.current(nowMicros()));
    assert.equal(changes.length, count + 1);
    assert.match(changes.at(-1)?.reason ?? '', pattern);
    // Back to a good chronyc: served again at once, and the recovery is logged.
    fake.setMode('good');
    await waitFor(`recovery after ${mode}`, () => source.synchronised, { timeoutMs: 3000, intervalMs: 10 });
    assert.equal(changes.length, count + 2);
    assert.equal(changes.at(-1)?.after.stratum, 3);
    assert.ok(entries.some((e) => e.msg === 'chronyd answers again' && pattern.test(String(e['previousFailure']))));
  };

  await step('garbage', /unexpected output from .*chronyc \(CHRONY_FIELD_COUNT\): expected 14 comma-separated fields, got 2: "this is not, a tracking report"/);
  await step('fail', /chronyc exited with status 1: 506 Cannot talk to daemon/);

  await step('hang', /chronyc did not answer within 300 ms \(killed\)/);
  // The timeout killed chronyc's whole process group, not just the shell.
  const sleepPid = Number(readFileSync(join(fake.dir, 'sleep.pid'), 'utf8'));
  await waitFor('the hung child to be gone', () => !alive(sleepPid), { timeoutMs: 2000, intervalMs: 20 });
});

test('a chronyc that cannot be run is a logged failure, never a crash; chronyd stays unsynchronised', { timeout: 20_000 }, async (t) => {
  const dir = makeTempDir('no-chronyc', t);
  const { source, entries, changes } = startSource(t, { chronyc: join(dir, 'chronyc'), args: [], pollMs: 100, graceMs: 0, timeoutMs: 1000 });
  await source.ready();
  assert.equal(source.synchronised, false);
  assertUnsynchronised(source.current(nowMicros()));
  assert.match(source.describe(), /^chrony \(unsynchronised: cannot run .*chronyc: ENOENT\)$/);
  assert.ok(failures(entries, /ENOENT/));
  assert.equal(changes.length, 0);
});

test('stop() kills a running chronyc by its process group and polls no more', { timeout: 20_000 }, async (t) => {
  const fake = fakeChronyc(t, 'hang');
  const { source } = startSource(t, { chronyc: fake.path, args: [], pollMs: 50, graceMs: 100, timeoutMs: 10_000 });
  const pids = await waitFor(
    'chronyc to be running',
    () => {
      const files = ['sh.pid', 'sleep.pid'].map((f) => join(fake.dir, f));
      return files.every((f) => existsSync(f) && readFileSync(f, 'utf8').trim() !== '') ? files.map((f) => Number(readFileSync(f, 'utf8'))) : undefined;
    },
    { timeoutMs: 3000, intervalMs: 10 },
  );
  assert.ok(pids.every(alive));
  const started = Date.now();
  await source.stop();
  assert.ok(Date.now() - started < 1000, 'stop() waits for no timeout');
  await waitFor('chronyc and its child to be gone', () => !pids.some(alive), { timeoutMs: 2000, intervalMs: 20 });
  const runs = fake.runs();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(fake.runs(), runs);
  assert.equal(source.synchronised, false);
  await source.stop();
});
