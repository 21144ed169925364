/**
 * Counters for every outcome, per service and per reason: plain numbers in nested records, cheap to bump
 * on the hot path and read as one snapshot by management and metrics.
 *
 * Each counter lives in a `Counter` cell. `inc(name, label)` finds it by its key (`name.label`); hot paths
 * take the cell once with `counter(name, label)` and bump it directly, which spares the key string and
 * the map lookups per event. A counter appears in `snapshot()` once it was first bumped, by either way.
 */
export class Counter {
  #value = 0;
  #touched = false;

  constructor(readonly key: string) {}

  inc(by = 1): void {
    this.#value += by;
    this.#touched = true;
  }

  get value(): number {
    return this.#value;
  }

  /** True once `inc` was called (even by 0): the counter then shows in snapshots. */
  get touched(): boolean {
    return this.#touched;
  }
}

export class Counters<K extends string = string> {
  readonly #cells = new Map<string, Counter>();

  /** The cell of counter `name` with an optional label; the same object on every call, for hot paths to keep. */
  counter(name: K, label?: string): Counter {
    const key = label === undefined ? name : `${name}.${label}`;
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      cell = new Counter(key);
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** Adds `by` to counter `name` (e.g. `responses`) with an optional label value (e.g. `nts`). */
  inc(name: K, label?: string, by = 1): void {
    this.counter(name, label).inc(by);
  }

  get(name: K, label?: string): number {
    return this.#cells.get(label === undefined ? name : `${name}.${label}`)?.value ?? 0;
  }

  /** `{ "responses.nts": 3, "drops.malformed": 1, ... }`, keys sorted. */
  snapshot(): Record<string, number> {
    const entries: [string, number][] = [];
    for (const cell of this.#cells.values()) if (cell.touched) entries.push([cell.key, cell.value]);
    return Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b)));
  }
}
