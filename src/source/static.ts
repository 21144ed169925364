import type { LeapIndicator, TimeQuality, TimeSource } from './source.js';

export interface StaticSourceSettings {
  stratum: number;
  /** The reference id as the wire carries it (big-endian u32). */
  refid: number;
  /** For display. */
  refidText: string;
  precision: number;
  rootDelayMicros: number;
  rootDispersionMicros: number;
  leap: Exclude<LeapIndicator, 'unsynchronized'>;
}

/**
 * Serves the local clock as a fixed-stratum source, like chrony's `local stratum N` or ntpd's orphan mode.
 * The local clock is its own reference, so the reference time follows it (one second behind, since
 * clients check that it is not in the future).
 */
export class StaticSource implements TimeSource {
  readonly kind = 'static';
  readonly #quality: TimeQuality;

  constructor(private readonly settings: StaticSourceSettings) {
    this.#quality = {
      leap: settings.leap,
      stratum: settings.stratum,
      refid: settings.refid,
      precision: settings.precision,
      rootDelayMicros: settings.rootDelayMicros,
      rootDispersionMicros: settings.rootDispersionMicros,
      referenceTimeMicros: 0,
    };
  }

  current(nowMicros: number): TimeQuality {
    // Reused object: this runs for every packet and the caller only reads it.
    this.#quality.referenceTimeMicros = nowMicros - 1_000_000;
    return this.#quality;
  }

  describe(): string {
    return `static (stratum ${this.settings.stratum}, refid ${this.settings.refidText})`;
  }

  async stop(): Promise<void> {}
}
