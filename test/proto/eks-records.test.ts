// The EKS wire codec (docs/eks.md §1-§2): byte layouts written out by hand from the record table, every coded
// violation, round trips and fast-check properties.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { DecoderErrorCodes } from '../../src/proto/ntske/decoder.js';
import { type RawRecord, encodeRawRecords } from '../../src/proto/ntske/framing.js';
import {
  type EksKeyResponse,
  type EksParsedResponse,
  type EksRequest,
  EksViolation,
  EksViolationCodes,
  createEksDecoder,
  decodeEksMessage,
  encodeEksError,
  encodeEksKeyResponse,
  encodeEksRequest,
  parseEksRequest,
  parseEksResponse,
} from '../../src/proto/eks/message.js';
import {
  EKS_ALPN,
  EKS_MAX_BODY_LENGTH,
  EKS_RENEW_EXPORTER_LABEL,
  EksErrorCode,
  EksMacAlgorithm,
  EksRecordType,
  eksErrorName,
  renewExporterContext,
} from '../../src/proto/eks/records.js';
import { serverNameProblem } from '../../src/proto/ntske/records.js';
import { hex, toHex } from './ntske-fixtures.js';

/** A raw record; the C bit defaults to the table's column C (set on types 0-9). */
function rec(type: number, bodyHex: string, critical = type < 10): RawRecord {
  return { type, critical, body: hex(bodyHex) };
}

const KEY_HEX = '00112233445566778899aabbccddeeff';
const PROOF_HEX = '000102030405060708090a0b0c0d0e0f';

// Header word = C bit (0x8000) | type, then the u16 body length, then the body (RFC 8915 §4 framing).
/** MAC Algorithm [1], Token "abc", Renew 32770 with proof 00..0f, End of Message. */
const REQUEST_HEX = `8001 0002 0001   8004 0003 616263   8005 0014 00008002 ${PROOF_HEX}   8000 0000`;
/**
 * MAC Algorithm [1], Key Id 32770, Key, Expiry 1795885200 (2026-11-28T17:00:00Z = 0x6b0b0890), Lifetime 172800
 * (2 days = 0x0002a300), NTP Server "ntp.example.com" (non-critical), NTP Port 10123 (0x278b, non-critical), End.
 */
const RESPONSE_HEX = [
  '8001 0002 0001',
  '8006 0004 00008002',
  `8007 0010 ${KEY_HEX}`,
  '8008 0008 00000000 6b0b0890',
  '8009 0004 0002a300',
  '000a 000f 6e74702e6578616d706c652e636f6d',
  '000b 0002 278b',
  '8000 0000',
].join(' ');
const ERROR_HEX = '8002 0002 0004 8000 0000';

const REQUEST: EksRequest = { algorithms: [1], token: 'abc', renew: { keyId: 32770, proof: hex(PROOF_HEX) } };
const RESPONSE: EksKeyResponse = {
  algorithm: 1,
  keyId: 32770,
  key: hex(KEY_HEX),
  expirySeconds: 1795885200,
  lifetimeSeconds: 172800,
  ntpServer: 'ntp.example.com',
  ntpPort: 10123,
  warnings: [],
};

const ALG = rec(1, '0001');
const END = rec(0, '');
const KEY_ID = rec(6, '00008002');
const KEY = rec(7, KEY_HEX);
const EXPIRY = rec(8, '000000006b0b0890');
const LIFETIME = rec(9, '0002a300');
const KEY_RECORDS = [ALG, KEY_ID, KEY, EXPIRY, LIFETIME];

/** Every code a decode + parse may fail with: the parsers' own and the record decoder's (EKS_ prefix). */
const KNOWN_CODES = new Set<string>([...Object.values(EksViolationCodes), ...Object.values(DecoderErrorCodes).map((c) => `EKS_${c}`)]);

