// ntptsc ekey: output formats, --out (the managed block; every other byte kept), renewal keeping the key id, a
// refused renewal, --renew with --on-renew spawned as a user runs it and stopped with SIGTERM, and usage errors.
// Against the fake EKS server of test/helpers/eks-fake.ts (the daemon's end-to-end tests live elsewhere).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../src/cli/ntptsc.js';
import { formatDelay, issuedKeyIdProblem, renewalDelayMs, retryDelayMs, serverDirective, useHint } from '../../src/cli/ekey-format.js';
import { encodeEksError, encodeEksKeyResponse } from '../../src/proto/eks/message.js';
import { EksErrorCode } from '../../src/proto/eks/records.js';
import { assertUsage, runInProcess, type CliRun } from '../helpers/cli.js';
import { startEksFake, type EksFake, type EksFakeOptions } from '../helpers/eks-fake.js';
import { makeTestCa, type TestCa } from '../interop/peers.js';

const root = resolve(import.meta.dirname, '../..');
let ca: TestCa;
let dir: string;
before(async () => {
  ca = await makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'ntptsc-ekey-'));
});
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
  rmSync(dir, { recursive: true, force: true });
});

async function fake(options: EksFakeOptions = {}): Promise<EksFake> {
  const f = await startEksFake(ca, options);
  closers.push(f.close);
  return f;
}

/** `ntptsc ARGS` in this process. */
const ntptsc = (...args: string[]): Promise<CliRun> => runInProcess((io) => main(args, io));
/** `ntptsc ekey localhost:PORT --ca CA ARGS`. */
const ekey = (f: { port: number }, ...args: string[]) => ntptsc('ekey', `localhost:${f.port}`, '--ca', ca.caCert, ...args);

let fileCount = 0;
const newPath = (name = 'keys') => join(dir, `${name}-${++fileCount}`);
const hex = (key: Uint8Array | undefined) => Buffer.from(key ?? []).toString('hex');

function assertOk(run: CliRun): void {
  assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
}

describe('ntptsc ekey: printing the key', { concurrency: true }, () => {
  test('default (ntp): the key line on stdout, expiry and the server line on stderr', async () => {
    const f = await fake();
    const run = await ekey(f);
    assertOk(run);
    assert.equal(run.stdout, `32768 AES128CMAC ${hex(f.keys.get(32768))}\n`);
    assert.match(run.stderr, /^key 32768 expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; use: server localhost key 32768\n$/);
  });

  test('--format chrony', async () => {
    const f = await fake({ ntpServer: 'ntp.example.net', ntpPort: 1123 });
    const run = await ekey(f, '--format', 'chrony');
    assertOk(run);
    assert.equal(run.stdout, `32768 AES128 HEX:${hex(f.keys.get(32768))}\n`);
    assert.match(run.stderr, /; use: server ntp\.example\.net port 1123 key 32768\n$/);
  });

  test('--format json and --json (also before the command word): one document, nothing on stderr', async () => {
    const f = await fake({ ntpServer: 'ntp.example.net', lifetimeSeconds: 7200 });
    for (const run of [await ekey(f, '--format', 'json'), await ntptsc('--json', 'ekey', '--ca', ca.caCert, `localhost:${f.port}`)]) {
      assertOk(run);
      assert.equal(run.stderr, '');
      const doc = JSON.parse(run.stdout) as Record<string, unknown>;
      const keyId = doc['keyId'] as number;
      assert.deepEqual(Object.keys(doc), ['keyId', 'algorithm', 'key', 'expiresAt', 'lifetime', 'ntpServer', 'ntpPort', 'renewed', 'eksServer']);
      assert.equal(doc['algorithm'], 'AES128CMAC');
      assert.equal(doc['key'], hex(f.keys.get(keyId)));
      assert.match(doc['expiresAt'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(doc['lifetime'], 7200);
      assert.equal(doc['ntpServer'], 'ntp.example.net');
      assert.equal(doc['ntpPort'], 123);
      assert.equal(doc['renewed'], false);
      assert.deepEqual(doc['eksServer'], { host: 'localhost', port: f.port });
    }
  });

  test('--token and --token-file are sent', async () => {
    const f = await fake({ token: 's3cret' });
    const tokenFile = newPath('token');
    writeFileSync(tokenFile, '  s3cret  \nsecond line ignored\n');
    assertOk(await ekey(f, '--token', 's3cret'));
    assertOk(await ekey(f, '--token-file', tokenFile));
    assert.deepEqual(
      f.exchanges.map((e) => e.request.token),
      ['s3cret', 's3cret'],
    );
  });

  test('a refusal: exit 1 with one line saying why (and with --json an error document)', async () => {
    const f = await fake({ token: 's3cret' });
    const run = await ekey(f);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^ntptsc: localhost:\d+: server refused: Unauthorized \(token required or not accepted\)\n$/);
    const json = await ekey(f, '--json');
    assert.equal(json.code, 1);
    const doc = JSON.parse(json.stdout) as { error: { code: string; details: Record<string, unknown> } };
    assert.equal(doc.error.code, 'EKS_ERROR_3');
    assert.equal(doc.error.details['errorCode'], 3);
  });

  test('an untrusted certificate: exit 1', async () => {
    const f = await fake();
    const run = await ntptsc('ekey', `localhost:${f.port}`);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^ntptsc: certificate of localhost:\d+ not trusted: [^\n]+\n$/);
  });
});

