// Our NTP/NTS client library (src/client) against real NTS servers: chrony 4.3 and NTPsec 1.2.2.
//
// chronyd runs on the host loopback (unprivileged `port`/`ntsport`, -x, no CAP_SYS_TIME) and the client runs
// in this process. NTPsec's ports are fixed (UDP 123, NTS-KE 4460), so it runs in a private network namespace
// and the client has to run there too: a small script (written to a temp dir, importing src/client through
// tsx) does the queries inside the namespace and prints one JSON line, which the test asserts on. A chronyd on
// the default ports (123/4460) runs the same way, to see what chrony sends when its NTP port is the default.
// The last two tests run the ntptsc CLI (`time`/`ke --json`) against chronyd and NTPsec the same way.
//
// Observed (and asserted below):
// - chrony with `local stratum 10` answers stratum 10 (not 11), refid 127.127.1.1 (its LOCAL reference),
//   leap none. It offers AES-SIV-CMAC-256 (15) only: an offer of 17 (or 16) alone gets
//   `8001 0002 0000 | 8004 0000 | 8000 0000` (NTPv4, an empty AEAD record, End), our KE_NO_AEAD. When `port`
//   is not 123 it adds a critical Port record `8007 0002 <port>`; on port 123 it sends none. No Server record.
//   Its serverstats count NTS-KE connections, failed TLS handshakes included.
// - NTPsec in orphan mode (`tos orphan 10 orphanwait 1`) answers kiss-o'-death INIT (stratum 0) for about
//   two seconds after start, then stratum 10, refid 127.0.0.1, leap none. It supports 15, 16 and 17, follows
//   the client's order of preference, and sends neither a Port nor a Server record (NTP on 123).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClientError, type ClientErrorCode } from '../../src/client/errors.js';
import { NtsClient, queryNtp, queryTime, type TimeSample } from '../../src/client/ntp.js';
import { ntsKeyExchange, type NtsKeResult } from '../../src/client/ntske.js';
import { keExchange, keRequest } from '../helpers/nts-client.js';
import {
  REPO_ROOT,
  TSX_LOADER,
  assertNoSysTime,
  chronyNtsServerLines,
  createNetns,
  makeTempDir,
  makeTestCa,
  parseColonFields,
  requirePeers,
  runCommand,
  runInNetns,
  startChronyNtsServer,
  startChronyd,
  startNtpsecNtsServer,
  waitFor,
  type Chronyd,
  type Netns,
} from './peers.js';

// ---------------------------------------------------------------------------------------------------------------
// chronyd on the host loopback, client in this process

/** chronyc serverstats: NTS-KE connections accepted, authenticated NTP packets, … as numbers. */
async function serverstats(chrony: Chronyd): Promise<{ ntpPackets: number; keAccepted: number; keDropped: number; authenticated: number; raw: string }> {
  const raw = await chrony.chronyc(['serverstats']);
  const f = parseColonFields(raw);
  return {
    ntpPackets: Number(f['NTP packets received']),
    keAccepted: Number(f['NTS-KE connections accepted']),
    keDropped: Number(f['NTS-KE connections dropped']),
    authenticated: Number(f['Authenticated NTP packets']),
    raw,
  };
}

/** Runs `fn`, which must fail with ClientError `code`; returns the error. */
async function expectClientError(fn: () => Promise<unknown>, code: ClientErrorCode): Promise<ClientError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ClientError, `expected ClientError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ClientError ${code}, but it succeeded`);
}

/** An NTS-KE message as `type length value` records, values longer than 8 octets elided: for messages. */
function recordsHex(data: Uint8Array): string {
  const b = Buffer.from(data);
  const out: string[] = [];
  for (let at = 0; at + 4 <= b.length; ) {
    const length = b.readUInt16BE(at + 2);
    const body = b.subarray(at + 4, at + 4 + length);
    out.push(`${b.subarray(at, at + 4).toString('hex').replace(/^(.{4})/, '$1 ')}${length === 0 ? '' : ` ${length > 8 ? `<${length} octets>` : body.toString('hex')}`}`);
    at += 4 + length;
  }
  return out.join(' | ');
}