function decoded(h: string): RawRecord[] {
  const r = decodeEksMessage(hex(h));
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

function requestCode(records: readonly RawRecord[]): [string, number] | 'ok' {
  const r = parseEksRequest(records);
  return r.ok ? 'ok' : [r.error.code, r.error.errorCode];
}

function responseCode(records: readonly RawRecord[]): string {
  const r = parseEksResponse(records);
  return r.ok ? 'ok' : r.error.code;
}

describe('constants (docs/eks.md §1, §2, §5)', () => {
  it('record types, algorithm and error codes follow the tables', () => {
    assert.deepEqual(Object.values(EksRecordType), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal(EksMacAlgorithm.AES128CMAC, 1);
    assert.deepEqual(Object.values(EksErrorCode), [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(EKS_ALPN, 'ntp-eks/1');
    assert.equal(EKS_RENEW_EXPORTER_LABEL, 'EXPORTER-ntptsd-eks-renew');
  });

  it('error names', () => {
    assert.equal(eksErrorName(0), 'Unrecognized Critical Record');
    assert.equal(eksErrorName(EksErrorCode.RENEWAL_REFUSED), 'Renewal Refused');
    assert.equal(eksErrorName(7), 'unknown error 7');
  });

  it('the Renew exporter context is the key id as a big-endian u32', () => {
    assert.equal(toHex(renewExporterContext(32770)), '00008002');
    assert.equal(toHex(renewExporterContext(0xffffffff)), 'ffffffff');
    assert.equal(toHex(renewExporterContext(0x01020304)), '01020304');
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
      assert.throws(() => renewExporterContext(bad), (e: unknown) => e instanceof UsageError && e.code === 'EKS_VALUE_RANGE');
    }
  });
});

describe('byte layouts (docs/eks.md §2)', () => {
  it('encodes a request byte for byte', () => {
    assert.equal(toHex(encodeEksRequest(REQUEST)), toHex(hex(REQUEST_HEX)));
    assert.equal(toHex(encodeEksRequest({ algorithms: [1, 0x1234], token: null, renew: null })), '80010004000112348000' + '0000');
  });

  it('encodes a key response byte for byte', () => {
    assert.equal(toHex(encodeEksKeyResponse(RESPONSE)), toHex(hex(RESPONSE_HEX)));
    // No NTP Server; port 123 is not sent; warnings go just before End of Message.
    const minimal = encodeEksKeyResponse({ ...RESPONSE, ntpServer: null, ntpPort: 123, warnings: [0x8001] });
    assert.equal(
      toHex(minimal),
      toHex(hex(`8001 0002 0001 8006 0004 00008002 8007 0010 ${KEY_HEX} 8008 0008 000000006b0b0890 8009 0004 0002a300 8003 0002 8001 8000 0000`)),
    );
  });

  it('encodes an error response', () => {
    assert.equal(toHex(encodeEksError(EksErrorCode.TRY_LATER)), toHex(hex(ERROR_HEX)));
  });

  it('decodes and parses the request', () => {
    const r = parseEksRequest(decoded(REQUEST_HEX));
    assert.ok(r.ok);
    assert.deepEqual(r.value, REQUEST);
  });

  it('decodes and parses the response', () => {
    const r = parseEksResponse(decoded(RESPONSE_HEX));
    assert.ok(r.ok);
    assert.deepEqual(r.value, { kind: 'key', ...RESPONSE });
  });

  it('decodes and parses the error response', () => {
    const r = parseEksResponse(decoded(ERROR_HEX));
    assert.ok(r.ok);
    assert.deepEqual(r.value, { kind: 'error', errorCode: 4, warnings: [] });
  });

  it('the largest expiry a number holds exactly', () => {
    const max = Number.MAX_SAFE_INTEGER;
    const bytes = encodeEksKeyResponse({ ...RESPONSE, expirySeconds: max });
    assert.ok(toHex(bytes).includes('80080008001fffffffffffff'));
    const r = parseEksResponse(decoded(toHex(bytes)));
    assert.ok(r.ok && r.value.kind === 'key' && r.value.expirySeconds === max);
  });

  it('a token keeps a leading BOM and multi-octet characters', () => {
    const token = '\ufeffjeton-é-🔑';
    const r = parseEksRequest(decoded(toHex(encodeEksRequest({ algorithms: [1], token, renew: null }))));
    assert.ok(r.ok && r.value.token === token);
  });
});

describe('encoders refuse what the wire cannot carry', () => {
  const usage = (f: () => unknown, code: string) => assert.throws(f, (e: unknown) => e instanceof UsageError && e.code === code);
  it('requests', () => {
    usage(() => encodeEksRequest({ algorithms: [], token: null, renew: null }), 'EKS_EMPTY_ALGORITHM_LIST');
    usage(() => encodeEksRequest({ algorithms: [0x10000], token: null, renew: null }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksRequest({ algorithms: [1], token: '', renew: null }), 'EKS_BAD_TOKEN');
    usage(() => encodeEksRequest({ algorithms: [1], token: 'x'.repeat(257), renew: null }), 'EKS_BAD_TOKEN');
    usage(() => encodeEksRequest({ algorithms: [1], token: 'a\ud800b', renew: null }), 'EKS_BAD_TOKEN');
    usage(() => encodeEksRequest({ algorithms: [1], token: null, renew: { keyId: 0, proof: new Uint8Array(16) } }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksRequest({ algorithms: [1], token: null, renew: { keyId: 1, proof: new Uint8Array(15) } }), 'EKS_BAD_PROOF');
    usage(() => encodeEksRequest({ algorithms: new Array<number>(513).fill(1), token: null, renew: null }), 'EKS_MESSAGE_TOO_LONG');
    assert.equal(encodeEksRequest({ algorithms: [1], token: 'x'.repeat(256), renew: null }).length, 6 + 260 + 4);
  });

  it('responses', () => {
    usage(() => encodeEksKeyResponse({ ...RESPONSE, algorithm: -1 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, keyId: 0 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, keyId: 2 ** 32 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, key: new Uint8Array(15) }), 'EKS_BAD_KEY');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, algorithm: 2, key: new Uint8Array(0) }), 'EKS_BAD_KEY');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, expirySeconds: 2 ** 53 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, expirySeconds: -1 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, lifetimeSeconds: 2 ** 32 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, ntpServer: 'bad name' }), 'EKS_BAD_NTP_SERVER');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, ntpPort: 0 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, ntpPort: 65536 }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, warnings: [0x10000] }), 'EKS_VALUE_RANGE');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, warnings: new Array<number>(25).fill(0) }), 'EKS_MESSAGE_TOO_LONG');
    usage(() => encodeEksKeyResponse({ ...RESPONSE, algorithm: 2, key: new Uint8Array(EKS_MAX_BODY_LENGTH + 1) }), 'EKS_MESSAGE_TOO_LONG');
    usage(() => encodeEksError(0x10000), 'EKS_VALUE_RANGE');
  });
});

