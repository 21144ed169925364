// The EKS client (src/client/eks.ts) against a fake EKS server written for the tests (test/helpers/eks-fake.ts:
// node:tls, ALPN ntp-eks/1, a certificate from makeTestCa): good answers, every Error code, broken, truncated and
// stalled answers, TLS and ALPN problems, and renewal with a proof the fake checks against its own exporter.
// Every expectation on a failure is a ClientError `code`: that is what users match.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { ClientError, type ClientErrorCode } from '../../src/client/errors.js';
import { describeEksError, eksErrorClientCode, fetchEphemeralKey, type EphemeralKeyOptions } from '../../src/client/eks.js';
import * as library from '../../src/index.js';
import { aesCmac } from '../../src/crypto/cmac.js';
import { UsageError } from '../../src/proto/errors.js';
import { encodeEksError, encodeEksKeyResponse, type EksKeyResponse } from '../../src/proto/eks/message.js';
import { EksRecordType } from '../../src/proto/eks/records.js';
import { encodeRawRecords, type RawRecord } from '../../src/proto/ntske/framing.js';
import { DEFAULT_FAKE_LIFETIME, startEksFake, type EksFake, type EksFakeOptions } from '../helpers/eks-fake.js';
import { makeTestCa, type TestCa } from '../interop/peers.js';

let ca: TestCa;
before(async () => {
  ca = await makeTestCa();
});

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function fake(options: EksFakeOptions = {}): Promise<EksFake> {
  const f = await startEksFake(ca, options);
  closers.push(f.close);
  return f;
}

function fetchFrom(f: { port: number }, options: EphemeralKeyOptions = {}) {
  return fetchEphemeralKey('localhost', { port: f.port, ca: ca.caCertPem, timeoutMs: 3_000, ...options });
}

/** The ClientError `promise` rejects with (fails when it resolves or throws anything else). */
async function clientError(promise: Promise<unknown>): Promise<ClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
    assert.doesNotMatch(error.message, /\n/, 'one-line message');
    return error;
  }
  assert.fail('expected a rejection');
}

async function codeOf(promise: Promise<unknown>): Promise<ClientErrorCode> {
  return (await clientError(promise)).code;
}

const key16 = () => new Uint8Array(randomBytes(16));

function keyResponse(overrides: Partial<EksKeyResponse> = {}): Uint8Array {
  return encodeEksKeyResponse({
    algorithm: 1,
    keyId: 40000,
    key: key16(),
    expirySeconds: 1_800_000_000,
    lifetimeSeconds: 3600,
    ntpServer: null,
    ntpPort: null,
    warnings: [],
    ...overrides,
  });
}

const u16 = (v: number) => Uint8Array.of(v >> 8, v & 0xff);
const u32 = (v: number) => Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
const rec = (type: number, body: Uint8Array, critical = true): RawRecord => ({ type, critical, body });
/** The records of a complete key response, to leave out or break one. */
function keyRecords(): RawRecord[] {
  return [
    rec(EksRecordType.MAC_ALGORITHM, u16(1)),
    rec(EksRecordType.KEY_ID, u32(40000)),
    rec(EksRecordType.KEY, key16()),
    rec(EksRecordType.EXPIRY, new Uint8Array([0, 0, 0, 0, ...u32(1_800_000_000)])),
    rec(EksRecordType.LIFETIME, u32(3600)),
  ];
}
const END = rec(EksRecordType.END_OF_MESSAGE, new Uint8Array(0));

