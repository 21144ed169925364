/**
 * The metrics service: Prometheus text format at `GET /metrics`, plain HTTP only (alone on its listener, see
 * config/check.ts), served through `createHttpService`.
 *
 * Theory of operation. The daemon's own counters (NTP, NTS-KE, listeners, key ring) stay where they are, plain
 * numbers bumped on the hot paths; nothing here is called per datagram or per connection. Each exported metric
 * that mirrors one of them has a prom-client `collect` callback that reads the source's snapshot when scraped,
 * resets the metric and writes the absolute values, so a scrape never double-counts and the hot paths pay
 * nothing for metrics. The only metric fed by events is the NTS-KE exchange duration histogram
 * (`observeExchange`, wired to `NtsKeService`'s `onExchange` hook), since a histogram cannot be rebuilt from
 * a total.
 *
 * Every metric lives in this service's own `Registry` (never prom-client's global one), so several daemons
 * (tests) can coexist in one process. Names follow the Prometheus conventions: `ntptsd_` prefix, base units in
 * the name (`_seconds`), `_total` on counters, reasons and kinds as labels with a bounded set of values.
 * Label values that are known in advance are written as 0 from the start, so `rate()` sees the first event.
 */
import type http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AEAD_NAMES } from '../../config/types.js';
import { VERSION } from '../../version.js';
import { LISTENER_COUNTERS, type ListenerStats } from '../listeners.js';
import { createHttpService, type Service } from '../service.js';

/** What the NTP service exposes (`NtpService` fits). */
export interface NtpMetricsSource {
  readonly counters: { snapshot(): Readonly<Record<string, number>> };
  readonly clients: { readonly size: number };
}

/** What the NTS-KE service exposes (`NtsKeService` fits). */
export interface NtsKeMetricsSource {
  readonly counters: { snapshot(): Readonly<Record<string, number>> };
}

/** What the ephemeral key service exposes (`EksService` fits). */
export interface EksMetricsSource {
  readonly counters: { snapshot(): Readonly<Record<string, number>> };
}

/** What the listeners expose (`ListenerSet` fits). */
export interface ListenersMetricsSource {
  stats(): readonly ListenerStats[];
  /** The services of each bound listener, so that their dispatch series start at 0. */
  bound?(): ReadonlyArray<{ readonly name: string; readonly services: readonly string[] }>;
}

/** What the key ring store exposes (`KeyRingStore` fits). */
export interface KeyRingMetricsSource {
  readonly ring: { readonly keys: readonly unknown[]; readonly current: { readonly createdAtMicros: number } };
  readonly rotations: number;
}

export interface MetricsSources {
  readonly ntp?: NtpMetricsSource | undefined;
  readonly ntsKe?: NtsKeMetricsSource | undefined;
  readonly eks?: EksMetricsSource | undefined;
  readonly listeners?: ListenersMetricsSource | undefined;
  readonly keyRing?: KeyRingMetricsSource | undefined;
}

export interface DaemonMetricsOptions {
  /** Reported in `ntptsd_build_info`; default: the package version. */
  readonly version?: string;
  /** Unix time in microseconds, for the key age (the daemon's clock); default `Date.now()`. */
  readonly nowMicros?: () => number;
  /** Daemon start, Unix seconds; default: now. */
  readonly startTimeSeconds?: number;
  /** prom-client's process and Node.js metrics (`ntptsd_process_*`, `ntptsd_nodejs_*`); default true. */
  readonly defaultMetrics?: boolean;
}

export const METRICS_PREFIX = 'ntptsd_';
export const METRICS_PATH = '/metrics';

/** Exchange durations: a loopback exchange takes about a millisecond, a stalled client up to the idle timeout. */
export const NTSKE_DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** `NtsKeService` counter names → the `outcome` label of `ntptsd_ntske_handshakes_total`. */
const NTSKE_OUTCOMES: Readonly<Record<string, string>> = {
  accepted: 'accepted',
  rejected: 'rejected',
  no_agreement: 'no_agreement',
  framing_errors: 'framing_error',
  incomplete: 'incomplete',
  internal_errors: 'internal_error',
};

/** Outcomes whose counter label is a reason code (exported as `ntptsd_ntske_failures_total{outcome,reason}`). */
const NTSKE_REASONED = new Set(['rejected', 'no_agreement', 'framing_error']);

