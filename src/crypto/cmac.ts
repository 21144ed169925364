/**
 * AES-CMAC (RFC 4493; NIST SP 800-38B for AES-192/256), the PRF under S2V (RFC 5297 §2.4) and the
 * NTP MAC of RFC 8573.
 *
 * Theory of operation: CMAC is CBC-MAC with zero IV whose last block is XORed with the subkey K1
 * (complete block) or padded and XORed with K2 (RFC 4493 §2.4). Messages are copied into the AES
 * engine's scratch memory (aes.ts) and MACed there, a whole message of up to DATA_SIZE bytes in one
 * call; the chaining value of a message built up with `update()` lives in the instance between calls,
 * with the last 1..16 bytes held back until `digest()` because only then is it known which block is last.
 */
import { UsageError } from '../proto/errors.js';
import { AES_BLOCK, AesKey, CHAIN, DATA, DATA_SIZE, SLOT_MAC, SUBKEYS, TAG, XOREND, ZERO, aesEngine } from './aes.js';

export { AES_BLOCK } from './aes.js';
/** CMAC output length in bytes (RFC 4493 §2.1). */
export const CMAC_TAG_LENGTH = 16;

export { dbl } from './aes.js';

/** The first `length` bytes of AesEngine.cmacPrepare's K1 ‖ K2 ‖ CMAC(0^128), to `out[0..length)`. */
function prepared(key: AesKey, out: Uint8Array, length: number): void {
  const engine = aesEngine();
  const mem = engine.mem;
  engine.cmacPrepare(key, SLOT_MAC, DATA);
  for (let i = 0; i < length; i++) out[i] = mem[DATA + i]!;
  mem.fill(0, DATA, DATA + 3 * AES_BLOCK);
}

/** RFC 4493 §2.3: L = AES-K(0^128), K1 = dbl(L), K2 = dbl(K1), written as K1 ‖ K2 to `subkeys[0..32)`. */
export function cmacSubkeys(key: AesKey, subkeys: Uint8Array): void {
  prepared(key, subkeys, 2 * AES_BLOCK);
}

/** K1 ‖ K2 and then CMAC(key, 0^128) (the first value of S2V, RFC 5297 §2.4), to `out[0..48)`. */
export function cmacSubkeysAndZero(key: AesKey, out: Uint8Array): void {
  prepared(key, out, 3 * AES_BLOCK);
}

/**
 * Writes CMAC(key, msg) to `out[offset..offset+16)`, given the key's subkeys (K1 ‖ K2). With `xorEnd`,
 * the MAC is of msg with xorEnd XORed into its last 16 bytes (S2V's "xorend", RFC 5297 §2.4; msg is
 * then at least 16 bytes). msg itself is never modified.
 */
export function cmacInto(key: AesKey, subkeys: Uint8Array, msg: Uint8Array, xorEnd: Uint8Array | null, out: Uint8Array, offset: number): void {
  const engine = aesEngine();
  const mem = engine.mem;
  const len = msg.length;
  let start = 0;
  let from = ZERO;
  // A message longer than the scratch area goes in pieces; the last piece keeps at least two blocks, so
  // that the xorend region and the final block both lie in it, and room for the padding.
  while (len - start > DATA_SIZE - AES_BLOCK) {
    const n = DATA_SIZE - 2 * AES_BLOCK;
    mem.set(msg.subarray(start, start + n), DATA);
    engine.cbcMac(key, SLOT_MAC, from, CHAIN, DATA, n / AES_BLOCK);
    from = CHAIN;
    start += n;
  }
  mem.set(start === 0 ? msg : msg.subarray(start), DATA);
  mem.set(subkeys, SUBKEYS);
  if (xorEnd !== null) mem.set(xorEnd, XOREND);
  engine.cmac(key, SLOT_MAC, SUBKEYS, from, DATA, len - start, xorEnd === null ? 0 : XOREND, TAG);
  out.set(engine.tag, offset);
}

/**
 * AES-CMAC under one key. Construct once per key and reuse: `mac(...parts)` for a whole message,
 * or `update()` ... `digest()` for one built up in pieces. Not re-entrant (one message at a time).
 */
