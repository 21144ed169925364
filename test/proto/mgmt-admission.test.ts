// The management request budget (src/proto/mgmt/admission.ts): a token bucket with time as an argument.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RequestBucket } from '../../src/proto/mgmt/admission.js';

describe('RequestBucket', () => {
  it('admits a burst at once, then one request per 1/rate', () => {
    const bucket = new RequestBucket({ ratePerSecond: 100, burst: 3 }, 0);
    assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, true, false]);
    assert.equal(bucket.waitMs(0), 10);
    assert.equal(bucket.take(5), false);
    assert.equal(bucket.waitMs(5), 5);
    assert.equal(bucket.take(10), true);
    assert.equal(bucket.take(10), false);
  });

  it('never holds more than the burst, however long it was quiet', () => {
    const bucket = new RequestBucket({ ratePerSecond: 1000, burst: 2 }, 0);
    assert.equal(bucket.take(1e9), true);
    assert.equal(bucket.take(1e9), true);
    assert.equal(bucket.take(1e9), false);
  });

  it('rate 0 admits everything', () => {
    const bucket = new RequestBucket({ ratePerSecond: 0, burst: 1 }, 0);
    for (let i = 0; i < 1000; i++) assert.equal(bucket.take(0), true);
    assert.equal(bucket.waitMs(0), 0);
  });

  it('from no limit to a limit starts full; a smaller burst caps what was earned', () => {
    const bucket = new RequestBucket({ ratePerSecond: 0, burst: 1 }, 0);
    bucket.configure({ ratePerSecond: 10, burst: 4 }, 0);
    assert.deepEqual([0, 0, 0, 0, 0].map(() => bucket.take(0)), [true, true, true, true, false]);
    bucket.configure({ ratePerSecond: 10, burst: 2 }, 1000);
    assert.deepEqual([0, 0, 0].map(() => bucket.take(1000)), [true, true, false]);
  });

  it('a clock going back earns nothing and breaks nothing', () => {
    const bucket = new RequestBucket({ ratePerSecond: 10, burst: 1 }, 1000);
    assert.equal(bucket.take(1000), true);
    assert.equal(bucket.take(500), false);
    assert.equal(bucket.take(1050), false);
    assert.equal(bucket.take(1100), true);
  });

  it('over any schedule, admits at most burst + rate x elapsed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 300 }), (rate, burst, steps) => {
        const bucket = new RequestBucket({ ratePerSecond: rate, burst }, 0);
        let now = 0;
        let admitted = 0;
        for (const step of steps) {
          now += step;
          if (bucket.take(now)) admitted++;
          const wait = bucket.waitMs(now);
          assert.ok(wait >= 0 && wait <= 1000 / rate + 1e-9);
        }
        assert.ok(admitted <= burst + (rate * now) / 1000 + 1e-9);
      }),
    );
  });
});
