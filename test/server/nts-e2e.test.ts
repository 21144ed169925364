// End to end against the real daemon (src/cli/ntptsd.ts in a child process): NTS-KE over TLS 1.3, then
// NTS-protected NTP over UDP with the keys from the TLS exporter, and the bad input of the issue: broken
// requests, hostile or slow clients, busy ports, a corrupt key ring, forged and tampered NTP packets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeRawRecords } from '../../src/proto/ntske/framing.js';
import { AeadAlgorithms, ErrorCodes, NextProtocols, unknownRecord } from '../../src/proto/ntske/records.js';
import { EF_HEADER_LENGTH } from '../../src/proto/ntp/extensions.js';
import { NTP_HEADER_LENGTH, decodeNtpPacket, encodeKissCode, encodeNtpHeader } from '../../src/proto/ntp/packet.js';
import { openNtsResponse } from '../../src/proto/nts/client.js';
import { cookieLength } from '../../src/proto/nts/cookie.js';
import { ntpTimestampDiffMicros, ntpTimestampToUnixMicros } from '../../src/proto/ntp/timestamp.js';
import { sendFromPortZero } from '../helpers/raw-udp.js';
import { freeTcpPort, freeUdpPort, loopbackConfig, runDaemonExpectingFailure, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import {
  UdpPeer,
  clientHeader,
  daemonCa,
  decodeReply,
  deriveKeys,
  keConnect,
  keExchange,
  keRequest,
  nextMarker,
  ntsKeys,
  ntsRequestBytes,
  readToClose,
  writeInPieces,
  type NtsKeys,
} from '../helpers/nts-client.js';

/** Timeouts of the "slow" listener, short so that the test is quick. */
const SLOW_TIMEOUT_MS = 1500;

async function distinctTcpPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freeTcpPort());
  return [...ports];
}

let daemon: RunningDaemon;
let ntpPort: number;
let kePort: number;
let slowPort: number;
let widePort: number;
let ca: string;

before(async () => {
  ntpPort = await freeUdpPort();
  [kePort, slowPort, widePort] = (await distinctTcpPorts(3)) as [number, number, number];
  // listener[0]: the NTS-KE port of loopbackConfig. listener[1]: short timeouts. listener[2]: room for 2000
  // connections from one address. Rate limiting is off: every test here sends from 127.0.0.1.
  const extra = `
[[listener]]
address = "127.0.0.1:${slowPort}"
services = ["nts-ke"]
handshake-timeout = "${SLOW_TIMEOUT_MS}ms"
idle-timeout = "${SLOW_TIMEOUT_MS}ms"

[[listener]]
address = "127.0.0.1:${widePort}"
services = ["nts-ke"]
max-connections = 2000
max-connections-per-address = 2000
handshake-timeout = "60s"

[ntp.rate-limit]
enabled = false
`;
  daemon = await startDaemon({ config: loopbackConfig(ntpPort, kePort, extra) });
  ca = daemonCa(daemon.stateDir);
});

after(async () => {
  assert.equal(await daemon.stop(), 0, 'clean exit on SIGTERM');
});

/** Sends an NTS request with `cookie` and returns the opened response (throws when it does not verify). */
async function ntsQuery(peer: UdpPeer, port: number, keys: NtsKeys, cookie: Uint8Array, placeholders = 0) {
  const request = ntsRequestBytes(keys, cookie, placeholders);
  await peer.send(request.bytes, port);
  const answer = await peer.receive();
  assert.ok(answer.length <= request.bytes.length, 'never longer than the request');
  const opened = openNtsResponse(answer, request.uid, keys.s2c);
  assert.ok(opened.ok, opened.ok ? '' : `${opened.error.code}: ${opened.error.message}`);
  assert.equal(opened.value.kind, 'ok');
  const value = opened.value as Extract<typeof opened.value, { kind: 'ok' }>;
  assert.deepEqual(value.header.originTimestamp, request.transmit);
  return value;
}