const raw257 = '61'.repeat(257);

const REQUEST_CASES: readonly { name: string; records: readonly RawRecord[]; want: [string, number] | 'ok' }[] = [
  { name: 'minimal request', records: [ALG, END], want: 'ok' },
  { name: 'unknown non-critical record is ignored', records: [ALG, rec(0x4000, '616263', false), END], want: 'ok' },
  { name: 'a record after End, even unknown and non-critical', records: [ALG, END, rec(12, '', false)], want: ['EKS_END_NOT_LAST', 1] },
  { name: 'unknown critical record', records: [ALG, rec(12, '', true), END], want: ['EKS_UNKNOWN_CRITICAL', 0] },
  {
    name: 'unknown critical record wins over earlier faults',
    records: [rec(6, '00000001'), ALG, ALG, rec(0x7fff, '00', true)],
    want: ['EKS_UNKNOWN_CRITICAL', 0],
  },
  { name: 'MAC Algorithm without the critical bit', records: [rec(1, '0001', false), END], want: ['EKS_CRITICAL_BIT_MISSING', 1] },
  { name: 'End of Message without the critical bit', records: [ALG, rec(0, '', false)], want: ['EKS_CRITICAL_BIT_MISSING', 1] },
  { name: 'no records', records: [], want: ['EKS_MISSING_END', 1] },
  { name: 'no End of Message', records: [ALG], want: ['EKS_MISSING_END', 1] },
  { name: 'End of Message twice', records: [ALG, END, END], want: ['EKS_END_NOT_LAST', 1] },
  { name: 'End of Message first', records: [END, ALG], want: ['EKS_END_NOT_LAST', 1] },
  { name: 'MAC Algorithm twice', records: [ALG, ALG, END], want: ['EKS_DUPLICATE_RECORD', 1] },
  { name: 'Token twice', records: [ALG, rec(4, '61'), rec(4, '62'), END], want: ['EKS_DUPLICATE_RECORD', 1] },
  { name: 'Renew twice', records: [ALG, rec(5, `00000001${PROOF_HEX}`), rec(5, `00000001${PROOF_HEX}`), END], want: ['EKS_DUPLICATE_RECORD', 1] },
  { name: 'odd algorithm list', records: [rec(1, '000100'), END], want: ['EKS_BAD_BODY', 1] },
  { name: 'short Renew', records: [ALG, rec(5, `00000001${PROOF_HEX.slice(2)}`), END], want: ['EKS_BAD_BODY', 1] },
  { name: 'long Renew', records: [ALG, rec(5, `00000001${PROOF_HEX}00`), END], want: ['EKS_BAD_BODY', 1] },
  { name: 'Renew for key id 0', records: [ALG, rec(5, `00000000${PROOF_HEX}`), END], want: ['EKS_BAD_BODY', 1] },
  { name: 'End of Message with a body', records: [ALG, rec(0, '00')], want: ['EKS_BAD_BODY', 1] },
  { name: 'no MAC Algorithm', records: [END], want: ['EKS_MISSING_ALGORITHM', 1] },
  { name: 'Token only', records: [rec(4, '61'), END], want: ['EKS_MISSING_ALGORITHM', 1] },
  { name: 'empty algorithm list', records: [rec(1, ''), END], want: ['EKS_EMPTY_ALGORITHM_LIST', 1] },
  { name: 'empty token', records: [ALG, rec(4, ''), END], want: ['EKS_BAD_TOKEN', 1] },
  { name: 'token of 257 octets', records: [ALG, rec(4, raw257), END], want: ['EKS_BAD_TOKEN', 1] },
  { name: 'token with a stray continuation octet', records: [ALG, rec(4, '61ff'), END], want: ['EKS_BAD_TOKEN', 1] },
  { name: 'token with an overlong encoding', records: [ALG, rec(4, 'c0af'), END], want: ['EKS_BAD_TOKEN', 1] },
  { name: 'token with an encoded surrogate', records: [ALG, rec(4, 'eda080'), END], want: ['EKS_BAD_TOKEN', 1] },
  { name: 'token cut inside a character', records: [ALG, rec(4, 'e282'), END], want: ['EKS_BAD_TOKEN', 1] },
  ...[2, 3, 6, 7, 8, 9, 10, 11].map((type) => ({
    name: `response record type ${type} in a request`,
    records: [ALG, rec(type, '0001'), END],
    want: ['EKS_RESPONSE_RECORD_IN_REQUEST', 1] as [string, number],
  })),
];

