/**
 * `time.source = "chrony"`: serve the quality of a local chronyd, read with `chronyc -c -n tracking` every
 * poll interval (see src/proto/chrony/tracking.ts for the report and why its values are mirrored).
 *
 * States and transitions:
 * - Until a poll succeeds we are unsynchronised (leap 3, stratum 16, refid INIT).
 * - A report in which chronyd is synchronised (or serves its local reference) is served at once; one in
 *   which it is not is also taken at once: chronyd itself stops claiming sync then, so must we.
 * - A failed poll (chronyc missing, chronyd not answering, garbage, timeout) keeps the last good report for
 *   `graceMs`, counted from the first failure, so one lost poll does not flap what clients see; after that
 *   we are unsynchronised until a poll succeeds again. Counting from the failure rather than from the last
 *   success keeps the grace meaningful when it is shorter than the poll interval.
 * - Every change of sync state, stratum, refid or leap goes to `onChange`; failures are logged once per
 *   distinct reason, recovery once.
 *
 * chronyc runs in its own process group, so a timeout (or stop()) kills it with anything it started; its
 * output is capped. One poll at a time.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Clock } from '../clock/clock.js';
import { isTrackingSynchronised, parseChronyTracking, qualityAt, servedFromTracking, trackingRefidText } from '../proto/chrony/tracking.js';
import { qualityChangedMaterially, unsynchronisedQuality } from '../proto/ntp/quality.js';
import type { ChronyServed, ChronyTracking } from '../proto/chrony/tracking.js';
import type { Logger } from '../server/log.js';
import type { TimeQuality, TimeSource } from './source.js';

export interface ChronySourceSettings {
  /** chronyc program: a path, or a name looked up in PATH. */
  chronyc: string;
  /** Put before `-c -n tracking`, e.g. `['-h', '/run/chrony/chronyd.sock']` to pick chronyd's command socket. */
  args: readonly string[];
  pollMs: number;
  /** How long a failing chronyc leaves the last good report served. */
  graceMs: number;
  /** A chronyc that has not finished by then is killed and the poll counts as failed. */
  timeoutMs: number;
  /** Our precision (log2 s); chronyd does not report its own. Default -20 (about 1 µs). */
  precision?: number;
}

export type ChronyChangeListener = (before: TimeQuality, after: TimeQuality, reason: string) => void;

export interface ChronySourceOptions {
  logger: Logger;
  /** Called on a material change of what we serve (sync state, stratum, refid, leap), with copies of both. */
  onChange?: ChronyChangeListener;
  /** Wall clock for the report's timestamp, the same clock `current()` is given; Date.now() by default. */
  clock?: Clock;
}

type PollOutcome = { readonly ok: true; readonly tracking: ChronyTracking } | { readonly ok: false; readonly reason: string };

/** stdout and stderr kept per run: a tracking report is ~150 bytes, error messages one line. */
const MAX_OUTPUT = 16 * 1024;
const DEFAULT_PRECISION = -20;

const wallClock: Clock = { nowMicros: () => Date.now() * 1000 };

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

export class ChronySource implements TimeSource {
  readonly kind = 'chrony';
  readonly #settings: Readonly<ChronySourceSettings> & { readonly precision: number };
  readonly #logger: Logger;
  readonly #onChange: ChronyChangeListener | undefined;
  readonly #clock: Clock;

  /** The report being served; null while unsynchronised. */
  #served: ChronyServed | null = null;
  /** The object current() hands out; replaced on every new report, only time-dependent fields mutate. */
  #quality: TimeQuality;
  #unsyncReason = 'no answer from chronyd yet';
  #lastTracking: ChronyTracking | null = null;
  /** Reason of the failure streak in progress, for logging each distinct reason once. */
  #failure: string | null = null;
  #graceTimer: NodeJS.Timeout | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> | null = null;
  #abortRun: (() => void) | null = null;
  #stopped = false;
  readonly #firstPoll: Promise<void>;