describe('EKS client: a good exchange', { concurrency: true }, () => {
  test('a new key: id, 16-octet key, expiry and lifetime, NTP server defaulting to the EKS host and 123, TLS 1.3', async () => {
    const f = await fake();
    const before = Math.floor(Date.now() / 1000);
    const result = await fetchFrom(f);
    assert.equal(result.keyId, 32768);
    assert.equal(result.algorithm, 'AES128CMAC');
    assert.deepEqual(result.key, f.keys.get(32768));
    assert.equal(result.lifetimeSeconds, DEFAULT_FAKE_LIFETIME);
    assert.ok(result.expiresAt instanceof Date);
    const expiry = result.expiresAt.getTime() / 1000;
    assert.ok(expiry >= before + DEFAULT_FAKE_LIFETIME && expiry <= before + DEFAULT_FAKE_LIFETIME + 5, String(result.expiresAt));
    assert.equal(result.expirySeconds, expiry);
    assert.equal(result.ntpHost, 'localhost');
    assert.equal(result.ntpPort, 123);
    assert.equal(result.serverRecord, undefined);
    assert.equal(result.portRecord, undefined);
    assert.equal(result.eksHost, 'localhost');
    assert.equal(result.eksPort, f.port);
    assert.equal(result.tlsVersion, 'TLSv1.3');
    assert.equal(result.alpn, 'ntp-eks/1');
    assert.equal(result.renewed, false);
    assert.ok(result.durationMs > 0);
    // What the server saw: AES-128-CMAC offered, no token, no Renew.
    assert.equal(f.exchanges.length, 1);
    assert.deepEqual(f.exchanges[0]?.request, { algorithms: [1], token: null, renew: null });
  });

  test('NTP Server and NTP Port records name where to send NTP', async () => {
    const f = await fake({ ntpServer: 'ntp.example.net', ntpPort: 1123 });
    const result = await fetchFrom(f);
    assert.equal(result.ntpHost, 'ntp.example.net');
    assert.equal(result.ntpPort, 1123);
    assert.equal(result.serverRecord, 'ntp.example.net');
    assert.equal(result.portRecord, 1123);
  });

  test('a token is sent in a Token record; a server that requires one refuses a request without it', async () => {
    const f = await fake({ token: 'open sesame ✓' });
    const refused = await clientError(fetchFrom(f));
    assert.equal(refused.code, 'EKS_ERROR_3');
    assert.match(refused.message, /server refused: Unauthorized \(token required or not accepted\)$/);
    assert.equal(refused.details['errorCode'], 3);
    assert.equal((await codeOf(fetchFrom(f, { token: 'wrong' }))), 'EKS_ERROR_3');
    const result = await fetchFrom(f, { token: 'open sesame ✓' });
    assert.equal(result.keyId, 32768);
    assert.equal(f.exchanges[2]?.request.token, 'open sesame ✓');
  });

  test('warnings are passed on; a non-critical record of an unknown type is ignored', async () => {
    const records = [...keyRecords(), rec(EksRecordType.WARNING, u16(7)), rec(0x1234, Uint8Array.of(1, 2, 3), false), END];
    const f = await fake({ respond: () => encodeRawRecords(records) });
    const result = await fetchFrom(f);
    assert.deepEqual(result.warnings, [7]);
    assert.equal(result.keyId, 40000);
  });

  test('the library exports the client', () => {
    assert.equal(library.fetchEphemeralKey, fetchEphemeralKey);
    assert.equal(library.EKS_DEFAULT_PORT, 4460);
  });
});

describe('EKS client: Error records', { concurrency: true }, () => {
  const expected: Array<[number, ClientErrorCode, RegExp]> = [
    [0, 'EKS_ERROR_0', /server refused: Unrecognized Critical Record/],
    [1, 'EKS_ERROR_1', /server refused: Bad Request/],
    [2, 'EKS_ERROR_2', /server refused: Internal Error/],
    [3, 'EKS_ERROR_3', /server refused: Unauthorized \(token required or not accepted\)/],
    [4, 'EKS_ERROR_4', /server refused: Try Later/],
    [5, 'EKS_ERROR_5', /server refused: No Common Algorithm/],
    [6, 'EKS_ERROR_6', /server refused: Renewal Refused/],
    [9, 'EKS_ERROR_RECORD', /server refused: unknown error 9/],
  ];
  for (const [errorCode, code, message] of expected) {
    test(`Error ${errorCode} → ${code}`, async () => {
      const f = await fake({ respond: () => encodeEksError(errorCode) });
      const error = await clientError(fetchFrom(f));
      assert.equal(error.code, code);
      assert.equal(error.details['errorCode'], errorCode);
      assert.match(error.message, message);
      assert.match(error.message, new RegExp(`^localhost:${f.port}: `));
    });
  }

  test('codes and descriptions for callers', () => {
    assert.equal(eksErrorClientCode(4), 'EKS_ERROR_4');
    assert.equal(eksErrorClientCode(7), 'EKS_ERROR_RECORD');
    assert.equal(eksErrorClientCode(-1), 'EKS_ERROR_RECORD');
    assert.equal(describeEksError(3), 'Unauthorized (token required or not accepted)');
    assert.equal(describeEksError(70), 'unknown error 70');
  });
});

