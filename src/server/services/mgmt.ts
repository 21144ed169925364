/**
 * The management service (docs/management.md): newline-delimited JSON-RPC 2.0 and its plain-text form, on TLS
 * listeners (ALPN `ntp-mgmt/1`) and Unix sockets.
 *
 * Theory of operation
 * - One `Session` per connection: its role, how it got it, a `LineDecoder` fed by the socket, and at most one
 *   subscription. The server speaks first (`hello`), then answers each line in order.
 * - Lines are processed one at a time. Most methods answer synchronously; `rotate-keys`, `reload`, `eks.revoke`
 *   and the `ntpd.*` bridge are asynchronous: while one runs the socket is paused (TCP backpressure) and the
 *   lines already read wait in the decoder, so memory per connection is bounded by the line limit plus one read.
 * - Processing order of a line (§4): framing error → parse → lookup (-32601) → role (-32001/-32002) → params
 *   (-32602) → the method. Nothing the peer sends can throw past `#process`; a bug answers -32603.
 * - Output: responses are always written; `stats` notifications are skipped and events dropped (counted in the
 *   next event's `missed`) while more than `softOutputBytes` wait to be written. A connection with more than
 *   `hardOutputBytes` unsent is destroyed, and so is a subscriber still above the soft bound at
 *   `slowSubscriberTicks` consecutive due `stats` notifications (or for `slowSubscriberMs` with interval 0).
 * - The listener's idle timeout (`socket.timeout`) is switched off while subscribed and restored afterwards.
 * - The daemon is reached only through `DaemonControl` (src/server/mgmt/control.ts).
 */
import { BlockList, isIP } from 'node:net';
import type net from 'node:net';
import { DecodeError } from '../../proto/errors.js';
import { DEFAULT_MAX_LINE_LENGTH, LineDecoder, MAX_MAX_LINE_LENGTH, NEED_DATA } from '../../proto/mgmt/framing.js';
import {
  RpcErrorCode,
  encodeError,
  encodeNotification,
  encodeResult,
  lineErrorToRpc,
  parseLine,
  rpcError,
  type RequestId,
  type RpcError,
} from '../../proto/mgmt/jsonrpc.js';
import {
  METHODS,
  MGMT_ALPN,
  MGMT_PROTOCOL_VERSION,
  checkParams,
  lookupMethod,
  roleAllows,
  type AuthMethod,
  type AuthVia,
  type ClientInfo,
  type ClientsResult,
  type EventKind,
  type HelloParams,
  type MethodName,
  type Params,
  type SessionRole,
} from '../../proto/mgmt/types.js';
import type { ClientEntry } from '../../proto/ntp/client-table.js';
import { VERSION } from '../../version.js';
import { Counters } from '../counters.js';
import type { Logger } from '../log.js';
import { AUTH_LIMITS, AuthLimiter, MAX_AUTH_FAILURES_PER_CONNECTION, certificateRole, matchToken } from '../mgmt/auth.js';
import { AdmissionQueue } from '../mgmt/admission-queue.js';
import { ControlError, isoMicros, type DaemonControl, type DaemonEvent } from '../mgmt/control.js';
import type { ConnectionContext, Service, ServiceStats } from '../service.js';

export interface MgmtLimits {
  /** Requests read but not answered (announced in `hello`). */
  readonly maxPending: number;
  /** Above this many unsent bytes, `stats` notifications are skipped and events dropped. */
  readonly softOutputBytes: number;
  /** Above this many unsent bytes the connection is closed. */
  readonly hardOutputBytes: number;
  /** A subscriber above the soft bound at this many consecutive due `stats` notifications is closed. */
  readonly slowSubscriberTicks: number;
  /** ... or, subscribed to events only, above the soft bound for this long. */
  readonly slowSubscriberMs: number;
}

export const MGMT_LIMITS: MgmtLimits = {
  maxPending: 16,
  softOutputBytes: 1024 * 1024,
  hardOutputBytes: 4 * 1024 * 1024,
  slowSubscriberTicks: 3,
  slowSubscriberMs: 60_000,
};

