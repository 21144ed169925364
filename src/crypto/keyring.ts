/**
 * The key ring: the master keys that seal NTS cookies (and, later, derive ephemeral MAC keys).
 *
 * Theory of operation:
 * - Each master key has a random 32-bit id, unique in the ring, and its creation time. The newest key is
 *   the current one: new cookies are sealed with it. Older keys are kept for `keysKept` rotations so that
 *   cookies issued before a rotation still open (RFC 8915 §6 leaves the schedule to the server).
 * - `rotate(now, random)` adds a key and forgets those beyond the limit; `due(now)` says when to call it.
 * - Keys are 32 bytes: AES-SIV-CMAC-256 (the cookie AEAD, RFC 5297) takes a 32-byte key.
 * - Persistence is a versioned JSON document written by the shell. `parseKeyRing` rejects anything
 *   malformed with a coded error rather than guessing: replacing a ring silently would invalidate every
 *   client's cookies.
 * - Random bytes and the time are arguments; nothing here reads a clock or the system RNG.
 */

import { UsageError, decodeError, ok, type Result } from '../proto/errors.js';
import { AEAD_AES_SIV_CMAC_256, createAead, type Aead } from './aead.js';

export const MASTER_KEY_LENGTH = 32;
export const KEYRING_FORMAT_VERSION = 1;

export interface MasterKey {
  readonly id: number;
  readonly key: Uint8Array;
  readonly createdAtMicros: number;
}

export interface KeyRingPolicy {
  /** Rotation period in microseconds. */
  readonly rotationMicros: number;
  /** Old keys kept after a rotation, still accepted. */
  readonly keysKept: number;
}

export type RandomBytes = (length: number) => Uint8Array;

export class KeyRing {
  /** Oldest first; the last one is current. Never empty. */
  readonly #keys: MasterKey[];
  readonly #byId = new Map<number, MasterKey>();
  readonly #aeads = new Map<number, Aead>();

  private constructor(keys: MasterKey[]) {
    if (keys.length === 0) throw new UsageError('KEYRING_EMPTY', 'a key ring needs at least one key');
    this.#keys = [...keys];
    for (const key of keys) this.#byId.set(key.id, key);
  }

  /** A ring with one fresh key. */
  static create(nowMicros: number, random: RandomBytes): KeyRing {
    return new KeyRing([{ id: freshId(new Set(), random), key: copyOf(random(MASTER_KEY_LENGTH)), createdAtMicros: nowMicros }]);
  }

  static fromKeys(keys: readonly MasterKey[]): KeyRing {
    return new KeyRing([...keys].sort((a, b) => a.createdAtMicros - b.createdAtMicros));
  }

  get current(): MasterKey {
    return this.#keys[this.#keys.length - 1] as MasterKey;
  }

  /** Oldest first. */
  get keys(): readonly MasterKey[] {
    return this.#keys;
  }

  get(id: number): MasterKey | undefined {
    return this.#byId.get(id);
  }

  /** The AES-SIV-CMAC-256 instance of key `id`, cached: building one costs several cipher setups. */
  aead(id: number): Aead | undefined {
    let aead = this.#aeads.get(id);
    if (aead === undefined) {
      const key = this.#byId.get(id);
      if (key === undefined) return undefined;
      aead = createAead(AEAD_AES_SIV_CMAC_256, key.key);
      this.#aeads.set(id, aead);
    }
    return aead;
  }

  /** True when the current key is at least one rotation period old (or from the future: a clock step back). */
  due(nowMicros: number, policy: KeyRingPolicy): boolean {
    const age = nowMicros - this.current.createdAtMicros;
    return age >= policy.rotationMicros || age < -policy.rotationMicros;
  }

  /** When the next rotation is due, in Unix microseconds. */
  nextRotationMicros(policy: KeyRingPolicy): number {
    return this.current.createdAtMicros + policy.rotationMicros;
  }

