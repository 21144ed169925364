/**
 * Counters for every outcome, per service and per reason: plain numbers in nested records, cheap to bump
 * on the hot path and read as one snapshot by management and metrics.
 */
export class Counters<K extends string = string> {
  readonly #values = new Map<string, number>();

  /** Adds `by` to counter `name` (e.g. `responses`) with an optional label value (e.g. `nts`). */
  inc(name: K, label?: string, by = 1): void {
    const key = label === undefined ? name : `${name}.${label}`;
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }

  get(name: K, label?: string): number {
    return this.#values.get(label === undefined ? name : `${name}.${label}`) ?? 0;
  }

  /** `{ "responses.nts": 3, "drops.malformed": 1, ... }`, keys sorted. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#values.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
