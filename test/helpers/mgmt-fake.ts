/**
 * A small FAKE management server for client and CLI tests: speaks ntp-mgmt/1 (docs/management.md) over a Unix
 * socket or TLS with hand-written answers taken from the document's examples. It uses the protocol's pure core
 * (framing, request parsing, method table, role checks, params validation) so that its errors are the real
 * ones, but it runs no daemon: every result is canned, and tests can replace any answer.
 */
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { LineDecoder, NEED_DATA } from '../../src/proto/mgmt/framing.js';
import { encodeError, encodeNotification, encodeResult, lineErrorToRpc, parseLine, rpcError, RpcErrorCode, type JsonObject, type RpcError } from '../../src/proto/mgmt/jsonrpc.js';
import {
  checkParams,
  lookupMethod,
  METHODS,
  roleAllows,
  type AuthVia,
  type ClientsResult,
  type EksListResult,
  type EksRevokeResult,
  type HelloParams,
  type KeysResult,
  type ReloadResult,
  type RotateKeysResult,
  type ServicesResult,
  type SessionRole,
  type StatsResult,
  type StatusResult,
} from '../../src/proto/mgmt/types.js';
import type { TestCa } from '../interop/peers.js';

// ---------------------------------------------------------------------------------------------------------------
// Canned answers (docs/management.md §6 and §10)

export const STATUS: StatusResult = {
  server: 'ntptsd',
  version: '0.1.0',
  startedAt: '2025-01-02T03:04:05.000000Z',
  uptime: 86400.5,
  logLevel: 'info',
  config: '/etc/ntptsd/ntptsd.toml',
  time: { source: 'static', synchronized: true, stratum: 10, refid: 'LOCL', leap: 'none', rootDelay: 0, rootDispersion: 0 },
  keys: { current: 3735928559, count: 7, nextRotation: '2025-01-03T03:04:05.000000Z' },
  certificate: {
    subject: 'CN=localhost',
    notBefore: '2025-01-01T00:00:00.000000Z',
    notAfter: '2026-01-01T00:00:00.000000Z',
    sha256: 'ab'.repeat(32),
    selfSigned: true,
  },
  connections: 12,
  session: { role: 'admin', via: 'peer', identity: 'unix' },
};

export const SERVICES: ServicesResult = {
  listeners: [
    { name: 'listener[0] [::]:4460', address: '[::]:4460', path: null, transport: 'tls', services: ['nts-ke'], defaultService: 'nts-ke', connections: 3, maxConnections: 1024, maxConnectionsPerAddress: 64 },
    { name: 'listener[1] 127.0.0.1:4461', address: '127.0.0.1:4461', path: null, transport: 'tls', services: ['mgmt'], defaultService: null, connections: 1, maxConnections: 1024, maxConnectionsPerAddress: 64 },
    { name: 'listener[2] /var/lib/ntptsd/ntptsd.sock', address: null, path: '/var/lib/ntptsd/ntptsd.sock', transport: 'plain', services: ['mgmt'], defaultService: 'mgmt', connections: 1, maxConnections: 1024, maxConnectionsPerAddress: 64 },
  ],
  services: [
    { name: 'nts-ke', alpn: 'ntske/1', active: 3 },
    { name: 'mgmt', alpn: 'ntp-mgmt/1', active: 2 },
  ],
};

export const STATS: StatsResult = {
  at: '2025-01-02T12:00:00.000000Z',
  uptime: 43200,
  ntp: { requests: 1523, 'responses.nts': 1490, 'responses.none': 30, 'drops.malformed': 3 },
  services: { 'nts-ke': { active: 0, counters: { handshakes: 41 } }, mgmt: { active: 1, counters: { requests: 6 } } },
  listeners: { 'listener[0] [::]:4460': { accepted: 41 } },
};

export const CLIENTS: ClientsResult = {
  total: 3,
  matched: 2,
  clients: [
    { address: '192.0.2.7', firstSeen: '2025-01-02T10:00:00.000000Z', lastSeen: '2025-01-02T11:59:58.500000Z', packets: 1200, drops: 4, kods: 1, mode: 3, version: 4, auth: 'nts' },
    { address: '2001:db8::1', firstSeen: '2025-01-02T11:00:00.000000Z', lastSeen: '2025-01-02T11:59:00.000000Z', packets: 60, drops: 0, kods: 0, mode: 3, version: 4, auth: 'none' },
  ],
};

export const KEYS: KeysResult = {
  current: 3735928559,
  rotation: 86400,
  nextRotation: '2025-01-03T00:00:00.000000Z',
  kept: 7,
  keys: [
    { id: 305419896, createdAt: '2025-01-01T00:00:00.000000Z', current: false },
    { id: 3735928559, createdAt: '2025-01-02T00:00:00.000000Z', current: true },
  ],
};

export const ROTATED: RotateKeysResult = { current: 305419897, previous: 3735928559, removed: [] };
export const RELOADED: ReloadResult = { config: '/etc/ntptsd/ntptsd.toml', changed: ['nts', 'listener[1]'], restartRequired: [], certificateReloaded: false };

