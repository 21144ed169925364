// MgmtClient against a fake management server (test/helpers/mgmt-fake.ts) on a Unix socket and over TLS:
// hello, typed results, concurrent calls, JSON-RPC errors as MgmtError, auth, subscriptions, and the ways a
// connection fails (no socket, silence, not the protocol, another version, no answer, a closed connection).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MGMT_SOCKET, MgmtClient, MgmtConnectionError, MgmtError, type MgmtNotification } from '../../src/client/mgmt.js';
import { RpcErrorCode } from '../../src/proto/mgmt/jsonrpc.js';
import { makeTestCa, type TestCa } from '../interop/peers.js';
import { CLIENTS, FUTURE_EVENT, KEY_ROTATED_EVENT, KEYS, STATS, STATUS, startFakeTls, startFakeUnix, type FakeMgmt, type FakeMgmtOptions } from '../helpers/mgmt-fake.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ntptsd-mgmt-client-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function withUnix(options: FakeMgmtOptions, fn: (fake: FakeMgmt) => Promise<void>): Promise<void> {
  const fake = await startFakeUnix(tempDir(), options);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

async function rejectsWith<T extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => T, check: (error: T) => void): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    check(error);
    return true;
  });
}

/** Compile-time checks of the typed API (never run). */
export function _typeChecks(client: MgmtClient): void {
  void client.call('status').then((s) => s.time.stratum satisfies number);
  void client.call('clients', { limit: 5, sort: 'packets' }).then((r) => r.clients[0]?.address satisfies string | undefined);
  // @ts-expect-error log-level needs its level
  void client.call('log-level');
  // @ts-expect-error no such sort key
  void client.call('clients', { sort: 'nonsense' });
  void client.call('anything.else', { x: 1 }).then((r) => r satisfies unknown);
}

