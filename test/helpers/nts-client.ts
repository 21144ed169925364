/**
 * Small NTS clients for end-to-end tests: an NTS-KE exchange over node:tls built from the codecs in
 * src/proto/ntske, key derivation with the TLS exporter (RFC 8915 §5.1), and a UDP peer with a receive queue.
 * Everything waits for events (secureConnect, data, end, close, message), never for a fixed time.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { AEAD_ALGORITHMS, aeadById, createAead, type Aead } from '../../src/crypto/aead.js';
import { decodeMessage, encodeMessage, type NtsKeMessage } from '../../src/proto/ntske/message.js';
import { AeadAlgorithms, NextProtocols, aeadAlgorithmRecord, nextProtocolRecord, type NtsKeRecord } from '../../src/proto/ntske/records.js';
import { NTS_EXPORTER_LABEL, exporterContext } from '../../src/proto/ntske/server.js';
import type { NtpHeader } from '../../src/proto/ntp/packet.js';
import { buildNtsRequest } from '../../src/proto/nts/client.js';
import { NTS_NONCE_LENGTH } from '../../src/proto/nts/extension-fields.js';

export const NTPV4 = 0;

/** The daemon's generated certificate (made at start in the state dir). */
export function daemonCa(stateDir: string): string {
  return readFileSync(join(stateDir, 'cert.pem'), 'utf8');
}

/** A request: Next Protocol [NTPv4] (or `protocols`), AEAD `aeads`, then `extra` records, then End of Message. */
export function keRequest(aeads: readonly number[], extra: readonly NtsKeRecord[] = [], protocols: readonly number[] = [NTPV4]): Uint8Array {
  return encodeMessage([nextProtocolRecord(protocols.map((p) => NextProtocols.decode(p))), aeadAlgorithmRecord(aeads.map((a) => AeadAlgorithms.decode(a))), ...extra]);
}

export interface KeConnectOptions extends tls.ConnectionOptions {
  /** ALPN ids to offer; null offers none. Default ['ntske/1']. */
  readonly alpn?: string[] | null;
}

/** Connects with TLS 1.3 to 127.0.0.1:`port`, trusting `ca`, SNI "localhost". Rejects on any TLS failure. */
export function keConnect(port: number, ca: string, options: KeConnectOptions = {}): Promise<tls.TLSSocket> {
  const { alpn, ...rest } = options;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
      ...(alpn === null ? {} : { ALPNProtocols: alpn ?? ['ntske/1'] }),
      ...rest,
    });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      socket.on('error', () => {}); // reported by readToClose
      // The server closes right after its response, and the exporter needs a live session: take the keys of
      // every AEAD we might be given now (as a real client does before it reads the response).
      exported.set(
        socket,
        new Map(AEAD_ALGORITHMS.map((a) => [a.id, { c2s: exportKey(socket, a.id, a.keyLength, 'c2s'), s2c: exportKey(socket, a.id, a.keyLength, 's2c') }])),
      );
      resolve(socket);
    });
  });
}

export interface KeReply {
  readonly data: Buffer;
  /** 'data' events that carried the reply. */
  readonly chunks: number;
  /** The server ended the connection before we ended our side. */
  readonly endedByServer: boolean;
  readonly error: Error | null;
}

/** Collects everything the server sends until the connection closes. Call before writing. */
export function readToClose(socket: Socket): Promise<KeReply> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let endedByServer = false;
    let error: Error | null = null;
    socket.on('data', (chunk: Buffer) => parts.push(chunk));
    socket.once('end', () => {
      endedByServer = !socket.writableEnded;
    });
    socket.on('error', (e: Error) => (error ??= e));
    socket.once('close', () => resolve({ data: Buffer.concat(parts), chunks: parts.length, endedByServer, error }));
  });
}

/** Writes `bytes` in chunks of `size`, each one flushed (so each goes out as its own TLS record) before the next. */
export async function writeInPieces(socket: tls.TLSSocket, bytes: Uint8Array, size: number): Promise<void> {
  for (let at = 0; at < bytes.length; at += size) {
    await new Promise<void>((resolve, reject) => socket.write(bytes.subarray(at, at + size), (e) => (e ? reject(e) : resolve())));
  }
}

export function decodeReply(data: Uint8Array): NtsKeMessage {
  const decoded = decodeMessage(data, 'response');
  if (!decoded.ok) throw new Error(`the NTS-KE response does not decode: ${decoded.error.code} ${decoded.error.message}`);
  return decoded.value;
}

export interface NtsKeys {
  readonly aead: number;
  readonly c2s: Aead;
  readonly s2c: Aead;
}

