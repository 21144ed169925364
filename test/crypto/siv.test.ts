import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AesSiv, SIV_MAX_ASSOCIATED_DATA, incrementCounter } from '../../src/crypto/siv.js';
import { UsageError } from '../../src/proto/errors.js';
import { hex, loadMiscreant, toHex } from './helpers.js';

interface Vector {
  name: string;
  key: string;
  ad: string[];
  plaintext: string;
  output: string;
}

const A2_AD = [
  '00112233 44556677 8899aabb ccddeeff deaddada deaddada ffeeddcc bbaa9988 77665544 33221100',
  '10203040 50607080 90a0',
  '09f91102 9d74e35b d84156c5 635688c0', // the nonce, last before the plaintext
];
const A2_PLAINTEXT = '74686973 20697320 736f6d65 20706c61 696e7465 78742074 6f20656e 63727970 74207573 696e6720 5349562d 414553';

const VECTORS: Vector[] = [
  {
    name: 'RFC 5297 A.1 (deterministic, 256-bit key)',
    key: 'fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0 f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff',
    ad: ['10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627'],
    plaintext: '11223344 55667788 99aabbcc ddee',
    output: '85632d07 c6e8f37f 950acd32 0a2ecc93 40c02b96 90c4dc04 daef7f6a fe5c',
  },
  {
    name: 'RFC 5297 A.2 (nonce-based, 256-bit key)',
    key: '7f7e7d7c 7b7a7978 77767574 73727170 40414243 44454647 48494a4b 4c4d4e4f',
    ad: A2_AD,
    plaintext: A2_PLAINTEXT,
    output:
      '7bdb6e3b 432667eb 06f4d14b ff2fbd0f cb900f2f ddbe4043 26601965 c889bf17 dba77ceb 094fa663 b7a3f748 ba8af829 ea64ad54 4a272e9c 485b62a3 fd5c0d',
  },
  // NIST "proposed modes" SIV test vectors, the same cases with 192- and 256-bit halves.
  {
    name: 'NIST SIV case 1, 384-bit key',
    key: 'fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0 6f6e6d6c 6b6a6968 f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff 00010203 04050607',
    ad: ['10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627'],
    plaintext: '11223344 55667788 99aabbcc ddee',
    output: '02347811 daa8b274 91f24448 932775a6 2af34a06 ac0016e8 ac284a55 14f6',
  },
  {
    name: 'NIST SIV case 1, 512-bit key',
    key: 'fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0 6f6e6d6c 6b6a6968 67666564 63626160 f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff 00010203 04050607 08090a0b 0c0d0e0f',
    ad: ['10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627'],
    plaintext: '11223344 55667788 99aabbcc ddee',
    output: 'f125274c 598065cf c26b0e71 57502908 8b035217 e380cac8 919ee800 c126',
  },
  {
    name: 'NIST SIV case 2, 384-bit key',
    key: '7f7e7d7c 7b7a7978 77767574 73727170 6f6e6d6c 6b6a6968 40414243 44454647 48494a4b 4c4d4e4f 50515253 54555657',
    ad: A2_AD,
    plaintext: A2_PLAINTEXT,
    output:
      'de40aa1e 7180d519 cb14308e a7f77586 da09877c 510f2965 1f42311a b728e956 09e7de29 94bdf80b b99bfaac e31c4ec0 d15ba650 9f53f36a d725dcab c9e2a7',
  },
  {
    name: 'NIST SIV case 2, 512-bit key',
    key: '7f7e7d7c 7b7a7978 77767574 73727170 6f6e6d6c 6b6a6968 67666564 63626160 40414243 44454647 48494a4b 4c4d4e4f 50515253 54555657 58595a5b 5b5d5e5f',
    ad: A2_AD,
    plaintext: A2_PLAINTEXT,
    output:
      '85b81673 10038db7 dc4692c0 281ca358 68181b27 62f3c24f 2efa5fb8 0cb14351 6ce6c434 b898a6fd 8eb98a41 8842f51f 66fc67de 43ac185a 66dd7247 5bbb08',
  },
];

const KEY_LENGTHS = [32, 48, 64];

function keyOf(len: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 31 + seed) & 0xff);
}

