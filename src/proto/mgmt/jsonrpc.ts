/**
 * JSON-RPC 2.0 messages of the management protocol, one per line (docs/management.md §4, §5, §9).
 *
 * Theory of operation
 * - `parseLine(line)` reads one request line. A line whose first non-blank character is `{` or `[` is JSON;
 *   anything else is the plain-text form `method [word | key=value]...`. Both produce the same `MgmtRequest`.
 * - One request per line: batches (JSON arrays) are refused with -32600, by-position JSON params with -32602.
 *   The text form may carry positional words (`log-level debug`); they are bound to parameter names by the
 *   method table (types.ts `checkParams`), not here, so this module knows no method.
 * - A blank line is no request: `parseLine` returns `ok(null)` and nothing is answered.
 * - Failures come back as `RequestError`: a `DecodeError` (stable `code`, e.g. `MGMT_JSON_SYNTAX`) that also
 *   carries the JSON-RPC error to answer and the request id when it could be read (else null).
 * - Whether a method exists (-32601), whether the caller may call it (-32001/-32002) and whether its params
 *   fit its schema (-32602) is decided after parsing, by the dispatcher with the table in types.ts.
 * - Encoders produce exactly one line, LF included. `JSON.stringify` escapes control characters, so no encoded
 *   message contains a raw newline. `parseServerMessage` is the client's reader of what the encoders write.
 * - Nothing here throws on peer input; encoders throw `UsageError` for values JSON cannot carry.
 */

import { DecodeError, UsageError, fail, ok, type Result } from '../errors.js';

export const JSONRPC_VERSION = '2.0';

/** JSON-RPC 2.0 §5.1 codes, and the application codes of this protocol (server range -32000..-32099). */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** The session's role is `none`: authenticate first (`auth`, a client certificate, or the Unix socket). */
  UNAUTHENTICATED: -32001,
  /** Authenticated, but the role does not allow the method (monitor calling an admin method). */
  FORBIDDEN: -32002,
  /** Too many failed `auth` attempts, or another per-client limit; `data.retryAfter` in seconds. */
  RATE_LIMITED: -32003,
  /** The method needs a backend (ntpd, chrony, a file) that did not answer. */
  BACKEND_UNAVAILABLE: -32004,
  /** The object named in the params does not exist (e.g. a key id). */
  NOT_FOUND: -32005,
  /** The request conflicts with the current state (e.g. a reload already in progress). */
  CONFLICT: -32006,
  /** `reload`: the configuration did not validate; `data.problems` lists them and nothing was changed. */
  CONFIG_INVALID: -32007,
} as const;
export type RpcErrorCodeName = keyof typeof RpcErrorCode;

/** The standard messages, used when no better one is given. */
export const RPC_ERROR_MESSAGES: Readonly<Record<number, string>> = {
  [RpcErrorCode.PARSE_ERROR]: 'Parse error',
  [RpcErrorCode.INVALID_REQUEST]: 'Invalid Request',
  [RpcErrorCode.METHOD_NOT_FOUND]: 'Method not found',
  [RpcErrorCode.INVALID_PARAMS]: 'Invalid params',
  [RpcErrorCode.INTERNAL_ERROR]: 'Internal error',
  [RpcErrorCode.UNAUTHENTICATED]: 'Unauthenticated',
  [RpcErrorCode.FORBIDDEN]: 'Forbidden',
  [RpcErrorCode.RATE_LIMITED]: 'Rate limited',
  [RpcErrorCode.BACKEND_UNAVAILABLE]: 'Backend unavailable',
  [RpcErrorCode.NOT_FOUND]: 'Not found',
  [RpcErrorCode.CONFLICT]: 'Conflict',
  [RpcErrorCode.CONFIG_INVALID]: 'Configuration invalid',
};

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };
/** JSON-RPC 2.0 §4: a string, a number, or null. */
export type RequestId = string | number | null;

/** The `error` member of a response. `data.reason` is a stable code (the `DecodeError.code` for parse failures). */
export interface RpcError {
  readonly code: number;
  readonly message: string;
  readonly data?: JsonValue;
}

export interface MgmtRequest {
  /** Absent for a JSON-RPC notification (no `id` member): the server runs it and answers nothing. Text form: null. */
  readonly id?: RequestId;
  readonly method: string;
  /** Named params; `{}` when none were given. */
  readonly params: JsonObject;
  /** Positional words of the text form, in order (always empty for JSON). */
  readonly args: readonly JsonValue[];
  readonly form: 'json' | 'text';
}

