import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../src/cli/ntptsd.js';
import { runCli, runInProcess, type CliRun } from '../helpers/cli.js';
import { defaultConfig, formatHostPort, loadConfigFile, loadConfigText, type ConfigResult } from '../../src/config/index.js';

const root = resolve(import.meta.dirname, '../..');
const samples = join(root, 'test/config');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** `ntptsd ARGS` exactly as `npm start` runs it. */
const ntptsd = (...args: string[]): Promise<CliRun> => runCli('ntptsd', ...args);

function valid(result: ConfigResult) {
  assert.ok(result.ok, result.ok ? '' : result.error.message);
  return result.value;
}

describe('ntptsd --check (spawned)', { concurrency: true }, () => {
  it('without -c and without the default file: prints the built-in defaults, exit 0', async () => {
    // In-process, pointing the default path at a file that cannot exist, so a real /etc/ntptsd/ntptsd.toml
    // on the machine does not change the outcome.
    const missing = join(tmpdir(), `ntptsd-no-such-dir-${process.pid}`, 'ntptsd.toml');
    const { code, stdout, stderr } = await runInProcess((io) => main(['--check'], { ...io, defaultConfigPath: missing }));
    assert.equal(stderr, '');
    assert.equal(code, 0);
    assert.match(stdout, /^# ntptsd .*: effective configuration from built-in defaults\n/);
    assert.deepEqual(valid(loadConfigText(stdout, 'stdout')), defaultConfig());
  });

  it('with a valid file: prints its effective config, which loads back to the same config', async () => {
    const file = join(samples, 'valid/full.toml');
    const run = await ntptsd('--check', '-c', file);
    assert.equal(run.stderr, '');
    assert.equal(run.code, 0);
    assert.ok(run.stdout.startsWith(`# ntptsd ${version}: effective configuration from ${file}\n`));
    assert.match(run.stdout, /^log-format = "json"$/m);
    assert.match(run.stdout, /^key-rotation = "12h"$/m);
    assert.deepEqual(valid(loadConfigText(run.stdout, 'stdout')), valid(await loadConfigFile(file)));
  });

  it('with an invalid file: every problem on stderr as key.path: reason, exit 2', async () => {
    const run = await ntptsd('-c', join(samples, 'invalid/check-services.toml'), '--check');
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, readFileSync(join(samples, 'invalid/check-services.expected'), 'utf8'));
  });

  it('a service or time source this version does not ship is refused by --check, not at run time: exit 2', async () => {
    for (const name of ['time-source-unavailable']) {
      const run = await ntptsd('--check', '-c', join(samples, `invalid/${name}.toml`));
      assert.equal(run.code, 2, name);
      assert.equal(run.stdout, '', name);
      assert.equal(run.stderr, readFileSync(join(samples, `invalid/${name}.expected`), 'utf8'), name);
    }
  });

  it('with a missing file: names it, exit 2', async () => {
    const run = await ntptsd('--check', '--config', 'no/such/ntptsd.toml');
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, 'cannot read config file no/such/ntptsd.toml: no such file\n');
  });

  it('--log-level and --log-format override the file', async () => {
    const run = await ntptsd('--check', '--log-level', 'trace', '--log-format=json', '-c', join(samples, 'valid/loopback.toml'));
    assert.equal(run.code, 0);
    const config = valid(loadConfigText(run.stdout, 'stdout'));
    assert.equal(config.daemon.logLevel, 'trace');
    assert.equal(config.daemon.logFormat, 'json');
    assert.equal(config.daemon.stateDir, '/tmp/ntptsd-test');
  });

  it('a bad flag: a one-line error, exit 2', async () => {
    const run = await ntptsd('--chek');
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, "ntptsd: unknown option '--chek' (Did you mean --check?)\n");
  });
});

describe('main() (in process)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ntptsd-cli-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  function run(argv: string[], defaultConfigPath = join(tmp, 'absent.toml')): Promise<CliRun> {
    return runInProcess((io) => main(argv, { ...io, defaultConfigPath }));
  }

  it('--version and --help exit 0 on stdout', async () => {
    assert.deepEqual(await run(['--version']), { code: 0, stdout: `${version}\n`, stderr: '' });
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: ntptsd \[options\]/);
    for (const flag of ['-c, --config <file>', '--check', '--log-level <level>', '--log-format <format>', '--version']) {
      assert.ok(help.stdout.includes(flag), flag);
    }
  });

  const badFlags: [string[], string][] = [
    [['--log-level', 'loud'], "ntptsd: option '--log-level <level>' argument 'loud' is invalid. Allowed choices are trace, debug, info, warn, error, fatal.\n"],
    [['--log-format', 'xml'], "ntptsd: option '--log-format <format>' argument 'xml' is invalid. Allowed choices are text, json.\n"],
    [['-c'], "ntptsd: option '-c, --config <file>' argument missing\n"],
    [['--check', 'extra'], 'ntptsd: too many arguments. Expected 0 arguments but got 1.\n'],
  ];
  for (const [argv, message] of badFlags) {
    it(`${argv.join(' ')}: one line, exit 2`, async () => {
      assert.deepEqual(await run(argv), { code: 2, stdout: '', stderr: message });
    });
  }

  it('uses the default config path when it exists', async () => {
    const path = join(tmp, 'ntptsd.toml');
    writeFileSync(path, '[time]\nstratum = 4\n');
    const result = await run(['--check'], path);
    assert.equal(result.code, 0);
    assert.match(result.stdout, new RegExp(`effective configuration from ${path}\n`));
    assert.equal(valid(loadConfigText(result.stdout, 'stdout')).time.stratum, 4);
  });

  it('a syntax error in the default file is reported with line and column, exit 2', async () => {
    const path = join(tmp, 'broken.toml');
    writeFileSync(path, '[time]\nstratum = \n');
    const result = await run(['--check'], path);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`^${path}:2:\\d+: TOML syntax error: .+\n$`));
  });

  it('a config problem stops the daemon from starting too (exit 2 without --check)', async () => {
    const path = join(tmp, 'bad.toml');
    writeFileSync(path, '[nts]\ncookies = 0\n');
    assert.deepEqual(await run(['-c', path]), { code: 2, stdout: '', stderr: 'nts.cookies: must be between 1 and 8, got 0\n' });
    writeFileSync(path, '[eks]\nkey-lifetime = "12h"\n');
    assert.deepEqual(await run(['-c', path]), {
      code: 2,
      stdout: '',
      stderr: 'eks.key-lifetime: 12h must be longer than nts.key-rotation (1d): a key issued just before a rotation would expire at once\n',
    });
  });

  it('the built-in defaults serve NTS-KE and EKS on [::]:4460 (TLS), management on 127.0.0.1:4461 (TLS) and <state-dir>/ntptsd.sock, metrics on 127.0.0.1:9975 (plain HTTP)', async () => {
    const result = await run(['--check']);
    assert.equal(result.code, 0);
    const config = valid(loadConfigText(result.stdout, 'stdout'));
    assert.deepEqual(
      config.listeners.map((l) => [l.kind === 'tcp' ? formatHostPort(l.address) : l.path, l.services, l.defaultService, l.transport]),
      [
        ['[::]:4460', ['nts-ke', 'eks'], 'nts-ke', 'tls'],
        ['127.0.0.1:4461', ['mgmt'], 'mgmt', 'tls'],
        ['/var/lib/ntptsd/ntptsd.sock', ['mgmt'], 'mgmt', 'plain'],
        ['127.0.0.1:9975', ['metrics'], 'metrics', 'http'],
      ],
    );
    assert.equal(config.time.source, 'static');
  });
});
