/**
 * The mode 6 bridge: the `ntpd.*` management methods answered by the local ntpd/NTPsec at `ntpd.address`
 * (RFC 9327), so operators can close UDP mode 6 to the world and still run what `ntpq` shows over the
 * authenticated management channel. One Mode6Client (requests run one at a time, as ntpd prefers); its
 * failures become `ControlError`s with the documented codes.
 */
import { readFile } from 'node:fs/promises';
import { Mode6Client, Mode6Error } from '../client/mode6.js';
import type { SymmetricKey } from '../crypto/symmetric-mac.js';
import type { NtpdConfig } from '../config/types.js';
import type { NtpdMruEntry, NtpdMrulistResult, NtpdPeersResult, NtpdSysstatsResult, NtpdVarsResult, Params } from '../proto/mgmt/types.js';
import type { MruEntry, MruFilters } from '../proto/mode6/mru.js';
import { variableNumber, type Mode6Variables } from '../proto/mode6/variables.js';
import { parseKeysFile } from '../proto/ntp/keys-file.js';
import { ntpTimestampToUnixMicros } from '../proto/ntp/timestamp.js';
import { ControlError, isoMicros, type NtpdView } from './mgmt/control.js';

/** What `ntpq sysstats` reads from NTPsec (association 0). */
export const SYSSTATS_VARIABLES = [
  'ss_uptime',
  'ss_reset',
  'ss_received',
  'ss_thisver',
  'ss_oldver',
  'ss_ver1',
  'ss_ver1client',
  'ss_ver1zero',
  'ss_ver1symm',
  'ss_badformat',
  'ss_badauth',
  'ss_declined',
  'ss_restricted',
  'ss_limited',
  'ss_kodsent',
  'ss_processed',
] as const;

export class NtpdKeyError extends Error {
  override readonly name = 'NtpdKeyError';
}

