/** The effective config back in file form (kebab-case TOML, durations as strings); loading it yields the same config. */
import { stringify } from 'smol-toml';
import type { Config, ListenerConfig } from './types.js';
import { formatCidr, formatDuration, formatHostPort, formatMode } from './values.js';

function listenerToToml(l: ListenerConfig): Record<string, unknown> {
  return {
    ...(l.kind === 'tcp' ? { address: formatHostPort(l.address) } : { path: l.path }),
    services: [...l.services],
    ...(l.defaultService === null ? {} : { 'default-service': l.defaultService }),
    'max-connections': l.maxConnections,
    'max-connections-per-address': l.maxConnectionsPerAddress,
    'handshake-timeout': formatDuration(l.handshakeTimeoutMs),
    'idle-timeout': formatDuration(l.idleTimeoutMs),
    'max-message-size': l.maxMessageSize,
    'native-tls': l.nativeTls,
    ...(l.kind === 'unix' ? { mode: formatMode(l.mode) } : {}),
  };
}

/** The file-form document (plain objects), in the order of docs/configuration.md. */
export function configToToml(config: Config): Record<string, unknown> {
  const { daemon, tls, ntp, time, nts, ntpd, chrony, mgmt, eks } = config;
  return {
    daemon: { 'state-dir': daemon.stateDir, user: daemon.user ?? '', 'log-level': daemon.logLevel, 'log-format': daemon.logFormat },
    tls: { certificate: tls.certificate ?? '', 'private-key': tls.privateKey ?? '', 'client-ca': tls.clientCa ?? '' },
    ntp: {
      listen: ntp.listen.map(formatHostPort),
      allow: ntp.allow.map(formatCidr),
      deny: ntp.deny.map(formatCidr),
      'keys-file': ntp.keysFile ?? '',
      'batch-io': ntp.batchIo,
      'rate-limit': {
        enabled: ntp.rateLimit.enabled,
        interval: formatDuration(ntp.rateLimit.intervalMs),
        burst: ntp.rateLimit.burst,
        kod: ntp.rateLimit.kod,
        'table-size': ntp.rateLimit.tableSize,
      },
    },
    time: {
      source: time.source,
      stratum: time.stratum,
      refid: time.refid,
      precision: time.precision,
      'root-delay': formatDuration(time.rootDelayMs),
      'root-dispersion': formatDuration(time.rootDispersionMs),
      leap: time.leap,
    },
    listener: config.listeners.map(listenerToToml),
    nts: {
      aead: [...nts.aead],
      cookies: nts.cookies,
      'ntp-server': nts.ntpServer ?? '',
      'ntp-port': nts.ntpPort,
      'key-rotation': formatDuration(nts.keyRotationMs),
      'keys-kept': nts.keysKept,
    },
    ntpd: {
      address: formatHostPort(ntpd.address),
      'key-id': ntpd.keyId ?? 0,
      'keys-file': ntpd.keysFile ?? '',
      poll: formatDuration(ntpd.pollMs),
      grace: formatDuration(ntpd.graceMs),
      timeout: formatDuration(ntpd.timeoutMs),
      retries: ntpd.retries,
    },
    chrony: {
      chronyc: chrony.chronyc,
      args: [...chrony.args],
      poll: formatDuration(chrony.pollMs),
      grace: formatDuration(chrony.graceMs),
      timeout: formatDuration(chrony.timeoutMs),
    },
    mgmt: {
      anonymous: mgmt.anonymous,
      'request-rate': mgmt.requestRate,
      'request-burst': mgmt.requestBurst,
      token: mgmt.tokens.map((t) => ({ name: t.name, role: t.role, sha256: t.sha256 })),
      'client-cert': mgmt.clientCerts.map((c) => ({ 'common-name': c.commonName, role: c.role })),
    },
    eks: {
      access: eks.access,
      'key-lifetime': formatDuration(eks.keyLifetimeMs),
      'key-id-range': [eks.keyIdFirst, eks.keyIdLast],
      'issue-burst': eks.issueBurst,
      'issue-interval': formatDuration(eks.issueIntervalMs),
      'ntp-server': eks.ntpServer ?? '',
      'ntp-port': eks.ntpPort,
      token: eks.tokens.map((t) => ({ name: t.name, sha256: t.sha256 })),
    },
  };
}

export function formatConfig(config: Config): string {
  return stringify(configToToml(config));
}
