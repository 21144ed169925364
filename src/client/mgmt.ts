/**
 * The management client (docs/management.md): connects to ntptsd over its Unix socket or over TLS (ALPN
 * `ntp-mgmt/1`), reads `hello`, optionally authenticates with a token, and calls methods with typed results.
 *
 * Theory of operation
 * - The wire work is the pure core's: `LineDecoder` cuts lines, `encodeRequest` writes requests,
 *   `parseServerMessage` reads what the server sends. This module owns the socket and the timers only.
 * - `MgmtClient.connect()` resolves once `hello` has arrived (and `auth` succeeded when a token was given);
 *   everything before that is bounded by `connectTimeoutMs`.
 * - Requests get numeric ids 1, 2, ... and may be in flight concurrently. The server answers in request order,
 *   so an error with `id: null` (a line it could not read) belongs to the oldest request still waiting.
 * - A call that gets no answer within `timeoutMs` closes the connection: answers come in order, so every later
 *   answer would queue behind the missing one.
 * - Two kinds of failure: `MgmtError` when the server answered a request with a JSON-RPC error (the
 *   connection stays usable), `MgmtConnectionError` when the connection failed or the server broke the protocol
 *   (the client is closed; every waiting call fails with it).
 * - Notifications (`stats`, `event`, and kinds this version does not know) go to the `notification` event and
 *   to every open `MgmtSubscription`, which buffers them for its async iterator from the moment it is created,
 *   so the first `stats` that follows the `subscribe` result is never lost.
 * - The library prints nothing.
 */

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { LineDecoder, MAX_MAX_LINE_LENGTH, NEED_DATA } from '../proto/mgmt/framing.js';
import { RpcErrorCode, encodeRequest, parseServerMessage, type JsonObject, type JsonValue, type RpcError } from '../proto/mgmt/jsonrpc.js';
import {
  MGMT_ALPN,
  MGMT_PROTOCOL_VERSION,
  type AuthResult,
  type AuthVia,
  type EventParams,
  type HelloParams,
  type MethodName,
  type MethodResult,
  type ParamsIn,
  type SessionRole,
  type StatsNotificationParams,
  type SubscribeResult,
  type UnknownEvent,
} from '../proto/mgmt/types.js';
import { connectTls, endpoint, isCertificateError, tlsErrorText } from './tls.js';

/** The daemon's default management socket: `<state-dir>/ntptsd.sock` with the default state dir. */
export const DEFAULT_MGMT_SOCKET = '/var/lib/ntptsd/ntptsd.sock';
/** The default TLS management listener's port (`127.0.0.1:4461`). */
export const DEFAULT_MGMT_PORT = 4461;

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** Notifications a subscription holds for a reader that does not keep up; the oldest are dropped beyond. */
const DEFAULT_MAX_QUEUED = 1024;

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** Stable names of the protocol's error codes (docs/management.md §5), as `ntptsc` prints them. */
const CODE_NAMES: Readonly<Record<number, string>> = {
  [RpcErrorCode.PARSE_ERROR]: 'parse-error',
  [RpcErrorCode.INVALID_REQUEST]: 'invalid-request',
  [RpcErrorCode.METHOD_NOT_FOUND]: 'method-not-found',
  [RpcErrorCode.INVALID_PARAMS]: 'invalid-params',
  [RpcErrorCode.INTERNAL_ERROR]: 'internal-error',
  [RpcErrorCode.UNAUTHENTICATED]: 'unauthenticated',
  [RpcErrorCode.FORBIDDEN]: 'forbidden',
  [RpcErrorCode.RATE_LIMITED]: 'rate-limited',
  [RpcErrorCode.BACKEND_UNAVAILABLE]: 'backend-unavailable',
  [RpcErrorCode.NOT_FOUND]: 'not-found',
  [RpcErrorCode.CONFLICT]: 'conflict',
  [RpcErrorCode.CONFIG_INVALID]: 'config-invalid',
};

/** `forbidden` for -32002, ...; `server-error` for codes this version does not know. */
export function rpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? 'server-error';
}

/**
 * The server answered a request with a JSON-RPC error. The connection is still usable. Match on `code` (the
 * JSON-RPC code, `RpcErrorCode`) and `reason`: `data.reason` when the server gave one (`MGMT_INVALID_PARAMS`),
 * else the code's name (`forbidden`, `rate-limited`, ...; `server-error` for an unknown code).
 */