/** The managed block ntptsc writes for `source` holding `line`. */
function blockOf(text: string, source: string): string {
  const m = new RegExp(`# BEGIN ntptsc ekey ${source.replace(/[[\]]/g, '\\$&')}\\n(?:.*\\n)*?# END ntptsc ekey ${source.replace(/[[\]]/g, '\\$&')}\\n`).exec(text);
  assert.ok(m, `no block for ${source} in:\n${text}`);
  return m[0];
}

describe('ntptsc ekey --out', { concurrency: true }, () => {
  test('creates the keys file (mode 0600) with the managed block', async () => {
    const f = await fake();
    const own = mkdtempSync(join(dir, 'own-'));
    const file = join(own, 'ntp.keys');
    const run = await ekey(f, '--out', file);
    assertOk(run);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, new RegExp(`^key 32768 \\(new\\) written to ${file}; expires \\S+Z; use: server localhost key 32768\\n$`));
    const text = readFileSync(file, 'utf8');
    const source = `localhost:${f.port}`;
    const lines = text.split('\n');
    assert.equal(lines[0], `# BEGIN ntptsc ekey ${source}`);
    assert.match(lines[1] ?? '', new RegExp(`^# key 32768 from ntptsd at ${source}, expires \\S+Z$`));
    assert.equal(lines[3], `32768 AES128CMAC ${hex(f.keys.get(32768))}`);
    assert.equal(lines[4], `# END ntptsc ekey ${source}`);
    assert.equal(lines.length, 6);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(own), ['ntp.keys'], 'no temp file left');
  });

  test('a file with other keys and another server\'s block: kept byte for byte; the second run renews in place', async () => {
    const f = await fake();
    const file = newPath();
    const head = '# ntp.keys of this host\r\n1 MD5 secret-one\n2 SHA1 0123456789abcdef0123456789abcdef01234567\n\n';
    const other = '# BEGIN ntptsc ekey other.example:4460\n# key 40000 from ntptsd at other.example:4460, expires 2030-01-01T00:00:00Z\n40000 AES128CMAC 00112233445566778899aabbccddeeff\n# END ntptsc ekey other.example:4460\n';
    const tail = '3 AES128CMAC ffeeddccbbaa99887766554433221100\n# latin1 byte: \xe9 and no final newline';
    const original = head + other + tail;
    writeFileSync(file, original, 'latin1');
    chmodSync(file, 0o640);

    const first = await ekey(f, '--out', file, '--json');
    assertOk(first);
    const doc1 = JSON.parse(first.stdout) as Record<string, unknown>;
    assert.equal(doc1['file'], file);
    assert.equal(doc1['format'], 'ntp');
    assert.equal(doc1['previousKeyId'], null);
    assert.equal(doc1['renewed'], false);
    const after1 = readFileSync(file, 'latin1');
    const source = `localhost:${f.port}`;
    const block1 = blockOf(after1.replace(/\r\n/g, '\n'), source);
    assert.ok(after1.startsWith(original), 'appended after everything that was there');
    assert.match(after1.slice(original.length), /^\r?\n# BEGIN/);
    assert.match(block1, new RegExp(`\\n32768 AES128CMAC ${hex(f.keys.get(32768))}\\n`));
    assert.equal(statSync(file).mode & 0o777, 0o640, 'the file keeps its mode (no "other" bits)');

    // Second run: the block holds a key, so it is renewed: same id, new key, the rest untouched.
    const second = await ekey(f, '--out', file, '--json');
    assertOk(second);
    const doc2 = JSON.parse(second.stdout) as Record<string, unknown>;
    assert.equal(doc2['keyId'], 32768);
    assert.equal(doc2['renewed'], true);
    assert.equal(doc2['previousKeyId'], 32768);
    assert.equal(f.exchanges[1]?.request.renew?.keyId, 32768);
    assert.equal(f.exchanges[1]?.proofValid, true);
    const after2 = readFileSync(file, 'latin1');
    assert.ok(after2.startsWith(original));
    assert.equal(after2.length, after1.length);
    assert.ok(after2.includes(`32768 AES128CMAC ${hex(f.keys.get(32768))}`));
    assert.ok(!after2.includes(hex(doc1['key'] === undefined ? undefined : Buffer.from(doc1['key'] as string, 'hex'))), 'the old key is gone');
    assert.ok(after2.includes(other), 'the other server\'s block is untouched');
  });

  test('renewal in the chrony format; a block in the other format is still renewed (same id)', async () => {
    const f = await fake();
    const file = newPath();
    assertOk(await ekey(f, '--out', file, '--format', 'chrony'));
    assert.match(readFileSync(file, 'utf8'), new RegExp(`\\n32768 AES128 HEX:${hex(f.keys.get(32768))}\\n`));
    const run = await ekey(f, '--out', file, '--format', 'ntp');
    assertOk(run);
    assert.match(run.stderr, /^key 32768 \(renewed\) written to /);
    assert.match(readFileSync(file, 'utf8'), new RegExp(`\\n32768 AES128CMAC ${hex(f.keys.get(32768))}\\n`));
    assert.equal(f.exchanges[1]?.proofValid, true);
  });

  test('a refused renewal (Error 6): a new key, and a warning that the key id changed', async () => {
    const f = await fake();
    const file = newPath();
    assertOk(await ekey(f, '--out', file));
    f.keys.set(32768, new Uint8Array(randomBytes(16))); // as if revoked or rotated out: the proof no longer verifies
    const run = await ekey(f, '--out', file);
    assertOk(run);
    assert.match(run.stderr, /^ntptsc: warning: the server refused to renew key 32768 .*the key id changed from 32768 to 32769: the NTP client's `key` setting must be updated \(server localhost key 32769\)\n/);
    assert.match(run.stderr, /\nkey 32769 \(new, replacing 32768\) written to /);
    const text = readFileSync(file, 'utf8');
    assert.ok(text.includes(`\n32769 AES128CMAC ${hex(f.keys.get(32769))}\n`));
    assert.ok(!/\n32768 AES128CMAC/.test(text));
    assert.deepEqual(
      f.exchanges.map((e) => e.answer.kind === 'error' ? e.answer.code : e.answer.kind),
      ['key', EksErrorCode.RENEWAL_REFUSED, 'key'],
    );
  });

  test('a block that cannot be replaced safely: exit 1, nothing asked, the file unchanged', async () => {
    const f = await fake();
    const file = newPath();
    const broken = `1 MD5 x\n# BEGIN ntptsc ekey localhost:${f.port}\n32768 AES128CMAC 00112233445566778899aabbccddeeff\n`;
    writeFileSync(file, broken);
    const run = await ekey(f, '--out', file);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^ntptsc: .*without an END; fix the file by hand \(it was not changed\)\n$/);
    assert.equal(readFileSync(file, 'utf8'), broken);
    assert.equal(f.exchanges.length, 0);
  });

  test('a symlinked keys file stays a symlink; --on-renew runs after the write with the key id', async () => {
    const f = await fake();
    const real = newPath('real');
    const link = newPath('link');
    writeFileSync(real, '');
    symlinkSync(real, link);
    const log = newPath('hook');
    const run = await ekey(f, '--out', link, '--on-renew', `echo "id=$NTPTSC_KEY_ID prev=$NTPTSC_PREVIOUS_KEY_ID file=$NTPTSC_KEYS_FILE" >> ${log}`);
    assertOk(run);
    assert.ok(statSync(link).isFile());
    assert.match(readFileSync(real, 'utf8'), /\n32768 AES128CMAC /);
    assert.equal(readFileSync(log, 'utf8'), `id=32768 prev= file=${link}\n`);
    assert.match(run.stderr, /\n--on-renew command exited with status 0\n$/);
  });

  test('without --renew, a failing --on-renew makes the exit code 1 (the file is written all the same)', async () => {
    const f = await fake();
    const file = newPath();
    const run = await ekey(f, '--out', file, '--on-renew', 'echo reload failed >&2; exit 7');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /\nreload failed\nntptsc: --on-renew command exited with status 7\n$/);
    assert.match(readFileSync(file, 'utf8'), /\n32768 AES128CMAC /);
  });
});

