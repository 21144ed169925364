// The daemon with time.source = "chrony" against a real chronyd: the NTP service serves chronyd's stratum,
// refid and leap, the management feed reports `source-changed`, and once chronyd is gone for the grace period
// the responses say "unsynchronised" (leap 3, stratum 16) instead of claiming a sync we no longer have.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { queryNtp } from '../../src/client/ntp.js';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon } from '../helpers/daemon.js';
import { MgmtConn, type Dyn } from '../server/mgmt-helpers.js';
import { freePort, peerCommand, requirePeers, startChronyd } from './peers.js';

test('time.source = "chrony" mirrors chronyd, then says unsynchronised when chronyd stops', { timeout: 40_000 }, async (t) => {
  requirePeers(t);
  const chronyPort = await freePort('udp');
  const chrony = await startChronyd({ t, name: 'tracking-src', confLines: ['local stratum 6', `port ${chronyPort}`, 'allow 127.0.0.1'] });
  const ntpPort = await freeUdpPort();
  const daemon = await startDaemon({
    config: loopbackConfig(
      ntpPort,
      await freeTcpPort(),
      `
[time]
source = "chrony"

[ntp.rate-limit]
enabled = false

[chrony]
chronyc = "${peerCommand('chronyc', []).file}"
args = ["-h", "${chrony.socketPath}"]
poll = "200ms"
grace = "1s"
timeout = "2s"

[[listener]]
path = "mgmt.sock"
services = ["mgmt"]
`,
    ),
  });
  t.after(() => daemon.stop());

  const served = await queryNtp('127.0.0.1', { port: ntpPort, timeoutMs: 3000 });
  assert.equal(served.stratum, 6);
  assert.equal(served.leap, 'none');
  assert.equal(served.refid, '127.127.1.1');
  const direct = await queryNtp('127.0.0.1', { port: chronyPort, timeoutMs: 3000 });
  assert.deepEqual([served.stratum, served.refid, served.leap, served.referenceTime], [direct.stratum, direct.refid, direct.leap, direct.referenceTime]);

  const mgmt = await MgmtConn.unix(join(daemon.stateDir, 'mgmt.sock'));
  t.after(() => mgmt.close());
  await mgmt.hello();
  const status = (await mgmt.call('status')).result as Dyn;
  assert.deepEqual(status.time, { source: 'chrony', synchronized: true, stratum: 6, refid: '127.127.1.1', leap: 'none', rootDelay: 0, rootDispersion: 0 });
  await mgmt.call('subscribe', { interval: 0, events: ['source-changed'] });

  await chrony.stop();
  const event = await mgmt.next((m) => m.method === 'event', 10_000);
  const params = event.params as Dyn;
  assert.equal(params.kind, 'source-changed');
  assert.equal(params.source, 'chrony');
  assert.equal(params.previous.stratum, 6);
  assert.deepEqual([params.current.synchronized, params.current.stratum, params.current.leap, params.current.refid], [false, 16, 'unsynchronized', 'INIT']);

  // The client library refuses an unsynchronised server, naming what the server said.
  await assert.rejects(queryNtp('127.0.0.1', { port: ntpPort, timeoutMs: 3000 }), /is not synchronised \(leap 3, stratum 16\)/);
  await daemon.waitForLog((l) => l.msg === 'time source changed' && l.stratum === 16);
});