export class MgmtError extends Error {
  override readonly name = 'MgmtError';
  readonly code: number;
  readonly reason: string;
  /** `error.data` as sent (e.g. `{ required: "admin" }`, `{ retryAfter: 12 }`, `{ problems: [...] }`). */
  readonly data: JsonValue | undefined;
  constructor(
    readonly method: string,
    error: RpcError,
  ) {
    super(error.message);
    this.code = error.code;
    const data = error.data;
    const reason = typeof data === 'object' && data !== null && !Array.isArray(data) ? data['reason'] : undefined;
    this.reason = typeof reason === 'string' ? reason : rpcCodeName(error.code);
    this.data = data;
  }

  /** A member of `data`, when `data` is an object. */
  detail(key: string): JsonValue | undefined {
    const data = this.data;
    return typeof data === 'object' && data !== null && !Array.isArray(data) ? data[key] : undefined;
  }
}

export type MgmtConnectionErrorCode =
  | 'MGMT_CONNECT' // the socket could not be opened (missing, refused, permission denied, unreachable)
  | 'MGMT_TLS' // the TLS handshake failed (not a certificate problem)
  | 'MGMT_CERTIFICATE' // the server certificate did not verify
  | 'MGMT_ALPN' // the server chose another ALPN protocol than ntp-mgmt/1
  | 'MGMT_TIMEOUT' // no hello, or no answer to a call, in time
  | 'MGMT_CLOSED' // the connection closed (by either side) while something was waiting
  | 'MGMT_PROTOCOL' // the server sent something that is not the management protocol
  | 'MGMT_VERSION'; // the server speaks a protocol version this client does not know

/** The connection failed or the server broke the protocol; the client is closed. */
export class MgmtConnectionError extends Error {
  override readonly name = 'MgmtConnectionError';
  constructor(
    readonly code: MgmtConnectionErrorCode,
    message: string,
    /** Extra facts for machine output, e.g. the socket error code. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Options and notifications

export interface MgmtConnectOptions {
  /** Unix socket path; the default when `host` is not given is `DEFAULT_MGMT_SOCKET`. */
  readonly socket?: string;
  /** TLS: the daemon's address (then `socket` must not be given). */
  readonly host?: string;
  /** TLS port, default `DEFAULT_MGMT_PORT`. */
  readonly port?: number;
  /** TLS: CAs to trust instead of the system store (PEM). */
  readonly ca?: string | Buffer;
  /** TLS: client certificate (PEM, chain allowed) and its private key; both or neither. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** TLS: name to check the certificate against (default `host` unless it is an IP address). */
  readonly servername?: string;
  /** Sent with `auth` right after `hello`; `connect` fails with the `auth` error when it is refused. */
  readonly token?: string;
  /** For the connection, the TLS handshake, `hello` and `auth`. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Per call, from sending to the answer. Default 10000; 0 for none. */
  readonly timeoutMs?: number;
  /** Longest server line accepted, default 16 MiB (the protocol asks clients for at least that). */
  readonly maxLineLength?: number;
}

/** A notification as received: `stats`, `event`, or a name this version does not know (kept raw). */
export type MgmtNotification =
  | { readonly method: 'stats'; readonly params: StatsNotificationParams }
  | { readonly method: 'event'; readonly params: EventParams | UnknownEvent }
  | { readonly method: string; readonly params: unknown };

/** The session: as announced in `hello`, then as changed by `auth`. */
export interface MgmtSession {
  readonly role: SessionRole;
  readonly via: AuthVia;
  readonly identity: string | null;
}

interface Pending {
  readonly id: number;
  readonly method: string;
  readonly resolve: (value: JsonValue) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

type Phase = 'hello' | 'open' | 'closed';

const CONNECT_ERRORS = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'EPERM', 'ENOTSOCK', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

const CONNECT_HINTS: Readonly<Record<string, string>> = {
  ENOENT: 'no such socket; is ntptsd running?',
  ECONNREFUSED: 'connection refused; is ntptsd running?',
  EACCES: 'permission denied; the socket is only for its owner and group',
};

/**
 * One connection to the management service. Events: `notification` (MgmtNotification), `close` (the error
 * that ended the connection, or undefined after `close()` or a clean end).
 */
export class MgmtClient extends EventEmitter {
  /** The server's `hello`. */
  readonly hello: HelloParams;
  /** The socket path or `host:port`, for messages. */
  readonly where: string;

  private readonly socket: net.Socket;
  private readonly decoder: LineDecoder;
  private readonly timeoutMs: number;
  private readonly pending: Pending[] = [];
  private readonly subscriptions = new Set<MgmtSubscription>();
  private nextId = 1;
  private phase: Phase = 'hello';
  private currentSession: MgmtSession;
  private closeError: MgmtConnectionError | undefined;
  private readonly closed: Promise<void>;

