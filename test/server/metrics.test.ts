// The metrics service: the exposition built from fake sources (names, types, labels, values, conventions), the
// HTTP handler, the example Grafana dashboard and Prometheus config against the real metric names, and end to end
// against the real daemon: scrape, an NTP request and an NTS-KE exchange, scrape again and see the counters move.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { register as globalRegister } from 'prom-client';
import { LISTENER_COUNTERS, type ListenerStats } from '../../src/server/listeners.js';
import { DaemonMetrics, METRICS_PREFIX, NTSKE_DURATION_BUCKETS, metricsHandler, type MetricsSources } from '../../src/server/services/metrics.js';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { daemonCa, ntsKeys } from '../helpers/nts-client.js';

const root = resolve(import.meta.dirname, '../..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

// ---------------------------------------------------------------------------------------------------------------
// A small parser of the Prometheus text format (0.0.4), enough to check what we emit.

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

interface Exposition {
  /** Family name → type, in order of appearance. */
  readonly types: Map<string, string>;
  readonly help: Map<string, string>;
  readonly samples: Sample[];
  /** Family names that had more than one TYPE line. */
  readonly duplicates: string[];
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const duplicates: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === 'TYPE') {
        if (types.has(name)) duplicates.push(name);
        types.set(name, rest);
      } else help.set(name, rest);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `not a sample line: ${line}`);
    const [, name, labelText, value] = sample as unknown as [string, string, string | undefined, string];
    const labels: Record<string, string> = {};
    for (const m of (labelText ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const number = value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
    assert.ok(!Number.isNaN(number) || value.toLowerCase() === 'nan', `not a number: ${line}`); // prom-client writes "Nan"; Prometheus reads any case
    samples.push({ name, labels, value: number });
  }
  return { types, help, samples, duplicates };
}

