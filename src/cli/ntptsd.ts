/**
 * `ntptsd [-c FILE] [--check] [--log-level L] [--log-format text|json]`: load the config exactly as the daemon
 * does, then either print it (`--check`) or run the daemon. Exit codes: 0 ok, 2 bad flags or config, otherwise
 * whatever the daemon returns.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import {
  DEFAULT_CONFIG_PATH,
  LOG_FORMATS,
  LOG_LEVELS,
  formatConfig,
  formatProblem,
  resolveConfig,
  type Config,
  type LogFormat,
  type LogLevel,
} from '../config/index.js';

export const EXIT_USAGE = 2;

export interface MainOptions {
  readonly stdout?: (text: string) => void;
  readonly stderr?: (text: string) => void;
  /** Where to look when `-c` is not given (tests point this elsewhere). */
  readonly defaultConfigPath?: string;
}

interface Flags {
  config?: string;
  check?: boolean;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

function packageVersion(): string {
  try {
    // Same relative location from src/cli/ (tsx) and dist/cli/ (built).
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Commander's errors, as one `ntptsd: ...` line (it puts its "Did you mean" on a second line). */
function oneLine(text: string): string {
  return `ntptsd: ${text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`;
}

function withOverrides(config: Config, flags: Flags): Config {
  if (flags.logLevel === undefined && flags.logFormat === undefined) return config;
  return {
    ...config,
    daemon: { ...config.daemon, logLevel: flags.logLevel ?? config.daemon.logLevel, logFormat: flags.logFormat ?? config.daemon.logFormat },
  };
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? ((text: string) => void process.stdout.write(text));
  const stderr = options.stderr ?? ((text: string) => void process.stderr.write(text));
  const version = packageVersion();

  const program = new Command('ntptsd')
    .description('NTP TCP Services Daemon: NTS-KE, authenticated management, ephemeral keys, mode 6 bridge')
    .option('-c, --config <file>', `config file (default: ${DEFAULT_CONFIG_PATH} if it exists, else built-in defaults)`)
    .option('--check', 'validate the config, print the effective config and exit (2 if invalid)')
    .addOption(new Option('--log-level <level>', 'override daemon.log-level').choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'override daemon.log-format').choices(LOG_FORMATS))
    .version(version, '--version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help and exit')
    .exitOverride()
    .configureOutput({ writeOut: stdout, writeErr: stderr, outputError: (text, write) => write(oneLine(text)) });

  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    // --help and --version also end here, with exit code 0.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_USAGE;
    throw e;
  }
  const flags = program.opts<Flags>();

  const resolved = await resolveConfig(flags.config ?? null, options.defaultConfigPath ?? DEFAULT_CONFIG_PATH);
  if (!resolved.ok) {
    for (const problem of resolved.error.problems) stderr(`${formatProblem(problem)}\n`);
    return EXIT_USAGE;
  }
  const config = withOverrides(resolved.value.config, flags);
  const configPath = resolved.value.path;

  if (flags.check === true) {
    stdout(`# ntptsd ${version}: effective configuration from ${configPath ?? 'built-in defaults'}\n\n${formatConfig(config)}`);
    return 0;
  }
  // Loaded only when running, so --check never depends on the server modules.
  const { runDaemon } = await import('../server/daemon.js');
  return runDaemon(config, { configPath, applyOverrides: (reloaded) => withOverrides(reloaded, flags) });
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await main(process.argv.slice(2));
}
