import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, UsageError } from '../../src/proto/errors.js';
import { LineDecoder, NEED_DATA } from '../../src/proto/mgmt/framing.js';
import {
  RequestError,
  RpcErrorCode,
  encodeError,
  encodeNotification,
  encodeRequest,
  encodeResult,
  lineErrorToRpc,
  parseLine,
  parseServerMessage,
  type JsonObject,
  type JsonValue,
  type MgmtRequest,
  type RequestId,
} from '../../src/proto/mgmt/jsonrpc.js';
import { METHODS, checkParams, lookupMethod, roleAllows, type MethodName } from '../../src/proto/mgmt/types.js';

type Expect = { method: string; params?: JsonObject; args?: JsonValue[]; id?: RequestId | 'absent'; form?: 'json' | 'text' };

/** Lines that parse, with the request they are. `id` 'absent' marks a JSON-RPC notification. */
const GOOD: [string, Expect][] = [
  ['{"jsonrpc":"2.0","id":1,"method":"status"}', { method: 'status', id: 1, form: 'json' }],
  ['{"jsonrpc":"2.0","id":"a-b","method":"clients","params":{"limit":5}}', { method: 'clients', id: 'a-b', params: { limit: 5 }, form: 'json' }],
  ['{"jsonrpc":"2.0","id":null,"method":"keys","params":{}}', { method: 'keys', id: null, form: 'json' }],
  ['{"jsonrpc":"2.0","method":"unsubscribe"}', { method: 'unsubscribe', id: 'absent', form: 'json' }],
  ['  {"method":"status","id":2.5,"jsonrpc":"2.0"}  ', { method: 'status', id: 2.5, form: 'json' }],
  ['{"jsonrpc":"2.0","id":3,"method":"no-such-method"}', { method: 'no-such-method', id: 3, form: 'json' }],
  ['{"jsonrpc":"2.0","id":4,"method":"x","params":{"__proto__":{"polluted":true}}}', { method: 'x', id: 4, params: JSON.parse('{"__proto__":{"polluted":true}}') as JsonObject, form: 'json' }],
  ['status', { method: 'status', id: null, form: 'text' }],
  ['  status  ', { method: 'status', id: null, form: 'text' }],
  ['\tstatus\t\r', { method: 'status', id: null, form: 'text' }],
  ['clients limit=20 sort=packets', { method: 'clients', params: { limit: 20, sort: 'packets' }, id: null, form: 'text' }],
  ['clients filter=2001:db8::/32', { method: 'clients', params: { filter: '2001:db8::/32' }, id: null }],
  ['clients filter=192.0.2.1', { method: 'clients', params: { filter: '192.0.2.1' }, id: null }],
  ['log-level debug', { method: 'log-level', args: ['debug'], id: null }],
  ['eks.list', { method: 'eks.list', id: null }],
  ['ntpd.vars 0', { method: 'ntpd.vars', args: [0], id: null }],
  ['x a=1 b=-2.5 c=1e3 d=true e=false f=null g=0123 h=1.', { method: 'x', params: { a: 1, b: -2.5, c: 1000, d: true, e: false, f: null, g: '0123', h: '1.' } }],
  ['x a="1" b="true" c="" d="two words"', { method: 'x', params: { a: '1', b: 'true', c: '', d: 'two words' } }],
  ['x a="q\\"b\\\\s\\/\\n\\t\\r\\b\\f\\u00e9"', { method: 'x', params: { a: 'q"b\\s/\n\t\r\b\f\u00e9' } }],
  ['x token=abc== other=a=b', { method: 'x', params: { token: 'abc==', other: 'a=b' } }],
  ['x e=a e=b e=c', { method: 'x', params: { e: ['a', 'b', 'c'] } }],
  ['x "positional word" 7 k=v bare', { method: 'x', params: { k: 'v' }, args: ['positional word', 7, 'bare'] }],
  ['x __proto__=1 constructor=2', { method: 'x', params: JSON.parse('{"__proto__":1,"constructor":2}') as JsonObject }],
  ['x k=é', { method: 'x', params: { k: 'é' } }],
  ['x 1e400', { method: 'x', args: ['1e400'] }],
];

