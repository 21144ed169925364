/**
 * `ntptsc`: the client for ntptsd and for NTP/NTS servers in general. Commands are added here as the
 * capabilities behind them land; every command takes --json and exits non-zero with a one-line reason.
 *
 * A thin layer: commander reads the command line, the library (src/client) does the work, the pure helpers
 * in ./format.ts check argument values and shape the output. Exit codes: 0 success, 1 the operation failed
 * (`ntptsc: <reason>` on stderr; with --json also `{"error": ...}` on stdout), 2 bad command line.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ClientError } from '../client/errors.js';
import { queryTime, type TimeQueryOptions } from '../client/ntp.js';
import { NTP_DEFAULT_PORT, NTSKE_DEFAULT_PORT, ntsKeyExchange } from '../client/ntske.js';
import { parseDuration } from '../config/index.js';
import { VERSION } from '../version.js';
import {
  errorJson,
  formatJson,
  formatRows,
  hoistOptions,
  keJson,
  keRows,
  oneLine,
  parseAeadList,
  parseCount,
  parseEndpoint,
  parsePort,
  timeJson,
  timeRows,
  type Parsed,
} from './format.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** A bad command line found after commander's own checks (exit 2). */
class UsageProblem extends Error {}

const MAX_SAMPLES = 64;
const COMMANDS = ['time', 'ke'];
const VALUE_OPTIONS = ['--ke-port', '--ca', '--samples', '--timeout', '--aead'];

/** Adapts a pure parser to commander's option parsers (a bad value is a usage error). */
const valueOf =
  <T>(parse: (text: string) => Parsed<T>) =>
  (text: string): T => {
    const parsed = parse(text);
    if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
    return parsed.value;
  };
const portValue = valueOf(parsePort);
const samplesValue = valueOf((text) => parseCount(text, 1, MAX_SAMPLES));
const timeoutValue = valueOf((text) => parseDuration(text));
const aeadValue = valueOf(parseAeadList);

interface CommonOptions {
  json?: boolean;
  ca?: string;
  timeout?: number;
  aead?: number[];
}

interface TimeCliOptions extends CommonOptions {
  nts?: boolean;
  kePort?: number;
  samples?: number;
}

