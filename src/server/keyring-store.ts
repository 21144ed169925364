/**
 * The key ring on disk: `<state-dir>/keyring.json`, mode 0600, replaced atomically, rotated on schedule.
 *
 * At start the ring is loaded; only when the file does not exist is a new ring made. A file that exists but
 * cannot be read or parsed stops the daemon with a clear error: replacing it would invalidate every cookie
 * and ephemeral key handed out so far. Rotation happens on a timer and is persisted before it takes effect
 * for new cookies, so a crash never loses a key that cookies were sealed with.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyRing, parseKeyRing, type KeyRingPolicy, type MasterKey } from '../crypto/keyring.js';
import type { Clock } from '../clock/clock.js';
import type { Logger } from './log.js';
import { writeFileAtomic } from './state-files.js';

export const KEYRING_FILE = 'keyring.json';

export class KeyRingError extends Error {
  override readonly name = 'KeyRingError';
  constructor(
    readonly code: 'KEYRING_UNREADABLE' | 'KEYRING_CORRUPT' | 'KEYRING_WRITE_FAILED',
    message: string,
  ) {
    super(message);
  }
}

const systemRandom = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

export interface KeyRingStoreOptions {
  readonly stateDir: string;
  readonly policy: KeyRingPolicy;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called after a rotation was persisted; `by` is `schedule` or who asked for it (management). */
  readonly onRotate?: (added: MasterKey, dropped: readonly MasterKey[], info: { readonly previous: MasterKey; readonly by: string }) => void;
}

export class KeyRingStore {
  #ring: KeyRing;
  #policy: KeyRingPolicy;
  #timer: NodeJS.Timeout | undefined;
  #rotating = false;
  readonly #options: KeyRingStoreOptions;
  readonly path: string;
  rotations = 0;

  private constructor(ring: KeyRing, options: KeyRingStoreOptions, path: string) {
    this.#ring = ring;
    this.#options = options;
    this.#policy = options.policy;
    this.path = path;
  }

  /** Loads the ring, or creates and persists a new one when the file does not exist. */
  static async open(options: KeyRingStoreOptions): Promise<KeyRingStore> {
    const path = join(options.stateDir, KEYRING_FILE);
    let text: string | null = null;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new KeyRingError('KEYRING_UNREADABLE', `cannot read key ring ${path}: ${code ?? String(error)}`);
    }
    if (text === null) {
      const ring = KeyRing.create(options.clock.nowMicros(), systemRandom);
      const store = new KeyRingStore(ring, options, path);
      await store.#persist();
      options.logger.info({ path, keyId: ring.current.id }, 'created a new key ring');
      return store;
    }
    const parsed = parseKeyRing(text);
    if (!parsed.ok) {
      throw new KeyRingError(
        'KEYRING_CORRUPT',
        `key ring ${path} is corrupt (${parsed.error.code}: ${parsed.error.message}); refusing to replace it, since that would invalidate every issued cookie — restore it or remove it deliberately`,
      );
    }
    options.logger.info({ path, keys: parsed.value.keys.length, current: parsed.value.current.id }, 'loaded the key ring');
    return new KeyRingStore(parsed.value, options, path);
  }

  get ring(): KeyRing {
    return this.#ring;
  }

  /** Starts rotating on schedule; rotates at once when the current key is already due. */
  async start(): Promise<void> {
    if (this.#ring.due(this.#options.clock.nowMicros(), this.#policy)) await this.rotate('schedule');
    this.#schedule();
  }

  get policy(): KeyRingPolicy {
    return this.#policy;
  }

  /** True while a rotation is being persisted. */
  get rotating(): boolean {
    return this.#rotating;
  }

  setPolicy(policy: KeyRingPolicy): void {
    this.#policy = policy;
    this.#schedule();
  }

  /**
   * Adds a new current key (persisted first), drops keys beyond the policy. `by`: who asked (logs, events).
   * When the ring cannot be written nothing changes (`KEYRING_WRITE_FAILED`).
   */
  async rotate(reason: 'schedule' | 'admin', by: string = reason): Promise<{ added: MasterKey; dropped: MasterKey[]; previous: MasterKey }> {
    this.#rotating = true;
    try {
      // Rotate a copy: the live ring changes only once the new state is on disk.
      const parsed = parseKeyRing(this.#ring.serialize());
      if (!parsed.ok) throw new KeyRingError('KEYRING_CORRUPT', 'in-memory key ring failed to round-trip');
      const next = parsed.value;
      const previous = this.#ring.current;
      const { added, dropped } = next.rotate(this.#options.clock.nowMicros(), systemRandom, this.#policy);
      await this.#persist(next);
      this.#ring = next;
      this.rotations++;
      this.#options.logger.info({ keyId: added.id, dropped: dropped.map((k) => k.id), reason, by }, 'rotated the key ring');
      this.#options.onRotate?.(added, dropped, { previous, by });
      this.#schedule();
      return { added, dropped, previous };
    } finally {
      this.#rotating = false;
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    this.stop();
    const delayMs = Math.max(1_000, (this.#ring.nextRotationMicros(this.#policy) - this.#options.clock.nowMicros()) / 1000);
    // Node timers overflow beyond ~24.8 days; wake up earlier and re-check.
    this.#timer = setTimeout(() => void this.#onTimer(), Math.min(delayMs, 2 ** 31 - 1));
    this.#timer.unref();
  }

  async #onTimer(): Promise<void> {
    try {
      if (this.#ring.due(this.#options.clock.nowMicros(), this.#policy)) await this.rotate('schedule');
      else this.#schedule();
    } catch (error) {
      this.#options.logger.error({ err: error }, 'key rotation failed; retrying in 60 s');
      this.#timer = setTimeout(() => void this.#onTimer(), 60_000);
      this.#timer.unref();
    }
  }

  async #persist(ring: KeyRing = this.#ring): Promise<void> {
    try {
      await writeFileAtomic(this.path, ring.serialize(), 0o600);
    } catch (error) {
      throw new KeyRingError('KEYRING_WRITE_FAILED', `cannot write key ring ${this.path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
}