function assertChronySample(s: TimeSample, ntpPort: number): void {
  assert.equal(s.stratum, 10, 'chronyd with `local stratum 10` serves stratum 10');
  assert.equal(s.refid, '127.127.1.1', 'chrony\'s LOCAL reference id (7F7F0101)');
  assert.equal(s.leap, 'none');
  assert.equal(s.version, 4);
  assert.deepEqual(s.server, { address: '127.0.0.1', port: ntpPort });
  // Same host, same clock: the offset is noise, the delay a loopback round trip.
  assert.ok(Math.abs(s.offset) < 0.05, `offset ${s.offset}`);
  assert.ok(s.delay >= 0 && s.delay < 0.5, `delay ${s.delay}`);
}

test('chronyd (local stratum 10) on loopback: plain queryNtp and queryTime get stratum 10, refid 127.127.1.1', { timeout: 20_000 }, async (t) => {
  const { chrony, ntpPort } = await startChronyNtsServer(t, 'plain-server');
  const sample = await queryNtp('127.0.0.1', { port: ntpPort, timeoutMs: 2_000 });
  assertChronySample(sample, ntpPort);
  assert.deepEqual(sample.authentication, { kind: 'none' });
  assert.ok(sample.referenceTime !== null && Math.abs(sample.referenceTime - Date.now() / 1000) < 60, `reference time ${sample.referenceTime}`);

  const best = await queryTime('127.0.0.1', { port: ntpPort, samples: 3, intervalMs: 0, ntpTimeoutMs: 2_000 });
  assert.equal(best.samples.length, 3);
  for (const s of best.samples) assertChronySample(s, ntpPort);
  assert.equal(best.delay, Math.min(...best.samples.map((s) => s.delay)), 'queryTime returns the smallest-delay sample');
  assert.equal(best.ke, undefined);
  const stats = await serverstats(chrony);
  assert.equal(stats.ntpPackets, 4, stats.raw);
  assert.equal(stats.authenticated, 0, stats.raw);
});

test('chronyd NTS: AEAD 15 over TLS 1.3, NTP port from its Port record, 10 queries on one NTS-KE keep 8 cookies', { timeout: 20_000 }, async (t) => {
  const { chrony, ntpPort, ntsPort, caPem } = await startChronyNtsServer(t, 'nts-server');

  const client = new NtsClient('127.0.0.1', { port: ntsPort, ca: caPem, aeadAlgorithms: [15], timeoutMs: 3_000, ntpTimeoutMs: 2_000 });
  for (let i = 0; i < 10; i++) {
    const s = await client.query();
    assertChronySample(s, ntpPort);
    assert.deepEqual(s.authentication, { kind: 'nts', aead: 15, aeadName: 'AES-SIV-CMAC-256' });
    assert.equal(client.cookieCount, 8, `query ${i}: one cookie spent, one fresh cookie back (7 placeholders ask for the rest)`);
    assert.equal(client.keyExchanges, 1, `query ${i}: no new NTS-KE`);
  }
  const ke = client.keyExchange as NtsKeResult;
  assert.equal(ke.tlsVersion, 'TLSv1.3');
  assert.equal(ke.alpn, 'ntske/1');
  assert.equal(ke.aead.id, 15);
  assert.equal(ke.c2s.length, 32);
  assert.equal(ke.s2c.length, 32);
  assert.notDeepEqual(ke.c2s, ke.s2c);
  assert.equal(ke.portRecord, ntpPort, 'chrony sends a Port record when its NTP port is not 123');
  assert.equal(ke.ntpPort, ntpPort);
  assert.equal(ke.serverRecord, undefined, 'chrony sends no Server record');
  assert.equal(ke.ntpHost, '127.0.0.1');
  assert.equal(ke.cookies.length, 8);
  assert.deepEqual([...new Set(ke.cookies.map((c) => c.length))], [100], 'chrony 4.3 cookies for AEAD 15: 100 octets');
  assert.deepEqual(ke.warnings, []);
  let stats = await serverstats(chrony);
  assert.equal(stats.keAccepted, 1, stats.raw);
  assert.equal(stats.keDropped, 0, stats.raw);
  // 10 authenticated requests on the 8 cookies of one NTS-KE: the cookies chrony sent back were used.
  assert.equal(stats.authenticated, 10, stats.raw);

  // queryTime with nts: its own NtsClient (the default offer 17, 15: chrony picks 15), one NTS-KE for 3 samples.
  const best = await queryTime('127.0.0.1', { nts: true, ca: caPem, port: ntsPort, samples: 3, intervalMs: 0, timeoutMs: 3_000, ntpTimeoutMs: 2_000 });
  assert.equal(best.samples.length, 3);
  for (const s of best.samples) {
    assertChronySample(s, ntpPort);
    assert.deepEqual(s.authentication, { kind: 'nts', aead: 15, aeadName: 'AES-SIV-CMAC-256' });
  }
  assert.equal(best.ke?.aead.id, 15);
  assert.equal(best.ke?.ntpPort, ntpPort);
  stats = await serverstats(chrony);
  assert.equal(stats.keAccepted, 2, stats.raw);
  assert.equal(stats.authenticated, 13, stats.raw);
  assert.equal(stats.ntpPackets, 13, stats.raw);
});

