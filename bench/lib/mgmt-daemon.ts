/**
 * Starts ntptsd for `npm run bench -- mgmt`: as shipped (the bench build of bench/lib/servers.ts
 * `buildForBench`, run by plain node), the leader of its own process group (its CPU is read from /proc by the
 * NTP generator), optionally pinned to a CPU, dying with the bench (setpriv --pdeathsig). Loopback only:
 *
 * - NTP on 127.0.0.1, a free port picked by the daemon (port 0), rate limiting off;
 * - management over TLS 1.3 on 127.0.0.1 (port 0; ALPN ntp-mgmt/1, the bench CA's localhost certificate),
 *   anonymous role `none`, one `monitor` token (random, only its SHA-256 in the file);
 * - management on a Unix socket in the state directory (the peer is admin);
 * - no NTS-KE listener: the bench does not use it.
 *
 * Launched by bench/lib/servers.ts `launchNtptsd`; the bound addresses are read from the daemon's "ready" log
 * line. Only this process (and any helper left in its group) is ever signalled, by PID: SIGTERM, then SIGKILL
 * after 5 s.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { launchNtptsd, type NtptsdOptions } from './servers.js';

export interface MgmtDaemon {
  readonly pid: number;
  readonly ntpPort: number;
  readonly tls: { readonly host: string; readonly port: number };
  readonly socketPath: string;
  /** The monitor token for TLS sessions. */
  readonly token: string;
  readonly version: string;
  /** The daemon's output (the last ~64 KiB), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/** `host:port` or `[v6]:port` → its port. */
function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in "${address}"`);
  return port;
}

export async function startMgmtDaemon(opts: NtptsdOptions): Promise<MgmtDaemon> {
  const token = randomBytes(24).toString('base64url');
  const stateDir = join(opts.dir, 'state');
  const socketPath = join(stateDir, 'mgmt.sock');
  const { pid, ready, version, output, stop } = await launchNtptsd({
    ...opts,
    stateDir,
    ntpListen: '127.0.0.1:0',
    extraConfig: `
[[listener]]
address = "127.0.0.1:0"
services = ["mgmt"]
default-service = "mgmt"
max-connections = 1024
max-connections-per-address = 1024

[[listener]]
path = "${socketPath}"
services = ["mgmt"]
max-connections = 1024
max-connections-per-address = 1024

[mgmt]
anonymous = "none"

[[mgmt.token]]
name = "bench"
role = "monitor"
sha256 = "${createHash('sha256').update(token, 'utf8').digest('hex')}"
`,
  });
  try {
    const ntp = ready.ntp[0];
    const tls = ready.listeners.find((l) => l.services.includes('mgmt') && /:\d+$/.test(l.address) && !l.address.startsWith('/'));
    if (ntp === undefined || tls === undefined) throw new Error(`the ready line lacks the NTP or the TLS management address: ${JSON.stringify(ready)}`);
    if (!existsSync(socketPath)) throw new Error(`no management socket at ${socketPath}`);
    return { pid, ntpPort: portOf(ntp), tls: { host: '127.0.0.1', port: portOf(tls.address) }, socketPath, token, version, output, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
