// The client library (src/client) against hostile fake servers written here: an NTS-KE server on node:tls
// (certificate from makeTestCa, ALPN ntske/1) that answers whatever a case scripts, plain TCP servers, and UDP
// servers that forge, kiss or stay silent. Every expectation is a ClientError `code`: that is what users match.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { ClientError, type ClientErrorCode } from '../../src/client/errors.js';
import { NtsClient, queryNtp } from '../../src/client/ntp.js';
import { ntsKeyExchange, type NtsKeOptions } from '../../src/client/ntske.js';
import { aeadById, createAead, type Aead } from '../../src/crypto/aead.js';
import { EF_HEADER_LENGTH, encodeExtensionField } from '../../src/proto/ntp/extensions.js';
import { NtpMode, decodeNtpPacket, encodeKissCode, encodeNtpHeader, type KnownKissCode, type NtpHeader } from '../../src/proto/ntp/packet.js';
import { unixMicrosToNtpTimestamp, type NtpTimestamp } from '../../src/proto/ntp/timestamp.js';
import { NtsFieldType, decodeNtsView, encodeNtsAuthenticator } from '../../src/proto/nts/extension-fields.js';
import { encodeRawRecords, type RawRecord } from '../../src/proto/ntske/framing.js';
import { decodeMessage, encodeMessage } from '../../src/proto/ntske/message.js';
import {
  AeadAlgorithms,
  ErrorCodes,
  NextProtocols,
  aeadAlgorithmRecord,
  encodeRecord,
  errorRecord,
  newCookieRecord,
  nextProtocolRecord,
  portRecord,
  serverRecord,
  type NtsKeRecord,
} from '../../src/proto/ntske/records.js';
import { NTS_EXPORTER_LABEL, exporterContext } from '../../src/proto/ntske/server.js';
import { makeTestCa, type TestCa } from '../interop/peers.js';

let ca: TestCa;
before(async () => {
  ca = await makeTestCa();
});

/** Resolves with the ClientError code `promise` rejects with (fails when it resolves or throws anything else). */
async function codeOf(promise: Promise<unknown>): Promise<{ code: ClientErrorCode; error: ClientError }> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
    assert.doesNotMatch(error.message, /\n/, 'one-line message');
    return { code: error.code, error };
  }
  assert.fail('expected a rejection');
}

// ---------------------------------------------------------------------------------------------------------------
// A scripted NTS-KE server

interface KeSession {
  readonly socket: tls.TLSSocket;
  /** AEAD ids the client offered, in its order. */
  readonly offered: number[];
  /** Keys of `aead` from the TLS exporter, as the client derives them. */
  keys(aead: number): { c2s: Aead; s2c: Aead };
}

interface FakeKe {
  readonly port: number;
  /** Connections that completed the TLS handshake. */
  sessions: number;
  close(): Promise<void>;
}

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

