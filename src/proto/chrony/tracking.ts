/**
 * chronyd's tracking report as `chronyc -c -n tracking` prints it, and the NTP quality we serve from it.
 *
 * One CSV line of 14 fields (chronyc's print_report in CSV mode: no units, no padding, no fast/slow words):
 *
 *      1 reference ID        8 hex digits (%08X)         8 frequency          ppm, %.3f
 *      2 name / address      text, may be empty          9 residual freq      ppm, %.3f
 *      3 stratum             unsigned decimal           10 skew               ppm, %.3f
 *      4 ref time            Unix seconds, %ld.%09lu    11 root delay         seconds, %.9f
 *      5 system time         seconds, %.9f              12 root dispersion    seconds, %.9f
 *      6 last offset         seconds, %.9f              13 update interval    seconds, %.1f
 *      7 RMS offset          seconds, %.9f              14 leap status        Normal | Insert second |
 *                                                                             Delete second | Not synchronised
 *
 * Captured from chrony 4.3 synchronised to another chronyd on 127.0.0.1:
 *   7F000001,127.0.0.1,3,1795711143.518564733,-0.000000616,0.000000098,0.000000229,0.080,0.015,0.506,0.000002762,0.000001360,0.1,Normal
 *
 * The name is the source's address for an NTP source (never a DNS name in CSV mode) or the printable
 * characters of the reference ID otherwise (empty for chrony's local reference, 7F7F0101). Only the name can
 * hold commas (a refclock's ID), so it is whatever lies between the first field and the last twelve.
 *
 * chronyd fills the report from the same function that fills its own NTP responses (REF_GetReferenceParams),
 * so these fields are what chronyd itself serves (test/source/chrony-source.test.ts checks that against
 * chronyd's NTP answers); `servedFromTracking` turns them into ours.
 */

import { decodeError, ok } from '../errors.js';
import type { Result } from '../errors.js';
import { NTP_STRATUM_UNSYNCHRONIZED, renderRefId } from '../ntp/packet.js';
import { unsynchronisedQuality } from '../ntp/quality.js';
import type { LeapIndicator, TimeQuality } from '../ntp/server.js';

export type ChronyLeapStatus = 'normal' | 'insert' | 'delete' | 'unsynchronised';

/** One tracking report. Times are Unix microseconds, other quantities in the units chronyc prints. */
export interface ChronyTracking {
  /** Big-endian u32, as chronyd puts it in its responses. */
  readonly refid: number;
  /** Source address, or the printable characters of the reference ID; may be empty. */
  readonly name: string;
  /** 0 when chronyd is not synchronised (and has no local reference). */
  readonly stratum: number;
  /** When chronyd's clock was last updated; 0 when unknown. */
  readonly refTimeMicros: number;
  /** chronyc's "System time": the correction chronyd is still applying, seconds. */
  readonly systemTimeSeconds: number;
  readonly lastOffsetSeconds: number;
  readonly rmsOffsetSeconds: number;
  readonly frequencyPpm: number;
  readonly residualFrequencyPpm: number;
  readonly skewPpm: number;
  readonly rootDelaySeconds: number;
  readonly rootDispersionSeconds: number;
  readonly updateIntervalSeconds: number;
  readonly leap: ChronyLeapStatus;
}

/** chronyd's reference ID for its `local` reference (NTP_REFID_LOCAL, ntpd's LOCAL(1) pseudo-address 127.127.1.1). */
export const CHRONY_REFID_LOCAL = 0x7f7f0101;
/** chronyd's `maxclockerror` default: the clock's own drift bound, part of its dispersion growth. */
export const CHRONY_MAX_CLOCK_ERROR_PPM = 1;

