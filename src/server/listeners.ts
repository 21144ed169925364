/**
 * Listeners: accept, limit, secure, dispatch.
 *
 * Theory of operation. Each `ListenerSpec` becomes one `net.Server` on a TCP address or a Unix socket path.
 * Every accepted socket first passes the limits, total then per remote address; a refused socket is destroyed
 * at once and counted. On a plain listener the socket then goes straight to its one service. On a TLS
 * listener it is injected into a `tls.Server` that never listens itself (`tlsServer.emit('connection', raw)`,
 * the documented way to hand it a socket): Node then does the handshake timeout, the ALPN callback, client
 * certificate verification and `setSecureContext`, while limits are checked before any TLS work is spent.
 * The ALPN callback picks the first of the listener's services (in listener order) that the client offers,
 * or refuses with the no_application_protocol alert; a client offering no ALPN gets the listener's default
 * service, or is closed right after the handshake when there is none.
 *
 * Invariants:
 * - Every accepted socket is in `conns` until its 'close'; the per-address counts follow that set exactly.
 * - Every refusal, timeout and error increments exactly one counter of its listener (see `ListenerCounter`).
 * - The secure-context options are built in one function: `tls.Server.setSecureContext` rebuilds the context
 *   from the options it is given, so a reload that forgot `minVersion` would silently re-enable TLS 1.2.
 * - Nothing per connection is synchronous beyond O(1) bookkeeping, so thousands of idle or handshaking
 *   connections do not delay a new client.
 * - close(): stop accepting, abort every connection's signal, wait for the connections to end until the
 *   deadline, then destroy what is left. The Unix socket file is removed when the listener closes.
 */
