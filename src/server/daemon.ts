/**
 * The daemon: one process owning every listener. Start-up order matters:
 *   config → state dir → key ring → time source → NTP sockets → TLS material → services → TCP listeners
 *   → privilege drop → one "ready" log line.
 * SIGHUP reloads the config file and the certificates without dropping connections; the certificate files are
 * also watched. SIGTERM/SIGINT stop accepting, let exchanges in flight finish, persist state and exit 0.
 */
import { access, chown, constants, readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { PreciseClock } from '../clock/clock.js';
import { aeadByName } from '../crypto/aead.js';
import { aesEngine, useNativeAes } from '../crypto/aes.js';
import { loadNativeModule } from './native.js';
import { loadConfigFile, formatProblem, type Config, type ListenerConfig } from '../config/index.js';
import { refIdFromText, renderRefId } from '../proto/ntp/packet.js';
import type { CertificateInfo, ListenerInfo, LogLevel, ReloadResult, StatsResult, TimeStatus } from '../proto/mgmt/types.js';
import type { NtsKeServerSettings } from '../proto/ntske/server.js';
import { ChronySource } from '../source/chrony.js';
import { NtpdSource } from '../source/ntpd.js';
import type { SymmetricKey } from '../crypto/symmetric-mac.js';
import { NtpdBridge, loadNtpdKey } from './ntpd-bridge.js';
import { StaticSource } from '../source/static.js';
import type { TimeQuality, TimeSource } from '../source/source.js';
import { CertificateWatcher, loadTlsMaterial, type TlsMaterial } from './certificate.js';
import { KeyRingError, KeyRingStore } from './keyring-store.js';
import { ListenerSet, formatSocketAddress, type ListenerSpec } from './listeners.js';
import { createLogger, type Logger } from './log.js';
import { NtpService } from './ntp-service.js';
import { loadStaticMacKeys } from './ntp-keys.js';
import { EphemeralKeys } from '../crypto/ephemeral-keys.js';
import { StaticAndEphemeralKeys } from '../proto/ntp/mac-keys.js';
import type { PreparedMac } from '../crypto/symmetric-mac.js';
import { EksStore, EKS_JOURNAL_FILE, EKS_STATE_FILE } from './eks-store.js';
import { EksService } from './services/eks.js';
import { ServiceRegistry } from './service.js';
import { RateLimitSampler } from './mgmt/auth.js';
import { ControlError, DaemonEvents, isoMicros, type DaemonControl } from './mgmt/control.js';
import { MgmtService } from './services/mgmt.js';
import { VERSION } from '../version.js';
import { DaemonMetrics, createMetricsService } from './services/metrics.js';
import { NtsKeService } from './services/nts-ke.js';
import { ensureStateDir } from './state-files.js';

export interface RunDaemonOptions {
  readonly configPath: string | null;
  /** Re-applies command-line overrides (log level/format) to a reloaded config. */
  readonly applyOverrides?: (config: Config) => Config;
  /** Resolves when the daemon should stop (tests); signals are always honoured too. */
  readonly stopSignal?: AbortSignal;
}

const EXIT_STARTUP_FAILED = 1;

/** Top-level settings whose changes apply only at the next restart (they are fixed when the daemon starts). */
const RESTART_ONLY = new Set(['daemon.state-dir', 'daemon.user', 'daemon.log-format', 'ntp', 'time', 'ntpd', 'chrony', 'eks.key-lifetime']);
/** `ntp.keys-file` is re-read by every reload (its contents may change under the same name); the rest of `[ntp]` needs a restart. */
const withoutKeysFile = (ntp: Config['ntp']) => ({ ...ntp, keysFile: null });

/** The keys of `configToToml`-like sections that differ between two configs, in file order (`listener[1]`, `nts`, ...). */
export function changedKeys(before: Config, after: Config): { changed: string[]; restartRequired: string[] } {
  const changed: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (before.daemon.stateDir !== after.daemon.stateDir) changed.push('daemon.state-dir');
  if (before.daemon.user !== after.daemon.user) changed.push('daemon.user');
  if (before.daemon.logLevel !== after.daemon.logLevel) changed.push('daemon.log-level');
  if (before.daemon.logFormat !== after.daemon.logFormat) changed.push('daemon.log-format');
  if (!same(before.tls, after.tls)) changed.push('tls');
  if (!same(withoutKeysFile(before.ntp), withoutKeysFile(after.ntp))) changed.push('ntp');
  if (before.ntp.keysFile !== after.ntp.keysFile) changed.push('ntp.keys-file');
  if (!same(before.time, after.time)) changed.push('time');
  const listeners = Math.max(before.listeners.length, after.listeners.length);
  for (let i = 0; i < listeners; i++) if (!same(before.listeners[i], after.listeners[i])) changed.push(`listener[${i}]`);
  for (const key of ['nts', 'ntpd', 'chrony', 'mgmt', 'eks'] as const) if (!same(before[key], after[key])) changed.push(key);
  if (before.eks.keyLifetimeMs !== after.eks.keyLifetimeMs) changed.push('eks.key-lifetime');
  return { changed, restartRequired: changed.filter((k) => RESTART_ONLY.has(k) || k.startsWith('listener[')) };
}

/** `status.certificate` when no listener uses TLS. */
const NO_CERTIFICATE: CertificateInfo = { subject: '', notBefore: '', notAfter: '', sha256: '', selfSigned: false };

function certificateInfo(material: TlsMaterial): CertificateInfo {
  return {
    subject: material.subject.split('\n').join(', '),
    notBefore: material.notBefore.toISOString(),
    notAfter: material.notAfter.toISOString(),
    sha256: material.fingerprintSha256.replaceAll(':', '').toLowerCase(),
    selfSigned: material.generated,
  };
}

/** The certificate and key (`tls.*`), plus the client CA bundle when `tls.client-ca` is set. */
async function loadCredentials(config: Config): Promise<TlsMaterial & { readonly clientCaPem?: string }> {
  const material = await loadTlsMaterial({ certificate: config.tls.certificate ?? '', privateKey: config.tls.privateKey ?? '', stateDir: config.daemon.stateDir });
  if (config.tls.clientCa === null) return material;
  let clientCaPem: string;
  try {
    clientCaPem = await readFile(config.tls.clientCa, 'utf8');
  } catch (error) {
    throw Object.assign(new Error(`tls.client-ca: cannot read ${config.tls.clientCa} (${(error as NodeJS.ErrnoException).code ?? String(error)})`), { code: 'CLIENT_CA_UNREADABLE' });
  }
  return { ...material, clientCaPem };
}
const SHUTDOWN_GRACE_MS = 5_000;

export function ntsSettings(config: Config): NtsKeServerSettings {
  return {
    aeadAlgorithms: config.nts.aead.map((name) => (aeadByName(name) as NonNullable<ReturnType<typeof aeadByName>>).id),
    cookies: config.nts.cookies,
    ntpServer: config.nts.ntpServer ?? undefined,
    ntpPort: config.nts.ntpPort,
  };
}

/** `status.time` and the `source-changed` event: what the NTP service tells its clients now. */
function timeStatus(kind: string, quality: TimeQuality): TimeStatus {
  return {
    source: kind,
    synchronized: quality.stratum < 16 && quality.leap !== 'unsynchronized',
    stratum: quality.stratum,
    refid: renderRefId(quality.refid, quality.stratum),
    leap: quality.leap,
    rootDelay: quality.rootDelayMicros / 1e6,
    rootDispersion: quality.rootDispersionMicros / 1e6,
  };
}

interface SourceContext {
  readonly logger: Logger;
  readonly clock: PreciseClock;
  readonly onChange: (before: TimeQuality, after: TimeQuality, reason: string) => void;
}

function timeSource(config: Config, context: SourceContext, ntpdKey: SymmetricKey | null): TimeSource {
  const { time } = config;
  if (time.source === 'ntpd') {
    const { ntpd } = config;
    return new NtpdSource(
      {
        host: ntpd.address.host,
        port: ntpd.address.port,
        key: ntpdKey,
        pollMs: ntpd.pollMs,
        graceMs: ntpd.graceMs,
        timeoutMs: ntpd.timeoutMs,
        retries: ntpd.retries,
        precision: time.precision,
      },
      { logger: context.logger, clock: context.clock, onChange: context.onChange },
    );
  }
  if (time.source === 'chrony') {
    const { chrony } = config;
    return new ChronySource(
      { chronyc: chrony.chronyc, args: chrony.args, pollMs: chrony.pollMs, graceMs: chrony.graceMs, timeoutMs: chrony.timeoutMs, precision: time.precision },
      { logger: context.logger, clock: context.clock, onChange: context.onChange },
    );
  }
  return new StaticSource({
    stratum: time.stratum,
    refid: refIdFromText(time.refid),
    refidText: time.refid,
    precision: time.precision,
    rootDelayMicros: time.rootDelayMs * 1000,
    rootDispersionMicros: time.rootDispersionMs * 1000,
    leap: time.leap,
  });
}

function listenerSpec(listener: ListenerConfig, index: number): ListenerSpec {
  const common = {
    configKey: `listener[${index}]`,
    services: listener.services,
    // The config gives a one-service listener that service as default; ListenerSet takes a default on TLS only
    // (plain listeners serve their one service anyway).
    defaultService: listener.transport === 'tls' ? (listener.defaultService ?? undefined) : undefined,
    maxConnections: listener.maxConnections,
    maxConnectionsPerAddress: listener.maxConnectionsPerAddress,
    handshakeTimeoutMs: listener.handshakeTimeoutMs,
    idleTimeoutMs: listener.idleTimeoutMs,
    maxMessageSize: listener.maxMessageSize,
    tls: listener.transport === 'tls',
    nativeTls: listener.nativeTls,
  };
  if (listener.kind === 'unix') return { ...common, name: `listener[${index}] ${listener.path}`, path: listener.path, mode: listener.mode };
  const where = listener.address.family === 'ipv6' ? `[${listener.address.host}]:${listener.address.port}` : `${listener.address.host}:${listener.address.port}`;
  return { ...common, name: `listener[${index}] ${where}`, address: { host: listener.address.host, port: listener.address.port } };
}

/** Drops root to `user` after every socket is bound; the state dir is handed over first so rotation can write. */
async function dropPrivileges(user: string, stateDir: string, logger: Logger): Promise<void> {
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  await chown(stateDir, uid, gid);
  for (const file of ['keyring.json', EKS_STATE_FILE, EKS_JOURNAL_FILE, 'cert.pem', 'key.pem']) await chown(`${stateDir}/${file}`, uid, gid).catch(() => undefined);
  process.setgroups?.([gid]);
  process.setgid?.(gid);
  process.setuid?.(uid);
  // Rotation writes the key ring later: find out now, not at the first rotation, if the user cannot.
  try {
    await access(stateDir, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw Object.assign(
      new Error(`daemon.user: "${user}" cannot write daemon.state-dir ${stateDir} (${(error as NodeJS.ErrnoException).code}); make its parent directories traversable or choose another state-dir`),
      { code: 'STATE_DIR_NOT_WRITABLE' },
    );
  }
  logger.info({ user, uid, gid }, 'dropped privileges');
}

/** AES on the CPU's AES instructions when the native module offers them (every NTS request and cookie uses it). */
function selectAesEngine(): string {
  const native = loadNativeModule();
  if ('binding' in native) useNativeAes(native.binding);
  return aesEngine().name;
}

export async function runDaemon(initial: Config, options: RunDaemonOptions): Promise<number> {
  let config = initial;
  const logger = createLogger({ level: config.daemon.logLevel, format: config.daemon.logFormat });
  const clock = new PreciseClock(undefined, { onStep: (step) => logger.warn({ stepMicros: step }, 'system clock stepped; re-anchored') });
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  };

  const events = new DaemonEvents();
  const startedMicros = clock.nowMicros();
  const aesEngineName = selectAesEngine();

  try {
    await ensureStateDir(config.daemon.stateDir);
    const keyRing = await KeyRingStore.open({
      stateDir: config.daemon.stateDir,
      policy: { rotationMicros: config.nts.keyRotationMs * 1000, keysKept: config.nts.keysKept },
      clock,
      logger,
      onRotate: (added, dropped, { previous, by }) =>
        events.emitEvent({ kind: 'key-rotated', current: added.id, previous: previous.id, removed: dropped.map((k) => k.id), by }),
    });
    await keyRing.start();
    cleanups.push(() => keyRing.stop());

    // The mode 6 key is read once, at start: a missing key is a startup error naming ntpd.key-id.
    const ntpdKey = await loadNtpdKey(config.ntpd);
    const ntpdBridge = new NtpdBridge(config.ntpd, ntpdKey, () => clock.nowMicros());
    cleanups.push(() => ntpdBridge.close());
    const source = timeSource(config, {
      logger,
      clock,
      onChange: (before, after, reason) => {
        logger.info({ reason, stratum: after.stratum, refid: renderRefId(after.refid, after.stratum), leap: after.leap }, 'time source changed');
        events.emitEvent({ kind: 'source-changed', source: source.kind, previous: timeStatus(source.kind, before), current: timeStatus(source.kind, after) });
      },
    }, ntpdKey);
    cleanups.push(() => source.stop());
    // The first reading decides what the first responses say; a source that cannot be read answers "unsynchronised".
    await source.ready?.();
    // client-rate-limited events, sampled (docs/management.md §7); nothing is done while nobody subscribes.
    const sampler = new RateLimitSampler();
    const onRateLimited = (address: string) => {
      if (events.listenerCount('event') === 0) return;
      // Monotonic: a stepped wall clock must not silence the events.
      const suppressed = sampler.sample(address, performance.now());
      if (suppressed !== null) events.emitEvent({ kind: 'client-rate-limited', address, service: 'ntp', suppressed });
    };
    // Ephemeral keys (docs/eks.md): verified by every node holding the ring, issued by nodes serving "eks".
    // The lifetime is fixed at start: changing it changes the expiry of keys already issued (docs/eks.md §4).
    const eksLifetimeMicros = config.eks.keyLifetimeMs * 1000;
    const eksStore = await EksStore.open({
      stateDir: config.daemon.stateDir,
      range: { first: config.eks.keyIdFirst, last: config.eks.keyIdLast },
      logger,
      nowMicros: () => clock.nowMicros(),
      generationInRing: (generation) => keyRing.ring.get(generation) !== undefined,
      renewWindowMicros: eksLifetimeMicros,
    });
    eksStore.start();
    cleanups.push(() => eksStore.stop());
    const ephemeralKeys = new EphemeralKeys({
      keyRing: () => keyRing.ring,
      lifetimeMicros: () => eksLifetimeMicros,
      isRevoked: (keyId) => eksStore.table.isRevoked(keyId),
    });
    const macKeysFor = (staticKeys: ReadonlyMap<number, PreparedMac>) => new StaticAndEphemeralKeys({ static: staticKeys, ephemeral: ephemeralKeys });
    let macKeys = macKeysFor(await loadStaticMacKeys(config.ntp.keysFile));
    if (config.ntp.keysFile !== null) logger.info({ path: config.ntp.keysFile }, 'loaded the static MAC keys');
    const ntp = new NtpService({
      config: config.ntp,
      clock,
      keyRing: () => keyRing.ring,
      quality: (now) => source.current(now),
      logger,
      onRateLimited,
      macKeys: () => macKeys,
    });
    const ntpBound = await ntp.start();
    cleanups.push(() => ntp.stop());

    const needsTls = config.listeners.some((l) => l.transport === 'tls');
    let material: (TlsMaterial & { readonly clientCaPem?: string }) | undefined;
    if (needsTls) {
      material = await loadCredentials(config);
      logger.info(
        { certificate: material.paths.certificate, sha256: material.fingerprintSha256, generated: material.generated, notAfter: material.notAfter.toISOString() },
        material.generated ? 'using a self-signed certificate' : 'loaded the TLS certificate',
      );
    }

    // Metrics only when a listener serves them: no collectors or observers otherwise (listeners change at restart only).
    const metrics = config.listeners.some((l) => l.services.includes('metrics'))
      ? new DaemonMetrics({ nowMicros: () => clock.nowMicros(), startTimeSeconds: clock.nowMicros() / 1e6 })
      : undefined;
    const ntsKe = new NtsKeService({ settings: ntsSettings(config), keyRing: () => keyRing.ring, onExchange: metrics?.observeExchange });
    const registry = new ServiceRegistry().register(ntsKe);
    const eks = config.listeners.some((l) => l.services.includes('eks'))
      ? new EksService({ config: () => config.eks, keys: ephemeralKeys, store: eksStore, nowMicros: () => clock.nowMicros(), renewWindowMicros: eksLifetimeMicros })
      : undefined;
    if (eks) registry.register(eks);
    if (metrics) registry.register(createMetricsService(metrics));
    // The management service sees the daemon only through a `DaemonControl`, attached once everything runs.
    const mgmt = config.listeners.some((l) => l.services.includes('mgmt'))
      ? new MgmtService({ logger, requestClientCertificate: config.tls.clientCa !== null })
      : undefined;
    if (mgmt) registry.register(mgmt);
    cleanups.push(() => registry.stopAll()); // runs after the listeners have closed (cleanups run in reverse)
    const listeners = new ListenerSet({
      specs: config.listeners.map(listenerSpec),
      registry,
      tls: material,
      logger,
      onListenerError: (listener, code, message) => events.emitEvent({ kind: 'listener-error', listener, code, message }),
    });
    metrics?.attach({ ntp, ntsKe, eks, listeners, keyRing });
    const bound = await listeners.start();
    cleanups.push(() => listeners.close({ graceMs: SHUTDOWN_GRACE_MS }));

    let watcher: CertificateWatcher | undefined;
    /** Installs new TLS material; true (and a `certificate-reloaded` event) when the certificate changed. */
    const applyMaterial = (loaded: TlsMaterial & { readonly clientCaPem?: string }, clientCaPem = material?.clientCaPem): boolean => {
      const next = clientCaPem === undefined ? loaded : { ...loaded, clientCaPem };
      listeners.setSecureContext(next);
      const changed = material?.fingerprintSha256 !== next.fingerprintSha256;
      material = next;
      logger.info({ sha256: next.fingerprintSha256, notAfter: next.notAfter.toISOString() }, 'reloaded the TLS certificate');
      if (changed) events.emitEvent({ kind: 'certificate-reloaded', certificate: certificateInfo(next) });
      return changed;
    };
    const watchCertificates = () => {
      watcher?.close();
      watcher = undefined;
      if (material === undefined || material.generated) return;
      watcher = new CertificateWatcher({
        files: material.paths,
        current: material,
        onChange: (next) => void applyMaterial(next),
        onError: (error) => logger.error({ code: error.code }, `certificate change not applied: ${error.message}`),
        logger,
      });
      watcher.start();
    };
    watchCertificates();
    cleanups.push(() => watcher?.close());

    if (config.daemon.user !== null && config.daemon.user !== '') await dropPrivileges(config.daemon.user, config.daemon.stateDir, logger);

    logger.info(
      {
        ntp: ntpBound.map((b) => (b.address.includes(':') ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`)),
        ntpIo: ntp.io,
        aes: aesEngineName,
        listeners: bound.map((b) => ({ name: b.name, services: b.services, address: formatSocketAddress(b.address) })),
        source: source.describe(),
      },
      'ready',
    );

    /** SIGHUP and the management `reload` method: all or nothing, one at a time. Throws `ControlError`. */
    let reloading = false;
    const reload = async (by: string): Promise<ReloadResult> => {
      if (reloading) throw new ControlError('CONFLICT', 'a reload is in progress');
      reloading = true;
      try {
        let next = config;
        if (options.configPath === null) {
          logger.info('reload: no config file (built-in defaults); reloading certificates only');
        } else {
          const loaded = await loadConfigFile(options.configPath);
          if (!loaded.ok) {
            for (const problem of loaded.error.problems) logger.error(`reload refused: ${formatProblem(problem)}`);
            const problems = loaded.error.problems.map((p) => ({ path: p.path, reason: p.message }));
            if (loaded.error.code === 'CONFIG_UNREADABLE') {
              throw new ControlError('BACKEND_UNAVAILABLE', `cannot read ${options.configPath}: ${loaded.error.problems.map(formatProblem).join('; ')}`, { backend: 'config' });
            }
            throw new ControlError('CONFIG_INVALID', `${options.configPath} is not valid; the running configuration is unchanged`, { problems });
          }
          next = options.applyOverrides ? options.applyOverrides(loaded.value) : loaded.value;
        }
        // The certificate is read before anything is applied, so a reload is all or nothing.
        let nextMaterial: (TlsMaterial & { readonly clientCaPem?: string }) | undefined;
        if (needsTls) {
          try {
            nextMaterial = await loadCredentials(next);
          } catch (error) {
            logger.error({ err: error }, 'certificate reload failed; keeping the current configuration and certificate');
            throw new ControlError('BACKEND_UNAVAILABLE', `cannot load the TLS certificate: ${(error as Error).message}`, { backend: 'config' });
          }
        }
        let nextMacKeys: StaticAndEphemeralKeys;
        try {
          nextMacKeys = macKeysFor(await loadStaticMacKeys(next.ntp.keysFile));
        } catch (error) {
          logger.error(`reload refused: ${(error as Error).message}`);
          throw new ControlError('CONFIG_INVALID', (error as Error).message, { problems: [{ path: 'ntp.keys-file', reason: (error as Error).message }] });
        }
        const { changed, restartRequired } = changedKeys(config, next);
        if (restartRequired.length > 0) logger.warn({ keys: restartRequired }, 'these changes take effect at the next restart');
        logger.level = next.daemon.logLevel;
        ntsKe.update(ntsSettings(next));
        keyRing.setPolicy({ rotationMicros: next.nts.keyRotationMs * 1000, keysKept: next.nts.keysKept });
        macKeys = nextMacKeys;
        eksStore.table.setRange({ first: next.eks.keyIdFirst, last: next.eks.keyIdLast });
        config = next;
        let certificateReloaded = false;
        if (nextMaterial !== undefined) {
          certificateReloaded = applyMaterial(nextMaterial, nextMaterial.clientCaPem);
          watchCertificates();
        }
        logger.info({ path: options.configPath, by, changed }, 'configuration reloaded');
        events.emitEvent({ kind: 'config-reloaded', by, changed, restartRequired });
        return { config: options.configPath, changed, restartRequired, certificateReloaded };
      } finally {
        reloading = false;
      }
    };

    const control: DaemonControl = {
      events,
      status: () => {
        const now = clock.nowMicros();
        const quality = source.current(now);
        const ring = keyRing.ring;
        return {
          server: 'ntptsd',
          version: VERSION,
          startedAt: isoMicros(startedMicros),
          uptime: (now - startedMicros) / 1e6,
          logLevel: logger.level as LogLevel,
          config: options.configPath,
          time: source.kind === 'static' ? { ...timeStatus(source.kind, quality), refid: config.time.refid } : timeStatus(source.kind, quality),
          keys: { current: ring.current.id, count: ring.keys.length, nextRotation: isoMicros(ring.nextRotationMicros(keyRing.policy)) },
          certificate: material === undefined ? NO_CERTIFICATE : certificateInfo(material),
        };
      },
      services: () => {
        const infos: ListenerInfo[] = listeners.stats().map((l, i) => {
          const cfg = config.listeners[i];
          return {
            name: l.name,
            address: l.address?.kind === 'tcp' ? formatSocketAddress(l.address) : null,
            path: l.address?.kind === 'unix' ? l.address.path : null,
            transport: l.transport,
            services: cfg?.services ?? [],
            defaultService: cfg?.defaultService ?? null,
            connections: l.active,
            maxConnections: cfg?.maxConnections ?? 0,
            maxConnectionsPerAddress: cfg?.maxConnectionsPerAddress ?? 0,
          };
        });
        return { listeners: infos, services: registry.all().map((s) => ({ name: s.name, alpn: s.alpn, active: s.stats().active })) };
      },
      stats: (): StatsResult => {
        const now = clock.nowMicros();
        const services: Record<string, { active: number; counters: Record<string, number> }> = {};
        for (const s of registry.all()) {
          const stats = s.stats();
          services[s.name] = { active: stats.active, counters: { ...stats.counters } };
        }
        const listenerCounters: Record<string, Record<string, number>> = {};
        for (const l of listeners.stats()) {
          listenerCounters[l.name] = Object.fromEntries(Object.entries(l.counters).filter(([, v]) => v > 0));
        }
        return { at: isoMicros(now), uptime: (now - startedMicros) / 1e6, ntp: ntp.counters.snapshot(), services, listeners: listenerCounters };
      },
      connections: () => listeners.stats().reduce((n, l) => n + l.active, 0),
      clients: () => ntp.clients,
      keys: () => {
        const ring = keyRing.ring;
        const policy = keyRing.policy;
        return {
          current: ring.current.id,
          rotation: policy.rotationMicros / 1e6,
          nextRotation: isoMicros(ring.nextRotationMicros(policy)),
          kept: policy.keysKept,
          keys: ring.keys.map((k) => ({ id: k.id, createdAt: isoMicros(k.createdAtMicros), current: k.id === ring.current.id })),
        };
      },
      rotateKeys: async (by) => {
        if (keyRing.rotating) throw new ControlError('CONFLICT', 'a key rotation is in progress');
        try {
          const { added, dropped, previous } = await keyRing.rotate('admin', by);
          return { current: added.id, previous: previous.id, removed: dropped.map((k) => k.id) };
        } catch (error) {
          if (error instanceof KeyRingError) throw new ControlError('BACKEND_UNAVAILABLE', error.message, { backend: 'state-dir' });
          throw error;
        }
      },
      reload,
      logLevel: () => logger.level as LogLevel,
      setLogLevel: (level) => {
        logger.level = level;
      },
      mgmtConfig: () => config.mgmt,
      clientCaConfigured: () => material?.clientCaPem !== undefined,
      ntpd: () => ntpdBridge,
      eks: () => ({
        list: ({ limit, expired }) => {
          const now = clock.nowMicros();
          const table = eksStore.table;
          const live = table.live(now);
          const entries = (expired ? table.all() : live).sort((a, b) => b.issuedAtMicros - a.issuedAtMicros);
          return {
            range: table.range,
            live: live.length,
            keys: entries.slice(0, limit).map((k) => ({
              keyId: k.keyId,
              generation: k.generation,
              issuedAt: isoMicros(k.issuedAtMicros),
              expiresAt: isoMicros(k.expiresAtMicros),
              expired: k.expiresAtMicros <= now,
              address: k.address,
              token: k.token,
              renewals: k.renewals,
            })),
            revoked: table.revocations().map((r) => ({ keyId: r.keyId, revokedAt: isoMicros(r.revokedAtMicros), until: isoMicros(r.untilMicros), by: r.by })),
          };
        },
        revoke: async (keyId, by) => {
          const now = clock.nowMicros();
          // docs/eks.md §6: until every generation in the ring now has left it, so no key carrying the id can verify;
          // `until` is when that is expected (the oldest kept key goes first, one rotation at a time).
          const policy = keyRing.policy;
          const ring = keyRing.ring;
          const until = ring.nextRotationMicros(policy) + policy.keysKept * policy.rotationMicros;
          const wasIssuedHere = eksStore.table.get(keyId) !== undefined;
          // In force at once, whatever happens to the save: failing safe means refusing the key now.
          const entry = eksStore.table.revoke(keyId, now, ring.keys.map((k) => k.id), until, by);
          const revocation = entry.revocation;
          logger.warn({ keyId, by, until: isoMicros(until), wasIssuedHere }, 'management: ephemeral key revoked');
          events.emitEvent({ kind: 'key-revoked', keyId, by, until: isoMicros(until) });
          try {
            await eksStore.append(entry);
          } catch (error) {
            throw new ControlError('BACKEND_UNAVAILABLE', `key ${keyId} is revoked, but ${(error as Error).message}: the revocation would not survive a restart; revoke again`, { backend: 'state-dir' });
          }
          return { keyId, revokedAt: isoMicros(revocation.revokedAtMicros), until: isoMicros(until), wasIssuedHere };
        },
      }),
    };
    mgmt?.attach(control);

    return await new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (why: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ why }, 'shutting down');
        process.off('SIGHUP', onHup);
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        void cleanup().then(
          () => {
            logger.info('stopped');
            resolve(0);
          },
          (error: unknown) => {
            logger.error({ err: error }, 'error during shutdown');
            resolve(1);
          },
        );
      };
      const onHup = () =>
        void reload('signal').catch((error: unknown) => {
          if (error instanceof ControlError) logger.error({ code: error.code }, `reload failed: ${error.message}`);
          else logger.error({ err: error }, 'reload failed');
        });
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.on('SIGHUP', onHup);
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
      options.stopSignal?.addEventListener('abort', () => stop('stop requested'), { once: true });
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    logger.fatal({ code }, `cannot start: ${(error as Error).message}`);
    await cleanup().catch(() => undefined);
    return EXIT_STARTUP_FAILED;
  }
}
