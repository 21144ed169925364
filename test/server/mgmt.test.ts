// The management service against the real daemon, over its Unix socket and over TLS (docs/management.md).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { MgmtConn, makePki, sha256Hex, type Dyn, type Message, type TestPki } from './mgmt-helpers.js';

const ADMIN_TOKEN = 'admin-secret-token';
const MONITOR_TOKEN = 'monitor-secret-token';

function config(ntpPort: number, kePort: number, mgmtPort: number, caPath: string, anonymous = 'none'): string {
  return loopbackConfig(
    ntpPort,
    kePort,
    `
[[listener]]
path = "mgmt.sock"
services = ["mgmt"]
max-message-size = 4096
max-connections = 2048

[[listener]]
address = "127.0.0.1:${mgmtPort}"
services = ["mgmt"]
max-connections = 2048
max-connections-per-address = 1024

[ntp.rate-limit]
interval = "1s"
burst = 16

[tls]
client-ca = "${caPath}"

[mgmt]
anonymous = "${anonymous}"
# These tests flood the service on purpose (output bounds, auth limits); the request budget has its own tests.
request-rate = 0

[[mgmt.token]]
name = "ops"
role = "admin"
sha256 = "${sha256Hex(ADMIN_TOKEN)}"

[[mgmt.token]]
name = "grafana"
role = "monitor"
sha256 = "${sha256Hex(MONITOR_TOKEN)}"

[[mgmt.client-cert]]
common-name = "ops-admin"
role = "admin"

[[mgmt.client-cert]]
common-name = "ops-monitor"
role = "monitor"
`,
  );
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** One NTP client request (mode 3, version 4) with a random transmit timestamp. */
function ntpRequest(): Buffer {
  const b = Buffer.alloc(48);
  b[0] = 0x23;
  b.writeUInt32BE(0xe0000000 + Math.floor(Math.random() * 1e6), 40);
  b.writeUInt32BE(Math.floor(Math.random() * 2 ** 32), 44);
  return b;
}

/** Sends `count` requests from `address` and counts the answers that arrive within `waitMs` after the last. */
async function ntpBurst(port: number, address: string, count: number, waitMs = 300): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  let answers = 0;
  socket.on('message', () => answers++);
  for (let i = 0; i < count; i++) socket.send(ntpRequest(), port, '127.0.0.1');
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  socket.close();
  return answers;
}

