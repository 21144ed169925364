import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import {
  MODE6_HEADER_LENGTH,
  MODE6_MAX_FRAGMENT_DATA,
  Mode6ErrorCode,
  Mode6Opcode,
  decodeMode6Packet,
  decodeMode6Response,
  describeMode6Error,
  encodeMode6Packet,
  encodeMode6Request,
  mode6ErrorCodeOf,
  mode6ErrorName,
  mode6OpcodeName,
  mode6TextBytes,
  verifyMode6Mac,
} from '../../src/proto/mode6/packet.js';
import type { SymmetricKey } from '../../src/crypto/symmetric-mac.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const ascii = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

// Datagrams captured from NTPsec 1.2.2 (test/interop lab) with the keys below.
const MD5_KEY: SymmetricKey = { keyId: 1, algorithm: 'MD5', key: new Uint8Array(Buffer.from('mode6-control')) };
const SHA1_KEY: SymmetricKey = { keyId: 2, algorithm: 'SHA1', key: hex('0123456789abcdef0123456789abcdef01234567') };

const CAPTURED = {
  readstatRequest: hex('16 01 1001 0000 0000 0000 0000'),
  readstatResponse: hex('16 81 1001 0016 0000 0000 0008  4568 8011 4567 b014'),
  readvarRequest: hex('16 02 1002 0000 0000 0000 000f 76657273696f6e2c7374726174756d 00'),
  readvarResponse: hex('16 82 1002 0016 0000 0000 0029 7374726174756d3d31302c2076657273696f6e3d226e747064206e74707365632d312e322e32220d0a 000000'),
  signedRequest: hex('16 02 1003 0000 0000 0000 000f 76657273696f6e2c7374726174756d 00 00000000 00000001 7135b8e2b2dc0de32001e7e4209c2198'),
  signedResponse: hex('16 82 1003 0016 0000 0000 0029 7374726174756d3d31302c2076657273696f6e3d226e747064206e74707365632d312e322e32220d0a 000000 00000001 c3778aab7580a40bb4d79ba58515a504'),
  signedErrorRequest: hex('16 02 1004 0000 0000 0000 0009 6e6f73756368766172 000000 00000002 1ea0e46a0b72c9f3c262cfa793a44bd1b00338e4'),
  signedErrorResponse: hex('16 c2 1004 0500 0000 0000 0000 00000002 9f18d045586d891e62a317b80a67d8337c0b3e20'),
  errorResponse: hex('16 c2 1005 0500 0000 0000 0000'),
  nonceResponse: hex('16 8c 1006 0000 0000 0000 0020 6e6f6e63653d6565623265316531343330393565336237653135653430630d0a'),
  permissionResponse: hex('16 cb 1007 0100 0000 0000 0000'),
};

test('captured READSTAT request and answer decode field by field', () => {
  const req = decodeMode6Packet(CAPTURED.readstatRequest);
  assert.ok(req.ok);
  assert.equal(req.value.response, false);
  assert.equal(req.value.opcode, Mode6Opcode.ReadStatus);
  assert.equal(req.value.version, 2);
  assert.deepEqual(encodeMode6Request({ opcode: 1, sequence: 0x1001 }), CAPTURED.readstatRequest);

  const res = decodeMode6Response(CAPTURED.readstatResponse);
  assert.ok(res.ok, res.ok ? '' : res.error.message);
  const p = res.value;
  assert.deepEqual(
    { leap: p.leap, version: p.version, response: p.response, error: p.error, more: p.more, opcode: p.opcode, sequence: p.sequence, status: p.status, associationId: p.associationId, offset: p.offset, count: p.count, mac: p.mac, extraLength: p.extraLength },
    { leap: 0, version: 2, response: true, error: false, more: false, opcode: 1, sequence: 0x1001, status: 0x0016, associationId: 0, offset: 0, count: 8, mac: null, extraLength: 0 },
  );
  assert.deepEqual(p.data, hex('4568 8011 4567 b014'));
});

test('captured READVAR request encodes byte for byte; the answer has 3 padding octets', () => {
  assert.deepEqual(encodeMode6Request({ opcode: Mode6Opcode.ReadVariables, sequence: 0x1002, data: 'version,stratum' }), CAPTURED.readvarRequest);
  const res = decodeMode6Response(CAPTURED.readvarResponse);
  assert.ok(res.ok);
  assert.equal(res.value.count, 0x29);
  assert.equal(ascii(res.value.data), 'stratum=10, version="ntpd ntpsec-1.2.2"\r\n');
  assert.equal(res.value.extraLength, 0);
});

