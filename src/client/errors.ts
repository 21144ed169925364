/** Errors of the NTP/NTS/EKS clients: one class, a stable `code` to match on, a one-line message for people. */
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
  | 'NTS_NO_COOKIES' // every cookie used up and no NTS-KE possible
  // The ephemeral key service client (docs/eks.md, src/client/eks.ts):
  | 'EKS_CONNECT' // TCP connection refused or unreachable
  | 'EKS_TLS' // TLS handshake failed (not a certificate or version problem)
  | 'EKS_TLS_VERSION' // the server does not speak TLS 1.3
  | 'EKS_CERTIFICATE' // the server certificate did not verify
  | 'EKS_ALPN' // the server did not agree to ntp-eks/1
  | 'EKS_TIMEOUT'
  | 'EKS_CLOSED' // the server closed the connection before a complete response
  | 'EKS_BAD_RESPONSE' // the response broke docs/eks.md §2 (details.decodeError: the codec's code)
  | 'EKS_ABORTED' // the caller's AbortSignal fired
  // An Error record (docs/eks.md §2), by its code; details.errorCode holds the number.
  | 'EKS_ERROR_0' // Unrecognized Critical Record
  | 'EKS_ERROR_1' // Bad Request
  | 'EKS_ERROR_2' // Internal Error
  | 'EKS_ERROR_3' // Unauthorized: token required or not accepted
  | 'EKS_ERROR_4' // Try Later
  | 'EKS_ERROR_5' // No Common Algorithm
  | 'EKS_ERROR_6' // Renewal Refused
  | 'EKS_ERROR_RECORD'; // an Error record with a code docs/eks.md does not assign

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
