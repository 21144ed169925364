/**
 * Authentication helpers of the management service (docs/management.md §2; `matchToken` serves the EKS tokens
 * too), free of sockets and clocks: time is an argument (milliseconds), so the limiter and the sampler are
 * tested without waiting.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MgmtClientCert, MgmtRole, MgmtToken } from '../../config/types.js';

/**
 * The token whose SHA-256 equals the presented token's, or null. Every configured hash is compared, in constant
 * time and without an early exit, so the time taken tells nothing about which token matched.
 */
export function matchToken<T extends Pick<MgmtToken, 'sha256'>>(tokens: readonly T[], presented: string): T | null {
  const digest = createHash('sha256').update(presented, 'utf8').digest();
  let found: T | null = null;
  for (const token of tokens) {
    const expected = Buffer.from(token.sha256, 'hex');
    const same = expected.length === digest.length && timingSafeEqual(expected, digest);
    if (same && found === null) found = token;
  }
  return found;
}

/** The subject CN of a verified certificate mapped by `[[mgmt.client-cert]]`; null: no role from the certificate. */
export function certificateRole(mappings: readonly MgmtClientCert[], commonName: string | null): MgmtRole | null {
  if (commonName === null) return null;
  return mappings.find((m) => m.commonName === commonName)?.role ?? null;
}

export interface AuthLimiterOptions {
  /** Failures allowed at once (bucket size). */
  readonly burst: number;
  /** One more failure allowed every this many milliseconds. */
  readonly refillMs: number;
  /** Addresses remembered; the least recently failed is forgotten first. */
  readonly capacity: number;
}

export const AUTH_LIMITS: AuthLimiterOptions = { burst: 5, refillMs: 12_000, capacity: 4096 };
/** A connection is closed after this many failed `auth` calls. */
export const MAX_AUTH_FAILURES_PER_CONNECTION = 3;

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Failed `auth` attempts per client address: a token bucket per address in a Map kept in least-recently-failed
 * order, so memory is bounded by `capacity` and eviction is O(1).
 */
export class AuthLimiter {
  readonly #buckets = new Map<string, Bucket>();
  constructor(readonly options: AuthLimiterOptions = AUTH_LIMITS) {}

  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Credits whole tokens only, moving `at` by whole intervals: a fractional balance updated on every call would
   * drift in floating point and refuse a client a whole interval after it emptied the bucket.
   */
  #refill(address: string, nowMs: number): Bucket | undefined {
    const bucket = this.#buckets.get(address);
    if (bucket === undefined) return undefined;
    const { burst, refillMs } = this.options;
    const gained = Math.floor((nowMs - bucket.at) / refillMs);
    if (gained > 0) {
      bucket.tokens = Math.min(burst, bucket.tokens + gained);
      bucket.at += gained * refillMs;
    }
    if (bucket.tokens >= burst) {
      this.#buckets.delete(address); // full again: nothing to remember
      return undefined;
    }
    return bucket;
  }

  /** Seconds until `address` may try again; 0 when it may try now. */
  retryAfter(address: string, nowMs: number): number {
    const bucket = this.#refill(address, nowMs);
    if (bucket === undefined || bucket.tokens >= 1) return 0;
    return Math.max(1, Math.ceil((bucket.at + this.options.refillMs - nowMs) / 1000));
  }

  /** Records a failure of `address`. */
  fail(address: string, nowMs: number): void {
    const bucket = this.#refill(address, nowMs) ?? { tokens: this.options.burst, at: nowMs };
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    this.#buckets.delete(address);
    this.#buckets.set(address, bucket);
    while (this.#buckets.size > this.options.capacity) {
      const oldest = this.#buckets.keys().next();
      if (oldest.done) break;
      this.#buckets.delete(oldest.value);
    }
  }
}

/**
 * Sampling of `client-rate-limited` events (docs/management.md §7): at most one per address per `perAddressMs`
 * and one per `globalMs` in all; `suppressed` counts what was not sent since the last event that was.
 */
export class RateLimitSampler {
  readonly #lastByAddress = new Map<string, number>();
  #lastAny = Number.NEGATIVE_INFINITY;
  #suppressed = 0;

  constructor(
    readonly perAddressMs = 60_000,
    readonly globalMs = 1_000,
    readonly capacity = 4096,
  ) {}

  /** Null: suppressed; otherwise the number of events suppressed before this one. */
  sample(address: string, nowMs: number): number | null {
    const last = this.#lastByAddress.get(address);
    if ((last !== undefined && nowMs - last < this.perAddressMs) || nowMs - this.#lastAny < this.globalMs) {
      this.#suppressed++;
      return null;
    }
    this.#lastByAddress.delete(address);
    this.#lastByAddress.set(address, nowMs);
    while (this.#lastByAddress.size > this.capacity) {
      const oldest = this.#lastByAddress.keys().next();
      if (oldest.done) break;
      this.#lastByAddress.delete(oldest.value);
    }
    this.#lastAny = nowMs;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
