// Our mode 6 client (src/client/mode6.ts) against real NTPsec 1.2.2, compared with NTPsec's own ntpq.
//
// NTPsec runs in a private network namespace (its port 123 is fixed) with two associations: a chronyd upstream
// at stratum 8 in a second namespace (veth pair, see mode6-helpers.ts) and an unreachable 192.0.2.1. The
// client runs inside the namespace as a small tsx script that prints JSON; ntpq runs there too, just before
// and just after it. Whatever may change between two queries (a poll every 8 s moves reach, delay, offset and
// event counts) is compared against either of ntpq's two readings.
//
// Observed with NTPsec 1.2.2 (and asserted below or in the unit tests, which replay captured datagrams):
// - answers echo the request's version (we send 2, like ntpq); the LI bits carry the system leap;
// - READVAR answers put the variables in NTPsec's table order, not the order asked; a peer's answer is two
//   fragments of 468 + ~200 octets, and filtdelay/filtoffset/filtdisp start with uninitialised octets
//   (reported as MODE6_VARS_BINARY, the rest kept); padding octets after the data are not zeroed either;
// - a signed data answer has its MAC at the next multiple of 8 after the data, a signed error answer right
//   after the 12-octet header; NTPsec signs its answer iff it accepted the request's MAC (a wrong key on READVAR
//   gets an unsigned answer, on READ_ORDLIST_A an unsigned AUTH_FAILURE); a valid key that is not the
//   controlkey gets a signed AUTH_FAILURE for READ_ORDLIST_A;
// - READ_MRU with a stale or missing nonce gets no answer at all; frags=1 gets a page with no entries (ntpd
//   counts the datagram it is filling); the MRU list is keyed by address (one entry for all our ports);
// - error codes seen: UNSPECIFIED (WRITEVAR of leap), AUTH_FAILURE, BAD_FORMAT (count beyond the datagram),
//   UNKNOWN_OPCODE, UNKNOWN_ASSOCIATION, UNKNOWN_VARIABLE, BAD_VALUE (frags above 128). NTPsec never sends
//   PERMISSION_DENIED (7); it uses AUTH_FAILURE for restrictions too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, assertNoSysTime, parseNtpqVars, peerCommand, requirePeers, runInNetns } from './peers.js';
import { CONTROL_KEY_ID, TEST_KEYS, parseNtpqPeers, runScriptInNetns, startMode6Lab, type NtpqPeerLine } from './mode6-helpers.js';

const src = (path: string): string => JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src', path)).href);

