import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import {
  isZeroNtpTimestamp,
  microsToNtpShort,
  NTP_ERA1_UNIX_MICROS,
  NTP_SHORT_MAX,
  NTP_TIMESTAMP_ZERO,
  ntpShortToMicros,
  ntpShortToSeconds,
  ntpTimestampDiffMicros,
  ntpTimestampDiffSeconds,
  ntpTimestampFromBigInt,
  ntpTimestampToBigInt,
  ntpTimestampToUnixMicros,
  ntpTimestampToUnixMicrosRaw,
  secondsToNtpShort,
  unixMicrosToNtpTimestamp,
} from '../../src/proto/ntp/timestamp.js';

const S = 1_000_000;
const at = (text: string): number => Date.parse(text) * 1000;
const HALF_ERA = 2 ** 31 * S;

test('era 1 starts at 2036-02-07T06:28:16Z', () => {
  assert.equal(NTP_ERA1_UNIX_MICROS, at('2036-02-07T06:28:16Z'));
});

test('Unix epoch and known instants', () => {
  assert.deepEqual(unixMicrosToNtpTimestamp(0), { seconds: 2_208_988_800, fraction: 0 });
  assert.deepEqual(unixMicrosToNtpTimestamp(500_000), { seconds: 2_208_988_800, fraction: 2 ** 31 });
  // Captured from a real server (see ntp-packet.test.ts): 2022-04-05T06:43:52.474833Z.
  const ts = { seconds: 0xe5f663a8, fraction: 0x798eae2b };
  assert.equal(ntpTimestampToUnixMicros(ts, at('2022-01-01T00:00:00Z')), 1_649_141_032_474_833);
  assert.equal(ntpTimestampToUnixMicros(ts, at('2080-01-01T00:00:00Z')), 1_649_141_032_474_833);
});

test('fraction rounds to the nearest microsecond, an exact half up', () => {
  const base = 2_208_988_800;
  assert.equal(ntpTimestampToUnixMicros({ seconds: base, fraction: 2 ** 25 }, 0), 7813); // 7812.5 µs
  assert.equal(ntpTimestampToUnixMicros({ seconds: base, fraction: 2147 }, 0), 0); // 0.4999 µs
  assert.equal(ntpTimestampToUnixMicros({ seconds: base, fraction: 2148 }, 0), 1); // 0.5001 µs
  assert.equal(ntpTimestampToUnixMicros({ seconds: base, fraction: 0xffff_ffff }, 0), S); // carries into seconds
  assert.deepEqual(unixMicrosToNtpTimestamp(1), { seconds: base, fraction: 4295 });
  assert.deepEqual(unixMicrosToNtpTimestamp(999_999), { seconds: base, fraction: 2 ** 32 - 4295 });
});

test('2036 rollover: just before and after, with references on either side', () => {
  const before = NTP_ERA1_UNIX_MICROS - 1;
  const after = NTP_ERA1_UNIX_MICROS + 1;
  const tsBefore = unixMicrosToNtpTimestamp(before);
  const tsAfter = unixMicrosToNtpTimestamp(after);
  assert.deepEqual(tsBefore, { seconds: 0xffff_ffff, fraction: 2 ** 32 - 4295 });
  assert.deepEqual(tsAfter, { seconds: 0, fraction: 4295 });
  for (const ref of [at('2036-01-01T00:00:00Z'), at('2037-01-01T00:00:00Z'), at('2000-01-01T00:00:00Z'), at('2100-01-01T00:00:00Z'), NTP_ERA1_UNIX_MICROS]) {
    assert.equal(ntpTimestampToUnixMicros(tsBefore, ref), before, `before, reference ${ref}`);
    assert.equal(ntpTimestampToUnixMicros(tsAfter, ref), after, `after, reference ${ref}`);
  }
  // A reference decades into era 1 still reads an early-era-1 timestamp correctly...
  assert.equal(ntpTimestampToUnixMicros({ seconds: 10, fraction: 0 }, at('2090-01-01T00:00:00Z')), NTP_ERA1_UNIX_MICROS + 10 * S);
  // ...and a late era-0 value near a 1990 reference stays in era 0.
  assert.equal(ntpTimestampToUnixMicros({ seconds: 0xffff_fff0, fraction: 0 }, at('2030-01-01T00:00:00Z')), NTP_ERA1_UNIX_MICROS - 16 * S);
});