test('chronyd NTS-KE on the wire: critical Port record, and an empty AEAD record for 17 or 16 alone (KE_NO_AEAD)', { timeout: 20_000 }, async (t) => {
  const { chrony, ntpPort, ntsPort, caPem } = await startChronyNtsServer(t, 'nts-wire');
  const portHex = ntpPort.toString(16).padStart(4, '0');

  const accepted = await keExchange(ntsPort, caPem, keRequest([15]));
  const acceptedHex = recordsHex(accepted.reply.data);
  assert.equal(acceptedHex, ['8001 0002 0000', '8004 0002 000f', `8007 0002 ${portHex}`, ...Array<string>(8).fill('0005 0064 <100 octets>'), '8000 0000'].join(' | '));
  assert.ok(accepted.reply.endedByServer, 'chrony closes the connection after its response');

  for (const aead of [17, 16]) {
    const refused = await keExchange(ntsPort, caPem, keRequest([aead]));
    assert.equal(Buffer.from(refused.reply.data).toString('hex'), '8001000200008004000080000000', `response to an offer of ${aead}: ${recordsHex(refused.reply.data)}`);
    const error = await expectClientError(() => ntsKeyExchange('127.0.0.1', { port: ntsPort, ca: caPem, aeadAlgorithms: [aead], timeoutMs: 3_000 }), 'KE_NO_AEAD');
    assert.match(error.message, new RegExp(`supports none of the offered AEAD algorithms \\(${aead}\\)`));
  }
  // 17 first, 15 second: chrony agrees on 15.
  const ke = await ntsKeyExchange('127.0.0.1', { port: ntsPort, ca: caPem, aeadAlgorithms: [17, 15], timeoutMs: 3_000 });
  assert.equal(ke.aead.id, 15);
  const stats = await serverstats(chrony);
  assert.equal(stats.keAccepted, 6, stats.raw);
});

