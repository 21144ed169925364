/**
 * Pure helpers of `ntptsc ekey` (docs/eks.md): the output for people and scripts, and the renewal schedule.
 * No I/O, no clock: tests call them directly.
 *
 * Unlike the other JSON documents of ntptsc, the `ekey` document carries key material: handing the key over is
 * what the command is for.
 */
import type { EphemeralKeyResult } from '../client/eks.js';
import { EPHEMERAL_KEY_ID_MAX, EPHEMERAL_KEY_ID_MIN, isEphemeralKeyId } from '../crypto/ephemeral-keys.js';
import { formatKeyLine, type KeysFileFormat } from '../proto/eks/keys-file.js';
import type { Parsed } from './format.js';

export const EKEY_FORMATS = ['ntp', 'chrony', 'json'] as const;
export type EkeyFormat = (typeof EKEY_FORMATS)[number];

/** Renewal at 2/3 of the lifetime (docs/eks.md §2: scheduled from the lifetime, never from the expiry). */
export const RENEW_FRACTION = 2 / 3;
/** However short the lifetime the server gives, never renew more often than this. */
export const MIN_RENEW_WAIT_MS = 10_000;
/** Retries after a failed renewal: 10 s, 20 s, 40 s, ... up to 10 min. */
export const RETRY_BASE_MS = 10_000;
export const RETRY_MAX_MS = 600_000;
/** Before the expiry, a retry is never further away than half the time left (at least this). */
export const MIN_RETRY_MS = 1_000;

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** ISO 8601 in UTC without milliseconds: `2026-11-28T17:40:00Z`. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Why an issued key id is refused, or null when it is acceptable: an EKS server issues ids 32768..65535 only
 * (docs/eks.md §3); anything else would land among the operator's static keys (1..32767) or beyond what ntpd takes.
 */
export function issuedKeyIdProblem(keyId: number): string | null {
  if (isEphemeralKeyId(keyId)) return null;
  return `key id ${keyId} is outside the ephemeral key range ${EPHEMERAL_KEY_ID_MIN}..${EPHEMERAL_KEY_ID_MAX} (docs/eks.md §3)`;
}

/** The key line of a keys file (ntpd/NTPsec or chrony syntax). */
export function keyLine(result: Pick<EphemeralKeyResult, 'keyId' | 'key'>, format: KeysFileFormat): string {
  return formatKeyLine({ keyId: result.keyId, key: result.key }, format);
}

/** `server HOST [port P] key ID`: what the NTP client's configuration needs (chrony and ntpd spell it alike). */
export function serverDirective(result: Pick<EphemeralKeyResult, 'keyId' | 'ntpHost' | 'ntpPort'>): string {
  return `server ${result.ntpHost}${result.ntpPort === 123 ? '' : ` port ${result.ntpPort}`} key ${result.keyId}`;
}

/** The line for people on stderr: `key 32770 expires 2026-11-28T17:40:00Z; use: server HOST key 32770`. */
export function useHint(result: Pick<EphemeralKeyResult, 'keyId' | 'ntpHost' | 'ntpPort' | 'expiresAt'>): string {
  return `key ${result.keyId} expires ${isoSeconds(result.expiresAt)}; use: ${serverDirective(result)}`;
}

/** What `--out` did, for the JSON document. */
export interface EkeyWrite {
  readonly file: string;
  readonly format: KeysFileFormat;
  /** The key id the file held for this server before, if any. */
  readonly previousKeyId: number | null;
}

/** The `ntptsc ekey --json` (or `--format json`) document. */
export function ekeyJson(result: EphemeralKeyResult, write?: EkeyWrite) {
  return {
    keyId: result.keyId,
    algorithm: result.algorithm,
    key: toHex(result.key),
    expiresAt: isoSeconds(result.expiresAt),
    lifetime: result.lifetimeSeconds,
    ntpServer: result.ntpHost,
    ntpPort: result.ntpPort,
    renewed: result.renewed,
    eksServer: { host: result.eksHost, port: result.eksPort },
    ...(write === undefined ? {} : { file: write.file, format: write.format, previousKeyId: write.previousKeyId }),
  };
}

/** `--renew-after SECONDS` (hidden, for tests): a positive number of seconds, fractions allowed. */
export function parseSeconds(text: string): Parsed<number> {
  const n = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  return n > 0 && n <= 0xffffffff ? { ok: true, value: n } : { ok: false, error: `expected a positive number of seconds, got ${JSON.stringify(text)}` };
}

/** Milliseconds from a response to its renewal: 2/3 of the lifetime, at least 10 s; or the override. */
export function renewalDelayMs(lifetimeSeconds: number, overrideSeconds?: number): number {
  if (overrideSeconds !== undefined) return overrideSeconds * 1000;
  return Math.max(MIN_RENEW_WAIT_MS, lifetimeSeconds * 1000 * RENEW_FRACTION);
}

/**
 * Milliseconds before retry number `attempt` (0 for the first retry) after a failure: exponential backoff from
 * `baseMs` (10 s) up to `maxMs` (10 min), but while the key held is still valid (`remainingMs` > 0) never later
 * than half the time left, so that several attempts still fall before the expiry. After the expiry the backoff
 * alone applies (an expired key can still be renewed, docs/eks.md §5).
 */
export function retryDelayMs(attempt: number, remainingMs: number | null, baseMs = RETRY_BASE_MS, maxMs = RETRY_MAX_MS): number {
  const backoff = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  if (remainingMs === null || remainingMs <= 0) return backoff;
  return Math.min(backoff, Math.max(Math.min(MIN_RETRY_MS, baseMs), remainingMs / 2));
}

/** `1d 8h`, `32h 5m`, `45m`, `12s`: a delay for log lines. */
export function formatDelay(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return ms < 1000 ? `${Math.max(0, Math.round(ms))}ms` : `${s}s`;
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  return `${m}m`;
}
