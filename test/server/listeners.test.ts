import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, stat, writeFile, rename } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { generateSelfSigned } from '../../src/server/certificate.js';
import { ListenerError, ListenerSet, type ListenerSpec, type TlsCredentials } from '../../src/server/listeners.js';
import { createHttpService, ServiceRegistry, type ConnectionContext, type Service, type Transport } from '../../src/server/service.js';

/** Greets with its name, then echoes every byte. */
class EchoService implements Service {
  readonly contexts: ConnectionContext[] = [];
  active = 0;
  constructor(
    readonly name: string,
    readonly alpn: string | null,
    readonly transports: readonly Transport[] = ['tls'],
    readonly requestClientCertificate = false,
  ) {}
  handleConnection(socket: net.Socket, context: ConnectionContext): void {
    this.contexts.push(context);
    this.active += 1;
    socket.once('close', () => (this.active -= 1));
    socket.write(`${this.name}\n`);
    socket.on('data', (chunk) => socket.write(chunk));
  }
  async stop(): Promise<void> {}
  stats() {
    return { active: this.active, counters: { connections: this.contexts.length } };
  }
}

let credsA: TlsCredentials;
let credsB: TlsCredentials;
before(async () => {
  [credsA, credsB] = await Promise.all([generateSelfSigned(), generateSelfSigned()]);
});

function tcpSpec(i: number, services: string[], extra: Partial<ListenerSpec> = {}): ListenerSpec {
  return { name: `listener[${i}]`, configKey: `listener[${i}]`, address: { host: '127.0.0.1', port: 0 }, services, ...extra } as ListenerSpec;
}

async function startSet(t: TestContext, specs: ListenerSpec[], services: Service[], creds: TlsCredentials | undefined = credsA) {
  const registry = new ServiceRegistry();
  for (const s of services) registry.register(s);
  const set = new ListenerSet({ specs, registry, tls: creds });
  t.after(() => set.close({ graceMs: 0 }));
  const bound = await set.start();
  const ports = bound.map((b) => (b.address.kind === 'tcp' ? b.address.port : -1));
  return { set, ports };
}

/** Resolves with the first line, or null when the connection ends (or fails) before one arrives. */
function firstLine(socket: net.Socket): Promise<string | null> {
  return new Promise((resolve) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        socket.off('data', onData);
        resolve(buffered.slice(0, nl));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(null));
    socket.on('error', () => {});
  });
}

function tlsConnect(t: TestContext, port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: [credsA.certPem, credsB.certPem], ...options });
    t.after(() => socket.destroy());
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Connects and reads the greeting; null when the server closed the connection without one. */
async function greeting(t: TestContext, port: number, options: tls.ConnectionOptions = {}): Promise<string | null> {
  const socket = await tlsConnect(t, port, options);
  const line = await firstLine(socket);
  socket.destroy();
  return line;
}

