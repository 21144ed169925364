/**
 * The management SERVICE (src/server/services/mgmt.ts) without a daemon: a fake `DaemonControl` with canned
 * answers (those of mgmt-fake.ts) and an in-memory EKS issuance table, and the service attached to a Unix socket
 * (sessions are admin via peer) and a plain TCP listener on 127.0.0.1 (sessions start as `mgmt.anonymous`,
 * `monitor` here, and may `auth` with the tokens below). For methods whose daemon side is not wired yet, or
 * whose failures a real daemon cannot be made to produce on demand (a state directory that cannot be written).
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { MgmtConfig } from '../../src/config/types.js';
import type { EksKeyInfo, EksListResult, EksRevocationInfo, EksRevokeResult, Params } from '../../src/proto/mgmt/types.js';
import { ControlError, DaemonEvents, type DaemonControl, type EksView } from '../../src/server/mgmt/control.js';
import { MgmtService } from '../../src/server/services/mgmt.js';
import type { ConnectionContext } from '../../src/server/service.js';
import { KEYS, RELOADED, ROTATED, SERVICES, STATS, STATUS } from './mgmt-fake.js';

export const FAKE_ADMIN_TOKEN = 'fake-admin-token';
export const FAKE_MONITOR_TOKEN = 'fake-monitor-token';
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Keys of the fake table, most recently issued first (as `eks.list` answers); 32771 has expired. */
export const EKS_TABLE: readonly EksKeyInfo[] = [
  { keyId: 32772, generation: 305419896, issuedAt: '2025-01-02T11:30:00.000000Z', expiresAt: '2025-01-04T00:00:00.000000Z', expired: false, address: '192.0.2.7', token: 'routers', renewals: 0 },
  { keyId: 32771, generation: 3735928559, issuedAt: '2024-12-30T08:00:00.000000Z', expiresAt: '2025-01-01T00:00:00.000000Z', expired: true, address: '198.51.100.9', token: null, renewals: 1 },
  { keyId: 32770, generation: 305419896, issuedAt: '2025-01-02T11:00:00.000000Z', expiresAt: '2025-01-04T00:00:00.000000Z', expired: false, address: '2001:db8::1', token: null, renewals: 3 },
].sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));

/** `until` of a revocation in the fake: the latest expiry an id could have under the ring. */
export const EKS_REVOKED_UNTIL = '2025-01-09T00:00:00.000000Z';
export const EKS_REVOKED_AT = '2025-01-02T12:00:00.000000Z';

/** An in-memory `EksView`; `failSave` makes `revoke` fail as an unwritable state directory does. */
export class FakeEksView implements EksView {
  readonly keys: EksKeyInfo[] = [...EKS_TABLE];
  readonly revoked: EksRevocationInfo[] = [];
  readonly listCalls: Params<'eks.list'>[] = [];
  readonly revokeCalls: { keyId: number; by: string }[] = [];
  failSave = false;

  constructor(private readonly events: DaemonEvents) {}

  list(params: Params<'eks.list'>): EksListResult {
    this.listCalls.push(params);
    const keys = this.keys.filter((k) => params.expired || !k.expired).slice(0, params.limit);
    return { range: { first: 32768, last: 65535 }, live: this.keys.filter((k) => !k.expired).length, keys, revoked: [...this.revoked] };
  }

  async revoke(keyId: number, by: string): Promise<EksRevokeResult> {
    this.revokeCalls.push({ keyId, by });
    await Promise.resolve();
    if (this.failSave) throw new ControlError('BACKEND_UNAVAILABLE', 'cannot write the EKS state file: EACCES', { backend: 'state-dir' });
    const revocation = { keyId, revokedAt: EKS_REVOKED_AT, until: EKS_REVOKED_UNTIL, by };
    const at = this.revoked.findIndex((r) => r.keyId === keyId);
    if (at >= 0) this.revoked.splice(at, 1);
    this.revoked.push(revocation);
    this.events.emitEvent({ kind: 'key-revoked', keyId, by, until: EKS_REVOKED_UNTIL });
    return { keyId, revokedAt: EKS_REVOKED_AT, until: EKS_REVOKED_UNTIL, wasIssuedHere: this.keys.some((k) => k.keyId === keyId) };
  }
}

export interface FakeMgmtService {
  readonly service: MgmtService;
  readonly events: DaemonEvents;
  readonly eks: FakeEksView;
  /** The Unix socket (admin). */
  readonly socketPath: string;
  /** The plain TCP port on 127.0.0.1 (monitor until `auth`). */
  readonly port: number;
  /** What the service logged, one JSON object per entry. */
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** The real `MgmtService` with a fake daemon behind it. */
export async function startFakeMgmtService(): Promise<FakeMgmtService> {
  const events = new DaemonEvents();
  const eks = new FakeEksView(events);
  const mgmt: MgmtConfig = {
    anonymous: 'monitor',
    tokens: [
      { name: 'ops', role: 'admin', sha256: sha256(FAKE_ADMIN_TOKEN) },
      { name: 'grafana', role: 'monitor', sha256: sha256(FAKE_MONITOR_TOKEN) },
    ],
    clientCerts: [],
    requestRate: 0,
    requestBurst: 1,
  };
  const { session: _session, connections: _connections, ...status } = STATUS;
  let logLevel = STATUS.logLevel;
  const control: DaemonControl = {
    events,
    status: () => ({ ...status, logLevel }),
    services: () => SERVICES,
    stats: () => STATS,
    connections: () => 1,
    clients: () => ({ size: 0, mostRecent: () => [] }),
    keys: () => KEYS,
    rotateKeys: async () => ROTATED,
    reload: async () => RELOADED,
    logLevel: () => logLevel,
    setLogLevel: (level) => {
      logLevel = level;
    },
    mgmtConfig: () => mgmt,
    clientCaConfigured: () => false,
    ntpd: () => {
      throw new ControlError('BACKEND_UNAVAILABLE', 'no ntpd in this fake', { backend: 'ntpd' });
    },
    eks: () => eks,
  };
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const service = new MgmtService({ control, logger });

  const abort = new AbortController();
  let nextId = 1;
  const sockets = new Set<net.Socket>();
  const accept = (socket: net.Socket, remote: ConnectionContext['remote'], listener: string) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const context: ConnectionContext = {
      id: nextId++,
      listener,
      local: remote,
      remote,
      transport: 'plain',
      tls: null,
      maxMessageSize: 65536,
      signal: abort.signal,
      logger,
    };
    service.handleConnection(socket, context);
  };

  const dir = mkdtempSync(join(tmpdir(), 'ntptsd-mgmt-service-'));
  const socketPath = join(dir, 'mgmt.sock');
  const unix = net.createServer((socket) => accept(socket, { kind: 'unix', path: socketPath }, 'listener[0] mgmt.sock'));
  const tcp = net.createServer((socket) =>
    accept(socket, { kind: 'tcp', address: socket.remoteAddress ?? '127.0.0.1', port: socket.remotePort ?? 0, family: 'IPv4' }, 'listener[1] 127.0.0.1'),
  );
  const listen = (server: net.Server, ...args: unknown[]) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      (server.listen as (...a: unknown[]) => void)(...args, () => resolve());
    });
  await listen(unix, socketPath);
  await listen(tcp, 0, '127.0.0.1');
  const port = (tcp.address() as net.AddressInfo).port;

  return {
    service,
    events,
    eks,
    socketPath,
    port,
    logs,
    async close() {
      abort.abort();
      await service.stop();
      for (const s of sockets) s.destroy();
      await Promise.all([unix, tcp].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
