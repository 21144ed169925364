// Unit tests of the management authentication helpers (src/server/mgmt/auth.ts, docs/management.md §2, §7, §8):
// token matching, the failed-auth limiter, certificate → role mapping and the client-rate-limited sampler.
// Time is always an argument here, so nothing sleeps.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { MgmtClientCert, MgmtToken } from '../../src/config/types.js';
import {
  AUTH_LIMITS,
  AuthLimiter,
  MAX_AUTH_FAILURES_PER_CONNECTION,
  RateLimitSampler,
  certificateRole,
  matchToken,
} from '../../src/server/mgmt/auth.js';

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

const ADMIN: MgmtToken = { name: 'ops', role: 'admin', sha256: sha256('admin-secret') };
const MONITOR: MgmtToken = { name: 'grafana', role: 'monitor', sha256: sha256('monitor-secret') };
const TOKENS = [ADMIN, MONITOR] as const;

describe('matchToken', () => {
  it('returns the token whose SHA-256 matches the presented token', () => {
    assert.equal(matchToken(TOKENS, 'admin-secret'), ADMIN);
    assert.equal(matchToken(TOKENS, 'monitor-secret'), MONITOR);
  });

  it('returns null for an unknown token, an empty token and with no tokens configured', () => {
    assert.equal(matchToken(TOKENS, 'nope'), null);
    assert.equal(matchToken(TOKENS, ''), null);
    assert.equal(matchToken([], 'admin-secret'), null);
  });

  it('is case-sensitive and exact about the presented token', () => {
    assert.equal(matchToken(TOKENS, 'Admin-secret'), null);
    assert.equal(matchToken(TOKENS, 'ADMIN-SECRET'), null);
    assert.equal(matchToken(TOKENS, 'admin-secre'), null, 'a prefix does not match');
    assert.equal(matchToken(TOKENS, 'admin-secrett'), null, 'a longer token does not match');
    assert.equal(matchToken(TOKENS, ' admin-secret'), null, 'whitespace is not trimmed');
    assert.equal(matchToken(TOKENS, 'admin-secret\n'), null);
  });

  it('hashes the UTF-8 bytes of the token', () => {
    const token: MgmtToken = { name: 'uni', role: 'monitor', sha256: sha256('pässwörd-🔑') };
    assert.equal(matchToken([token], 'pässwörd-🔑'), token);
    // The NFD form is other bytes, hence another token.
    assert.equal(matchToken([token], 'pässwörd-🔑'.normalize('NFD')), null);
  });

  it('accepts the configured hex in either case (Buffer hex decoding is case-insensitive)', () => {
    const upper: MgmtToken = { name: 'upper', role: 'admin', sha256: sha256('x').toUpperCase() };
    assert.equal(matchToken([upper], 'x'), upper);
  });

  it('never matches a malformed configured hash (wrong length or not hex) and still checks the others', () => {
    const digest = sha256('t');
    const bad: MgmtToken[] = [
      { name: 'short', role: 'admin', sha256: digest.slice(0, 62) },
      { name: 'odd', role: 'admin', sha256: digest.slice(0, 63) },
      { name: 'long', role: 'admin', sha256: `${digest}00` },
      { name: 'nothex', role: 'admin', sha256: `zz${digest.slice(2)}` },
      { name: 'empty', role: 'admin', sha256: '' },
    ];
    for (const b of bad) assert.equal(matchToken([b], 't'), null, b.name);
    const good: MgmtToken = { name: 'good', role: 'monitor', sha256: digest };
    assert.equal(matchToken([...bad, good], 't'), good);
  });

  it('returns the first of several tokens with the same hash', () => {
    const a: MgmtToken = { name: 'a', role: 'monitor', sha256: sha256('dup') };
    const b: MgmtToken = { name: 'b', role: 'admin', sha256: sha256('dup') };
    assert.equal(matchToken([a, b], 'dup'), a);
    assert.equal(matchToken([b, a], 'dup'), b);
  });

  it('property: a token matches exactly the entry configured with its hash', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ unit: 'grapheme', maxLength: 24 }), { minLength: 1, maxLength: 6 }), fc.string({ maxLength: 24 }), (secrets, other) => {
        const tokens: MgmtToken[] = secrets.map((s, i) => ({ name: `t${i}`, role: i % 2 === 0 ? 'admin' : 'monitor', sha256: sha256(s) }));
        secrets.forEach((s, i) => assert.equal(matchToken(tokens, s), tokens[i]));
        if (!secrets.includes(other)) assert.equal(matchToken(tokens, other), null);
      }),
    );
  });
});

