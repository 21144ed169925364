// ntptsc's management commands against a fake management server (test/helpers/mgmt-fake.ts) with the answers of
// docs/management.md: the pure formatters, tables and --json output, options before and after the command word,
// tokens (--token, --token-file), client certificates, exit codes, `call` with raw JSON, and `watch` on a
// terminal (in-process) and as NDJSON (spawned, stdout piped, stopped with Ctrl-C after a few lines).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../src/cli/ntptsc.js';
import {
  CLEAR_SCREEN,
  describeMgmtError,
  formatDuration,
  formatEvent,
  formatKeyId,
  formatTable,
  formatTime,
  statsCounters,
} from '../../src/cli/mgmt-format.js';
import { MgmtError } from '../../src/client/mgmt.js';
import { assertUsage, assertFailure, runCli, runInProcess, type CliRun } from '../helpers/cli.js';
import { CLIENTS, FUTURE_EVENT, KEY_ROTATED_EVENT, KEYS, RELOADED, ROTATED, STATS, STATUS, startFakeTls, startFakeUnix, type FakeMgmt } from '../helpers/mgmt-fake.js';
import { makeTestCa, type TestCa } from '../interop/peers.js';

const inProcess = (...args: string[]): Promise<CliRun> => runInProcess((io) => main(args, io));



describe('mgmt-format.ts', () => {
  test('tables align columns, numbers to the right', () => {
    assert.equal(
      formatTable(['NAME', 'N'], [['a', '1'], ['longer', '1234']], ['left', 'right']),
      'NAME       N\n' + 'a          1\n' + 'longer  1234\n',
    );
    assert.equal(formatTable(['A', 'B'], []), 'A  B\n(none)\n');
  });

  test('times, durations, key ids', () => {
    assert.equal(formatTime('2025-01-02T03:04:05.123456Z'), '2025-01-02 03:04:05Z');
    assert.equal(formatTime('not a time'), 'not a time');
    assert.equal(formatDuration(86400.5), '1d');
    assert.equal(formatDuration(90061), '1d 1h 1m 1s');
    assert.equal(formatDuration(12.25), '12.3s');
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatKeyId(3735928559), '0xdeadbeef');
    assert.equal(formatKeyId(1), '0x00000001');
  });

  test('stats counters in the order sent', () => {
    assert.deepEqual(statsCounters(STATS).slice(0, 2), [['ntp', 'requests', 1523], ['ntp', 'responses.nts', 1490]]);
    assert.deepEqual(statsCounters(STATS).at(-1), ['listener[0] [::]:4460', 'accepted', 41]);
  });

  test('events: known kinds in words, unknown kinds raw', () => {
    assert.equal(formatEvent(KEY_ROTATED_EVENT as never), '2025-01-02 12:00:30Z  key-rotated  master key 0xdeadbeef → 0x12345678 by schedule');
    assert.equal(formatEvent({ ...FUTURE_EVENT, missed: 2 }), '2025-01-02 12:00:31Z  sun-eclipsed  {"magnitude":0.9} (2 events missed before)');
  });

  test('errors as one line: the code’s name, then what it means here', () => {
    const e = (method: string, code: number, message: string, data?: object) => describeMgmtError(new MgmtError(method, { code, message, ...(data ? { data: data as never } : {}) }));
    assert.equal(e('rotate-keys', -32002, 'Forbidden', { required: 'admin' }), 'forbidden: rotate-keys needs the admin role');
    assert.match(e('status', -32001, 'Unauthenticated'), /^unauthenticated: status needs authentication: give --token/);
    assert.equal(e('auth', -32001, 'authentication failed'), 'unauthenticated: authentication failed');
    assert.equal(e('auth', -32003, 'Rate limited', { retryAfter: 12 }), 'rate-limited: too many failed auth attempts; retry in 12 s');
    assert.equal(
      e('reload', -32007, 'configuration invalid', { problems: [{ path: 'nts.cookies', reason: 'must be 1 to 8' }] }),
      'config-invalid: configuration invalid: nts.cookies: must be 1 to 8',
    );
    assert.equal(e('x', -32099, 'new\nthing'), 'server-error: new thing');
  });
});

