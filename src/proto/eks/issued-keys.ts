/**
 * The issuing node's table of ephemeral keys (docs/eks.md §3, §6): which ids it handed out, to whom, under which
 * key ring generation, until when, and which ids are revoked.
 *
 * Verification never needs this table (keys are derived from the ring and the id); issuance does, because an id
 * must never be handed to a second client while the first one may still use or renew it — both would derive the
 * same key. An id is *held*:
 * - while its key has not expired;
 * - after that, for the renewal window (`renewWindowMicros`, docs/eks.md §5) while its generation is still in the
 *   key ring: its holder may come back and renew it;
 * - while it is revoked. A revocation lasts until every generation that was in the ring when it was made has left
 *   the ring: from then on no key carrying the id can verify, so forgetting it is safe (a time limit would not be:
 *   generations leave the ring by count of rotations, and rotations can be late).
 * Ids are allocated in sequence from the node's range, skipping held ones.
 *
 * Every change is an `EksJournalEntry` that the shell appends to a journal (fsync'd) before the key goes out, and
 * `apply` replays; `serialize` is the compacted snapshot. Entries carry whole values, so replaying one twice (a
 * crash between a snapshot and the journal's truncation) changes nothing. Pure: times are arguments (Unix µs).
 */

import { decodeError, ok, type Result } from '../errors.js';

export const ISSUED_KEYS_FORMAT_VERSION = 1;

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
  /** The generations in the ring at the time: the revocation lasts until all of them have left it. */
  readonly generations: readonly number[];
  /** When that is expected (for people; the rule is the one above). */
  readonly untilMicros: number;
  readonly by: string;
}

export interface KeyIdRange {
  readonly first: number;
  readonly last: number;
}

/** One change of the table, as the journal holds it. */
export type EksJournalEntry =
  | { readonly op: 'issue'; readonly key: IssuedKey; readonly cursor: number }
  | { readonly op: 'revoke'; readonly revocation: Revocation };

export interface IssuedKeysState {
  readonly cursor: number;
  readonly issued: readonly IssuedKey[];
  readonly revoked: readonly Revocation[];
}

/** Whether a key ring generation (master key id) is still in the ring. */
export type GenerationInRing = (generation: number) => boolean;

export class IssuedKeys {
  readonly #issued = new Map<number, IssuedKey>();
  readonly #revoked = new Map<number, Revocation>();
  #range: KeyIdRange;
  /** The next id to try. */
  #cursor: number;

  constructor(range: KeyIdRange, saved?: IssuedKeysState) {
    this.#range = range;
    this.#cursor = saved !== undefined && inRange(saved.cursor, range) ? saved.cursor : range.first;
    for (const key of saved?.issued ?? []) this.#issued.set(key.keyId, key);
    for (const revocation of saved?.revoked ?? []) this.#revoked.set(revocation.keyId, revocation);
  }

  get range(): KeyIdRange {
    return this.#range;
  }

