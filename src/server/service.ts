/**
 * The contract between listeners and services.
 *
 * A listener (see listeners.ts) accepts a connection, applies its limits, completes TLS when it is a TLS
 * listener, picks the service (by ALPN, or the only one) and calls `service.handleConnection(socket, context)`.
 * From then on the socket belongs to the service, with three exceptions kept by the listener: the idle timeout
 * (`socket.setTimeout` → destroy; a service may change the delay with `socket.setTimeout(ms)`), a default
 * `'error'` listener (so an unhandled socket error never crashes the daemon), and the graceful shutdown:
 * `context.signal` is aborted when the daemon stops, the service should finish the exchange in progress and
 * end the socket; whatever is still open at the listener's deadline is destroyed.
 *
 * Services are registered in one `ServiceRegistry`; listeners look them up by name, so adding a service
 * touches no other module. `stop()` is called by the daemon after the listeners have closed.
 *
 * HTTP services (metrics) receive the raw socket like any other service and hand it to an `http.Server` that
 * never listens, with `server.emit('connection', socket)`; `createHttpService()` does exactly that.
 */
import http from 'node:http';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from './log.js';

/** The services this daemon ships, with their ALPN protocol ids (null: never offered over TLS). */
export const KNOWN_SERVICES = {
  'nts-ke': { alpn: 'ntske/1' }, // RFC 8915 §4
  eks: { alpn: 'ntp-eks/1' },
  mgmt: { alpn: 'ntp-mgmt/1' },
  metrics: { alpn: null },
} as const;

export type KnownServiceName = keyof typeof KNOWN_SERVICES;
/** A service name; open-ended so a new service needs no change here. */
export type ServiceName = KnownServiceName | (string & {});

/** How bytes reach a service: inside TLS 1.3, or in the clear (Unix socket, plain HTTP). */
export type Transport = 'tls' | 'plain';

export type SocketAddress =
  | { readonly kind: 'tcp'; readonly address: string; readonly port: number; readonly family: 'IPv4' | 'IPv6' }
  | { readonly kind: 'unix'; readonly path: string };

export interface TlsConnectionInfo {
  /** The secured socket (same object as the one passed to `handleConnection`), e.g. for `exportKeyingMaterial`. */
  readonly socket: tls.TLSSocket;
  /** Negotiated protocol version, always `'TLSv1.3'`. */
  readonly protocol: string;
  /** The negotiated ALPN id; null when the client offered none and the listener's default service was used. */
  readonly alpn: string | null;
  /** SNI server name sent by the client, if any. */
  readonly servername: string | null;
  /** The client's certificate when it sent one (only requested for services with `requestClientCertificate`). */
  readonly peerCertificate: tls.DetailedPeerCertificate | null;
  /** True when the client certificate chains to the configured client CA. */
  readonly peerAuthorized: boolean;
}

export interface ConnectionContext {
  /** Process-unique connection number, for logs. */
  readonly id: number;
  /** The listener's name, e.g. `listener[0] [::]:4460`. */
  readonly listener: string;
  readonly local: SocketAddress;
  /** The peer; for Unix sockets the path is the listener's (peers have no address). */
  readonly remote: SocketAddress;
  readonly transport: Transport;
  /** Null on plain connections. */
  readonly tls: TlsConnectionInfo | null;
  /** Largest message (record, line, request) the service should accept on this listener. */
  readonly maxMessageSize: number;
  /** Aborted when the daemon shuts down: finish the exchange in progress, then end the socket. */
  readonly signal: AbortSignal;
  /** A child logger carrying the connection's id, listener and remote address. */
  readonly logger: Logger;
}

/** Monitoring data of a service: the number of open connections and named event counters. */
export interface ServiceStats {
  readonly active: number;
  readonly counters: Readonly<Record<string, number>>;
}

