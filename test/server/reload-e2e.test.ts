// Certificate hot reload: replacing the certificate files (or SIGHUP) switches new TLS connections to the new
// certificate while an established connection keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type TLSSocket } from 'node:tls';
import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCa } from '../interop/peers.js';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon } from '../helpers/daemon.js';

function open(port: number, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['ntske/1'], minVersion: 'TLSv1.3' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

test('replacing the certificate files reloads them without dropping connections', async (t) => {
  const first = await makeTestCa({ t });
  const second = await makeTestCa({ t });
  const ntpPort = await freeUdpPort();
  const kePort = await freeTcpPort();
  const daemon = await startDaemon({ config: loopbackConfig(ntpPort, kePort, ''), keepDir: true });
  await daemon.stop();
  // Restart with configured files inside the daemon's directory, so we can replace them.
  const certPath = join(daemon.dir, 'server.crt');
  const keyPath = join(daemon.dir, 'server.key');
  copyFileSync(first.serverCert, certPath);
  copyFileSync(first.serverKey, keyPath);
  const config = loopbackConfig(ntpPort, kePort).replace('[ntp]', `[tls]\ncertificate = "${certPath}"\nprivate-key = "${keyPath}"\n\n[ntp]`);
  const running = await startDaemon({ config, dir: daemon.dir });
  t.after(async () => {
    await running.stop();
    rmSync(daemon.dir, { recursive: true, force: true });
  });

  const established = await open(kePort, first.caCertPem);
  const before = established.getPeerX509Certificate()?.fingerprint256;

  // Replace both files the way deployment tools do: write aside, then rename over.
  copyFileSync(second.serverCert, `${certPath}.new`);
  copyFileSync(second.serverKey, `${keyPath}.new`);
  renameSync(`${keyPath}.new`, keyPath);
  renameSync(`${certPath}.new`, certPath);
  await running.waitForLog((l) => l.msg === 'reloaded the TLS certificate', 10_000);

  const fresh = await open(kePort, second.caCertPem);
  const after = fresh.getPeerX509Certificate()?.fingerprint256;
  assert.notEqual(after, before, 'new connections see the new certificate');
  fresh.destroy();

  // The established connection still works: a full NTS-KE request gets its answer.
  const response = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    established.on('data', (c: Buffer) => chunks.push(c));
    established.once('end', () => resolve(Buffer.concat(chunks)));
    established.once('error', reject);
    // Next Protocol [0] (critical), AEAD [15], End of Message.
    established.write(Buffer.from('800100020000000400020 00f80000000'.replaceAll(' ', ''), 'hex'));
  });
  assert.ok(response.length > 100, `got ${response.length} bytes`);
  established.destroy();

  // SIGHUP reloads too (and logs it).
  running.signal('SIGHUP');
  await running.waitForLog((l) => l.msg === 'configuration reloaded', 10_000);
});
