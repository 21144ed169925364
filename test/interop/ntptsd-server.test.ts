// Real NTS clients (chrony 4.3, NTPsec 1.2.2) against ntptsd's NTS-KE and NTS/NTP server.
//
// chronyd runs on the host loopback (unprivileged ports, -x, no CAP_SYS_TIME) against an ntptsd started with
// test/helpers/daemon.ts; NTPsec, whose NTP port is fixed, runs in a private network namespace together with an
// ntptsd started there by the harness. Every peer is started by test/interop/peers.ts, which enforces the
// safety rules (no CAP_SYS_TIME, chronyd -x, loopback only) and cleans up.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon as startNtptsd, type RunningDaemon } from '../helpers/daemon.js';
import {
  ntptsdConfigHead,
  REPO_ROOT,
  TSX_LOADER,
  assertNoSysTime,
  chronyNtsClientLines,
  createNetns,
  freePort,
  makeTempDir,
  makeTestCa,
  parseColonFields,
  requirePeers,
  runInNetns,
  startChronyd,
  startDaemon as startInNetns,
  startNtpsec,
  waitFor,
  waitForChronyNtsSample,
  waitForNtpsecNtsAssociation,
  type Chronyd,
  type Netns,
  type PeerProcess,
  type TestCa,
} from './peers.js';

interface NtptsdConfigOptions {
  ca: TestCa;
  ntpListen: readonly string[];
  keListen: readonly string[];
  ntpPort: number;
  aead?: readonly string[];
  keyRotation?: string;
}

/** An ntptsd config serving NTS-KE with the test CA's server certificate and NTS on `ntpListen`. */
function ntptsdConfig(o: NtptsdConfigOptions): string {
  return [
    ...ntptsdConfigHead(o),
    ...o.keListen.flatMap((address) => ['[[listener]]', `address = ${JSON.stringify(address)}`, 'services = ["nts-ke"]', '']),
  ].join('\n');
}

/** chrony's `authdata -c` line: name,mode,keyid,type,klen,last,atmp,nak,cook,clen. */
interface AuthData {
  mode: string;
  /** With NTS: how many NTS-KE exchanges succeeded with this source (0, 1, 2, …). */
  keyId: number;
  aead: number;
  keyLength: number;
  /** Seconds since the last successful NTS-KE. */
  lastKe: number;
  /** NTS-KE attempts since the last success. */
  keAttempts: number;
  /** 1 when an NTS NAK came since the last authenticated response. */
  naks: number;
  cookies: number;
  cookieLength: number;
  raw: string;
}

async function authdata(chrony: Chronyd): Promise<AuthData> {
  const raw = (await chrony.chronyc(['-c', 'authdata'])).trim();
  const f = raw.split('\n')[0]?.split(',') ?? [];
  return {
    mode: f[1] ?? '',
    keyId: Number(f[2]),
    aead: Number(f[3]),
    keyLength: Number(f[4]),
    lastKe: Number(f[5]),
    keAttempts: Number(f[6]),
    naks: Number(f[7]),
    cookies: Number(f[8]),
    cookieLength: Number(f[9]),
    raw,
  };
}

/** What both sides said, for failure messages. */
async function diagnostics(chrony: Chronyd, daemon?: { logs(): Array<Record<string, unknown>> } | { logs(): string }): Promise<string> {
  const safe = async (f: () => Promise<string>): Promise<string> => f().catch((e: unknown) => String(e));
  const logs = daemon?.logs();
  return [
    `--- chronyc authdata ---\n${await safe(() => chrony.chronyc(['authdata']))}`,
    `--- chronyc ntpdata ---\n${await safe(() => chrony.chronyc(['ntpdata']))}`,
    `--- chronyd output ---\n${chrony.logs()}`,
    `--- ntptsd output ---\n${typeof logs === 'string' ? logs : (logs ?? []).map((l) => JSON.stringify(l)).join('\n')}`,
  ].join('\n');
}

