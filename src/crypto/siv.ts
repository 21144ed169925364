/**
 * AES-SIV-CMAC (RFC 5297): deterministic and nonce-based authenticated encryption.
 *
 * Theory of operation: the key is split in halves (§2.6): K1 keys S2V, a chain of AES-CMACs over
 * the associated data strings and the plaintext (§2.4), whose output V is both the tag and, with
 * two bits cleared, the initial counter for AES-CTR under K2 (§2.5). CMAC(K1, <zero>) depends on
 * the key only and is computed once, CMAC(K1, <empty string>) (an empty AD, as NTS cookies use) on
 * first use. For messages up to `SMALL_CTR` bytes the keystream comes from one call on a long-lived
 * AES-ECB cipher fed with the counter blocks, which avoids a key setup per message; longer ones use
 * a native AES-CTR cipher. The ECB cipher and its counter buffer are only built when a first
 * non-empty message needs them: opening an NTS request (empty plaintext) never does, and a cipher
 * is the most expensive part of constructing an instance.
 *
 * Opening never throws on peer input: a short input or a wrong tag gives `null`. The tag is
 * compared in constant time and the plaintext is only returned after it matched.
 */
import { createCipheriv, timingSafeEqual } from 'node:crypto';
import type { Cipher } from 'node:crypto';
import { UsageError } from '../proto/errors.js';
import { AES_BLOCK, Cmac, aesCipher, dbl } from './cmac.js';

/** Length of the synthetic IV / tag that precedes the ciphertext (RFC 5297 §2.6). */
export const SIV_TAG_LENGTH = 16;
/** At most 126 associated data strings, so that S2V sees at most 127 (RFC 5297 §2.6, §7). */
export const SIV_MAX_ASSOCIATED_DATA = 126;
/** Key lengths in bytes: AES-128, -192 and -256 for each half (RFC 5297 §2.6, §6.1-6.3). */
export const SIV_KEY_LENGTHS: readonly number[] = [32, 48, 64];

/** Above this many bytes a native CTR cipher (with its per-message key setup) beats ECB keystream plus a JavaScript XOR (measured on Node 20). */
const SMALL_CTR = 192;

const CTR_BY_HALF_KEY: Readonly<Record<number, string>> = { 16: 'aes-128-ctr', 24: 'aes-192-ctr', 32: 'aes-256-ctr' };

const EMPTY: readonly Uint8Array[] = [];
const EMPTY_BYTES = new Uint8Array(0);
const EMPTY_VIEWS: (Uint8Array | undefined)[] = [];

/** Adds 1 to a 128-bit big-endian counter in place, modulo 2^128 (RFC 5297 §2.5, "Q+i"). */
export function incrementCounter(block: Uint8Array, offset = 0): void {
  for (let i = offset + AES_BLOCK - 1; i >= offset; i--) {
    const v = (block[i]! + 1) & 0xff;
    block[i] = v;
    if (v !== 0) return;
  }
}

export class AesSiv {
  readonly keyLength: number;
  readonly #s2vMac: Cmac;
  /** AES-ECB under K2 for short keystreams; built on first use. */
  #ecb: Cipher | null = null;
  readonly #k2: Uint8Array;
  readonly #ctrName: string;
  /** CMAC(K1, <zero>), the start of every S2V chain (RFC 5297 §2.4). */
  readonly #d0 = new Uint8Array(AES_BLOCK);
  /** CMAC(K1, <empty string>), computed on the first empty S2V string. */
  #emptyMac: Uint8Array | null = null;
  readonly #d = new Uint8Array(AES_BLOCK);
  readonly #t = new Uint8Array(AES_BLOCK);
  readonly #q = new Uint8Array(AES_BLOCK);
  readonly #v = new Uint8Array(AES_BLOCK);
  readonly #tag = new Uint8Array(AES_BLOCK);
  /** Counter blocks fed to `#ecb`; built with it. */
  #counters: Uint8Array | null = null;
  #counterViews: (Uint8Array | undefined)[] = EMPTY_VIEWS;