const NTP_AUTH = ['none', 'nts', 'mac'] as const;
/** MAC verification outcomes of the NTP service (docs/eks.md §7). */
const NTP_MAC_OUTCOMES = ['verified_static', 'verified_ephemeral', 'unknown_key', 'bad_mac', 'expired', 'revoked'] as const;
/** Why the EKS service gave no key (`EksService` `refused` labels). */
const EKS_REFUSALS = ['bad_request', 'unknown_critical', 'unauthorized', 'rate_limited', 'no_common_algorithm', 'renewal_refused', 'ids_exhausted'] as const;
const NTP_KISS = ['RATE', 'NTSN', 'CRYPTO_NAK'] as const;
const NTP_DROP_REASONS = ['bad_source_port', 'malformed', 'bad_mode', 'rate_limited', 'nts_malformed', 'nts_bad_cookie_aead', 'nts_auth_failed', 'nts_and_mac'] as const;

/** Splits a `Counters` snapshot key `name.label` (the label may itself contain dots). */
function splitKey(key: string): [string, string | undefined] {
  const dot = key.indexOf('.');
  return dot < 0 ? [key, undefined] : [key.slice(0, dot), key.slice(dot + 1)];
}

/**
 * Every metric of the daemon in one registry. Sources are attached as the daemon builds them (`attach`); a
 * source not attached yet simply exports its zero series.
 */
export class DaemonMetrics {
  readonly registry = new Registry();
  #sources: MetricsSources = {};
  readonly #duration: Histogram<'outcome'>;

