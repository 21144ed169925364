import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import { MruPager, MRU_MAX_RESUME_ENTRIES, type MruAction, type MruResult } from '../../src/proto/mode6/mru.js';
import { MODE6_MAX_FRAGMENT_DATA, Mode6ErrorCode, Mode6Opcode } from '../../src/proto/mode6/packet.js';
import { formatVariableTimestamp, parseVariableList } from '../../src/proto/mode6/variables.js';

const SECOND = 1_000_000;
const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

interface Slot {
  addr: string;
  last: number;
  first: number;
  ct: number;
}

type Reply = { kind: 'data'; text: string } | { kind: 'error'; code: number } | { kind: 'silence' };

/**
 * A model of NTPsec's read_mru_list: nonces valid 16 s, frags counting the datagram being filled (3 entries
 * fit in one here), resume points addr.K/last.K (K < 16) that must match an unchanged entry, else
 * UNKNOWN_VARIABLE; BAD_VALUE for frags over 128 or limit out of 1..256; random extra items like NTPsec's.
 */
class FakeNtpdMru {
  slots: Slot[] = [];
  nowMicros = 1_700_000_000 * SECOND;
  clock = 0xe9000000;
  readonly issued = new Map<string, number>();
  nonceCounter = 0;
  requests: string[] = [];
  refuseFragsAbove = 128;
  perDatagram = 3;

  add(addr: string): void {
    const at = this.slots.findIndex((s) => s.addr.split(':')[0] === addr.split(':')[0]);
    this.clock += 1;
    if (at >= 0) {
      const [slot] = this.slots.splice(at, 1) as [Slot];
      this.slots.push({ ...slot, addr, last: this.clock, ct: slot.ct + 1 });
    } else this.slots.push({ addr, last: this.clock, first: this.clock, ct: 1 });
  }

  nonce(): string {
    const n = (++this.nonceCounter).toString(16).padStart(24, '0');
    this.issued.set(n, this.nowMicros);
    return n;
  }

  ts(sec: number): string {
    return formatVariableTimestamp({ seconds: sec >>> 0, fraction: 0x80000000 });
  }

  handle(opcode: number, data: string): Reply {
    this.requests.push(data);
    if (opcode === Mode6Opcode.RequestNonce) return { kind: 'data', text: `nonce=${this.nonce()}\r\n` };
    const parsed = parseVariableList(data);
    assert.ok(parsed.ok, `request ${data}`);
    const v = parsed.value;
    const nonce = v.get('nonce');
    const issuedAt = typeof nonce === 'string' ? this.issued.get(nonce) : undefined;
    if (issuedAt === undefined || this.nowMicros - issuedAt >= 16 * SECOND) return { kind: 'silence' };
    const frags = Number(v.get('frags') ?? 0);
    const limit = Number(v.get('limit') ?? 0);
    if ((frags === 0 && !(limit > 0 && limit <= 256)) || frags > this.refuseFragsAbove) return { kind: 'error', code: Mode6ErrorCode.BadValue };
    const max = frags > 0 ? (frags - 1) * this.perDatagram : limit;
    let start = 0;
    const anchors: { addr: string; last: string }[] = [];
    for (let k = 0; k < 16; k++) {
      const addr = v.get(`addr.${k}`);
      const last = v.get(`last.${k}`);
      if (typeof addr === 'string' && typeof last === 'string') anchors.push({ addr, last });
    }
    let text = `nonce=${this.nonce()}`;
    if (anchors.length > 0) {
      const hit = anchors.map((a) => this.slots.findIndex((s) => s.addr === a.addr && this.ts(s.last) === a.last)).find((i) => i >= 0);
      if (hit === undefined) return { kind: 'error', code: Mode6ErrorCode.UnknownVariable };
      start = hit + 1;
      text += `, last.older=${this.ts((this.slots[hit] as Slot).last)}, addr.older=${(this.slots[hit] as Slot).addr}`;
    }
    const page = this.slots.slice(start, start + max);
    page.forEach((s, i) => {
      text += `, ct.${i}=${s.ct}, addr.${i}=${s.addr}, first.${i}=${this.ts(s.first)}, last.${i}=${this.ts(s.last)}, mv.${i}=35, rs.${i}=0x40, sc.${i}=0.050, dr.${i}=0`;
      if (i === 0) text += `, qzx.0=1234`;
    });
    if (start + max >= this.slots.length) {
      text += `, now=${this.ts(this.clock + 5)}`;
      if (page.length > 0) text += `, last.newest=${this.ts((page[page.length - 1] as Slot).last)}`;
    }
    return { kind: 'data', text: `${text}\r\n` };
  }
}

