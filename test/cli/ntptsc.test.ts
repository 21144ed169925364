// ntptsc time / ntptsc ke: the pure helpers of src/cli/format.ts, usage errors in-process, and the real thing
// spawned as `node --import tsx src/cli/ntptsc.ts ...` against a real daemon (and a silent port, and a CA that
// did not sign the daemon's certificate).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { join } from 'node:path';
import { main } from '../../src/cli/ntptsc.js';
import {
  formatCookies,
  formatEndpoint,
  formatRows,
  formatSeconds,
  hoistOptions,
  keJson,
  parseAeadList,
  parseCount,
  parseEndpoint,
  timeRows,
  type TimeResult,
} from '../../src/cli/format.js';
import { aeadById, type AeadAlgorithm } from '../../src/crypto/aead.js';
import type { NtsKeResult } from '../../src/client/ntske.js';
import { assertFailure, runCli, runInProcess, type CliRun } from '../helpers/cli.js';
import { freeTcpPort, freeUdpPort, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { makeTestCa } from '../interop/peers.js';

/** `ntptsc ARGS` as a user runs it. */
const ntptsc = (...args: string[]): Promise<CliRun> => runCli('ntptsc', ...args);

/** `ntptsc ARGS` in this process (for usage errors: no network, no spawn). */
const inProcess = (...args: string[]): Promise<CliRun> => runInProcess((io) => main(args, io));

/** `key: value` lines into a map (values trimmed). */
function rows(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.trimEnd().split('\n')) {
    const m = /^([^:]+):\s+(.*)$/.exec(line);
    assert.ok(m, `not a key: value line: ${JSON.stringify(line)}`);
    out.set(m[1] as string, m[2] as string);
  }
  return out;
}


describe('format.ts: argument values', () => {
  test('HOST[:PORT] with names, IPv4, bracketed and bare IPv6', () => {
    const ok = (text: string, host: string, port: number, portGiven: boolean) => assert.deepEqual(parseEndpoint(text, 123), { ok: true, value: { host, port, portGiven } }, text);
    ok('time.example.net', 'time.example.net', 123, false);
    ok('time.example.net:4460', 'time.example.net', 4460, true);
    ok('127.0.0.1:1123', '127.0.0.1', 1123, true);
    ok('localhost', 'localhost', 123, false);
    ok('[::1]:123', '::1', 123, true);
    ok('[2001:db8::1]', '2001:db8::1', 123, false);
    ok('::1', '::1', 123, false);
    ok('2001:db8::1', '2001:db8::1', 123, false);
    for (const bad of ['', 'host:', 'host:0', 'host:65536', 'host:12x', '[::1', '[::1]x', '[127.0.0.1]:1', 'a:b:c', 'bad host', '-h', 'host:1:2']) {
      assert.equal(parseEndpoint(bad, 123).ok, false, bad);
    }
  });

  test('AEAD lists by name (any case), IANA name or id, in order; unknown or repeated ones refused', () => {
    assert.deepEqual(parseAeadList('AES-SIV-CMAC-256'), { ok: true, value: [15] });
    assert.deepEqual(parseAeadList('17, aes-siv-cmac-256'), { ok: true, value: [17, 15] });
    assert.deepEqual(parseAeadList('AEAD_AES_SIV_CMAC_384'), { ok: true, value: [16] });
    for (const bad of ['', '15,', '30', 'AES-GCM', '15,15', '15,AES-SIV-CMAC-256']) assert.equal(parseAeadList(bad).ok, false, bad);
  });

  test('counts', () => {
    assert.deepEqual(parseCount('3', 1, 64), { ok: true, value: 3 });
    for (const bad of ['0', '65', '-1', '1.5', 'x', '']) assert.equal(parseCount(bad, 1, 64).ok, false, bad);
  });

  test('options before the command word move after it', () => {
    const spec = { commands: ['time', 'ke'], valueOptions: ['--ca', '--samples'], programOptions: ['-V', '--version'] };
    assert.deepEqual(hoistOptions(['--json', 'time', 'h'], spec), ['time', '--json', 'h']);
    assert.deepEqual(hoistOptions(['--ca', 'ke', 'ke', 'h'], spec), ['ke', '--ca', 'ke', 'h'], 'a value that looks like a command is a value');
    assert.deepEqual(hoistOptions(['--samples=3', '--json', 'time', 'h', '--nts'], spec), ['time', '--samples=3', '--json', 'h', '--nts']);
    assert.deepEqual(hoistOptions(['time', 'h', '--json'], spec), ['time', 'h', '--json']);
    assert.deepEqual(hoistOptions(['--version', 'time'], spec), ['--version', 'time']);
    assert.deepEqual(hoistOptions(['--json', 'bogus', 'time'], spec), ['--json', 'bogus', 'time']);
    assert.deepEqual(hoistOptions(['--', 'time'], spec), ['--', 'time']);
  });
});

