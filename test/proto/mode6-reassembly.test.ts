import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMode6Packet, decodeMode6Response, encodeMode6Packet, MODE6_MAX_FRAGMENT_DATA, type Mode6Packet } from '../../src/proto/mode6/packet.js';
import { Mode6Reassembly, type Mode6ReassemblyState } from '../../src/proto/mode6/reassembly.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

// A 2-fragment READVAR answer for association 17767, captured from NTPsec 1.2.2. Note the padding after the
// second fragment's data: ".4e" — NTPsec leaves old octets there, the count says where the data ends.
const FRAGMENT_1 = hex(`
16a21167b0144567000001d47372636164723d31302e3132332e34352e322c20737263706f72743d3132332c206473746164723d31302e3132332e34
352e312c20647374706f72743d3132332c0d0a6c6561703d302c20686d6f64653d332c207374726174756d3d382c2070706f6c6c3d39392c2068706f
6c6c3d332c20707265636973696f6e3d2d32362c0d0a726f6f7464656c61793d302e3030302c20726f6f74646973703d302e3030302c207265666964
3d3132372e3132372e312e312c0d0a72656674696d653d307865656232653164622e34653034363636372c207265633d307865656232653164662e62
396362626237322c0d0a786d743d307865656232653164662e62396362323162382c2072656163683d3078312c20756e72656163683d312c2064656c
61793d302e3034343135342c0d0a6f66667365743d302e3031323931342c206a69747465723d302e3030333035302c2064697370657273696f6e3d33
3933372e3530373536382c206b657969643d302c0d0a66696c7464656c61793d0b20302e303420302e303920302e303020302e303020302e30302030
2e303020302e303020302e30302c0d0a66696c746f66667365743d0b20302e303420302e303920302e303020302e303020302e303020302e30302030`);
const FRAGMENT_2 = hex(`
16821167b014456701d400c92e303020302e303020302e303120302e303220302e303020302e303020302e303020302e303020302e303020302e3030
2c0d0a706d6f64653d342c0d0a66696c74646973703d0b20302e303420302e303920302e303020302e303020302e0420302e303020302e3033203136
3030302e30302031363030302e30302031363030302e30302031363030302e30302031363030302e30302031363030302e30302c0d0a666c6173683d
30783430302c20686561647761793d392c206e7473636f6f6b6965733d2d310d0a2e3465`);

function decode(bytes: Uint8Array): Mode6Packet {
  // decodeMode6Packet: requests too, to check the reassembly ignores them.
  const r = decodeMode6Packet(bytes);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

const EXPECT = { opcode: 2, sequence: 0x1167, associationId: 17767 };

test('the captured 2-fragment answer reassembles in either order', () => {
  assert.ok(decodeMode6Response(FRAGMENT_1).ok && decodeMode6Response(FRAGMENT_2).ok);
  for (const order of [
    [FRAGMENT_1, FRAGMENT_2],
    [FRAGMENT_2, FRAGMENT_1],
  ]) {
    const r = new Mode6Reassembly(EXPECT);
    const first = r.accept(decode(order[0] as Uint8Array));
    assert.equal(first.kind, 'incomplete');
    const done = r.accept(decode(order[1] as Uint8Array));
    assert.equal(done.kind, 'complete');
    if (done.kind !== 'complete') return;
    assert.equal(done.data.length, 468 + 201);
    assert.equal(done.status, 0xb014);
    assert.equal(done.fragments, 2);
    const text = Buffer.from(done.data).toString('latin1');
    assert.ok(text.startsWith('srcadr=10.123.45.2, srcport=123,'));
    assert.ok(text.endsWith('headway=9, ntscookies=-1\r\n'), 'the padding octets ".4e" are not data');
  }
});

interface Frag {
  offset: number;
  data: Uint8Array;
  more: boolean;
}

function fragments(data: Uint8Array, cuts: number[]): Frag[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].filter((c) => c > 0 && c < data.length).sort((a, b) => a - b);
  const bounds = [0, ...points, data.length];
  const out: Frag[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) out.push({ offset: bounds[i] as number, data: data.subarray(bounds[i], bounds[i + 1]), more: i + 2 < bounds.length });
  if (out.length === 0) out.push({ offset: 0, data, more: false });
  return out;
}

function packet(f: Frag, extra: Partial<{ sequence: number; opcode: number; associationId: number; status: number; error: boolean; response: boolean }> = {}): Mode6Packet {
  return decode(
    encodeMode6Packet({
      opcode: extra.opcode ?? EXPECT.opcode,
      sequence: extra.sequence ?? EXPECT.sequence,
      associationId: extra.associationId ?? EXPECT.associationId,
      status: extra.status ?? 0x1234,
      response: extra.response ?? true,
      error: extra.error ?? false,
      more: f.more,
      offset: f.offset,
      data: f.data,
    }),
  );
}

