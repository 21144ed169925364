/**
 * READ_ORDLIST_A (opcode 11, RFC 9327 §4; ntpd requires an authenticated request): ordered lists of indexed
 * variables, `stem.N=value`, one row per index N.
 *
 * - `ifstats` (also an empty request): the local addresses — addr.N, bcast.N, en.N (enabled), flags.N (hex),
 *   name.N (quoted), tl.N (TTL), mc.N (multicast groups), rx.N, tx.N, txerr.N, pc.N (peers), up.N (uptime s).
 *   NTPsec leaves tl and mc out.
 * - `addr_restrictions`: the restrict list, IPv4 then IPv6 — addr.N, mask.N, hits.N, flags.N (space-separated
 *   words, unquoted).
 *
 * ntpd sends the items of a row in random order and adds a random three-letter item per row (`abc.N`) to keep
 * clients from depending on the order or on a fixed set; unknown stems are kept in `other`, never an error.
 * Names without a numeric index are ignored, as ntpq ignores them.
 */

import { decodeError, ok, type Result } from '../errors.js';
import { variableHex, variableInteger, type Mode6Variables } from './variables.js';

export type OrderedListKind = 'ifstats' | 'addr_restrictions';

/** The request data for each list (ntpd compares it octet for octet). */
export const ORDERED_LIST_REQUEST: Readonly<Record<OrderedListKind, string>> = { ifstats: 'ifstats', addr_restrictions: 'addr_restrictions' };

/** Highest row index accepted: far above any interface or restrict list, low enough to bound the rows. */
export const ORDLIST_MAX_INDEX = 65535;

export interface IfStatsRow {
  readonly index: number;
  readonly address: string | null;
  readonly broadcast: string | null;
  readonly enabled: boolean | null;
  readonly flags: number | null;
  readonly name: string | null;
  readonly ttl: number | null;
  readonly multicastGroups: number | null;
  readonly received: number | null;
  readonly sent: number | null;
  readonly sendErrors: number | null;
  readonly peers: number | null;
  readonly uptime: number | null;
  /** Items of this row with other stems, as sent. */
  readonly other: Readonly<Record<string, string | null>>;
}

export interface RestrictionRow {
  readonly index: number;
  readonly address: string | null;
  readonly mask: string | null;
  readonly hits: number | null;
  /** Flags as sent ("ntpport interface ignore"). */
  readonly flags: string | null;
  readonly flagList: readonly string[];
  readonly other: Readonly<Record<string, string | null>>;
}

/** Groups `stem.N` items by N, rows in index order. Fails on an index above ORDLIST_MAX_INDEX. */
export function groupIndexedVariables(variables: Mode6Variables): Result<{ index: number; items: Map<string, string | null> }[]> {
  const rows = new Map<number, Map<string, string | null>>();
  for (const item of variables.items) {
    const m = /^(.+)\.(\d+)$/.exec(item.name);
    if (m?.[1] === undefined || m[2] === undefined) continue;
    const index = Number(m[2]);
    if (!Number.isSafeInteger(index) || index > ORDLIST_MAX_INDEX) {
      return decodeError('MODE6_ORDLIST_BAD_INDEX', `row index ${m[2]} of ${item.name} is above ${ORDLIST_MAX_INDEX}`, 0);
    }
    let row = rows.get(index);
    if (row === undefined) rows.set(index, (row = new Map()));
    row.set(m[1], item.value);
  }
  return ok([...rows.entries()].sort((a, b) => a[0] - b[0]).map(([index, items]) => ({ index, items })));
}

const IFSTATS_STEMS = ['addr', 'bcast', 'en', 'flags', 'name', 'tl', 'mc', 'rx', 'tx', 'txerr', 'pc', 'up'];
const RESTRICT_STEMS = ['addr', 'mask', 'hits', 'flags'];

function others(items: Map<string, string | null>, known: readonly string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [stem, value] of items) if (!known.includes(stem)) out[stem] = value;
  return out;
}

const text = (v: string | null | undefined): string | null => (v === undefined ? null : (v ?? ''));
const int = (v: string | null | undefined): number | null => variableInteger(v) ?? null;

/** Rows of an `ifstats` answer. */
export function parseIfStats(variables: Mode6Variables): Result<IfStatsRow[]> {
  const grouped = groupIndexedVariables(variables);
  if (!grouped.ok) return grouped;
  return ok(
    grouped.value.map(({ index, items }) => {
      const en = int(items.get('en'));
      return {
        index,
        address: text(items.get('addr')),
        broadcast: text(items.get('bcast')),
        enabled: en === null ? null : en !== 0,
        flags: variableHex(items.get('flags')) ?? null,
        name: text(items.get('name')),
        ttl: int(items.get('tl')),
        multicastGroups: int(items.get('mc')),
        received: int(items.get('rx')),
        sent: int(items.get('tx')),
        sendErrors: int(items.get('txerr')),
        peers: int(items.get('pc')),
        uptime: int(items.get('up')),
        other: others(items, IFSTATS_STEMS),
      };
    }),
  );
}

/** Rows of an `addr_restrictions` answer. */
export function parseRestrictions(variables: Mode6Variables): Result<RestrictionRow[]> {
  const grouped = groupIndexedVariables(variables);
  if (!grouped.ok) return grouped;
  return ok(
    grouped.value.map(({ index, items }) => {
      const flags = text(items.get('flags'));
      return {
        index,
        address: text(items.get('addr')),
        mask: text(items.get('mask')),
        hits: int(items.get('hits')),
        flags,
        flagList: flags === null ? [] : flags.split(/\s+/).filter((f) => f !== ''),
        other: others(items, RESTRICT_STEMS),
      };
    }),
  );
}