describe('certificateRole', () => {
  const mappings: MgmtClientCert[] = [
    { commonName: 'ops.example', role: 'admin' },
    { commonName: 'prometheus', role: 'monitor' },
  ];

  it('maps the CN of a verified certificate to its configured role', () => {
    assert.equal(certificateRole(mappings, 'ops.example'), 'admin');
    assert.equal(certificateRole(mappings, 'prometheus'), 'monitor');
  });

  it('gives no role (null: stay at mgmt.anonymous) to an unmapped CN', () => {
    assert.equal(certificateRole(mappings, 'stranger'), null);
    assert.equal(certificateRole(mappings, ''), null);
    assert.equal(certificateRole([], 'ops.example'), null);
  });

  it('matches the CN exactly (case and surrounding text matter)', () => {
    assert.equal(certificateRole(mappings, 'OPS.EXAMPLE'), null);
    assert.equal(certificateRole(mappings, 'ops.example.evil'), null);
    assert.equal(certificateRole(mappings, 'x.ops.example'), null);
    assert.equal(certificateRole(mappings, ' ops.example'), null);
  });

  it('ignores an unverified certificate (no verified CN: null) even when some mapping would match', () => {
    assert.equal(certificateRole(mappings, null), null);
    assert.equal(certificateRole([{ commonName: 'null', role: 'admin' }], null), null);
  });

  it('uses the first mapping of a CN listed twice', () => {
    assert.equal(
      certificateRole(
        [
          { commonName: 'dup', role: 'monitor' },
          { commonName: 'dup', role: 'admin' },
        ],
        'dup',
      ),
      'monitor',
    );
  });
});