test('holes are reported until filled; the M bit marks the last fragment', () => {
  const data = new Uint8Array(100).map((_, i) => i);
  const [a, b, c] = fragments(data, [30, 60]) as [Frag, Frag, Frag];
  const r = new Mode6Reassembly(EXPECT);
  r.accept(packet(c));
  assert.deepEqual(r.holes(), [{ start: 0, end: 60 }]);
  r.accept(packet(a));
  assert.deepEqual(r.holes(), [{ start: 30, end: 60 }]);
  const done = r.accept(packet(b));
  assert.equal(done.kind, 'complete');
  assert.deepEqual(r.holes(), []);

  const open = new Mode6Reassembly(EXPECT);
  open.accept(packet(a));
  assert.deepEqual(open.holes(), [{ start: 30, end: null }], 'no last fragment yet: open-ended');
});

test('exact duplicates are ignored; wrong sequence, opcode, association and requests are ignored and counted', () => {
  const data = new Uint8Array(50).fill(7);
  const [a, b] = fragments(data, [20]) as [Frag, Frag];
  const r = new Mode6Reassembly(EXPECT);
  assert.equal(r.accept(packet(a)).kind, 'incomplete');
  const dup = r.accept(packet(a));
  assert.equal(dup.kind === 'incomplete' && dup.ignored, 'DUPLICATE');
  const cases: [Partial<Parameters<typeof packet>[1]>, string][] = [
    [{ sequence: EXPECT.sequence - 1 }, 'WRONG_SEQUENCE'],
    [{ opcode: 1 }, 'WRONG_OPCODE'],
    [{ associationId: 1 }, 'WRONG_ASSOCIATION'],
    [{ response: false }, 'NOT_RESPONSE'],
    // A stale error response for an earlier request must not end this one either.
    [{ sequence: 7, error: true, status: 0x0500 }, 'WRONG_SEQUENCE'],
  ];
  for (const [extra, reason] of cases) {
    const s = r.accept(packet(b, extra));
    assert.equal(s.kind, 'incomplete');
    assert.equal(s.kind === 'incomplete' && s.ignored, reason);
  }
  assert.equal(r.ignored.WRONG_SEQUENCE, 2);
  assert.equal(r.ignored.DUPLICATE, 1);
  const done = r.accept(packet(b));
  assert.equal(done.kind, 'complete');
  const late = r.accept(packet(b));
  assert.equal(late.kind, 'complete', 'terminal state is final');
  assert.equal(r.ignored.AFTER_END, 1);
});

test('an empty non-final fragment is ignored', () => {
  const r = new Mode6Reassembly(EXPECT);
  const s = r.accept(packet({ offset: 0, data: new Uint8Array(0), more: true }));
  assert.equal(s.kind === 'incomplete' && s.ignored, 'EMPTY_FRAGMENT');
  const empty = r.accept(packet({ offset: 0, data: new Uint8Array(0), more: false }));
  assert.equal(empty.kind, 'complete', 'an empty answer (no associations) is complete');
  assert.equal(empty.kind === 'complete' && empty.data.length, 0);
});

function failure(state: Mode6ReassemblyState): string {
  assert.equal(state.kind, 'failed');
  return state.kind === 'failed' ? state.error.code : '';
}

test('conflicting fragments fail the request', () => {
  const data = new Uint8Array(60).fill(1);
  const [a, b] = fragments(data, [30]) as [Frag, Frag];
  const conflict = new Mode6Reassembly(EXPECT);
  conflict.accept(packet(a));
  assert.equal(failure(conflict.accept(packet({ ...a, data: new Uint8Array(30).fill(2) }))), 'MODE6_FRAGMENT_CONFLICT');

  const overlap = new Mode6Reassembly(EXPECT);
  overlap.accept(packet(a));
  assert.equal(failure(overlap.accept(packet({ offset: 20, data: data.subarray(20, 40), more: true }))), 'MODE6_FRAGMENT_OVERLAP');

  const twoLast = new Mode6Reassembly(EXPECT);
  twoLast.accept(packet(b));
  assert.equal(failure(twoLast.accept(packet({ offset: 60, data: new Uint8Array(4), more: false }))), 'MODE6_TWO_LAST_FRAGMENTS');

  const afterLast = new Mode6Reassembly(EXPECT);
  afterLast.accept(packet(b));
  assert.equal(failure(afterLast.accept(packet({ offset: 60, data: new Uint8Array(4), more: true }))), 'MODE6_FRAGMENT_AFTER_LAST');

  const lastTooEarly = new Mode6Reassembly(EXPECT);
  lastTooEarly.accept(packet({ offset: 40, data: new Uint8Array(10), more: true }));
  assert.equal(failure(lastTooEarly.accept(packet({ offset: 0, data: new Uint8Array(20), more: false }))), 'MODE6_FRAGMENT_AFTER_LAST');

  const flagFlip = new Mode6Reassembly(EXPECT);
  flagFlip.accept(packet(b));
  assert.equal(failure(flagFlip.accept(packet({ ...b, more: true }))), 'MODE6_FRAGMENT_CONFLICT', 'same octets, M bit differs');
});

