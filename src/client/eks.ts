/**
 * Ephemeral key service client (docs/eks.md): TLS 1.3 with ALPN "ntp-eks/1", one request, one response, then
 * the server closes (§1), exactly as an NTS-KE exchange (./ntske.ts).
 *
 * - The request (MAC Algorithm: AES-128-CMAC, Token?, Renew?) is written once the handshake is done: a Renew
 *   record's proof needs the TLS exporter of this very connection (§5):
 *       exported = TLS-Exporter("EXPORTER-ntptsd-eks-renew", u32 key id, 16)
 *       proof    = AES-128-CMAC(held key, exported)
 * - The response is read with the shared stream decoder (EKS limits) and judged by the pure codec
 *   (`parseEksResponse`); an Error record becomes a ClientError `EKS_ERROR_<code>` whose message says why the
 *   server refuses, in words a person can act on.
 * - The lifetime (relative) is what a client should schedule from, with its own monotonic clock; the expiry
 *   (absolute, `expiresAt`) is for logs and files (§2).
 */
import type { TLSSocket } from 'node:tls';
import { renewalProof } from '../crypto/ephemeral-keys.js';
import { DecodeError, UsageError } from '../proto/errors.js';
import { createEksDecoder, encodeEksRequest, parseEksResponse, type EksRequest } from '../proto/eks/message.js';
import {
  EKS_ALPN,
  EKS_NTP_DEFAULT_PORT,
  EKS_RENEW_EXPORTER_LABEL,
  EKS_RENEW_EXPORTER_LENGTH,
  EksErrorCode,
  EksMacAlgorithm,
  eksErrorName,
  renewExporterContext,
} from '../proto/eks/records.js';
import type { RawRecord } from '../proto/ntske/framing.js';
import { NEED_DATA } from '../proto/ntske/decoder.js';
import { ClientError, type ClientErrorCode } from './errors.js';
import { connectTls, endpoint, isCertificateError, tlsErrorText } from './tls.js';

/** docs/eks.md §1: served next to NTS-KE. */
export const EKS_DEFAULT_PORT = 4460;
export const EKS_DEFAULT_TIMEOUT_MS = 5_000;

export interface EphemeralKeyOptions {
  /** Default 4460. */
  readonly port?: number;
  /** PEM of the CAs to trust instead of the system store. */
  readonly ca?: string | Buffer | undefined;
  /** TLS server name (SNI and certificate check); default: the host when it is a name, else none. */
  readonly servername?: string | undefined;
  /** Sent in a Token record (docs/eks.md §6): 1..256 octets of UTF-8. */
  readonly token?: string | undefined;
  /** Whole exchange, handshake included. Default 5 s. */
  readonly timeoutMs?: number;
  /** Renew this key (docs/eks.md §5) instead of asking for a new one: the id stays the same. */
  readonly renew?: { readonly keyId: number; readonly key: Uint8Array } | undefined;
  /** Ends the exchange early: rejects with `EKS_ABORTED`. */
  readonly signal?: AbortSignal | undefined;
}

export interface EphemeralKeyResult {
  readonly keyId: number;
  /** The only algorithm EKS issues (docs/eks.md §2, id 1). */
  readonly algorithm: 'AES128CMAC';
  /** 16 octets. */
  readonly key: Uint8Array;
  /** Absolute expiry from the Expiry record, for logs and files; schedule from `lifetimeSeconds` instead. */
  readonly expiresAt: Date;
  readonly expirySeconds: number;
  /** Seconds from the response to the expiry (Lifetime record). */
  readonly lifetimeSeconds: number;
  /** Where to send NTP: the NTP Server and NTP Port records when present, else the EKS host and 123. */
  readonly ntpHost: string;
  readonly ntpPort: number;
  readonly serverRecord: string | undefined;
  readonly portRecord: number | undefined;
  /** The EKS server we talked to. */
  readonly eksHost: string;
  readonly eksPort: number;
  readonly tlsVersion: string;
  readonly alpn: string;
  readonly warnings: readonly number[];
  readonly durationMs: number;
  /** True when a renewal was asked for and the server issued the same key id again (docs/eks.md §5). */
  readonly renewed: boolean;
}

