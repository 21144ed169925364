import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { encodeRawRecord, encodeRawRecords } from '../../src/proto/ntske/framing.js';
import {
  AeadAlgorithms,
  ErrorCodes,
  NextProtocols,
  RecordType,
  decodeRecord,
  encodeRecord,
  errorRecord,
  fromRawRecord,
  newCookieRecord,
  portRecord,
  serverNameProblem,
  serverRecord,
  toRawRecord,
  unknownRecord,
} from '../../src/proto/ntske/records.js';
import { MALFORMED_VECTORS, RECORD_VECTORS, hex, rawRecordArb, recordArb, serverNameArb, toHex } from './ntske-fixtures.js';

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${String(e)}`);
    return e.code;
  }
  assert.fail('expected a UsageError');
}

describe('NTS-KE record layouts (RFC 8915 §4.1), one table both ways', () => {
  for (const v of RECORD_VECTORS) {
    it(`encodes ${v.name}`, () => {
      assert.equal(toHex(encodeRecord(v.record)), toHex(hex(v.hex)));
    });
    it(`decodes ${v.name}`, () => {
      assert.deepEqual(decodeRecord(hex(v.hex)), { ok: true, value: v.record });
    });
  }

  it('record type constants match the IANA registry (§7.6)', () => {
    assert.deepEqual(RecordType, {
      END_OF_MESSAGE: 0,
      NEXT_PROTOCOL: 1,
      ERROR: 2,
      WARNING: 3,
      AEAD_ALGORITHM: 4,
      NEW_COOKIE: 5,
      SERVER: 6,
      PORT: 7,
    });
    assert.equal(NextProtocols.values.NTPV4, 0);
    assert.deepEqual(ErrorCodes.values, { UNRECOGNIZED_CRITICAL_RECORD: 0, BAD_REQUEST: 1, INTERNAL_SERVER_ERROR: 2 });
    assert.equal(AeadAlgorithms.values.AEAD_AES_SIV_CMAC_256, 15);
    assert.equal(AeadAlgorithms.values.AEAD_AES_SIV_CMAC_512, 17);
  });

  it('constructors set the critical bit the RFC asks for', () => {
    const critical = (bytes: Uint8Array) => ((bytes[0] ?? 0) & 0x80) !== 0;
    assert.equal(critical(encodeRecord(newCookieRecord(hex('01')))), false); // §4.1.6 SHOULD NOT
    assert.equal(critical(encodeRecord(errorRecord({ known: 'BAD_REQUEST' }))), true); // §4.1.3 MUST
    assert.equal(critical(encodeRecord(serverRecord('a.example'))), true);
    assert.equal(critical(encodeRecord(portRecord(1))), true);
  });
});

describe('malformed bodies give coded DecodeErrors', () => {
  for (const v of MALFORMED_VECTORS) {
    it(v.name, () => {
      const r = decodeRecord(hex(v.hex));
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.ok(r.error instanceof DecodeError);
      assert.equal(r.error.code, v.code);
      assert.equal(r.error.offset, 4, 'body errors point at the body');
    });
  }

  it('framing problems of a lone record', () => {
    const c = (h: string) => {
      const r = decodeRecord(hex(h));
      return r.ok ? 'ok' : r.error.code;
    };
    assert.equal(c(''), 'NTSKE_TRUNCATED');
    assert.equal(c('80'), 'NTSKE_TRUNCATED');
    assert.equal(c('8001 0002 00'), 'NTSKE_TRUNCATED');
    assert.equal(c('8000 0000 00'), 'NTSKE_TRAILING_DATA');
  });

  it('the critical bit is reported, not judged, by the record layer', () => {
    // A non-critical End of Message is a message-level violation (message.ts), not a body error.
    assert.deepEqual(decodeRecord(hex('0000 0000')), { ok: true, value: { kind: 'end-of-message', critical: false } });
  });
});

describe('server names (§4.1.7)', () => {
  const good = ['ntp.example.com', 'ntp.example.com.', 'localhost', '192.0.2.1', '2001:db8::1', '::1', '::', '1:2:3:4:5:6:7:8', '::ffff:192.0.2.1', 'xn--bcher-kva.example', 'a-b.c'];
  const bad = ['', 'a b', '-a', 'a-', 'a..b', '.a', 'a_b.example', '999.1.1.1', '1.2.3', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'fe80::1%1', '[::1]', '1::2:', ':1::2', 'g::1', '12345::1', `${'a'.repeat(64)}.com`, 'a'.repeat(256)];
  for (const name of good) it(`accepts ${JSON.stringify(name)}`, () => assert.equal(serverNameProblem(name), undefined));
  for (const name of bad) it(`rejects ${JSON.stringify(name)}`, () => assert.notEqual(serverNameProblem(name), undefined));
});

describe('encoders refuse what the wire cannot carry (UsageError)', () => {
  it('out-of-range values', () => {
    assert.equal(code(() => encodeRecord(portRecord(65536))), 'NTSKE_VALUE_RANGE');
    assert.equal(code(() => encodeRecord(portRecord(-1))), 'NTSKE_VALUE_RANGE');
    assert.equal(code(() => encodeRecord(errorRecord({ unknown: 70000 }))), 'REGISTRY_VALUE_RANGE');
    assert.equal(code(() => encodeRecord(serverRecord('bad name'))), 'NTSKE_BAD_SERVER_NAME');
    assert.equal(code(() => encodeRecord(newCookieRecord(new Uint8Array(0)))), 'NTSKE_EMPTY_COOKIE');
    assert.equal(code(() => encodeRecord(newCookieRecord(new Uint8Array(65536)))), 'RECORD_BODY_TOO_LONG');
  });
  it('unknown records with a defined or out-of-range type', () => {
    assert.equal(code(() => encodeRecord(unknownRecord(RecordType.PORT, false, new Uint8Array(0)))), 'NTSKE_UNKNOWN_RECORD_TYPE');
    assert.equal(code(() => encodeRecord(unknownRecord(0x8000, false, new Uint8Array(0)))), 'RECORD_TYPE_RANGE');
    assert.equal(code(() => encodeRawRecord({ type: 1.5, critical: false, body: new Uint8Array(0) })), 'RECORD_TYPE_RANGE');
  });
  it('registry names that do not exist', () => {
    // A caller bypassing the types: still a UsageError, not garbage on the wire.
    const bogus = { known: 'NTPV5' } as unknown as { known: 'NTPV4' };
    assert.equal(code(() => NextProtocols.encode(bogus)), 'REGISTRY_UNKNOWN_NAME');
  });
  it('registry helpers', () => {
    assert.equal(AeadAlgorithms.label({ known: 'AEAD_AES_SIV_CMAC_256' }), 'AEAD_AES_SIV_CMAC_256');
    assert.equal(AeadAlgorithms.label({ unknown: 99 }), 'unknown(99)');
    assert.equal(NextProtocols.is({ unknown: 0 }, 'NTPV4'), true);
    assert.deepEqual(ErrorCodes.decode(1), { known: 'BAD_REQUEST' });
    assert.deepEqual(ErrorCodes.decode(9), { unknown: 9 });
  });
});

describe('record properties (fast-check)', () => {
  it('every typed record round-trips encode -> decode', () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        assert.deepEqual(decodeRecord(encodeRecord(record)), { ok: true, value: record });
      }),
      { numRuns: 2000 },
    );
  });

  it('every raw record types without throwing and re-encodes to the same bytes when well formed', () => {
    fc.assert(
      fc.property(rawRecordArb, (raw) => {
        const typed = fromRawRecord(raw);
        if (typed.ok) assert.equal(toHex(encodeRecord(typed.value)), toHex(encodeRawRecord(raw)));
        else assert.match(typed.error.code, /^NTSKE_[A-Z_]+$/);
      }),
      { numRuns: 2000 },
    );
  });

  it('random bytes decode to a record or a DecodeError, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = decodeRecord(bytes);
        if (!r.ok) assert.ok(r.error instanceof DecodeError);
      }),
      { numRuns: 2000 },
    );
  });

  it('server names from the generators are accepted and round-trip', () => {
    fc.assert(
      fc.property(serverNameArb, (name) => {
        assert.equal(serverNameProblem(name), undefined, name);
        assert.deepEqual(fromRawRecord(toRawRecord(serverRecord(name))), { ok: true, value: serverRecord(name) });
      }),
      { numRuns: 1000 },
    );
  });

  it('encodeRawRecords is the concatenation of single records', () => {
    fc.assert(
      fc.property(fc.array(rawRecordArb, { maxLength: 5 }), (raws) => {
        assert.equal(toHex(encodeRawRecords(raws)), raws.map((r) => toHex(encodeRawRecord(r))).join(''));
      }),
      { numRuns: 200 },
    );
  });
});