/** A TLS 1.3 server with ALPN ntske/1 (or `alpn`) that reads one request and hands the session to `respond`. */
async function fakeKe(respond: (session: KeSession) => void, options: { alpn?: string[] | null } = {}): Promise<FakeKe> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({
    key: ca.serverKeyPem,
    cert: ca.serverCertPem + ca.caCertPem,
    minVersion: 'TLSv1.3',
    ...(options.alpn === null ? {} : { ALPNProtocols: options.alpn ?? ['ntske/1'] }),
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const fake: FakeKe = {
    port: 0,
    sessions: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    fake.sessions++;
    socket.on('error', () => {});
    let request = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      request = Buffer.concat([request, chunk]);
      const decoded = decodeMessage(request, 'request');
      if (!decoded.ok) return; // not all of it yet
      const offered = (decoded.value.aeadAlgorithms ?? []).map((a) => AeadAlgorithms.encode(a));
      const keys = (aead: number) => {
        const algorithm = aeadById(aead);
        assert.ok(algorithm !== undefined);
        const derive = (direction: 'c2s' | 's2c') => socket.exportKeyingMaterial(algorithm.keyLength, NTS_EXPORTER_LABEL, Buffer.from(exporterContext(0, aead, direction)));
        return { c2s: createAead(aead, derive('c2s')), s2c: createAead(aead, derive('s2c')) };
      };
      respond({ socket, offered, keys });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  (fake as { port: number }).port = (server.address() as net.AddressInfo).port;
  closers.push(fake.close);
  return fake;
}

const NTPV4 = NextProtocols.decode(0);
const aeadRec = (...ids: number[]) => aeadAlgorithmRecord(ids.map((id) => AeadAlgorithms.decode(id)));
const cookies = (n: number, size = 100) => Array.from({ length: n }, () => newCookieRecord(randomBytes(size)));
/** Records as written, without the End of Message that encodeMessage would add. */
const withoutEnd = (records: NtsKeRecord[]) => Buffer.concat(records.map((r) => encodeRecord(r)));

/** Sends `bytes` as the response and closes, like a real server. */
const answer = (bytes: Uint8Array) => (session: KeSession) => session.socket.end(bytes);

function ke(fake: { port: number }, options: NtsKeOptions = {}) {
  return ntsKeyExchange('localhost', { port: fake.port, ca: ca.caCertPem, timeoutMs: 2_000, ...options });
}

describe('NTS-KE client against hostile servers', { concurrency: true }, () => {
  test('a well-behaved fake works (the harness itself is sound)', async () => {
    const fake = await fakeKe(answer(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(8), portRecord(1234)])));
    const result = await ke(fake);
    assert.equal(result.aead.id, 15);
    assert.equal(result.cookies.length, 8);
    assert.equal(result.ntpPort, 1234);
    assert.equal(result.ntpHost, 'localhost');
  });

  test('garbage bytes instead of records → KE_BAD_RESPONSE', async () => {
    const fake = await fakeKe(answer(Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')));
    assert.equal((await codeOf(ke(fake))).code, 'KE_BAD_RESPONSE');
  });

  test('a truncated record, then the server closes → KE_BAD_RESPONSE', async () => {
    const whole = encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(2)]);
    const fake = await fakeKe(answer(whole.subarray(0, 20)));
    assert.equal((await codeOf(ke(fake))).code, 'KE_BAD_RESPONSE');
  });

  test('no End of Message (the server closes after valid records) → KE_BAD_RESPONSE', async () => {
    const fake = await fakeKe(answer(withoutEnd([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(8)])));
    const { code, error } = await codeOf(ke(fake));
    assert.equal(code, 'KE_BAD_RESPONSE');
    assert.match(error.message, /End of Message/);
  });

  test('an AEAD algorithm we did not offer → KE_BAD_RESPONSE naming it', async () => {
    const fake = await fakeKe(answer(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(17), ...cookies(8)])));
    const { code, error } = await codeOf(ke(fake, { aeadAlgorithms: [15] }));
    assert.equal(code, 'KE_BAD_RESPONSE');
    assert.equal(error.details['aead'], 17);
    // An id nobody implements fares the same.
    const other = await fakeKe(answer(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(30), ...cookies(8)])));
    assert.equal((await codeOf(ke(other))).code, 'KE_BAD_RESPONSE');
  });

  test('an empty AEAD record → KE_NO_AEAD; an empty Next Protocol record → KE_NO_PROTOCOL', async () => {
    const noAead = await fakeKe(answer(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec()])));
    assert.equal((await codeOf(ke(noAead))).code, 'KE_NO_AEAD');
    const noProtocol = await fakeKe(answer(encodeMessage([nextProtocolRecord([])])));
    assert.equal((await codeOf(ke(noProtocol))).code, 'KE_NO_PROTOCOL');
  });

  test('zero cookies → KE_NO_COOKIES', async () => {
    const fake = await fakeKe(answer(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15)])));
    assert.equal((await codeOf(ke(fake))).code, 'KE_NO_COOKIES');
  });

  test('an Error record → KE_ERROR_RECORD with its code', async () => {
    const fake = await fakeKe(answer(encodeMessage([errorRecord(ErrorCodes.decode(1))])));
    const { code, error } = await codeOf(ke(fake));
    assert.equal(code, 'KE_ERROR_RECORD');
    assert.equal(error.details['errorCode'], 1);
  });

  test('a server that never answers → KE_TIMEOUT (after the handshake, and with no TLS at all)', async () => {
    const fake = await fakeKe(() => {});
    // Long enough for the handshake to finish on a loaded machine: the timeout must hit after it.
    assert.equal((await codeOf(ke(fake, { timeoutMs: 1500 }))).code, 'KE_TIMEOUT');
    assert.equal(fake.sessions, 1);

    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    closers.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const port = (silent.address() as net.AddressInfo).port;
    assert.equal((await codeOf(ke({ port }, { timeoutMs: 300 }))).code, 'KE_TIMEOUT');
  });

  test('oversized cookies and records beyond the decoder caps → KE_BAD_RESPONSE with the decoder code', async () => {
    const cases: Array<[string, Uint8Array]> = [
      // One body over the 4096-byte cap.
      ['NTSKE_RECORD_TOO_LONG', encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(1, 5000)])],
      // More than 256 records.
      ['NTSKE_TOO_MANY_RECORDS', encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(300, 16)])],
      // More than 64 KiB in all, each record within the caps.
      ['NTSKE_MESSAGE_TOO_LONG', encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(20, 4000)])],
    ];
    for (const [decodeError, bytes] of cases) {
      const fake = await fakeKe(answer(bytes));
      const { code, error } = await codeOf(ke(fake));
      assert.equal(code, 'KE_BAD_RESPONSE', decodeError);
      assert.equal(error.details['decodeError'], decodeError);
    }
  });

  test('a header announcing more than the caps is refused before the body arrives', async () => {
    // Body length 0xffff, then nothing: the client must not wait for 64 KiB that never come.
    const header: RawRecord = { type: 5, critical: false, body: new Uint8Array(0) };
    const bytes = Buffer.from(encodeRawRecords([header]));
    bytes.writeUInt16BE(0xffff, 2);
    const fake = await fakeKe((session) => session.socket.write(bytes)); // and keep the connection open
    const { code, error } = await codeOf(ke(fake, { timeoutMs: 1_500 }));
    assert.equal(code, 'KE_BAD_RESPONSE');
    assert.equal(error.details['decodeError'], 'NTSKE_RECORD_TOO_LONG');
  });

  test('TLS problems: no ALPN agreed → KE_ALPN; not TLS → KE_TLS; untrusted or wrong name → KE_CERTIFICATE; closed port → KE_CONNECT', async () => {
    const noAlpn = await fakeKe(answer(encodeMessage([])), { alpn: null });
    assert.equal((await codeOf(ke(noAlpn))).code, 'KE_ALPN');

    const sockets = new Set<net.Socket>();
    const plain = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.end('SSH-2.0-OpenSSH_9.6\r\n');
    });
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    closers.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    });
    assert.equal((await codeOf(ke({ port: (plain.address() as net.AddressInfo).port }))).code, 'KE_TLS');

    const good = await fakeKe(answer(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(15), ...cookies(8)])));
    // The system store does not know the test CA.
    assert.equal((await codeOf(ntsKeyExchange('localhost', { port: good.port, timeoutMs: 2_000 }))).code, 'KE_CERTIFICATE');
    assert.equal((await codeOf(ke(good, { servername: 'time.example.net' }))).code, 'KE_CERTIFICATE');

    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    assert.equal((await codeOf(ke({ port: closed }))).code, 'KE_CONNECT');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Scripted UDP servers

