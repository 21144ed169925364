// The management service's `eks.list` and `eks.revoke` (docs/management.md §6) and the `key-revoked` event, with
// the real MgmtService in front of a fake daemon (test/helpers/mgmt-control-fake.ts): roles, params, the text form,
// the admin log, the state-dir failure, and the event reaching subscribers.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EKS_REVOKED_UNTIL, EKS_TABLE, FAKE_ADMIN_TOKEN, startFakeMgmtService, type FakeMgmtService } from '../helpers/mgmt-control-fake.js';
import { MgmtConn, type Dyn } from './mgmt-helpers.js';

const KEY_MEMBERS = ['address', 'expired', 'expiresAt', 'generation', 'issuedAt', 'keyId', 'renewals', 'token'];

describe('mgmt service: eks.list and eks.revoke', () => {
  let fake: FakeMgmtService;
  const open: MgmtConn[] = [];
  /** A TCP session: monitor (mgmt.anonymous), or admin after `auth` with the admin token. */
  const monitor = async () => {
    const c = await new Promise<MgmtConn>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: fake.port }, () => resolve(new MgmtConn(socket)));
      socket.once('error', reject);
    });
    open.push(c);
    await c.hello();
    return c;
  };
  const admin = async () => {
    const c = await monitor();
    const auth = await c.call('auth', { token: FAKE_ADMIN_TOKEN });
    assert.equal(auth.result?.['role'], 'admin');
    return c;
  };
  const unix = async () => {
    const c = await MgmtConn.unix(fake.socketPath);
    open.push(c);
    await c.hello();
    return c;
  };

  before(async () => {
    fake = await startFakeMgmtService();
  });
  beforeEach(() => {
    fake.eks.failSave = false;
  });
  after(async () => {
    for (const c of open) c.close();
    await fake?.close();
  });

  it('a monitor lists the live keys, most recent first, with the defaults filled in', async () => {
    const c = await monitor();
    const r = await c.call('eks.list');
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.deepEqual(fake.eks.listCalls.at(-1), { limit: 1000, expired: false });
    const result = r.result as Dyn;
    assert.deepEqual(result.range, { first: 32768, last: 65535 });
    assert.equal(result.live, 2);
    assert.deepEqual(
      result.keys.map((k: Dyn) => k.keyId),
      EKS_TABLE.filter((k) => !k.expired).map((k) => k.keyId),
    );
    assert.deepEqual(result.revoked, []);
    for (const key of result.keys) assert.deepEqual(Object.keys(key).sort(), KEY_MEMBERS, 'members of a key: never key material');
  });

  it('eks.list expired=true limit=2 (text form): expired keys too, at most 2', async () => {
    const c = await monitor();
    const r = await c.send('eks.list expired=true limit=2');
    assert.equal(r.id, null);
    assert.deepEqual(fake.eks.listCalls.at(-1), { limit: 2, expired: true });
    assert.deepEqual(
      (r.result as Dyn).keys.map((k: Dyn) => [k.keyId, k.expired]),
      EKS_TABLE.slice(0, 2).map((k) => [k.keyId, k.expired]),
    );
  });

  it('eks.list: bad params are -32602', async () => {
    const c = await monitor();
    for (const line of ['eks.list limit=0', 'eks.list limit=100001', 'eks.list expired=yes', 'eks.list 5', 'eks.list keyId=40000']) {
      const r = await c.send(line);
      assert.equal(r.error?.code, -32602, line);
    }
  });

  it('a monitor cannot revoke: -32002 with the role required, even with a bad key id; nothing is revoked', async () => {
    const c = await monitor();
    const calls = fake.eks.revokeCalls.length;
    for (const request of [c.call('eks.revoke', { keyId: 40000 }), c.send('eks.revoke 100')]) {
      const r = await request;
      assert.equal(r.error?.code, -32002);
      assert.deepEqual(r.error?.data, { required: 'admin' });
    }
    assert.equal(fake.eks.revokeCalls.length, calls);
  });

  it('an admin (token) revokes: result, the admin identity as `by`, counted and logged with who and the key id', async () => {
    const c = await admin();
    const before = fake.service.stats().counters['admin_actions.eks.revoke'] ?? 0;
    const r = await c.call('eks.revoke', { keyId: 32770 }, 7);
    assert.equal(r.id, 7);
    assert.deepEqual(r.result, { keyId: 32770, revokedAt: '2025-01-02T12:00:00.000000Z', until: EKS_REVOKED_UNTIL, wasIssuedHere: true });
    assert.deepEqual(fake.eks.revokeCalls.at(-1), { keyId: 32770, by: 'ops' });
    assert.equal(fake.service.stats().counters['admin_actions.eks.revoke'], before + 1);
    const log = fake.logs.findLast((l) => l['action'] === 'eks.revoke');
    assert.ok(log, 'the admin action is logged');
    assert.equal(log['by'], 'token "ops"');
    assert.equal(log['keyId'], 32770);
    assert.match(String(log['msg']), /management: eks\.revoke requested/);

    const list = await c.call('eks.list');
    assert.deepEqual((list.result as Dyn).revoked, [{ keyId: 32770, revokedAt: '2025-01-02T12:00:00.000000Z', until: EKS_REVOKED_UNTIL, by: 'ops' }]);
  });

  it('text form over the Unix socket: `eks.revoke 40000` (a number from a positional word), by unix', async () => {
    const c = await unix();
    const r = await c.send('eks.revoke 40000');
    assert.equal(r.id, null);
    assert.deepEqual(r.result, { keyId: 40000, revokedAt: '2025-01-02T12:00:00.000000Z', until: EKS_REVOKED_UNTIL, wasIssuedHere: false });
    assert.deepEqual(fake.eks.revokeCalls.at(-1), { keyId: 40000, by: 'unix' });
    const named = await c.send('eks.revoke keyId=65535');
    assert.equal((named.result as Dyn).keyId, 65535);
  });

  it('a key id outside 32768..65535, not an integer, a string or missing: -32602 naming keyId; nothing is revoked', async () => {
    const c = await unix();
    const calls = fake.eks.revokeCalls.length;
    const bad: [string, string][] = [
      ['eks.revoke 100', 'keyId'],
      ['eks.revoke 32767', 'keyId'],
      ['eks.revoke 65536', 'keyId'],
      ['eks.revoke 40000.5', 'keyId'],
      ['eks.revoke abc', 'keyId'],
      ['eks.revoke "40000"', 'keyId'],
      ['eks.revoke', 'keyId'],
      ['{"jsonrpc":"2.0","id":3,"method":"eks.revoke","params":{"keyId":-1}}', 'keyId'],
      ['{"jsonrpc":"2.0","id":4,"method":"eks.revoke","params":{"keyId":40000,"by":"me"}}', 'by'],
    ];
    for (const [line, path] of bad) {
      const r = await c.send(line);
      assert.equal(r.error?.code, -32602, line);
      assert.equal(r.error?.data?.['reason'], 'MGMT_INVALID_PARAMS', line);
      assert.deepEqual((r.error?.data?.['issues'] as Dyn).map((i: Dyn) => i.path), [path], line);
    }
    const extra = await c.send('eks.revoke 40000 40001');
    assert.equal(extra.error?.data?.['reason'], 'MGMT_TOO_MANY_ARGS');
    assert.equal(fake.eks.revokeCalls.length, calls);
  });

  it('the state file cannot be written: -32004 with backend state-dir, and the failure is logged', async () => {
    fake.eks.failSave = true;
    const c = await unix();
    const r = await c.call('eks.revoke', { keyId: 41000 });
    assert.equal(r.error?.code, -32004);
    assert.equal(r.error?.data?.['backend'], 'state-dir');
    assert.match(r.error?.message ?? '', /EACCES/);
    const log = fake.logs.findLast((l) => l['action'] === 'eks.revoke' && l['code'] !== undefined);
    assert.equal(log?.['code'], 'BACKEND_UNAVAILABLE');
    assert.equal(log?.['keyId'], 41000);
    // The connection goes on.
    assert.equal((await c.call('eks.list', undefined, 2)).id, 2);
  });

  it('key-revoked reaches the subscribers of that kind (with at), not the others', async () => {
    const watcher = await monitor();
    const other = await monitor();
    const sub = await watcher.send('subscribe interval=0 events=key-revoked');
    assert.deepEqual(sub.result, { interval: 0, events: ['key-revoked'] });
    await other.send('subscribe interval=0 events=key-rotated');
    const all = await monitor();
    const everything = await all.call('subscribe', { interval: 0 });
    assert.ok((everything.result as Dyn).events.includes('key-revoked'), 'key-revoked is among the default kinds');

    const c = await admin();
    await c.call('eks.revoke', { keyId: 50000 });
    for (const conn of [watcher, all]) {
      const event = await conn.next((m) => m.method === 'event');
      const { at, ...rest } = event.params as Dyn;
      assert.match(at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      assert.deepEqual(rest, { kind: 'key-revoked', keyId: 50000, by: 'ops', until: EKS_REVOKED_UNTIL });
    }
    // A round trip on `other` after the event: had it been sent there, it would have come before this answer.
    await other.call('unsubscribe', undefined, 9);
    assert.equal(other.messages.filter((m) => m.method === 'event').length, 0);
  });
});