describe('MgmtClient over a Unix socket', () => {
  test('the default socket is the daemon’s', () => {
    assert.equal(DEFAULT_MGMT_SOCKET, '/var/lib/ntptsd/ntptsd.sock');
  });

  test('reads hello, calls methods and gets the results as sent', async () => {
    await withUnix({}, async (fake) => {
      const client = await MgmtClient.connect({ socket: fake.path as string });
      try {
        assert.equal(client.hello.protocol, 1);
        assert.deepEqual(client.session, { role: 'admin', via: 'peer', identity: 'unix' });
        assert.deepEqual(await client.call('status'), STATUS);
        assert.deepEqual(await client.call('clients', { limit: 2, sort: 'packets', filter: '192.0.2.0/24' }), CLIENTS);
        assert.deepEqual(fake.requests.at(-1), { method: 'clients', params: { limit: 2, sort: 'packets', filter: '192.0.2.0/24' }, id: 2 });
        assert.deepEqual(await client.call('log-level', { level: 'debug' }), { previous: 'info', level: 'debug' });
      } finally {
        await client.close();
      }
      assert.equal(client.isOpen, false);
    });
  });

  test('concurrent calls each get their own answer; ids are distinct', async () => {
    await withUnix({}, async (fake) => {
      const client = await MgmtClient.connect({ socket: fake.path as string });
      try {
        const [status, keys, stats, nope] = await Promise.all([
          client.call('status'),
          client.call('keys'),
          client.call('stats'),
          client.call('frobnicate').catch((e: unknown) => e),
        ]);
        assert.deepEqual(status, STATUS);
        assert.deepEqual(keys, KEYS);
        assert.deepEqual(stats, STATS);
        assert.ok(nope instanceof MgmtError);
        const ids = fake.requests.map((r) => r.id);
        assert.equal(new Set(ids).size, ids.length);
      } finally {
        await client.close();
      }
    });
  });

  test('JSON-RPC errors are MgmtErrors with code, reason and data; the connection stays usable', async () => {
    const conflict = { code: RpcErrorCode.CONFLICT, message: 'a rotation is in progress' };
    await withUnix({ errors: { 'rotate-keys': conflict } }, async (fake) => {
      const client = await MgmtClient.connect({ socket: fake.path as string });
      try {
        await rejectsWith(client.call('frobnicate'), MgmtError, (e) => {
          assert.equal(e.code, -32601);
          assert.equal(e.reason, 'MGMT_METHOD_NOT_FOUND');
          assert.equal(e.method, 'frobnicate');
        });
        await rejectsWith(client.call('clients', { limit: 5000 }), MgmtError, (e) => {
          assert.equal(e.code, -32602);
          assert.equal(e.reason, 'MGMT_INVALID_PARAMS');
          assert.deepEqual(e.detail('issues'), [{ path: 'limit', message: 'Too big: expected number to be <=1000' }]);
        });
        await rejectsWith(client.call('rotate-keys'), MgmtError, (e) => {
          assert.equal(e.code, -32006);
          assert.equal(e.reason, 'conflict', 'no data.reason: the code’s name');
          assert.equal(e.message, 'a rotation is in progress');
        });
        // A request line the server cannot read is answered with id null: it belongs to the oldest call.
        await rejectsWith(client.call('clients', { filter: 'x'.repeat(70_000) }), MgmtError, (e) => {
          assert.equal(e.code, -32600);
          assert.equal(e.reason, 'MGMT_LINE_TOO_LONG');
        });
        assert.deepEqual(await client.call('status'), STATUS);
      } finally {
        await client.close();
      }
    });
  });

  test('subscribe: stats first, then events (unknown kinds kept), as an async iterator and as events', async () => {
    await withUnix({ tickMs: 20 }, async (fake) => {
      const client = await MgmtClient.connect({ socket: fake.path as string });
      const emitted: MgmtNotification[] = [];
      client.on('notification', (n: MgmtNotification) => emitted.push(n));
      try {
        const subscription = await client.subscribe({ interval: 1, events: ['key-rotated'] });
        assert.deepEqual(subscription.result, { interval: 1, events: ['key-rotated'] });
        const got: MgmtNotification[] = [];
        for await (const n of subscription) {
          got.push(n);
          if (got.length === 5) break; // break → return() → unsubscribe
        }
        assert.equal(got[0]?.method, 'stats');
        assert.equal((got[0]?.params as typeof STATS).uptime, STATS.uptime + 1);
        assert.deepEqual(got[1], { method: 'event', params: KEY_ROTATED_EVENT });
        assert.deepEqual(got[2], { method: 'event', params: FUTURE_EVENT });
        assert.deepEqual(got[3], { method: 'future-notification', params: { x: 1 } });
        assert.equal(got[4]?.method, 'stats');
        assert.ok(emitted.length >= 5);
        assert.deepEqual(
          fake.requests.map((r) => r.method),
          ['subscribe', 'unsubscribe'],
        );
        assert.equal(client.isOpen, true);
      } finally {
        await client.close();
      }
    });
  });

  test('a subscription ends with the connection’s error when the server goes away', async () => {
    const fake = await startFakeUnix(tempDir(), { tickMs: 20 });
    const client = await MgmtClient.connect({ socket: fake.path as string });
    const subscription = await client.subscribe({ interval: 1 });
    const first = await subscription.next();
    assert.equal(first.done, false);
    await fake.close();
    await assert.rejects(
      (async () => {
        for await (const _ of subscription) {
          // drain what was buffered
        }
      })(),
      (e: unknown) => e instanceof MgmtConnectionError && e.code === 'MGMT_CLOSED',
    );
    assert.equal(client.isOpen, false);
    await rejectsWith(client.call('status'), MgmtConnectionError, (e) => assert.equal(e.code, 'MGMT_CLOSED'));
  });

  test('connection failures are MgmtConnectionErrors with a stable code', async () => {
    const dir = tempDir();
    await rejectsWith(MgmtClient.connect({ socket: join(dir, 'missing.sock') }), MgmtConnectionError, (e) => {
      assert.equal(e.code, 'MGMT_CONNECT');
      assert.match(e.message, /ENOENT/);
    });
    await withUnix({ misbehave: 'silent' }, async (fake) => {
      await rejectsWith(MgmtClient.connect({ socket: fake.path as string, connectTimeoutMs: 150 }), MgmtConnectionError, (e) => assert.equal(e.code, 'MGMT_TIMEOUT'));
    });
    await withUnix({ misbehave: 'garbage' }, async (fake) => {
      await rejectsWith(MgmtClient.connect({ socket: fake.path as string }), MgmtConnectionError, (e) => assert.equal(e.code, 'MGMT_PROTOCOL'));
    });
    await withUnix({ hello: { protocol: 2 } }, async (fake) => {
      await rejectsWith(MgmtClient.connect({ socket: fake.path as string }), MgmtConnectionError, (e) => {
        assert.equal(e.code, 'MGMT_VERSION');
        assert.deepEqual(e.details, { protocol: 2 });
      });
    });
  });

  test('a call with no answer times out and closes the client; close() fails waiting calls', async () => {
    await withUnix({ misbehave: 'no-answer' }, async (fake) => {
      const client = await MgmtClient.connect({ socket: fake.path as string, timeoutMs: 100 });
      await rejectsWith(client.call('status'), MgmtConnectionError, (e) => assert.equal(e.code, 'MGMT_TIMEOUT'));
      assert.equal(client.isOpen, false);

      const other = await MgmtClient.connect({ socket: fake.path as string, timeoutMs: 0 });
      const waiting = other.call('status').catch((e: unknown) => e);
      await other.close();
      const error = await waiting;
      assert.ok(error instanceof MgmtConnectionError && error.code === 'MGMT_CLOSED', String(error));
    });
  });

  test('misuse of the options is a TypeError', async () => {
    await assert.rejects(MgmtClient.connect({ socket: '/x', host: 'localhost' }), TypeError);
    await assert.rejects(MgmtClient.connect({ host: 'localhost', cert: 'x' }), TypeError);
    await assert.rejects(MgmtClient.connect({ socket: '/x', ca: 'x' }), TypeError);
  });
});