async function authenticatedSample(
  chrony: Chronyd,
  daemon: RunningDaemon | undefined,
  minGood = 1,
  timeoutMs = 20_000,
): Promise<Record<string, string>> {
  try {
    return await waitForChronyNtsSample(chrony, `an NTS-authenticated sample from ntptsd at chronyd (${minGood} good)`, { minGood, timeoutMs, intervalMs: 150 });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await diagnostics(chrony, daemon)}`, { cause: err });
  }
}

interface HostSetup {
  ca: TestCa;
  ntpPort: number;
  kePort: number;
  /** The config of an ntptsd serving NTS on 127.0.0.1 with those ports, plus `extra` options. */
  configWith(extra?: Pick<NtptsdConfigOptions, 'aead' | 'keyRotation'>): string;
}

/** For an ntptsd on the host loopback: the peers, a test CA and free ports. */
async function hostSetup(t: TestContext): Promise<HostSetup> {
  requirePeers(t);
  const ca = await makeTestCa({ t, via: 'x509' });
  const ntpPort = await freePort('udp');
  const kePort = await freePort('tcp');
  return {
    ca,
    ntpPort,
    kePort,
    configWith: (extra = {}) => ntptsdConfig({ ca, ntpListen: [`127.0.0.1:${ntpPort}`], keListen: [`127.0.0.1:${kePort}`], ntpPort, ...extra }),
  };
}

async function startHostNtptsd(t: TestContext, config: string, dir?: string): Promise<RunningDaemon> {
  const daemon = await startNtptsd({ config, ...(dir !== undefined ? { dir, keepDir: true } : {}) });
  t.after(() => daemon.stop());
  return daemon;
}

const NTPTSD_CLI = join(REPO_ROOT, 'src', 'cli', 'ntptsd.ts');

/**
 * True once a TCP socket listens on `port` for both 127.0.0.1 and ::1 inside the namespace (ntptsd binds its
 * listeners last, right before its ready line). Read from the namespace's own /proc/net: no extra tools needed.
 */
async function listeningInNetns(netns: string, port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const listening = (table: string): boolean =>
    table.split('\n').some((line) => {
      const f = line.trim().split(/\s+/);
      return f[1]?.endsWith(`:${hexPort}`) === true && f[3] === '0A';
    });
  const [v4, v6] = await Promise.all([runInNetns(netns, 'cat', ['/proc/net/tcp']), runInNetns(netns, 'cat', ['/proc/net/tcp6'])]);
  return listening(v4.stdout) && listening(v6.stdout);
}

/** Starts ntptsd inside `netns` the way the harness starts peers (no CAP_SYS_TIME, own process group). */
async function startNtptsdInNetns(t: TestContext, netns: Netns, config: string, kePort: number): Promise<PeerProcess> {
  const dir = makeTempDir('ntptsd-in-netns', t);
  const configPath = join(dir, 'ntptsd.toml');
  writeFileSync(configPath, config.replaceAll('STATE_DIR', join(dir, 'state')));
  const ntptsd = await startInNetns({
    t,
    netns,
    name: 'ntptsd',
    argv: [process.execPath, '--import', TSX_LOADER, NTPTSD_CLI, '-c', configPath, '--log-format', 'json'],
    ready: () => listeningInNetns(netns.name, kePort),
  });
  await waitFor('the ready line of ntptsd in the namespace', () => /"msg":"ready"/.test(ntptsd.logs()), { timeoutMs: 5_000 });
  assertNoSysTime(ntptsd.pid);
  return ntptsd;
}

// chrony 4.3 offers AES-SIV-CMAC-256 only (its NTS-KE request, captured: 8001 0002 0000 | 8004 0002 000f |
// 8000 0000), so whatever ntptsd prefers, an agreement with chrony is AEAD 15.
for (const aead of [['AES-SIV-CMAC-256'], ['AES-SIV-CMAC-512', 'AES-SIV-CMAC-256']] as const) {
  test(`chronyd NTS client of ntptsd on loopback (ntptsd aead = ${JSON.stringify(aead)}): authenticated samples, AEAD 15`, { timeout: 30_000 }, async (t) => {
    const { ca, ntpPort, kePort, configWith } = await hostSetup(t);
    const daemon = await startHostNtptsd(t, configWith({ aead }));
    const chrony = await startChronyd({ t, name: 'nts-client', confLines: chronyNtsClientLines(ca.caCert, { ntpPort, ntsPort: kePort }) });
    assertNoSysTime(chrony.pid);

    const data = await authenticatedSample(chrony, daemon, 2);
    assert.equal(data['Stratum'], '10');
    assert.equal(data['Remote port'], String(ntpPort));
    assert.equal(data['Leap status'], 'Normal');
    assert.equal(data['Mode'], 'Server');
    assert.match(data['Reference ID'] ?? '', /^4C4F434C\b/, 'refid LOCL');

    const auth = await authdata(chrony);
    assert.equal(auth.mode, 'NTS', auth.raw);
    assert.equal(auth.aead, 15, `AEAD chosen by ntptsd: ${auth.raw}`);
    assert.equal(auth.naks, 0, auth.raw);
    assert.ok(auth.cookies > 0, auth.raw);

    // chrony selects ntptsd (stratum 10) and so would serve stratum 11 itself.
    const tracking = await waitFor(
      'chronyd to select ntptsd as its reference (stratum 11)',
      async () => {
        const tr = parseColonFields(await chrony.chronyc(['tracking']));
        return tr['Stratum'] === '11' ? tr : undefined;
      },
      { timeoutMs: 15_000 },
    );
    assert.match(tracking['Reference ID'] ?? '', /^7F000001\b/, JSON.stringify(tracking));

    // ntptsd keeps no per-exchange log or reachable counters: check it logged no NTS-KE or TLS problem.
    const problems = daemon.logs().filter((l) => typeof l.msg === 'string' && /NTS-KE|TLS handshake failed|internal error/i.test(l.msg));
    assert.deepEqual(problems, []);
  });
}

test('chronyd against an ntptsd offering AES-SIV-CMAC-512 only: no common AEAD, no cookies, never authenticated', { timeout: 30_000 }, async (t) => {
  const { ca, ntpPort, kePort, configWith } = await hostSetup(t);
  const daemon = await startHostNtptsd(t, configWith({ aead: ['AES-SIV-CMAC-512'] }));
  const chrony = await startChronyd({ t, name: 'nts-client-no-aead', confLines: chronyNtsClientLines(ca.caCert, { ntpPort, ntsPort: kePort }) });
  // ntptsd answers Next Protocol [0] + an empty AEAD record (RFC 8915 §4.1.5), which chrony rejects.
  await waitFor('chronyd to reject the NTS-KE answer', () => /Received invalid NTS-KE response from 127\.0\.0\.1/.test(chrony.logs()), { timeoutMs: 8_000 });
  const auth = await authdata(chrony);
  assert.equal(auth.cookies, 0, auth.raw);
  const data = await chrony.ntpdata('127.0.0.1');
  assert.notEqual(data['Authenticated'], 'Yes');
  assert.equal(data['Total RX'], '0', 'no NTP exchange without cookies');
  assert.deepEqual(
    daemon.logs().filter((l) => l.level === 50),
    [],
    'no errors logged by ntptsd',
  );
});

test('chronyd keeps its NTS session across ntptsd key rotations and a restart on the same state dir', { timeout: 45_000 }, async (t) => {
  const { ca, ntpPort, kePort, configWith } = await hostSetup(t);
  const dir = makeTempDir('ntptsd-state', t);
  // A new master key every 2 s, 7 kept: cookies stay valid for ~14 s.
  const config = configWith({ keyRotation: '2s' });
  const first = await startHostNtptsd(t, config, dir);
  // One request a second: chrony's 8 cookies outlast the restart (each request uses one up, answered or not;
  // at 4 requests a second a restart slower than 2 s would force a new NTS-KE).
  const chrony = await startChronyd({
    t,
    name: 'nts-client-restart',
    confLines: chronyNtsClientLines(ca.caCert, { ntpPort, ntsPort: kePort, poll: 0 }),
  });
  await authenticatedSample(chrony, first);
  const keDone = Date.now();
  const before = await authdata(chrony);
  assert.equal(before.aead, 15, before.raw);
  assert.equal(before.keyId, 1, `one NTS-KE so far: ${before.raw}`);

  // Samples across a rotation: chrony now holds cookies sealed under the old and the new master key.
  await first.waitForLog((l) => l.msg === 'rotated the key ring', 5_000);
  const atRotation = Number((await chrony.ntpdata('127.0.0.1'))['Total good RX']);
  await authenticatedSample(chrony, first, atRotation + 2, 8_000);

  assert.equal(await first.stop(), 0);
  const stoppedAt = Date.now();
  const rxAtStop = Number((await chrony.ntpdata('127.0.0.1'))['Total good RX']);
  const second = await startHostNtptsd(t, config, dir);
  const restartMs = Date.now() - stoppedAt;
  const loaded = await second.waitForLog((l) => l.msg === 'loaded the key ring', 1_000);
  assert.ok(Number(loaded['keys']) >= 2, `the key ring kept its older keys: ${JSON.stringify(loaded)}`);

  // The cookies chrony got from the first process open in the second: authenticated samples, no NAK, and
  // the cookies used up while ntptsd was down are replaced (chrony asks for them with placeholders).
  await authenticatedSample(chrony, second, rxAtStop + 3, 10_000);
  const after = await waitFor('chrony to hold 8 cookies again', async () => {
    const a = await authdata(chrony);
    return a.cookies === 8 ? a : undefined;
  });
  assert.equal(after.naks, 0, `no NTS NAK after the restart: ${after.raw}`);
  // No new NTS-KE: chrony's KeyID (its NTS-KE count) is still 1, and its "Last" (seconds since the last
  // successful NTS-KE) kept counting from the first one. (Deleting keyring.json before the restart makes
  // ntptsd NAK the old cookies and chrony redo NTS-KE at once: KeyID 2, Last ~2 s.)
  assert.equal(after.keyId, 1, `NTS-KE not repeated: before ${before.raw}, after ${after.raw}`);
  const elapsed = Math.floor((Date.now() - keDone) / 1000);
  assert.ok(after.lastKe >= elapsed - 1, `NTS-KE not repeated: before ${before.raw}, after ${after.raw}, ${elapsed} s since the first`);
  assert.equal(after.keAttempts, 0, after.raw);
  t.diagnostic(`ntptsd restart took ${restartMs} ms; chrony authdata before ${before.raw}, after ${after.raw}`);
});

for (const { aead, ntpsecAead, id } of [
  { aead: undefined, ntpsecAead: undefined, id: 15 },
  { aead: ['AES-SIV-CMAC-512'], ntpsecAead: 'AES_SIV_CMAC_512', id: 17 },
] as const) {
  test(`NTPsec ntpd as NTS client of ntptsd in a netns: authenticated, reachable association (AEAD ${id})`, { timeout: 40_000 }, async (t) => {
    const peers = requirePeers(t);
    if (!peers) return;
    const ca = await makeTestCa({ t });
    const netns = createNetns(`ntptsd-ntpsec-${id}`, t);
    // Inside the namespace every port is free: fixed numbers, away from NTPsec's own 123. NTPsec resolves
    // "localhost" (it checks the certificate against that name), so serve both 127.0.0.1 and ::1.
    const ntpPort = 11123;
    const kePort = 14460;
    const ntptsd = await startNtptsdInNetns(
      t,
      netns,
      ntptsdConfig({ ca, ntpListen: [`127.0.0.1:${ntpPort}`, `[::1]:${ntpPort}`], keListen: [`127.0.0.1:${kePort}`, `[::1]:${kePort}`], ntpPort, ...(aead ? { aead } : {}) }),
      kePort,
    );
    const ntpd = await startNtpsec({
      t,
      netns,
      name: 'ntpsec-client-of-ntptsd',
      confLines: [`server localhost:${kePort} nts ca ${ca.caCert} iburst minpoll 0 maxpoll 2${ntpsecAead ? ` aead ${ntpsecAead}` : ''}`],
    });
    assertNoSysTime(ntpd.pid);
    const peer = await waitForNtpsecNtsAssociation(ntpd).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n--- NTPsec output ---\n${ntpd.logs()}\n--- ntptsd output ---\n${ntptsd.logs()}`, { cause: err });
    });
    assert.equal(peer['srcport'], String(ntpPort), 'NTP port from ntptsd\'s Port Negotiation record');
    assert.equal(peer['stratum'], '10');
    assert.equal(peer['refid'], '76.79.67.76', 'LOCL');
    assert.ok(Number(peer['ntscookies']) > 0, `ntscookies=${peer['ntscookies']}`);
    assert.match(ntpd.logs(), /NTSc: Using port 11123/);
    assert.match(ntpd.logs(), new RegExp(`NTSc: Got 8 cookies, length \\d+, aead=${id}\\.`));
    const assoc = await ntpd.ntpq(['-c', 'associations']);
    assert.match(assoc, /^\s*1\s+\d+\s+[0-9a-f]{4}\s+yes\s+yes\s+ok\b/m, assoc); // conf, reach, auth columns
  });
}