/** Limits on one request, beyond the line length (which the framing enforces). */
export const REQUEST_LIMITS = {
  /** Method names are short words such as `rotate-keys` or `ntpd.mrulist`. */
  maxMethodLength: 64,
  /** A string id longer than this is refused; clients use counters or UUIDs. */
  maxIdLength: 128,
  /** Nesting of arrays/objects inside `params`; our params are flat, 8 leaves room. */
  maxDepth: 8,
  /** Named params plus positional words (text form) or object members (JSON), per request. */
  maxParams: 64,
} as const;

/** Stable codes of parse failures; each maps to one JSON-RPC error code. */
export const RequestErrorCodes = {
  JSON_SYNTAX: 'MGMT_JSON_SYNTAX',
  TEXT_SYNTAX: 'MGMT_TEXT_SYNTAX',
  BATCH_UNSUPPORTED: 'MGMT_BATCH_UNSUPPORTED',
  NOT_AN_OBJECT: 'MGMT_NOT_AN_OBJECT',
  BAD_VERSION: 'MGMT_BAD_VERSION',
  BAD_ID: 'MGMT_BAD_ID',
  BAD_METHOD: 'MGMT_BAD_METHOD',
  UNKNOWN_MEMBER: 'MGMT_UNKNOWN_MEMBER',
  PARAMS_NOT_OBJECT: 'MGMT_PARAMS_NOT_OBJECT',
  PARAMS_TOO_DEEP: 'MGMT_PARAMS_TOO_DEEP',
  TOO_MANY_PARAMS: 'MGMT_TOO_MANY_PARAMS',
  DUPLICATE_PARAM: 'MGMT_DUPLICATE_PARAM',
} as const;
export type RequestErrorCode = (typeof RequestErrorCodes)[keyof typeof RequestErrorCodes];

/** A request line that cannot be run. `rpc` is what to answer, with `id` (null when it could not be read). */
export class RequestError extends DecodeError {
  constructor(
    code: RequestErrorCode,
    message: string,
    readonly rpc: RpcError,
    readonly id: RequestId,
    /** True when the line was a JSON-RPC notification: JSON-RPC 2.0 §4.1 says it gets no answer, not even an error. */
    readonly notification = false,
    offset?: number,
  ) {
    super(code, message, offset);
  }
}

/** An `RpcError` with the standard message when none is given; `data.reason` set when `reason` is. */
export function rpcError(code: number, message?: string, reason?: string, extra?: JsonObject): RpcError {
  const data = reason === undefined && extra === undefined ? undefined : { ...(reason === undefined ? {} : { reason }), ...extra };
  return { code, message: message ?? RPC_ERROR_MESSAGES[code] ?? 'Server error', ...(data === undefined ? {} : { data }) };
}

function requestError(
  code: RequestErrorCode,
  rpcCode: number,
  message: string,
  id: RequestId = null,
  notification = false,
  offset?: number,
): { readonly ok: false; readonly error: RequestError } {
  return fail(new RequestError(code, message, rpcError(rpcCode, message, code), id, notification, offset));
}

/**
 * The answer to a line the framing refused (`MGMT_LINE_TOO_LONG`, `MGMT_LINE_NOT_UTF8`): -32600 with the framing
 * code as `data.reason`, sent with id null.
 */
export function lineErrorToRpc(error: DecodeError): RpcError {
  return rpcError(RpcErrorCode.INVALID_REQUEST, error.message, error.code);
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing requests

/**
 * Reads one request line (terminator already removed). `ok(null)` for a blank line; otherwise the request or
 * the error to answer.
 */
export function parseLine(line: string): Result<MgmtRequest | null, RequestError> {
  let start = 0;
  while (start < line.length && isBlank(line.charCodeAt(start))) start++;
  if (start === line.length) return ok(null);
  const first = line.charCodeAt(start);
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) return parseJsonRequest(line);
  return parseTextRequest(line, start);
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d;
}