function rawConnect(t: TestContext, port: number, options: Partial<net.TcpNetConnectOpts> = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, ...options });
    t.after(() => socket.destroy());
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Waits for a condition that is reached asynchronously on the server side (no fixed sleeps). */
async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('TLS listener with ALPN dispatch', () => {
  test('dispatches by ALPN to the right service, with a full context', async (t) => {
    const ke = new EchoService('nts-ke', 'ntske/1');
    const mgmt = new EchoService('mgmt', 'ntp-mgmt/1', ['tls', 'plain']);
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke', 'mgmt'], { maxMessageSize: 1234 })], [ke, mgmt]);
    const port = ports[0] as number;

    assert.equal(await greeting(t, port, { ALPNProtocols: ['ntp-mgmt/1'] }), 'mgmt');
    assert.equal(await greeting(t, port, { ALPNProtocols: ['ntske/1'] }), 'nts-ke');
    assert.equal(await greeting(t, port, { ALPNProtocols: ['foo/1', 'ntske/1'] }), 'nts-ke');

    const ctx = mgmt.contexts[0] as ConnectionContext;
    assert.equal(ctx.listener, 'listener[0]');
    assert.equal(ctx.transport, 'tls');
    assert.equal(ctx.maxMessageSize, 1234);
    assert.deepEqual(ctx.local, { kind: 'tcp', address: '127.0.0.1', port, family: 'IPv4' });
    assert.equal(ctx.remote.kind === 'tcp' && ctx.remote.address, '127.0.0.1');
    assert.equal(ctx.tls?.protocol, 'TLSv1.3');
    assert.equal(ctx.tls?.alpn, 'ntp-mgmt/1');
    assert.equal(ctx.tls?.peerCertificate, null);
    assert.equal(ctx.signal.aborted, false);
    assert.notEqual(ke.contexts[0]?.id, ke.contexts[1]?.id);

    const stats = set.stats()[0];
    assert.equal(stats?.counters.dispatched, 3);
    assert.deepEqual(stats?.services, { mgmt: 1, 'nts-ke': 2 });
  });

  test('no ALPN offered: the default service', async (t) => {
    const ke = new EchoService('nts-ke', 'ntske/1');
    const eks = new EchoService('eks', 'ntp-eks/1');
    const { ports } = await startSet(t, [tcpSpec(0, ['eks', 'nts-ke'], { defaultService: 'nts-ke' })], [ke, eks]);
    assert.equal(await greeting(t, ports[0] as number), 'nts-ke');
    assert.equal(ke.contexts[0]?.tls?.alpn, null);
  });

  test('no ALPN offered and no default: closed after the handshake', async (t) => {
    const ke = new EchoService('nts-ke', 'ntske/1');
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke'])], [ke]);
    assert.equal(await greeting(t, ports[0] as number), null);
    assert.equal(ke.contexts.length, 0);
    assert.equal(set.stats()[0]?.counters.no_alpn, 1);
  });

  test('only unknown ALPN ids: the handshake fails with no_application_protocol', async (t) => {
    const ke = new EchoService('nts-ke', 'ntske/1');
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke'], { defaultService: 'nts-ke' })], [ke]);
    await assert.rejects(tlsConnect(t, ports[0] as number, { ALPNProtocols: ['http/1.1'] }), { code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' });
    await waitFor(() => set.stats()[0]?.counters.no_alpn_match === 1);
    assert.equal(ke.contexts.length, 0);
  });

  test('TLS 1.2 clients are refused', async (t) => {
    const ke = new EchoService('nts-ke', 'ntske/1');
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke'])], [ke]);
    await assert.rejects(tlsConnect(t, ports[0] as number, { maxVersion: 'TLSv1.2', ALPNProtocols: ['ntske/1'] }), { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    await waitFor(() => set.stats()[0]?.counters.tls_version === 1);
  });

  test('client certificates are verified against the client CA', async (t) => {
    const client = await generateSelfSigned({ hosts: ['operator'], usage: 'client' });
    const stranger = await generateSelfSigned({ hosts: ['stranger'], usage: 'client' });
    const mgmt = new EchoService('mgmt', 'ntp-mgmt/1', ['tls'], true);
    const { ports } = await startSet(t, [tcpSpec(0, ['mgmt'])], [mgmt], { ...credsA, clientCaPem: client.certPem });
    const port = ports[0] as number;
    const alpn = ['ntp-mgmt/1'];
    assert.equal(await greeting(t, port, { ALPNProtocols: alpn, cert: client.certPem, key: client.keyPem }), 'mgmt');
    assert.equal(await greeting(t, port, { ALPNProtocols: alpn, cert: stranger.certPem, key: stranger.keyPem }), 'mgmt');
    assert.equal(await greeting(t, port, { ALPNProtocols: alpn }), 'mgmt');
    const [known, unknown, none] = mgmt.contexts.map((c) => c.tls);
    assert.equal(known?.peerAuthorized, true);
    assert.equal(known?.peerCertificate?.subject.CN, 'operator');
    assert.equal(unknown?.peerAuthorized, false);
    assert.equal(unknown?.peerCertificate?.subject.CN, 'stranger');
    assert.equal(none?.peerAuthorized, false);
    assert.equal(none?.peerCertificate, null);
  });
});

describe('plain listeners', () => {
  test('Unix socket: stale file replaced, mode applied, file removed on close', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ntptsd-listeners-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'ntptsd.sock');
    // A stale socket file: bound elsewhere, moved into place, its server gone.
    const old = net.createServer();
    await new Promise<void>((resolve) => old.listen(join(dir, 'old.sock'), resolve));
    await rename(join(dir, 'old.sock'), path);
    await new Promise((resolve) => old.close(resolve));
    assert.ok((await stat(path)).isSocket());

    const mgmt = new EchoService('mgmt', 'ntp-mgmt/1', ['tls', 'plain']);
    const spec = { name: 'listener[0] unix', configKey: 'listener[0]', path, services: ['mgmt'], mode: 0o660 } as ListenerSpec;
    const registry = new ServiceRegistry().register(mgmt);
    const set = new ListenerSet({ specs: [spec], registry });
    t.after(() => set.close({ graceMs: 0 }));
    const bound = await set.start();
    assert.deepEqual(bound[0]?.address, { kind: 'unix', path });
    assert.equal(bound[0]?.transport, 'plain');
    assert.equal((await stat(path)).mode & 0o777, 0o660);

    const client = net.connect({ path });
    t.after(() => client.destroy());
    assert.equal(await firstLine(client), 'mgmt');
    const ctx = mgmt.contexts[0] as ConnectionContext;
    assert.equal(ctx.transport, 'plain');
    assert.equal(ctx.tls, null);
    assert.equal(ctx.remote.kind, 'unix');

    // A second daemon on the same path is refused, naming the key to change.
    const second = new ListenerSet({ specs: [spec], registry });
    await assert.rejects(second.start(), (err: ListenerError) => {
      assert.equal(err.code, 'LISTEN_ADDRESS_IN_USE');
      assert.equal(err.configKey, 'listener[0].path');
      assert.match(err.message, /listener\[0\]\.path/);
      return true;
    });
    assert.ok((await stat(path)).isSocket(), 'the live socket file is left alone');

    await set.close({ graceMs: 0 });
    await assert.rejects(stat(path), { code: 'ENOENT' });
  });

  test('Unix socket path holding a regular file is an error', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ntptsd-listeners-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'not-a-socket');
    await writeFile(path, 'data');
    const registry = new ServiceRegistry().register(new EchoService('mgmt', 'ntp-mgmt/1', ['tls', 'plain']));
    const set = new ListenerSet({ specs: [{ name: 'l', configKey: 'listener[2]', path, services: ['mgmt'] }], registry });
    await assert.rejects(set.start(), { code: 'LISTEN_PATH_NOT_SOCKET', configKey: 'listener[2].path' });
  });

  test('HTTP service over plain TCP', async (t) => {
    const metrics = createHttpService({
      name: 'metrics',
      handler: (req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.end(`path=${req.url}\n`);
      },
    });
    const { ports } = await startSet(t, [tcpSpec(0, ['metrics'])], [metrics], undefined);
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: ports[0], path: '/metrics', agent: false }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    assert.equal(body, 'path=/metrics\n');
    assert.equal(metrics.stats().counters.requests, 1);
  });
});