describe('AES-SIV known vectors', () => {
  for (const v of VECTORS) {
    it(v.name, () => {
      const siv = new AesSiv(hex(v.key));
      const ad = v.ad.map(hex);
      const sealed = siv.seal(hex(v.plaintext), ad);
      assert.equal(toHex(sealed), toHex(hex(v.output)));
      const opened = siv.open(sealed, ad);
      assert.ok(opened);
      assert.equal(toHex(opened), toHex(hex(v.plaintext)));
    });
  }

  it('A.1: S2V output is the published CMAC(final)', () => {
    const v = VECTORS[0]!;
    const siv = new AesSiv(hex(v.key));
    assert.equal(toHex(siv.s2v(v.ad.map(hex), hex(v.plaintext))), '85632d07c6e8f37f950acd320a2ecc93');
  });

  it('A.2 through the nonce interface: AD strings, then the nonce as the last S2V string', () => {
    const v = VECTORS[1]!;
    const siv = new AesSiv(hex(v.key));
    const [ad1, ad2, nonce] = v.ad.map(hex) as [Uint8Array, Uint8Array, Uint8Array];
    const sealed = siv.sealWithNonce(nonce, hex(v.plaintext), [ad1, ad2]);
    assert.equal(toHex(sealed), toHex(hex(v.output)));
    assert.equal(toHex(siv.openWithNonce(nonce, sealed, [ad1, ad2])!), toHex(hex(v.plaintext)));
    // Moving the nonce anywhere else changes the result.
    assert.equal(siv.openWithNonce(ad2, sealed, [ad1, nonce]), null);
    assert.equal(siv.open(sealed, [nonce, ad1, ad2]), null);
  });
});

