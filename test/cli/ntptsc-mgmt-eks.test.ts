// `ntptsc eks list` and `ntptsc eks revoke ID` against the fake management server (test/helpers/mgmt-fake.ts):
// the tables for people, --json, the params sent, usage errors (exit 2, one line, nothing sent), failures of the
// daemon (exit 1), the `key-revoked` event line of `watch`, and the --help listing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/ntptsc.js';
import { formatEksList, formatEksRevoke, formatEvent, isoSeconds, parseEksKeyId } from '../../src/cli/mgmt-format.js';
import { rpcError, RpcErrorCode } from '../../src/proto/mgmt/jsonrpc.js';
import { assertFailure, assertUsage, runCli, runInProcess, type CliRun } from '../helpers/cli.js';
import { EKS_LIST, EKS_REVOKED, startFakeUnix, type FakeMgmt } from '../helpers/mgmt-fake.js';

const inProcess = (...args: string[]): Promise<CliRun> => runInProcess((io) => main(args, io));

const LIST_TABLE = [
  '2 shown, 2 live; key ids 32768..65535',
  '',
  'KEY ID  GENERATION  ISSUED                EXPIRES               ADDRESS      TOKEN    RENEWALS',
  ' 32772  0x12345678  2025-01-02 11:30:00Z  2025-01-04 00:00:00Z  192.0.2.7    routers         0',
  ' 32770  0xdeadbeef  2025-01-02 11:00:00Z  2025-01-03 00:00:00Z  2001:db8::1  -              12',
  '',
  'revoked:',
  'KEY ID  REVOKED               UNTIL                 BY',
  ' 32769  2025-01-02 10:00:00Z  2025-01-09 00:00:00Z  ops',
  '',
].join('\n');

