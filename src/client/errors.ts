/** Errors of the NTP/NTS clients: one class, a stable `code` to match on, a one-line message for people. */
export type ClientErrorCode =
  | 'KE_CONNECT' // TCP connection refused or unreachable
  | 'KE_TLS' // TLS handshake failed (not a certificate problem)
  | 'KE_CERTIFICATE' // the server certificate did not verify
  | 'KE_ALPN' // the server did not agree to ntske/1
  | 'KE_TIMEOUT'
  | 'KE_ERROR_RECORD' // the server answered with an NTS-KE Error record
  | 'KE_BAD_RESPONSE' // the response broke RFC 8915 §4
  | 'KE_NO_PROTOCOL' // the server supports none of our next protocols
  | 'KE_NO_AEAD' // no AEAD algorithm in common
  | 'KE_NO_COOKIES'
  | 'NTP_TIMEOUT' // no valid answer in time
  | 'NTP_KISS' // a kiss-o'-death (RATE, DENY, RSTR, NTSN, ...)
  | 'NTP_UNSYNCHRONIZED' // the server says it is not synchronised
  | 'NTP_SOCKET' // local socket error or name resolution failure
  | 'NTS_NO_COOKIES'; // every cookie used up and no NTS-KE possible

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** Extra facts for machine output, e.g. the kiss code or the error record's code. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}
