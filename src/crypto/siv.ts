/**
 * AES-SIV-CMAC (RFC 5297): deterministic and nonce-based authenticated encryption.
 *
 * Theory of operation: the key is split in halves (§2.6): K1 keys S2V, a chain of AES-CMACs over
 * the associated data strings and the plaintext (§2.4), whose output V is both the tag and, with
 * two bits cleared, the initial counter for AES-CTR under K2 (§2.5). Everything runs on the AES
 * engine of aes.ts, in its scratch memory. Work that depends on the key only is done once, on first
 * use rather than in the constructor (an NTS request builds instances for single use, and opening a
 * request, whose plaintext is empty, never needs K2): the CMAC subkeys, CMAC(K1, <zero>) that starts
 * every S2V chain, and CMAC(K1, <empty string>) (an empty AD, as NTS cookies use).
 *
 * Opening never throws on peer input: a short input or a wrong tag gives `null`. The tag is
 * compared in constant time and the plaintext is only returned after it matched.
 */
import { timingSafeEqual } from 'node:crypto';
import { UsageError } from '../proto/errors.js';
import { AES_BLOCK, AesKey, COUNTER, DATA, DATA_SIZE, SLOT_CTR, aesEngine } from './aes.js';
import { cmacInto, cmacSubkeysAndZero, dbl } from './cmac.js';
import { Slab } from './slab.js';

/** Length of the synthetic IV / tag that precedes the ciphertext (RFC 5297 §2.6). */
export const SIV_TAG_LENGTH = 16;
/** At most 126 associated data strings, so that S2V sees at most 127 (RFC 5297 §2.6, §7). */
export const SIV_MAX_ASSOCIATED_DATA = 126;
/** Key lengths in bytes: AES-128, -192 and -256 for each half (RFC 5297 §2.6, §6.1-6.3). */
export const SIV_KEY_LENGTHS: readonly number[] = [32, 48, 64];

const EMPTY: readonly Uint8Array[] = [];
const EMPTY_BYTES = new Uint8Array(0);