  /** `key`: 32, 48 or 64 bytes (K1 ‖ K2, RFC 5297 §2.6). Throws UsageError otherwise. */
  constructor(key: Uint8Array) {
    if (!SIV_KEY_LENGTHS.includes(key.length)) {
      throw new UsageError('CRYPTO_BAD_KEY_LENGTH', `AES-SIV key must be 32, 48 or 64 bytes, got ${key.length}`);
    }
    const half = key.length / 2;
    this.keyLength = key.length;
    this.#s2vMac = new Cmac(key.subarray(0, half));
    this.#k2 = new Uint8Array(half);
    this.#k2.set(key.subarray(half));
    this.#ctrName = CTR_BY_HALF_KEY[half] ?? '';
    this.#s2vMac.reset().update(this.#d0).digestInto(this.#d0); // #d0 starts as the zero block
  }

  /** Deterministic SIV (RFC 5297 §2.6): returns V ‖ C, 16 bytes longer than `plaintext`. */
  seal(plaintext: Uint8Array, associatedData: readonly Uint8Array[] = EMPTY): Uint8Array {
    checkAdCount(associatedData.length);
    return this.#seal(plaintext, associatedData, null);
  }

  /** Opens V ‖ C (RFC 5297 §2.7). Returns the plaintext, or null when the input is short or not authentic. */
  open(sealed: Uint8Array, associatedData: readonly Uint8Array[] = EMPTY): Uint8Array | null {
    checkAdCount(associatedData.length);
    return this.#open(sealed, associatedData, null);
  }

  /**
   * Nonce-based SIV (RFC 5297 §3): the nonce is the last S2V string before the plaintext, after
   * the associated data. With one AD string this is the AEAD_AES_SIV_CMAC_* interface of §6
   * used by NTS (RFC 8915 §5.6).
   */
  sealWithNonce(nonce: Uint8Array, plaintext: Uint8Array, associatedData: readonly Uint8Array[] = EMPTY): Uint8Array {
    checkAdCount(associatedData.length + 1);
    return this.#seal(plaintext, associatedData, nonce);
  }

  /** Counterpart of `sealWithNonce`; null when the input is short or not authentic. */
  openWithNonce(nonce: Uint8Array, sealed: Uint8Array, associatedData: readonly Uint8Array[] = EMPTY): Uint8Array | null {
    checkAdCount(associatedData.length + 1);
    return this.#open(sealed, associatedData, nonce);
  }

  /** S2V(K1, AD1, ..., ADn, P) (RFC 5297 §2.4) with at least the plaintext as input. Returns a new 16-byte V. */
  s2v(associatedData: readonly Uint8Array[], plaintext: Uint8Array): Uint8Array {
    checkAdCount(associatedData.length);
    const v = new Uint8Array(AES_BLOCK);
    this.#s2v(associatedData, null, plaintext, v, 0);
    return v;
  }

