import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CHRONY_REFID_LOCAL,
  isTrackingSynchronised,
  parseChronyTracking,
  qualityAt,
  servedFromTracking,
  trackingRefidText,
  trackingToQuality,
} from '../../src/proto/chrony/tracking.js';
import { UNSYNCHRONISED_REFID, qualityChangedMaterially, unsynchronisedQuality } from '../../src/proto/ntp/quality.js';
import type { ChronyTracking } from '../../src/proto/chrony/tracking.js';
import { refIdFromAscii } from '../../src/proto/ntp/packet.js';
import type { TimeQuality } from '../../src/proto/ntp/server.js';
import { microsToNtpShort } from '../../src/proto/ntp/timestamp.js';

// Captured from chrony 4.3 (Debian, as unpacked by scripts/install-peers.sh) with `chronyc -c -n tracking`.
// chronyd with `local stratum 7` and no sources:
const LOCAL_STRATUM_7 = '7F7F0101,,7,1795710969.055441266,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,0.000000000,0.000000000,0.0,Normal\n';
// chronyd with no sources and no local reference:
const NO_SOURCES = '00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n';
// chronyd synchronised to another chronyd (`local stratum 2`) on 127.0.0.1, a second after its first update:
const SYNCED = '7F000001,127.0.0.1,3,1795711143.518564733,-0.000000616,0.000000098,0.000000229,0.080,0.015,0.506,0.000002762,0.000001360,0.1,Normal\n';
// The same chronyd at its first update (negative frequencies, a large skew, a "-0.000"):
const FIRST_UPDATE = '7F000001,127.0.0.1,3,1795711142.732395753,-0.000000669,-0.000000001,0.000000001,-0.950,-0.000,167.510,0.000003413,0.000014311,0.1,Normal\n';
// What chronyc prints (to stderr, exit status 1) when no chronyd listens on the socket / UDP port:
const NO_SOCKET = 'Could not open connection to daemon\n';
const CANNOT_TALK = '506 Cannot talk to daemon\n';

