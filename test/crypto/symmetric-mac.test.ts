import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import fc from 'fast-check';
import { computeSymmetricMac, PreparedMac, SYMMETRIC_MAC_DIGEST_LENGTH, verifySymmetricMac, type SymmetricMacAlgorithm } from '../../src/crypto/symmetric-mac.js';
import { UsageError } from '../../src/proto/errors.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const text = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

test('MD5 and SHA1: the digest of key ‖ message (not HMAC), as node:crypto computes it', () => {
  const key = text('mode6-control');
  const message = hex('16021003000000000000000f76657273696f6e2c7374726174756d0000000000');
  const md5 = computeSymmetricMac({ algorithm: 'MD5', key }, message);
  assert.deepEqual(md5, new Uint8Array(createHash('md5').update(key).update(message).digest()));
  // The same MAC NTPsec 1.2.2 accepted on a captured request (test/proto/mode6-packet.test.ts).
  assert.deepEqual(md5, hex('7135b8e2b2dc0de32001e7e4209c2198'));
  const sha1Key = hex('0123456789abcdef0123456789abcdef01234567');
  const sha1 = computeSymmetricMac({ algorithm: 'SHA1', key: sha1Key }, message.subarray(0, 10), message.subarray(10));
  assert.deepEqual(sha1, new Uint8Array(createHash('sha1').update(sha1Key).update(message).digest()));
  assert.equal(md5.length, SYMMETRIC_MAC_DIGEST_LENGTH.MD5);
  assert.equal(sha1.length, SYMMETRIC_MAC_DIGEST_LENGTH.SHA1);
});

test('AES128CMAC is RFC 4493 AES-CMAC (RFC 8573): §4 example 2', () => {
  const key = hex('2b7e1516 28aed2a6 abf71588 09cf4f3c');
  const mac = computeSymmetricMac({ algorithm: 'AES128CMAC', key }, hex('6bc1bee2 2e409f96 e93d7e11 7393172a'));
  assert.deepEqual(mac, hex('070a16b4 6b4d4144 f79bdd9d d04a287c'));
  assert.equal(mac.length, SYMMETRIC_MAC_DIGEST_LENGTH.AES128CMAC);
});

test('verify: constant-time compare; a wrong digest, key or length is false', () => {
  const key = { algorithm: 'SHA1' as const, key: text('secret') };
  const message = text('some mode 6 packet');
  const good = computeSymmetricMac(key, message);
  assert.ok(verifySymmetricMac(key, message, good));
  const flipped = good.slice();
  flipped[19] = (flipped[19] as number) ^ 1;
  assert.ok(!verifySymmetricMac(key, message, flipped));
  assert.ok(!verifySymmetricMac(key, message, good.subarray(0, 16)));
  assert.ok(!verifySymmetricMac({ ...key, key: text('secreT') }, message, good));
  assert.ok(!verifySymmetricMac({ ...key, algorithm: 'MD5' }, message, good));
});

test('unusable keys are caller errors', () => {
  assert.throws(() => computeSymmetricMac({ algorithm: 'AES128CMAC', key: new Uint8Array(10) }, new Uint8Array(1)), (e: unknown) => e instanceof UsageError && e.code === 'MAC_BAD_KEY_LENGTH');
  assert.throws(() => computeSymmetricMac({ algorithm: 'MD5', key: new Uint8Array(0) }, new Uint8Array(1)), UsageError);
  assert.throws(() => computeSymmetricMac({ algorithm: 'SHA256' as SymmetricMacAlgorithm, key: new Uint8Array(4) }, new Uint8Array(1)), (e: unknown) => e instanceof UsageError && e.code === 'MAC_UNKNOWN_ALGORITHM');
});

/** AES-CMAC straight from RFC 4493 §2.4 with node's AES-ECB, as an independent reference. */
function referenceCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  const ecb = (block: Uint8Array): Uint8Array => {
    const c = createCipheriv('aes-128-ecb', key, null);
    c.setAutoPadding(false);
    return new Uint8Array(c.update(block));
  };
  const dbl = (b: Uint8Array): Uint8Array => {
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = (((b[i] as number) << 1) | ((b[i + 1] ?? 0) >> 7)) & 0xff;
    if (((b[0] as number) & 0x80) !== 0) out[15] = (out[15] as number) ^ 0x87;
    return out;
  };
  const k1 = dbl(ecb(new Uint8Array(16)));
  const k2 = dbl(k1);
  const n = Math.max(1, Math.ceil(message.length / 16));
  const complete = message.length > 0 && message.length % 16 === 0;
  let x: Uint8Array = new Uint8Array(16);
  for (let i = 0; i < n; i++) {
    const block = new Uint8Array(16);
    const part = message.subarray(i * 16, i * 16 + 16);
    block.set(part);
    if (i === n - 1) {
      if (!complete) block[part.length] = 0x80;
      const sub = complete ? k1 : k2;
      for (let j = 0; j < 16; j++) block[j] = (block[j] as number) ^ (sub[j] as number);
    }
    for (let j = 0; j < 16; j++) block[j] = (block[j] as number) ^ (x[j] as number);
    x = ecb(block);
  }
  return x;
}