export type MgmtCounterName =
  | 'connections'
  | 'requests'
  | 'errors'
  | 'auth'
  | 'admin_actions'
  | 'notifications'
  | 'skipped'
  | 'closed'
  | 'delayed';

export interface MgmtServiceOptions {
  /** May be attached later (`attach`); connections before that are closed. */
  readonly control?: DaemonControl;
  readonly logger: Logger;
  /** Ask TLS clients for a certificate: set when `tls.client-ca` is configured. */
  readonly requestClientCertificate?: boolean;
  readonly limits?: Partial<MgmtLimits>;
  /** Milliseconds, for the auth limiter; default `Date.now`. */
  readonly nowMs?: () => number;
  /** Monotonic milliseconds, for the request budget; default `performance.now`. */
  readonly monotonicMs?: () => number;
}

interface Subscription {
  readonly interval: number;
  readonly events: ReadonlySet<EventKind>;
  timer: NodeJS.Timeout | undefined;
  missed: number;
  overTicks: number;
  overSinceMs: number | null;
  readonly onEvent: (event: DaemonEvent) => void;
}

interface Session {
  readonly socket: net.Socket;
  readonly context: ConnectionContext;
  readonly unix: boolean;
  /** Client IP address, the key of the auth limiter; null on Unix sockets. */
  readonly address: string | null;
  role: SessionRole;
  via: AuthVia;
  identity: string | null;
  authFailures: number;
  subscription: Subscription | null;
  readonly idleTimeoutMs: number;
  closed: boolean;
}

/** What processing a line gives: the line to write (null: nothing), then what to do once it is written. */
interface Outcome {
  readonly line: string | null;
  readonly after?: () => void;
  readonly close?: boolean;
}

const NOTHING: Outcome = { line: null };

/** Who did it, for the log of admin actions. */
function who(session: Session): string {
  if (session.via === 'peer') return 'unix socket';
  if (session.via === 'token') return `token "${session.identity ?? ''}"`;
  if (session.via === 'certificate') return `certificate CN=${session.identity ?? ''}`;
  return 'anonymous';
}

/** The subject CN of a client certificate that chains to `tls.client-ca` and is valid now; null otherwise. */
function verifiedCommonName(context: ConnectionContext, nowMs: number): string | null {
  const info = context.tls;
  const cert = info?.peerCertificate;
  if (!info || !cert || !info.peerAuthorized) return null;
  const from = Date.parse(cert.valid_from);
  const to = Date.parse(cert.valid_to);
  if (!(from <= nowMs && nowMs <= to)) return null;
  const cn: unknown = cert.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : null;
}

function clientInfo(e: ClientEntry): ClientInfo {
  return {
    address: e.address,
    firstSeen: isoMicros(e.firstSeenMicros),
    lastSeen: isoMicros(e.lastSeenMicros),
    packets: e.packets,
    drops: e.drops,
    kods: e.kods,
    mode: e.lastMode,
    version: e.lastVersion,
    auth: e.lastAuth,
  };
}

/** `192.0.2.7` or `2001:db8::/32` as a predicate on addresses; null when the filter is neither. */
function addressFilter(filter: string): ((address: string) => boolean) | null {
  const slash = filter.indexOf('/');
  const host = slash < 0 ? filter : filter.slice(0, slash);
  const version = isIP(host);
  if (version === 0) return null;
  const family = version === 6 ? 'ipv6' : 'ipv4';
  const max = version === 6 ? 128 : 32;
  let prefix = max;
  if (slash >= 0) {
    const text = filter.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(text) || Number(text) > max) return null;
    prefix = Number(text);
  }
  const list = new BlockList();
  list.addSubnet(host, prefix, family);
  return (address) => {
    const v = isIP(address);
    return v !== 0 && list.check(address, v === 6 ? 'ipv6' : 'ipv4');
  };
}

