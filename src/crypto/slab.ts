/**
 * Small byte arrays carved from a private slab. On Node 20 `new Uint8Array(n)` above 64 bytes is an
 * off-heap, zeroed allocation that costs about a microsecond, more than sealing a small message; a
 * view into a slab costs a few dozen nanoseconds. Every piece is handed out once and the slab is
 * replaced, never rewound, when it is full, so a piece stays valid and zero-initialised for as long as
 * its holder keeps it (e.g. a datagram still queued for sending). Each `Slab` has its own ArrayBuffers:
 * secrets and packets are carved from different slabs, so `.buffer` of one never exposes the other.
 */
export class Slab {
  #buffer: ArrayBuffer;
  #used = 0;

  /** `size`: bytes per slab; pieces over `maxPiece` bytes get their own allocation. */
  constructor(
    private readonly size = 16384,
    private readonly maxPiece = 1024,
  ) {
    this.#buffer = new ArrayBuffer(size);
  }

  /** A zeroed Uint8Array of `n` bytes that no one else holds. */
  alloc(n: number): Uint8Array {
    if (n > this.maxPiece) return new Uint8Array(n);
    if (this.#used + n > this.size) {
      this.#buffer = new ArrayBuffer(this.size);
      this.#used = 0;
    }
    const out = new Uint8Array(this.#buffer, this.#used, n);
    this.#used += (n + 7) & ~7;
    return out;
  }
}
