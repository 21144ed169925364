import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IssuedKeys, journalLine, parseIssuedKeys, parseJournalLine } from '../../src/proto/eks/issued-keys.js';

const DAY = 86_400_000_000;
const NOW = 1_800_000_000_000_000;
const WINDOW = 2 * DAY;
const inRing = () => true;
const notInRing = () => false;

function issue(table: IssuedKeys, now: number, generation = 7, expires = now + 2 * DAY): number {
  const id = table.allocate(now, (g) => g === generation, WINDOW);
  assert.notEqual(id, null);
  table.record({ keyId: id as number, generation, issuedAtMicros: now, expiresAtMicros: expires, address: '127.0.0.1', token: null });
  return id as number;
}

test('ids are handed out in sequence from the range, never twice while held', () => {
  const table = new IssuedKeys({ first: 40000, last: 40004 });
  const ids = [0, 1, 2, 3, 4].map(() => issue(table, NOW));
  assert.deepEqual(ids, [40000, 40001, 40002, 40003, 40004]);
  assert.equal(table.allocate(NOW, inRing, WINDOW), null, 'every id is live');
});

test('an expired id stays held for the renewal window while its generation is in the ring, then is free', () => {
  const table = new IssuedKeys({ first: 40000, last: 40000 });
  issue(table, NOW, 7, NOW + 1);
  assert.equal(table.allocate(NOW + 2, (g) => g === 7, WINDOW), null, 'renewable: held');
  assert.equal(table.renewable(40000, NOW + 2, WINDOW), true);
  assert.equal(table.allocate(NOW + 2, notInRing, WINDOW), 40000, 'its generation left the ring');
  assert.equal(table.allocate(NOW + 1 + WINDOW, inRing, WINDOW), 40000, 'the renewal window closed');
  assert.equal(table.renewable(40000, NOW + 1 + WINDOW, WINDOW), false);
});

test('only ids this node issued, in its range and not revoked, are renewable here', () => {
  const table = new IssuedKeys({ first: 40000, last: 40009 });
  const id = issue(table, NOW);
  assert.equal(table.renewable(id, NOW, WINDOW), true);
  assert.equal(table.renewable(id + 1, NOW, WINDOW), false, 'never issued here');
  table.setRange({ first: 50000, last: 50009 });
  assert.equal(table.renewable(id, NOW, WINDOW), false, 'outside the range now');
  table.setRange({ first: 40000, last: 40009 });
  table.revoke(id, NOW, [7], NOW + DAY, 'ops');
  assert.equal(table.renewable(id, NOW, WINDOW), false, 'revoked');
});

test('a revocation holds the id until every generation it saw has left the ring, whatever the time', () => {
  const table = new IssuedKeys({ first: 40000, last: 40001 });
  table.revoke(40000, NOW, [1, 2], NOW + 10, 'admin');
  assert.equal(table.isRevoked(40000), true);
  assert.equal(table.allocate(NOW, notInRing, WINDOW), 40001);
  table.record({ keyId: 40001, generation: 1, issuedAtMicros: NOW, expiresAtMicros: NOW + 100, address: 'a', token: 't' });
  assert.equal(table.allocate(NOW, inRing, WINDOW), null);
  // Long after `until` (rotations were late), generation 2 is still in the ring: the revocation stays.
  assert.equal(table.prune(NOW + 100 * DAY, (g) => g === 2, WINDOW), 1, 'only the expired key entry goes');
  assert.equal(table.isRevoked(40000), true);
  assert.equal(table.prune(NOW + 100 * DAY, notInRing, WINDOW), 1);
  assert.equal(table.isRevoked(40000), false);
  assert.deepEqual(table.all(), []);
});

