/**
 * TLS listeners on OpenSSL directly (native/tls_listener.c), for services that are one exchange per connection
 * (NTS-KE, EKS: `Service.nativeTls`). node:tls spends about twice chrony's whole NTS-KE exchange per connection
 * before the service runs (two stream objects per connection, the TLS wrap, JS callbacks at every handshake
 * stage); here the handshake, reads and writes stay in C and JS sees four events: a connection to admit (the
 * listener's limits), the negotiated ALPN protocol, decrypted bytes, and the close with its reason.
 *
 * `NativeTlsSocket` is what a service gets instead of a tls.TLSSocket: the part of the socket interface the
 * one-message services use (see Service.nativeTls), with Node's event order ('data'..., then 'end' when the peer
 * closed, then 'close').
 */
import { EventEmitter } from 'node:events';
import { loadNativeModule } from './native.js';

interface NativeTlsHandle {
  readonly port: number;
}

export interface NativeTlsModule {
  tlsCreateContext(certificateChainPem: string, privateKeyPem: string): object;
  tlsListen(options: {
    family: 4 | 6;
    host: string;
    port: number;
    backlog: number;
    context: object;
    alpn: Uint8Array;
    handshakeTimeoutMs: number;
    idleTimeoutMs: number;
    onEvent: (kind: number, id: number, a: unknown, b: unknown) => unknown;
  }): NativeTlsHandle;
  tlsSetContext(handle: NativeTlsHandle, context: object): void;
  tlsWrite(handle: NativeTlsHandle, id: number, bytes: Uint8Array, end: boolean): boolean;
  tlsDestroy(handle: NativeTlsHandle, id: number): void;
  tlsSetIdleTimeout(handle: NativeTlsHandle, id: number, ms: number): void;
  tlsExport(handle: NativeTlsHandle, id: number, length: number, label: string, context: Uint8Array): Buffer;
  tlsStopListening(handle: NativeTlsHandle): void;
  tlsRelease(handle: NativeTlsHandle): void;
}

const EV_ACCEPT = 1;
const EV_SECURE = 2;
const EV_DATA = 3;
const EV_CLOSE = 4;
const EV_ACCEPT_ERROR = 5;

/** Why a connection closed, by the native reason code (native/tls_listener.c, R_*). */
export const NATIVE_CLOSE_REASONS = [
  'closed',
  'handshake_timeout',
  'tls_version',
  'no_alpn_match',
  'handshake_aborted',
  'handshake_error',
  'idle_timeout',
  'socket_error',
] as const;
export type NativeCloseReason = (typeof NATIVE_CLOSE_REASONS)[number];

const EMPTY = new Uint8Array(0);

let loaded: { module: NativeTlsModule } | { reason: string } | undefined;

/** The native TLS listener, or why it cannot be used here. */
export function nativeTls(): { readonly module: NativeTlsModule } | { readonly reason: string } {
  if (loaded !== undefined) return loaded;
  const native = loadNativeModule();
  if ('reason' in native) return (loaded = native);
  const module = native.binding as Partial<NativeTlsModule>;
  if (typeof module.tlsListen !== 'function') loaded = { reason: 'the native module offers no TLS listener on this system' };
  else loaded = { module: module as NativeTlsModule };
  return loaded;
}

/** One connection of a native TLS listener, as a service sees it. */
export class NativeTlsSocket extends EventEmitter {
  readonly encrypted = true;
  readonly authorized = false;
  readonly servername = null;
  alpnProtocol: string | false = false;
  destroyed = false;
  readonly #server: NativeTlsServer;
  readonly #id: number;

  constructor(
    server: NativeTlsServer,
    id: number,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly localAddress: string,
    readonly localPort: number,
  ) {
    super();
    this.#server = server;
    this.#id = id;
  }

  /** Sends `bytes` (if any), then close_notify and FIN; 'close' follows once the peer has closed too. */
  end(bytes?: Uint8Array): this {
    if (!this.destroyed) this.#server.write(this.#id, bytes ?? EMPTY, true);
    return this;
  }

  /** Closes at once; 'close' follows on the next tick. */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#server.destroy(this.#id);
    process.nextTick(() => this.emit('close', false));
    return this;
  }

  /** The idle timeout; at its end the connection closes (the listener counts `idle_timeout`). */
  setTimeout(ms: number): this {
    if (!this.destroyed && ms > 0) this.#server.setIdleTimeout(this.#id, ms);
    return this;
  }

  /** RFC 8446 §7.5 / RFC 5705, as tls.TLSSocket.exportKeyingMaterial. */
  exportKeyingMaterial(length: number, label: string, context: Uint8Array): Buffer {
    return this.#server.exportKeyingMaterial(this.#id, length, label, context);
  }

  getProtocol(): string {
    return 'TLSv1.3';
  }

  getPeerCertificate(): Record<string, never> {
    return {};
  }

  /** From the listener: the connection is gone (for any reason but our own destroy()). */
  closed(reason: NativeCloseReason): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (reason === 'closed') this.emit('end');
    this.emit('close', reason !== 'closed');
  }
}

