/**
 * NTS-KE client (RFC 8915 §4): TLS 1.3 with ALPN "ntske/1", one request, one response.
 *
 * The keys are exported from TLS right after the handshake, for every AEAD we offer, because the server closes
 * the connection after its response and the exporter needs a live session (RFC 8915 §5.1). The response is
 * read with the same stream decoder and message view as the server uses, then checked against the request:
 * the AEAD must be one we offered, NTPv4 must be agreed, and there must be cookies.
 */
import { aeadById, type AeadAlgorithm } from '../crypto/aead.js';
import { DecodeError } from '../proto/errors.js';
import { RecordDecoder, NEED_DATA } from '../proto/ntske/decoder.js';
import { MessageCollector, ViolationCodes, encodeMessage } from '../proto/ntske/message.js';
import { AeadAlgorithms, ErrorCodes, NextProtocols, aeadAlgorithmRecord, nextProtocolRecord } from '../proto/ntske/records.js';
import { NTS_EXPORTER_LABEL, exporterContext } from '../proto/ntske/server.js';
import { ClientError } from './errors.js';
import { connectTls, endpoint, isCertificateError, tlsErrorText } from './tls.js';

export const NTSKE_DEFAULT_PORT = 4460;
export const NTP_DEFAULT_PORT = 123;
const NTPV4 = 0;
/** AES-SIV-CMAC-512 then -256 (RFC 8915 §5.1 makes 15 mandatory for servers). */
export const DEFAULT_CLIENT_AEADS: readonly number[] = [17, 15];

export interface NtsKeOptions {
  readonly port?: number;
  /** PEM of the CAs to trust instead of the system store. */
  readonly ca?: string | Buffer | undefined;
  /** TLS server name (SNI and certificate check); default: the host when it is a name, else none. */
  readonly servername?: string | undefined;
  /** Whole exchange, handshake included. Default 5 s. */
  readonly timeoutMs?: number;
  /** AEAD ids to offer, in our order of preference. */
  readonly aeadAlgorithms?: readonly number[];
}

export interface NtsKeResult {
  /** The NTS-KE server we talked to. */
  readonly keHost: string;
  readonly kePort: number;
  readonly tlsVersion: string;
  readonly alpn: string;
  readonly aead: AeadAlgorithm;
  readonly c2s: Uint8Array;
  readonly s2c: Uint8Array;
  readonly cookies: Uint8Array[];
  /** Where to send NTP: the Server and Port records when present, else the NTS-KE host and 123 (§4.1.7, §4.1.8). */
  readonly ntpHost: string;
  readonly ntpPort: number;
  readonly serverRecord: string | undefined;
  readonly portRecord: number | undefined;
  readonly warnings: readonly number[];
  readonly durationMs: number;
}

