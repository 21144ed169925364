// The mode 6 bridge and time.source = "ntpd" against a real NTPsec (unpacked from Debian's packages) in a
// private network namespace, with ntptsd in the same namespace:
// - `ntpd.peers`, `ntpd.vars`, `ntpd.mrulist`, `ntpd.sysstats` over the management socket compared with what
//   ntpq says of the same daemon, with authenticated mode 6 (NTPsec's controlkey);
// - the served stratum, refid and leap follow ntpd's: an orphan-mode NTPsec (synchronised, stratum 10) is
//   mirrored; an NTPsec that says leap 11 is served as unsynchronised; when ntpd stops answering, the responses
//   say unsynchronised after the grace period, with a `source-changed` event on the management feed.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { MgmtConn, type Dyn } from '../server/mgmt-helpers.js';
import { CONTROL_KEY_ID, parseNtpqPeers, runScriptInNetns, startMode6Lab, writeTestKeys } from './mode6-helpers.js';
import {
  REPO_ROOT,
  TSX_LOADER,
  assertNoSysTime,
  createNetns,
  makeTempDir,
  requirePeers,
  runInNetns,
  startDaemon as startInNetns,
  startNtpsec,
  waitFor,
  type Netns,
  type PeerProcess,
} from './peers.js';

const NTPTSD_CLI = join(REPO_ROOT, 'src', 'cli', 'ntptsd.ts');
const NTP_PORT = 1123;

interface Served {
  leap: number;
  stratum: number;
  refid: string;
}

/** One plain NTP request to ntptsd inside the namespace; the header fields that carry the source's quality. */
const QUERY_SCRIPT = `
import dgram from 'node:dgram';
import { decodeNtpHeader, renderRefId } from ${JSON.stringify(join(REPO_ROOT, 'src/proto/ntp/packet.ts'))};
const port = JSON.parse(process.argv[2]);
const socket = dgram.createSocket('udp4');
const request = Buffer.alloc(48);
request[0] = 0x23;
request.writeUInt32BE(0xe0000000, 40);
const answer = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no answer')), 3000);
  socket.on('message', (m) => { clearTimeout(timer); resolve(m); });
  socket.send(request, port, '127.0.0.1');
});
socket.close();
const decoded = decodeNtpHeader(answer);
if (!decoded.ok) throw new Error(decoded.error.message);
const h = decoded.value;
const leap = { none: 0, add: 1, delete: 2, unsynchronized: 3 }[h.leap] ?? h.leap;
console.log(JSON.stringify({ leap, stratum: h.stratum, refid: renderRefId(h.referenceId, h.stratum) }));
`;

function served(t: TestContext, netns: Netns): Promise<Served> {
  return runScriptInNetns<Served>(t, netns, 'ntp-query', QUERY_SCRIPT, NTP_PORT);
}

async function startNtptsdInNetns(t: TestContext, netns: Netns, extra: string): Promise<{ proc: PeerProcess; socket: string }> {
  const dir = makeTempDir('ntptsd-ntpd-bridge', t);
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'ntptsd.toml');
  writeFileSync(
    configPath,
    `[daemon]
state-dir = "${stateDir}"
log-level = "debug"

[ntp]
listen = ["127.0.0.1:${NTP_PORT}"]

[ntp.rate-limit]
enabled = false

[nts]
ntp-port = ${NTP_PORT}

[[listener]]
path = "mgmt.sock"
services = ["mgmt"]

${extra}
`,
  );
  const socket = join(stateDir, 'mgmt.sock');
  const proc = await startInNetns({
    t,
    netns,
    name: 'ntptsd',
    argv: [process.execPath, '--import', TSX_LOADER, NTPTSD_CLI, '-c', configPath, '--log-format', 'json'],
    ready: async () => existsSync(socket),
  });
  await waitFor('the ready line of ntptsd in the namespace', () => /"msg":"ready"/.test(proc.logs()), { timeoutMs: 10_000 });
  assertNoSysTime(proc.pid);
  return { proc, socket };
}