const SORTS: Readonly<Record<string, ((a: ClientEntry, b: ClientEntry) => number) | null>> = {
  'last-seen': null, // the table's own order
  'first-seen': (a, b) => b.firstSeenMicros - a.firstSeenMicros,
  packets: (a, b) => b.packets - a.packets,
  drops: (a, b) => b.drops - a.drops,
  kods: (a, b) => b.kods - a.kods,
  address: (a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0),
};

export class MgmtService implements Service {
  readonly name = 'mgmt';
  readonly alpn = MGMT_ALPN;
  readonly transports = ['tls', 'plain'] as const;
  readonly requestClientCertificate: boolean;
  readonly counters = new Counters<MgmtCounterName>();
  readonly limits: MgmtLimits;
  #control: DaemonControl | undefined;
  readonly #logger: Logger;
  readonly #limiter = new AuthLimiter(AUTH_LIMITS);
  readonly #sessions = new Set<Session>();
  readonly #now: () => number;
  /** Starts unlimited; the `[mgmt]` request budget is applied from the control's config on each request. */
  readonly #admission: AdmissionQueue;

  constructor(options: MgmtServiceOptions) {
    this.#control = options.control;
    this.#logger = options.logger;
    this.requestClientCertificate = options.requestClientCertificate ?? false;
    this.limits = { ...MGMT_LIMITS, ...options.limits };
    this.#now = options.nowMs ?? Date.now;
    this.#admission = new AdmissionQueue({ ratePerSecond: 0, burst: 1 }, options.monotonicMs);
  }

  /** The daemon side; set once, when the daemon is running. */
  attach(control: DaemonControl): void {
    this.#control = control;
  }

  get #ctl(): DaemonControl {
    if (this.#control === undefined) throw new Error('mgmt service used before attach()');
    return this.#control;
  }