test('chronyd NTS-KE: a CA that did not issue its certificate, or another server name, is KE_CERTIFICATE', { timeout: 20_000 }, async (t) => {
  const { ntsPort, caPem } = await startChronyNtsServer(t, 'nts-wrong-ca');
  const otherCa = await makeTestCa({ t, via: 'x509' });

  const wrongCa = await expectClientError(() => ntsKeyExchange('127.0.0.1', { port: ntsPort, ca: otherCa.caCertPem, timeoutMs: 3_000 }), 'KE_CERTIFICATE');
  assert.equal(wrongCa.details['tlsError'], 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', wrongCa.message);
  // The same through the high-level API: no NTP packet is sent without a trusted NTS-KE.
  await expectClientError(() => queryTime('127.0.0.1', { nts: true, port: ntsPort, ca: otherCa.caCertPem, timeoutMs: 3_000 }), 'KE_CERTIFICATE');
  // The certificate is for localhost, 127.0.0.1 and ::1: another name fails, localhost works.
  const wrongName = await expectClientError(
    () => ntsKeyExchange('127.0.0.1', { port: ntsPort, ca: caPem, servername: 'ntp.invalid', timeoutMs: 3_000 }),
    'KE_CERTIFICATE',
  );
  assert.equal(wrongName.details['tlsError'], 'ERR_TLS_CERT_ALTNAME_INVALID', wrongName.message);
  const byName = await ntsKeyExchange('localhost', { port: ntsPort, ca: caPem, timeoutMs: 3_000 });
  assert.equal(byName.aead.id, 15);
  assert.equal(byName.ntpHost, 'localhost', 'without a Server record, NTP goes to the NTS-KE host');
});

// ---------------------------------------------------------------------------------------------------------------
// Servers in a network namespace: the client runs there too, as a script

/** What the script in the namespace does, in order. */
type Step =
  | { name: string; op: 'plain' }
  | { name: string; op: 'ke'; aeads?: number[]; wrongCa?: boolean; servername?: string; host?: string }
  | { name: string; op: 'nts'; aeads?: number[]; queries: number };

interface ScriptSpec {
  host: string;
  caFile: string;
  wrongCaFile: string;
  /** Poll plain NTP first until it answers with a time (NTPsec needs a moment), at most this long. */
  waitForTimeMs: number;
  steps: Step[];
}

interface SampleSummary {
  stratum: number;
  refid: string;
  leap: string;
  version: number;
  offset: number;
  delay: number;
  address: string;
  port: number;
  aead: number | null;
}
interface KeSummary {
  aead: number;
  tlsVersion: string;
  alpn: string;
  ntpHost: string;
  ntpPort: number;
  portRecord: number | null;
  serverRecord: string | null;
  cookieLengths: number[];
  keyLength: number;
}
type StepResult =
  | { ok: false; code: string | null; message: string; details: Record<string, unknown> | null; ms: number }
  | { ok: true; ms: number; sample?: SampleSummary; ke?: KeSummary; queries?: Array<SampleSummary & { cookies: number; keyExchanges: number }> };
interface ScriptOutput {
  waited: { ms: number; tries: number; errors: string[] };
  results: Record<string, StepResult>;
}

/** The client side, run inside the namespace with `node --import tsx`. Plain JS apart from file names. */
function clientScript(): string {
  const url = (file: string): string => JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src', 'client', file)).href);
  return `// Generated by test/interop/client-vs-peers.test.ts: runs src/client inside a network namespace.
import { readFileSync } from 'node:fs';
import { NtsClient, queryNtp } from ${url('ntp.ts')};
import { ntsKeyExchange } from ${url('ntske.ts')};

const spec = JSON.parse(process.argv[2]);
const ca = readFileSync(spec.caFile, 'utf8');
const wrongCa = readFileSync(spec.wrongCaFile, 'utf8');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sample = (s) => ({ stratum: s.stratum, refid: s.refid, leap: s.leap, version: s.version, offset: s.offset, delay: s.delay,
  address: s.server.address, port: s.server.port, aead: s.authentication.kind === 'nts' ? s.authentication.aead : null });
const ke = (k) => ({ aead: k.aead.id, tlsVersion: k.tlsVersion, alpn: k.alpn, ntpHost: k.ntpHost, ntpPort: k.ntpPort,
  portRecord: k.portRecord ?? null, serverRecord: k.serverRecord ?? null, cookieLengths: k.cookies.map((c) => c.length), keyLength: k.c2s.length });
const failure = (e) => ({ ok: false, code: e?.code ?? null, message: e?.stack ?? String(e), details: e?.details ?? null });

const waited = { ms: 0, tries: 0, errors: [] };
const start = Date.now();
for (;;) {
  waited.tries++;
  try {
    await queryNtp(spec.host, { timeoutMs: 1000 });
    break;
  } catch (e) {
    const text = (e?.code ?? '') + ' ' + (e?.message ?? String(e));
    if (waited.errors.at(-1) !== text) waited.errors.push(text);
    if (Date.now() - start > spec.waitForTimeMs) break;
    await sleep(200);
  }
}
waited.ms = Date.now() - start;

const results = {};
for (const step of spec.steps) {
  const t0 = Date.now();
  try {
    if (step.op === 'plain') {
      results[step.name] = { ok: true, sample: sample(await queryNtp(spec.host, { timeoutMs: 2000 })) };
    } else if (step.op === 'ke') {
      const options = { ca: step.wrongCa ? wrongCa : ca, timeoutMs: 3000 };
      if (step.aeads) options.aeadAlgorithms = step.aeads;
      if (step.servername) options.servername = step.servername;
      results[step.name] = { ok: true, ke: ke(await ntsKeyExchange(step.host ?? spec.host, options)) };
    } else {
      const options = { ca, timeoutMs: 3000, ntpTimeoutMs: 2000 };
      if (step.aeads) options.aeadAlgorithms = step.aeads;
      const client = new NtsClient(spec.host, options);
      const queries = [];
      for (let i = 0; i < step.queries; i++) {
        const s = await client.query();
        queries.push({ ...sample(s), cookies: client.cookieCount, keyExchanges: client.keyExchanges });
      }
      results[step.name] = { ok: true, ke: ke(client.keyExchange), queries };
    }
  } catch (e) {
    results[step.name] = failure(e);
  }
  results[step.name].ms = Date.now() - t0;
}
process.stdout.write(JSON.stringify({ waited, results }) + '\\n');
`;
}

/** Writes the client script and runs it inside `netns` (no CAP_SYS_TIME, killed after 40 s). */
async function runClientInNetns(t: TestContext, netns: Netns, spec: ScriptSpec): Promise<ScriptOutput & { totalMs: number }> {
  const dir = makeTempDir('client-script', t);
  const script = join(dir, 'client.mts');
  writeFileSync(script, clientScript());
  const started = Date.now();
  const run = await runInNetns(netns, process.execPath, ['--import', TSX_LOADER, script, JSON.stringify(spec)], { timeoutMs: 40_000 });
  const totalMs = Date.now() - started;
  const last = run.stdout.trim().split('\n').pop() ?? '';
  assert.equal(run.code, 0, `the client script failed (exit ${run.code}, signal ${run.signal}):\n${run.stdout}\n${run.stderr}`);
  let output: ScriptOutput;
  try {
    output = JSON.parse(last) as ScriptOutput;
  } catch {
    assert.fail(`the client script printed no JSON:\n${run.stdout}\n${run.stderr}`);
  }
  return { ...output, totalMs };
}

function ok(output: ScriptOutput, name: string): Extract<StepResult, { ok: true }> {
  const r = output.results[name];
  assert.ok(r !== undefined, `no result for ${name}`);
  assert.ok(r.ok, `${name} failed: ${r.ok ? '' : `${r.code}: ${r.message}`}`);
  return r;
}

function failed(output: ScriptOutput, name: string, code: ClientErrorCode): Extract<StepResult, { ok: false }> {
  const r = output.results[name];
  assert.ok(r !== undefined, `no result for ${name}`);
  assert.ok(!r.ok, `${name} succeeded, expected ${code}: ${JSON.stringify(r)}`);
  assert.equal(r.code, code, r.message);
  return r;
}

test('NTPsec NTS server in a netns: the client inside gets plain NTP on 123, NTS with AEAD 15, 16 and 17, KE_CERTIFICATE for a wrong CA', { timeout: 45_000 }, async (t) => {
  requirePeers(t);
  const ca = await makeTestCa({ t });
  const otherCa = await makeTestCa({ t, via: 'x509' });
  const { netns, ntpd } = await startNtpsecNtsServer(t, ca, { netns: 'client-ntpsec', ntpd: 'ntpsec-nts-server' });
  assertNoSysTime(ntpd.pid);
  const startedAt = Date.now();

  const queries = 10; // more than the 8 cookies of one NTS-KE: the fresh cookies from the answers are used
  const out = await runClientInNetns(t, netns, {
    host: '127.0.0.1',
    caFile: ca.caCert,
    wrongCaFile: otherCa.caCert,
    waitForTimeMs: 15_000,
    steps: [
      { name: 'plain', op: 'plain' },
      { name: 'nts15', op: 'nts', aeads: [15], queries },
      { name: 'nts16', op: 'nts', aeads: [16], queries },
      { name: 'nts17', op: 'nts', aeads: [17], queries },
      { name: 'ke-default', op: 'ke' },
      { name: 'ke-15-17', op: 'ke', aeads: [15, 17] },
      { name: 'ke-localhost', op: 'ke', host: 'localhost' },
      { name: 'ke-wrong-ca', op: 'ke', wrongCa: true },
      { name: 'ke-wrong-name', op: 'ke', servername: 'ntp.invalid' },
    ],
  }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n--- NTPsec output ---\n${ntpd.logs()}`, { cause: err });
  });
  const context = `\n${JSON.stringify(out)}\n--- NTPsec output ---\n${ntpd.logs()}`;
  t.diagnostic(`NTPsec served time ${out.waited.ms} ms into the script (${out.waited.tries} tries: ${out.waited.errors.join('; ')}); script ${out.totalMs} ms, ntpd ready→done ${Date.now() - startedAt} ms`);
  // Until orphan mode begins NTPsec answers kiss-o'-death INIT; a bounded wait, never a fixed sleep.
  assert.ok(out.waited.ms <= 15_500, `NTPsec never served time: ${context}`);
  for (const e of out.waited.errors) assert.match(e, /^NTP_KISS .*INIT$|^NTP_UNSYNCHRONIZED |^NTP_TIMEOUT /, context);

  const plain = ok(out, 'plain').sample as SampleSummary;
  assert.deepEqual(
    { stratum: plain.stratum, refid: plain.refid, leap: plain.leap, version: plain.version, address: plain.address, port: plain.port, aead: plain.aead },
    { stratum: 10, refid: '127.0.0.1', leap: 'none', version: 4, address: '127.0.0.1', port: 123, aead: null },
    context,
  );
  assert.ok(Math.abs(plain.offset) < 0.05, `offset ${plain.offset}`);

  const cookieLength: Record<number, number> = {};
  for (const [name, aead, keyLength] of [['nts15', 15, 32], ['nts16', 16, 48], ['nts17', 17, 64]] as const) {
    const r = ok(out, name);
    const ke = r.ke as KeSummary;
    assert.equal(ke.aead, aead, `${name}: ${JSON.stringify(ke)}`);
    assert.equal(ke.keyLength, keyLength);
    assert.equal(ke.tlsVersion, 'TLSv1.3');
    assert.equal(ke.alpn, 'ntske/1');
    assert.equal(ke.portRecord, null, 'NTPsec sends no Port record: NTP on 123');
    assert.equal(ke.serverRecord, null, 'NTPsec sends no Server record');
    assert.equal(ke.ntpPort, 123);
    assert.equal(ke.cookieLengths.length, 8);
    assert.equal(new Set(ke.cookieLengths).size, 1, `${name}: cookies of one length: ${ke.cookieLengths.join(',')}`);
    cookieLength[aead] = ke.cookieLengths[0] as number;
    assert.equal(r.queries?.length, queries);
    for (const [i, q] of (r.queries ?? []).entries()) {
      assert.equal(q.aead, aead, `${name} query ${i}`);
      assert.equal(q.stratum, 10, `${name} query ${i}`);
      assert.equal(q.leap, 'none', `${name} query ${i}`);
      assert.equal(q.port, 123, `${name} query ${i}`);
      assert.equal(q.cookies, 8, `${name} query ${i}: the jar stays full`);
      assert.equal(q.keyExchanges, 1, `${name} query ${i}: one NTS-KE only`);
      assert.ok(Math.abs(q.offset) < 0.05, `${name} query ${i}: offset ${q.offset}`);
    }
  }
  // NTPsec's cookies grow with the key: 104, 136, 168 octets for AEAD 15, 16, 17.
  assert.deepEqual(cookieLength, { 15: 104, 16: 136, 17: 168 });

  assert.equal(ok(out, 'ke-default').ke?.aead, 17, 'our default offer is 17, 15 and NTPsec takes the client\'s first choice');
  assert.equal(ok(out, 'ke-15-17').ke?.aead, 15, 'NTPsec follows the client\'s order of preference');
  const byName = ok(out, 'ke-localhost').ke as KeSummary;
  assert.equal(byName.ntpHost, 'localhost');
  assert.equal(byName.ntpPort, 123);
  const wrongCa = failed(out, 'ke-wrong-ca', 'KE_CERTIFICATE');
  assert.equal(wrongCa.details?.['tlsError'], 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', wrongCa.message);
  const wrongName = failed(out, 'ke-wrong-name', 'KE_CERTIFICATE');
  assert.equal(wrongName.details?.['tlsError'], 'ERR_TLS_CERT_ALTNAME_INVALID', wrongName.message);

  // NTPsec's own counters: 6 good NTS-KE (3 NtsClients, 3 plain exchanges), 18 authenticated requests.
  const nts = parseColonFields(await ntpd.ntpq(['-c', 'ntsinfo']));
  assert.equal(Number(nts['NTS KE serves good']), 6, `${JSON.stringify(nts)}${context}`);
  assert.equal(Number(nts['NTS server recvs good']), 3 * queries, JSON.stringify(nts));
  assert.equal(Number(nts['NTS server recvs w error']), 0, JSON.stringify(nts));
  assert.equal(Number(nts['NTS server sends']), 3 * queries, JSON.stringify(nts));
  assert.match(ntpd.logs(), /NTSs: Read \d+, wrote \d+ bytes\. {2}AEAD=17/);

  await netns.destroy();
  assert.ok(!ntpd.running);
});

test('chronyd on the default ports (123, 4460) in a netns: no Port record, the client sends NTS to 123', { timeout: 30_000 }, async (t) => {
  requirePeers(t);
  const ca = await makeTestCa({ t, via: 'x509' });
  const otherCa = await makeTestCa({ t, via: 'x509' });
  const netns = createNetns('client-chrony123', t);
  const chrony = await startChronyd({
    t,
    netns,
    name: 'chrony-default-ports',
    confLines: chronyNtsServerLines(ca, { port: 123 }),
  });
  assertNoSysTime(chrony.pid);
  const out = await runClientInNetns(t, netns, {
    host: '127.0.0.1',
    caFile: ca.caCert,
    wrongCaFile: otherCa.caCert,
    waitForTimeMs: 5_000,
    steps: [
      { name: 'plain', op: 'plain' },
      { name: 'nts', op: 'nts', queries: 3 },
      { name: 'ke17', op: 'ke', aeads: [17] },
    ],
  }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n--- chronyd output ---\n${chrony.logs()}`, { cause: err });
  });
  const context = `\n${JSON.stringify(out)}`;
  assert.equal(out.waited.tries, 1, `chronyd serves time at once${context}`);
  const plain = ok(out, 'plain').sample as SampleSummary;
  assert.equal(plain.stratum, 10);
  assert.equal(plain.refid, '127.127.1.1');
  assert.equal(plain.port, 123);
  const nts = ok(out, 'nts');
  assert.equal(nts.ke?.aead, 15, context);
  assert.equal(nts.ke?.portRecord, null, `chrony sends no Port record for port 123${context}`);
  assert.equal(nts.ke?.ntpPort, 123);
  for (const q of nts.queries ?? []) {
    assert.deepEqual([q.aead, q.port, q.stratum, q.cookies, q.keyExchanges], [15, 123, 10, 8, 1], context);
  }
  failed(out, 'ke17', 'KE_NO_AEAD');
  const stats = parseColonFields(await chrony.chronyc(['serverstats']));
  assert.equal(stats['NTS-KE connections accepted'], '2', JSON.stringify(stats));
  assert.equal(stats['Authenticated NTP packets'], '3', JSON.stringify(stats));
  await netns.destroy();
  assert.ok(!chrony.running);
});