// Per-operation temporaries, shared: operations run one at a time and never call each other.
const D = new Uint8Array(AES_BLOCK);
const T = new Uint8Array(AES_BLOCK);
const V = new Uint8Array(AES_BLOCK);
const TAG = new Uint8Array(AES_BLOCK);

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
  readonly #macKey: AesKey;
  readonly #ctrKey: AesKey;
  /**
   * Key-only values, computed on first use: CMAC subkeys K1 ‖ K2 of the S2V key at 0..32,
   * CMAC(K1, <zero>) at 32..48 (#ready), CMAC(K1, <empty string>) at 48..64 (#emptyReady).
   */
  readonly #state = new Uint8Array(4 * AES_BLOCK);
  #ready = false;
  #emptyReady = false;

  /** `key`: 32, 48 or 64 bytes (K1 ‖ K2, RFC 5297 §2.6). Throws UsageError otherwise. */
  constructor(key: Uint8Array) {
    if (!SIV_KEY_LENGTHS.includes(key.length)) {
      throw new UsageError('CRYPTO_BAD_KEY_LENGTH', `AES-SIV key must be 32, 48 or 64 bytes, got ${key.length}`);
    }
    const half = key.length / 2;
    this.keyLength = key.length;
    this.#macKey = new AesKey(key.subarray(0, half));
    this.#ctrKey = new AesKey(key.subarray(half));
  }

  /** Deterministic SIV (RFC 5297 §2.6): returns V ‖ C, 16 bytes longer than `plaintext`. */
  seal(plaintext: Uint8Array, associatedData: readonly Uint8Array[] = EMPTY): Uint8Array {
    checkAdCount(associatedData.length);
    const out = allocOutput(SIV_TAG_LENGTH + plaintext.length);
    this.#seal(plaintext, associatedData, null, out, 0);
    return out;
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
    const out = allocOutput(SIV_TAG_LENGTH + plaintext.length);
    this.#seal(plaintext, associatedData, nonce, out, 0);
    return out;
  }

  /**
   * As `sealWithNonce`, but writes V ‖ C to `out[offset..offset+16+plaintext.length)`, which may lie
   * inside the associated data's buffer (after the AD: the AD is read before anything is written).
   */
  sealWithNonceInto(nonce: Uint8Array, plaintext: Uint8Array, associatedData: readonly Uint8Array[], out: Uint8Array, offset: number): void {
    checkAdCount(associatedData.length + 1);
    if (!Number.isInteger(offset) || offset < 0 || offset + SIV_TAG_LENGTH + plaintext.length > out.length) {
      throw new UsageError('CRYPTO_OUT_OF_RANGE', `no room for ${SIV_TAG_LENGTH + plaintext.length} bytes at offset ${offset} of ${out.length}`);
    }
    this.#seal(plaintext, associatedData, nonce, out, offset);
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

  /** Writes V ‖ C to out[offset..). The plaintext is read in full (by S2V) before C is written. */
  #seal(plaintext: Uint8Array, ad: readonly Uint8Array[], nonce: Uint8Array | null, out: Uint8Array, offset: number): void {
    const v = V;
    this.#s2v(ad, nonce, plaintext, v, 0);
    this.#ctr(v, plaintext, out, offset + SIV_TAG_LENGTH);
    out.set(v, offset);
  }

  #open(sealed: Uint8Array, ad: readonly Uint8Array[], nonce: Uint8Array | null): Uint8Array | null {
    if (sealed.length < SIV_TAG_LENGTH) return null;
    const tag = TAG;
    for (let i = 0; i < AES_BLOCK; i++) tag[i] = sealed[i]!;
    const plaintext = allocOutput(sealed.length - SIV_TAG_LENGTH);
    this.#ctr(tag, sealed.length === SIV_TAG_LENGTH ? EMPTY_BYTES : sealed.subarray(SIV_TAG_LENGTH), plaintext, 0);
    const v = V;
    this.#s2v(ad, nonce, plaintext, v, 0);
    if (!timingSafeEqual(v, tag)) {
      plaintext.fill(0);
      return null;
    }
    return plaintext;
  }

  /** The key-only values, on first use. */
  #prepare(): void {
    if (this.#ready) return;
    const state = this.#state;
    cmacSubkeysAndZero(this.#macKey, state);
    this.#ready = true;
  }

  /** Writes V = S2V(K1, ad..., nonce?, p) to `out[off..off+16)`. */
  #s2v(ad: readonly Uint8Array[], nonce: Uint8Array | null, p: Uint8Array, out: Uint8Array, off: number): void {
    this.#prepare();
    const state = this.#state;
    const d = D;
    for (let i = 0; i < AES_BLOCK; i++) d[i] = state[2 * AES_BLOCK + i]!;
    // D = dbl(D) xor CMAC(K, Si) for each string before the last (RFC 5297 §2.4).
    for (let i = 0; i < ad.length; i++) this.#fold(ad[i] ?? EMPTY_BYTES);
    if (nonce !== null) this.#fold(nonce);
    if (p.length >= AES_BLOCK) {
      // T = Sn xorend D
      cmacInto(this.#macKey, state, p, d, out, off);
      return;
    }
    // T = dbl(D) xor pad(Sn)
    dbl(d);
    const t = T;
    for (let i = 0; i < AES_BLOCK; i++) t[i] = d[i]!;
    for (let i = 0; i < p.length; i++) t[i] = t[i]! ^ p[i]!;
    t[p.length] = t[p.length]! ^ 0x80;
    cmacInto(this.#macKey, state, t, null, out, off);
  }

  /** D = dbl(D) xor CMAC(K1, s). */
  #fold(s: Uint8Array): void {
    const d = D;
    const state = this.#state;
    dbl(d);
    let mac = T;
    let at = 0;
    if (s.length > 0) {
      cmacInto(this.#macKey, state, s, null, mac, 0);
    } else {
      if (!this.#emptyReady) {
        cmacInto(this.#macKey, state, EMPTY_BYTES, null, state, 3 * AES_BLOCK);
        this.#emptyReady = true;
      }
      mac = state;
      at = 3 * AES_BLOCK;
    }
    for (let i = 0; i < AES_BLOCK; i++) d[i] = d[i]! ^ mac[at + i]!;
  }

  /**
   * AES-CTR under K2 from the counter Q = V with bits 63 and 31 cleared (RFC 5297 §2.6): writes
   * `input` XORed with the keystream to `out[outOff..)`. Clearing bit 31 lets the engine count in the
   * last 32 bits alone: no message here has 2^31 blocks.
   */
  #ctr(v: Uint8Array, input: Uint8Array, out: Uint8Array, outOff: number): void {
    const len = input.length;
    if (len === 0) return;
    const engine = aesEngine();
    const mem = engine.mem;
    mem.set(v, COUNTER);
    mem[COUNTER + 8] = mem[COUNTER + 8]! & 0x7f;
    mem[COUNTER + 12] = mem[COUNTER + 12]! & 0x7f;
    for (let s = 0; s < len; s += DATA_SIZE) {
      const n = Math.min(len - s, DATA_SIZE);
      mem.set(n === len ? input : input.subarray(s, s + n), DATA);
      engine.ctr(this.#ctrKey, SLOT_CTR, COUNTER, DATA, (n + AES_BLOCK - 1) >>> 4);
      out.set(mem.subarray(DATA, DATA + n), outOff + s);
    }
  }
}

/**
 * Outputs come from a private slab (see slab.ts): a fresh `new Uint8Array(n)` above 64 bytes costs
 * about a microsecond on Node 20. Private, rather than Node's shared Buffer pool, so that plaintexts
 * (often keys) never sit in an ArrayBuffer that unrelated Buffers also expose via `.buffer`.
 */
const outputs = new Slab();

function allocOutput(n: number): Uint8Array {
  return outputs.alloc(n);
}

function checkAdCount(n: number): void {
  if (n > SIV_MAX_ASSOCIATED_DATA) {
    throw new UsageError('CRYPTO_TOO_MANY_AD', `AES-SIV takes at most ${SIV_MAX_ASSOCIATED_DATA} associated data strings (nonce included), got ${n}`);
  }
}