test('MD5-signed request matches what NTPsec accepted; its signed answer has the MAC at the next multiple of 8', () => {
  assert.deepEqual(encodeMode6Request({ opcode: 2, sequence: 0x1003, data: 'version,stratum' }, MD5_KEY), CAPTURED.signedRequest);
  const req = decodeMode6Packet(CAPTURED.signedRequest);
  assert.ok(req.ok);
  assert.equal(req.value.mac?.offset, 32, '12 + 15 = 27, padded to 28, then to 32');
  assert.ok(verifyMode6Mac(CAPTURED.signedRequest, req.value, MD5_KEY));

  const res = decodeMode6Response(CAPTURED.signedResponse, { macLength: 16 });
  assert.ok(res.ok);
  assert.equal(res.value.mac?.keyId, 1);
  assert.equal(res.value.mac?.offset, 56);
  assert.ok(verifyMode6Mac(CAPTURED.signedResponse, res.value, MD5_KEY));
  assert.ok(!verifyMode6Mac(CAPTURED.signedResponse, res.value, { ...MD5_KEY, key: new Uint8Array(Buffer.from('wrong')) }));
  assert.ok(!verifyMode6Mac(CAPTURED.signedResponse, res.value, { ...MD5_KEY, keyId: 9 }), 'another key id');
});

test('a signed error answer carries its MAC right after the 12-octet header (NTPsec ctl_error)', () => {
  assert.deepEqual(encodeMode6Request({ opcode: 2, sequence: 0x1004, data: 'nosuchvar' }, SHA1_KEY), CAPTURED.signedErrorRequest);
  const res = decodeMode6Response(CAPTURED.signedErrorResponse, { macLength: 20 });
  assert.ok(res.ok);
  assert.equal(res.value.error, true);
  assert.equal(mode6ErrorCodeOf(res.value), Mode6ErrorCode.UnknownVariable);
  assert.equal(res.value.mac?.offset, 12);
  assert.ok(verifyMode6Mac(CAPTURED.signedErrorResponse, res.value, SHA1_KEY));
  // Our encoder reproduces it with alignment 4.
  const again = encodeMode6Packet({ opcode: 2, sequence: 0x1004, response: true, error: true, status: 0x0500 }, SHA1_KEY, { alignment: 4 });
  assert.deepEqual(again, CAPTURED.signedErrorResponse);
});

test('the MAC position depends on the digest length: macLength removes the ambiguity', () => {
  // 5 data octets: data ends at 17, padded 20, the 8-aligned MAC position is 24. A 16-octet digest at 24 gives
  // 44 octets; a 20-octet digest at 20 gives 44 too.
  const at24 = encodeMode6Packet({ opcode: 2, sequence: 1, response: true, data: 'abcde' }, MD5_KEY);
  assert.equal(at24.length, 44);
  const withHint = decodeMode6Response(at24, { macLength: 16 });
  assert.ok(withHint.ok);
  assert.equal(withHint.value.mac?.offset, 24);
  assert.ok(verifyMode6Mac(at24, withHint.value, MD5_KEY));
  const sha = encodeMode6Packet({ opcode: 2, sequence: 1, response: true, data: 'abcde' }, SHA1_KEY, { alignment: 4 });
  assert.equal(sha.length, 44);
  const shaDecoded = decodeMode6Response(sha, { macLength: 20 });
  assert.ok(shaDecoded.ok);
  assert.equal(shaDecoded.value.mac?.offset, 20);
  // Without a hint the 8-aligned position wins.
  const noHint = decodeMode6Response(sha);
  assert.ok(noHint.ok);
  assert.equal(noHint.value.mac?.offset, 24);
  // A hint that fits nowhere: no MAC, the octets are reported as extra.
  const wrong = decodeMode6Response(at24, { macLength: 12 });
  assert.ok(wrong.ok);
  assert.equal(wrong.value.mac, null);
  assert.equal(wrong.value.extraLength, 24);
});

