// Real MAC-authentication clients (chrony 4.3, NTPsec 1.2.2) with ephemeral keys (docs/eks.md) that
// `ntptsc ekey` fetched from ntptsd's EKS service, the way an operator sets them up: chrony with a keyfile and
// `server … key ID`, NTPsec's `ntpdig -k FILE -a ID` and `ntpd -q` with `keys`/`trustedkey`/`server … key ID`.
// Then the key is revoked (`ntptsc eks revoke`) or expires, and the clients must get crypto-NAKs and stop
// accepting the server.
//
// chronyd runs on the host loopback (unprivileged ports, -x, no CAP_SYS_TIME) against an ntptsd started with
// test/helpers/daemon.ts. NTPsec only speaks to port 123 and `ntpd -q` binds 0.0.0.0:123, so it cannot share a
// namespace with an ntptsd serving port 123: ntptsd runs in a private namespace of its own, linked by veth pairs
// to two client namespaces (one per `ntpd -q`); ntpdig and `ntptsc ekey` run next to ntptsd (127.0.0.1, which
// the test certificate names). Every peer is started by test/interop/peers.ts (no CAP_SYS_TIME, cleanup).
//
// Measured with chrony 4.3 (what the assertions rest on): a crypto-NAK (48-octet header + key id 0) counts in
// `ntpdata` "Total RX" but never in "Total valid RX", and "Authenticated"/"NTP tests" keep describing the last
// valid sample; the source's reach register empties after eight such polls and it is no longer selected ('?'
// instead of '*'), while chrony keeps polling it (at times less often: poll 0 instead of -2).
// Measured with NTPsec 1.2.2: ntpdig exits 1 on a crypto-NAK, by a Python traceback (read_append sets
// `packet.trusted` on the request's bytes: AttributeError), not with a message; `ntpd -q` with a key the server
// refuses never sets the clock and never exits; with a good key it slews after ~7 s (the slew itself fails
// with EPERM: no CAP_SYS_TIME) and exits 0. Under `disable ntp` ntpd -q does not use the sample at all ("SYNC:
// no servers found" after 11 s), so its run here says `enable ntp`, which is safe without CAP_SYS_TIME.
// Renewal (`ntptsc ekey --renew --on-renew 'chronyc … rekey'`): without a rotation a renewal gives the same key
// (a key is a function of the generation and the id); after `rotate-keys` the next renewal gives the same id a new
// key. chrony 4.3 switches at `chronyc rekey` with no lost sample. The old key keeps verifying while its generation
// is in the ring (docs/eks.md §4), so "still authenticated after the change" alone does not show that chrony
// reloaded: the test rotates once more (keys-kept = 1) to drop that generation; a chronyd that did not reload
// then gets only crypto-NAKs (checked by replacing the command with `true`: the test fails at that step).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon as startNtptsd, type RunningDaemon } from '../helpers/daemon.js';
import { linkNetns } from './mode6-helpers.js';
import {
  ntptsdConfigHead,
  REPO_ROOT,
  TSX_LOADER,
  assertNoSysTime,
  createNetns,
  freePort,
  makeTempDir,
  makeTestCa,
  requirePeers,
  runCommand,
  runInNetns,
  startChronyd,
  startDaemon as startInNetns,
  waitFor,
  type Chronyd,
  type Netns,
  type PeerProcess,
  type RunResult,
  type TestCa,
} from './peers.js';

const NTPTSC_CLI = join(REPO_ROOT, 'src', 'cli', 'ntptsc.ts');
const NTPTSD_CLI = join(REPO_ROOT, 'src', 'cli', 'ntptsd.ts');

// ---------------------------------------------------------------------------------------------------------------
// ntptsd and ntptsc

interface EksDaemonConfig {
  ca: TestCa;
  ntpListen: readonly string[];
  /** The TLS listener serving ["nts-ke", "eks"]. */
  tlsListen: string;
  /** The NTP port clients are told (NTS Port Negotiation, EKS NTP Port record). */
  ntpPort: number;
  /** The mgmt Unix socket (relative: in the state dir). */
  socket: string;
  keyRotation?: string;
  keysKept?: number;
  keyLifetime?: string;
  /** eks.issue-burst: renewals count against it (default 5, then one a minute). */
  issueBurst?: number;
}

/** ntptsd with the test CA's certificate on a TLS listener serving NTS-KE and EKS, and a mgmt Unix socket. */
function eksConfig(o: EksDaemonConfig): string {
  return [
    ...ntptsdConfigHead(o),
    '[eks]',
    `ntp-port = ${o.ntpPort}`,
    ...(o.keyLifetime !== undefined ? [`key-lifetime = ${JSON.stringify(o.keyLifetime)}`] : []),
    ...(o.issueBurst !== undefined ? [`issue-burst = ${o.issueBurst}`] : []),
    '',
    '[[listener]]',
    `address = ${JSON.stringify(o.tlsListen)}`,
    'services = ["nts-ke", "eks"]',
    '',
    '[[listener]]',
    `path = ${JSON.stringify(o.socket)}`,
    'services = ["mgmt"]',
    '',
  ].join('\n');
}

/** `node --import tsx src/cli/ntptsc.ts ARGS…`, on the host or inside `netns` (without CAP_SYS_TIME). */
function ntptsc(args: readonly string[], netns?: Netns): Promise<RunResult> {
  const argv = ['--import', TSX_LOADER, NTPTSC_CLI, ...args];
  return netns === undefined ? runCommand(process.execPath, argv, { timeoutMs: 20_000 }) : runInNetns(netns, process.execPath, argv, { timeoutMs: 20_000 });
}

