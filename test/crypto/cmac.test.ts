import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Cmac, aesCmac, dbl } from '../../src/crypto/cmac.js';
import { UsageError } from '../../src/proto/errors.js';
import { hex, loadMiscreant, referenceCmac, toHex } from './helpers.js';

// RFC 4493 §4 (AES-128) and NIST SP 800-38B Appendix D.2/D.3 (AES-192/256): one message, four prefixes.
const MESSAGE = hex(`6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51
                     30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710`);
const VECTORS = [
  {
    name: 'RFC 4493 §4 AES-128',
    key: '2b7e1516 28aed2a6 abf71588 09cf4f3c',
    tags: ['bb1d6929 e9593728 7fa37d12 9b756746', '070a16b4 6b4d4144 f79bdd9d d04a287c', 'dfa66747 de9ae630 30ca3261 1497c827', '51f0bebf 7e3b9d92 fc497417 79363cfe'],
  },
  {
    name: 'SP 800-38B AES-192',
    key: '8e73b0f7 da0e6452 c810f32b 809079e5 62f8ead2 522c6b7b',
    tags: ['d17ddf46 adaacde5 31cac483 de7a9367', '9e99a7bf 31e71090 0662f65e 617c5184', '8a1de5be 2eb31aad 089a82e6 ee908b0e', 'a1d5df0e ed790f79 4d775896 59f39a11'],
  },
  {
    name: 'SP 800-38B AES-256',
    key: '603deb10 15ca71be 2b73aef0 857d7781 1f352c07 3b6108d7 2d9810a3 0914dff4',
    tags: ['028962f6 1b7bf89e fc6b551f 4667d983', '28a7023f 452e8f82 bd4bf28d 8c37c35c', 'aaf3d8f1 de5640c2 32f5b169 b9c911e6', 'e1992190 549f6ed5 696a2c05 6c315410'],
  },
];
const LENGTHS = [0, 16, 40, 64];

describe('AES-CMAC known vectors', () => {
  for (const v of VECTORS) {
    it(`${v.name}: Mlen 0, 16, 40, 64`, () => {
      const cmac = new Cmac(hex(v.key));
      LENGTHS.forEach((len, i) => {
        assert.equal(toHex(cmac.mac(MESSAGE.subarray(0, len))), toHex(hex(v.tags[i]!)), `Mlen ${len}`);
      });
      // Again, in reverse order, on the same instance: no state may leak between messages.
      for (let i = LENGTHS.length - 1; i >= 0; i--) {
        assert.equal(toHex(cmac.mac(MESSAGE.subarray(0, LENGTHS[i]))), toHex(hex(v.tags[i]!)));
      }
    });
  }

  it('RFC 4493 §4 subkeys: dbl(L) = K1, dbl(K1) = K2', () => {
    const b = hex('7df76b0c 1ab899b3 3e42f047 b91b546f');
    dbl(b);
    assert.equal(toHex(b), 'fbeed618357133667c85e08f7236a8de');
    dbl(b);
    assert.equal(toHex(b), 'f7ddac306ae266ccf90bc11ee46d513b');
  });

  it('one-shot aesCmac matches', () => {
    assert.equal(toHex(aesCmac(hex(VECTORS[0]!.key), MESSAGE.subarray(0, 40))), 'dfa66747de9ae63030ca32611497c827');
  });
});

describe('AES-CMAC streaming', () => {
  const key = hex(VECTORS[0]!.key);

  it('splitting the message at every offset gives the same tag', () => {
    const cmac = new Cmac(key);
    const want = toHex(hex(VECTORS[0]!.tags[3]!));
    for (let i = 0; i <= MESSAGE.length; i++) {
      assert.equal(toHex(cmac.update(MESSAGE.subarray(0, i)).update(MESSAGE.subarray(i)).digest()), want, `split at ${i}`);
      assert.equal(toHex(cmac.mac(MESSAGE.subarray(0, i), MESSAGE.subarray(i))), want);
    }
  });

  it('messages longer than the internal buffer, fed whole and byte by byte', () => {
    const cmac = new Cmac(key);
    for (const len of [2047, 2048, 2049, 4096, 4097, 5000]) {
      const m = Uint8Array.from({ length: len }, (_, i) => (i * 7 + len) & 0xff);
      const want = toHex(referenceCmac(key, m));
      assert.equal(toHex(cmac.mac(m)), want, `len ${len}`);
      for (let i = 0; i < m.length; i += 333) cmac.update(m.subarray(i, i + 333));
      assert.equal(toHex(cmac.digest()), want, `len ${len} in pieces`);
    }
  });

  it('reset() drops a partial message, even one already partly fed to the cipher', () => {
    const cmac = new Cmac(key);
    cmac.update(new Uint8Array(5000).fill(9));
    cmac.reset();
    assert.equal(toHex(cmac.mac(MESSAGE.subarray(0, 16))), toHex(hex(VECTORS[0]!.tags[1]!)));
  });

  it('instances under different keys interleave', () => {
    const a = new Cmac(hex(VECTORS[0]!.key));
    const b = new Cmac(hex(VECTORS[2]!.key));
    a.update(MESSAGE.subarray(0, 20));
    b.update(MESSAGE.subarray(0, 30));
    a.update(MESSAGE.subarray(20, 40));
    b.update(MESSAGE.subarray(30, 64));
    assert.equal(toHex(b.digest()), toHex(hex(VECTORS[2]!.tags[3]!)));
    assert.equal(toHex(a.digest()), toHex(hex(VECTORS[0]!.tags[2]!)));
  });

  it('the returned tag is not aliased by later calls', () => {
    const cmac = new Cmac(key);
    const t1 = cmac.mac(MESSAGE.subarray(0, 16));
    const copy = toHex(t1);
    cmac.mac(MESSAGE);
    t1.fill(0);
    assert.equal(toHex(t1), '00000000000000000000000000000000');
    assert.equal(toHex(cmac.mac(MESSAGE.subarray(0, 16))), copy);
  });

  it('rejects keys that are not 16, 24 or 32 bytes', () => {
    for (const len of [0, 1, 15, 17, 20, 31, 33, 64]) {
      assert.throws(() => new Cmac(new Uint8Array(len)), (e: unknown) => e instanceof UsageError && e.code === 'CRYPTO_BAD_KEY_LENGTH');
    }
  });
});

describe('AES-CMAC properties', () => {
  it('equals the textbook reference for random keys, messages and splits', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(),
        (key, m, cut) => {
          const cmac = new Cmac(key);
          const want = toHex(referenceCmac(key, m));
          const at = m.length === 0 ? 0 : cut % (m.length + 1);
          assert.equal(toHex(cmac.mac(m)), want);
          assert.equal(toHex(cmac.update(m.subarray(0, at)).update(m.subarray(at)).digest()), want);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('agrees with miscreant (pure JavaScript AES) for AES-128 and AES-256 keys', async () => {
    const { lib, polyfill } = await loadMiscreant();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(16, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ maxLength: 200 }),
        async (key, m) => {
          const theirs = await (await (await lib.CMAC.importKey(polyfill, key)).update(m)).finish();
          assert.equal(toHex(new Cmac(key).mac(m)), toHex(theirs));
        },
      ),
      { numRuns: 60 },
    );
  });
});
