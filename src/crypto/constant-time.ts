/** Comparison of secret byte strings without data-dependent timing. */
import { timingSafeEqual } from 'node:crypto';

/**
 * True when `expected` and `actual` hold the same bytes. The running time depends only on
 * `expected.length`, never on the contents or on where the inputs differ, so pass the secret or
 * locally computed value as `expected` and the peer's bytes as `actual`.
 */
export function constantTimeEqual(expected: Uint8Array, actual: Uint8Array): boolean {
  if (expected.length !== actual.length) {
    // Same work as a real comparison of `expected`, then the answer the lengths already gave.
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(expected, actual);
}