import { constants } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { chmod, lstat, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import { type NativeCloseReason, type NativeTlsModule, NativeTlsServer, NativeTlsSocket, nativeTls } from './native-tls.js';
import type { ConnectionContext, Service, ServiceName, ServiceRegistry, SocketAddress, TlsConnectionInfo, Transport } from './service.js';

/** A connection of either kind of listener. */
type AnySocket = net.Socket | NativeTlsSocket;

/** Certificate material for TLS listeners (`TlsMaterial` from certificate.ts fits). */
export interface TlsCredentials {
  readonly certPem: string;
  readonly keyPem: string;
  /** PEM bundle of CAs whose client certificates are accepted (`tls.client-ca`). */
  readonly clientCaPem?: string | undefined;
}

export interface ListenerLimits {
  /** Open connections on this listener, handshaking ones included. */
  readonly maxConnections: number;
  /** Open connections from one remote IP address (not applied to Unix sockets). */
  readonly maxConnectionsPerAddress: number;
  /** Time allowed to complete the TLS handshake (TLS listeners only). */
  readonly handshakeTimeoutMs: number;
  /** A connection with no traffic in either direction for this long is destroyed. */
  readonly idleTimeoutMs: number;
  /** Handed to the service in `ConnectionContext.maxMessageSize`. */
  readonly maxMessageSize: number;
}

export const LISTENER_DEFAULTS: ListenerLimits = {
  maxConnections: 4096,
  maxConnectionsPerAddress: 64,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  maxMessageSize: 64 * 1024,
};

interface ListenerSpecCommon extends Partial<ListenerLimits> {
  /** For logs, e.g. `listener[0] [::]:4460`. */
  readonly name: string;
  /** Config path of this listener's table, e.g. `listener[0]`; errors name `<configKey>.address` etc. */
  readonly configKey: string;
  /** Services in preference order (the ALPN choice follows it). */
  readonly services: readonly ServiceName[];
  /** TLS listeners: the service for clients that offer no ALPN. */
  readonly defaultService?: ServiceName | undefined;
  /** Force TLS on or off. Default: TLS for TCP addresses unless the one service has no ALPN; never for paths. */
  readonly tls?: boolean | undefined;
  /** Unix sockets: permission bits applied after binding, e.g. 0o660. */
  readonly mode?: number | undefined;
  /**
   * TLS on OpenSSL directly (native/tls_listener.c) when every service allows it (`Service.nativeTls`), none asks
   * for client certificates, the address is TCP and the native module is there. Default true; false: node:tls.
   */
  readonly nativeTls?: boolean | undefined;
}

export type ListenerSpec = ListenerSpecCommon &
  (
    | { readonly address: { readonly host: string; readonly port: number }; readonly path?: undefined }
    | { readonly path: string; readonly address?: undefined }
  );

export interface BoundListener {
  readonly name: string;
  readonly configKey: string;
  readonly transport: Transport;
  readonly services: readonly string[];
  /** The real address; for TCP the port the kernel chose when 0 was asked. */
  readonly address: SocketAddress;
}

export const LISTENER_COUNTERS = [
  'accepted', // passed the limits
  'refused_limit', // maxConnections reached
  'refused_per_address', // maxConnectionsPerAddress reached
  'refused_shutdown', // arrived while closing
  'accept_error', // the kernel failed to accept (e.g. EMFILE)
  'handshake_timeout',
  'handshake_aborted', // the client went away during the handshake
  'handshake_error', // any other TLS failure
  'tls_version', // client cannot do TLS 1.3
  'no_alpn_match', // ALPN offered, none of ours
  'no_alpn', // no ALPN offered and no default service
  'dispatched', // handed to a service
  'service_error', // the service threw from handleConnection
  'idle_timeout',
  'socket_error',
  'shutdown_destroyed', // still open at the close deadline
] as const;
export type ListenerCounter = (typeof LISTENER_COUNTERS)[number];

export interface ListenerStats {
  readonly name: string;
  readonly configKey: string;
  readonly transport: Transport;
  readonly address: SocketAddress | null;
  /** Open connections, handshaking ones included. */
  readonly active: number;
  readonly counters: Readonly<Record<ListenerCounter, number>>;
  /** Connections dispatched per service. */
  readonly services: Readonly<Record<string, number>>;
}

export type ListenerErrorCode =
  | 'LISTEN_ADDRESS_IN_USE'
  | 'LISTEN_PERMISSION_DENIED'
  | 'LISTEN_ADDRESS_NOT_AVAILABLE'
  | 'LISTEN_PATH_NOT_SOCKET'
  | 'LISTEN_PATH_TOO_LONG'
  | 'LISTEN_FAILED'
  | 'LISTENER_CONFIG'
  | 'LISTENER_NO_TLS'
  | 'LISTENER_STATE'
  | 'TLS_CONTEXT_INVALID';

export class ListenerError extends Error {
  override readonly name = 'ListenerError';
  constructor(
    readonly code: ListenerErrorCode,
    message: string,
    /** The config key to change, e.g. `listener[0].address`; null when no single key is at fault. */
    readonly configKey: string | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `127.0.0.1:4460`, `[::1]:4460`. */
export function formatAddress(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

export function formatSocketAddress(address: SocketAddress): string {
  return address.kind === 'unix' ? address.path : formatAddress(address.address, address.port);
}

/** Options of every secure context we create, initial or reloaded. */
function secureContextOptions(creds: TlsCredentials): tls.SecureContextOptions {
  return {
    cert: creds.certPem,
    key: creds.keyPem,
    ...(creds.clientCaPem ? { ca: creds.clientCaPem } : {}),
    minVersion: 'TLSv1.3', // RFC 8915 §3: NTS-KE requires TLS 1.3; we use it for every TLS service
    // No stateless session tickets: no client of these services resumes (an NTS-KE or EKS exchange is one
    // connection), and OpenSSL otherwise encrypts two tickets per handshake (~7% of an NTS-KE's CPU).
    secureOptions: constants.SSL_OP_NO_TICKET,
  };
}

function checkCredentials(creds: TlsCredentials): void {
  try {
    tls.createSecureContext(secureContextOptions(creds));
  } catch (err) {
    throw new ListenerError('TLS_CONTEXT_INVALID', `TLS certificate or key rejected: ${(err as Error).message}`, null, { cause: err });
  }
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) is the IPv4 address 1.2.3.4. */
function tcpAddress(address: string | undefined, port: number | undefined): SocketAddress | null {
  if (address === undefined || port === undefined) return null;
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return { kind: 'tcp', address: address.slice(7), port, family: 'IPv4' };
  return { kind: 'tcp', address, port, family: net.isIPv6(address) ? 'IPv6' : 'IPv4' };
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

const MAX_UNIX_PATH_BYTES = 107; // sun_path is 108 bytes on Linux, NUL included

/** One bound socket with its connections and counters. */
class Listener {
  readonly transport: Transport;
  readonly services: Service[];
  readonly limits: ListenerLimits;
  readonly netServer: net.Server;
  readonly tlsServer: tls.Server | null;
  readonly counters = Object.fromEntries(LISTENER_COUNTERS.map((c) => [c, 0])) as Record<ListenerCounter, number>;
  readonly dispatchedTo = new Map<string, number>();
  readonly #conns = new Set<AnySocket>();
  readonly #perAddress = new Map<string, number>();
  /** Dispatched sockets and the controller of their shutdown signal. */
  readonly #sessions = new Map<AnySocket, AbortController>();
  /** The native TLS module when this listener uses it (see ListenerSpec.nativeTls), and its server once bound. */
  readonly #nativeModule: NativeTlsModule | null = null;
  #native: NativeTlsServer | null = null;
  readonly #creds: TlsCredentials | undefined;
  readonly #alpnToService = new Map<string, Service>();
  readonly #defaultService: Service | null;
  readonly #requestCert: boolean;
  #closing = false;
  #address: SocketAddress | null = null;
  #unixIno: number | null = null;
  #drainWaiters: (() => void)[] = [];

  constructor(
    readonly spec: ListenerSpec,
    registry: ServiceRegistry,
    creds: TlsCredentials | undefined,
    readonly logger: Logger,
    readonly nextId: () => number,
    private readonly onListenerError?: (listener: string, code: string, message: string) => void,
  ) {
    const servicesKey = `${spec.configKey}.services`;
    const configError = (key: string, message: string) => new ListenerError('LISTENER_CONFIG', `${key}: ${message}`, key);

    if (spec.services.length === 0) throw configError(servicesKey, 'a listener needs at least one service');
    this.services = spec.services.map((name) => {
      const service = registry.get(name);
      if (!service) throw configError(servicesKey, `unknown service "${name}" (known: ${registry.names().join(', ')})`);
      return service;
    });
    if (new Set(spec.services).size !== spec.services.length) throw configError(servicesKey, 'a service is listed twice');

    this.limits = {
      maxConnections: spec.maxConnections ?? LISTENER_DEFAULTS.maxConnections,
      maxConnectionsPerAddress: spec.maxConnectionsPerAddress ?? LISTENER_DEFAULTS.maxConnectionsPerAddress,
      handshakeTimeoutMs: spec.handshakeTimeoutMs ?? LISTENER_DEFAULTS.handshakeTimeoutMs,
      idleTimeoutMs: spec.idleTimeoutMs ?? LISTENER_DEFAULTS.idleTimeoutMs,
      maxMessageSize: spec.maxMessageSize ?? LISTENER_DEFAULTS.maxMessageSize,
    };
    // Keys the design does not name are reported against the listener's table.
    for (const [key, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value <= 0) throw configError(spec.configKey, `${key} must be a positive integer, got ${String(value)}`);
    }

    const onlyService = this.services.length === 1 ? this.services[0] : undefined;
    const wantsTls = spec.tls ?? (spec.path === undefined && !(onlyService && onlyService.alpn === null));
    this.transport = wantsTls ? 'tls' : 'plain';
    if (this.transport === 'plain') {
      if (!onlyService) throw configError(servicesKey, 'a listener without TLS serves exactly one service');
      if (!onlyService.transports.includes('plain')) throw configError(servicesKey, `service "${onlyService.name}" is only offered over TLS`);
      if (spec.defaultService !== undefined) throw configError(spec.configKey, 'a default service only applies to TLS listeners');
      this.#defaultService = onlyService;
      this.#requestCert = false;
    } else {
      for (const service of this.services) {
        if (!service.transports.includes('tls') || service.alpn === null) throw configError(servicesKey, `service "${service.name}" cannot be offered over TLS`);
        this.#alpnToService.set(service.alpn, service);
      }
      if (spec.defaultService !== undefined && !spec.services.includes(spec.defaultService)) {
        throw configError(spec.configKey, `the default service "${spec.defaultService}" is not one of this listener's services`);
      }
      this.#defaultService = spec.defaultService === undefined ? null : registry.get(spec.defaultService) ?? null;
      if (!creds) throw new ListenerError('LISTENER_NO_TLS', `${spec.configKey}: a TLS listener needs a certificate and key`, null);
      this.#requestCert = this.services.some((s) => s.requestClientCertificate === true);
      if (spec.path === undefined && spec.nativeTls !== false && !this.#requestCert && this.services.every((s) => s.nativeTls === true)) {
        const native = nativeTls();
        if ('module' in native) this.#nativeModule = native.module;
        else logger.warn({ listener: spec.name, reason: native.reason }, 'native TLS unavailable, using node:tls');
      }
    }
    if (this.#nativeModule !== null || this.transport !== 'tls') {
      this.tlsServer = null;
    } else {
      const protocols = this.services.map((s) => s.alpn as string);
      this.tlsServer = tls.createServer({
        ...secureContextOptions(creds as TlsCredentials),
        handshakeTimeout: this.limits.handshakeTimeoutMs,
        requestCert: this.#requestCert,
        rejectUnauthorized: false, // the service decides what an unverified or absent client certificate means
        // Called only when the client offers ALPN; undefined sends the no_application_protocol alert (RFC 7301 §3.2).
        ALPNCallback: ({ protocols: offered }) => protocols.find((p) => offered.includes(p)),
      });
      this.tlsServer.on('tlsClientError', (err, socket) => this.#onTlsError(err, socket));
      this.tlsServer.on('secureConnection', (socket: tls.TLSSocket) => this.#onSecure(socket));
    }
    if (spec.path !== undefined && Buffer.byteLength(spec.path) > MAX_UNIX_PATH_BYTES) {
      throw new ListenerError('LISTEN_PATH_TOO_LONG', `${spec.configKey}.path: ${spec.path} is longer than ${MAX_UNIX_PATH_BYTES} bytes, the limit for Unix socket paths`, `${spec.configKey}.path`);
    }

    this.netServer = net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
    this.#creds = creds;
  }

  get active(): number {
    return this.#conns.size;
  }

  get address(): SocketAddress | null {
    return this.#address;
  }

  get where(): string {
    const { spec } = this;
    return spec.path ?? formatAddress(spec.address.host, spec.address.port);
  }

  bound(): BoundListener {
    if (!this.#address) throw new ListenerError('LISTENER_STATE', `${this.spec.name} is not bound`, null);
    return { name: this.spec.name, configKey: this.spec.configKey, transport: this.transport, services: this.services.map((s) => s.name), address: this.#address };
  }

  stats(): ListenerStats {
    return {
      name: this.spec.name,
      configKey: this.spec.configKey,
      transport: this.transport,
      address: this.#address,
      active: this.#conns.size,
      counters: { ...this.counters },
      services: Object.fromEntries(this.dispatchedTo),
    };
  }

  async bind(): Promise<void> {
    const { spec } = this;
    if (this.#nativeModule !== null && spec.address !== undefined) {
      await this.#bindNative(this.#nativeModule, spec.address);
      this.#logListening();
      return;
    }
    if (spec.path !== undefined) await this.#clearStaleSocket(spec.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.netServer.off('listening', onListening);
        reject(this.#bindError(err));
      };
      const onListening = () => {
        this.netServer.off('error', onError);
        resolve();
      };
      this.netServer.once('error', onError);
      this.netServer.once('listening', onListening);
      if (spec.path !== undefined) this.netServer.listen({ path: spec.path });
      else this.netServer.listen({ host: spec.address.host, port: spec.address.port });
    });
    this.netServer.on('error', (err) => {
      // After binding, only accept() failures arrive here; the server keeps listening.
      this.counters.accept_error += 1;
      this.logger.warn({ listener: spec.name, err }, 'accept failed');
      this.onListenerError?.(spec.name, errnoCode(err) ?? 'ACCEPT_FAILED', err.message);
    });
    if (spec.path !== undefined) {
      try {
        if (spec.mode !== undefined) await chmod(spec.path, spec.mode);
        this.#unixIno = (await stat(spec.path)).ino;
      } catch (err) {
        await this.#closeServer();
        throw new ListenerError('LISTEN_FAILED', `cannot set up ${spec.path}: ${(err as Error).message}; change ${spec.configKey}.path`, `${spec.configKey}.path`, { cause: err });
      }
      this.#address = { kind: 'unix', path: spec.path };
    } else {
      const info = this.netServer.address() as net.AddressInfo;
      this.#address = { kind: 'tcp', address: info.address, port: info.port, family: info.family === 'IPv6' ? 'IPv6' : 'IPv4' };
    }
    this.#logListening();
  }

  /** The one 'listening' line per bound listener; `tls` says which stack serves it. */
  #logListening(): void {
    const { spec } = this;
    const tlsStack = this.transport === 'tls' ? { tls: this.#native !== null ? 'native' : 'node' } : {};
    this.logger.info({ listener: spec.name, address: formatSocketAddress(this.#address as SocketAddress), transport: this.transport, ...tlsStack, services: spec.services }, 'listening');
  }

  async #bindNative(module: NativeTlsModule, address: { readonly host: string; readonly port: number }): Promise<void> {
    const creds = this.#creds as TlsCredentials;
    let host = address.host;
    let family: 4 | 6 = net.isIPv6(host) ? 6 : 4;
    if (net.isIP(host) === 0) {
      try {
        const found = await lookup(host);
        host = found.address;
        family = found.family === 6 ? 6 : 4;
      } catch (err) {
        throw this.#bindError(err as Error);
      }
    }
    try {
      this.#native = new NativeTlsServer(module, {
        family,
        host,
        port: address.port,
        certificateChainPem: creds.certPem,
        privateKeyPem: creds.keyPem,
        alpn: this.services.map((s) => s.alpn as string),
        handshakeTimeoutMs: this.limits.handshakeTimeoutMs,
        idleTimeoutMs: this.limits.idleTimeoutMs,
        onAccept: (server, id, remoteAddress, remotePort) => this.#onNativeAccept(server, id, remoteAddress, remotePort),
        onSecure: (socket, alpn) => this.#onNativeSecure(socket, alpn),
        onClose: (socket, reason, detail) => this.#onNativeClose(socket, reason, detail),
        onAcceptError: (message) => {
          this.counters.accept_error += 1;
          this.logger.warn({ listener: this.spec.name, reason: message }, 'accept failed');
          this.onListenerError?.(this.spec.name, 'ACCEPT_FAILED', message);
        },
      });
    } catch (err) {
      if (errnoCode(err) === 'TLS_CONTEXT_INVALID') throw new ListenerError('TLS_CONTEXT_INVALID', `TLS certificate or key rejected: ${(err as Error).message}`, null, { cause: err });
      throw this.#bindError(err as Error);
    }
    this.#address = { kind: 'tcp', address: host, port: this.#native.port, family: family === 6 ? 'IPv6' : 'IPv4' };
  }

  /** New handshakes on a native listener use this certificate (node:tls listeners: ListenerSet.setSecureContext). */
  setNativeCertificate(creds: TlsCredentials): void {
    this.#native?.setCertificate(creds.certPem, creds.keyPem);
  }

  /** A socket file left by a crashed daemon is removed; a live one or a non-socket file is an error. */
  async #clearStaleSocket(path: string): Promise<void> {
    const key = `${this.spec.configKey}.path`;
    let isSocket: boolean;
    try {
      isSocket = (await lstat(path)).isSocket();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw this.#bindError(err as Error);
    }
    if (!isSocket) throw new ListenerError('LISTEN_PATH_NOT_SOCKET', `cannot listen on ${path}: the file exists and is not a socket; remove it or change ${key}`, key);
    const live = await new Promise<boolean>((resolve, reject) => {
      const probe = net.connect({ path });
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', (err) => {
        const code = errnoCode(err);
        if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false);
        else if (code === 'EAGAIN') resolve(true); // a live server with a full backlog
        else reject(this.#bindError(err));
      });
    });
    if (live) throw new ListenerError('LISTEN_ADDRESS_IN_USE', `cannot listen on ${path}: another process is serving this socket; stop it or change ${key}`, key);
    try {
      await unlink(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw this.#bindError(err as Error);
    }
    this.logger.info({ listener: this.spec.name, path }, 'removed stale socket file');
  }

  #bindError(err: Error): ListenerError {
    const { spec } = this;
    const key = `${spec.configKey}.${spec.path !== undefined ? 'path' : 'address'}`;
    const code = errnoCode(err);
    const where = this.where;
    const fail = (c: ListenerErrorCode, reason: string) => new ListenerError(c, `cannot listen on ${where}: ${reason}`, key, { cause: err });
    switch (code) {
      case 'EADDRINUSE':
        return fail('LISTEN_ADDRESS_IN_USE', `address already in use (EADDRINUSE); stop the other process using it or change ${key}`);
      case 'EACCES':
      case 'EPERM':
        return fail(
          'LISTEN_PERMISSION_DENIED',
          spec.path !== undefined
            ? `permission denied (${code}); make the directory writable for the daemon's user or change ${key}`
            : `permission denied (${code}); ports below 1024 need root or CAP_NET_BIND_SERVICE; change ${key}`,
        );
      case 'EADDRNOTAVAIL':
        return fail('LISTEN_ADDRESS_NOT_AVAILABLE', `no local interface has this address (EADDRNOTAVAIL); change ${key}`);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
      case 'EAI_NONAME':
        return fail('LISTEN_ADDRESS_NOT_AVAILABLE', `cannot resolve the host name (${code}); change ${key}`);
      case 'ENOENT':
        return fail('LISTEN_FAILED', `the directory does not exist (ENOENT); create it or change ${key}`);
      default:
        return fail('LISTEN_FAILED', `${err.message}; change ${key}`);
    }
  }

  #count(counter: ListenerCounter): void {
    this.counters[counter] += 1;
  }

  #onConnection(raw: net.Socket): void {
    if (this.#closing) {
      this.#count('refused_shutdown');
      raw.destroy();
      return;
    }
    // With TLS the TLSSocket owns the stream and reports errors; this only keeps an early error from throwing.
    raw.on('error', () => {});
    const remote = this.spec.path === undefined ? tcpAddress(raw.remoteAddress, raw.remotePort) : null;
    if (this.spec.path === undefined && remote === null) {
      raw.destroy(); // already gone
      return;
    }
    if (!this.#admit(raw, remote)) {
      raw.destroy();
      return;
    }
    if (this.tlsServer) this.tlsServer.emit('connection', raw);
    else this.#dispatch(raw, this.#defaultService as Service, null, remote);
  }

  /**
   * The limits, total then per address (counting a refusal); an admitted socket is tracked in `conns` and the
   * per-address counts until its 'close'.
   */
  #admit(socket: AnySocket, remote: SocketAddress | null): boolean {
    if (this.#conns.size >= this.limits.maxConnections) {
      this.#count('refused_limit');
      this.logger.debug({ listener: this.spec.name, remote: remote && formatSocketAddress(remote) }, 'connection refused: listener full');
      return false;
    }
    const key = remote?.kind === 'tcp' ? remote.address : null;
    if (key !== null) {
      const n = this.#perAddress.get(key) ?? 0;
      if (n >= this.limits.maxConnectionsPerAddress) {
        this.#count('refused_per_address');
        this.logger.debug({ listener: this.spec.name, remote: key }, 'connection refused: too many from this address');
        return false;
      }
      this.#perAddress.set(key, n + 1);
    }
    this.#conns.add(socket);
    this.#count('accepted');
    socket.once('close', () => {
      this.#conns.delete(socket);
      if (key !== null) {
        const n = (this.#perAddress.get(key) ?? 1) - 1;
        if (n === 0) this.#perAddress.delete(key);
        else this.#perAddress.set(key, n);
      }
      if (this.#conns.size === 0) {
        for (const wake of this.#drainWaiters.splice(0)) wake();
        if (this.#closing) this.#releaseNative();
      }
    });
    return true;
  }

  // --- the native TLS listener's events (see native-tls.ts) ---

  #onNativeAccept(server: NativeTlsServer, id: number, remoteAddress: string, remotePort: number): NativeTlsSocket | null {
    if (this.#closing) {
      this.#count('refused_shutdown');
      return null;
    }
    const remote = tcpAddress(remoteAddress, remotePort);
    const local = this.#address as SocketAddress & { kind: 'tcp' };
    const socket = new NativeTlsSocket(server, id, remoteAddress, remotePort, local.address, local.port);
    return this.#admit(socket, remote) ? socket : null;
  }

  #onNativeSecure(socket: NativeTlsSocket, alpn: string | null): void {
    const service = this.#serviceAfterHandshake(socket, alpn);
    if (service === null) return;
    // The services on a native listener use no more of tls.TLSSocket than NativeTlsSocket has (Service.nativeTls).
    const tlsInfo: TlsConnectionInfo = { socket: socket as unknown as tls.TLSSocket, protocol: 'TLSv1.3', alpn, servername: null, peerCertificate: null, peerAuthorized: false };
    this.#dispatch(socket, service, tlsInfo, tcpAddress(socket.remoteAddress, socket.remotePort));
  }

  /** Counts a native connection's end as #onTlsError and the idle/error handlers count node:tls ones. */
  #onNativeClose(socket: NativeTlsSocket, reason: NativeCloseReason, detail: string): void {
    if (reason === 'closed') return;
    this.#count(reason);
    if (reason === 'idle_timeout') return;
    this.logger.debug(
      { listener: this.spec.name, reason, detail, remote: socket.remoteAddress },
      reason === 'socket_error' ? 'socket error' : 'TLS handshake failed',
    );
  }

  #releaseNative(): void {
    this.#native?.release();
    this.#native = null;
  }

  #onTlsError(err: Error, socket: tls.TLSSocket): void {
    const code = errnoCode(err);
    const counter: ListenerCounter =
      code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
        ? 'handshake_timeout'
        : code === 'ERR_SSL_NO_APPLICATION_PROTOCOL'
          ? 'no_alpn_match'
          : code === 'ERR_SSL_UNSUPPORTED_PROTOCOL'
            ? 'tls_version'
            : code === 'ECONNRESET'
              ? 'handshake_aborted'
              : 'handshake_error';
    this.#count(counter);
    this.logger.debug({ listener: this.spec.name, reason: counter, code, remote: socket.remoteAddress }, 'TLS handshake failed');
    socket.destroy();
  }

  /**
   * The service for a connection whose handshake is done, by its ALPN protocol (or the default one); null, with
   * the socket destroyed and the refusal counted, while closing or when there is none.
   */
  #serviceAfterHandshake(socket: AnySocket, alpn: string | null): Service | null {
    if (this.#closing) {
      this.#count('refused_shutdown');
      socket.destroy();
      return null;
    }
    const service = alpn === null ? this.#defaultService : this.#alpnToService.get(alpn);
    if (!service) {
      // TLS has no alert for "you offered nothing" once the handshake is done: close the connection.
      this.#count('no_alpn');
      this.logger.debug({ listener: this.spec.name, remote: socket.remoteAddress }, 'connection refused: no ALPN and no default service');
      socket.destroy();
      return null;
    }
    return service;
  }

  #onSecure(socket: tls.TLSSocket): void {
    const alpn = typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null;
    const service = this.#serviceAfterHandshake(socket, alpn);
    if (service === null) return;
    const cert = this.#requestCert ? socket.getPeerCertificate(true) : null;
    const tlsInfo: TlsConnectionInfo = {
      socket,
      protocol: socket.getProtocol() ?? 'unknown',
      alpn,
      servername: typeof socket.servername === 'string' ? socket.servername : null,
      peerCertificate: cert && Object.keys(cert).length > 0 ? cert : null, // {} means "none sent"
      peerAuthorized: socket.authorized,
    };
    this.#dispatch(socket, service, tlsInfo, tcpAddress(socket.remoteAddress, socket.remotePort));
  }

  #dispatch(socket: AnySocket, service: Service, tlsInfo: TlsConnectionInfo | null, remote: SocketAddress | null): void {
    const { spec } = this;
    const id = this.nextId();
    const controller = new AbortController();
    this.#sessions.set(socket, controller);
    socket.once('close', () => this.#sessions.delete(socket));
    socket.setTimeout(this.limits.idleTimeoutMs);
    socket.on('timeout', () => {
      this.#count('idle_timeout');
      socket.destroy();
    });
    const remoteAddress: SocketAddress = remote ?? { kind: 'unix', path: spec.path ?? '' };
    // The connection's logger is made on first use: most connections never log, and a child logger per
    // connection was a measurable part of an NTS-KE handshake's CPU.
    let connectionLogger: Logger | undefined;
    const logger = (): Logger =>
      (connectionLogger ??= this.logger.child({ conn: id, listener: spec.name, remote: formatSocketAddress(remoteAddress), service: service.name }));
    socket.on('error', (err) => {
      this.#count('socket_error');
      logger().debug({ code: errnoCode(err) }, 'socket error');
    });
    const local: SocketAddress =
      spec.path !== undefined ? { kind: 'unix', path: spec.path } : (tcpAddress(socket.localAddress, socket.localPort) ?? (this.#address as SocketAddress));
    const context: ConnectionContext = {
      id,
      listener: spec.name,
      local,
      remote: remoteAddress,
      transport: this.transport,
      tls: tlsInfo,
      maxMessageSize: this.limits.maxMessageSize,
      signal: controller.signal,
      get logger() {
        return logger();
      },
    };
    this.#count('dispatched');
    this.dispatchedTo.set(service.name, (this.dispatchedTo.get(service.name) ?? 0) + 1);
    try {
      // A NativeTlsSocket only reaches services that declared `nativeTls` (the listener checks at construction).
      service.handleConnection(socket as net.Socket, context);
    } catch (err) {
      this.#count('service_error');
      logger().error({ err }, 'service failed to take the connection');
      socket.destroy();
    }
  }

  /** Stop accepting and ask every dispatched connection to finish. */
  async beginClose(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const controller of this.#sessions.values()) controller.abort();
    await this.#closeServer();
  }

  async #closeServer(): Promise<void> {
    if (this.#native !== null) {
      this.#native.stopListening();
      if (this.#conns.size === 0) this.#releaseNative();
    }
    if (this.netServer.listening) this.netServer.close();
    const path = this.spec.path;
    if (path !== undefined && this.#unixIno !== null) {
      // libuv unlinks the file on close; this covers the cases where it did not, without touching a newer file.
      try {
        if ((await stat(path)).ino === this.#unixIno) await unlink(path);
      } catch {
        // already gone
      }
      this.#unixIno = null;
    }
  }

  drained(): Promise<void> {
    if (this.#conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  destroyAll(): void {
    for (const socket of this.#conns) {
      this.#count('shutdown_destroyed');
      socket.destroy();
    }
  }
}

export interface ListenerSetOptions {
  readonly specs: readonly ListenerSpec[];
  readonly registry: ServiceRegistry;
  /** Required when any listener uses TLS. */
  readonly tls?: TlsCredentials | undefined;
  readonly logger?: Logger | undefined;
  /** Called when a bound listener fails to accept a connection (e.g. EMFILE); the listener keeps listening. */
  readonly onListenerError?: (listener: string, code: string, message: string) => void;
}

/** All listeners of the daemon: bound together, reloaded together, closed together. */
export class ListenerSet {
  readonly #listeners: Listener[];
  readonly #logger: Logger;
  #state: 'new' | 'starting' | 'running' | 'closing' | 'closed' = 'new';
  #closed: Promise<void> | null = null;
  #nextId = 1;

  /** Validates every spec (coded `ListenerError`, nothing is bound yet). */
  constructor(options: ListenerSetOptions) {
    this.#logger = options.logger ?? silentLogger();
    if (options.tls) checkCredentials(options.tls);
    const nextId = () => this.#nextId++;
    this.#listeners = options.specs.map((spec) => new Listener(spec, options.registry, options.tls, this.#logger, nextId, options.onListenerError));
  }

  /** Binds every listener; on any failure the ones already bound are closed and the first error (in spec order) is thrown. */
  async start(): Promise<BoundListener[]> {
    if (this.#state !== 'new') throw new ListenerError('LISTENER_STATE', 'listeners can be started once', null);
    this.#state = 'starting';
    const results = await Promise.allSettled(this.#listeners.map((l) => l.bind()));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await Promise.all(this.#listeners.map((l) => l.beginClose()));
      this.#state = 'closed';
      throw failure.reason;
    }
    this.#state = 'running';
    return this.bound();
  }

  bound(): BoundListener[] {
    return this.#listeners.filter((l) => l.address !== null).map((l) => l.bound());
  }

  stats(): ListenerStats[] {
    return this.#listeners.map((l) => l.stats());
  }

  /**
   * Swap the certificate of every TLS listener. New handshakes use it; established connections keep theirs.
   * Invalid material (e.g. a key that does not match) throws `TLS_CONTEXT_INVALID` and changes nothing.
   */
  setSecureContext(creds: TlsCredentials): void {
    checkCredentials(creds);
    const options = secureContextOptions(creds);
    for (const listener of this.#listeners) {
      listener.tlsServer?.setSecureContext(options);
      listener.setNativeCertificate(creds);
    }
    this.#logger.info('TLS certificate replaced on every listener');
  }

  /**
   * Stop accepting, let connections finish until `graceMs` has passed (their `signal` is aborted at once),
   * then destroy the rest. Resolves when every socket is closed. Idempotent.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    this.#closed ??= this.#close(options.graceMs ?? 5_000);
    return this.#closed;
  }

  async #close(graceMs: number): Promise<void> {
    this.#state = 'closing';
    await Promise.all(this.#listeners.map((l) => l.beginClose()));
    const drained = Promise.all(this.#listeners.map((l) => l.drained()));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), graceMs);
    });
    const outcome = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      for (const listener of this.#listeners) listener.destroyAll();
      await drained;
    }
    this.#state = 'closed';
    this.#logger.info({ forced: outcome === 'deadline' }, 'listeners closed');
  }
}