/** What an Error record means for the client, after its docs/eks.md §2 name. */
const ERROR_HINTS: Readonly<Record<number, string>> = {
  [EksErrorCode.UNRECOGNIZED_CRITICAL_RECORD]: 'it does not understand a critical record of our request',
  [EksErrorCode.BAD_REQUEST]: 'it could not read our request',
  [EksErrorCode.INTERNAL_ERROR]: 'it cannot issue keys right now',
  [EksErrorCode.UNAUTHORIZED]: 'token required or not accepted',
  [EksErrorCode.TRY_LATER]: 'too many keys issued to this address, or no key id free; try again later',
  [EksErrorCode.NO_COMMON_ALGORITHM]: 'it issues no AES-128-CMAC keys',
  [EksErrorCode.RENEWAL_REFUSED]: 'the key held is unknown, revoked or rotated out; ask for a new key',
};

/** The ClientError code of an Error record: `EKS_ERROR_<code>` for the codes docs/eks.md assigns. */
export function eksErrorClientCode(errorCode: number): ClientErrorCode {
  return Number.isInteger(errorCode) && errorCode >= 0 && errorCode <= EksErrorCode.RENEWAL_REFUSED
    ? (`EKS_ERROR_${errorCode}` as ClientErrorCode)
    : 'EKS_ERROR_RECORD';
}