describe('request violations (docs/eks.md §1, §2)', () => {
  for (const c of REQUEST_CASES) {
    it(c.name, () => assert.deepEqual(requestCode(c.records), c.want));
  }

  it('errors carry the record offset and a human message', () => {
    const r = parseEksRequest([ALG, rec(4, ''), END]);
    assert.ok(!r.ok);
    assert.ok(r.error instanceof EksViolation && r.error instanceof DecodeError);
    assert.equal(r.error.offset, 6 + 4); // the Token body starts after MAC Algorithm (6) and its header (4)
    assert.match(r.error.message, /token of 0 octets/);
  });
});

const withKey = (...extra: RawRecord[]) => [...KEY_RECORDS, ...extra, END];
const without = (type: number) => [...KEY_RECORDS.filter((r) => r.type !== type), END];
const replace = (record: RawRecord) => [...KEY_RECORDS.map((r) => (r.type === record.type ? record : r)), END];
const RESPONSE_CASES: readonly { name: string; records: readonly RawRecord[]; want: string }[] = [
  { name: 'key response', records: withKey(), want: 'ok' },
  { name: 'records in another order', records: [LIFETIME, KEY, ALG, EXPIRY, KEY_ID, END], want: 'ok' },
  { name: 'warnings, several', records: withKey(rec(3, '0001'), rec(3, '0002')), want: 'ok' },
  { name: 'NTP Server and Port sent critical are understood', records: withKey(rec(10, '6e7470', true), rec(11, '007b', true)), want: 'ok' },
  { name: 'unknown non-critical record is ignored', records: withKey(rec(100, 'ff', false)), want: 'ok' },
  { name: 'a 15-octet key under an algorithm other than AES-128-CMAC', records: [rec(1, '0002'), KEY_ID, rec(7, KEY_HEX.slice(2)), EXPIRY, LIFETIME, END], want: 'ok' },
  { name: 'error response with warnings', records: [rec(2, '0001'), rec(3, '0009'), END], want: 'ok' },
  { name: 'unknown critical record', records: withKey(rec(12, '', true)), want: 'EKS_UNKNOWN_CRITICAL' },
  { name: 'unknown critical record wins', records: [rec(4, '61'), rec(0x4001, '', true)], want: 'EKS_UNKNOWN_CRITICAL' },
  { name: 'Key without the critical bit', records: replace(rec(7, KEY_HEX, false)), want: 'EKS_CRITICAL_BIT_MISSING' },
  { name: 'no End of Message', records: KEY_RECORDS, want: 'EKS_MISSING_END' },
  { name: 'End of Message not last', records: [...KEY_RECORDS, END, rec(3, '0001')], want: 'EKS_END_NOT_LAST' },
  { name: 'Token in a response', records: withKey(rec(4, '61')), want: 'EKS_REQUEST_RECORD_IN_RESPONSE' },
  { name: 'Renew in a response', records: withKey(rec(5, `00000001${PROOF_HEX}`)), want: 'EKS_REQUEST_RECORD_IN_RESPONSE' },
  { name: 'Key Id twice', records: withKey(KEY_ID), want: 'EKS_DUPLICATE_RECORD' },
  { name: 'NTP Port twice', records: withKey(rec(11, '1000'), rec(11, '1000')), want: 'EKS_DUPLICATE_RECORD' },
  { name: 'Error twice', records: [rec(2, '0001'), rec(2, '0001'), END], want: 'EKS_DUPLICATE_RECORD' },
  { name: 'no algorithm named', records: replace(rec(1, '')), want: 'EKS_ALGORITHM_COUNT' },
  { name: 'two algorithms named', records: replace(rec(1, '00010002')), want: 'EKS_ALGORITHM_COUNT' },
  { name: 'odd algorithm list', records: replace(rec(1, '000100')), want: 'EKS_BAD_BODY' },
  { name: 'short Key Id', records: replace(rec(6, '008002')), want: 'EKS_BAD_BODY' },
  { name: 'short Expiry', records: replace(rec(8, '0000006b0b0890')), want: 'EKS_BAD_BODY' },
  { name: 'long Lifetime', records: replace(rec(9, '0002a30000')), want: 'EKS_BAD_BODY' },
  { name: 'short NTP Port', records: withKey(rec(11, '7b')), want: 'EKS_BAD_BODY' },
  { name: 'NTP Port 0', records: withKey(rec(11, '0000')), want: 'EKS_BAD_BODY' },
  { name: 'long Error', records: [rec(2, '000100'), END], want: 'EKS_BAD_BODY' },
  { name: 'short Warning', records: withKey(rec(3, '01')), want: 'EKS_BAD_BODY' },
  { name: 'End of Message with a body', records: [...KEY_RECORDS, rec(0, '0000')], want: 'EKS_BAD_BODY' },
  { name: 'key id 0', records: replace(rec(6, '00000000')), want: 'EKS_BAD_KEY_ID' },
  { name: 'empty key', records: replace(rec(7, '')), want: 'EKS_BAD_KEY' },
  { name: 'AES-128-CMAC key of 15 octets', records: replace(rec(7, KEY_HEX.slice(2))), want: 'EKS_BAD_KEY' },
  { name: 'AES-128-CMAC key of 17 octets', records: replace(rec(7, `${KEY_HEX}00`)), want: 'EKS_BAD_KEY' },
  { name: 'expiry of 2^53 seconds', records: replace(rec(8, '0020000000000000')), want: 'EKS_EXPIRY_RANGE' },
  { name: 'expiry of 2^64 - 1 seconds', records: replace(rec(8, 'ffffffffffffffff')), want: 'EKS_EXPIRY_RANGE' },
  { name: 'NTP Server with a space', records: withKey(rec(10, '6e7470206578')), want: 'EKS_BAD_NTP_SERVER' },
  { name: 'NTP Server not ASCII', records: withKey(rec(10, '6ec3a9')), want: 'EKS_BAD_NTP_SERVER' },
  { name: 'empty NTP Server', records: withKey(rec(10, '')), want: 'EKS_BAD_NTP_SERVER' },
  { name: 'NTP Server label starting with a hyphen', records: withKey(rec(10, '2d6e7470')), want: 'EKS_BAD_NTP_SERVER' },
  { name: 'no MAC Algorithm', records: without(1), want: 'EKS_MISSING_ALGORITHM' },
  { name: 'only End of Message', records: [END], want: 'EKS_MISSING_ALGORITHM' },
  { name: 'no Key Id', records: without(6), want: 'EKS_MISSING_RECORD' },
  { name: 'no Key', records: without(7), want: 'EKS_MISSING_RECORD' },
  { name: 'no Expiry', records: without(8), want: 'EKS_MISSING_RECORD' },
  { name: 'no Lifetime', records: without(9), want: 'EKS_MISSING_RECORD' },
  { name: 'Error with key records', records: [rec(2, '0001'), ...KEY_RECORDS, END], want: 'EKS_ERROR_NOT_ALONE' },
  { name: 'Error with an NTP Port', records: [rec(2, '0001'), rec(11, '1000'), END], want: 'EKS_ERROR_NOT_ALONE' },
];