export interface Service {
  readonly name: ServiceName;
  /** ALPN protocol id used on TLS listeners; null for services never offered over TLS. */
  readonly alpn: string | null;
  /** Transports the service accepts; e.g. mgmt: `['tls', 'plain']`, nts-ke: `['tls']`, metrics: `['plain']`. */
  readonly transports: readonly Transport[];
  /** Ask TLS clients for a certificate (verified against `tls.client-ca`, never required by TLS itself). */
  readonly requestClientCertificate?: boolean;
  /**
   * The service uses no more of its socket than a native TLS connection offers (`NativeTlsSocket`: 'data',
   * 'close' and 'error' events, `end`, `destroy`, `setTimeout`, `exportKeyingMaterial`), so a listener may serve
   * it on OpenSSL directly instead of node:tls (one-message exchanges: NTS-KE, EKS).
   */
  readonly nativeTls?: boolean;
  /** Take over an accepted (and, for TLS, secured) connection. Must not throw for peer behaviour. */
  handleConnection(socket: net.Socket, context: ConnectionContext): void;
  /** Release resources; called after every listener has closed. */
  stop(): Promise<void>;
  stats(): ServiceStats;
}

export type ServiceErrorCode = 'SERVICE_DUPLICATE' | 'SERVICE_ALPN_DUPLICATE' | 'SERVICE_UNKNOWN' | 'SERVICE_INVALID';

/** Misuse of the registry (a configuration or wiring bug). */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The one table of services. */
export class ServiceRegistry {
  readonly #services = new Map<string, Service>();

  register(service: Service): this {
    if (this.#services.has(service.name)) throw new ServiceError('SERVICE_DUPLICATE', `service "${service.name}" is already registered`);
    if (service.transports.length === 0) throw new ServiceError('SERVICE_INVALID', `service "${service.name}" accepts no transport`);
    if (service.transports.includes('tls') && service.alpn === null) {
      throw new ServiceError('SERVICE_INVALID', `service "${service.name}" accepts TLS but has no ALPN id`);
    }
    if (service.alpn !== null) {
      const other = this.byAlpn(service.alpn);
      if (other) throw new ServiceError('SERVICE_ALPN_DUPLICATE', `services "${other.name}" and "${service.name}" both use ALPN "${service.alpn}"`);
    }
    this.#services.set(service.name, service);
    return this;
  }

  get(name: string): Service | undefined {
    return this.#services.get(name);
  }

  /** Like `get`, but a missing service is an error. */
  require(name: string): Service {
    const service = this.#services.get(name);
    if (!service) throw new ServiceError('SERVICE_UNKNOWN', `unknown service "${name}" (registered: ${this.names().join(', ') || 'none'})`);
    return service;
  }

  byAlpn(alpn: string): Service | undefined {
    for (const service of this.#services.values()) if (service.alpn === alpn) return service;
    return undefined;
  }

  all(): Service[] {
    return [...this.#services.values()];
  }

  names(): string[] {
    return [...this.#services.keys()];
  }

  /** Stops every service; failures are collected so one failing service does not keep the others running. */
  async stopAll(): Promise<void> {
    const results = await Promise.allSettled(this.all().map((s) => s.stop()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

export interface HttpServiceOptions {
  readonly name: ServiceName;
  readonly handler: http.RequestListener;
  /** Largest request head in bytes (http.Server `maxHeaderSize`). Default 16 KiB. */
  readonly maxHeaderSize?: number;
}

/**
 * A plain-transport service that serves HTTP/1.1 on the connections it is given. The http.Server never
 * listens; the listener's limits and timeouts apply to its sockets like to any other service's.
 */
export function createHttpService(options: HttpServiceOptions): Service & { readonly server: http.Server } {
  const server = http.createServer({ maxHeaderSize: options.maxHeaderSize ?? 16 * 1024 }, options.handler);
  const sockets = new Set<net.Socket>();
  const busy = new Set<net.Socket>();
  const stopping = new Set<net.Socket>();
  let connections = 0;
  let requests = 0;
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests += 1;
    const socket = req.socket;
    busy.add(socket);
    res.once('close', () => {
      busy.delete(socket);
      if (stopping.has(socket)) socket.end();
    });
  });
  server.on('clientError', (_err, socket) => {
    socket.destroy();
  });
  return {
    name: options.name,
    alpn: null,
    transports: ['plain'],
    server,
    handleConnection(socket, context) {
      connections += 1;
      sockets.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        busy.delete(socket);
        stopping.delete(socket);
      });
      // At shutdown an idle keep-alive connection ends now, one with a request in flight after its response.
      context.signal.addEventListener(
        'abort',
        () => {
          stopping.add(socket);
          if (!busy.has(socket)) socket.end();
        },
        { once: true },
      );
      server.emit('connection', socket);
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
    },
    stats() {
      return { active: sockets.size, counters: { connections, requests } };
    },
  };
}
