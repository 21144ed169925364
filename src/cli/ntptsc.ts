/**
 * `ntptsc`: the client for ntptsd and for NTP/NTS servers in general. Commands are added here as the
 * capabilities behind them land; every command takes --json and exits non-zero with a one-line reason.
 *
 * A thin layer: commander reads the command line, the library (src/client) does the work, the pure helpers
 * in ./format.ts and ./mgmt-format.ts check argument values and shape the output (`ekey`, the ephemeral key
 * client of docs/eks.md, runs in ./ekey.ts with its helpers in ./ekey-format.ts). The management commands
 * (status, services, stats, clients, keys, rotate-keys, reload, log-level, watch, call, and `ntpd peers|vars|
 * mrulist|sysstats`, which ask the local ntpd through the daemon's mode 6 bridge, and `eks list|revoke`, the
 * ephemeral keys the daemon issued) speak ntp-mgmt/1
 * (docs/management.md) through `MgmtClient`, over the daemon's Unix socket or `--connect` (TLS). Exit codes: 0 success, 1 the operation failed
 * (`ntptsc: <reason>` on stderr; with --json also `{"error": ...}` on stdout), 2 bad command line.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ClientError } from '../client/errors.js';
import { DEFAULT_MGMT_PORT, DEFAULT_MGMT_SOCKET, MgmtClient, MgmtConnectionError, MgmtError, type MgmtConnectOptions } from '../client/mgmt.js';
import {
  CLIENT_SORT_KEYS,
  LIMITS,
  LOG_LEVELS,
  NTPD_MRU_SORT_KEYS,
  type ClientSortKey,
  type EventParams,
  type LogLevel,
  type NtpdMruSortKey,
  type ParamsIn,
  type StatsResult,
  type UnknownEvent,
} from '../proto/mgmt/types.js';
import type { JsonObject } from '../proto/mgmt/jsonrpc.js';
import { queryTime, type TimeQueryOptions } from '../client/ntp.js';
import { NTP_DEFAULT_PORT, NTSKE_DEFAULT_PORT, ntsKeyExchange } from '../client/ntske.js';
import { parseDuration } from '../config/index.js';
import { VERSION } from '../version.js';
import { processStopSignals, runEkey, type EkeyCliOptions } from './ekey.js';
import { EKEY_FORMATS, parseSeconds } from './ekey-format.js';
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
import {
  describeMgmtError,
  formatClients,
  formatEksList,
  formatEksRevoke,
  formatKeys,
  formatLogLevel,
  formatNtpdMrulist,
  formatNtpdPeers,
  formatNtpdSysstats,
  formatNtpdVars,
  formatReload,
  formatRotateKeys,
  formatServices,
  formatStats,
  formatStatus,
  formatWatch,
  mgmtErrorJson,
  notificationLine,
  parseEksKeyId,
  parseLocalAddress,
  parseNtpdNames,
  parseRestrictionBits,
} from './mgmt-format.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True when stdout is a terminal (`watch` then draws a live view instead of NDJSON). */
  readonly isTty?: boolean;
  /** Calls `handler` on Ctrl-C (or when stdout's reader went away); returns a function that stops listening. */
  onInterrupt?(handler: () => void): () => void;
}

const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  isTty: process.stdout.isTTY === true,
  onInterrupt(handler) {
    const onPipe = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') handler();
    };
    process.once('SIGINT', handler);
    process.stdout.on('error', onPipe);
    return () => {
      process.off('SIGINT', handler);
      process.stdout.off('error', onPipe);
    };
  },
};

/** A bad command line found after commander's own checks (exit 2). */
class UsageProblem extends Error {}

