import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { constantTimeEqual } from '../../src/crypto/constant-time.js';

describe('constantTimeEqual', () => {
  it('equal, unequal, different lengths and empty inputs', () => {
    const a = Uint8Array.of(1, 2, 3, 4);
    assert.equal(constantTimeEqual(a, Uint8Array.of(1, 2, 3, 4)), true);
    assert.equal(constantTimeEqual(a, Uint8Array.of(1, 2, 3, 5)), false);
    assert.equal(constantTimeEqual(a, Uint8Array.of(1, 2, 3)), false);
    assert.equal(constantTimeEqual(a, Uint8Array.of(1, 2, 3, 4, 0)), false);
    assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
    assert.equal(constantTimeEqual(new Uint8Array(0), a), false);
    assert.equal(constantTimeEqual(a, new Uint8Array(0)), false);
  });

  it('works on views into larger buffers', () => {
    const big = Uint8Array.of(9, 1, 2, 3, 9);
    assert.equal(constantTimeEqual(big.subarray(1, 4), Uint8Array.of(1, 2, 3)), true);
    assert.equal(constantTimeEqual(Buffer.from([1, 2, 3]), big.subarray(1, 4)), true);
  });

  it('agrees with a plain comparison on random inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), fc.boolean(), (x, y, same) => {
        const b = same ? Uint8Array.from(x) : y;
        const plain = x.length === b.length && x.every((v, i) => v === b[i]);
        assert.equal(constantTimeEqual(x, b), plain);
      }),
      { numRuns: 300 },
    );
  });
});