  /** Opens a connection, waits for `hello` and, with `token`, authenticates. */
  static async connect(options: MgmtConnectOptions = {}): Promise<MgmtClient> {
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const { socket, where, ready } = openSocket(options);
    const decoder = new LineDecoder({ maxLineLength: options.maxLineLength ?? MAX_MAX_LINE_LENGTH });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MgmtConnectionError('MGMT_TIMEOUT', `no hello from ${where} within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    });
    try {
      const hello = await Promise.race([ready.then(() => readHello(socket, decoder, where)), timeout]);
      const client = new MgmtClient(socket, decoder, where, hello, options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
      if (options.token !== undefined) {
        try {
          await Promise.race([client.auth(options.token), timeout]);
        } catch (error) {
          client.destroy();
          throw error;
        }
      }
      return client;
    } catch (error) {
      socket.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private constructor(socket: net.Socket, decoder: LineDecoder, where: string, hello: HelloParams, timeoutMs: number) {
    super();
    this.socket = socket;
    this.decoder = decoder;
    this.where = where;
    this.hello = hello;
    this.timeoutMs = timeoutMs;
    this.currentSession = { role: hello.role, via: hello.via, identity: hello.identity };
    this.phase = 'open';
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (error: NodeJS.ErrnoException) => this.fail(new MgmtConnectionError('MGMT_CLOSED', `connection to ${where} failed: ${error.code ?? error.message}`, { socketError: error.code })));
    socket.on('close', () => this.fail(new MgmtConnectionError('MGMT_CLOSED', `connection to ${where} closed`)));
    // Lines that arrived together with hello, then the rest (readHello paused the socket so nothing was lost).
    this.drain();
    socket.resume();
  }

  /** The session's role, how it was obtained and by whom. */
  get session(): MgmtSession {
    return this.currentSession;
  }

  /** True until the connection closed. */
  get isOpen(): boolean {
    return this.phase === 'open';
  }

  /** Presents a token (§2); on success the session takes its role. A refusal is a `MgmtError` (-32001 or -32003). */
  async auth(token: string): Promise<AuthResult> {
    const result = await this.call('auth', { token });
    this.currentSession = { role: result.role, via: result.via, identity: result.identity };
    return result;
  }

  /** Calls a method and resolves with its result; a JSON-RPC error rejects with `MgmtError`. */
  call<M extends MethodName>(method: M, ...params: Record<never, never> extends ParamsIn<M> ? [params?: ParamsIn<M>] : [params: ParamsIn<M>]): Promise<MethodResult<M>>;
  /** Any other method, raw (`ntptsc call`): the result is whatever the server sent. Known methods are typed above. */
  call<S extends string>(method: S extends MethodName ? never : S, params?: JsonObject): Promise<unknown>;
  call(method: string, params?: object): Promise<unknown> {
    return this.request(method, params as JsonObject | undefined);
  }

  /**
   * Subscribes to `stats` and `event` notifications (§6 `subscribe`). The subscription buffers notifications
   * from now on; iterate it (`for await`) or listen to `notification` on the client. `close()` on the
   * subscription sends `unsubscribe`.
   */
  async subscribe(params: ParamsIn<'subscribe'> = {}): Promise<MgmtSubscription> {
    const subscription = new MgmtSubscription(this);
    this.subscriptions.add(subscription);
    try {
      subscription.result = await this.call('subscribe', params);
    } catch (error) {
      this.subscriptions.delete(subscription);
      throw error;
    }
    return subscription;
  }

  /** Ends the connection politely (the server sees the end of the stream); waits until it is closed. */
  async close(): Promise<void> {
    if (this.phase !== 'closed') {
      this.fail(undefined);
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), 1000);
      await this.closed;
      clearTimeout(timer);
    }
    await this.closed;
  }

  /** Closes at once. */
  destroy(): void {
    this.fail(undefined);
    this.socket.destroy();
  }

  /** @internal */
  detach(subscription: MgmtSubscription): void {
    this.subscriptions.delete(subscription);
  }

  private request(method: string, params: JsonObject | undefined): Promise<JsonValue> {
    if (this.phase !== 'open') return Promise.reject(this.closeError ?? new MgmtConnectionError('MGMT_CLOSED', `connection to ${this.where} is closed`));
    const id = this.nextId++;
    const line = encodeRequest(id, method, params);
    return new Promise<JsonValue>((resolve, reject) => {
      const timer =
        this.timeoutMs > 0
          ? setTimeout(() => {
              const error = new MgmtConnectionError('MGMT_TIMEOUT', `no answer to ${method} from ${this.where} within ${this.timeoutMs} ms`);
              this.fail(error);
              this.socket.destroy();
            }, this.timeoutMs)
          : undefined;
      this.pending.push({ id, method, resolve, reject, timer });
      this.socket.write(line);
    });
  }

  private onData(chunk: Buffer): void {
    if (this.phase !== 'open') return;
    this.decoder.push(chunk);
    this.drain();
  }

  private onEnd(): void {
    if (this.phase !== 'open') return;
    const last = this.decoder.end();
    if (typeof last === 'string') this.handleLine(last);
    else if (last !== null) this.protocolError(last.message);
    this.fail(new MgmtConnectionError('MGMT_CLOSED', `${this.where} closed the connection`));
    this.socket.end();
  }

  private drain(): void {
    while (this.phase === 'open') {
      const next = this.decoder.next();
      if (next === NEED_DATA) return;
      if (typeof next !== 'string') {
        this.protocolError(next.message);
        return;
      }
      this.handleLine(next);
    }
  }

  private handleLine(line: string): void {
    if (line.trim() === '') return;
    const parsed = parseServerMessage(line);
    if (!parsed.ok) {
      this.protocolError(parsed.error.message);
      return;
    }
    const message = parsed.value;
    if (message.kind === 'notification') {
      if (message.method === 'hello') {
        this.protocolError('a second hello');
        return;
      }
      const notification = { method: message.method, params: message.params } as MgmtNotification;
      for (const s of this.subscriptions) s.push(notification);
      this.emit('notification', notification);
      return;
    }
    // Answers come in request order; an id of null (a line the server could not read) is the oldest one's.
    const index = message.id === null ? 0 : this.pending.findIndex((p) => p.id === message.id);
    const entry = this.pending[index];
    if (index < 0 || entry === undefined) return; // not ours: ignored
    this.pending.splice(index, 1);
    clearTimeout(entry.timer);
    if (message.kind === 'result') entry.resolve(message.result);
    else entry.reject(new MgmtError(entry.method, message.error));
  }

  private protocolError(reason: string): void {
    this.fail(new MgmtConnectionError('MGMT_PROTOCOL', `${this.where} broke the management protocol: ${reason}`));
    this.socket.destroy();
  }

  /** Ends the client: rejects waiting calls, ends subscriptions, emits `close` once. */
  private fail(error: MgmtConnectionError | undefined): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.closeError = error ?? new MgmtConnectionError('MGMT_CLOSED', `connection to ${this.where} is closed`);
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(this.closeError);
    }
    for (const s of this.subscriptions) s.end(error);
    this.subscriptions.clear();
    this.emit('close', error);
  }
}

/**
 * A live feed of notifications: an async iterator of `MgmtNotification`. Iteration ends when the subscription
 * or the connection is closed; it throws the connection's error when the connection failed.
 */
export class MgmtSubscription implements AsyncIterable<MgmtNotification> {
  /** What the server put in force (interval, event kinds). */
  result: SubscribeResult = { interval: 0, events: [] };
  /** Notifications dropped because more than `maxQueued` waited for the reader. */
  dropped = 0;

  private readonly queue: MgmtNotification[] = [];
  private waiter: { resolve: (r: IteratorResult<MgmtNotification>) => void; reject: (e: Error) => void } | undefined;
  private done = false;
  private error: Error | undefined;

  /** @internal created by `MgmtClient.subscribe` */
  constructor(
    private readonly client: MgmtClient,
    private readonly maxQueued = DEFAULT_MAX_QUEUED,
  ) {}

  /** @internal */
  push(notification: MgmtNotification): void {
    if (this.done) return;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: notification, done: false });
      return;
    }
    this.queue.push(notification);
    if (this.queue.length > this.maxQueued) {
      this.queue.shift();
      this.dropped++;
    }
  }

  /** @internal the connection ended (with its error, if it failed). */
  end(error?: Error): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    const w = this.waiter;
    this.waiter = undefined;
    if (w === undefined) return;
    if (error === undefined) w.resolve({ value: undefined, done: true });
    else w.reject(error);
  }

  /** The next notification; `done` once the subscription or the connection ended. */
  next(): Promise<IteratorResult<MgmtNotification>> {
    const value = this.queue.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.done) return this.error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.error);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Sends `unsubscribe` (when the connection is still open) and ends the iteration. */
  async close(): Promise<void> {
    if (this.done) return;
    this.client.detach(this);
    this.end();
    if (this.client.isOpen) await this.client.call('unsubscribe');
  }

  [Symbol.asyncIterator](): AsyncIterator<MgmtNotification> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close().catch(() => undefined);
        return { value: undefined, done: true };
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Opening the connection

function openSocket(options: MgmtConnectOptions): { socket: net.Socket; where: string; ready: Promise<void> } {
  if (options.host !== undefined && options.socket !== undefined) {
    throw new TypeError('MgmtClient.connect: give either socket (Unix) or host (TLS), not both');
  }
  if ((options.cert === undefined) !== (options.key === undefined)) throw new TypeError('MgmtClient.connect: cert and key go together');
  if (options.host === undefined) {
    if (options.ca !== undefined || options.cert !== undefined) throw new TypeError('MgmtClient.connect: ca, cert and key are for TLS (host)');
    const path = options.socket ?? DEFAULT_MGMT_SOCKET;
    const where = path;
    const socket = net.connect({ path });
    const ready = new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (error: NodeJS.ErrnoException) => reject(connectError(error, where)));
    });
    return { socket, where, ready };
  }
  const host = options.host;
  const port = options.port ?? DEFAULT_MGMT_PORT;
  const where = endpoint(host, port);
  const socket = connectTls(host, port, { alpn: MGMT_ALPN, ca: options.ca, cert: options.cert, key: options.key, servername: options.servername });
  const ready = new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => {
      // No ALPN at all is fine: the listener serves mgmt as its default service (§1).
      if (socket.alpnProtocol !== false && socket.alpnProtocol !== MGMT_ALPN) {
        reject(new MgmtConnectionError('MGMT_ALPN', `${where} did not agree to ALPN ${MGMT_ALPN} (got ${String(socket.alpnProtocol)})`));
        return;
      }
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? '';
      if (isCertificateError(code)) reject(new MgmtConnectionError('MGMT_CERTIFICATE', `certificate of ${where} not trusted: ${tlsErrorText(error)}`, { tlsError: code }));
      else if (CONNECT_ERRORS.has(code)) reject(connectError(error, where));
      else reject(new MgmtConnectionError('MGMT_TLS', `TLS with ${where} failed: ${tlsErrorText(error)}`, { tlsError: code }));
    });
  });
  return { socket, where, ready };
}

function connectError(error: NodeJS.ErrnoException, where: string): MgmtConnectionError {
  const code = error.code ?? 'unknown error';
  const hint = CONNECT_HINTS[code];
  return new MgmtConnectionError('MGMT_CONNECT', `cannot connect to ${where}: ${code}${hint === undefined ? '' : ` (${hint})`}`, { socketError: code });
}

/** Reads lines until the first message, which must be `hello` with a protocol version we speak. */
function readHello(socket: net.Socket, decoder: LineDecoder, where: string): Promise<HelloParams> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.pause();
    };
    const done = (error: Error | undefined, hello?: HelloParams) => {
      cleanup();
      if (error !== undefined) reject(error);
      else resolve(hello as HelloParams);
    };
    const bad = (reason: string) => done(new MgmtConnectionError('MGMT_PROTOCOL', `${where} is not an ntptsd management service: ${reason}`));
    const onData = (chunk: Buffer) => {
      decoder.push(chunk);
      for (;;) {
        const line = decoder.next();
        if (line === NEED_DATA) return;
        if (typeof line !== 'string') return bad(line.message);
        if (line.trim() === '') continue;
        const parsed = parseServerMessage(line);
        if (!parsed.ok) return bad(parsed.error.message);
        const m = parsed.value;
        if (m.kind !== 'notification' || m.method !== 'hello') return bad('the first message is not hello');
        const hello = m.params;
        if (typeof hello !== 'object' || hello === null || Array.isArray(hello) || typeof hello['protocol'] !== 'number') return bad('hello without a protocol version');
        if (hello['protocol'] !== MGMT_PROTOCOL_VERSION) {
          return done(new MgmtConnectionError('MGMT_VERSION', `${where} speaks management protocol ${String(hello['protocol'])}, this client ${MGMT_PROTOCOL_VERSION}`, { protocol: hello['protocol'] }));
        }
        return done(undefined, hello as unknown as HelloParams);
      }
    };
    const onEnd = () => done(new MgmtConnectionError('MGMT_CLOSED', `${where} closed the connection before hello`));
    const onError = (error: NodeJS.ErrnoException) => done(new MgmtConnectionError('MGMT_CLOSED', `connection to ${where} failed before hello: ${error.code ?? error.message}`, { socketError: error.code }));
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onError);
  });
}
