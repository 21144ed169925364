/**
 * A minimal NTS-KE client for the load generator (RFC 8915 §4): one TLS 1.3 connection (ALPN ntske/1, the
 * server certificate verified against the bench CA), one request offering NTPv4 and AEAD_AES_SIV_CMAC_256,
 * the response read up to End of Message and checked (then we close, as real clients do), and the C2S/S2C keys
 * exported (§5.1).
 */
import tls from 'node:tls';
import { AEAD_AES_SIV_CMAC_256, aeadById } from '../../src/crypto/aead.js';
import { DecodeError } from '../../src/proto/errors.js';
import { NEED_DATA, RecordDecoder } from '../../src/proto/ntske/decoder.js';
import { RECORD_HEADER_LENGTH } from '../../src/proto/ntske/framing.js';
import { MessageCollector, encodeMessage, type NtsKeMessage } from '../../src/proto/ntske/message.js';
import { AeadAlgorithms, NextProtocols, aeadAlgorithmRecord, nextProtocolRecord } from '../../src/proto/ntske/records.js';
import { NTS_EXPORTER_LABEL, exporterContext } from '../../src/proto/ntske/server.js';

export interface NtsKeTarget {
  readonly host: string;
  readonly port: number;
  readonly caPem: string;
  readonly servername: string;
  readonly timeoutMs: number;
}

export interface NtsKeSession {
  readonly aead: number;
  readonly c2s: Uint8Array;
  readonly s2c: Uint8Array;
  readonly cookies: Uint8Array[];
  /** From the Server Negotiation record, else the NTS-KE host (§4.1.7). */
  readonly ntpHost: string;
  /** From the Port Negotiation record, else 123 (§4.1.8). */
  readonly ntpPort: number;
}

/** An exchange that failed; `code` is what the generator counts (a TLS/socket error code or ours). */
export class NtsKeFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const NTPV4 = NextProtocols.values.NTPV4;
const REQUEST = encodeMessage([
  nextProtocolRecord([NextProtocols.decode(NTPV4)]),
  aeadAlgorithmRecord([AeadAlgorithms.decode(AEAD_AES_SIV_CMAC_256)]),
]);
const KEY_LENGTH = (aeadById(AEAD_AES_SIV_CMAC_256) as NonNullable<ReturnType<typeof aeadById>>).keyLength;
const C2S_CONTEXT = Buffer.from(exporterContext(NTPV4, AEAD_AES_SIV_CMAC_256, 'c2s'));
const S2C_CONTEXT = Buffer.from(exporterContext(NTPV4, AEAD_AES_SIV_CMAC_256, 's2c'));

export function ntsKeExchange(target: NtsKeTarget): Promise<NtsKeSession> {
  return new Promise((resolve, reject) => {
    const decoder = new RecordDecoder();
    const collector = new MessageCollector('response');
    let offset = 0;
    let keys: { c2s: Uint8Array; s2c: Uint8Array } | undefined;
    let settled = false;
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      servername: target.servername,
      ca: target.caPem,
      ALPNProtocols: ['ntske/1'],
      minVersion: 'TLSv1.3',
    });
    const settle = (error: NtsKeFailure | null, session?: NtsKeSession) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error !== null) {
        socket.destroy();
        reject(error);
      } else {
        socket.end();
        resolve(session as NtsKeSession);
      }
    };
    const timer = setTimeout(() => settle(new NtsKeFailure('timeout', `no complete NTS-KE response within ${target.timeoutMs} ms`)), target.timeoutMs);
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'ntske/1') {
        settle(new NtsKeFailure('alpn', `server chose ALPN ${String(socket.alpnProtocol)}`));
        return;
      }
      keys = {
        c2s: socket.exportKeyingMaterial(KEY_LENGTH, NTS_EXPORTER_LABEL, C2S_CONTEXT),
        s2c: socket.exportKeyingMaterial(KEY_LENGTH, NTS_EXPORTER_LABEL, S2C_CONTEXT),
      };
      socket.write(REQUEST);
    });
    const check = (message: NtsKeMessage) => {
      const aead = message.aeadAlgorithms?.length === 1 ? message.aeadAlgorithms[0] : undefined;
      const problem =
        message.violations[0]?.code ??
        (message.errors.length > 0 ? 'NTSKE_ERROR_RECORD' : undefined) ??
        (!message.nextProtocols?.some((p) => NextProtocols.encode(p) === NTPV4) ? 'NTSKE_NO_NTPV4' : undefined) ??
        (aead === undefined || AeadAlgorithms.encode(aead) !== AEAD_AES_SIV_CMAC_256 ? 'NTSKE_WRONG_AEAD' : undefined) ??
        (message.cookies.length === 0 ? 'NTSKE_NO_COOKIES' : undefined);
      if (problem !== undefined || keys === undefined) {
        settle(new NtsKeFailure(problem ?? 'NTSKE_EARLY_DATA', `bad NTS-KE response: ${problem ?? 'data before the handshake finished'}`));
        return;
      }
      settle(null, {
        aead: AEAD_AES_SIV_CMAC_256,
        c2s: keys.c2s,
        s2c: keys.s2c,
        cookies: message.cookies.map((c) => Uint8Array.from(c)),
        ntpHost: message.server ?? target.host,
        ntpPort: message.port ?? 123,
      });
    };
    // Like a real client, the response is done at End of Message: we close then, without waiting for the server.
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (;;) {
        const next = decoder.next();
        if (next === NEED_DATA) return;
        if (next instanceof DecodeError) {
          settle(new NtsKeFailure(next.code, next.message));
          return;
        }
        collector.add(next, offset);
        offset += RECORD_HEADER_LENGTH + next.body.length;
        if (decoder.messageComplete) {
          check(collector.finish());
          return;
        }
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => settle(new NtsKeFailure(error.code ?? 'error', error.message)));
    socket.once('close', () => settle(new NtsKeFailure('closed', 'connection closed without a complete response')));
  });
}
