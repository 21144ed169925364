/**
 * Where the quality of the time we serve comes from. The NTP service copies these fields into every response
 * header (RFC 5905 §7.3): a source that is not synchronised must say so (leap 3, stratum 16) rather than
 * claim a sync we do not have.
 */
import type { TimeQuality } from '../proto/ntp/server.js';

export type { LeapIndicator, TimeQuality } from '../proto/ntp/server.js';

export interface TimeSource {
  readonly kind: string;
  /** The current quality, cheap to call on every packet. */
  current(nowMicros: number): TimeQuality;
  /** A one-line description for logs and status. */
  describe(): string;
  /** Resolves once the first reading of the source is in (sources read from another daemon). */
  ready?(): Promise<void>;
  stop(): Promise<void>;
}