function parseJsonRequest(line: string): Result<MgmtRequest, RequestError> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    // SyntaxError for bad JSON; a RangeError would be an engine limit (nesting): both are the peer's fault.
    const detail = e instanceof Error ? e.message : 'invalid JSON';
    return requestError(RequestErrorCodes.JSON_SYNTAX, RpcErrorCode.PARSE_ERROR, `invalid JSON: ${detail}`);
  }
  if (Array.isArray(value)) {
    return requestError(RequestErrorCodes.BATCH_UNSUPPORTED, RpcErrorCode.INVALID_REQUEST, 'batches are not supported: send one request per line');
  }
  if (!isPlainObject(value)) return requestError(RequestErrorCodes.NOT_AN_OBJECT, RpcErrorCode.INVALID_REQUEST, 'a request is a JSON object');

  // The id is read first so that every later error can echo it (JSON-RPC 2.0 §5).
  const hasId = Object.hasOwn(value, 'id');
  const rawId = value['id'];
  let id: RequestId = null;
  if (hasId) {
    if (!isValidId(rawId)) {
      return requestError(RequestErrorCodes.BAD_ID, RpcErrorCode.INVALID_REQUEST, `id must be a string of at most ${REQUEST_LIMITS.maxIdLength} characters, a finite number or null`);
    }
    id = rawId;
  }
  const notification = !hasId;
  const bad = (code: RequestErrorCode, rpcCode: number, message: string) => requestError(code, rpcCode, message, id, notification);

  for (const key of Object.keys(value)) {
    if (key !== 'jsonrpc' && key !== 'id' && key !== 'method' && key !== 'params') {
      return bad(RequestErrorCodes.UNKNOWN_MEMBER, RpcErrorCode.INVALID_REQUEST, `unknown member ${JSON.stringify(truncate(key, 32))} in request`);
    }
  }
  if (value['jsonrpc'] !== JSONRPC_VERSION) return bad(RequestErrorCodes.BAD_VERSION, RpcErrorCode.INVALID_REQUEST, 'jsonrpc must be "2.0"');
  const method = value['method'];
  if (typeof method !== 'string' || method.length === 0 || method.length > REQUEST_LIMITS.maxMethodLength) {
    return bad(RequestErrorCodes.BAD_METHOD, RpcErrorCode.INVALID_REQUEST, `method must be a string of 1..${REQUEST_LIMITS.maxMethodLength} characters`);
  }
  let params: JsonObject = {};
  if (Object.hasOwn(value, 'params')) {
    const raw = value['params'];
    if (!isPlainObject(raw)) {
      return bad(RequestErrorCodes.PARAMS_NOT_OBJECT, RpcErrorCode.INVALID_PARAMS, 'params must be an object (by-name); by-position params are not supported');
    }
    if (Object.keys(raw).length > REQUEST_LIMITS.maxParams) {
      return bad(RequestErrorCodes.TOO_MANY_PARAMS, RpcErrorCode.INVALID_PARAMS, `more than ${REQUEST_LIMITS.maxParams} params`);
    }
    if (depth(raw, REQUEST_LIMITS.maxDepth + 1) > REQUEST_LIMITS.maxDepth) {
      return bad(RequestErrorCodes.PARAMS_TOO_DEEP, RpcErrorCode.INVALID_PARAMS, `params nest deeper than ${REQUEST_LIMITS.maxDepth} levels`);
    }
    params = raw as JsonObject;
  }
  return ok(notification ? { method, params, args: [], form: 'json' } : { id, method, params, args: [], form: 'json' });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isValidId(v: unknown): v is RequestId {
  if (v === null) return true;
  if (typeof v === 'string') return v.length <= REQUEST_LIMITS.maxIdLength;
  return typeof v === 'number' && Number.isFinite(v);
}

/** Nesting depth of a JSON value (a scalar is 0, `{}` is 1), counted up to `stop`; iterative, so never deep in stack. */
function depth(root: unknown, stop: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    const here = d + 1;
    if (here > max) max = here;
    if (max >= stop) return max;
    for (const child of Object.values(v)) stack.push([child, here]);
  }
  return max;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/*
 * The text form (docs/management.md §9):
 *   line   = method *(blank+ item) [blank*]
 *   method = word made of [A-Za-z0-9._-], starting with a letter
 *   item   = key "=" value | value          (a value alone is a positional word)
 *   key    = [A-Za-z_][A-Za-z0-9_-]*
 *   value  = quoted | bare
 *   quoted = '"' JSON string escapes '"'  → always a string
 *   bare   = any run of non-blank characters without '"'  → number / true / false / null if it reads as one,
 *            else the string itself
 * A key given twice collects its values into an array, in order.
 */

