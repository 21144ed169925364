/**
 * `ntptsc ekey HOST[:PORT]`: fetch an ephemeral AES-128-CMAC key (docs/eks.md) and print it, or keep it in the NTP
 * client's keys file.
 *
 * - Without --out: the key line (ntp or chrony syntax) or a JSON document on stdout; for people, when the key
 *   expires and the `server` line to use, on stderr.
 * - The server's key id is not taken on trust: an id outside 32768..65535 (docs/eks.md §3) is a bad response,
 *   and nothing is printed or written.
 * - --out FILE: the managed block of this server (`# BEGIN ntptsc ekey HOST:PORT` ... `# END ...`) is replaced,
 *   every other byte of the file is kept; the file is replaced atomically (temp file in the same directory, fsync,
 *   rename; mode 0600 for a new file, an existing file's owner and mode without "other" bits). A key already in
 *   the block is renewed (docs/eks.md §5: same id, so the NTP client's `key` setting stays right); if the server
 *   refuses the renewal (Error 6), a new key is fetched and a warning says the id changed. A key whose id the file
 *   already defines outside the block (an operator's key, another server's block) is not written: exit 1, the
 *   line named, the file unchanged.
 * - --renew (with --out): keeps running; renews at 2/3 of each lifetime (monotonic clock), retries failures with
 *   backoff (10 s doubling to 10 min, never past the expiry), runs --on-renew after each write of the file, and
 *   exits 0 on SIGTERM or SIGINT.
 * - --on-renew CMD: run through `/bin/sh -c` after each write of --out (the first one included: the file has a
 *   new key then too), with NTPTSC_KEY_ID, NTPTSC_PREVIOUS_KEY_ID and NTPTSC_KEYS_FILE in its environment; its
 *   output and exit status go to stderr; a failing command does not stop the loop (without --renew, it makes the
 *   exit code 1: the file was written, the reload it stands for was not).
 * - The hidden --renew-after SECONDS replaces the renewal delay (and scales the retry backoff to start there):
 *   for tests, which cannot wait 2/3 of a real lifetime.
 *
 * Exit codes as for every ntptsc command: 0 done, 1 failed (one line on stderr), 2 bad command line.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EKS_DEFAULT_PORT, fetchEphemeralKey, type EphemeralKeyOptions, type EphemeralKeyResult } from '../client/eks.js';
import { ClientError } from '../client/errors.js';
import { UsageError } from '../proto/errors.js';
import { KeysBlockCodes, checkManagedBlock, managedKeyComment, readManagedKey, replaceManagedBlock, type KeysFileFormat, type ManagedKey } from '../proto/eks/keys-file.js';
import { EKS_TOKEN_MAX_LENGTH } from '../proto/eks/records.js';
import {
  RETRY_BASE_MS,
  RETRY_MAX_MS,
  ekeyJson,
  formatDelay,
  issuedKeyIdProblem,
  keyLine,
  renewalDelayMs,
  retryDelayMs,
  serverDirective,
  useHint,
  type EkeyFormat,
  type EkeyWrite,
} from './ekey-format.js';
import { errorJson, formatEndpoint, formatJson, oneLine, parseEndpoint } from './format.js';

export interface EkeyCliOptions {
  json?: boolean;
  ca?: string;
  token?: string;
  tokenFile?: string;
  format?: EkeyFormat;
  out?: string;
  renew?: boolean;
  onRenew?: string;
  renewAfter?: number;
  timeout?: number;
}

export interface EkeyIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Calls `handler` when the process is asked to stop; returns a function that stops listening. */
export type StopSignals = (handler: () => void) => () => void;

/** SIGTERM (systemd, kill) and SIGINT (Ctrl-C) end `--renew` with exit 0. */
export const processStopSignals: StopSignals = (handler) => {
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
};

/** A bad command line (exit 2). */
class EkeyUsage extends Error {}
/** A local problem with --out (exit 1, also in --renew mode: it does not go away by retrying). */
class KeysFileProblem extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** setTimeout takes at most 2^31 - 1 ms (24.8 days); longer waits are chained. */
const MAX_TIMER_MS = 24 * 86_400_000;

