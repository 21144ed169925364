import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { groupIndexedVariables, ORDERED_LIST_REQUEST, parseIfStats, parseRestrictions } from '../../src/proto/mode6/ordlist.js';
import { parseVariableList, variablesOf } from '../../src/proto/mode6/variables.js';

const vars = (text: string) => variablesOf(parseVariableList(text)).variables;

// The shape NTPsec 1.2.2 sends: the items of a row in random order, a random three-letter item per row.
const IFSTATS =
  'name.0="v6wildcard", en.0=0, addr.0=[::]:123, flags.0=0x11, rx.0=81, bcast.0=, tx.0=0, txerr.0=0, pc.0=0, up.0=15, qzk.0=817,\r\n' +
  'addr.1=0.0.0.0:123, name.1="v4wildcard", up.1=15, tx.1=0, en.1=0, rx.1=89, txerr.1=0, flags.1=0x11, pc.1=0, bcast.1=, abc.1=3,\r\n' +
  'up.2=15, addr.2=127.0.0.1:123, bcast.2=, name.2="lo", flags.2=0x5, en.2=1, rx.2=5, tx.2=4, txerr.2=0, pc.2=0, tl.2=64, mc.2=0, xyz.2=5\r\n';

const RESTRICTIONS =
  'addr.0=127.0.0.1, flags.0=ntpport interface ignore, hits.0=0, mask.0=255.255.255.255, fgh.0=3,\r\n' +
  'mask.1=255.255.255.255, hits.1=6, addr.1=127.0.0.1, flags.1=,\r\n' +
  'hits.2=0, addr.2=0.0.0.0, mask.2=0.0.0.0, flags.2=noquery limited\r\n';

test('ifstats rows, in index order, with NTPsec random items kept aside', () => {
  const r = parseIfStats(vars(IFSTATS));
  assert.ok(r.ok);
  assert.equal(r.value.length, 3);
  assert.deepEqual(r.value[0], {
    index: 0,
    address: '[::]:123',
    broadcast: '',
    enabled: false,
    flags: 0x11,
    name: 'v6wildcard',
    ttl: null,
    multicastGroups: null,
    received: 81,
    sent: 0,
    sendErrors: 0,
    peers: 0,
    uptime: 15,
    other: { qzk: '817' },
  });
  assert.equal(r.value[2]?.name, 'lo');
  assert.equal(r.value[2]?.enabled, true);
  assert.equal(r.value[2]?.ttl, 64);
  assert.equal(r.value[2]?.multicastGroups, 0);
  assert.equal(ORDERED_LIST_REQUEST.ifstats, 'ifstats');
});

test('restriction rows: flags split into words', () => {
  const r = parseRestrictions(vars(RESTRICTIONS));
  assert.ok(r.ok);
  assert.deepEqual(
    r.value.map((x) => [x.index, x.address, x.mask, x.hits, x.flagList]),
    [
      [0, '127.0.0.1', '255.255.255.255', 0, ['ntpport', 'interface', 'ignore']],
      [1, '127.0.0.1', '255.255.255.255', 6, []],
      [2, '0.0.0.0', '0.0.0.0', 0, ['noquery', 'limited']],
    ],
  );
  assert.deepEqual(r.value[0]?.other, { fgh: '3' });
  assert.equal(ORDERED_LIST_REQUEST.addr_restrictions, 'addr_restrictions');
});

test('sparse indexes, names without an index, and absurd indexes', () => {
  const r = groupIndexedVariables(vars('addr.7=x, stray=1, addr.2=y, name.x=3'));
  assert.ok(r.ok);
  assert.deepEqual(
    r.value.map((row) => [row.index, [...row.items.keys()]]),
    [
      [2, ['addr']],
      [7, ['addr']],
    ],
  );
  const huge = parseIfStats(vars('addr.99999999999999999999=x'));
  assert.ok(!huge.ok);
  assert.equal(huge.error.code, 'MODE6_ORDLIST_BAD_INDEX');
});

test('property: never throws on any variable list', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      const v = vars(text);
      const a = parseIfStats(v);
      const b = parseRestrictions(v);
      if (a.ok) for (const row of a.value) assert.ok(Number.isInteger(row.index));
      assert.equal(typeof b.ok, 'boolean');
    }),
    { numRuns: 500 },
  );
});