const METHOD_WORD = /^[A-Za-z][A-Za-z0-9._-]*$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function parseTextRequest(line: string, start: number): Result<MgmtRequest, RequestError> {
  const syntax = (message: string, at: number) => requestError(RequestErrorCodes.TEXT_SYNTAX, RpcErrorCode.PARSE_ERROR, message, null, false, at);
  let i = start;
  const readBare = (): string => {
    const from = i;
    while (i < line.length && !isBlank(line.charCodeAt(i)) && line.charCodeAt(i) !== 0x22) i++;
    return line.slice(from, i);
  };

  const method = readBare();
  if (i < line.length && !isBlank(line.charCodeAt(i))) return syntax('a quote cannot follow the method name', i);
  if (method.length > REQUEST_LIMITS.maxMethodLength || !METHOD_WORD.test(method)) {
    return syntax(`not a request: ${JSON.stringify(truncate(method, 32))} is not a method name (letters, digits, ".", "_", "-"), and the line is not JSON`, start);
  }

  const params: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
  const repeated = new Set<string>();
  const args: JsonValue[] = [];
  let items = 0;
  for (;;) {
    while (i < line.length && isBlank(line.charCodeAt(i))) i++;
    if (i >= line.length) break;
    if (++items > REQUEST_LIMITS.maxParams) {
      return requestError(RequestErrorCodes.TOO_MANY_PARAMS, RpcErrorCode.INVALID_PARAMS, `more than ${REQUEST_LIMITS.maxParams} params`, null);
    }
    const itemStart = i;
    let key: string | undefined;
    let value: JsonValue;
    if (line.charCodeAt(i) === 0x22) {
      const q = readQuoted(line, i);
      if (!q.ok) return syntax(q.error.message, q.error.at);
      i = q.end;
      value = q.value;
    } else {
      const word = readBare();
      const eq = word.indexOf('=');
      if (eq >= 0) {
        key = word.slice(0, eq);
        if (!KEY.test(key)) return syntax(`bad parameter name ${JSON.stringify(truncate(key, 32))}`, itemStart);
        const rest = word.slice(eq + 1);
        if (rest === '' && i < line.length && line.charCodeAt(i) === 0x22) {
          const q = readQuoted(line, i);
          if (!q.ok) return syntax(q.error.message, q.error.at);
          i = q.end;
          value = q.value;
        } else if (rest === '') {
          return syntax(`no value after "${key}="; write ${key}="" for an empty string`, itemStart);
        } else {
          value = bareValue(rest);
        }
      } else {
        value = bareValue(word);
      }
    }
    if (i < line.length && !isBlank(line.charCodeAt(i))) return syntax('a value must be followed by a blank or the end of the line', i);
    if (key === undefined) {
      args.push(value);
    } else if (!(key in params)) {
      params[key] = value;
    } else {
      const prev = params[key] as JsonValue;
      if (repeated.has(key)) (prev as JsonValue[]).push(value);
      else {
        params[key] = [prev, value];
        repeated.add(key);
      }
    }
  }
  // A plain object again (the null-prototype map only guarded against keys such as __proto__ while building).
  const out: JsonObject = {};
  for (const k of Object.keys(params)) Object.defineProperty(out, k, { value: params[k], enumerable: true, writable: true, configurable: true });
  return ok({ id: null, method, params: out, args, form: 'text' });
}

function bareValue(word: string): JsonValue {
  if (word === 'true') return true;
  if (word === 'false') return false;
  if (word === 'null') return null;
  if (NUMBER.test(word)) {
    const n = Number(word);
    if (Number.isFinite(n)) return n;
  }
  return word;
}

const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** A double-quoted string at `at` with JSON escapes; `end` is the index after the closing quote. */
function readQuoted(line: string, at: number): { ok: true; value: string; end: number } | { ok: false; error: { message: string; at: number } } {
  let out = '';
  let i = at + 1;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === '"') return { ok: true, value: out, end: i + 1 };
    if (c === '\\') {
      const e = line[i + 1];
      if (e === undefined) break;
      if (e === 'u') {
        const hex = line.slice(i + 2, i + 6);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) return { ok: false, error: { message: 'bad \\u escape: four hex digits expected', at: i } };
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
        continue;
      }
      const mapped = ESCAPES[e];
      if (mapped === undefined) return { ok: false, error: { message: `unknown escape \\${e}`, at: i } };
      out += mapped;
      i += 2;
      continue;
    }
    out += c;
    i++;
  }
  return { ok: false, error: { message: 'unterminated quoted string', at } };
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding (one line each, LF included)

