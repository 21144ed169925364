import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { decodeNtpPacket, encodeNtpHeader, encodeNtpPacket } from '../../src/proto/ntp/packet.js';
import type { NtpHeader } from '../../src/proto/ntp/packet.js';
import { encodeExtensionField } from '../../src/proto/ntp/extensions.js';
import type { ExtensionField } from '../../src/proto/ntp/extensions.js';
import {
  decodeNtsAuthenticator,
  decodeNtsField,
  decodeNtsPlaintext,
  decodeNtsView,
  encodeNtsAuthenticator,
  encodeNtsCookie,
  encodeNtsCookiePlaceholder,
  encodeNtsPlaintext,
  encodeNtsUniqueIdentifier,
  findNtsUniqueIdentifier,
  NTS_NONCE_LENGTH,
  NtsFieldType,
  ntsAuthenticatorLayout,
  writeNtsAuthenticator,
  writeNtsAuthenticatorFrame,
} from '../../src/proto/nts/extension-fields.js';
import type { NtsViewOptions } from '../../src/proto/nts/extension-fields.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const seq = (n: number, start = 1): string => Array.from({ length: n }, (_, i) => ((start + i) & 0xff).toString(16).padStart(2, '0')).join('');
const rep = (byte: string, n: number): string => byte.repeat(n);

// NTPv4 client header: LI 0, VN 4, mode 3; only the transmit timestamp set (as NTS clients send it).
const REQUEST_HEADER = `23000000 00000000 00000000 00000000 ${rep('00', 24)} e5f663a8 761dde48`;
const RESPONSE_HEADER = `24010000 00000000 00000000 47505300 ${rep('00', 8)} e5f663a8 761dde48 e5f663a8 798c6581 e5f663a8 798eae2b`;

/**
 * An NTS request laid out by hand from the field layouts of RFC 8915 §5.3–5.6:
 *   Unique Identifier (0x0104): 32 octets      → field of 36
 *   NTS Cookie (0x0204): 64-octet cookie       → field of 68
 *   Cookie Placeholder (0x0304): 64 zeros      → field of 68
 *   Authenticator (0x0404): nonce 16, ciphertext 16 (the SIV tag of an empty plaintext) → field of 40
 */
const REQUEST = hex(`
  ${REQUEST_HEADER}
  0104 0024 ${seq(32)}
  0204 0044 ${rep('c0', 64)}
  0304 0044 ${rep('00', 64)}
  0404 0028 0010 0010 ${seq(16, 0xa0)} ${seq(16, 0xe0)}`);

/** The response: the echoed UID, then an authenticator whose ciphertext is tag (16) + one encrypted cookie field (68). */
const PLAINTEXT = hex(`0204 0044 ${rep('c1', 64)}`);
const RESPONSE = hex(`
  ${RESPONSE_HEADER}
  0104 0024 ${seq(32)}
  0404 006c 0010 0054 ${seq(16, 0x50)} ${rep('7a', 84)}`);

function view(bytes: Buffer, options?: NtsViewOptions) {
  const packet = decodeNtpPacket(bytes);
  assert.ok(packet.ok, packet.ok ? '' : packet.error.code);
  return decodeNtsView(packet.value, options);
}

test('request built from the RFC 8915 figures decodes to the expected view', () => {
  assert.equal(REQUEST.length, 260);
  const result = view(REQUEST, { role: 'request' });
  assert.ok(result.ok, result.ok ? '' : result.error.code);
  const v = result.value;
  assert.deepEqual(v.uniqueIdentifier, hex(seq(32)));
  assert.deepEqual(v.cookies, [hex(rep('c0', 64))]);
  assert.deepEqual(v.placeholderLengths, [64]);
  assert.deepEqual(v.authenticator, { nonce: hex(seq(16, 0xa0)), ciphertext: hex(seq(16, 0xe0)), additionalPadding: 0 });
  assert.equal(v.associatedDataEnd, 48 + 36 + 68 + 68);
  assert.deepEqual(
    v.authenticatedFields.map((f) => [f.type, f.offset]),
    [
      [0x0104, 48],
      [0x0204, 84],
      [0x0304, 152],
    ],
  );
  assert.deepEqual(v.unauthenticatedFields, []);
  assert.equal(v.authenticator.nonce.buffer, REQUEST.buffer, 'views, not copies');
});

