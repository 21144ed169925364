/**
 * A fake EKS server (docs/eks.md) for the client and CLI tests: node:tls with ALPN ntp-eks/1 and a test
 * certificate, the pure codec to read requests and write responses, and a small issuing table of its own.
 *
 * By default it behaves like a server should: new keys get ids from 32768 up, a Renew whose proof verifies
 * (checked here: the TLS exporter computed on the server's side of the connection, then AES-128-CMAC under the
 * key it issued) keeps the id with a fresh key, anything else gets Error 6. `respond` scripts anything else.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import { aesCmac } from '../../src/crypto/cmac.js';
import { constantTimeEqual } from '../../src/crypto/constant-time.js';
import { createEksDecoder, encodeEksError, encodeEksKeyResponse, parseEksRequest, type EksKeyResponse, type EksRequest } from '../../src/proto/eks/message.js';
import { EKS_ALPN, EKS_RENEW_EXPORTER_LABEL, EksErrorCode, renewExporterContext } from '../../src/proto/eks/records.js';
import type { RawRecord } from '../../src/proto/ntske/framing.js';
import { NEED_DATA } from '../../src/proto/ntske/decoder.js';
import { DecodeError } from '../../src/proto/errors.js';
import type { TestCa } from '../interop/peers.js';

/** One request as the fake saw it. */
export interface EksExchange {
  readonly request: EksRequest;
  /** Whether a Renew record's proof verified against the key the fake issued under that id. */
  readonly proofValid: boolean | null;
  /** The exporter value on the server's side (for a Renew), to compare with what the client computed. */
  readonly exported: Uint8Array | null;
  /** What was answered: the key response, or an Error code. */
  answer: { kind: 'key'; keyId: number; key: Uint8Array; renewed: boolean } | { kind: 'error'; code: number } | { kind: 'scripted' };
}

export interface EksFakeSession {
  readonly socket: tls.TLSSocket;
  readonly exchange: EksExchange;
  /** The default answer (issue or renew as a correct server does). */
  issue(): Uint8Array;
}

export interface EksFakeOptions {
  /** What to answer: bytes to send (then close), or null to stay silent. Default: `session.issue()`. */
  readonly respond?: (session: EksFakeSession) => Uint8Array | null;
  /** ALPN ids the server accepts; null: no ALPN at all. Default [ntp-eks/1]. */
  readonly alpn?: string[] | null;
  /** Lifetime of issued keys, seconds. Default 172800 (2 days). */
  readonly lifetimeSeconds?: number;
  readonly ntpServer?: string | null;
  readonly ntpPort?: number | null;
  /** Required token: requests without it (or with another) get Error 3. */
  readonly token?: string;
  /** TLS versions the server allows (to fake an old server). */
  readonly maxVersion?: tls.SecureVersion;
  readonly minVersion?: tls.SecureVersion;
}

export interface EksFake {
  readonly port: number;
  /** Every request, in order. */
  readonly exchanges: EksExchange[];
  /** Connections that completed the TLS handshake. */
  sessions: number;
  /** The keys issued, by id (the latest key of each id). */
  readonly keys: Map<number, Uint8Array>;
  close(): Promise<void>;
}

export const DEFAULT_FAKE_LIFETIME = 172_800;

export async function startEksFake(ca: TestCa, options: EksFakeOptions = {}): Promise<EksFake> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({
    key: ca.serverKeyPem,
    cert: ca.serverCertPem + ca.caCertPem,
    minVersion: options.minVersion ?? 'TLSv1.3',
    ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
    ...(options.alpn === null ? {} : { ALPNProtocols: options.alpn ?? [EKS_ALPN] }),
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => {});
  let nextId = 32768;
  const lifetime = options.lifetimeSeconds ?? DEFAULT_FAKE_LIFETIME;
  const fake: EksFake = {
    port: 0,
    exchanges: [],
    sessions: 0,
    keys: new Map(),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    fake.sessions++;
    socket.on('error', () => {});
    const decoder = createEksDecoder();
    const records: RawRecord[] = [];
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (;;) {
        const next = decoder.next();
        if (next === NEED_DATA) return;
        if (next instanceof DecodeError) {
          socket.end(encodeEksError(EksErrorCode.BAD_REQUEST));
          return;
        }
        records.push(next);
        if (decoder.messageComplete) break;
      }
      const parsed = parseEksRequest(records);
      if (!parsed.ok) {
        socket.end(encodeEksError(parsed.error.errorCode));
        return;
      }
      const request = parsed.value;
      let exported: Uint8Array | null = null;
      let proofValid: boolean | null = null;
      if (request.renew !== null) {
        exported = new Uint8Array(socket.exportKeyingMaterial(16, EKS_RENEW_EXPORTER_LABEL, Buffer.from(renewExporterContext(request.renew.keyId))));
        const held = fake.keys.get(request.renew.keyId);
        proofValid = held !== undefined && constantTimeEqual(aesCmac(held, exported), request.renew.proof);
      }
      const exchange: EksExchange = { request, proofValid, exported, answer: { kind: 'scripted' } };
      fake.exchanges.push(exchange);
      const error = (code: number) => {
        exchange.answer = { kind: 'error', code };
        return encodeEksError(code);
      };
      const issue = (): Uint8Array => {
        if (!request.algorithms.includes(1)) return error(EksErrorCode.NO_COMMON_ALGORITHM);
        if (request.token !== null ? request.token !== options.token : options.token !== undefined) return error(EksErrorCode.UNAUTHORIZED);
        if (request.renew !== null && proofValid !== true) return error(EksErrorCode.RENEWAL_REFUSED);
        const keyId = request.renew?.keyId ?? nextId++;
        const key = new Uint8Array(randomBytes(16));
        fake.keys.set(keyId, key);
        exchange.answer = { kind: 'key', keyId, key, renewed: request.renew !== null };
        const response: EksKeyResponse = {
          algorithm: 1,
          keyId,
          key,
          expirySeconds: Math.floor(Date.now() / 1000) + lifetime,
          lifetimeSeconds: lifetime,
          ntpServer: options.ntpServer ?? null,
          ntpPort: options.ntpPort ?? null,
          warnings: [],
        };
        return encodeEksKeyResponse(response);
      };
      const answer = options.respond === undefined ? issue() : options.respond({ socket, exchange, issue });
      if (answer !== null) socket.end(answer);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  (fake as { port: number }).port = (server.address() as net.AddressInfo).port;
  return fake;
}
