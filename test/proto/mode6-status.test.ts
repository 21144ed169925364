import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import { decodePeerStatus, decodeReadStatusData, decodeSystemStatus, PEER_SELECTION_NAMES, PEER_TALLY } from '../../src/proto/mode6/status.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

test('system status 0x0016 as NTPsec sends it after start: leap_none, sync_unspec, 1 event, restart', () => {
  assert.deepEqual(decodeSystemStatus(0x0016), {
    word: 0x0016,
    leap: 0,
    leapName: 'leap_none',
    clockSource: 0,
    clockSourceName: 'sync_unspec',
    eventCount: 1,
    eventCode: 6,
    eventName: 'restart',
  });
  const synced = decodeSystemStatus(0xc6f5);
  assert.equal(synced.leapName, 'leap_alarm');
  assert.equal(synced.clockSourceName, 'sync_ntp');
  assert.equal(synced.eventCount, 15);
  assert.equal(synced.eventName, 'clock_sync');
  assert.equal(decodeSystemStatus(0x3f00).clockSourceName, 'unknown_63');
  assert.equal(decodeSystemStatus(0x0e00 | 0x0e).eventName, 'TAI');
});

test('captured READSTAT data: two associations', () => {
  const r = decodeReadStatusData(hex('4568 8011 4567 b014'));
  assert.ok(r.ok);
  const [a, b] = r.value;
  assert.equal(a?.associationId, 17768);
  assert.deepEqual(a?.status, {
    word: 0x8011,
    configured: true,
    authEnabled: false,
    authentic: false,
    reachable: false,
    broadcast: false,
    selection: 0,
    selectionName: 'reject',
    tally: ' ',
    eventCount: 1,
    eventCode: 1,
    eventName: 'mobilize',
  });
  assert.equal(b?.associationId, 17767);
  assert.equal(b?.status.reachable, true);
  assert.equal(b?.status.authentic, true);
  assert.equal(b?.status.eventName, 'reachable');
});

test('peer selection codes, tally characters and every status bit', () => {
  assert.equal(PEER_TALLY, ' x.-+#*o');
  for (let sel = 0; sel < 8; sel++) {
    const s = decodePeerStatus(sel << 8);
    assert.equal(s.selectionName, PEER_SELECTION_NAMES[sel]);
    assert.equal(s.tally, PEER_TALLY[sel]);
  }
  assert.equal(decodePeerStatus(0x0600).selectionName, 'sys.peer');
  const all = decodePeerStatus(0xf8ff);
  assert.ok(all.configured && all.authEnabled && all.authentic && all.reachable && all.broadcast);
  assert.equal(all.eventName, 'interleave_error');
  assert.equal(decodePeerStatus(0x001a).eventName, 'sys_peer');
});

test('READSTAT data errors', () => {
  const odd = decodeReadStatusData(new Uint8Array(6));
  assert.ok(!odd.ok);
  assert.equal(odd.error.code, 'MODE6_READSTAT_BAD_LENGTH');
  const zero = decodeReadStatusData(hex('0000 8011'));
  assert.ok(!zero.ok);
  assert.equal(zero.error.code, 'MODE6_READSTAT_ZERO_ID');
  const empty = decodeReadStatusData(new Uint8Array(0));
  assert.ok(empty.ok);
  assert.deepEqual(empty.value, []);
  assert.throws(() => decodeSystemStatus(0x10000), UsageError);
  assert.throws(() => decodePeerStatus(-1), UsageError);
});

test('property: status words decode to their fields and back; READSTAT data never throws', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), (w) => {
      const s = decodeSystemStatus(w);
      assert.equal((s.leap << 14) | (s.clockSource << 8) | (s.eventCount << 4) | s.eventCode, w);
      const p = decodePeerStatus(w);
      const bits = (p.configured ? 0x80 : 0) | (p.authEnabled ? 0x40 : 0) | (p.authentic ? 0x20 : 0) | (p.reachable ? 0x10 : 0) | (p.broadcast ? 0x08 : 0) | p.selection;
      assert.equal((bits << 8) | (p.eventCount << 4) | p.eventCode, w);
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
      const r = decodeReadStatusData(data);
      if (r.ok) assert.equal(r.value.length * 4, data.length);
    }),
  );
});