const exported = new WeakMap<tls.TLSSocket, Map<number, { c2s: Uint8Array; s2c: Uint8Array }>>();

function exportKey(socket: tls.TLSSocket, aead: number, length: number, direction: 'c2s' | 's2c'): Uint8Array {
  return new Uint8Array(socket.exportKeyingMaterial(length, NTS_EXPORTER_LABEL, Buffer.from(exporterContext(NTPV4, aead, direction))));
}

/**
 * RFC 8915 §5.1: the client derives the same keys as the server from the TLS exporter, with the context
 * NTPv4 ‖ AEAD ‖ direction. Uses the keys taken at `secureConnect` (the session may be closed by now).
 */
export function deriveKeys(socket: tls.TLSSocket, aead: number): NtsKeys {
  const algorithm = aeadById(aead);
  if (algorithm === undefined) throw new Error(`AEAD ${aead} not implemented`);
  const keys = exported.get(socket)?.get(aead) ?? { c2s: exportKey(socket, aead, algorithm.keyLength, 'c2s'), s2c: exportKey(socket, aead, algorithm.keyLength, 's2c') };
  return { aead, c2s: createAead(aead, keys.c2s), s2c: createAead(aead, keys.s2c) };
}

/** A full NTS-KE exchange: connect, send `request`, read until the server closes. */
export async function keExchange(port: number, ca: string, request: Uint8Array, options: KeConnectOptions = {}): Promise<{ reply: KeReply; socket: tls.TLSSocket }> {
  const socket = await keConnect(port, ca, options);
  const reply = readToClose(socket);
  socket.write(request);
  return { reply: await reply, socket };
}

/** NTS-KE with [`aead`], returning the keys and cookies; throws when the server did not accept. */
export async function ntsKeys(port: number, ca: string, aeads: readonly number[] = [15]): Promise<{ keys: NtsKeys; cookies: Uint8Array[]; message: NtsKeMessage }> {
  const { reply, socket } = await keExchange(port, ca, keRequest(aeads));
  const message = decodeReply(reply.data);
  const chosen = message.aeadAlgorithms?.[0];
  if (chosen === undefined || message.cookies.length === 0) throw new Error(`NTS-KE not accepted: ${JSON.stringify(message.violations)}`);
  return { keys: deriveKeys(socket, AeadAlgorithms.encode(chosen)), cookies: [...message.cookies], message };
}

/** A client-mode NTPv4 header with `transmit` as its transmit timestamp (the marker we look for in answers). */
export function clientHeader(transmit: { seconds: number; fraction: number }): NtpHeader {
  const zero = { seconds: 0, fraction: 0 };
  return {
    leap: 0,
    version: 4,
    mode: 3,
    stratum: 0,
    poll: 6,
    precision: -20,
    rootDelay: 0,
    rootDispersion: 0,
    referenceId: 0,
    referenceTimestamp: zero,
    originTimestamp: zero,
    receiveTimestamp: zero,
    transmitTimestamp: transmit,
  };
}

let marker = 1;
/** A fresh transmit timestamp, unique in this process. */
export function nextMarker(): { seconds: number; fraction: number } {
  return { seconds: 0xe000_0000 + marker++, fraction: randomBytes(4).readUInt32BE(0) };
}

export function ntsRequestBytes(keys: NtsKeys, cookie: Uint8Array, placeholders = 0, transmit = nextMarker()) {
  const uid = new Uint8Array(randomBytes(32));
  const bytes = buildNtsRequest({ header: clientHeader(transmit), uniqueIdentifier: uid, cookie, placeholders, c2s: keys.c2s, nonce: new Uint8Array(randomBytes(NTS_NONCE_LENGTH)) });
  return { bytes, uid, transmit };
}

/** A UDP socket on 127.0.0.1 that queues what it receives. */
export class UdpPeer {
  readonly #socket: UdpSocket;
  readonly #queue: Buffer[] = [];
  readonly #waiters: Array<(message: Buffer) => void> = [];

  private constructor(socket: UdpSocket) {
    this.#socket = socket;
    socket.on('message', (message) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(message);
      else this.#queue.push(message);
    });
  }

  static open(): Promise<UdpPeer> {
    return new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve(new UdpPeer(socket)));
    });
  }

  send(bytes: Uint8Array, port: number): Promise<void> {
    return new Promise((resolve, reject) => this.#socket.send(bytes, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  }

  /** The next datagram received; rejects after `timeoutMs`. */
  receive(timeoutMs = 3000): Promise<Buffer> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiter = (message: Buffer) => {
        clearTimeout(timer);
        resolve(message);
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error('no UDP answer'));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  close(): void {
    this.#socket.close();
  }
}