export interface NativeTlsServerOptions {
  readonly family: 4 | 6;
  /** A numeric address. */
  readonly host: string;
  readonly port: number;
  readonly certificateChainPem: string;
  readonly privateKeyPem: string;
  /** ALPN protocols in preference order. */
  readonly alpn: readonly string[];
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** A new connection: the socket to serve it through, or null to refuse it (closed before any TLS). */
  readonly onAccept: (server: NativeTlsServer, id: number, address: string, port: number) => NativeTlsSocket | null;
  /** The handshake is done; `alpn` null when the client offered none. */
  readonly onSecure: (socket: NativeTlsSocket, alpn: string | null) => void;
  /** The connection closed on its own or the peer's account (not after destroy()). */
  readonly onClose: (socket: NativeTlsSocket, reason: NativeCloseReason, detail: string) => void;
  readonly onAcceptError: (message: string) => void;
}

/** ALPN protocol list in wire format (RFC 7301 §3.1). */
function alpnWire(protocols: readonly string[]): Uint8Array {
  const parts = protocols.map((p) => Buffer.from(p, 'latin1'));
  if (parts.some((p) => p.length === 0 || p.length > 255)) throw new RangeError('ALPN protocol ids are 1..255 bytes');
  return new Uint8Array(Buffer.concat(parts.flatMap((p) => [Buffer.of(p.length), p])));
}

/** A listening native TLS socket. Construction binds; errors carry `code` (EADDRINUSE, TLS_CONTEXT_INVALID, …). */
export class NativeTlsServer {
  readonly port: number;
  readonly #module: NativeTlsModule;
  readonly #handle: NativeTlsHandle;
  readonly #sockets = new Map<number, NativeTlsSocket>();
  #released = false;

  constructor(module: NativeTlsModule, options: NativeTlsServerOptions) {
    this.#module = module;
    const context = module.tlsCreateContext(options.certificateChainPem, options.privateKeyPem);
    const onEvent = (kind: number, id: number, a: unknown, b: unknown): unknown => {
      switch (kind) {
        case EV_ACCEPT: {
          const socket = options.onAccept(this, id, a as string, b as number);
          if (socket === null) return false;
          this.#sockets.set(id, socket);
          return true;
        }
        case EV_SECURE: {
          const socket = this.#sockets.get(id);
          if (socket === undefined) return undefined;
          socket.alpnProtocol = typeof a === 'string' ? a : false;
          options.onSecure(socket, typeof a === 'string' ? a : null);
          return undefined;
        }
        case EV_DATA:
          this.#sockets.get(id)?.emit('data', a as Buffer);
          return undefined;
        case EV_CLOSE: {
          const socket = this.#sockets.get(id);
          if (socket === undefined) return undefined;
          this.#sockets.delete(id);
          const reason = NATIVE_CLOSE_REASONS[a as number] ?? 'socket_error';
          options.onClose(socket, reason, typeof b === 'string' ? b : '');
          socket.closed(reason);
          return undefined;
        }
        case EV_ACCEPT_ERROR:
          options.onAcceptError(String(a));
          return undefined;
        default:
          return undefined;
      }
    };
    this.#handle = module.tlsListen({
      family: options.family,
      host: options.host,
      port: options.port,
      backlog: 511,
      context,
      alpn: alpnWire(options.alpn),
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      onEvent,
    });
    this.port = this.#handle.port;
  }

  /** New handshakes use this certificate; established connections keep theirs. Throws TLS_CONTEXT_INVALID. */
  setCertificate(certificateChainPem: string, privateKeyPem: string): void {
    if (this.#released) return;
    this.#module.tlsSetContext(this.#handle, this.#module.tlsCreateContext(certificateChainPem, privateKeyPem));
  }

  write(id: number, bytes: Uint8Array, end: boolean): boolean {
    return !this.#released && this.#module.tlsWrite(this.#handle, id, bytes, end);
  }

  destroy(id: number): void {
    this.#sockets.delete(id);
    if (!this.#released) this.#module.tlsDestroy(this.#handle, id);
  }

  setIdleTimeout(id: number, ms: number): void {
    if (!this.#released) this.#module.tlsSetIdleTimeout(this.#handle, id, Math.min(Math.max(1, Math.round(ms)), 0x7fffffff));
  }

  exportKeyingMaterial(id: number, length: number, label: string, context: Uint8Array): Buffer {
    if (this.#released) throw Object.assign(new Error('exportKeyingMaterial: the listener is closed'), { code: 'ERR_SOCKET_CLOSED' });
    return this.#module.tlsExport(this.#handle, id, length, label, context);
  }

  /** No new connections; the open ones go on. */
  stopListening(): void {
    if (!this.#released) this.#module.tlsStopListening(this.#handle);
  }

  /** After stopListening(): closes whatever is still open (without events) and frees the listener. */
  release(): void {
    if (this.#released) return;
    this.#module.tlsStopListening(this.#handle);
    this.#module.tlsRelease(this.#handle);
    this.#released = true;
    this.#sockets.clear();
  }
}
