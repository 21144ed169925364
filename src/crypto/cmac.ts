/**
 * AES-CMAC (RFC 4493; NIST SP 800-38B for AES-192/256), the PRF under S2V (RFC 5297 §2.4) and the
 * NTP MAC of RFC 8573.
 *
 * Theory of operation: CMAC is CBC-MAC with zero IV whose last block is XORed with the subkey K1
 * (complete block) or padded and XORed with K2 (RFC 4493 §2.4). The engine is one long-lived
 * `aes-*-cbc` cipher: Node cannot reset its IV, so the chaining value left over from the previous
 * message (its last output block, kept in `#chain`) is XORed into the first block of the next
 * message, which cancels it and gives the zero IV. A whole message, up to the size of the scratch
 * buffer, therefore costs a single native call; key setup happens once, in the constructor.
 *
 * Invariants: `#chain` always equals the cipher's internal chaining value (after a message ends, it
 * is that message's tag); `#fresh` is true when no block of the current message has reached the
 * cipher; the scratch buffer is handed to the cipher before the end of a message only when it is
 * full and more data follows, so the final block is always still in it at the end.
 */
import { createCipheriv } from 'node:crypto';
import type { Cipher } from 'node:crypto';
import { UsageError } from '../proto/errors.js';

/** AES block size and CMAC output length in bytes (RFC 4493 §2.1). */
export const AES_BLOCK = 16;
export const CMAC_TAG_LENGTH = 16;

/**
 * Message bytes gathered before they are handed to the cipher; a multiple of the block size. Every NTS
 * message of a request without placeholders fits (the largest, a request's associated data, is ~200 bytes);
 * longer ones cost one more native call per 512 bytes. It is allocated (zeroed, off-heap) with every
 * instance, and instances are built per NTS session: 2 KiB here was 8% of an NTS request's CPU.
 */
const SCRATCH = 512;

const CBC_BY_KEY_LENGTH: Readonly<Record<number, string>> = { 16: 'aes-128-cbc', 24: 'aes-192-cbc', 32: 'aes-256-cbc' };

/**
 * `block <<= 1` over 128 bits, then XOR R_128 = 0x87 into the last byte when the top bit fell off
 * (RFC 4493 §2.3; also `dbl()` of RFC 5297 §2.1). Branch-free on the secret bit.
 */
export function dbl(block: Uint8Array): void {
  const carry = block[0]! >>> 7;
  for (let i = 0; i < AES_BLOCK - 1; i++) block[i] = ((block[i]! << 1) | (block[i + 1]! >>> 7)) & 0xff;
  block[AES_BLOCK - 1] = ((block[AES_BLOCK - 1]! << 1) & 0xff) ^ (0x87 & -carry);
}

/** Opens an AES cipher for `key` in `mode` ('cbc' or 'ecb') with padding off; throws UsageError on a bad key size. */
export function aesCipher(key: Uint8Array, mode: 'cbc' | 'ecb'): Cipher {
  const name = CBC_BY_KEY_LENGTH[key.length];
  if (name === undefined) {
    throw new UsageError('CRYPTO_BAD_KEY_LENGTH', `AES key must be 16, 24 or 32 bytes, got ${key.length}`);
  }
  const cipher = mode === 'cbc' ? createCipheriv(name, key, new Uint8Array(AES_BLOCK)) : createCipheriv(name.replace('-cbc', '-ecb'), key, null);
  cipher.setAutoPadding(false);
  return cipher;
}

/**
 * AES-CMAC under one key. Construct once per key and reuse: `mac(...parts)` for a whole message,
 * or `update()` ... `digest()` for one built up in pieces. Not re-entrant (one message at a time).
 */
export class Cmac {
  readonly keyLength: number;
  readonly #cbc: Cipher;
  readonly #k1 = new Uint8Array(AES_BLOCK);
  readonly #k2 = new Uint8Array(AES_BLOCK);
  readonly #chain = new Uint8Array(AES_BLOCK);
  readonly #buf = new Uint8Array(SCRATCH);
  readonly #views: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SCRATCH / AES_BLOCK + 1).fill(undefined);
  #len = 0;
  #fresh = true;

