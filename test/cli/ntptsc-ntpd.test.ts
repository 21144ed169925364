// ntptsc's `ntpd peers|vars|mrulist|sysstats` (the daemon's mode 6 bridge, docs/management.md "The mode 6
// bridge"): the pure formatters and argument parsers with fixed results, then the commands against a fake
// management server (test/helpers/mgmt-fake.ts): the params each option sends, the tables, --json, help, usage
// errors, and the messages and exit codes of the bridge's errors (-32004 ntpd unavailable, -32005 no such
// association). The real daemon against a real ntpd is tested in test/interop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/ntptsc.js';
import {
  describeMgmtError,
  formatNtpdInterval,
  formatNtpdMrulist,
  formatNtpdPeers,
  formatNtpdSysstats,
  formatNtpdVars,
  formatStatusWord,
  mgmtErrorJson,
  ntpdMruCells,
  ntpdPeerCells,
  parseLocalAddress,
  parseNtpdNames,
  parseRestrictionBits,
  printable,
} from '../../src/cli/mgmt-format.js';
import { MgmtError } from '../../src/client/mgmt.js';
import { rpcError, RpcErrorCode } from '../../src/proto/mgmt/jsonrpc.js';
import type { NtpdMrulistResult, NtpdPeersResult, NtpdSysstatsResult, NtpdVarsResult } from '../../src/proto/mgmt/types.js';
import { assertUsage, assertFailure, runCli, runInProcess, type CliRun } from '../helpers/cli.js';
import { startFakeTls, startFakeUnix, type FakeMgmt } from '../helpers/mgmt-fake.js';
import { makeTestCa, type TestCa } from '../interop/peers.js';

// ---------------------------------------------------------------------------------------------------------------
// Fixed results, as the bridge answers them

const PEERS: NtpdPeersResult = {
  server: '127.0.0.1:123',
  peers: [
    { assoc: 38451, tally: '*', selection: 'sys.peer', remote: '192.0.2.10', refid: '.GPS.', stratum: 1, type: 'u', when: 64, poll: 64, reach: '377', delay: 0.456, offset: -0.1234, jitter: 0.045 },
    { assoc: 38452, tally: '+', selection: 'candidate', remote: '2001:db8::123', refid: '192.0.2.1', stratum: 2, type: 'u', when: 2049, poll: 1024, reach: '17', delay: 12.3456, offset: 1.5, jitter: 2 },
    { assoc: 38453, tally: ' ', selection: 'reject', remote: '0.debian.pool.ntp.org', refid: '.POOL.', stratum: 16, type: 'p', when: null, poll: 64, reach: '0', delay: null, offset: null, jitter: null },
  ],
};

const VARS: NtpdVarsResult = {
  server: '127.0.0.1:123',
  assoc: 0,
  status: 0x618,
  variables: { version: 'ntpd ntpsec-1.2.2', leap: '0', stratum: '2', refid: '192.0.2.10', offset: '-0.123456', 'x.future': 'a b', kernel: null },
};

const MRULIST: NtpdMrulistResult = {
  server: '127.0.0.1:123',
  now: '2025-01-02T12:00:00.000000Z',
  total: 5,
  truncated: true,
  entries: [
    { address: '192.0.2.7', port: 36524, firstSeen: '2025-01-02T11:00:00.000000Z', lastSeen: '2025-01-02T11:59:58.500000Z', count: 60, mode: 3, version: 4, restrictions: '0x0' },
    { address: '2001:db8::1', port: 123, firstSeen: '2025-01-02T10:00:00.000000Z', lastSeen: '2025-01-02T11:50:00.000000Z', count: 1234, mode: 4, version: 3, restrictions: '0x1d0' },
    { address: '198.51.100.2', port: null, firstSeen: null, lastSeen: '2025-01-02T11:00:00.000000Z', count: null, mode: null, version: null, restrictions: null },
  ],
};