test('limits: fragment count and answer size', () => {
  const few = new Mode6Reassembly(EXPECT, { maxFragments: 2 });
  const data = new Uint8Array(30);
  const fs = fragments(data, [10, 20]);
  few.accept(packet(fs[0] as Frag));
  few.accept(packet(fs[1] as Frag));
  assert.equal(failure(few.accept(packet(fs[2] as Frag))), 'MODE6_TOO_MANY_FRAGMENTS');
  const small = new Mode6Reassembly(EXPECT, { maxDataLength: 100 });
  assert.equal(failure(small.accept(packet({ offset: 90, data: new Uint8Array(20), more: true }))), 'MODE6_RESPONSE_TOO_LARGE');
});

test('an error response ends the request with its code, every RFC 9327 §3.4 code', () => {
  for (let code = 0; code <= 7; code++) {
    const r = new Mode6Reassembly(EXPECT);
    r.accept(packet({ offset: 0, data: new Uint8Array(8), more: true }));
    const s = r.accept(packet({ offset: 0, data: new Uint8Array(0), more: false }, { error: true, status: code << 8 }));
    assert.equal(s.kind, 'failed');
    if (s.kind !== 'failed') return;
    assert.equal(s.error.code, 'MODE6_SERVER_ERROR');
    assert.equal(s.serverError?.code, code);
    assert.equal(s.status, code << 8);
  }
});

test('property: any fragmentation, delivered in any order with duplicates and stray datagrams, gives the original data', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.nat(),
      (data, cuts, dupPicks, strays, seed) => {
        // Cut at least every 468 octets: no fragment carries more (NTPsec's CTL_MAX_DATA_LEN).
        const forced = Array.from({ length: Math.floor(data.length / MODE6_MAX_FRAGMENT_DATA) }, (_, i) => (i + 1) * MODE6_MAX_FRAGMENT_DATA);
        const frags = fragments(data, [...cuts, ...forced]);
        const deliveries: Mode6Packet[] = frags.map((f) => packet(f));
        for (const d of dupPicks) deliveries.push(packet(frags[d % frags.length] as Frag));
        for (const s of strays) deliveries.push(packet(frags[s % frags.length] as Frag, { sequence: (EXPECT.sequence + 1 + (s % 5)) & 0xffff }));
        // Deterministic shuffle from the seed.
        let x = seed | 1;
        for (let i = deliveries.length - 1; i > 0; i--) {
          x = (x * 1103515245 + 12345) & 0x7fffffff;
          const j = x % (i + 1);
          [deliveries[i], deliveries[j]] = [deliveries[j] as Mode6Packet, deliveries[i] as Mode6Packet];
        }
        const r = new Mode6Reassembly(EXPECT, { maxFragments: 1000, maxDataLength: 10_000 });
        let state: Mode6ReassemblyState = r.state;
        for (const d of deliveries) state = r.accept(d);
        assert.equal(state.kind, 'complete', JSON.stringify(state.kind === 'failed' ? state.error.message : state));
        if (state.kind === 'complete') assert.deepEqual(state.data, data);
      },
    ),
    { numRuns: 300 },
  );
});

test('property: accept never throws on arbitrary decodable datagrams', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          offset: fc.integer({ min: 0, max: 2000 }),
          data: fc.uint8Array({ maxLength: 100 }),
          more: fc.boolean(),
          error: fc.boolean(),
          sequence: fc.constantFrom(EXPECT.sequence, 1),
          status: fc.integer({ min: 0, max: 0xffff }),
        }),
        { maxLength: 30 },
      ),
      (datagrams) => {
        const r = new Mode6Reassembly(EXPECT, { maxFragments: 10, maxDataLength: 1000 });
        for (const d of datagrams) {
          const s = r.accept(packet({ offset: d.offset, data: d.data, more: d.more }, { error: d.error, sequence: d.sequence, status: d.status }));
          assert.ok(['incomplete', 'complete', 'failed'].includes(s.kind));
          if (s.kind === 'complete') assert.ok(s.data.length <= 1000);
          r.holes();
        }
      },
    ),
    { numRuns: 500 },
  );
});