describe('format.ts: output', () => {
  test('seconds in human units', () => {
    assert.equal(formatSeconds(0), '0 s');
    assert.equal(formatSeconds(1.5), '1.500000 s');
    assert.equal(formatSeconds(-2.25, true), '-2.250000 s');
    assert.equal(formatSeconds(0.001425), '1.425 ms');
    assert.equal(formatSeconds(0.0123456, true), '+12.346 ms');
    assert.equal(formatSeconds(-0.000281), '-281.0 µs');
    assert.equal(formatSeconds(0.0000005, true), '+0.5 µs');
  });

  test('endpoints, cookies, aligned rows', () => {
    assert.equal(formatEndpoint('::1', 123), '[::1]:123');
    assert.equal(formatEndpoint('127.0.0.1', 123), '127.0.0.1:123');
    assert.equal(formatCookies([168, 168]), '2 × 168 bytes');
    assert.equal(formatCookies([104, 168, 120]), '3 (104 to 168 bytes)');
    assert.equal(formatCookies([]), 'none');
    assert.equal(formatRows([['a', '1'], ['longer key', '2']]), 'a:          1\nlonger key: 2\n');
  });

  const algorithm = aeadById(17) as AeadAlgorithm;
  const ke: NtsKeResult = {
    keHost: 'localhost',
    kePort: 4460,
    tlsVersion: 'TLSv1.3',
    alpn: 'ntske/1',
    aead: algorithm,
    c2s: new Uint8Array(64).fill(0xaa),
    s2c: new Uint8Array(64).fill(0xbb),
    cookies: [new Uint8Array(168), new Uint8Array(168)],
    ntpHost: 'time.example.net',
    ntpPort: 1123,
    serverRecord: 'time.example.net',
    portRecord: 1123,
    warnings: [],
    durationMs: 12.5,
  };

  test('ke --json has counts and sizes, never keys or cookies', () => {
    const doc = keJson(ke);
    assert.deepEqual(doc.cookies, { count: 2, sizes: [168, 168] });
    assert.deepEqual(doc.ntpServer, { host: 'time.example.net', port: 1123 });
    const text = JSON.stringify(doc);
    assert.doesNotMatch(text, /c2s|s2c|170|187/i);
  });

  test('time rows: the values, the authentication and where they came from', () => {
    const sample = {
      offset: -0.000281,
      delay: 0.001425,
      stratum: 2,
      refid: '192.0.2.1',
      leap: 'none' as const,
      version: 4,
      poll: 0,
      precision: -20,
      rootDelay: 0.0005,
      rootDispersion: 0.002,
      referenceTime: 1_700_000_000,
      server: { address: '::1', port: 1123 },
      authentication: { kind: 'nts' as const, aead: 17, aeadName: 'AES-SIV-CMAC-512' },
    };
    const result: TimeResult = { ...sample, samples: [sample, { ...sample, delay: 0.002 }], ke };
    assert.deepEqual(new Map(timeRows(result)), new Map([
      ['offset', '-281.0 µs'],
      ['delay', '1.425 ms'],
      ['stratum', '2'],
      ['refid', '192.0.2.1'],
      ['leap', 'none'],
      ['root delay', '500.0 µs'],
      ['root dispersion', '2.000 ms'],
      ['authentication', 'NTS, AES-SIV-CMAC-512 (AEAD 17)'],
      ['NTP server', '[::1]:1123'],
      ['NTS-KE server', 'localhost:4460'],
      ['samples', '2, best delay shown (delays 1.425 ms to 2.000 ms)'],
    ]));
  });
});