function line(message: object): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(message);
  } catch (e) {
    throw new UsageError('MGMT_NOT_JSON', `message cannot be encoded as JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (text === undefined) throw new UsageError('MGMT_NOT_JSON', 'message cannot be encoded as JSON');
  return `${text}\n`;
}

function checkId(id: RequestId): void {
  if (!isValidId(id)) throw new UsageError('MGMT_BAD_ID', 'id must be a string, a finite number or null');
}

/** A success response. `result` undefined is sent as null (JSON-RPC 2.0 §5: the member is required). */
export function encodeResult(id: RequestId, result: unknown): string {
  checkId(id);
  return line({ jsonrpc: JSONRPC_VERSION, id, result: result === undefined ? null : result });
}

/** An error response; `id` is null when the request's id could not be read (JSON-RPC 2.0 §5). */
export function encodeError(id: RequestId, error: RpcError): string {
  checkId(id);
  if (!Number.isInteger(error.code)) throw new UsageError('MGMT_BAD_ERROR_CODE', `error code ${error.code} is not an integer`);
  const body = error.data === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.data };
  return line({ jsonrpc: JSONRPC_VERSION, id, error: body });
}

/** A server-to-client notification (`hello`, `stats`, `event`). */
export function encodeNotification(method: string, params?: unknown): string {
  return line(params === undefined ? { jsonrpc: JSONRPC_VERSION, method } : { jsonrpc: JSONRPC_VERSION, method, params });
}

/** A client request; `id` undefined makes it a notification (no answer). Params must be an object. */
export function encodeRequest(id: RequestId | undefined, method: string, params?: JsonObject): string {
  if (id !== undefined) checkId(id);
  if (method.length === 0 || method.length > REQUEST_LIMITS.maxMethodLength) throw new UsageError('MGMT_BAD_METHOD', `method must have 1..${REQUEST_LIMITS.maxMethodLength} characters`);
  const message: Record<string, unknown> = { jsonrpc: JSONRPC_VERSION };
  if (id !== undefined) message['id'] = id;
  message['method'] = method;
  if (params !== undefined) message['params'] = params;
  return line(message);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading what the server sends (for clients)

export type ServerMessage =
  | { readonly kind: 'result'; readonly id: RequestId; readonly result: JsonValue }
  | { readonly kind: 'error'; readonly id: RequestId; readonly error: RpcError }
  | { readonly kind: 'notification'; readonly method: string; readonly params: JsonValue | undefined };

export const ServerMessageErrorCodes = {
  JSON_SYNTAX: 'MGMT_JSON_SYNTAX',
  BAD_MESSAGE: 'MGMT_BAD_MESSAGE',
} as const;

/** Reads one line sent by a server: a response (result or error) or a notification. Unknown members are ignored. */
export function parseServerMessage(text: string): Result<ServerMessage> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail(new DecodeError(ServerMessageErrorCodes.JSON_SYNTAX, `invalid JSON: ${e instanceof Error ? e.message : 'parse failure'}`));
  }
  const bad = (message: string) => fail(new DecodeError(ServerMessageErrorCodes.BAD_MESSAGE, message));
  if (!isPlainObject(value)) return bad('a message is a JSON object');
  if (value['jsonrpc'] !== JSONRPC_VERSION) return bad('jsonrpc must be "2.0"');
  if (Object.hasOwn(value, 'method')) {
    const method = value['method'];
    if (typeof method !== 'string') return bad('method must be a string');
    if (Object.hasOwn(value, 'id')) return bad('the server sends no requests');
    return ok({ kind: 'notification', method, params: value['params'] as JsonValue | undefined });
  }
  const id = value['id'];
  if (!Object.hasOwn(value, 'id') || !isValidId(id)) return bad('a response needs an id (string, number or null)');
  const hasResult = Object.hasOwn(value, 'result');
  const hasError = Object.hasOwn(value, 'error');
  if (hasResult === hasError) return bad('a response has exactly one of result and error');
  if (hasResult) return ok({ kind: 'result', id, result: value['result'] as JsonValue });
  const error = value['error'];
  if (!isPlainObject(error) || !Number.isInteger(error['code']) || typeof error['message'] !== 'string') {
    return bad('error must be an object with an integer code and a string message');
  }
  const rpc: RpcError = Object.hasOwn(error, 'data')
    ? { code: error['code'] as number, message: error['message'], data: error['data'] as JsonValue }
    : { code: error['code'] as number, message: error['message'] };
  return ok({ kind: 'error', id, error: rpc });
}
