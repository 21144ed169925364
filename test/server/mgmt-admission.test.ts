// The management request budget against the real daemon (docs/management.md §8): requests beyond
// `mgmt.request-rate` wait their turn instead of being refused, admin sessions go first, and a reload changes
// the budget.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { MgmtConn, sha256Hex, type Dyn } from './mgmt-helpers.js';

const MONITOR_TOKEN = 'monitor-token-for-admission';

function config(ntpPort: number, kePort: number, mgmtPort: number, rate: number, burst: number): string {
  return loopbackConfig(
    ntpPort,
    kePort,
    `
[[listener]]
path = "mgmt.sock"
services = ["mgmt"]

[[listener]]
address = "127.0.0.1:${mgmtPort}"
services = ["mgmt"]

[mgmt]
request-rate = ${rate}
request-burst = ${burst}

[[mgmt.token]]
name = "grafana"
role = "monitor"
sha256 = "${sha256Hex(MONITOR_TOKEN)}"
`,
  );
}

describe('management request budget (real daemon)', () => {
  let daemon: RunningDaemon;
  let mgmtPort: number;
  let sock: string;

  before(async () => {
    mgmtPort = await freeTcpPort();
    daemon = await startDaemon({ config: config(await freeUdpPort(), await freeTcpPort(), mgmtPort, 20, 5) });
    sock = join(daemon.stateDir, 'mgmt.sock');
  });
  after(async () => {
    await daemon?.stop();
  });

  it('requests beyond the budget wait and are all answered in order; an admin overtakes waiting monitors', async () => {
    const monitor = await MgmtConn.tls(mgmtPort);
    await monitor.hello();
    assert.equal((await monitor.call('auth', { token: MONITOR_TOKEN })).result?.['role'], 'monitor');
    const admin = await MgmtConn.unix(sock);
    await admin.hello();
    // Let the bucket fill up again after the two requests above.
    await new Promise((resolve) => setTimeout(resolve, 400));

    const count = 25;
    const started = performance.now();
    monitor.socket.write(Array.from({ length: count }, (_, i) => JSON.stringify({ jsonrpc: '2.0', id: i, method: 'keys' })).join('\n') + '\n');
    // Once the burst is spent the monitor's requests queue; the admin's request goes before them.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const adminAnswer = admin.call('status', undefined, 'admin');
    const answers: number[] = [];
    let adminAt = -1;
    void adminAnswer.then(() => (adminAt = answers.length));
    for (let i = 0; i < count; i++) answers.push((await monitor.next((m) => 'id' in m)).id as number);
    const elapsedMs = performance.now() - started;
    assert.deepEqual(answers, Array.from({ length: count }, (_, i) => i), 'every request answered, in order');
    // 5 at once, then 20 per second: the last answer comes after about (25 - 5) / 20 s.
    assert.ok(elapsedMs >= 800, `25 requests took ${elapsedMs.toFixed(0)} ms; the budget allows at most 5 + 20/s`);
    assert.ok(elapsedMs < 5000, `25 requests took ${elapsedMs.toFixed(0)} ms`);
    assert.equal(((await adminAnswer).result as Dyn).server, 'ntptsd');
    assert.ok(adminAt >= 0 && adminAt < count - 5, `the admin was answered after ${adminAt} of the monitor's ${count} answers`);

    const stats = (await admin.call('stats', undefined, 'stats')).result as Dyn;
    assert.ok(stats.services.mgmt.counters.delayed >= count - 6, JSON.stringify(stats.services.mgmt.counters));
    monitor.close();
    admin.close();
  });

  it('a reload changes the budget; request-rate = 0 removes it', async () => {
    const path = daemon.configPath;
    writeFileSync(path, readFileSync(path, 'utf8').replace('request-rate = 20', 'request-rate = 0'));
    const admin = await MgmtConn.unix(sock);
    await admin.hello();
    const reload = (await admin.call('reload')).result as Dyn;
    assert.ok(reload.changed.includes('mgmt'), JSON.stringify(reload));
    const count = 200;
    const started = performance.now();
    admin.socket.write(Array.from({ length: count }, (_, i) => JSON.stringify({ jsonrpc: '2.0', id: i, method: 'keys' })).join('\n') + '\n');
    for (let i = 0; i < count; i++) await admin.next((m) => m.id === i);
    // At 20/s these would take 10 s.
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs < 3000, `200 requests took ${elapsedMs.toFixed(0)} ms without a budget`);
    admin.close();
  });
});