/** A plain request with a fresh marker; resolves when its own answer is the next datagram received. */
async function expectNextAnswerIsPlain(peer: UdpPeer, what: string): Promise<void> {
  const transmit = nextMarker();
  await peer.send(encodeNtpHeader(clientHeader(transmit)), ntpPort);
  const answer = await peer.receive();
  const decoded = decodeNtpPacket(answer);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value.header.originTimestamp, transmit, `${what}: an answer arrived for it`);
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('NTS-KE then NTS-protected NTP', () => {
  test('TLS 1.3 + ntske/1: the client\'s first supported AEAD, 8 cookies, the Port record, one write, then the server closes', async () => {
    const socket = await keConnect(kePort, ca);
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    assert.equal(socket.alpnProtocol, 'ntske/1');
    const replyDone = readToClose(socket);
    socket.write(keRequest([17, 15]));
    const reply = await replyDone;
    assert.equal(reply.error, null);
    assert.equal(reply.endedByServer, true, 'the server closes the connection after its response');
    assert.equal(reply.chunks, 1, 'the whole response arrives in one write');

    const message = decodeReply(reply.data);
    assert.deepEqual(message.violations, []);
    assert.equal(message.complete, true);
    assert.equal(message.records.at(-1)?.kind, 'end-of-message');
    assert.deepEqual(message.nextProtocols, [NextProtocols.decode(0)]);
    assert.deepEqual(message.aeadAlgorithms, [AeadAlgorithms.decode(17)]);
    assert.equal(message.cookies.length, 8);
    for (const cookie of message.cookies) assert.equal(cookie.length, cookieLength(17));
    assert.equal(new Set(message.cookies.map(hex)).size, 8, 'distinct cookies');
    assert.equal(message.port, ntpPort);
    assert.equal(message.server, undefined);
    assert.deepEqual(message.errors, []);

    // RFC 8915 §5.1: the same keys as the server's, from the exporter of this TLS session.
    const keys = deriveKeys(socket, 17);
    const peer = await UdpPeer.open();
    try {
      const first = await ntsQuery(peer, ntpPort, keys, message.cookies[0] as Uint8Array, 3);
      assert.equal(first.header.mode, 4);
      assert.equal(first.header.stratum, 10);
      assert.equal(first.cookies.length, 4);
      const known = new Set(message.cookies.map(hex));
      for (const cookie of first.cookies) assert.ok(!known.has(hex(cookie)), 'fresh cookies');
      // A cookie from the NTP response is as good as one from NTS-KE.
      const second = await ntsQuery(peer, ntpPort, keys, first.cookies[0] as Uint8Array);
      assert.equal(second.cookies.length, 1);
    } finally {
      peer.close();
    }
  });

  test('AEAD choice: [15] gives 15, [16, 15] gives 15 (16 is not enabled), [17] gives 17', async () => {
    for (const [offer, chosen] of [
      [[15], 15],
      [[16, 15], 15],
      [[17], 17],
    ] as const) {
      const { keys, cookies, message } = await ntsKeys(kePort, ca, offer);
      assert.deepEqual(message.aeadAlgorithms, [AeadAlgorithms.decode(chosen)]);
      const peer = await UdpPeer.open();
      try {
        await ntsQuery(peer, ntpPort, keys, cookies[0] as Uint8Array);
      } finally {
        peer.close();
      }
    }
  });

  test('cookies issued before a restart on the same state dir still work after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ntptsd-e2e-restart-'));
    const port = await freeUdpPort();
    const ke = await freeTcpPort();
    const config = loopbackConfig(port, ke);
    const peer = await UdpPeer.open();
    try {
      const first = await startDaemon({ config, dir, keepDir: true });
      let issued: Awaited<ReturnType<typeof ntsKeys>>;
      try {
        issued = await ntsKeys(ke, daemonCa(first.stateDir));
      } finally {
        assert.equal(await first.stop(), 0);
      }
      const second = await startDaemon({ config, dir, keepDir: true });
      try {
        assert.ok(second.logs().some((l) => l.msg === 'loaded the key ring'), 'the ring was loaded, not made anew');
        const answer = await ntsQuery(peer, port, issued.keys, issued.cookies[0] as Uint8Array, 1);
        assert.equal(answer.cookies.length, 2);
      } finally {
        assert.equal(await second.stop(), 0);
      }
    } finally {
      peer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('NTS-KE bad input', () => {
  const badRequest = [ErrorCodes.decode(1)];

  async function expectError(request: Uint8Array | Buffer, code: number): Promise<void> {
    const { reply } = await keExchange(kePort, ca, request);
    const message = decodeReply(reply.data);
    assert.deepEqual(message.errors, [ErrorCodes.decode(code)]);
    assert.deepEqual(
      message.records.map((r) => r.kind),
      ['error', 'end-of-message'],
    );
    assert.equal(message.cookies.length, 0);
    assert.equal(reply.endedByServer, true);
  }

  test('a truncated request, then the client closes: the server closes too, without an answer', async () => {
    const socket = await keConnect(kePort, ca);
    const replyDone = readToClose(socket);
    socket.end(keRequest([15]).subarray(0, 7));
    const reply = await replyDone;
    assert.equal(reply.data.length, 0);
    // The daemon keeps serving.
    assert.equal((await ntsKeys(kePort, ca)).cookies.length, 8);
  });

  test('garbage bytes get Error 1 (Bad Request), then the close', async () => {
    await expectError(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'), 1);
    // Records that frame correctly but break the rules: an odd-length Next Protocol body.
    await expectError(Buffer.from([0x80, 0x01, 0x00, 0x03, 0x00, 0x00, 0x07, 0x80, 0x00, 0x00, 0x00]), 1);
    // No End of Message bit set on End of Message, no AEAD record.
    await expectError(encodeRawRecords([{ type: 1, critical: true, body: Uint8Array.of(0, 0) }, { type: 0, critical: false, body: new Uint8Array(0) }]), 1);
  });

  test('an oversized record, an oversized message or too many records get Error 1', async () => {
    // A record announcing 65535 bytes: refused from its header.
    await expectError(Buffer.from([0x80, 0x05, 0xff, 0xff, 1, 2, 3, 4]), 1);
    // Many records within the per-record limit that add up to more than a message may hold (16 KiB).
    const big = unknownRecord(0x4000, false, new Uint8Array(1000));
    const records = Array.from({ length: 20 }, () => big);
    const { reply } = await keExchange(kePort, ca, keRequest([15], records));
    assert.deepEqual(decodeReply(reply.data).errors, badRequest);
    // More records than a message may hold (64), each tiny.
    const many = Array.from({ length: 70 }, () => unknownRecord(0x4000, false, new Uint8Array(0)));
    const { reply: tooMany } = await keExchange(kePort, ca, keRequest([15], many));
    assert.deepEqual(decodeReply(tooMany.data).errors, badRequest);
  });

  test('a request written one byte per TLS record still works', async () => {
    const socket = await keConnect(kePort, ca);
    const replyDone = readToClose(socket);
    await writeInPieces(socket, keRequest([15]), 1);
    const message = decodeReply((await replyDone).data);
    assert.deepEqual(message.violations, []);
    assert.equal(message.cookies.length, 8);
  });

  test('an unknown critical record gets Error 0; an unknown non-critical one is ignored', async () => {
    await expectError(keRequest([15], [unknownRecord(0x4001, true, Uint8Array.of(1, 2, 3, 4))]), 0);
    const { reply } = await keExchange(kePort, ca, keRequest([15], [unknownRecord(0x4001, false, Uint8Array.of(1, 2, 3, 4))]));
    const message = decodeReply(reply.data);
    assert.deepEqual(message.violations, []);
    assert.equal(message.cookies.length, 8);
  });

  test('no AEAD in common: an empty AEAD record and no cookies', async () => {
    const { reply } = await keExchange(kePort, ca, keRequest([16, 30]));
    const message = decodeReply(reply.data);
    assert.deepEqual(
      message.records.map((r) => r.kind),
      ['next-protocol', 'aead-algorithm', 'end-of-message'],
    );
    assert.deepEqual(message.nextProtocols, [NextProtocols.decode(0)]);
    assert.deepEqual(message.aeadAlgorithms, []);
    assert.equal(message.cookies.length, 0);
    assert.deepEqual(message.errors, []);
    assert.equal(reply.endedByServer, true);
  });

  test('a TLS 1.2 client is refused', async () => {
    await assert.rejects(keConnect(kePort, ca, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), (error: NodeJS.ErrnoException) => {
      assert.match(String(error.code), /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION/);
      return true;
    });
  });

  test('no ALPN: served as nts-ke (the listener\'s default service)', async () => {
    const { reply, socket } = await keExchange(kePort, ca, keRequest([15]), { alpn: null });
    assert.equal(socket.alpnProtocol, false);
    const message = decodeReply(reply.data);
    assert.equal(message.cookies.length, 8);
    // Keys derived the usual way work: the service does not depend on how it was chosen.
    const peer = await UdpPeer.open();
    try {
      await ntsQuery(peer, ntpPort, deriveKeys(socket, 15), message.cookies[0] as Uint8Array);
    } finally {
      peer.close();
    }
  });

  test('another ALPN protocol only: refused with no_application_protocol', async () => {
    await assert.rejects(keConnect(kePort, ca, { alpn: ['h2', 'http/1.1'] }), (error: NodeJS.ErrnoException) => {
      assert.match(String(error.code), /NO_APPLICATION_PROTOCOL/);
      return true;
    });
  });
});

describe('slow and numerous clients', () => {
  test('clients stalled mid-handshake and mid-request are dropped after the timeouts while another is served', async () => {
    // Mid-handshake: the start of a TLS record promising a 512-byte ClientHello, then nothing.
    const handshakeStaller = net.connect({ host: '127.0.0.1', port: slowPort });
    handshakeStaller.on('error', () => {});
    await once(handshakeStaller, 'connect');
    const handshakeStart = performance.now();
    const handshakeClosed = readToClose(handshakeStaller).then(() => performance.now() - handshakeStart);
    handshakeStaller.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));

    // Mid-request: TLS done, 6 bytes of the request, then nothing.
    const requestStaller = await keConnect(slowPort, ca);
    const requestStart = performance.now();
    const requestClosed = readToClose(requestStaller).then((reply) => ({ reply, elapsed: performance.now() - requestStart }));
    requestStaller.write(keRequest([15]).subarray(0, 6));

    // Meanwhile, a well-behaved client on the same listener is served at once.
    const { reply } = await keExchange(slowPort, ca, keRequest([15]));
    assert.equal(decodeReply(reply.data).cookies.length, 8);
    assert.equal(handshakeStaller.destroyed, false, 'the handshake staller is still connected while the other client is served');
    assert.equal(requestStaller.destroyed, false, 'the request staller is still connected while the other client is served');

    const handshakeElapsed = await handshakeClosed;
    const { reply: stalled, elapsed: requestElapsed } = await requestClosed;
    assert.equal(stalled.data.length, 0, 'no answer to an incomplete request');
    for (const [what, elapsed] of [
      ['handshake', handshakeElapsed],
      ['request', requestElapsed],
    ] as const) {
      assert.ok(elapsed >= SLOW_TIMEOUT_MS - 100, `${what} staller dropped after ${elapsed} ms, before the timeout`);
      assert.ok(elapsed < SLOW_TIMEOUT_MS + 5000, `${what} staller dropped only after ${elapsed} ms`);
    }
  });

  test('1,000 idle TCP connections open, and a new NTS-KE client still gets its answer promptly', async () => {
    const sockets: net.Socket[] = [];
    let closedEarly = 0;
    try {
      for (let batch = 0; batch < 10; batch++) {
        const opened = Array.from({ length: 100 }, () => {
          const socket = net.connect({ host: '127.0.0.1', port: widePort });
          socket.on('error', () => {});
          socket.once('close', () => closedEarly++);
          return socket;
        });
        sockets.push(...opened);
        await Promise.all(opened.map((s) => once(s, 'connect')));
      }
      const started = performance.now();
      const { keys, cookies } = await ntsKeys(widePort, ca);
      const elapsed = performance.now() - started;
      assert.equal(cookies.length, 8);
      assert.ok(elapsed < 2000, `NTS-KE took ${elapsed} ms with 1,000 idle connections open`);
      assert.equal(closedEarly, 0, 'the idle connections are all still open');
      const peer = await UdpPeer.open();
      try {
        await ntsQuery(peer, ntpPort, keys, cookies[0] as Uint8Array);
      } finally {
        peer.close();
      }
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});

describe('start-up failures', () => {
  function fatal(logs: Array<Record<string, unknown>>): string[] {
    return logs.filter((l) => l.level === 60).map((l) => String(l.msg));
  }

  test('EADDRINUSE on the NTP port: exit 1, naming the address and ntp.listen[0]', async () => {
    const holder = createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
    const port = holder.address().port;
    try {
      const { code, logs } = await runDaemonExpectingFailure(loopbackConfig(port, await freeTcpPort()));
      assert.equal(code, 1);
      assert.ok(
        fatal(logs).some((m) => m.includes(`127.0.0.1:${port}`) && m.includes('ntp.listen[0]') && /in use/.test(m)),
        JSON.stringify(logs),
      );
    } finally {
      holder.close();
    }
  });

  test('EADDRINUSE on the NTS-KE port: exit 1, naming the address and listener[0].address', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const { code, logs } = await runDaemonExpectingFailure(loopbackConfig(await freeUdpPort(), port));
      assert.equal(code, 1);
      assert.ok(
        fatal(logs).some((m) => m.includes(`127.0.0.1:${port}`) && m.includes('listener[0].address') && m.includes('EADDRINUSE')),
        JSON.stringify(logs),
      );
    } finally {
      holder.close();
    }
  });

  test('a corrupt keyring.json: exit 1 with a clear message, and the file is left untouched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ntptsd-e2e-keyring-'));
    try {
      const stateDir = join(dir, 'state');
      mkdirSync(stateDir, { mode: 0o700 });
      const path = join(stateDir, 'keyring.json');
      const corrupt = '{"format": "ntptsd-keyring", "version": 1, "keys": [{"id": 1, "created": 0, "key": "c2hvcnQ="}';
      writeFileSync(path, corrupt, { mode: 0o600 });
      const before = statSync(path);
      const { code, logs } = await runDaemonExpectingFailure(loopbackConfig(await freeUdpPort(), await freeTcpPort()), dir);
      assert.equal(code, 1);
      assert.ok(
        fatal(logs).some((m) => m.includes(path) && m.includes('corrupt') && m.includes('KEYRING_NOT_JSON')),
        JSON.stringify(logs),
      );
      assert.equal(readFileSync(path, 'utf8'), corrupt);
      const afterStat = statSync(path);
      assert.equal(afterStat.mtimeMs, before.mtimeMs);
      assert.equal(afterStat.ino, before.ino, 'not replaced');
      assert.deepEqual(
        readdirSync(stateDir).filter((name) => name.includes('keyring')),
        ['keyring.json'],
        'no replacement was even started (no temp file next to it)',
      );

      // Valid JSON, wrong content: the same refusal, naming the problem.
      writeFileSync(path, JSON.stringify({ format: 'ntptsd-keyring', version: 1, keys: [{ id: 1, created: 0, key: 'c2hvcnQ=' }] }));
      const second = await runDaemonExpectingFailure(loopbackConfig(await freeUdpPort(), await freeTcpPort()), dir);
      assert.equal(second.code, 1);
      assert.ok(fatal(second.logs).some((m) => m.includes('KEYRING_BAD_KEY') && m.includes('keys[0].key')), JSON.stringify(second.logs));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('NTP over UDP with bad input', () => {
  test('bad lengths, bad modes and tampered NTS packets get no answer; a forged cookie gets NTSN; the daemon keeps serving', async () => {
    const { keys, cookies } = await ntsKeys(kePort, ca);
    const peer = await UdpPeer.open();
    try {
      const header = encodeNtpHeader(clientHeader(nextMarker()));
      const withMode = (mode: number, version = 4) => {
        const out = Buffer.from(header);
        out[0] = (version << 3) | mode;
        return out;
      };
      const valid = ntsRequestBytes(keys, cookies[0] as Uint8Array, 1);
      const flipped = (at: number) => {
        const out = Uint8Array.from(valid.bytes);
        out[at]! ^= 0x01;
        return out;
      };
      const cookieFieldEnd = NTP_HEADER_LENGTH + EF_HEADER_LENGTH + 32 + EF_HEADER_LENGTH + (cookies[0] as Uint8Array).length;
      const unanswered: Array<[string, Uint8Array]> = [
        ['0 bytes', new Uint8Array(0)],
        ['1 byte', Uint8Array.of(0x23)],
        ['47 bytes', header.subarray(0, 47)],
        ['49 bytes', Buffer.concat([header, Buffer.of(0)])],
        ['51 bytes', Buffer.concat([header, Buffer.of(1, 2, 3)])],
        ['header + 27 bytes', Buffer.concat([header, Buffer.alloc(27, 0xee)])],
        ['mode 1', withMode(1)],
        ['mode 4', withMode(4)],
        ['mode 6', withMode(6)],
        ['mode 7', withMode(7)],
        ['version 0', withMode(3, 0)],
        ['version 5', withMode(3, 5)],
        ['NTS, tag byte flipped', flipped(valid.bytes.length - 1)],
        ['NTS, transmit timestamp flipped', flipped(44)],
        ['NTS, UID byte flipped', flipped(NTP_HEADER_LENGTH + 10)],
        ['NTS, placeholder byte flipped', flipped(cookieFieldEnd + 8)],
        ['NTS, no authenticator', valid.bytes.subarray(0, cookieFieldEnd)],
        ['NTS, truncated inside the authenticator', valid.bytes.subarray(0, valid.bytes.length - 8)],
        ['random bytes', new Uint8Array(randomBytes(300))],
        // Longer than a batched socket's slot (4096 bytes): dropped whole, never read truncated.
        ['5000 bytes', Buffer.concat([header, Buffer.alloc(5000 - header.length, 0)])],
      ];
      for (const [what, bytes] of unanswered) {
        await peer.send(bytes, ntpPort);
        await expectNextAnswerIsPlain(peer, what);
      }

      // A forged cookie: an NTS NAK (RFC 8915 §5.7) echoing our UID, with no authenticator.
      const forged = ntsRequestBytes(keys, new Uint8Array(randomBytes((cookies[0] as Uint8Array).length)));
      await peer.send(forged.bytes, ntpPort);
      const nak = await peer.receive();
      assert.ok(nak.length <= forged.bytes.length);
      const opened = openNtsResponse(nak, forged.uid, keys.s2c);
      assert.ok(opened.ok);
      assert.equal(opened.value.kind, 'nak');
      assert.equal(opened.value.header.stratum, 0);
      assert.equal(opened.value.header.referenceId, encodeKissCode('NTSN'));

      // The untampered request (never sent before) is still answered, with two fresh cookies.
      await peer.send(valid.bytes, ntpPort);
      const answer = openNtsResponse(await peer.receive(), valid.uid, keys.s2c);
      assert.ok(answer.ok && answer.value.kind === 'ok');
      assert.equal(answer.value.cookies.length, 2);
    } finally {
      peer.close();
    }
  });
});

/** A plain exchange: checks the answer's receive and transmit timestamps against our clock. */
async function checkTimestamps(port: number): Promise<void> {
  const peer = await UdpPeer.open();
  try {
    const transmit = nextMarker();
    const sentAt = Date.now() * 1000;
    await peer.send(encodeNtpHeader(clientHeader(transmit)), port);
    const answer = decodeNtpPacket(await peer.receive());
    const receivedAt = Date.now() * 1000;
    assert.ok(answer.ok);
    const { header } = answer.value;
    assert.deepEqual(header.originTimestamp, transmit);
    // RFC 5905 §8: receive (T2) no later than transmit (T3), both within our send and receive (Date.now is
    // milliseconds, hence the slack).
    assert.ok(ntpTimestampDiffMicros(header.transmitTimestamp, header.receiveTimestamp) >= 0, 'T2 <= T3');
    const t2 = ntpTimestampToUnixMicros(header.receiveTimestamp, sentAt) as number;
    assert.ok(t2 >= sentAt - 2000 && t2 <= receivedAt + 2000, `T2 ${t2} within [${sentAt}, ${receivedAt}]`);
  } finally {
    peer.close();
  }
}

describe('which TLS stack serves NTS-KE', () => {
  test('OpenSSL directly (the native listener) on Linux; listener.native-tls = false gives node:tls, which serves the same', async () => {
    const listening = daemon.logs().filter((l) => l.msg === 'listening');
    assert.ok(listening.length >= 3);
    for (const line of listening) assert.equal(line.tls, process.platform === 'linux' ? 'native' : 'node', JSON.stringify(line));

    const port = await freeUdpPort();
    const ke = await freeTcpPort();
    const config = loopbackConfig(port, ke).replace('default-service = "nts-ke"\n', 'default-service = "nts-ke"\nnative-tls = false\n');
    const second = await startDaemon({ config });
    try {
      assert.equal(second.logs().find((l) => l.msg === 'listening')?.tls, 'node');
      const { keys, cookies } = await ntsKeys(ke, daemonCa(second.stateDir));
      assert.equal(cookies.length, 8);
      const peer = await UdpPeer.open();
      try {
        await ntsQuery(peer, port, keys, cookies[0] as Uint8Array);
      } finally {
        peer.close();
      }
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });
});

describe('how datagrams are carried', () => {
  test('batched (recvmmsg/sendmmsg) by default on Linux, with sane receive and transmit timestamps', async () => {
    assert.equal(daemon.ready.ntpIo, process.platform === 'linux' ? 'batch' : 'dgram');
    for (let i = 0; i < 5; i++) await checkTimestamps(ntpPort);
  });

  test('a host name in ntp.listen is resolved (IPv4, as dgram does) and served batched', async () => {
    const port = await freeUdpPort();
    const config = loopbackConfig(port, await freeTcpPort()).replace(`listen = ["127.0.0.1:${port}"]`, `listen = ["localhost:${port}"]`);
    const second = await startDaemon({ config });
    try {
      assert.deepEqual(second.ready.ntp, [`127.0.0.1:${port}`]);
      assert.equal(second.ready.ntpIo, process.platform === 'linux' ? 'batch' : 'dgram');
      await checkTimestamps(port);
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });

  test('ntp.batch-io = false serves through Node\'s dgram: plain, NTS and bad input alike', async () => {
    const port = await freeUdpPort();
    const ke = await freeTcpPort();
    const config = loopbackConfig(port, ke).replace('[ntp]\n', '[ntp]\nbatch-io = false\n');
    const second = await startDaemon({ config });
    try {
      assert.equal(second.ready.ntpIo, 'dgram');
      for (let i = 0; i < 3; i++) await checkTimestamps(port);
      const { keys, cookies } = await ntsKeys(ke, daemonCa(second.stateDir));
      const peer = await UdpPeer.open();
      try {
        const answer = await ntsQuery(peer, port, keys, cookies[0] as Uint8Array, 1);
        assert.equal(answer.cookies.length, 2);
        await peer.send(Buffer.alloc(5000, 0x23), port);
        await peer.send(Uint8Array.of(0x23), port);
        const transmit = nextMarker();
        await peer.send(encodeNtpHeader(clientHeader(transmit)), port);
        const next = decodeNtpPacket(await peer.receive());
        assert.ok(next.ok);
        assert.deepEqual(next.value.header.originTimestamp, transmit, 'the bad datagrams got no answer');
      } finally {
        peer.close();
      }
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });
});

describe('NTP from source port 0', () => {
  test('a datagram from port 0 (unanswerable) is dropped and the daemon keeps running', async () => {
    // Node's dgram send() throws synchronously for port 0; unguarded, one spoofed packet stopped the daemon.
    const sent = await sendFromPortZero(ntpPort, encodeNtpHeader(clientHeader(nextMarker())));
    assert.notEqual(sent, 'unavailable', 'this test needs python3 and a raw socket (root or CAP_NET_RAW, as CI has)');
    const peer = await UdpPeer.open();
    try {
      await expectNextAnswerIsPlain(peer, 'after a datagram from port 0');
    } finally {
      peer.close();
    }
    assert.equal(daemon.process.exitCode, null, 'still running');
  });
});

describe('SIGHUP', () => {
  test('reloads the configuration without dropping an established NTS-KE connection', async () => {
    const socket = await keConnect(kePort, ca);
    const replyDone = readToClose(socket);
    const request = keRequest([15]);
    await writeInPieces(socket, request.subarray(0, 5), 5);
    const reloaded = daemon.waitForLog((l) => l.msg === 'configuration reloaded');
    daemon.signal('SIGHUP');
    await reloaded;
    socket.write(request.subarray(5));
    const reply = await replyDone;
    assert.equal(reply.error, null);
    const message = decodeReply(reply.data);
    assert.equal(message.cookies.length, 8, 'the connection opened before the reload completed its exchange');
    const peer = await UdpPeer.open();
    try {
      await ntsQuery(peer, ntpPort, deriveKeys(socket, 15), message.cookies[0] as Uint8Array);
      // And new connections are still served after the reload.
      const fresh = await ntsKeys(kePort, ca);
      await ntsQuery(peer, ntpPort, fresh.keys, fresh.cookies[0] as Uint8Array);
    } finally {
      peer.close();
    }
  });
});
