/**
 * The native TLS listener (native/tls_listener.c through src/server/native-tls.ts) on its own, with real TLS
 * clients on loopback: admission, ALPN (server preference, the no_application_protocol alert, no ALPN), the
 * exporter against node:tls's, one answer then close, timeouts, TLS 1.2 refused, certificate swap, and the
 * close reasons. The daemon-level behaviour (limits, counters, services) is in nts-e2e and eks-e2e.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { generateSelfSigned } from '../../src/server/certificate.js';
import { type NativeCloseReason, NativeTlsServer, type NativeTlsSocket, nativeTls } from '../../src/server/native-tls.js';

const loaded = nativeTls();
const linux = process.platform === 'linux';

let a: { certPem: string; keyPem: string };
let b: { certPem: string; keyPem: string };
before(async () => {
  [a, b] = await Promise.all([generateSelfSigned(), generateSelfSigned()]);
});

interface Recorded {
  accepted: number;
  secure: Array<string | null>;
  closes: NativeCloseReason[];
  data: Buffer[];
}

const servers: NativeTlsServer[] = [];
after(() => {
  for (const s of servers) s.release();
});

function start(
  options: { alpn?: string[]; admit?: boolean; handshakeTimeoutMs?: number; idleTimeoutMs?: number; host?: string; onSocket?: (socket: NativeTlsSocket, alpn: string | null) => void } = {},
) {
  if (!('module' in loaded)) assert.fail(`native TLS unavailable: ${loaded.reason}`);
  const recorded: Recorded = { accepted: 0, secure: [], closes: [], data: [] };
  const server = new NativeTlsServer(loaded.module, {
    family: options.host?.includes(':') ? 6 : 4,
    host: options.host ?? '127.0.0.1',
    port: 0,
    certificateChainPem: a.certPem,
    privateKeyPem: a.keyPem,
    alpn: options.alpn ?? ['ntske/1', 'ntp-eks/1'],
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    idleTimeoutMs: options.idleTimeoutMs ?? 5000,
    onAccept: (srv, id, address, port) => {
      recorded.accepted++;
      if (options.admit === false) return null;
      return new NativeSocketOf(srv, id, address, port);
    },
    onSecure: (socket, alpn) => {
      recorded.secure.push(alpn);
      socket.on('data', (chunk: Buffer) => recorded.data.push(chunk));
      options.onSocket?.(socket, alpn);
    },
    onClose: (_socket, reason) => recorded.closes.push(reason),
    onAcceptError: () => {},
  });
  servers.push(server);
  return { server, recorded };
}

// The socket class, imported lazily so that this file loads on systems without the module.
let NativeSocketOf: new (server: NativeTlsServer, id: number, address: string, port: number) => NativeTlsSocket;
before(async () => {
  const { NativeTlsSocket: Socket } = await import('../../src/server/native-tls.js');
  NativeSocketOf = class extends Socket {
    constructor(server: NativeTlsServer, id: number, address: string, port: number) {
      super(server, id, address, port, '127.0.0.1', 0);
    }
  };
});

function connect(port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: a.certPem, servername: 'localhost', ALPNProtocols: ['ntske/1'], ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function readAll(socket: tls.TLSSocket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

const until = async (check: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

if (!linux) {
  test('off Linux there is no native TLS listener, and the reason says so (listeners use node:tls)', () => {
    assert.ok('reason' in loaded);
  });
} else describe('native TLS listener', () => {
  test('the module offers it on Linux (npm install builds it)', () => {
    assert.ok('module' in loaded, 'reason' in loaded ? loaded.reason : '');
  });

  test('TLS 1.3, the ALPN protocol, data in, one answer out, close; the exporter equals the client\'s', async () => {
    let serverKey: Buffer | undefined;
    const { server, recorded } = start({
      onSocket: (socket) =>
        socket.once('data', () => {
          serverKey = socket.exportKeyingMaterial(32, 'EXPORTER-network-time-security', Uint8Array.of(0, 0, 0, 15, 0));
          socket.end(Buffer.from('answer'));
        }),
    });
    const client = await connect(server.port);
    assert.equal(client.getProtocol(), 'TLSv1.3');
    assert.equal(client.alpnProtocol, 'ntske/1');
    assert.equal(new X509Certificate(a.certPem).fingerprint256, client.getPeerX509Certificate()?.fingerprint256);
    const answer = readAll(client);
    client.write('request');
    assert.equal((await answer).toString(), 'answer');
    const clientKey = client.exportKeyingMaterial(32, 'EXPORTER-network-time-security', Buffer.from([0, 0, 0, 15, 0]));
    assert.deepEqual(serverKey, clientKey);
    client.end();
    await until(() => recorded.closes.length === 1);
    assert.deepEqual(recorded.closes, ['closed']);
    assert.deepEqual(recorded.secure, ['ntske/1']);
    assert.equal(Buffer.concat(recorded.data).toString(), 'request');
  });

  test('ALPN: our preference wins; none of ours gets no_application_protocol; none offered gives null', async () => {
    const { server, recorded } = start({ alpn: ['ntp-eks/1', 'ntske/1'], onSocket: (socket) => socket.end() });
    const both = await connect(server.port, { ALPNProtocols: ['ntske/1', 'ntp-eks/1'] });
    assert.equal(both.alpnProtocol, 'ntp-eks/1');
    await readAll(both);
    await assert.rejects(connect(server.port, { ALPNProtocols: ['h2'] }), /no_application_protocol|no application protocol/i);
    const none = await connect(server.port, { ALPNProtocols: [] });
    assert.equal(none.alpnProtocol, false);
    await readAll(none);
    await until(() => recorded.closes.includes('no_alpn_match') && recorded.secure.length === 2);
    assert.deepEqual(recorded.secure, ['ntp-eks/1', null]);
  });

  test('a TLS 1.2 client is refused (tls_version)', async () => {
    const { server, recorded } = start();
    await assert.rejects(connect(server.port, { maxVersion: 'TLSv1.2' }));
    await until(() => recorded.closes.length === 1);
    assert.deepEqual(recorded.closes, ['tls_version']);
  });

  test('a refused connection is closed before any TLS; a client that sends nothing times out; a silent one goes idle', async () => {
    const refused = start({ admit: false });
    await assert.rejects(connect(refused.server.port));
    assert.equal(refused.recorded.accepted, 1);
    assert.deepEqual(refused.recorded.closes, []);

    const { server, recorded } = start({ handshakeTimeoutMs: 200, idleTimeoutMs: 300 });
    const raw = net.connect(server.port, '127.0.0.1');
    const rawClosed = new Promise((r) => raw.once('close', r));
    raw.on('error', () => {});
    await rawClosed;
    const idle = await connect(server.port);
    idle.on('error', () => {});
    await new Promise((r) => idle.once('close', r));
    assert.deepEqual(recorded.closes, ['handshake_timeout', 'idle_timeout']);
  });

  test('a client that closes mid-handshake is handshake_aborted; destroy() from the service is silent', async () => {
    const { server, recorded } = start({ onSocket: (socket) => socket.destroy() });
    const raw = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20, 0x01])); // the start of a ClientHello, then nothing
    raw.destroy();
    await until(() => recorded.closes.length === 1);
    assert.deepEqual(recorded.closes, ['handshake_aborted']);
    const client = await connect(server.port);
    await new Promise((r) => client.once('close', r));
    assert.deepEqual(recorded.closes, ['handshake_aborted'], 'no close event for our own destroy()');
  });

  test('a new certificate serves new handshakes; a bad one is refused and changes nothing', async () => {
    const { server } = start({ onSocket: (socket) => socket.end() });
    const before = await connect(server.port);
    before.destroy();
    assert.throws(() => server.setCertificate(b.certPem, a.keyPem), { code: 'TLS_CONTEXT_INVALID' });
    assert.throws(() => server.setCertificate('not a certificate', a.keyPem), { code: 'TLS_CONTEXT_INVALID' });
    const still = await connect(server.port);
    still.destroy();
    server.setCertificate(b.certPem, b.keyPem);
    await assert.rejects(connect(server.port), /self.signed|unable to verify|certificate/i);
    const after = await connect(server.port, { ca: b.certPem });
    after.destroy();
  });

  test('"::" takes IPv6 and IPv4 clients (dual stack, as node:net listens)', async () => {
    const addresses: string[] = [];
    const { server } = start({ host: '::', onSocket: (socket) => (addresses.push(socket.remoteAddress), socket.end()) });
    for (const host of ['::1', '127.0.0.1']) {
      const client = await connect(server.port, { host });
      await readAll(client);
    }
    assert.deepEqual(addresses, ['::1', '::ffff:127.0.0.1']);
  });

  test('binding a port in use throws EADDRINUSE', () => {
    const { server } = start();
    if (!('module' in loaded)) return;
    assert.throws(
      () =>
        new NativeTlsServer(loaded.module, {
          family: 4,
          host: '127.0.0.1',
          port: server.port,
          certificateChainPem: a.certPem,
          privateKeyPem: a.keyPem,
          alpn: ['ntske/1'],
          handshakeTimeoutMs: 1000,
          idleTimeoutMs: 1000,
          onAccept: () => null,
          onSecure: () => {},
          onClose: () => {},
          onAcceptError: () => {},
        }),
      { code: 'EADDRINUSE' },
    );
  });
});
