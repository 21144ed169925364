/**
 * `time.source = "ntpd"`: serve the quality of a local ntpd/NTPsec, read over mode 6 (READVAR of the system
 * variables, RFC 9327 §3.1) every `pollMs`. ntpd's own values are mirrored (src/proto/ntpd/quality.ts).
 *
 * - ntpd saying it is not synchronised is served at once as unsynchronised (leap 3, stratum 16).
 * - ntpd not answering (or answering garbage) keeps the last good values for `graceMs`, counted from the first
 *   failed poll, then serves unsynchronised: never a sync we cannot vouch for. Each distinct failure is logged
 *   once, and so is the recovery.
 * - `current()` returns a precomputed object: it runs for every NTP packet.
 */
import type { Clock } from '../clock/clock.js';
import { Mode6Client, Mode6Error } from '../client/mode6.js';
import type { SymmetricKey } from '../crypto/symmetric-mac.js';
import { NTPD_QUALITY_VARIABLES, ntpdSystemQuality } from '../proto/ntpd/quality.js';
import { qualityChangedMaterially, unsynchronisedQuality } from '../proto/ntp/quality.js';
import type { Logger } from '../server/log.js';
import type { TimeQuality, TimeSource } from './source.js';

export interface NtpdSourceSettings {
  readonly host: string;
  readonly port: number;
  readonly key: SymmetricKey | null;
  readonly pollMs: number;
  readonly graceMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  /** Served when ntpd does not send its precision. */
  readonly precision: number;
}

export interface NtpdSourceOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly onChange?: (before: TimeQuality, after: TimeQuality, reason: string) => void;
}

export class NtpdSource implements TimeSource {
  readonly kind = 'ntpd';
  readonly #settings: NtpdSourceSettings;
  readonly #options: NtpdSourceOptions;
  readonly #client: Mode6Client;
  #quality: TimeQuality;
  #synchronised = false;
  #refidText = 'INIT';
  #unsyncReason = 'no answer from ntpd yet';
  #failure: string | null = null;
  #graceTimer: NodeJS.Timeout | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> | null = null;
  #stopped = false;
  readonly #firstPoll: Promise<void>;

  constructor(settings: NtpdSourceSettings, options: NtpdSourceOptions) {
    this.#settings = settings;
    this.#options = options;
    this.#client = new Mode6Client({
      host: settings.host,
      port: settings.port,
      timeoutMs: settings.timeoutMs,
      retries: settings.retries,
      now: () => options.clock.nowMicros(),
      // As ntpq: only what ntpd refuses unsigned is signed; a signed read resets ntpd's status-word event counts.
      ...(settings.key !== null ? { key: settings.key } : {}),
    });
    this.#quality = unsynchronisedQuality(settings.precision);
    this.#firstPoll = this.poll();
  }

  get where(): string {
    return this.#settings.host.includes(':') ? `[${this.#settings.host}]:${this.#settings.port}` : `${this.#settings.host}:${this.#settings.port}`;
  }

  ready(): Promise<void> {
    return this.#firstPoll;
  }

  get synchronised(): boolean {
    return this.#synchronised;
  }

  current(): TimeQuality {
    return this.#quality;
  }

  describe(): string {
    if (this.#synchronised) {
      const stale = this.#failure !== null ? `; last poll failed: ${this.#failure}` : '';
      return `ntpd at ${this.where} (stratum ${this.#quality.stratum}, refid ${this.#refidText}${stale})`;
    }
    return `ntpd at ${this.where} (unsynchronised: ${this.#unsyncReason})`;
  }

  poll(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#inFlight ??= this.#read().then(() => {
      this.#inFlight = null;
      if (!this.#stopped) this.#schedule();
    });
    return this.#inFlight;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#client.close();
    await this.#inFlight;
  }

  async #read(): Promise<void> {
    let reason: string;
    try {
      const reply = await this.#client.readVariables(0, NTPD_QUALITY_VARIABLES);
      if (this.#stopped) return;
      const now = this.#options.clock.nowMicros();
      const mapped = ntpdSystemQuality(reply.variables, now, this.#settings.precision);
      if (mapped.ok) {
        this.#recovered();
        if (mapped.value.synchronised) {
          this.#set(mapped.value.quality, true, mapped.value.refidText, `ntpd synchronised: stratum ${mapped.value.quality.stratum}, refid ${mapped.value.refidText}`);
        } else {
          this.#unsyncReason = `ntpd is not synchronised (leap ${reply.variables.get('leap') ?? '?'}, stratum ${reply.variables.get('stratum') ?? '?'})`;
          this.#set(mapped.value.quality, false, 'INIT', this.#unsyncReason);
        }
        return;
      }
      reason = `unusable system variables: ${mapped.error.message}`;
    } catch (error) {
      if (this.#stopped) return;
      reason = error instanceof Mode6Error ? `${error.code}: ${error.message}` : String(error);
    }
    this.#failed(reason);
  }

  #recovered(): void {
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    if (this.#failure !== null) {
      this.#options.logger.info({ source: 'ntpd', previousFailure: this.#failure }, 'ntpd answers again');
      this.#failure = null;
    }
  }

  #failed(reason: string): void {
    if (this.#failure !== reason) this.#options.logger.warn({ source: 'ntpd', ntpd: this.where, reason }, 'ntpd poll failed');
    const firstFailure = this.#failure === null;
    this.#failure = reason;
    if (!this.#synchronised) {
      this.#unsyncReason = reason;
      return;
    }
    // The grace period runs from the first failure of a streak, not from the last success.
    if (firstFailure && this.#graceTimer === null) {
      this.#graceTimer = setTimeout(() => {
        this.#graceTimer = null;
        if (this.#failure === null || this.#stopped) return;
        this.#unsyncReason = `ntpd unreadable for ${this.#settings.graceMs} ms: ${this.#failure}`;
        this.#set(unsynchronisedQuality(this.#settings.precision), false, 'INIT', this.#unsyncReason);
      }, this.#settings.graceMs);
      this.#graceTimer.unref();
    }
  }

  #set(quality: TimeQuality, synchronised: boolean, refidText: string, reason: string): void {
    const before = this.#quality;
    this.#quality = quality;
    this.#synchronised = synchronised;
    this.#refidText = refidText;
    if (qualityChangedMaterially(before, quality)) {
      try {
        this.#options.onChange?.({ ...before }, { ...quality }, reason);
      } catch (error) {
        this.#options.logger.error({ err: error }, 'time source change listener failed');
      }
    }
  }

  #schedule(): void {
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = null;
      void this.poll();
    }, this.#settings.pollMs);
    this.#pollTimer.unref();
  }
}
