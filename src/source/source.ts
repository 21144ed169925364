/**
 * Where the quality of the time we serve comes from. The NTP service copies these fields into every response
 * header (RFC 5905 §7.3): a source that is not synchronised must say so (leap 3, stratum 16 on the wire) rather
 * than claim a sync we do not have.
 */

export type LeapIndicator = 'none' | 'add' | 'delete' | 'unsynchronized';

export interface TimeQuality {
  leap: LeapIndicator;
  /** 1..15 when synchronised; 16 means unsynchronised (sent as 0 on the wire, RFC 5905 §7.3). */
  stratum: number;
  /** The 4-byte reference id as the wire carries it. */
  refid: Uint8Array;
  /** log2 seconds. */
  precision: number;
  rootDelayMicros: number;
  rootDispersionMicros: number;
  /** When the source was last updated, Unix microseconds; 0 for unknown. */
  referenceTimeMicros: number;
}

export interface TimeSource {
  readonly kind: string;
  /** The current quality, cheap to call on every packet. */
  current(nowMicros: number): TimeQuality;
  /** A one-line description for logs and status. */
  describe(): string;
  stop(): Promise<void>;
}
