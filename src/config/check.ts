/**
 * Stage 2 of config loading: rules that relate several fields of an already well-typed config. Every rule runs;
 * the result lists every problem, keyed by the file's key paths (`listener[1].address`).
 *
 * Some rules concern services or time sources that are not available yet (`AVAILABLE_SERVICES` in types.ts), so no
 * file that passes the schema can trigger them today (the ntpd overlap, ...). They
 * stay, unit-tested on hand-built configs, for when those capabilities land.
 */
import { AVAILABLE_SERVICES, type Config, type ConfigProblem, type ListenerConfig, type ServiceName } from './types.js';
import { formatHostPort, type HostPort } from './values.js';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** Services that only make sense inside TLS (chosen by ALPN). */
const TLS_ONLY: readonly ServiceName[] = ['nts-ke', 'eks'];

/** Why a path listener cannot serve a service: they serve "mgmt" only, which may not have landed yet. */
const UNIX_ONLY_MGMT = `Unix sockets serve "mgmt" only${AVAILABLE_SERVICES.includes('mgmt') ? '' : ', which is not available in this version'}`;

/** Services that hand out keys for the NTP service, so they need one. */
const NEEDS_NTP: readonly ServiceName[] = ['nts-ke', 'eks'];

/**
 * Whether binding both addresses would collide. Port 0 never does (the kernel picks). A wildcard overlaps every
 * address of its own family only: the daemon binds `[::]` IPv6-only, so `0.0.0.0:P` and `[::]:P` coexist.
 * Host names are compared as text, since resolving them is not the checker's business.
 */
export function addressesOverlap(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  if (a.family !== b.family) return false;
  if (a.host === b.host) return true;
  const wildcard = a.family === 'ipv4' ? '0.0.0.0' : a.family === 'ipv6' ? '::' : null;
  return wildcard !== null && (a.host === wildcard || b.host === wildcard);
}

export function check(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const report = (path: string, message: string): void => {
    problems.push({ path, message });
  };

  if ((config.tls.certificate === null) !== (config.tls.privateKey === null)) {
    const missing = config.tls.certificate === null ? 'certificate' : 'private-key';
    const present = missing === 'certificate' ? 'private-key' : 'certificate';
    report(`tls.${missing}`, `must be set together with tls.${present} (set both or neither)`);
  }

  config.ntp.listen.forEach((address, i) => {
    const earlier = config.ntp.listen.findIndex((other, j) => j < i && addressesOverlap(address, other));
    if (earlier >= 0) {
      report(`ntp.listen[${i}]`, `${formatHostPort(address)} overlaps ntp.listen[${earlier}] (${formatHostPort(config.ntp.listen[earlier] as HostPort)})`);
    }
    if (config.time.source === 'ntpd' && addressesOverlap(address, config.ntpd.address)) {
      report(`ntp.listen[${i}]`, `${formatHostPort(address)} overlaps ntpd.address (${formatHostPort(config.ntpd.address)}), which time.source = "ntpd" reads from`);
    }
  });

  config.listeners.forEach((listener, i) => checkListener(listener, i, config.listeners, report));

  const servedBy = (service: ServiceName): number => config.listeners.findIndex((l) => l.services.includes(service));
  for (const service of NEEDS_NTP) {
    const index = servedBy(service);
    if (index >= 0 && config.ntp.listen.length === 0) {
      report('ntp.listen', `is empty, but listener[${index}] serves "${service}", which hands out keys for the NTP service`);
    }
  }

  // NTS-KE tells clients to use our own NTP port unless ntp-server points them elsewhere.
  const listen = config.ntp.listen;
  if (
    servedBy('nts-ke') >= 0 &&
    config.nts.ntpServer === null &&
    listen.length > 0 &&
    !listen.some((a) => a.port === 0) &&
    !listen.some((a) => a.port === config.nts.ntpPort)
  ) {
    const ports = [...new Set(listen.map((a) => a.port))].join(', ');
    report('nts.ntp-port', `NTS-KE advertises port ${config.nts.ntpPort}, but ntp.listen serves port ${ports} (set nts.ntp-server if another server answers)`);
  }

  config.nts.aead.forEach((aead, i) => {
    if (config.nts.aead.indexOf(aead) < i) report(`nts.aead[${i}]`, `"${aead}" is listed twice`);
  });

  config.mgmt.tokens.forEach((token, i) => {
    const sameName = config.mgmt.tokens.findIndex((t) => t.name === token.name);
    if (sameName < i) report(`mgmt.token[${i}].name`, `duplicate token name "${token.name}" (also mgmt.token[${sameName}])`);
    const sameHash = config.mgmt.tokens.findIndex((t) => t.sha256 === token.sha256);
    if (sameHash < i) report(`mgmt.token[${i}].sha256`, `same token as mgmt.token[${sameHash}]`);
  });

  if (config.ntpd.keyId !== null && config.ntpd.keysFile === null) {
    report('ntpd.keys-file', `must name the keys file holding ntpd.key-id ${config.ntpd.keyId}`);
  }
  if (config.ntpd.keyId === null && config.ntpd.keysFile !== null) {
    report('ntpd.key-id', 'must name the key of ntpd.keys-file to authenticate mode 6 requests with (1-65535)');
  }
  config.mgmt.clientCerts.forEach((cert, i) => {
    const same = config.mgmt.clientCerts.findIndex((c) => c.commonName === cert.commonName);
    if (same < i) report(`mgmt.client-cert[${i}].common-name`, `duplicate common name "${cert.commonName}" (also mgmt.client-cert[${same}])`);
  });
  if (config.mgmt.clientCerts.length > 0 && config.tls.clientCa === null) {
    report('mgmt.client-cert', 'maps client certificates to roles, but tls.client-ca is not set, so no client certificate is ever requested');
  }

  config.eks.tokens.forEach((token, i) => {
    const sameName = config.eks.tokens.findIndex((t) => t.name === token.name);
    if (sameName < i) report(`eks.token[${i}].name`, `duplicate token name "${token.name}" (also eks.token[${sameName}])`);
    const sameHash = config.eks.tokens.findIndex((t) => t.sha256 === token.sha256);
    if (sameHash < i) report(`eks.token[${i}].sha256`, `same token as eks.token[${sameHash}]`);
  });
  if (config.eks.access === 'token' && config.eks.tokens.length === 0 && servedBy('eks') >= 0) {
    report('eks.token', `eks.access = "token" but no [[eks.token]] is configured, so listener[${servedBy('eks')}] could never issue a key`);
  }
  // docs/eks.md §4: a key must outlive the rotation it was issued before, and its generation must still be in the ring when it expires.
  const { keyRotationMs, keysKept } = config.nts;
  if (config.eks.keyLifetimeMs <= keyRotationMs) {
    report('eks.key-lifetime', `${formatMs(config.eks.keyLifetimeMs)} must be longer than nts.key-rotation (${formatMs(keyRotationMs)}): a key issued just before a rotation would expire at once`);
  } else if (config.eks.keyLifetimeMs > (keysKept + 1) * keyRotationMs) {
    report('eks.key-lifetime', `${formatMs(config.eks.keyLifetimeMs)} is longer than the key ring keeps a generation ((nts.keys-kept + 1) x nts.key-rotation = ${formatMs((keysKept + 1) * keyRotationMs)})`);
  }

  return problems;
}

