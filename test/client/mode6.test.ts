// Mode6Client against fake mode 6 servers on 127.0.0.1 (dgram, in this process): fragmentation, loss, stale
// and forged datagrams, every error code, authentication, MRU paging with an expiring nonce.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Mode6Client, Mode6Error, type Mode6ErrorKind } from '../../src/client/mode6.js';
import type { SymmetricKey } from '../../src/crypto/symmetric-mac.js';
import { decodeMode6Packet, encodeMode6Packet, MODE6_MAX_FRAGMENT_DATA, Mode6Opcode, verifyMode6Mac, type Mode6Packet } from '../../src/proto/mode6/packet.js';
import { parseVariableList } from '../../src/proto/mode6/variables.js';

const MD5: SymmetricKey = { keyId: 7, algorithm: 'MD5', key: new Uint8Array(Buffer.from('sekrit')) };
const SHA1: SymmetricKey = { keyId: 8, algorithm: 'SHA1', key: new Uint8Array(Buffer.alloc(20, 3)) };
const CMAC: SymmetricKey = { keyId: 9, algorithm: 'AES128CMAC', key: new Uint8Array(Buffer.alloc(16, 5)) };
const KEYS = new Map([MD5, SHA1, CMAC].map((k) => [k.keyId, k]));

interface Out {
  bytes: Uint8Array;
  delayMs?: number;
}

type Handler = (req: Mode6Packet, raw: Uint8Array, attempt: number) => Out[];

/** A fake ntpd: decodes each request, asks the handler what to send back, sends it. */
class FakeServer {
  readonly socket = dgram.createSocket('udp4');
  readonly requests: Mode6Packet[] = [];
  port = 0;
  constructor(public handler: Handler) {}

  async start(t: TestContext): Promise<this> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', () => resolve()));
    this.port = this.socket.address().port;
    this.socket.on('message', (msg, from) => {
      const decoded = decodeMode6Packet(new Uint8Array(msg));
      assert.ok(decoded.ok, 'the client sent a malformed request');
      const req = decoded.value;
      const attempt = this.requests.filter((r) => r.opcode === req.opcode && r.associationId === req.associationId).length;
      this.requests.push(req);
      for (const out of this.handler(req, new Uint8Array(msg), attempt)) {
        const send = (): void => this.socket.send(out.bytes, from.port, from.address);
        if (out.delayMs === undefined) send();
        else setTimeout(send, out.delayMs);
      }
    });
    t.after(() => new Promise<void>((resolve) => this.socket.close(() => resolve())));
    return this;
  }

  client(t: TestContext, options: ConstructorParameters<typeof Mode6Client>[0] = {}): Mode6Client {
    const c = new Mode6Client({ port: this.port, timeoutMs: 150, ...options });
    t.after(() => c.close());
    return c;
  }
}

/** The key a signed request used, when its MAC verifies (the fake's version of ntpd's check). */
function requestKey(req: Mode6Packet, raw: Uint8Array): SymmetricKey | undefined {
  if (req.mac === null) return undefined;
  const key = KEYS.get(req.mac.keyId);
  return key !== undefined && verifyMode6Mac(raw, req, key) ? key : undefined;
}

/** The answer to `req` carrying `data`, cut into fragments of `size`, signed with `key` when given. */
function answer(req: Mode6Packet, data: string | Uint8Array, opts: { status?: number; size?: number; key?: SymmetricKey; sequence?: number } = {}): Uint8Array[] {
  const bytes = typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'latin1')) : data;
  const size = opts.size ?? MODE6_MAX_FRAGMENT_DATA;
  const out: Uint8Array[] = [];
  for (let offset = 0; offset === 0 || offset < bytes.length; offset += size) {
    const chunk = bytes.subarray(offset, offset + size);
    out.push(
      encodeMode6Packet(
        { opcode: req.opcode, sequence: opts.sequence ?? req.sequence, associationId: req.associationId, status: opts.status ?? 0x0615, response: true, more: offset + size < bytes.length, offset, data: chunk },
        opts.key,
      ),
    );
    if (bytes.length === 0) break;
  }
  return out;
}

function errorAnswer(req: Mode6Packet, code: number, key?: SymmetricKey): Uint8Array {
  return encodeMode6Packet({ opcode: req.opcode, sequence: req.sequence, associationId: req.associationId, status: code << 8, response: true, error: true }, key, { alignment: 4 });
}

const send = (...bytes: Uint8Array[]): Out[] => bytes.map((b) => ({ bytes: b }));
const mode6Kind = (opcode: number): string => (opcode === Mode6Opcode.RequestNonce ? 'NONCE' : opcode === Mode6Opcode.ReadMru ? 'MRU' : String(opcode));

