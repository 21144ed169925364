// The AES engine under CMAC and SIV: the WebAssembly module and the native module's AES instructions
// against OpenSSL (node:crypto) block by block, the node:crypto fallback engine, and messages longer than
// the engine's scratch area, which only long inputs reach.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { AesKey, CHAIN, COUNTER, DATA, DATA_SIZE, SLOT_CTR, SLOT_MAC, ZERO, aesEngine, setAesEngine, useNativeAes } from '../../src/crypto/aes.js';
import { loadNativeModule } from '../../src/server/native.js';
import { Cmac } from '../../src/crypto/cmac.js';
import { AesSiv } from '../../src/crypto/siv.js';
import { hex, loadMiscreant, referenceCmac, toHex } from './helpers.js';

const native = loadNativeModule();
const nativeAes = 'binding' in native && useNativeAes(native.binding);
setAesEngine('wasm');
/** x86-64 Linux (CI): the native module must be built and the CPU's AES instructions used, never skipped. */
const nativeExpected = process.platform === 'linux' && process.arch === 'x64';
const ENGINES = nativeAes ? (['wasm', 'node', 'native'] as const) : (['wasm', 'node'] as const);

function withEngine<T>(name: 'wasm' | 'node' | 'native', run: () => T): T {
  assert.ok(setAesEngine(name), `engine ${name} is available`);
  try {
    return run();
  } finally {
    setAesEngine('wasm');
  }
}

function openssl(mode: 'ecb' | 'cbc' | 'ctr', key: Uint8Array, iv: Uint8Array | null, data: Uint8Array): Uint8Array {
  const cipher = createCipheriv(`aes-${key.length * 8}-${mode}`, key, iv);
  cipher.setAutoPadding(false);
  return Uint8Array.from(cipher.update(data));
}

describe('AES engine', () => {
  it('WebAssembly SIMD is available here, so the tests below exercise it', () => {
    assert.equal(aesEngine().name, 'wasm');
  });

  if (!nativeExpected) {
    it('off x86-64 Linux there is no native engine: the WebAssembly one stays in use', () => {
      assert.equal(setAesEngine('native'), nativeAes);
      setAesEngine('wasm');
    });
  }
});

// Where CI runs (x86-64 Linux) the native module must be built and used: these fail rather than skip there.
if (nativeExpected) describe('native AES engine (the CPU\'s AES instructions)', () => {
  it('is available', () => {
    assert.ok(nativeAes, 'reason' in native ? native.reason : 'the module loaded but offers no AES (no AES-NI?)');
  });

  it('keeps round keys byte-identical to the WebAssembly engine\'s, so a kept schedule serves either', () => {
    for (const length of [16, 24, 32]) {
      const keyBytes = randomBytes(length);
      const schedules = (['wasm', 'native'] as const).map((engine) =>
        withEngine(engine, () => {
          const key = new AesKey(keyBytes);
          aesEngine().ecb(key, SLOT_MAC, DATA, 0);
          aesEngine().ecb(key, SLOT_CTR, DATA, 0); // the second load keeps the schedule
          return toHex(key.schedule!);
        }),
      );
      assert.equal(schedules[0], schedules[1], `${length * 8}-bit key`);
    }
  });

  it('refuses offsets outside its memory instead of touching other memory', () => {
    // The engine's arguments are Int32 words at 0x300 of its memory (see nativeEngine in aes.ts).
    const binding = (native as { binding: Record<string, () => void> }).binding;
    const call = (name: string, ...words: number[]) =>
      withEngine('native', () => {
        new Int32Array(aesEngine().mem.buffer, 0x300, 8).set(words);
        binding[name]!();
      });
    assert.throws(() => call('aesEcb', 0x400, 10, 0x10000 - 16, 2), RangeError);
    assert.throws(() => call('aesEcb', 0x400, 11, DATA, 1), RangeError);
    assert.throws(() => call('aesCtr', -16, 10, COUNTER, DATA, 1), RangeError);
    assert.throws(() => call('aesCmac', 0x400, 10, 0x830, 0x800, 0x10000 - 8, 8, 0, 0x860), RangeError, 'no room for the padding');
    assert.throws(() => call('aesExpand', 0x200, 5, 0x400), RangeError);
  });
});