/** Runs the pager against the model; `between` runs before every request (to change the list, advance time). */
function drive(pager: MruPager, fake: FakeNtpdMru, between: (n: number) => void = () => undefined): { action: MruAction; log: string[] } {
  const log: string[] = [];
  let action = pager.start(fake.nowMicros);
  for (let n = 0; action.kind === 'send' && n < 10_000; n++) {
    between(n);
    const reply = fake.handle(action.opcode, action.data);
    log.push(`${action.opcode === Mode6Opcode.RequestNonce ? 'NONCE' : 'MRU'} -> ${reply.kind === 'error' ? `error ${reply.code}` : reply.kind}`);
    if (reply.kind === 'data') action = pager.onResponse(enc(reply.text), fake.nowMicros);
    else if (reply.kind === 'error') action = pager.onServerError(reply.code, fake.nowMicros);
    else action = pager.onTimeout(fake.nowMicros);
  }
  return { action, log };
}

function done(action: MruAction): MruResult {
  assert.equal(action.kind, 'done', action.kind === 'failed' ? action.error.message : '');
  return (action as Extract<MruAction, { kind: 'done' }>).result;
}

function sameAsServer(result: MruResult, fake: FakeNtpdMru): void {
  const got = new Map(result.entries.map((e) => [e.host, e.last.seconds]));
  const want = new Map(fake.slots.map((s) => [s.addr.split(':')[0] as string, s.last]));
  assert.deepEqual(got, want);
  assert.equal(new Set(result.entries.map((e) => e.host)).size, result.entries.length, 'no duplicate hosts');
}

test('pages through a list: nonce first, then frags= pages with resume points, done at now=', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 20; i++) fake.add(`192.0.2.${i}:123`);
  const { action, log } = drive(new MruPager({}, { frags: 3 }), fake);
  const result = done(action);
  assert.equal(result.entries.length, 20);
  assert.deepEqual(
    result.entries.map((e) => e.host),
    Array.from({ length: 20 }, (_, i) => `192.0.2.${i + 1}`),
  );
  const e = result.entries[0];
  assert.deepEqual(e && { address: e.address, port: e.port, count: e.count, mode: e.mode, version: e.version, restrictions: e.restrictions, score: e.score, dropped: e.dropped }, {
    address: '192.0.2.1:123',
    port: 123,
    count: 1,
    mode: 3,
    version: 4,
    restrictions: 0x40,
    score: 0.05,
    dropped: 0,
  });
  assert.ok(result.now !== null && result.lastNewest !== null);
  assert.equal(result.truncated, false);
  assert.equal(log[0], 'NONCE -> data');
  assert.ok(log.length >= 4, 'several pages');
  assert.match(fake.requests[1] as string, /^nonce=[0-9a-f]{24}, frags=3$/);
  assert.match(fake.requests[2] as string, /^nonce=[0-9a-f]{24}, frags=3, addr\.0=192\.0\.2\.\d+:123, last\.0=0x[0-9a-f]{8}\.80000000, addr\.1=/);
  sameAsServer(result, fake);
});

test('an empty MRU list ends on the first page', () => {
  const fake = new FakeNtpdMru();
  const result = done(drive(new MruPager(), fake).action);
  assert.equal(result.entries.length, 0);
  assert.equal(result.requests, 2);
  assert.equal(result.lastNewest, null);
});

test('filters are sent as ntpd reads them; recent only on the first page', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 10; i++) fake.add(`192.0.2.${i}:123`);
  done(drive(new MruPager({ mincount: 2, resall: 0x40, resany: 0x420, laddr: '127.0.0.1', maxlstint: 60, minlstint: 1, mindrop: 0, minscore: 0.5, recent: 5 }, { frags: 2 }), fake).action);
  assert.match(fake.requests[1] as string, /^nonce=\w+, frags=2, recent=5, mincount=2, mindrop=0, minscore=0\.5, laddr=127\.0\.0\.1, resall=0x40, resany=0x420, maxlstint=60, minlstint=1$/);
  assert.ok(!(fake.requests[2] as string).includes('recent='));
  assert.match(fake.requests[2] as string, /minlstint=1, addr\.0=/);
});

