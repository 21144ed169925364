/**
 * NTP time formats (RFC 5905 §6) and their conversion to Unix time in integer microseconds.
 *
 * Representation: a timestamp is `{ seconds, fraction }`, two unsigned 32-bit integers exactly as on the
 * wire. Each half fits a JS number exactly, is read with one 32-bit load, and converting to microseconds
 * stays in safe-integer arithmetic; a bigint would allocate on every read and make every arithmetic step
 * slower on the per-packet path. `ntpTimestampToBigInt`/`ntpTimestampFromBigInt` exist for callers that
 * want the 64-bit value.
 *
 * Eras (RFC 5905 §6): the 32-bit seconds field wraps every 2^32 s (~136 years). Era 0 began
 * 1900-01-01T00:00:00Z, era 1 begins 2036-02-07T06:28:16Z. A timestamp alone does not say its era: it is
 * resolved against a reference Unix time by picking the era that puts the result within 2^31 s (~68 years)
 * of the reference. Differences of two timestamps use the same rule (two's complement on 2^32 s).
 *
 * Unix time here is an integer count of microseconds since 1970-01-01T00:00:00Z (a safe integer; negative
 * before 1970). Leap seconds are ignored on both scales, as in RFC 5905.
 */

import { UsageError } from '../errors.js';
import { readU32, writeU32 } from './bytes.js';

/** An NTP 64-bit timestamp: 32-bit seconds since the era start + 32-bit binary fraction (RFC 5905 §6). */
export interface NtpTimestamp {
  /** Unsigned 32-bit seconds within the era. */
  readonly seconds: number;
  /** Unsigned 32-bit fraction of a second, in units of 2^-32 s. */
  readonly fraction: number;
}

/** Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch): 70 years incl. 17 leap days (RFC 5905 §6). */
export const NTP_UNIX_OFFSET_SECONDS = 2_208_988_800;
/** Length of one NTP era in seconds (RFC 5905 §6). */
export const NTP_ERA_SECONDS = 2 ** 32;
/** Unix time (µs) at which NTP era 1 starts: 2036-02-07T06:28:16Z. */
export const NTP_ERA1_UNIX_MICROS = (NTP_ERA_SECONDS - NTP_UNIX_OFFSET_SECONDS) * 1_000_000;

/** RFC 5905 §6: the all-zero timestamp means "unknown / not synchronized". */
export const NTP_TIMESTAMP_ZERO: NtpTimestamp = Object.freeze({ seconds: 0, fraction: 0 });

const TWO32 = 2 ** 32;
const TWO31 = 2 ** 31;
const MICROS = 1_000_000;
const ERA_MICROS = NTP_ERA_SECONDS * MICROS; // 2^32 s in µs: 4.29e15 < 2^53
const HALF_ERA_MICROS = ERA_MICROS / 2; // exact: ERA_MICROS is even
const OFFSET_MICROS = NTP_UNIX_OFFSET_SECONDS * MICROS;

/** True for the RFC 5905 §6 "unknown" timestamp (all 64 bits zero). */
export function isZeroNtpTimestamp(ts: NtpTimestamp): boolean {
  return ts.seconds === 0 && ts.fraction === 0;
}

export function ntpTimestampEquals(a: NtpTimestamp, b: NtpTimestamp): boolean {
  return a.seconds === b.seconds && a.fraction === b.fraction;
}

/** Reads a timestamp at `offset` (caller guarantees 8 readable bytes). */
export function readNtpTimestamp(bytes: Uint8Array, offset: number): NtpTimestamp {
  return { seconds: readU32(bytes, offset), fraction: readU32(bytes, offset + 4) };
}

/** Writes a timestamp at `offset`; returns the offset after it. */
export function writeNtpTimestamp(ts: NtpTimestamp, out: Uint8Array, offset: number): number {
  checkU32(ts.seconds, 'seconds');
  checkU32(ts.fraction, 'fraction');
  writeU32(out, offset, ts.seconds);
  writeU32(out, offset + 4, ts.fraction);
  return offset + 8;
}

/**
 * Unix microseconds → NTP timestamp (era implicit, as on the wire). The fraction is rounded to the nearest
 * 2^-32 s, so `ntpTimestampToUnixMicros(unixMicrosToNtpTimestamp(t), t) === t` for every safe integer `t`
 * in range. An instant that would encode as all zeros (the exact start of an era) is encoded with
 * fraction 1 instead (0.23 ns later), so a real time is never sent as "unknown".
 */
export function unixMicrosToNtpTimestamp(unixMicros: number): NtpTimestamp {
  if (!Number.isSafeInteger(unixMicros)) throw new UsageError('NTP_TIME_NOT_INTEGER', `Unix time must be a safe integer of microseconds, got ${unixMicros}`);
  let secs = Math.floor(unixMicros / MICROS);
  let micros = unixMicros - secs * MICROS; // exact; the checks below keep it in [0, 10^6) whatever the float division did
  if (micros < 0) {
    secs -= 1;
    micros += MICROS;
  } else if (micros >= MICROS) {
    secs += 1;
    micros -= MICROS;
  }
  // micros·2^32 < 4.3e15 is exact; the quotient is at least 3e-5 away from any .5, so Math.round is exact.
  let fraction = Math.round((micros * TWO32) / MICROS);
  if (fraction === TWO32) {
    fraction = 0;
    secs += 1;
  }
  let seconds = (secs + NTP_UNIX_OFFSET_SECONDS) % TWO32;
  if (seconds < 0) seconds += TWO32;
  if (seconds === 0 && fraction === 0) fraction = 1;
  return { seconds, fraction };
}