test('property: every algorithm matches an independent computation, for any key and message split', () => {
  fc.assert(
    fc.property(
      fc.constantFrom<SymmetricMacAlgorithm>('MD5', 'SHA1', 'AES128CMAC'),
      fc.uint8Array({ minLength: 1, maxLength: 32 }),
      fc.uint8Array({ maxLength: 600 }),
      fc.nat(),
      (algorithm, rawKey, message, cut) => {
        const key = algorithm === 'AES128CMAC' ? Uint8Array.from({ length: 16 }, (_, i) => rawKey[i % rawKey.length] as number) : rawKey;
        const at = message.length === 0 ? 0 : cut % (message.length + 1);
        const mac = computeSymmetricMac({ algorithm, key }, message.subarray(0, at), message.subarray(at));
        const expected =
          algorithm === 'AES128CMAC' ? referenceCmac(key, message) : new Uint8Array(createHash(algorithm === 'MD5' ? 'md5' : 'sha1').update(key).update(message).digest());
        assert.deepEqual(mac, expected);
        assert.ok(verifySymmetricMac({ algorithm, key }, message, mac));
      },
    ),
    { numRuns: 300 },
  );
});

// --- PreparedMac ------------------------------------------------------------------------------------------------

test('PreparedMac: RFC 4493 §4 AES-CMAC examples 1-4 (the RFC 8573 NTP MAC), the same instance for all', () => {
  const mac = new PreparedMac({ keyId: 7, algorithm: 'AES128CMAC', key: hex('2b7e1516 28aed2a6 abf71588 09cf4f3c') });
  assert.equal(mac.keyId, 7);
  assert.equal(mac.algorithm, 'AES128CMAC');
  assert.equal(mac.digestLength, 16);
  const message = hex(`6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51
                       30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710`);
  const examples: Array<[number, string]> = [
    [0, 'bb1d6929 e9593728 7fa37d12 9b756746'],
    [16, '070a16b4 6b4d4144 f79bdd9d d04a287c'],
    [40, 'dfa66747 de9ae630 30ca3261 1497c827'],
    [64, '51f0bebf 7e3b9d92 fc497417 79363cfe'],
  ];
  // Twice round, so a subkey or chaining state left over from one message would show in the next.
  for (let round = 0; round < 2; round++) {
    for (const [length, tag] of examples) {
      assert.deepEqual(mac.compute(message.subarray(0, length)), hex(tag), `example of ${length} octets`);
      assert.ok(mac.verify(message.subarray(0, length), hex(tag)));
    }
  }
});

test('PreparedMac: same digests as computeSymmetricMac, for any algorithm, key and message', () => {
  fc.assert(
    fc.property(
      fc.constantFrom<SymmetricMacAlgorithm>('MD5', 'SHA1', 'AES128CMAC'),
      fc.uint8Array({ minLength: 1, maxLength: 32 }),
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 3 }),
      (algorithm, rawKey, messages) => {
        const key = algorithm === 'AES128CMAC' ? Uint8Array.from({ length: 16 }, (_, i) => rawKey[i % rawKey.length] as number) : rawKey;
        const prepared = new PreparedMac({ keyId: 1, algorithm, key });
        assert.equal(prepared.digestLength, SYMMETRIC_MAC_DIGEST_LENGTH[algorithm]);
        for (const message of messages) {
          const expected = computeSymmetricMac({ algorithm, key }, message);
          assert.deepEqual(prepared.compute(message), expected);
          assert.ok(prepared.verify(message, expected));
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('PreparedMac: verify refuses a changed digest, message or length; the key is copied at construction', () => {
  for (const algorithm of ['MD5', 'SHA1', 'AES128CMAC'] as const) {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const prepared = new PreparedMac({ keyId: 3, algorithm, key });
    const message = text('an NTP request header, 48 octets or so');
    const good = prepared.compute(message);
    key.fill(0); // must not change the prepared key
    assert.deepEqual(prepared.compute(message), good, `${algorithm}: key copied`);
    const flipped = good.slice();
    flipped[0] = (flipped[0] as number) ^ 0x80;
    assert.ok(!prepared.verify(message, flipped), `${algorithm}: flipped digest`);
    assert.ok(!prepared.verify(text('an NTP request header, 48 octets or sO'), good), `${algorithm}: changed message`);
    assert.ok(!prepared.verify(message, good.subarray(0, good.length - 1)), `${algorithm}: short digest`);
    assert.ok(!prepared.verify(message, Uint8Array.from([...good, 0])), `${algorithm}: long digest`);
    assert.ok(!prepared.verify(message, new Uint8Array(0)), `${algorithm}: empty digest`);
  }
});

test('PreparedMac: unusable keys are caller errors, as for computeSymmetricMac', () => {
  assert.throws(() => new PreparedMac({ keyId: 1, algorithm: 'AES128CMAC', key: new Uint8Array(20) }), (e: unknown) => e instanceof UsageError && e.code === 'MAC_BAD_KEY_LENGTH');
  assert.throws(() => new PreparedMac({ keyId: 1, algorithm: 'SHA1', key: new Uint8Array(0) }), (e: unknown) => e instanceof UsageError && e.code === 'MAC_BAD_KEY_LENGTH');
  assert.throws(() => new PreparedMac({ keyId: 1, algorithm: 'SHA256' as SymmetricMacAlgorithm, key: new Uint8Array(4) }), (e: unknown) => e instanceof UsageError && e.code === 'MAC_UNKNOWN_ALGORITHM');
});
