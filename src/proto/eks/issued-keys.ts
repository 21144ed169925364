/**
 * The issuing node's table of ephemeral keys (docs/eks.md §3, §6): which ids it handed out, to whom, under which
 * key ring generation, until when, and which ids are revoked.
 *
 * Verification never needs this table (keys are derived from the ring and the id); issuance does, because an id
 * must never be handed to a second client while the first one may still use or renew it — both would derive the
 * same key. An id is *held* while its generation is still in the key ring (a holder may renew even after expiry,
 * docs/eks.md §5) and while it is revoked. Ids are allocated in sequence from the node's range, skipping held ones;
 * the cursor is persisted ahead of use (`reservedThrough`), so after a crash that lost recent entries the
 * allocator still continues past every id it may have handed out.
 *
 * Persistence is a versioned JSON document written by the shell; `parseIssuedKeys` rejects anything malformed
 * with a coded error. Pure: times are arguments (Unix microseconds).
 */

import { decodeError, ok, type Result } from '../errors.js';

export const ISSUED_KEYS_FORMAT_VERSION = 1;
/** Ids reserved in the persisted cursor ahead of the ones handed out. */
export const ALLOCATION_RESERVE = 64;

export interface IssuedKey {
  readonly keyId: number;
  /** Id of the key ring master key the key is derived from. */
  readonly generation: number;
  readonly issuedAtMicros: number;
  readonly expiresAtMicros: number;
  /** The client's address as the TLS connection saw it. */
  readonly address: string;
  /** The `[[eks.token]]` name the client presented; null for anonymous issuance. */
  readonly token: string | null;
  /** Renewals of this id so far (0 for a first issuance). */
  readonly renewals: number;
}

export interface Revocation {
  readonly keyId: number;
  readonly revokedAtMicros: number;
  /** After this, no key that could carry the id can verify any more: the revocation is forgotten. */
  readonly untilMicros: number;
  readonly by: string;
}

export interface KeyIdRange {
  readonly first: number;
  readonly last: number;
}

export class IssuedKeys {
  readonly #issued = new Map<number, IssuedKey>();
  readonly #revoked = new Map<number, Revocation>();
  #range: KeyIdRange;
  /** The next id to try. */
  #cursor: number;
  /** Ids up to here (inclusive, modulo the range) may have been handed out before the last save. */
  #reservedThrough: number;
  /** Set whenever the persisted form would change. */
  dirty = false;
  /** Set when the reservation moved: the shell must save before handing the id out. */
  reservationMoved = false;

  constructor(range: KeyIdRange, saved?: { cursor: number; issued: readonly IssuedKey[]; revoked: readonly Revocation[] }) {
    this.#range = range;
    this.#cursor = saved !== undefined && inRange(saved.cursor, range) ? saved.cursor : range.first;
    this.#reservedThrough = this.#cursor;
    for (const key of saved?.issued ?? []) this.#issued.set(key.keyId, key);
    for (const revocation of saved?.revoked ?? []) this.#revoked.set(revocation.keyId, revocation);
  }

  get range(): KeyIdRange {
    return this.#range;
  }