  /** Adds a new current key and forgets keys beyond `keysKept` old ones. Returns the new key and the dropped ones. */
  rotate(nowMicros: number, random: RandomBytes, policy: KeyRingPolicy): { added: MasterKey; dropped: MasterKey[] } {
    const added: MasterKey = { id: freshId(new Set(this.#byId.keys()), random), key: copyOf(random(MASTER_KEY_LENGTH)), createdAtMicros: nowMicros };
    this.#keys.push(added);
    this.#byId.set(added.id, added);
    const dropped = this.#keys.splice(0, Math.max(0, this.#keys.length - 1 - policy.keysKept));
    for (const key of dropped) {
      this.#byId.delete(key.id);
      this.#aeads.delete(key.id);
    }
    return { added, dropped };
  }

  /** The persistent form: a JSON document (the shell writes it atomically with mode 0600). */
  serialize(): string {
    const document = {
      format: 'ntptsd-keyring',
      version: KEYRING_FORMAT_VERSION,
      keys: this.#keys.map((k) => ({ id: k.id, created: k.createdAtMicros, key: Buffer.from(k.key).toString('base64') })),
    };
    return `${JSON.stringify(document, null, 2)}\n`;
  }
}

/** Parses a serialized ring. Total: any malformed input gives a coded error naming what is wrong. */
export function parseKeyRing(text: string): Result<KeyRing> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    return decodeError('KEYRING_NOT_JSON', `not valid JSON: ${(error as Error).message}`);
  }
  if (typeof document !== 'object' || document === null) return decodeError('KEYRING_BAD_FORMAT', 'not a key ring document');
  const { format, version, keys } = document as Record<string, unknown>;
  if (format !== 'ntptsd-keyring') return decodeError('KEYRING_BAD_FORMAT', 'missing "format": "ntptsd-keyring"');
  if (version !== KEYRING_FORMAT_VERSION) return decodeError('KEYRING_BAD_VERSION', `unsupported version ${String(version)}`);
  if (!Array.isArray(keys) || keys.length === 0) return decodeError('KEYRING_NO_KEYS', '"keys" must be a non-empty list');
  const parsed: MasterKey[] = [];
  const seen = new Set<number>();
  for (const [index, entry] of keys.entries()) {
    const { id, created, key } = (entry ?? {}) as Record<string, unknown>;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffffffff) return decodeError('KEYRING_BAD_KEY', `keys[${index}].id is not a 32-bit unsigned integer`);
    if (seen.has(id)) return decodeError('KEYRING_DUPLICATE_ID', `keys[${index}].id ${id} appears twice`);
    if (typeof created !== 'number' || !Number.isSafeInteger(created)) return decodeError('KEYRING_BAD_KEY', `keys[${index}].created is not a timestamp`);
    if (typeof key !== 'string' || !/^[A-Za-z0-9+/]+=*$/.test(key)) return decodeError('KEYRING_BAD_KEY', `keys[${index}].key is not base64`);
    const bytes = Buffer.from(key, 'base64');
    if (bytes.length !== MASTER_KEY_LENGTH) return decodeError('KEYRING_BAD_KEY', `keys[${index}].key has ${bytes.length} bytes, expected ${MASTER_KEY_LENGTH}`);
    seen.add(id);
    parsed.push({ id, key: new Uint8Array(bytes), createdAtMicros: created });
  }
  return ok(KeyRing.fromKeys(parsed));
}

function freshId(taken: Set<number>, random: RandomBytes): number {
  for (;;) {
    const bytes = random(4);
    const id = (((bytes[0] ?? 0) << 24) | ((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0)) >>> 0;
    if (!taken.has(id)) return id;
  }
}

function copyOf(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== MASTER_KEY_LENGTH) throw new UsageError('KEYRING_BAD_RANDOM', `random source returned ${bytes.length} bytes`);
  return Uint8Array.from(bytes);
}
