/**
 * The NTS-KE service (RFC 8915 §4) on TLS 1.3 listeners, ALPN "ntske/1".
 *
 * One request, one response, then the connection closes. TLS bytes feed the stream decoder; once End of
 * Message arrives the pure `negotiate()` decides, the TLS exporter (§5.1) gives the keys, cookies are sealed
 * under the current master key, and the whole response goes out in one write (some clients need it in a
 * single segment). A request that breaks the framing gets Error 1 (Bad Request) before the close.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { aeadById } from '../../crypto/aead.js';
import type { KeyRing } from '../../crypto/keyring.js';
import { RecordDecoder } from '../../proto/ntske/decoder.js';
import { MessageCollector, encodeMessage } from '../../proto/ntske/message.js';
import { errorRecord } from '../../proto/ntske/records.js';
import { NTS_EXPORTER_LABEL, exporterContext, negotiate, type NtsKeServerSettings } from '../../proto/ntske/server.js';
import { sealCookie } from '../../proto/nts/cookie.js';
import { Counters } from '../counters.js';
import type { ConnectionContext, Service, ServiceStats } from '../service.js';
import { OneMessageExchange } from './one-message.js';

export type NtsKeCounterName = 'requests' | 'accepted' | 'rejected' | 'no_agreement' | 'framing_errors' | 'incomplete' | 'internal_errors';

export interface NtsKeServiceOptions {
  readonly settings: NtsKeServerSettings;
  readonly keyRing: () => KeyRing;
  /** Called once per finished exchange, for metrics (duration in seconds). */
  readonly onExchange?: (outcome: string, aead: number | null, seconds: number) => void;
}

const BAD_REQUEST = encodeMessage([errorRecord({ known: 'BAD_REQUEST' })]);
const INTERNAL_ERROR = encodeMessage([errorRecord({ known: 'INTERNAL_SERVER_ERROR' })]);

export class NtsKeService implements Service {
  readonly name = 'nts-ke';
  readonly alpn = 'ntske/1';
  readonly transports = ['tls'] as const;
  readonly nativeTls = true;
  readonly counters = new Counters<NtsKeCounterName>();
  #settings: NtsKeServerSettings;
  #active = 0;

  constructor(private readonly options: NtsKeServiceOptions) {
    this.#settings = options.settings;
  }

  /** New negotiation settings (config reload); connections in progress finish with the old ones. */
  update(settings: NtsKeServerSettings): void {
    this.#settings = settings;
  }

  handleConnection(socket: net.Socket, context: ConnectionContext): void {
    const tlsSocket = context.tls?.socket;
    if (tlsSocket === undefined) {
      socket.destroy();
      return;
    }
    this.#active++;
    const started = process.hrtime.bigint();
    const decoder = new RecordDecoder({ maxMessageLength: Math.min(context.maxMessageSize, 16 * 1024) });
    const collector = new MessageCollector('request');
    const settings = this.#settings;
    let offset = 0;
    const finish = (outcome: NtsKeCounterName, label: string | undefined, response: Uint8Array | null, aead: number | null = null) => {
      if (!exchange.finish(response)) return;
      this.counters.inc(outcome, label);
      this.options.onExchange?.(label ?? outcome, aead, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const exchange = new OneMessageExchange(socket, decoder, {
      record: (record) => {
        collector.add(record, offset);
        offset += 4 + record.body.length;
      },
      framingError: (error) => {
        context.logger.debug({ code: error.code, detail: error.message }, 'NTS-KE request framing error');
        finish('framing_errors', error.code, BAD_REQUEST);
      },
      complete: () => {
        this.counters.inc('requests');
        this.#respond(collector, settings, tlsSocket, context, finish);
      },
      closed: (answered) => {
        this.#active--;
        if (!answered) {
          this.counters.inc('incomplete');
          this.options.onExchange?.('incomplete', null, Number(process.hrtime.bigint() - started) / 1e9);
        }
      },
    });
  }

  #respond(
    collector: MessageCollector,
    settings: NtsKeServerSettings,
    socket: tls.TLSSocket,
    context: ConnectionContext,
    finish: (outcome: NtsKeCounterName, label: string | undefined, response: Uint8Array | null, aead?: number | null) => void,
  ): void {
    const outcome = negotiate(collector.finish(), settings);
    if (outcome.kind === 'error') {
      context.logger.debug({ reason: outcome.reason, detail: outcome.detail }, 'NTS-KE request refused');
      finish('rejected', outcome.reason, outcome.response);
      return;
    }
    if (outcome.kind === 'no-agreement') {
      finish('no_agreement', outcome.reason, outcome.response);
      return;
    }
    try {
      const algorithm = aeadById(outcome.aead);
      if (algorithm === undefined) throw new Error(`negotiated AEAD ${outcome.aead} is not supported`);
      // RFC 8915 §5.1: both keys come from the TLS exporter, one context per direction.
      const c2s = socket.exportKeyingMaterial(algorithm.keyLength, NTS_EXPORTER_LABEL, Buffer.from(exporterContext(outcome.protocol, outcome.aead, 'c2s')));
      const s2c = socket.exportKeyingMaterial(algorithm.keyLength, NTS_EXPORTER_LABEL, Buffer.from(exporterContext(outcome.protocol, outcome.aead, 's2c')));
      const ring = this.options.keyRing();
      const nonces = randomBytes(16 * outcome.cookieCount);
      const cookies = Array.from({ length: outcome.cookieCount }, (_, i) =>
        sealCookie(ring, { aead: outcome.aead, c2s, s2c }, nonces.subarray(16 * i, 16 * (i + 1))),
      );
      finish('accepted', algorithm.name, outcome.respond(cookies), outcome.aead);
    } catch (error) {
      context.logger.error({ err: error }, 'NTS-KE internal error');
      finish('internal_errors', undefined, INTERNAL_ERROR);
    }
  }

  stats(): ServiceStats {
    return { active: this.#active, counters: this.counters.snapshot() };
  }

  async stop(): Promise<void> {}
}
