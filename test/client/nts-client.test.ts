// The client library (src/client) against the real daemon (src/cli/ntptsd.ts in child processes): the cookie
// jar over many queries, AEAD 15 and 17, Server/Port records, IPv6, and a restart onto a new key ring, after
// which the old cookies get NTS NAKs and the client re-keys by itself.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { NtsClient, queryNtp, queryTime } from '../../src/client/ntp.js';
import { ntsKeyExchange } from '../../src/client/ntske.js';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { openNtsResponse } from '../../src/proto/nts/client.js';
import { UdpPeer, daemonCa, ntsKeys, ntsRequestBytes } from '../helpers/nts-client.js';
import { makeTestCa } from '../interop/peers.js';

const NO_RATE_LIMIT = `
[ntp.rate-limit]
enabled = false
`;

async function distinct<T>(n: number, make: () => Promise<T>): Promise<T[]> {
  const seen = new Set<T>();
  while (seen.size < n) seen.add(await make());
  return [...seen];
}

function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp6');
    socket.once('error', () => resolve(false));
    socket.bind(0, '::1', () => socket.close(() => resolve(true)));
  });
}

const daemons: RunningDaemon[] = [];
after(async () => {
  for (const d of daemons) assert.equal(await d.stop(), 0, 'clean exit on SIGTERM');
});

async function start(config: string): Promise<RunningDaemon> {
  const daemon = await startDaemon({ config });
  daemons.push(daemon);
  return daemon;
}

describe('NtsClient and queryTime against ntptsd', { concurrency: true }, () => {
  // One daemon with the loopback defaults; one whose NTS-KE sends clients to another NTP port through the
  // Server and Port records; one on ::1 only.
  let plain: { daemon: RunningDaemon; ntp: number; ke: number; ca: string };
  let redirect: { daemon: RunningDaemon; ntp: number; other: number; ke: number; ca: string };
  let v6: { daemon: RunningDaemon; ntp: number; ke: number; ca: string } | undefined;

  before(async () => {
    const [ntpA, ntpB, ntpB2, ntpC] = (await distinct(4, freeUdpPort)) as [number, number, number, number];
    const [keA, keB, keC] = (await distinct(3, freeTcpPort)) as [number, number, number];
    const redirectConfig = `[daemon]
state-dir = "STATE_DIR"

[ntp]
listen = ["127.0.0.1:${ntpB}", "127.0.0.1:${ntpB2}"]

[nts]
ntp-server = "127.0.0.1"
ntp-port = ${ntpB2}

[[listener]]
address = "127.0.0.1:${keB}"
services = ["nts-ke"]
default-service = "nts-ke"
${NO_RATE_LIMIT}`;
    const v6Config = `[daemon]
state-dir = "STATE_DIR"

[ntp]
listen = ["[::1]:${ntpC}"]

[nts]
ntp-port = ${ntpC}

[[listener]]
address = "[::1]:${keC}"
services = ["nts-ke"]
default-service = "nts-ke"
${NO_RATE_LIMIT}`;
    const [a, b, c] = await Promise.all([
      start(loopbackConfig(ntpA, keA, NO_RATE_LIMIT)),
      start(redirectConfig),
      // Only where this machine has IPv6 loopback; the test below says so when it is missing.
      (await hasIpv6Loopback()) ? start(v6Config) : undefined,
    ]);
    plain = { daemon: a as RunningDaemon, ntp: ntpA, ke: keA, ca: daemonCa((a as RunningDaemon).stateDir) };
    redirect = { daemon: b as RunningDaemon, ntp: ntpB, other: ntpB2, ke: keB, ca: daemonCa((b as RunningDaemon).stateDir) };
    if (c !== undefined) v6 = { daemon: c, ntp: ntpC, ke: keC, ca: daemonCa(c.stateDir) };
  });

  test('the cookie jar stays at 8 over 20 queries, with one NTS-KE', async () => {
    const client = new NtsClient('localhost', { port: plain.ke, ca: plain.ca });
    for (let i = 0; i < 20; i++) {
      const sample = await client.query();
      assert.equal(sample.authentication.kind, 'nts');
      assert.equal(client.cookieCount, 8, `after query ${i + 1}`);
      assert.deepEqual(sample.server, { address: '127.0.0.1', port: plain.ntp });
      assert.ok(Math.abs(sample.offset) < 0.5, `offset ${sample.offset} s against a daemon on this machine`);
      assert.ok(sample.delay >= 0 && sample.delay < 1);
    }
    assert.equal(client.keyExchanges, 1);
  });

  test('AEAD 15 and 17, each when it is the only one offered', async () => {
    for (const aead of [15, 17]) {
      const ke = await ntsKeyExchange('localhost', { port: plain.ke, ca: plain.ca, aeadAlgorithms: [aead] });
      assert.equal(ke.aead.id, aead);
      assert.equal(ke.c2s.length, aead === 15 ? 32 : 64);
      assert.equal(ke.tlsVersion, 'TLSv1.3');
      assert.equal(ke.alpn, 'ntske/1');
      assert.equal(ke.cookies.length, 8);
      const client = new NtsClient('localhost', { port: plain.ke, ca: plain.ca, aeadAlgorithms: [aead] });
      const sample = await client.query();
      assert.deepEqual(sample.authentication, { kind: 'nts', aead, aeadName: aead === 15 ? 'AES-SIV-CMAC-256' : 'AES-SIV-CMAC-512' });
    }
  });

  test('queryTime: plain and NTS, several samples, the best delay returned', async () => {
    const plainResult = await queryTime('127.0.0.1', { port: plain.ntp, samples: 2, intervalMs: 10 });
    assert.equal(plainResult.samples.length, 2);
    assert.equal(plainResult.delay, Math.min(...plainResult.samples.map((s) => s.delay)));
    assert.equal(plainResult.authentication.kind, 'none');
    assert.equal(plainResult.ke, undefined);

    const nts = await queryTime('localhost', { nts: true, port: plain.ke, ca: plain.ca, samples: 3, intervalMs: 10 });
    assert.equal(nts.samples.length, 3);
    assert.ok(nts.samples.every((s) => s.authentication.kind === 'nts'));
    assert.equal(nts.ke?.kePort, plain.ke);
    assert.equal(nts.stratum, 10);
    assert.equal(nts.leap, 'none');
  });

  test('the Server and Port records are followed', async () => {
    const client = new NtsClient('localhost', { port: redirect.ke, ca: redirect.ca });
    const sample = await client.query();
    const ke = client.keyExchange;
    assert.equal(ke?.serverRecord, '127.0.0.1');
    assert.equal(ke?.portRecord, redirect.other);
    assert.equal(ke?.ntpHost, '127.0.0.1');
    assert.deepEqual(sample.server, { address: '127.0.0.1', port: redirect.other }, 'asked the NTP port the records named, not the first one');
    assert.notEqual(redirect.other, redirect.ntp);
  });

  test('IPv6: NTS-KE and NTP on ::1', async (t) => {
    if (v6 === undefined) {
      t.diagnostic('no IPv6 loopback here: the daemon could not listen on [::1]');
      return;
    }
    const client = new NtsClient('::1', { port: v6.ke, ca: v6.ca });
    const sample = await client.query();
    assert.equal(client.keyExchange?.ntpHost, '::1');
    assert.deepEqual(sample.server, { address: '::1', port: v6.ntp });
    assert.equal(sample.authentication.kind, 'nts');
    const plainSample = await queryNtp('::1', { port: v6.ntp });
    assert.equal(plainSample.authentication.kind, 'none');
  });
});