export const EKS_LIST: EksListResult = {
  range: { first: 32768, last: 65535 },
  live: 2,
  keys: [
    { keyId: 32772, generation: 305419896, issuedAt: '2025-01-02T11:30:00.000000Z', expiresAt: '2025-01-04T00:00:00.000000Z', expired: false, address: '192.0.2.7', token: 'routers', renewals: 0 },
    { keyId: 32770, generation: 3735928559, issuedAt: '2025-01-02T11:00:00.250000Z', expiresAt: '2025-01-03T00:00:00.000000Z', expired: false, address: '2001:db8::1', token: null, renewals: 12 },
  ],
  revoked: [{ keyId: 32769, revokedAt: '2025-01-02T10:00:00.000000Z', until: '2025-01-09T00:00:00.000000Z', by: 'ops' }],
};
/** The answer to `eks.revoke` (with the key id asked). */
export const EKS_REVOKED: EksRevokeResult = { keyId: 32770, revokedAt: '2025-01-02T12:00:00.000000Z', until: '2026-12-04T00:00:00.000000Z', wasIssuedHere: true };

export const KEY_ROTATED_EVENT = { kind: 'key-rotated', at: '2025-01-02T12:00:30.000000Z', current: 305419896, previous: 3735928559, removed: [], by: 'schedule' };
/** A kind from a later version: clients keep it. */
export const FUTURE_EVENT = { kind: 'sun-eclipsed', at: '2025-01-02T12:00:31.000000Z', magnitude: 0.9 };

// ---------------------------------------------------------------------------------------------------------------
// The server

export interface FakeTokens {
  readonly [token: string]: { readonly role: 'monitor' | 'admin'; readonly name: string };
}

export interface FakeMgmtOptions {
  /** Token → role and name. */
  readonly tokens?: FakeTokens;
  /** Role of an anonymous TLS session (`mgmt.anonymous`), default `none`. */
  readonly anonymous?: 'none' | 'monitor';
  /** Results by method, replacing the canned ones. */
  readonly results?: Readonly<Record<string, unknown>>;
  /** Errors by method, answered instead of a result (after the role and params checks). */
  readonly errors?: Readonly<Record<string, RpcError>>;
  /** Replace or add members of hello (e.g. `protocol: 2`). */
  readonly hello?: Partial<Record<keyof HelloParams, unknown>>;
  /** `silent`: accept and say nothing; `garbage`: send a line that is not JSON-RPC instead of hello. */
  readonly misbehave?: 'silent' | 'garbage' | 'no-answer';
  /** Milliseconds between `stats` notifications while subscribed (whatever the interval asked), default 50. */
  readonly tickMs?: number;
}

export interface FakeRequest {
  readonly method: string;
  readonly params: JsonObject;
  readonly id: unknown;
}

export interface FakeMgmt {
  /** Unix socket path, or TLS port. */
  readonly path?: string;
  readonly port?: number;
  /** Requests received, in order, on all connections. */
  readonly requests: FakeRequest[];
  /** Client certificates' CNs seen on TLS connections (undefined when none was sent). */
  readonly clientCertificates: (string | undefined)[];
  close(): Promise<void>;
}

interface Session {
  role: SessionRole;
  via: AuthVia;
  identity: string | null;
  failures: number;
  ticker?: NodeJS.Timeout;
}

const DEFAULT_RESULTS: Readonly<Record<string, unknown>> = {
  status: STATUS,
  services: SERVICES,
  stats: STATS,
  clients: CLIENTS,
  keys: KEYS,
  'rotate-keys': ROTATED,
  reload: RELOADED,
  'eks.list': EKS_LIST,
};