describe('AES-SIV round trips and failures', () => {
  it('every key size round-trips plaintexts of 0..70 bytes and on both sides of the CTR path switch', () => {
    for (const keyLen of KEY_LENGTHS) {
      const siv = new AesSiv(keyOf(keyLen));
      const lengths = [...Array.from({ length: 71 }, (_, i) => i), 176, 191, 192, 193, 208, 511, 512, 513, 1000, 4099];
      for (const len of lengths) {
        const p = Uint8Array.from({ length: len }, (_, i) => (i * 13 + len) & 0xff);
        const ad = [new Uint8Array(len % 7), keyOf(48, len)];
        const sealed = siv.seal(p, ad);
        assert.equal(sealed.length, len + 16);
        assert.equal(toHex(siv.open(sealed, ad)!), toHex(p), `key ${keyLen}, len ${len}`);
        const nonce = keyOf(16, len);
        const withNonce = siv.sealWithNonce(nonce, p, ad);
        assert.equal(toHex(siv.openWithNonce(nonce, withNonce, ad)!), toHex(p));
      }
    }
  });

  it('no AD at all, and empty AD strings, are distinct inputs', () => {
    const siv = new AesSiv(keyOf(32));
    const p = hex('00112233');
    const none = siv.seal(p);
    const oneEmpty = siv.seal(p, [new Uint8Array(0)]);
    const twoEmpty = siv.seal(p, [new Uint8Array(0), new Uint8Array(0)]);
    assert.notEqual(toHex(none), toHex(oneEmpty));
    assert.notEqual(toHex(oneEmpty), toHex(twoEmpty));
    assert.equal(siv.open(oneEmpty, []), null);
    assert.equal(siv.open(oneEmpty, [new Uint8Array(0), new Uint8Array(0)]), null);
    assert.equal(toHex(siv.open(twoEmpty, [new Uint8Array(0), new Uint8Array(0)])!), '00112233');
  });

  it('flipping any bit of tag, ciphertext, AD or nonce makes open fail', () => {
    for (const keyLen of KEY_LENGTHS) {
      const siv = new AesSiv(keyOf(keyLen));
      const ad = keyOf(48, 3);
      const nonce = keyOf(16, 4);
      const p = keyOf(104, 5);
      const sealed = siv.sealWithNonce(nonce, p, [ad]);
      for (let i = 0; i < sealed.length; i++) {
        const t = Uint8Array.from(sealed);
        t[i]! ^= 1 << (i % 8);
        assert.equal(siv.openWithNonce(nonce, t, [ad]), null, `sealed byte ${i}`);
      }
      for (let i = 0; i < ad.length; i++) {
        const t = Uint8Array.from(ad);
        t[i]! ^= 0x80 >> (i % 8);
        assert.equal(siv.openWithNonce(nonce, sealed, [t]), null, `ad byte ${i}`);
      }
      for (let i = 0; i < nonce.length; i++) {
        const t = Uint8Array.from(nonce);
        t[i]! ^= 1;
        assert.equal(siv.openWithNonce(t, sealed, [ad]), null, `nonce byte ${i}`);
      }
      assert.equal(siv.openWithNonce(nonce, sealed.subarray(0, sealed.length - 1), [ad]), null, 'truncated');
      assert.equal(siv.openWithNonce(nonce, Uint8Array.from([...sealed, 0]), [ad]), null, 'extended');
      assert.equal(siv.openWithNonce(nonce.subarray(1), sealed, [ad]), null, 'short nonce');
      assert.equal(siv.openWithNonce(nonce, sealed, [ad.subarray(0, 47)]), null, 'short AD');
      assert.equal(siv.openWithNonce(nonce, sealed, []), null, 'AD missing');
      assert.equal(siv.openWithNonce(nonce, sealed, [ad, ad]), null, 'AD added');
      assert.equal(toHex(siv.openWithNonce(nonce, sealed, [ad])!), toHex(p), 'still opens untouched');
    }
  });

  it('inputs shorter than the tag give null, not an exception', () => {
    const siv = new AesSiv(keyOf(64));
    for (let len = 0; len < 16; len++) {
      assert.equal(siv.open(new Uint8Array(len), []), null);
      assert.equal(siv.openWithNonce(new Uint8Array(16), new Uint8Array(len)), null);
    }
    // Exactly a tag and no ciphertext: the empty plaintext's seal opens, a random tag does not.
    assert.equal(siv.open(new Uint8Array(16)), null);
    assert.equal(siv.open(siv.seal(new Uint8Array(0)))?.length, 0);
  });

  it('rejects bad key lengths and too many AD strings with UsageError', () => {
    for (const len of [0, 16, 24, 31, 33, 47, 49, 63, 65, 128]) {
      assert.throws(() => new AesSiv(new Uint8Array(len)), (e: unknown) => e instanceof UsageError && e.code === 'CRYPTO_BAD_KEY_LENGTH');
    }
    const siv = new AesSiv(keyOf(32));
    const max = Array.from({ length: SIV_MAX_ASSOCIATED_DATA }, () => new Uint8Array(1));
    const tooMany = [...max, new Uint8Array(1)];
    assert.ok(siv.open(siv.seal(new Uint8Array(3), max), max));
    const isTooMany = (e: unknown): boolean => e instanceof UsageError && e.code === 'CRYPTO_TOO_MANY_AD';
    assert.throws(() => siv.seal(new Uint8Array(3), tooMany), isTooMany);
    assert.throws(() => siv.open(new Uint8Array(19), tooMany), isTooMany);
    assert.throws(() => siv.sealWithNonce(new Uint8Array(16), new Uint8Array(3), max), isTooMany);
  });

  it('the plaintext may be read-only data the caller keeps using; outputs do not alias inputs', () => {
    const siv = new AesSiv(keyOf(32));
    const p = keyOf(40, 9);
    const before = toHex(p);
    const sealed = siv.seal(p, [p]);
    assert.equal(toHex(p), before);
    const opened = siv.open(sealed, [p])!;
    opened.fill(0);
    assert.equal(toHex(siv.open(sealed, [p])!), before);
  });

  it('incrementCounter carries across all 16 bytes and wraps modulo 2^128', () => {
    const b = hex('00000000 00000000 7fffffff ffffffff');
    incrementCounter(b);
    assert.equal(toHex(b), '00000000000000008000000000000000');
    const top = hex('ffffffff ffffffff ffffffff ffffffff');
    incrementCounter(top);
    assert.equal(toHex(top), '00000000000000000000000000000000');
    const inner = hex('aa 00000000 00000000 000000ff ffffffff bb');
    incrementCounter(inner, 1);
    assert.equal(toHex(inner), 'aa' + '00000000000000000000010000000000' + 'bb');
  });
});