/** Waits `ms` by the monotonic clock, in chunks setTimeout can take; ends early when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const deadline = performance.now() + ms;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const arm = () => {
      const left = deadline - performance.now();
      if (left <= 0) done();
      else timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    if (signal.aborted) {
      resolve();
      return;
    }
    signal.addEventListener('abort', done, { once: true });
    arm();
  });
}

function readOption(option: string, path: string): Promise<string> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new EkeyUsage(`cannot read ${option} file ${path}: ${error.code ?? String(error)}`);
  });
}

async function tokenOf(opts: EkeyCliOptions): Promise<string | undefined> {
  if (opts.token !== undefined && opts.tokenFile !== undefined) throw new EkeyUsage('--token and --token-file exclude each other');
  let token = opts.token;
  if (opts.tokenFile !== undefined) {
    // The file holds the token on its first line; surrounding blanks and the line end are not part of it.
    token = ((await readOption('--token-file', opts.tokenFile)).split('\n')[0] ?? '').trim();
    if (token === '') throw new EkeyUsage(`--token-file ${opts.tokenFile} is empty`);
  }
  if (token !== undefined) {
    const octets = Buffer.byteLength(token, 'utf8');
    if (octets < 1 || octets > EKS_TOKEN_MAX_LENGTH) throw new EkeyUsage(`a token has 1 to ${EKS_TOKEN_MAX_LENGTH} octets of UTF-8, got ${octets}`);
  }
  return token;
}

// ---------------------------------------------------------------------------------------------------------------
// The keys file. Read and written as latin1, so that bytes outside the block survive whatever their encoding.

async function readKeysFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'latin1');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return '';
    throw new KeysFileProblem('EKEY_FILE', `cannot read ${path}: ${code ?? String(error)}`);
  }
}

/**
 * Replaces `path` atomically: a temp file next to the target (a symlink is followed, so the link stays), fsync,
 * rename, fsync of the directory. A new file gets 0600; an existing one keeps its owner (when we may set it) and
 * its mode without the "other" and execute bits.
 */