/**
 * NTP timestamp → Unix microseconds, choosing the era that lands in (reference − 2^31 s, reference + 2^31 s].
 * Returns null for the zero timestamp ("unknown", RFC 5905 §6). The fraction is rounded to the nearest
 * microsecond (an exact half rounds up, towards later).
 */
export function ntpTimestampToUnixMicros(ts: NtpTimestamp, referenceUnixMicros: number): number | null {
  if (ts.seconds === 0 && ts.fraction === 0) return null;
  return ntpTimestampToUnixMicrosRaw(ts, referenceUnixMicros);
}

/** As `ntpTimestampToUnixMicros`, but converts the zero timestamp like any other value. */
export function ntpTimestampToUnixMicrosRaw(ts: NtpTimestamp, referenceUnixMicros: number): number {
  if (!Number.isSafeInteger(referenceUnixMicros)) {
    throw new UsageError('NTP_TIME_NOT_INTEGER', `reference must be a safe integer of microseconds, got ${referenceUnixMicros}`);
  }
  // fraction·10^6 < 2^53 and the division by 2^32 is exact, so rounding happens once, here.
  const era0 = ts.seconds * MICROS + Math.round((ts.fraction * MICROS) / TWO32) - OFFSET_MICROS;
  let result = era0 + Math.round((referenceUnixMicros - era0) / ERA_MICROS) * ERA_MICROS;
  // The float division can be off by one ulp at a half-era boundary; settle it with exact integer compares.
  if (result - referenceUnixMicros > HALF_ERA_MICROS) result -= ERA_MICROS;
  else if (result - referenceUnixMicros <= -HALF_ERA_MICROS) result += ERA_MICROS;
  if (!Number.isSafeInteger(result)) throw new UsageError('NTP_TIME_OUT_OF_RANGE', 'resolved time is outside the safe-integer microsecond range');
  return result;
}

/**
 * `a − b` in microseconds (rounded to nearest), correct across an era boundary as long as the true
 * difference is below 2^31 s (~68 years): the seconds difference is taken modulo 2^32 as a signed value
 * (RFC 5905 §6, two's complement arithmetic).
 */
export function ntpTimestampDiffMicros(a: NtpTimestamp, b: NtpTimestamp): number {
  let ds = a.seconds - b.seconds;
  if (ds >= TWO31) ds -= TWO32;
  else if (ds < -TWO31) ds += TWO32;
  // |Δfraction|·10^6 < 2^53 and /2^32 is exact: round the sub-second part, then add whole microseconds.
  return ds * MICROS + Math.round(((a.fraction - b.fraction) * MICROS) / TWO32);
}

/** `a − b` in seconds as a float (same era rule as `ntpTimestampDiffMicros`), ~0.5 ns resolution. */
export function ntpTimestampDiffSeconds(a: NtpTimestamp, b: NtpTimestamp): number {
  let ds = a.seconds - b.seconds;
  if (ds >= TWO31) ds -= TWO32;
  else if (ds < -TWO31) ds += TWO32;
  return ds + (a.fraction - b.fraction) / TWO32;
}

/** The 64-bit wire value as a bigint (seconds in the high 32 bits). */
export function ntpTimestampToBigInt(ts: NtpTimestamp): bigint {
  return (BigInt(ts.seconds) << 32n) | BigInt(ts.fraction);
}

export function ntpTimestampFromBigInt(value: bigint): NtpTimestamp {
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new UsageError('NTP_TIMESTAMP_RANGE', 'NTP timestamp must fit in 64 unsigned bits');
  return { seconds: Number(value >> 32n), fraction: Number(value & 0xffff_ffffn) };
}

// --- NTP short format (RFC 5905 §6): unsigned 16.16 fixed point, used for root delay and dispersion. ---

/** Largest short-format value: 65535.99998 s. */
export const NTP_SHORT_MAX = 0xffff_ffff;

/** Raw 16.16 short format → seconds (exact). */
export function ntpShortToSeconds(raw: number): number {
  return raw / 65536;
}

/** Raw 16.16 short format → microseconds, rounded to nearest (exact halves cannot occur). */
export function ntpShortToMicros(raw: number): number {
  return Math.round((raw * MICROS) / 65536);
}

/**
 * Seconds → raw 16.16 short format, rounded to nearest. Values too large saturate at `NTP_SHORT_MAX` (a
 * huge dispersion is still meaningful as "very bad"); negative or non-finite input is a caller bug.
 */
export function secondsToNtpShort(seconds: number): number {
  if (!(seconds >= 0) || !Number.isFinite(seconds)) throw new UsageError('NTP_SHORT_RANGE', `short-format value must be a finite non-negative number, got ${seconds}`);
  const raw = Math.round(seconds * 65536);
  return raw > NTP_SHORT_MAX ? NTP_SHORT_MAX : raw;
}

/** Microseconds → raw 16.16 short format, rounded to nearest; saturates like `secondsToNtpShort`. */
export function microsToNtpShort(micros: number): number {
  if (!(micros >= 0) || !Number.isFinite(micros)) throw new UsageError('NTP_SHORT_RANGE', `short-format value must be a finite non-negative number, got ${micros}`);
  // For integer µs, µs·2^16/10^6 = µs·2^10/15625 is never exactly .5, so rounding is unambiguous.
  const raw = Math.round((micros * 65536) / MICROS);
  return raw > NTP_SHORT_MAX ? NTP_SHORT_MAX : raw;
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new UsageError('NTP_TIMESTAMP_RANGE', `timestamp ${what} must be a u32, got ${value}`);
}