describe('limits and timeouts', () => {
  test('per-address and total connection limits', async (t) => {
    const metrics = new EchoService('metrics', null, ['plain']);
    const { set, ports } = await startSet(t, [tcpSpec(0, ['metrics'], { maxConnections: 3, maxConnectionsPerAddress: 2 })], [metrics], undefined);
    const port = ports[0] as number;
    const open = async (localAddress: string) => firstLine(await rawConnect(t, port, { localAddress }));

    assert.equal(await open('127.0.0.1'), 'metrics');
    assert.equal(await open('127.0.0.1'), 'metrics');
    assert.equal(await open('127.0.0.1'), null, 'third from one address is refused');
    assert.equal(set.stats()[0]?.counters.refused_per_address, 1);

    assert.equal(await open('127.0.0.2'), 'metrics', 'another address still gets in');
    assert.equal(await open('127.0.0.3'), null, 'the listener is full');
    const stats = set.stats()[0];
    assert.equal(stats?.counters.refused_limit, 1);
    assert.equal(stats?.counters.accepted, 3);
    assert.equal(stats?.active, 3);
  });

  test('a client that never completes the handshake is dropped', async (t) => {
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke'], { handshakeTimeoutMs: 200 })], [new EchoService('nts-ke', 'ntske/1')]);
    const started = Date.now();
    const socket = await rawConnect(t, ports[0] as number);
    socket.on('error', () => {});
    await once(socket, 'close');
    assert.ok(Date.now() - started >= 150);
    await waitFor(() => set.stats()[0]?.counters.handshake_timeout === 1);
    await waitFor(() => set.stats()[0]?.active === 0);
  });

  test('an idle connection is closed; the handshake timer does not apply after the handshake', async (t) => {
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke'], { handshakeTimeoutMs: 100, idleTimeoutMs: 400 })], [new EchoService('nts-ke', 'ntske/1')]);
    const socket = await tlsConnect(t, ports[0] as number, { ALPNProtocols: ['ntske/1'] });
    assert.equal(await firstLine(socket), 'nts-ke');
    const idleFrom = Date.now();
    await once(socket, 'close');
    assert.ok(Date.now() - idleFrom >= 350, 'closed by the idle timeout, not the handshake timeout');
    await waitFor(() => set.stats()[0]?.counters.idle_timeout === 1);
  });

  test('1,000 idle connections do not stall a new client', async (t) => {
    const spec = tcpSpec(0, ['nts-ke'], { maxConnections: 2000, maxConnectionsPerAddress: 2000, handshakeTimeoutMs: 60_000 });
    const { set, ports } = await startSet(t, [spec], [new EchoService('nts-ke', 'ntske/1')]);
    const port = ports[0] as number;
    const idle = await Promise.all(Array.from({ length: 1000 }, () => rawConnect(t, port)));
    for (const s of idle) s.on('error', () => {});
    await waitFor(() => set.stats()[0]?.active === 1000);

    const started = Date.now();
    assert.equal(await greeting(t, port, { ALPNProtocols: ['ntske/1'] }), 'nts-ke');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `new client served in ${elapsed} ms`);
    for (const s of idle) s.destroy();
  });
});