const FIELD_COUNT = 14;
const MAX_TEXT_LENGTH = 4096;
const LEAP: Readonly<Record<string, ChronyLeapStatus>> = {
  Normal: 'normal',
  'Insert second': 'insert',
  'Delete second': 'delete',
  'Not synchronised': 'unsynchronised',
};
const DECIMAL = /^-?\d{1,20}(?:\.\d{1,20})?$/;
const REF_TIME = /^(\d{1,12})(?:\.(\d{1,9}))?$/;
// chronyc prints its own failures as "NNN Text" (e.g. "506 Cannot talk to daemon"), usually on stderr.
const CHRONYC_STATUS = /^\d{3} [A-Za-z]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function snippet(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** Parses the output of `chronyc -c tracking`. Never throws: anything else is a `DecodeError`. */
export function parseChronyTracking(text: string): Result<ChronyTracking> {
  if (typeof text !== 'string' || text.trim() === '') return decodeError('CHRONY_EMPTY', 'no output');
  if (text.length > MAX_TEXT_LENGTH) return decodeError('CHRONY_TOO_LONG', `output of ${text.length} characters, a tracking report is one short line`);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== 1) return decodeError('CHRONY_LINES', `expected one line, got ${lines.length}: ${snippet(text)}`);
  const line = lines[0] as string;
  if (CHRONYC_STATUS.test(line)) return decodeError('CHRONY_DAEMON_ERROR', `chronyc reports: ${snippet(line)}`);

  const fields = line.split(',');
  if (fields.length < FIELD_COUNT) return decodeError('CHRONY_FIELD_COUNT', `expected ${FIELD_COUNT} comma-separated fields, got ${fields.length}: ${snippet(line)}`);
  const tail = fields.slice(fields.length - (FIELD_COUNT - 2));
  const field = (i: number): string => (i === 0 ? (fields[0] as string) : (tail[i - 2] as string));
  const name = fields.slice(1, fields.length - (FIELD_COUNT - 2)).join(',');

  const refidText = field(0);
  if (!/^[0-9A-Fa-f]{8}$/.test(refidText)) return decodeError('CHRONY_BAD_REFID', `reference ID ${snippet(refidText)} is not 8 hex digits`);
  if (CONTROL.test(name)) return decodeError('CHRONY_BAD_NAME', `name ${snippet(name)} holds control characters`);

  const stratumText = field(2);
  const stratum = /^\d{1,5}$/.test(stratumText) ? Number(stratumText) : NaN;
  if (!(stratum <= NTP_STRATUM_UNSYNCHRONIZED)) return decodeError('CHRONY_BAD_STRATUM', `stratum ${snippet(stratumText)} is not 0..16`);

  const refTime = REF_TIME.exec(field(3));
  if (refTime === null) return decodeError('CHRONY_BAD_REF_TIME', `ref time ${snippet(field(3))} is not seconds.fraction`);
  // Integer arithmetic: seconds·10^6 + fraction rounded to µs stays exact, a float parse would not.
  const fraction = (refTime[2] ?? '').padEnd(9, '0');
  const refTimeMicros = Number(refTime[1]) * 1_000_000 + Math.round(Number(fraction) / 1000);
  if (!Number.isSafeInteger(refTimeMicros)) return decodeError('CHRONY_BAD_REF_TIME', `ref time ${snippet(field(3))} is out of range`);

  const numbers: number[] = [];
  for (let i = 4; i <= 12; i++) {
    const t = field(i);
    const n = DECIMAL.test(t) ? Number(t) : NaN;
    if (!Number.isFinite(n)) return decodeError('CHRONY_BAD_NUMBER', `field ${i + 1} ${snippet(t)} is not a decimal number`);
    numbers.push(n);
  }
  const [systemTimeSeconds, lastOffsetSeconds, rmsOffsetSeconds, frequencyPpm, residualFrequencyPpm, skewPpm, rootDelaySeconds, rootDispersionSeconds, updateIntervalSeconds] =
    numbers as [number, number, number, number, number, number, number, number, number];
  // Served as unsigned NTP short values: chronyd never reports these negative, garbage might.
  if (rootDelaySeconds < 0 || rootDispersionSeconds < 0 || skewPpm < 0) {
    return decodeError('CHRONY_BAD_VALUE', `negative root delay, root dispersion or skew: ${snippet(line)}`);
  }

  const leap = Object.hasOwn(LEAP, field(13)) ? LEAP[field(13)] : undefined;
  if (leap === undefined) return decodeError('CHRONY_BAD_LEAP', `leap status ${snippet(field(13))} is not one chronyc prints`);

  return ok({
    refid: parseInt(refidText, 16),
    name,
    stratum,
    refTimeMicros,
    systemTimeSeconds,
    lastOffsetSeconds,
    rmsOffsetSeconds,
    frequencyPpm,
    residualFrequencyPpm,
    skewPpm,
    rootDelaySeconds,
    rootDispersionSeconds,
    updateIntervalSeconds,
    leap,
  });
}