async function mgmt(t: TestContext, socket: string): Promise<MgmtConn> {
  const c = await MgmtConn.unix(socket);
  t.after(() => c.close());
  await c.hello();
  return c;
}

test('mode 6 bridge: ntpd.peers / vars / mrulist / sysstats match ntpq for the same NTPsec; served quality follows ntpd', { timeout: 60_000 }, async (t) => {
  requirePeers(t);
  const lab = await startMode6Lab(t);
  const { socket, proc } = await startNtptsdInNetns(
    t,
    lab.netns,
    `[time]
source = "ntpd"

[ntpd]
address = "127.0.0.1:123"
key-id = ${CONTROL_KEY_ID}
keys-file = "${lab.keysPath}"
poll = "500ms"
grace = "2s"
`,
  );
  const c = await mgmt(t, socket);

  // ntpd.peers against ntpq -p -n, row by row.
  const peers = (await c.call('ntpd.peers')).result as Dyn;
  assert.equal(peers.server, '127.0.0.1:123');
  const ntpqRows = parseNtpqPeers(await lab.ntpd.ntpq(['-p']));
  assert.equal(peers.peers.length, ntpqRows.length, JSON.stringify(peers.peers));
  for (const row of ntpqRows) {
    const ours = peers.peers.find((p: Dyn) => p.remote === row.remote);
    assert.ok(ours, `no row for ${row.remote}`);
    assert.deepEqual([ours.refid, String(ours.stratum), ours.type, String(ours.poll), ours.reach], [row.refid, row.st, row.t, row.poll, row.reach], row.line);
    assert.equal(ours.tally.trim(), row.tally.trim(), row.line);
  }
  const upstream = peers.peers.find((p: Dyn) => p.remote === lab.upstreamAddress);
  assert.equal(upstream.stratum, 8);
  assert.ok(typeof upstream.delay === 'number' && typeof upstream.offset === 'number');
  assert.ok(upstream.when === null || upstream.when >= 0);
  // The unreachable server was never heard from: no age (ntpq prints '-').
  const unreachable = peers.peers.find((p: Dyn) => p.remote === lab.unreachableAddress);
  assert.deepEqual([unreachable.when, unreachable.reach], [null, '0']);

  // The same through ntptsc, as an operator would run it.
  const cli = await runCli('ntptsc', 'ntpd', 'peers', '--json', '--socket', socket);
  assert.equal(cli.code, 0, cli.stderr);
  assert.deepEqual((JSON.parse(cli.stdout) as Dyn).peers.map((p: Dyn) => p.remote).sort(), peers.peers.map((p: Dyn) => p.remote).sort());

  // ntpd.vars: the system variables as ntpq -c rv reads them, and one association's.
  const sys = (await c.call('ntpd.vars')).result as Dyn;
  const rv = await lab.ntpd.sysvars();
  for (const name of ['version', 'stratum', 'refid', 'precision', 'processor', 'system']) {
    if (rv[name] !== undefined) assert.equal(sys.variables[name], rv[name], name);
  }
  // ntpd sends the leap indicator as a number (ntpq prints its two bits); it moves while NTPsec settles.
  assert.match(sys.variables.leap, /^[0-3]$/);
  const assoc = (await c.call('ntpd.vars', { assoc: upstream.assoc, names: ['srcadr', 'stratum'] })).result as Dyn;
  assert.deepEqual(assoc.variables, { srcadr: lab.upstreamAddress, stratum: '8' });
  const unknown = await c.call('ntpd.vars', { assoc: 65000 });
  assert.equal(unknown.error?.code, -32005, JSON.stringify(unknown));

  // ntpd.mrulist: our own queries to ntpd (ntpq's are mode 6, which ntpd does not list; an NTP client is).
  const dig = await runInNetns(lab.netns, 'ntpdig', ['-t', '2', '127.0.0.1']);
  assert.equal(dig.code, 0, dig.stdout + dig.stderr);
  const mru = (await c.call('ntpd.mrulist', { sort: 'count' })).result as Dyn;
  assert.ok(mru.total >= 1 && mru.entries.some((e: Dyn) => e.address === '127.0.0.1'), JSON.stringify(mru));
  const ntpqMru = await lab.ntpd.ntpq(['-c', 'mrulist']);
  for (const entry of mru.entries) assert.ok(ntpqMru.includes(entry.address), `${entry.address} not in ntpq's mrulist:\n${ntpqMru}`);
  const filtered = (await c.call('ntpd.mrulist', { mincount: 1_000_000 })).result as Dyn;
  assert.equal(filtered.entries.length, 0);

  // ntpd.sysstats: NTPsec's ss_* counters as numbers.
  const stats = (await c.call('ntpd.sysstats')).result as Dyn;
  assert.ok(typeof stats.counters.ss_uptime === 'number' && stats.counters.ss_received >= 1, JSON.stringify(stats));

  // What we serve follows what ntpd says: its stratum when it claims a sync, else unsynchronised.
  const now = await served(t, lab.netns);
  const status = (await c.call('status')).result as Dyn;
  assert.ok(status.time.synchronized ? now.stratum === status.time.stratum : now.stratum === 16 && now.leap === 3, JSON.stringify({ now, time: status.time }));
  assert.match(proc.logs(), /"msg":"ready"/);
});