  #seal(plaintext: Uint8Array, ad: readonly Uint8Array[], nonce: Uint8Array | null): Uint8Array {
    const out = allocOutput(SIV_TAG_LENGTH + plaintext.length);
    this.#s2v(ad, nonce, plaintext, out, 0);
    this.#ctr(out, 0, plaintext, 0, plaintext.length, out, SIV_TAG_LENGTH);
    return out;
  }

  #open(sealed: Uint8Array, ad: readonly Uint8Array[], nonce: Uint8Array | null): Uint8Array | null {
    if (sealed.length < SIV_TAG_LENGTH) return null;
    const tag = this.#tag;
    for (let i = 0; i < AES_BLOCK; i++) tag[i] = sealed[i]!;
    const plaintext = allocOutput(sealed.length - SIV_TAG_LENGTH);
    this.#ctr(tag, 0, sealed, SIV_TAG_LENGTH, plaintext.length, plaintext, 0);
    const v = this.#v;
    this.#s2v(ad, nonce, plaintext, v, 0);
    if (!timingSafeEqual(v, tag)) {
      plaintext.fill(0);
      return null;
    }
    return plaintext;
  }

  /** Writes V = S2V(K1, ad..., nonce?, p) to `out[off..off+16)`. */
  #s2v(ad: readonly Uint8Array[], nonce: Uint8Array | null, p: Uint8Array, out: Uint8Array, off: number): void {
    const mac = this.#s2vMac;
    const d = this.#d;
    const t = this.#t;
    d.set(this.#d0);
    // D = dbl(D) xor CMAC(K, Si) for each string before the last (RFC 5297 §2.4).
    for (let i = 0; i < ad.length; i++) this.#fold(ad[i] ?? EMPTY_BYTES);
    if (nonce !== null) this.#fold(nonce);
    mac.reset();
    if (p.length >= AES_BLOCK) {
      // T = Sn xorend D
      const head = p.length - AES_BLOCK;
      if (head > 0) mac.update(p.subarray(0, head));
      for (let i = 0; i < AES_BLOCK; i++) t[i] = p[head + i]! ^ d[i]!;
    } else {
      // T = dbl(D) xor pad(Sn)
      dbl(d);
      for (let i = 0; i < AES_BLOCK; i++) t[i] = d[i]!;
      for (let i = 0; i < p.length; i++) t[i] = t[i]! ^ p[i]!;
      t[p.length] = t[p.length]! ^ 0x80;
    }
    mac.update(t);
    mac.digestInto(out, off);
  }

  #fold(s: Uint8Array): void {
    const d = this.#d;
    const t = this.#t;
    dbl(d);
    if (s.length === 0) {
      let e = this.#emptyMac;
      if (e === null) {
        e = new Uint8Array(AES_BLOCK);
        this.#s2vMac.reset().digestInto(e);
        this.#emptyMac = e;
      }
      for (let i = 0; i < AES_BLOCK; i++) d[i] = d[i]! ^ e[i]!;
      return;
    }
    this.#s2vMac.reset().update(s).digestInto(t);
    for (let i = 0; i < AES_BLOCK; i++) d[i] = d[i]! ^ t[i]!;
  }

  /**
   * AES-CTR under K2 from the counter Q = V with bits 63 and 31 cleared (RFC 5297 §2.6): XORs
   * `input[inOff..inOff+len)` with the keystream into `out[outOff..)`. V is read from
   * `vBuf[vOff..vOff+16)` before any output is written.
   */
  #ctr(vBuf: Uint8Array, vOff: number, input: Uint8Array, inOff: number, len: number, out: Uint8Array, outOff: number): void {
    if (len === 0) return;
    const q = this.#q;
    for (let i = 0; i < AES_BLOCK; i++) q[i] = vBuf[vOff + i]!;
    q[8] = q[8]! & 0x7f;
    q[12] = q[12]! & 0x7f;
    if (len > SMALL_CTR) {
      const ctr = createCipheriv(this.#ctrName, this.#k2, q);
      out.set(ctr.update(input.subarray(inOff, inOff + len)), outOff);
      return;
    }
    let ecb = this.#ecb;
    let counters = this.#counters;
    if (ecb === null || counters === null) {
      ecb = aesCipher(this.#k2, 'ecb');
      counters = new Uint8Array(SMALL_CTR);
      this.#ecb = ecb;
      this.#counters = counters;
      this.#counterViews = new Array<Uint8Array | undefined>(SMALL_CTR / AES_BLOCK + 1).fill(undefined);
    }
    const blocks = (len + AES_BLOCK - 1) >>> 4;
    for (let b = 0; b < blocks; b++) {
      const base = b * AES_BLOCK;
      for (let i = 0; i < AES_BLOCK; i++) counters[base + i] = q[i]!;
      incrementCounter(q);
    }
    let view = this.#counterViews[blocks];
    if (view === undefined) {
      view = counters.subarray(0, blocks * AES_BLOCK);
      this.#counterViews[blocks] = view;
    }
    const ks = ecb.update(view);
    for (let i = 0; i < len; i++) out[outOff + i] = input[inOff + i]! ^ ks[i]!;
  }
}

/**
 * Outputs are carved from a private slab: `new Uint8Array(n)` above 64 bytes is an off-heap zeroed
 * allocation costing several hundred ns on Node 20, more than the rest of a small seal's
 * JavaScript. The slab is ours rather than Node's shared Buffer pool so that plaintexts (often
 * keys) never sit in an ArrayBuffer that unrelated Buffers also expose via `.buffer`. Callers
 * overwrite every byte they are given.
 */
const SLAB_SIZE = 16384;
const SLAB_MAX_PIECE = 1024;
let slab = new ArrayBuffer(SLAB_SIZE);
let slabUsed = 0;

function allocOutput(n: number): Uint8Array {
  if (n > SLAB_MAX_PIECE) return new Uint8Array(n);
  if (slabUsed + n > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, n);
  slabUsed += (n + 7) & ~7;
  return out;
}

function checkAdCount(n: number): void {
  if (n > SIV_MAX_ASSOCIATED_DATA) {
    throw new UsageError('CRYPTO_TOO_MANY_AD', `AES-SIV takes at most ${SIV_MAX_ASSOCIATED_DATA} associated data strings (nonce included), got ${n}`);
  }
}