const MAX_SAMPLES = 64;
const MGMT_COMMANDS = ['status', 'services', 'stats', 'clients', 'keys', 'rotate-keys', 'reload', 'log-level', 'watch', 'call', 'ntpd', 'eks'];
/** The subcommands of `ntpd`. */
const NTPD_COMMANDS = ['peers', 'vars', 'mrulist', 'sysstats'];
/** The subcommands of `eks`. */
const EKS_COMMANDS = ['list', 'revoke'];
const COMMANDS = ['time', 'ke', 'ekey', ...MGMT_COMMANDS];
const VALUE_OPTIONS = [
  '--ke-port',
  '--ca',
  '--samples',
  '--timeout',
  '--aead',
  '--socket',
  '--connect',
  '--token',
  '--token-file',
  '--cert',
  '--key',
  '--limit',
  '--sort',
  '--filter',
  '--interval',
  '--names',
  '--mincount',
  '--laddr',
  '--resall',
  '--resany',
  '--maxlstint',
  '--format',
  '--out',
  '--on-renew',
  '--renew-after',
];
/** `watch` without --interval: a live view, so more often than the daemon's default of 10 s. */
const DEFAULT_WATCH_INTERVAL_S = 2;
/** Events kept on the live view of `watch`. */
const WATCH_EVENTS_SHOWN = 10;

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
const limitValue = valueOf((text) => parseCount(text, 1, LIMITS.maxClients));
const intervalValue = valueOf((text) => {
  const ms = parseDuration(text, { allowZero: true, maxMs: LIMITS.maxInterval * 1000 });
  if (!ms.ok) return ms;
  return ms.value % 1000 === 0 ? { ok: true, value: ms.value / 1000 } : { ok: false, error: `the interval is whole seconds (0s to ${LIMITS.maxInterval}s), got ${JSON.stringify(text)}` };
});
const ntpdMruLimitValue = valueOf((text) => parseCount(text, 1, LIMITS.maxNtpdMru));
const assocValue = valueOf((text) => parseCount(text, 0, 65535));
const namesValue = valueOf(parseNtpdNames);
const mincountValue = valueOf((text) => parseCount(text, 0, 0xffffffff));
const laddrValue = valueOf(parseLocalAddress);
const restrictionValue = valueOf(parseRestrictionBits);
const eksLimitValue = valueOf((text) => parseCount(text, 1, LIMITS.maxEksList));
const eksKeyIdValue = valueOf(parseEksKeyId);
/** `--maxlstint`: whole seconds, written as a number of seconds (ntpq's form) or a duration such as "10m". */
const maxlstintValue = valueOf((text) => {
  if (/^\d+$/.test(text)) return parseCount(text, 0, 0xffffffff);
  const ms = parseDuration(text, { allowZero: true, maxMs: 0xffffffff * 1000 });
  if (!ms.ok) return ms;
  return ms.value % 1000 === 0 ? { ok: true, value: ms.value / 1000 } : { ok: false, error: `maxlstint is whole seconds, got ${JSON.stringify(text)}` };
});
const secondsValue = valueOf(parseSeconds);
const filterValue = (text: string): string => {
  if (text.length < 1 || text.length > LIMITS.maxFilterLength) throw new InvalidArgumentError(`a filter has 1 to ${LIMITS.maxFilterLength} characters`);
  return text;
};

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

// ---------------------------------------------------------------------------------------------------------------
// Management commands

interface MgmtCliOptions {
  json?: boolean;
  socket?: string;
  connect?: string;
  token?: string;
  tokenFile?: string;
  cert?: string;
  key?: string;
  ca?: string;
  timeout?: number;
}

