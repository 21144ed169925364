/**
 * The AES block cipher (FIPS 197), encryption direction only (CMAC and CTR never decrypt), as the
 * engine under AES-CMAC and AES-SIV.
 *
 * Why not node:crypto alone: every `Cipher.update()` allocates its output off the V8 heap, and so does
 * every key setup; on Node 20 each costs about a microsecond, while an NTS request needs some twenty
 * of them for a few dozen AES blocks. So the engine is a small WebAssembly module, built below at load
 * time, that works in place on its own memory: callers copy inputs in, call, and read results out,
 * with no allocation per call. node:crypto remains the fallback where WebAssembly SIMD is unavailable
 * (e.g. `node --jitless`) and serves as the reference in the tests. Where the native module is built and
 * the CPU has AES instructions, the daemon hands this file its operations (`useNativeAes`, see
 * native/aes_engine.c): the same memory layout and calls, a few ns a block instead of ~100.
 *
 * Constant time: SubBytes works on all 16 state bytes at once, with 16-entry table lookups done by
 * `i8x16.swizzle` (a register shuffle: PSHUFB / TBL) rather than memory loads. A 256-entry S-box
 * would take 16 such lookups; instead the inverse in GF(2^8) is computed in the isomorphic field
 * GF(16)[t]/(t^2 + t + λ), where every step is a function of one nibble (13 lookups), see
 * `compositeTables`. No memory address, branch or loop count depends on key or data; the key schedule
 * uses the same SubBytes code.
 *
 * Memory map of the module (one 64 KiB page, never grown, so `mem` stays valid):
 *   0x0000 SubBytes tables: 9 x 16 bytes      0x0100 constants (splat 0x0f, splat 0x1b)
 *   0x0200 key bytes for expansion (32)        0x0300 arguments of the native engine (8 x Int32)
 *   0x0400 round-key slots, 256 bytes each
 *   0x0800 ZERO (16, always zero)  CHAIN, COUNTER, SUBKEYS (32), XOREND, TAG   0x1000 DATA (message scratch)
 * A key is "loaded" into a slot (round keys written there) before use; a slot remembers its key so a
 * key used twice in a row is not loaded twice.
 */
import { createCipheriv, type Cipher } from 'node:crypto';
import { UsageError } from '../proto/errors.js';

export const AES_BLOCK = 16;

/**
 * `block <<= 1` over 128 bits, then XOR R_128 = 0x87 into the last byte when the top bit fell off
 * (RFC 4493 §2.3; also `dbl()` of RFC 5297 §2.1), on `block[offset..offset+16)`. Branch-free on the secret bit.
 */
export function dbl(block: Uint8Array, offset = 0): void {
  const carry = block[offset]! >>> 7;
  const end = offset + AES_BLOCK - 1;
  for (let i = offset; i < end; i++) block[i] = ((block[i]! << 1) | (block[i + 1]! >>> 7)) & 0xff;
  block[end] = ((block[end]! << 1) & 0xff) ^ (0x87 & -carry);
}

/** Addresses in `AesEngine.mem`. ZERO holds 16 zero bytes and must never be written. */
export const ZERO = 0x0800;
export const CHAIN = 0x0810;
export const COUNTER = 0x0820;
/** CMAC subkeys K1 ‖ K2 for `cmac`. */
export const SUBKEYS = 0x0830;
export const XOREND = 0x0850;
export const TAG = 0x0860;
export const DATA = 0x1000;
/** Bytes available at DATA; a multiple of the block size. */
export const DATA_SIZE = 0x10000 - DATA;

const TABLES = 0x0000;
const C0F = 0x0100;
const C1B = 0x0110;
const KEY_IN = 0x0200;
/** The native engine reads its arguments here (native/aes_engine.c, ARGS). */
const NATIVE_ARGS = 0x0300;
const SLOTS = 0x0400;
const SLOT_SIZE = 0x100;
/** Slot roles: the CMAC/S2V key and the CTR key of an AES-SIV key are used alternately. */
export const SLOT_MAC = 0;
export const SLOT_CTR = 1;
const SLOT_COUNT = 2;

// --- SubBytes (FIPS 197 §5.1.1) in a composite field ---
//
// S(x) = A(x^-1) + 0x63, with the inverse in GF(2^8) = GF(2)[X]/(X^8 + X^4 + X^3 + X + 1). An
// isomorphism φ (a GF(2)-linear map) takes GF(2^8) to GF(16)[t]/(t^2 + t + λ), GF(16) = GF(2)[y]/(y^4 + y + 1),
// where y = φ(x) = h·t + l (h the high nibble). There, with the conjugate h·t + (h + l) and the norm
// N = λh^2 + hl + l^2 in GF(16), x^-1 = (h·N^-1)·t + ((h + l)·N^-1). Products in GF(16) go through
// logarithms: ab = exp((log a + log b) mod 15). A logarithm of 0 is stored as 0x40, so that any sum
// involving it stays at 0x31 or above after the mod-15 step and `exp` (a swizzle) returns 0 for it,
// which is also the right product. The linear maps in and out are split by nibble; the output map
// folds in φ^-1, A and 0x63.

/** GF(16) product, modulo y^4 + y + 1. */
function gf16Mul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 4; i++) {
    if (b & 1) p ^= a;
    a <<= 1;
    if (a & 0x10) a ^= 0x13;
    b >>= 1;
  }
  return p;
}

/** The affine map of the S-box without its constant (FIPS 197 §5.1.1). */
function affine(b: number): number {
  let s = b;
  for (let i = 1; i <= 4; i++) s ^= ((b << i) | (b >> (8 - i))) & 0xff;
  return s;
}

