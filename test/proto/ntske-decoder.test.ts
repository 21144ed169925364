import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { NEED_DATA, RecordDecoder, type RecordDecoderOptions } from '../../src/proto/ntske/decoder.js';
import { type RawRecord, encodeRawRecord, encodeRawRecords } from '../../src/proto/ntske/framing.js';
import { REQUEST_HEX, VALID_MESSAGES, hex, isRaw, rawRecordArb, splitAt } from './ntske-fixtures.js';

type Outcome = { records: RawRecord[]; error?: string; complete: boolean };

/** Feeds the chunks in order, draining after each push, as a socket shell does. */
function run(chunks: readonly Uint8Array[], options?: RecordDecoderOptions): Outcome {
  const d = new RecordDecoder(options);
  const records: RawRecord[] = [];
  for (const chunk of chunks) {
    d.push(chunk);
    for (;;) {
      const r = d.next();
      if (r === NEED_DATA) break;
      if (r instanceof DecodeError) return { records, error: r.code, complete: d.messageComplete };
      records.push(r);
    }
  }
  return { records, complete: d.messageComplete };
}

function bytesOneByOne(data: Uint8Array): Uint8Array[] {
  return Array.from(data, (_, i) => data.subarray(i, i + 1));
}

describe('RecordDecoder: chunking does not matter', () => {
  for (const m of VALID_MESSAGES) {
    const data = hex(m.hex);
    const whole = run([data]);

    it(`${m.name}: whole message decodes to End of Message`, () => {
      assert.equal(whole.error, undefined);
      assert.equal(whole.complete, true);
      assert.equal(whole.records.at(-1)?.type, 0);
      assert.equal(encodeRawRecords(whole.records).length, data.length);
      assert.deepEqual(encodeRawRecords(whole.records), data);
    });

    it(`${m.name}: split at every byte offset`, () => {
      for (let i = 0; i <= data.length; i++) assert.deepEqual(run(splitAt(data, [i])), whole, `split at ${i}`);
    });

    it(`${m.name}: split at every pair of offsets`, () => {
      for (let i = 0; i <= data.length; i++) {
        for (let j = i; j <= data.length; j++) assert.deepEqual(run(splitAt(data, [i, j])), whole, `split at ${i},${j}`);
      }
    });

    it(`${m.name}: one byte at a time`, () => {
      assert.deepEqual(run(bytesOneByOne(data)), whole);
    });
  }

  it('random chunkings of random record sequences give the same records (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(rawRecordArb.filter((r) => r.type !== 0), { maxLength: 8 }),
        fc.array(fc.nat(4000), { maxLength: 12 }),
        (raws, cuts) => {
          const records = [...raws, { type: 0, critical: true, body: new Uint8Array(0) }];
          const data = encodeRawRecords(records);
          const out = run(splitAt(data, cuts), { maxBodyLength: 300, maxMessageLength: 4000 });
          assert.equal(out.error, undefined);
          assert.deepEqual(out.records, records);
          assert.equal(out.complete, true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('bodies are copies: mutating a pushed chunk later does not change returned records', () => {
    const chunk = hex('4000 0002 abcd 8000 0000');
    const d = new RecordDecoder();
    d.push(chunk);
    const r = d.next();
    assert.ok(isRaw(r));
    chunk.fill(0);
    assert.deepEqual(r.body, hex('abcd'));
  });
});

describe('RecordDecoder: limits are checked from the header', () => {
  it('body longer than maxBodyLength fails before the body arrives', () => {
    const d = new RecordDecoder({ maxBodyLength: 1024 });
    d.push(hex('0005 0401')); // 1025 bytes announced, none sent
    const r = d.next();
    assert.ok(r instanceof DecodeError);
    assert.equal(r.code, 'NTSKE_RECORD_TOO_LONG');
    assert.equal(r.offset, 0);
  });

  it('a body at exactly maxBodyLength is fine', () => {
    const data = encodeRawRecords([
      { type: 5, critical: false, body: new Uint8Array(1024) },
      { type: 0, critical: true, body: new Uint8Array(0) },
    ]);
    assert.equal(run([data]).error, undefined);
  });

  it('the default body cap is 1024 and the message cap 16 KiB', () => {
    const d = new RecordDecoder();
    assert.equal(d.maxBodyLength, 1024);
    assert.equal(d.maxMessageLength, 16384);
    assert.equal(d.maxRecords, 64);
  });

  it('message longer than maxMessageLength fails at the header that crosses it', () => {
    // 3 cookies of 8 bytes = 36 bytes; a cap of 30 is crossed by the third record, which starts at 24.
    const cookie = (n: number) => ({ type: 5, critical: false, body: new Uint8Array(8).fill(n) });
    const data = encodeRawRecords([cookie(1), cookie(2), cookie(3)]);
    const out = run([data], { maxMessageLength: 30 });
    assert.equal(out.records.length, 2);
    assert.equal(out.error, 'NTSKE_MESSAGE_TOO_LONG');
  });

  it('message cap is hit even when fewer than 4 header bytes of the next record are buffered', () => {
    const d = new RecordDecoder({ maxMessageLength: 14 });
    d.push(hex('0005 0008 0102030405060708 00')); // 12 bytes used; the next header cannot fit into 14
    assert.ok(isRaw(d.next()));
    const r = d.next();
    assert.ok(r instanceof DecodeError);
    assert.equal(r.code, 'NTSKE_MESSAGE_TOO_LONG');
    assert.equal(r.offset, 12);
  });

  it('more than maxRecords records', () => {
    const data = encodeRawRecords(Array.from({ length: 5 }, () => ({ type: 0x4000, critical: false, body: new Uint8Array(0) })));
    const out = run([data], { maxRecords: 4 });
    assert.equal(out.records.length, 4);
    assert.equal(out.error, 'NTSKE_TOO_MANY_RECORDS');
  });

  it('End of Message counts as a record', () => {
    const data = hex('4000 0000 4000 0000 8000 0000');
    assert.equal(run([data], { maxRecords: 3 }).error, undefined);
    assert.equal(run([data], { maxRecords: 2 }).error, 'NTSKE_TOO_MANY_RECORDS');
  });

  it('rejects limits outside their range as a UsageError', () => {
    assert.throws(() => new RecordDecoder({ maxBodyLength: 70000 }), UsageError);
    assert.throws(() => new RecordDecoder({ maxRecords: -1 }), UsageError);
    assert.throws(() => new RecordDecoder({ endOfMessageType: 0x8000 }), UsageError);
  });

  it('in single-message mode a flood is not stored past maxMessageLength + 1 bytes', () => {
    const d = new RecordDecoder({ maxMessageLength: 1000 });
    for (let i = 0; i < 100; i++) d.push(new Uint8Array(1 << 16).fill(0x40));
    assert.ok(d.bufferedBytes <= 1001, `buffered ${d.bufferedBytes}`);
    let r = d.next();
    while (isRaw(r)) r = d.next();
    assert.ok(r instanceof DecodeError);
    assert.equal(d.bufferedBytes, 0, 'a dead stream releases its buffer');
  });

  it('one-byte pushes of a maximum-size message stay linear', () => {
    const records = Array.from({ length: 15 }, () => ({ type: 5, critical: false, body: new Uint8Array(1000) }));
    const data = encodeRawRecords([...records, { type: 0, critical: true, body: new Uint8Array(0) }]);
    const start = process.hrtime.bigint();
    const out = run(bytesOneByOne(data), { maxMessageLength: 16384 });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(out.error, undefined);
    assert.equal(out.records.length, 16);
    assert.ok(ms < 2000, `took ${ms} ms`);
  });
});

describe('RecordDecoder: end of message and end of stream', () => {
  it('data after End of Message is an error in single-message mode (RFC 8915 §4)', () => {
    const request = hex(REQUEST_HEX);
    const d = new RecordDecoder();
    d.push(request);
    d.push(hex('00'));
    const seen: RawRecord[] = [];
    let r = d.next();
    while (isRaw(r)) {
      seen.push(r);
      r = d.next();
    }
    assert.equal(seen.length, 3);
    assert.ok(r instanceof DecodeError);
    assert.equal(r.code, 'NTSKE_DATA_AFTER_END');
    assert.equal(r.offset, request.length);
  });

  it('after End of Message with nothing more, next() is NEED_DATA and messageComplete is true', () => {
    const d = new RecordDecoder();
    d.push(hex(REQUEST_HEX));
    while (isRaw(d.next()));
    assert.equal(d.next(), NEED_DATA);
    assert.equal(d.messageComplete, true);
    assert.equal(d.messagesCompleted, 1);
    assert.equal(d.end(), undefined);
  });

  it('multi-message mode decodes back-to-back messages and resets per-message limits', () => {
    const m = hex('4000 0000 8000 0000');
    const out = run([m, m, m], { singleMessage: false, maxRecords: 2, maxMessageLength: 8 });
    assert.equal(out.error, undefined);
    assert.equal(out.records.length, 6);
    const d = new RecordDecoder({ singleMessage: false });
    d.push(new Uint8Array([...m, ...m]));
    while (isRaw(d.next()));
    assert.equal(d.messagesCompleted, 2);
    assert.equal(d.end(), undefined, 'a clean end between messages');
  });

  it('end() inside a record, inside a message, or before any message is TRUNCATED', () => {
    const endCode = (chunks: Uint8Array[], options?: RecordDecoderOptions) => {
      const d = new RecordDecoder(options);
      for (const c of chunks) {
        d.push(c);
        while (isRaw(d.next()));
      }
      return d.end()?.code;
    };
    assert.equal(endCode([hex('8001 0002 00')]), 'NTSKE_TRUNCATED');
    assert.equal(endCode([hex('8001 0002 0000')]), 'NTSKE_TRUNCATED');
    assert.equal(endCode([]), 'NTSKE_TRUNCATED');
    assert.equal(endCode([], { singleMessage: false }), undefined);
    assert.equal(endCode([hex('4000 0000')], { singleMessage: false }), 'NTSKE_TRUNCATED');
  });

  it('the first error is final: later pushes are dropped and next() repeats it', () => {
    const d = new RecordDecoder({ maxBodyLength: 4 });
    d.push(hex('0005 0005'));
    const first = d.next();
    assert.ok(first instanceof DecodeError);
    d.push(hex(REQUEST_HEX));
    assert.equal(d.next(), first);
    assert.equal(d.failure, first);
    assert.equal(d.end(), first);
    assert.equal(d.bufferedBytes, 0);
  });

  it('is generic: another record space with its own error prefix', () => {
    const d = new RecordDecoder({ errorPrefix: 'EKS', maxBodyLength: 16 });
    d.push(encodeRawRecord({ type: 0x100, critical: true, body: new Uint8Array(17) }));
    const r = d.next();
    assert.ok(r instanceof DecodeError);
    assert.equal(r.code, 'EKS_RECORD_TOO_LONG');
  });

  it('honours a different end-of-message type', () => {
    const out = run([hex('0000 0000 0009 0000')], { endOfMessageType: 9 });
    assert.equal(out.error, undefined);
    assert.equal(out.records.length, 2);
    assert.equal(out.complete, true);
  });
});

describe('RecordDecoder: hostile input never throws (fast-check)', () => {
  const drain = (d: RecordDecoder): void => {
    for (let i = 0; i < 10_000; i++) {
      const r = d.next();
      if (r === NEED_DATA || r instanceof DecodeError) return;
      assert.ok(isRaw(r));
    }
    assert.fail('next() did not settle');
  };

  it('random bytes in random chunks: a record, NEED_DATA or a DecodeError', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 8 }),
        fc.record({ maxBodyLength: fc.nat(80), maxMessageLength: fc.nat(400), maxRecords: fc.nat(10), singleMessage: fc.boolean() }),
        (chunks, options) => {
          const d = new RecordDecoder(options);
          for (const c of chunks) {
            d.push(c);
            drain(d);
          }
          const end = d.end();
          assert.ok(end === undefined || end instanceof DecodeError);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('mutated valid messages: never a throw, and chunking does not change the outcome', () => {
    const messages = VALID_MESSAGES.map((m) => hex(m.hex));
    fc.assert(
      fc.property(
        fc.nat(messages.length - 1),
        fc.array(fc.tuple(fc.nat(200), fc.nat(255), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(200), { maxLength: 5 }),
        (which, mutations, cuts) => {
          const bytes = [...(messages[which] ?? new Uint8Array(0))];
          for (const [pos, value, op] of mutations) {
            const at = pos % (bytes.length + 1);
            if (op === 'set' && at < bytes.length) bytes[at] = value;
            else if (op === 'insert') bytes.splice(at, 0, value);
            else bytes.splice(at, 1);
          }
          const data = Uint8Array.from(bytes);
          assert.deepEqual(run(splitAt(data, cuts)), run([data]));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
