/**
 * IANA-style registries of u16 code points (protocol ids, AEAD ids, error and warning codes).
 *
 * A wire value decodes to `{ known: NAME }` when registered here and to `{ unknown: n }` otherwise, so values
 * from newer peers survive a decode/encode cycle unchanged instead of being mapped to a default.
 */

import { UsageError } from '../errors.js';

export type RegistryValue<N extends string> = { readonly known: N } | { readonly unknown: number };

export interface Registry<N extends string> {
  /** Registered names and their numbers. */
  readonly values: Readonly<Record<N, number>>;
  decode(value: number): RegistryValue<N>;
  /** Number to put on the wire. Throws `UsageError` for an unknown number outside 0..65535 or a name not registered. */
  encode(value: RegistryValue<N>): number;
  /** Human label: the registered name, or `unknown(n)`. */
  label(value: RegistryValue<N>): string;
  /** True when `value` denotes `name` (also when given as `{ unknown: n }` with the registered number). */
  is(value: RegistryValue<N>, name: N): boolean;
}

export function defineRegistry<const T extends Record<string, number>>(what: string, table: T): Registry<keyof T & string> {
  type N = keyof T & string;
  const byNumber = new Map<number, N>();
  for (const [name, num] of Object.entries(table)) byNumber.set(num, name as N);
  const values = Object.freeze({ ...table }) as Readonly<Record<N, number>>;

  function encode(value: RegistryValue<N>): number {
    if ('known' in value) {
      const num = (values as Record<string, number | undefined>)[value.known];
      if (num === undefined) throw new UsageError('REGISTRY_UNKNOWN_NAME', `${what}: no registered value named ${value.known}`);
      return num;
    }
    const n = value.unknown;
    if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new UsageError('REGISTRY_VALUE_RANGE', `${what}: ${n} is not a u16`);
    return n;
  }

  return {
    values,
    decode(value) {
      const name = byNumber.get(value);
      return name === undefined ? { unknown: value } : { known: name };
    },
    encode,
    label(value) {
      return 'known' in value ? value.known : `unknown(${value.unknown})`;
    },
    is(value, name) {
      return encode(value) === values[name];
    },
  };
}
