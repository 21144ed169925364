import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import {
  CertificateError,
  CertificateWatcher,
  ensureSelfSignedCertificate,
  generateSelfSigned,
  loadCertificateFiles,
  loadTlsMaterial,
  type TlsMaterial,
} from '../../src/server/certificate.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ntptsd-cert-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const DAY_MS = 86_400_000;

describe('self-signed certificate in the state dir', () => {
  test('generated with the localhost SANs, mode 0600, reused on the next start', async (t) => {
    const stateDir = join(await tempDir(t), 'state');
    const first = await ensureSelfSignedCertificate(stateDir);
    assert.equal(first.generated, true);
    assert.deepEqual(first.paths, { certificate: join(stateDir, 'cert.pem'), privateKey: join(stateDir, 'key.pem') });
    const x509 = new X509Certificate(first.certPem);
    assert.equal(x509.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(first.fingerprintSha256, x509.fingerprint256);
    assert.match(first.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.ok(first.notAfter.getTime() - Date.now() > 300 * DAY_MS);
    for (const file of ['cert.pem', 'key.pem']) assert.equal((await stat(join(stateDir, file))).mode & 0o777, 0o600, file);
    assert.deepEqual((await readdir(stateDir)).sort(), ['cert.pem', 'key.pem'], 'no temp files left');

    const second = await ensureSelfSignedCertificate(stateDir);
    assert.equal(second.fingerprintSha256, first.fingerprintSha256);
  });

  test('regenerated when it expires within 30 days or is unusable', async (t) => {
    const stateDir = await tempDir(t);
    const first = await ensureSelfSignedCertificate(stateDir);
    const stillOk = await ensureSelfSignedCertificate(stateDir, { now: new Date(first.notAfter.getTime() - 31 * DAY_MS) });
    assert.equal(stillOk.fingerprintSha256, first.fingerprintSha256);

    const later = new Date(first.notAfter.getTime() - 29 * DAY_MS);
    const renewed = await ensureSelfSignedCertificate(stateDir, { now: later });
    assert.notEqual(renewed.fingerprintSha256, first.fingerprintSha256);
    assert.ok(renewed.notAfter.getTime() > first.notAfter.getTime());

    await writeFile(join(stateDir, 'cert.pem'), 'garbage');
    const repaired = await ensureSelfSignedCertificate(stateDir);
    assert.notEqual(repaired.fingerprintSha256, renewed.fingerprintSha256);
  });

  test('a TLS client trusting the certificate verifies it for 127.0.0.1 and localhost', async (t) => {
    const material = await ensureSelfSignedCertificate(await tempDir(t));
    const server = tls.createServer({ cert: material.certPem, key: material.keyPem, minVersion: 'TLSv1.3' }, (s) => s.end('ok'));
    t.after(() => server.close());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    for (const servername of [undefined, 'localhost']) {
      const client = tls.connect({ host: '127.0.0.1', port, ca: material.certPem, ...(servername ? { servername } : {}) });
      await once(client, 'secureConnect');
      assert.equal(client.authorized, true);
      assert.equal(client.getPeerCertificate().fingerprint256, material.fingerprintSha256);
      client.destroy();
    }
  });
});

describe('configured certificate files', () => {
  async function writePair(dir: string, prefix = ''): Promise<{ certificate: string; privateKey: string; pair: { certPem: string; keyPem: string } }> {
    const pair = await generateSelfSigned();
    const certificate = join(dir, `${prefix}cert.pem`);
    const privateKey = join(dir, `${prefix}key.pem`);
    await writeFile(certificate, pair.certPem);
    await writeFile(privateKey, pair.keyPem);
    return { certificate, privateKey, pair };
  }

  test('loads a valid pair', async (t) => {
    const { certificate, privateKey, pair } = await writePair(await tempDir(t));
    const material = await loadCertificateFiles({ certificate, privateKey });
    assert.equal(material.generated, false);
    assert.equal(material.certPem, pair.certPem);
    assert.equal(material.fingerprintSha256, new X509Certificate(pair.certPem).fingerprint256);
  });

  test('errors are coded and name the config key and the file', async (t) => {
    const dir = await tempDir(t);
    const { certificate, privateKey } = await writePair(dir);
    const other = await writePair(dir, 'other-');
    const missing = join(dir, 'missing.pem');

    await assert.rejects(loadCertificateFiles({ certificate: missing, privateKey }), (err: CertificateError) => {
      assert.ok(err instanceof CertificateError);
      assert.equal(err.code, 'CERT_READ_FAILED');
      assert.equal(err.configKey, 'tls.certificate');
      assert.equal(err.path, missing);
      assert.ok(err.message.startsWith(`tls.certificate: cannot read ${missing}: ENOENT`), err.message);
      return true;
    });
    await assert.rejects(loadCertificateFiles({ certificate, privateKey: missing }), { code: 'KEY_READ_FAILED', configKey: 'tls.private-key' });
    await assert.rejects(loadCertificateFiles({ certificate, privateKey: other.privateKey }), (err: CertificateError) => {
      assert.equal(err.code, 'CERT_KEY_MISMATCH');
      assert.ok(err.message.includes(other.privateKey) && err.message.includes(certificate), err.message);
      return true;
    });
    await writeFile(join(dir, 'bad.pem'), 'not a certificate');
    await assert.rejects(loadCertificateFiles({ certificate: join(dir, 'bad.pem'), privateKey }), { code: 'CERT_INVALID' });
    await assert.rejects(loadCertificateFiles({ certificate, privateKey: join(dir, 'bad.pem') }), { code: 'KEY_INVALID' });
  });

  test('loadTlsMaterial: both files, neither (self-signed), or a config error', async (t) => {
    const dir = await tempDir(t);
    const { certificate, privateKey } = await writePair(dir);
    const configured = await loadTlsMaterial({ certificate, privateKey, stateDir: join(dir, 'state') });
    assert.equal(configured.generated, false);
    const generated = await loadTlsMaterial({ certificate: '', privateKey: '', stateDir: join(dir, 'state') });
    assert.equal(generated.generated, true);
    await assert.rejects(loadTlsMaterial({ certificate, privateKey: '', stateDir: dir }), { code: 'CERT_CONFIG_INCOMPLETE', configKey: 'tls.private-key' });
  });
});

describe('CertificateWatcher', () => {
  test('reports replacement by rename, bad content as an error, then the fix', { timeout: 8_000 }, async (t) => {
    const dir = await tempDir(t);
    const first = await generateSelfSigned();
    const files = { certificate: join(dir, 'cert.pem'), privateKey: join(dir, 'key.pem') };
    await writeFile(files.certificate, first.certPem);
    await writeFile(files.privateKey, first.keyPem);
    const current = await loadCertificateFiles(files);

    type Event = TlsMaterial | CertificateError;
    const events: Event[] = [];
    let waiting: { match: (e: Event) => boolean; resolve: () => void } | null = null;
    const record = (e: Event) => {
      events.push(e);
      if (waiting?.match(e)) waiting.resolve();
    };
    /** Resolves at the first event, from now on, that matches. */
    const until = (match: (e: Event) => boolean) => new Promise<void>((resolve) => (waiting = { match, resolve }));
    const isMaterial = (fingerprint: string) => (e: Event) => !(e instanceof CertificateError) && e.fingerprintSha256 === fingerprint;
    const isError = (code: string) => (e: Event) => e instanceof CertificateError && e.code === code;
    const watcher = new CertificateWatcher({ files, current, debounceMs: 50, pollIntervalMs: 0, onChange: record, onError: record });
    // The watcher's handles are unref'd (it must not keep the daemon alive): hold the loop open meanwhile.
    const keepAlive = setTimeout(() => {}, 10_000);
    t.after(() => clearTimeout(keepAlive));
    t.after(() => watcher.close());
    watcher.start();

    // Replaced the way deployment tools do it: new files written aside, then renamed over the old ones.
    const second = await generateSelfSigned();
    const secondFingerprint = new X509Certificate(second.certPem).fingerprint256;
    let arrived = until(isMaterial(secondFingerprint));
    await writeFile(join(dir, 'key.pem.new'), second.keyPem);
    await writeFile(join(dir, 'cert.pem.new'), second.certPem);
    await rename(join(dir, 'key.pem.new'), files.privateKey);
    await rename(join(dir, 'cert.pem.new'), files.certificate);
    await arrived;

    arrived = until(isError('CERT_INVALID'));
    await writeFile(files.certificate, 'truncated');
    await arrived;

    arrived = until(isError('CERT_KEY_MISMATCH'));
    await writeFile(files.certificate, first.certPem); // the new key does not match the old certificate
    await arrived;
    arrived = until(isMaterial(current.fingerprintSha256));
    await writeFile(files.privateKey, first.keyPem);
    await arrived;
    // Every report is one of the states above, in order, and the valid ones are reported once each.
    const materials = events.filter((e): e is TlsMaterial => !(e instanceof CertificateError)).map((m) => m.fingerprintSha256);
    assert.deepEqual(materials, [secondFingerprint, current.fingerprintSha256]);
  });

  test('check() (the poll and SIGHUP path) reports a change once', async (t) => {
    const dir = await tempDir(t);
    const pair = await generateSelfSigned();
    const files = { certificate: join(dir, 'cert.pem'), privateKey: join(dir, 'key.pem') };
    await writeFile(files.certificate, pair.certPem);
    await writeFile(files.privateKey, pair.keyPem);
    const changes: TlsMaterial[] = [];
    const watcher = new CertificateWatcher({ files, current: await loadCertificateFiles(files), onChange: (m) => changes.push(m), onError: assert.fail, pollIntervalMs: 0 });
    t.after(() => watcher.close());
    await watcher.check(); // what `start()`'s poll and SIGHUP run
    assert.equal(changes.length, 0);
    const replacement = await generateSelfSigned();
    await writeFile(files.certificate, replacement.certPem);
    await writeFile(files.privateKey, replacement.keyPem);
    await watcher.check();
    assert.equal(changes.length, 1);
    await watcher.check();
    assert.equal(changes.length, 1);
  });
});