describe('binding', () => {
  test('EADDRINUSE names the address and the config key; nothing stays bound', async (t) => {
    const { ports } = await startSet(t, [tcpSpec(0, ['nts-ke'])], [new EchoService('nts-ke', 'ntske/1')]);
    const taken = ports[0] as number;
    const registry = new ServiceRegistry().register(new EchoService('nts-ke', 'ntske/1'));
    const second = new ListenerSet({ specs: [tcpSpec(0, ['nts-ke']), tcpSpec(1, ['nts-ke'], { address: { host: '127.0.0.1', port: taken } })], registry, tls: credsA });
    await assert.rejects(second.start(), (err: ListenerError) => {
      assert.ok(err instanceof ListenerError);
      assert.equal(err.code, 'LISTEN_ADDRESS_IN_USE');
      assert.equal(err.configKey, 'listener[1].address');
      assert.ok(err.message.includes(`127.0.0.1:${taken}`), err.message);
      assert.ok(err.message.includes('listener[1].address'), err.message);
      return true;
    });
    const first = second.stats()[0]?.address;
    assert.equal(first?.kind, 'tcp');
    await assert.rejects(rawConnect(t, first?.kind === 'tcp' ? first.port : 0), { code: 'ECONNREFUSED' });
  });

  test('invalid specs are coded errors before anything is bound', () => {
    const registry = new ServiceRegistry()
      .register(new EchoService('nts-ke', 'ntske/1'))
      .register(new EchoService('mgmt', 'ntp-mgmt/1', ['tls', 'plain']))
      .register(new EchoService('metrics', null, ['plain']));
    const make = (spec: ListenerSpec, tlsCreds: TlsCredentials | null = credsA) => () => new ListenerSet({ specs: [spec], registry, tls: tlsCreds ?? undefined });
    assert.throws(make(tcpSpec(0, ['nope'])), { code: 'LISTENER_CONFIG', configKey: 'listener[0].services' });
    assert.throws(make(tcpSpec(0, ['mgmt', 'nts-ke'], { tls: false })), { code: 'LISTENER_CONFIG' });
    assert.throws(make(tcpSpec(0, ['metrics', 'nts-ke'])), { code: 'LISTENER_CONFIG' });
    assert.throws(make(tcpSpec(0, ['nts-ke'], { defaultService: 'mgmt' })), { code: 'LISTENER_CONFIG', configKey: 'listener[0]' });
    assert.throws(make({ name: 'u', configKey: 'listener[3]', path: '/tmp/x.sock', services: ['nts-ke'] }), { code: 'LISTENER_CONFIG' });
    assert.throws(make(tcpSpec(0, ['nts-ke'], { idleTimeoutMs: 0 })), { code: 'LISTENER_CONFIG', configKey: 'listener[0]', message: /idleTimeoutMs must be a positive integer/ });
    assert.throws(make(tcpSpec(0, ['nts-ke']), null), { code: 'LISTENER_NO_TLS' });
    assert.throws(make(tcpSpec(0, ['nts-ke']), { certPem: credsA.certPem, keyPem: credsB.keyPem }), { code: 'TLS_CONTEXT_INVALID' });
  });
});