export class Cmac {
  readonly keyLength: number;
  readonly #key: AesKey;
  /** K1 ‖ K2. */
  readonly #subkeys = new Uint8Array(2 * AES_BLOCK);
  /** Chaining value after the blocks already MACed. */
  readonly #chain = new Uint8Array(AES_BLOCK);
  /** The last 0..16 bytes of the message so far: not MACed until it is known whether more follow. */
  readonly #pending = new Uint8Array(AES_BLOCK);
  #pendingLength = 0;

  /** `key`: 16, 24 or 32 bytes (AES-128/192/256). Throws UsageError otherwise. */
  constructor(key: Uint8Array) {
    this.#key = new AesKey(key);
    this.keyLength = key.length;
    cmacSubkeys(this.#key, this.#subkeys);
  }

  /** CMAC of the concatenation of `parts`. Returns a new 16-byte tag. */
  mac(...parts: Uint8Array[]): Uint8Array {
    const tag = new Uint8Array(CMAC_TAG_LENGTH);
    this.reset();
    if (parts.length === 1) {
      cmacInto(this.#key, this.#subkeys, parts[0]!, null, tag, 0);
      return tag;
    }
    for (const part of parts) this.update(part);
    this.digestInto(tag, 0);
    return tag;
  }

  /** Appends message bytes. */
  update(data: Uint8Array): this {
    const held = this.#pendingLength;
    const total = held + data.length;
    if (total <= AES_BLOCK) {
      this.#pending.set(data, held);
      this.#pendingLength = total;
      return this;
    }
    const engine = aesEngine();
    const mem = engine.mem;
    mem.set(this.#chain, CHAIN);
    // Stream = held bytes ‖ data. Bytes [0, feed) are MACed now; the last 1..16 are held back.
    const feed = ((total - 1) >>> 4) << 4;
    for (let s = 0; s < feed; ) {
      const n = Math.min(feed - s, DATA_SIZE);
      let at = DATA;
      if (s < held) {
        mem.set(this.#pending.subarray(s, held), at);
        at += held - s;
      }
      mem.set(data.subarray(Math.max(0, s - held), s + n - held), at);
      engine.cbcMac(this.#key, SLOT_MAC, CHAIN, CHAIN, DATA, n >>> 4);
      s += n;
    }
    this.#chain.set(mem.subarray(CHAIN, CHAIN + AES_BLOCK));
    // feed >= 16 >= held, so what is held back now comes from `data` alone.
    this.#pending.set(data.subarray(feed - held));
    this.#pendingLength = total - feed;
    return this;
  }

  /** Finishes the message and returns its 16-byte tag; the instance is then ready for the next message. */
  digest(): Uint8Array {
    const tag = new Uint8Array(CMAC_TAG_LENGTH);
    this.digestInto(tag, 0);
    return tag;
  }

  /** Like `digest()`, but writes the tag to `out[offset..offset+16)` and allocates nothing. */
  digestInto(out: Uint8Array, offset = 0): void {
    if (offset < 0 || offset + CMAC_TAG_LENGTH > out.length) {
      throw new UsageError('CRYPTO_OUT_OF_RANGE', `no room for a ${CMAC_TAG_LENGTH}-byte tag at offset ${offset} of ${out.length} bytes`);
    }
    const engine = aesEngine();
    const mem = engine.mem;
    mem.set(this.#chain, CHAIN);
    mem.set(this.#pending.subarray(0, this.#pendingLength), DATA);
    mem.set(this.#subkeys, SUBKEYS);
    engine.cmac(this.#key, SLOT_MAC, SUBKEYS, CHAIN, DATA, this.#pendingLength, 0, TAG);
    out.set(engine.tag, offset);
    this.reset();
  }

  /** Drops a partly built message. */
  reset(): this {
    this.#chain.fill(0);
    this.#pendingLength = 0;
    return this;
  }
}

/** One-shot AES-CMAC of `parts` under `key` (sets up the key each call: keep a `Cmac` on hot paths). */
export function aesCmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return new Cmac(key).mac(...parts);
}