describe('EKS client: broken responses', { concurrency: true }, () => {
  const malformed = async (bytes: Uint8Array, decodeError: string) => {
    const f = await fake({ respond: () => bytes });
    const error = await clientError(fetchFrom(f));
    assert.equal(error.code, 'EKS_BAD_RESPONSE', error.message);
    assert.equal(error.details['decodeError'], decodeError, error.message);
    assert.match(error.message, new RegExp(`^malformed EKS response from localhost:${f.port}: .*\\(${decodeError}\\)$`));
  };

  test('garbage instead of records → EKS_BAD_RESPONSE (a body past the limit)', () =>
    malformed(new TextEncoder().encode('HTTP/1.1 400 Bad Request\r\n\r\n'), 'EKS_RECORD_TOO_LONG'));

  test('a key response without a Key record → EKS_MISSING_RECORD', () =>
    malformed(encodeRawRecords([...keyRecords().filter((r) => r.type !== EksRecordType.KEY), END]), 'EKS_MISSING_RECORD'));

  test('a key of 15 octets → EKS_BAD_KEY', () =>
    malformed(encodeRawRecords([...keyRecords().map((r) => (r.type === EksRecordType.KEY ? rec(r.type, new Uint8Array(15)) : r)), END]), 'EKS_BAD_KEY'));

  test('an Error record together with a key → EKS_ERROR_NOT_ALONE', () =>
    malformed(encodeRawRecords([...keyRecords(), rec(EksRecordType.ERROR, u16(2)), END]), 'EKS_ERROR_NOT_ALONE'));

  test('a critical record of an unknown type → EKS_UNKNOWN_CRITICAL', () =>
    malformed(encodeRawRecords([...keyRecords(), rec(0x4321, new Uint8Array(2)), END]), 'EKS_UNKNOWN_CRITICAL'));

  test('a request record (Token) in the response → EKS_REQUEST_RECORD_IN_RESPONSE', () =>
    malformed(encodeRawRecords([...keyRecords(), rec(EksRecordType.TOKEN, Uint8Array.of(0x41)), END]), 'EKS_REQUEST_RECORD_IN_RESPONSE'));

  test('two Key Id records → EKS_DUPLICATE_RECORD', () =>
    malformed(encodeRawRecords([...keyRecords(), rec(EksRecordType.KEY_ID, u32(40001)), END]), 'EKS_DUPLICATE_RECORD'));

  test('bytes after End of Message → EKS_DATA_AFTER_END', () => malformed(Buffer.concat([keyResponse(), Buffer.from([0, 0])]), 'EKS_DATA_AFTER_END'));

  test('an algorithm we did not offer → EKS_BAD_RESPONSE', () => malformed(keyResponse({ algorithm: 2 }), 'EKS_ALGORITHM_NOT_OFFERED'));

  test('an expiry beyond any date → EKS_BAD_RESPONSE', () => malformed(keyResponse({ expirySeconds: Number.MAX_SAFE_INTEGER }), 'EKS_EXPIRY_RANGE'));

  test('a truncated record, then the server closes → EKS_CLOSED (EKS_TRUNCATED)', async () => {
    const f = await fake({ respond: () => keyResponse().subarray(0, 13) });
    const error = await clientError(fetchFrom(f));
    assert.equal(error.code, 'EKS_CLOSED');
    assert.equal(error.details['decodeError'], 'EKS_TRUNCATED');
    assert.match(error.message, /closed the connection before a complete response/);
  });

  test('valid records without End of Message, then the server closes → EKS_CLOSED', async () => {
    const f = await fake({ respond: () => encodeRawRecords(keyRecords()) });
    assert.equal(await codeOf(fetchFrom(f)), 'EKS_CLOSED');
  });

  test('the server closes without a word → EKS_CLOSED', async () => {
    const f = await fake({ respond: () => new Uint8Array(0) });
    assert.equal(await codeOf(fetchFrom(f)), 'EKS_CLOSED');
  });

  test('a server that never answers → EKS_TIMEOUT (after the handshake)', async () => {
    const f = await fake({ respond: () => null });
    const error = await clientError(fetchFrom(f, { timeoutMs: 1_000 }));
    assert.equal(error.code, 'EKS_TIMEOUT');
    assert.match(error.message, /timed out after 1000 ms/);
    assert.equal(f.sessions, 1);
    assert.equal(f.exchanges.length, 1, 'the request was sent');
  });

  test('an abort signal ends the exchange → EKS_ABORTED', async () => {
    const f = await fake({ respond: () => null });
    const controller = new AbortController();
    const pending = fetchFrom(f, { signal: controller.signal });
    setTimeout(() => controller.abort(), 200);
    assert.equal(await codeOf(pending), 'EKS_ABORTED');
    assert.equal(await codeOf(fetchFrom(f, { signal: AbortSignal.abort() })), 'EKS_ABORTED');
  });
});