/** A fake that issues every key under `keyId`, whatever a correct server would do. */
function fakeIssuing(keyId: number): Promise<EksFake> {
  return fake({
    respond: (session) => {
      const key = new Uint8Array(randomBytes(16));
      session.exchange.answer = { kind: 'key', keyId, key, renewed: false };
      return encodeEksKeyResponse({ algorithm: 1, keyId, key, expirySeconds: Math.floor(Date.now() / 1000) + 3600, lifetimeSeconds: 3600, ntpServer: null, ntpPort: null, warnings: [] });
    },
  });
}

describe('ntptsc ekey: the key id is not taken on trust', { concurrency: true }, () => {
  test('an id outside 32768..65535 (docs/eks.md §3): exit 1, nothing printed, no file written or created', async () => {
    for (const keyId of [5, 32767, 65536, 0xffffffff]) {
      const f = await fakeIssuing(keyId);
      const expected = new RegExp(`^ntptsc: localhost:\\d+ issued a key the client refuses: key id ${keyId} is outside the ephemeral key range 32768\\.\\.65535 \\(docs/eks\\.md §3\\); nothing was written\\n$`);
      for (const format of ['ntp', 'chrony']) {
        const run = await ekey(f, '--format', format);
        assert.equal(run.code, 1, `${keyId} ${format}`);
        assert.equal(run.stdout, '');
        assert.match(run.stderr, expected);
      }
      const json = await ekey(f, '--json');
      assert.equal(json.code, 1);
      const doc = JSON.parse(json.stdout) as { error: { code: string; details: Record<string, unknown> } };
      assert.equal(doc.error.code, 'EKS_BAD_RESPONSE');
      assert.equal(doc.error.details['keyId'], keyId);
      // --out: an existing file is left alone, a missing one is not created.
      const file = newPath();
      const original = '1 MD5 static\n';
      writeFileSync(file, original);
      const run = await ekey(f, '--out', file);
      assert.equal(run.code, 1);
      assert.match(run.stderr, expected);
      assert.equal(readFileSync(file, 'utf8'), original);
      const missing = newPath();
      assert.equal((await ekey(f, '--out', missing, '--format', 'chrony')).code, 1);
      assert.ok(!existsSync(missing));
    }
  });

  test("the id is already in another server's block: exit 1 naming the line, the file unchanged", async () => {
    const f = await fakeIssuing(32768); // every EKS server allocates from 32768 first
    const file = newPath();
    const other = '# BEGIN ntptsc ekey other.example:4460\n# key 32768 from ntptsd at other.example:4460, expires 2030-01-01T00:00:00Z\n32768 AES128CMAC 00112233445566778899aabbccddeeff\n# END ntptsc ekey other.example:4460\n';
    const original = `1 MD5 secret-one\n${other}`;
    writeFileSync(file, original);
    const run = await ekey(f, '--out', file);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      new RegExp(
        `^ntptsc: ${file}: localhost:${f.port} issued key 32768, but line 4: key id 32768 is already defined there \\(in the block for other\\.example:4460\\); not written \\(the file was not changed\\): .*disjoint eks\\.key-id-range\\n$`,
      ),
    );
    assert.equal(readFileSync(file, 'utf8'), original);
    const json = await ekey(f, '--out', file, '--json');
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'EKEY_KEY_ID_TAKEN');
    assert.equal(readFileSync(file, 'utf8'), original);
  });

  test("the id is an operator's key (ntp or chrony syntax): exit 1 naming the line, the file unchanged, also with --renew", async () => {
    const f = await fakeIssuing(32768);
    for (const [format, line] of [
      ['ntp', '32768 SHA1 0123456789abcdef0123456789abcdef01234567'],
      ['chrony', '32768 AES128 HEX:00112233445566778899aabbccddeeff'],
      ['chrony', ' 32768 MD5 HEX:0011'],
    ] as const) {
      const file = newPath();
      const original = `# mine\r\n${line}\r\n`;
      writeFileSync(file, original);
      const run = await ekey(f, '--out', file, '--format', format);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /issued key 32768, but line 2: key id 32768 is already defined there \(outside the block for localhost:\d+\); not written/);
      assert.equal(readFileSync(file, 'utf8'), original);
    }
    // --renew: a local problem that retrying does not cure ends the loop (exit 1) rather than spinning.
    const file = newPath();
    writeFileSync(file, '32768 MD5 x\n');
    const run = await ekey(f, '--out', file, '--renew');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /line 1: key id 32768 is already defined there/);
    assert.equal(readFileSync(file, 'utf8'), '32768 MD5 x\n');
  });

  test('issuedKeyIdProblem (pure)', () => {
    for (const keyId of [32768, 40000, 65535]) assert.equal(issuedKeyIdProblem(keyId), null);
    for (const keyId of [0, 1, 32767, 65536, 2 ** 32, 1.5, Number.NaN]) assert.match(issuedKeyIdProblem(keyId) ?? '', /outside the ephemeral key range 32768\.\.65535/);
  });
});