test('the same request, built with the encoders, is byte-identical', () => {
  const header = decodeNtpPacket(REQUEST);
  assert.ok(header.ok);
  const built = Buffer.concat([
    encodeNtpHeader(header.value.header),
    encodeNtsUniqueIdentifier(hex(seq(32))),
    encodeNtsCookie(hex(rep('c0', 64))),
    encodeNtsCookiePlaceholder(64),
    encodeNtsAuthenticator(hex(seq(16, 0xa0)), hex(seq(16, 0xe0))),
  ]);
  assert.deepEqual(built, REQUEST);
  // In-place variant: header + AAD fields first, then the frame, then nonce/ciphertext at the layout offsets.
  const out = Buffer.alloc(REQUEST.length);
  REQUEST.copy(out, 0, 0, 220);
  const end = writeNtsAuthenticatorFrame(out, 220, 16, 16);
  const layout = ntsAuthenticatorLayout(16, 16);
  hex(seq(16, 0xa0)).copy(out, 220 + layout.nonceOffset);
  hex(seq(16, 0xe0)).copy(out, 220 + layout.ciphertextOffset);
  assert.equal(end, 260);
  assert.deepEqual(out, REQUEST);
});

test('response: UID echoed, plaintext of the authenticator holds the cookie', () => {
  const result = view(RESPONSE, { role: 'response' });
  assert.ok(result.ok, result.ok ? '' : result.error.code);
  assert.equal(result.value.associatedDataEnd, 84);
  assert.equal(result.value.authenticator.ciphertext.length, 84);
  assert.deepEqual(result.value.cookies, []);
  // (the AEAD would turn the ciphertext into PLAINTEXT; here only the layout of that plaintext is checked)
  const fields = decodeNtsPlaintext(PLAINTEXT);
  assert.ok(fields.ok);
  const typed = fields.value.map((f) => decodeNtsField(f));
  assert.deepEqual(typed, [{ ok: true, value: { kind: 'cookie', cookie: hex(rep('c1', 64)) } }]);
  assert.deepEqual(encodeNtsPlaintext([{ type: NtsFieldType.Cookie, body: hex(rep('c1', 64)) }]), PLAINTEXT);
});

test('authenticator layout: nonce/ciphertext padding and §5.6 additional padding', () => {
  assert.deepEqual(ntsAuthenticatorLayout(16, 16), { fieldLength: 40, nonceOffset: 8, ciphertextOffset: 24, additionalPadding: 0 });
  assert.deepEqual(ntsAuthenticatorLayout(16, 17), { fieldLength: 44, nonceOffset: 8, ciphertextOffset: 24, additionalPadding: 0 });
  // 12-octet nonce (AES-128-GCM-SIV): N_REQ = min(16, N_MAX=12) = 12 → none; with the default 16 → 4.
  assert.deepEqual(ntsAuthenticatorLayout(12, 32), { fieldLength: 56, nonceOffset: 8, ciphertextOffset: 20, additionalPadding: 4 });
  assert.deepEqual(ntsAuthenticatorLayout(12, 32, { minNonceSpace: 12 }), { fieldLength: 52, nonceOffset: 8, ciphertextOffset: 20, additionalPadding: 0 });
  // 13-octet nonce: its own padding (3) already reaches 16.
  assert.deepEqual(ntsAuthenticatorLayout(13, 16), { fieldLength: 40, nonceOffset: 8, ciphertextOffset: 24, additionalPadding: 0 });
  assert.deepEqual(ntsAuthenticatorLayout(4, 16), { fieldLength: 40, nonceOffset: 8, ciphertextOffset: 12, additionalPadding: 12 });
  assert.deepEqual(ntsAuthenticatorLayout(16, 16, { minFieldLength: 64 }), { fieldLength: 64, nonceOffset: 8, ciphertextOffset: 24, additionalPadding: 24 });
  assert.equal(NTS_NONCE_LENGTH, 16);
  assert.throws(() => ntsAuthenticatorLayout(0, 16), UsageError);
  assert.throws(() => ntsAuthenticatorLayout(16, 70000), UsageError);
  assert.throws(() => ntsAuthenticatorLayout(16, 65530), UsageError); // field would exceed 65532
  assert.throws(() => writeNtsAuthenticator(Buffer.alloc(39), 0, new Uint8Array(16), new Uint8Array(16)), UsageError);

  const field = encodeNtsAuthenticator(hex('0102030405'), hex(seq(17, 0x40)));
  assert.deepEqual(field, hex(`0404 002c 0005 0011 0102030405 000000 ${seq(17, 0x40)} 000000 ${rep('00', 8)}`));
  const decoded = decodeNtsAuthenticator(field.subarray(4));
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value, { nonce: hex('0102030405'), ciphertext: hex(seq(17, 0x40)), additionalPadding: 8 });
});