  /** `key`: 16, 24 or 32 bytes (AES-128/192/256). Throws UsageError otherwise. */
  constructor(key: Uint8Array) {
    this.#cbc = aesCipher(key, 'cbc');
    this.keyLength = key.length;
    // RFC 4493 §2.3: L = AES-K(0^128), K1 = dbl(L), K2 = dbl(K1). The fresh cipher has IV 0.
    const l = this.#cbc.update(new Uint8Array(AES_BLOCK));
    this.#chain.set(l);
    this.#k1.set(l);
    dbl(this.#k1);
    this.#k2.set(this.#k1);
    dbl(this.#k2);
    l.fill(0);
  }

  /** CMAC of the concatenation of `parts`. Returns a new 16-byte tag. */
  mac(...parts: Uint8Array[]): Uint8Array {
    this.reset();
    for (const part of parts) this.update(part);
    return this.digest();
  }

  /** Appends message bytes. */
  update(data: Uint8Array): this {
    const buf = this.#buf;
    let off = 0;
    while (off < data.length) {
      // More data follows, so nothing in a full buffer can be the final block.
      if (this.#len === SCRATCH) this.#feed(SCRATCH);
      const n = Math.min(data.length - off, SCRATCH - this.#len);
      buf.set(n === data.length ? data : data.subarray(off, off + n), this.#len);
      this.#len += n;
      off += n;
    }
    return this;
  }

  /** Finishes the message and returns its 16-byte tag; the instance is then ready for the next message. */
  digest(): Uint8Array {
    this.#finish();
    return this.#chain.slice();
  }

  /** Like `digest()`, but writes the tag to `out[offset..offset+16)` and allocates nothing. */
  digestInto(out: Uint8Array, offset = 0): void {
    if (offset < 0 || offset + CMAC_TAG_LENGTH > out.length) {
      throw new UsageError('CRYPTO_OUT_OF_RANGE', `no room for a ${CMAC_TAG_LENGTH}-byte tag at offset ${offset} of ${out.length} bytes`);
    }
    this.#finish();
    const chain = this.#chain;
    for (let i = 0; i < AES_BLOCK; i++) out[offset + i] = chain[i]!;
  }

  /** Ends the message; the tag is then the chaining value. */
  #finish(): void {
    const buf = this.#buf;
    let len = this.#len;
    let subkey = this.#k1;
    if (len === 0 || len % AES_BLOCK !== 0) {
      // RFC 4493 §2.4 step 4: incomplete (or empty) last block: pad with 10^i and use K2.
      buf[len] = 0x80;
      const end = len + AES_BLOCK - (len % AES_BLOCK);
      buf.fill(0, len + 1, end);
      len = end;
      subkey = this.#k2;
    }
    const last = len - AES_BLOCK;
    for (let i = 0; i < AES_BLOCK; i++) buf[last + i] = buf[last + i]! ^ subkey[i]!;
    this.#feed(len);
    this.#fresh = true;
  }

  /** Drops a partly built message. */
  reset(): this {
    this.#len = 0;
    this.#fresh = true;
    return this;
  }

  /** Runs the first `len` scratch bytes through the CBC engine and empties the scratch buffer. */
  #feed(len: number): void {
    const buf = this.#buf;
    const chain = this.#chain;
    if (this.#fresh) {
      // Cancel the previous message's chaining value: CBC computes E(first ^ chain ^ chain).
      for (let i = 0; i < AES_BLOCK; i++) buf[i] = buf[i]! ^ chain[i]!;
      this.#fresh = false;
    }
    const out = this.#cbc.update(this.#view(len));
    for (let i = 0, j = len - AES_BLOCK; i < AES_BLOCK; i++, j++) chain[i] = out[j]!;
    this.#len = 0;
  }

  /** `#buf[0..len)` as a cached view: a fresh `subarray()` per call is measurable on the hot path. */
  #view(len: number): Uint8Array {
    const k = len / AES_BLOCK;
    let v = this.#views[k];
    if (v === undefined) {
      v = this.#buf.subarray(0, len);
      this.#views[k] = v;
    }
    return v;
  }
}

/** One-shot AES-CMAC of `parts` under `key` (sets up the key each call: keep a `Cmac` on hot paths). */
export function aesCmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return new Cmac(key).mac(...parts);
}