describe('ntptsc management commands over a Unix socket', () => {
  let dir: string;
  let fake: FakeMgmt;
  let socket: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-ntptsc-mgmt-'));
    fake = await startFakeUnix(dir, { tickMs: 30 });
    socket = fake.path as string;
  });
  after(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('status: aligned rows for people; options before or after the command word', async () => {
    const run = await inProcess('status', '--socket', socket);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'server:          ntptsd 0.1.0');
    assert.ok(lines.includes('started:         2025-01-02 03:04:05Z (up 1d)'));
    assert.ok(lines.includes('master key:      0xdeadbeef (7 kept), next rotation 2025-01-03 03:04:05Z'));
    assert.ok(lines.includes('session:         admin via peer (unix)'));
    const column = lines.map((l) => l.indexOf(':') >= 0 && /^\S[^:]*:\s+\S/.test(l) && l.search(/(?<=:\s+)\S/));
    assert.equal(new Set(column).size, 1, 'values start in one column');
    assert.deepEqual(await inProcess('--socket', socket, 'status'), run);
  });

  test('--json prints the raw result, before or after the command word', async () => {
    for (const args of [['--json', 'status', '--socket', socket], ['status', '--socket', socket, '--json'], ['--socket', socket, '--json', 'status']]) {
      const run = await inProcess(...args);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), STATUS, args.join(' '));
    }
    for (const [command, expected] of [['keys', KEYS], ['stats', STATS], ['clients', CLIENTS], ['rotate-keys', ROTATED], ['reload', RELOADED]] as const) {
      const run = await inProcess(command, '--json', '--socket', socket);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), expected, command);
    }
  });

  test('services, stats, keys, clients: tables', async () => {
    const services = await inProcess('services', '--socket', socket);
    assert.equal(services.code, 0, services.stderr);
    assert.equal(
      services.stdout,
      [
        'LISTENER                                 ADDRESS                      TRANSPORT  SERVICES  DEFAULT  CONNECTIONS',
        'listener[0] [::]:4460                    [::]:4460                    tls        nts-ke    nts-ke        3/1024',
        'listener[1] 127.0.0.1:4461               127.0.0.1:4461               tls        mgmt      -             1/1024',
        'listener[2] /var/lib/ntptsd/ntptsd.sock  /var/lib/ntptsd/ntptsd.sock  plain      mgmt      mgmt          1/1024',
        '',
        'SERVICE  ALPN        ACTIVE',
        'nts-ke   ntske/1          3',
        'mgmt     ntp-mgmt/1       2',
        '',
      ].join('\n'),
    );

    const stats = await inProcess('stats', '--socket', socket);
    assert.equal(
      stats.stdout,
      [
        'at:     2025-01-02 12:00:00Z',
        'uptime: 12h',
        '',
        'SCOPE                  COUNTER          VALUE',
        'ntp                    requests          1523',
        'ntp                    responses.nts     1490',
        'ntp                    responses.none      30',
        'ntp                    drops.malformed      3',
        'service nts-ke         active               0',
        'service nts-ke         handshakes          41',
        'service mgmt           active               1',
        'service mgmt           requests             6',
        'listener[0] [::]:4460  accepted            41',
        '',
      ].join('\n'),
    );

    const keys = await inProcess('keys', '--socket', socket);
    assert.equal(
      keys.stdout,
      'current:  0xdeadbeef\nrotation: every 1d, next 2025-01-03 00:00:00Z\nkept:     7\n\n' +
        'ID          CREATED               CURRENT\n0x12345678  2025-01-01 00:00:00Z\n0xdeadbeef  2025-01-02 00:00:00Z  yes\n',
    );

    const clients = await inProcess('clients', '--socket', socket);
    const lines = clients.stdout.split('\n');
    assert.equal(lines[0], '2 shown, 2 matched, 3 in the table');
    assert.match(lines[2] as string, /^ADDRESS {6}LAST SEEN {13}FIRST SEEN {12}PACKETS {2}DROPS {2}KODS {2}MODE {2}VER {2}AUTH$/);
    assert.match(lines[3] as string, /^192\.0\.2\.7 {4}2025-01-02 11:59:58Z {2}2025-01-02 10:00:00Z {5}1200 {6}4 {5}1 {5}3 {4}4 {2}nts$/);
  });

  test('clients --limit --sort --filter become the params', async () => {
    const run = await inProcess('--limit', '5', 'clients', '--sort', 'packets', '--filter', '2001:db8::/32', '--socket', socket);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(fake.requests.at(-1), { method: 'clients', params: { limit: 5, sort: 'packets', filter: '2001:db8::/32' }, id: 1 });
  });

  test('rotate-keys, reload, log-level: rows', async () => {
    assert.equal((await inProcess('rotate-keys', '--socket', socket)).stdout, 'current:  0x12345679\nprevious: 0xdeadbeef\nremoved:  none\n');
    assert.equal(
      (await inProcess('reload', '--socket', socket)).stdout,
      'config:               /etc/ntptsd/ntptsd.toml\nchanged:              nts, listener[1]\nrestart required:     none\ncertificate reloaded: no\n',
    );
    const level = await inProcess('log-level', 'debug', '--socket', socket);
    assert.equal(level.stdout, 'log level: debug\nprevious:  info\n');
    assert.deepEqual(fake.requests.at(-1)?.params, { level: 'debug' });
  });

  test('call METHOD [JSON]: raw params, raw result; server errors exit 1', async () => {
    const run = await inProcess('call', 'clients', '{"limit": 1, "sort": "drops"}', '--socket', socket);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), CLIENTS);
    assert.deepEqual(fake.requests.at(-1)?.params, { limit: 1, sort: 'drops' });

    assertFailure(await inProcess('call', 'frobnicate', '--socket', socket), /^ntptsc: method-not-found: no method "frobnicate"\n$/);
    const invalid = await inProcess('--json', 'call', 'clients', '{"limit": 5000}', '--socket', socket);
    assertFailure(invalid, /^ntptsc: invalid-params: invalid params for clients: limit: Too big/);
    const doc = JSON.parse(invalid.stdout) as { error: { code: number; reason: string; details: { issues: unknown[] } } };
    assert.equal(doc.error.code, -32602);
    assert.equal(doc.error.reason, 'MGMT_INVALID_PARAMS');
    assert.equal(doc.error.details.issues.length, 1);
  });

  test('usage errors exit 2 without connecting', async () => {
    assertUsage(await inProcess('status', '--socket', socket, '--connect', '127.0.0.1:4461'), /--socket and --connect exclude each other/);
    assertUsage(await inProcess('status', '--connect', '127.0.0.1', '--cert', 'c.pem'), /--cert and --key go together/);
    assertUsage(await inProcess('status', '--ca', 'ca.pem'), /--ca needs --connect/);
    assertUsage(await inProcess('status', '--token', 'a', '--token-file', 'f'), /exclude each other/);
    assertUsage(await inProcess('status', '--connect', '127.0.0.1', '--token-file', join(dir, 'missing')), /cannot read --token-file file .*ENOENT/);
    assertUsage(await inProcess('log-level', 'loud', '--socket', socket), /loud/);
    assertUsage(await inProcess('clients', '--limit', '0', '--socket', socket), /--limit/);
    assertUsage(await inProcess('clients', '--sort', 'age', '--socket', socket), /--sort/);
    assertUsage(await inProcess('call', 'clients', '{"limit":', '--socket', socket), /params are not valid JSON/);
    assertUsage(await inProcess('call', 'clients', '[1]', '--socket', socket), /params must be a JSON object/);
    assertUsage(await inProcess('watch', '--interval', '1500ms', '--socket', socket), /whole seconds/);
    assertUsage(await inProcess('status', '--connect', 'a:b:c'), /invalid address/);
  });

  test('a missing socket: exit 1 with the reason, and the --json error document', async () => {
    const missing = join(dir, 'nope.sock');
    const run = await inProcess('status', '--json', '--socket', missing);
    assertFailure(run, /^ntptsc: cannot connect to .*nope\.sock: ENOENT \(no such socket; is ntptsd running\?\)\n$/);
    assert.equal(JSON.parse(run.stdout).error.code, 'MGMT_CONNECT');
  });

  test('watch on a terminal: clears and redraws at each notification; Ctrl-C exits 0', async () => {
    let out = '';
    let interrupt: (() => void) | undefined;
    let stopped = false;
    const done = main(['watch', '--socket', socket, '--interval', '1s'], {
      stdout: (t) => {
        out += t;
        // Three screens: the first draw, then after the first stats and the first event.
        if (out.split(CLEAR_SCREEN).length > 4) interrupt?.();
      },
      stderr: (t) => assert.fail(t),
      isTty: true,
      onInterrupt: (handler) => {
        interrupt = handler;
        return () => (stopped = true);
      },
    });
    assert.equal(await done, 0);
    assert.ok(stopped, 'the interrupt handler is removed');
    const screens = out.split(CLEAR_SCREEN).slice(1);
    assert.match(screens[0] as string, /^ntptsd at .*ntptsd\.sock: stats every 1s \(Ctrl-C to quit\)\n\nwaiting for stats\.\.\.\n\nrecent events:\nno events yet\n$/);
    assert.match(screens[1] as string, /SCOPE {2,}COUNTER {2,}VALUE\nntp {2,}requests {2,}1524\n/);
    assert.match(screens[2] as string, /recent events:\n2025-01-02 12:00:30Z {2}key-rotated {2}master key 0xdeadbeef → 0x12345678 by schedule\n$/);
  });
});