function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageProblem(`cannot read --ca file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function endpoint(text: string, defaultPort: number) {
  const parsed = parseEndpoint(text, defaultPort);
  if (!parsed.ok) throw new UsageProblem(parsed.error);
  return parsed.value;
}

/** Exit code and output of a failed operation. */
function failed(error: unknown, json: boolean | undefined, io: CliIo): number {
  if (!(error instanceof ClientError)) throw error;
  io.stderr(`ntptsc: ${oneLine(error.message)}\n`);
  if (json === true) io.stdout(formatJson(errorJson(error)));
  return 1;
}

async function runTime(target: string, opts: TimeCliOptions, io: CliIo): Promise<number> {
  const nts = opts.nts === true;
  if (!nts) {
    const needsNts = [['--ke-port', opts.kePort], ['--ca', opts.ca], ['--aead', opts.aead]].find(([, value]) => value !== undefined);
    if (needsNts !== undefined) throw new UsageProblem(`${needsNts[0] as string} needs --nts`);
  }
  const where = endpoint(target, nts ? NTSKE_DEFAULT_PORT : NTP_DEFAULT_PORT);
  if (opts.kePort !== undefined && where.portGiven && where.port !== opts.kePort) {
    throw new UsageProblem(`--ke-port ${opts.kePort} contradicts the port in ${target}`);
  }
  const options: TimeQueryOptions = {
    nts,
    port: opts.kePort ?? where.port,
    samples: opts.samples ?? 1,
    ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout, ntpTimeoutMs: opts.timeout }),
    ...(opts.ca === undefined ? {} : { ca: readCa(opts.ca) }),
    ...(opts.aead === undefined ? {} : { aeadAlgorithms: opts.aead }),
  };
  try {
    const result = await queryTime(where.host, options);
    // The library only accepts authenticated answers with NTS; checked again here because exit 0 promises it.
    if (nts && result.authentication.kind !== 'nts') throw new ClientError('NTP_TIMEOUT', 'no authenticated answer');
    io.stdout(opts.json === true ? formatJson(timeJson(result)) : formatRows(timeRows(result)));
    return 0;
  } catch (error) {
    return failed(error, opts.json, io);
  }
}

async function runKe(target: string, opts: CommonOptions, io: CliIo): Promise<number> {
  const where = endpoint(target, NTSKE_DEFAULT_PORT);
  try {
    const ke = await ntsKeyExchange(where.host, {
      port: where.port,
      ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }),
      ...(opts.ca === undefined ? {} : { ca: readCa(opts.ca) }),
      ...(opts.aead === undefined ? {} : { aeadAlgorithms: opts.aead }),
    });
    io.stdout(opts.json === true ? formatJson(keJson(ke)) : formatRows(keRows(ke)));
    return 0;
  } catch (error) {
    return failed(error, opts.json, io);
  }
}

/** The program; each action stores its exit code in `state`. */
export function buildProgram(io: CliIo = processIo, state: { exitCode: number } = { exitCode: 0 }): Command {
  const program = new Command('ntptsc')
    .description('Client for ntptsd and NTP/NTS servers: query time, run NTS-KE, manage the daemon')
    .version(VERSION)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      outputError: (text, write) => write(`ntptsc: ${oneLine(text.replace(/^error: /, ''))} (see ntptsc --help)\n`),
    });
  // Subcommands inherit the output and exit settings above.

  program
    .command('time')
    .description('query the time of an NTP server; with --nts, run NTS-KE first and query the NTP server it names')
    .argument('<host[:port]>', 'NTP server (port 123), or with --nts the NTS-KE server (port 4460); IPv6 as [addr]:port or a bare address')
    .option('--nts', 'authenticate with NTS (RFC 8915)')
    .option('--ke-port <port>', 'NTS-KE port (default 4460)', portValue)
    .option('--ca <file>', 'with --nts: trust the CAs in this PEM file instead of the system store')
    .option('--samples <n>', `queries to make, 1 to ${MAX_SAMPLES}; the one with the smallest delay is shown`, samplesValue)
    .option('--timeout <duration>', 'per query and for NTS-KE, e.g. "3s" or "500ms" (default 3s, NTS-KE 5s)', timeoutValue)
    .option('--aead <list>', 'with --nts: AEAD algorithms to offer in order, names or ids (e.g. AES-SIV-CMAC-256,17)', aeadValue)
    .option('--json', 'print one JSON document')
    .action(async (target: string, opts: TimeCliOptions) => {
      state.exitCode = await runTime(target, opts, io);
    });

  program
    .command('ke')
    .description('run NTS-KE and show what was negotiated')
    .argument('<host[:port]>', 'NTS-KE server (port 4460); IPv6 as [addr]:port or a bare address')
    .option('--ca <file>', 'trust the CAs in this PEM file instead of the system store')
    .option('--aead <list>', 'AEAD algorithms to offer in order, names or ids (e.g. AES-SIV-CMAC-256,17)', aeadValue)
    .option('--timeout <duration>', 'for the whole exchange, e.g. "3s" (default 5s)', timeoutValue)
    .option('--json', 'print one JSON document')
    .action(async (target: string, opts: CommonOptions) => {
      state.exitCode = await runKe(target, opts, io);
    });

  return program;
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const state = { exitCode: 0 };
  const program = buildProgram(io, state);
  if (argv.length === 0) {
    io.stderr(program.helpInformation());
    return 2;
  }
  try {
    // Options may stand before the command word: `ntptsc --json time x` is `ntptsc time --json x`.
    await program.parseAsync(hoistOptions(argv, { commands: COMMANDS, valueOptions: VALUE_OPTIONS, programOptions: ['-V', '--version'] }), { from: 'user' });
    return state.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end through exitOverride with exit code 0; everything else is a usage error.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageProblem) {
      io.stderr(`ntptsc: ${oneLine(error.message)}\n`);
      return 2;
    }
    io.stderr(`ntptsc: ${error instanceof Error ? oneLine(error.message) : String(error)}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