/** The value of the one sample `name` whose labels include `labels`; fails when there is not exactly one. */
function value(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`);
  return (found[0] as Sample).value;
}

/** Family of a sample name: histograms emit `_bucket`, `_sum` and `_count` samples. */
function familyOf(exposition: Exposition, sampleName: string): string | undefined {
  if (exposition.types.has(sampleName)) return sampleName;
  const base = sampleName.replace(/_(bucket|sum|count)$/, '');
  return exposition.types.get(base) === 'histogram' || exposition.types.get(base) === 'summary' ? base : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Fake sources

function listenerStats(name: string, counters: Partial<Record<(typeof LISTENER_COUNTERS)[number], number>>, active: number, services: Record<string, number>): ListenerStats {
  const all = Object.fromEntries(LISTENER_COUNTERS.map((c) => [c, counters[c] ?? 0])) as ListenerStats['counters'];
  return { name, configKey: name.split(' ')[0] as string, transport: 'tls', address: null, active, counters: all, services };
}

const NOW_MICROS = 1_700_000_000_000_000;

function fakeSources(): { sources: MetricsSources; ntp: Record<string, number>; ntsKe: Record<string, number>; keyRing: { ring: { keys: unknown[]; current: { createdAtMicros: number } }; rotations: number } } {
  const ntp: Record<string, number> = {
    received: 20,
    'responses.none': 7,
    'responses.nts': 5,
    'kod.RATE': 2,
    'kod.NTSN': 1,
    'drops.malformed': 3,
    'drops.bad_source_port': 1,
    denied: 1,
    send_errors: 0,
    'mac.verified_ephemeral': 6,
    'mac.revoked': 2,
  };
  const eks: Record<string, number> = {
    requests: 9,
    'issued.new': 4,
    'issued.renewal': 2,
    'refused.unauthorized': 1,
    'refused.rate_limited': 2,
    'framing_errors.EKS_RECORD_TOO_LONG': 1,
    incomplete: 1,
  };
  const ntsKe: Record<string, number> = {
    requests: 8,
    'accepted.AES-SIV-CMAC-256': 4,
    'accepted.AES-SIV-CMAC-512': 1,
    'rejected.NTSKE_MISSING_AEAD': 1,
    'no_agreement.NTSKE_NO_COMMON_AEAD': 2,
    'framing_errors.NTSKE_RECORD_TOO_LONG': 1,
    incomplete: 3,
  };
  const keyRing = { ring: { keys: [{}, {}, {}], current: { createdAtMicros: NOW_MICROS - 3_600_000_000 } }, rotations: 2 };
  const sources: MetricsSources = {
    ntp: { counters: { snapshot: () => ({ ...ntp }) }, clients: { size: 42 } },
    ntsKe: { counters: { snapshot: () => ({ ...ntsKe }) } },
    eks: { counters: { snapshot: () => ({ ...eks }) } },
    listeners: {
      stats: () => [
        listenerStats('listener[0] [::]:4460', { accepted: 10, dispatched: 9, handshake_error: 1 }, 2, { 'nts-ke': 9 }),
        listenerStats('listener[1] 127.0.0.1:9975', { accepted: 3, dispatched: 3 }, 1, { metrics: 3 }),
      ],
      bound: () => [
        { name: 'listener[0] [::]:4460', services: ['nts-ke', 'eks'] },
        { name: 'listener[1] 127.0.0.1:9975', services: ['metrics'] },
      ],
    },
    keyRing,
  };
  return { sources, ntp, ntsKe, keyRing };
}

function fakeMetrics(defaultMetrics = false) {
  const fake = fakeSources();
  const metrics = new DaemonMetrics({ version: '9.8.7', nowMicros: () => NOW_MICROS, startTimeSeconds: 1_699_999_000, defaultMetrics });
  metrics.attach(fake.sources);
  return { metrics, ...fake };
}

/** Every family the daemon itself defines (prom-client's default metrics aside), with its type. */
const OWN_FAMILIES: Record<string, string> = {
  ntptsd_up: 'gauge',
  ntptsd_start_time_seconds: 'gauge',
  ntptsd_build_info: 'gauge',
  ntptsd_ntp_requests_received_total: 'counter',
  ntptsd_ntp_responses_total: 'counter',
  ntptsd_ntp_kiss_total: 'counter',
  ntptsd_ntp_dropped_total: 'counter',
  ntptsd_ntp_denied_total: 'counter',
  ntptsd_ntp_send_errors_total: 'counter',
  ntptsd_ntp_clients: 'gauge',
  ntptsd_ntp_mac_total: 'counter',
  ntptsd_eks_requests_total: 'counter',
  ntptsd_eks_keys_issued_total: 'counter',
  ntptsd_eks_failures_total: 'counter',
  ntptsd_ntske_requests_total: 'counter',
  ntptsd_ntske_handshakes_total: 'counter',
  ntptsd_ntske_failures_total: 'counter',
  ntptsd_ntske_handshake_duration_seconds: 'histogram',
  ntptsd_listener_connections_total: 'counter',
  ntptsd_listener_dispatched_total: 'counter',
  ntptsd_listener_active_connections: 'gauge',
  ntptsd_keyring_keys: 'gauge',
  ntptsd_keyring_rotations_total: 'counter',
  ntptsd_keyring_current_key_age_seconds: 'gauge',
};

function checkConventions(exposition: Exposition): void {
  assert.deepEqual(exposition.duplicates, [], 'no family is declared twice');
  for (const [name, type] of exposition.types) {
    assert.ok(name.startsWith(METRICS_PREFIX), `${name} has the ntptsd_ prefix`);
    assert.match(name, /^[a-z_][a-z0-9_]*$/, `${name} is snake_case`);
    assert.ok(exposition.help.get(name), `${name} has a HELP text`);
    if (type === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
    // Ours only: prom-client's default metrics have gauges named nodejs_active_*_total.
    else if (name in OWN_FAMILIES) assert.ok(!name.endsWith('_total'), `${type} ${name} does not end in _total`);
  }
  for (const sample of exposition.samples) {
    assert.ok(familyOf(exposition, sample.name), `sample ${sample.name} belongs to a declared family`);
    // NaN is valid (prom-client's event loop lag before its first sample); our own series always have a number.
    if ((familyOf(exposition, sample.name) as string) in OWN_FAMILIES) assert.ok(!Number.isNaN(sample.value), `${sample.name} has a number`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe('metrics exposition (fake sources)', () => {
  it('declares every family with its type, and follows the naming conventions', async () => {
    const { metrics } = fakeMetrics();
    const exposition = parseExposition(await metrics.text());
    assert.deepEqual(Object.fromEntries(exposition.types), OWN_FAMILIES);
    checkConventions(exposition);
  });

  it('NTP counters: snapshot keys become labelled series; known labels start at 0', async () => {
    const { metrics } = fakeMetrics();
    const e = parseExposition(await metrics.text());
    assert.equal(value(e, 'ntptsd_ntp_requests_received_total'), 20);
    assert.equal(value(e, 'ntptsd_ntp_responses_total', { auth: 'none' }), 7);
    assert.equal(value(e, 'ntptsd_ntp_responses_total', { auth: 'nts' }), 5);
    assert.equal(value(e, 'ntptsd_ntp_kiss_total', { code: 'RATE' }), 2);
    assert.equal(value(e, 'ntptsd_ntp_kiss_total', { code: 'NTSN' }), 1);
    assert.equal(value(e, 'ntptsd_ntp_kiss_total', { code: 'CRYPTO_NAK' }), 0);
    assert.equal(value(e, 'ntptsd_ntp_dropped_total', { reason: 'malformed' }), 3);
    assert.equal(value(e, 'ntptsd_ntp_dropped_total', { reason: 'bad_source_port' }), 1);
    assert.equal(value(e, 'ntptsd_ntp_dropped_total', { reason: 'rate_limited' }), 0);
    assert.equal(value(e, 'ntptsd_ntp_denied_total'), 1);
    assert.equal(value(e, 'ntptsd_ntp_send_errors_total'), 0);
    assert.equal(value(e, 'ntptsd_ntp_clients'), 42);
    const labelNames = (name: string) => new Set(e.samples.filter((s) => s.name === name).flatMap((s) => Object.keys(s.labels)));
    assert.deepEqual([...labelNames('ntptsd_ntp_responses_total')], ['auth']);
    assert.deepEqual([...labelNames('ntptsd_ntp_kiss_total')], ['code']);
    assert.deepEqual([...labelNames('ntptsd_ntp_dropped_total')], ['reason']);
  });

  it('MAC authentication and EKS: outcomes, issued keys by kind, failures by reason; known labels start at 0', async () => {
    const { metrics } = fakeMetrics();
    const e = parseExposition(await metrics.text());
    assert.equal(value(e, 'ntptsd_ntp_mac_total', { outcome: 'verified_ephemeral' }), 6);
    assert.equal(value(e, 'ntptsd_ntp_mac_total', { outcome: 'revoked' }), 2);
    assert.equal(value(e, 'ntptsd_ntp_mac_total', { outcome: 'bad_mac' }), 0);
    assert.equal(value(e, 'ntptsd_ntp_responses_total', { auth: 'mac' }), 0);
    assert.equal(value(e, 'ntptsd_eks_requests_total'), 9);
    assert.equal(value(e, 'ntptsd_eks_keys_issued_total', { kind: 'new' }), 4);
    assert.equal(value(e, 'ntptsd_eks_keys_issued_total', { kind: 'renewal' }), 2);
    assert.equal(value(e, 'ntptsd_eks_failures_total', { reason: 'unauthorized' }), 1);
    assert.equal(value(e, 'ntptsd_eks_failures_total', { reason: 'rate_limited' }), 2);
    assert.equal(value(e, 'ntptsd_eks_failures_total', { reason: 'framing_error' }), 1);
    assert.equal(value(e, 'ntptsd_eks_failures_total', { reason: 'incomplete' }), 1);
    assert.equal(value(e, 'ntptsd_eks_failures_total', { reason: 'renewal_refused' }), 0);
  });

  it('NTS-KE: handshakes by outcome and AEAD, failures by reason, durations by outcome', async () => {
    const { metrics } = fakeMetrics();
    metrics.observeExchange('AES-SIV-CMAC-256', 15, 0.0007);
    metrics.observeExchange('AES-SIV-CMAC-256', 15, 0.003);
    metrics.observeExchange('NTSKE_NO_COMMON_AEAD', null, 0.002);
    metrics.observeExchange('incomplete', null, 30);
    metrics.observeExchange('internal_errors', null, 0.01);
    metrics.observeExchange('AES-SIV-CMAC-256', 15, Number.NaN); // ignored
    const e = parseExposition(await metrics.text());
    assert.equal(value(e, 'ntptsd_ntske_requests_total'), 8);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'accepted', aead: 'AES-SIV-CMAC-256' }), 4);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'accepted', aead: 'AES-SIV-CMAC-512' }), 1);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'accepted', aead: 'AES-SIV-CMAC-384' }), 0);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'rejected', aead: 'none' }), 1);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'no_agreement', aead: 'none' }), 2);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'framing_error', aead: 'none' }), 1);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'incomplete', aead: 'none' }), 3);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'internal_error', aead: 'none' }), 0);
    assert.equal(value(e, 'ntptsd_ntske_failures_total', { outcome: 'rejected', reason: 'NTSKE_MISSING_AEAD' }), 1);
    assert.equal(value(e, 'ntptsd_ntske_failures_total', { outcome: 'no_agreement', reason: 'NTSKE_NO_COMMON_AEAD' }), 2);
    assert.equal(value(e, 'ntptsd_ntske_failures_total', { outcome: 'framing_error', reason: 'NTSKE_RECORD_TOO_LONG' }), 1);
    assert.equal(e.samples.filter((s) => s.name === 'ntptsd_ntske_failures_total').length, 3, 'only refusals carry a reason');

    const h = 'ntptsd_ntske_handshake_duration_seconds';
    assert.equal(value(e, `${h}_count`, { outcome: 'accepted' }), 2);
    assert.ok(Math.abs(value(e, `${h}_sum`, { outcome: 'accepted' }) - 0.0037) < 1e-9);
    assert.equal(value(e, `${h}_bucket`, { outcome: 'accepted', le: '0.001' }), 1);
    assert.equal(value(e, `${h}_bucket`, { outcome: 'accepted', le: '0.005' }), 2);
    assert.equal(value(e, `${h}_bucket`, { outcome: 'accepted', le: '+Inf' }), 2);
    assert.equal(value(e, `${h}_count`, { outcome: 'refused' }), 1);
    assert.equal(value(e, `${h}_count`, { outcome: 'incomplete' }), 1);
    assert.equal(value(e, `${h}_bucket`, { outcome: 'incomplete', le: '10' }), 0);
    assert.equal(value(e, `${h}_bucket`, { outcome: 'incomplete', le: '30' }), 1);
    assert.equal(value(e, `${h}_count`, { outcome: 'internal_error' }), 1);
    const les = e.samples.filter((s) => s.name === `${h}_bucket` && s.labels.outcome === 'accepted').map((s) => s.labels.le);
    assert.deepEqual(les, [...NTSKE_DURATION_BUCKETS.map(String), '+Inf']);
  });

  it('listeners, key ring and the daemon itself', async () => {
    const { metrics } = fakeMetrics();
    const e = parseExposition(await metrics.text());
    const ke = 'listener[0] [::]:4460';
    assert.equal(value(e, 'ntptsd_listener_connections_total', { listener: ke, event: 'accepted' }), 10);
    assert.equal(value(e, 'ntptsd_listener_connections_total', { listener: ke, event: 'handshake_error' }), 1);
    assert.equal(value(e, 'ntptsd_listener_connections_total', { listener: ke, event: 'idle_timeout' }), 0);
    assert.equal(e.samples.filter((s) => s.name === 'ntptsd_listener_connections_total').length, 2 * LISTENER_COUNTERS.length, 'every event of every listener');
    assert.equal(value(e, 'ntptsd_listener_dispatched_total', { listener: ke, service: 'nts-ke' }), 9);
    assert.equal(value(e, 'ntptsd_listener_dispatched_total', { listener: ke, service: 'eks' }), 0, 'a service not used yet starts at 0');
    assert.equal(value(e, 'ntptsd_listener_active_connections', { listener: ke }), 2);
    assert.equal(value(e, 'ntptsd_listener_active_connections', { listener: 'listener[1] 127.0.0.1:9975' }), 1);
    assert.equal(value(e, 'ntptsd_keyring_keys'), 3);
    assert.equal(value(e, 'ntptsd_keyring_rotations_total'), 2);
    assert.equal(value(e, 'ntptsd_keyring_current_key_age_seconds'), 3600);
    assert.equal(value(e, 'ntptsd_up'), 1);
    assert.equal(value(e, 'ntptsd_start_time_seconds'), 1_699_999_000);
    assert.equal(value(e, 'ntptsd_build_info', { version: '9.8.7', nodejs: process.versions.node }), 1);
  });

  it('values are read at scrape time: repeated scrapes never double-count, later scrapes see new events', async () => {
    const { metrics, ntp, ntsKe, keyRing } = fakeMetrics();
    const first = await metrics.text();
    assert.equal(await metrics.text(), first, 'nothing changed, nothing moves');
    ntp.received = 21;
    ntp['responses.nts'] = 6;
    ntp['drops.nts_auth_failed'] = 1;
    ntsKe['accepted.AES-SIV-CMAC-256'] = 5;
    keyRing.rotations = 3;
    const e = parseExposition(await metrics.text());
    assert.equal(value(e, 'ntptsd_ntp_requests_received_total'), 21);
    assert.equal(value(e, 'ntptsd_ntp_responses_total', { auth: 'nts' }), 6);
    assert.equal(value(e, 'ntptsd_ntp_dropped_total', { reason: 'nts_auth_failed' }), 1);
    assert.equal(value(e, 'ntptsd_ntske_handshakes_total', { outcome: 'accepted', aead: 'AES-SIV-CMAC-256' }), 5);
    assert.equal(value(e, 'ntptsd_keyring_rotations_total'), 3);
  });

  it('with no source attached, every series reads 0 (a scrape during start-up works)', async () => {
    const metrics = new DaemonMetrics({ defaultMetrics: false });
    const e = parseExposition(await metrics.text());
    checkConventions(e);
    assert.equal(value(e, 'ntptsd_ntp_requests_received_total'), 0);
    assert.equal(value(e, 'ntptsd_ntp_responses_total', { auth: 'none' }), 0);
    assert.equal(value(e, 'ntptsd_keyring_keys'), 0);
    assert.equal(e.samples.filter((s) => s.name === 'ntptsd_listener_active_connections').length, 0);
    assert.equal(value(e, 'ntptsd_build_info', { version }), 1, 'the package version by default');
  });

  it("prom-client's default process metrics carry the prefix; each instance has its own registry", async () => {
    const a = fakeMetrics(true).metrics;
    const b = fakeMetrics(true).metrics; // a second instance in one process: no "already registered" clash
    const e = parseExposition(await a.text());
    checkConventions(e);
    for (const name of ['ntptsd_process_cpu_seconds_total', 'ntptsd_process_start_time_seconds', 'ntptsd_nodejs_eventloop_lag_seconds', 'ntptsd_nodejs_heap_size_used_bytes']) {
      assert.ok(e.types.has(name), name);
    }
    for (const [name, type] of Object.entries(OWN_FAMILIES)) assert.equal(e.types.get(name), type, name);
    assert.ok(parseExposition(await b.text()).types.has('ntptsd_up'));
    assert.ok(!(await globalRegister.metrics()).includes('ntptsd_'), 'the global registry is left alone');
  });

  it('the content type is the Prometheus text format', () => {
    assert.match(fakeMetrics().metrics.contentType, /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface HttpReply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function request(port: number, path: string, method = 'GET'): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** 200 with the exposition at /metrics (GET, HEAD), 405 with Allow for other methods, 404 elsewhere. */
async function checkRoutes(port: number): Promise<void> {
  const ok = await request(port, '/metrics');
  assert.equal(ok.status, 200);
  assert.match(ok.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  assert.match(ok.body, /^ntptsd_up 1$/m);
  assert.equal((await request(port, '/metrics?name[]=ntptsd_up')).status, 200, 'query strings are ignored');
  const head = await request(port, '/metrics', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const refused = await request(port, '/metrics', method);
    assert.equal(refused.status, 405, method);
    assert.equal(refused.headers.allow, 'GET, HEAD');
  }
  for (const path of ['/', '/metric', '/metrics/', '/metrics/x', '/favicon.ico']) assert.equal((await request(port, path)).status, 404, path);
  assert.equal((await request(port, '/nope', 'POST')).status, 404, 'an unknown path is 404 whatever the method');
}

describe('metrics HTTP handler', () => {
  let server: http.Server;
  let port: number;
  before(async () => {
    server = http.createServer(metricsHandler(fakeMetrics().metrics));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((done) => server.close(() => done())));

  it('routes: GET/HEAD /metrics, 405, 404', () => checkRoutes(port));

  it('a failing collector gives 500, not a crash', async () => {
    const metrics = new DaemonMetrics({ defaultMetrics: false });
    metrics.attach({
      ntp: {
        counters: {
          snapshot() {
            throw new Error('boom');
          },
        },
        clients: { size: 0 },
      },
    });
    const broken = http.createServer(metricsHandler(metrics));
    await new Promise<void>((done) => broken.listen(0, '127.0.0.1', done));
    try {
      const reply = await request((broken.address() as net.AddressInfo).port, '/metrics');
      assert.equal(reply.status, 500);
      assert.match(reply.body, /boom/);
    } finally {
      await new Promise<void>((done) => broken.close(() => done()));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('example Grafana dashboard and Prometheus config', () => {
  it('the dashboard is valid JSON and queries only metrics the daemon exports', async () => {
    const dashboard = JSON.parse(readFileSync(join(root, 'examples/grafana-dashboard.json'), 'utf8')) as {
      title: string;
      uid: string;
      schemaVersion: number;
      panels: Array<{ id: number; title: string; type: string; targets?: Array<{ expr: string; refId: string }> }>;
    };
    assert.ok(dashboard.title && dashboard.uid && Number.isInteger(dashboard.schemaVersion));
    assert.ok(dashboard.panels.length >= 7);
    assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, 'panel ids are unique');
    const exposition = parseExposition(await fakeMetrics(true).metrics.text());
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      if (panel.type === 'row') continue;
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has queries`);
      for (const target of panel.targets) {
        for (const [name] of target.expr.matchAll(/ntptsd_[a-z0-9_]+/g)) {
          assert.ok(familyOf(exposition, name), `${panel.title}: ${name} is exported`);
          used.add(name.replace(/_(bucket|sum|count)$/, ''));
        }
      }
    }
    for (const name of [
      'ntptsd_ntp_responses_total',
      'ntptsd_ntp_dropped_total',
      'ntptsd_ntp_kiss_total',
      'ntptsd_ntske_handshakes_total',
      'ntptsd_ntske_handshake_duration_seconds',
      'ntptsd_listener_active_connections',
      'ntptsd_keyring_current_key_age_seconds',
    ]) {
      assert.ok(used.has(name), `the dashboard shows ${name}`);
    }
  });

  it('the Prometheus config scrapes 127.0.0.1:9975/metrics', () => {
    const text = readFileSync(join(root, 'examples/prometheus.yml'), 'utf8');
    assert.match(text, /^\s*-\s*job_name:\s*"?ntptsd"?\s*$/m);
    assert.match(text, /["']?127\.0\.0\.1:9975["']?/);
    assert.match(text, /^\s*metrics_path:\s*"?\/metrics"?\s*$/m);
    assert.match(text, /^\s*scheme:\s*"?http"?\s*$/m);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('metrics against the real daemon', () => {
  let daemon: RunningDaemon;
  let ntpPort: number;
  let kePort: number;
  let metricsPort: number;

  before(async () => {
    ntpPort = await freeUdpPort();
    kePort = await freeTcpPort();
    do metricsPort = await freeTcpPort();
    while (metricsPort === kePort);
    const extra = `
[[listener]]
address = "127.0.0.1:${metricsPort}"
services = ["metrics"]
`;
    daemon = await startDaemon({ config: loopbackConfig(ntpPort, kePort, extra) });
  });
  after(async () => {
    assert.equal(await daemon.stop(), 0, 'stops cleanly with a metrics listener');
  });

  const scrape = async () => {
    const reply = await request(metricsPort, '/metrics');
    assert.equal(reply.status, 200);
    return parseExposition(reply.body);
  };

  it('the metrics listener is plain HTTP: no TLS handshake, HTTP in the clear', async () => {
    const listening = await daemon.waitForLog((l) => l.msg === 'listening' && Array.isArray(l.services) && (l.services as string[]).includes('metrics'));
    assert.equal(listening.transport, 'plain');
    assert.equal(listening.address, `127.0.0.1:${metricsPort}`);
    await assert.rejects(
      new Promise<void>((resolvePromise, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: metricsPort, rejectUnauthorized: false, servername: 'localhost' });
        socket.once('secureConnect', () => {
          socket.destroy();
          resolvePromise();
        });
        socket.once('error', reject);
      }),
      'a TLS client gets no handshake',
    );
    const raw = await new Promise<string>((resolvePromise, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: metricsPort }, () => socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => (text += c));
      socket.on('end', () => resolvePromise(text));
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(raw, /\r\n\r\n# HELP /);
  });

  it('routes: GET/HEAD /metrics, 405, 404', () => checkRoutes(metricsPort));

  it('an NTP request and an NTS-KE exchange move the counters', async () => {
    const before = await scrape();
    checkConventions(before);
    assert.equal(value(before, 'ntptsd_up'), 1);
    assert.equal(value(before, 'ntptsd_build_info', { version }), 1);
    assert.equal(value(before, 'ntptsd_keyring_keys'), 1);
    assert.ok(value(before, 'ntptsd_keyring_current_key_age_seconds') >= 0);
    assert.ok(before.types.has('ntptsd_process_resident_memory_bytes'), 'default process metrics');
    const accepted = { outcome: 'accepted', aead: 'AES-SIV-CMAC-256' };
    const keListener = `listener[0] 127.0.0.1:${kePort}`;

    // One plain NTP request and one malformed datagram.
    const socket = createSocket('udp4');
    try {
      const ntpRequest = Buffer.alloc(48);
      ntpRequest[0] = (4 << 3) | 3;
      const reply = new Promise<Buffer>((resolvePromise, reject) => {
        const timer = setTimeout(() => reject(new Error('no NTP response')), 3000);
        socket.once('message', (msg) => (clearTimeout(timer), resolvePromise(msg)));
      });
      socket.send(Buffer.alloc(10), ntpPort, '127.0.0.1');
      socket.send(ntpRequest, ntpPort, '127.0.0.1');
      assert.equal((await reply).length, 48);
    } finally {
      socket.close();
    }
    // One NTS-KE exchange.
    const { cookies } = await ntsKeys(kePort, daemonCa(daemon.stateDir));
    assert.equal(cookies.length, 8);

    let after = await scrape();
    // The malformed datagram is counted when it arrives, with no reply to wait for: poll briefly.
    for (let i = 0; i < 50 && value(after, 'ntptsd_ntp_requests_received_total') < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await scrape();
    }
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    assert.equal(delta('ntptsd_ntp_requests_received_total'), 2);
    assert.equal(delta('ntptsd_ntp_responses_total', { auth: 'none' }), 1);
    assert.equal(delta('ntptsd_ntp_responses_total', { auth: 'nts' }), 0);
    assert.equal(delta('ntptsd_ntp_dropped_total', { reason: 'malformed' }), 1);
    assert.equal(value(after, 'ntptsd_ntp_clients'), 1);
    assert.equal(delta('ntptsd_ntske_requests_total'), 1);
    assert.equal(delta('ntptsd_ntske_handshakes_total', accepted), 1);
    assert.equal(delta('ntptsd_ntske_handshake_duration_seconds_count', { outcome: 'accepted' }), 1);
    assert.ok(value(after, 'ntptsd_ntske_handshake_duration_seconds_sum', { outcome: 'accepted' }) > 0);
    assert.equal(delta('ntptsd_listener_connections_total', { listener: keListener, event: 'accepted' }), 1);
    assert.equal(delta('ntptsd_listener_connections_total', { listener: keListener, event: 'dispatched' }), 1);
    assert.equal(delta('ntptsd_listener_dispatched_total', { listener: keListener, service: 'nts-ke' }), 1);
    const metricsListener = `listener[1] 127.0.0.1:${metricsPort}`;
    assert.ok(delta('ntptsd_listener_dispatched_total', { listener: metricsListener, service: 'metrics' }) >= 1, 'the scrape itself is a connection');
    assert.ok(value(after, 'ntptsd_listener_active_connections', { listener: metricsListener }) >= 1, 'the scrape in progress is open');
  });
});