  /** A new range (config reload): allocation continues inside it; keys already issued stay valid. */
  setRange(range: KeyIdRange): void {
    this.#range = range;
    if (!inRange(this.#cursor, range)) this.#cursor = range.first;
  }

  /** True while `id` may not be given to a new client (see the module comment). */
  held(id: number, nowMicros: number, inRing: GenerationInRing, renewWindowMicros: number): boolean {
    if (this.#revoked.has(id)) return true;
    const key = this.#issued.get(id);
    return key !== undefined && (key.expiresAtMicros > nowMicros || (nowMicros < key.expiresAtMicros + renewWindowMicros && inRing(key.generation)));
  }

  /** The next free id of the range, or null when every one is held. */
  allocate(nowMicros: number, inRing: GenerationInRing, renewWindowMicros: number): number | null {
    const size = this.#range.last - this.#range.first + 1;
    for (let tried = 0; tried < size; tried++) {
      const id = this.#cursor;
      this.#cursor = id >= this.#range.last ? this.#range.first : id + 1;
      if (!this.held(id, nowMicros, inRing, renewWindowMicros)) return id;
    }
    return null;
  }

  /**
   * True when the holder of `id` may renew it here (docs/eks.md §5): this node issued it (it is in the table, so
   * no other node can have handed it out from this node's range) and the renewal window has not closed.
   */
  renewable(id: number, nowMicros: number, renewWindowMicros: number): boolean {
    const key = this.#issued.get(id);
    return key !== undefined && inRange(id, this.#range) && !this.#revoked.has(id) && nowMicros < key.expiresAtMicros + renewWindowMicros;
  }

  /** Records a first issuance or a renewal (same id, new generation and expiry); returns the journal entry. */
  record(key: Omit<IssuedKey, 'renewals'>): EksJournalEntry & { op: 'issue' } {
    const previous = this.#issued.get(key.keyId);
    const entry: IssuedKey = { ...key, renewals: previous === undefined ? 0 : previous.renewals + 1 };
    this.#issued.set(key.keyId, entry);
    return { op: 'issue', key: entry, cursor: this.#cursor };
  }

  get(keyId: number): IssuedKey | undefined {
    return this.#issued.get(keyId);
  }

  /** Revokes `keyId` until every generation of `generations` has left the ring; returns the journal entry. */
  revoke(keyId: number, nowMicros: number, generations: readonly number[], untilMicros: number, by: string): EksJournalEntry & { op: 'revoke' } {
    const revocation: Revocation = { keyId, revokedAtMicros: nowMicros, generations: [...generations], untilMicros, by };
    this.#revoked.set(keyId, revocation);
    return { op: 'revoke', revocation };
  }

  isRevoked(keyId: number): boolean {
    return this.#revoked.has(keyId);
  }

  /** Replays a journal entry. */
  apply(entry: EksJournalEntry): void {
    if (entry.op === 'issue') {
      this.#issued.set(entry.key.keyId, entry.key);
      if (inRange(entry.cursor, this.#range)) this.#cursor = entry.cursor;
    } else {
      this.#revoked.set(entry.revocation.keyId, entry.revocation);
    }
  }

  /** Keys issued and not yet expired, by id. */
  live(nowMicros: number): IssuedKey[] {
    return [...this.#issued.values()].filter((k) => k.expiresAtMicros > nowMicros).sort((a, b) => a.keyId - b.keyId);
  }

  /** Every remembered entry (expired ones still renewable included), by id. */
  all(): IssuedKey[] {
    return [...this.#issued.values()].sort((a, b) => a.keyId - b.keyId);
  }

  revocations(): Revocation[] {
    return [...this.#revoked.values()].sort((a, b) => a.keyId - b.keyId);
  }

  /** Forgets entries that can no longer be used or renewed, and revocations that no key can outlive. */
  prune(nowMicros: number, inRing: GenerationInRing, renewWindowMicros: number): number {
    let removed = 0;
    for (const [id, key] of this.#issued) {
      if (key.expiresAtMicros <= nowMicros && (nowMicros >= key.expiresAtMicros + renewWindowMicros || !inRing(key.generation))) {
        this.#issued.delete(id);
        removed++;
      }
    }
    for (const [id, revocation] of this.#revoked) {
      if (!revocation.generations.some(inRing)) {
        this.#revoked.delete(id);
        removed++;
      }
    }
    return removed;
  }

  /** The compacted persistent form (the shell writes it atomically with mode 0600). */
  serialize(): string {
    const document = {
      format: 'ntptsd-eks',
      version: ISSUED_KEYS_FORMAT_VERSION,
      cursor: this.#cursor,
      issued: this.all().map(keyToJson),
      revoked: this.revocations().map(revocationToJson),
    };
    return `${JSON.stringify(document, null, 1)}\n`;
  }
}

/** One journal line (no newline). */
export function journalLine(entry: EksJournalEntry): string {
  return JSON.stringify(entry.op === 'issue' ? { op: 'issue', cursor: entry.cursor, key: keyToJson(entry.key) } : { op: 'revoke', revocation: revocationToJson(entry.revocation) });
}

function keyToJson(k: IssuedKey) {
  return { id: k.keyId, generation: k.generation, issued: k.issuedAtMicros, expires: k.expiresAtMicros, address: k.address, token: k.token, renewals: k.renewals };
}

function revocationToJson(r: Revocation) {
  return { id: r.keyId, revoked: r.revokedAtMicros, generations: r.generations, until: r.untilMicros, by: r.by };
}

function inRange(id: number, range: KeyIdRange): boolean {
  return Number.isInteger(id) && id >= range.first && id <= range.last;
}

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function keyFromJson(value: unknown, where: string): Result<IssuedKey> {
  const e = (value ?? {}) as Record<string, unknown>;
  if (!isU32(e.id) || !isU32(e.generation) || !isTime(e.issued) || !isTime(e.expires) || typeof e.address !== 'string') {
    return decodeError('EKS_STATE_BAD_ENTRY', `${where} lacks a valid id, generation, issued, expires or address`);
  }
  if (!(e.token === null || typeof e.token === 'string') || !isU32(e.renewals)) return decodeError('EKS_STATE_BAD_ENTRY', `${where} has a bad token or renewals`);
  return ok({ keyId: e.id, generation: e.generation, issuedAtMicros: e.issued, expiresAtMicros: e.expires, address: e.address, token: e.token, renewals: e.renewals });
}

function revocationFromJson(value: unknown, where: string): Result<Revocation> {
  const e = (value ?? {}) as Record<string, unknown>;
  if (!isU32(e.id) || !isTime(e.revoked) || !isTime(e.until) || typeof e.by !== 'string' || !Array.isArray(e.generations) || !e.generations.every(isU32)) {
    return decodeError('EKS_STATE_BAD_ENTRY', `${where} lacks a valid id, revoked, generations, until or by`);
  }
  return ok({ keyId: e.id, revokedAtMicros: e.revoked, generations: e.generations, untilMicros: e.until, by: e.by });
}

/** Parses a saved snapshot. Total: any malformed input gives a coded error naming what is wrong. */
export function parseIssuedKeys(text: string): Result<IssuedKeysState> {
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
    const key = keyFromJson(entry, `issued[${i}]`);
    if (!key.ok) return key;
    keys.push(key.value);
  }
  const revocations: Revocation[] = [];
  for (const [i, entry] of revoked.entries()) {
    const revocation = revocationFromJson(entry, `revoked[${i}]`);
    if (!revocation.ok) return revocation;
    revocations.push(revocation.value);
  }
  return ok({ cursor, issued: keys, revoked: revocations });
}

/** Parses one journal line. */
export function parseJournalLine(line: string): Result<EksJournalEntry> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return decodeError('EKS_JOURNAL_NOT_JSON', `not valid JSON: ${(error as Error).message}`);
  }
  const e = (value ?? {}) as Record<string, unknown>;
  if (e.op === 'issue') {
    if (!isU32(e.cursor)) return decodeError('EKS_STATE_BAD_ENTRY', 'journal entry lacks a valid cursor');
    const key = keyFromJson(e.key, 'journal entry');
    return key.ok ? ok({ op: 'issue', key: key.value, cursor: e.cursor }) : key;
  }
  if (e.op === 'revoke') {
    const revocation = revocationFromJson(e.revocation, 'journal entry');
    return revocation.ok ? ok({ op: 'revoke', revocation: revocation.value }) : revocation;
  }
  return decodeError('EKS_STATE_BAD_ENTRY', 'journal entry has no known "op"');
}
