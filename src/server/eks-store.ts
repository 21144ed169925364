/**
 * The EKS issuance table on disk: `<state-dir>/eks.json`, mode 0600, replaced atomically (docs/eks.md §6).
 *
 * Writes: at once when the id allocation cursor moves past its reservation (before the key is handed out, so a
 * crash never hands an id out twice) and for every revocation (a revocation must survive a restart); otherwise
 * at most once a second after a change, and at stop. A file that exists but cannot be read or parsed stops the
 * daemon: starting afresh would forget revocations and could reissue ids that clients hold.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IssuedKeys, parseIssuedKeys, type KeyIdRange } from '../proto/eks/issued-keys.js';
import type { Logger } from './log.js';
import { writeFileAtomic } from './state-files.js';

export const EKS_STATE_FILE = 'eks.json';
const SAVE_DELAY_MS = 1_000;
const PRUNE_INTERVAL_MS = 60_000;

export class EksStoreError extends Error {
  override readonly name = 'EksStoreError';
  constructor(
    readonly code: 'EKS_STATE_UNREADABLE' | 'EKS_STATE_CORRUPT' | 'EKS_STATE_WRITE_FAILED',
    message: string,
  ) {
    super(message);
  }
}

export interface EksStoreOptions {
  readonly stateDir: string;
  readonly range: KeyIdRange;
  readonly logger: Logger;
  readonly nowMicros: () => number;
  /** Whether a key ring generation (master key id) is still in the ring. */
  readonly generationInRing: (generation: number) => boolean;
}

export class EksStore {
  readonly table: IssuedKeys;
  readonly path: string;
  readonly #options: EksStoreOptions;
  #saveTimer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  /** Saves run one after another: a later one always writes the newer state. */
  #saving: Promise<void> = Promise.resolve();

  private constructor(table: IssuedKeys, options: EksStoreOptions, path: string) {
    this.table = table;
    this.#options = options;
    this.path = path;
  }

  static async open(options: EksStoreOptions): Promise<EksStore> {
    const path = join(options.stateDir, EKS_STATE_FILE);
    let text: string | null = null;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new EksStoreError('EKS_STATE_UNREADABLE', `cannot read ${path}: ${code ?? String(error)}`);
    }
    if (text === null) return new EksStore(new IssuedKeys(options.range), options, path);
    const parsed = parseIssuedKeys(text);
    if (!parsed.ok) {
      throw new EksStoreError(
        'EKS_STATE_CORRUPT',
        `${path} is corrupt (${parsed.error.code}: ${parsed.error.message}); refusing to start without it, since revocations and issued key ids would be forgotten — restore it or remove it deliberately`,
      );
    }
    const table = new IssuedKeys(options.range, parsed.value);
    options.logger.info({ path, issued: parsed.value.issued.length, revoked: parsed.value.revoked.length }, 'loaded the EKS issuance table');
    return new EksStore(table, options, path);
  }

  start(): void {
    this.#pruneTimer = setInterval(() => {
      if (this.table.prune(this.#options.nowMicros(), this.#options.generationInRing) > 0) this.saveSoon();
    }, PRUNE_INTERVAL_MS);
    this.#pruneTimer.unref();
  }

  /** Saves within a second; several changes share one write. */
  saveSoon(): void {
    if (this.#saveTimer !== undefined) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      this.save().catch((error: unknown) => this.#options.logger.error({ err: error }, 'cannot save the EKS issuance table; retrying at the next change'));
    }, SAVE_DELAY_MS);
    this.#saveTimer.unref();
  }

  /** Writes the table now. Throws `EksStoreError` when it cannot. */
  save(): Promise<void> {
    const run = this.#saving.then(async () => {
      const text = this.table.serialize();
      try {
        await writeFileAtomic(this.path, text, 0o600);
      } catch (error) {
        this.table.dirty = true;
        throw new EksStoreError('EKS_STATE_WRITE_FAILED', `cannot write ${this.path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
    });
    this.#saving = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    if (this.#saveTimer !== undefined) clearTimeout(this.#saveTimer);
    if (this.#pruneTimer !== undefined) clearInterval(this.#pruneTimer);
    this.#saveTimer = undefined;
    this.#pruneTimer = undefined;
    if (this.table.dirty) await this.save().catch((error: unknown) => this.#options.logger.error({ err: error }, 'cannot save the EKS issuance table at stop'));
  }
}
