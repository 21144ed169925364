// Shared by the NTS-KE tests: hex helpers, byte layouts written out from RFC 8915 §4, whole messages and
// fast-check arbitraries.
import fc from 'fast-check';
import type { RawRecord } from '../../src/proto/ntske/framing.js';
import {
  AeadAlgorithms,
  ErrorCodes,
  NextProtocols,
  type NtsKeRecord,
  WarningCodes,
  aeadAlgorithmRecord,
  endOfMessage,
  errorRecord,
  newCookieRecord,
  nextProtocolRecord,
  portRecord,
  serverRecord,
  unknownRecord,
  warningRecord,
} from '../../src/proto/ntske/records.js';

export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function asciiHex(s: string): string {
  return Buffer.from(s, 'ascii').toString('hex');
}

export const NTPV4 = { known: 'NTPV4' } as const;
export const SIV256 = { known: 'AEAD_AES_SIV_CMAC_256' } as const;
export const SIV512 = { known: 'AEAD_AES_SIV_CMAC_512' } as const;

/**
 * One row per layout: the typed record and its bytes, used for both encoding and decoding. Header word =
 * C bit (0x8000) | record type; then the u16 body length; then the body (RFC 8915 §4, §4.1.1-§4.1.8).
 */
export const RECORD_VECTORS: readonly { readonly name: string; readonly record: NtsKeRecord; readonly hex: string }[] = [
  { name: 'End of Message (§4.1.1), critical, empty', record: endOfMessage(), hex: '8000 0000' },
  { name: 'Next Protocol (§4.1.2) NTPv4', record: nextProtocolRecord([NTPV4]), hex: '8001 0002 0000' },
  {
    name: 'Next Protocol with a private-use id kept as unknown',
    record: nextProtocolRecord([NTPV4, { unknown: 0x8001 }]),
    hex: '8001 0004 0000 8001',
  },
  { name: 'Next Protocol, empty (a response MAY be empty)', record: nextProtocolRecord([]), hex: '8001 0000' },
  { name: 'Error 0 Unrecognized Critical Record (§4.1.3)', record: errorRecord({ known: 'UNRECOGNIZED_CRITICAL_RECORD' }), hex: '8002 0002 0000' },
  { name: 'Error 1 Bad Request', record: errorRecord({ known: 'BAD_REQUEST' }), hex: '8002 0002 0001' },
  { name: 'Error 2 Internal Server Error', record: errorRecord({ known: 'INTERNAL_SERVER_ERROR' }), hex: '8002 0002 0002' },
  { name: 'Error with an unassigned code', record: errorRecord({ unknown: 0x1234 }), hex: '8002 0002 1234' },
  { name: 'Warning (§4.1.4) private-use code', record: warningRecord({ unknown: 0x8001 }), hex: '8003 0002 8001' },
  { name: 'AEAD (§4.1.5) AES-SIV-CMAC-256', record: aeadAlgorithmRecord([SIV256]), hex: '8004 0002 000f' },
  {
    name: 'AEAD list, non-critical, with an id outside our table',
    record: aeadAlgorithmRecord([SIV512, SIV256, { unknown: 1 }], false),
    hex: '0004 0006 0011 000f 0001',
  },
  {
    name: 'AEAD AES-SIV-CMAC-384 and GCM-SIV ids',
    record: aeadAlgorithmRecord([{ known: 'AEAD_AES_SIV_CMAC_384' }, { known: 'AEAD_AES_128_GCM_SIV' }, { known: 'AEAD_AES_256_GCM_SIV' }]),
    hex: '8004 0006 0010 001e 001f',
  },
  { name: 'New Cookie (§4.1.6), not critical', record: newCookieRecord(hex('deadbeef')), hex: '0005 0004 deadbeef' },
  { name: 'Server (§4.1.7) host name', record: serverRecord('ntp.example.com'), hex: `8006 000f ${asciiHex('ntp.example.com')}` },
  { name: 'Server IPv4, non-critical', record: serverRecord('192.0.2.1', false), hex: `0006 0009 ${asciiHex('192.0.2.1')}` },
  { name: 'Server IPv6', record: serverRecord('2001:db8::1'), hex: `8006 000b ${asciiHex('2001:db8::1')}` },
  { name: 'Port (§4.1.8) 123', record: portRecord(123), hex: '8007 0002 007b' },
  { name: 'Port 4460, non-critical', record: portRecord(4460, false), hex: '0007 0002 116c' },
  { name: 'Port 65535', record: portRecord(65535), hex: '8007 0002 ffff' },
  { name: 'unknown non-critical type 0x4000 (private use)', record: unknownRecord(0x4000, false, hex('0102')), hex: '4000 0002 0102' },
  { name: 'unknown critical type 0x7fff, empty', record: unknownRecord(0x7fff, true, new Uint8Array(0)), hex: 'ffff 0000' },
  { name: 'unknown type 8 (first unassigned)', record: unknownRecord(8, false, hex('00')), hex: '0008 0001 00' },
];