describe('EKS client: TLS', { concurrency: true }, () => {
  test('a server without ntp-eks/1 (NTS-KE only) → EKS_ALPN; a server with no ALPN at all → EKS_ALPN', async () => {
    const ntske = await fake({ alpn: ['ntske/1'] });
    const error = await clientError(fetchFrom(ntske));
    assert.equal(error.code, 'EKS_ALPN');
    assert.match(error.message, /ntp-eks\/1/);
    const none = await fake({ alpn: null });
    const noAlpn = await clientError(fetchFrom(none));
    assert.equal(noAlpn.code, 'EKS_ALPN');
    assert.match(noAlpn.message, /got none/);
    assert.equal(none.exchanges.length, 0, 'no request is sent without ntp-eks/1');
  });

  test('a TLS 1.2 server → EKS_TLS_VERSION', async () => {
    const old = await fake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    assert.equal(await codeOf(fetchFrom(old)), 'EKS_TLS_VERSION');
  });

  test('an untrusted certificate or a wrong name → EKS_CERTIFICATE', async () => {
    const f = await fake();
    const untrusted = await clientError(fetchEphemeralKey('localhost', { port: f.port, timeoutMs: 3_000 }));
    assert.equal(untrusted.code, 'EKS_CERTIFICATE');
    assert.equal(typeof untrusted.details['tlsError'], 'string');
    assert.equal(await codeOf(fetchFrom(f, { servername: 'ntp.example.org' })), 'EKS_CERTIFICATE');
    assert.equal(f.exchanges.length, 0);
  });

  test('not TLS at all → EKS_TLS; a closed port → EKS_CONNECT', async () => {
    const sockets = new Set<net.Socket>();
    const plain = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.end('SSH-2.0-OpenSSH_9.6\r\n');
    });
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    const port = (plain.address() as net.AddressInfo).port;
    closers.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    });
    assert.equal(await codeOf(fetchEphemeralKey('127.0.0.1', { port, ca: ca.caCertPem, timeoutMs: 3_000 })), 'EKS_TLS');

    const unused = net.createServer();
    unused.listen(0, '127.0.0.1');
    await once(unused, 'listening');
    const closedPort = (unused.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => unused.close(() => resolve()));
    assert.equal(await codeOf(fetchEphemeralKey('127.0.0.1', { port: closedPort, ca: ca.caCertPem, timeoutMs: 3_000 })), 'EKS_CONNECT');
  });
});

describe('EKS client: renewal (docs/eks.md §5)', { concurrency: true }, () => {
  test('a Renew record with a proof bound to the connection: the fake verifies it and keeps the id', async () => {
    const f = await fake();
    const first = await fetchFrom(f);
    const renewed = await fetchFrom(f, { renew: { keyId: first.keyId, key: first.key } });
    assert.equal(renewed.keyId, first.keyId);
    assert.equal(renewed.renewed, true);
    assert.notDeepEqual(renewed.key, first.key, 'a fresh key under the same id');
    const exchange = f.exchanges[1];
    assert.ok(exchange?.request.renew !== null && exchange?.request.renew !== undefined);
    assert.equal(exchange.request.renew.keyId, first.keyId);
    assert.equal(exchange.proofValid, true);
    // The proof is AES-128-CMAC(held key, exporter output) with the exporter as the server computes it.
    assert.ok(exchange.exported !== null);
    assert.deepEqual(exchange.request.renew.proof, aesCmac(first.key, exchange.exported));

    // Another connection, another exporter value: the proof cannot be replayed.
    const again = await fetchFrom(f, { renew: { keyId: renewed.keyId, key: renewed.key } });
    assert.equal(again.keyId, first.keyId);
    const proofs = f.exchanges.slice(1).map((e) => Buffer.from(e.request.renew?.proof ?? []).toString('hex'));
    assert.notEqual(proofs[0], proofs[1]);
    assert.notDeepEqual(f.exchanges[1]?.exported, f.exchanges[2]?.exported);
  });

  test('a proof under the wrong key → EKS_ERROR_6 (Renewal Refused)', async () => {
    const f = await fake();
    const first = await fetchFrom(f);
    const error = await clientError(fetchFrom(f, { renew: { keyId: first.keyId, key: key16() } }));
    assert.equal(error.code, 'EKS_ERROR_6');
    assert.match(error.message, /server refused: Renewal Refused/);
    assert.equal(f.exchanges[1]?.proofValid, false);
  });

  test('a server that answers a renewal with another id: not renewed', async () => {
    const f = await fake({ respond: () => keyResponse({ keyId: 40001 }) });
    const result = await fetchFrom(f, { renew: { keyId: 40000, key: key16() } });
    assert.equal(result.keyId, 40001);
    assert.equal(result.renewed, false);
  });

  test('values the wire cannot carry are the caller\'s mistake: UsageError, nothing sent', async () => {
    const f = await fake();
    await assert.rejects(fetchFrom(f, { token: 'x'.repeat(257) }), UsageError);
    await assert.rejects(fetchFrom(f, { token: '' }), UsageError);
    await assert.rejects(fetchFrom(f, { renew: { keyId: 0, key: key16() } }), UsageError);
    await assert.rejects(fetchFrom(f, { renew: { keyId: 40000, key: new Uint8Array(15) } }), UsageError);
    assert.equal(f.sessions, 0);
  });
});