describe('AES engine, every engine', () => {
  it('cmacPrepare gives the RFC 4493 §4 subkeys and CMAC(0^128) on every engine', () => {
    const keyBytes = hex('2b7e1516 28aed2a6 abf71588 09cf4f3c');
    const zeroMac = toHex(referenceCmac(keyBytes, new Uint8Array(16)));
    for (const engine of ENGINES) {
      withEngine(engine, () => {
        const { mem } = aesEngine();
        aesEngine().cmacPrepare(new AesKey(keyBytes), SLOT_MAC, DATA);
        assert.equal(toHex(mem.subarray(DATA, DATA + 16)), 'fbeed618357133667c85e08f7236a8de', `${engine}: K1`);
        assert.equal(toHex(mem.subarray(DATA + 16, DATA + 32)), 'f7ddac306ae266ccf90bc11ee46d513b', `${engine}: K2`);
        assert.equal(toHex(mem.subarray(DATA + 32, DATA + 48)), zeroMac, `${engine}: CMAC(0^128)`);
      });
    }
  });


  it('FIPS 197 Appendix C known answers at every key size', () => {
    const plaintext = hex('00112233445566778899aabbccddeeff');
    const expected = ['69c4e0d86a7b0430d8cdb78070b4c55a', 'dda97ca4864cdfe06eaf70a0ec0d7191', '8ea2b7ca516745bfeafc49904b496089'];
    for (const engine of ENGINES) {
      withEngine(engine, () => {
        const { mem } = aesEngine();
        [16, 24, 32].forEach((length, i) => {
          mem.set(plaintext, DATA);
          aesEngine().ecb(new AesKey(Uint8Array.from({ length }, (_, j) => j)), SLOT_MAC, DATA, 1);
          assert.equal(toHex(mem.subarray(DATA, DATA + 16)), expected[i], `${engine}, ${length * 8}-bit key`);
        });
      });
    }
  });

  it('ECB, CBC-MAC and CTR agree with OpenSSL for random keys, block counts and counters', () => {
    for (const engine of ENGINES) {
      withEngine(engine, () => {
        fc.assert(
          fc.property(fc.constantFrom(16, 24, 32), fc.integer({ min: 1, max: 19 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), (length, blocks, iv) => {
            const { mem } = aesEngine();
            const keyBytes = randomBytes(length);
            const key = new AesKey(keyBytes);
            const data = randomBytes(16 * blocks);
            mem.set(data, DATA);
            aesEngine().ecb(key, SLOT_MAC, DATA, blocks);
            assert.equal(toHex(mem.subarray(DATA, DATA + data.length)), toHex(openssl('ecb', keyBytes, null, data)));
            mem.set(data, DATA);
            aesEngine().cbcMac(key, SLOT_MAC, ZERO, CHAIN, DATA, blocks);
            assert.equal(toHex(mem.subarray(CHAIN, CHAIN + 16)), toHex(openssl('cbc', keyBytes, new Uint8Array(16), data).subarray(-16)));
            // The engine counts in the last 32 bits only; SIV clears their top bit, so they cannot wrap.
            const counter = Uint8Array.from(iv);
            counter[12] = counter[12]! & 0x7f;
            mem.set(counter, COUNTER);
            mem.set(data, DATA);
            aesEngine().ctr(key, SLOT_CTR, COUNTER, DATA, blocks);
            assert.equal(toHex(mem.subarray(DATA, DATA + data.length)), toHex(openssl('ctr', keyBytes, counter, data)));
          }),
          { numRuns: 60 },
        );
      });
    }
  });

  it('the counter carries across bytes of its last 32 bits', () => {
    const keyBytes = randomBytes(16);
    const counter = hex('00000000 00000000 00000000 00fffffe');
    const data = randomBytes(16 * 5);
    const { mem } = aesEngine();
    mem.set(counter, COUNTER);
    mem.set(data, DATA);
    aesEngine().ctr(new AesKey(keyBytes), SLOT_CTR, COUNTER, DATA, 5);
    assert.equal(toHex(mem.subarray(DATA, DATA + data.length)), toHex(openssl('ctr', keyBytes, counter, data)));
    assert.equal(toHex(mem.subarray(COUNTER, COUNTER + 16)), '00000000000000000000000001000003');
  });

  it('keys used alternately in one slot, and a key kept after its second use, give the same results', () => {
    const a = randomBytes(16);
    const b = randomBytes(32);
    const keyA = new AesKey(a);
    const keyB = new AesKey(b);
    const block = randomBytes(16);
    const { mem } = aesEngine();
    for (let round = 0; round < 4; round++) {
      for (const [key, bytes] of [[keyA, a], [keyB, b]] as const) {
        mem.set(block, DATA);
        aesEngine().ecb(key, SLOT_MAC, DATA, 1);
        assert.equal(toHex(mem.subarray(DATA, DATA + 16)), toHex(openssl('ecb', bytes, null, block)), `round ${round}`);
      }
    }
    assert.notEqual(keyA.schedule, null);
  });
});

describe('CMAC and SIV on both engines and past the scratch area', () => {
  const LONG = [DATA_SIZE - 17, DATA_SIZE - 16, DATA_SIZE - 1, DATA_SIZE, DATA_SIZE + 1, DATA_SIZE + 17, 2 * DATA_SIZE + 5];

  it('CMAC of long messages, whole and in pieces, equals the textbook reference', () => {
    const key = randomBytes(16);
    for (const engine of ENGINES) {
      withEngine(engine, () => {
        const cmac = new Cmac(key);
        for (const length of LONG) {
          const message = Uint8Array.from({ length }, (_, i) => (i * 13 + length) & 0xff);
          const want = toHex(referenceCmac(key, message));
          assert.equal(toHex(cmac.mac(message)), want, `${engine}, ${length} bytes`);
          for (let at = 0; at < length; at += 7001) cmac.update(message.subarray(at, at + 7001));
          assert.equal(toHex(cmac.digest()), want, `${engine}, ${length} bytes in pieces`);
        }
      });
    }
  });

  it('SIV of long messages: both engines agree and miscreant opens the result', async () => {
    const { lib, polyfill } = await loadMiscreant();
    const key = randomBytes(32);
    for (const length of LONG) {
      const plaintext = Uint8Array.from({ length }, (_, i) => (i * 7 + length) & 0xff);
      const ad = [randomBytes(length % 97), plaintext.subarray(0, 40)];
      const sealed = Uint8Array.from(new AesSiv(key).seal(plaintext, ad));
      for (const engine of ENGINES) {
        const via = withEngine(engine, () => Uint8Array.from(new AesSiv(key).seal(plaintext, ad)));
        assert.equal(toHex(sealed), toHex(via), `${length} bytes, ${engine}`);
      }
      assert.equal(toHex(new AesSiv(key).open(sealed, ad)!), toHex(plaintext));
      const theirs = await lib.SIV.importKey(key, 'AES-SIV', polyfill);
      assert.equal(toHex(await theirs.open(sealed, ad)), toHex(plaintext), `miscreant opens ${length} bytes`);
    }
  });

  it('SIV agrees on every engine for random associated data, nonces and plaintexts (the native S2V among them)', () => {
    const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
    fc.assert(
      fc.property(
        fc.constantFrom(32, 48, 64),
        fc.array(bytes(70), { maxLength: 5 }),
        fc.option(bytes(40), { nil: null }),
        bytes(70),
        (keyLength, ad, nonce, plaintext) => {
          const key = randomBytes(keyLength);
          const sealed = ENGINES.map((engine) =>
            withEngine(engine, () => toHex(nonce === null ? new AesSiv(key).seal(plaintext, ad) : new AesSiv(key).sealWithNonce(nonce, plaintext, ad))),
          );
          for (const s of sealed) assert.equal(s, sealed[0]);
          for (const engine of ENGINES) {
            withEngine(engine, () => {
              const siv = new AesSiv(key);
              const opened = nonce === null ? siv.open(hex(sealed[0]!), ad) : siv.openWithNonce(nonce, hex(sealed[0]!), ad);
              assert.equal(toHex(opened!), toHex(plaintext), engine);
            });
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the RFC 5297 A.1 vector (deterministic) on every engine', () => {
    for (const engine of ENGINES) {
      withEngine(engine, () => {
        const siv = new AesSiv(hex('fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0 f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff'));
        const ad = [hex('10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627')];
        const sealed = siv.seal(hex('11223344 55667788 99aabbcc ddee'), ad);
        assert.equal(toHex(sealed), '85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c', engine);
      });
    }
  });

  it('the RFC 5297 A.2 vector on every engine', () => {
    for (const engine of ENGINES) withEngine(engine, () => {
      const siv = new AesSiv(hex('7f7e7d7c 7b7a7978 77767574 73727170 40414243 44454647 48494a4b 4c4d4e4f'));
      const ad = ['00112233 44556677 8899aabb ccddeeff deaddada deaddada ffeeddcc bbaa9988 77665544 33221100', '10203040 50607080 90a0'].map(hex);
      const nonce = hex('09f91102 9d74e35b d84156c5 635688c0');
      const plaintext = hex('74686973 20697320 736f6d65 20706c61 696e7465 78742074 6f20656e 63727970 74207573 696e6720 5349562d 414553');
      const sealed = siv.sealWithNonce(nonce, plaintext, ad);
      assert.equal(
        toHex(sealed),
        toHex(hex('7bdb6e3b 432667eb 06f4d14b ff2fbd0f cb900f2f ddbe4043 26601965 c889bf17 dba77ceb 094fa663 b7a3f748 ba8af829 ea64ad54 4a272e9c 485b62a3 fd5c0d')),
      );
      assert.equal(toHex(siv.openWithNonce(nonce, sealed, ad)!), toHex(plaintext));
    });
  });

  it('sealWithNonceInto writes after associated data held in the same buffer', () => {
    const siv = new AesSiv(randomBytes(32));
    const nonce = randomBytes(16);
    const plaintext = randomBytes(108);
    const buffer = new Uint8Array(84 + 16 + 108);
    buffer.set(randomBytes(84));
    const ad = buffer.subarray(0, 84);
    const expected = siv.sealWithNonce(nonce, plaintext, [Uint8Array.from(ad)]);
    siv.sealWithNonceInto(nonce, plaintext, [ad], buffer, 84);
    assert.equal(toHex(buffer.subarray(84)), toHex(expected));
    assert.throws(() => siv.sealWithNonceInto(nonce, plaintext, [ad], buffer, 85), /no room/);
  });
});
