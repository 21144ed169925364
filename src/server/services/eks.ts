/**
 * The ephemeral key service (docs/eks.md) on TLS 1.3 listeners, ALPN "ntp-eks/1".
 *
 * One request, one response, then the connection closes, as NTS-KE. The request is read with the NTS-KE stream
 * decoder and checked by the pure codec; then, in this order: the token (docs/eks.md §6), the algorithm, the
 * per-address issuance budget, and either the renewal proof (§5, bound to this TLS connection by the exporter,
 * for an id this node issued) or a fresh key id from the issuance table. The key is derived from the current key
 * ring generation; nothing secret is stored. The issuance is in the journal, on disk, before the key goes out, so
 * a crash cannot hand one id to two clients.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import ipaddr from 'ipaddr.js';
import type { EksConfig } from '../../config/types.js';
import type { EphemeralKeys } from '../../crypto/ephemeral-keys.js';
import { RequestBucket } from '../../proto/mgmt/admission.js';
import { RecordDecoder } from '../../proto/ntske/decoder.js';
import type { RawRecord } from '../../proto/ntske/framing.js';
import {
  EKS_ALPN,
  EKS_MAX_BODY_LENGTH,
  EKS_MAX_MESSAGE_LENGTH,
  EKS_MAX_RECORDS,
  EKS_RENEW_EXPORTER_LABEL,
  EksErrorCode,
  EksMacAlgorithm,
  EksRecordType,
  renewExporterContext,
} from '../../proto/eks/records.js';
import { encodeEksError, encodeEksKeyResponse, parseEksRequest, type EksRequest } from '../../proto/eks/message.js';
import { Counters } from '../counters.js';
import type { EksStore } from '../eks-store.js';
import type { ConnectionContext, Service, ServiceStats } from '../service.js';
import { OneMessageExchange } from './one-message.js';
import { matchToken } from '../mgmt/auth.js';

export type EksCounterName = 'requests' | 'issued' | 'refused' | 'framing_errors' | 'incomplete' | 'internal_errors';

/** Why a request got no key; the label of the `refused` counter. */
export type EksRefusal = 'bad_request' | 'unknown_critical' | 'unauthorized' | 'rate_limited' | 'no_common_algorithm' | 'renewal_refused' | 'ids_exhausted';

export interface EksServiceOptions {
  readonly config: () => EksConfig;
  readonly keys: EphemeralKeys;
  readonly store: EksStore;
  /** Unix microseconds (the key ring's time base). */
  readonly nowMicros: () => number;
  /** docs/eks.md §5: how long after expiry the holder may still renew. */
  readonly renewWindowMicros: number;
  /** Called once per finished exchange, for metrics: `issued-new`, `issued-renewal`, a refusal, ... */
  readonly onExchange?: (outcome: string, seconds: number) => void;
}

/** Clients whose issuance budget is remembered; the least recently seen is forgotten first. */
const MAX_TRACKED_ADDRESSES = 65_536;

const REFUSAL_ERROR: Readonly<Record<EksRefusal, number>> = {
  bad_request: EksErrorCode.BAD_REQUEST,
  unknown_critical: EksErrorCode.UNRECOGNIZED_CRITICAL_RECORD,
  unauthorized: EksErrorCode.UNAUTHORIZED,
  rate_limited: EksErrorCode.TRY_LATER,
  no_common_algorithm: EksErrorCode.NO_COMMON_ALGORITHM,
  renewal_refused: EksErrorCode.RENEWAL_REFUSED,
  ids_exhausted: EksErrorCode.TRY_LATER,
};

/**
 * Whose issuance budget a request spends: the IPv4 address, or the IPv6 /64 (one subscriber's prefix: one address
 * each would let a single host take the whole id range).
 */
export function budgetKey(address: string): string {
  if (!ipaddr.IPv6.isValid(address)) return address;
  const parsed = ipaddr.IPv6.parse(address);
  if (parsed.isIPv4MappedAddress()) return parsed.toIPv4Address().toString();
  return `${parsed.parts.slice(0, 4).map((p) => p.toString(16)).join(':')}::/64`;
}