/** A duration for messages, in the largest unit that divides it. */
function formatMs(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function checkListener(
  listener: ListenerConfig,
  i: number,
  all: readonly ListenerConfig[],
  report: (path: string, message: string) => void,
): void {
  const at = `listener[${i}]`;
  listener.services.forEach((service, j) => {
    if (listener.services.indexOf(service) < j) report(`${at}.services[${j}]`, `service "${service}" is listed twice`);
  });
  if (listener.services.includes('metrics') && new Set(listener.services).size > 1) {
    report(`${at}.services`, '"metrics" is plain HTTP and must be alone on its listener');
  }
  if (listener.defaultService !== null && !listener.services.includes(listener.defaultService)) {
    report(`${at}.default-service`, `"${listener.defaultService}" is not one of this listener's services (${[...new Set(listener.services)].join(', ')})`);
  }
  if (listener.maxConnectionsPerAddress > listener.maxConnections) {
    report(`${at}.max-connections-per-address`, `${listener.maxConnectionsPerAddress} is more than max-connections (${listener.maxConnections})`);
  }

  if (listener.kind === 'unix') {
    listener.services.forEach((service, j) => {
      if (service === 'mgmt') return;
      const why = TLS_ONLY.includes(service) ? `needs TLS, which a path listener does not offer` : 'is not served on path listeners';
      report(`${at}.services[${j}]`, `"${service}" ${why} (${UNIX_ONLY_MGMT})`);
    });
    if (listener.services.includes('mgmt') && (listener.mode & 0o007) !== 0) {
      report(`${at}.mode`, `"${listener.mode.toString(8).padStart(4, '0')}" lets every local user open this socket, and its peers are management admins; use "0660" or stricter`);
    }
    const bytes = Buffer.byteLength(listener.path);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      report(`${at}.path`, `socket path is ${bytes} bytes long, more than the ${MAX_SOCKET_PATH_BYTES} a Unix socket allows`);
    }
    const earlier = all.findIndex((other, j) => j < i && other.kind === 'unix' && other.path === listener.path);
    if (earlier >= 0) report(`${at}.path`, `same socket path as listener[${earlier}] (${listener.path})`);
    return;
  }

  const address = listener.address;
  const earlier = all.findIndex((other, j) => j < i && other.kind === 'tcp' && addressesOverlap(address, other.address));
  const other = all[earlier];
  if (other?.kind === 'tcp') {
    report(`${at}.address`, `${formatHostPort(address)} overlaps listener[${earlier}] (${formatHostPort(other.address)})`);
  }
}
