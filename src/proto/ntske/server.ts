/**
 * NTS-KE server decisions (RFC 8915 §4), as values: given a decoded request, what to answer.
 *
 * The shell reads the request with the stream decoder, calls `negotiate()`, and on `accept` derives the keys
 * with the TLS exporter (`exporterContext`), seals the cookies and calls `respond(cookies)`. Every other
 * outcome already carries its complete response. One request, one response, then the connection closes.
 */

import { type NtsKeMessage } from './message.js';
import {
  type AeadAlgorithmId,
  type NtsKeRecord,
  AeadAlgorithms,
  ErrorCodes,
  NextProtocols,
  aeadAlgorithmRecord,
  errorRecord,
  newCookieRecord,
  nextProtocolRecord,
  portRecord,
  serverRecord,
} from './records.js';
import { encodeMessage } from './message.js';

/** RFC 8915 §5.1: the TLS exporter label for NTS keys. */
export const NTS_EXPORTER_LABEL = 'EXPORTER-network-time-security';
/** RFC 8915 §5.1: the default NTP port; a Port Negotiation record is only sent for another one. */
export const NTP_DEFAULT_PORT = 123;
const NTPV4 = NextProtocols.values.NTPV4;

export interface NtsKeServerSettings {
  /** AEAD ids we can use for NTPv4, e.g. [15, 17]. */
  readonly aeadAlgorithms: readonly number[];
  /** How many cookies to hand out (RFC 8915 §4.1.6 recommends 8). */
  readonly cookies: number;
  /** NTPv4 Server Negotiation record (§4.1.7); omitted when undefined or empty. */
  readonly ntpServer?: string | undefined;
  /** NTPv4 Port Negotiation record (§4.1.8); omitted when undefined or 123. */
  readonly ntpPort?: number | undefined;
}

export type NtsKeOutcome =
  | {
      /** The request broke the protocol: an Error record (§4.1.3) is the whole answer. */
      readonly kind: 'error';
      readonly errorCode: number;
      /** Stable reason for counters and logs, e.g. NTSKE_MISSING_AEAD. */
      readonly reason: string;
      readonly detail: string;
      readonly response: Uint8Array;
    }
  | {
      /** A valid request we share no protocol or no AEAD algorithm with: empty record, no cookies (§4.1.2, §4.1.5). */
      readonly kind: 'no-agreement';
      readonly reason: 'NTSKE_NO_COMMON_PROTOCOL' | 'NTSKE_NO_COMMON_AEAD';
      readonly response: Uint8Array;
    }
  | {
      readonly kind: 'accept';
      readonly protocol: number;
      readonly aead: number;
      readonly cookieCount: number;
      /** The complete response message with these cookies. */
      respond(cookies: readonly Uint8Array[]): Uint8Array;
    };

export function negotiate(request: NtsKeMessage, settings: NtsKeServerSettings): NtsKeOutcome {
  const violation = request.violations[0];
  if (violation !== undefined) {
    // An unrecognised critical record takes precedence: it has its own error code (§4.1.3).
    const critical = request.violations.find((v) => ErrorCodes.is(v.answer, 'UNRECOGNIZED_CRITICAL_RECORD')) ?? violation;
    const errorCode = ErrorCodes.encode(critical.answer);
    return { kind: 'error', errorCode, reason: critical.code, detail: critical.message, response: encodeMessage([errorRecord(critical.answer)]) };
  }
  const offered = request.nextProtocols ?? [];
  // §4.1.2: the server picks among the protocols the client listed; NTPv4 is the only one we serve.
  if (!offered.some((p) => NextProtocols.encode(p) === NTPV4)) {
    return { kind: 'no-agreement', reason: 'NTSKE_NO_COMMON_PROTOCOL', response: encodeMessage([nextProtocolRecord([])]) };
  }
  // §4.1.5: the client lists algorithms in its order of preference; we take its first one we support.
  const supported = new Set(settings.aeadAlgorithms);
  const chosen = (request.aeadAlgorithms ?? []).find((a) => supported.has(AeadAlgorithms.encode(a)));
  const protocolRecord = nextProtocolRecord([NextProtocols.decode(NTPV4)]);
  if (chosen === undefined) {
    return { kind: 'no-agreement', reason: 'NTSKE_NO_COMMON_AEAD', response: encodeMessage([protocolRecord, aeadAlgorithmRecord([])]) };
  }
  const aead = AeadAlgorithms.encode(chosen);
  const fixed: NtsKeRecord[] = [protocolRecord, aeadAlgorithmRecord([chosen satisfies AeadAlgorithmId])];
  if (settings.ntpServer !== undefined && settings.ntpServer !== '') fixed.push(serverRecord(settings.ntpServer));
  if (settings.ntpPort !== undefined && settings.ntpPort !== NTP_DEFAULT_PORT) fixed.push(portRecord(settings.ntpPort));
  return {
    kind: 'accept',
    protocol: NTPV4,
    aead,
    cookieCount: settings.cookies,
    respond(cookies) {
      return encodeMessage([...fixed, ...cookies.map((c) => newCookieRecord(c))]);
    },
  };
}

/** RFC 8915 §5.1: exporter context = protocol id (u16) ‖ AEAD id (u16) ‖ 0x00 for c2s, 0x01 for s2c. */
export function exporterContext(protocol: number, aead: number, direction: 'c2s' | 's2c'): Uint8Array {
  return Uint8Array.of(protocol >>> 8, protocol & 0xff, aead >>> 8, aead & 0xff, direction === 'c2s' ? 0 : 1);
}