/** Table order in memory and in the generated code. */
const enum T {
  InLow, // φ(low nibble)
  InHigh, // φ(high nibble << 4)
  Log, // log_y, 0x40 for 0
  Exp, // y^i for i in 0..14
  LambdaSquare, // λh^2
  Square, // l^2
  NegLog, // log of the inverse, 0x40 for 0
  OutHigh, // A(φ^-1(h' << 4))
  OutLow, // A(φ^-1(l')) + 0x63
}
const TABLE_COUNT = 9;

function compositeTables(): Uint8Array {
  // λ: t^2 + t + λ has no root in GF(16), so the quadratic extension is a field.
  let lambda = 1;
  while (Array.from({ length: 16 }, (_, r) => gf16Mul(r, r) ^ r).includes(lambda)) lambda++;
  const mul = (a: number, b: number): number => {
    const hh = gf16Mul(a >> 4, b >> 4);
    const h = hh ^ gf16Mul(a >> 4, b & 15) ^ gf16Mul(a & 15, b >> 4);
    return (h << 4) | (gf16Mul(hh, lambda) ^ gf16Mul(a & 15, b & 15));
  };
  const power = (b: number, e: number): number => {
    let r = 1;
    for (let i = 0; i < e; i++) r = mul(r, b);
    return r;
  };
  // φ maps X to a root β of the AES polynomial.
  let beta = 2;
  while ((power(beta, 8) ^ power(beta, 4) ^ power(beta, 3) ^ beta ^ 1) !== 0) beta++;
  const phi = new Uint8Array(256);
  const phiInverse = new Uint8Array(256);
  for (let x = 0; x < 256; x++) {
    let r = 0;
    for (let i = 0; i < 8; i++) if ((x >> i) & 1) r ^= power(beta, i);
    phi[x] = r;
    phiInverse[r] = x;
  }
  const tables = new Uint8Array(16 * TABLE_COUNT);
  const put = (t: T, f: (v: number) => number) => {
    for (let v = 0; v < 16; v++) tables[16 * t + v] = f(v);
  };
  const log = new Uint8Array(16).fill(0x40);
  const exp = new Uint8Array(16);
  for (let i = 0, g = 1; i < 15; i++, g = gf16Mul(g, 2)) {
    exp[i] = g;
    log[g] = i;
  }
  put(T.InLow, (v) => phi[v]!);
  put(T.InHigh, (v) => phi[v << 4]!);
  put(T.Log, (v) => log[v]!);
  put(T.Exp, (v) => exp[v]!);
  put(T.LambdaSquare, (v) => gf16Mul(lambda, gf16Mul(v, v)));
  put(T.Square, (v) => gf16Mul(v, v));
  put(T.NegLog, (v) => (v === 0 ? 0x40 : (15 - log[v]!) % 15));
  put(T.OutHigh, (v) => affine(phiInverse[v << 4]!));
  put(T.OutLow, (v) => affine(phiInverse[v]!) ^ 0x63);
  return tables;
}

// --- A minimal WebAssembly encoder: just what the AES functions below use. ---

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const I32 = 0x7f;
const V128 = 0x7b;
const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
const tee = (i: number): number[] => [0x22, ...uleb(i)];
const i32 = (n: number): number[] => [0x41, ...sleb(n)];
const simd = (op: number, ...immediates: number[]): number[] => [0xfd, ...uleb(op), ...immediates];
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  else: [0x05],
  end: [0x0b],
  br: (depth: number) => [0x0c, depth],
  brIf: (depth: number) => [0x0d, depth],
  i32Load: (offset = 0) => [0x28, 2, ...uleb(offset)],
  i32Store: (offset = 0) => [0x36, 2, ...uleb(offset)],
  i32Store8: [0x3a, 0, 0],
  memoryFill: [0xfc, 0x0b, 0x00],
  i32Eqz: [0x45],
  i32Eq: [0x46],
  i32Ne: [0x47],
  i32LtU: [0x49],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32And: [0x71],
  i32Or: [0x72],
  i32Xor: [0x73],
  i32Shl: [0x74],
  i32ShrU: [0x76],
  i32Rotl: [0x77],
  i32Rotr: [0x78],
  v128Load: (offset = 0) => simd(0x00, 4, ...uleb(offset)),
  v128Store: (offset = 0) => simd(0x0b, 4, ...uleb(offset)),
  v128Zero: simd(0x0c, ...new Array<number>(16).fill(0)),
  shuffle: (lanes: readonly number[]) => simd(0x0d, ...lanes),
  swizzle: simd(0x0e),
  i32x4Splat: simd(0x11),
  i32x4Extract0: simd(0x1b, 0),
  i8x16LtS: simd(0x25),
  i16x8ShrU: simd(0x8d),
  i8x16MinU: simd(0x77),
  v128And: simd(0x4e),
  v128Or: simd(0x50),
  v128Xor: simd(0x51),
  i8x16Add: simd(0x6e),
  i8x16Sub: simd(0x71),
};

/** State byte i is row i % 4, column i / 4 (FIPS 197 §3.4). ShiftRows: row r moves left by r. */
const SHIFT_ROWS = Array.from({ length: 16 }, (_, i) => (i % 4) + 4 * (((i >> 2) + (i % 4)) % 4));
/** Lane i takes lane (row + k) % 4 of the same column of `base`. */
const rotateRows = (k: number, base: readonly number[]) => base.map((_, i) => base[((i % 4) + k) % 4 + 4 * (i >> 2)]!);
const IDENTITY = Array.from({ length: 16 }, (_, i) => i);
const SHIFT_ROWS_ROT1 = rotateRows(1, SHIFT_ROWS);
const ROT2 = rotateRows(2, IDENTITY);