/** The key `ntpd.key-id` of `ntpd.keys-file`, or null when none is configured. Throws NtpdKeyError naming the key. */
export async function loadNtpdKey(config: NtpdConfig): Promise<SymmetricKey | null> {
  if (config.keyId === null || config.keysFile === null) return null;
  let text: string;
  try {
    text = await readFile(config.keysFile, 'utf8');
  } catch (error) {
    throw new NtpdKeyError(`ntpd.keys-file: cannot read ${config.keysFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const parsed = parseKeysFile(text);
  if (!parsed.ok) throw new NtpdKeyError(`ntpd.keys-file: ${config.keysFile}: ${parsed.error.message}`);
  const key = parsed.value.keys.get(config.keyId);
  if (key === undefined) throw new NtpdKeyError(`ntpd.key-id: key ${config.keyId} is not in ${config.keysFile}`);
  return { keyId: key.keyId, algorithm: key.algorithm, key: key.key };
}

function hostPortText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function record(variables: Mode6Variables): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const item of variables.items) out[item.name] = item.value;
  return out;
}

const MRU_SORTS: Record<Params<'ntpd.mrulist'>['sort'], ((a: NtpdMruEntry, b: NtpdMruEntry) => number) | null> = {
  last: (a, b) => (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0),
  first: (a, b) => ((a.firstSeen ?? '') < (b.firstSeen ?? '') ? 1 : (a.firstSeen ?? '') > (b.firstSeen ?? '') ? -1 : 0),
  count: (a, b) => (b.count ?? 0) - (a.count ?? 0),
  address: (a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0),
};

export class NtpdBridge implements NtpdView {
  readonly #client: Mode6Client;
  readonly #where: string;
  readonly #now: () => number;

  constructor(config: NtpdConfig, key: SymmetricKey | null, nowMicros: () => number) {
    this.#where = hostPortText(config.address.host, config.address.port);
    this.#now = nowMicros;
    this.#client = new Mode6Client({
      host: config.address.host,
      port: config.address.port,
      timeoutMs: config.timeoutMs,
      retries: config.retries,
      now: nowMicros,
      // As ntpq: only what ntpd refuses unsigned is signed; a signed read resets ntpd's status-word event counts.
      ...(key !== null ? { key } : {}),
    });
  }

  close(): void {
    this.#client.close();
  }

  async peers(): Promise<NtpdPeersResult> {
    const rows = await this.#ask(() => this.#client.readPeers());
    return {
      server: this.#where,
      peers: rows.map((r) => ({
        assoc: r.associationId,
        tally: r.tally,
        selection: r.status.selectionName,
        remote: r.remote,
        refid: r.refid,
        stratum: r.stratum,
        type: r.type,
        // Never received: ntpd sends the zero timestamp (era 1, 2036), a negative age; ntpq prints '-'.
        when: r.when !== null && r.when >= 0 ? r.when : null,
        poll: r.poll,
        reach: r.reach.toString(8),
        delay: r.delay,
        offset: r.offset,
        jitter: r.jitter,
      })),
    };
  }

  async vars({ assoc, names }: Params<'ntpd.vars'>): Promise<NtpdVarsResult> {
    const reply = await this.#ask(() => this.#client.readVariables(assoc, names), assoc);
    return { server: this.#where, assoc, status: reply.status, variables: record(reply.variables) };
  }

  async sysstats(): Promise<NtpdSysstatsResult> {
    const reply = await this.#ask(() => this.#client.readVariables(0, SYSSTATS_VARIABLES));
    const counters: Record<string, number | string | null> = {};
    for (const item of reply.variables.items) counters[item.name] = item.value === null ? null : (variableNumber(item.value) ?? item.value);
    return { server: this.#where, counters };
  }

  async mrulist(params: Params<'ntpd.mrulist'>): Promise<NtpdMrulistResult> {
    const filters: MruFilters = {
      ...(params.mincount !== undefined ? { mincount: params.mincount } : {}),
      ...(params.laddr !== undefined ? { laddr: params.laddr } : {}),
      ...(params.resall !== undefined ? { resall: params.resall } : {}),
      ...(params.resany !== undefined ? { resany: params.resany } : {}),
      ...(params.maxlstint !== undefined ? { maxlstint: params.maxlstint } : {}),
    };
    const result = await this.#ask(() => this.#client.readMru(filters));
    const now = this.#now();
    const iso = (ts: MruEntry['last'] | null): string | null => {
      if (ts === null) return null;
      const micros = ntpTimestampToUnixMicros(ts, now);
      return micros === null ? null : isoMicros(micros);
    };
    let entries: NtpdMruEntry[] = result.entries.map((e) => ({
      address: e.host,
      port: e.port,
      firstSeen: iso(e.first),
      lastSeen: iso(e.last) ?? '',
      count: e.count,
      mode: e.mode,
      version: e.version,
      restrictions: e.restrictions === null ? null : `0x${e.restrictions.toString(16)}`,
    }));
    const compare = MRU_SORTS[params.sort];
    if (compare !== null) entries = entries.sort(compare);
    return {
      server: this.#where,
      now: iso(result.now),
      total: result.entries.length,
      truncated: result.truncated,
      entries: entries.slice(0, params.limit),
    };
  }

  /** Runs a mode 6 exchange; its failure becomes the documented management error. */
  async #ask<T>(run: () => Promise<T>, assoc?: number): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof Mode6Error)) throw error;
      const serverError = typeof error.details['serverError'] === 'string' ? error.details['serverError'] : undefined;
      if (error.code === 'SERVER_ERROR' && assoc !== undefined && assoc !== 0 && /association/i.test(serverError ?? error.message)) {
        throw new ControlError('NOT_FOUND', `ntpd at ${this.#where} has no association ${assoc}`, { assoc });
      }
      throw new ControlError('BACKEND_UNAVAILABLE', `ntpd at ${this.#where}: ${error.message}`, {
        backend: 'ntpd',
        mode6: error.code,
        ...(serverError !== undefined ? { serverError } : {}),
      });
    }
  }
}
