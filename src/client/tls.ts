/** What the TLS clients (NTS-KE and management) share: connecting, and reading TLS failures. */
import { isIP } from 'node:net';
import tls from 'node:tls';

/** OpenSSL/Node codes meaning "the server's certificate did not verify" (as opposed to a TLS or network failure). */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

export function isCertificateError(code: string): boolean {
  return CERTIFICATE_ERRORS.has(code);
}

/**
 * One line for people: OpenSSL errors carry a multi-line message (the error queue) but a short `reason`
 * (e.g. "wrong version number").
 */
export function tlsErrorText(error: Error & { reason?: unknown }): string {
  const text = typeof error.reason === 'string' && error.reason !== '' ? error.reason : error.message;
  return text.replace(/\s+/g, ' ').trim();
}

/** `host:port`, with brackets around an IPv6 literal. */
export function endpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface TlsClientOptions {
  readonly alpn: string;
  /** PEM of the CAs to trust instead of the system store. */
  readonly ca?: string | Buffer | undefined;
  /** Client certificate and key (PEM). */
  readonly cert?: string | Buffer | undefined;
  readonly key?: string | Buffer | undefined;
  /** SNI and the name the certificate must carry; default: the host when it is a name, else none. */
  readonly servername?: string | undefined;
}

/**
 * A TLS 1.3 connection offering one ALPN id. Node checks the certificate against the servername, or against
 * the IP SANs for an IP literal (no SNI is sent for those).
 */
export function connectTls(host: string, port: number, options: TlsClientOptions): tls.TLSSocket {
  const servername = options.servername ?? (isIP(host) === 0 ? host : undefined);
  return tls.connect({
    host,
    port,
    ...(servername === undefined ? {} : { servername }),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    ...(options.cert === undefined ? {} : { cert: options.cert, key: options.key }),
    ALPNProtocols: [options.alpn],
    minVersion: 'TLSv1.3',
  });
}