test('authenticator body errors', () => {
  const code = (body: string, options?: { minNonceSpace?: number; minCiphertextLength?: number }): string => {
    const r = decodeNtsAuthenticator(hex(body), options);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(code('0010'), 'NTS_AUTH_TRUNCATED');
  assert.equal(code(`0010 0010 ${rep('00', 16)} ${rep('00', 12)}`), 'NTS_AUTH_TRUNCATED');
  assert.equal(code(`ffff 0010 ${rep('00', 32)}`), 'NTS_AUTH_TRUNCATED');
  assert.equal(code(`0000 0010 ${rep('00', 32)}`), 'NTS_AUTH_BAD_NONCE');
  assert.equal(code(`0010 000f ${rep('00', 32)}`), 'NTS_AUTH_BAD_CIPHERTEXT');
  assert.equal(code(`0010 000f ${rep('00', 32)}`, { minCiphertextLength: 0 }), 'ok');
  // 12-octet nonce with no additional padding: fine for N_REQ 12, missing padding for N_REQ 16.
  assert.equal(code(`000c 0010 ${rep('00', 12)} ${rep('00', 16)}`), 'NTS_AUTH_MISSING_PADDING');
  assert.equal(code(`000c 0010 ${rep('00', 12)} ${rep('00', 16)}`, { minNonceSpace: 12 }), 'ok');
  assert.equal(code(`000c 0010 ${rep('00', 12)} ${rep('00', 16)} 00000000`), 'ok');
  // Padding content is not checked (it is outside the associated data).
  assert.equal(code(`000d 0010 ${rep('00', 13)} ffffff ${rep('00', 16)}`), 'ok');
});

test('typed fields: UID minimum, placeholder content ignored, unknown types kept', () => {
  const f = (type: number, body: Buffer): ExtensionField => ({ type, body, offset: 100 });
  assert.deepEqual(decodeNtsField(f(0x0104, Buffer.alloc(32, 1))), { ok: true, value: { kind: 'unique-identifier', id: Buffer.alloc(32, 1) } });
  const short = decodeNtsField(f(0x0104, Buffer.alloc(28, 1)));
  assert.ok(!short.ok);
  assert.equal(short.error.code, 'NTS_BAD_UNIQUE_ID');
  assert.equal(short.error.offset, 100);
  assert.deepEqual(decodeNtsField(f(0x0304, Buffer.alloc(64, 0xff))), { ok: true, value: { kind: 'cookie-placeholder', bodyLength: 64 } });
  assert.deepEqual(decodeNtsField(f(0x7777, Buffer.alloc(4, 9))), { ok: true, value: { kind: 'other', type: 0x7777, body: Buffer.alloc(4, 9) } });
  const badAuth = decodeNtsField(f(0x0404, hex('0010')));
  assert.ok(!badAuth.ok);
  assert.equal(badAuth.error.offset, 104);
  assert.throws(() => encodeNtsUniqueIdentifier(new Uint8Array(31)), UsageError);
  assert.deepEqual(encodeNtsCookiePlaceholder(5), hex(`0304 0010 ${rep('00', 12)}`));
  assert.deepEqual(encodeNtsCookie(hex('aabbcc'), 4), hex('02040008 aabbcc00'));
});

/** Rebuilds REQUEST with its fields replaced (the header stays). */
function request(...fields: Buffer[]): Buffer {
  return Buffer.concat([hex(REQUEST_HEADER), ...fields]);
}
const UID = encodeNtsUniqueIdentifier(hex(seq(32)));
const COOKIE = encodeNtsCookie(hex(rep('c0', 64)));
const AUTH = encodeNtsAuthenticator(hex(seq(16, 0xa0)), hex(seq(16, 0xe0)));

function viewCode(bytes: Buffer, options?: NtsViewOptions): string {
  const result = view(bytes, options);
  return result.ok ? 'ok' : result.error.code;
}

test('view rules: exactly one authenticator and one authenticated UID', () => {
  assert.equal(viewCode(request(UID, COOKIE)), 'NTS_NO_AUTHENTICATOR');
  assert.equal(viewCode(request(UID, COOKIE, AUTH, AUTH)), 'NTS_DUPLICATE_AUTHENTICATOR');
  assert.equal(viewCode(request(COOKIE, AUTH)), 'NTS_NO_UNIQUE_ID');
  assert.equal(viewCode(request(COOKIE, AUTH, UID)), 'NTS_NO_UNIQUE_ID'); // after the authenticator it does not count
  assert.equal(viewCode(request(UID, UID, COOKIE, AUTH)), 'NTS_DUPLICATE_UNIQUE_ID');
  assert.equal(viewCode(request(encodeExtensionField(0x0104, new Uint8Array(16), 28), COOKIE, AUTH)), 'NTS_BAD_UNIQUE_ID');
  assert.equal(viewCode(request(UID, AUTH), { role: 'request' }), 'NTS_BAD_COOKIE_COUNT');
  assert.equal(viewCode(request(UID, COOKIE, COOKIE, AUTH), { role: 'request' }), 'NTS_BAD_COOKIE_COUNT');
  assert.equal(viewCode(request(UID, COOKIE, COOKIE, AUTH)), 'ok');
  const badAuth = request(UID, COOKIE, hex(`0404 0028 0000 0010 ${rep('00', 32)}`));
  const r = view(badAuth);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'NTS_AUTH_BAD_NONCE');
  assert.equal(r.error.offset, 48 + 36 + 68 + 4);
});