async function ntptscOk(args: readonly string[], netns?: Netns): Promise<string> {
  const r = await ntptsc(args, netns);
  assert.equal(r.code, 0, `ntptsc ${args.join(' ')}: exit ${r.code ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** ntptsd's NTP counters (`ntptsc stats --json` over the mgmt socket): mac.verified_ephemeral, mac.revoked, … */
async function ntpCounters(socket: string): Promise<Record<string, number>> {
  const stats = JSON.parse(await ntptscOk(['stats', '--json', '--socket', socket])) as { ntp?: Record<string, number> };
  assert.ok(stats.ntp !== undefined, 'ntptsc stats --json has an "ntp" object');
  return stats.ntp;
}

function counterDelta(before: Record<string, number>, after: Record<string, number>, name: string): number {
  return (after[name] ?? 0) - (before[name] ?? 0);
}

/** The key `ntptsc eks list --json` shows for `keyId` (expiry, generation, address). */
async function listedKey(socket: string, keyId: number): Promise<{ keyId: number; expiresAt: string; generation: number; address: string }> {
  const list = JSON.parse(await ntptscOk(['eks', 'list', '--json', '--socket', socket])) as { keys: Array<{ keyId: number; expiresAt: string; generation: number; address: string }> };
  const entry = list.keys.find((k) => k.keyId === keyId);
  assert.ok(entry !== undefined, `eks list shows key ${keyId}: ${JSON.stringify(list)}`);
  return entry;
}

/** `ID AES128 HEX:…` (chrony keyfile) or `ID AES128CMAC …` (ntp.keys) in what `ntptsc ekey --out` wrote. */
function keyLine(text: string, format: 'chrony' | 'ntp'): { keyId: number; hex: string; line: string } {
  const re = format === 'chrony' ? /^\s*(\d+)\s+AES128\s+HEX:([0-9A-Fa-f]{32})\s*$/m : /^\s*(\d+)\s+AES128CMAC\s+([0-9A-Fa-f]{32})\s*$/m;
  const m = re.exec(text);
  assert.ok(m?.[1] !== undefined && m[2] !== undefined, `no ${format} key line in:\n${text}`);
  const keyId = Number(m[1]);
  assert.ok(keyId >= 32768 && keyId <= 65535, `an ephemeral key id (32768..65535): ${keyId}`);
  return { keyId, hex: m[2], line: m[0].trim() };
}

/** The same hex key with its last bit flipped. */
function flipLastBit(hex: string): string {
  return hex.slice(0, -1) + (parseInt(hex.slice(-1), 16) ^ 1).toString(16);
}

/** `ntptsc ekey HOST:PORT --ca CA --format F --out FILE`; returns the file's text and its key line. */
async function fetchKeyFile(o: { host: string; ca: TestCa; format: 'chrony' | 'ntp'; out: string; netns?: Netns }): Promise<{ text: string; keyId: number; hex: string; line: string }> {
  await ntptscOk(['ekey', o.host, '--ca', o.ca.caCert, '--format', o.format, '--out', o.out], o.netns);
  const text = readFileSync(o.out, 'utf8');
  return { text, ...keyLine(text, o.format) };
}

/** The key line inside this server's managed block (`# BEGIN ntptsc ekey SOURCE` … `# END ntptsc ekey SOURCE`). */
function managedKeyLine(text: string, source: string, format: 'chrony' | 'ntp'): { keyId: number; hex: string; line: string } {
  const lines = text.split('\n').map((l) => l.trim());
  const begin = lines.indexOf(`# BEGIN ntptsc ekey ${source}`);
  const end = lines.indexOf(`# END ntptsc ekey ${source}`);
  assert.ok(begin >= 0 && end > begin, `no managed block for ${source} in:\n${text}`);
  return keyLine(lines.slice(begin + 1, end).join('\n'), format);
}

/** One word for /bin/sh. */
function shQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** One line of `ntptsc ekey --renew --json`: a write of --out. */
interface EkeyWriteLine {
  keyId: number;
  key: string;
  renewed: boolean;
  previousKeyId: number | null;
  expiresAt: string;
}

/**
 * What a running `ntptsc ekey --renew --json --on-renew CMD` reported so far: its writes (stdout, one JSON line
 * each, complete lines only), how many --on-renew runs exited 0 (a run follows its write before the next fetch),
 * and its `ntptsc: …` lines (warnings, failed fetches, failed commands).
 */
function renewProgress(proc: PeerProcess): { writes: EkeyWriteLine[]; hooksOk: number; problems: string[] } {
  const lines = proc.logs().split('\n').slice(0, -1);
  return {
    writes: lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as EkeyWriteLine),
    hooksOk: lines.filter((l) => l === '--on-renew command exited with status 0').length,
    problems: lines.filter((l) => l.startsWith('ntptsc: ')),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// chrony

interface ChronyState {
  /** `ntpdata`: "Total RX", "Total valid RX", "Authenticated", … */
  data: Record<string, string>;
  rx: number;
  validRx: number;
  /** `sources -c`: state (* + - ? x ~), poll (log2 s) and reach (the 8-bit register, from chrony's octal). */
  state: string;
  poll: number;
  reach: number;
}

async function chronyState(chrony: Chronyd): Promise<ChronyState> {
  const data = await chrony.ntpdata('127.0.0.1');
  const row = (await chrony.chronyc(['-c', 'sources'])).trim().split('\n')[0]?.split(',') ?? [];
  return {
    data,
    rx: Number(data['Total RX']),
    validRx: Number(data['Total valid RX']),
    state: row[1] ?? '',
    poll: Number(row[4]),
    reach: parseInt(row[5] ?? '', 8),
  };
}

function describeChrony(s: ChronyState): string {
  return `RX ${s.rx}, valid RX ${s.validRx}, Authenticated ${s.data['Authenticated']}, state '${s.state}', poll ${s.poll}, reach ${s.reach.toString(8)}`;
}

/** chrony's `authdata -c` line: name,mode,keyid,type,klen,… */
async function chronyAuth(chrony: Chronyd): Promise<{ mode: string; keyId: number; keyLength: number; raw: string }> {
  const raw = (await chrony.chronyc(['-c', 'authdata'])).trim();
  const f = raw.split('\n')[0]?.split(',') ?? [];
  return { mode: f[1] ?? '', keyId: Number(f[2]), keyLength: Number(f[4]), raw };
}

/** chronyd polling ntptsd every 250 ms with a symmetric key: `keyfile FILE`, `server … port P key ID`. */
function startKeyedChrony(t: TestContext, name: string, keyfile: string, ntpPort: number, keyId: number): Promise<Chronyd> {
  return startChronyd({ t, name, confLines: [`keyfile ${keyfile}`, `server 127.0.0.1 port ${ntpPort} key ${keyId} iburst minpoll -2 maxpoll -2`] });
}

async function chronyDiagnostics(chrony: Chronyd, daemon?: RunningDaemon): Promise<string> {
  const safe = async (f: () => Promise<string>): Promise<string> => f().catch((e: unknown) => String(e));
  return [
    `--- chronyc ntpdata ---\n${await safe(() => chrony.chronyc(['ntpdata']))}`,
    `--- chronyc sources ---\n${await safe(() => chrony.chronyc(['sources']))}`,
    `--- chronyc authdata ---\n${await safe(() => chrony.chronyc(['authdata']))}`,
    `--- chronyd output ---\n${chrony.logs()}`,
    ...(daemon !== undefined ? [`--- ntptsd output (last 40 lines) ---\n${daemon.logs().slice(-40).map((l) => JSON.stringify(l)).join('\n')}`] : []),
  ].join('\n');
}

/** Waits for `probe` with chrony's and ntptsd's state in the timeout error. */
async function waitForChrony<T>(chrony: Chronyd, daemon: RunningDaemon, what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  try {
    return await waitFor(what, probe, { timeoutMs, intervalMs: 150 });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await chronyDiagnostics(chrony, daemon)}`, { cause: err });
  }
}

/** Authenticated, with at least `minValid` valid samples. */
function authenticatedSamples(chrony: Chronyd, daemon: RunningDaemon, minValid: number, timeoutMs = 15_000): Promise<ChronyState> {
  return waitForChrony(
    chrony,
    daemon,
    `chronyd to get ${minValid} MAC-authenticated samples from ntptsd`,
    async () => {
      const s = await chronyState(chrony);
      return s.data['Authenticated'] === 'Yes' && s.validRx >= minValid ? s : undefined;
    },
    timeoutMs,
  );
}

/**
 * After the server started refusing chrony's key at `since` (a state read after the refusal took effect):
 * chrony keeps polling and receiving answers (Total RX grows by `answers`) but accepts none of them (Total valid
 * RX frozen), and its reach register empties. Returns the final state.
 */
async function assertChronyRefusesSource(chrony: Chronyd, daemon: RunningDaemon, since: ChronyState, answers: number): Promise<ChronyState> {
  const last = await waitForChrony(
    chrony,
    daemon,
    `chronyd to receive ${answers} more answers and to find the source unreachable (reach 0)`,
    async () => {
      const s = await chronyState(chrony);
      assert.equal(s.validRx, since.validRx, `a crypto-NAK accepted as a valid sample: before ${describeChrony(since)}, now ${describeChrony(s)}`);
      return s.rx >= since.rx + answers && s.reach === 0 ? s : undefined;
    },
    15_000,
  );
  assert.ok(!['*', '+'].includes(last.state), `chrony still selects or combines the source: ${describeChrony(last)}`);
  return last;
}

// ---------------------------------------------------------------------------------------------------------------
// NTPsec

/** ntpdig's `-d -d` hex dumps (stdout): the request it sent, then each reply, as one byte string. */
function ntpdigDumpedBytes(stdout: string): Buffer {
  const bytes: number[] = [];
  for (const line of stdout.split('\n')) {
    // "e3 00 00 … (16 bytes, 48 columns)  ascii": only the hex columns count.
    if (!/^([0-9a-f]{2} )+/.test(line)) continue;
    for (const h of line.slice(0, 48).match(/[0-9a-f]{2}/g) ?? []) bytes.push(parseInt(h, 16));
  }
  return Buffer.from(bytes);
}

/** An ntpdig offset line: `2026-01-02 03:04:05.678901 (+0000) -0.000442 +/- 0.001412 127.0.0.1 s10 no-leap`. */
const NTPDIG_OFFSET = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \([+-]\d{4}\) [+-]\d+\.\d+ \+\/- \d+\.\d+ 127\.0\.0\.1 s10\b/m;

/**
 * `ntpdig -d -d -k KEYS -a ID 127.0.0.1` inside `netns`. `reply`: the server's answer as ntpdig dumped it (the
 * request, 48 + 4 + 16 octets with an AES-CMAC, comes first in the dump).
 */
async function ntpdig(netns: Netns, keys: string, keyId: number): Promise<RunResult & { reply: Buffer; request: Buffer }> {
  const r = await runInNetns(netns, 'ntpdig', ['-d', '-d', '-t', '2', '-k', keys, '-a', String(keyId), '127.0.0.1'], { timeoutMs: 15_000 });
  const dumped = ntpdigDumpedBytes(r.stdout);
  return { ...r, request: dumped.subarray(0, 68), reply: dumped.subarray(68) };
}

function assertCryptoNak(reply: Buffer, what: string): void {
  // RFC 5905 §7.4: the response header and a MAC field of key id 0 only.
  assert.equal(reply.length, 52, `${what}: a 52-octet crypto-NAK, got ${reply.toString('hex')}`);
  assert.equal(reply.readUInt32BE(48), 0, `${what}: key id 0`);
  assert.equal(reply[0]! & 7, 4, `${what}: server mode`);
}

function assertNtpdigRefused(r: RunResult & { reply: Buffer }, what: string): void {
  const out = `exit ${r.code ?? r.signal}\n${r.stdout}${r.stderr}`;
  assert.notEqual(r.code, 0, `${what}: ntpdig must fail:\n${out}`);
  assert.doesNotMatch(r.stdout, NTPDIG_OFFSET, `${what}: no offset line:\n${out}`);
  assert.doesNotMatch(r.stderr, /MAC verification on reply from .* succeeded/, out);
  assertCryptoNak(r.reply, what);
}

/** ntptsd inside `netns` the way the harness starts peers (no CAP_SYS_TIME, own process group, killed with t). */
async function startNtptsdInNetns(t: TestContext, netns: Netns, config: EksDaemonConfig & { socket: string }, dir: string): Promise<PeerProcess> {
  const configPath = join(dir, 'ntptsd.toml');
  writeFileSync(configPath, eksConfig(config).replaceAll('STATE_DIR', join(dir, 'state')));
  // The mgmt socket is bound with the other listeners, right before the ready line.
  const ntptsd = await startInNetns({
    t,
    netns,
    name: 'ntptsd-eks',
    argv: [process.execPath, '--import', TSX_LOADER, NTPTSD_CLI, '-c', configPath, '--log-format', 'json'],
    ready: async () => existsSync(config.socket),
  });
  await waitFor('the ready line of ntptsd in the namespace', () => /"msg":"ready"/.test(ntptsd.logs()), { timeoutMs: 5_000 });
  assertNoSysTime(ntptsd.pid);
  return ntptsd;
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

interface HostEks {
  ca: TestCa;
  dir: string;
  ntpPort: number;
  kePort: number;
  daemon: RunningDaemon;
  socket: string;
}

/** ntptsd on the host loopback: NTP on a free UDP port, NTS-KE + EKS on a free TCP port, mgmt in its state dir. */
async function startHostEks(t: TestContext, extra: Pick<EksDaemonConfig, 'keyRotation' | 'keysKept' | 'keyLifetime' | 'issueBurst'> = {}): Promise<HostEks> {
  requirePeers(t);
  const ca = await makeTestCa({ t, via: 'x509' });
  const dir = makeTempDir('eks-host', t);
  const ntpPort = await freePort('udp');
  const kePort = await freePort('tcp');
  const config = eksConfig({ ca, ntpListen: [`127.0.0.1:${ntpPort}`], tlsListen: `127.0.0.1:${kePort}`, ntpPort, socket: 'mgmt.sock', ...extra });
  const daemon = await startNtptsd({ config });
  t.after(() => daemon.stop());
  return { ca, dir, ntpPort, kePort, daemon, socket: join(daemon.stateDir, 'mgmt.sock') };
}

test('chronyd with a key from `ntptsc ekey --format chrony`: authenticated samples; a wrong key never; revoked, the source is refused', { timeout: 60_000 }, async (t) => {
  const { ca, dir, ntpPort, kePort, daemon, socket } = await startHostEks(t);
  const keyfile = join(dir, 'chrony.keys');
  const key = await fetchKeyFile({ host: `127.0.0.1:${kePort}`, ca, format: 'chrony', out: keyfile });
  // Negative control: the same id with a key one bit off.
  const badKeyfile = join(dir, 'chrony-bad.keys');
  writeFileSync(badKeyfile, key.text.replace(key.hex, flipLastBit(key.hex)), { mode: 0o600 });
  const before = await ntpCounters(socket);

  const [chrony, badChrony] = await Promise.all([
    startKeyedChrony(t, 'eks-client', keyfile, ntpPort, key.keyId),
    startKeyedChrony(t, 'eks-client-wrong-key', badKeyfile, ntpPort, key.keyId),
  ]);
  assertNoSysTime(chrony.pid);
  assertNoSysTime(badChrony.pid);

  const good = await authenticatedSamples(chrony, daemon, 3);
  assert.equal(good.data['Remote port'], String(ntpPort));
  assert.equal(good.data['Stratum'], '10');
  assert.equal(good.data['NTP tests'], '111 111 1111', describeChrony(good));
  const auth = await chronyAuth(chrony);
  assert.equal(auth.mode, 'SK', `symmetric key authentication: ${auth.raw}`);
  assert.equal(auth.keyId, key.keyId, auth.raw);
  assert.equal(auth.keyLength, 128, auth.raw);

  // The wrong key: answered (RX grows) with crypto-NAKs, never a valid or authenticated sample.
  const bad = await waitForChrony(
    badChrony,
    daemon,
    'the chronyd with a wrong key to receive 4 answers',
    async () => {
      const s = await chronyState(badChrony);
      assert.equal(s.validRx, 0, `a valid sample under a wrong key: ${describeChrony(s)}`);
      assert.notEqual(s.data['Authenticated'], 'Yes', describeChrony(s));
      return s.rx >= 4 ? s : undefined;
    },
    10_000,
  );
  assert.equal(bad.reach, 0, describeChrony(bad));
  await badChrony.stop();
  const afterAuth = await ntpCounters(socket);
  const verified = counterDelta(before, afterAuth, 'mac.verified_ephemeral');
  const good2 = await chronyState(chrony);
  assert.ok(verified >= good.validRx, `ntptsd verified ${verified} requests, chrony has ${good.validRx} valid samples`);
  assert.ok(counterDelta(before, afterAuth, 'mac.bad_mac') >= bad.rx, `bad_mac for each of the wrong key's ${bad.rx} answers: ${JSON.stringify(afterAuth)}`);
  assert.equal(counterDelta(before, afterAuth, 'mac.revoked'), 0);
  t.diagnostic(`authenticated: ${describeChrony(good2)}; wrong key: ${describeChrony(bad)}; ntptsd verified_ephemeral +${verified}, bad_mac +${counterDelta(before, afterAuth, 'mac.bad_mac')}`);

  // Revocation: from the next request on, crypto-NAKs.
  const revokeOut = await ntptscOk(['eks', 'revoke', String(key.keyId), '--socket', socket]);
  const revokedAt = Date.now();
  // A request chrony sent before the revocation may still be answered with a MAC: start counting after it.
  const atRevoke = await chronyState(chrony);
  await waitForChrony(chrony, daemon, 'chronyd to receive an answer after the revocation', async () => (await chronyState(chrony)).rx >= atRevoke.rx + 2, 5_000);
  // Counters first, then chrony: every answer chrony counts from `since` on is counted by ntptsd after `revokedCounters`.
  const revokedCounters = await ntpCounters(socket);
  const since = await chronyState(chrony);
  assert.ok(since.validRx <= atRevoke.validRx + 1, `at most one sample in flight at the revocation: ${describeChrony(atRevoke)} → ${describeChrony(since)}`);
  const last = await assertChronyRefusesSource(chrony, daemon, since, 8);
  const afterRevoke = await ntpCounters(socket);
  const revoked = counterDelta(revokedCounters, afterRevoke, 'mac.revoked');
  assert.ok(revoked >= last.rx - since.rx, `ntptsd counted ${revoked} revoked requests for ${last.rx - since.rx} answers`);
  assert.equal(counterDelta(revokedCounters, afterRevoke, 'mac.verified_ephemeral'), 0);
  t.diagnostic(`revoke: ${revokeOut.trim()}; ${Date.now() - revokedAt} ms later chrony: ${describeChrony(last)}; ntptsd revoked +${revoked}`);
});

test('NTPsec in a netns with a key from `ntptsc ekey --format ntp`: ntpdig -a and ntpd -q authenticated; wrong keys and a revoked key get crypto-NAKs', { timeout: 60_000 }, async (t) => {
  requirePeers(t);
  const ca = await makeTestCa({ t });
  const dir = makeTempDir('eks-ntpsec', t);
  const server = createNetns('eks-srv', t);
  const goodNs = createNetns('eks-good', t);
  const badNs = createNetns('eks-bad', t);
  linkNetns(goodNs, server, '10.123.47.1/30', '10.123.47.2/30', t);
  linkNetns(badNs, server, '10.123.48.1/30', '10.123.48.2/30', t);
  const socket = join(dir, 'mgmt.sock');
  const kePort = 14460;
  const ntptsd = await startNtptsdInNetns(
    t,
    server,
    { ca, ntpListen: ['127.0.0.1:123', '10.123.47.2:123', '10.123.48.2:123'], tlsListen: `127.0.0.1:${kePort}`, ntpPort: 123, socket },
    dir,
  );
  const failWith = async (err: unknown): Promise<never> => {
    throw new Error(`${(err as Error).message}\n--- ntptsd output (last 40 lines) ---\n${ntptsd.logs().split('\n').slice(-40).join('\n')}`, { cause: err });
  };

  const keys = join(dir, 'ntp.keys');
  const key = await fetchKeyFile({ host: `127.0.0.1:${kePort}`, ca, format: 'ntp', out: keys, netns: server }).catch(failWith);
  const start = await ntpCounters(socket);

  // (a) ntpdig: the key verifies both ways; another id, or the key one bit off, gets a crypto-NAK.
  const ok = await ntpdig(server, keys, key.keyId);
  assert.equal(ok.code, 0, `ntpdig -a ${key.keyId}: exit ${ok.code ?? ok.signal}\n${ok.stdout}${ok.stderr}`);
  assert.match(ok.stdout, NTPDIG_OFFSET, ok.stdout);
  assert.match(ok.stderr, /authenticating with AES-128 key \d+/, ok.stderr);
  assert.match(ok.stderr, /MAC verification on reply from 127\.0\.0\.1 succeeded/, ok.stderr);
  assert.equal(ok.request.readUInt32BE(48), key.keyId, 'ntpdig sent the key id');
  assert.equal(ok.reply.length, 68, `a reply with a 16-octet MAC: ${ok.reply.toString('hex')}`);
  assert.equal(ok.reply.readUInt32BE(48), key.keyId, 'the reply carries the same key id');

  const otherId = key.keyId === 65535 ? 32768 : key.keyId + 1;
  const otherIdKeys = join(dir, 'other-id.keys');
  writeFileSync(otherIdKeys, `${otherId} AES128CMAC ${key.hex}\n`, { mode: 0o600 });
  const tamperedKeys = join(dir, 'tampered.keys');
  writeFileSync(tamperedKeys, key.text.replace(key.hex, flipLastBit(key.hex)), { mode: 0o600 });
  const beforeBad = await ntpCounters(socket);
  assertNtpdigRefused(await ntpdig(server, otherIdKeys, otherId), `ntpdig -a ${otherId} (an id ntptsd did not issue, with the key of ${key.keyId})`);
  assertNtpdigRefused(await ntpdig(server, tamperedKeys, key.keyId), `ntpdig -a ${key.keyId} with a tampered keys file`);
  const afterBad = await ntpCounters(socket);
  assert.equal(counterDelta(beforeBad, afterBad, 'mac.bad_mac') + counterDelta(beforeBad, afterBad, 'mac.unknown_key'), 2, JSON.stringify(afterBad));
  assert.equal(counterDelta(beforeBad, afterBad, 'mac.verified_ephemeral'), 0);

  // (b) ntpd -q in two client namespaces at once: the good key slews the clock (which fails: no CAP_SYS_TIME)
  // and exits 0; the key one bit off never gets a usable sample and is still waiting when it is killed.
  const ntpdQuery = (ns: Netns, keysFile: string, serverAddress: string, timeoutMs: number): Promise<RunResult> => {
    const conf = join(dir, `ntpd-q-${ns.name}.conf`);
    writeFileSync(
      conf,
      [
        `keys ${keysFile}`,
        `trustedkey ${key.keyId}`,
        `server ${serverAddress} key ${key.keyId} iburst minpoll 0 maxpoll 0`,
        'enable ntp',
        'disable kernel',
        `driftfile ${join(dir, `ntp-${ns.name}.drift`)}`,
        '',
      ].join('\n'),
    );
    return runInNetns(ns, 'ntpd', ['-q', '-n', '-c', conf], { timeoutMs });
  };
  const beforeQ = await ntpCounters(socket);
  const qStart = Date.now();
  const [q, qBad] = await Promise.all([
    ntpdQuery(goodNs, keys, '10.123.47.2', 25_000).then((r) => ({ ...r, ms: Date.now() - qStart })),
    ntpdQuery(badNs, tamperedKeys, '10.123.48.2', 12_000),
  ]);
  const afterQ = await ntpCounters(socket);
  const qOut = `${q.stdout}${q.stderr}`;
  assert.equal(q.code, 0, `ntpd -q with the key: exit ${q.code ?? q.signal} after ${q.ms} ms\n${qOut}`);
  assert.match(qOut, /ntpd: time (slew|set|step) [+-]?\d/, qOut);
  // Without CAP_SYS_TIME the adjustment fails; with a zero offset (same host clock across the veth) ntpd makes none.
  assert.match(qOut, /adj_systime: Operation not permitted|step_systime: Operation not permitted|time slew [+-]0\.000000 ?s/, `the clock was not touched: ${qOut}`);
  const qBadOut = `${qBad.stdout}${qBad.stderr}`;
  assert.equal(qBad.signal, 'SIGKILL', `ntpd -q with a tampered key still waiting after 12 s:\n${qBadOut}`);
  assert.doesNotMatch(qBadOut, /time (slew|set|step)/, qBadOut);
  const qVerified = counterDelta(beforeQ, afterQ, 'mac.verified_ephemeral');
  const qBadMac = counterDelta(beforeQ, afterQ, 'mac.bad_mac');
  assert.ok(qVerified >= 1, JSON.stringify(afterQ));
  assert.ok(qBadMac >= 3, `the tampered ntpd -q kept asking and got crypto-NAKs: ${JSON.stringify(afterQ)}`);
  t.diagnostic(`ntpd -q with the key: exit 0 after ${q.ms} ms, ${qVerified} requests verified; with a tampered key: ${qBadMac} crypto-NAKs, killed after 12 s`);

  // (c) Revoked: ntpdig -a with the right key now gets a crypto-NAK.
  await ntptscOk(['eks', 'revoke', String(key.keyId), '--socket', socket]);
  const beforeRevoked = await ntpCounters(socket);
  assertNtpdigRefused(await ntpdig(server, keys, key.keyId), `ntpdig -a ${key.keyId} after eks revoke`);
  const end = await ntpCounters(socket);
  assert.equal(counterDelta(beforeRevoked, end, 'mac.revoked'), 1, JSON.stringify(end));
  assert.equal(counterDelta(beforeRevoked, end, 'mac.verified_ephemeral'), 0);
  t.diagnostic(`ntptsd counters over the test: ${JSON.stringify(Object.fromEntries(Object.keys(end).filter((k) => k.startsWith('mac.')).map((k) => [k, counterDelta(start, end, k)])))}`);
});

test('chronyd with a short-lived key: authenticated until it expires, then crypto-NAKs (expired, then bad_mac) and the source is refused', { timeout: 60_000 }, async (t) => {
  // A new generation every 4 s, one old one kept: a key issued right after a rotation expires 6 s later, and
  // its generation leaves the ring 8 s after it was made (key-rotation < key-lifetime ≤ (keys-kept + 1) × key-rotation).
  const { ca, dir, ntpPort, kePort, daemon, socket } = await startHostEks(t, { keyRotation: '4s', keysKept: 1, keyLifetime: '6s' });
  // Fetch right after a rotation, so the key lives (nearly) the whole 6 s.
  const rotation = await daemon.waitForLog((l) => l.msg === 'rotated the key ring', 6_000);
  const keyfile = join(dir, 'chrony.keys');
  const key = await fetchKeyFile({ host: `127.0.0.1:${kePort}`, ca, format: 'chrony', out: keyfile });
  const listed = await listedKey(socket, key.keyId);
  const expiresAt = Date.parse(listed.expiresAt);
  assert.ok(expiresAt - Date.now() > 2_000 && expiresAt - Number(rotation['time']) <= 6_500, `expiry ${listed.expiresAt}, rotation at ${new Date(Number(rotation['time'])).toISOString()}`);

  const chrony = await startKeyedChrony(t, 'eks-client-expiry', keyfile, ntpPort, key.keyId);
  assertNoSysTime(chrony.pid);
  const good = await authenticatedSamples(chrony, daemon, 2, Math.max(1_000, expiresAt - Date.now()));
  assert.ok(Date.now() < expiresAt, 'authenticated before the expiry');

  // Expired (its generation still in the ring): crypto-NAKs counted as expired, then, once the generation has
  // left the ring, as bad_mac.
  const expired = await waitForChrony(
    chrony,
    daemon,
    'ntptsd to answer the expired key with crypto-NAKs (mac.expired)',
    async () => {
      const c = await ntpCounters(socket);
      return (c['mac.expired'] ?? 0) >= 2 ? c : undefined;
    },
    Math.max(1_000, expiresAt - Date.now()) + 3_000,
  );
  const since = await chronyState(chrony);
  assert.ok(Date.now() >= expiresAt, 'no expired answer before the expiry');
  const gone = await waitForChrony(
    chrony,
    daemon,
    'ntptsd to count the key as bad_mac once its generation left the ring',
    async () => {
      const c = await ntpCounters(socket);
      return (c['mac.bad_mac'] ?? 0) >= 1 ? c : undefined;
    },
    8_000,
  );
  const last = await assertChronyRefusesSource(chrony, daemon, since, 4);
  assert.equal(counterDelta(expired, gone, 'mac.verified_ephemeral'), 0, 'nothing verified after the expiry');
  assert.equal(gone['mac.revoked'] ?? 0, 0);
  t.diagnostic(
    `key ${key.keyId} expired at ${listed.expiresAt}; before: ${describeChrony(good)}; after: ${describeChrony(last)}; ntptsd expired ${gone['mac.expired']}, bad_mac ${gone['mac.bad_mac']}, verified_ephemeral ${gone['mac.verified_ephemeral']}`,
  );
});

test('chronyd stays authenticated across renewals by `ntptsc ekey --renew` (same key id, new generation, `chronyc rekey`)', { timeout: 60_000 }, async (t) => {
  const startedAt = Date.now();
  const peers = requirePeers(t);
  // Rotations only when the test asks (rotate-keys); one old generation kept, so a second rotation drops the
  // generation of the first key. Renewals count against the issuance burst: one every 3 s here.
  const { ca, dir, ntpPort, kePort, daemon, socket } = await startHostEks(t, { keysKept: 1, issueBurst: 1000 });
  const source = `127.0.0.1:${kePort}`;
  const keyfile = join(dir, 'chrony.keys');
  // The operator's first fetch gives the id for chrony.conf; `--renew` then keeps the file current.
  const first = await fetchKeyFile({ host: source, ca, format: 'chrony', out: keyfile });
  assert.deepEqual(managedKeyLine(first.text, source, 'chrony'), { keyId: first.keyId, hex: first.hex, line: first.line });
  const g0 = (await listedKey(socket, first.keyId)).generation;

  const chrony = await startKeyedChrony(t, 'eks-client-renew', keyfile, ntpPort, first.keyId);
  assertNoSysTime(chrony.pid);
  await authenticatedSamples(chrony, daemon, 2);

  const hook = `${shQuote(peers.chronyc)} -h ${shQuote(chrony.socketPath)} rekey`;
  const renew = await startInNetns({
    t,
    name: 'ntptsc-ekey-renew',
    argv: [process.execPath, '--import', TSX_LOADER, NTPTSC_CLI, 'ekey', source, '--ca', ca.caCert, '--format', 'chrony', '--out', keyfile, '--renew', '--renew-after', '3', '--json', '--on-renew', hook],
    ready: async () => true,
  });
  const progress = (): ReturnType<typeof renewProgress> => {
    const p = renewProgress(renew);
    assert.deepEqual(p.problems, [], `ntptsc ekey --renew reported problems:\n${renew.logs()}`);
    if (!renew.running) throw new Error(`ntptsc ekey --renew exited:\n${renew.logs()}`);
    return p;
  };
  const waitForRenew = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> =>
    waitForChrony(chrony, daemon, what, probe, timeoutMs).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n--- ntptsc ekey --renew output ---\n${renew.logs()}`, { cause: err });
    });

  // Its first write renews the key the file holds: same id and, without a rotation, the same key; chrony reloads it.
  const firstRenewal = await waitForRenew('the first write of ntptsc ekey --renew and its on-renew command', async () => {
    const p = progress();
    return p.writes.length >= 1 && p.hooksOk >= 1 ? p.writes[0] : undefined;
  }, 10_000);
  assert.equal(firstRenewal?.keyId, first.keyId, JSON.stringify(firstRenewal));
  assert.equal(firstRenewal?.renewed, true, JSON.stringify(firstRenewal));
  assert.equal(firstRenewal?.previousKeyId, first.keyId, JSON.stringify(firstRenewal));
  assert.equal(firstRenewal?.key, first.hex.toLowerCase(), 'a renewal under the same generation gives the same key');
  assert.match(renew.logs(), /^200 OK$/m, `chronyc rekey answered:\n${renew.logs()}`);
  const start = await ntpCounters(socket);

  // A new generation: the next renewal (≤ 3 s) gives the same id a new key.
  const rotated1 = JSON.parse(await ntptscOk(['rotate-keys', '--json', '--socket', socket])) as { current: number; previous: number; removed: number[] };
  assert.equal(rotated1.previous, g0, JSON.stringify(rotated1));
  assert.deepEqual(rotated1.removed, [], 'keys-kept = 1: the first key\'s generation stays in the ring');
  const rotatedAt = Date.now();
  const changed = await waitForRenew('a new key under the same id in the managed block, and its on-renew command done', async () => {
    const inFile = managedKeyLine(readFileSync(keyfile, 'utf8'), source, 'chrony');
    if (inFile.hex === first.hex) return undefined;
    assert.equal(inFile.keyId, first.keyId, `the renewal kept the key id:\n${readFileSync(keyfile, 'utf8')}`);
    const p = progress();
    const index = p.writes.findIndex((w) => w.key === inFile.hex.toLowerCase());
    // The command of write number index + 1 has run (exit 0) once that many have.
    return index >= 0 && p.hooksOk >= index + 1 ? { inFile, write: p.writes[index], writes: index + 1 } : undefined;
  }, 10_000);
  // Counters first, then chrony: from here on chrony holds the new key (rekey done).
  const atChange = await ntpCounters(socket);
  const chronyAtChange = await chronyState(chrony);
  const changedAt = Date.now();
  assert.equal(changed.write?.keyId, first.keyId);
  assert.equal(changed.write?.renewed, true);
  assert.equal(changed.write?.previousKeyId, first.keyId);
  const listed = await listedKey(socket, first.keyId);
  assert.equal(listed.generation, rotated1.current, `the renewed id now belongs to the new generation: ${JSON.stringify(listed)}`);

  const afterChange = await waitForChrony(
    chrony,
    daemon,
    'chronyd to get 4 more MAC-authenticated samples after the key changed',
    async () => {
      const s = await chronyState(chrony);
      return s.data['Authenticated'] === 'Yes' && s.validRx >= chronyAtChange.validRx + 4 ? s : undefined;
    },
    8_000,
  );
  const countersAfterChange = await ntpCounters(socket);
  const verifiedAfterChange = counterDelta(atChange, countersAfterChange, 'mac.verified_ephemeral');
  assert.ok(verifiedAfterChange >= afterChange.validRx - chronyAtChange.validRx, `ntptsd verified ${verifiedAfterChange} requests after the change, chrony got ${afterChange.validRx - chronyAtChange.validRx} valid samples`);

  // The old key would still verify (its generation is in the ring, docs/eks.md §4): drop that generation, and
  // only a chronyd that really reloaded the file keeps getting valid samples.
  const rotated2 = JSON.parse(await ntptscOk(['rotate-keys', '--json', '--socket', socket])) as { current: number; previous: number; removed: number[] };
  assert.deepEqual(rotated2.removed, [g0], `the second rotation drops the first key's generation: ${JSON.stringify(rotated2)}`);
  const chronyAtDrop = await chronyState(chrony);
  const afterDrop = await waitForChrony(
    chrony,
    daemon,
    'chronyd to get 4 more MAC-authenticated samples once the first key\'s generation left the ring',
    async () => {
      const s = await chronyState(chrony);
      return s.data['Authenticated'] === 'Yes' && s.validRx >= chronyAtDrop.validRx + 4 ? s : undefined;
    },
    8_000,
  );
  const end = await ntpCounters(socket);
  for (const name of ['mac.bad_mac', 'mac.expired', 'mac.revoked', 'mac.unknown_key']) assert.equal(end[name] ?? 0, 0, `${name}: ${JSON.stringify(end)}`);
  assert.ok(counterDelta(countersAfterChange, end, 'mac.verified_ephemeral') >= afterDrop.validRx - chronyAtDrop.validRx, JSON.stringify(end));
  assert.equal((await chronyAuth(chrony)).keyId, first.keyId);

  // SIGTERM ends --renew with exit 0; the file keeps the id chrony.conf names.
  const before = progress();
  await renew.stop();
  const exit = await renew.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, `ntptsc ekey --renew on SIGTERM:\n${renew.logs()}`);
  assert.ok(before.writes.every((w) => w.keyId === first.keyId && w.renewed && w.previousKeyId === first.keyId), JSON.stringify(before.writes));
  assert.equal(managedKeyLine(readFileSync(keyfile, 'utf8'), source, 'chrony').keyId, first.keyId);
  t.diagnostic(
    `key ${first.keyId}: generation ${g0} → ${rotated1.current}; new key in the file ${changedAt - rotatedAt} ms after rotate-keys (write ${changed.writes}, rekey done); ` +
      `at the change: ${describeChrony(chronyAtChange)}; after: ${describeChrony(afterChange)}; after generation ${g0} left the ring: ${describeChrony(afterDrop)}; ` +
      `ntptsd verified_ephemeral +${counterDelta(start, end, 'mac.verified_ephemeral')} (+${verifiedAfterChange} after the change), bad_mac ${end['mac.bad_mac'] ?? 0}; ` +
      `${before.writes.length} writes, ${before.hooksOk} rekeys; ${Date.now() - startedAt} ms`,
  );
});
