/**
 * The management load process of `npm run bench -- mgmt`, forked with an IPC channel (like bench/lib/loadgen.ts
 * for NTP, and apart from it, so that neither the daemon nor the NTP generator pays for this one's work).
 *
 * - `setup`: opens N management connections with the project's client (src/client/mgmt.ts, `MgmtClient`),
 *   dealt round robin over the targets (Unix socket: admin by peer; TLS: verified against the bench CA, then
 *   `auth` with a monitor token), and checks each session's role.
 * - `run`: every client cycles through the mix status → stats → clients limit=20 → keys (client i starts at
 *   i % 4), one request in flight each: a closed loop, or paced overall with `rate`. Every answer is verified
 *   (below); latency is the time from `call()` to its answer, kept for the answers that arrive inside the
 *   measured window; so is the daemon's CPU (utime + stime of its process group, /proc) over that window.
 *   After the window no new requests start and those in flight get their timeout to finish. A connection that
 *   fails is counted and opened again.
 * - `close`: closes every connection. The process exits when the IPC channel closes.
 *
 * Verification: `status` is ntptsd's with the session's expected role and at least one connection; `stats` has
 * an `ntp.received` counter that never goes backwards on one connection and a `mgmt` service entry; `clients`
 * returns min(20, matched) entries (the NTP load's address among them: matched ≥ 1), matched ≤ total; `keys`
 * has exactly one current key, the one `current` names, and no more than `kept`.
 */
import { performance } from 'node:perf_hooks';
import { MgmtClient, MgmtConnectionError, MgmtError } from '../../src/client/mgmt.js';
import { cpuMicros, processGroupMembers } from './procstat.js';
import {
  CLIENTS_LIMIT,
  MGMT_MIX,
  type LatencySummary,
  type MgmtReply,
  type MgmtRequest,
  type MgmtRunRequest,
  type MgmtRunResult,
  type MgmtSetupRequest,
  type MgmtTarget,
  type MgmtTransport,
  type MixMethod,
} from './mgmt-protocol.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function bump(errors: Record<string, number>, reason: string): void {
  errors[reason] = (errors[reason] ?? 0) + 1;
}

interface LoadClient {
  readonly index: number;
  readonly target: MgmtTarget;
  client: MgmtClient | undefined;
  /** Position in the mix. */
  next: number;
  /** Highest `stats.ntp.received` seen on this connection. */
  lastReceived: number;
}

let setup: MgmtSetupRequest | undefined;
const clients: LoadClient[] = [];

function connect(target: MgmtTarget, req: MgmtSetupRequest): Promise<MgmtClient> {
  const common = { connectTimeoutMs: req.connectTimeoutMs, timeoutMs: req.callTimeoutMs };
  if (target.transport === 'unix') return MgmtClient.connect({ ...common, socket: target.socket as string });
  return MgmtClient.connect({
    ...common,
    host: target.host as string,
    port: target.port as number,
    ca: target.caPem as string,
    servername: target.servername as string,
    token: target.token as string,
  });
}

async function open(c: LoadClient, req: MgmtSetupRequest): Promise<void> {
  const client = await connect(c.target, req);
  if (client.session.role !== c.target.expectRole) {
    client.destroy();
    throw new Error(`${c.target.transport} session ${c.index} has role ${client.session.role}, expected ${c.target.expectRole}`);
  }
  c.client = client;
  c.lastReceived = 0;
}

async function runSetup(req: MgmtSetupRequest): Promise<MgmtReply> {
  setup = req;
  const t0 = performance.now();
  for (let i = 0; i < req.clients; i++) {
    clients.push({ index: i, target: req.targets[i % req.targets.length] as MgmtTarget, client: undefined, next: i % MGMT_MIX.length, lastReceived: 0 });
  }
  // At most 16 handshakes at once.
  let started = 0;
  const worker = async () => {
    while (started < clients.length) await open(clients[started++] as LoadClient, req);
  };
  await Promise.all(Array.from({ length: Math.min(16, clients.length) }, worker));
  const connected: Record<MgmtTransport, number> = { unix: 0, tls: 0 };
  for (const c of clients) connected[c.target.transport]++;
  return { type: 'ready', connectMs: performance.now() - t0, connected };
}