// ---------------------------------------------------------------------------------------------------------------
// The ntptsc CLI (src/cli/ntptsc.ts) against the same servers: exit codes and its --json documents

const NTPTSC = join(REPO_ROOT, 'src', 'cli', 'ntptsc.ts');

interface CliRun {
  code: number | null;
  json: Record<string, unknown>;
  stderr: string;
}

/** Runs `ntptsc ARGS… --json` (in `netns` when given) and parses its one JSON document. */
async function ntptsc(args: readonly string[], netns?: Netns): Promise<CliRun> {
  const argv = ['--import', TSX_LOADER, NTPTSC, ...args, '--json'];
  const run = netns !== undefined ? await runInNetns(netns, process.execPath, argv, { timeoutMs: 20_000 }) : await runCommand(process.execPath, argv, { timeoutMs: 20_000 });
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(run.stdout) as Record<string, unknown>;
  } catch {
    assert.fail(`ntptsc ${args.join(' ')}: no JSON document (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
  return { code: run.code, json, stderr: run.stderr };
}

function cliError(run: CliRun): { code?: string; message?: string } {
  return (run.json['error'] ?? {}) as { code?: string; message?: string };
}

test('ntptsc time|ke --json against chronyd on loopback: plain, NTS with the Port record, KE_CERTIFICATE, KE_NO_AEAD', { timeout: 30_000 }, async (t) => {
  const otherCa = await makeTestCa({ t, via: 'x509' });
  const ca = await makeTestCa({ t, via: 'x509' });
  const { chrony, ntpPort, ntsPort } = await startChronyNtsServer(t, 'cli-server', ca);

  const plain = await ntptsc(['time', `127.0.0.1:${ntpPort}`]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.json['stratum'], 10);
  assert.equal(plain.json['refid'], '127.127.1.1');
  assert.deepEqual(plain.json['authentication'], { kind: 'none' });
  assert.equal(plain.json['ke'], null);

  const nts = await ntptsc(['time', `127.0.0.1:${ntsPort}`, '--nts', '--ca', ca.caCert, '--samples', '3']);
  assert.equal(nts.code, 0, nts.stderr);
  assert.deepEqual(nts.json['authentication'], { kind: 'nts', aead: 15, aeadName: 'AES-SIV-CMAC-256' });
  assert.deepEqual(nts.json['server'], { address: '127.0.0.1', port: ntpPort });
  const ke = nts.json['ke'] as Record<string, unknown>;
  assert.equal(ke['portRecord'], ntpPort, JSON.stringify(ke));
  assert.deepEqual(ke['aead'], { id: 15, name: 'AES-SIV-CMAC-256' });
  assert.equal((nts.json['samples'] as unknown[]).length, 3);

  const wrongCa = await ntptsc(['time', `127.0.0.1:${ntsPort}`, '--nts', '--ca', otherCa.caCert]);
  assert.equal(wrongCa.code, 1);
  assert.equal(cliError(wrongCa).code, 'KE_CERTIFICATE', JSON.stringify(wrongCa.json));
  assert.match(wrongCa.stderr, /^ntptsc: certificate of 127\.0\.0\.1:\d+ not trusted/);

  const only17 = await ntptsc(['ke', `127.0.0.1:${ntsPort}`, '--ca', ca.caCert, '--aead', '17']);
  assert.equal(only17.code, 1);
  assert.equal(cliError(only17).code, 'KE_NO_AEAD', JSON.stringify(only17.json));

  const stats = await serverstats(chrony);
  // chrony counts connections: one NTS-KE for the 3 samples, the failed handshake, the refused AEAD offer.
  assert.equal(stats.keAccepted, 3, stats.raw);
  assert.equal(stats.authenticated, 3, stats.raw);
});

test('ntptsc time|ke --json inside a netns with NTPsec: plain on 123, NTS with AEAD 16, KE_CERTIFICATE', { timeout: 40_000 }, async (t) => {
  requirePeers(t);
  const ca = await makeTestCa({ t });
  const otherCa = await makeTestCa({ t, via: 'x509' });
  const { netns, ntpd } = await startNtpsecNtsServer(t, ca, { netns: 'cli-ntpsec', ntpd: 'ntpsec-cli-server' });
  // NTPsec answers INIT until orphan mode begins: poll with the CLI itself (exit 1, NTP_KISS) until it serves time.
  const plain = await waitFor(
    'NTPsec to serve time to ntptsc',
    async () => {
      const run = await ntptsc(['time', '127.0.0.1', '--timeout', '1s'], netns);
      if (run.code === 0) return run;
      assert.equal(cliError(run).code, 'NTP_KISS', JSON.stringify(run.json));
      return undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  assert.equal(plain.json['stratum'], 10);
  assert.deepEqual(plain.json['server'], { address: '127.0.0.1', port: 123 });

  const nts = await ntptsc(['time', '127.0.0.1', '--nts', '--ca', ca.caCert, '--aead', 'AES-SIV-CMAC-384'], netns);
  assert.equal(nts.code, 0, nts.stderr);
  assert.deepEqual(nts.json['authentication'], { kind: 'nts', aead: 16, aeadName: 'AES-SIV-CMAC-384' });
  assert.deepEqual(nts.json['server'], { address: '127.0.0.1', port: 123 });
  const ke = nts.json['ke'] as Record<string, unknown>;
  assert.equal(ke['portRecord'], null);
  assert.deepEqual(ke['keServer'], { host: '127.0.0.1', port: 4460 });

  const ke17 = await ntptsc(['ke', 'localhost', '--ca', ca.caCert], netns);
  assert.equal(ke17.code, 0, ke17.stderr);
  assert.deepEqual(ke17.json['aead'], { id: 17, name: 'AES-SIV-CMAC-512' });

  const wrongCa = await ntptsc(['ke', '127.0.0.1', '--ca', otherCa.caCert], netns);
  assert.equal(wrongCa.code, 1);
  assert.equal(cliError(wrongCa).code, 'KE_CERTIFICATE', JSON.stringify(wrongCa.json));
  assert.match(ntpd.logs(), /NTSs: NTS-KE from 127\.0\.0\.1/);
});
