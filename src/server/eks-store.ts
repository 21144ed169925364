/**
 * The EKS issuance table on disk (docs/eks.md §6), mode 0600 in the state dir:
 * - `eks.journal`: one JSON line per issuance, renewal or revocation, appended and fsync'd before the key (or the
 *   revocation's answer) goes out — so no crash can forget an id that a client holds and hand it out again;
 * - `eks.json`: the compacted table, replaced atomically every `COMPACT_LINES` entries, every minute when the
 *   journal is not empty, and at stop; the journal is emptied after each compaction. Replaying entries that the
 *   snapshot already holds changes nothing, so a crash between the two steps is harmless.
 * At start the snapshot is read, then the journal replayed; a torn last line (a crash mid-append) is dropped with a
 * warning. Anything else that cannot be read or parsed stops the daemon: starting afresh would forget revocations
 * and could reissue ids that clients hold.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { IssuedKeys, journalLine, parseIssuedKeys, parseJournalLine, type EksJournalEntry, type GenerationInRing, type KeyIdRange } from '../proto/eks/issued-keys.js';
import type { Logger } from './log.js';
import { writeFileAtomic } from './state-files.js';

export const EKS_STATE_FILE = 'eks.json';
export const EKS_JOURNAL_FILE = 'eks.journal';
const COMPACT_LINES = 1_000;
const MAINTENANCE_INTERVAL_MS = 60_000;

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
  readonly generationInRing: GenerationInRing;
  /** docs/eks.md §5: how long after expiry a key may still be renewed (its id stays held meanwhile). */
  readonly renewWindowMicros: number;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new EksStoreError('EKS_STATE_UNREADABLE', `cannot read ${path}: ${code ?? String(error)}`);
  }
}

const corrupt = (path: string, detail: string) =>
  new EksStoreError(
    'EKS_STATE_CORRUPT',
    `${path} is corrupt (${detail}); refusing to start without it, since revocations and issued key ids would be forgotten — restore it or remove it deliberately`,
  );

export class EksStore {
  readonly table: IssuedKeys;
  readonly snapshotPath: string;
  readonly journalPath: string;
  readonly #options: EksStoreOptions;
  #journal: FileHandle | null = null;
  #journalLines = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Writes run one after another, in order. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(table: IssuedKeys, options: EksStoreOptions, journalLines: number) {
    this.table = table;
    this.#options = options;
    this.snapshotPath = join(options.stateDir, EKS_STATE_FILE);
    this.journalPath = join(options.stateDir, EKS_JOURNAL_FILE);
    this.#journalLines = journalLines;
  }

  static async open(options: EksStoreOptions): Promise<EksStore> {
    const snapshotPath = join(options.stateDir, EKS_STATE_FILE);
    const journalPath = join(options.stateDir, EKS_JOURNAL_FILE);
    const snapshot = await readOptional(snapshotPath);
    let table = new IssuedKeys(options.range);
    if (snapshot !== null) {
      const parsed = parseIssuedKeys(snapshot);
      if (!parsed.ok) throw corrupt(snapshotPath, `${parsed.error.code}: ${parsed.error.message}`);
      table = new IssuedKeys(options.range, parsed.value);
    }
    const journal = (await readOptional(journalPath)) ?? '';
    const lines = journal.split('\n');
    const torn = lines.pop() ?? ''; // after the last newline: empty, or a line whose append did not finish
    if (torn !== '') options.logger.warn({ path: journalPath, bytes: torn.length }, 'EKS journal ends with an unfinished entry (a crash while writing it); dropping it');
    for (const [i, line] of lines.entries()) {
      const entry = parseJournalLine(line);
      if (!entry.ok) throw corrupt(journalPath, `line ${i + 1}: ${entry.error.code}: ${entry.error.message}`);
      table.apply(entry.value);
    }
    if (snapshot !== null || lines.length > 0) {
      options.logger.info({ path: snapshotPath, issued: table.all().length, revoked: table.revocations().length, replayed: lines.length }, 'loaded the EKS issuance table');
    }
    const store = new EksStore(table, options, lines.length);
    // A torn line must not stay in front of the next append.
    if (torn !== '') await store.compact();
    return store;
  }

  start(): void {
    this.#timer = setInterval(() => void this.#maintain(), MAINTENANCE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Appends `entry` to the journal and waits until it is on disk. Throws `EksStoreError` when it cannot. */
  append(entry: EksJournalEntry): Promise<void> {
    return this.#enqueue(async () => {
      try {
        this.#journal ??= await open(this.journalPath, 'a', 0o600);
        await this.#journal.appendFile(`${journalLine(entry)}\n`);
        await this.#journal.datasync();
      } catch (error) {
        throw new EksStoreError('EKS_STATE_WRITE_FAILED', `cannot write ${this.journalPath}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
      this.#journalLines++;
      if (this.#journalLines >= COMPACT_LINES) await this.#compactNow();
    });
  }

  /** Writes the snapshot and empties the journal. */
  compact(): Promise<void> {
    return this.#enqueue(() => this.#compactNow());
  }

  async #compactNow(): Promise<void> {
    try {
      await writeFileAtomic(this.snapshotPath, this.table.serialize(), 0o600);
      this.#journal ??= await open(this.journalPath, 'a', 0o600);
      await this.#journal.truncate(0);
      await this.#journal.datasync();
    } catch (error) {
      throw new EksStoreError('EKS_STATE_WRITE_FAILED', `cannot compact the EKS table into ${this.snapshotPath}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    this.#journalLines = 0;
  }

  async #maintain(): Promise<void> {
    const pruned = this.table.prune(this.#options.nowMicros(), this.#options.generationInRing, this.#options.renewWindowMicros);
    if (pruned === 0 && this.#journalLines === 0) return;
    await this.compact().catch((error: unknown) => this.#options.logger.error({ err: error }, 'cannot compact the EKS issuance table; the journal keeps every change'));
  }

  #enqueue<T>(run: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(run);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#journalLines > 0) await this.compact().catch((error: unknown) => this.#options.logger.error({ err: error }, 'cannot compact the EKS issuance table at stop; the journal keeps every change'));
    await this.#enqueue(async () => {
      await this.#journal?.close();
      this.#journal = null;
    });
  }
}