describe('ntptsc management commands over TLS', () => {
  let ca: TestCa;
  let fake: FakeMgmt;
  let dir: string;
  let connect: string[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-ntptsc-mgmt-tls-'));
    ca = await makeTestCa();
    fake = await startFakeTls(ca, { tokens: { 'mon-token': { role: 'monitor', name: 'ops' } } });
    connect = ['--connect', `127.0.0.1:${fake.port}`, '--ca', ca.caCert];
  });
  after(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
    if (ca !== undefined) rmSync(ca.dir, { recursive: true, force: true });
  });

  test('no token: unauthenticated, exit 1', async () => {
    assertFailure(await inProcess('status', ...connect), /^ntptsc: unauthenticated: status needs authentication: give --token, --token-file or --cert\/--key/);
  });

  test('a wrong token: exit 1 with the auth failure', async () => {
    assertFailure(await inProcess('status', '--token', 'guess', ...connect), /^ntptsc: unauthenticated: authentication failed\n$/);
  });

  test('--token-file (first line, trimmed): monitor reads; rotate-keys is forbidden', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'mon-token\n');
    const keys = await inProcess('keys', '--json', '--token-file', file, ...connect);
    assert.equal(keys.code, 0, keys.stderr);
    assert.deepEqual(JSON.parse(keys.stdout), KEYS);
    const rotate = await inProcess('rotate-keys', '--json', '--token-file', file, ...connect);
    assertFailure(rotate, /^ntptsc: forbidden: rotate-keys needs the admin role\n$/);
    assert.deepEqual(JSON.parse(rotate.stdout), { error: { code: -32002, reason: 'forbidden', message: 'Forbidden', details: { required: 'admin' } } });
  });

  test('--cert/--key: the client certificate makes the session admin', async () => {
    const run = await inProcess('rotate-keys', '--cert', ca.serverCert, '--key', ca.serverKey, ...connect);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(fake.clientCertificates.at(-1), 'localhost');
  });

  test('spawned: exit codes of the real process', async () => {
    const ok = await runCli('ntptsc', '--json', 'status', '--token', 'mon-token', ...connect);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), STATUS);
    const forbidden = await runCli('ntptsc', 'rotate-keys', '--token', 'mon-token', ...connect);
    assertFailure(forbidden, /^ntptsc: forbidden: rotate-keys needs the admin role\n$/);
    assert.equal(forbidden.stdout, '');
    assertUsage(await runCli('ntptsc', 'log-level', '--socket', '/nonexistent'), /missing required argument/);
  });
});