test('error answers: E bit, code in the high octet of the status, names per RFC 9327 §3.4', () => {
  const res = decodeMode6Response(CAPTURED.permissionResponse);
  assert.ok(res.ok);
  assert.equal(res.value.opcode, Mode6Opcode.ReadOrderedList);
  assert.equal(mode6ErrorCodeOf(res.value), Mode6ErrorCode.AuthFailure);
  const names = [0, 1, 2, 3, 4, 5, 6, 7].map(mode6ErrorName);
  assert.deepEqual(names, ['UNSPECIFIED', 'AUTH_FAILURE', 'BAD_FORMAT', 'UNKNOWN_OPCODE', 'UNKNOWN_ASSOCIATION', 'UNKNOWN_VARIABLE', 'BAD_VALUE', 'PERMISSION_DENIED']);
  assert.equal(mode6ErrorName(42), 'ERROR_42');
  assert.deepEqual(describeMode6Error(5), { known: 'UNKNOWN_VARIABLE', code: 5 });
  assert.deepEqual(describeMode6Error(200), { unknown: 200, code: 200 });
});

test('opcode names', () => {
  const expected: Record<number, string> = { 1: 'READSTAT', 2: 'READVAR', 3: 'WRITEVAR', 4: 'READCLOCK', 5: 'WRITECLOCK', 6: 'SETTRAP', 7: 'ASYNCMSG', 8: 'CONFIGURE', 9: 'SAVECONFIG', 10: 'READ_MRU', 11: 'READ_ORDLIST_A', 12: 'REQ_NONCE', 31: 'UNSETTRAP' };
  for (const [op, name] of Object.entries(expected)) assert.equal(mode6OpcodeName(Number(op)), name);
  assert.equal(mode6OpcodeName(20), 'OPCODE_20');
  assert.equal(Mode6Opcode.UnsetTrap, 31);
});

test('validation: every malformed datagram gets its own code', () => {
  const good = CAPTURED.readvarResponse;
  const cases: [string, Uint8Array, string][] = [
    ['empty', new Uint8Array(0), 'MODE6_TOO_SHORT'],
    ['11 octets', good.subarray(0, 11), 'MODE6_TOO_SHORT'],
    ['mode 4', Uint8Array.from([0x24, ...good.subarray(1)]), 'MODE6_NOT_MODE6'],
    ['version 0', Uint8Array.from([0x06, ...good.subarray(1)]), 'MODE6_BAD_VERSION'],
    ['version 5', Uint8Array.from([0x2e, ...good.subarray(1)]), 'MODE6_BAD_VERSION'],
    ['not a multiple of 4', good.subarray(0, good.length - 1), 'MODE6_NOT_PADDED'],
    ['count beyond the datagram', good.subarray(0, 48), 'MODE6_COUNT_BEYOND_DATAGRAM'],
  ];
  for (const [name, bytes, code] of cases) {
    const r = decodeMode6Response(bytes);
    assert.ok(!r.ok, name);
    assert.equal(r.error.code, code, name);
  }
  const request = decodeMode6Response(CAPTURED.readstatRequest);
  assert.ok(!request.ok);
  assert.equal(request.error.code, 'MODE6_NOT_RESPONSE');

  // 469 data octets in one datagram: above NTPsec's 468 unless allowed.
  const big = new Uint8Array(MODE6_HEADER_LENGTH + 472);
  big.set([0x16, 0x82, 0, 1, 0, 0, 0, 0, 0, 0, 0x01, 0xd5]);
  const tooBig = decodeMode6Response(big);
  assert.ok(!tooBig.ok);
  assert.equal(tooBig.error.code, 'MODE6_FRAGMENT_TOO_LARGE');
  assert.ok(decodeMode6Response(big, { maxFragmentData: 1000 }).ok);
  // Offset + count past the 16-bit offset space.
  const far = encodeMode6Packet({ opcode: 2, sequence: 1, response: true, offset: 0xffff, data: 'abcd' });
  const farDecoded = decodeMode6Response(far);
  assert.ok(!farDecoded.ok);
  assert.equal(farDecoded.error.code, 'MODE6_OFFSET_BEYOND_LIMIT');
});