  constructor(settings: ChronySourceSettings, options: ChronySourceOptions) {
    for (const [key, min] of [['pollMs', 1], ['graceMs', 0], ['timeoutMs', 1]] as const) {
      const v = settings[key];
      if (!Number.isFinite(v) || v < min) throw new RangeError(`chrony source: ${key} must be a number >= ${min}, got ${v}`);
    }
    if (settings.chronyc === '') throw new RangeError('chrony source: chronyc must name a program');
    // Checked here: the responder would otherwise throw on every packet.
    const precision = settings.precision ?? DEFAULT_PRECISION;
    if (!Number.isInteger(precision) || precision < -128 || precision > 127) throw new RangeError(`chrony source: precision must be an integer in [-128, 127], got ${precision}`);
    this.#settings = { ...settings, args: [...settings.args], precision };
    this.#logger = options.logger;
    this.#onChange = options.onChange;
    this.#clock = options.clock ?? wallClock;
    this.#quality = unsynchronisedQuality(this.#settings.precision);
    this.#firstPoll = this.poll();
  }

  /** Resolves once the first poll has finished, whatever its outcome: lets a daemon start with chronyd's state. */
  ready(): Promise<void> {
    return this.#firstPoll;
  }

  get synchronised(): boolean {
    return this.#served !== null;
  }

  /** The last report chronyd gave, good or not; null before the first. */
  get lastTracking(): ChronyTracking | null {
    return this.#lastTracking;
  }

  current(nowMicros: number): TimeQuality {
    const served = this.#served;
    return served === null ? this.#quality : qualityAt(served, nowMicros, this.#quality);
  }

  describe(): string {
    const t = this.#lastTracking;
    if (this.#served !== null && t !== null) {
      const stale = this.#failure !== null ? `; last poll failed: ${this.#failure}` : '';
      return `chrony (stratum ${t.stratum}, refid ${trackingRefidText(t)}${stale})`;
    }
    return `chrony (unsynchronised: ${this.#unsyncReason})`;
  }