/** The client side, run in NTPsec's namespace. Prints one JSON line. */
const SCRIPT = `
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Mode6Client, Mode6Error } from ${src('client/mode6.ts')};
import { parseKeysFile } from ${src('proto/ntp/keys-file.ts')};
import { encodeMode6Packet, decodeMode6Response } from ${src('proto/mode6/packet.ts')};

const spec = JSON.parse(process.argv[2]);
const out = {};
// ntpq in the same namespace, one run for associations, system variables and peers, right before and right
// after ours: a poll (every 8 s) changes at most one side of the window.
const ntpq = () =>
  execFileSync(spec.ntpq.file, [...spec.ntpq.args, '-n', '-c', 'as', '-c', 'rv', '-c', 'peers', '127.0.0.1'], { env: { ...process.env, ...spec.ntpq.env }, encoding: 'utf8', timeout: 10000 });
const failure = async (fn) => {
  try {
    await fn();
    return { ok: true };
  } catch (e) {
    if (!(e instanceof Mode6Error)) throw e;
    return { ok: false, code: e.code, serverError: e.details.serverError ?? null, message: e.message };
  }
};

// MRU traffic: mode 3 packets from 127.0.0.10..29, 1 to 3 each.
for (let i = 10; i < 30; i++) {
  const s = dgram.createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.' + i, r));
  const pkt = Buffer.alloc(48);
  pkt[0] = 0x23;
  for (let j = 0; j < (i % 3) + 1; j++) await new Promise((r) => s.send(pkt, 123, '127.0.0.1', r));
  s.close();
}
await new Promise((r) => setTimeout(r, 100));

const client = new Mode6Client({ timeoutMs: 1000 });
out.ntpqBefore = ntpq();
const status = await client.readStatus();
out.systemStatus = status.systemStatus.word;
out.associations = status.associations.map((a) => ({ id: a.associationId, status: a.status.word }));
const sys = await client.readVariables(0);
out.sysvars = sys.variables.toRecord();
out.sysProblems = sys.problems.length;
out.peerVars = {};
for (const a of status.associations) {
  const r = await client.readVariables(a.associationId);
  out.peerVars[a.associationId] = { vars: r.variables.toRecord(), problems: r.problems.map((p) => p.code), status: r.status };
}
out.peers = (await client.readPeers()).map((r) => ({ line: r.line, columns: r.columns, associationId: r.associationId }));
out.ntpqAfter = ntpq();
const mru = await client.readMru({}, { frags: 2 });
out.mru = { entries: mru.entries.map((e) => ({ address: e.address, host: e.host, port: e.port, count: e.count, mode: e.mode, version: e.version, rs: e.restrictions })), requests: mru.requests, nonceRequests: mru.nonceRequests, truncated: mru.truncated, now: mru.now !== null };
out.mruMincount3 = (await client.readMru({ mincount: 3 })).entries.map((e) => e.host);
out.nonce = await client.requestNonce();

// Authentication with each key of the key file.
const keys = parseKeysFile(readFileSync(spec.keysPath, 'utf8'));
if (!keys.ok) throw keys.error;
out.auth = {};
for (const [id, key] of keys.value.keys) {
  const c = new Mode6Client({ key, authenticate: 'always', timeoutMs: 1000 });
  const rv = await c.readVariables(0, ['version']);
  out.auth[id] = { readvar: rv.authenticated, version: rv.variables.get('version'), ifstats: await failure(() => c.readOrderedList('ifstats')) };
  c.close();
}
const control = new Mode6Client({ key: keys.value.keys.get(spec.controlKeyId), timeoutMs: 1000 });
out.ifstats = (await control.readOrderedList('ifstats')).map((r) => ({ name: r.name, address: r.address, enabled: r.enabled }));
out.restrictions = (await control.readOrderedList('addr_restrictions')).map((r) => ({ address: r.address, mask: r.mask, flags: r.flagList }));
out.writeLeap = await failure(() => control.request(3, { data: 'leap=0' }));
control.close();

const wrongKey = { ...keys.value.keys.get(spec.controlKeyId), key: Buffer.from('not the key') };
const wrong = new Mode6Client({ key: wrongKey, authenticate: 'always', timeoutMs: 1000 });
out.wrongKeyReadvar = await failure(() => wrong.readVariables(0, ['version']));
out.wrongKeyIfstats = await failure(() => wrong.readOrderedList('ifstats'));
wrong.close();
out.noKeyIfstats = await failure(() => client.readOrderedList('ifstats'));

// Error codes.
out.unknownVariable = await failure(() => client.readVariables(0, ['nosuchvariable']));
out.unknownAssociation = await failure(() => client.readVariables(4242));
out.unknownOpcode = await failure(() => client.request(7));
out.badValue = await failure(() => client.request(10, { data: 'nonce=' + out.nonce + ', frags=200' }));
// BAD_FORMAT: a count that runs past the datagram (our encoder only writes such a thing when told to).
{
  const s = dgram.createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  const reply = new Promise((r) => s.once('message', r));
  s.send(encodeMode6Packet({ opcode: 2, sequence: 77, data: 'ab', countOverride: 40 }), 123, '127.0.0.1');
  const bytes = await Promise.race([reply, new Promise((r) => setTimeout(() => r(null), 1000))]);
  const d = bytes === null ? null : decodeMode6Response(new Uint8Array(bytes));
  out.badFormat = d === null ? null : d.ok ? { error: d.value.error, code: d.value.status >> 8 } : d.error.code;
  s.close();
}
out.stats = client.stats;
client.close();
process.stdout.write(JSON.stringify(out) + '\\n');
`;

