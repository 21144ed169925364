/**
 * The realtime clock at microsecond resolution.
 *
 * `Date.now()` has millisecond resolution, too coarse for NTP timestamps. We read the wall clock once at a
 * millisecond edge (the anchor) and from then on add the elapsed monotonic time, which has nanosecond
 * resolution: realtime = anchorWall + (monoNow − monoAtAnchor).
 *
 * Invariants:
 * - The anchor is taken right after `Date.now()` changes value, so the anchor's wall time is exact to the
 *   granularity of one `Date.now()` call rather than off by up to 1 ms.
 * - Every read cross-checks the result against `Date.now()`. When the two disagree by more than
 *   `stepToleranceMicros` the wall clock was stepped (or slewed far from the monotonic clock): we re-anchor,
 *   count the step and report it through `onStep`, so served time follows the system clock.
 */

export interface Clock {
  /** Microseconds since the Unix epoch (a safe integer). */
  nowMicros(): number;
}

export interface ClockSources {
  /** Wall clock in milliseconds since the Unix epoch (Date.now). */
  wallMillis(): number;
  /** Monotonic clock in nanoseconds (process.hrtime.bigint). */
  monotonicNanos(): bigint;
}

export const systemClockSources: ClockSources = {
  wallMillis: () => Date.now(),
  monotonicNanos: () => process.hrtime.bigint(),
};

export interface PreciseClockOptions {
  /** Disagreement with the wall clock that counts as a step; must exceed Date.now()'s 1 ms granularity. */
  stepToleranceMicros?: number;
  /** Called after a step was detected and the clock re-anchored; `stepMicros` is new minus old reading. */
  onStep?: (stepMicros: number) => void;
  /** Upper bound on the busy-wait for a millisecond edge, in monotonic nanoseconds. */
  maxEdgeWaitNanos?: bigint;
}

/** Longest loop pass in which a millisecond edge is trusted for the anchor. */
const MAX_EDGE_PASS_NANOS = 50_000n;

export class PreciseClock implements Clock {
  private anchorWallMicros = 0;
  private anchorMonoNanos = 0n;
  private readonly stepToleranceMicros: number;
  private readonly onStep: ((stepMicros: number) => void) | undefined;
  private readonly maxEdgeWaitNanos: bigint;
  /** Number of wall-clock steps detected since construction. */
  steps = 0;

  constructor(
    private readonly sources: ClockSources = systemClockSources,
    options: PreciseClockOptions = {},
  ) {
    this.stepToleranceMicros = options.stepToleranceMicros ?? 2_000;
    this.onStep = options.onStep;
    this.maxEdgeWaitNanos = options.maxEdgeWaitNanos ?? 5_000_000n;
    this.anchor();
  }

  /**
   * Re-reads the wall clock at a millisecond edge. Costs up to ~1 ms of busy waiting (a few ms when the process
   * keeps being descheduled). An edge is only trusted when the loop pass that saw it was short: a pass that was
   * interrupted (a loaded machine) would place the edge anywhere in the interruption. On timeout the narrowest
   * edge seen is used.
   */
  anchor(): void {
    const start = this.sources.monotonicNanos();
    let previousWall = this.sources.wallMillis();
    let previousMono = this.sources.monotonicNanos();
    let best: { wall: number; mono: bigint; width: bigint } | undefined;
    for (;;) {
      const mono = this.sources.monotonicNanos();
      const wall = this.sources.wallMillis();
      const after = this.sources.monotonicNanos();
      if (wall !== previousWall) {
        const width = after - previousMono; // the edge lies within this pass
        if (best === undefined || width < best.width) best = { wall, mono, width };
        if (width <= MAX_EDGE_PASS_NANOS) break;
      }
      previousWall = wall;
      previousMono = after;
      if (after - start > this.maxEdgeWaitNanos) break; // a frozen, fake or starved clock: take what we have
    }
    this.anchorWallMicros = (best?.wall ?? previousWall) * 1000;
    this.anchorMonoNanos = best?.mono ?? previousMono;
  }

  nowMicros(): number {
    const mono = this.sources.monotonicNanos();
    const micros = this.anchorWallMicros + Number((mono - this.anchorMonoNanos) / 1000n);
    // Date.now() truncates to the millisecond: the true time at that read lies in [wall, wall + 1000) µs. The
    // second monotonic read brackets the wall read, so being descheduled between the reads (a loaded machine)
    // widens the window instead of looking like a step.
    const wallMicros = this.sources.wallMillis() * 1000;
    const latest = this.anchorWallMicros + Number((this.sources.monotonicNanos() - this.anchorMonoNanos) / 1000n);
    if (latest < wallMicros - this.stepToleranceMicros || micros >= wallMicros + 1000 + this.stepToleranceMicros) {
      this.anchor();
      const after = this.anchorWallMicros + Number((this.sources.monotonicNanos() - this.anchorMonoNanos) / 1000n);
      this.steps++;
      this.onStep?.(after - micros);
      return after;
    }
    return micros;
  }
}

/** A clock set by hand, for tests and simulations. */
export class ManualClock implements Clock {
  constructor(private micros: number) {}
  nowMicros(): number {
    return this.micros;
  }
  set(micros: number): void {
    this.micros = micros;
  }
  advance(micros: number): void {
    this.micros += micros;
  }
}