function parse(text: string): ChronyTracking {
  const r = parseChronyTracking(text);
  if (!r.ok) assert.fail(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function errorCode(text: string): string {
  const r = parseChronyTracking(text);
  assert.equal(r.ok, false, `expected ${JSON.stringify(text)} to be rejected`);
  return r.ok ? '' : r.error.code;
}

/** SYNCED with one field replaced (0-based index). */
function withField(index: number, value: string, line = SYNCED): string {
  const fields = line.trimEnd().split(',');
  fields[index] = value;
  return `${fields.join(',')}\n`;
}

test('parses a report of chronyd synchronised to an NTP source, every field', () => {
  assert.deepEqual(parse(SYNCED), {
    refid: 0x7f000001,
    name: '127.0.0.1',
    stratum: 3,
    refTimeMicros: 1_795_711_143_518_565,
    systemTimeSeconds: -0.000000616,
    lastOffsetSeconds: 0.000000098,
    rmsOffsetSeconds: 0.000000229,
    frequencyPpm: 0.08,
    residualFrequencyPpm: 0.015,
    skewPpm: 0.506,
    rootDelaySeconds: 0.000002762,
    rootDispersionSeconds: 0.00000136,
    updateIntervalSeconds: 0.1,
    leap: 'normal',
  });
  const first = parse(FIRST_UPDATE);
  assert.equal(first.frequencyPpm, -0.95);
  assert.equal(first.residualFrequencyPpm, -0);
  assert.equal(first.skewPpm, 167.51);
  assert.equal(first.refTimeMicros, 1_795_711_142_732_396);
  assert.ok(isTrackingSynchronised(first));
});

test('parses the local reference and the unsynchronised report', () => {
  const local = parse(LOCAL_STRATUM_7);
  assert.equal(local.refid, CHRONY_REFID_LOCAL);
  assert.equal(local.name, '');
  assert.equal(local.stratum, 7);
  assert.equal(local.leap, 'normal');
  assert.ok(isTrackingSynchronised(local));
  assert.equal(trackingRefidText(local), '127.127.1.1');

  const none = parse(NO_SOURCES);
  assert.equal(none.refid, 0);
  assert.equal(none.stratum, 0);
  assert.equal(none.refTimeMicros, 0);
  assert.equal(none.rootDelaySeconds, 1);
  assert.equal(none.leap, 'unsynchronised');
  assert.ok(!isTrackingSynchronised(none));
});

test('leap statuses, a refclock ID with a comma, an IPv6 source, CRLF and no final newline', () => {
  assert.equal(parse(withField(13, 'Insert second')).leap, 'insert');
  assert.equal(parse(withField(13, 'Delete second')).leap, 'delete');
  assert.equal(parse(withField(13, 'Not synchronised')).leap, 'unsynchronised');

  const refclock = parse(withField(1, 'G,S', withField(0, '472C5300', withField(2, '1'))));
  assert.equal(refclock.name, 'G,S');
  assert.equal(refclock.refid, 0x472c5300);
  assert.equal(refclock.stratum, 1);
  assert.equal(trackingRefidText(refclock), 'G,S');

  // For an IPv6 source the refid is a hash of the address; the name says which source it is.
  const v6 = parse(withField(1, '2001:db8::1', withField(0, 'A1B2C3D4')));
  assert.equal(v6.refid, 0xa1b2c3d4);
  assert.equal(trackingRefidText(v6), '2001:db8::1');

  assert.deepEqual(parse(SYNCED.replace('\n', '\r\n')), parse(SYNCED));
  assert.deepEqual(parse(SYNCED.trimEnd()), parse(SYNCED));
  assert.equal(parse(withField(0, '7f000001')).refid, 0x7f000001);
  assert.equal(parse(withField(3, '1795711143')).refTimeMicros, 1_795_711_143_000_000);
  // Rounded to the microsecond, carrying into the next second.
  assert.equal(parse(withField(3, '1795711143.999999600')).refTimeMicros, 1_795_711_144_000_000);
});

test('rejects chronyc failures and garbage with stable codes', () => {
  assert.equal(errorCode(''), 'CHRONY_EMPTY');
  assert.equal(errorCode('\n\n'), 'CHRONY_EMPTY');
  assert.equal(errorCode(CANNOT_TALK), 'CHRONY_DAEMON_ERROR');
  assert.equal(errorCode('501 Not authorised\n'), 'CHRONY_DAEMON_ERROR');
  assert.equal(errorCode(NO_SOCKET), 'CHRONY_FIELD_COUNT');
  assert.equal(errorCode(SYNCED + SYNCED), 'CHRONY_LINES');
  assert.equal(errorCode(`Reference ID    : 7F7F0101 ()\nStratum         : 7\n`), 'CHRONY_LINES');
  assert.equal(errorCode('7F000001,127.0.0.1,3'), 'CHRONY_FIELD_COUNT');
  assert.equal(errorCode(SYNCED.repeat(40).replaceAll('\n', ',')), 'CHRONY_TOO_LONG');
  assert.equal(errorCode(withField(0, '7F00001')), 'CHRONY_BAD_REFID');
  assert.equal(errorCode(withField(0, '7F00000G')), 'CHRONY_BAD_REFID');
  assert.equal(errorCode(withField(1, 'a\u0007b')), 'CHRONY_BAD_NAME');
  assert.equal(errorCode(withField(2, '17')), 'CHRONY_BAD_STRATUM');
  assert.equal(errorCode(withField(2, '-1')), 'CHRONY_BAD_STRATUM');
  assert.equal(errorCode(withField(2, '3.0')), 'CHRONY_BAD_STRATUM');
  assert.equal(errorCode(withField(3, '-1.5')), 'CHRONY_BAD_REF_TIME');
  assert.equal(errorCode(withField(3, '1795711143.1234567890')), 'CHRONY_BAD_REF_TIME');
  assert.equal(errorCode(withField(3, '999999999999.0')), 'CHRONY_BAD_REF_TIME');
  assert.equal(errorCode(withField(10, 'nan')), 'CHRONY_BAD_NUMBER');
  assert.equal(errorCode(withField(11, '-inf')), 'CHRONY_BAD_NUMBER');
  assert.equal(errorCode(withField(7, '1e3')), 'CHRONY_BAD_NUMBER');
  assert.equal(errorCode(withField(4, '')), 'CHRONY_BAD_NUMBER');
  assert.equal(errorCode(withField(10, '-0.000001')), 'CHRONY_BAD_VALUE');
  assert.equal(errorCode(withField(11, '-0.000001')), 'CHRONY_BAD_VALUE');
  assert.equal(errorCode(withField(13, 'Invalid')), 'CHRONY_BAD_LEAP');
  assert.equal(errorCode(withField(13, 'normal')), 'CHRONY_BAD_LEAP');
  assert.equal(errorCode(withField(13, 'constructor')), 'CHRONY_BAD_LEAP');
});

test('serves chronyd synchronised to a source: its leap, stratum, refid, delay, dispersion and reference time', () => {
  const now = 1_795_711_144_000_000;
  const q = trackingToQuality(parse(SYNCED), now, -23);
  assert.deepEqual(q, {
    leap: 'none',
    stratum: 3,
    refid: 0x7f000001,
    precision: -23,
    rootDelayMicros: 3,
    rootDispersionMicros: 1,
    referenceTimeMicros: 1_795_711_143_518_565,
  });
  assert.equal(trackingToQuality(parse(withField(13, 'Insert second')), now, -20).leap, 'add');
  assert.equal(trackingToQuality(parse(withField(13, 'Delete second')), now, -20).leap, 'delete');
});

test('root dispersion grows after the report as chronyd grows it: skew + |residual freq| + 1 ppm', () => {
  const at = 1_795_711_144_000_000;
  // 100 s later: (0.506 + 0.015 + 1) ppm · 100 s = 152.1 µs.
  const served = servedFromTracking(parse(SYNCED), { precision: -20, atMicros: at });
  assert.equal(qualityAt(served, at + 100_000_000).rootDispersionMicros, 1 + 152);
  // A clock read before the report never shrinks it.
  assert.equal(qualityAt(served, at - 5_000_000).rootDispersionMicros, 1);
  // Writing into a reused object changes only the time-dependent fields.
  const out = { ...served.quality };
  assert.equal(qualityAt(served, at + 10_000_000, out), out);
  assert.equal(out.rootDispersionMicros, 1 + 15);
  assert.equal(out.referenceTimeMicros, 1_795_711_143_518_565);
});

test('the local reference is served like chronyd serves it: its stratum, refid 127.127.1.1, no delay or dispersion, ever', () => {
  const now = 1_795_711_000_000_000;
  const served = servedFromTracking(parse(LOCAL_STRATUM_7), { precision: -20, atMicros: now });
  assert.ok(served.synchronised);
  assert.equal(served.dispersionRate, 0);
  assert.deepEqual(qualityAt(served, now + 3600_000_000), {
    leap: 'none',
    stratum: 7,
    refid: CHRONY_REFID_LOCAL,
    precision: -20,
    rootDelayMicros: 0,
    rootDispersionMicros: 0,
    referenceTimeMicros: 1_795_710_969_055_441,
  });
});

test('unsynchronised reports are served as leap 3, stratum 16, refid INIT', () => {
  const expected = unsynchronisedQuality(-20);
  assert.deepEqual(expected, {
    leap: 'unsynchronized',
    stratum: 16,
    refid: refIdFromAscii('INIT'),
    precision: -20,
    rootDelayMicros: 1_000_000,
    rootDispersionMicros: 1_000_000,
    referenceTimeMicros: 0,
  });
  assert.equal(UNSYNCHRONISED_REFID, 0x494e4954);
  const now = 1_795_711_144_000_000;
  assert.deepEqual(trackingToQuality(parse(NO_SOURCES), now, -20), expected);
  // Each sign of lost sync is enough on its own.
  assert.deepEqual(trackingToQuality(parse(withField(13, 'Not synchronised')), now, -20), expected);
  assert.deepEqual(trackingToQuality(parse(withField(2, '0')), now, -20), expected);
  assert.deepEqual(trackingToQuality(parse(withField(2, '16')), now, -20), expected);
  assert.deepEqual(trackingToQuality(parse(withField(0, '00000000')), now, -20), expected);
  assert.equal(servedFromTracking(parse(NO_SOURCES), { precision: -20, atMicros: now }).synchronised, false);
});

test('material changes: sync state, stratum, refid and leap; not delay, dispersion or reference time', () => {
  const base: TimeQuality = trackingToQuality(parse(SYNCED), 1_795_711_144_000_000, -20);
  const same = { ...base, rootDelayMicros: 99, rootDispersionMicros: 77, referenceTimeMicros: 1 };
  assert.equal(qualityChangedMaterially(base, same), false);
  assert.equal(qualityChangedMaterially(base, { ...base, stratum: 4 }), true);
  assert.equal(qualityChangedMaterially(base, { ...base, refid: 0x7f000002 }), true);
  assert.equal(qualityChangedMaterially(base, { ...base, leap: 'add' }), true);
  assert.equal(qualityChangedMaterially(base, unsynchronisedQuality(-20)), true);
  assert.equal(qualityChangedMaterially(unsynchronisedQuality(-20), base), true);
  assert.equal(qualityChangedMaterially(unsynchronisedQuality(-20), { ...unsynchronisedQuality(-20), refid: 0 }), false);
  assert.equal(qualityChangedMaterially({ ...base, stratum: 16 }, unsynchronisedQuality(-20)), false);
});

test('property: the parser never throws, whatever the text', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.string({ maxLength: 5000 })), (text) => {
      const r = parseChronyTracking(text);
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 2000 },
  );
});

