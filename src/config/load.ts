/**
 * Config loading: TOML text → schema (stage 1, `schema.ts`) → cross-field `check()` (stage 2). Everything here
 * is pure over text except `loadConfigFile` and `resolveConfig`, which only add reading the file.
 * `ntptsd --check` and the daemon (start and SIGHUP) go through the same functions.
 */
import { readFile } from 'node:fs/promises';
import { parse, TomlError } from 'smol-toml';
import { check } from './check.js';
import { configSchema, DEFAULT_CONFIG_PATH, errorMap } from './schema.js';
import type { Config, ConfigProblem } from './types.js';

export type ConfigErrorCode =
  /** The file could not be read (missing, permissions, a directory). */
  | 'CONFIG_UNREADABLE'
  /** Not valid TOML; the one problem carries line and column. */
  | 'CONFIG_SYNTAX'
  /** Valid TOML, but keys or values are wrong; `problems` lists them all. */
  | 'CONFIG_INVALID';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly code: ConfigErrorCode,
    /** File name, or a label such as `<defaults>`. */
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(`${source}: ${problems.map(formatProblem).join('; ')}`);
  }
}

export type ConfigResult<T = Config> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ConfigError };

/** `key.path: reason`, or just the reason for whole-file problems. */
export function formatProblem(problem: ConfigProblem): string {
  return problem.path === '' ? problem.message : `${problem.path}: ${problem.message}`;
}

/** zod path → the file's notation: `listener[1].services[0]`; odd keys are quoted as TOML would. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else {
      const key = String(segment);
      const bare = /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
      out += out === '' ? bare : `.${bare}`;
    }
  }
  return out;
}

/** Validate a TOML document. `source` names it in errors (a file name, `<defaults>`, ...). */
export function loadConfigText(text: string, source: string): ConfigResult {
  let document: unknown;
  try {
    document = parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    const reason = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    const problem = { path: '', message: `${source}:${e.line}:${e.column}: TOML syntax error: ${reason}` };
    return { ok: false, error: new ConfigError('CONFIG_SYNTAX', source, [problem]) };
  }
  return validateDocument(document, source);
}

/** Validate an already parsed document (plain objects, as from a TOML parser). */
export function validateDocument(document: unknown, source: string): ConfigResult {
  const parsed = configSchema.safeParse(document, { error: errorMap });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({ path: formatKeyPath(issue.path), message: issue.message }));
    return { ok: false, error: new ConfigError('CONFIG_INVALID', source, problems) };
  }
  const problems = check(parsed.data);
  if (problems.length > 0) return { ok: false, error: new ConfigError('CONFIG_INVALID', source, problems) };
  return { ok: true, value: parsed.data };
}

/** The built-in defaults: what a run without a config file uses. */
export function defaultConfig(): Config {
  const result = validateDocument({}, '<defaults>');
  // The defaults are constants; a failure here is a bug caught by the test suite, not a user error.
  if (!result.ok) throw result.error;
  return result.value;
}

type ReadResult = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly errno: string | undefined; readonly error: ConfigError };

async function readConfigText(path: string): Promise<ReadResult> {
  try {
    return { ok: true, text: await readFile(path, 'utf8') };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const reasons: Record<string, string> = { ENOENT: 'no such file', EISDIR: 'is a directory', EACCES: 'permission denied' };
    const reason = (err.code !== undefined ? reasons[err.code] : undefined) ?? err.message;
    const problem = { path: '', message: `cannot read config file ${path}: ${reason}` };
    return { ok: false, errno: err.code, error: new ConfigError('CONFIG_UNREADABLE', path, [problem]) };
  }
}

export async function loadConfigFile(path: string): Promise<ConfigResult> {
  const read = await readConfigText(path);
  return read.ok ? loadConfigText(read.text, path) : { ok: false, error: read.error };
}

export interface ResolvedConfig {
  readonly config: Config;
  /** The file it came from; `null` for the built-in defaults. */
  readonly path: string | null;
}

/**
 * What `ntptsd` runs on: the `-c` file if given (it must exist), else `defaultPath` if it exists, else the
 * built-in defaults.
 */
export async function resolveConfig(argPath: string | null | undefined, defaultPath: string = DEFAULT_CONFIG_PATH): Promise<ConfigResult<ResolvedConfig>> {
  const path = argPath ?? defaultPath;
  const read = await readConfigText(path);
  if (!read.ok) {
    // Only an explicit -c file must exist; the default location is optional.
    const optional = argPath === null || argPath === undefined;
    return optional && read.errno === 'ENOENT' ? { ok: true, value: { config: defaultConfig(), path: null } } : { ok: false, error: read.error };
  }
  const loaded = loadConfigText(read.text, path);
  return loaded.ok ? { ok: true, value: { config: loaded.value, path } } : loaded;
}