describe('mgmt-format.ts: eks', () => {
  test('formatEksList: keys with generations as master key ids, then revocations', () => {
    assert.equal(formatEksList(EKS_LIST), LIST_TABLE);
  });

  test('formatEksList: no revoked section without revocations; expired keys marked; no keys', () => {
    const expired = formatEksList({ ...EKS_LIST, keys: [{ ...(EKS_LIST.keys[0] as (typeof EKS_LIST.keys)[number]), expired: true }], revoked: [] });
    assert.doesNotMatch(expired, /revoked/);
    assert.match(expired, /^1 shown, 2 live; key ids 32768\.\.65535\n\nKEY ID .*\n 32772 {2}0x12345678 {2}2025-01-02 11:30:00Z {2}2025-01-04 00:00:00Z \(expired\) {2}192\.0\.2\.7/);
    assert.equal(
      formatEksList({ range: { first: 40000, last: 40099 }, live: 0, keys: [], revoked: [] }),
      '0 shown, 0 live; key ids 40000..40099\n\nKEY ID  GENERATION  ISSUED  EXPIRES  ADDRESS  TOKEN  RENEWALS\n(none)\n',
    );
  });

  test('formatEksList: control characters of names are escaped', () => {
    const text = formatEksList({ ...EKS_LIST, keys: [], revoked: [{ keyId: 40000, revokedAt: EKS_REVOKED.revokedAt, until: EKS_REVOKED.until, by: 'evil\x1b[2J' }] });
    assert.match(text, / 40000 .* evil\\x1b\[2J\n$/);
  });

  test('formatEksRevoke: one line, the time to the second', () => {
    assert.equal(formatEksRevoke(EKS_REVOKED), 'revoked key 32770 until 2026-12-04T00:00:00Z\n');
    assert.equal(formatEksRevoke({ ...EKS_REVOKED, keyId: 40000, wasIssuedHere: false }), 'revoked key 40000 until 2026-12-04T00:00:00Z (not issued by this node)\n');
    assert.equal(isoSeconds('2026-12-04T01:02:03.456789Z'), '2026-12-04T01:02:03Z');
    assert.equal(isoSeconds('soon'), 'soon');
  });

  test('parseEksKeyId: 32768..65535 in decimal', () => {
    assert.deepEqual(parseEksKeyId('32768'), { ok: true, value: 32768 });
    assert.deepEqual(parseEksKeyId('65535'), { ok: true, value: 65535 });
    for (const text of ['32767', '65536', '100', 'abc', '0x8000', '-1', '40000.0', '', ' 40000', '0040000']) {
      const r = parseEksKeyId(text);
      assert.ok(!r.ok, text);
      assert.match(r.error, /expected an ephemeral key id from 32768 to 65535/);
    }
  });

  test('the key-revoked event in words', () => {
    assert.equal(
      formatEvent({ kind: 'key-revoked', at: '2025-01-02T12:00:00.000000Z', keyId: 32770, by: 'ops', until: '2025-01-09T00:00:00.000000Z' }),
      '2025-01-02 12:00:00Z  key-revoked  ephemeral key 32770 revoked by ops until 2025-01-09 00:00:00Z',
    );
  });
});

describe('ntptsc eks over a Unix socket', () => {
  let dir: string;
  let fake: FakeMgmt;
  let failing: FakeMgmt;
  let socket: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-ntptsc-eks-'));
    fake = await startFakeUnix(dir);
    const failDir = join(dir, 'failing');
    (await import('node:fs')).mkdirSync(failDir);
    failing = await startFakeUnix(failDir, {
      errors: { 'eks.revoke': rpcError(RpcErrorCode.BACKEND_UNAVAILABLE, 'cannot write /var/lib/ntptsd/eks.json: EACCES', undefined, { backend: 'state-dir' }) },
    });
    socket = fake.path as string;
  });
  after(async () => {
    await fake?.close();
    await failing?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('eks list: the table; default params', async () => {
    const run = await inProcess('eks', 'list', '--socket', socket);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.equal(run.stdout, LIST_TABLE);
    assert.deepEqual(fake.requests.at(-1), { method: 'eks.list', params: {}, id: 1 });
  });

  test('eks list --expired --limit N become the params; options before the subcommand too', async () => {
    for (const args of [
      ['eks', 'list', '--expired', '--limit', '50', '--socket', socket],
      ['--limit', '50', 'eks', 'list', '--expired', '--socket', socket],
      ['eks', '--expired', '--socket', socket, 'list', '--limit', '50'],
    ]) {
      const run = await inProcess(...args);
      assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
      assert.deepEqual(fake.requests.at(-1)?.params, { limit: 50, expired: true }, args.join(' '));
    }
  });

  test('--json prints the raw results', async () => {
    const list = await inProcess('--json', 'eks', 'list', '--socket', socket);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), EKS_LIST);
    const revoke = await inProcess('eks', 'revoke', '40000', '--json', '--socket', socket);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.deepEqual(JSON.parse(revoke.stdout), { ...EKS_REVOKED, keyId: 40000, wasIssuedHere: false });
  });

  test('eks revoke ID: one line; the key id sent as a number', async () => {
    const run = await inProcess('eks', 'revoke', '32770', '--socket', socket);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'revoked key 32770 until 2026-12-04T00:00:00Z\n');
    assert.deepEqual(fake.requests.at(-1), { method: 'eks.revoke', params: { keyId: 32770 }, id: 1 });
  });

  test('usage errors: exit 2, one line, nothing sent', async () => {
    const sent = fake.requests.length;
    assertUsage(await inProcess('eks', 'revoke', 'abc', '--socket', socket), /expected an ephemeral key id from 32768 to 65535, got "abc"/);
    assertUsage(await inProcess('eks', 'revoke', '100', '--socket', socket), /expected an ephemeral key id from 32768 to 65535, got "100"/);
    assertUsage(await inProcess('eks', 'revoke', '65536', '--socket', socket), /got "65536"/);
    assertUsage(await inProcess('eks', 'revoke', '--socket', socket), /missing required argument 'id'/);
    assertUsage(await inProcess('eks', 'revoke', '40000', '40001', '--socket', socket), /too many arguments/);
    assertUsage(await inProcess('eks', 'list', '--limit', '0', '--socket', socket), /--limit/);
    assertUsage(await inProcess('eks', 'list', '--limit', '100001', '--socket', socket), /--limit/);
    assertUsage(await inProcess('eks', 'list', 'extra', '--socket', socket), /too many arguments/);
    assertUsage(await inProcess('eks', 'frobnicate', '--socket', socket), /unknown command 'frobnicate'/);
    assert.equal(fake.requests.length, sent);
  });

  test('the daemon cannot save the revocation: exit 1 with the reason; --json has the error document', async () => {
    const run = await inProcess('eks', 'revoke', '40000', '--json', '--socket', failing.path as string);
    assertFailure(run, /^ntptsc: backend-unavailable: cannot write \/var\/lib\/ntptsd\/eks\.json: EACCES \(backend state-dir\)\n$/);
    assert.deepEqual(JSON.parse(run.stdout), {
      error: { code: -32004, reason: 'backend-unavailable', message: 'cannot write /var/lib/ntptsd/eks.json: EACCES', details: { backend: 'state-dir' } },
    });
  });

  test('--help lists eks with its subcommands, like ntpd', async () => {
    const help = await inProcess('--help');
    assert.equal(help.code, 0);
    // Commander wraps descriptions to the terminal's width.
    assert.ok(help.stdout.replace(/\s+/g, ' ').includes(' eks the ephemeral keys this daemon issued (docs/eks.md): list, revoke '), help.stdout);
    const sub = await inProcess('eks', '--help');
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /list \[options\]/);
    assert.match(sub.stdout, /revoke \[options\] <id>/);
  });

  test('spawned: exit codes of the real process', async () => {
    const ok = await runCli('ntptsc', 'eks', 'revoke', '32770', '--socket', socket);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'revoked key 32770 until 2026-12-04T00:00:00Z\n');
    assertUsage(await runCli('ntptsc', 'eks', 'revoke', 'abc', '--socket', socket), /expected an ephemeral key id/);
  });
});