export function ntsKeyExchange(host: string, options: NtsKeOptions = {}): Promise<NtsKeResult> {
  const port = options.port ?? NTSKE_DEFAULT_PORT;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const offered = options.aeadAlgorithms ?? DEFAULT_CLIENT_AEADS;
  const started = process.hrtime.bigint();
  const where = endpoint(host, port);

  return new Promise<NtsKeResult>((resolve, reject) => {
    let settled = false;
    const keys = new Map<number, { c2s: Uint8Array; s2c: Uint8Array }>();
    const decoder = new RecordDecoder({ maxMessageLength: 64 * 1024, maxRecords: 256, maxBodyLength: 4096 });
    const collector = new MessageCollector('response');
    const socket = connectTls(host, port, { alpn: 'ntske/1', ca: options.ca, servername: options.servername });

    const fail = (error: ClientError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new ClientError('KE_TIMEOUT', `NTS-KE with ${where} timed out after ${timeoutMs} ms`)), timeoutMs);

    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? '';
      if (isCertificateError(code)) fail(new ClientError('KE_CERTIFICATE', `certificate of ${where} not trusted: ${tlsErrorText(error)}`, { tlsError: code }));
      else if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
        fail(new ClientError('KE_CONNECT', `cannot connect to ${where}: ${code}`));
      } else fail(new ClientError('KE_TLS', `TLS with ${where} failed: ${tlsErrorText(error)}`, { tlsError: code }));
    });

    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'ntske/1') {
        fail(new ClientError('KE_ALPN', `${where} did not agree to ALPN ntske/1 (got ${socket.alpnProtocol === false ? 'none' : socket.alpnProtocol})`));
        return;
      }
      for (const id of offered) {
        const algorithm = aeadById(id);
        if (algorithm === undefined) continue;
        keys.set(id, {
          c2s: socket.exportKeyingMaterial(algorithm.keyLength, NTS_EXPORTER_LABEL, Buffer.from(exporterContext(NTPV4, id, 'c2s'))),
          s2c: socket.exportKeyingMaterial(algorithm.keyLength, NTS_EXPORTER_LABEL, Buffer.from(exporterContext(NTPV4, id, 's2c'))),
        });
      }
      socket.write(
        encodeMessage([nextProtocolRecord([NextProtocols.decode(NTPV4)]), aeadAlgorithmRecord(offered.map((id) => AeadAlgorithms.decode(id)))]),
      );
    });

    let offset = 0;
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (;;) {
        const next = decoder.next();
        if (next === NEED_DATA) return;
        if (next instanceof DecodeError) {
          fail(new ClientError('KE_BAD_RESPONSE', `malformed NTS-KE response from ${where}: ${next.message}`, { decodeError: next.code }));
          return;
        }
        collector.add(next, offset);
        offset += 4 + next.body.length;
        if (decoder.messageComplete) {
          finish();
          return;
        }
      }
    });
    socket.once('end', () => {
      if (!settled) fail(new ClientError('KE_BAD_RESPONSE', `${where} closed the connection before End of Message`));
    });

    const finish = () => {
      const message = collector.finish();
      if (message.errors.length > 0) {
        const code = message.errors[0] as Parameters<typeof ErrorCodes.encode>[0];
        fail(new ClientError('KE_ERROR_RECORD', `${where} answered with NTS-KE error ${ErrorCodes.encode(code)} (${ErrorCodes.label(code)})`, { errorCode: ErrorCodes.encode(code) }));
        return;
      }
      const protocols = message.nextProtocols ?? [];
      if (message.nextProtocols !== undefined && protocols.length === 0) {
        fail(new ClientError('KE_NO_PROTOCOL', `${where} supports none of the offered protocols (NTPv4)`));
        return;
      }
      if (message.aeadAlgorithms !== undefined && message.aeadAlgorithms.length === 0) {
        fail(new ClientError('KE_NO_AEAD', `${where} supports none of the offered AEAD algorithms (${offered.join(', ')})`));
        return;
      }
      // Fix: the collector also lists "no cookie" as a violation, which made KE_NO_COOKIES below unreachable
      // (zero cookies came out as KE_BAD_RESPONSE); leave that case to its own code.
      const violation = message.violations.find((v) => v.code !== ViolationCodes.MISSING_COOKIE);
      if (violation !== undefined) {
        fail(new ClientError('KE_BAD_RESPONSE', `invalid NTS-KE response from ${where}: ${violation.message}`, { violation: violation.code }));
        return;
      }
      if (protocols.length !== 1 || NextProtocols.encode(protocols[0] as (typeof protocols)[number]) !== NTPV4) {
        fail(new ClientError('KE_BAD_RESPONSE', `${where} chose a protocol we did not offer`));
        return;
      }
      const aeadId = AeadAlgorithms.encode((message.aeadAlgorithms ?? [])[0] as NonNullable<typeof message.aeadAlgorithms>[number]);
      const exported = keys.get(aeadId);
      const algorithm = aeadById(aeadId);
      if (exported === undefined || algorithm === undefined) {
        fail(new ClientError('KE_BAD_RESPONSE', `${where} chose AEAD ${aeadId}, which we did not offer`, { aead: aeadId }));
        return;
      }
      if (message.cookies.length === 0) {
        fail(new ClientError('KE_NO_COOKIES', `${where} sent no cookies`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      const result: NtsKeResult = {
        keHost: host,
        kePort: port,
        tlsVersion: socket.getProtocol() ?? 'unknown',
        alpn: 'ntske/1',
        aead: algorithm,
        c2s: exported.c2s,
        s2c: exported.s2c,
        cookies: message.cookies.map((c) => Uint8Array.from(c)),
        ntpHost: message.server ?? host,
        ntpPort: message.port ?? NTP_DEFAULT_PORT,
        serverRecord: message.server,
        portRecord: message.port,
        warnings: message.warnings.map((w) => ('known' in w ? Number.NaN : w.unknown)),
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
      };
      socket.end();
      resolve(result);
    };
  });
}