/** Lines that fail: [line, stable code, JSON-RPC code, id echoed]. */
const BAD: [string, string, number, RequestId][] = [
  ['{', 'MGMT_JSON_SYNTAX', -32700, null],
  ['{"jsonrpc":"2.0","id":1,"method":"status"', 'MGMT_JSON_SYNTAX', -32700, null],
  ['{"jsonrpc":"2.0","id":1,"method":"status"} x', 'MGMT_JSON_SYNTAX', -32700, null],
  ['[]', 'MGMT_BATCH_UNSUPPORTED', -32600, null],
  ['[{"jsonrpc":"2.0","id":1,"method":"status"}]', 'MGMT_BATCH_UNSUPPORTED', -32600, null],
  ['{"jsonrpc":"2.0","id":{},"method":"status"}', 'MGMT_BAD_ID', -32600, null],
  ['{"jsonrpc":"2.0","id":[1],"method":"status"}', 'MGMT_BAD_ID', -32600, null],
  ['{"jsonrpc":"2.0","id":true,"method":"status"}', 'MGMT_BAD_ID', -32600, null],
  [`{"jsonrpc":"2.0","id":"${'i'.repeat(129)}","method":"status"}`, 'MGMT_BAD_ID', -32600, null],
  ['{"jsonrpc":"1.0","id":5,"method":"status"}', 'MGMT_BAD_VERSION', -32600, 5],
  ['{"id":5,"method":"status"}', 'MGMT_BAD_VERSION', -32600, 5],
  ['{"jsonrpc":2,"id":"s","method":"status"}', 'MGMT_BAD_VERSION', -32600, 's'],
  ['{"jsonrpc":"2.0","id":6}', 'MGMT_BAD_METHOD', -32600, 6],
  ['{"jsonrpc":"2.0","id":6,"method":7}', 'MGMT_BAD_METHOD', -32600, 6],
  ['{"jsonrpc":"2.0","id":6,"method":""}', 'MGMT_BAD_METHOD', -32600, 6],
  [`{"jsonrpc":"2.0","id":6,"method":"${'m'.repeat(65)}"}`, 'MGMT_BAD_METHOD', -32600, 6],
  ['{"jsonrpc":"2.0","id":7,"method":"status","param":{}}', 'MGMT_UNKNOWN_MEMBER', -32600, 7],
  ['{"jsonrpc":"2.0","id":8,"method":"clients","params":[5]}', 'MGMT_PARAMS_NOT_OBJECT', -32602, 8],
  ['{"jsonrpc":"2.0","id":8,"method":"clients","params":5}', 'MGMT_PARAMS_NOT_OBJECT', -32602, 8],
  ['{"jsonrpc":"2.0","id":8,"method":"clients","params":null}', 'MGMT_PARAMS_NOT_OBJECT', -32602, 8],
  [`{"jsonrpc":"2.0","id":9,"method":"x","params":{"a":${'['.repeat(8)}${']'.repeat(8)}}}`, 'MGMT_PARAMS_TOO_DEEP', -32602, 9],
  [`{"jsonrpc":"2.0","id":9,"method":"x","params":{${Array.from({ length: 65 }, (_, i) => `"k${i}":1`).join(',')}}}`, 'MGMT_TOO_MANY_PARAMS', -32602, 9],
  ['"status"', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['42', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['x=1', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['-status', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['stat"us', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status "x', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a="x', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a="x\\', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a="\\q"', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a="\\u12"', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a="x"y', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a=x"y"', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status "a"b', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status a=', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status =x', 'MGMT_TEXT_SYNTAX', -32700, null],
  ['status 1a=x', 'MGMT_TEXT_SYNTAX', -32700, null],
  [`${'m'.repeat(65)}`, 'MGMT_TEXT_SYNTAX', -32700, null],
  [`x ${Array.from({ length: 65 }, (_, i) => `k${i}=1`).join(' ')}`, 'MGMT_TOO_MANY_PARAMS', -32602, null],
];

function expected(e: Expect): MgmtRequest {
  const base = { method: e.method, params: e.params ?? {}, args: e.args ?? [], form: e.form ?? (e.id === null || e.id === undefined ? 'text' : 'json') } as const;
  if (e.id === 'absent') return { ...base, form: 'json' };
  return { id: e.id ?? null, ...base };
}

describe('parseLine: table of good lines', () => {
  for (const [line, e] of GOOD) {
    it(JSON.stringify(line).slice(0, 90), () => {
      const r = parseLine(line);
      assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
      assert.deepEqual(r.value, expected(e));
      if (e.id === 'absent') assert.equal(Object.hasOwn(r.value ?? {}, 'id'), false);
    });
  }

  it('blank lines are no request', () => {
    for (const line of ['', ' ', '\t \r']) assert.deepEqual(parseLine(line), { ok: true, value: null });
  });

  it('text-form params are plain objects; __proto__ is an own member and pollutes nothing', () => {
    const r = parseLine('x __proto__=1');
    assert.ok(r.ok && r.value);
    assert.equal(Object.getPrototypeOf(r.value.params), Object.prototype);
    assert.deepEqual(Object.keys(r.value.params), ['__proto__']);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});

describe('parseLine: table of bad lines', () => {
  for (const [line, code, rpcCode, id] of BAD) {
    it(`${JSON.stringify(line).slice(0, 80)} → ${code}`, () => {
      const r = parseLine(line);
      assert.ok(!r.ok, 'expected an error');
      assert.ok(r.error instanceof RequestError);
      assert.ok(r.error instanceof DecodeError);
      assert.equal(r.error.code, code);
      assert.equal(r.error.rpc.code, rpcCode);
      assert.deepEqual(r.error.rpc.data, { reason: code });
      assert.equal(r.error.id, id);
      assert.equal(r.error.notification, false);
      // The answer is one valid line.
      const answer = encodeError(r.error.id, r.error.rpc);
      assert.equal(answer.indexOf('\n'), answer.length - 1);
    });
  }

  it('an invalid JSON-RPC notification is marked so that it goes unanswered', () => {
    const r = parseLine('{"jsonrpc":"2.0","method":"clients","params":[1]}');
    assert.ok(!r.ok);
    assert.equal(r.error.notification, true);
    assert.equal(r.error.rpc.code, RpcErrorCode.INVALID_PARAMS);
  });

  it('line errors of the framing map to -32600 with the framing code', () => {
    const rpc = lineErrorToRpc(new DecodeError('MGMT_LINE_TOO_LONG', 'line exceeds 8 bytes'));
    assert.deepEqual(rpc, { code: -32600, message: 'line exceeds 8 bytes', data: { reason: 'MGMT_LINE_TOO_LONG' } });
  });
});

describe('parseLine through the framing: split at every byte offset', () => {
  const lines = [...GOOD.map(([l]) => l), ...BAD.map(([l]) => l).filter((l) => l.length < 200), '', ' '];
  const stream = new TextEncoder().encode(lines.map((l, i) => `${l}${i % 2 ? '\r\n' : '\n'}`).join(''));
  const direct = lines.map((l) => parseLine(l));

  function decodeAll(chunks: Uint8Array[]) {
    const d = new LineDecoder({ maxLineLength: 1024 });
    const out: ReturnType<typeof parseLine>[] = [];
    for (const c of chunks) {
      d.push(c);
      for (let r = d.next(); r !== NEED_DATA; r = d.next()) {
        assert.ok(typeof r === 'string', `unexpected framing error ${String(r)}`);
        out.push(parseLine(r));
      }
    }
    return out;
  }

  it(`a stream of ${lines.length} lines (${stream.length} bytes) gives the same requests at every split`, () => {
    for (let i = 0; i <= stream.length; i++) {
      const out = decodeAll([stream.subarray(0, i), stream.subarray(i)]);
      assert.equal(out.length, direct.length, `split at ${i}`);
      for (const [k, r] of out.entries()) {
        const want = direct[k];
        assert.ok(want);
        assert.equal(r.ok, want.ok, `split at ${i}, line ${k}`);
        if (r.ok && want.ok) assert.deepEqual(r.value, want.value);
        else if (!r.ok && !want.ok) assert.equal(r.error.code, want.error.code);
      }
    }
  });
});

describe('parseLine never throws (fast-check)', () => {
  const check = (line: string) => {
    const r = parseLine(line);
    if (r.ok) {
      if (r.value !== null) {
        assert.equal(typeof r.value.method, 'string');
        assert.ok(r.value.method.length >= 1 && r.value.method.length <= 64);
      }
    } else {
      assert.ok(r.error instanceof RequestError);
      assert.ok([-32700, -32600, -32602].includes(r.error.rpc.code));
      // Every error answer encodes.
      encodeError(r.error.id, r.error.rpc);
    }
  };

  it('random strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), check), { numRuns: 3000 });
  });

  it('random JSON values', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 12 }), (v) => check(JSON.stringify(v))), { numRuns: 2000 });
  });

  it('random request-shaped objects', () => {
    const arb = fc.record(
      {
        jsonrpc: fc.oneof(fc.constant('2.0'), fc.jsonValue({ maxDepth: 1 })),
        id: fc.oneof(fc.string({ maxLength: 140 }), fc.double(), fc.constant(null), fc.jsonValue({ maxDepth: 2 })),
        method: fc.oneof(fc.constantFrom(...Object.keys(METHODS)), fc.string({ maxLength: 70 }), fc.jsonValue({ maxDepth: 1 })),
        params: fc.jsonValue({ maxDepth: 10 }),
        extra: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    );
    fc.assert(fc.property(arb, (o) => check(JSON.stringify(o))), { numRuns: 2000 });
  });

  it('mutated good lines (both forms)', () => {
    const bases = GOOD.map(([l]) => l);
    const alphabet = fc.constantFrom('"', '\\', '=', ' ', '{', '}', '[', ']', ':', ',', 'u', '0', '\u0000', '\n', 'é', '\ud800');
    fc.assert(
      fc.property(fc.constantFrom(...bases), fc.array(fc.tuple(fc.nat(200), fc.oneof(alphabet, fc.constant(''))), { maxLength: 6 }), (base, edits) => {
        let line = base;
        for (const [at, ch] of edits) {
          const i = at % (line.length + 1);
          line = line.slice(0, i) + ch + line.slice(i + (ch === '' ? 1 : 0));
        }
        check(line);
      }),
      { numRuns: 3000 },
    );
  });

  it('deeply nested JSON is refused, not a crash', () => {
    const deep = `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${'['.repeat(30000)}${']'.repeat(30000)}}}`;
    const r = parseLine(deep);
    assert.ok(!r.ok);
    assert.ok(['MGMT_PARAMS_TOO_DEEP', 'MGMT_JSON_SYNTAX'].includes(r.error.code));
  });
});

describe('encoders: one line each, and round trips', () => {
  const oneLine = (s: string) => {
    assert.ok(s.endsWith('\n'));
    assert.equal(s.indexOf('\n'), s.length - 1);
  };

  it('request → parseLine gives the request back (fast-check)', () => {
    const idArb = fc.oneof(fc.string({ maxLength: 128 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant(null), fc.constant(undefined));
    const paramsArb = fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 10 }) as fc.Arbitrary<JsonObject>;
    fc.assert(
      fc.property(idArb, fc.string({ minLength: 1, maxLength: 64 }), fc.option(paramsArb, { nil: undefined }), (id, method, params) => {
        const line = encodeRequest(id, method, params);
        oneLine(line);
        const r = parseLine(line.slice(0, -1));
        assert.ok(r.ok && r.value, r.ok ? 'blank' : r.error.message);
        assert.equal(r.value.method, method);
        assert.equal(r.value.form, 'json');
        // -0 goes out as 0: JSON has no negative zero.
        assert.deepEqual(r.value.params, JSON.parse(JSON.stringify(params ?? {})));
        if (id === undefined) assert.equal(Object.hasOwn(r.value, 'id'), false);
        else assert.equal(r.value.id, JSON.parse(JSON.stringify(id)));
      }),
      { numRuns: 1000 },
    );
  });

  it('result, error and notification → parseServerMessage (fast-check)', () => {
    const idArb = fc.oneof(fc.string({ maxLength: 128 }), fc.integer(), fc.constant(null));
    fc.assert(
      fc.property(idArb, fc.jsonValue({ maxDepth: 4 }), fc.integer({ min: -32768, max: 32767 }), fc.string(), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }), (id, value, code, message, data) => {
        const result = encodeResult(id, value);
        oneLine(result);
        assert.deepEqual(parseServerMessage(result.slice(0, -1)), { ok: true, value: { kind: 'result', id, result: JSON.parse(JSON.stringify(value)) } });

        const error = encodeError(id, data === undefined ? { code, message } : { code, message, data: data as JsonValue });
        oneLine(error);
        const e = parseServerMessage(error);
        assert.ok(e.ok && e.value.kind === 'error');
        assert.deepEqual(e.value.error, data === undefined ? { code, message } : { code, message, data: JSON.parse(JSON.stringify(data)) });

        const note = encodeNotification('event', { kind: 'x', v: value });
        oneLine(note);
        assert.deepEqual(parseServerMessage(note), { ok: true, value: { kind: 'notification', method: 'event', params: JSON.parse(JSON.stringify({ kind: 'x', v: value })) } });
      }),
      { numRuns: 1000 },
    );
  });

  it('strings with newlines and separators stay on one line', () => {
    const line = encodeResult(1, { text: 'a\nb\r\u2028\u2029' });
    oneLine(line);
  });

  it('undefined result is sent as null', () => {
    assert.equal(encodeResult(1, undefined), '{"jsonrpc":"2.0","id":1,"result":null}\n');
    assert.equal(encodeNotification('hello'), '{"jsonrpc":"2.0","method":"hello"}\n');
  });

  it('values JSON cannot carry are a UsageError', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    for (const f of [() => encodeResult(1, { n: 1n }), () => encodeResult(1, cyclic), () => encodeResult({} as unknown as RequestId, 1), () => encodeError(1, { code: 1.5, message: 'x' }), () => encodeRequest(1, '')]) {
      assert.throws(f, (e: unknown) => e instanceof UsageError);
    }
  });

  it('parseServerMessage refuses what is not a server message', () => {
    for (const line of ['', 'x', '[]', '{}', '{"jsonrpc":"2.0"}', '{"jsonrpc":"2.0","id":1}', '{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}', '{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}', '{"jsonrpc":"2.0","id":1,"method":"x"}', '{"jsonrpc":"2.0","method":5}', '{"jsonrpc":"2.0","id":{},"result":1}']) {
      const r = parseServerMessage(line);
      assert.ok(!r.ok, line);
      assert.ok(['MGMT_JSON_SYNTAX', 'MGMT_BAD_MESSAGE'].includes(r.error.code));
    }
  });

  it('parseServerMessage never throws (fast-check)', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), (s) => void parseServerMessage(s)), { numRuns: 2000 });
  });
});

