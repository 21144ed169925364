import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { DEFAULT_MAX_LINE_LENGTH, LineDecoder, LineErrorCodes, NEED_DATA, type LineDecoderOptions } from '../../src/proto/mgmt/framing.js';

/** A line, or the code of a line error; `end` is what `end()` returned. */
type Item = string | { error: string };
type Outcome = { items: Item[]; end: Item | null; maxHeld: number };

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** Feeds the chunks in order, draining after each push as the socket shell does, then ends the stream. */
function run(chunks: readonly Uint8Array[], options?: LineDecoderOptions, callEnd = true): Outcome {
  const d = new LineDecoder(options);
  const items: Item[] = [];
  let maxHeld = 0;
  for (const chunk of chunks) {
    d.push(chunk);
    maxHeld = Math.max(maxHeld, d.buffered);
    for (;;) {
      const r = d.next();
      if (r === NEED_DATA) break;
      items.push(r instanceof DecodeError ? { error: r.code } : r);
    }
  }
  let end: Item | null = null;
  if (callEnd) {
    const e = d.end();
    end = e instanceof DecodeError ? { error: e.code } : e;
    assert.equal(d.buffered, 0);
  }
  return { items, end, maxHeld };
}

function splitAt(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
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

const TOO_LONG = { error: LineErrorCodes.LINE_TOO_LONG };
const NOT_UTF8 = { error: LineErrorCodes.LINE_NOT_UTF8 };

/** One table: stream text (max line length 8) → the lines and errors, and what `end()` gives. */
const CASES: { name: string; input: string | Uint8Array; items: Item[]; end?: Item | null }[] = [
  { name: 'empty stream', input: '', items: [] },
  { name: 'one line', input: 'status\n', items: ['status'] },
  { name: 'CR LF', input: 'status\r\n', items: ['status'] },
  { name: 'two lines, mixed terminators', input: 'a\r\nb\n', items: ['a', 'b'] },
  { name: 'blank lines are returned', input: '\n\r\n \n', items: ['', '', ' '] },
  { name: 'a lone CR inside a line stays', input: 'a\rb\n', items: ['a\rb'] },
  { name: 'only the last CR is removed', input: 'a\r\r\n', items: ['a\r'] },
  { name: 'exactly the limit', input: '12345678\n', items: ['12345678'] },
  { name: 'exactly the limit with CR LF', input: '12345678\r\n', items: ['12345678'] },
  { name: 'one byte over the limit', input: '123456789\n', items: [TOO_LONG] },
  { name: 'one byte over with CR LF', input: '123456789\r\nok\n', items: [TOO_LONG, 'ok'] },
  { name: 'a long line costs one error and the next line is read', input: `${'x'.repeat(100)}\nstatus\n`, items: [TOO_LONG, 'status'] },
  { name: 'two long lines: two errors', input: `${'x'.repeat(20)}\n${'y'.repeat(30)}\nz\n`, items: [TOO_LONG, TOO_LONG, 'z'] },
  { name: 'UTF-8 is decoded', input: 'é€\n', items: ['é€'] },
  { name: 'invalid UTF-8 is one error', input: Uint8Array.from([0x61, 0xff, 0x0a, 0x62, 0x0a]), items: [NOT_UTF8, 'b'] },
  { name: 'a truncated UTF-8 sequence', input: Uint8Array.from([0xe2, 0x82, 0x0a]), items: [NOT_UTF8] },
  { name: 'unterminated last line is returned by end()', input: 'a\nstatus', items: ['a'], end: 'status' },
  { name: 'unterminated last line with CR', input: 'status\r', items: [], end: 'status' },
  { name: 'unterminated long line at end() is one error', input: '123456789', items: [], end: TOO_LONG },
  { name: 'a long unterminated line is reported before its LF and end() gives nothing', input: 'x'.repeat(50), items: [TOO_LONG], end: null },
  { name: 'NUL bytes pass through', input: 'a\0b\n', items: ['a\0b'] },
];

const OPTS = { maxLineLength: 8 };

describe('LineDecoder: table', () => {
  for (const c of CASES) {
    const data = typeof c.input === 'string' ? bytes(c.input) : c.input;
    it(c.name, () => {
      const out = run([data], OPTS);
      assert.deepEqual(out.items, c.items);
      assert.deepEqual(out.end, c.end ?? null);
    });
  }
});

describe('LineDecoder: chunking does not matter', () => {
  // Lines under the limit and the errors of oversized ones are the same however the input is split. (An
  // oversized line without LF can be reported at different times, but exactly once.)
  for (const c of CASES) {
    const data = typeof c.input === 'string' ? bytes(c.input) : c.input;
    const whole = run([data], OPTS);
    it(`${c.name}: split at every offset and every pair of offsets`, () => {
      for (let i = 0; i <= data.length; i++) {
        const one = run(splitAt(data, [i]), OPTS);
        assert.deepEqual([one.items, one.end], [whole.items, whole.end], `split at ${i}`);
        for (let j = i; j <= data.length; j++) {
          const two = run(splitAt(data, [i, j]), OPTS);
          assert.deepEqual([two.items, two.end], [whole.items, whole.end], `split at ${i},${j}`);
        }
      }
    });
    it(`${c.name}: one byte at a time`, () => {
      const out = run(Array.from(data, (_, i) => data.subarray(i, i + 1)), OPTS);
      assert.deepEqual([out.items, out.end], [whole.items, whole.end]);
    });
  }

  it('random lines with random terminators and random chunkings (fast-check)', () => {
    const lineArb = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ''));
    fc.assert(
      fc.property(fc.array(fc.tuple(lineArb, fc.boolean()), { maxLength: 20 }), fc.array(fc.nat(2000), { maxLength: 20 }), (lines, cuts) => {
        const text = lines.map(([l, crlf]) => `${l}${crlf ? '\r\n' : '\n'}`).join('');
        const out = run(splitAt(bytes(text), cuts), { maxLineLength: 1024 });
        assert.deepEqual(out.items, lines.map(([l]) => l));
        assert.equal(out.end, null);
      }),
      { numRuns: 500 },
    );
  });
});