describe('MgmtClient over TLS', () => {
  let ca: TestCa;
  let fake: FakeMgmt;
  const tokens = { 'mon-token': { role: 'monitor', name: 'ops' }, 'adm-token': { role: 'admin', name: 'root' } } as const;

  before(async () => {
    ca = await makeTestCa();
    fake = await startFakeTls(ca, { tokens });
  });
  after(async () => {
    await fake?.close();
    if (ca !== undefined) rmSync(ca.dir, { recursive: true, force: true });
  });

  const tlsOptions = () => ({ host: '127.0.0.1', port: fake.port as number, ca: ca.caCertPem });

  test('anonymous: role none, every non-public method is unauthenticated', async () => {
    const client = await MgmtClient.connect(tlsOptions());
    try {
      assert.deepEqual(client.session, { role: 'none', via: 'anonymous', identity: null });
      assert.deepEqual(client.hello.auth, ['token', 'certificate']);
      await rejectsWith(client.call('status'), MgmtError, (e) => {
        assert.equal(e.code, -32001);
        assert.equal(e.reason, 'unauthenticated');
      });
    } finally {
      await client.close();
    }
  });

  test('a monitor token reads but may not rotate keys (forbidden, data.required)', async () => {
    const client = await MgmtClient.connect({ ...tlsOptions(), token: 'mon-token' });
    try {
      assert.deepEqual(client.session, { role: 'monitor', via: 'token', identity: 'ops' });
      assert.deepEqual(await client.call('keys'), KEYS);
      await rejectsWith(client.call('rotate-keys'), MgmtError, (e) => {
        assert.equal(e.code, -32002);
        assert.equal(e.reason, 'forbidden');
        assert.equal(e.detail('required'), 'admin');
      });
      // auth() later changes the session.
      assert.deepEqual(await client.auth('adm-token'), { role: 'admin', via: 'token', identity: 'root' });
      assert.equal(client.session.role, 'admin');
      assert.ok(await client.call('rotate-keys'));
    } finally {
      await client.close();
    }
  });

  test('a wrong token fails connect with the auth error', async () => {
    await rejectsWith(MgmtClient.connect({ ...tlsOptions(), token: 'wrong' }), MgmtError, (e) => {
      assert.equal(e.code, -32001);
      assert.equal(e.method, 'auth');
      assert.equal(e.message, 'authentication failed');
    });
  });

  test('a client certificate is sent', async () => {
    const client = await MgmtClient.connect({ ...tlsOptions(), cert: ca.serverCertPem, key: ca.serverKeyPem });
    try {
      assert.deepEqual(client.session, { role: 'admin', via: 'certificate', identity: 'localhost' });
      assert.equal(fake.clientCertificates.at(-1), 'localhost');
    } finally {
      await client.close();
    }
  });

  test('a server certificate from an unknown CA is MGMT_CERTIFICATE; a closed port MGMT_CONNECT', async () => {
    await rejectsWith(MgmtClient.connect({ host: 'localhost', port: fake.port as number }), MgmtConnectionError, (e) => assert.equal(e.code, 'MGMT_CERTIFICATE'));
    const closed = await startFakeTls(ca);
    const port = closed.port as number;
    await closed.close();
    await rejectsWith(MgmtClient.connect({ host: '127.0.0.1', port, ca: ca.caCertPem }), MgmtConnectionError, (e) => assert.equal(e.code, 'MGMT_CONNECT'));
  });
});