describe('dispatch helpers: method lookup, positional binding, params validation, roles', () => {
  const params = (line: string) => {
    const r = parseLine(line);
    assert.ok(r.ok && r.value);
    const m = lookupMethod(r.value.method);
    assert.ok(m.ok, `unknown method ${r.value.method}`);
    return checkParams(m.value, r.value.params, r.value.args);
  };

  const VALID: [string, unknown][] = [
    ['status', {}],
    ['clients', { limit: 100, sort: 'last-seen' }],
    ['clients limit=5 sort=address filter=192.0.2.0/24', { limit: 5, sort: 'address', filter: '192.0.2.0/24' }],
    ['log-level debug', { level: 'debug' }],
    ['log-level level=warn', { level: 'warn' }],
    ['auth "s3cret token"', { token: 's3cret token' }],
    ['auth token=abc', { token: 'abc' }],
    ['subscribe', { interval: 10, events: ['key-rotated', 'config-reloaded', 'certificate-reloaded', 'client-rate-limited', 'listener-error', 'source-changed', 'key-revoked'] }],
    ['subscribe events=key-revoked', { interval: 10, events: ['key-revoked'] }],
    ['eks.list', { limit: 1000, expired: false }],
    ['eks.list limit=100000 expired=true', { limit: 100000, expired: true }],
    ['eks.revoke 40000', { keyId: 40000 }],
    ['eks.revoke keyId=32768', { keyId: 32768 }],
    ['eks.revoke 65535', { keyId: 65535 }],
    ['subscribe interval=0 events=key-rotated', { interval: 0, events: ['key-rotated'] }],
    ['subscribe events=key-rotated events=source-changed', { interval: 10, events: ['key-rotated', 'source-changed'] }],
    ['{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"events":[]}}', { interval: 10, events: [] }],
  ];
  for (const [line, want] of VALID) {
    it(`${line} → ${JSON.stringify(want)}`, () => assert.deepEqual(params(line), { ok: true, value: want }));
  }

  const INVALID: [string, string][] = [
    ['status x=1', 'MGMT_INVALID_PARAMS'],
    ['status extra', 'MGMT_TOO_MANY_ARGS'],
    ['log-level debug trace', 'MGMT_TOO_MANY_ARGS'],
    ['log-level debug level=info', 'MGMT_DUPLICATE_PARAM'],
    ['log-level', 'MGMT_INVALID_PARAMS'],
    ['log-level verbose', 'MGMT_INVALID_PARAMS'],
    ['clients limit=0', 'MGMT_INVALID_PARAMS'],
    ['clients limit=1001', 'MGMT_INVALID_PARAMS'],
    ['clients limit=1.5', 'MGMT_INVALID_PARAMS'],
    ['clients limit="20"', 'MGMT_INVALID_PARAMS'],
    ['clients sort=random', 'MGMT_INVALID_PARAMS'],
    ['auth token=12345', 'MGMT_INVALID_PARAMS'],
    ['auth', 'MGMT_INVALID_PARAMS'],
    ['auth token=""', 'MGMT_INVALID_PARAMS'],
    ['subscribe interval=3601', 'MGMT_INVALID_PARAMS'],
    ['subscribe events=nonsense', 'MGMT_INVALID_PARAMS'],
    ['eks.list limit=0', 'MGMT_INVALID_PARAMS'],
    ['eks.list limit=100001', 'MGMT_INVALID_PARAMS'],
    ['eks.list expired=yes', 'MGMT_INVALID_PARAMS'],
    ['eks.list 5', 'MGMT_TOO_MANY_ARGS'],
    ['eks.revoke', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke 100', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke 32767', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke 65536', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke 40000.5', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke abc', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke "40000"', 'MGMT_INVALID_PARAMS'],
    ['eks.revoke 40000 40001', 'MGMT_TOO_MANY_ARGS'],
    ['eks.revoke 40000 keyId=40001', 'MGMT_DUPLICATE_PARAM'],
  ];
  for (const [line, reason] of INVALID) {
    it(`${line} → -32602 ${reason}`, () => {
      const r = params(line);
      assert.ok(!r.ok);
      assert.equal(r.error.code, RpcErrorCode.INVALID_PARAMS);
      assert.equal((r.error.data as { reason: string }).reason, reason);
    });
  }

  it('-32602 lists the issues with their paths', () => {
    const r = params('clients limit=5000 colour=red');
    assert.ok(!r.ok);
    assert.deepEqual(
      (r.error.data as { issues: { path: string }[] }).issues.map((i) => i.path),
      ['limit', 'colour'],
    );
  });

  it('unknown and reserved methods are -32601', () => {
    for (const name of ['frobnicate', 'eks.keys', 'ntpd.config', 'rpc.discover', '__proto__', 'toString', 'hello', 'event']) {
      const r = lookupMethod(name);
      assert.ok(!r.ok, name);
      assert.equal(r.error.code, RpcErrorCode.METHOD_NOT_FOUND);
    }
  });

  it('every method validates its empty params or asks for the required ones', () => {
    for (const name of Object.keys(METHODS) as MethodName[]) {
      const r = checkParams(name, {});
      const required: Partial<Record<MethodName, string[]>> = { auth: ['token'], 'log-level': ['level'], 'eks.revoke': ['keyId'] };
      if (!r.ok) assert.deepEqual((r.error.data as { issues: { path: string }[] }).issues.map((i) => i.path), required[name], name);
    }
  });

  it('role matrix', () => {
    const table: [Parameters<typeof roleAllows>[0], Parameters<typeof roleAllows>[1], boolean][] = [
      ['none', 'public', true],
      ['none', 'monitor', false],
      ['none', 'admin', false],
      ['monitor', 'public', true],
      ['monitor', 'monitor', true],
      ['monitor', 'admin', false],
      ['admin', 'public', true],
      ['admin', 'monitor', true],
      ['admin', 'admin', true],
    ];
    for (const [role, required, allowed] of table) assert.equal(roleAllows(role, required), allowed, `${role} → ${required}`);
  });

  it('application error codes are in the server range and distinct', () => {
    const app = [RpcErrorCode.UNAUTHENTICATED, RpcErrorCode.FORBIDDEN, RpcErrorCode.RATE_LIMITED, RpcErrorCode.BACKEND_UNAVAILABLE, RpcErrorCode.NOT_FOUND, RpcErrorCode.CONFLICT, RpcErrorCode.CONFIG_INVALID];
    for (const code of app) assert.ok(code <= -32000 && code >= -32099);
    assert.equal(new Set(Object.values(RpcErrorCode)).size, Object.values(RpcErrorCode).length);
  });
});
