import { isIPv4 } from 'node:net';
import type { LeapIndicator, TimeQuality, TimeSource } from './source.js';

export interface StaticSourceSettings {
  stratum: number;
  refid: string;
  precision: number;
  rootDelayMicros: number;
  rootDispersionMicros: number;
  leap: Exclude<LeapIndicator, 'unsynchronized'>;
}

/** Encodes a configured reference id: an IPv4 address as its 4 bytes, otherwise up to 4 ASCII characters. */
export function encodeRefid(refid: string): Uint8Array {
  if (isIPv4(refid)) return Uint8Array.from(refid.split('.').map(Number));
  const bytes = new Uint8Array(4);
  for (let i = 0; i < Math.min(4, refid.length); i++) bytes[i] = refid.charCodeAt(i) & 0x7f;
  return bytes;
}

/**
 * Serves the local clock as a fixed-stratum source, like chrony's `local stratum N` or ntpd's orphan mode.
 * The reference time follows the clock, since the local clock is its own reference.
 */
export class StaticSource implements TimeSource {
  readonly kind = 'static';
  private readonly quality: Omit<TimeQuality, 'referenceTimeMicros'>;

  constructor(private readonly settings: StaticSourceSettings) {
    this.quality = {
      leap: settings.leap,
      stratum: settings.stratum,
      refid: encodeRefid(settings.refid),
      precision: settings.precision,
      rootDelayMicros: settings.rootDelayMicros,
      rootDispersionMicros: settings.rootDispersionMicros,
    };
  }

  current(nowMicros: number): TimeQuality {
    // Reference time one second in the past: clients sanity-check that it is not in the future.
    return { ...this.quality, referenceTimeMicros: nowMicros - 1_000_000 };
  }

  describe(): string {
    return `static (stratum ${this.settings.stratum}, refid ${this.settings.refid})`;
  }

  async stop(): Promise<void> {}
}
