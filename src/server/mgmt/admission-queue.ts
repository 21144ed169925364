/**
 * Management requests wait here for their turn when the request budget (`mgmt.request-rate`,
 * `mgmt.request-burst`) is spent. Sessions are served in arrival order, admin and non-admin sessions taking turns,
 * so an operator can still act while monitors flood the service and admins cannot starve monitors. One timer for
 * the whole queue.
 */
import { RequestBucket, type AdmissionSettings } from '../../proto/mgmt/admission.js';

const DRAIN_TICK_MS = 25;

interface Waiting {
  readonly gone: () => boolean;
  readonly resume: () => void;
}

export class AdmissionQueue {
  readonly #bucket: RequestBucket;
  readonly #now: () => number;
  readonly #admin: Waiting[] = [];
  readonly #others: Waiting[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(settings: AdmissionSettings, nowMs: () => number = () => performance.now()) {
    this.#now = nowMs;
    this.#bucket = new RequestBucket(settings, nowMs());
  }

  get waiting(): number {
    return this.#admin.length + this.#others.length;
  }

  configure(settings: AdmissionSettings): void {
    const current = this.#bucket.settings;
    if (current.ratePerSecond === settings.ratePerSecond && current.burst === settings.burst) return;
    this.#bucket.configure(settings, this.#now());
    this.#reschedule();
  }

  /**
   * True: go ahead now. False: `resume` is called when the request's turn comes (never, if `gone()` is true by
   * then). Nobody goes ahead of a session already waiting; queued admins and others alternate.
   */
  admit(admin: boolean, gone: () => boolean, resume: () => void): boolean {
    const queue = admin ? this.#admin : this.#others;
    if (this.waiting === 0 && this.#bucket.take(this.#now())) return true;
    queue.push({ gone, resume });
    this.#reschedule();
    return false;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#admin.length = 0;
    this.#others.length = 0;
  }

  /** Admin and other sessions take turns while both wait: admins are not stuck behind monitors, nor the reverse. */
  #adminTurn = true;

  #next(): Waiting | undefined {
    const order = this.#adminTurn ? [this.#admin, this.#others] : [this.#others, this.#admin];
    for (const queue of order) {
      while (queue.length > 0) {
        const entry = queue.shift()!;
        if (entry.gone()) continue;
        this.#adminTurn = queue !== this.#admin;
        return entry;
      }
    }
    return undefined;
  }

  #drain = (): void => {
    this.#timer = undefined;
    while (this.waiting > 0 && this.#bucket.waitMs(this.#now()) === 0) {
      const entry = this.#next();
      if (entry === undefined) break;
      this.#bucket.take(this.#now());
      entry.resume();
    }
    this.#reschedule();
  };

  #reschedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.waiting === 0) return;
    // Waiting requests are released in batches, at most one wake-up per DRAIN_TICK_MS: each wake-up of an idle
    // event loop costs more CPU than the request it serves.
    const wait = Math.max(DRAIN_TICK_MS, Math.ceil(this.#bucket.waitMs(this.#now())));
    this.#timer = setTimeout(this.#drain, wait);
  }
}