describe('ntptsc ekey: usage errors (exit 2)', { concurrency: true }, () => {
  test('bad combinations and values', async () => {
    assertUsage(await ntptsc('ekey', 'localhost', '--renew'), /--renew needs --out FILE/);
    assertUsage(await ntptsc('ekey', 'localhost', '--on-renew', 'true'), /--on-renew needs --out FILE/);
    assertUsage(await ntptsc('ekey', 'localhost', '--format', 'yaml'), /--format.*yaml.*ntp, chrony, json/);
    assertUsage(await ntptsc('ekey', 'localhost', '--format', 'json', '--out', newPath()), /--out writes a keys file/);
    assertUsage(await ntptsc('ekey', 'localhost', '--token', 'a', '--token-file', 'b'), /exclude each other/);
    assertUsage(await ntptsc('ekey', 'localhost', '--token', 'x'.repeat(257)), /1 to 256 octets/);
    assertUsage(await ntptsc('ekey', 'localhost', '--out', newPath(), '--renew-after', '1'), /--renew-after needs --renew/);
    assertUsage(await ntptsc('ekey', 'localhost', '--out', newPath(), '--renew', '--renew-after', '-1'), /renew-after/);
    assertUsage(await ntptsc('ekey', 'bad host'), /invalid host/);
    assertUsage(await ntptsc('ekey', 'localhost:0'), /invalid port/);
    assertUsage(await ntptsc('ekey', 'localhost', '--ca', join(dir, 'missing.pem')), /cannot read --ca file/);
    assertUsage(await ntptsc('ekey'), /missing required argument/);
  });

  test('the help names the options but not the hidden --renew-after', async () => {
    const run = await ntptsc('ekey', '--help');
    assert.equal(run.code, 0);
    for (const option of ['--ca', '--token', '--token-file', '--format', '--out', '--renew', '--on-renew', '--json']) assert.ok(run.stdout.includes(option), option);
    assert.ok(!run.stdout.includes('--renew-after'));
  });
});