test('fields after the authenticator are unauthenticated: ignored by default, or rejected', () => {
  const extra = encodeExtensionField(0x0204, hex(rep('dd', 64)));
  const bytes = request(UID, COOKIE, AUTH, extra);
  const result = view(bytes, { role: 'request' });
  assert.ok(result.ok);
  assert.deepEqual(result.value.cookies, [hex(rep('c0', 64))]); // the trailing cookie is not used
  assert.deepEqual(
    result.value.unauthenticatedFields.map((f) => [f.type, f.offset]),
    [[0x0204, 48 + 36 + 68 + 40]],
  );
  assert.equal(viewCode(bytes, { trailingFields: 'reject' }), 'NTS_TRAILING_FIELDS');
});

test('a legacy MAC trailer on an NTS packet is rejected; NAK responses expose the UID', () => {
  const withMac = Buffer.concat([request(UID, COOKIE, AUTH), hex(`00000001 ${rep('00', 16)}`)]);
  assert.equal(viewCode(withMac), 'NTS_UNEXPECTED_MAC');
  // NTS NAK (RFC 8915 §5.7): kiss code NTSN, the UID echoed, no authenticator.
  const nak = Buffer.concat([hex(`e4000000 00000000 00000000 4e54534e ${rep('00', 32)}`), UID]);
  const packet = decodeNtpPacket(nak);
  assert.ok(packet.ok);
  assert.equal(decodeNtsView(packet.value).ok, false);
  assert.deepEqual(findNtsUniqueIdentifier(packet.value.extensions), hex(seq(32)));
  assert.equal(findNtsUniqueIdentifier([]), null);
});

test('plaintext with short fields (RFC 8915 §5.6)', () => {
  const plaintext = Buffer.concat([hex('f0010004'), hex('f0020008 01020304'), PLAINTEXT]);
  const fields = decodeNtsPlaintext(plaintext);
  assert.ok(fields.ok);
  assert.deepEqual(
    fields.value.map((f) => [f.type, f.body.length]),
    [
      [0xf001, 0],
      [0xf002, 4],
      [0x0204, 64],
    ],
  );
  const bad = decodeNtsPlaintext(hex('f0010005 00'));
  assert.ok(!bad.ok);
  assert.equal(bad.error.code, 'EF_BAD_LENGTH');
  assert.equal(decodeNtsPlaintext(Buffer.concat(Array.from({ length: 5 }, () => hex('f0010004'))), { maxFields: 4 }).ok, false);
});

// --- properties ---

const headerOf = (bytes: Buffer): NtpHeader => {
  const r = decodeNtpPacket(bytes);
  assert.ok(r.ok);
  return r.value.header;
};

const requestArb = fc.record(
  {
    uid: fc.uint8Array({ minLength: 32, maxLength: 64 }),
    cookies: fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 3 }),
    placeholders: fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 4 }),
    nonce: fc.uint8Array({ minLength: 1, maxLength: 32 }),
    ciphertext: fc.uint8Array({ minLength: 16, maxLength: 300 }),
  },
  { noNullPrototype: true },
);

