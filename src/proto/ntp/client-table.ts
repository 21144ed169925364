/**
 * The NTP service's per-client table: rate limiting and the MRU list shown by management.
 *
 * Theory of operation:
 * - One entry per client address, kept in a Map whose iteration order is least-recently-seen first: every
 *   packet moves its entry to the end, so eviction of the oldest is O(1) and memory is bounded by `capacity`.
 * - Rate limiting is a token bucket per client (RFC 5905 §7.4 leaves the policy to the server; chrony and ntpd
 *   use an average interval plus a burst). A client may send `burst` packets at once and then one per
 *   `intervalMicros` on average.
 * - A limited client gets a RATE kiss-o'-death at most once per interval, otherwise silence: answering every
 *   excess packet, even with a KoD, would make us a reflector.
 * - Time is always an argument (microseconds); nothing here reads a clock.
 */

export type RateDecision = 'allow' | 'kod' | 'drop';

export interface ClientEntry {
  readonly address: string;
  firstSeenMicros: number;
  lastSeenMicros: number;
  packets: number;
  lastMode: number;
  lastVersion: number;
  /** How the last request was authenticated: "none", "nts", "mac", ... */
  lastAuth: string;
  drops: number;
  kods: number;
  tokens: number;
  lastRefillMicros: number;
  lastKodMicros: number;
}

export interface ClientTableOptions {
  capacity: number;
  rateLimit: { enabled: boolean; intervalMicros: number; burst: number; kod: boolean };
}

export class ClientTable {
  private readonly entries = new Map<string, ClientEntry>();
  evictions = 0;

  constructor(private readonly options: ClientTableOptions) {}

  get size(): number {
    return this.entries.size;
  }

  /** Records a packet from `address` and decides whether it may be answered. */
  admit(address: string, nowMicros: number): { decision: RateDecision; entry: ClientEntry } {
    let entry = this.entries.get(address);
    const { rateLimit } = this.options;
    if (entry === undefined) {
      if (this.entries.size >= this.options.capacity) this.evictOldest();
      entry = {
        address,
        firstSeenMicros: nowMicros,
        lastSeenMicros: nowMicros,
        packets: 0,
        lastMode: 0,
        lastVersion: 0,
        lastAuth: 'none',
        drops: 0,
        kods: 0,
        tokens: rateLimit.burst,
        lastRefillMicros: nowMicros,
        lastKodMicros: Number.NEGATIVE_INFINITY,
      };
    } else {
      this.entries.delete(address); // re-inserted below: most recently seen goes last
    }
    this.entries.set(address, entry);
    entry.packets++;
    entry.lastSeenMicros = nowMicros;
    if (!rateLimit.enabled) return { decision: 'allow', entry };

    const elapsed = nowMicros - entry.lastRefillMicros;
    if (elapsed > 0) {
      entry.tokens = Math.min(rateLimit.burst, entry.tokens + elapsed / rateLimit.intervalMicros);
      entry.lastRefillMicros = nowMicros;
    }
    if (entry.tokens >= 1) {
      entry.tokens -= 1;
      return { decision: 'allow', entry };
    }
    if (rateLimit.kod && nowMicros - entry.lastKodMicros >= rateLimit.intervalMicros) {
      entry.lastKodMicros = nowMicros;
      entry.kods++;
      return { decision: 'kod', entry };
    }
    entry.drops++;
    return { decision: 'drop', entry };
  }

  get(address: string): ClientEntry | undefined {
    return this.entries.get(address);
  }

  /** Entries, most recently seen first. */
  mostRecent(limit = Number.POSITIVE_INFINITY): ClientEntry[] {
    const all = [...this.entries.values()];
    all.reverse();
    return all.length > limit ? all.slice(0, limit) : all;
  }

  clear(): void {
    this.entries.clear();
  }

  private evictOldest(): void {
    const oldest = this.entries.keys().next();
    if (!oldest.done) {
      this.entries.delete(oldest.value);
      this.evictions++;
    }
  }
}