const SYSSTATS: NtpdSysstatsResult = {
  server: '127.0.0.1:123',
  counters: {
    ss_uptime: 93784,
    ss_reset: 45,
    ss_received: 1523,
    ss_thisver: 1500,
    ss_oldver: 23,
    ss_ver1: 3,
    ss_ver1symm: 1,
    ss_badformat: 0,
    ss_badauth: 2,
    ss_declined: 0,
    ss_restricted: 4,
    ss_limited: 7,
    ss_kodsent: 1,
    ss_processed: 1490,
    ss_future: 'x',
    ss_flag: null,
  },
};

const RESULTS = { 'ntpd.peers': PEERS, 'ntpd.vars': VARS, 'ntpd.mrulist': MRULIST, 'ntpd.sysstats': SYSSTATS };

const PEERS_TEXT = [
  ' REMOTE                 REFID      ST  T  WHEN  POLL  REACH   DELAY  OFFSET  JITTER',
  '*192.0.2.10             .GPS.       1  u    64    64    377   0.456  -0.123   0.045',
  '+2001:db8::123          192.0.2.1   2  u   34m  1024     17  12.346   1.500   2.000',
  ' 0.debian.pool.ntp.org  .POOL.     16  p     -    64      0       -       -       -',
  '',
  'server: 127.0.0.1:123',
  '',
].join('\n');

const VARS_TEXT = [
  'assoc 0, status 0x0618',
  'version=ntpd ntpsec-1.2.2',
  'leap=0',
  'stratum=2',
  'refid=192.0.2.10',
  'offset=-0.123456',
  'x.future=a b',
  'kernel',
  '',
  'server: 127.0.0.1:123',
  '',
].join('\n');

const MRULIST_TEXT = [
  'LSTINT  AVGINT  RSTR  COUNT  MODE  VER  REMOTE',
  '     1      59     0     60     3    4  192.0.2.7:36524',
  '   600       5   1d0   1234     4    3  [2001:db8::1]:123',
  '  3600       -     -      -     -    -  198.51.100.2',
  '',
  '3 of 5 entries (truncated)',
  'server: 127.0.0.1:123',
  '',
].join('\n');

const SYSSTATS_TEXT = [
  'uptime:                93784 (1d 2h 3m 4s)',
  'sysstats reset:        45',
  'packets received:      1523',
  'current version:       1500',
  'older version:         23',
  'NTPv1 total:           3',
  'NTPv1 symm act:        1',
  'bad length or format:  0',
  'authentication failed: 2',
  'declined:              0',
  'restricted:            4',
  'rate limited:          7',
  'KoD responses:         1',
  'processed for time:    1490',
  'ss_future:             x',
  'ss_flag:               -',
  '',
  'server: 127.0.0.1:123',
  '',
].join('\n');

/** The -32004 of the bridge when ntpd does not answer (src/server/ntpd-bridge.ts). */
const NTPD_TIMEOUT = rpcError(RpcErrorCode.BACKEND_UNAVAILABLE, 'ntpd at 127.0.0.1:123: no answer to READSTAT from 127.0.0.1:123 within 1000 ms', undefined, {
  backend: 'ntpd',
  mode6: 'TIMEOUT',
});
/** The -32005 of `ntpd.vars` for an association ntpd does not have. */
const NO_ASSOC = rpcError(RpcErrorCode.NOT_FOUND, 'ntpd at 127.0.0.1:123 has no association 12345', undefined, { assoc: 12345 });

const inProcess = (...args: string[]): Promise<CliRun> => runInProcess((io) => main(args, io));



// ---------------------------------------------------------------------------------------------------------------
// Pure