interface RequestSpec {
  uid: Uint8Array;
  cookies: Uint8Array[];
  placeholders: number[];
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

function buildRequest(r: RequestSpec): Buffer {
  return Buffer.concat([
    hex(REQUEST_HEADER),
    encodeNtsUniqueIdentifier(r.uid),
    ...r.cookies.map((c) => encodeNtsCookie(c)),
    ...r.placeholders.map((n) => encodeNtsCookiePlaceholder(n)),
    encodeNtsAuthenticator(r.nonce, r.ciphertext),
  ]);
}

const padded = (bytes: Uint8Array): number[] => [...bytes, ...new Array<number>((4 - (bytes.length % 4)) % 4).fill(0)];

test('NTS builders → packet decode → view round trip (property)', () => {
  fc.assert(
    fc.property(requestArb, (r) => {
      const bytes = buildRequest(r);
      const result = view(bytes);
      assert.ok(result.ok, result.ok ? '' : result.error.code);
      const v = result.value;
      assert.deepEqual([...v.uniqueIdentifier], padded(r.uid));
      assert.deepEqual(v.cookies.map((c) => [...c]), r.cookies.map((c) => padded(c.length < 12 ? new Uint8Array([...c, ...new Array<number>(12 - c.length).fill(0)]) : c)));
      assert.deepEqual(v.placeholderLengths, r.placeholders.map((n) => Math.max(12, (n + 3) & ~3)));
      assert.deepEqual([...v.authenticator.nonce], [...r.nonce]);
      assert.deepEqual([...v.authenticator.ciphertext], [...r.ciphertext]);
      const authLength = ntsAuthenticatorLayout(r.nonce.length, r.ciphertext.length).fieldLength;
      assert.equal(v.associatedDataEnd, bytes.length - authLength);
      // The whole packet re-encodes identically from its decoded parts.
      const packet = decodeNtpPacket(bytes);
      assert.ok(packet.ok);
      assert.ok(encodeNtpPacket({ header: headerOf(bytes), extensions: packet.value.extensions }).equals(bytes));
    }),
    { numRuns: 300 },
  );
});

test('plaintext encode → decode round trip (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 30 })), { maxLength: 8 }), (specs) => {
      const fields = specs.map(([type, words]) => ({ type, body: new Uint8Array(words * 4).fill(type & 0xff) }));
      const decoded = decodeNtsPlaintext(encodeNtsPlaintext(fields));
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value.map((f) => [f.type, [...f.body]]), fields.map((f) => [f.type, [...f.body]]));
    }),
    { numRuns: 300 },
  );
});

test('mutated NTS packets and random authenticator bodies never throw (property)', () => {
  fc.assert(
    fc.property(requestArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), (r, flips, cut) => {
      const bytes = buildRequest(r);
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      for (const candidate of [bytes, bytes.subarray(0, cut % (bytes.length + 1))]) {
        for (const options of [undefined, { allowShortFields: true, legacyMac: false }]) {
          const packet = decodeNtpPacket(candidate, options);
          if (!packet.ok) {
            assert.ok(packet.error instanceof DecodeError);
            continue;
          }
          for (const role of ['request', 'response', 'any'] as const) {
            const v = decodeNtsView(packet.value, { role, trailingFields: 'reject' });
            if (!v.ok) assert.ok(v.error instanceof DecodeError);
          }
          for (const field of packet.value.extensions) {
            const typed = decodeNtsField(field);
            if (!typed.ok) assert.ok(typed.error instanceof DecodeError);
          }
        }
      }
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.integer({ min: 0, max: 20 }), (body, minNonceSpace) => {
      const r = decodeNtsAuthenticator(body, { minNonceSpace });
      if (r.ok) {
        assert.ok(r.value.nonce.length > 0 && r.value.ciphertext.length >= 16);
        assert.ok(r.value.additionalPadding >= 0);
      } else {
        assert.ok(r.error instanceof DecodeError);
      }
      const list = decodeNtsPlaintext(body);
      if (!list.ok) assert.ok(list.error instanceof DecodeError);
    }),
    { numRuns: 2000 },
  );
});

test('authenticator write → decode round trip (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.uint8Array({ minLength: 16, maxLength: 200 }), fc.constantFrom(4, 8, 12, 16), fc.integer({ min: 0, max: 300 }), (nonce, ciphertext, minNonceSpace, minFieldLength) => {
      const field = encodeNtsAuthenticator(nonce, ciphertext, { minNonceSpace, minFieldLength });
      assert.equal(field.length % 4, 0);
      assert.ok(field.length >= minFieldLength);
      assert.equal(field.readUInt16BE(2), field.length);
      const decoded = decodeNtsAuthenticator(field.subarray(4), { minNonceSpace });
      assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.code);
      assert.deepEqual([...decoded.value.nonce], [...nonce]);
      assert.deepEqual([...decoded.value.ciphertext], [...ciphertext]);
      assert.equal(decoded.value.additionalPadding, ntsAuthenticatorLayout(nonce.length, ciphertext.length, { minNonceSpace, minFieldLength }).additionalPadding);
    }),
    { numRuns: 500 },
  );
});
