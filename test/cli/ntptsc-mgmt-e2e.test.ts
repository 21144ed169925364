// ntptsc's management commands against the real daemon over its Unix socket (the other CLI tests use a fake).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon } from '../helpers/daemon.js';

test('status, keys, rotate-keys and stats over the Unix socket', async (t) => {
  const ntpPort = await freeUdpPort();
  const daemon = await startDaemon({ config: loopbackConfig(ntpPort, await freeTcpPort(), '\n[[listener]]\npath = "ntptsd.sock"\nservices = ["mgmt"]\n') });
  t.after(() => daemon.stop());
  const socket = join(daemon.stateDir, 'ntptsd.sock');

  // One NTP request so the stats have something to show.
  assert.equal((await runCli('ntptsc', 'time', `127.0.0.1:${ntpPort}`)).code, 0);

  const status = await runCli('ntptsc', 'status', '--socket', socket, '--json');
  assert.equal(status.code, 0, status.stderr);
  const statusDoc = JSON.parse(status.stdout) as Record<string, unknown>;
  assert.ok(JSON.stringify(statusDoc).includes('ntptsd'));

  const before = JSON.parse((await runCli('ntptsc', '--json', 'keys', '--socket', socket)).stdout) as { keys: Array<{ id: number; current: boolean }> };
  assert.equal(before.keys.filter((k) => k.current).length, 1);

  const rotated = await runCli('ntptsc', 'rotate-keys', '--socket', socket);
  assert.equal(rotated.code, 0, rotated.stderr);
  await daemon.waitForLog((l) => l.msg === 'rotated the key ring');

  const after = JSON.parse((await runCli('ntptsc', 'keys', '--socket', socket, '--json')).stdout) as { keys: Array<{ id: number; current: boolean }> };
  assert.equal(after.keys.length, before.keys.length + 1);
  assert.notEqual(after.keys.find((k) => k.current)?.id, before.keys.find((k) => k.current)?.id);

  const stats = await runCli('ntptsc', 'stats', '--socket', socket);
  assert.equal(stats.code, 0, stats.stderr);
  assert.match(stats.stdout, /received/);
});