async function rejects(p: Promise<unknown>, code: Mode6ErrorKind): Promise<Mode6Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Mode6Error, `expected Mode6Error ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected Mode6Error ${code}`);
}

const SYSVARS = `version="ntpd ntpsec-1.2.2", leap=0, stratum=3, refid=192.0.2.1,\r\nreftime=0xeeb2e149.715b14cb, clock=0xeeb2e149.715b14cb, ${'pad=x, '.repeat(150)}tail=1\r\n`;

test('fragments out of order and duplicated reassemble; stale sequence numbers are ignored and counted', async (t) => {
  const server = await new FakeServer((req) => {
    if (req.opcode !== Mode6Opcode.ReadVariables) return [];
    const frags = answer(req, SYSVARS, { size: 200 });
    const stale = answer(req, 'stale=1\r\n', { sequence: (req.sequence - 1) & 0xffff });
    return send(...stale, ...(frags.slice().reverse() as Uint8Array[]), frags[1] as Uint8Array, frags[0] as Uint8Array);
  }).start(t);
  const client = server.client(t);
  const reply = await client.readVariables(0);
  assert.equal(reply.variables.get('version'), 'ntpd ntpsec-1.2.2');
  assert.equal(reply.variables.get('tail'), '1');
  assert.equal(reply.variables.has('stale'), false);
  assert.equal(reply.systemStatus?.clockSourceName, 'sync_ntp');
  assert.equal(reply.peerStatus, null);
  assert.deepEqual(reply.problems, []);
  await new Promise((r) => setTimeout(r, 30)); // the duplicates sent after the last fragment arrive now
  assert.equal(client.stats.dropped['WRONG_SEQUENCE'], 1);
  assert.ok((client.stats.dropped['NO_REQUEST'] ?? 0) + (client.stats.dropped['DUPLICATE'] ?? 0) >= 2, JSON.stringify(client.stats.dropped));
  assert.equal(server.requests[0]?.count, 0, 'all system variables: empty request');
});

test('a missing fragment: the attempt times out and the retry (new sequence number) succeeds', async (t) => {
  const server = await new FakeServer((req, _raw, attempt) => {
    const frags = answer(req, SYSVARS, { size: 300 });
    return send(...(attempt === 0 ? frags.slice(1) : frags));
  }).start(t);
  const client = server.client(t);
  const reply = await client.readVariables(0, ['version', 'tail']);
  assert.equal(reply.variables.get('tail'), '1');
  assert.equal(client.stats.attempts, 2);
  assert.equal(client.stats.timeouts, 1);
  assert.notEqual(server.requests[0]?.sequence, server.requests[1]?.sequence);
  assert.equal(Buffer.from(server.requests[0]?.data ?? []).toString(), 'version, tail');
});

test('a server that stops answering: TIMEOUT after every retry, with what was missing', async (t) => {
  const server = await new FakeServer((req) => {
    const frags = answer(req, SYSVARS, { size: 300 });
    return send(frags[0] as Uint8Array); // only ever the first fragment
  }).start(t);
  const client = server.client(t, { timeoutMs: 80, retries: 2 });
  const started = Date.now();
  const err = await rejects(client.readVariables(0), 'TIMEOUT');
  assert.ok(Date.now() - started < 2000);
  assert.equal(client.stats.attempts, 3);
  assert.equal(err.details['fragments'], 1);
  assert.deepEqual(err.details['holes'], [{ start: 300, end: null }]);

  const silent = await new FakeServer(() => []).start(t);
  const c2 = silent.client(t, { timeoutMs: 50, retries: 0 });
  const e2 = await rejects(c2.readStatus(), 'TIMEOUT');
  assert.match(e2.message, /no answer to READSTAT/);
});

test('oversized, malformed and request datagrams are dropped and counted, never fatal', async (t) => {
  const server = await new FakeServer((req) => {
    const good = answer(req, 'stratum=3\r\n');
    const big = new Uint8Array(12 + 480);
    big.set(encodeMode6Packet({ opcode: req.opcode, sequence: req.sequence, response: true, data: 'x' }).subarray(0, 12));
    big[10] = 0x01;
    big[11] = 0xe0; // count 480 > 468
    const notPadded = Uint8Array.from([...(good[0] as Uint8Array), 0]);
    const request = encodeMode6Packet({ opcode: req.opcode, sequence: req.sequence, data: 'a' });
    return [
      { bytes: big },
      { bytes: notPadded },
      { bytes: new Uint8Array([1, 2, 3]) },
      { bytes: request },
      { bytes: good[0] as Uint8Array, delayMs: 20 },
    ];
  }).start(t);
  const client = server.client(t);
  const reply = await client.readVariables(0, ['stratum']);
  assert.equal(reply.variables.get('stratum'), '3');
  assert.equal(client.stats.dropped['MODE6_FRAGMENT_TOO_LARGE'], 1);
  assert.equal(client.stats.dropped['MODE6_NOT_PADDED'], 1);
  assert.equal(client.stats.dropped['MODE6_TOO_SHORT'], 1);
  assert.equal(client.stats.dropped['MODE6_NOT_RESPONSE'], 1);
});