describe('response violations (docs/eks.md §2)', () => {
  for (const c of RESPONSE_CASES) {
    it(c.name, () => assert.equal(responseCode(c.records), c.want));
  }

  it('an explicit port 123 is reported as sent', () => {
    const r = parseEksResponse(withKey(rec(11, '007b')));
    assert.ok(r.ok && r.value.kind === 'key' && r.value.ntpPort === 123);
  });

  it('every violation code has a case (EKS_TRUNCATED: in the framing tests)', () => {
    const seen = new Set<string>(['EKS_TRUNCATED', ...RESPONSE_CASES.map((c) => c.want)]);
    for (const c of REQUEST_CASES) if (c.want !== 'ok') seen.add(c.want[0]);
    for (const code of Object.values(EksViolationCodes)) assert.ok(seen.has(code), code);
  });
});

describe('framing (docs/eks.md §1; RFC 8915 §4)', () => {
  const code = (h: string | Uint8Array) => {
    const r = decodeEksMessage(typeof h === 'string' ? hex(h) : h);
    return r.ok ? 'ok' : r.error.code;
  };
  it('limits and truncation', () => {
    assert.equal(code(REQUEST_HEX), 'ok');
    assert.equal(code(`${REQUEST_HEX} 00`), 'EKS_DATA_AFTER_END');
    assert.equal(code(`${REQUEST_HEX} 8000 0000`), 'EKS_DATA_AFTER_END');
    assert.equal(code(''), 'EKS_TRUNCATED');
    assert.equal(code('8001 0002 0001'), 'EKS_TRUNCATED');
    assert.equal(code('8001 0002 00'), 'EKS_TRUNCATED');
    assert.equal(code('8004 0401'), 'EKS_RECORD_TOO_LONG'); // 1025 > 1024
    const fullBody = encodeRawRecords([{ type: 0x4000, critical: false, body: new Uint8Array(1024) }, END]);
    assert.equal(code(fullBody), 'ok');
    const four = new Array<RawRecord>(4).fill({ type: 0x4000, critical: false, body: new Uint8Array(1024) });
    assert.equal(code(encodeRawRecords([...four, END])), 'EKS_MESSAGE_TOO_LONG'); // 4 × 1028 > 4096
    const many = new Array<RawRecord>(32).fill({ type: 3, critical: true, body: hex('0000') });
    assert.equal(code(encodeRawRecords([...many, END])), 'EKS_TOO_MANY_RECORDS');
    assert.equal(code(encodeRawRecords([...many.slice(1), END])), 'ok');
  });

  it('the stream decoder reads a request delivered one octet at a time', () => {
    const d = createEksDecoder();
    const out: RawRecord[] = [];
    for (const b of hex(REQUEST_HEX)) {
      d.push(Uint8Array.of(b));
      for (let n = d.next(); typeof n !== 'symbol'; n = d.next()) {
        assert.ok(!(n instanceof DecodeError));
        out.push(n);
      }
    }
    assert.equal(d.end(), undefined);
    assert.deepEqual(parseEksRequest(out), { ok: true, value: REQUEST });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties.

const u16 = fc.integer({ min: 0, max: 0xffff });
const keyId = fc.integer({ min: 1, max: 0xffffffff });
const tokenArb = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => {
  const n = Buffer.byteLength(s, 'utf8');
  return n >= 1 && n <= 256;
});
const requestArb: fc.Arbitrary<EksRequest> = fc.record({
  algorithms: fc.array(u16, { minLength: 1, maxLength: 20 }),
  token: fc.option(tokenArb, { nil: null }),
  renew: fc.option(fc.record({ keyId, proof: fc.uint8Array({ minLength: 16, maxLength: 16 }) }, { noNullPrototype: true }), { nil: null }),
}, { noNullPrototype: true });
const serverArb = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6()).filter((s) => serverNameProblem(s) === undefined);
const responseArb: fc.Arbitrary<EksKeyResponse> = fc
  .tuple(
    fc.oneof(
      fc.tuple(fc.constant(1), fc.uint8Array({ minLength: 16, maxLength: 16 })),
      fc.tuple(fc.integer({ min: 2, max: 0xffff }), fc.uint8Array({ minLength: 1, maxLength: 64 })),
    ),
    keyId,
    fc.maxSafeNat(),
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.option(serverArb, { nil: null }),
    fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: null }),
    fc.array(u16, { maxLength: 5 }),
  )
  .map(([[algorithm, key], id, expirySeconds, lifetimeSeconds, ntpServer, ntpPort, warnings]) => ({
    algorithm,
    keyId: id,
    key,
    expirySeconds,
    lifetimeSeconds,
    ntpServer,
    ntpPort,
    warnings,
  }));

