import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { KeyRing, parseKeyRing } from '../../src/crypto/keyring.js';
import { cookieLength, openCookie, sealCookie } from '../../src/proto/nts/cookie.js';

const DAY = 86_400_000_000;
const policy = { rotationMicros: DAY, keysKept: 2 };
const random = (n: number) => new Uint8Array(randomBytes(n));

test('rotation keeps keysKept old keys and drops the rest', () => {
  const ring = KeyRing.create(0, random);
  assert.equal(ring.due(DAY - 1, policy), false);
  assert.equal(ring.due(DAY, policy), true);
  const first = ring.current;
  ring.rotate(DAY, random, policy);
  ring.rotate(2 * DAY, random, policy);
  assert.equal(ring.keys.length, 3);
  assert.ok(ring.get(first.id));
  const { dropped } = ring.rotate(3 * DAY, random, policy);
  assert.deepEqual(dropped.map((k) => k.id), [first.id]);
  assert.equal(ring.get(first.id), undefined);
  assert.equal(ring.keys.length, 3);
});

test('a clock stepped far back makes a rotation due', () => {
  const ring = KeyRing.create(10 * DAY, random);
  assert.equal(ring.due(8 * DAY, policy), true);
});

test('serialize and parse round trip', () => {
  const ring = KeyRing.create(5, random);
  ring.rotate(7, random, policy);
  const parsed = parseKeyRing(ring.serialize());
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.keys, ring.keys);
  assert.equal(parsed.value.current.id, ring.current.id);
});

const corrupt: Array<[string, string, string]> = [
  ['not JSON', '{', 'KEYRING_NOT_JSON'],
  ['wrong format', '{"format":"x","version":1,"keys":[]}', 'KEYRING_BAD_FORMAT'],
  ['future version', '{"format":"ntptsd-keyring","version":9,"keys":[]}', 'KEYRING_BAD_VERSION'],
  ['no keys', '{"format":"ntptsd-keyring","version":1,"keys":[]}', 'KEYRING_NO_KEYS'],
  ['short key', '{"format":"ntptsd-keyring","version":1,"keys":[{"id":1,"created":0,"key":"AAAA"}]}', 'KEYRING_BAD_KEY'],
  ['negative id', `{"format":"ntptsd-keyring","version":1,"keys":[{"id":-1,"created":0,"key":"${'A'.repeat(43)}="}]}`, 'KEYRING_BAD_KEY'],
  ['duplicate id', `{"format":"ntptsd-keyring","version":1,"keys":[{"id":1,"created":0,"key":"${'A'.repeat(43)}="},{"id":1,"created":1,"key":"${'A'.repeat(43)}="}]}`, 'KEYRING_DUPLICATE_ID'],
];
for (const [name, text, code] of corrupt) {
  test(`a corrupt key ring is refused: ${name}`, () => {
    const parsed = parseKeyRing(text);
    assert.equal(parsed.ok, false);
    if (!parsed.ok) assert.equal(parsed.error.code, code);
  });
}

test('property: parseKeyRing never throws', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => void parseKeyRing(text)), { numRuns: 500 });
});

for (const [aead, keyLength] of [[15, 32], [16, 48], [17, 64]] as const) {
  test(`cookie for AEAD ${aead} seals, opens, and is a multiple of 4 bytes`, () => {
    const ring = KeyRing.create(0, random);
    const keys = { aead, c2s: random(keyLength), s2c: random(keyLength) };
    const cookie = sealCookie(ring, keys, random(16));
    assert.equal(cookie.length, cookieLength(aead));
    assert.equal(cookie.length % 4, 0);
    const opened = openCookie(ring, cookie);
    assert.ok(opened.ok);
    assert.equal(opened.keys.aead, aead);
    assert.ok(Buffer.from(opened.keys.c2s).equals(keys.c2s));
    assert.ok(Buffer.from(opened.keys.s2c).equals(keys.s2c));
  });
}

test('cookies open after rotation while their key is kept, then not', () => {
  const ring = KeyRing.create(0, random);
  const cookie = sealCookie(ring, { aead: 15, c2s: random(32), s2c: random(32) }, random(16));
  ring.rotate(DAY, random, policy);
  ring.rotate(2 * DAY, random, policy);
  assert.ok(openCookie(ring, cookie).ok);
  ring.rotate(3 * DAY, random, policy);
  assert.deepEqual(openCookie(ring, cookie), { ok: false, reason: 'COOKIE_UNKNOWN_KEY' });
});

test('cookies open on another node holding the same ring', () => {
  const ring = KeyRing.create(0, random);
  const other = parseKeyRing(ring.serialize());
  assert.ok(other.ok);
  const cookie = sealCookie(ring, { aead: 17, c2s: random(64), s2c: random(64) }, random(16));
  assert.ok(openCookie(other.value, cookie).ok);
});

test('tampered, truncated and forged cookies are refused', () => {
  const ring = KeyRing.create(0, random);
  const cookie = sealCookie(ring, { aead: 15, c2s: random(32), s2c: random(32) }, random(16));
  for (let i = 4; i < cookie.length; i++) {
    const tampered = Uint8Array.from(cookie);
    tampered[i]! ^= 0x01;
    assert.deepEqual(openCookie(ring, tampered), { ok: false, reason: 'COOKIE_NOT_AUTHENTIC' }, `byte ${i}`);
  }
  assert.equal(openCookie(ring, cookie.subarray(0, 30)).ok, false);
  const foreign = sealCookie(KeyRing.create(0, random), { aead: 15, c2s: random(32), s2c: random(32) }, random(16));
  assert.deepEqual(openCookie(ring, foreign), { ok: false, reason: 'COOKIE_UNKNOWN_KEY' });
});

test('property: openCookie never throws and never accepts random bytes', () => {
  const ring = KeyRing.create(0, random);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      assert.equal(openCookie(ring, bytes).ok, false);
    }),
    { numRuns: 500 },
  );
});