/** Locals shared by the generated functions, after their parameters. */
interface Frame {
  /** First of TABLE_COUNT v128 locals holding the SubBytes tables. */
  tables: number;
  c0f: number;
  c1b: number;
  zero: number;
  /** Scratch v128 locals. */
  h: number;
  l: number;
  lh: number;
  ln: number;
  t: number;
  s: number;
  a: number;
  u: number;
}

/** Loads the tables and constants into their locals (once per call, not per block). */
function loadTables(f: Frame): number[] {
  const code: number[] = [];
  for (let j = 0; j < TABLE_COUNT; j++) code.push(...i32(0), ...op.v128Load(TABLES + 16 * j), ...set(f.tables + j));
  code.push(...i32(0), ...op.v128Load(C0F), ...set(f.c0f), ...i32(0), ...op.v128Load(C1B), ...set(f.c1b));
  return code;
}

/**
 * s = SubBytes(x) for all 16 lanes (see "SubBytes in a composite field" above). Every lookup is a
 * swizzle of a 16-entry table; `(v >> 4) & 0x0f` uses a 16-bit lane shift and a mask, which is exact
 * per byte after the mask.
 */
function subBytes(f: Frame, x: number): number[] {
  const table = (t: T) => get(f.tables + t);
  const lookup = (t: T, index: number[]) => [...table(t), ...index, ...op.swizzle];
  const high = (v: number[]) => [...v, ...i32(4), ...op.i16x8ShrU, ...get(f.c0f), ...op.v128And];
  const low = (v: number[]) => [...v, ...get(f.c0f), ...op.v128And];
  // (a + b) mod 15 for a + b in 0..28: min(s, s - 15), the subtraction wrapping below 15.
  const mod15 = [...tee(f.t), ...get(f.t), ...get(f.c0f), ...op.i8x16Sub, ...op.i8x16MinU];
  return [
    // y = φ(x); h, l = its nibbles
    ...lookup(T.InLow, low(get(x))), ...lookup(T.InHigh, high(get(x))), ...op.v128Xor, ...set(f.s),
    ...get(f.s), ...high([]), ...set(f.h), ...low(get(f.s)), ...set(f.l),
    ...lookup(T.Log, get(f.h)), ...set(f.lh),
    // N = hl + λh^2 + l^2; ln = log(N^-1)
    ...get(f.lh), ...lookup(T.Log, get(f.l)), ...op.i8x16Add, ...mod15, ...set(f.t),
    ...lookup(T.Exp, get(f.t)), ...lookup(T.LambdaSquare, get(f.h)), ...op.v128Xor, ...lookup(T.Square, get(f.l)), ...op.v128Xor, ...set(f.t),
    ...lookup(T.NegLog, get(f.t)), ...set(f.ln),
    // h' = h·N^-1, l' = (h + l)·N^-1, then the output map
    ...get(f.lh), ...get(f.ln), ...op.i8x16Add, ...mod15, ...set(f.t),
    ...table(T.OutHigh), ...lookup(T.Exp, get(f.t)), ...op.swizzle,
    ...lookup(T.Log, [...get(f.h), ...get(f.l), ...op.v128Xor]), ...get(f.ln), ...op.i8x16Add, ...mod15, ...set(f.t),
    ...table(T.OutLow), ...lookup(T.Exp, get(f.t)), ...op.swizzle,
    ...op.v128Xor, ...set(f.s),
  ];
}

/** One middle round on state local x with the round key at `rk`: SubBytes, ShiftRows, MixColumns, AddRoundKey. */
function middleRound(f: Frame, x: number, rk: number): number[] {
  // MixColumns per column: out_i = 2(a_i + a_{i+1}) + (a_0 + a_1 + a_2 + a_3) + a_i, with u = a + rot1(a).
  return [
    ...subBytes(f, x),
    ...get(f.s), ...get(f.s), ...op.shuffle(SHIFT_ROWS), ...set(f.a),
    ...get(f.a), ...get(f.s), ...get(f.s), ...op.shuffle(SHIFT_ROWS_ROT1), ...op.v128Xor, ...set(f.u),
    // xtime(u) = 2u, reduced by 0x1b where the top bit was set
    ...get(f.u), ...get(f.u), ...op.i8x16Add, ...get(f.u), ...get(f.zero), ...op.i8x16LtS, ...get(f.c1b), ...op.v128And, ...op.v128Xor,
    ...get(f.u), ...op.v128Xor, ...get(f.u), ...get(f.u), ...op.shuffle(ROT2), ...op.v128Xor, ...get(f.a), ...op.v128Xor,
    ...get(rk), ...op.v128Load(), ...op.v128Xor, ...set(x),
  ];
}

/**
 * Encrypts the state locals `xs` in place (FIPS 197 §5.1) with the round keys at `rkParam` and
 * `roundsParam` rounds. With two states the rounds alternate between them: the two dependency chains
 * are independent, so the processor overlaps them (a round is one long chain of short operations).
 */
function encrypt(f: Frame, xs: readonly number[], rkParam: number, roundsParam: number, rk: number, r: number): number[] {
  const code: number[] = [];
  for (const x of xs) code.push(...get(x), ...get(rkParam), ...op.v128Load(), ...op.v128Xor, ...set(x));
  code.push(
    ...get(rkParam), ...i32(16), ...op.i32Add, ...set(rk),
    ...get(roundsParam), ...i32(1), ...op.i32Sub, ...set(r),
    ...op.loop,
  );
  for (const x of xs) code.push(...middleRound(f, x, rk));
  code.push(
    ...get(rk), ...i32(16), ...op.i32Add, ...set(rk),
    ...get(r), ...i32(1), ...op.i32Sub, ...tee(r), ...op.brIf(0),
    ...op.end,
  );
  // Final round: no MixColumns.
  for (const x of xs) code.push(...subBytes(f, x), ...get(f.s), ...get(f.s), ...op.shuffle(SHIFT_ROWS), ...get(rk), ...op.v128Load(), ...op.v128Xor, ...set(x));
  return code;
}