test('the instant of an era start is never encoded as the zero timestamp', () => {
  assert.deepEqual(unixMicrosToNtpTimestamp(NTP_ERA1_UNIX_MICROS), { seconds: 0, fraction: 1 });
  assert.equal(ntpTimestampToUnixMicros({ seconds: 0, fraction: 1 }, NTP_ERA1_UNIX_MICROS), NTP_ERA1_UNIX_MICROS);
  const y1900 = at('1900-01-01T00:00:00Z');
  assert.deepEqual(unixMicrosToNtpTimestamp(y1900), { seconds: 0, fraction: 1 });
  assert.equal(ntpTimestampToUnixMicros({ seconds: 0, fraction: 1 }, at('1920-01-01T00:00:00Z')), y1900);
});

test('zero means unknown; the raw conversion still maps it to an era start', () => {
  assert.ok(isZeroNtpTimestamp(NTP_TIMESTAMP_ZERO));
  assert.equal(ntpTimestampToUnixMicros(NTP_TIMESTAMP_ZERO, 0), null);
  assert.equal(ntpTimestampToUnixMicrosRaw(NTP_TIMESTAMP_ZERO, at('1910-01-01T00:00:00Z')), at('1900-01-01T00:00:00Z'));
  assert.equal(ntpTimestampToUnixMicrosRaw(NTP_TIMESTAMP_ZERO, at('2030-01-01T00:00:00Z')), NTP_ERA1_UNIX_MICROS);
});

test('1970 and 1900 edges', () => {
  assert.deepEqual(unixMicrosToNtpTimestamp(-1), { seconds: 2_208_988_799, fraction: 2 ** 32 - 4295 });
  assert.equal(ntpTimestampToUnixMicros({ seconds: 2_208_988_799, fraction: 2 ** 32 - 4295 }, 0), -1);
  const y1900 = at('1900-01-01T00:00:00Z');
  assert.equal(y1900, -2_208_988_800 * S);
  assert.deepEqual(unixMicrosToNtpTimestamp(y1900 + 1), { seconds: 0, fraction: 4295 });
  assert.deepEqual(unixMicrosToNtpTimestamp(y1900 - 1), { seconds: 0xffff_ffff, fraction: 2 ** 32 - 4295 }); // era −1
  assert.equal(ntpTimestampToUnixMicros({ seconds: 0xffff_ffff, fraction: 2 ** 32 - 4295 }, y1900), y1900 - 1);
});

test('the era window is (reference − 2^31 s, reference + 2^31 s]', () => {
  const ref = at('2020-06-01T00:00:00Z');
  const high = ref + HALF_ERA;
  const low = ref - HALF_ERA;
  // Both ends have the same wire value; the window includes the upper one.
  assert.deepEqual(unixMicrosToNtpTimestamp(high), unixMicrosToNtpTimestamp(low));
  assert.equal(ntpTimestampToUnixMicros(unixMicrosToNtpTimestamp(high), ref), high);
  assert.equal(ntpTimestampToUnixMicros(unixMicrosToNtpTimestamp(low + 1), ref), low + 1);
  assert.equal(ntpTimestampToUnixMicros(unixMicrosToNtpTimestamp(high - 1), ref), high - 1);
});

test('microsecond round trip is exact (property)', () => {
  const y1900 = -2_208_988_800 * S;
  const y2150 = at('2150-01-01T00:00:00Z'); // keeps reference = t + skew a safe integer
  fc.assert(
    fc.property(fc.integer({ min: y1900 - 1000 * S, max: y2150 }), fc.integer({ min: -(HALF_ERA - 1), max: HALF_ERA - 1 }), (t, skew) => {
      const ts = unixMicrosToNtpTimestamp(t);
      assert.ok(Number.isInteger(ts.seconds) && ts.seconds >= 0 && ts.seconds < 2 ** 32);
      assert.ok(Number.isInteger(ts.fraction) && ts.fraction >= 0 && ts.fraction < 2 ** 32);
      assert.equal(ntpTimestampToUnixMicros(ts, t + skew), t);
    }),
    { numRuns: 2000 },
  );
});