test('encoder refuses what it cannot represent (UsageError)', () => {
  assert.throws(() => encodeMode6Request({ opcode: 32, sequence: 1 }), UsageError);
  assert.throws(() => encodeMode6Request({ opcode: 1, sequence: 0x10000 }), UsageError);
  assert.throws(() => encodeMode6Request({ opcode: 1, sequence: 1, associationId: -1 }), UsageError);
  assert.throws(() => encodeMode6Request({ opcode: 2, sequence: 1, data: 'x'.repeat(MODE6_MAX_FRAGMENT_DATA + 1) }), (e: unknown) => e instanceof UsageError && e.code === 'MODE6_DATA_TOO_LONG');
  assert.throws(() => mode6TextBytes('π'), (e: unknown) => e instanceof UsageError && e.code === 'MODE6_NOT_LATIN1');
  assert.equal(encodeMode6Request({ opcode: 2, sequence: 1, data: 'x'.repeat(MODE6_MAX_FRAGMENT_DATA) }).length, 480);
});

const arbKey: fc.Arbitrary<SymmetricKey> = fc.oneof(
  fc.record({ keyId: fc.integer({ min: 1, max: 65535 }), algorithm: fc.constant('MD5' as const), key: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ keyId: fc.integer({ min: 1, max: 65535 }), algorithm: fc.constant('SHA1' as const), key: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ keyId: fc.integer({ min: 1, max: 65535 }), algorithm: fc.constant('AES128CMAC' as const), key: fc.uint8Array({ minLength: 16, maxLength: 16 }) }),
);

test('property: encode → decode round trip of any packet, with or without MAC', () => {
  fc.assert(
    fc.property(
      fc.record({
        opcode: fc.integer({ min: 0, max: 31 }),
        sequence: fc.integer({ min: 0, max: 0xffff }),
        associationId: fc.integer({ min: 0, max: 0xffff }),
        status: fc.integer({ min: 0, max: 0xffff }),
        offset: fc.integer({ min: 0, max: 0xffff - MODE6_MAX_FRAGMENT_DATA }),
        response: fc.boolean(),
        error: fc.boolean(),
        more: fc.boolean(),
        leap: fc.integer({ min: 0, max: 3 }),
        version: fc.integer({ min: 1, max: 4 }),
        data: fc.uint8Array({ maxLength: MODE6_MAX_FRAGMENT_DATA }),
      }),
      fc.option(arbKey, { nil: undefined }),
      fc.constantFrom(4 as const, 8 as const),
      (init, key, alignment) => {
        const bytes = encodeMode6Packet(init, key, { alignment });
        const decoded = decodeMode6Packet(bytes, key === undefined ? undefined : { macLength: key.algorithm === 'SHA1' ? 20 : 16 });
        assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message);
        const p = decoded.value;
        assert.deepEqual(
          { opcode: p.opcode, sequence: p.sequence, associationId: p.associationId, status: p.status, offset: p.offset, response: p.response, error: p.error, more: p.more, leap: p.leap, version: p.version },
          { opcode: init.opcode, sequence: init.sequence, associationId: init.associationId, status: init.status, offset: init.offset, response: init.response, error: init.error, more: init.more, leap: init.leap, version: init.version },
        );
        assert.deepEqual(p.data, init.data);
        assert.equal(bytes.length % 4, 0);
        if (key === undefined) assert.equal(p.mac, null);
        else {
          assert.equal(p.mac?.keyId, key.keyId);
          assert.ok(verifyMode6Mac(bytes, p, key));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('property: the decoders never throw on arbitrary or mutated bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.option(fc.constantFrom(16, 20), { nil: undefined }), (bytes, macLength) => {
      const r = decodeMode6Packet(bytes, macLength === undefined ? undefined : { macLength });
      const s = decodeMode6Response(bytes);
      if (r.ok) {
        assert.ok(r.value.data.length === r.value.count);
        assert.ok(MODE6_HEADER_LENGTH + r.value.count <= bytes.length);
      }
      assert.equal(typeof s.ok, 'boolean');
    }),
    { numRuns: 1000 },
  );
  const seeds = Object.values(CAPTURED);
  fc.assert(
    fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat({ max: 8 }), (seed, flips, cut) => {
      const bytes = seed.slice(0, Math.max(0, seed.length - cut));
      for (const [at, v] of flips) if (bytes.length > 0) bytes[at % bytes.length] = v;
      const r = decodeMode6Response(bytes, { macLength: 16 });
      if (r.ok && r.value.mac !== null) assert.equal(typeof verifyMode6Mac(bytes, r.value, MD5_KEY), 'boolean');
    }),
    { numRuns: 1000 },
  );
});