test('resume points: newest first, at most 16, within one 468-octet request', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 60; i++) fake.add(`[2001:db8:aaaa:bbbb:cccc:dddd:eeee:${i.toString(16)}]:12345`);
  done(drive(new MruPager({}, { frags: 8 }), fake).action);
  for (const r of fake.requests.slice(2)) {
    assert.ok(r.length <= MODE6_MAX_FRAGMENT_DATA, `${r.length} octets`);
    const ks = [...r.matchAll(/addr\.(\d+)=/g)].map((m) => Number(m[1]));
    assert.ok(ks.length >= 1 && ks.length <= MRU_MAX_RESUME_ENTRIES);
    assert.deepEqual(ks, ks.map((_, i) => i));
  }
});

test('entries hit during the paging come back newer and replace the old copy (dedupe by host)', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 30; i++) fake.add(`192.0.2.${i}:123`);
  const { action } = drive(new MruPager({}, { frags: 3 }), fake, (n) => {
    if (n === 3) fake.add('192.0.2.1:4444'); // already paged: moves to the end with a new port
    if (n === 4) fake.add('198.51.100.1:123'); // new address
  });
  const result = done(action);
  sameAsServer(result, fake);
  const moved = result.entries.find((e) => e.host === '192.0.2.1');
  assert.equal(moved?.port, 4444);
  assert.equal(moved?.count, 2);
  assert.equal(result.entries.at(-1)?.host, '198.51.100.1', 'oldest last first');
});

test('UNKNOWN_VARIABLE: the stale resume points are dropped and older ones sent; with none left, restart', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 12; i++) fake.add(`192.0.2.${i}:123`);
  let bumped = false;
  const { action, log } = drive(new MruPager({}, { frags: 3 }), fake, (n) => {
    // After the first page (6 entries), every entry received so far is hit again.
    if (n === 2 && !bumped) {
      bumped = true;
      for (let i = 1; i <= 6; i++) fake.add(`192.0.2.${i}:123`);
    }
  });
  const result = done(action);
  assert.ok(log.includes(`MRU -> error ${Mode6ErrorCode.UnknownVariable}`));
  sameAsServer(result, fake);
  const after = fake.requests[fake.requests.findIndex((r, i) => i > 2 && r.startsWith('nonce=')) ?? 0] as string;
  assert.ok(!after.includes('addr.0=192.0.2.6:123, last'), 'the stale points are not sent again');
});

test('too many restarts in a row: MRU_STALLED', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 12; i++) fake.add(`192.0.2.${i}:123`);
  const pager = new MruPager({}, { frags: 2, maxRestarts: 2 });
  pager.start(fake.nowMicros);
  let action = pager.onResponse(enc(`nonce=${fake.nonce()}`), fake.nowMicros);
  action = pager.onResponse(enc((fake.handle(Mode6Opcode.ReadMru, (action as { data: string }).data) as { text: string }).text), fake.nowMicros);
  for (let i = 0; i < 3 && action.kind === 'send'; i++) action = pager.onServerError(Mode6ErrorCode.UnknownVariable, fake.nowMicros);
  assert.equal(action.kind, 'failed');
  assert.equal(action.kind === 'failed' && action.error.code, 'MODE6_MRU_STALLED');
});

test('BAD_VALUE switches from frags= to limit=, then lowers the limit', () => {
  const fake = new FakeNtpdMru();
  fake.refuseFragsAbove = 0; // this ntpd refuses every frags=
  for (let i = 1; i <= 10; i++) fake.add(`192.0.2.${i}:123`);
  const pager = new MruPager({}, { frags: 4 });
  const { action } = drive(pager, fake);
  const result = done(action);
  sameAsServer(result, fake);
  assert.ok(fake.requests.some((r) => /, limit=12\b/.test(r)), 'limit = 3 × frags');
  const lower = new MruPager({}, {});
  lower.start(0);
  lower.onResponse(enc('nonce=000000000000000000000001'), 0);
  lower.onServerError(Mode6ErrorCode.BadValue, 0);
  assert.deepEqual(lower.pageSize, { limit: 96 });
  lower.onServerError(Mode6ErrorCode.BadValue, 0);
  assert.deepEqual(lower.pageSize, { limit: 95 });
});