describe('AuthLimiter', () => {
  const S = 1000;

  it('has the documented defaults: 5 at once, one per 12 s, 4096 addresses, 3 failures per connection', () => {
    assert.deepEqual({ ...AUTH_LIMITS }, { burst: 5, refillMs: 12_000, capacity: 4096 });
    assert.equal(MAX_AUTH_FAILURES_PER_CONNECTION, 3);
    assert.deepEqual(new AuthLimiter().options, AUTH_LIMITS);
  });

  it('allows a burst of 5 failures, then refuses with retryAfter 12 s', () => {
    const l = new AuthLimiter();
    const t0 = 1_700_000_000_000;
    for (let i = 0; i < 5; i++) {
      assert.equal(l.retryAfter('192.0.2.1', t0), 0, `attempt ${i + 1} allowed`);
      l.fail('192.0.2.1', t0);
    }
    assert.equal(l.retryAfter('192.0.2.1', t0), 12);
    assert.equal(l.retryAfter('192.0.2.1', t0 + 1), 12, 'rounded up to whole seconds');
    assert.equal(l.retryAfter('192.0.2.1', t0 + 5 * S), 7);
    assert.equal(l.retryAfter('192.0.2.1', t0 + 11 * S), 1);
    assert.equal(l.retryAfter('192.0.2.1', t0 + 12 * S - 1), 1, 'never 0 while still empty');
    assert.equal(l.retryAfter('192.0.2.1', t0 + 12 * S), 0);
  });

  it('then allows one failure per 12 s', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 5; i++) l.fail('a', 0);
    for (let k = 1; k <= 10; k++) {
      const t = k * 12 * S;
      assert.equal(l.retryAfter('a', t - 1), 1, `still limited just before ${t}`);
      assert.equal(l.retryAfter('a', t), 0, `allowed at ${t}`);
      l.fail('a', t);
      assert.equal(l.retryAfter('a', t), 12, `empty again after the failure at ${t}`);
    }
  });

  it('refills to a full burst after 60 s and then forgets the address', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 5; i++) l.fail('a', 0);
    assert.equal(l.size, 1);
    assert.equal(l.retryAfter('a', 60 * S), 0);
    assert.equal(l.size, 0, 'a full bucket is not remembered');
    for (let i = 0; i < 5; i++) {
      assert.equal(l.retryAfter('a', 60 * S), 0);
      l.fail('a', 60 * S);
    }
    assert.equal(l.retryAfter('a', 60 * S), 12);
  });

  it('a partial refill carries over: 24 s after emptying, two failures are allowed', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 5; i++) l.fail('a', 0);
    const t = 24 * S;
    assert.equal(l.retryAfter('a', t), 0);
    l.fail('a', t);
    assert.equal(l.retryAfter('a', t), 0);
    l.fail('a', t);
    assert.equal(l.retryAfter('a', t), 12);
  });

  it('failures while empty do not go below zero (retryAfter stays at one interval)', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 50; i++) l.fail('a', 0);
    assert.equal(l.retryAfter('a', 0), 12);
    assert.equal(l.retryAfter('a', 12 * S), 0);
  });

  it('keeps addresses independent', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 5; i++) l.fail('192.0.2.1', 0);
    assert.equal(l.retryAfter('192.0.2.1', 0), 12);
    assert.equal(l.retryAfter('192.0.2.2', 0), 0);
    assert.equal(l.retryAfter('2001:db8::1', 0), 0);
    for (let i = 0; i < 4; i++) l.fail('192.0.2.2', 0);
    assert.equal(l.retryAfter('192.0.2.2', 0), 0, 'the second address still has one left');
    assert.equal(l.retryAfter('192.0.2.1', 0), 12, 'the first is unaffected by the second');
    assert.equal(l.size, 2);
  });

  it('bounds the table at capacity, forgetting the least recently failed address first', () => {
    const l = new AuthLimiter({ burst: 1, refillMs: 60_000, capacity: 3 });
    l.fail('a', 0);
    l.fail('b', 1);
    l.fail('c', 2);
    assert.equal(l.size, 3);
    l.fail('a', 3); // a fails again: now the most recent
    l.fail('d', 4); // evicts b, the least recently failed
    assert.equal(l.size, 3);
    assert.equal(l.retryAfter('b', 5), 0, 'b forgotten: may try again');
    assert.equal(l.retryAfter('a', 5), 60);
    assert.equal(l.retryAfter('c', 5), 60);
    assert.equal(l.retryAfter('d', 5), 60);
    l.fail('e', 6); // evicts c
    assert.equal(l.retryAfter('c', 7), 0);
    assert.equal(l.retryAfter('a', 7), 60);
    assert.equal(l.size, 3);
  });

  it('checking retryAfter does not refresh an address for eviction (least recently failed, not seen)', () => {
    const l = new AuthLimiter({ burst: 1, refillMs: 60_000, capacity: 2 });
    l.fail('a', 0);
    l.fail('b', 1);
    assert.equal(l.retryAfter('a', 2), 60);
    l.fail('c', 3);
    assert.equal(l.retryAfter('a', 4), 0, 'a was the least recently failed');
    assert.equal(l.retryAfter('b', 4), 60);
  });

  it('stays bounded at the default capacity of 4096 under a flood of addresses', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 10_000; i++) l.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, i);
    assert.equal(l.size, 4096);
  });

  it('property: never allows more than burst + elapsed/interval failures per address', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 5_000 })), { maxLength: 200 }),
        (burst, refillMs, steps) => {
          const l = new AuthLimiter({ burst, refillMs, capacity: 16 });
          const first = new Map<number, number>();
          const allowed = new Map<number, number>();
          let now = 0;
          for (const [who, dt] of steps) {
            now += dt;
            const address = `198.51.100.${who}`;
            if (l.retryAfter(address, now) === 0) {
              if (!first.has(who)) first.set(who, now);
              allowed.set(who, (allowed.get(who) ?? 0) + 1);
              l.fail(address, now);
              const bound = burst + Math.floor((now - (first.get(who) ?? now)) / refillMs);
              assert.ok((allowed.get(who) ?? 0) <= bound, `${address}: ${allowed.get(who)} failures allowed by ${now}, bound ${bound}`);
            }
          }
        },
      ),
    );
  });

  it('property: retryAfter is positive exactly when the address has used up its bucket, and is then accurate', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 30 }).map((s) => s * 1000),
        fc.integer({ min: 0, max: 10 }),
        (burst, refillMs, failures) => {
          const l = new AuthLimiter({ burst, refillMs, capacity: 4 });
          for (let i = 0; i < failures; i++) l.fail('a', 0);
          const wait = l.retryAfter('a', 0);
          if (failures < burst) assert.equal(wait, 0);
          else {
            assert.equal(wait, refillMs / 1000);
            // No polling in between: at exactly retryAfter the address may try again.
            assert.equal(l.retryAfter('a', wait * 1000), 0);
          }
        },
      ),
    );
  });

  // Polling in steps that are not binary fractions of the interval (10 × 1.2 s) used to leave a fractional
  // balance of 0.9999999999999999 token after the full 12 s.
  it('allows the next failure exactly one interval after emptying, however often retryAfter was polled', () => {
    const l = new AuthLimiter();
    for (let i = 0; i < 5; i++) l.fail('a', 0);
    let wait = -1;
    for (let t = 1200; t <= 12_000; t += 1200) wait = l.retryAfter('a', t);
    assert.equal(wait, 0);
  });
});