// ---------------------------------------------------------------------------------------------------------------
// Verification of answers: a reason when the answer is wrong, else null.

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function verify(method: MixMethod, result: unknown, c: LoadClient): string | null {
  if (!isObject(result)) return 'not_an_object';
  switch (method) {
    case 'status': {
      if (result['server'] !== 'ntptsd' || typeof result['version'] !== 'string') return 'server';
      if (typeof result['uptime'] !== 'number' || result['uptime'] < 0) return 'uptime';
      const session = result['session'];
      if (!isObject(session) || session['role'] !== c.target.expectRole) return 'session_role';
      const time = result['time'];
      if (!isObject(time) || !isCount(time['stratum'])) return 'time';
      const keys = result['keys'];
      if (!isObject(keys) || !isCount(keys['current']) || !isCount(keys['count']) || keys['count'] < 1) return 'keys';
      if (!isCount(result['connections']) || result['connections'] < 1) return 'connections';
      return null;
    }
    case 'stats': {
      if (typeof result['at'] !== 'string' || typeof result['uptime'] !== 'number') return 'at';
      const ntp = result['ntp'];
      if (!isObject(ntp)) return 'ntp';
      const received = ntp['received'];
      if (!isCount(received)) return 'ntp_received';
      if (received < c.lastReceived) return 'counter_went_back';
      c.lastReceived = received;
      const services = result['services'];
      if (!isObject(services) || !isObject(services['mgmt'])) return 'services';
      if (!isObject(result['listeners'])) return 'listeners';
      return null;
    }
    case 'clients': {
      const list = result['clients'];
      const total = result['total'];
      const matched = result['matched'];
      if (!Array.isArray(list) || !isCount(total) || !isCount(matched)) return 'shape';
      if (matched > total) return 'matched_above_total';
      if (matched < 1) return 'no_clients'; // the NTP load (from phase A1 on) put 127.0.0.1 in the table
      if (list.length !== Math.min(CLIENTS_LIMIT, matched)) return 'count';
      for (const entry of list) if (!isObject(entry) || typeof entry['address'] !== 'string' || !isCount(entry['packets'])) return 'entry';
      return null;
    }
    case 'keys': {
      const current = result['current'];
      const keys = result['keys'];
      const kept = result['kept'];
      if (!isCount(current) || !Array.isArray(keys) || !isCount(kept)) return 'shape';
      if (keys.length < 1 || keys.length > kept) return 'key_count';
      const marked = keys.filter((k) => isObject(k) && k['current'] === true);
      if (marked.length !== 1 || (marked[0] as Json)['id'] !== current) return 'current';
      for (const k of keys) if (!isObject(k) || !isCount(k['id']) || typeof k['createdAt'] !== 'string') return 'entry';
      return null;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run

function summarize(samples: number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const sorted = Float64Array.from(samples).sort();
  // Nearest rank: the smallest sample with at least q of all samples at or below it.
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
  let sum = 0;
  for (const s of sorted) sum += s;
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] as number, mean: sum / sorted.length };
}

function call(client: MgmtClient, method: MixMethod): Promise<unknown> {
  switch (method) {
    case 'status':
      return client.call('status');
    case 'stats':
      return client.call('stats');
    case 'clients':
      return client.call('clients', { limit: CLIENTS_LIMIT });
    case 'keys':
      return client.call('keys');
  }
}

async function runLoad(req: MgmtRunRequest): Promise<MgmtRunResult> {
  const config = setup;
  if (config === undefined || clients.length === 0) throw new Error('run before setup');
  const errors: Record<string, number> = {};
  const samples = { all: [] as number[], unix: [] as number[], tls: [] as number[] };
  const byMethod: Record<MixMethod, number[]> = { status: [], stats: [], clients: [], keys: [] };
  let running = true;
  let measuring = false;
  let sent = 0;
  let completed = 0;
  let totalCompleted = 0;
  let reconnects = 0;
  const t0 = performance.now();
  let issued = 0;
  /** Paced: claims the next start and waits until it is due. */
  const pace = async () => {
    if (req.rate <= 0) return;
    const wait = t0 + (issued++ * 1000) / req.rate - performance.now();
    if (wait > 0) await sleep(wait);
  };

  const loop = async (c: LoadClient) => {
    while (running && sent < req.maxRequests) {
      const client = c.client;
      if (client === undefined || !client.isOpen) {
        c.client = undefined;
        await sleep(50); // do not spin on a refusing server
        if (!running) break;
        try {
          await open(c, config);
          reconnects++;
        } catch (error) {
          bump(errors, `reconnect:${error instanceof MgmtConnectionError ? error.code : error instanceof MgmtError ? error.reason : 'error'}`);
        }
        continue;
      }
      await pace();
      if (!running) break;
      const method = MGMT_MIX[c.next % MGMT_MIX.length] as MixMethod;
      c.next++;
      sent++;
      const start = performance.now();
      try {
        const result = await call(client, method);
        const latency = performance.now() - start;
        const problem = verify(method, result, c);
        if (problem !== null) {
          bump(errors, `bad:${method}:${problem}`);
          continue;
        }
        totalCompleted++;
        if (measuring) {
          completed++;
          samples.all.push(latency);
          samples[c.target.transport].push(latency);
          byMethod[method].push(latency);
        }
      } catch (error) {
        if (error instanceof MgmtError) bump(errors, `error:${method}:${error.reason}`);
        else if (error instanceof MgmtConnectionError) bump(errors, `connection:${error.code}`);
        else bump(errors, `exception:${error instanceof Error ? error.name : 'unknown'}`);
      }
    }
  };

  const loops = clients.map(loop);
  await sleep(req.warmupMs);
  const pids = processGroupMembers(req.serverPgid);
  if (pids.length === 0) {
    running = false;
    await Promise.all(loops);
    throw new Error(`no process left in group ${req.serverPgid}: did the daemon die?`);
  }
  const cpu0 = process.cpuUsage();
  const server0 = cpuMicros(pids);
  const w0 = performance.now();
  measuring = true;
  await sleep(req.measureMs);
  measuring = false;
  const w1 = performance.now();
  const server1 = cpuMicros(pids);
  const cpu = process.cpuUsage(cpu0);
  running = false;
  await Promise.all(loops); // each has at most one call in flight, bounded by the call timeout

  const byTransport: MgmtRunResult['byTransport'] = {};
  for (const t of ['unix', 'tls'] as const) if (clients.some((c) => c.target.transport === t)) byTransport[t] = summarize(samples[t]);
  const methods: MgmtRunResult['byMethod'] = {};
  for (const m of MGMT_MIX) methods[m] = summarize(byMethod[m]);
  return {
    type: 'result',
    windowMs: w1 - w0,
    completed,
    generatorCpuUs: cpu.user + cpu.system,
    serverCpuUs: server1 - server0,
    all: summarize(samples.all),
    byTransport,
    byMethod: methods,
    totalCompleted,
    errors,
    reconnects,
    capped: sent >= req.maxRequests,
  };
}

async function closeAll(): Promise<MgmtReply> {
  await Promise.all(clients.splice(0).map((c) => c.client?.close().catch(() => undefined)));
  return { type: 'closed' };
}

async function handle(req: MgmtRequest): Promise<MgmtReply> {
  switch (req.type) {
    case 'setup':
      return runSetup(req);
    case 'run':
      return runLoad(req);
    case 'close':
      return closeAll();
  }
}

const send = (reply: MgmtReply) => process.send?.(reply);
process.on('message', (req: MgmtRequest) => {
  handle(req).then(send, (error: unknown) => send({ type: 'failure', message: error instanceof Error ? error.message : String(error) }));
});
process.on('disconnect', () => {
  for (const c of clients) c.client?.destroy();
  process.exit(0);
});