/** Local declarations: `i32s` i32 locals then `v128s` v128 locals. */
const locals = (i32s: number, v128s: number): number[] => [...uleb(2), ...uleb(i32s), I32, ...uleb(v128s), V128];
/** FRAME_V128S v128 locals from `first`: tables, constants, scratch; the function's own follow. */
const frameAt = (first: number): Frame => {
  const c = first + TABLE_COUNT;
  return { tables: first, c0f: c, c1b: c + 1, zero: c + 2, h: c + 3, l: c + 4, lh: c + 5, ln: c + 6, t: c + 7, s: c + 8, a: c + 9, u: c + 10 };
};
const FRAME_V128S = TABLE_COUNT + 11;

/** ecb(rk, rounds, ptr, n): n blocks at ptr encrypted in place. */
function ecbFunction(): number[] {
  const [rkP, roundsP, ptr, n, rk, r] = [0, 1, 2, 3, 4, 5];
  const f = frameAt(6);
  const x = 6 + FRAME_V128S;
  return [
    ...locals(2, FRAME_V128S + 1),
    ...loadTables(f),
    ...op.block, ...op.loop,
    ...get(n), ...op.i32Eqz, ...op.brIf(1),
    ...get(ptr), ...op.v128Load(), ...set(x),
    ...encrypt(f, [x], rkP, roundsP, rk, r),
    ...get(ptr), ...get(x), ...op.v128Store(),
    ...get(ptr), ...i32(16), ...op.i32Add, ...set(ptr),
    ...get(n), ...i32(1), ...op.i32Sub, ...set(n),
    ...op.br(0), ...op.end, ...op.end,
    ...op.end,
  ];
}

/** The CBC-MAC loop (RFC 4493 §2.4 step 6): x = E(x ^ block) over n blocks from `ptr`. */
function cbcLoop(f: Frame, x: number, rkP: number, roundsP: number, ptr: number, n: number, rk: number, r: number): number[] {
  return [
    ...op.block, ...op.loop,
    ...get(n), ...op.i32Eqz, ...op.brIf(1),
    ...get(ptr), ...op.v128Load(), ...get(x), ...op.v128Xor, ...set(x),
    ...encrypt(f, [x], rkP, roundsP, rk, r),
    ...get(ptr), ...i32(16), ...op.i32Add, ...set(ptr),
    ...get(n), ...i32(1), ...op.i32Sub, ...set(n),
    ...op.br(0), ...op.end, ...op.end,
  ];
}

/** cbcmac(rk, rounds, from, to, ptr, n): the chaining value at `from`, run over n blocks at ptr, stored at `to`. */
function cbcMacFunction(): number[] {
  const [rkP, roundsP, from, to, ptr, n, rk, r] = [0, 1, 2, 3, 4, 5, 6, 7];
  const f = frameAt(8);
  const x = 8 + FRAME_V128S;
  return [
    ...locals(2, FRAME_V128S + 1),
    ...loadTables(f),
    ...get(from), ...op.v128Load(), ...set(x),
    ...cbcLoop(f, x, rkP, roundsP, ptr, n, rk, r),
    ...get(to), ...get(x), ...op.v128Store(),
    ...op.end,
  ];
}

/**
 * cmac(rk, rounds, subkeys, from, ptr, len, xorEnd, to): finishes a CMAC (RFC 4493 §2.4) over the
 * `len` message bytes at ptr, starting from the chaining value at `from`, and stores the tag at `to`.
 * With xorEnd non-zero, the 16 bytes there are first XORed into the message's last 16 (S2V's xorend,
 * RFC 5297 §2.4). Pads in place, so the message area needs room up to the next block boundary.
 */
function cmacFunction(): number[] {
  const [rkP, roundsP, subkeys, from, ptr, len, xorEnd, to, n, rem, last, sk, rk, r] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const f = frameAt(14);
  const x = 14 + FRAME_V128S;
  return [
    ...locals(6, FRAME_V128S + 1),
    ...loadTables(f),
    ...get(xorEnd), ...op.if,
    ...get(ptr), ...get(len), ...op.i32Add, ...i32(16), ...op.i32Sub, ...tee(last),
    ...get(last), ...op.v128Load(), ...get(xorEnd), ...op.v128Load(), ...op.v128Xor, ...op.v128Store(),
    ...op.end,
    ...get(len), ...i32(4), ...op.i32ShrU, ...set(n),
    ...get(len), ...i32(15), ...op.i32And, ...set(rem),
    ...get(subkeys), ...set(sk),
    // Incomplete or empty last block: append 10^i and use K2 (step 4).
    ...get(len), ...op.i32Eqz, ...get(rem), ...i32(0), ...op.i32Ne, ...op.i32Or, ...op.if,
    ...get(ptr), ...get(len), ...op.i32Add, ...i32(0x80), ...op.i32Store8,
    ...get(ptr), ...get(len), ...op.i32Add, ...i32(1), ...op.i32Add, ...i32(0), ...i32(15), ...get(rem), ...op.i32Sub, ...op.memoryFill,
    ...get(n), ...i32(1), ...op.i32Add, ...set(n),
    ...get(subkeys), ...i32(16), ...op.i32Add, ...set(sk),
    ...op.end,
    ...get(ptr), ...get(n), ...i32(4), ...op.i32Shl, ...op.i32Add, ...i32(16), ...op.i32Sub, ...tee(last),
    ...get(last), ...op.v128Load(), ...get(sk), ...op.v128Load(), ...op.v128Xor, ...op.v128Store(),
    ...get(from), ...op.v128Load(), ...set(x),
    ...cbcLoop(f, x, rkP, roundsP, ptr, n, rk, r),
    ...get(to), ...get(x), ...op.v128Store(),
    ...op.end,
  ];
}