describe('ntptsc ekey: the renewal schedule (pure)', () => {
  test('2/3 of the lifetime, at least 10 s; --renew-after overrides', () => {
    assert.equal(renewalDelayMs(172_800), 115_200_000);
    assert.equal(renewalDelayMs(3), 10_000);
    assert.equal(renewalDelayMs(0), 10_000);
    assert.equal(renewalDelayMs(172_800, 0.25), 250);
    // Lifetimes past what one setTimeout can wait (24.8 days) are still computed exactly; the sleep chains timers.
    assert.equal(renewalDelayMs(0xffffffff), (0xffffffff * 1000 * 2) / 3);
  });

  test('retries: 10 s doubling to 10 min, never later than half the time left before the expiry', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 50].map((n) => retryDelayMs(n, null)), [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000, 600_000]);
    assert.equal(retryDelayMs(6, 3_600_000), 600_000);
    assert.equal(retryDelayMs(6, 60_000), 30_000);
    assert.equal(retryDelayMs(0, 4_000), 2_000);
    assert.equal(retryDelayMs(3, 500), 1_000, 'at least 1 s');
    assert.equal(retryDelayMs(3, -5_000), 80_000, 'expired: the backoff alone');
    assert.equal(retryDelayMs(2, null, 300, 18_000), 1_200, 'scaled by --renew-after');
  });

  test('lines for people', () => {
    const result = { keyId: 32770, ntpHost: 'ntp.example.net', ntpPort: 123, expiresAt: new Date(Date.UTC(2026, 10, 28, 17, 40)) };
    assert.equal(useHint(result), 'key 32770 expires 2026-11-28T17:40:00Z; use: server ntp.example.net key 32770');
    assert.equal(serverDirective({ ...result, ntpPort: 1123 }), 'server ntp.example.net port 1123 key 32770');
    assert.deepEqual([500, 12_000, 59_000, 60_000, 45 * 60_000, 32 * 3_600_000 + 5 * 60_000, 115_200_000, 2 * 86_400_000].map(formatDelay), [
      '500ms',
      '12s',
      '59s',
      '1m',
      '45m',
      '1d 8h',
      '1d 8h',
      '2d',
    ]);
  });
});