test('the nonce is renewed when 12 s old; a stale nonce (no answer) gets a new nonce and a smaller page', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 40; i++) fake.add(`192.0.2.${i}:123`);
  // A nonce's age counts from the request that brought it. Errors bring no new nonce: after 14 s of them the
  // pager fetches one before the next page; after 4 s it does not.
  const page = (n: number): Uint8Array => enc(`nonce=00000000000000000000000${n}, addr.0=192.0.2.1:123, last.0=0xe9000000.00000000`);
  for (const [errorAt, expected] of [
    [15, Mode6Opcode.RequestNonce],
    [5, Mode6Opcode.ReadMru],
  ] as const) {
    const p = new MruPager({}, { frags: 4 });
    p.start(0);
    p.onResponse(enc('nonce=000000000000000000000001'), 0.5 * SECOND);
    const next = p.onResponse(page(2), 1 * SECOND); // sent at 0.5 s: nonce 2 dates from then
    assert.equal(next.kind === 'send' && next.opcode, Mode6Opcode.ReadMru);
    const after = p.onServerError(Mode6ErrorCode.UnknownVariable, errorAt * SECOND);
    assert.equal(after.kind === 'send' && after.opcode, expected, `error at ${errorAt} s`);
  }
  // Against the model: pages answered slowly but within 16 s never get a silent drop.
  const slow = drive(new MruPager({}, { frags: 4 }), fake, () => {
    fake.nowMicros += 5 * SECOND;
  });
  const result = done(slow.action);
  sameAsServer(result, fake);
  assert.equal(result.timeouts, 0);

  // A nonce that expires while a page is in flight (20 s pass): ntpd stays silent, the pager recovers.
  const fake2 = new FakeNtpdMru();
  for (let i = 1; i <= 40; i++) fake2.add(`192.0.2.${i}:123`);
  const pager = new MruPager({}, { frags: 2 });
  let expired = false;
  const { action, log } = drive(pager, fake2, (n) => {
    if (n === 3 && !expired) {
      expired = true;
      fake2.nowMicros += 20 * SECOND;
    }
  });
  const r2 = done(action);
  sameAsServer(r2, fake2);
  assert.equal(r2.timeouts, 1);
  assert.ok(log.includes('MRU -> silence'));
  const after = log.indexOf('MRU -> silence');
  assert.equal(log[after + 1], 'NONCE -> data', 'a new nonce right after the silence');
});

test('timeouts halve frags down to 2; too many in a row fail', () => {
  const pager = new MruPager({}, { frags: 32, maxTimeouts: 5 });
  pager.start(0);
  pager.onResponse(enc('nonce=000000000000000000000001'), 0);
  const sizes: unknown[] = [];
  for (let i = 0; i < 6; i++) {
    if (pager.onTimeout(0).kind !== 'send') break;
    sizes.push(pager.pageSize);
    pager.onResponse(enc('nonce=000000000000000000000002'), 0); // the new nonce, then the page times out again
  }
  assert.deepEqual(sizes.slice(0, 5), [{ frags: 16 }, { frags: 8 }, { frags: 4 }, { frags: 2 }, { frags: 2 }]);
  const stuck = new MruPager({}, { maxTimeouts: 2 });
  stuck.start(0);
  stuck.onTimeout(0);
  stuck.onTimeout(0);
  const last = stuck.onTimeout(0);
  assert.equal(last.kind === 'failed' && last.error.code, 'MODE6_MRU_TIMEOUT');
});

test('caps: maxEntries and maxRequests stop the paging with truncated: true', () => {
  const fake = new FakeNtpdMru();
  for (let i = 1; i <= 50; i++) fake.add(`192.0.2.${i}:123`);
  const capped = done(drive(new MruPager({}, { frags: 3, maxEntries: 10 }), fake).action);
  assert.equal(capped.entries.length, 10);
  assert.equal(capped.truncated, true);
  const fewRequests = done(drive(new MruPager({}, { frags: 2, maxRequests: 4 }), fake).action);
  assert.equal(fewRequests.truncated, true);
  assert.equal(fewRequests.requests, 4);
});

