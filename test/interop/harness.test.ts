// Proves the interop harness against real chrony and NTPsec, with no ntptsd involved: if these pass, a failure in
// a later interop test is about ntptsd, not about how the peers are run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  assertNoSysTime,
  chronyNtsClientLines,
  chronyNtsServerLines,
  createNetns,
  makeTestCa,
  requirePeers,
  runInNetns,
  startChronyNtsServer,
  startChronyd,
  startNtpsec,
  startNtpsecNtsServer,
  waitFor,
  waitForChronyNtsSample,
  waitForNtpsecNtsAssociation,
} from './peers.js';

for (const via of ['openssl', 'x509'] as const) {
  test(`makeTestCa (${via}) issues a server certificate for localhost, 127.0.0.1 and ::1`, async (t) => {
    const ca = await makeTestCa({ t, via });
    const caCert = new X509Certificate(ca.caCertPem);
    const server = new X509Certificate(ca.serverCertPem);
    assert.ok(caCert.ca);
    assert.ok(!server.ca);
    assert.ok(server.checkIssued(caCert));
    assert.ok(server.verify(caCert.publicKey));
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkIP('::1'), '::1');
    assert.match(ca.serverKeyPem, /-----BEGIN PRIVATE KEY-----/);
    assert.ok(Date.parse(server.validFrom) <= Date.now());
  });
}

test('chronyd NTS server + chronyd NTS client on loopback: authenticated samples', { timeout: 40_000 }, async (t) => {
  const peers = requirePeers(t);
  if (!peers) return;
  const ca = await makeTestCa({ t, via: 'x509' }); // the openssl variant is used with NTPsec below
  const { chrony: server, ntpPort, ntsPort } = await startChronyNtsServer(t, 'nts-server', ca);
  assertNoSysTime(server.pid);
  assert.match(server.logs(), /Disabled control of system clock/);
  const serverTracking = await server.chronyc(['tracking']);
  assert.match(serverTracking, /Stratum\s+:\s+10/);

  const client = await startChronyd({ t, name: 'nts-client', confLines: chronyNtsClientLines(ca.caCert, { ntpPort, ntsPort }) });
  assertNoSysTime(client.pid);

  const data = await waitForChronyNtsSample(client, 'an NTS-authenticated sample at the chronyd client');
  assert.equal(data['Stratum'], '10');
  assert.equal(data['Leap status'], 'Normal');
  assert.equal(data['Remote port'], String(ntpPort));

  // authdata, CSV: name,mode,keyid,type,klen,last,atmp,nak,cook,clen
  const auth = (await client.chronyc(['-c', 'authdata'])).trim().split(',');
  assert.equal(auth[0], '127.0.0.1');
  assert.equal(auth[1], 'NTS');
  assert.equal(auth[3], '15', 'AEAD 15 = AES-SIV-CMAC-256');
  assert.equal(auth[7], '0', 'no NAKs');
  assert.ok(Number(auth[8]) > 0, `cookies held: ${auth.join(',')}`);

  await client.stop();
  await server.stop();
  assert.ok(!server.running && !client.running);
});

test('NTPsec ntpd as NTS server in a netns: ntpdig (plain NTP), ntpq (mode 6) and chronyd (NTS) query it', { timeout: 40_000 }, async (t) => {
  const peers = requirePeers(t);
  if (!peers) return;
  const ca = await makeTestCa({ t });
  const { netns, ntpd } = await startNtpsecNtsServer(t, ca, { netns: 'ntpsec-srv', ntpd: 'ntpsec-nts-server' });
  assertNoSysTime(ntpd.pid);
  assert.match(ntpd.logs(), /NTSs: Private Key OK/);

  // Orphan mode: with no source at all, it serves stratum 10, leap 00 once orphanwait (1 s) has passed.
  const sys = await waitFor(
    'NTPsec to enter orphan mode (stratum 10, leap 00)',
    async () => {
      const v = await ntpd.sysvars();
      return v['stratum'] === '10' && v['leap'] === '00' ? v : undefined;
    },
    { timeoutMs: 15_000 },
  );
  assert.match(sys['version'] ?? '', /ntpsec/);

  // Plain NTP (mode 3 → 4) with ntpdig, JSON output.
  const dig = await runInNetns(netns, 'ntpdig', ['-j', '-t', '2', '127.0.0.1']);
  assert.equal(dig.code, 0, `ntpdig failed: ${dig.stdout}${dig.stderr}`);
  const answer = JSON.parse(dig.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  assert.equal(answer['stratum'], 10);
  assert.equal(answer['leap'], 'no-leap');
  assert.ok(Math.abs(Number(answer['offset'])) < 0.1, `offset ${String(answer['offset'])}`);

  // NTS with a chronyd client in the same namespace (NTS-KE on NTPsec's fixed port 4460, NTP on 123).
  const client = await startChronyd({ t, netns, name: 'nts-client-of-ntpsec', confLines: chronyNtsClientLines(ca.caCert) });
  assertNoSysTime(client.pid);
  const data = await waitForChronyNtsSample(client, 'an NTS-authenticated sample from NTPsec at the chronyd client');
  assert.equal(data['Stratum'], '10');
  assert.equal(data['Remote port'], '123');
  const auth = (await client.chronyc(['-c', 'authdata'])).trim().split(',');
  assert.equal(auth[1], 'NTS');
  assert.match(ntpd.logs(), /NTSs: NTS-KE from 127\.0\.0\.1/);

  await netns.destroy(); // stops ntpd and the chronyd inside it first
  assert.ok(!ntpd.running && !client.running);
});

test('NTPsec ntpd as NTS client of a chronyd NTS server in a netns: authenticated association', { timeout: 40_000 }, async (t) => {
  const peers = requirePeers(t);
  if (!peers) return;
  const ca = await makeTestCa({ t });
  const netns = createNetns('ntpsec-cli', t);
  // Inside the namespace every port is free: fixed numbers, different from NTPsec's 123.
  const server = await startChronyd({
    t,
    netns,
    name: 'chrony-nts-server',
    confLines: chronyNtsServerLines(ca, { port: 11123, ntsport: 14460 }),
  });
  // NTPsec's client checks the certificate against the *name* on the server line: use localhost, not an IP.
  // The NTP port (11123) comes from chrony's NTS-KE Port Negotiation record.
  const ntpd = await startNtpsec({
    t,
    netns,
    name: 'ntpsec-nts-client',
    confLines: [`server localhost:14460 nts ca ${ca.caCert} iburst minpoll 0 maxpoll 2`],
  });
  const peer = await waitForNtpsecNtsAssociation(ntpd);
  assert.equal(peer['srcport'], '11123');
  assert.equal(peer['stratum'], '10');
  assert.ok(Number(peer['ntscookies']) > 0, `ntscookies=${peer['ntscookies']}`);
  assert.match(ntpd.logs(), /NTSc: Using port 11123/);
  const assoc = await ntpd.ntpq(['-c', 'associations']);
  assert.match(assoc, /^\s*1\s+\d+\s+[0-9a-f]{4}\s+yes\s+yes\s+ok\b/m, assoc); // conf, reach, auth columns
  assertNoSysTime(server.pid);
  assertNoSysTime(ntpd.pid);
});