test('renewals count up; journal entries replay to the same table, twice over or after a snapshot', () => {
  const table = new IssuedKeys({ first: 32768, last: 65535 });
  const entries = [];
  const id = table.allocate(NOW, inRing, WINDOW) as number;
  entries.push(table.record({ keyId: id, generation: 1, issuedAtMicros: NOW, expiresAtMicros: NOW + 100, address: 'a', token: null }));
  const renewed = table.record({ keyId: id, generation: 2, issuedAtMicros: NOW + 5, expiresAtMicros: NOW + 200, address: 'a', token: null });
  assert.equal(renewed.key.renewals, 1);
  entries.push(renewed);
  entries.push(table.revoke(33000, NOW, [1, 2], NOW + DAY, 'ops'));
  const lines = entries.map(journalLine);

  const replayed = new IssuedKeys({ first: 32768, last: 65535 });
  for (const line of [...lines, ...lines]) {
    const entry = parseJournalLine(line);
    assert.ok(entry.ok, line);
    replayed.apply(entry.value);
  }
  assert.equal(replayed.serialize(), table.serialize());
  assert.equal(replayed.allocate(NOW, inRing, WINDOW), id + 1, 'the cursor came back too');

  const snapshot = parseIssuedKeys(table.serialize());
  assert.ok(snapshot.ok);
  const fromSnapshot = new IssuedKeys({ first: 32768, last: 65535 }, snapshot.value);
  for (const line of lines) fromSnapshot.apply((parseJournalLine(line) as { ok: true; value: never }).value);
  assert.equal(fromSnapshot.serialize(), table.serialize());
});

test('malformed snapshots and journal lines are refused with a coded error', () => {
  for (const [text, code] of [
    ['{', 'EKS_STATE_NOT_JSON'],
    ['[]', 'EKS_STATE_BAD_FORMAT'],
    ['{"format":"ntptsd-eks","version":2}', 'EKS_STATE_BAD_VERSION'],
    ['{"format":"ntptsd-eks","version":1,"cursor":-1,"issued":[],"revoked":[]}', 'EKS_STATE_BAD_ENTRY'],
    ['{"format":"ntptsd-eks","version":1,"cursor":1,"issued":[{"id":1}],"revoked":[]}', 'EKS_STATE_BAD_ENTRY'],
    ['{"format":"ntptsd-eks","version":1,"cursor":1,"issued":[],"revoked":[{"id":1,"revoked":1,"until":2,"by":"x"}]}', 'EKS_STATE_BAD_ENTRY'],
  ] as const) {
    const result = parseIssuedKeys(text);
    assert.ok(!result.ok, text);
    assert.equal(result.error.code, code, text);
  }
  for (const [line, code] of [
    ['{"op":"issue"', 'EKS_JOURNAL_NOT_JSON'],
    ['{"op":"delete"}', 'EKS_STATE_BAD_ENTRY'],
    ['{"op":"issue","cursor":1,"key":{}}', 'EKS_STATE_BAD_ENTRY'],
    ['null', 'EKS_STATE_BAD_ENTRY'],
  ] as const) {
    const result = parseJournalLine(line);
    assert.ok(!result.ok, line);
    assert.equal(result.error.code, code, line);
  }
});

test('property: the parsers never throw; allocation never returns a held id', () => {
  fc.assert(fc.property(fc.string(), (text) => void parseIssuedKeys(text)));
  fc.assert(fc.property(fc.string(), (text) => void parseJournalLine(text)));
  fc.assert(
    fc.property(fc.array(fc.record({ revoke: fc.boolean(), advance: fc.nat(10) }), { maxLength: 40 }), (steps) => {
      const table = new IssuedKeys({ first: 50000, last: 50015 });
      let now = NOW;
      const held = new Set<number>();
      for (const step of steps) {
        now += step.advance;
        const id = table.allocate(now, inRing, WINDOW);
        if (id === null) {
          assert.equal(held.size, 16);
          continue;
        }
        assert.ok(!held.has(id), `id ${id} handed out twice`);
        held.add(id);
        if (step.revoke) table.revoke(id, now, [1], now + DAY, 'p');
        else table.record({ keyId: id, generation: 1, issuedAtMicros: now, expiresAtMicros: now + DAY, address: 'a', token: null });
      }
    }),
  );
});