describe('usage errors exit 2 with one line on stderr', { concurrency: true }, () => {
  const cases: string[][] = [
    ['time'],
    ['time', 'a', 'b'],
    ['bogus'],
    ['time', 'host', '--bogus'],
    ['time', 'host', '--samples', '0'],
    ['time', 'host', '--samples', 'x'],
    ['time', 'host', '--timeout', '3'],
    ['time', 'host', '--timeout', 'soon'],
    ['time', 'a:b:c'],
    ['time', 'host:70000'],
    ['time', 'host', '--ke-port', '4460'],
    ['time', 'host', '--ca', 'ca.pem'],
    ['time', 'host:4460', '--nts', '--ke-port', '4461'],
    ['time', 'host', '--nts', '--aead', 'AES-GCM'],
    ['time', 'host', '--nts', '--ca', '/nonexistent/ca.pem'],
    ['ke', 'host', '--nts'],
    ['ke', 'host', '--samples', '3'],
    ['--nts', 'ke', 'host'],
  ];
  for (const args of cases) {
    test(`ntptsc ${args.join(' ')}`, async () => {
      const run = await inProcess(...args);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /^ntptsc: [^\n]+\n$/);
      assert.equal(run.stdout, '');
    });
  }

  test('no arguments: the help on stderr, exit 2; --help and --version exit 0', async () => {
    const none = await inProcess();
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Usage: ntptsc/);
    const help = await inProcess('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /time \[options\] <host\[:port\]>/);
    assert.match(help.stdout, /ke \[options\] <host\[:port\]>/);
    assert.equal((await inProcess('--json', '--help', 'time')).code, 0);
    assert.equal((await inProcess('time', '--help')).code, 0);
    assert.equal((await inProcess('--version')).code, 0);
  });

  test('the same, spawned', async () => {
    const run = await ntptsc('time', '--samples', 'x', 'host');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^ntptsc: .*--samples.*\n$/);
  });
});