/** Types around the assigned ones, and any 15-bit type; bodies of the lengths the table uses, or any. */
const rawRecordArb: fc.Arbitrary<RawRecord> = fc.record({
  type: fc.oneof(fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 0x7fff })),
  critical: fc.boolean(),
  body: fc.oneof(
    fc.constantFrom(0, 1, 2, 4, 8, 16, 20).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    fc.uint8Array({ maxLength: 40 }),
  ),
});

/** A failure is a coded error; an EksViolation's answer is 0 exactly for an unknown critical record. */
function assertCoded(error: DecodeError): void {
  assert.ok(error instanceof DecodeError);
  assert.ok(KNOWN_CODES.has(error.code), error.code);
  if (error instanceof EksViolation) assert.equal(error.errorCode, error.code === 'EKS_UNKNOWN_CRITICAL' ? 0 : 1);
}

function decodeAndParse(bytes: Uint8Array): void {
  const d = decodeEksMessage(bytes);
  if (!d.ok) {
    assertCoded(d.error);
    return;
  }
  const q = parseEksRequest(d.value);
  if (!q.ok) assertCoded(q.error);
  const s = parseEksResponse(d.value);
  if (!s.ok) assertCoded(s.error);
}

describe('properties', () => {
  it('never throws on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), decodeAndParse), { numRuns: 2000 });
  });

  it('never throws on arbitrary record lists', () => {
    fc.assert(
      fc.property(fc.array(rawRecordArb, { maxLength: 12 }), fc.boolean(), (records, terminate) => {
        const list = terminate ? [...records, END] : records;
        const q = parseEksRequest(list);
        if (!q.ok) assertCoded(q.error);
        const s = parseEksResponse(list);
        if (!s.ok) assertCoded(s.error);
        // Whatever parses re-encodes into something that parses to the same value.
        if (q.ok) assert.deepEqual(parseEksRequest(decoded(toHex(encodeEksRequest(q.value)))), q);
      }),
      { numRuns: 3000 },
    );
  });

  it('request round trip', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const r = decodeEksMessage(encodeEksRequest(req));
        assert.ok(r.ok);
        assert.deepEqual(parseEksRequest(r.value), { ok: true, value: req });
      }),
      { numRuns: 500 },
    );
  });

  it('key response round trip (port 123 is not sent, so reads back as null)', () => {
    fc.assert(
      fc.property(responseArb, (resp) => {
        const r = decodeEksMessage(encodeEksKeyResponse(resp));
        assert.ok(r.ok);
        const want: EksParsedResponse = { kind: 'key', ...resp, ntpPort: resp.ntpPort === 123 ? null : resp.ntpPort };
        assert.deepEqual(parseEksResponse(r.value), { ok: true, value: want });
      }),
      { numRuns: 500 },
    );
  });

  it('error response round trip', () => {
    fc.assert(
      fc.property(u16, (code) => {
        const r = decodeEksMessage(encodeEksError(code));
        assert.ok(r.ok);
        assert.deepEqual(parseEksResponse(r.value), { ok: true, value: { kind: 'error', errorCode: code, warnings: [] } });
      }),
    );
  });

  it('bit-flipped, truncated or extended encodings parse or fail with a coded error', () => {
    const valid = fc.oneof(requestArb.map(encodeEksRequest), responseArb.map(encodeEksKeyResponse), u16.map(encodeEksError));
    const mutated = fc
      .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 8 }))
      .map(([bytes, flips, cut, extra]) => {
        const out = bytes.slice();
        for (const [at, bit] of flips) out[at % out.length] = (out[at % out.length] ?? 0) ^ (1 << bit);
        const kept = out.subarray(0, cut % (out.length + 1));
        return cut % 3 === 0 ? Uint8Array.from([...out, ...extra]) : kept;
      });
    fc.assert(fc.property(mutated, decodeAndParse), { numRuns: 3000 });
  });
});