interface Failure {
  ok: boolean;
  code?: string;
  serverError?: string | null;
  message?: string;
}

interface ScriptOutput {
  ntpqBefore: string;
  ntpqAfter: string;
  systemStatus: number;
  associations: { id: number; status: number }[];
  sysvars: Record<string, string>;
  sysProblems: number;
  peerVars: Record<string, { vars: Record<string, string>; problems: string[]; status: number }>;
  peers: { line: string; associationId: number; columns: Record<string, string> }[];
  mru: { entries: { address: string; host: string; port: number; count: number; mode: number; version: number; rs: number }[]; requests: number; nonceRequests: number; truncated: boolean; now: boolean };
  mruMincount3: string[];
  nonce: string;
  auth: Record<string, { readvar: boolean; version: string; ifstats: Failure }>;
  ifstats: { name: string; address: string; enabled: boolean }[];
  restrictions: { address: string; mask: string; flags: string[] }[];
  writeLeap: Failure;
  wrongKeyReadvar: Failure;
  wrongKeyIfstats: Failure;
  noKeyIfstats: Failure;
  unknownVariable: Failure;
  unknownAssociation: Failure;
  unknownOpcode: Failure;
  badValue: Failure;
  badFormat: { error: boolean; code: number } | string | null;
  stats: { dropped: Record<string, number>; timeouts: number };
}

/** `ntpq -c as`: association id → status word. */
function parseAssociations(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of text.matchAll(/^\s*\d+\s+(\d+)\s+([0-9a-f]{4})\s/gm)) out.set(Number(m[1]), parseInt(m[2] as string, 16));
  return out;
}

/** `ntpq -c mrulist` rows: host → { count, mode, version, rstr, port }. */
function parseMrulist(text: string): Map<string, { count: number; mode: number; version: number; rs: number; port: number }> {
  const out = new Map<string, { count: number; mode: number; version: number; rs: number; port: number }>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // lstint avgint rstr r m v count score drop rport remote
    if (f.length !== 11 || !/^\d+$/.test(f[0] as string)) continue;
    out.set(f[10] as string, { rs: parseInt(f[2] as string, 16), mode: Number(f[4]), version: Number(f[5]), count: Number(f[6]), port: Number(f[9]) });
  }
  return out;
}

/** `ntpq -c ifstats`: (name, address) pairs. */
function parseIfstats(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    const m = /^\s*\d+\s+(\S+)\s+[.D]/.exec(line);
    if (m !== null) out.push(`${m[1]} ${(lines[i + 1] ?? '').trim()}`);
  });
  return out.sort();
}

/** `ntpq -c reslist`: "addr/prefix flags" per restriction. */
function parseReslist(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    const m = /^\s*\d+\s+(\S+\/\d+)\s*$/.exec(line);
    if (m !== null) out.push(`${m[1]} ${(lines[i + 1] ?? '').trim()}`);
  });
  return out;
}

function prefixLength(mask: string): number {
  if (mask.includes(':')) {
    return mask
      .split(':')
      .filter((g) => g !== '')
      .reduce((n, g) => n + [...parseInt(g, 16).toString(2)].filter((b) => b === '1').length, 0);
  }
  return mask.split('.').reduce((n, o) => n + [...Number(o).toString(2)].filter((b) => b === '1').length, 0);
}