/** bswap32 of the i32 on the stack, via a scratch local. */
const bswap = (tmp: number): number[] => [
  ...tee(tmp), ...i32(8), ...op.i32Rotr, ...i32(0xff00ff00 | 0), ...op.i32And,
  ...get(tmp), ...i32(8), ...op.i32Rotl, ...i32(0x00ff00ff), ...op.i32And, ...op.i32Or,
];

/**
 * ctr(rk, rounds, counter, ptr, n): n blocks at ptr XORed in place with E(counter), E(counter + 1), ...
 * The counter's last 32 bits (big-endian) are incremented, without carry into the rest: the caller
 * guarantees they do not wrap (AES-SIV clears their top bit, RFC 5297 §2.5). The counter is left at
 * the next unused value.
 */
function ctrFunction(): number[] {
  const [rkP, roundsP, counter, ptr, n, rk, r, w] = [0, 1, 2, 3, 4, 5, 6, 7];
  const f = frameAt(8);
  const states = [0, 1, 2, 3].map((i) => 8 + FRAME_V128S + i);
  const next = [...get(counter), ...get(counter), ...op.i32Load(12), ...bswap(w), ...i32(1), ...op.i32Add, ...bswap(w), ...op.i32Store(12)];
  const xorOut = (state: number, offset: number) => [...get(ptr), ...get(ptr), ...op.v128Load(offset), ...get(state), ...op.v128Xor, ...op.v128Store(offset)];
  const batch = (k: number) => [
    ...op.block, ...op.loop,
    ...get(n), ...i32(k), ...op.i32LtU, ...op.brIf(1),
    ...states.slice(0, k).flatMap((st) => [...get(counter), ...op.v128Load(), ...set(st), ...next]),
    ...encrypt(f, states.slice(0, k), rkP, roundsP, rk, r),
    ...states.slice(0, k).flatMap((st, i) => xorOut(st, 16 * i)),
    ...get(ptr), ...i32(16 * k), ...op.i32Add, ...set(ptr),
    ...get(n), ...i32(k), ...op.i32Sub, ...set(n),
    ...op.br(0), ...op.end, ...op.end,
  ];
  // Four blocks at a time while four remain, then two, then one: the states' rounds interleave (see encrypt).
  return [
    ...locals(3, FRAME_V128S + 4),
    ...loadTables(f),
    ...batch(4),
    ...batch(2),
    ...batch(1),
    ...op.end,
  ];
}

/**
 * expand(key, nk, rk): the key schedule (FIPS 197 §5.2) of the nk-word key at `key` into
 * 4 * (nk + 7) words at `rk`. Words are little-endian i32s, so RotWord is a rotate right by 8 and
 * Rcon goes into the low byte.
 */
function expandFunction(): number[] {
  const [key, nk, rk, i, total, temp, rcon, k] = [0, 1, 2, 3, 4, 5, 6, 7];
  const f = frameAt(8);
  const x = 8 + FRAME_V128S;
  const subWord = [...op.i32x4Splat, ...set(x), ...subBytes(f, x), ...get(f.s), ...op.i32x4Extract0];
  const wordAddr = (base: number, index: number[]) => [...get(base), ...index, ...i32(4), ...op.i32Mul, ...op.i32Add];
  return [
    ...locals(5, FRAME_V128S + 1),
    ...loadTables(f),
    // w[0..nk) = key
    ...op.block, ...op.loop,
    ...get(i), ...get(nk), ...op.i32Eq, ...op.brIf(1),
    ...wordAddr(rk, get(i)), ...wordAddr(key, get(i)), ...op.i32Load(), ...op.i32Store(),
    ...get(i), ...i32(1), ...op.i32Add, ...set(i),
    ...op.br(0), ...op.end, ...op.end,
    ...get(nk), ...i32(7), ...op.i32Add, ...i32(4), ...op.i32Mul, ...set(total),
    ...i32(1), ...set(rcon),
    // w[i] = w[i - nk] ^ temp, k = i mod nk
    ...op.block, ...op.loop,
    ...get(i), ...get(total), ...op.i32Eq, ...op.brIf(1),
    ...wordAddr(rk, [...get(i), ...i32(1), ...op.i32Sub]), ...op.i32Load(), ...set(temp),
    ...get(k), ...op.i32Eqz,
    ...op.if,
    // temp = SubWord(RotWord(temp)) ^ Rcon; Rcon = xtime(Rcon) (public values: a branch is fine)
    ...get(temp), ...i32(8), ...op.i32Rotr, ...subWord, ...get(rcon), ...op.i32Xor, ...set(temp),
    ...get(rcon), ...i32(1), ...op.i32Shl, ...get(rcon), ...i32(7), ...op.i32ShrU, ...i32(0x11b), ...op.i32Mul, ...op.i32Xor, ...set(rcon),
    ...op.else,
    // AES-256 only: SubWord in the middle of each 8-word group
    ...get(nk), ...i32(8), ...op.i32Eq, ...get(k), ...i32(4), ...op.i32Eq, ...op.i32And,
    ...op.if, ...get(temp), ...subWord, ...set(temp), ...op.end,
    ...op.end,
    ...wordAddr(rk, get(i)), ...wordAddr(rk, [...get(i), ...get(nk), ...op.i32Sub]), ...op.i32Load(), ...get(temp), ...op.i32Xor, ...op.i32Store(),
    ...get(k), ...i32(1), ...op.i32Add, ...set(k),
    ...get(k), ...get(nk), ...op.i32Eq, ...op.if, ...i32(0), ...set(k), ...op.end,
    ...get(i), ...i32(1), ...op.i32Add, ...set(i),
    ...op.br(0), ...op.end, ...op.end,
    ...op.end,
  ];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

/** The module: memory "mem" and functions expand, ecb, cbcmac, ctr, cmac (all taking i32s, returning nothing). */
function buildModule(): Uint8Array {
  const sig = (params: number) => [0x60, params, ...new Array<number>(params).fill(I32), 0];
  const bodies = [expandFunction(), ecbFunction(), cbcMacFunction(), ctrFunction(), cmacFunction()];
  const types = [sig(3), sig(4), sig(6), sig(5), sig(8)];
  const exports = ['expand', 'ecb', 'cbcmac', 'ctr', 'cmac'];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [types.length, ...types.flat()]),
    ...section(3, [bodies.length, ...bodies.map((_, index) => index)]),
    ...section(5, [1, 0x00, 1]), // one memory, min 1 page, no max
    ...section(7, [1 + exports.length, ...name('mem'), 0x02, 0, ...exports.flatMap((e, index) => [...name(e), 0x00, index])]),
    ...section(10, [bodies.length, ...bodies.flatMap((b) => [...uleb(b.length), ...b])]),
  ]);
}