describe('a daemon restart with a new key ring', () => {
  test('the old cookies get NTS NAKs and the client re-keys transparently', async () => {
    // The same certificate on both runs (so the client's CA still fits), a new state dir (so a new key ring).
    const ca = await makeTestCa();
    const ntp = await freeUdpPort();
    const ke = await freeTcpPort();
    const config = `${loopbackConfig(ntp, ke, NO_RATE_LIMIT)}
[tls]
certificate = "${ca.serverChain}"
private-key = "${ca.serverKey}"
`;
    const first = await startDaemon({ config });
    const client = new NtsClient('localhost', { port: ke, ca: ca.caCertPem });
    let old: Awaited<ReturnType<typeof ntsKeys>>;
    try {
      await client.query();
      await client.query();
      old = await ntsKeys(ke, ca.caCertPem); // keys and cookies of the old key ring, to look at the NAK below
    } finally {
      assert.equal(await first.stop(), 0);
    }
    assert.equal(client.keyExchanges, 1);
    assert.equal(client.cookieCount, 8, 'a full jar: only an NTS NAK can make the client re-key');

    await start(config);
    // What the client meets: an old cookie now gets an NTS NAK echoing the request's identifier.
    const peer = await UdpPeer.open();
    try {
      const request = ntsRequestBytes(old.keys, old.cookies[0] as Uint8Array);
      await peer.send(request.bytes, ntp);
      const opened = openNtsResponse(await peer.receive(), request.uid, old.keys.s2c);
      assert.ok(opened.ok && opened.value.kind === 'nak', 'NTSN for a cookie of the old key ring');
    } finally {
      peer.close();
    }

    const sample = await client.query();
    assert.equal(sample.authentication.kind, 'nts');
    assert.equal(client.keyExchanges, 2, 'exactly one new NTS-KE');
    assert.equal(client.cookieCount, 8);
    await client.query();
    assert.equal(client.keyExchanges, 2);
  });
});