interface Request {
  readonly bytes: Buffer;
  readonly header: NtpHeader;
  readonly from: RemoteInfo;
}

/** A UDP server on 127.0.0.1 that calls `handle` for each datagram with a `reply` function. */
async function fakeUdp(handle: (request: Request, reply: (bytes: Uint8Array) => void) => void): Promise<{ port: number; requests: number; socket: UdpSocket }> {
  const socket = createSocket('udp4');
  const fake = { port: 0, requests: 0, socket };
  socket.on('message', (bytes, from) => {
    fake.requests++;
    const decoded = decodeNtpPacket(bytes, { allowShortFields: true, legacyMac: false });
    if (!decoded.ok) return;
    handle({ bytes, header: decoded.value.header, from }, (out) => socket.send(out, from.port, from.address));
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  fake.port = socket.address().port;
  closers.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return fake;
}

const nowTimestamp = (): NtpTimestamp => unixMicrosToNtpTimestamp(Date.now() * 1000);

/** A synchronised server's answer to `request`, with `changes` applied. */
function serverHeader(request: NtpHeader, changes: Partial<NtpHeader> = {}): NtpHeader {
  const now = nowTimestamp();
  return {
    leap: 0,
    version: 4,
    mode: NtpMode.Server,
    stratum: 2,
    poll: request.poll,
    precision: -20,
    rootDelay: 0x0000_0100,
    rootDispersion: 0x0000_0200,
    referenceId: 0x7f00_0001,
    referenceTimestamp: now,
    originTimestamp: request.transmitTimestamp,
    receiveTimestamp: now,
    transmitTimestamp: now,
    ...changes,
  };
}

const kiss = (request: NtpHeader, code: KnownKissCode) => serverHeader(request, { leap: 3, stratum: 0, referenceId: encodeKissCode(code) });
const otherTimestamp = (ts: NtpTimestamp): NtpTimestamp => ({ seconds: ts.seconds, fraction: (ts.fraction + 1) >>> 0 });

describe('plain NTP client against hostile servers', { concurrency: true }, () => {
  const query = (port: number, timeoutMs = 300) => queryNtp('127.0.0.1', { port, timeoutMs });

  test('a sound answer is accepted (the harness itself is sound)', async () => {
    const fake = await fakeUdp((req, reply) => reply(encodeNtpHeader(serverHeader(req.header))));
    const sample = await query(fake.port, 2_000);
    assert.equal(sample.stratum, 2);
    assert.equal(sample.refid, '127.0.0.1');
    assert.deepEqual(sample.server, { address: '127.0.0.1', port: fake.port });
    assert.equal(sample.authentication.kind, 'none');
  });

  test('forged answers (wrong origin, a kiss with the wrong origin, client mode, zero transmit, runts) are ignored → NTP_TIMEOUT', async () => {
    const fake = await fakeUdp((req, reply) => {
      reply(encodeNtpHeader(serverHeader(req.header, { originTimestamp: otherTimestamp(req.header.transmitTimestamp) })));
      reply(encodeNtpHeader(serverHeader(req.header, { mode: NtpMode.Client })));
      reply(encodeNtpHeader(serverHeader(req.header, { transmitTimestamp: { seconds: 0, fraction: 0 } })));
      reply(encodeNtpHeader({ ...kiss(req.header, 'DENY'), originTimestamp: otherTimestamp(req.header.transmitTimestamp) }));
      reply(encodeNtpHeader(serverHeader(req.header)).subarray(0, 40));
      reply(Buffer.from('not ntp at all'));
    });
    assert.equal((await codeOf(query(fake.port))).code, 'NTP_TIMEOUT');
    assert.equal(fake.requests, 1);
  });

  test('a forged answer before the real one does not spoil the query', async () => {
    const fake = await fakeUdp((req, reply) => {
      reply(encodeNtpHeader(serverHeader(req.header, { originTimestamp: otherTimestamp(req.header.transmitTimestamp), stratum: 1 })));
      reply(encodeNtpHeader(serverHeader(req.header)));
    });
    assert.equal((await query(fake.port, 2_000)).stratum, 2);
  });

  for (const code of ['RATE', 'DENY', 'RSTR'] as const) {
    test(`kiss-o'-death ${code} → NTP_KISS with the code`, async () => {
      const fake = await fakeUdp((req, reply) => reply(encodeNtpHeader(kiss(req.header, code))));
      const { code: errorCode, error } = await codeOf(query(fake.port, 2_000));
      assert.equal(errorCode, 'NTP_KISS');
      assert.equal(error.details['kiss'], code);
    });
  }

  test('an unsynchronised server → NTP_UNSYNCHRONIZED', async () => {
    const fake = await fakeUdp((req, reply) => reply(encodeNtpHeader(serverHeader(req.header, { leap: 3, stratum: 16 }))));
    assert.equal((await codeOf(query(fake.port, 2_000))).code, 'NTP_UNSYNCHRONIZED');
  });

  test('silence → NTP_TIMEOUT', async () => {
    const fake = await fakeUdp(() => {});
    const started = performance.now();
    assert.equal((await codeOf(query(fake.port))).code, 'NTP_TIMEOUT');
    assert.ok(performance.now() - started >= 290);
    assert.equal(fake.requests, 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// NTS: a fake NTS-KE server that names a fake NTP server

interface NtsRequest extends Request {
  readonly uid: Uint8Array;
  readonly cookie: Uint8Array;
  readonly placeholders: number;
  /** The keys of the NTS-KE session that issued the cookie. */
  readonly keys: { c2s: Aead; s2c: Aead };
}

/** An authenticated NTS response: header, Unique Identifier, then the authenticator over `cookies`. */
function ntsResponse(header: NtpHeader, uid: Uint8Array, s2c: Aead, cookieList: readonly Uint8Array[]): Buffer {
  const head = Buffer.concat([encodeNtpHeader(header), encodeExtensionField(NtsFieldType.UniqueIdentifier, uid, EF_HEADER_LENGTH)]);
  const plaintext = Buffer.concat(cookieList.map((c) => encodeExtensionField(NtsFieldType.Cookie, c, EF_HEADER_LENGTH)));
  const nonce = randomBytes(16);
  return Buffer.concat([head, encodeNtsAuthenticator(nonce, s2c.seal(nonce, plaintext, head))]);
}

/** An NTS NAK echoing `uid` (RFC 8915 §5.7): no authenticator. */
function ntsNak(request: NtpHeader, uid: Uint8Array): Buffer {
  return Buffer.concat([encodeNtpHeader(kiss(request, 'NTSN')), encodeExtensionField(NtsFieldType.UniqueIdentifier, uid, EF_HEADER_LENGTH)]);
}

/**
 * NTS-KE on TLS (AEAD: the client's first choice; 8 cookies of 100 bytes; Server 127.0.0.1 and Port of the
 * UDP server) and an NTP server that hands each NTS request, with the keys of its cookie, to `handle`.
 */
async function fakeNts(handle: (request: NtsRequest, reply: (bytes: Uint8Array) => void) => void) {
  const keysByCookie = new Map<string, { c2s: Aead; s2c: Aead }>();
  const udp = await fakeUdp((req, reply) => {
    const decoded = decodeNtpPacket(req.bytes, { allowShortFields: true, legacyMac: false });
    assert.ok(decoded.ok);
    const view = decodeNtsView({ extensions: decoded.value.extensions }, { role: 'request' });
    assert.ok(view.ok, 'the client sends a well-formed NTS request');
    const cookie = view.value.cookies[0] as Uint8Array;
    const keys = keysByCookie.get(Buffer.from(cookie).toString('hex'));
    assert.ok(keys !== undefined, 'the client sends a cookie it was given');
    // The client's authenticator verifies under C2S.
    const opened = keys.c2s.open(view.value.authenticator.nonce, view.value.authenticator.ciphertext, req.bytes.subarray(0, view.value.associatedDataEnd));
    assert.ok(opened !== null, 'the request is authenticated with C2S');
    handle({ ...req, uid: view.value.uniqueIdentifier, cookie, placeholders: view.value.placeholderLengths.length, keys }, reply);
  });
  const keServer = await fakeKe((session) => {
    const aead = session.offered[0] as number;
    const keys = session.keys(aead);
    const fresh = Array.from({ length: 8 }, () => randomBytes(100));
    for (const c of fresh) keysByCookie.set(c.toString('hex'), keys);
    session.socket.end(encodeMessage([nextProtocolRecord([NTPV4]), aeadRec(aead), ...fresh.map((c) => newCookieRecord(c)), serverRecord('127.0.0.1'), portRecord(udp.port)]));
  });
  /** Fresh cookies for a response, registered under the same keys. */
  const freshCookies = (request: NtsRequest) =>
    Array.from({ length: 1 + request.placeholders }, () => {
      const c = randomBytes(100);
      keysByCookie.set(c.toString('hex'), request.keys);
      return c;
    });
  return { ke: keServer, udp, freshCookies };
}

describe('NTS client against hostile servers', { concurrency: true }, () => {
  const client = (port: number, ntpTimeoutMs = 300) => new NtsClient('localhost', { port, ca: ca.caCertPem, timeoutMs: 2_000, ntpTimeoutMs });

  test('a sound exchange works: Server and Port records followed, cookies replenished (the harness itself is sound)', async () => {
    const fake = await fakeNts((req, reply) => reply(ntsResponse(serverHeader(req.header), req.uid, req.keys.s2c, fake.freshCookies(req))));
    const nts = client(fake.ke.port, 2_000);
    const sample = await nts.query();
    assert.equal(sample.authentication.kind, 'nts');
    assert.deepEqual(sample.server, { address: '127.0.0.1', port: fake.udp.port });
    assert.equal(nts.cookieCount, 8);
    assert.equal(nts.keyExchanges, 1);
  });

  test('forged answers (bad authenticator, wrong Unique Identifier, wrong origin, unauthenticated) are ignored → NTP_TIMEOUT', async () => {
    const fake = await fakeNts((req, reply) => {
      const good = () => ntsResponse(serverHeader(req.header), req.uid, req.keys.s2c, fake.freshCookies(req));
      const tampered = good();
      tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1; // last byte of the ciphertext
      reply(tampered);
      const headerChanged = good();
      headerChanged[1] = 1; // stratum, covered by the authenticator as associated data
      reply(headerChanged);
      reply(ntsResponse(serverHeader(req.header), randomBytes(32), req.keys.s2c, fake.freshCookies(req)));
      reply(ntsResponse(serverHeader(req.header, { originTimestamp: otherTimestamp(req.header.transmitTimestamp) }), req.uid, req.keys.s2c, fake.freshCookies(req)));
      reply(ntsResponse(serverHeader(req.header), req.uid, createAead(req.keys.s2c.algorithm.id, randomBytes(req.keys.s2c.algorithm.keyLength)), fake.freshCookies(req)));
      reply(encodeNtpHeader(serverHeader(req.header))); // plain, no NTS at all
      reply(encodeNtpHeader(kiss(req.header, 'RATE'))); // unauthenticated kiss: not believed under NTS
      reply(ntsNak(req.header, randomBytes(32))); // a NAK for someone else
    });
    const nts = client(fake.ke.port);
    assert.equal((await codeOf(nts.query())).code, 'NTP_TIMEOUT');
    assert.equal(nts.keyExchanges, 1, 'no re-key for a NAK that is not ours');
    assert.equal(fake.udp.requests, 1);
  });

  test('a server that sends more cookies than asked for does not grow the jar past its target', async () => {
    const fake = await fakeNts((req, reply) => reply(ntsResponse(serverHeader(req.header), req.uid, req.keys.s2c, [...fake.freshCookies(req), ...fake.freshCookies(req), ...fake.freshCookies(req)])));
    const nts = client(fake.ke.port, 2_000);
    for (let i = 0; i < 3; i++) {
      await nts.query();
      assert.equal(nts.cookieCount, 8);
    }
  });

  test('an authenticated kiss-o\'-death is reported with its code', async () => {
    const fake = await fakeNts((req, reply) => reply(ntsResponse(kiss(req.header, 'DENY'), req.uid, req.keys.s2c, [])));
    const { code, error } = await codeOf(client(fake.ke.port, 2_000).query());
    assert.equal(code, 'NTP_KISS');
    assert.equal(error.details['kiss'], 'DENY');
  });

  test('NTSN triggers exactly one new NTS-KE, then the query succeeds with the new cookies', async () => {
    let naks = 0;
    const fake = await fakeNts((req, reply) => {
      if (naks++ === 0) reply(ntsNak(req.header, req.uid));
      else reply(ntsResponse(serverHeader(req.header), req.uid, req.keys.s2c, fake.freshCookies(req)));
    });
    const nts = client(fake.ke.port, 2_000);
    const sample = await nts.query();
    assert.equal(sample.authentication.kind, 'nts');
    assert.equal(nts.keyExchanges, 2);
    assert.equal(fake.ke.sessions, 2);
    assert.equal(fake.udp.requests, 2);
  });

  test('a server that always answers NTSN: one re-key, then NTP_KISS NTSN (no loop)', async () => {
    const fake = await fakeNts((req, reply) => reply(ntsNak(req.header, req.uid)));
    const nts = client(fake.ke.port, 2_000);
    const { code, error } = await codeOf(nts.query());
    assert.equal(code, 'NTP_KISS');
    assert.equal(error.details['kiss'], 'NTSN');
    assert.equal(nts.keyExchanges, 2);
    assert.equal(fake.ke.sessions, 2);
  });

  test('silence → NTP_TIMEOUT', async () => {
    const fake = await fakeNts(() => {});
    assert.equal((await codeOf(client(fake.ke.port).query())).code, 'NTP_TIMEOUT');
  });
});