test('other server errors, bad nonces and empty pages end the paging', () => {
  const a = new MruPager();
  a.start(0);
  a.onResponse(enc('nonce=000000000000000000000001'), 0);
  const denied = a.onServerError(Mode6ErrorCode.AuthFailure, 0);
  assert.equal(denied.kind === 'failed' && denied.error.code, 'MODE6_MRU_SERVER_ERROR');

  const b = new MruPager();
  b.start(0);
  const noNonce = b.onResponse(enc('garbage\r\n'), 0);
  assert.equal(noNonce.kind === 'failed' && noNonce.error.code, 'MODE6_MRU_BAD_NONCE');

  const c = new MruPager();
  c.start(0);
  let act = c.onResponse(enc('nonce=000000000000000000000001'), 0);
  for (let i = 0; i < 3 && act.kind === 'send'; i++) act = c.onResponse(enc('nonce=000000000000000000000001, last.older=0x1.2'), 0);
  assert.equal(act.kind === 'failed' && act.error.code, 'MODE6_MRU_NO_PROGRESS');

  assert.throws(() => new MruPager({}, { frags: 1 }), UsageError, 'frags=1 brings no entry from ntpd');
  assert.throws(() => new MruPager({ laddr: 'a,b' }), UsageError);
  assert.throws(() => new MruPager({ mincount: -1 }), UsageError);
  const d = new MruPager();
  assert.throws(() => d.onTimeout(0), UsageError, 'nothing outstanding yet');
  d.start(0);
  assert.throws(() => d.start(0), UsageError);
});

test('garbage entries are skipped and counted, the rest kept', () => {
  const pager = new MruPager();
  pager.start(0);
  pager.onResponse(enc('nonce=000000000000000000000001'), 0);
  const a = pager.onResponse(enc('nonce=000000000000000000000002, addr.0=192.0.2.1:123, last.0=0xe9000000.00000000, addr.1=192.0.2.2:123, last.1=bogus, ct.2=5, addr.3=\x01bad, last.3=0xe9000001.0, now=0xe9000009.0'), 0);
  const r = done(a);
  assert.deepEqual(
    r.entries.map((e) => e.host),
    ['192.0.2.1', '\\x01bad'],
  );
  assert.equal(r.skippedEntries, 2);
  assert.equal(r.textProblems, 1);
});

test('property: whatever the list and the hits during paging, the result is the final list, each host once with its newest time', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 60 }),
      fc.array(fc.tuple(fc.nat({ max: 30 }), fc.integer({ min: 1, max: 80 })), { maxLength: 30 }),
      fc.integer({ min: 2, max: 6 }),
      fc.array(fc.boolean(), { maxLength: 40 }),
      (initial, hits, frags, slowdowns) => {
        const fake = new FakeNtpdMru();
        for (let i = 1; i <= initial; i++) fake.add(`10.0.${i >> 8}.${i & 255}:123`);
        const { action } = drive(new MruPager({}, { frags, maxRestarts: 1000, maxTimeouts: 1000 }), fake, (n) => {
          for (const [when, who] of hits) if (when === n) fake.add(`10.0.${who >> 8}.${who & 255}:${1000 + n}`);
          if (slowdowns[n] === true) fake.nowMicros += 14 * SECOND;
        });
        sameAsServer(done(action), fake);
      },
    ),
    { numRuns: 200 },
  );
});

test('property: the pager never throws on arbitrary answers', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constantFrom('t', 'e5', 'e6', 'e1')), { maxLength: 20 }), (inputs) => {
      const pager = new MruPager({}, { maxRequests: 50 });
      let action = pager.start(0);
      for (const input of inputs) {
        if (action.kind !== 'send') break;
        if (input === 't') action = pager.onTimeout(0);
        else if (typeof input === 'string') action = pager.onServerError(Number(input.slice(1)), 0);
        else action = pager.onResponse(input, 0);
      }
      assert.ok(['send', 'done', 'failed'].includes(action.kind));
    }),
    { numRuns: 500 },
  );
});
