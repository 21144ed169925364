import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AEAD_AES_SIV_CMAC_256,
  AEAD_AES_SIV_CMAC_384,
  AEAD_AES_SIV_CMAC_512,
  AEAD_ALGORITHMS,
  aeadById,
  aeadByName,
  createAead,
  decodeAeadId,
  encodeAeadId,
} from '../../src/crypto/aead.js';
import { AesSiv } from '../../src/crypto/siv.js';
import { UsageError } from '../../src/proto/errors.js';
import { hex, loadMiscreant, toHex } from './helpers.js';

const TABLE = [
  { id: 15, name: 'AES-SIV-CMAC-256', ianaName: 'AEAD_AES_SIV_CMAC_256', keyLength: 32 },
  { id: 16, name: 'AES-SIV-CMAC-384', ianaName: 'AEAD_AES_SIV_CMAC_384', keyLength: 48 },
  { id: 17, name: 'AES-SIV-CMAC-512', ianaName: 'AEAD_AES_SIV_CMAC_512', keyLength: 64 },
] as const;

describe('AEAD registry', () => {
  it('ids, names and lengths match the IANA registry (RFC 5297 §6)', () => {
    assert.deepEqual([AEAD_AES_SIV_CMAC_256, AEAD_AES_SIV_CMAC_384, AEAD_AES_SIV_CMAC_512], [15, 16, 17]);
    assert.equal(AEAD_ALGORITHMS.length, 3);
    for (const row of TABLE) {
      const a = aeadById(row.id);
      assert.ok(a);
      assert.deepEqual(
        { id: a.id, name: a.name, ianaName: a.ianaName, keyLength: a.keyLength },
        { id: row.id, name: row.name, ianaName: row.ianaName, keyLength: row.keyLength },
      );
      assert.equal(a.nonceLength, 16);
      assert.equal(a.tagLength, 16);
      assert.equal(a.minNonceLength, 1);
      assert.equal(aeadByName(row.name), a);
      assert.equal(aeadByName(row.ianaName), a);
    }
    assert.equal(AEAD_ALGORITHMS[0]?.id, 15, 'the mandatory algorithm is preferred');
  });

  it('unknown ids and names are reported, not mapped to a default', () => {
    for (const id of [0, 1, 2, 14, 18, 30, 32768, 65535]) assert.equal(aeadById(id), undefined);
    for (const name of ['', 'aes-siv-cmac-256', 'AES-128-GCM', 'AES-SIV-CMAC-128']) assert.equal(aeadByName(name), undefined);
  });

  it('decodeAeadId keeps unknown values and encodeAeadId gives every value back', () => {
    assert.deepEqual(decodeAeadId(30), { unknown: 30 });
    assert.deepEqual(decodeAeadId(15), { known: aeadById(15) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (id) => {
        assert.equal(encodeAeadId(decodeAeadId(id)), id);
      }),
      { numRuns: 300 },
    );
  });

  it('createAead refuses unknown algorithms and wrong key lengths', () => {
    const code = (c: string) => (e: unknown) => e instanceof UsageError && e.code === c;
    assert.throws(() => createAead(1, new Uint8Array(16)), code('CRYPTO_UNKNOWN_AEAD'));
    assert.throws(() => createAead(15, new Uint8Array(64)), code('CRYPTO_BAD_KEY_LENGTH'));
    assert.throws(() => createAead(17, new Uint8Array(32)), code('CRYPTO_BAD_KEY_LENGTH'));
    const a = aeadById(16)!;
    assert.equal(createAead(a, new Uint8Array(48)).algorithm, a);
  });
});

describe('AEAD seal/open (RFC 5116 interface)', () => {
  it('lays out S2V as (AD, nonce, P) (RFC 5297 §6, RFC 8915 §5.6)', () => {
    const key = hex('7f7e7d7c 7b7a7978 77767574 73727170 40414243 44454647 48494a4b 4c4d4e4f');
    const nonce = hex('09f91102 9d74e35b d84156c5 635688c0');
    const ad = hex('00112233 44556677 8899aabb ccddeeff deaddada deaddada ffeeddcc bbaa9988 77665544 33221100');
    const p = hex('74686973 20697320 736f6d65 20706c61');
    const aead = createAead(AEAD_AES_SIV_CMAC_256, key);
    assert.equal(toHex(aead.seal(nonce, p, ad)), toHex(new AesSiv(key).seal(p, [ad, nonce])));
    assert.equal(toHex(aead.seal(nonce, p)), toHex(new AesSiv(key).seal(p, [new Uint8Array(0), nonce])), 'absent AD is one empty string');
  });

  it('round trips at every key size; tampering and short inputs give null', () => {
    for (const row of TABLE) {
      const key = Uint8Array.from({ length: row.keyLength }, (_, i) => i);
      const aead = createAead(row.id, key);
      const nonce = new Uint8Array(16).fill(7);
      const ad = new Uint8Array(48).fill(0x23);
      const p = new Uint8Array(104).fill(0x42);
      const c = aead.seal(nonce, p, ad);
      assert.equal(c.length, p.length + aead.algorithm.tagLength);
      assert.equal(toHex(aead.open(nonce, c, ad)!), toHex(p));
      const bad = Uint8Array.from(c);
      bad[20]! ^= 1;
      assert.equal(aead.open(nonce, bad, ad), null);
      assert.equal(aead.open(nonce, c, ad.subarray(1)), null);
      assert.equal(aead.open(nonce.subarray(0, 15), c, ad), null);
      assert.equal(aead.open(new Uint8Array(0), c, ad), null, 'nonce under N_MIN');
      assert.equal(aead.open(nonce, c.subarray(0, 15), ad), null);
      assert.throws(() => aead.seal(new Uint8Array(0), p, ad), (e: unknown) => e instanceof UsageError && e.code === 'CRYPTO_BAD_NONCE_LENGTH');
    }
  });

  it('agrees with miscreant AEAD both ways (256- and 512-bit keys)', async () => {
    const m = await loadMiscreant();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(32, 64).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 200 }),
        async (key, nonce, ad, p) => {
          const ours = createAead(key.length === 32 ? 15 : 17, key);
          const theirs = await m.lib.AEAD.importKey(key, 'AES-SIV', m.polyfill);
          const c = ours.seal(nonce, p, ad);
          assert.equal(toHex(await theirs.open(c, nonce, ad)), toHex(p));
          assert.equal(toHex(ours.open(nonce, await theirs.seal(p, nonce, ad), ad)!), toHex(p));
        },
      ),
      { numRuns: 50 },
    );
  });
});