/** `Unauthorized (token required or not accepted)`: the §2 name and what it means for the client. */
export function describeEksError(errorCode: number): string {
  const hint = ERROR_HINTS[errorCode];
  return hint === undefined ? `${eksErrorName(errorCode)}` : `${eksErrorName(errorCode)} (${hint})`;
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
/** OpenSSL's codes for "no TLS version in common" (we offer 1.3 only), seen from either side. */
const VERSION_ERRORS = new Set(['ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_WRONG_SSL_VERSION', 'ERR_SSL_NO_PROTOCOLS_AVAILABLE']);
/** The server refused every ALPN id we offered (RFC 7301 §3.2 alert). */
const ALPN_ERRORS = new Set(['ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL']);
/** The peer went away mid-exchange. */
const CLOSED_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

/** Builds the request, throwing UsageError for values the wire cannot carry (a bad token, key id or key). */
function request(token: string | undefined, renew: EksRequest['renew']): Uint8Array {
  return encodeEksRequest({ algorithms: [EksMacAlgorithm.AES128CMAC], token: token ?? null, renew });
}

/**
 * Fetches an AES-128-CMAC key from the EKS server at `host`, or renews `options.renew` (same key id). Rejects
 * with a ClientError (stable `code`, one-line message) for everything the network or the server does, and with
 * a UsageError for arguments the protocol cannot carry.
 */
export function fetchEphemeralKey(host: string, options: EphemeralKeyOptions = {}): Promise<EphemeralKeyResult> {
  const port = options.port ?? EKS_DEFAULT_PORT;
  const timeoutMs = options.timeoutMs ?? EKS_DEFAULT_TIMEOUT_MS;
  const renew = options.renew;
  const where = endpoint(host, port);
  try {
    // Checked before connecting: a token or key the wire cannot carry is the caller's mistake.
    request(options.token, renew === undefined ? null : { keyId: renew.keyId, proof: new Uint8Array(16) });
    if (renew !== undefined) renewalProof(renew.key, new Uint8Array(EKS_RENEW_EXPORTER_LENGTH));
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new UsageError('EKS_BAD_OPTION', String(error)));
  }
  if (options.signal?.aborted === true) return Promise.reject(new ClientError('EKS_ABORTED', `EKS with ${where} aborted`));
  const started = process.hrtime.bigint();

  return new Promise<EphemeralKeyResult>((resolve, reject) => {
    let settled = false;
    const decoder = createEksDecoder();
    const records: RawRecord[] = [];
    const socket: TLSSocket = connectTls(host, port, { alpn: EKS_ALPN, ca: options.ca, servername: options.servername });

    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: ClientError) => {
      if (settled) return;
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => fail(new ClientError('EKS_ABORTED', `EKS with ${where} aborted`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => fail(new ClientError('EKS_TIMEOUT', `EKS with ${where} timed out after ${timeoutMs} ms`)), timeoutMs);

    socket.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? '';
      const tlsError = { tlsError: code };
      if (isCertificateError(code)) fail(new ClientError('EKS_CERTIFICATE', `certificate of ${where} not trusted: ${tlsErrorText(error)}`, tlsError));
      else if (CONNECT_ERRORS.has(code)) fail(new ClientError('EKS_CONNECT', `cannot connect to ${where}: ${code}`));
      else if (VERSION_ERRORS.has(code)) fail(new ClientError('EKS_TLS_VERSION', `${where} does not speak TLS 1.3: ${tlsErrorText(error)}`, tlsError));
      else if (ALPN_ERRORS.has(code)) fail(new ClientError('EKS_ALPN', `${where} did not agree to ALPN ${EKS_ALPN} (no EKS service there?)`, tlsError));
      else if (CLOSED_ERRORS.has(code)) fail(new ClientError('EKS_CLOSED', `${where} closed the connection before a complete response (${code})`));
      else fail(new ClientError('EKS_TLS', `TLS with ${where} failed: ${tlsErrorText(error)}`, tlsError));
    });

    socket.once('secureConnect', () => {
      if (settled) return;
      const version = socket.getProtocol();
      if (version !== 'TLSv1.3') {
        fail(new ClientError('EKS_TLS_VERSION', `${where} negotiated ${version ?? 'no TLS version'}, not TLS 1.3`));
        return;
      }
      if (socket.alpnProtocol !== EKS_ALPN) {
        const got = socket.alpnProtocol === false || socket.alpnProtocol === null ? 'none' : socket.alpnProtocol;
        fail(new ClientError('EKS_ALPN', `${where} did not agree to ALPN ${EKS_ALPN} (got ${got})`));
        return;
      }
      let renewRecord: EksRequest['renew'] = null;
      if (renew !== undefined) {
        const exported = socket.exportKeyingMaterial(EKS_RENEW_EXPORTER_LENGTH, EKS_RENEW_EXPORTER_LABEL, Buffer.from(renewExporterContext(renew.keyId)));
        renewRecord = { keyId: renew.keyId, proof: renewalProof(renew.key, new Uint8Array(exported)) };
      }
      socket.write(request(options.token, renewRecord));
    });

    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      decoder.push(chunk);
      for (;;) {
        const next = decoder.next();
        if (next === NEED_DATA) return;
        if (next instanceof DecodeError) {
          malformed(next);
          return;
        }
        records.push(next);
        if (decoder.messageComplete) {
          // Bytes after End of Message in the same read are a broken response too (§1).
          const after = decoder.next();
          if (after instanceof DecodeError) malformed(after);
          else finish();
          return;
        }
      }
    });
    socket.once('end', () => {
      if (settled) return;
      const truncated = decoder.end();
      fail(
        new ClientError('EKS_CLOSED', `${where} closed the connection before a complete response`, truncated === undefined ? {} : { decodeError: truncated.code }),
      );
    });
    socket.once('close', () => {
      if (!settled) fail(new ClientError('EKS_CLOSED', `${where} closed the connection before a complete response`));
    });

    const malformed = (error: DecodeError) => {
      fail(new ClientError('EKS_BAD_RESPONSE', `malformed EKS response from ${where}: ${error.message} (${error.code})`, { decodeError: error.code }));
    };

    const finish = () => {
      const parsed = parseEksResponse(records);
      if (!parsed.ok) {
        malformed(parsed.error);
        return;
      }
      const response = parsed.value;
      if (response.kind === 'error') {
        const errorCode = response.errorCode;
        fail(new ClientError(eksErrorClientCode(errorCode), `${where}: server refused: ${describeEksError(errorCode)}`, { errorCode }));
        return;
      }
      if (response.algorithm !== EksMacAlgorithm.AES128CMAC) {
        malformed(new DecodeError('EKS_ALGORITHM_NOT_OFFERED', `MAC algorithm ${response.algorithm}, which we did not offer`));
        return;
      }
      const expiresAt = new Date(response.expirySeconds * 1000);
      if (!Number.isFinite(expiresAt.getTime())) {
        malformed(new DecodeError('EKS_EXPIRY_RANGE', `expiry ${response.expirySeconds} is beyond any representable date`));
        return;
      }
      cleanup();
      const result: EphemeralKeyResult = {
        keyId: response.keyId,
        algorithm: 'AES128CMAC',
        key: Uint8Array.from(response.key),
        expiresAt,
        expirySeconds: response.expirySeconds,
        lifetimeSeconds: response.lifetimeSeconds,
        ntpHost: response.ntpServer ?? host,
        ntpPort: response.ntpPort ?? EKS_NTP_DEFAULT_PORT,
        serverRecord: response.ntpServer ?? undefined,
        portRecord: response.ntpPort ?? undefined,
        eksHost: host,
        eksPort: port,
        tlsVersion: socket.getProtocol() ?? 'unknown',
        alpn: EKS_ALPN,
        warnings: [...response.warnings],
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
        renewed: renew !== undefined && response.keyId === renew.keyId,
      };
      socket.end();
      resolve(result);
    };
  });
}