/** Bodies that break a §4.1 rule, with the code the typed decoder must give. */
export const MALFORMED_VECTORS: readonly { readonly name: string; readonly hex: string; readonly code: string }[] = [
  { name: 'End of Message with a body', hex: '8000 0001 00', code: 'NTSKE_BAD_END_OF_MESSAGE' },
  { name: 'Next Protocol odd length 1', hex: '8001 0001 00', code: 'NTSKE_ODD_LIST_LENGTH' },
  { name: 'Next Protocol odd length 3', hex: '8001 0003 000000', code: 'NTSKE_ODD_LIST_LENGTH' },
  { name: 'Error empty', hex: '8002 0000', code: 'NTSKE_BAD_ERROR_LENGTH' },
  { name: 'Error 4 bytes', hex: '8002 0004 0001 0002', code: 'NTSKE_BAD_ERROR_LENGTH' },
  { name: 'Warning 1 byte', hex: '8003 0001 00', code: 'NTSKE_BAD_WARNING_LENGTH' },
  { name: 'AEAD odd length', hex: '8004 0003 000f00', code: 'NTSKE_ODD_LIST_LENGTH' },
  { name: 'New Cookie empty', hex: '0005 0000', code: 'NTSKE_EMPTY_COOKIE' },
  { name: 'Server empty', hex: '8006 0000', code: 'NTSKE_EMPTY_SERVER_NAME' },
  { name: 'Server with a space', hex: `8006 0003 ${asciiHex('a b')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server with a NUL', hex: '8006 0002 6100', code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server non-ASCII (U-label)', hex: '8006 0006 62c3bc636863', code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server IPv6 with a zone id', hex: `8006 000c ${asciiHex('fe80::1%eth0')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server IPv6 in brackets', hex: `8006 0005 ${asciiHex('[::1]')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server IPv6 two "::"', hex: `8006 0006 ${asciiHex('1::2::')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server IPv6 too few groups', hex: `8006 0005 ${asciiHex('1:2:3')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server label with a leading hyphen', hex: `8006 0006 ${asciiHex('-a.com')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server empty label', hex: `8006 0004 ${asciiHex('a..b')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server bad IPv4', hex: `8006 0009 ${asciiHex('999.1.1.1')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server URL', hex: `8006 000a ${asciiHex('http://a.b')}`, code: 'NTSKE_BAD_SERVER_NAME' },
  { name: 'Server 256 bytes', hex: `8006 0100 ${'61'.repeat(256)}`, code: 'NTSKE_SERVER_NAME_TOO_LONG' },
  { name: 'Port empty', hex: '8007 0000', code: 'NTSKE_BAD_PORT_LENGTH' },
  { name: 'Port 1 byte', hex: '8007 0001 00', code: 'NTSKE_BAD_PORT_LENGTH' },
  { name: 'Port 3 bytes', hex: '8007 0003 00007b', code: 'NTSKE_BAD_PORT_LENGTH' },
];

/** Client request: Next Protocol {NTPv4}, AEAD {AES-SIV-CMAC-256, AES-SIV-CMAC-512}, End of Message. */
export const REQUEST_HEX = `
  8001 0002 0000
  8004 0004 000f 0011
  8000 0000`;

/** Server response: NTPv4, AES-SIV-CMAC-256, two cookies, server, port, End of Message. */
export const RESPONSE_HEX = `
  8001 0002 0000
  8004 0002 000f
  0005 0008 0102030405060708
  0005 0008 1112131415161718
  8006 000f ${asciiHex('ntp.example.com')}
  8007 0002 007b
  8000 0000`;

/** Server refusing a request: Error Bad Request, End of Message. */
export const ERROR_RESPONSE_HEX = '8002 0002 0001 8000 0000';

/** A request carrying unknown records the server must keep apart: non-critical 0x4000 and critical 0x4001. */
export const REQUEST_WITH_UNKNOWN_HEX = `
  4000 0003 616263
  8001 0002 0000
  c001 0000
  8004 0002 000f
  8000 0000`;

export const VALID_MESSAGES: readonly { readonly name: string; readonly hex: string }[] = [
  { name: 'request', hex: REQUEST_HEX },
  { name: 'response', hex: RESPONSE_HEX },
  { name: 'error response', hex: ERROR_RESPONSE_HEX },
  { name: 'request with unknown records', hex: REQUEST_WITH_UNKNOWN_HEX },
];

export function isRaw(x: unknown): x is RawRecord {
  return typeof x === 'object' && x !== null && 'type' in x && 'critical' in x && 'body' in x && (x as RawRecord).body instanceof Uint8Array;
}

// ------------------------------------------------------------------------------------------------------------
// fast-check arbitraries. Registry values go through `decode`, so known numbers come out in `{ known }` form
// exactly as the decoder produces them.

const u16 = fc.integer({ min: 0, max: 0xffff });
const bytes = (minLength: number, maxLength: number) => fc.uint8Array({ minLength, maxLength });

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const hostName = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.constantFrom('com', 'example', 'xn--p1ai', 'net'), fc.boolean())
  .map(([labels, tld, dot]) => `${[...labels, tld].join('.')}${dot ? '.' : ''}`);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((q) => q.join('.'));
const ipv6 = fc.oneof(
  fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':')),
  fc
    .tuple(fc.array(fc.nat(0xffff), { maxLength: 3 }), fc.array(fc.nat(0xffff), { maxLength: 3 }))
    .map(([a, b]) => `${a.map((x) => x.toString(16)).join(':')}::${b.map((x) => x.toString(16)).join(':')}`),
  ipv4.map((v4) => `::ffff:${v4}`),
);
export const serverNameArb = fc.oneof(hostName, ipv4, ipv6);

export const recordArb: fc.Arbitrary<NtsKeRecord> = fc.oneof(
  fc.boolean().map((critical): NtsKeRecord => ({ kind: 'end-of-message', critical })),
  fc.tuple(fc.boolean(), fc.array(u16, { maxLength: 8 })).map(
    ([critical, ids]): NtsKeRecord => ({ kind: 'next-protocol', critical, protocols: ids.map((n) => NextProtocols.decode(n)) }),
  ),
  fc.tuple(fc.boolean(), u16).map(([critical, n]): NtsKeRecord => ({ kind: 'error', critical, code: ErrorCodes.decode(n) })),
  fc.tuple(fc.boolean(), u16).map(([critical, n]): NtsKeRecord => ({ kind: 'warning', critical, code: WarningCodes.decode(n) })),
  fc.tuple(fc.boolean(), fc.array(u16, { maxLength: 8 })).map(
    ([critical, ids]): NtsKeRecord => ({ kind: 'aead-algorithm', critical, algorithms: ids.map((n) => AeadAlgorithms.decode(n)) }),
  ),
  fc.tuple(fc.boolean(), bytes(1, 300)).map(([critical, cookie]): NtsKeRecord => ({ kind: 'new-cookie', critical, cookie })),
  fc.tuple(fc.boolean(), serverNameArb).map(([critical, server]): NtsKeRecord => ({ kind: 'server', critical, server })),
  fc.tuple(fc.boolean(), u16).map(([critical, port]): NtsKeRecord => ({ kind: 'port', critical, port })),
  fc
    .tuple(fc.integer({ min: 8, max: 0x7fff }), fc.boolean(), bytes(0, 64))
    .map(([type, critical, body]): NtsKeRecord => ({ kind: 'unknown', type, critical, body })),
);

export const rawRecordArb: fc.Arbitrary<RawRecord> = fc
  .tuple(fc.integer({ min: 0, max: 0x7fff }), fc.boolean(), bytes(0, 300))
  .map(([type, critical, body]) => ({ type, critical, body }));

/** Splits `data` into chunks at the given (unsorted, possibly repeated) cut points. */
export function splitAt(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(data.length, c))))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const p of points) {
    out.push(data.subarray(start, p));
    start = p;
  }
  out.push(data.subarray(start));
  return out;
}
