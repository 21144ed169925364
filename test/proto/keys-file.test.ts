import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KeysFileError, parseKeysFile } from '../../src/proto/ntp/keys-file.js';

const bytes = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const hexBytes = (s: string): number[] => [...Buffer.from(s, 'hex')];

test('the key file format as NTPsec reads it: ASCII up to 20 characters, hex beyond, comments, types', () => {
  const text = [
    '# ntp.keys',
    '',
    '1 MD5 controlpass',
    '2\tSHA1\t0123456789abcdef0123456789abcdef01234567   # forty hex digits',
    '3 AES128CMAC 000102030405060708090a0b0c0d0e0f',
    '4 aes 000102030405060708090A0B0C0D0E0F',
    '5 AES-128 0f0e0d0c0b0a09080706050403020100',
    '6 sha-1 twentycharacters1234',
    '7 M5 legacy#comment right after the key',
    '   8 md5 x',
    '65535 MD5 top',
  ].join('\r\n');
  const r = parseKeysFile(text);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const keys = r.value.keys;
  assert.deepEqual([...keys.keys()], [1, 2, 3, 4, 5, 6, 7, 8, 65535]);
  const k = (id: number) => keys.get(id);
  assert.deepEqual([k(1)?.algorithm, [...(k(1)?.key ?? [])], k(1)?.line, k(1)?.typeName], ['MD5', bytes('controlpass'), 3, 'MD5']);
  assert.deepEqual([k(2)?.algorithm, [...(k(2)?.key ?? [])]], ['SHA1', hexBytes('0123456789abcdef0123456789abcdef01234567')]);
  assert.deepEqual([k(3)?.algorithm, k(3)?.key.length], ['AES128CMAC', 16]);
  assert.deepEqual([k(4)?.algorithm, [...(k(4)?.key ?? [])]], ['AES128CMAC', hexBytes('000102030405060708090a0b0c0d0e0f')]);
  assert.equal(k(5)?.algorithm, 'AES128CMAC', 'AES-128: NTPsec appends -CBC and finds the cipher');
  assert.deepEqual([k(6)?.algorithm, [...(k(6)?.key ?? [])]], ['SHA1', bytes('twentycharacters1234')], '20 characters is still ASCII');
  assert.deepEqual([k(7)?.algorithm, [...(k(7)?.key ?? [])]], ['MD5', bytes('legacy')], "an unknown type starting with M is MD5; '#' ends the key");
  assert.deepEqual([...(k(8)?.key ?? [])], bytes('x'));
  assert.deepEqual(r.value.warnings, []);
});

test('lines NTPsec skips are problems with their line number; the other keys are kept', () => {
  const text = [
    '1 MD5 good',
    '0 MD5 zero',
    '65536 MD5 toolarge',
    '12x MD5 notanumber',
    '4',
    '5 MD5',
    '6 FOO key',
    '7 SHA256 key',
    '8 AES-128-CMAC 000102030405060708090a0b0c0d0e0f',
    '9 SHA1 0123456789abcdef0123456789abcdef0123456z',
    '10 AES128CMAC short',
    '11 AES128CMAC 000102030405060708090a0b0c0d0e',
    '12 MD5 ok',
  ].join('\n');
  const r = parseKeysFile(text);
  assert.ok(!r.ok);
  assert.ok(r.error instanceof KeysFileError);
  assert.deepEqual(
    r.error.problems.map((p) => [p.line, p.code]),
    [
      [2, 'KEYS_KEY_ID_RANGE'],
      [3, 'KEYS_KEY_ID_RANGE'],
      [4, 'KEYS_BAD_KEY_ID'],
      [5, 'KEYS_MISSING_TYPE'],
      [6, 'KEYS_MISSING_KEY'],
      [7, 'KEYS_UNKNOWN_TYPE'],
      [8, 'KEYS_UNSUPPORTED_TYPE'],
      [9, 'KEYS_UNKNOWN_TYPE'],
      [10, 'KEYS_BAD_HEX'],
      [11, 'KEYS_CMAC_KEY_SHORT'],
      [12, 'KEYS_CMAC_KEY_SHORT'],
    ],
  );
  assert.equal(r.error.code, 'KEYS_KEY_ID_RANGE');
  assert.match(r.error.message, /^line 2: /);
  assert.deepEqual([...r.error.partial.keys.keys()], [1, 12]);
  for (const p of r.error.problems) assert.ok(p.reason.length > 10, p.reason);
});

test('keys NTPsec accepts but adjusts are warnings: truncation, odd hex, extra fields, redefinition', () => {
  const long = 'ab'.repeat(40); // 80 hex digits: cut to 64
  const text = [`1 SHA1 ${long}`, '2 MD5 0123456789abcdef0123456789abcdef0', '3 MD5 pass extra words', `4 AES128CMAC ${'11'.repeat(20)}`, '3 SHA1 again'].join('\n');
  const r = parseKeysFile(text);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.deepEqual(
    r.value.warnings.map((w) => [w.line, w.code]),
    [
      [1, 'KEYS_KEY_TRUNCATED'],
      [2, 'KEYS_ODD_HEX'],
      [3, 'KEYS_EXTRA_FIELDS'],
      [4, 'KEYS_CMAC_KEY_TRUNCATED'],
      [5, 'KEYS_DUPLICATE_KEY_ID'],
    ],
  );
  assert.equal(r.value.keys.get(1)?.key.length, 32);
  assert.deepEqual([...(r.value.keys.get(2)?.key ?? [])], hexBytes('0123456789abcdef0123456789abcdef'));
  assert.equal(r.value.keys.get(4)?.key.length, 16);
  assert.equal(r.value.keys.get(3)?.algorithm, 'SHA1', 'the later definition wins');
  assert.equal(r.value.keys.get(3)?.line, 5);
});

test('non-ASCII in a short key is refused (NTPsec would take raw octets of an unknown encoding)', () => {
  const r = parseKeysFile('1 MD5 pässwort');
  assert.ok(!r.ok);
  assert.equal(r.error.problems[0]?.code, 'KEYS_BAD_CHARACTER');
});

test('property: any text parses without throwing; every key is usable', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('1 MD5 x', '2 SHA1 abc', '3 AES 00112233445566778899aabbccddeeff', '# c', '')), { maxLength: 20 }), (lines) => {
      const r = parseKeysFile(lines.join('\n'));
      const file = r.ok ? r.value : r.error.partial;
      for (const [id, key] of file.keys) {
        assert.ok(id >= 1 && id <= 65535);
        assert.equal(key.keyId, id);
        assert.ok(key.key.length > 0);
        if (key.algorithm === 'AES128CMAC') assert.equal(key.key.length, 16);
      }
      if (!r.ok) assert.ok(r.error.problems.every((p) => p.line >= 1 && p.line <= lines.length));
    }),
    { numRuns: 500 },
  );
});
