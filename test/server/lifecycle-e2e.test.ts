// Daemon lifecycle: privilege drop after binding, scheduled key rotation persisted to the state dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { freeTcpPort, freeUdpPort, loopbackConfig, runDaemonExpectingFailure, startDaemon } from '../helpers/daemon.js';

const nobody = (() => {
  try {
    return Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  } catch {
    return null;
  }
})();

test('drops privileges after binding and keeps rotating keys into a 0600 key ring', async () => {
  assert.ok(process.getuid?.() === 0 && nobody !== null, 'this test needs root and a "nobody" user (as CI has)');
  const ntpPort = await freeUdpPort();
  const config = loopbackConfig(ntpPort, await freeTcpPort(), '')
    .replace('log-level = "debug"', 'log-level = "debug"\nuser = "nobody"')
    .replace(`ntp-port = ${ntpPort}`, `ntp-port = ${ntpPort}\nkey-rotation = "1s"\nkeys-kept = 1`);
  // The unprivileged daemon must be able to reach its state dir: a traversable parent.
  const dir = mkdtempSync(join(tmpdir(), 'ntptsd-drop-'));
  chmodSync(dir, 0o755);
  const daemon = await startDaemon({ config, dir });
  try {
    await daemon.waitForLog((l) => l.msg === 'dropped privileges');
    const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${nobody}\\s+${nobody}\\s+${nobody}\\s+${nobody}$`, 'm'), 'all uids dropped');
    // Two rotations after the drop: the unprivileged daemon can still write its state.
    let rotations = 0;
    await daemon.waitForLog((l) => l.msg === 'rotated the key ring' && ++rotations >= 2, 10_000);
    const path = join(daemon.stateDir, 'keyring.json');
    const info = statSync(path);
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal(info.uid, nobody);
    const ring = JSON.parse(readFileSync(path, 'utf8')) as { keys: unknown[] };
    assert.equal(ring.keys.length, 2, 'current key plus keys-kept = 1 old key');
  } finally {
    assert.equal(await daemon.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refuses to start when the unprivileged user cannot write the state dir', async () => {
  assert.ok(process.getuid?.() === 0 && nobody !== null, 'this test needs root and a "nobody" user (as CI has)');
  const config = loopbackConfig(await freeUdpPort(), await freeTcpPort(), '').replace('log-level = "debug"', 'log-level = "debug"\nuser = "nobody"');
  const { code, logs } = await runDaemonExpectingFailure(config); // its temp dir is mode 0700, owned by root
  assert.equal(code, 1);
  assert.ok(logs.some((l) => String(l.msg).includes('cannot write daemon.state-dir')), JSON.stringify(logs));
});
