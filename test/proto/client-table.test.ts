import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClientTable } from '../../src/proto/ntp/client-table.js';

const SECOND = 1_000_000;

function table(overrides: Partial<{ capacity: number; enabled: boolean; interval: number; burst: number; kod: boolean }> = {}): ClientTable {
  return new ClientTable({
    capacity: overrides.capacity ?? 100,
    rateLimit: {
      enabled: overrides.enabled ?? true,
      intervalMicros: (overrides.interval ?? 2) * SECOND,
      burst: overrides.burst ?? 4,
      kod: overrides.kod ?? true,
    },
  });
}

test('a burst is allowed, then one RATE KoD per interval, then silence', () => {
  const t = table({ burst: 4, interval: 2 });
  const decisions = Array.from({ length: 8 }, (_, i) => t.admit('192.0.2.1', i).decision);
  assert.deepEqual(decisions, ['allow', 'allow', 'allow', 'allow', 'kod', 'drop', 'drop', 'drop']);
  const entry = t.get('192.0.2.1')!;
  assert.equal(entry.packets, 8);
  assert.equal(entry.kods, 1);
  assert.equal(entry.drops, 3);
});

test('tokens refill at one per interval', () => {
  const t = table({ burst: 1, interval: 2 });
  assert.equal(t.admit('a', 0).decision, 'allow');
  assert.equal(t.admit('a', 1 * SECOND).decision, 'kod');
  assert.equal(t.admit('a', 2 * SECOND).decision, 'allow');
  assert.equal(t.admit('a', 4 * SECOND).decision, 'allow');
});

test('without kod, limited packets are dropped silently', () => {
  const t = table({ burst: 1, kod: false });
  t.admit('a', 0);
  assert.equal(t.admit('a', 1).decision, 'drop');
});

test('disabled rate limiting allows everything but still records clients', () => {
  const t = table({ enabled: false, burst: 1 });
  for (let i = 0; i < 100; i++) assert.equal(t.admit('a', i).decision, 'allow');
  assert.equal(t.get('a')!.packets, 100);
});

test('clients are independent', () => {
  const t = table({ burst: 1 });
  assert.equal(t.admit('a', 0).decision, 'allow');
  assert.equal(t.admit('b', 0).decision, 'allow');
  assert.equal(t.admit('a', 1).decision, 'kod');
});

test('the table is bounded and evicts the least recently seen', () => {
  const t = table({ capacity: 3 });
  t.admit('a', 1);
  t.admit('b', 2);
  t.admit('c', 3);
  t.admit('a', 4); // a is now most recent
  t.admit('d', 5); // evicts b
  assert.equal(t.size, 3);
  assert.equal(t.get('b'), undefined);
  assert.equal(t.evictions, 1);
  assert.deepEqual(
    t.mostRecent().map((e) => e.address),
    ['d', 'a', 'c'],
  );
  assert.deepEqual(
    t.mostRecent(2).map((e) => e.address),
    ['d', 'a'],
  );
});

test('property: size never exceeds capacity, sustained rate never exceeds burst + elapsed/interval', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 3 * SECOND })), { maxLength: 300 }),
      (capacity, events) => {
        const t = table({ capacity, burst: 3, interval: 1 });
        let now = 0;
        const allowed = new Map<string, number>();
        for (const [client, gap] of events) {
          now += gap;
          const address = `198.51.100.${client}`;
          const { decision } = t.admit(address, now);
          if (decision === 'allow') allowed.set(address, (allowed.get(address) ?? 0) + 1);
          assert.ok(t.size <= capacity);
        }
        // With eviction a client can come back with a full bucket, so check only without eviction.
        if (t.evictions === 0) {
          for (const [, count] of allowed) assert.ok(count <= 3 + now / SECOND + 1);
        }
      },
    ),
    { numRuns: 200 },
  );
});