const FIELD_SAMPLES = ['', '0', '-0', '7F000001', '00000000', 'nan', 'inf', '1e9', '16', '17', '65535', '1.000000000', '-1.0', ' 1', 'Normal', 'Not synchronised', 'Insert second', '1795711143.518564733', '.5', '5.', ',', '\n', '\u0000'];

test('property: near-miss lines (real fields mixed with wrong ones) never throw, and anything accepted is servable', () => {
  const real = SYNCED.trimEnd().split(',');
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constantFrom(...real), fc.constantFrom(...FIELD_SAMPLES), fc.string({ maxLength: 12 })), { minLength: 10, maxLength: 17 }),
      fc.integer({ min: 0, max: 4_000_000_000_000_000 }),
      (fields, now) => {
        const r = parseChronyTracking(`${fields.join(',')}\n`);
        if (!r.ok) return;
        const q = trackingToQuality(r.value, now, -20);
        assert.ok(q.stratum >= 1 && q.stratum <= 16);
        assert.ok(Number.isSafeInteger(q.referenceTimeMicros));
        // The responder encodes these as NTP short values, which must not throw on the per-packet path.
        microsToNtpShort(q.rootDelayMicros);
        microsToNtpShort(q.rootDispersionMicros);
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: any well-formed report parses back to its values and maps to a servable quality', () => {
  const leaps = ['Normal', 'Insert second', 'Delete second', 'Not synchronised'] as const;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.integer({ min: 0, max: 16 }),
      fc.integer({ min: 0, max: 4_000_000_000 }),
      fc.integer({ min: 0, max: 999_999_999 }),
      fc.array(fc.integer({ min: 0, max: 10_000_000_000 }), { minLength: 2, maxLength: 2 }),
      fc.integer({ min: 0, max: 3 }),
      (refid, stratum, seconds, nanos, [delayNs, dispersionNs], leapIndex) => {
        const leap = leaps[leapIndex] as (typeof leaps)[number];
        const seconds9 = (ns: number): string => `${Math.floor(ns / 1e9)}.${String(ns % 1e9).padStart(9, '0')}`;
        const line = [
          refid.toString(16).toUpperCase().padStart(8, '0'),
          '192.0.2.1',
          String(stratum),
          `${seconds}.${String(nanos).padStart(9, '0')}`,
          '0.000000001',
          '-0.000000002',
          '0.000000003',
          '-12.345',
          '0.001',
          '0.250',
          seconds9(delayNs as number),
          seconds9(dispersionNs as number),
          '64.0',
          leap,
        ].join(',');
        const t = parse(`${line}\n`);
        assert.equal(t.refid, refid);
        assert.equal(t.stratum, stratum);
        assert.equal(t.refTimeMicros, seconds * 1_000_000 + Math.round(nanos / 1000));
        const q = trackingToQuality(t, 1_795_711_144_000_000, -20);
        const synced = leap !== 'Not synchronised' && stratum >= 1 && stratum <= 15 && refid !== 0;
        assert.equal(q.leap === 'unsynchronized', !synced);
        assert.equal(q.stratum, synced ? stratum : 16);
        assert.equal(q.refid, synced ? refid : UNSYNCHRONISED_REFID);
        // Within a microsecond: the seconds text goes through a float on the way.
        if (synced && refid !== CHRONY_REFID_LOCAL) assert.ok(Math.abs(q.rootDelayMicros - (delayNs as number) / 1000) <= 1);
      },
    ),
    { numRuns: 1000 },
  );
});