describe('mgmt service (real daemon)', () => {
  let daemon: RunningDaemon;
  let pki: TestPki;
  let ntpPort: number;
  let kePort: number;
  let mgmtPort: number;
  let caPath: string;
  let sock: string;
  const tlsConn = (options: Parameters<typeof MgmtConn.tls>[1] = {}) => MgmtConn.tls(mgmtPort, options);

  before(async () => {
    pki = await makePki();
    ntpPort = await freeUdpPort();
    kePort = await freeTcpPort();
    mgmtPort = await freeTcpPort();
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'ntptsd-mgmt-'));
    caPath = join(dir, 'client-ca.pem');
    writeFileSync(caPath, pki.caPem);
    daemon = await startDaemon({ config: config(ntpPort, kePort, mgmtPort, caPath) });
    sock = join(daemon.stateDir, 'mgmt.sock');
  });
  after(async () => {
    await daemon.stop();
  });

  it('Unix socket: hello says admin via peer; the socket file has mode 0660', async () => {
    assert.equal(statSync(sock).mode & 0o777, 0o660);
    const c = await MgmtConn.unix(sock);
    const hello = await c.hello();
    assert.equal(c.messages[0], hello, 'hello comes first');
    assert.deepEqual(hello.params, {
      server: 'ntptsd',
      version: hello.params?.['version'],
      protocol: 1,
      auth: ['peer', 'token'],
      role: 'admin',
      via: 'peer',
      identity: 'unix',
      limits: { maxLineLength: 4096, maxPending: 16, idleTimeout: 30 },
    });
    c.close();
  });

  it('every method answers with the documented shape', async () => {
    const c = await MgmtConn.unix(sock);
    await c.hello();
    await ntpBurst(ntpPort, '127.0.0.1', 3);

    const status = (await c.call('status')).result as Record<string, Dyn>;
    assert.equal(status.server, 'ntptsd');
    assert.match(status.startedAt, ISO);
    assert.ok(status.uptime >= 0);
    assert.equal(status.logLevel, 'debug');
    assert.equal(status.config, daemon.configPath);
    assert.deepEqual(status.time, { source: 'static', synchronized: true, stratum: 10, refid: 'LOCL', leap: 'none', rootDelay: 0, rootDispersion: 0 });
    assert.equal(typeof status.keys.current, 'number');
    assert.equal(status.keys.count, 1);
    assert.match(status.keys.nextRotation, ISO);
    assert.match(status.certificate.sha256, /^[0-9a-f]{64}$/);
    assert.equal(status.certificate.selfSigned, true);
    assert.ok(status.connections >= 1);
    assert.deepEqual(status.session, { role: 'admin', via: 'peer', identity: 'unix' });

    const services = (await c.call('services')).result as Record<string, Dyn>;
    assert.equal(services.listeners.length, 3);
    const unixListener = services.listeners[1];
    assert.deepEqual(
      { ...unixListener, connections: 0 },
      { name: `listener[1] ${sock}`, address: null, path: sock, transport: 'plain', services: ['mgmt'], defaultService: 'mgmt', connections: 0, maxConnections: 2048, maxConnectionsPerAddress: 64 },
    );
    assert.ok(unixListener.connections >= 1);
    assert.equal(services.listeners[2].address, `127.0.0.1:${mgmtPort}`);
    assert.equal(services.listeners[2].transport, 'tls');
    assert.deepEqual(
      services.services.map((s: Dyn) => [s.name, s.alpn]),
      [
        ['nts-ke', 'ntske/1'],
        ['mgmt', 'ntp-mgmt/1'],
      ],
    );

    const stats = (await c.call('stats')).result as Record<string, Dyn>;
    assert.match(stats.at, ISO);
    assert.ok(stats.ntp.received >= 3);
    assert.ok(stats.ntp['responses.none'] >= 3);
    assert.ok(stats.services.mgmt.active >= 1);
    assert.ok(stats.services.mgmt.counters.requests >= 3);
    assert.ok(stats.listeners[`listener[1] ${sock}`].accepted >= 1);

    const clients = (await c.call('clients', { limit: 5 })).result as Record<string, Dyn>;
    assert.ok(clients.total >= 1);
    const me = clients.clients.find((x: Dyn) => x.address === '127.0.0.1');
    assert.ok(me, JSON.stringify(clients));
    assert.match(me.firstSeen, ISO);
    assert.match(me.lastSeen, ISO);
    assert.ok(me.packets >= 3);
    assert.deepEqual([me.mode, me.version, me.auth], [3, 4, 'none']);
    const filtered = (await c.call('clients', { filter: '10.0.0.0/8', sort: 'packets' })).result as Record<string, Dyn>;
    assert.deepEqual([filtered.matched, filtered.clients], [0, []]);
    const bad = await c.call('clients', { filter: 'not-an-address' });
    assert.equal(bad.error?.code, -32602);

    const keys = (await c.call('keys')).result as Record<string, Dyn>;
    assert.deepEqual(Object.keys(keys), ['current', 'rotation', 'nextRotation', 'kept', 'keys']);
    assert.equal(keys.rotation, 86400);
    assert.equal(keys.kept, 7);
    assert.deepEqual(Object.keys(keys.keys[0]), ['id', 'createdAt', 'current']);
    assert.ok(!JSON.stringify(keys).includes('key"'), 'no key material');

    const level = await c.call('log-level', { level: 'info' });
    assert.deepEqual(level.result, { previous: 'debug', level: 'info' });
    assert.deepEqual((await c.send('log-level debug')).result, { previous: 'info', level: 'debug' });

    const rotated = (await c.call('rotate-keys')).result as Record<string, Dyn>;
    assert.equal(rotated.previous, keys.current);
    assert.notEqual(rotated.current, keys.current);
    assert.deepEqual(rotated.removed, []);
    await daemon.waitForLog((l) => l.msg === 'management: rotate-keys requested' && l.by === 'unix socket');

    const reload = (await c.call('reload')).result as Record<string, Dyn>;
    assert.deepEqual(reload, { config: daemon.configPath, changed: [], restartRequired: [], certificateReloaded: false });

    assert.deepEqual((await c.call('subscribe', { interval: 0, events: [] })).result, { interval: 0, events: [] });
    assert.deepEqual((await c.call('unsubscribe')).result, { wasSubscribed: true });
    assert.deepEqual((await c.call('unsubscribe')).result, { wasSubscribed: false });
    c.close();
  });

  it('the plain-text form, malformed and oversized lines, unknown methods and bad params', async () => {
    const c = await MgmtConn.unix(sock);
    await c.hello();
    const status = await c.send('status');
    assert.equal(status.id, null);
    assert.equal((status.result as Dyn).server, 'ntptsd');
    const clients = await c.send('clients limit=5');
    assert.ok(Array.isArray((clients.result as Dyn).clients));

    const malformed = await c.send('{"jsonrpc":"2.0","id":1,');
    assert.equal(malformed.error?.code, -32700);
    assert.equal(malformed.error?.data?.['reason'], 'MGMT_JSON_SYNTAX');
    assert.equal(((await c.call('status', undefined, 2)).result as Dyn).server, 'ntptsd', 'the connection keeps working');

    const long = await c.send(`status ${'x'.repeat(10_000)}`);
    assert.deepEqual([long.id, long.error?.code, long.error?.data?.['reason']], [null, -32600, 'MGMT_LINE_TOO_LONG']);
    assert.equal((await c.call('keys', undefined, 3)).id, 3, 'the connection keeps working');

    const unknown = await c.call('frobnicate', undefined, 'x');
    assert.deepEqual([unknown.id, unknown.error?.code], ['x', -32601]);
    const tooBig = await c.send('clients limit=5000');
    assert.equal(tooBig.error?.code, -32602);
    assert.equal(tooBig.error?.data?.['reason'], 'MGMT_INVALID_PARAMS');
    const extra = await c.call('status', { verbose: true });
    assert.equal(extra.error?.code, -32602);
    const batch = await c.send('[{"jsonrpc":"2.0","id":3,"method":"status"}]');
    assert.equal(batch.error?.data?.['reason'], 'MGMT_BATCH_UNSUPPORTED');
    // A JSON-RPC notification (no id) is run and answered with nothing: the next answer is the next request's.
    c.socket.write('{"jsonrpc":"2.0","method":"status"}\n');
    assert.equal((await c.call('keys', undefined, 9)).id, 9);
    c.close();
  });

  it('TLS with no certificate: role none; tokens change the role; a monitor cannot call admin methods', async () => {
    const c = await tlsConn({ localAddress: '127.0.0.3' });
    const hello = await c.hello();
    assert.deepEqual([hello.params?.['role'], hello.params?.['via'], hello.params?.['identity'], hello.params?.['auth']], ['none', 'anonymous', null, ['token', 'certificate']]);
    assert.equal((await c.send('status')).error?.code, -32001);
    const wrong = await c.send('auth wrong');
    assert.deepEqual(wrong.error, { code: -32001, message: 'authentication failed' });
    assert.deepEqual((await c.call('auth', { token: MONITOR_TOKEN })).result, { role: 'monitor', via: 'token', identity: 'grafana' });
    assert.equal(((await c.send('status')).result as Dyn).session.identity, 'grafana');
    const forbidden = await c.send('rotate-keys');
    assert.deepEqual(forbidden.error, { code: -32002, message: 'Forbidden', data: { required: 'admin' } });
    assert.equal((await c.send('log-level debug')).error?.code, -32002);
    assert.deepEqual((await c.send(`auth ${ADMIN_TOKEN}`)).result, { role: 'admin', via: 'token', identity: 'ops' });
    assert.equal(typeof ((await c.send('rotate-keys')).result as Dyn).current, 'number');
    await daemon.waitForLog((l) => l.msg === 'management: rotate-keys requested' && l.by === 'token "ops"');
    c.close();
  });

  it('failed auth is rate-limited per address; a connection is closed after its third failure', async () => {
    const a = await tlsConn({ localAddress: '127.0.0.2' });
    await a.hello();
    for (let i = 0; i < 2; i++) assert.equal((await a.send(`auth wrong-${i}`)).error?.code, -32001);
    const third = await a.send('auth wrong-2');
    assert.equal(third.error?.code, -32001);
    await a.waitClosed();

    const b = await tlsConn({ localAddress: '127.0.0.2' });
    await b.hello();
    for (let i = 0; i < 2; i++) assert.equal((await b.send(`auth wrong-b${i}`)).error?.code, -32001);
    // Five failures from 127.0.0.2 now: the bucket is empty, even the right token is not looked at.
    const limited = await b.call('auth', { token: ADMIN_TOKEN });
    assert.equal(limited.error?.code, -32003);
    assert.ok((limited.error?.data?.['retryAfter'] as number) >= 1);
    await b.waitClosed();

    // Other addresses are not affected.
    const other = await tlsConn({ localAddress: '127.0.0.4' });
    await other.hello();
    assert.equal((await other.call('auth', { token: ADMIN_TOKEN })).result?.['role'], 'admin');
    const counters = ((await other.call('stats')).result as Dyn).services.mgmt.counters;
    assert.ok(counters['auth.failed'] >= 5 && counters['auth.rate_limited'] >= 1, JSON.stringify(counters));
    other.close();
  });

  it('client certificates: mapped CNs get their role; unmapped, expired and untrusted ones get none', async () => {
    const hello = async (p: { cert: string; key: string }) => {
      const c = await tlsConn({ cert: p.cert, key: p.key });
      const h = (await c.hello()).params as Record<string, unknown>;
      const forbidden = (await c.send('rotate-keys')).error?.code ?? null;
      c.close();
      return [h['role'], h['via'], h['identity'], forbidden];
    };
    const admin = await tlsConn({ cert: pki.admin.cert, key: pki.admin.key });
    assert.deepEqual((await admin.hello()).params?.['role'], 'admin');
    assert.equal(typeof ((await admin.send('rotate-keys')).result as Dyn).current, 'number');
    await daemon.waitForLog((l) => l.msg === 'management: rotate-keys requested' && l.by === 'certificate CN=ops-admin');
    admin.close();
    assert.deepEqual(await hello(pki.monitor), ['monitor', 'certificate', 'ops-monitor', -32002]);
    assert.deepEqual(await hello(pki.unmapped), ['none', 'certificate', 'someone-else', -32001]);
    assert.deepEqual(await hello(pki.expired), ['none', 'anonymous', null, -32001]);
    assert.deepEqual(await hello(pki.untrusted), ['none', 'anonymous', null, -32001]);
  });

  it('subscribe: stats at the interval, events after rotate-keys, reload and NTP rate limiting', async () => {
    const sub = await MgmtConn.unix(sock);
    await sub.hello();
    const result = await sub.send('subscribe interval=1');
    assert.equal((result.result as Dyn).interval, 1);
    const first = await sub.next((m) => m.method === 'stats');
    const second = await sub.next((m) => m.method === 'stats', 3000);
    const gap = Date.parse(String(second.params?.['at'])) - Date.parse(String(first.params?.['at']));
    assert.ok(gap >= 900 && gap < 2000, `gap ${gap} ms`);

    const admin = await MgmtConn.unix(sock);
    await admin.hello();
    const rotated = (await admin.send('rotate-keys')).result as Dyn;
    const event = await sub.next((m) => m.method === 'event' && m.params?.['kind'] === 'key-rotated');
    assert.deepEqual({ ...event.params, at: 'x' }, { kind: 'key-rotated', at: 'x', current: rotated.current, previous: rotated.previous, removed: [], by: 'unix' });

    await admin.send('reload');
    const reloaded = await sub.next((m) => m.method === 'event' && m.params?.['kind'] === 'config-reloaded');
    assert.deepEqual(reloaded.params?.['by'], 'unix');

    await ntpBurst(ntpPort, '127.0.0.7', 40);
    const limited = await sub.next((m) => m.method === 'event' && m.params?.['kind'] === 'client-rate-limited');
    assert.deepEqual([limited.params?.['address'], limited.params?.['service']], ['127.0.0.7', 'ntp']);

    assert.deepEqual((await sub.send('unsubscribe')).result, { wasSubscribed: true });
    sub.close();
    admin.close();
  });

  it('reload: a bad file is refused with its problems; mgmt.anonymous = "monitor" applies to new connections', async () => {
    const good = readFileSync(daemon.configPath, 'utf8');
    const admin = await MgmtConn.unix(sock);
    await admin.hello();
    try {
      writeFileSync(daemon.configPath, good.replace('anonymous = "none"', 'anonymous = "everyone"'));
      const refused = await admin.send('reload');
      assert.equal(refused.error?.code, -32007);
      assert.equal((refused.error?.data?.['problems'] as Dyn[])[0].path, 'mgmt.anonymous');

      writeFileSync(daemon.configPath, good.replace('anonymous = "none"', 'anonymous = "monitor"'));
      assert.deepEqual(((await admin.send('reload')).result as Dyn).changed, ['mgmt']);
      const anon = await tlsConn({ localAddress: '127.0.0.5' });
      assert.equal((await anon.hello()).params?.['role'], 'monitor');
      assert.equal(((await anon.send('status')).result as Dyn).session.role, 'monitor');
      assert.equal((await anon.send('rotate-keys')).error?.code, -32002);
      anon.close();
    } finally {
      writeFileSync(daemon.configPath, good);
      await admin.send('reload');
      admin.close();
    }
    const none = await tlsConn({ localAddress: '127.0.0.5' });
    assert.equal((await none.hello()).params?.['role'], 'none');
    none.close();
  });

  it('a subscriber that stops reading is disconnected once its unsent output passes the bound', async () => {
    const c = await MgmtConn.unix(sock);
    await c.hello();
    const size = JSON.stringify(await c.send('stats')).length + 1;
    await c.send('subscribe interval=1 events=key-rotated');
    c.socket.pause(); // stop reading: the server's output piles up
    const lines = Math.ceil((2.5 * 1024 * 1024) / size);
    c.socket.write('stats\n'.repeat(lines));
    const probe = await MgmtConn.unix(sock);
    await probe.hello();
    const deadline = Date.now() + 15_000;
    let counters: Record<string, number> = {};
    while (Date.now() < deadline) {
      counters = ((await probe.send('stats')).result as Dyn).services.mgmt.counters;
      if (counters['closed.slow_subscriber'] !== undefined) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok((counters['closed.slow_subscriber'] ?? 0) >= 1, JSON.stringify(counters));
    assert.ok((counters['skipped.stats'] ?? 0) >= 3);
    c.close();
    probe.close();
  });

  it('500 concurrent management connections all get hello and a status answer while NTP keeps answering', async () => {
    let stop = false;
    let ntpAnswers = 0;
    const load = (async () => {
      for (let round = 0; !stop && round < 400; round++) {
        ntpAnswers += await ntpBurst(ntpPort, `127.0.1.${(round % 200) + 1}`, 4, 20);
      }
    })();
    // Half over the Unix socket (admin), half over TLS with the monitor certificate.
    const conns = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        const c = i % 2 === 0 ? await MgmtConn.unix(sock) : await tlsConn({ localAddress: '127.0.0.6', cert: pki.monitor.cert, key: pki.monitor.key });
        const hello = await c.hello();
        const status = await c.send('status');
        return { c, hello, status: status as Message };
      }),
    );
    for (const { hello, status } of conns) {
      assert.equal(hello.method, 'hello');
      assert.equal((status.result as Dyn)?.server, 'ntptsd', JSON.stringify(status));
    }
    const probe = await MgmtConn.unix(sock);
    await probe.hello();
    assert.ok(((await probe.send('status')).result as Dyn).connections >= 500);
    stop = true;
    await load;
    assert.ok(ntpAnswers > 0, 'NTP answered during the load');
    assert.equal(await ntpBurst(ntpPort, '127.0.2.1', 4), 4, 'NTP still answers');
    for (const { c } of conns) c.close();
    probe.close();
  });
});