async function writeKeysFile(path: string, text: string): Promise<void> {
  let target = path;
  let mode = 0o600;
  let owner: { uid: number; gid: number } | undefined;
  try {
    target = await realpath(path);
    const info = await stat(target);
    mode = (info.mode & 0o660) | 0o600;
    owner = { uid: info.uid, gid: info.gid };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(text, 'latin1');
      if (owner !== undefined && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        await handle.chown(owner.uid, owner.gid).catch(() => {});
      }
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  // The rename itself is durable once the directory is synced; not every file system allows it.
  const dir = await open(dirname(target), 'r').catch(() => undefined);
  await dir?.sync().catch(() => {});
  await dir?.close();
}

/** The block for `source` must be one we can replace safely: checked before a key is asked for. */
function checkBlock(text: string, source: string, path: string): void {
  const probe = checkManagedBlock(text, source);
  if (!probe.ok) throw new KeysFileProblem('EKEY_FILE_BLOCK', `${path}: ${probe.error.message}; fix the file by hand (it was not changed)`);
}

/** The key the block holds, in this format or (after a change of --format) the other. */
function heldKey(text: string, source: string, format: KeysFileFormat): ManagedKey | null {
  return readManagedKey(text, source, format) ?? readManagedKey(text, source, format === 'ntp' ? 'chrony' : 'ntp');
}

// ---------------------------------------------------------------------------------------------------------------

interface Context {
  readonly host: string;
  readonly port: number;
  /** `HOST:PORT`, the name of the managed block. */
  readonly source: string;
  readonly fetchOptions: EphemeralKeyOptions;
  readonly opts: EkeyCliOptions;
  readonly io: EkeyIo;
  readonly signal: AbortSignal;
  readonly human: boolean;
}

interface Obtained {
  readonly result: EphemeralKeyResult;
  readonly previousKeyId: number | null;
  /** Monotonic time (ms) the response arrived: the lifetime counts from here. */
  readonly receivedAt: number;
}

/** The key line; a key id the format cannot hold (ntpd takes 1..65535) is the server's fault, reported as such. */
function keyLineOf(result: EphemeralKeyResult, format: KeysFileFormat): string {
  try {
    return keyLine(result, format);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const where = formatEndpoint(result.eksHost, result.eksPort);
    throw new ClientError('EKS_BAD_RESPONSE', `${where} issued a key the ${format} keys file cannot hold: ${error.message}`, { decodeError: error.code });
  }
}

function warn(io: EkeyIo, text: string): void {
  io.stderr(`ntptsc: warning: ${oneLine(text)}\n`);
}

/** `result`, unless its key id is one no EKS server may issue (docs/eks.md §3): that is the server's fault. */
function checkIssued(result: EphemeralKeyResult): EphemeralKeyResult {
  const problem = issuedKeyIdProblem(result.keyId);
  if (problem === null) return result;
  const where = formatEndpoint(result.eksHost, result.eksPort);
  throw new ClientError('EKS_BAD_RESPONSE', `${where} issued a key the client refuses: ${problem}; nothing was written`, { keyId: result.keyId });
}

/** A renewal of `held` when there is one; a new key when there is none or the server refuses the renewal. */
async function obtain(ctx: Context, held: ManagedKey | null): Promise<Obtained> {
  const fetch = async (renew?: ManagedKey) =>
    checkIssued(
      await fetchEphemeralKey(ctx.host, { ...ctx.fetchOptions, signal: ctx.signal, ...(renew === undefined ? {} : { renew: { keyId: renew.keyId, key: renew.key } }) }),
    );
  if (held === null) {
    const result = await fetch();
    return { result, previousKeyId: null, receivedAt: performance.now() };
  }
  let result: EphemeralKeyResult;
  let refused = '';
  try {
    result = await fetch(held);
  } catch (error) {
    if (!(error instanceof ClientError) || error.code !== 'EKS_ERROR_6') throw error;
    refused = `the server refused to renew key ${held.keyId} (Renewal Refused: unknown, revoked or rotated out); `;
    result = await fetch();
  }
  if (result.keyId !== held.keyId) {
    warn(
      ctx.io,
      `${refused}the key id changed from ${held.keyId} to ${result.keyId}: the NTP client's \`key\` setting must be updated (${serverDirective(result)})`,
    );
  }
  return { result, previousKeyId: held.keyId, receivedAt: performance.now() };
}

/** One fetch (renewal when the file holds a key) and the write of --out; returns what was written. */
async function fetchAndWrite(ctx: Context, path: string, format: KeysFileFormat): Promise<Obtained> {
  const before = await readKeysFile(path);
  checkBlock(before, ctx.source, path);
  const obtained = await obtain(ctx, heldKey(before, ctx.source, format));
  const { result } = obtained;
  // Read again: the operator (or a package) may have changed other lines while we were away.
  const current = await readKeysFile(path);
  const replaced = replaceManagedBlock(current, ctx.source, {
    comments: [managedKeyComment(result.keyId, ctx.source, result.expirySeconds), 'managed by ntptsc ekey: lines outside this block are kept'],
    keyLine: keyLineOf(result, format),
  });
  if (!replaced.ok) {
    if (replaced.error.code === KeysBlockCodes.KEY_ID_TAKEN) {
      // Two EKS servers both allocate from 32768, or an operator's key sits in the range: one file cannot hold both.
      throw new KeysFileProblem(
        'EKEY_KEY_ID_TAKEN',
        `${path}: ${ctx.source} issued key ${result.keyId}, but ${replaced.error.message}; not written (the file was not changed): ` +
          'one keys file cannot hold two keys with the same id; remove the other definition, or have the EKS servers use disjoint eks.key-id-range',
      );
    }
    throw new KeysFileProblem('EKEY_FILE_BLOCK', `${path}: ${replaced.error.message}; fix the file by hand (it was not changed)`);
  }
  try {
    await writeKeysFile(path, replaced.value);
  } catch (error) {
    throw new KeysFileProblem('EKEY_FILE', `cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return obtained;
}

/** Runs --on-renew through /bin/sh; its output and exit status go to stderr. True when it exited 0; never rejects. */
function runHook(command: string, env: Record<string, string>, io: EkeyIo, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    } catch (error) {
      io.stderr(`ntptsc: --on-renew command could not be started: ${oneLine(String(error))}\n`);
      resolve(false);
      return;
    }
    child.stdout.setEncoding('utf8').on('data', (text: string) => io.stderr(text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => io.stderr(text));
    child.once('error', (error) => {
      io.stderr(`ntptsc: --on-renew command could not be started: ${oneLine(error.message)}\n`);
      resolve(false);
    });
    // Stopping (SIGTERM/SIGINT) stops the command too rather than waiting for it.
    const stop = () => child.kill('SIGTERM');
    signal.addEventListener('abort', stop, { once: true });
    child.once('close', (code, killedBy) => {
      signal.removeEventListener('abort', stop);
      if (code === 0) io.stderr('--on-renew command exited with status 0\n');
      else if (code !== null) io.stderr(`ntptsc: --on-renew command exited with status ${code}\n`);
      else io.stderr(`ntptsc: --on-renew command was killed by ${killedBy ?? 'a signal'}\n`);
      resolve(code === 0);
    });
  });
}

/** After a write: the JSON line or the line for people, then the hook; false when the hook failed. */
async function reportWrite(ctx: Context, path: string, format: KeysFileFormat, obtained: Obtained, compactJson: boolean): Promise<boolean> {
  const { result, previousKeyId } = obtained;
  const write: EkeyWrite = { file: path, format, previousKeyId };
  if (ctx.opts.json === true) ctx.io.stdout(compactJson ? `${JSON.stringify(ekeyJson(result, write))}\n` : formatJson(ekeyJson(result, write)));
  else {
    const how = result.renewed ? 'renewed' : previousKeyId === null ? 'new' : 'new, replacing ' + String(previousKeyId);
    ctx.io.stderr(`key ${result.keyId} (${how}) written to ${path}; ${useHint(result).replace(/^key \d+ /, '')}\n`);
  }
  if (ctx.opts.onRenew !== undefined) {
    return runHook(
      ctx.opts.onRenew,
      { NTPTSC_KEY_ID: String(result.keyId), NTPTSC_PREVIOUS_KEY_ID: previousKeyId === null ? '' : String(previousKeyId), NTPTSC_KEYS_FILE: path },
      ctx.io,
      ctx.signal,
    );
  }
  return true;
}

/** Exit code and output of a failure. */
function failed(error: unknown, json: boolean | undefined, io: EkeyIo): number {
  if (error instanceof ClientError || error instanceof KeysFileProblem) {
    io.stderr(`ntptsc: ${oneLine(error.message)}\n`);
    if (json === true) {
      // errorJson's shape, with the codes of local file problems (EKEY_FILE, EKEY_FILE_BLOCK, EKEY_KEY_ID_TAKEN) next to ClientError's.
      io.stdout(formatJson(error instanceof ClientError ? errorJson(error) : { error: { code: error.code, message: oneLine(error.message), details: {} } }));
    }
    return 1;
  }
  throw error;
}

/** --renew: renew at 2/3 of each lifetime until stopped; returns the exit code. */
async function renewLoop(ctx: Context, path: string, format: KeysFileFormat): Promise<number> {
  const override = ctx.opts.renewAfter;
  const base = override === undefined ? RETRY_BASE_MS : override * 1000;
  const max = override === undefined ? RETRY_MAX_MS : base * (RETRY_MAX_MS / RETRY_BASE_MS);
  /** Monotonic time (ms) the key in the file expires, once we know one. */
  let expiresAt: number | null = null;
  let failures = 0;
  while (!ctx.signal.aborted) {
    let obtained: Obtained;
    try {
      obtained = await fetchAndWrite(ctx, path, format);
    } catch (error) {
      if (ctx.signal.aborted) break;
      if (error instanceof KeysFileProblem) return failed(error, ctx.opts.json, ctx.io);
      if (!(error instanceof ClientError)) throw error;
      const delay = retryDelayMs(failures++, expiresAt === null ? null : expiresAt - performance.now(), base, max);
      ctx.io.stderr(`ntptsc: ${oneLine(error.message)}; retrying in ${formatDelay(delay)}\n`);
      await sleep(delay, ctx.signal);
      continue;
    }
    failures = 0;
    const { result, receivedAt } = obtained;
    expiresAt = receivedAt + result.lifetimeSeconds * 1000;
    await reportWrite(ctx, path, format, obtained, true);
    if (ctx.signal.aborted) break;
    const delay = Math.max(0, receivedAt + renewalDelayMs(result.lifetimeSeconds, override) - performance.now());
    if (ctx.human) ctx.io.stderr(`next renewal in ${formatDelay(delay)}\n`);
    await sleep(delay, ctx.signal);
  }
  return 0;
}

async function run(target: string, opts: EkeyCliOptions, io: EkeyIo, stopSignals: StopSignals | undefined): Promise<number> {
  const format = opts.format ?? 'ntp';
  if (opts.renew === true && opts.out === undefined) throw new EkeyUsage('--renew needs --out FILE (the keys file to keep current)');
  if (opts.onRenew !== undefined && opts.out === undefined) throw new EkeyUsage('--on-renew needs --out FILE (it runs after each write of the file)');
  if (opts.renewAfter !== undefined && opts.renew !== true) throw new EkeyUsage('--renew-after needs --renew');
  if (opts.out !== undefined && format === 'json') throw new EkeyUsage('--out writes a keys file: --format ntp or chrony (--json reports what was written)');
  if (opts.out === '') throw new EkeyUsage('--out needs a file name');
  const where = parseEndpoint(target, EKS_DEFAULT_PORT);
  if (!where.ok) throw new EkeyUsage(where.error);
  const { host, port } = where.value;
  const token = await tokenOf(opts);
  const ca = opts.ca === undefined ? undefined : await readOption('--ca', opts.ca);

  const controller = new AbortController();
  const ctx: Context = {
    host,
    port,
    source: formatEndpoint(host, port),
    fetchOptions: {
      port,
      ...(ca === undefined ? {} : { ca }),
      ...(token === undefined ? {} : { token }),
      ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }),
    },
    opts,
    io,
    signal: controller.signal,
    human: opts.json !== true && format !== 'json',
  };

  if (opts.out === undefined) {
    try {
      const { result } = await obtain(ctx, null);
      if (format === 'json' || opts.json === true) io.stdout(formatJson(ekeyJson(result)));
      else {
        io.stdout(`${keyLineOf(result, format)}\n`);
        io.stderr(`${useHint(result)}\n`);
      }
      return 0;
    } catch (error) {
      return failed(error, opts.json === true || format === 'json', io);
    }
  }
  const keysFormat: KeysFileFormat = format === 'chrony' ? 'chrony' : 'ntp';
  if (opts.renew !== true) {
    try {
      const obtained = await fetchAndWrite(ctx, opts.out, keysFormat);
      // Without --renew (e.g. from cron) a failing --on-renew fails the run: the file was written, the reload was not.
      return (await reportWrite(ctx, opts.out, keysFormat, obtained, false)) ? 0 : 1;
    } catch (error) {
      return failed(error, opts.json, io);
    }
  }
  const stopListening = stopSignals?.(() => controller.abort());
  try {
    return await renewLoop(ctx, opts.out, keysFormat);
  } finally {
    stopListening?.();
    controller.abort();
  }
}

/** `ntptsc ekey`: the exit code; usage problems print one line and give 2. */
export async function runEkey(target: string, opts: EkeyCliOptions, io: EkeyIo, stopSignals?: StopSignals): Promise<number> {
  try {
    return await run(target, opts, io, stopSignals);
  } catch (error) {
    if (error instanceof EkeyUsage) {
      io.stderr(`ntptsc: ${oneLine(error.message)}\n`);
      return 2;
    }
    throw error;
  }
}