test('datagrams from another port are dropped as WRONG_SOURCE', async (t) => {
  const intruder = dgram.createSocket('udp4');
  await new Promise<void>((r) => intruder.bind(0, '127.0.0.1', () => r()));
  t.after(() => intruder.close());
  // The real answer comes late; an intruder on another port sends a complete answer first.
  const server = await new FakeServer((req) => [{ bytes: answer(req, 'stratum=3\r\n')[0] as Uint8Array, delayMs: 40 }]).start(t);
  server.socket.on('message', (_m, from) => {
    const spoof = encodeMode6Packet({ opcode: Mode6Opcode.ReadVariables, sequence: server.requests.at(-1)?.sequence ?? 0, response: true, data: 'stratum=1\r\n' });
    intruder.send(spoof, from.port, '127.0.0.1');
  });
  const client = server.client(t);
  const reply = await client.readVariables(0, ['stratum']);
  assert.equal(reply.variables.get('stratum'), '3');
  assert.equal(client.stats.dropped['WRONG_SOURCE'], 1);
});

test('every RFC 9327 error code becomes a coded error; AUTH_FAILURE is AUTH_REQUIRED without a key', async (t) => {
  const server = await new FakeServer((req) => send(errorAnswer(req, req.associationId))).start(t);
  const client = server.client(t);
  const names = ['UNSPECIFIED', 'AUTH_FAILURE', 'BAD_FORMAT', 'UNKNOWN_OPCODE', 'UNKNOWN_ASSOCIATION', 'UNKNOWN_VARIABLE', 'BAD_VALUE', 'PERMISSION_DENIED'];
  for (let code = 0; code <= 7; code++) {
    const err = await rejects(client.readVariables(code), code === 1 ? 'AUTH_REQUIRED' : 'SERVER_ERROR');
    assert.equal(err.details['serverError'], names[code]);
    assert.equal(err.details['serverErrorCode'], code);
  }
  assert.equal(client.stats.attempts, 8, 'error answers are final: no retry');
  const unknown = await rejects(client.readVariables(200), 'SERVER_ERROR');
  assert.equal(unknown.details['serverError'], 'ERROR_200');
});

test('authenticated requests: signed with MD5, SHA1 and AES-CMAC; signed answers verify; a forged MAC is dropped', async (t) => {
  const server = await new FakeServer((req, raw) => {
    const key = requestKey(req, raw);
    if (req.opcode === Mode6Opcode.ReadOrderedList && key === undefined) return send(errorAnswer(req, 1));
    const text = req.opcode === Mode6Opcode.ReadOrderedList ? 'addr.0=127.0.0.1:123, name.0="lo", en.0=1, flags.0=0x5, abc.0=1\r\n' : `signed=${key?.keyId ?? 'no'}\r\n`;
    const good = answer(req, text, key === undefined ? {} : { key });
    if (key === undefined) return send(...good);
    const forged = (good[0] as Uint8Array).slice();
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 0xff;
    return [{ bytes: forged }, { bytes: good[0] as Uint8Array, delayMs: 10 }];
  }).start(t);
  for (const key of [MD5, SHA1, CMAC]) {
    const client = server.client(t, { key });
    const rows = await client.readOrderedList('ifstats');
    assert.equal(rows[0]?.name, 'lo');
    assert.equal(rows[0]?.enabled, true);
    assert.equal(client.stats.dropped['BAD_MAC'], 1);
    // READVAR is not signed unless asked ('required'), and then it is.
    assert.equal((await client.readVariables(0)).variables.get('signed'), 'no');
    const always = server.client(t, { key, authenticate: 'always' });
    const signed = await always.readVariables(0);
    assert.equal(signed.variables.get('signed'), String(key.keyId));
    assert.equal(signed.authenticated, true);
  }
  const noKey = server.client(t);
  await rejects(noKey.readOrderedList('addr_restrictions'), 'AUTH_REQUIRED');
});

