// Shared by the crypto tests: hex helpers, an independent CMAC reference and the miscreant loader.
import { createCipheriv } from 'node:crypto';

/** Hex (spaces and newlines allowed, as the RFCs print it) to bytes. */
export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/**
 * Textbook AES-CMAC (RFC 4493 §2.4), one block per cipher call and a fresh cipher per message:
 * deliberately nothing like the optimised implementation it checks.
 */
export function referenceCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  const aes = (block: Uint8Array): Uint8Array => {
    const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
    c.setAutoPadding(false);
    return Uint8Array.from(c.update(block));
  };
  const double = (b: Uint8Array): Uint8Array => {
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) out[15]! ^= 0x87;
    return out;
  };
  const k1 = double(aes(new Uint8Array(16)));
  const k2 = double(k1);
  const n = Math.max(1, Math.ceil(message.length / 16));
  const complete = message.length > 0 && message.length % 16 === 0;
  let x: Uint8Array = new Uint8Array(16);
  for (let i = 0; i < n; i++) {
    const block = new Uint8Array(16);
    const chunk = message.subarray(i * 16, i * 16 + 16);
    block.set(chunk);
    if (i === n - 1) {
      if (!complete) block[chunk.length] = 0x80;
      const k = complete ? k1 : k2;
      for (let j = 0; j < 16; j++) block[j]! ^= k[j]!;
    }
    for (let j = 0; j < 16; j++) block[j]! ^= x[j]!;
    x = aes(block);
  }
  return x;
}

// miscreant ships its TypeScript sources as its types, which do not compile under our settings,
// so it is imported untyped and described here by the few members the tests use.
export interface MiscreantSiv {
  seal(plaintext: Uint8Array, associatedData: Uint8Array[]): Promise<Uint8Array>;
  open(sealed: Uint8Array, associatedData: Uint8Array[]): Promise<Uint8Array>;
}
export interface MiscreantAead {
  seal(plaintext: Uint8Array, nonce: Uint8Array, associatedData?: Uint8Array): Promise<Uint8Array>;
  open(sealed: Uint8Array, nonce: Uint8Array, associatedData?: Uint8Array): Promise<Uint8Array>;
}
export interface MiscreantCmac {
  reset(): MiscreantCmac;
  update(data: Uint8Array): Promise<MiscreantCmac>;
  finish(): Promise<Uint8Array>;
}
export interface Miscreant {
  SIV: { importKey(key: Uint8Array, alg: 'AES-SIV', provider: unknown): Promise<MiscreantSiv> };
  AEAD: { importKey(key: Uint8Array, alg: 'AES-SIV', provider: unknown): Promise<MiscreantAead> };
  CMAC: { importKey(provider: unknown, key: Uint8Array): Promise<MiscreantCmac> };
  PolyfillCryptoProvider: new () => unknown;
  WebCryptoProvider: new (crypto: unknown) => unknown;
}

/**
 * miscreant 0.3.2 defaults to `window.crypto`, which Node 20 lacks: pass a provider explicitly.
 * `webcrypto` uses Node's WebCrypto (AES in OpenSSL, one async call per block); `polyfill` is
 * miscreant's own pure JavaScript AES, an implementation independent of OpenSSL.
 */
export async function loadMiscreant(): Promise<{ lib: Miscreant; polyfill: unknown; webcrypto: unknown }> {
  const name: string = 'miscreant';
  const lib = (await import(name)) as Miscreant;
  return { lib, polyfill: new lib.PolyfillCryptoProvider(), webcrypto: new lib.WebCryptoProvider(globalThis.crypto) };
}