describe('RateLimitSampler', () => {
  const S = 1000;
  const MIN = 60 * S;

  it('has the documented defaults: one per address per 60 s, one per second in all', () => {
    const s = new RateLimitSampler();
    assert.equal(s.perAddressMs, 60_000);
    assert.equal(s.globalMs, 1_000);
    assert.equal(s.capacity, 4096);
  });

  it('sends the first event with suppressed 0, then at most one per address per minute', () => {
    const s = new RateLimitSampler();
    const t0 = 1_700_000_000_000;
    assert.equal(s.sample('a', t0), 0);
    assert.equal(s.sample('a', t0 + 1), null);
    assert.equal(s.sample('a', t0 + 30 * S), null);
    assert.equal(s.sample('a', t0 + MIN - 1), null);
    assert.equal(s.sample('a', t0 + MIN), 3, 'the three suppressed events are counted');
    assert.equal(s.sample('a', t0 + MIN + 1), null);
  });

  it('sends at most one event per second in all, across addresses', () => {
    const s = new RateLimitSampler();
    assert.equal(s.sample('a', 0), 0);
    assert.equal(s.sample('b', 0), null);
    assert.equal(s.sample('c', 999), null);
    assert.equal(s.sample('b', 1000), 2);
    assert.equal(s.sample('c', 1500), null);
    assert.equal(s.sample('c', 2000), 1);
  });

  it('an address suppressed by the global limit is not charged its per-address minute', () => {
    const s = new RateLimitSampler();
    assert.equal(s.sample('a', 0), 0);
    assert.equal(s.sample('b', 500), null); // globally suppressed: b not recorded
    assert.equal(s.sample('b', 1000), 1); // so b may be sent one second later
  });

  it('counts suppressed events in all (from every address) and resets the count when one is sent', () => {
    const s = new RateLimitSampler();
    assert.equal(s.sample('a', 0), 0);
    for (let i = 0; i < 100; i++) assert.equal(s.sample(i % 2 === 0 ? 'a' : 'b', 10 + i), null);
    assert.equal(s.sample('c', 2 * S), 100);
    assert.equal(s.sample('d', 4 * S), 0, 'nothing suppressed since the last one sent');
  });

  it('a flood from one address yields one event a minute, each with the count since the previous', () => {
    const s = new RateLimitSampler();
    const sent: [number, number][] = [];
    for (let t = 0; t < 5 * MIN; t += 100) {
      const r = s.sample('203.0.113.9', t);
      if (r !== null) sent.push([t, r]);
    }
    assert.deepEqual(sent, [
      [0, 0],
      [MIN, 599],
      [2 * MIN, 599],
      [3 * MIN, 599],
      [4 * MIN, 599],
    ]);
  });

  it('a flood from many addresses yields one event a second', () => {
    const s = new RateLimitSampler();
    let sent = 0;
    for (let t = 0; t < 10 * S; t += 10) if (s.sample(`10.0.${(t / 10) >> 8}.${(t / 10) & 255}`, t) !== null) sent++;
    assert.equal(sent, 10);
  });

  it('bounds the per-address table at capacity, forgetting the least recently sent address', () => {
    const s = new RateLimitSampler(60_000, 1, 2);
    assert.equal(s.sample('a', 0), 0);
    assert.equal(s.sample('b', 1), 0);
    assert.equal(s.sample('c', 2), 0); // a forgotten
    assert.equal(s.sample('a', 3), 0, 'a forgotten: sent again within its minute');
    assert.equal(s.sample('c', 4), null, 'c still remembered');
  });

  it('property: an event is sent exactly when both intervals have passed, and accounts for every suppressed one', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 20_000 })), { maxLength: 300 }),
        (steps) => {
          const s = new RateLimitSampler();
          const lastByAddress = new Map<number, number>();
          let lastAny = Number.NEGATIVE_INFINITY;
          let nullsSinceSent = 0;
          let now = 0;
          for (const [who, dt] of steps) {
            now += dt;
            const last = lastByAddress.get(who);
            const due = now - lastAny >= 1000 && (last === undefined || now - last >= 60_000);
            const r = s.sample(`a${who}`, now);
            assert.equal(r !== null, due, `a${who} at ${now}: sent exactly when both intervals have passed`);
            if (r === null) {
              nullsSinceSent++;
              continue;
            }
            assert.equal(r, nullsSinceSent);
            nullsSinceSent = 0;
            lastAny = now;
            lastByAddress.set(who, now);
          }
        },
      ),
    );
  });
});
