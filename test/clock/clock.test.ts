import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, PreciseClock, type ClockSources } from '../../src/clock/clock.js';

/** Fake sources: monotonic time advances by `tickNanos` per read, wall clock follows it (plus an offset we can step). */
function fakeSources(startWallMs: number, tickNanos = 1_000n): ClockSources & { stepWall(ms: number): void } {
  let mono = 0n;
  let wallOffsetMs = 0;
  return {
    monotonicNanos: () => (mono += tickNanos),
    wallMillis: () => startWallMs + wallOffsetMs + Number(mono / 1_000_000n),
    stepWall(ms: number) {
      wallOffsetMs += ms;
    },
  };
}

test('the system clock has sub-millisecond resolution', () => {
  const clock = new PreciseClock();
  const seen = new Set<number>();
  const start = clock.nowMicros();
  let last = start;
  // Read until 2 ms have passed: a millisecond clock would give at most 3 distinct values.
  while (last - start < 2_000) {
    last = clock.nowMicros();
    seen.add(last % 1000);
  }
  assert.ok(seen.size > 10, `only ${seen.size} distinct sub-millisecond values`);
});

test('the system clock agrees with Date.now() and never goes backwards without a step', () => {
  const clock = new PreciseClock();
  let previous = clock.nowMicros();
  for (let i = 0; i < 10_000; i++) {
    const now = clock.nowMicros();
    assert.ok(now >= previous, 'monotonic between steps');
    previous = now;
  }
  const wall = Date.now() * 1000;
  assert.ok(Math.abs(clock.nowMicros() - wall) < 3_000);
  assert.equal(clock.steps, 0);
});

test('the anchor is taken at a millisecond edge', () => {
  const sources = fakeSources(1_700_000_000_123, 100_000n); // wall changes every 10 monotonic reads
  const clock = new PreciseClock(sources);
  // Just after the edge, the sub-millisecond part is small.
  assert.ok(clock.nowMicros() % 1000 < 250);
});

test('a wall clock step is detected, reported and followed', () => {
  const sources = fakeSources(1_700_000_000_000);
  const steps: number[] = [];
  const clock = new PreciseClock(sources, { onStep: (s) => steps.push(s) });
  const before = clock.nowMicros();
  sources.stepWall(5_000); // +5 s
  const after = clock.nowMicros();
  assert.equal(clock.steps, 1);
  assert.equal(steps.length, 1);
  assert.ok(Math.abs(after - before - 5_000_000) < 2_000, `step of ${after - before} µs`);
  sources.stepWall(-60_000); // −60 s
  const back = clock.nowMicros();
  assert.equal(clock.steps, 2);
  assert.ok(Math.abs(back - after + 60_000_000) < 2_000);
  assert.ok(steps[1]! < 0);
});

test('small disagreements within the tolerance do not re-anchor', () => {
  const sources = fakeSources(1_700_000_000_000);
  const clock = new PreciseClock(sources, { stepToleranceMicros: 2_000 });
  sources.stepWall(1); // within Date.now() granularity plus tolerance
  clock.nowMicros();
  assert.equal(clock.steps, 0);
});

test('a frozen wall clock does not hang the anchor', () => {
  let mono = 0n;
  const clock = new PreciseClock({ monotonicNanos: () => (mono += 1_000n), wallMillis: () => 42 }, { maxEdgeWaitNanos: 1_000_000n });
  assert.equal(typeof clock.nowMicros(), 'number');
});

test('the manual clock is set by hand', () => {
  const clock = new ManualClock(10);
  clock.advance(5);
  assert.equal(clock.nowMicros(), 15);
  clock.set(3);
  assert.equal(clock.nowMicros(), 3);
});

test('being descheduled between the clock reads is not taken for a step', () => {
  // The wall read happens 5 ms after the first monotonic read, as on a loaded machine.
  let mono = 0n;
  const sources: ClockSources = {
    monotonicNanos: () => (mono += 1_000n),
    wallMillis: () => {
      mono += 5_000_000n;
      return 1_700_000_000_000 + Number(mono / 1_000_000n);
    },
  };
  const clock = new PreciseClock(sources);
  for (let i = 0; i < 100; i++) clock.nowMicros();
  assert.equal(clock.steps, 0);
});