describe('ntpd formatting', () => {
  test('when and poll like ntpq: seconds up to 2048, then minutes, hours, days; - when unknown', () => {
    assert.equal(formatNtpdInterval(null), '-');
    assert.equal(formatNtpdInterval(0), '-');
    assert.equal(formatNtpdInterval(1), '1');
    assert.equal(formatNtpdInterval(64), '64');
    assert.equal(formatNtpdInterval(2048), '2048');
    assert.equal(formatNtpdInterval(2049), '34m');
    assert.equal(formatNtpdInterval(17_971), '300m');
    assert.equal(formatNtpdInterval(18_000), '5h');
    assert.equal(formatNtpdInterval(36_000), '10h');
    assert.equal(formatNtpdInterval(345_600), '4d');
    assert.equal(formatNtpdInterval(64.9), '64');
  });

  test('peers: ntpq -p columns, tally glued before the remote, ms with 3 decimals, - for null', () => {
    assert.deepEqual(ntpdPeerCells(PEERS.peers[0]!), ['*192.0.2.10', '.GPS.', '1', 'u', '64', '64', '377', '0.456', '-0.123', '0.045']);
    assert.equal(formatNtpdPeers(PEERS), PEERS_TEXT);
    assert.equal(formatNtpdPeers({ server: '[::1]:123', peers: [] }), ' REMOTE  REFID  ST  T  WHEN  POLL  REACH  DELAY  OFFSET  JITTER\n(none)\n\nserver: [::1]:123\n');
  });

  test('vars: assoc and status word, then name=value in ntpd’s order; flags by name', () => {
    assert.equal(formatStatusWord(0x618), '0x0618');
    assert.equal(formatStatusWord(0x9614), '0x9614');
    assert.equal(formatNtpdVars(VARS), VARS_TEXT);
    assert.equal(formatNtpdVars({ server: '127.0.0.1:123', assoc: 38451, status: 0x961a, variables: {} }), 'assoc 38451, status 0x961a\n\nserver: 127.0.0.1:123\n');
  });

  test('mrulist: lstint from ntpd’s now, avgint, restrictions in hex, address:port; the count line', () => {
    assert.deepEqual(ntpdMruCells(MRULIST.entries[0]!, MRULIST.now), ['1', '59', '0', '60', '3', '4', '192.0.2.7:36524']);
    assert.deepEqual(ntpdMruCells(MRULIST.entries[0]!, null).slice(0, 2), ['-', '59']);
    assert.equal(formatNtpdMrulist(MRULIST), MRULIST_TEXT);
    assert.equal(
      formatNtpdMrulist({ server: '127.0.0.1:123', now: null, total: 0, truncated: false, entries: [] }),
      'LSTINT  AVGINT  RSTR  COUNT  MODE  VER  REMOTE\n(none)\n\n0 of 0 entries\nserver: 127.0.0.1:123\n',
    );
  });

  test('sysstats: ntpq’s labels aligned, durations in words, unknown names raw', () => {
    assert.equal(formatNtpdSysstats(SYSSTATS), SYSSTATS_TEXT);
    assert.equal(formatNtpdSysstats({ server: '127.0.0.1:123', counters: {} }), '(none)\n\nserver: 127.0.0.1:123\n');
  });

  test('text from ntpd cannot drive the terminal', () => {
    assert.equal(printable('a\x1b[2Jb\n'), 'a\\x1b[2Jb\\x0a');
    assert.equal(formatNtpdVars({ ...VARS, variables: { 'x\x07': 'y\x1b' } }).split('\n')[1], 'x\\x07=y\\x1b');
  });

  test('argument values: --names, --resall/--resany, --laddr', () => {
    assert.deepEqual(parseNtpdNames('stratum, refid,offset'), { ok: true, value: ['stratum', 'refid', 'offset'] });
    assert.deepEqual(parseNtpdNames('ss_uptime'), { ok: true, value: ['ss_uptime'] });
    assert.equal(parseNtpdNames('a,,b').ok, false);
    assert.equal(parseNtpdNames('a=b').ok, false);
    assert.equal(parseNtpdNames('x'.repeat(65)).ok, false);
    assert.equal(parseNtpdNames(Array.from({ length: 65 }, (_, i) => `v${i}`).join(',')).ok, false);
    assert.deepEqual(parseRestrictionBits('0x1d0'), { ok: true, value: 0x1d0 });
    assert.deepEqual(parseRestrictionBits('64'), { ok: true, value: 64 });
    assert.deepEqual(parseRestrictionBits('0xFFFF'), { ok: true, value: 0xffff });
    for (const bad of ['0x10000', '65536', '-1', 'abc', '0x', '']) assert.equal(parseRestrictionBits(bad).ok, false, bad);
    assert.deepEqual(parseLocalAddress('192.0.2.1'), { ok: true, value: '192.0.2.1' });
    assert.deepEqual(parseLocalAddress('[2001:db8::1]'), { ok: true, value: '2001:db8::1' });
    assert.deepEqual(parseLocalAddress('::1'), { ok: true, value: '::1' });
    assert.equal(parseLocalAddress('localhost').ok, false);
  });

  test('the bridge’s errors as sentences about ntpd', () => {
    const e = (method: string, error: ReturnType<typeof rpcError>) => describeMgmtError(new MgmtError(method, error));
    assert.equal(e('ntpd.peers', NTPD_TIMEOUT), 'ntpd at 127.0.0.1:123 did not answer (TIMEOUT): no answer to READSTAT from 127.0.0.1:123 within 1000 ms');
    const bridge = (mode6: string, message: string, extra: Record<string, string> = {}) =>
      e('ntpd.sysstats', rpcError(-32004, `ntpd at [::1]:123: ${message}`, undefined, { backend: 'ntpd', mode6, ...extra }));
    assert.equal(bridge('AUTH_REQUIRED', 'ntpd refuses READVAR without authentication (PERMISSION)'), 'ntpd at [::1]:123 wants authenticated requests (AUTH_REQUIRED): ntpd refuses READVAR without authentication (PERMISSION)');
    assert.equal(bridge('AUTH_FAILED', 'ntpd did not accept key 7 for READVAR'), 'ntpd at [::1]:123 did not accept the key (AUTH_FAILED): ntpd did not accept key 7 for READVAR');
    assert.equal(bridge('SERVER_ERROR', 'ntpd answered READVAR with UNKNOWNVAR (4)', { serverError: 'UNKNOWNVAR' }), 'ntpd at [::1]:123 refused the request (SERVER_ERROR): ntpd answered READVAR with UNKNOWNVAR (4)');
    assert.match(bridge('SOCKET', 'cannot send to ::1:123: ENETUNREACH'), /^ntpd at \[::1\]:123 could not be reached \(SOCKET\): cannot send/);
    assert.match(bridge('BAD_RESPONSE', 'READVAR answer: overlapping fragments'), /^ntpd at \[::1\]:123 sent an answer that could not be read \(BAD_RESPONSE\)/);
    assert.match(bridge('MRU_STALLED', 'the list moved'), /\(MRU_STALLED\): the list moved$/);
    assert.equal(bridge('SOMETHING_NEW', 'new\nthing'), 'ntpd at [::1]:123 failed (SOMETHING_NEW): new thing');
    assert.equal(e('ntpd.peers', rpcError(-32004, 'ntpd bridge is off', undefined, { backend: 'ntpd' })), 'ntpd failed: ntpd bridge is off');
    assert.equal(e('ntpd.vars', NO_ASSOC), 'ntpd at 127.0.0.1:123 has no association 12345 (ntptsc ntpd peers lists them)');
    // Other backends and methods keep the code's name first.
    assert.equal(e('rotate-keys', rpcError(-32004, 'cannot write the key ring', undefined, { backend: 'state-dir' })), 'backend-unavailable: cannot write the key ring (backend state-dir)');
    assert.equal(e('keys', rpcError(-32005, 'no key 0x1')), 'not-found: no key 0x1');
    assert.deepEqual(mgmtErrorJson(new MgmtError('ntpd.peers', NTPD_TIMEOUT)), {
      error: { code: -32004, reason: 'backend-unavailable', message: NTPD_TIMEOUT.message, details: { backend: 'ntpd', mode6: 'TIMEOUT' } },
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Against the fake

describe('ntptsc ntpd over a Unix socket', () => {
  let dir: string;
  let fake: FakeMgmt;
  let socket: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-ntptsc-ntpd-'));
    fake = await startFakeUnix(dir, { results: RESULTS });
    socket = fake.path as string;
  });
  after(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the command; exit 0 and nothing on stderr; returns stdout and the one request the fake received. */
  async function ok(...args: string[]): Promise<{ stdout: string; method: string; params: unknown }> {
    const before = fake.requests.length;
    const run = await inProcess(...args);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.equal(fake.requests.length, before + 1, 'one request per command');
    const request = fake.requests.at(-1)!;
    return { stdout: run.stdout, method: request.method, params: request.params };
  }

  test('peers: the table, no params', async () => {
    assert.deepEqual(await ok('ntpd', 'peers', '--socket', socket), { stdout: PEERS_TEXT, method: 'ntpd.peers', params: {} });
  });

  test('vars: system variables by default; ASSOC and --names become the params', async () => {
    assert.deepEqual(await ok('ntpd', 'vars', '--socket', socket), { stdout: VARS_TEXT, method: 'ntpd.vars', params: {} });
    assert.deepEqual((await ok('ntpd', 'vars', '38451', '--socket', socket)).params, { assoc: 38451 });
    assert.deepEqual((await ok('ntpd', 'vars', '0', '--socket', socket)).params, { assoc: 0 });
    assert.deepEqual((await ok('ntpd', 'vars', '--names', 'stratum,refid', '38451', '--socket', socket)).params, { assoc: 38451, names: ['stratum', 'refid'] });
    assert.deepEqual((await ok('ntpd', 'vars', '--socket', socket, '--names', 'offset')).params, { names: ['offset'] });
  });

  test('mrulist: the table; each option becomes its param', async () => {
    assert.deepEqual(await ok('ntpd', 'mrulist', '--socket', socket), { stdout: MRULIST_TEXT, method: 'ntpd.mrulist', params: {} });
    const all = await ok(
      'ntpd', 'mrulist', '--socket', socket,
      '--limit', '10000', '--sort', 'count', '--mincount', '2', '--laddr', '127.0.0.1', '--resall', '0x40', '--resany', '17', '--maxlstint', '600',
    );
    assert.deepEqual(all.params, { limit: 10000, sort: 'count', mincount: 2, laddr: '127.0.0.1', resall: 0x40, resany: 17, maxlstint: 600 });
    for (const [option, value, params] of [
      ['--limit', '1', { limit: 1 }],
      ['--sort', 'first', { sort: 'first' }],
      ['--sort', 'address', { sort: 'address' }],
      ['--mincount', '0', { mincount: 0 }],
      ['--laddr', '[::1]', { laddr: '::1' }],
      ['--resall', '0xffff', { resall: 0xffff }],
      ['--resany', '0x1', { resany: 1 }],
      ['--maxlstint', '10m', { maxlstint: 600 }],
      ['--maxlstint', '0', { maxlstint: 0 }],
    ] as const) {
      assert.deepEqual((await ok('ntpd', 'mrulist', option, value, '--socket', socket)).params, params, `${option} ${value}`);
    }
  });

  test('sysstats: aligned rows, no params', async () => {
    assert.deepEqual(await ok('ntpd', 'sysstats', '--socket', socket), { stdout: SYSSTATS_TEXT, method: 'ntpd.sysstats', params: {} });
  });

  test('--json prints the raw result, wherever the options stand', async () => {
    for (const [sub, expected] of [['peers', PEERS], ['vars', VARS], ['mrulist', MRULIST], ['sysstats', SYSSTATS]] as const) {
      for (const args of [
        ['ntpd', sub, '--json', '--socket', socket],
        ['--json', 'ntpd', sub, '--socket', socket],
        ['--socket', socket, 'ntpd', '--json', sub],
        ['ntpd', '--socket', socket, '--json', sub],
      ]) {
        const run = await ok(...args);
        assert.deepEqual(JSON.parse(run.stdout), expected, args.join(' '));
      }
    }
    const hoisted = await ok('--limit', '3', 'ntpd', '--sort', 'address', 'mrulist', '--socket', socket);
    assert.deepEqual(hoisted.params, { limit: 3, sort: 'address' });
    assert.deepEqual((await ok('ntpd', '--names', 'leap', 'vars', '7', '--socket', socket)).params, { assoc: 7, names: ['leap'] });
  });

  test('usage errors exit 2 without asking the daemon', async () => {
    const before = fake.requests.length;
    assertUsage(await inProcess('ntpd', 'vars', 'x', '--socket', socket), /assoc.*whole number from 0 to 65535/);
    assertUsage(await inProcess('ntpd', 'vars', '65536', '--socket', socket), /whole number from 0 to 65535/);
    assertUsage(await inProcess('ntpd', 'vars', '1', '2', '--socket', socket), /too many arguments/);
    assertUsage(await inProcess('ntpd', 'vars', '--names', 'a,,b', '--socket', socket), /--names.*empty name/);
    assertUsage(await inProcess('ntpd', 'vars', '--names', 'a-b', '--socket', socket), /not a variable name/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--limit', '0', '--socket', socket), /--limit.*1 to 10000/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--limit', '10001', '--socket', socket), /--limit/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--sort', 'drops', '--socket', socket), /--sort/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--mincount', '-1', '--socket', socket), /--mincount/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--laddr', 'localhost', '--socket', socket), /not an IP address/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--resall', '0x10000', '--socket', socket), /--resall.*0xffff/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--resany', 'x', '--socket', socket), /--resany/);
    assertUsage(await inProcess('ntpd', 'mrulist', '--maxlstint', '1500ms', '--socket', socket), /whole seconds/);
    assertUsage(await inProcess('ntpd', 'peers', '--limit', '5', '--socket', socket), /unknown option '--limit'/);
    assertUsage(await inProcess('ntpd', 'peers', '--socket', socket, '--connect', '127.0.0.1:4461'), /--socket and --connect exclude each other/);
    assertUsage(await inProcess('ntpd', 'sysstats', '--ca', 'ca.pem'), /--ca needs --connect/);
    assertUsage(await inProcess('ntpd', 'frobnicate', '--socket', socket), /unknown command 'frobnicate'/);
    assert.equal(fake.requests.length, before);

    const bare = await inProcess('ntpd');
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^Usage: ntptsc ntpd /);
  });

  test('help lists the subcommands with one line each', async () => {
    const top = await inProcess('--help');
    assert.equal(top.code, 0);
    // Commander wraps descriptions at the terminal's width.
    assert.match(top.stdout.replace(/\s+/g, ' '), / ntpd the local ntpd as ntpq shows it, through the daemon: peers, vars, mrulist, sysstats /);
    const help = await inProcess('ntpd', '--help');
    assert.equal(help.code, 0);
    for (const sub of ['peers [options]', 'vars [options] [assoc]', 'mrulist [options]', 'sysstats [options]']) assert.match(help.stdout, new RegExp(`\\n {2}${sub.replace(/[[\]]/g, '\\$&')} +\\S`), sub);
    const mrulist = await inProcess('ntpd', 'mrulist', '--help');
    assert.equal(mrulist.code, 0);
    for (const option of ['--limit', '--sort', '--mincount', '--laddr', '--resall', '--resany', '--maxlstint', '--socket', '--connect', '--json']) assert.ok(mrulist.stdout.includes(`  ${option} `), option);
  });
});

describe('ntptsc ntpd: the bridge’s errors', () => {
  let dir: string;
  let fake: FakeMgmt;
  let socket: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-ntptsc-ntpd-errors-'));
    const errors = { 'ntpd.peers': NTPD_TIMEOUT, 'ntpd.mrulist': NTPD_TIMEOUT, 'ntpd.sysstats': NTPD_TIMEOUT, 'ntpd.vars': NO_ASSOC };
    fake = await startFakeUnix(dir, { results: RESULTS, errors });
    socket = fake.path as string;
  });
  after(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('-32004: ntpd did not answer, exit 1, like the other commands’ server errors', async () => {
    const expected = /^ntptsc: ntpd at 127\.0\.0\.1:123 did not answer \(TIMEOUT\): no answer to READSTAT from 127\.0\.0\.1:123 within 1000 ms\n$/;
    for (const sub of ['peers', 'mrulist', 'sysstats']) {
      const run = await inProcess('ntpd', sub, '--socket', socket);
      assertFailure(run, expected);
      assert.equal(run.stdout, '');
    }
    const json = await inProcess('ntpd', 'peers', '--json', '--socket', socket);
    assertFailure(json, expected);
    assert.deepEqual(JSON.parse(json.stdout), {
      error: { code: -32004, reason: 'backend-unavailable', message: NTPD_TIMEOUT.message, details: { backend: 'ntpd', mode6: 'TIMEOUT' } },
    });
  });

  test('-32005: no such association, exit 1', async () => {
    const run = await inProcess('ntpd', 'vars', '12345', '--json', '--socket', socket);
    assertFailure(run, /^ntptsc: ntpd at 127\.0\.0\.1:123 has no association 12345 \(ntptsc ntpd peers lists them\)\n$/);
    assert.deepEqual(JSON.parse(run.stdout), { error: { code: -32005, reason: 'not-found', message: NO_ASSOC.message, details: { assoc: 12345 } } });
    assert.deepEqual(fake.requests.at(-1)?.params, { assoc: 12345 });
  });

  test('spawned: the real process exits 1 with the one-line reason', async () => {
    const run = await runCli('ntptsc', 'ntpd', 'peers', '--socket', socket);
    assertFailure(run, /^ntptsc: ntpd at 127\.0\.0\.1:123 did not answer \(TIMEOUT\)/);
    assert.equal(run.stdout, '');
  });

  test('a missing socket: exit 1 with the connection error', async () => {
    assertFailure(await inProcess('ntpd', 'sysstats', '--socket', join(dir, 'nope.sock')), /^ntptsc: cannot connect to .*nope\.sock: ENOENT/);
  });
});

describe('ntptsc ntpd over TLS', () => {
  let ca: TestCa;
  let fake: FakeMgmt;
  let connect: string[];
  before(async () => {
    ca = await makeTestCa();
    fake = await startFakeTls(ca, { tokens: { 'mon-token': { role: 'monitor', name: 'ops' } }, results: RESULTS });
    connect = ['--connect', `127.0.0.1:${fake.port}`, '--ca', ca.caCert];
  });
  after(async () => {
    await fake?.close();
    if (ca !== undefined) rmSync(ca.dir, { recursive: true, force: true });
  });

  test('a monitor token reads every ntpd method', async () => {
    for (const [sub, text] of [['peers', PEERS_TEXT], ['vars', VARS_TEXT], ['mrulist', MRULIST_TEXT], ['sysstats', SYSSTATS_TEXT]] as const) {
      const run = await inProcess('ntpd', sub, '--token', 'mon-token', ...connect);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, text, sub);
    }
    assert.deepEqual(
      fake.requests.filter((r) => r.method !== 'auth').map((r) => r.method),
      ['ntpd.peers', 'ntpd.vars', 'ntpd.mrulist', 'ntpd.sysstats'],
    );
  });

  test('without a token: unauthenticated, exit 1', async () => {
    assertFailure(await inProcess('ntpd', 'peers', ...connect), /^ntptsc: unauthenticated: ntpd\.peers needs authentication: give --token/);
  });
});