describe('ntptsc ekey --renew (spawned as a user runs it)', () => {
  test('renews twice keeping the id, runs --on-renew after each write (a failing command does not stop it), retries a refusal, exits 0 on SIGTERM', async () => {
    let count = 0;
    // The second exchange is refused once (Try Later): the loop retries, then renews as usual.
    const f = await fake({
      respond: (session) => {
        if (++count !== 2) return session.issue();
        session.exchange.answer = { kind: 'error', code: EksErrorCode.TRY_LATER };
        return encodeEksError(EksErrorCode.TRY_LATER);
      },
    });
    const file = newPath();
    const log = newPath('hook');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/ntptsc.ts',
        'ekey',
        `localhost:${f.port}`,
        '--ca',
        ca.caCert,
        '--out',
        file,
        '--renew',
        '--renew-after',
        '0.3',
        '--on-renew',
        `echo "$NTPTSC_KEY_ID" >> ${log}; exit 3`,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) =>
      child.on('exit', (code, signal) => resolveExit({ code, signal })),
    );
    try {
      const deadline = Date.now() + 30_000;
      const hookRuns = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0);
      while (hookRuns() < 3) {
        assert.ok(Date.now() < deadline, `no third write in time; stderr:\n${stderr}`);
        assert.equal(child.exitCode, null, `ntptsc exited early; stderr:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGTERM');
      const { code, signal } = await exited;
      assert.equal(signal, null, stderr);
      assert.equal(code, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(stdout, '');
    // Writes 1 (new), 2 and 3 (renewals), each followed by the command.
    assert.deepEqual(readFileSync(log, 'utf8').split('\n').filter(Boolean).slice(0, 3), ['32768', '32768', '32768']);
    const answers = f.exchanges.map((e) => (e.answer.kind === 'key' ? (e.answer.renewed ? 'renewed' : 'new') : e.answer.kind === 'error' ? `error ${e.answer.code}` : 'scripted'));
    assert.deepEqual(answers.slice(0, 4), ['new', 'error 4', 'renewed', 'renewed']);
    assert.ok(f.exchanges.slice(1).every((e) => e.request.renew?.keyId === 32768 && e.proofValid === true));
    const lastKey = [...f.exchanges].reverse().find((e) => e.answer.kind === 'key')?.answer;
    assert.ok(lastKey?.kind === 'key');
    assert.ok(readFileSync(file, 'utf8').includes(`\n32768 AES128CMAC ${hex(lastKey.key)}\n`), 'the file holds the latest key');
    assert.match(stderr, /^key 32768 \(new\) written to /m);
    assert.match(stderr, /^key 32768 \(renewed\) written to /m);
    assert.match(stderr, /^ntptsc: --on-renew command exited with status 3$/m);
    assert.match(stderr, /^ntptsc: localhost:\d+: server refused: Try Later .*; retrying in \d+ms$/m);
    assert.match(stderr, /^next renewal in \d+ms$/m);
  });
});
