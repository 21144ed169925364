/**
 * Admission of management requests (docs/management.md §8): one token bucket over all management connections,
 * like chrony's `cmdratelimit` but global. Management shares the daemon's event loop with the time service; a
 * client that sends requests as fast as it gets answers would otherwise take CPU from NTP in proportion to its
 * rate. Pure: time is an argument (milliseconds on a monotonic clock).
 */

export interface AdmissionSettings {
  /** Requests admitted per second, on average; 0 admits everything. */
  readonly ratePerSecond: number;
  /** Requests admitted at once after a quiet period (the bucket's size); at least 1. */
  readonly burst: number;
}

export class RequestBucket {
  #settings: AdmissionSettings;
  #tokens: number;
  #at: number;

  constructor(settings: AdmissionSettings, nowMs: number) {
    this.#settings = settings;
    this.#tokens = Math.max(1, settings.burst);
    this.#at = nowMs;
  }

  get settings(): AdmissionSettings {
    return this.#settings;
  }

  /** New settings (a reload); the tokens already earned are kept, up to the new size. */
  configure(settings: AdmissionSettings, nowMs: number): void {
    this.#refill(nowMs);
    const wasUnlimited = this.#settings.ratePerSecond <= 0;
    this.#settings = settings;
    // From no limit to a limit, the bucket starts full: nothing was counted while unlimited.
    this.#tokens = wasUnlimited ? Math.max(1, settings.burst) : Math.min(this.#tokens, Math.max(1, settings.burst));
  }

  /** Takes one token when there is one. */
  take(nowMs: number): boolean {
    if (this.#settings.ratePerSecond <= 0) return true;
    this.#refill(nowMs);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until `take` can succeed (0: now). */
  waitMs(nowMs: number): number {
    if (this.#settings.ratePerSecond <= 0) return 0;
    this.#refill(nowMs);
    if (this.#tokens >= 1) return 0;
    return ((1 - this.#tokens) * 1000) / this.#settings.ratePerSecond;
  }

  #refill(nowMs: number): void {
    // A monotonic clock never goes back; if a caller's does, no tokens are earned rather than negative ones.
    const elapsed = Math.max(0, nowMs - this.#at);
    this.#at = Math.max(this.#at, nowMs);
    this.#tokens = Math.min(Math.max(1, this.#settings.burst), this.#tokens + (elapsed * this.#settings.ratePerSecond) / 1000);
  }
}