  /** Polls now, unless a poll is running (then waits for that one); the periodic schedule restarts after it. */
  poll(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#inFlight ??= this.#run()
      .catch((error: unknown): PollOutcome => ({ ok: false, reason: `chronyc could not be run: ${String(error)}` }))
      .then((outcome) => {
        this.#inFlight = null;
        if (this.#stopped) return;
        if (outcome.ok) this.#accept(outcome.tracking);
        else this.#failed(outcome.reason);
        this.#schedule();
      });
    return this.#inFlight;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clearTimer('poll');
    this.#clearTimer('grace');
    this.#abortRun?.();
    await this.#inFlight;
  }

  #schedule(): void {
    this.#clearTimer('poll');
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = null;
      void this.poll();
    }, this.#settings.pollMs);
    this.#pollTimer.unref();
  }

  #clearTimer(which: 'poll' | 'grace'): void {
    const timer = which === 'poll' ? this.#pollTimer : this.#graceTimer;
    if (timer !== null) clearTimeout(timer);
    if (which === 'poll') this.#pollTimer = null;
    else this.#graceTimer = null;
  }

  #accept(tracking: ChronyTracking): void {
    if (this.#failure !== null) {
      this.#logger.info({ source: 'chrony', previousFailure: this.#failure }, 'chronyd answers again');
      this.#failure = null;
    }
    this.#clearTimer('grace');
    this.#lastTracking = tracking;
    const before = this.#snapshot();
    if (!isTrackingSynchronised(tracking)) {
      this.#unsyncReason = `chronyd is not synchronised (stratum ${tracking.stratum}, reference ID ${tracking.refid.toString(16).toUpperCase().padStart(8, '0')}, leap status ${tracking.leap})`;
      this.#becomeUnsynchronised(before, this.#unsyncReason);
      return;
    }
    const served = servedFromTracking(tracking, { precision: this.#settings.precision, atMicros: this.#clock.nowMicros() });
    this.#served = served;
    this.#quality = { ...served.quality };
    const after = this.#snapshot();
    if (qualityChangedMaterially(before, after)) {
      this.#logger.info({ source: 'chrony', stratum: tracking.stratum, refid: trackingRefidText(tracking), leap: after.leap }, 'serving chronyd\'s time');
      this.#emit(before, after, `chronyd synchronised: stratum ${tracking.stratum}, refid ${trackingRefidText(tracking)}, leap ${after.leap}`);
    }
  }

  #failed(reason: string): void {
    if (reason !== this.#failure) {
      this.#logger.warn({ source: 'chrony', chronyc: this.#settings.chronyc, reason }, 'chrony poll failed');
    }
    this.#failure = reason;
    if (this.#served === null) {
      this.#unsyncReason = reason;
      return;
    }
    if (this.#graceTimer !== null) return;
    const expire = (): void => {
      this.#graceTimer = null;
      if (this.#stopped || this.#served === null) return;
      this.#unsyncReason = `no good answer from chronyd for ${this.#settings.graceMs} ms: ${this.#failure ?? reason}`;
      this.#becomeUnsynchronised(this.#snapshot(), this.#unsyncReason);
    };
    if (this.#settings.graceMs === 0) {
      expire();
      return;
    }
    this.#graceTimer = setTimeout(expire, this.#settings.graceMs);
    this.#graceTimer.unref();
  }

  #becomeUnsynchronised(before: TimeQuality, reason: string): void {
    this.#clearTimer('grace');
    this.#served = null;
    this.#quality = unsynchronisedQuality(this.#settings.precision);
    const after = this.#snapshot();
    if (qualityChangedMaterially(before, after)) {
      this.#logger.warn({ source: 'chrony', reason }, 'serving unsynchronised');
      this.#emit(before, after, reason);
    }
  }

  /** A copy of what current() would return now: listeners keep it while the served object moves on. */
  #snapshot(): TimeQuality {
    return { ...this.current(this.#clock.nowMicros()) };
  }

  #emit(before: TimeQuality, after: TimeQuality, reason: string): void {
    if (this.#onChange === undefined) return;
    try {
      this.#onChange(before, after, reason);
    } catch (error) {
      this.#logger.error({ source: 'chrony', err: error }, 'chrony change listener failed');
    }
  }

  /** One chronyc run; always resolves, with the report or the reason there is none. */
  #run(): Promise<PollOutcome> {
    const { chronyc, args, timeoutMs } = this.#settings;
    return new Promise<PollOutcome>((resolve) => {
      let child: ChildProcess;
      try {
        // LC_ALL=C: the decimal point must be a point whatever the daemon's locale.
        child = spawn(chronyc, [...args, '-c', '-n', 'tracking'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
      } catch (error) {
        resolve({ ok: false, reason: `cannot run ${chronyc}: ${(error as Error).message}` });
        return;
      }
      let stdout = '';
      let stderr = '';
      let settled = false;
      const finish = (outcome: PollOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#abortRun = null;
        resolve(outcome);
      };
      const abort = (reason: string): void => {
        killGroup(child);
        finish({ ok: false, reason });
      };
      const timer = setTimeout(() => abort(`${chronyc} did not answer within ${timeoutMs} ms (killed)`), timeoutMs);
      this.#abortRun = () => abort('stopped');
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        if (settled) return;
        stdout += d;
        if (stdout.length > MAX_OUTPUT) abort(`${chronyc} wrote more than ${MAX_OUTPUT} bytes (killed): ${JSON.stringify(firstLine(stdout))}`);
      });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length <= MAX_OUTPUT) stderr += d;
      });
      child.once('error', (error: NodeJS.ErrnoException) => {
        finish({ ok: false, reason: `cannot run ${chronyc}: ${error.code ?? error.message}` });
      });
      child.once('close', (code, signal) => {
        if (code !== 0) {
          const status = code !== null ? `exited with status ${code}` : `was killed by ${signal ?? 'a signal'}`;
          const said = firstLine(stderr) || firstLine(stdout) || 'no output';
          finish({ ok: false, reason: `${chronyc} ${status}: ${said}` });
          return;
        }
        const parsed = parseChronyTracking(stdout);
        if (parsed.ok) finish({ ok: true, tracking: parsed.value });
        else finish({ ok: false, reason: `unexpected output from ${chronyc} (${parsed.error.code}): ${parsed.error.message}` });
      });
    });
  }
}