  constructor(options: DaemonMetricsOptions = {}) {
    const registers = [this.registry];
    const p = METRICS_PREFIX;
    const nowMicros = options.nowMicros ?? (() => Date.now() * 1000);
    const startTime = options.startTimeSeconds ?? Date.now() / 1000;
    const sources = () => this.#sources;

    // --- the daemon itself
    new Gauge({ name: `${p}up`, help: 'Always 1 while the daemon answers scrapes.', registers }).set(1);
    new Gauge({ name: `${p}start_time_seconds`, help: 'Unix time the daemon started, in seconds.', registers }).set(startTime);
    new Gauge({ name: `${p}build_info`, help: 'Version of ntptsd and of Node.js; the value is always 1.', labelNames: ['version', 'nodejs'], registers }).set(
      { version: options.version ?? VERSION, nodejs: process.versions.node },
      1,
    );

    // --- NTP over UDP (NtpService.counters)
    const ntpSnapshot = () => sources().ntp?.counters.snapshot() ?? {};
    new Counter({
      name: `${p}ntp_requests_received_total`,
      help: 'NTP datagrams received, whatever became of them.',
      registers,
      collect() {
        this.reset();
        this.inc(ntpSnapshot().received ?? 0);
      },
    });
    new Counter({
      name: `${p}ntp_responses_total`,
      help: 'NTP responses sent (kiss-o\'-death excluded), by authentication: none, nts or mac.',
      labelNames: ['auth'],
      registers,
      collect() {
        this.reset();
        for (const auth of NTP_AUTH) this.inc({ auth }, 0);
        for (const [key, value] of Object.entries(ntpSnapshot())) {
          const [name, auth] = splitKey(key);
          if (name === 'responses' && auth !== undefined) this.inc({ auth }, value);
        }
      },
    });
    new Counter({
      name: `${p}ntp_kiss_total`,
      help: "Kiss-o'-death responses sent, by kiss code (RATE, NTSN, CRYPTO_NAK).",
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const code of NTP_KISS) this.inc({ code }, 0);
        for (const [key, value] of Object.entries(ntpSnapshot())) {
          const [name, code] = splitKey(key);
          if (name === 'kod' && code !== undefined) this.inc({ code }, value);
        }
      },
    });
    new Counter({
      name: `${p}ntp_dropped_total`,
      help: 'NTP datagrams dropped without an answer, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const reason of NTP_DROP_REASONS) this.inc({ reason }, 0);
        for (const [key, value] of Object.entries(ntpSnapshot())) {
          const [name, reason] = splitKey(key);
          if (name === 'drops' && reason !== undefined) this.inc({ reason }, value);
        }
      },
    });
    new Counter({
      name: `${p}ntp_denied_total`,
      help: 'NTP datagrams refused by ntp.allow / ntp.deny.',
      registers,
      collect() {
        this.reset();
        this.inc(ntpSnapshot().denied ?? 0);
      },
    });
    new Counter({
      name: `${p}ntp_send_errors_total`,
      help: 'NTP responses the kernel refused to send.',
      registers,
      collect() {
        this.reset();
        this.inc(ntpSnapshot().send_errors ?? 0);
      },
    });
    new Gauge({
      name: `${p}ntp_clients`,
      help: 'Client addresses tracked by the rate limiter.',
      registers,
      collect() {
        this.set(sources().ntp?.clients.size ?? 0);
      },
    });

    new Counter({
      name: `${p}ntp_mac_total`,
      help: 'NTP requests carrying a MAC, by outcome: verified_static, verified_ephemeral (answered with a MAC), unknown_key, bad_mac, expired, revoked (answered with a crypto-NAK).',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        for (const outcome of NTP_MAC_OUTCOMES) this.inc({ outcome }, 0);
        for (const [key, value] of Object.entries(ntpSnapshot())) {
          const [name, outcome] = splitKey(key);
          if (name === 'mac' && outcome !== undefined) this.inc({ outcome }, value);
        }
      },
    });

    // --- EKS (EksService.counters)
    const eksSnapshot = () => sources().eks?.counters.snapshot() ?? {};
    new Counter({
      name: `${p}eks_requests_total`,
      help: 'Complete EKS requests received (framing errors and incomplete connections excluded).',
      registers,
      collect() {
        this.reset();
        this.inc(eksSnapshot().requests ?? 0);
      },
    });
    new Counter({
      name: `${p}eks_keys_issued_total`,
      help: 'Ephemeral keys issued, by kind: new (a fresh key id) or renewal (same id, new generation).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const kind of ['new', 'renewal']) this.inc({ kind }, 0);
        for (const [key, value] of Object.entries(eksSnapshot())) {
          const [name, kind] = splitKey(key);
          if (name === 'issued' && kind !== undefined) this.inc({ kind }, value);
        }
      },
    });
    new Counter({
      name: `${p}eks_failures_total`,
      help: 'EKS exchanges that gave no key, by reason: a refusal (unauthorized, rate_limited, ...), framing_error, incomplete or internal_error.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const reason of [...EKS_REFUSALS, 'framing_error', 'incomplete', 'internal_error']) this.inc({ reason }, 0);
        for (const [key, value] of Object.entries(eksSnapshot())) {
          const [name, label] = splitKey(key);
          if (name === 'refused' && label !== undefined) this.inc({ reason: label }, value);
          else if (name === 'framing_errors') this.inc({ reason: 'framing_error' }, value);
          else if (name === 'incomplete') this.inc({ reason: 'incomplete' }, value);
          else if (name === 'internal_errors') this.inc({ reason: 'internal_error' }, value);
        }
      },
    });

    // --- NTS-KE (NtsKeService.counters)
    const ntsKeSnapshot = () => sources().ntsKe?.counters.snapshot() ?? {};
    new Counter({
      name: `${p}ntske_requests_total`,
      help: 'Complete NTS-KE requests received (framing errors and incomplete connections excluded).',
      registers,
      collect() {
        this.reset();
        this.inc(ntsKeSnapshot().requests ?? 0);
      },
    });
    new Counter({
      name: `${p}ntske_handshakes_total`,
      help: 'NTS-KE exchanges by outcome (accepted, rejected, no_agreement, framing_error, incomplete, internal_error) and negotiated AEAD ("none" unless accepted).',
      labelNames: ['outcome', 'aead'],
      registers,
      collect() {
        this.reset();
        for (const aead of AEAD_NAMES) this.inc({ outcome: 'accepted', aead }, 0);
        for (const outcome of Object.values(NTSKE_OUTCOMES)) if (outcome !== 'accepted') this.inc({ outcome, aead: 'none' }, 0);
        for (const [key, value] of Object.entries(ntsKeSnapshot())) {
          const [name, label] = splitKey(key);
          const outcome = NTSKE_OUTCOMES[name];
          if (outcome === undefined) continue;
          this.inc({ outcome, aead: outcome === 'accepted' ? (label ?? 'unknown') : 'none' }, value);
        }
      },
    });
    new Counter({
      name: `${p}ntske_failures_total`,
      help: 'Refused NTS-KE exchanges (rejected, no_agreement, framing_error) by reason code, e.g. NTSKE_NO_COMMON_AEAD.',
      labelNames: ['outcome', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [key, value] of Object.entries(ntsKeSnapshot())) {
          const [name, reason] = splitKey(key);
          const outcome = NTSKE_OUTCOMES[name];
          if (outcome !== undefined && NTSKE_REASONED.has(outcome)) this.inc({ outcome, reason: reason ?? 'unknown' }, value);
        }
      },
    });
    this.#duration = new Histogram({
      name: `${p}ntske_handshake_duration_seconds`,
      help: 'Time from the established TLS session to the NTS-KE response (or the close), by outcome: accepted, refused, incomplete, internal_error.',
      labelNames: ['outcome'],
      buckets: [...NTSKE_DURATION_BUCKETS],
      registers,
    });
    for (const outcome of ['accepted', 'refused', 'incomplete', 'internal_error']) this.#duration.zero({ outcome });

    // --- TCP listeners (ListenerSet.stats())
    const listenerStats = () => sources().listeners?.stats() ?? [];
    new Counter({
      name: `${p}listener_connections_total`,
      help: 'Connection events per listener: accepted, refusals, TLS failures, timeouts, dispatched, ...',
      labelNames: ['listener', 'event'],
      registers,
      collect() {
        this.reset();
        for (const stats of listenerStats()) {
          for (const event of LISTENER_COUNTERS) this.inc({ listener: stats.name, event }, stats.counters[event]);
        }
      },
    });
    new Counter({
      name: `${p}listener_dispatched_total`,
      help: 'Connections a listener handed to each service.',
      labelNames: ['listener', 'service'],
      registers,
      collect() {
        this.reset();
        for (const bound of sources().listeners?.bound?.() ?? []) {
          for (const service of bound.services) this.inc({ listener: bound.name, service }, 0);
        }
        for (const stats of listenerStats()) {
          for (const [service, value] of Object.entries(stats.services)) this.inc({ listener: stats.name, service }, value);
        }
      },
    });
    new Gauge({
      name: `${p}listener_active_connections`,
      help: 'Open connections per listener, TLS handshakes in progress included.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const stats of listenerStats()) this.set({ listener: stats.name }, stats.active);
      },
    });

    // --- NTS master key ring (KeyRingStore)
    new Gauge({
      name: `${p}keyring_keys`,
      help: 'Master keys in the key ring, the current one included.',
      registers,
      collect() {
        this.set(sources().keyRing?.ring.keys.length ?? 0);
      },
    });
    new Counter({
      name: `${p}keyring_rotations_total`,
      help: 'Master key rotations since the daemon started.',
      registers,
      collect() {
        this.reset();
        this.inc(sources().keyRing?.rotations ?? 0);
      },
    });
    new Gauge({
      name: `${p}keyring_current_key_age_seconds`,
      help: 'Age of the current master key, in seconds.',
      registers,
      collect() {
        const ring = sources().keyRing?.ring;
        this.set(ring === undefined ? 0 : Math.max(0, (nowMicros() - ring.current.createdAtMicros) / 1e6));
      },
    });

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: p });
  }

  /** Adds or replaces sources; the next scrape reads them. */
  attach(sources: MetricsSources): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /**
   * For `NtsKeService`'s `onExchange`: `outcome` is the counter label of the exchange (AEAD name, reason code,
   * `incomplete` or `internal_errors`) and `aead` is set only when keys were handed out.
   */
  readonly observeExchange = (outcome: string, aead: number | null, seconds: number): void => {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    const label = aead !== null ? 'accepted' : outcome === 'incomplete' ? 'incomplete' : outcome === 'internal_errors' ? 'internal_error' : 'refused';
    this.#duration.observe({ outcome: label }, seconds);
  };

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function reply(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

/** The request handler: `GET`/`HEAD /metrics`, 405 for other methods there, 404 elsewhere. */
export function metricsHandler(metrics: DaemonMetrics): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      reply(res, 404, `not found; metrics are at ${METRICS_PATH}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    metrics.text().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => reply(res, 500, `cannot collect metrics: ${(error as Error).message}\n`),
    );
  };
}

/** The `metrics` service: plain HTTP, never offered over TLS. */
export function createMetricsService(metrics: DaemonMetrics): Service & { readonly server: http.Server } {
  return createHttpService({ name: 'metrics', handler: metricsHandler(metrics) });
}
