/**
 * The daemon: one process owning every listener. Start-up order matters:
 *   config → state dir → key ring → time source → NTP sockets → TLS material → services → TCP listeners
 *   → privilege drop → one "ready" log line.
 * SIGHUP reloads the config file and the certificates without dropping connections; the certificate files are
 * also watched. SIGTERM/SIGINT stop accepting, let exchanges in flight finish, persist state and exit 0.
 */
import { access, chown, constants } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { PreciseClock } from '../clock/clock.js';
import { aeadByName } from '../crypto/aead.js';
import { loadConfigFile, formatProblem, encodeRefid, type Config, type ListenerConfig } from '../config/index.js';
import type { NtsKeServerSettings } from '../proto/ntske/server.js';
import { StaticSource } from '../source/static.js';
import type { TimeSource } from '../source/source.js';
import { CertificateWatcher, loadTlsMaterial, type TlsMaterial } from './certificate.js';
import { KeyRingStore } from './keyring-store.js';
import { ListenerSet, formatSocketAddress, type ListenerSpec } from './listeners.js';
import { createLogger, type Logger } from './log.js';
import { NtpService } from './ntp-service.js';
import { ServiceRegistry } from './service.js';
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
const SHUTDOWN_GRACE_MS = 5_000;

export function ntsSettings(config: Config): NtsKeServerSettings {
  return {
    aeadAlgorithms: config.nts.aead.map((name) => (aeadByName(name) as NonNullable<ReturnType<typeof aeadByName>>).id),
    cookies: config.nts.cookies,
    ntpServer: config.nts.ntpServer ?? undefined,
    ntpPort: config.nts.ntpPort,
  };
}

function refidNumber(refid: string): number {
  const bytes = encodeRefid(refid);
  return (((bytes[0] ?? 0) << 24) | ((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0)) >>> 0;
}

function timeSource(config: Config): TimeSource {
  const { time } = config;
  return new StaticSource({
    stratum: time.stratum,
    refid: refidNumber(time.refid),
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
  for (const file of ['keyring.json', 'cert.pem', 'key.pem']) await chown(`${stateDir}/${file}`, uid, gid).catch(() => undefined);
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

export async function runDaemon(initial: Config, options: RunDaemonOptions): Promise<number> {
  let config = initial;
  const logger = createLogger({ level: config.daemon.logLevel, format: config.daemon.logFormat });
  const clock = new PreciseClock(undefined, { onStep: (step) => logger.warn({ stepMicros: step }, 'system clock stepped; re-anchored') });
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  };

  try {
    await ensureStateDir(config.daemon.stateDir);
    const keyRing = await KeyRingStore.open({
      stateDir: config.daemon.stateDir,
      policy: { rotationMicros: config.nts.keyRotationMs * 1000, keysKept: config.nts.keysKept },
      clock,
      logger,
    });
    await keyRing.start();
    cleanups.push(() => keyRing.stop());

    const source = timeSource(config);
    cleanups.push(() => source.stop());
    const ntp = new NtpService({ config: config.ntp, clock, keyRing: () => keyRing.ring, quality: (now) => source.current(now), logger });
    const ntpBound = await ntp.start();
    cleanups.push(() => ntp.stop());

    const needsTls = config.listeners.some((l) => l.transport === 'tls');
    let material: TlsMaterial | undefined;
    if (needsTls) {
      material = await loadTlsMaterial({ certificate: config.tls.certificate ?? '', privateKey: config.tls.privateKey ?? '', stateDir: config.daemon.stateDir });
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
    if (metrics) registry.register(createMetricsService(metrics));
    cleanups.push(() => registry.stopAll()); // runs after the listeners have closed (cleanups run in reverse)
    const listeners = new ListenerSet({ specs: config.listeners.map(listenerSpec), registry, tls: material, logger });
    metrics?.attach({ ntp, ntsKe, listeners, keyRing });
    const bound = await listeners.start();
    cleanups.push(() => listeners.close({ graceMs: SHUTDOWN_GRACE_MS }));

    let watcher: CertificateWatcher | undefined;
    const applyMaterial = (next: TlsMaterial) => {
      listeners.setSecureContext(next);
      material = next;
      logger.info({ sha256: next.fingerprintSha256, notAfter: next.notAfter.toISOString() }, 'reloaded the TLS certificate');
    };
    const watchCertificates = () => {
      watcher?.close();
      watcher = undefined;
      if (material === undefined || material.generated) return;
      watcher = new CertificateWatcher({
        files: material.paths,
        current: material,
        onChange: applyMaterial,
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
        listeners: bound.map((b) => ({ name: b.name, services: b.services, address: formatSocketAddress(b.address) })),
        source: source.describe(),
      },
      'ready',
    );

    const reload = async () => {
      if (options.configPath === null) {
        logger.info('SIGHUP: no config file (built-in defaults); reloading certificates only');
      } else {
        const loaded = await loadConfigFile(options.configPath);
        if (!loaded.ok) {
          for (const problem of loaded.error.problems) logger.error(`reload refused: ${formatProblem(problem)}`);
          return;
        }
        const next = options.applyOverrides ? options.applyOverrides(loaded.value) : loaded.value;
        if (JSON.stringify(next.listeners) !== JSON.stringify(config.listeners) || JSON.stringify(next.ntp.listen) !== JSON.stringify(config.ntp.listen)) {
          logger.warn('listener or ntp.listen changes take effect at the next restart');
        }
        logger.level = next.daemon.logLevel;
        ntsKe.update(ntsSettings(next));
        keyRing.setPolicy({ rotationMicros: next.nts.keyRotationMs * 1000, keysKept: next.nts.keysKept });
        config = next;
      }
      if (needsTls) {
        try {
          applyMaterial(await loadTlsMaterial({ certificate: config.tls.certificate ?? '', privateKey: config.tls.privateKey ?? '', stateDir: config.daemon.stateDir }));
          watchCertificates();
        } catch (error) {
          logger.error({ err: error }, 'certificate reload failed; keeping the current certificate');
        }
      }
      logger.info({ path: options.configPath }, 'configuration reloaded');
    };

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
      const onHup = () => void reload().catch((error: unknown) => logger.error({ err: error }, 'reload failed'));
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