export class EksService implements Service {
  readonly name = 'eks';
  readonly alpn = EKS_ALPN;
  readonly transports = ['tls'] as const;
  readonly nativeTls = true;
  readonly counters = new Counters<EksCounterName>();
  readonly #options: EksServiceOptions;
  readonly #budgets = new Map<string, RequestBucket>();
  #active = 0;

  constructor(options: EksServiceOptions) {
    this.#options = options;
  }

  handleConnection(socket: net.Socket, context: ConnectionContext): void {
    const tlsSocket = context.tls?.socket;
    if (tlsSocket === undefined) {
      socket.destroy();
      return;
    }
    this.#active++;
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const decoder = new RecordDecoder({
      maxBodyLength: EKS_MAX_BODY_LENGTH,
      maxMessageLength: Math.min(context.maxMessageSize, EKS_MAX_MESSAGE_LENGTH),
      maxRecords: EKS_MAX_RECORDS,
      endOfMessageType: EksRecordType.END_OF_MESSAGE,
      errorPrefix: 'EKS',
    });
    const records: RawRecord[] = [];
    const finish = (outcome: EksCounterName, label: string | undefined, response: Uint8Array | null) => {
      if (!exchange.finish(response)) return;
      this.counters.inc(outcome, label);
      this.#options.onExchange?.(label === undefined ? outcome : `${outcome === 'issued' ? 'issued-' : ''}${label}`, seconds());
    };
    const exchange = new OneMessageExchange(socket, decoder, {
      record: (record) => records.push(record),
      // docs/eks.md §1: a framing error, or bytes after End of Message, make a bad request.
      framingError: (error) => {
        context.logger.debug({ code: error.code, detail: error.message }, 'EKS request framing error');
        finish('framing_errors', error.code, encodeEksError(EksErrorCode.BAD_REQUEST));
      },
      complete: () => {
        this.counters.inc('requests');
        const address = context.remote.kind === 'tcp' ? context.remote.address : 'local';
        this.#answer(records, address, tlsSocket, context).then(
          ({ outcome, label, response }) => finish(outcome, label, response),
          (error: unknown) => {
            context.logger.error({ err: error }, 'EKS internal error');
            finish('internal_errors', undefined, encodeEksError(EksErrorCode.INTERNAL_ERROR));
          },
        );
      },
      closed: (answered) => {
        this.#active--;
        if (!answered) {
          this.counters.inc('incomplete');
          this.#options.onExchange?.('incomplete', seconds());
        }
      },
    });
  }

  async #answer(
    records: readonly RawRecord[],
    address: string,
    socket: tls.TLSSocket,
    context: ConnectionContext,
  ): Promise<{ outcome: EksCounterName; label: string; response: Uint8Array }> {
    const refuse = (reason: EksRefusal, detail: string) => {
      context.logger.debug({ reason, detail }, 'EKS request refused');
      return { outcome: 'refused' as const, label: reason, response: encodeEksError(REFUSAL_ERROR[reason]) };
    };
    const parsed = parseEksRequest(records);
    if (!parsed.ok) {
      const reason = parsed.error.errorCode === EksErrorCode.UNRECOGNIZED_CRITICAL_RECORD ? 'unknown_critical' : 'bad_request';
      return refuse(reason, `${parsed.error.code}: ${parsed.error.message}`);
    }
    const request: EksRequest = parsed.value;
    const config = this.#options.config();

    // docs/eks.md §6: a wrong token is refused even when anonymous issuance is allowed.
    let tokenName: string | null = null;
    if (request.token !== null) {
      const token = matchToken(config.tokens, request.token);
      if (token === null) return refuse('unauthorized', 'token not accepted');
      tokenName = token.name;
    } else if (config.access === 'token') {
      return refuse('unauthorized', 'a token is required');
    }

    // The client lists algorithms in its order of preference; AES-128-CMAC is the only one issued.
    const algorithm = request.algorithms.find((a) => a === EksMacAlgorithm.AES128CMAC);
    if (algorithm === undefined) return refuse('no_common_algorithm', `offered ${request.algorithms.join(', ')}`);

    if (!this.#takeBudget(budgetKey(address), config)) return refuse('rate_limited', `more than ${config.issueBurst} keys, then one per ${config.issueIntervalMs} ms`);

    const now = this.#options.nowMicros();
    const { store, keys } = this.#options;
    let keyId: number;
    let renewal = false;
    if (request.renew !== null) {
      // docs/eks.md §5: the proof is a CMAC under the held key over an exporter value of this very connection.
      const exported = socket.exportKeyingMaterial(16, EKS_RENEW_EXPORTER_LABEL, Buffer.from(renewExporterContext(request.renew.keyId)));
      // Only ids this node issued: a renewal here of another node's id would let that node hand the id out again
      // once its own record of it lapses, and two clients would derive the same key.
      if (!store.table.renewable(request.renew.keyId, now, this.#options.renewWindowMicros)) {
        return refuse('renewal_refused', `key ${request.renew.keyId} was not issued here, is revoked, or its renewal window has closed`);
      }
      const verdict = keys.verifyProof(request.renew.keyId, new Uint8Array(exported), request.renew.proof, now);
      if (!verdict.ok) return refuse('renewal_refused', `key ${request.renew.keyId}: ${verdict.reason}`);
      keyId = request.renew.keyId;
      renewal = true;
    } else {
      const allocated = store.table.allocate(now, (generation) => keys.generationInRing(generation), this.#options.renewWindowMicros);
      if (allocated === null) {
        context.logger.warn({ range: store.table.range }, 'EKS: every key id of eks.key-id-range is held; widen it or shorten eks.key-lifetime');
        return refuse('ids_exhausted', 'no free key id');
      }
      keyId = allocated;
    }

    const issued = keys.issue(keyId, now);
    const entry = store.table.record({
      keyId,
      generation: issued.generation,
      issuedAtMicros: now,
      expiresAtMicros: issued.expiryMicros,
      address,
      token: tokenName,
    });
    // On disk before the key goes out; a failure is an internal error (the id stays held in memory).
    await store.append(entry);

    const response = encodeEksKeyResponse({
      algorithm,
      keyId,
      key: issued.key,
      expirySeconds: Math.floor(issued.expiryMicros / 1e6),
      lifetimeSeconds: Math.max(0, Math.floor((issued.expiryMicros - now) / 1e6)),
      ntpServer: config.ntpServer,
      ntpPort: config.ntpPort === 123 ? null : config.ntpPort,
      warnings: [],
    });
    context.logger.info({ keyId, renewal, address, token: tokenName, expires: new Date(issued.expiryMicros / 1000).toISOString() }, renewal ? 'EKS key renewed' : 'EKS key issued');
    return { outcome: 'issued', label: renewal ? 'renewal' : 'new', response };
  }

  /** docs/eks.md §6: `issue-burst` keys at once per address, then one per `issue-interval`. */
  #takeBudget(address: string, config: EksConfig): boolean {
    const now = performance.now();
    const settings = { ratePerSecond: 1000 / config.issueIntervalMs, burst: config.issueBurst };
    let bucket = this.#budgets.get(address);
    if (bucket === undefined) {
      if (this.#budgets.size >= MAX_TRACKED_ADDRESSES) {
        const oldest = this.#budgets.keys().next().value;
        if (oldest !== undefined) this.#budgets.delete(oldest);
      }
      bucket = new RequestBucket(settings, now);
    } else {
      this.#budgets.delete(address); // re-inserted below: Map order is least recently used first
      const current = bucket.settings;
      if (current.ratePerSecond !== settings.ratePerSecond || current.burst !== settings.burst) bucket.configure(settings, now);
    }
    this.#budgets.set(address, bucket);
    return bucket.take(now);
  }

  stats(): ServiceStats {
    return { active: this.#active, counters: this.counters.snapshot() };
  }

  async stop(): Promise<void> {}
}