// --- Keys and engines ---

const ROUNDS_BY_KEY_LENGTH: Readonly<Record<number, number>> = { 16: 10, 24: 12, 32: 14 };

/**
 * One AES key. Its round keys are computed when it is first loaded and kept after the second load,
 * so a key used once (a per-request NTS key) costs one expansion and no copy, and a long-lived key
 * (a master key) costs a 176..240-byte copy per load instead of an expansion.
 */
export class AesKey {
  readonly length: number;
  readonly rounds: number;
  readonly key: Uint8Array;
  /** Round keys, once kept. */
  schedule: Uint8Array | null = null;
  loads = 0;
  /** node:crypto engine only. */
  ecb: Cipher | null = null;

  /** `key`: 16, 24 or 32 bytes; copied. Throws UsageError otherwise. */
  constructor(key: Uint8Array) {
    const rounds = ROUNDS_BY_KEY_LENGTH[key.length];
    if (rounds === undefined) throw new UsageError('CRYPTO_BAD_KEY_LENGTH', `AES key must be 16, 24 or 32 bytes, got ${key.length}`);
    this.length = key.length;
    this.rounds = rounds;
    // Not Uint8Array.from: its iterator path is several times slower, and keys are made per NTS request.
    this.key = new Uint8Array(key.length);
    this.key.set(key);
  }
}

/**
 * The operations the MAC and SIV code build on. All work in place on `mem`; addresses are offsets
 * into it (CHAIN, COUNTER, DATA..DATA+DATA_SIZE). Not re-entrant: one operation at a time.
 */
export interface AesEngine {
  readonly name: 'wasm' | 'node' | 'native';
  readonly mem: Uint8Array;
  /** `mem[TAG..TAG+16)`, to copy a result out without making a view per call. */
  readonly tag: Uint8Array;
  /** Encrypts n blocks at `ptr` in place (ECB). */
  ecb(key: AesKey, slot: number, ptr: number, n: number): void;
  /** CBC-MAC over n blocks at `ptr`, from the chaining value at `from`, result to `to`. */
  cbcMac(key: AesKey, slot: number, from: number, to: number, ptr: number, n: number): void;
  /** Last step of a CMAC: see cmacFunction. `subkeys` holds K1 ‖ K2; xorEnd 0 for none. */
  cmac(key: AesKey, slot: number, subkeys: number, from: number, ptr: number, len: number, xorEnd: number, to: number): void;
  /** XORs n blocks at `ptr` with the CTR keystream from the counter at `counter` (see ctrFunction). */
  ctr(key: AesKey, slot: number, counter: number, ptr: number, n: number): void;
  /**
   * What every CMAC key needs first, as 48 bytes at `to`: the subkeys K1 ‖ K2 (RFC 4493 §2.3: L = AES(0^128),
   * K1 = dbl(L), K2 = dbl(K1)), then CMAC(0^128) = AES(K1), the first value of S2V (RFC 5297 §2.4).
   */
  cmacPrepare(key: AesKey, slot: number, to: number): void;
}

/** cmacPrepare on an engine's ECB: the same values, computed in JS between two block encryptions. */
function cmacPrepareOn(mem: Uint8Array, ecb: (key: AesKey, slot: number, ptr: number, n: number) => void): AesEngine['cmacPrepare'] {
  return (key, slot, to) => {
    mem.fill(0, to, to + AES_BLOCK);
    ecb(key, slot, to, 1);
    dbl(mem, to);
    mem.copyWithin(to + AES_BLOCK, to, to + AES_BLOCK);
    dbl(mem, to + AES_BLOCK);
    mem.copyWithin(to + 2 * AES_BLOCK, to, to + AES_BLOCK);
    ecb(key, slot, to + 2 * AES_BLOCK, 1);
  };
}

interface WasmExports {
  mem: { readonly buffer: ArrayBuffer };
  expand(key: number, nk: number, rk: number): void;
  ecb(rk: number, rounds: number, ptr: number, n: number): void;
  cbcmac(rk: number, rounds: number, from: number, to: number, ptr: number, n: number): void;
  cmac(rk: number, rounds: number, subkeys: number, from: number, ptr: number, len: number, xorEnd: number, to: number): void;
  ctr(rk: number, rounds: number, counter: number, ptr: number, n: number): void;
}