function readOptionFile(option: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageProblem(`cannot read ${option} file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** The connection the options ask for: the Unix socket (default) or TLS with --connect; bad combinations are usage errors. */
function mgmtConnectOptions(opts: MgmtCliOptions): MgmtConnectOptions {
  if (opts.socket !== undefined && opts.connect !== undefined) throw new UsageProblem('--socket and --connect exclude each other');
  if (opts.token !== undefined && opts.tokenFile !== undefined) throw new UsageProblem('--token and --token-file exclude each other');
  if ((opts.cert === undefined) !== (opts.key === undefined)) throw new UsageProblem('--cert and --key go together');
  if (opts.connect === undefined) {
    const tlsOnly = [['--ca', opts.ca], ['--cert', opts.cert]].find(([, value]) => value !== undefined);
    if (tlsOnly !== undefined) throw new UsageProblem(`${tlsOnly[0] as string} needs --connect HOST:PORT (TLS)`);
  }
  let token = opts.token;
  if (opts.tokenFile !== undefined) {
    // The file holds the token on its first line; surrounding blanks and the line end are not part of it.
    token = (readOptionFile('--token-file', opts.tokenFile).split('\n')[0] ?? '').trim();
    if (token === '') throw new UsageProblem(`--token-file ${opts.tokenFile} is empty`);
  }
  if (token !== undefined && (token.length < 1 || token.length > LIMITS.maxTokenLength)) {
    throw new UsageProblem(`a token has 1 to ${LIMITS.maxTokenLength} characters`);
  }
  const common: MgmtConnectOptions = {
    ...(token === undefined ? {} : { token }),
    ...(opts.timeout === undefined ? {} : { connectTimeoutMs: opts.timeout, timeoutMs: opts.timeout }),
  };
  if (opts.connect === undefined) return { ...common, socket: opts.socket ?? DEFAULT_MGMT_SOCKET };
  const where = endpoint(opts.connect, DEFAULT_MGMT_PORT);
  return {
    ...common,
    host: where.host,
    port: where.port,
    ...(opts.ca === undefined ? {} : { ca: readOptionFile('--ca', opts.ca) }),
    ...(opts.cert === undefined ? {} : { cert: readOptionFile('--cert', opts.cert), key: readOptionFile('--key', opts.key as string) }),
  };
}

/** Exit code and output of a failed management command. */
function mgmtFailed(error: unknown, json: boolean | undefined, io: CliIo): number {
  if (error instanceof MgmtError) io.stderr(`ntptsc: ${describeMgmtError(error)}\n`);
  else if (error instanceof MgmtConnectionError) io.stderr(`ntptsc: ${oneLine(error.message)}\n`);
  else throw error;
  if (json === true) io.stdout(formatJson(mgmtErrorJson(error)));
  return 1;
}

/** Connects as the options say, runs `work`, closes; failures of the daemon or the connection exit 1. */
async function withMgmt(opts: MgmtCliOptions, io: CliIo, work: (client: MgmtClient) => Promise<number>): Promise<number> {
  const options = mgmtConnectOptions(opts);
  let client: MgmtClient | undefined;
  try {
    client = await MgmtClient.connect(options);
    return await work(client);
  } catch (error) {
    return mgmtFailed(error, opts.json, io);
  } finally {
    await client?.close();
  }
}

/** A method without params (or with `params`): the raw result with --json, else `format(result)`. */
function runMethod<R>(
  call: (client: MgmtClient) => Promise<R>,
  format: (result: R) => string,
): (opts: MgmtCliOptions, io: CliIo) => Promise<number> {
  return (opts, io) =>
    withMgmt(opts, io, async (client) => {
      const result = await call(client);
      io.stdout(opts.json === true ? formatJson(result) : format(result));
      return 0;
    });
}

function parseCallParams(text: string | undefined): JsonObject | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageProblem(`params are not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageProblem('params must be a JSON object, e.g. \'{"limit": 10}\'');
  return value as JsonObject;
}

interface WatchCliOptions extends MgmtCliOptions {
  interval?: number;
}

/**
 * `ntptsc watch`: subscribes and, on a terminal, redraws the live view at each notification; otherwise (or with
 * --json) writes each notification as one JSON line. Ctrl-C ends it with exit 0; the daemon going away, exit 1.
 */
async function runWatch(opts: WatchCliOptions, io: CliIo): Promise<number> {
  const live = opts.json !== true && io.isTty === true;
  const interval = opts.interval ?? DEFAULT_WATCH_INTERVAL_S;
  return withMgmt(opts, io, async (client) => {
    let interrupted = false;
    const stopListening = io.onInterrupt?.(() => {
      interrupted = true;
      client.destroy();
    });
    try {
      const subscription = await client.subscribe({ interval });
      let stats: StatsResult | undefined;
      const events: (EventParams | UnknownEvent)[] = [];
      const draw = () => io.stdout(formatWatch({ where: client.where, interval: subscription.result.interval, stats, events }));
      if (live) draw();
      for await (const n of subscription) {
        if (!live) {
          io.stdout(notificationLine(n));
          continue;
        }
        if (n.method === 'stats') stats = n.params as StatsResult;
        else if (n.method === 'event') {
          events.push(n.params as EventParams | UnknownEvent);
          if (events.length > WATCH_EVENTS_SHOWN) events.shift();
        } else continue;
        draw();
      }
      if (interrupted) return 0;
      throw new MgmtConnectionError('MGMT_CLOSED', `${client.where} closed the connection`);
    } catch (error) {
      if (interrupted) return 0;
      throw error;
    } finally {
      stopListening?.();
    }
  });
}

/** The options every management command takes. */
function withMgmtOptions(command: Command): Command {
  return command
    .option('--socket <path>', `the daemon's Unix socket (default ${DEFAULT_MGMT_SOCKET}); the session is admin`)
    .option('--connect <host:port>', `TLS to a management listener instead (port ${DEFAULT_MGMT_PORT} by default)`)
    .option('--token <token>', 'authenticate with this token')
    .option('--token-file <file>', 'authenticate with the token on the first line of this file')
    .option('--cert <file>', 'with --connect: client certificate (PEM)')
    .option('--key <file>', 'with --connect: private key of --cert (PEM)')
    .option('--ca <file>', 'with --connect: trust the CAs in this PEM file instead of the system store')
    .option('--timeout <duration>', 'to connect and for each request, e.g. "3s" (default 5s to connect, 10s per request)', timeoutValue)
    .option('--json', 'print the raw result as one JSON document');
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

  program
    .command('ekey')
    .description('fetch an ephemeral AES-128-CMAC key (docs/eks.md) for an NTP client without NTS; with --out, keep it in its keys file')
    .argument('<host[:port]>', 'EKS server (port 4460); IPv6 as [addr]:port or a bare address')
    .option('--ca <file>', 'trust the CAs in this PEM file instead of the system store')
    .option('--token <token>', 'send this token (servers with eks.access = "token")')
    .option('--token-file <file>', 'send the token on the first line of this file')
    .addOption(new Option('--format <format>', 'key line for ntpd/NTPsec keys files (ntp, the default), chrony keyfiles, or a JSON document').choices(EKEY_FORMATS))
    .option('--out <file>', 'write the key into this keys file (its "ntptsc ekey HOST:PORT" block; other lines are kept), renewing the key it holds')
    .option('--renew', 'with --out: keep running, renew at 2/3 of the lifetime; exit on SIGTERM/SIGINT')
    .option('--on-renew <command>', 'with --out: run this through /bin/sh after each write (e.g. "chronyc rekey")')
    .option('--timeout <duration>', 'for each exchange, e.g. "3s" (default 5s)', timeoutValue)
    // For tests: renew this many seconds after each write instead of at 2/3 of the lifetime.
    .addOption(new Option('--renew-after <seconds>').argParser(secondsValue).hideHelp())
    .option('--json', 'print one JSON document (with --renew: one line per write)')
    .action(async (target: string, opts: EkeyCliOptions) => {
      state.exitCode = await runEkey(target, opts, io, io === processIo ? processStopSignals : undefined);
    });

  const mgmt = (name: string, description: string) => withMgmtOptions(program.command(name).description(description));
  const simple = <R>(name: string, description: string, call: (client: MgmtClient) => Promise<R>, format: (result: R) => string) =>
    mgmt(name, description).action(async (opts: MgmtCliOptions) => {
      state.exitCode = await runMethod(call, format)(opts, io);
    });

  simple('status', 'the daemon at a glance: version, uptime, time source, keys, certificate, your session', (c) => c.call('status'), formatStatus);
  simple('services', 'listeners and services with their connections', (c) => c.call('services'), formatServices);
  simple('stats', 'counters since start', (c) => c.call('stats'), formatStats);
  simple('keys', 'the NTS master key ring (ids and ages, never key material)', (c) => c.call('keys'), formatKeys);
  simple('rotate-keys', 'make a new current master key now (admin)', (c) => c.call('rotate-keys'), formatRotateKeys);
  simple('reload', 'reload the configuration and the certificate, like SIGHUP (admin)', (c) => c.call('reload'), formatReload);

  mgmt('clients', 'NTP clients recently seen')
    .option('--limit <n>', `most entries shown, 1 to ${LIMITS.maxClients} (default ${LIMITS.defaultClients})`, limitValue)
    .addOption(new Option('--sort <key>', 'order (descending except address)').choices(CLIENT_SORT_KEYS))
    .option('--filter <address-or-prefix>', 'only this address or CIDR prefix (e.g. 2001:db8::/32)', filterValue)
    .action(async (opts: MgmtCliOptions & { limit?: number; sort?: ClientSortKey; filter?: string }) => {
      const params = {
        ...(opts.limit === undefined ? {} : { limit: opts.limit }),
        ...(opts.sort === undefined ? {} : { sort: opts.sort }),
        ...(opts.filter === undefined ? {} : { filter: opts.filter }),
      };
      state.exitCode = await runMethod((c) => c.call('clients', params), formatClients)(opts, io);
    });

  mgmt('log-level', 'change the daemon\'s log level until the next restart or reload (admin)')
    .addArgument(new Argument('<level>', 'the new level').choices(LOG_LEVELS))
    .action(async (level: LogLevel, opts: MgmtCliOptions) => {
      state.exitCode = await runMethod((c) => c.call('log-level', { level }), formatLogLevel)(opts, io);
    });

  mgmt('watch', 'live stats and events; NDJSON (one notification per line) when stdout is not a terminal')
    .option('--interval <duration>', `between stats, whole seconds, 0s for events only (default ${DEFAULT_WATCH_INTERVAL_S}s)`, intervalValue)
    .action(async (opts: WatchCliOptions) => {
      state.exitCode = await runWatch(opts, io);
    });

  const ntpd = program
    .command('ntpd')
    .description('the local ntpd as ntpq shows it, through the daemon: peers, vars, mrulist, sysstats');
  const ntpdCommand = (name: string, description: string) => withMgmtOptions(ntpd.command(name).description(description));

  ntpdCommand('peers', 'the associations of ntpd, as ntpq -p shows them').action(async (opts: MgmtCliOptions) => {
    state.exitCode = await runMethod((c) => c.call('ntpd.peers'), formatNtpdPeers)(opts, io);
  });

  ntpdCommand('vars', 'the system variables of ntpd (ntpq rv), or those of association ASSOC (ntpq rv ASSOC)')
    .addArgument(new Argument('[assoc]', 'association id from `ntptsc ntpd peers`; 0 (the default) for the system').argParser(assocValue))
    .option('--names <a,b,...>', `only these variables, at most ${LIMITS.maxNtpdNames} (e.g. stratum,refid,offset)`, namesValue)
    .action(async (assoc: number | undefined, opts: MgmtCliOptions & { names?: string[] }) => {
      const params: ParamsIn<'ntpd.vars'> = {
        ...(assoc === undefined ? {} : { assoc }),
        ...(opts.names === undefined ? {} : { names: opts.names }),
      };
      state.exitCode = await runMethod((c) => c.call('ntpd.vars', params), formatNtpdVars)(opts, io);
    });

  ntpdCommand('mrulist', 'the clients ntpd heard from recently (ntpq mrulist)')
    .option('--limit <n>', `most entries shown, 1 to ${LIMITS.maxNtpdMru} (default ${LIMITS.defaultNtpdMru})`, ntpdMruLimitValue)
    .addOption(new Option('--sort <key>', 'order: last or first packet (most recent first), count (most first), address').choices(NTPD_MRU_SORT_KEYS))
    .option('--mincount <n>', 'only clients with at least this many packets', mincountValue)
    .option('--laddr <address>', 'only packets ntpd received on this local address', laddrValue)
    .option('--resall <bits>', 'only entries with all these restriction bits (e.g. 0x40)', restrictionValue)
    .option('--resany <bits>', 'only entries with any of these restriction bits', restrictionValue)
    .option('--maxlstint <seconds>', 'only clients heard from within this many seconds (or a duration, e.g. 10m)', maxlstintValue)
    .action(
      async (
        opts: MgmtCliOptions & { limit?: number; sort?: NtpdMruSortKey; mincount?: number; laddr?: string; resall?: number; resany?: number; maxlstint?: number },
      ) => {
        const params: ParamsIn<'ntpd.mrulist'> = {
          ...(opts.limit === undefined ? {} : { limit: opts.limit }),
          ...(opts.sort === undefined ? {} : { sort: opts.sort }),
          ...(opts.mincount === undefined ? {} : { mincount: opts.mincount }),
          ...(opts.laddr === undefined ? {} : { laddr: opts.laddr }),
          ...(opts.resall === undefined ? {} : { resall: opts.resall }),
          ...(opts.resany === undefined ? {} : { resany: opts.resany }),
          ...(opts.maxlstint === undefined ? {} : { maxlstint: opts.maxlstint }),
        };
        state.exitCode = await runMethod((c) => c.call('ntpd.mrulist', params), formatNtpdMrulist)(opts, io);
      },
    );

  ntpdCommand('sysstats', 'the packet counters of ntpd (ntpq sysstats)').action(async (opts: MgmtCliOptions) => {
    state.exitCode = await runMethod((c) => c.call('ntpd.sysstats'), formatNtpdSysstats)(opts, io);
  });

  const eks = program.command('eks').description('the ephemeral keys this daemon issued (docs/eks.md): list, revoke');
  const eksCommand = (name: string, description: string) => withMgmtOptions(eks.command(name).description(description));

  eksCommand('list', 'issued key ids, most recent first, with generation, expiry, client address and revocations (never key material)')
    .option('--limit <n>', `most keys shown, 1 to ${LIMITS.maxEksList} (default ${LIMITS.defaultEksList})`, eksLimitValue)
    .option('--expired', 'also show expired keys that can still be renewed')
    .action(async (opts: MgmtCliOptions & { limit?: number; expired?: boolean }) => {
      const params: ParamsIn<'eks.list'> = {
        ...(opts.limit === undefined ? {} : { limit: opts.limit }),
        ...(opts.expired === true ? { expired: true } : {}),
      };
      state.exitCode = await runMethod((c) => c.call('eks.list', params), formatEksList)(opts, io);
    });

  eksCommand('revoke', 'revoke an ephemeral key id on this node until every key that could carry it has expired (admin)')
    .addArgument(new Argument('<id>', `the key id, ${LIMITS.minEksKeyId} to ${LIMITS.maxEksKeyId} (from ntptsc eks list)`).argParser(eksKeyIdValue))
    .action(async (keyId: number, opts: MgmtCliOptions) => {
      state.exitCode = await runMethod((c) => c.call('eks.revoke', { keyId }), formatEksRevoke)(opts, io);
    });

  mgmt('call', 'call any management method; params as a JSON object; prints the raw result')
    .argument('<method>', 'method name, e.g. status or clients')
    .argument('[params]', 'JSON object, e.g. \'{"limit": 5}\'')
    .action(async (method: string, paramsText: string | undefined, opts: MgmtCliOptions) => {
      if (method.length < 1 || method.length > 64) throw new UsageProblem('a method name has 1 to 64 characters');
      const params = parseCallParams(paramsText);
      state.exitCode = await runMethod((c) => c.call(method, params), formatJson)(opts, io);
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
    // Options may stand before the command word: `ntptsc --json time x` is `ntptsc time --json x`; and before
    // the subcommand of `ntpd` or `eks`: `ntptsc --json ntpd peers` and `ntptsc ntpd --json peers` are `ntptsc ntpd peers --json`.
    const args = hoistOptions(argv, { commands: COMMANDS, valueOptions: VALUE_OPTIONS, programOptions: ['-V', '--version'] });
    if (args[0] === 'ntpd') args.splice(1, args.length - 1, ...hoistOptions(args.slice(1), { commands: NTPD_COMMANDS, valueOptions: VALUE_OPTIONS, programOptions: ['-h', '--help'] }));
    if (args[0] === 'eks') args.splice(1, args.length - 1, ...hoistOptions(args.slice(1), { commands: EKS_COMMANDS, valueOptions: VALUE_OPTIONS, programOptions: ['-h', '--help'] }));
    await program.parseAsync(args, { from: 'user' });
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
