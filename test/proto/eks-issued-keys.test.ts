import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ALLOCATION_RESERVE, IssuedKeys, parseIssuedKeys } from '../../src/proto/eks/issued-keys.js';

const DAY = 86_400_000_000;
const NOW = 1_800_000_000_000_000;
const inRing = () => true;
const notInRing = () => false;

function issue(table: IssuedKeys, now: number, generation = 7, expires = now + 2 * DAY): number {
  const id = table.allocate(now, (g) => g === generation);
  assert.notEqual(id, null);
  table.record({ keyId: id as number, generation, issuedAtMicros: now, expiresAtMicros: expires, address: '127.0.0.1', token: null });
  return id as number;
}

test('ids are handed out in sequence from the range, never twice while held', () => {
  const table = new IssuedKeys({ first: 40000, last: 40004 });
  const ids = [0, 1, 2, 3, 4].map(() => issue(table, NOW));
  assert.deepEqual(ids, [40000, 40001, 40002, 40003, 40004]);
  assert.equal(table.allocate(NOW, inRing), null, 'every id is live');
});

test('an expired id stays held while its generation is in the ring (its holder may renew), then is free', () => {
  const table = new IssuedKeys({ first: 40000, last: 40000 });
  issue(table, NOW, 7, NOW + 1);
  assert.equal(table.allocate(NOW + 2, (g) => g === 7), null);
  assert.equal(table.allocate(NOW + 2, notInRing), 40000);
});

test('a revoked id is never handed out until the revocation lapses; revocations and renewals are recorded', () => {
  const table = new IssuedKeys({ first: 40000, last: 40001 });
  table.revoke(40000, NOW, NOW + 10, 'admin');
  assert.equal(table.isRevoked(40000, NOW + 9), true);
  assert.equal(table.allocate(NOW, notInRing), 40001);
  table.record({ keyId: 40001, generation: 1, issuedAtMicros: NOW, expiresAtMicros: NOW + 100, address: 'a', token: 't' });
  assert.equal(table.allocate(NOW, notInRing), null);
  assert.equal(table.isRevoked(40000, NOW + 10), false);
  const renewed = table.record({ keyId: 40001, generation: 2, issuedAtMicros: NOW + 5, expiresAtMicros: NOW + 200, address: 'a', token: 't' });
  assert.equal(renewed.renewals, 1);
  assert.deepEqual(table.revocations(NOW).map((r) => r.keyId), [40000]);
  assert.equal(table.prune(NOW + 1000, notInRing), 2);
  assert.deepEqual(table.all(), []);
});

test('the saved cursor is ahead of every id handed out, so a restart from the file never reuses one', () => {
  const table = new IssuedKeys({ first: 32768, last: 65535 });
  const first = issue(table, NOW);
  assert.equal(table.reservationMoved, true, 'the first id moves the reservation: save before handing it out');
  const saved = table.serialize();
  const handedOut = [first];
  for (let i = 0; i < ALLOCATION_RESERVE - 1; i++) {
    handedOut.push(issue(table, NOW));
    assert.equal(table.reservationMoved, false, `id ${handedOut.at(-1)} is covered by the saved reservation`);
  }
  // A crash now loses the table but not the saved file: the restarted allocator starts after every id above.
  const parsed = parseIssuedKeys(saved);
  assert.ok(parsed.ok);
  const restarted = new IssuedKeys({ first: 32768, last: 65535 }, parsed.value);
  const next = restarted.allocate(NOW, inRing) as number;
  assert.ok(!handedOut.includes(next) && next > Math.max(...handedOut), `${next} after ${Math.max(...handedOut)}`);
});

test('state round-trips; malformed state is refused with a coded error', () => {
  const table = new IssuedKeys({ first: 32768, last: 65535 });
  issue(table, NOW);
  table.revoke(33000, NOW, NOW + DAY, 'ops');
  const parsed = parseIssuedKeys(table.serialize());
  assert.ok(parsed.ok);
  assert.equal(parsed.value.issued.length, 1);
  assert.deepEqual(parsed.value.revoked, [{ keyId: 33000, revokedAtMicros: NOW, untilMicros: NOW + DAY, by: 'ops' }]);
  for (const [text, code] of [
    ['{', 'EKS_STATE_NOT_JSON'],
    ['[]', 'EKS_STATE_BAD_FORMAT'],
    ['{"format":"ntptsd-eks","version":2}', 'EKS_STATE_BAD_VERSION'],
    ['{"format":"ntptsd-eks","version":1,"cursor":-1,"issued":[],"revoked":[]}', 'EKS_STATE_BAD_ENTRY'],
    ['{"format":"ntptsd-eks","version":1,"cursor":1,"issued":[{"id":1}],"revoked":[]}', 'EKS_STATE_BAD_ENTRY'],
  ] as const) {
    const result = parseIssuedKeys(text);
    assert.ok(!result.ok, text);
    assert.equal(result.error.code, code, text);
  }
});

test('property: parseIssuedKeys never throws; allocation never returns a held id', () => {
  fc.assert(fc.property(fc.string(), (text) => void parseIssuedKeys(text)));
  fc.assert(
    fc.property(fc.array(fc.record({ revoke: fc.boolean(), advance: fc.nat(10) }), { maxLength: 40 }), (steps) => {
      const table = new IssuedKeys({ first: 50000, last: 50015 });
      let now = NOW;
      const held = new Set<number>();
      for (const step of steps) {
        now += step.advance;
        const id = table.allocate(now, inRing);
        if (id === null) {
          assert.equal(held.size, 16);
          continue;
        }
        assert.ok(!held.has(id), `id ${id} handed out twice`);
        held.add(id);
        if (step.revoke) table.revoke(id, now, now + DAY, 'p');
        else table.record({ keyId: id, generation: 1, issuedAtMicros: now, expiresAtMicros: now + DAY, address: 'a', token: null });
      }
    }),
  );
});