test('chronyd with a different CA never gets an NTS-authenticated sample from ntptsd', { timeout: 30_000 }, async (t) => {
  const { ntpPort, kePort, configWith } = await hostSetup(t);
  const otherCa = await makeTestCa({ t, via: 'x509' });
  const daemon = await startHostNtptsd(t, configWith());
  const chrony = await startChronyd({ t, name: 'nts-client-wrong-ca', confLines: chronyNtsClientLines(otherCa.caCert, { ntpPort, ntsPort: kePort }) });

  const deadline = Date.now() + 6_000;
  while (Date.now() < deadline) {
    const d = await chrony.ntpdata('127.0.0.1');
    if (d['Authenticated'] === 'Yes' || d['Total good RX'] !== '0') {
      assert.fail(`a sample despite a CA chrony does not trust:\n${await diagnostics(chrony, daemon)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const auth = await authdata(chrony);
  assert.equal(auth.cookies, 0, auth.raw);
  assert.ok(auth.keAttempts >= 1, `chrony tried NTS-KE: ${auth.raw}`);
  assert.match(chrony.logs(), /TLS handshake with 127\.0\.0\.1:\d+ .*failed.*certificate/i, chrony.logs());
  // ntptsd sees the handshake fail (the client aborts with an alert) and logs it at debug level.
  await daemon.waitForLog((l) => l.msg === 'TLS handshake failed', 1_000);
});