/** chronyd serves time (stratum 1..15, a reference, leap not 3): its own or from its local reference. */
export function isTrackingSynchronised(t: ChronyTracking): boolean {
  return t.leap !== 'unsynchronised' && t.stratum >= 1 && t.stratum < NTP_STRATUM_UNSYNCHRONIZED && t.refid !== 0;
}

/** The reference for people: chronyc's name when it has one (an IPv6 source's address rather than its hash). */
export function trackingRefidText(t: ChronyTracking): string {
  return t.name !== '' ? t.name : renderRefId(t.refid, t.stratum);
}

/** A tracking report turned into served quality, plus what it takes to bring it forward to a later instant. */
export interface ChronyServed {
  readonly synchronised: boolean;
  /** The quality as of `atMicros`. */
  readonly quality: Readonly<TimeQuality>;
  /** Unix µs the report was taken at. */
  readonly atMicros: number;
  /** Root dispersion growth per unit of elapsed time (dimensionless: µs per µs). */
  readonly dispersionRate: number;
}

const LEAP_SERVED: Record<Exclude<ChronyLeapStatus, 'unsynchronised'>, LeapIndicator> = { normal: 'none', insert: 'add', delete: 'delete' };

/**
 * Mirrors chronyd's values: leap, stratum, refid, root delay, root dispersion and reference time as chronyd
 * reports them. We answer from the same system clock chronyd disciplines, on the same host, so to a client we
 * are another face of that server, not a server one hop further down:
 * - a stratum of chronyd's + 1 (and root delay grown by a loopback round trip) would advertise a hop that does
 *   not exist and make us look worse than the chronyd next to us, for the same clock;
 * - refid 127.0.0.1 (the "relay" convention) would hide chronyd's upstream, and with it the loop detection
 *   downstream servers do with the refid: with chronyd's refid, a server that chronyd syncs to still
 *   recognises its own address in ours.
 * Precision is ours to give: chronyd does not report its own over its command socket.
 * Root dispersion grows after the report the way chronyd grows it (skew + |residual frequency| + max clock
 * error, in ppm), so a report up to a poll interval old is not served as fresher than it is. chronyd's local
 * reference is served with zero delay and dispersion that do not grow, and chronyd's reference time for it
 * (chrony 4.3 answers NTP with the same fixed instant its tracking report shows).
 */
export function servedFromTracking(t: ChronyTracking, options: { precision: number; atMicros: number }): ChronyServed {
  if (!isTrackingSynchronised(t) || t.leap === 'unsynchronised') {
    return { synchronised: false, quality: unsynchronisedQuality(options.precision), atMicros: options.atMicros, dispersionRate: 0 };
  }
  const local = t.refid === CHRONY_REFID_LOCAL;
  const quality: TimeQuality = {
    leap: LEAP_SERVED[t.leap],
    stratum: t.stratum,
    refid: t.refid,
    precision: options.precision,
    rootDelayMicros: Math.round(t.rootDelaySeconds * 1_000_000),
    rootDispersionMicros: Math.round(t.rootDispersionSeconds * 1_000_000),
    referenceTimeMicros: t.refTimeMicros,
  };
  const dispersionRate = local ? 0 : (t.skewPpm + Math.abs(t.residualFrequencyPpm) + CHRONY_MAX_CLOCK_ERROR_PPM) / 1_000_000;
  return { synchronised: true, quality, atMicros: options.atMicros, dispersionRate };
}

/**
 * The quality to serve at `nowMicros`, written into `out` (a fresh object when not given; only the root
 * dispersion moves): cheap enough for every packet. Dispersion never shrinks when the clock reads earlier than
 * the report.
 */
export function qualityAt(served: ChronyServed, nowMicros: number, out?: TimeQuality): TimeQuality {
  const q = out ?? { ...served.quality };
  if (served.dispersionRate > 0) {
    const elapsed = nowMicros - served.atMicros;
    q.rootDispersionMicros = served.quality.rootDispersionMicros + (elapsed > 0 ? Math.round(elapsed * served.dispersionRate) : 0);
  }
  return q;
}

/** The quality chronyd's report stands for at `nowMicros` (the report taken at that instant). */
export function trackingToQuality(t: ChronyTracking, nowMicros: number, precision: number): TimeQuality {
  return qualityAt(servedFromTracking(t, { precision, atMicros: nowMicros }), nowMicros);
}