test('NTPsec 1.2.2: READSTAT, READVAR, peers, MRU, ordered lists, authentication and error codes agree with ntpq', { timeout: 60_000 }, async (t) => {
  requirePeers(t);
  const lab = await startMode6Lab(t);
  const { ntpd } = lab;
  assertNoSysTime(ntpd.pid);

  const out = await runScriptInNetns<ScriptOutput>(t, lab.netns, 'mode6-client', SCRIPT, { keysPath: lab.keysPath, controlKeyId: CONTROL_KEY_ID, ntpq: peerCommand('ntpq', []) });
  const mrulist = await ntpd.ntpq(['-c', 'mrulist']);
  const keyed = async (command: string): Promise<string> => {
    const r = await runInNetns(lab.netns, 'ntpq', ['-n', '-k', lab.keysPath, '-a', String(CONTROL_KEY_ID), '-c', command, '127.0.0.1'], { timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const ifstatsText = await keyed('ifstats');
  const reslistText = await keyed('reslist');
  const readings = [out.ntpqBefore, out.ntpqAfter].map((text) => ({ text, as: parseAssociations(text), rv: parseNtpqVars(text.slice(text.indexOf('associd=0'))), peers: parseNtpqPeers(text) }));
  const window = `ntpq before:\n${out.ntpqBefore}\nntpq after:\n${out.ntpqAfter}`;

  // READSTAT: the same associations with the same status words as `ntpq -c as`, before or after.
  assert.equal(out.associations.length, 2);
  for (const r of readings) assert.deepEqual(out.associations.map((a) => a.id).sort(), [...r.as.keys()].sort());
  for (const a of out.associations) {
    assert.ok(readings.some((r) => r.as.get(a.id) === a.status), `association ${a.id}: status ${a.status.toString(16)}\n${window}`);
  }

  // System variables: the stable ones and the status word equal one of ntpq's two readings.
  const sysNames = ['version', 'processor', 'system', 'leap', 'stratum', 'precision', 'refid', 'peer', 'tc', 'mintc'];
  // ntpq shows leap as two bits ("00"); ntpd sends a number.
  const ours = sysNames.map((n) => (n === 'leap' ? Number(out.sysvars[n]).toString(2).padStart(2, '0') : out.sysvars[n]));
  assert.ok(
    readings.some((r) => JSON.stringify(sysNames.map((n) => r.rv[n])) === JSON.stringify(ours)),
    `system variables ${JSON.stringify(ours)}\n${window}`,
  );
  assert.ok(
    readings.some((r) => parseInt(/associd=0 status=([0-9a-f]{4})/.exec(r.text)?.[1] ?? '', 16) === out.systemStatus),
    `system status ${out.systemStatus.toString(16)}\n${window}`,
  );
  assert.equal(out.sysProblems, 0);

  // Peer variables: NTPsec's garbage in the filter arrays is reported, everything else read.
  const upstreamId = Object.keys(out.peerVars).find((id) => out.peerVars[id]?.vars['srcadr'] === lab.upstreamAddress);
  assert.ok(upstreamId !== undefined, JSON.stringify(out.peerVars));
  const up = out.peerVars[upstreamId];
  assert.equal(up?.vars['stratum'], '8');
  assert.equal(up?.vars['hmode'], '3');
  assert.ok(Number(up?.vars['reach']) !== 0);
  assert.ok((up?.problems ?? []).every((c) => c === 'MODE6_VARS_BINARY'), JSON.stringify(up?.problems));

  // Peers: every row equals ntpq -p's (before or after), `when` within 3 s.
  const fields = (r: NtpqPeerLine): string => [r.tally, r.remote, r.refid, r.st, r.t, r.poll, r.reach, r.delay, r.offset, r.jitter].join('|');
  for (const r of readings) assert.equal(out.peers.length, r.peers.length);
  for (const row of out.peers) {
    const parsed = parseNtpqPeers(`${row.line}\n`)[0] as NtpqPeerLine;
    const candidates = readings.flatMap((r) => r.peers).filter((r) => r.remote === parsed.remote);
    assert.ok(
      candidates.some((c) => fields(c) === fields(parsed) && (c.when === parsed.when || Math.abs(Number(c.when) - Number(parsed.when)) <= 3)),
      `our row\n${row.line}\nis not one of ntpq's:\n${candidates.map((c) => c.line).join('\n')}`,
    );
  }
  assert.ok(out.peers.some((p) => p.line.includes('.INIT.') && p.columns['reach'] === '  0'), 'the unreachable association');

  // MRU: every host ntpq lists, with the same counts, modes and versions for the hosts that sent us nothing since.
  const ntpqMru = parseMrulist(mrulist);
  assert.ok(out.mru.now && !out.mru.truncated);
  assert.ok(out.mru.requests > 3, `frags=2 pages: ${out.mru.requests} requests`);
  const ourHosts = new Map(out.mru.entries.map((e) => [e.host, e]));
  assert.deepEqual([...ourHosts.keys()].sort(), [...ntpqMru.keys()].sort());
  for (let i = 10; i < 30; i++) {
    const host = `127.0.0.${i}`;
    const ours = ourHosts.get(host);
    const theirs = ntpqMru.get(host);
    assert.ok(ours !== undefined && theirs !== undefined, host);
    assert.deepEqual({ count: ours.count, mode: ours.mode, version: ours.version, rs: ours.rs, port: ours.port }, theirs, host);
    assert.equal(ours.count, (i % 3) + 1);
  }
  assert.equal(new Set(out.mru.entries.map((e) => e.host)).size, out.mru.entries.length, 'one entry per host');
  const three = out.mruMincount3.filter((h) => h.startsWith('127.0.0.') && h !== '127.0.0.1').sort();
  assert.deepEqual(
    three,
    Array.from({ length: 20 }, (_, k) => k + 10)
      .filter((i) => i % 3 === 2)
      .map((i) => `127.0.0.${i}`)
      .sort(),
  );
  assert.match(out.nonce, /^[0-9a-f]{24}$/);

  // Ordered lists (control key) equal ntpq's ifstats and reslist.
  assert.deepEqual(out.ifstats.map((r) => `${r.name} ${r.address}`).sort(), parseIfstats(ifstatsText));
  assert.deepEqual(
    out.restrictions.map((r) => `${r.address}/${prefixLength(r.mask ?? '')} ${r.flags.join(' ')}`.trim()),
    parseReslist(reslistText).map((s) => s.trim()),
  );

  // Authentication: each key signs READVAR and gets a signed answer; only the control key may read lists.
  for (const k of TEST_KEYS) {
    const a = out.auth[k.keyId];
    assert.equal(a?.readvar, true, `key ${k.keyId} (${k.type})`);
    assert.equal(a?.version, out.sysvars['version']);
    if (k.keyId === CONTROL_KEY_ID) assert.equal(a?.ifstats.ok, true);
    else assert.deepEqual([a?.ifstats.code, a?.ifstats.serverError], ['AUTH_FAILED', 'AUTH_FAILURE'], `key ${k.keyId}: signed AUTH_FAILURE`);
  }
  assert.deepEqual([out.wrongKeyReadvar.code, out.wrongKeyReadvar.serverError], ['AUTH_FAILED', null], 'wrong key: an unsigned answer');
  assert.deepEqual([out.wrongKeyIfstats.code, out.wrongKeyIfstats.serverError], ['AUTH_FAILED', 'AUTH_FAILURE']);
  assert.deepEqual([out.noKeyIfstats.code, out.noKeyIfstats.serverError], ['AUTH_REQUIRED', 'AUTH_FAILURE']);

  // Error codes from the real daemon.
  const coded = (f: Failure): string => `${f.code}/${f.serverError}`;
  assert.equal(coded(out.writeLeap), 'SERVER_ERROR/UNSPECIFIED');
  assert.equal(coded(out.unknownVariable), 'SERVER_ERROR/UNKNOWN_VARIABLE');
  assert.equal(coded(out.unknownAssociation), 'SERVER_ERROR/UNKNOWN_ASSOCIATION');
  assert.equal(coded(out.unknownOpcode), 'SERVER_ERROR/UNKNOWN_OPCODE');
  assert.equal(coded(out.badValue), 'SERVER_ERROR/BAD_VALUE');
  assert.deepEqual(out.badFormat, { error: true, code: 2 });
  assert.deepEqual(out.stats.dropped, {}, 'nothing from NTPsec was dropped');
  assert.equal(out.stats.timeouts, 0);
  assert.ok(ntpd.running);
});