  stats(): ServiceStats {
    return { active: this.#sessions.size, counters: this.counters.snapshot() };
  }

  async stop(): Promise<void> {
    this.#admission.stop();
    for (const session of this.#sessions) {
      this.#unsubscribe(session);
      session.socket.destroy();
    }
  }

  handleConnection(socket: net.Socket, context: ConnectionContext): void {
    if (this.#control === undefined) {
      socket.destroy(); // the daemon is still starting
      return;
    }
    this.counters.inc('connections');
    // A client that half-closes (`printf status | nc -N`) still gets the answer to its last line.
    socket.allowHalfOpen = true;
    const unix = context.remote.kind === 'unix';
    const mgmt = this.#ctl.mgmtConfig();
    const session: Session = {
      socket,
      context,
      unix,
      address: context.remote.kind === 'tcp' ? context.remote.address : null,
      role: unix ? 'admin' : mgmt.anonymous,
      via: unix ? 'peer' : 'anonymous',
      identity: unix ? 'unix' : null,
      authFailures: 0,
      subscription: null,
      idleTimeoutMs: typeof socket.timeout === 'number' ? socket.timeout : 0,
      closed: false,
    };
    if (!unix) {
      const cn = verifiedCommonName(context, this.#now());
      if (cn !== null) {
        const role = certificateRole(mgmt.clientCerts, cn);
        session.via = 'certificate';
        session.identity = cn;
        if (role !== null) session.role = role;
        else context.logger.info({ cn }, 'management client certificate verified but not mapped by mgmt.client-cert; no role from it');
      } else if (context.tls?.peerCertificate) {
        context.logger.info({ authorized: context.tls.peerAuthorized }, 'management client certificate not accepted (untrusted or not valid now)');
      }
    }
    this.#sessions.add(session);

    const maxLineLength = Math.min(Math.max(1, context.maxMessageSize || DEFAULT_MAX_LINE_LENGTH), MAX_MAX_LINE_LENGTH);
    const decoder = new LineDecoder({ maxLineLength });
    let busy = false;
    let ended = false;

    const auth: AuthMethod[] = [];
    if (unix) auth.push('peer');
    if (mgmt.tokens.length > 0) auth.push('token');
    if (!unix && this.requestClientCertificate && this.#ctl.clientCaConfigured()) auth.push('certificate');
    const hello: HelloParams = {
      server: 'ntptsd',
      version: VERSION,
      protocol: MGMT_PROTOCOL_VERSION,
      auth,
      role: session.role,
      via: session.via,
      identity: session.identity,
      limits: { maxLineLength, maxPending: this.limits.maxPending, idleTimeout: Math.round(session.idleTimeoutMs / 1000) },
    };
    this.#write(session, encodeNotification('hello', hello));

    const apply = (outcome: Outcome): boolean => {
      if (outcome.line !== null) this.#write(session, outcome.line);
      if (session.closed) return false;
      outcome.after?.();
      if (outcome.close) {
        this.#close(session, 'closed.auth_failures');
        return false;
      }
      return true;
    };

    const finish = () => {
      this.#unsubscribe(session);
      if (!session.closed && !socket.destroyed) socket.end();
    };

    // A line read but not yet admitted (docs/management.md §8), and whether the session waits for a token.
    let held: string | DecodeError | null = null;
    let waiting = false;
    /** The held line's token was taken by the queue when its turn came. */
    let heldAdmitted = false;
    const resume = () => {
      waiting = false;
      heldAdmitted = true;
      if (session.closed) return;
      if (!ended) socket.resume();
      pump();
    };
    /** True when `line` may be processed now; otherwise it is held and the socket paused until its turn. */
    const admitted = (line: string | DecodeError): boolean => {
      if (heldAdmitted) {
        heldAdmitted = false;
        return true;
      }
      const { requestRate, requestBurst } = this.#ctl.mgmtConfig();
      this.#admission.configure({ ratePerSecond: requestRate, burst: requestBurst });
      if (this.#admission.admit(session.role === 'admin', () => session.closed, resume)) return true;
      held = line;
      waiting = true;
      socket.pause();
      this.counters.inc('delayed');
      return false;
    };

    const pump = () => {
      while (!busy && !waiting && !session.closed) {
        const next = held ?? decoder.next();
        held = null;
        if (next === NEED_DATA) break;
        if (!admitted(next)) return;
        const outcome = this.#process(session, next);
        if (outcome instanceof Promise) {
          busy = true;
          socket.pause();
          outcome
            .catch((error: unknown): Outcome => {
              context.logger.error({ err: error }, 'management method failed');
              return { line: encodeError(null, rpcError(RpcErrorCode.INTERNAL_ERROR)) };
            })
            .then((o) => {
              busy = false;
              if (!apply(o)) return;
              if (!ended) socket.resume();
              pump();
            });
          return;
        }
        if (!apply(outcome)) return;
      }
      if (ended && !busy && !waiting && !session.closed) {
        const last = decoder.end();
        if (last !== null) {
          // Once admitted, the held last line is processed by the loop above, then this runs again with nothing left.
          if (!admitted(last)) return;
          const outcome = this.#process(session, last);
          if (outcome instanceof Promise) {
            busy = true;
            void outcome
              .catch((): Outcome => ({ line: encodeError(null, rpcError(RpcErrorCode.INTERNAL_ERROR)) }))
              .then((o) => {
                busy = false;
                apply(o);
                finish();
              });
            return;
          }
          apply(outcome);
        }
        finish();
      }
    };

    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      pump();
    });
    socket.on('end', () => {
      ended = true;
      pump();
    });
    socket.once('close', () => {
      session.closed = true;
      this.#unsubscribe(session);
      this.#sessions.delete(session);
    });
    context.signal.addEventListener(
      'abort',
      () => {
        this.#unsubscribe(session);
        ended = true;
        if (!busy) finish();
      },
      { once: true },
    );
  }

  /** Writes one line; closes a connection whose unsent output passed the hard bound. */
  #write(session: Session, line: string): void {
    const { socket } = session;
    if (session.closed || socket.destroyed || !socket.writable) return;
    socket.write(line);
    if (socket.writableLength > this.limits.hardOutputBytes) this.#close(session, 'closed.output_limit');
  }

  #close(session: Session, why: 'closed.output_limit' | 'closed.slow_subscriber' | 'closed.auth_failures'): void {
    if (session.closed) return;
    const [name, label] = why.split('.') as ['closed', string];
    this.counters.inc(name, label);
    session.context.logger.info({ reason: label, unsent: session.socket.writableLength }, 'closing management connection');
    session.closed = true;
    this.#unsubscribe(session);
    if (why === 'closed.auth_failures') session.socket.end();
    else session.socket.destroy();
  }