describe('AES-SIV properties', () => {
  const key = (lens: number[]) => fc.constantFrom(...lens).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
  const ads = fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 });

  it('random keys, AD vectors and plaintexts round-trip at every key size', () => {
    fc.assert(
      fc.property(key(KEY_LENGTHS), ads, fc.uint8Array({ maxLength: 600 }), (k, ad, p) => {
        const siv = new AesSiv(k);
        assert.equal(toHex(siv.open(siv.seal(p, ad), ad)!), toHex(p));
      }),
      { numRuns: 150 },
    );
  });

  it('mutated sealed input, nonce or AD never throws and never opens', () => {
    const siv = new AesSiv(keyOf(32));
    const nonce = keyOf(16, 7);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }),
        fc.uint8Array({ maxLength: 60 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.constantFrom('sealed', 'ad', 'nonce'),
        (p, ad, pos, mask, where) => {
          const sealed = siv.sealWithNonce(nonce, p, [ad]);
          const s = Uint8Array.from(sealed);
          const a = Uint8Array.from(ad);
          const n = Uint8Array.from(nonce);
          const target = where === 'sealed' ? s : where === 'ad' ? a : n;
          if (target.length === 0) return;
          target[pos % target.length]! ^= mask;
          assert.equal(siv.openWithNonce(n, s, [a]), null);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes never throw on open', () => {
    const siv = new AesSiv(keyOf(48));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), ads, fc.uint8Array({ maxLength: 32 }), (s, ad, nonce) => {
        assert.equal(siv.open(s, ad), null);
        assert.equal(siv.openWithNonce(nonce, s, ad), null);
      }),
      { numRuns: 200 },
    );
  });

  for (const provider of ['polyfill', 'webcrypto'] as const) {
    it(`agrees with miscreant (${provider}) in both directions, 256- and 512-bit keys`, async () => {
      const m = await loadMiscreant();
      await fc.assert(
        fc.asyncProperty(key([32, 64]), ads, fc.uint8Array({ maxLength: provider === 'polyfill' ? 600 : 200 }), async (k, ad, p) => {
          const ours = new AesSiv(k);
          const theirs = await m.lib.SIV.importKey(k, 'AES-SIV', m[provider]);
          const sealedByUs = ours.seal(p, ad);
          const sealedByThem = await theirs.seal(p, ad);
          assert.equal(toHex(sealedByUs), toHex(sealedByThem));
          assert.equal(toHex(await theirs.open(sealedByUs, ad)), toHex(p));
          assert.equal(toHex(ours.open(sealedByThem, ad)!), toHex(p));
        }),
        { numRuns: provider === 'polyfill' ? 80 : 25 },
      );
    });
  }

  it('agrees with miscreant AEAD (AD then nonce) on NTP-sized messages', async () => {
    const m = await loadMiscreant();
    await fc.assert(
      fc.asyncProperty(
        key([32, 64]),
        fc.uint8Array({ minLength: 16, maxLength: 32 }),
        fc.uint8Array({ minLength: 48, maxLength: 300 }),
        fc.uint8Array({ maxLength: 200 }),
        async (k, nonce, ad, p) => {
          const theirs = await m.lib.AEAD.importKey(k, 'AES-SIV', m.polyfill);
          const ours = new AesSiv(k);
          const a = ours.sealWithNonce(nonce, p, [ad]);
          assert.equal(toHex(a), toHex(await theirs.seal(p, nonce, ad)));
          assert.equal(toHex(await theirs.open(a, nonce, ad)), toHex(p));
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('AES-SIV output type', () => {
  it('returns plain Uint8Arrays (not Buffers), so deepStrictEqual against Uint8Array works', () => {
    const siv = new AesSiv(keyOf(32));
    const p = Uint8Array.of(1, 2, 3);
    const sealed = siv.seal(p);
    assert.equal(Object.getPrototypeOf(sealed), Uint8Array.prototype);
    assert.deepEqual(siv.open(sealed), p);
    assert.deepEqual(siv.open(siv.seal(new Uint8Array(300))), new Uint8Array(300));
  });

  it('outputs stay intact while many more are made (no buffer is handed out twice)', () => {
    const siv = new AesSiv(keyOf(32));
    const kept = Array.from({ length: 400 }, (_, i) => {
      const p = new Uint8Array(i % 300).fill(i & 0xff);
      return { p, sealed: siv.seal(p), opened: siv.open(siv.seal(p)) };
    });
    for (const k of kept) {
      assert.deepEqual(k.opened, k.p);
      assert.deepEqual(siv.open(k.sealed), k.p);
    }
  });
});