test('a wrong key: the server answers unsigned (NTPsec) or signs an AUTH_FAILURE error: AUTH_FAILED', async (t) => {
  const server = await new FakeServer((req, raw) => {
    const key = requestKey(req, raw);
    if (key === undefined) return send(...answer(req, 'stratum=3\r\n'));
    return send(errorAnswer(req, 1, key));
  }).start(t);
  const wrong = server.client(t, { key: { ...MD5, key: new Uint8Array(Buffer.from('not it')) }, authenticate: 'always' });
  const e1 = await rejects(wrong.readVariables(0), 'AUTH_FAILED');
  assert.equal(e1.details['keyId'], MD5.keyId);
  const right = server.client(t, { key: SHA1, authenticate: 'always' });
  const e2 = await rejects(right.readVariables(0), 'AUTH_FAILED');
  assert.equal(e2.details['serverError'], 'AUTH_FAILURE');
});

test('garbage in the variable text: the variables around it are kept and the problems listed', async (t) => {
  const server = await new FakeServer((req) => send(...answer(req, Buffer.from('srcadr=192.0.2.1, filtdelay=@\xfd\xf0Q 0.00,\r\nbad name=1, reach=0xff, x="unterminated', 'latin1')))).start(t);
  const client = server.client(t);
  const reply = await client.readVariables(3);
  assert.deepEqual(reply.variables.names(), ['srcadr', 'filtdelay', 'reach', 'x']);
  assert.deepEqual(
    reply.problems.map((p) => p.code),
    ['MODE6_VARS_BINARY', 'MODE6_VARS_BAD_NAME', 'MODE6_VARS_UNTERMINATED_QUOTE'],
  );
  assert.equal(reply.peerStatus?.selectionName, 'sys.peer');
});

test('READSTAT and the peers billboard', async (t) => {
  const server = await new FakeServer((req) => {
    if (req.opcode === Mode6Opcode.ReadStatus) return send(...answer(req, Uint8Array.from([0x45, 0x67, 0x96, 0x14, 0x45, 0x68, 0x80, 0x11]), { status: 0x0615 }));
    if (req.associationId === 0x4567) {
      return send(...answer(req, 'srcadr=192.0.2.10, hmode=3, stratum=2, ppoll=6, hpoll=6, refid=203.0.113.5, rec=0x00000000.00000000, reach=0xff, delay=1.500000, offset=-0.250000, jitter=0.125000\r\n', { status: 0x9614 }));
    }
    return send(...answer(req, 'srcadr=192.0.2.1, hmode=3, stratum=16, ppoll=4, hpoll=4, refid=INIT, reach=0x0, delay=0.000000, offset=0.000000, jitter=0.000060\r\n', { status: 0x8011 }));
  }).start(t);
  const client = server.client(t);
  const status = await client.readStatus();
  assert.equal(status.systemStatus.eventName, 'clock_sync');
  assert.deepEqual(
    status.associations.map((a) => [a.associationId, a.status.selectionName]),
    [
      [0x4567, 'sys.peer'],
      [0x4568, 'reject'],
    ],
  );
  const peers = await client.readPeers();
  assert.deepEqual(
    peers.map((p) => p.line),
    ['*192.0.2.10      203.0.113.5      2 u    -   64  377   1.5000  -0.2500   0.1250', ' 192.0.2.1       .INIT.          16 u    -   16    0   0.0000   0.0000   0.0001'],
  );
  const odd = await new FakeServer((req) => send(...answer(req, Uint8Array.from([1, 2, 3])))).start(t);
  await rejects(odd.client(t).readStatus(), 'BAD_RESPONSE');
});

/**
 * A fake ntpd MRU list. As NTPsec, it answers a page request with a stale or unknown nonce with silence; here a
 * nonce goes stale when `expire(pageNumber)` says so (the clock of a real ntpd would take 16 s).
 */
function mruServer(entries: string[], expire: (page: number) => boolean = () => false): Handler & { pages: string[] } {
  const valid = new Set<string>();
  let counter = 0;
  const pages: string[] = [];
  const nonce = (): string => {
    const n = (++counter).toString(16).padStart(24, '0');
    valid.add(n);
    return n;
  };
  const handler = (req: Mode6Packet): Out[] => {
    if (req.opcode === Mode6Opcode.RequestNonce) return send(...answer(req, `nonce=${nonce()}\r\n`));
    const text = Buffer.from(req.data).toString('latin1');
    pages.push(text);
    const v = parseVariableList(text);
    assert.ok(v.ok);
    const given = v.value.get('nonce');
    if (expire(pages.length)) valid.clear();
    if (typeof given !== 'string' || !valid.has(given)) return [];
    const perPage = (Number(v.value.get('frags') ?? 2) - 1) * 2;
    let start = 0;
    const anchor = v.value.get('addr.0');
    if (typeof anchor === 'string') start = entries.indexOf(anchor) + 1;
    const page = entries.slice(start, start + perPage);
    let reply = `nonce=${nonce()}`;
    page.forEach((addr, i) => {
      reply += `, addr.${i}=${addr}, last.${i}=0x${(0xe9000000 + entries.indexOf(addr)).toString(16)}.00000000, ct.${i}=1, mv.${i}=35, rs.${i}=0x0`;
    });
    if (start + perPage >= entries.length) reply += ', now=0xe9001000.00000000';
    return send(...answer(req, `${reply}\r\n`, { size: 100 }));
  };
  return Object.assign(handler, { pages });
}