/** The part of the WebAssembly JS API used here (the project's type libraries do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: unknown };
}

function wasmEngine(): AesEngine | null {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) return null;
  let wasm: WasmExports;
  try {
    // Synchronous compile: the module is a few KiB, and the engine must exist before the first request.
    wasm = new api.Instance(new api.Module(buildModule())).exports as WasmExports;
  } catch {
    return null; // no WebAssembly, or no SIMD
  }
  const mem = new Uint8Array(wasm.mem.buffer);
  mem.set(compositeTables(), TABLES);
  mem.fill(0x0f, C0F, C0F + 16);
  mem.fill(0x1b, C1B, C1B + 16);
  return slotEngine('wasm', mem, wasm);
}

/**
 * The native module's AES (native/aes_engine.c, the CPU's AES instructions): the same operations as
 * the WebAssembly module, on a memory of the same layout that the module is attached to. The operations
 * take no JS arguments: they read them as Int32 words at NATIVE_ARGS in that memory (converting JS
 * numbers one by one cost more than the AES work of a short message).
 */
export interface NativeAesBinding {
  aesAttach(mem: Uint8Array): void;
  /** key, nk, rk */
  aesExpand(): void;
  /** rk, rounds, ptr, n */
  aesEcb(): void;
  /** rk, rounds, from, to, ptr, n */
  aesCbcmac(): void;
  /** rk, rounds, subkeys, from, ptr, len, xorEnd, to */
  aesCmac(): void;
  /** rk, rounds, counter, ptr, n */
  aesCtr(): void;
  /** rk, rounds, to */
  aesCmacPrepare(): void;
}

function nativeEngine(binding: NativeAesBinding): AesEngine {
  const mem = new Uint8Array(0x10000);
  binding.aesAttach(mem);
  const args = new Int32Array(mem.buffer, NATIVE_ARGS, 8);
  const { aesExpand, aesEcb, aesCbcmac, aesCmac, aesCtr, aesCmacPrepare } = binding;
  return slotEngine('native', mem, {
    expand: (key, nk, rk) => {
      args[0] = key;
      args[1] = nk;
      args[2] = rk;
      aesExpand();
    },
    ecb: (rk, rounds, ptr, n) => {
      args[0] = rk;
      args[1] = rounds;
      args[2] = ptr;
      args[3] = n;
      aesEcb();
    },
    cbcmac: (rk, rounds, from, to, ptr, n) => {
      args[0] = rk;
      args[1] = rounds;
      args[2] = from;
      args[3] = to;
      args[4] = ptr;
      args[5] = n;
      aesCbcmac();
    },
    cmac: (rk, rounds, subkeys, from, ptr, len, xorEnd, to) => {
      args[0] = rk;
      args[1] = rounds;
      args[2] = subkeys;
      args[3] = from;
      args[4] = ptr;
      args[5] = len;
      args[6] = xorEnd;
      args[7] = to;
      aesCmac();
    },
    ctr: (rk, rounds, counter, ptr, n) => {
      args[0] = rk;
      args[1] = rounds;
      args[2] = counter;
      args[3] = ptr;
      args[4] = n;
      aesCtr();
    },
    cmacPrepare: (rk, rounds, to) => {
      args[0] = rk;
      args[1] = rounds;
      args[2] = to;
      aesCmacPrepare();
    },
  });
}

/** An engine over operations that take round keys from slots in `mem` (the WebAssembly and native ones). */
function slotEngine(
  name: 'wasm' | 'native',
  mem: Uint8Array,
  ops: Omit<WasmExports, 'mem'> & { cmacPrepare?: (rk: number, rounds: number, to: number) => void },
): AesEngine {
  const owners: (AesKey | null)[] = new Array<AesKey | null>(SLOT_COUNT).fill(null);

  /** Puts `key`'s round keys into `slot`; returns their address. */
  const load = (key: AesKey, slot: number): number => {
    const rk = SLOTS + slot * SLOT_SIZE;
    if (owners[slot] === key) return rk;
    owners[slot] = key;
    // Round keys kept by another engine are in the same FIPS 197 byte order (tested), so any engine may reuse them.
    if (key.schedule !== null) {
      mem.set(key.schedule, rk);
      return rk;
    }
    mem.set(key.key, KEY_IN);
    ops.expand(KEY_IN, key.length >>> 2, rk);
    mem.fill(0, KEY_IN, KEY_IN + key.length);
    if (++key.loads >= 2) key.schedule = mem.slice(rk, rk + 16 * (key.rounds + 1));
    return rk;
  };
  const { ecb, cbcmac, cmac, ctr, cmacPrepare } = ops;
  const ecbOp = (key: AesKey, slot: number, ptr: number, n: number) => ecb(load(key, slot), key.rounds, ptr, n);
  return {
    name,
    mem,
    tag: mem.subarray(TAG, TAG + AES_BLOCK),
    ecb: ecbOp,
    cmacPrepare: cmacPrepare !== undefined ? (key, slot, to) => cmacPrepare(load(key, slot), key.rounds, to) : cmacPrepareOn(mem, ecbOp),
    cbcMac: (key, slot, from, to, ptr, n) => cbcmac(load(key, slot), key.rounds, from, to, ptr, n),
    cmac: (key, slot, subkeys, from, ptr, len, xorEnd, to) => cmac(load(key, slot), key.rounds, subkeys, from, ptr, len, xorEnd, to),
    ctr: (key, slot, counter, ptr, n) => ctr(load(key, slot), key.rounds, counter, ptr, n),
  };
}