describe('ntptsc watch as NDJSON (spawned)', () => {
  let dir: string;
  let fake: FakeMgmt;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-ntptsc-watch-'));
    fake = await startFakeUnix(dir, { tickMs: 30 });
  });
  after(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('stdout not a terminal: one notification per line; Ctrl-C exits 0', async () => {
    // runCli runs to completion; watch never completes, so this one is spawned by hand the same way.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/ntptsc.ts', '--socket', fake.path as string, 'watch', '--interval', '1s'], {
      cwd: resolve(import.meta.dirname, '../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`watch gave ${stdout.split('\n').length - 1} lines in 20 s; stderr: ${stderr}`));
      }, 20_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (stdout.split('\n').length > 5) child.kill('SIGINT');
      });
      child.on('close', (c) => {
        clearTimeout(timer);
        resolvePromise(c);
      });
    });
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
    const lines = stdout.split('\n').filter((l) => l !== '');
    assert.ok(lines.length >= 5);
    const messages = lines.map((l) => JSON.parse(l) as { method: string; params: Record<string, unknown> });
    assert.equal(messages[0]?.method, 'stats');
    assert.equal(messages[0]?.params['uptime'], STATS.uptime + 1);
    assert.deepEqual(messages[1], { method: 'event', params: KEY_ROTATED_EVENT });
    assert.deepEqual(messages[2], { method: 'event', params: FUTURE_EVENT });
    assert.deepEqual(messages[3], { method: 'future-notification', params: { x: 1 } });
    assert.deepEqual(fake.requests[0], { method: 'subscribe', params: { interval: 1 }, id: 1 });
  });
});