  #error(id: RequestId | undefined, error: RpcError, notification: boolean): Outcome {
    const label = typeof error.data === 'object' && error.data !== null && !Array.isArray(error.data) && typeof error.data['reason'] === 'string' ? error.data['reason'] : String(error.code);
    this.counters.inc('errors', label);
    return notification ? NOTHING : { line: encodeError(id ?? null, error) };
  }

  /** One line (or framing error) → its outcome; never throws. */
  #process(session: Session, item: string | DecodeError): Outcome | Promise<Outcome> {
    if (item instanceof DecodeError) return this.#error(null, lineErrorToRpc(item), false);
    const parsed = parseLine(item);
    if (!parsed.ok) return this.#error(parsed.error.id, parsed.error.rpc, parsed.error.notification);
    const request = parsed.value;
    if (request === null) return NOTHING;
    this.counters.inc('requests');
    const notification = request.form === 'json' && request.id === undefined;
    const id = request.id ?? null;
    const found = lookupMethod(request.method);
    if (!found.ok) return this.#error(id, found.error, notification);
    const method = found.value;
    const required = METHODS[method].role;
    if (!roleAllows(session.role, required)) {
      const error = session.role === 'none' ? rpcError(RpcErrorCode.UNAUTHENTICATED) : rpcError(RpcErrorCode.FORBIDDEN, undefined, undefined, { required });
      return this.#error(id, error, notification);
    }
    const params = checkParams(method, request.params, request.args);
    if (!params.ok) return this.#error(id, params.error, notification);
    try {
      const run = this.#run(session, method, params.value);
      const finish = (r: Result): Outcome => {
        if ('error' in r) return { ...this.#error(id, r.error, notification), ...(r.close ? { close: true } : {}) };
        const after = r.after;
        return { line: notification ? null : encodeResult(id, r.result), ...(after ? { after } : {}) };
      };
      return run instanceof Promise ? run.then(finish, (error: unknown) => this.#internal(session, id, notification, error)) : finish(run);
    } catch (error) {
      return this.#internal(session, id, notification, error);
    }
  }

  #internal(session: Session, id: RequestId, notification: boolean, error: unknown): Outcome {
    session.context.logger.error({ err: error }, 'management method failed');
    return this.#error(id, rpcError(RpcErrorCode.INTERNAL_ERROR), notification);
  }

  #run(session: Session, method: MethodName, params: Params<MethodName>): Result | Promise<Result> {
    const control = this.#ctl;
    switch (method) {
      case 'auth':
        return this.#auth(session, params as Params<'auth'>);
      case 'status':
        return {
          result: {
            ...control.status(),
            connections: control.connections(),
            session: { role: session.role, via: session.via, identity: session.identity },
          },
        };
      case 'services':
        return { result: control.services() };
      case 'stats':
        return { result: control.stats() };
      case 'clients':
        return this.#clients(params as Params<'clients'>);
      case 'keys':
        return { result: control.keys() };
      case 'rotate-keys':
        return this.#admin(session, 'rotate-keys', () => control.rotateKeys(session.identity ?? who(session)));
      case 'reload':
        return this.#admin(session, 'reload', () => control.reload(session.identity ?? who(session)));
      case 'log-level': {
        const { level } = params as Params<'log-level'>;
        const previous = control.logLevel();
        control.setLogLevel(level);
        this.counters.inc('admin_actions', 'log-level');
        this.#logger.warn({ by: who(session), previous, level }, 'management: log level changed');
        return { result: { previous, level } };
      }
      case 'subscribe':
        return this.#subscribe(session, params as Params<'subscribe'>);
      case 'unsubscribe': {
        const wasSubscribed = this.#unsubscribe(session);
        return { result: { wasSubscribed } };
      }
      case 'ntpd.peers':
        return this.#backend(() => control.ntpd().peers());
      case 'ntpd.vars':
        return this.#backend(() => control.ntpd().vars(params as Params<'ntpd.vars'>));
      case 'ntpd.mrulist':
        return this.#backend(() => control.ntpd().mrulist(params as Params<'ntpd.mrulist'>));
      case 'ntpd.sysstats':
        return this.#backend(() => control.ntpd().sysstats());
      case 'eks.list':
        return { result: control.eks().list(params as Params<'eks.list'>) };
      case 'eks.revoke': {
        const { keyId } = params as Params<'eks.revoke'>;
        return this.#admin(session, 'eks.revoke', () => control.eks().revoke(keyId, session.identity ?? who(session)), { keyId });
      }
    }
  }

  /** A read from another daemon: its failures are documented errors (backend unavailable, invalid params). */
  async #backend(run: () => Promise<unknown>): Promise<Result> {
    try {
      return { result: await run() };
    } catch (error) {
      if (!(error instanceof ControlError)) throw error;
      return { error: this.#controlError(error) };
    }
  }

  #controlError(error: ControlError): RpcError {
    switch (error.code) {
      case 'CONFLICT':
        return rpcError(RpcErrorCode.CONFLICT, error.message, undefined, error.data);
      case 'CONFIG_INVALID':
        return rpcError(RpcErrorCode.CONFIG_INVALID, error.message, undefined, error.data);
      case 'NOT_FOUND':
        return rpcError(RpcErrorCode.NOT_FOUND, error.message, undefined, error.data);
      case 'BACKEND_UNAVAILABLE':
        return rpcError(RpcErrorCode.BACKEND_UNAVAILABLE, error.message, undefined, error.data);
    }
  }

  /** An admin action: counted, and logged with who asked (and `details`, e.g. the key id) before it runs. */
  async #admin(session: Session, action: string, run: () => Promise<unknown>, details: Readonly<Record<string, unknown>> = {}): Promise<Result> {
    this.counters.inc('admin_actions', action);
    this.#logger.warn({ by: who(session), action, ...details }, `management: ${action} requested`);
    try {
      return { result: await run() };
    } catch (error) {
      if (!(error instanceof ControlError)) throw error;
      this.#logger.warn({ by: who(session), action, ...details, code: error.code }, `management: ${action} failed: ${error.message}`);
      return { error: this.#controlError(error) };
    }
  }

  #auth(session: Session, { token }: Params<'auth'>): Result {
    const address = session.address;
    const now = this.#now();
    if (address !== null) {
      const retryAfter = this.#limiter.retryAfter(address, now);
      if (retryAfter > 0) {
        this.counters.inc('auth', 'rate_limited');
        session.authFailures++;
        session.context.logger.warn({ address, retryAfter }, 'management auth rate limited');
        return { error: rpcError(RpcErrorCode.RATE_LIMITED, undefined, undefined, { retryAfter }), close: this.#tooManyFailures(session) };
      }
    }
    const match = matchToken(this.#ctl.mgmtConfig().tokens, token);
    if (match === null) {
      this.counters.inc('auth', 'failed');
      if (address !== null) this.#limiter.fail(address, now);
      session.authFailures++;
      session.context.logger.warn({ address: address ?? 'unix socket', failures: session.authFailures }, 'management auth failed');
      return { error: rpcError(RpcErrorCode.UNAUTHENTICATED, 'authentication failed'), close: this.#tooManyFailures(session) };
    }
    this.counters.inc('auth', 'ok');
    session.role = match.role;
    session.via = 'token';
    session.identity = match.name;
    session.context.logger.info({ token: match.name, role: match.role }, 'management auth succeeded');
    return { result: { role: match.role, via: 'token', identity: match.name } };
  }

  #tooManyFailures(session: Session): boolean {
    return !session.unix && session.authFailures >= MAX_AUTH_FAILURES_PER_CONNECTION;
  }

  #clients({ limit, sort, filter }: Params<'clients'>): Result {
    const table = this.#ctl.clients();
    let match: ((address: string) => boolean) | null = null;
    if (filter !== undefined) {
      match = addressFilter(filter);
      if (match === null) {
        const message = 'must be an address (192.0.2.7) or a CIDR prefix (2001:db8::/32)';
        return { error: rpcError(RpcErrorCode.INVALID_PARAMS, `invalid params for clients: filter: ${message}`, 'MGMT_INVALID_PARAMS', { issues: [{ path: 'filter', message }] }) };
      }
    }
    const compare = SORTS[sort] ?? null;
    // The table is bounded (ntp.rate-limit.table-size); without filter or sort only `limit` entries are copied.
    let entries = match === null && compare === null ? table.mostRecent(limit) : table.mostRecent();
    if (match !== null) entries = entries.filter((e) => (match as (a: string) => boolean)(e.address));
    const matched = match === null ? table.size : entries.length;
    if (compare !== null) entries.sort(compare);
    const result: ClientsResult = { total: table.size, matched, clients: entries.slice(0, limit).map(clientInfo) };
    return { result };
  }

  #subscribe(session: Session, { interval, events }: Params<'subscribe'>): Result {
    this.#unsubscribe(session);
    const kinds = [...new Set(events)];
    const sub: Subscription = {
      interval,
      events: new Set(kinds),
      timer: undefined,
      missed: 0,
      overTicks: 0,
      overSinceMs: null,
      onEvent: (event) => this.#sendEvent(session, sub, event),
    };
    session.subscription = sub;
    this.#ctl.events.on('event', sub.onEvent);
    session.socket.setTimeout(0); // no idle timeout while subscribed
    const after =
      interval > 0
        ? () => {
            this.#sendStats(session, sub);
            sub.timer = setInterval(() => this.#sendStats(session, sub), interval * 1000);
            sub.timer.unref();
          }
        : undefined;
    return { result: { interval, events: kinds }, ...(after ? { after } : {}) };
  }

  /** Ends the subscription; true when there was one. */
  #unsubscribe(session: Session): boolean {
    const sub = session.subscription;
    if (sub === null) return false;
    session.subscription = null;
    if (sub.timer !== undefined) clearInterval(sub.timer);
    this.#ctl.events.off('event', sub.onEvent);
    if (!session.closed && !session.socket.destroyed) session.socket.setTimeout(session.idleTimeoutMs);
    return true;
  }

  #over(session: Session): boolean {
    return session.socket.writableLength > this.limits.softOutputBytes;
  }

  #sendStats(session: Session, sub: Subscription): void {
    if (session.subscription !== sub || session.closed) return;
    if (this.#over(session)) {
      this.counters.inc('skipped', 'stats');
      sub.overTicks++;
      if (sub.overTicks >= this.limits.slowSubscriberTicks) this.#close(session, 'closed.slow_subscriber');
      return;
    }
    sub.overTicks = 0;
    this.counters.inc('notifications', 'stats');
    this.#write(session, encodeNotification('stats', this.#ctl.stats()));
  }

  #sendEvent(session: Session, sub: Subscription, event: DaemonEvent): void {
    if (session.subscription !== sub || session.closed || !sub.events.has(event.kind)) return;
    const now = this.#now();
    if (this.#over(session)) {
      this.counters.inc('skipped', 'event');
      sub.missed++;
      sub.overSinceMs ??= now;
      if (sub.interval === 0 && now - sub.overSinceMs >= this.limits.slowSubscriberMs) this.#close(session, 'closed.slow_subscriber');
      return;
    }
    sub.overSinceMs = null;
    const { kind, ...members } = event;
    const params = { kind, at: isoMicros(now * 1000), ...members, ...(sub.missed > 0 ? { missed: sub.missed } : {}) };
    sub.missed = 0;
    this.counters.inc('notifications', 'event');
    this.#write(session, encodeNotification('event', params));
  }
}

type Result =
  | { readonly result: unknown; readonly after?: () => void }
  | { readonly error: RpcError; readonly close?: boolean };