/** The same operations on node:crypto's AES-ECB, block by block where chaining requires it. */
function nodeEngine(): AesEngine {
  const mem = new Uint8Array(0x10000);
  const cipher = (key: AesKey): Cipher => {
    if (key.ecb === null) {
      key.ecb = createCipheriv(`aes-${key.length * 8}-ecb`, key.key, null);
      key.ecb.setAutoPadding(false);
    }
    return key.ecb;
  };
  const ecb = (key: AesKey, ptr: number, n: number): void => {
    if (n > 0) mem.set(cipher(key).update(mem.subarray(ptr, ptr + n * AES_BLOCK)), ptr);
  };
  const block = new Uint8Array(AES_BLOCK);
  const cbcMac = (key: AesKey, from: number, to: number, ptr: number, n: number): void => {
    block.set(mem.subarray(from, from + AES_BLOCK));
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < AES_BLOCK; i++) block[i] = block[i]! ^ mem[ptr + b * AES_BLOCK + i]!;
      block.set(cipher(key).update(block));
    }
    mem.set(block, to);
  };
  return {
    name: 'node',
    mem,
    tag: mem.subarray(TAG, TAG + AES_BLOCK),
    ecb: (key, _slot, ptr, n) => ecb(key, ptr, n),
    cmacPrepare: cmacPrepareOn(mem, (key, _slot, ptr, n) => ecb(key, ptr, n)),
    cbcMac: (key, _slot, from, to, ptr, n) => cbcMac(key, from, to, ptr, n),
    cmac: (key, _slot, subkeys, from, ptr, len, xorEnd, to) => {
      const xor = (at: number, other: number) => {
        for (let i = 0; i < AES_BLOCK; i++) mem[at + i] = mem[at + i]! ^ mem[other + i]!;
      };
      if (xorEnd !== 0) xor(ptr + len - AES_BLOCK, xorEnd);
      let n = len >>> 4;
      let subkey = subkeys;
      if (len === 0 || len % AES_BLOCK !== 0) {
        mem[ptr + len] = 0x80;
        n++;
        mem.fill(0, ptr + len + 1, ptr + n * AES_BLOCK);
        subkey += AES_BLOCK;
      }
      xor(ptr + (n - 1) * AES_BLOCK, subkey);
      cbcMac(key, from, to, ptr, n);
    },
    ctr: (key, _slot, counter, ptr, n) => {
      const c = cipher(key);
      for (let b = 0; b < n; b++) {
        block.set(mem.subarray(counter, counter + AES_BLOCK));
        const ks = c.update(block);
        for (let i = 0; i < AES_BLOCK; i++) mem[ptr + b * AES_BLOCK + i] = mem[ptr + b * AES_BLOCK + i]! ^ ks[i]!;
        const low = ((mem[counter + 12]! << 24) | (mem[counter + 13]! << 16) | (mem[counter + 14]! << 8) | mem[counter + 15]!) + 1;
        mem[counter + 12] = (low >>> 24) & 0xff;
        mem[counter + 13] = (low >>> 16) & 0xff;
        mem[counter + 14] = (low >>> 8) & 0xff;
        mem[counter + 15] = low & 0xff;
      }
    },
  };
}

/** FIPS 197 Appendix C: one plaintext, encrypted under AES-128, -192 and -256 keys 00 01 02 ... */
function passesKnownAnswers(engine: AesEngine): boolean {
  const expected = ['69c4e0d86a7b0430d8cdb78070b4c55a', 'dda97ca4864cdfe06eaf70a0ec0d7191', '8ea2b7ca516745bfeafc49904b496089'];
  return [16, 24, 32].every((length, index) => {
    const key = new AesKey(Uint8Array.from({ length }, (_, i) => i));
    engine.mem.set(Uint8Array.from({ length: 16 }, (_, i) => i * 0x11), DATA);
    engine.ecb(key, SLOT_MAC, DATA, 1);
    return Buffer.from(engine.mem.subarray(DATA, DATA + 16)).toString('hex') === expected[index];
  });
}

function checkedWasmEngine(): AesEngine | null {
  const engine = wasmEngine();
  return engine !== null && passesKnownAnswers(engine) ? engine : null;
}

const WASM = checkedWasmEngine();
let NATIVE: AesEngine | null = null;
let current: AesEngine = WASM ?? nodeEngine();

/** The engine in use. */
export function aesEngine(): AesEngine {
  return current;
}

/**
 * Makes the native module's AES the engine in use, when the module offers it (a CPU with AES instructions)
 * and it passes the FIPS 197 known answers; otherwise keeps the engine in use and returns false.
 */
export function useNativeAes(binding: Partial<NativeAesBinding>): boolean {
  if (NATIVE === null) {
    const { aesAttach, aesExpand, aesEcb, aesCbcmac, aesCmac, aesCtr, aesCmacPrepare } = binding;
    if (!aesAttach || !aesExpand || !aesEcb || !aesCbcmac || !aesCmac || !aesCtr || !aesCmacPrepare) return false;
    const engine = nativeEngine({ aesAttach, aesExpand, aesEcb, aesCbcmac, aesCmac, aesCtr, aesCmacPrepare });
    if (!passesKnownAnswers(engine)) return false;
    NATIVE = engine;
  }
  current = NATIVE;
  return true;
}

/**
 * Selects the engine: 'native' (once useNativeAes registered it), 'wasm' (the default where available) or
 * 'node'. For tests and diagnostics; returns false when the engine is not available.
 */
export function setAesEngine(name: 'wasm' | 'node' | 'native'): boolean {
  if (name === 'native') {
    if (NATIVE === null) return false;
    current = NATIVE;
  } else if (name === 'wasm') {
    if (WASM === null) return false;
    current = WASM;
  } else current = nodeEngine();
  return true;
}