function serve(socket: net.Socket, session: Session, options: FakeMgmtOptions, requests: FakeRequest[], authList: string[]): void {
  if (options.misbehave === 'silent') return;
  if (options.misbehave === 'garbage') {
    socket.write('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const hello = {
    server: 'ntptsd',
    version: '0.1.0',
    protocol: 1,
    auth: authList,
    role: session.role,
    via: session.via,
    identity: session.identity,
    limits: { maxLineLength: 65536, maxPending: 16, idleTimeout: 30 },
    ...options.hello,
  };
  socket.write(encodeNotification('hello', hello));
  let logLevel = 'info';
  const decoder = new LineDecoder();
  const stopTicker = () => {
    clearInterval(session.ticker);
    session.ticker = undefined;
  };
  const send = (text: string) => {
    if (!socket.destroyed && socket.writable) socket.write(text);
  };
  const handle = (line: string) => {
    const parsed = parseLine(line);
    if (!parsed.ok) {
      if (!parsed.error.notification) send(encodeError(parsed.error.id, parsed.error.rpc));
      return;
    }
    const request = parsed.value;
    if (request === null) return;
    requests.push({ method: request.method, params: request.params, id: request.id });
    const id = request.id ?? null;
    const answer = (text: string) => {
      if (request.id !== undefined || request.form === 'text') send(text);
    };
    if (options.misbehave === 'no-answer') return;
    const found = lookupMethod(request.method);
    if (!found.ok) return answer(encodeError(id, found.error));
    const method = found.value;
    const required = METHODS[method].role;
    if (!roleAllows(session.role, required)) {
      return answer(
        encodeError(id, session.role === 'none' ? rpcError(RpcErrorCode.UNAUTHENTICATED) : rpcError(RpcErrorCode.FORBIDDEN, undefined, undefined, { required })),
      );
    }
    const params = checkParams(method, request.params, request.args);
    if (!params.ok) return answer(encodeError(id, params.error));
    const error = options.errors?.[method];
    if (error !== undefined) return answer(encodeError(id, error));
    switch (method) {
      case 'auth': {
        const token = (params.value as { token: string }).token;
        const found = options.tokens?.[token];
        if (found === undefined) {
          session.failures++;
          answer(encodeError(id, rpcError(RpcErrorCode.UNAUTHENTICATED, 'authentication failed')));
          if (session.failures >= 3) socket.end();
          return;
        }
        Object.assign(session, { role: found.role, via: 'token', identity: found.name });
        return answer(encodeResult(id, { role: found.role, via: 'token', identity: found.name }));
      }
      case 'log-level': {
        const level = (params.value as { level: string }).level;
        const previous = logLevel;
        logLevel = level;
        return answer(encodeResult(id, { previous, level }));
      }
      case 'subscribe': {
        const p = params.value as { interval: number; events: string[] };
        stopTicker();
        answer(encodeResult(id, { interval: p.interval, events: p.events }));
        let n = 0;
        const tick = () => {
          n++;
          if (p.interval > 0) send(encodeNotification('stats', { ...STATS, uptime: STATS.uptime + n, ntp: { ...STATS.ntp, requests: STATS.ntp['requests'] as number + n } }));
          if (n === 1) {
            if (p.events.includes('key-rotated')) send(encodeNotification('event', KEY_ROTATED_EVENT));
            send(encodeNotification('event', FUTURE_EVENT));
            send(encodeNotification('future-notification', { x: 1 }));
          }
        };
        tick();
        session.ticker = setInterval(tick, options.tickMs ?? 50);
        return;
      }
      case 'eks.revoke': {
        const keyId = (params.value as { keyId: number }).keyId;
        return answer(encodeResult(id, options.results?.[method] ?? { ...EKS_REVOKED, keyId, wasIssuedHere: EKS_LIST.keys.some((k) => k.keyId === keyId) }));
      }
      case 'unsubscribe': {
        const wasSubscribed = session.ticker !== undefined;
        stopTicker();
        return answer(encodeResult(id, { wasSubscribed }));
      }
      default:
        return answer(encodeResult(id, options.results?.[method] ?? DEFAULT_RESULTS[method] ?? {}));
    }
  };
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (;;) {
      const line = decoder.next();
      if (line === NEED_DATA) return;
      if (typeof line === 'string') handle(line);
      else send(encodeError(null, lineErrorToRpc(line)));
    }
  });
  socket.on('end', () => {
    const last = decoder.end();
    if (typeof last === 'string') handle(last);
    stopTicker();
    socket.end();
  });
  socket.on('close', stopTicker);
  socket.on('error', () => undefined);
}

/** A fake on a Unix socket in `dir` (the session is admin via peer, as on the daemon's socket). */
export async function startFakeUnix(dir: string, options: FakeMgmtOptions = {}): Promise<FakeMgmt> {
  const path = join(dir, 'ntptsd.sock');
  const requests: FakeRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(socket, { role: 'admin', via: 'peer', identity: 'unix', failures: 0 }, options, requests, ['peer', ...(options.tokens ? ['token'] : [])]);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    path,
    requests,
    clientCertificates: [],
    close: () => closeServer(server, sockets),
  };
}

/** A fake TLS management listener on 127.0.0.1 (ALPN ntp-mgmt/1); a client certificate with CN makes the session admin. */
export async function startFakeTls(ca: TestCa, options: FakeMgmtOptions = {}): Promise<FakeMgmt> {
  const requests: FakeRequest[] = [];
  const clientCertificates: (string | undefined)[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      cert: ca.serverCertPem,
      key: ca.serverKeyPem,
      ALPNProtocols: ['ntp-mgmt/1'],
      minVersion: 'TLSv1.3',
      // Asks for a certificate without requiring or verifying one: the fake only checks that one was sent.
      requestCert: true,
      rejectUnauthorized: false,
    },
    (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      const cn = socket.getPeerCertificate().subject?.CN;
      const name = Array.isArray(cn) ? cn[0] : cn;
      clientCertificates.push(name);
      const session: Session =
        name === undefined
          ? { role: options.anonymous ?? 'none', via: 'anonymous', identity: null, failures: 0 }
          : { role: 'admin', via: 'certificate', identity: name, failures: 0 };
      serve(socket, session, options, requests, [...(options.tokens ? ['token'] : []), 'certificate']);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  return { port, requests, clientCertificates, close: () => closeServer(server, sockets) };
}

function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