test('MRU paging over UDP, and a nonce that expires in the middle of it', async (t) => {
  const entries = Array.from({ length: 24 }, (_, i) => `192.0.2.${i + 1}:123`);
  const handler = mruServer(entries, (page) => page === 3);
  const server = await new FakeServer(handler).start(t);
  const client = server.client(t, { timeoutMs: 100 });
  const result = await client.readMru({}, { frags: 3 });
  assert.deepEqual(
    result.entries.map((e) => e.address),
    entries,
  );
  assert.equal(result.timeouts, 1, 'the stale nonce got no answer, once');
  assert.equal(result.nonceRequests, 2);
  const kinds = server.requests.map((r) => mode6Kind(r.opcode));
  assert.deepEqual(kinds.slice(0, 6), ['NONCE', 'MRU', 'MRU', 'MRU', 'NONCE', 'MRU'], 'a new nonce right after the silence');
  // The page after the new nonce resumes after the entries already seen, with a smaller page (frags halved).
  assert.match(handler.pages[3] as string, /^nonce=0+[0-9a-f]+, frags=2, addr\.0=192\.0\.2\.8:123, last\.0=0xe9000007\.00000000, addr\.1=192\.0\.2\.7:123/);
  assert.equal(client.stats.attempts, result.requests, 'MRU requests are not retried blindly');

  const nonce = await client.requestNonce();
  assert.match(nonce, /^[0-9a-f]{24}$/);
});

test('MRU: a server that never answers pages ends in TIMEOUT; one with no nonce in BAD_RESPONSE', async (t) => {
  const deaf = await new FakeServer((req) => (req.opcode === Mode6Opcode.RequestNonce ? send(...answer(req, 'nonce=000000000000000000000001\r\n')) : [])).start(t);
  const e = await rejects(deaf.client(t, { timeoutMs: 40 }).readMru({}, { maxTimeouts: 2 }), 'TIMEOUT');
  assert.equal(e.details['decodeCode'], 'MODE6_MRU_TIMEOUT');
  const noNonce = await new FakeServer((req) => send(...answer(req, 'hello\r\n'))).start(t);
  await rejects(noNonce.client(t).readMru(), 'BAD_RESPONSE');
  await rejects(noNonce.client(t).requestNonce(), 'BAD_RESPONSE');
  const denied = await new FakeServer((req) => (req.opcode === Mode6Opcode.RequestNonce ? send(...answer(req, 'nonce=000000000000000000000001\r\n')) : send(errorAnswer(req, 7)))).start(t);
  const d = await rejects(denied.client(t).readMru(), 'SERVER_ERROR');
  assert.equal(d.details['serverError'], 'PERMISSION_DENIED');
});

test('requests run one at a time; close() fails the one in flight with CLOSED', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const server = await new FakeServer((req) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => inFlight--, 15);
    return [{ bytes: answer(req, `n=${req.associationId}\r\n`)[0] as Uint8Array, delayMs: 15 }];
  }).start(t);
  const client = server.client(t);
  const replies = await Promise.all([1, 2, 3, 4].map((a) => client.readVariables(a)));
  assert.deepEqual(
    replies.map((r) => r.variables.get('n')),
    ['1', '2', '3', '4'],
  );
  assert.equal(maxInFlight, 1);

  const slow = await new FakeServer(() => []).start(t);
  const c = slow.client(t, { timeoutMs: 5000 });
  const pending = c.readStatus();
  setTimeout(() => c.close(), 20);
  await rejects(pending, 'CLOSED');
  await rejects(c.readStatus(), 'CLOSED');
});

test('options are checked', () => {
  assert.throws(() => new Mode6Client({ port: 0 }));
  assert.throws(() => new Mode6Client({ timeoutMs: 0 }));
  assert.throws(() => new Mode6Client({ authenticate: 'always' }));
  assert.throws(() => new Mode6Client({ retries: -1 }));
});