describe('LineDecoder: limits and robustness', () => {
  it('default limit is 64 KiB', () => {
    assert.equal(new LineDecoder().maxLineLength, DEFAULT_MAX_LINE_LENGTH);
    assert.equal(DEFAULT_MAX_LINE_LENGTH, 65536);
    const ok = run([bytes(`${'a'.repeat(65536)}\n`)]);
    assert.equal(ok.items.length, 1);
    assert.deepEqual(run([bytes(`${'a'.repeat(65537)}\n`)]).items, [TOO_LONG]);
  });

  it('refuses bad options with UsageError', () => {
    for (const maxLineLength of [0, -1, 1.5, Number.NaN, 16 * 1024 * 1024 + 1]) {
      assert.throws(() => new LineDecoder({ maxLineLength }), (e: unknown) => e instanceof UsageError && e.code === 'DECODER_OPTION_RANGE');
    }
  });

  it('an endless line is dropped while it arrives: memory stays bounded and it is reported once', () => {
    const d = new LineDecoder({ maxLineLength: 1000 });
    const chunk = bytes('x'.repeat(100));
    let errors = 0;
    let maxHeld = 0;
    for (let i = 0; i < 10_000; i++) {
      d.push(chunk);
      for (let r = d.next(); r !== NEED_DATA; r = d.next()) {
        assert.ok(r instanceof DecodeError);
        assert.equal(r.code, LineErrorCodes.LINE_TOO_LONG);
        errors++;
      }
      maxHeld = Math.max(maxHeld, d.buffered);
    }
    assert.equal(errors, 1);
    assert.ok(maxHeld <= 1000 + 1 + chunk.length, `held ${maxHeld}`);
    d.push(bytes('tail\nstatus\n'));
    assert.equal(d.next(), 'status');
    assert.equal(d.next(), NEED_DATA);
  });

  it('error offsets point at the start of the bad line', () => {
    const d = new LineDecoder({ maxLineLength: 4 });
    d.push(bytes('ab\n123456\ncd\n'));
    assert.equal(d.next(), 'ab');
    const e = d.next();
    assert.ok(e instanceof DecodeError);
    assert.equal(e.offset, 3);
    assert.equal(d.next(), 'cd');
  });

  it('a line split into 200 000 one-byte chunks is assembled in linear time', () => {
    const n = 200_000;
    const d = new LineDecoder({ maxLineLength: n });
    const one = bytes('a');
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      d.push(one);
      assert.equal(d.next(), NEED_DATA);
    }
    d.push(bytes('\n'));
    const line = d.next();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(typeof line === 'string' ? line.length : -1, n);
    // Quadratic rescanning or concatenation would take minutes here; linear work takes well under a second.
    assert.ok(ms < 3000, `took ${ms} ms`);
  });

  it('100 000 lines in one chunk are all returned', () => {
    const text = 'ping\n'.repeat(100_000);
    const out = run([bytes(text)], undefined, false);
    assert.equal(out.items.length, 100_000);
  });

  it('returned lines do not change when the pushed chunk is reused', () => {
    const d = new LineDecoder();
    const buf = bytes('abc\ndef');
    d.push(buf);
    const first = d.next();
    buf.fill(0x7a);
    assert.equal(first, 'abc');
  });

  it('random bytes never throw, lines respect the limit and memory stays bounded (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), fc.integer({ min: 1, max: 40 }), (chunks, max) => {
        const out = run(chunks, { maxLineLength: max });
        const lfs = chunks.reduce((n, c) => n + c.filter((b) => b === 0x0a).length, 0);
        // Each LF ends at most one line or error; one oversized line without LF may add one error at the end.
        assert.ok(out.items.length <= lfs + 1);
        // Drained after every push: at most one unfinished line within the limit (+ CR) plus the chunk just pushed.
        assert.ok(out.maxHeld <= max + 1 + 64, `held ${out.maxHeld}`);
        for (const item of out.items) if (typeof item === 'string') assert.ok(bytes(item).length <= max);
      }),
      { numRuns: 1000 },
    );
  });

  it('mutations of a valid stream give the same lines however it is chunked (fast-check)', () => {
    const base = bytes('{"jsonrpc":"2.0","id":1,"method":"status"}\r\nclients limit=5\n\nauth "tok"\n');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.array(fc.nat(base.length), { maxLength: 6 }),
        (mutations, cuts) => {
          const data = Uint8Array.from(base);
          for (const [at, value] of mutations) data[at] = value;
          const whole = run([data], { maxLineLength: 32 });
          const split = run(splitAt(data, cuts), { maxLineLength: 32 });
          assert.deepEqual([split.items, split.end], [whole.items, whole.end]);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