test('time.source = "ntpd": an orphan-mode NTPsec is mirrored; when it stops, unsynchronised after the grace period', { timeout: 60_000 }, async (t) => {
  requirePeers(t);
  const netns = createNetns('ntpd-source', t);
  const dir = makeTempDir('ntpd-source', t);
  const keysPath = writeTestKeys(dir);
  const ntpd = await startNtpsec({ t, netns, name: 'orphan-ntpsec', confLines: ['tos orphan 10 orphanwait 1', `keys ${keysPath}`, `trustedkey ${CONTROL_KEY_ID}`, `controlkey ${CONTROL_KEY_ID}`] });
  const sys = await waitFor(
    'NTPsec to enter orphan mode (stratum 10, leap 00)',
    async () => {
      const v = await ntpd.sysvars();
      return v['stratum'] === '10' && v['leap'] === '00' ? v : undefined;
    },
    { timeoutMs: 15_000 },
  );
  const { socket, proc } = await startNtptsdInNetns(
    t,
    netns,
    `[time]
source = "ntpd"

[ntpd]
poll = "300ms"
grace = "1500ms"
timeout = "300ms"
retries = 0
`,
  );
  const c = await mgmt(t, socket);
  const first = await waitFor('ntptsd to serve ntpd\'s stratum', async () => {
    const s = await served(t, netns);
    return s.stratum === 10 ? s : undefined;
  }, { timeoutMs: 10_000, intervalMs: 200 });
  assert.deepEqual(first, { leap: 0, stratum: 10, refid: sys['refid'] });
  const status = (await c.call('status')).result as Dyn;
  assert.deepEqual([status.time.source, status.time.synchronized, status.time.stratum, status.time.refid], ['ntpd', true, 10, sys['refid']]);

  await c.call('subscribe', { interval: 0, events: ['source-changed'] });
  const stoppedAt = Date.now();
  await ntpd.stop();
  const event = (await c.next((m) => m.method === 'event', 15_000)).params as Dyn;
  assert.ok(Date.now() - stoppedAt >= 1400, `unsynchronised after ${Date.now() - stoppedAt} ms, before the grace period`);
  assert.deepEqual([event.kind, event.source, event.previous.stratum, event.current.stratum, event.current.leap], ['source-changed', 'ntpd', 10, 16, 'unsynchronized']);
  assert.deepEqual(await served(t, netns), { leap: 3, stratum: 16, refid: 'INIT' });
  assert.match(proc.logs(), /ntpd poll failed/);

  // The bridge reports the missing ntpd as a backend error, not a hang.
  const gone = await c.call('ntpd.peers');
  assert.equal(gone.error?.code, -32004, JSON.stringify(gone));
  assert.equal((gone.error?.data as Dyn).backend, 'ntpd');
});