  /** A new range (config reload): allocation continues inside it; keys already issued stay valid. */
  setRange(range: KeyIdRange): void {
    this.#range = range;
    if (!inRange(this.#cursor, range)) {
      this.#cursor = range.first;
      this.#reservedThrough = range.first;
    }
  }

  /**
   * The next free id, or null when every id of the range is held. `generationInRing` tells whether a key ring
   * generation still exists (an id under a dropped generation is free again once it is not revoked).
   */
  allocate(nowMicros: number, generationInRing: (generation: number) => boolean): number | null {
    const size = this.#range.last - this.#range.first + 1;
    for (let tried = 0; tried < size; tried++) {
      const id = this.#cursor;
      this.#cursor = id === this.#range.last ? this.#range.first : id + 1;
      if (this.#held(id, nowMicros, generationInRing)) continue;
      this.#reserve(id, size);
      return id;
    }
    return null;
  }

  #held(id: number, nowMicros: number, generationInRing: (generation: number) => boolean): boolean {
    if (this.isRevoked(id, nowMicros)) return true;
    const key = this.#issued.get(id);
    return key !== undefined && (key.expiresAtMicros > nowMicros || generationInRing(key.generation));
  }

  /** Moves the persisted resume point ahead when `id` reaches it, so that a crash cannot hand `id` out twice. */
  #reserve(id: number, size: number): void {
    const { first } = this.#range;
    // Steps from `id` forward to the resume point: 1..RESERVE means `id` is already covered by the saved one.
    const ahead = (this.#reservedThrough - id + size) % size;
    if (ahead >= 1 && ahead <= ALLOCATION_RESERVE) return;
    this.#reservedThrough = first + ((id - first + ALLOCATION_RESERVE) % size);
    this.reservationMoved = true;
    this.dirty = true;
  }

  /** Records a first issuance or a renewal (same id, new generation and expiry). */
  record(key: Omit<IssuedKey, 'renewals'>): IssuedKey {
    const previous = this.#issued.get(key.keyId);
    const entry: IssuedKey = { ...key, renewals: previous === undefined ? 0 : previous.renewals + 1 };
    this.#issued.set(key.keyId, entry);
    this.dirty = true;
    return entry;
  }

  get(keyId: number): IssuedKey | undefined {
    return this.#issued.get(keyId);
  }

  revoke(keyId: number, nowMicros: number, untilMicros: number, by: string): Revocation {
    const revocation: Revocation = { keyId, revokedAtMicros: nowMicros, untilMicros, by };
    this.#revoked.set(keyId, revocation);
    this.dirty = true;
    return revocation;
  }

  isRevoked(keyId: number, nowMicros: number): boolean {
    const revocation = this.#revoked.get(keyId);
    return revocation !== undefined && revocation.untilMicros > nowMicros;
  }

  /** Keys issued and not yet expired, by id. */
  live(nowMicros: number): IssuedKey[] {
    return [...this.#issued.values()].filter((k) => k.expiresAtMicros > nowMicros).sort((a, b) => a.keyId - b.keyId);
  }

  /** Every remembered entry (expired ones still renewable included), by id. */
  all(): IssuedKey[] {
    return [...this.#issued.values()].sort((a, b) => a.keyId - b.keyId);
  }

  revocations(nowMicros: number): Revocation[] {
    return [...this.#revoked.values()].filter((r) => r.untilMicros > nowMicros).sort((a, b) => a.keyId - b.keyId);
  }

  /** Forgets entries that can no longer be used or renewed, and lapsed revocations. Returns how many went. */
  prune(nowMicros: number, generationInRing: (generation: number) => boolean): number {
    let removed = 0;
    for (const [id, key] of this.#issued) {
      if (key.expiresAtMicros <= nowMicros && !generationInRing(key.generation)) {
        this.#issued.delete(id);
        removed++;
      }
    }
    for (const [id, revocation] of this.#revoked) {
      if (revocation.untilMicros <= nowMicros) {
        this.#revoked.delete(id);
        removed++;
      }
    }
    if (removed > 0) this.dirty = true;
    return removed;
  }

  /** The persistent form; clears `dirty` and `reservationMoved` (the shell writes it atomically with mode 0600). */
  serialize(): string {
    this.dirty = false;
    this.reservationMoved = false;
    const document = {
      format: 'ntptsd-eks',
      version: ISSUED_KEYS_FORMAT_VERSION,
      cursor: this.#reservedThrough,
      issued: this.all().map((k) => ({
        id: k.keyId,
        generation: k.generation,
        issued: k.issuedAtMicros,
        expires: k.expiresAtMicros,
        address: k.address,
        token: k.token,
        renewals: k.renewals,
      })),
      revoked: [...this.#revoked.values()].map((r) => ({ id: r.keyId, revoked: r.revokedAtMicros, until: r.untilMicros, by: r.by })),
    };
    return `${JSON.stringify(document, null, 1)}\n`;
  }
}

function inRange(id: number, range: KeyIdRange): boolean {
  return Number.isInteger(id) && id >= range.first && id <= range.last;
}

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** Parses a saved table. Total: any malformed input gives a coded error naming what is wrong. */
export function parseIssuedKeys(text: string): Result<{ cursor: number; issued: IssuedKey[]; revoked: Revocation[] }> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    return decodeError('EKS_STATE_NOT_JSON', `not valid JSON: ${(error as Error).message}`);
  }
  if (typeof document !== 'object' || document === null) return decodeError('EKS_STATE_BAD_FORMAT', 'not an EKS state document');
  const { format, version, cursor, issued, revoked } = document as Record<string, unknown>;
  if (format !== 'ntptsd-eks') return decodeError('EKS_STATE_BAD_FORMAT', 'missing "format": "ntptsd-eks"');
  if (version !== ISSUED_KEYS_FORMAT_VERSION) return decodeError('EKS_STATE_BAD_VERSION', `unsupported version ${String(version)}`);
  if (!isU32(cursor)) return decodeError('EKS_STATE_BAD_ENTRY', '"cursor" is not a key id');
  if (!Array.isArray(issued)) return decodeError('EKS_STATE_BAD_ENTRY', '"issued" must be a list');
  if (!Array.isArray(revoked)) return decodeError('EKS_STATE_BAD_ENTRY', '"revoked" must be a list');
  const keys: IssuedKey[] = [];
  for (const [i, entry] of issued.entries()) {
    const e = (entry ?? {}) as Record<string, unknown>;
    if (!isU32(e.id) || !isU32(e.generation) || !isTime(e.issued) || !isTime(e.expires) || typeof e.address !== 'string') {
      return decodeError('EKS_STATE_BAD_ENTRY', `issued[${i}] lacks a valid id, generation, issued, expires or address`);
    }
    if (!(e.token === null || typeof e.token === 'string') || !isU32(e.renewals)) return decodeError('EKS_STATE_BAD_ENTRY', `issued[${i}] has a bad token or renewals`);
    keys.push({ keyId: e.id, generation: e.generation, issuedAtMicros: e.issued, expiresAtMicros: e.expires, address: e.address, token: e.token, renewals: e.renewals });
  }
  const revocations: Revocation[] = [];
  for (const [i, entry] of revoked.entries()) {
    const e = (entry ?? {}) as Record<string, unknown>;
    if (!isU32(e.id) || !isTime(e.revoked) || !isTime(e.until) || typeof e.by !== 'string') {
      return decodeError('EKS_STATE_BAD_ENTRY', `revoked[${i}] lacks a valid id, revoked, until or by`);
    }
    revocations.push({ keyId: e.id, revokedAtMicros: e.revoked, untilMicros: e.until, by: e.by });
  }
  return ok({ cursor, issued: keys, revoked: revocations });
}