test('differences are right across the era boundary', () => {
  const last = { seconds: 0xffff_ffff, fraction: 0 };
  const first = { seconds: 0, fraction: 0 };
  assert.equal(ntpTimestampDiffMicros(first, last), S);
  assert.equal(ntpTimestampDiffMicros(last, first), -S);
  assert.equal(ntpTimestampDiffSeconds(first, last), 1);
  assert.equal(ntpTimestampDiffMicros({ seconds: 5, fraction: 2 ** 31 }, { seconds: 0xffff_fffe, fraction: 0 }), 7.5 * S);
  fc.assert(
    fc.property(fc.integer({ min: at('1990-01-01T00:00:00Z'), max: at('2090-01-01T00:00:00Z') }), fc.integer({ min: -(HALF_ERA - S), max: HALF_ERA - S }), (a, d) => {
      const ta = unixMicrosToNtpTimestamp(a);
      const tb = unixMicrosToNtpTimestamp(a - d);
      assert.equal(ntpTimestampDiffMicros(ta, tb), d);
      assert.ok(Math.abs(ntpTimestampDiffSeconds(ta, tb) - d / S) < 1e-6);
    }),
    { numRuns: 1000 },
  );
});

test('bigint view', () => {
  const ts = { seconds: 0xe5f663a8, fraction: 0x798eae2b };
  assert.equal(ntpTimestampToBigInt(ts), 0xe5f663a8798eae2bn);
  assert.deepEqual(ntpTimestampFromBigInt(0xe5f663a8798eae2bn), ts);
  assert.throws(() => ntpTimestampFromBigInt(1n << 64n), UsageError);
  assert.throws(() => ntpTimestampFromBigInt(-1n), UsageError);
});

test('short format (16.16)', () => {
  assert.equal(ntpShortToSeconds(0x0001_0000), 1);
  assert.equal(ntpShortToSeconds(0x0000_8000), 0.5);
  assert.equal(ntpShortToMicros(0x0000_8000), 500_000);
  assert.equal(ntpShortToMicros(0x0000_03ff), 15_610); // 1023/65536 s = 15609.74 µs
  assert.equal(ntpShortToMicros(1), 15);
  assert.equal(microsToNtpShort(1_000_000), 0x0001_0000);
  assert.equal(microsToNtpShort(15_610), 0x0000_03ff);
  assert.equal(microsToNtpShort(7), 0); // 0.4588 units
  assert.equal(microsToNtpShort(8), 1); // 0.5243 units
  assert.equal(secondsToNtpShort(1.5), 0x0001_8000);
  assert.equal(secondsToNtpShort(1e9), NTP_SHORT_MAX);
  assert.equal(microsToNtpShort(1e15), NTP_SHORT_MAX);
  assert.throws(() => secondsToNtpShort(-1), UsageError);
  assert.throws(() => secondsToNtpShort(Number.NaN), UsageError);
  assert.throws(() => microsToNtpShort(-1), UsageError);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: NTP_SHORT_MAX }), (raw) => {
      assert.equal(microsToNtpShort(ntpShortToMicros(raw)), raw);
      assert.equal(secondsToNtpShort(ntpShortToSeconds(raw)), raw);
    }),
    { numRuns: 2000 },
  );
});

test('invalid times are caller errors', () => {
  assert.throws(() => unixMicrosToNtpTimestamp(1.5), UsageError);
  assert.throws(() => unixMicrosToNtpTimestamp(Number.MAX_SAFE_INTEGER + 2), UsageError);
  assert.throws(() => ntpTimestampToUnixMicros({ seconds: 1, fraction: 0 }, Number.NaN), UsageError);
});

test('far from 1970 the seconds split stays exact', () => {
  for (const t of [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 9_007_199_254_000_000 - 1, -9_007_199_254_000_000 + 1]) {
    const ts = unixMicrosToNtpTimestamp(t);
    assert.ok(ts.fraction >= 0 && ts.fraction < 2 ** 32 && ts.seconds >= 0 && ts.seconds < 2 ** 32);
    const ref = t > 0 ? t - HALF_ERA : t + HALF_ERA - 1; // the window is (ref − 2^31 s, ref + 2^31 s]
    assert.equal(ntpTimestampToUnixMicros(ts, ref), t);
  }
});