describe('certificate reload and shutdown', () => {
  test('setSecureContext: established connections keep working, new ones see the new certificate', async (t) => {
    const { set, ports } = await startSet(t, [tcpSpec(0, ['nts-ke'])], [new EchoService('nts-ke', 'ntske/1')]);
    const port = ports[0] as number;
    const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
    const alpn = { ALPNProtocols: ['ntske/1'] };

    const early = await tlsConnect(t, port, alpn);
    assert.equal(await firstLine(early), 'nts-ke');
    assert.equal(early.getPeerCertificate().fingerprint256, fingerprint(credsA.certPem));

    set.setSecureContext(credsB);
    early.write('still here\n');
    assert.equal(await firstLine(early), 'still here');

    const late = await tlsConnect(t, port, alpn);
    assert.equal(late.getPeerCertificate().fingerprint256, fingerprint(credsB.certPem));
    late.destroy();

    // The reloaded context keeps TLS 1.3 as the minimum.
    await assert.rejects(tlsConnect(t, port, { ...alpn, maxVersion: 'TLSv1.2' }), { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });

    // A mismatched pair is rejected and changes nothing.
    assert.throws(() => set.setSecureContext({ certPem: credsA.certPem, keyPem: credsB.keyPem }), { code: 'TLS_CONTEXT_INVALID' });
    const after = await tlsConnect(t, port, alpn);
    assert.equal(after.getPeerCertificate().fingerprint256, fingerprint(credsB.certPem));
    after.destroy();
  });

  test('close lets in-flight exchanges finish, then destroys what is left at the deadline', async (t) => {
    let sawAbort = false;
    const slow: Service = {
      name: 'mgmt',
      alpn: 'ntp-mgmt/1',
      transports: ['tls'],
      handleConnection(socket, context) {
        context.signal.addEventListener('abort', () => (sawAbort = true));
        socket.on('data', (chunk) => {
          if (chunk.toString() === 'slow\n') setTimeout(() => socket.end('done\n'), 150);
        });
      },
      async stop() {},
      stats: () => ({ active: 0, counters: {} }),
    };
    const { set, ports } = await startSet(t, [tcpSpec(0, ['mgmt'])], [slow]);
    const port = ports[0] as number;
    const alpn = { ALPNProtocols: ['ntp-mgmt/1'] };

    const busy = await tlsConnect(t, port, alpn);
    const idle = await tlsConnect(t, port, alpn);
    idle.on('error', () => {});
    await waitFor(() => set.stats()[0]?.counters.dispatched === 2);
    const answer = firstLine(busy);
    busy.write('slow\n');
    await new Promise((r) => setImmediate(r));

    const closing = set.close({ graceMs: 1_000 });
    assert.equal(await answer, 'done');
    await closing;
    assert.equal(sawAbort, true);
    assert.ok(idle.destroyed || (await once(idle, 'close')));
    const stats = set.stats()[0];
    assert.equal(stats?.counters.shutdown_destroyed, 1, 'the idle connection ignored the signal and was destroyed');
    assert.equal(stats?.active, 0);
    await assert.rejects(rawConnect(t, port), { code: 'ECONNREFUSED' });
  });
});
