import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { type RawRecord, encodeRawRecords } from '../../src/proto/ntske/framing.js';
import { MessageCollector, type MessageRole, collectMessage, decodeMessage, encodeMessage } from '../../src/proto/ntske/message.js';
import {
  type NtsKeRecord,
  aeadAlgorithmRecord,
  endOfMessage,
  errorRecord,
  newCookieRecord,
  nextProtocolRecord,
  portRecord,
  serverRecord,
  toRawRecord,
  unknownRecord,
  warningRecord,
} from '../../src/proto/ntske/records.js';
import {
  ERROR_RESPONSE_HEX,
  NTPV4,
  REQUEST_HEX,
  REQUEST_WITH_UNKNOWN_HEX,
  RESPONSE_HEX,
  SIV256,
  SIV512,
  VALID_MESSAGES,
  hex,
  recordArb,
  toHex,
} from './ntske-fixtures.js';

function view(role: MessageRole, h: string) {
  const r = decodeMessage(hex(h), role);
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

/** Violation codes of a message made of these records (End of Message not added). */
function codes(role: MessageRole, records: readonly (NtsKeRecord | RawRecord)[]): string[] {
  const raws = records.map((r) => ('kind' in r ? toRawRecord(r) : r));
  return collectMessage(role, raws).violations.map((v) => v.code);
}

const EOM = endOfMessage();
const NP = nextProtocolRecord([NTPV4]);
const AEAD_REQ = aeadAlgorithmRecord([SIV256, SIV512]);
const AEAD_RESP = aeadAlgorithmRecord([SIV256]);
const COOKIE = newCookieRecord(hex('0102030405060708'));

describe('whole messages', () => {
  it('encodes the client request byte for byte', () => {
    assert.equal(toHex(encodeMessage([NP, AEAD_REQ])), toHex(hex(REQUEST_HEX)));
  });

  it('encodes the server response byte for byte', () => {
    const response = encodeMessage([
      NP,
      AEAD_RESP,
      COOKIE,
      newCookieRecord(hex('1112131415161718')),
      serverRecord('ntp.example.com'),
      portRecord(123),
    ]);
    assert.equal(toHex(response), toHex(hex(RESPONSE_HEX)));
  });

  it('encodes an error response', () => {
    assert.equal(toHex(encodeMessage([errorRecord({ known: 'BAD_REQUEST' })])), toHex(hex(ERROR_RESPONSE_HEX)));
  });

  it('refuses a list that already has End of Message', () => {
    assert.throws(() => encodeMessage([NP, EOM]), (e: unknown) => e instanceof UsageError && e.code === 'NTSKE_END_OF_MESSAGE_IN_LIST');
  });

  it('request view', () => {
    const m = view('request', REQUEST_HEX);
    assert.deepEqual(m.violations, []);
    assert.equal(m.complete, true);
    assert.deepEqual(m.nextProtocols, [NTPV4]);
    assert.deepEqual(m.aeadAlgorithms, [SIV256, SIV512]);
    assert.deepEqual(m.cookies, []);
    assert.equal(m.server, undefined);
    assert.equal(m.port, undefined);
    assert.deepEqual(m.records, [NP, AEAD_REQ, EOM]);
  });

  it('response view', () => {
    const m = view('response', RESPONSE_HEX);
    assert.deepEqual(m.violations, []);
    assert.deepEqual(m.nextProtocols, [NTPV4]);
    assert.deepEqual(m.aeadAlgorithms, [SIV256]);
    assert.deepEqual(m.cookies, [hex('0102030405060708'), hex('1112131415161718')]);
    assert.equal(m.server, 'ntp.example.com');
    assert.equal(m.port, 123);
    assert.deepEqual(m.errors, []);
    assert.deepEqual(m.warnings, []);
  });

  it('error response view: no missing-record complaints once the server sent an Error', () => {
    const m = view('response', ERROR_RESPONSE_HEX);
    assert.deepEqual(m.errors, [{ known: 'BAD_REQUEST' }]);
    assert.deepEqual(m.violations, []);
  });

  it('unknown records are kept, critical and not, and re-encode byte for byte', () => {
    const m = view('request', REQUEST_WITH_UNKNOWN_HEX);
    assert.deepEqual(m.unknown, [unknownRecord(0x4000, false, hex('616263')), unknownRecord(0x4001, true, new Uint8Array(0))]);
    assert.deepEqual(
      m.violations.map((v) => [v.code, v.index, v.answer]),
      [['NTSKE_UNRECOGNIZED_CRITICAL_RECORD', 2, { known: 'UNRECOGNIZED_CRITICAL_RECORD' }]],
    );
    assert.equal(toHex(encodeRawRecords(m.records.map(toRawRecord))), toHex(hex(REQUEST_WITH_UNKNOWN_HEX)));
  });

  it('framing errors fail the whole decode', () => {
    const c = (h: string) => {
      const r = decodeMessage(hex(h), 'request');
      return r.ok ? 'ok' : r.error.code;
    };
    assert.equal(c(`${REQUEST_HEX} 00`), 'NTSKE_DATA_AFTER_END');
    assert.equal(c('8001 0002 0000'), 'NTSKE_TRUNCATED');
    assert.equal(c('8001 0002 00'), 'NTSKE_TRUNCATED');
    assert.equal(c(''), 'NTSKE_TRUNCATED');
    assert.equal(c('0005 ffff'), 'NTSKE_RECORD_TOO_LONG');
    const big = decodeMessage(hex(RESPONSE_HEX), 'response', { maxMessageLength: 20 });
    assert.equal(big.ok ? 'ok' : big.error.code, 'NTSKE_MESSAGE_TOO_LONG');
  });
});

describe('protocol rules become coded violations (RFC 8915 §4)', () => {
  const cases: readonly { name: string; role: MessageRole; records: readonly (NtsKeRecord | RawRecord)[]; want: string[] }[] = [
    { name: 'well-formed request', role: 'request', records: [NP, AEAD_REQ, EOM], want: [] },
    { name: 'well-formed response', role: 'response', records: [NP, AEAD_RESP, COOKIE, EOM], want: [] },
    { name: 'no End of Message (§4.1.1)', role: 'request', records: [NP, AEAD_REQ], want: ['NTSKE_MISSING_END_OF_MESSAGE'] },
    { name: 'record after End of Message', role: 'request', records: [NP, AEAD_REQ, EOM, NP], want: ['NTSKE_RECORD_AFTER_END'] },
    {
      name: 'End of Message without the Critical Bit',
      role: 'request',
      records: [NP, AEAD_REQ, { type: 0, critical: false, body: new Uint8Array(0) }],
      want: ['NTSKE_CRITICAL_BIT_MISSING'],
    },
    {
      name: 'Next Protocol without the Critical Bit (§4.1.2)',
      role: 'request',
      records: [{ ...NP, critical: false }, AEAD_REQ, EOM],
      want: ['NTSKE_CRITICAL_BIT_MISSING'],
    },
    {
      name: 'Error and Warning without the Critical Bit (§4.1.3, §4.1.4)',
      role: 'response',
      records: [{ ...errorRecord({ known: 'BAD_REQUEST' }), critical: false }, { ...warningRecord({ unknown: 1 }), critical: false }, EOM],
      want: ['NTSKE_CRITICAL_BIT_MISSING', 'NTSKE_CRITICAL_BIT_MISSING'],
    },
    { name: 'no Next Protocol (§4.1.2)', role: 'request', records: [AEAD_REQ, EOM], want: ['NTSKE_MISSING_NEXT_PROTOCOL'] },
    { name: 'two Next Protocol records are a bad request', role: 'request', records: [NP, NP, AEAD_REQ, EOM], want: ['NTSKE_DUPLICATE_NEXT_PROTOCOL'] },
    { name: 'empty Next Protocol in a request', role: 'request', records: [nextProtocolRecord([]), AEAD_REQ, EOM], want: ['NTSKE_EMPTY_NEXT_PROTOCOL'] },
    { name: 'empty Next Protocol in a response is allowed', role: 'response', records: [nextProtocolRecord([]), EOM], want: [] },
    { name: 'NTPv4 without AEAD (§4.1.5)', role: 'request', records: [NP, EOM], want: ['NTSKE_MISSING_AEAD'] },
    {
      name: 'a protocol other than NTPv4 needs no AEAD record',
      role: 'request',
      records: [nextProtocolRecord([{ unknown: 0x8000 }]), EOM],
      want: [],
    },
    { name: 'two AEAD records', role: 'request', records: [NP, AEAD_REQ, AEAD_REQ, EOM], want: ['NTSKE_DUPLICATE_AEAD'] },
    { name: 'empty AEAD list in a request', role: 'request', records: [NP, aeadAlgorithmRecord([]), EOM], want: ['NTSKE_EMPTY_AEAD'] },
    { name: 'empty AEAD list in a response is allowed, and needs no cookie', role: 'response', records: [NP, aeadAlgorithmRecord([]), EOM], want: [] },
    { name: 'two AEAD ids in a response', role: 'response', records: [NP, AEAD_REQ, COOKIE, EOM], want: ['NTSKE_MULTIPLE_AEAD'] },
    { name: 'Error in a request (§4.1.3)', role: 'request', records: [NP, AEAD_REQ, errorRecord({ known: 'BAD_REQUEST' }), EOM], want: ['NTSKE_ERROR_IN_REQUEST'] },
    { name: 'Warning in a request (§4.1.4)', role: 'request', records: [NP, AEAD_REQ, warningRecord({ unknown: 7 }), EOM], want: ['NTSKE_WARNING_IN_REQUEST'] },
    { name: 'New Cookie in a request (§4.1.6)', role: 'request', records: [NP, AEAD_REQ, COOKIE, EOM], want: ['NTSKE_COOKIE_IN_REQUEST'] },
    { name: 'response without cookies (§4.1.6)', role: 'response', records: [NP, AEAD_RESP, EOM], want: ['NTSKE_MISSING_COOKIE'] },
    {
      name: 'two Server records (§4.1.7)',
      role: 'request',
      records: [NP, AEAD_REQ, serverRecord('a.example'), serverRecord('b.example'), EOM],
      want: ['NTSKE_DUPLICATE_SERVER'],
    },
    { name: 'two Port records (§4.1.8)', role: 'response', records: [NP, AEAD_RESP, COOKIE, portRecord(1), portRecord(2), EOM], want: ['NTSKE_DUPLICATE_PORT'] },
    {
      name: 'unknown critical record (§4)',
      role: 'request',
      records: [NP, AEAD_REQ, unknownRecord(0x4001, true, hex('00')), EOM],
      want: ['NTSKE_UNRECOGNIZED_CRITICAL_RECORD'],
    },
    { name: 'unknown non-critical record is ignored', role: 'request', records: [unknownRecord(0x4001, false, hex('00')), NP, AEAD_REQ, EOM], want: [] },
    {
      name: 'malformed body is a violation and left out of the view',
      role: 'request',
      records: [NP, AEAD_REQ, { type: 7, critical: true, body: hex('00') }, EOM],
      want: ['NTSKE_BAD_PORT_LENGTH'],
    },
    {
      name: 'malformed End of Message still ends the message',
      role: 'request',
      records: [NP, AEAD_REQ, { type: 0, critical: true, body: hex('00') }],
      want: ['NTSKE_BAD_END_OF_MESSAGE'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(codes(c.role, c.records), c.want));
  }

  it('duplicates keep the first value in the view', () => {
    const m = collectMessage('request', [NP, AEAD_REQ, serverRecord('a.example'), serverRecord('b.example'), portRecord(1), portRecord(2), EOM].map(toRawRecord));
    assert.equal(m.server, 'a.example');
    assert.equal(m.port, 1);
    assert.deepEqual(m.records.length, 7);
  });

  it('malformed records are listed with their index and error', () => {
    const m = collectMessage('request', [toRawRecord(NP), { type: 2, critical: true, body: hex('01') }, toRawRecord(EOM)]);
    assert.equal(m.malformed.length, 1);
    assert.equal(m.malformed[0]?.index, 1);
    assert.equal(m.malformed[0]?.error.code, 'NTSKE_BAD_ERROR_LENGTH');
    assert.deepEqual(m.errors, []);
  });

  it('every collector violation answers Bad Request except an unrecognized critical record', () => {
    const m = collectMessage('request', [unknownRecord(0x4001, true, new Uint8Array(0)), NP, NP, EOM].map(toRawRecord));
    assert.deepEqual(
      m.violations.map((v) => v.answer),
      [{ known: 'UNRECOGNIZED_CRITICAL_RECORD' }, { known: 'BAD_REQUEST' }, { known: 'BAD_REQUEST' }],
    );
  });

  it('the collector can be fed incrementally and finish() is a snapshot', () => {
    const c = new MessageCollector('request');
    c.add(toRawRecord(NP));
    const early = c.finish();
    assert.equal(early.complete, false);
    assert.ok(early.violations.some((v) => v.code === 'NTSKE_MISSING_END_OF_MESSAGE'));
    c.add(toRawRecord(AEAD_REQ));
    c.add(toRawRecord(EOM));
    assert.equal(c.complete, true);
    assert.deepEqual(c.finish().violations, []);
    assert.equal(early.records.length, 1);
  });
});

describe('message properties (fast-check)', () => {
  it('encodeMessage -> decodeMessage round-trips any record list', () => {
    fc.assert(
      fc.property(fc.array(recordArb.filter((r) => r.kind !== 'end-of-message'), { maxLength: 10 }), fc.constantFrom<MessageRole>('request', 'response'), (records, role) => {
        const r = decodeMessage(encodeMessage(records), role);
        assert.ok(r.ok);
        assert.deepEqual(r.value.records, [...records, EOM]);
        assert.equal(r.value.complete, true);
      }),
      { numRuns: 500 },
    );
  });

  it('random and mutated bytes give a view or a DecodeError, never a throw', () => {
    const messages = VALID_MESSAGES.map((m) => hex(m.hex));
    const mutated = fc
      .tuple(fc.nat(messages.length - 1), fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.nat(200))
      .map(([which, flips, cut]) => {
        const bytes = Uint8Array.from(messages[which] ?? []);
        for (const [pos, value] of flips) if (bytes.length > 0) bytes[pos % bytes.length] = value;
        return cut % 3 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes; // sometimes truncated too
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 120 })), fc.constantFrom<MessageRole>('request', 'response'), (bytes, role) => {
        const r = decodeMessage(bytes, role);
        if (!r.ok) {
          assert.ok(r.error instanceof DecodeError);
          assert.match(r.error.code, /^NTSKE_[A-Z_]+$/);
        } else {
          for (const v of r.value.violations) assert.match(v.code, /^NTSKE_[A-Z_]+$/);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
