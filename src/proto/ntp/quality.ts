/**
 * What every time source shares about the quality it serves (src/source/*): the "unsynchronised" values and
 * which changes count as a change of source. Pure.
 */
import { NTP_STRATUM_UNSYNCHRONIZED, refIdFromAscii } from './packet.js';
import type { TimeQuality } from './server.js';

/**
 * Refid while unsynchronised: "INIT" is what ntpd sends until it first synchronises (RFC 5905 §7.4 lists it);
 * clients act on leap 3 / stratum 16 and only show this.
 */
export const UNSYNCHRONISED_REFID = refIdFromAscii('INIT');

/**
 * Served while a source cannot vouch for the time (RFC 5905 §7.3: leap 3, stratum 16), with 1 s root delay and
 * dispersion as chronyd sends them unsynchronised.
 */
export function unsynchronisedQuality(precision: number): TimeQuality {
  return {
    leap: 'unsynchronized',
    stratum: NTP_STRATUM_UNSYNCHRONIZED,
    refid: UNSYNCHRONISED_REFID,
    precision,
    rootDelayMicros: 1_000_000,
    rootDispersionMicros: 1_000_000,
    referenceTimeMicros: 0,
  };
}

/** A change clients act on: synchronisation, stratum, refid or leap; not the delay/dispersion that move every poll. */
export function qualityChangedMaterially(before: TimeQuality, after: TimeQuality): boolean {
  const unsyncBefore = before.leap === 'unsynchronized' || before.stratum >= NTP_STRATUM_UNSYNCHRONIZED;
  const unsyncAfter = after.leap === 'unsynchronized' || after.stratum >= NTP_STRATUM_UNSYNCHRONIZED;
  if (unsyncBefore !== unsyncAfter) return true;
  if (unsyncAfter) return false;
  return before.stratum !== after.stratum || before.refid !== after.refid || before.leap !== after.leap;
}