describe('ntptsc against a real daemon', { concurrency: true }, () => {
  let daemon: RunningDaemon;
  let ntp: number;
  let ke: number;
  let ca: string;
  let ipv6 = false;
  let silent: UdpSocket;
  let silentPort: number;
  let otherCa: string;

  before(async () => {
    ntp = await freeUdpPort();
    ke = await freeTcpPort();
    ipv6 = await new Promise<boolean>((done) => {
      const s = createSocket('udp6');
      s.once('error', () => done(false));
      s.bind(ntp, '::1', () => s.close(() => done(true)));
    });
    const listen = [`"127.0.0.1:${ntp}"`, ...(ipv6 ? [`"[::1]:${ntp}"`] : [])].join(', ');
    const [started, testCa] = await Promise.all([
      startDaemon({
        config: `[daemon]
state-dir = "STATE_DIR"

[ntp]
listen = [${listen}]

[ntp.rate-limit]
enabled = false

[nts]
ntp-port = ${ntp}

[[listener]]
address = "127.0.0.1:${ke}"
services = ["nts-ke"]
default-service = "nts-ke"
`,
      }),
      makeTestCa(),
    ]);
    daemon = started;
    ca = join(daemon.stateDir, 'cert.pem');
    otherCa = testCa.caCert;
    silent = createSocket('udp4');
    await new Promise<void>((done) => silent.bind(0, '127.0.0.1', () => done()));
    silentPort = silent.address().port;
  });

  after(async () => {
    silent.close();
    assert.equal(await daemon.stop(), 0);
  });

  test('time HOST:PORT (plain NTP)', async () => {
    const run = await ntptsc('time', `127.0.0.1:${ntp}`);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const r = rows(run.stdout);
    assert.deepEqual([...r.keys()], ['offset', 'delay', 'stratum', 'refid', 'leap', 'root delay', 'root dispersion', 'authentication', 'NTP server']);
    assert.match(r.get('offset') as string, /^[+-]?\d+\.\d+ (s|ms|µs)$|^0 s$/);
    assert.match(r.get('delay') as string, /^\d+\.\d+ (s|ms|µs)$/);
    assert.equal(r.get('stratum'), '10');
    assert.equal(r.get('leap'), 'none');
    assert.equal(r.get('authentication'), 'none');
    assert.equal(r.get('NTP server'), `127.0.0.1:${ntp}`);
    // Values line up.
    const columns = new Set(run.stdout.trimEnd().split('\n').map((line) => line.search(/(?<=:\s+)\S/)));
    assert.equal(columns.size, 1);
  });

  test('time --nts: NTS-KE on HOST:PORT, then the NTP server it names, authenticated', async () => {
    const run = await ntptsc('time', `localhost:${ke}`, '--nts', '--ca', ca);
    assert.equal(run.code, 0, run.stderr);
    const r = rows(run.stdout);
    assert.equal(r.get('authentication'), 'NTS, AES-SIV-CMAC-512 (AEAD 17)');
    assert.equal(r.get('NTP server'), `127.0.0.1:${ntp}`);
    assert.equal(r.get('NTS-KE server'), `localhost:${ke}`);
  });

  test('time --nts --ke-port N --samples 3 --json: one JSON document with every sample', async () => {
    const run = await ntptsc('time', 'localhost', '--nts', '--ke-port', String(ke), '--ca', ca, '--samples', '3', '--json');
    assert.equal(run.code, 0, run.stderr);
    const doc = JSON.parse(run.stdout) as Record<string, unknown> & { samples: Array<Record<string, unknown>>; ke: Record<string, unknown> };
    for (const key of ['offset', 'delay', 'stratum', 'refid', 'leap', 'rootDelay', 'rootDispersion', 'referenceTime', 'server', 'authentication', 'ke', 'samples']) {
      assert.ok(key in doc, key);
    }
    assert.equal(typeof doc['offset'], 'number');
    assert.deepEqual(doc['server'], { address: '127.0.0.1', port: ntp });
    assert.deepEqual(doc['authentication'], { kind: 'nts', aead: 17, aeadName: 'AES-SIV-CMAC-512' });
    assert.equal(doc.samples.length, 3);
    assert.equal(doc['delay'], Math.min(...doc.samples.map((s) => s['delay'] as number)));
    assert.deepEqual(doc.ke['keServer'], { host: 'localhost', port: ke });
    assert.equal((doc.ke['cookies'] as { count: number }).count, 8);
    assert.doesNotMatch(run.stdout, /c2s|s2c/);
  });

  test('options before or after the command word mean the same', async () => {
    const [before, afterwards] = await Promise.all([
      ntptsc('--json', '--nts', '--aead', 'AES-SIV-CMAC-256', '--ca', ca, 'time', `localhost:${ke}`),
      ntptsc('time', `localhost:${ke}`, '--json', '--nts', '--aead', 'AES-SIV-CMAC-256', '--ca', ca),
    ]);
    assert.equal(before.code, 0, before.stderr);
    assert.equal(afterwards.code, 0, afterwards.stderr);
    const a = JSON.parse(before.stdout) as Record<string, unknown>;
    const b = JSON.parse(afterwards.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(a), Object.keys(b));
    assert.deepEqual(a['authentication'], { kind: 'nts', aead: 15, aeadName: 'AES-SIV-CMAC-256' });
    assert.deepEqual(b['authentication'], a['authentication']);
  });

  test('time [::1]:PORT', async (t) => {
    if (!ipv6) {
      t.diagnostic('no IPv6 loopback here');
      return;
    }
    const run = await ntptsc('time', `[::1]:${ntp}`);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(rows(run.stdout).get('NTP server'), `[::1]:${ntp}`);
  });

  test('ke: what was negotiated, for people and as JSON', async () => {
    const [human, json] = await Promise.all([ntptsc('ke', `localhost:${ke}`, '--ca', ca), ntptsc('--json', 'ke', `127.0.0.1:${ke}`, '--ca', ca)]);
    assert.equal(human.code, 0, human.stderr);
    const r = rows(human.stdout);
    assert.deepEqual([...r.keys()], ['NTS-KE server', 'TLS', 'ALPN', 'AEAD', 'cookies', 'Server record', 'Port record', 'NTP server', 'warnings', 'time taken']);
    assert.equal(r.get('NTS-KE server'), `localhost:${ke}`);
    assert.equal(r.get('TLS'), 'TLSv1.3');
    assert.equal(r.get('ALPN'), 'ntske/1');
    assert.equal(r.get('AEAD'), 'AES-SIV-CMAC-512 (17)');
    assert.match(r.get('cookies') as string, /^8 × \d+ bytes$/);
    assert.equal(r.get('Server record'), 'none');
    assert.equal(r.get('Port record'), String(ntp));
    assert.equal(r.get('NTP server'), `localhost:${ntp}`);
    assert.equal(r.get('warnings'), 'none');
    assert.match(r.get('time taken') as string, /^\d+\.\d+ (ms|s)$/);

    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.deepEqual(doc['keServer'], { host: '127.0.0.1', port: ke });
    assert.equal(doc['tlsVersion'], 'TLSv1.3');
    assert.equal(doc['alpn'], 'ntske/1');
    assert.deepEqual(doc['aead'], { id: 17, name: 'AES-SIV-CMAC-512' });
    assert.equal((doc['cookies'] as { count: number; sizes: number[] }).sizes.length, 8);
    assert.equal(doc['serverRecord'], null);
    assert.equal(doc['portRecord'], ntp);
    assert.deepEqual(doc['ntpServer'], { host: '127.0.0.1', port: ntp });
    assert.deepEqual(doc['warnings'], []);
    assert.equal(typeof doc['durationMs'], 'number');
  });

  test('a silent NTP server: exit 1 after --timeout, one line on stderr; --json adds the error document', async () => {
    const [plain, json] = await Promise.all([
      ntptsc('time', `127.0.0.1:${silentPort}`, '--timeout', '300ms'),
      ntptsc('time', `127.0.0.1:${silentPort}`, '--timeout', '300ms', '--json'),
    ]);
    assertFailure(plain, new RegExp(`no valid answer from 127\\.0\\.0\\.1:${silentPort} within 300 ms`));
    assert.equal(plain.stdout, '');
    assertFailure(json, /no valid answer/);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'NTP_TIMEOUT');
  });

  test('a CA that did not sign the daemon\'s certificate: exit 1 with a certificate error', async () => {
    const [time, keRun] = await Promise.all([ntptsc('time', `localhost:${ke}`, '--nts', '--ca', otherCa), ntptsc('ke', `localhost:${ke}`, '--ca', otherCa, '--json')]);
    assertFailure(time, /certificate of localhost:\d+ not trusted/);
    assertFailure(keRun, /certificate/);
    assert.equal((JSON.parse(keRun.stdout) as { error: { code: string } }).error.code, 'KE_CERTIFICATE');
  });
});
