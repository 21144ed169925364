import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import {
  encodeVariableList,
  formatVariableTimestamp,
  parseVariableList,
  variableHex,
  variableInteger,
  variableNumber,
  variablesOf,
  variableTimestamp,
  Mode6VariablesError,
  type Mode6Variables,
} from '../../src/proto/mode6/variables.js';

const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

test('system variables as NTPsec 1.2.2 sends them: order, quotes, CR LF line breaks', () => {
  const text =
    'leap=0, stratum=10, precision=-24, rootdelay=0.000, rootdisp=0.000,\r\nrefid=127.0.0.1, reftime=0x00000000.00000000, tc=0, peer=0,\r\n' +
    'offset=0.000000, frequency=0.000000, sys_jitter=0.000000,\r\nclk_jitter=0.000060, clock=0xeeb2e149.715b14cb, processor="x86_64",\r\n' +
    'system="Linux/6.18.44-fc-v669", version="ntpd ntpsec-1.2.2",\r\nclk_wander=0.000000, mintc=0\r\n';
  const r = parseVariableList(latin1(text));
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const v = r.value;
  assert.deepEqual(v.names(), ['leap', 'stratum', 'precision', 'rootdelay', 'rootdisp', 'refid', 'reftime', 'tc', 'peer', 'offset', 'frequency', 'sys_jitter', 'clk_jitter', 'clock', 'processor', 'system', 'version', 'clk_wander', 'mintc']);
  assert.equal(v.get('version'), 'ntpd ntpsec-1.2.2');
  assert.equal(v.item('version')?.quoted, true);
  assert.equal(v.item('stratum')?.quoted, false);
  assert.equal(v.get('refid'), '127.0.0.1');
  assert.equal(variableInteger(v.get('precision')), -24);
  assert.deepEqual(variableTimestamp(v.get('clock')), { seconds: 0xeeb2e149, fraction: 0x715b14cb });
  assert.equal(variableNumber(v.get('clk_jitter')), 0.00006);
  assert.equal(v.get('nonexistent'), undefined);
});

test('quoted values keep commas and equals signs; flags have no value; unknown names survive', () => {
  const r = parseVariableList('name="quoted, value=1", flag, x-unknown.3=7 , empty=, other="",last');
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.deepEqual(r.value.items, [
    { name: 'name', value: 'quoted, value=1', quoted: true },
    { name: 'flag', value: null, quoted: false },
    { name: 'x-unknown.3', value: '7', quoted: false },
    { name: 'empty', value: '', quoted: false },
    { name: 'other', value: '', quoted: true },
    { name: 'last', value: null, quoted: false },
  ]);
  assert.equal(r.value.get('flag'), null);
  assert.deepEqual(r.value.toRecord(), { name: 'quoted, value=1', flag: '', 'x-unknown.3': '7', empty: '', other: '', last: '' });
});

test('unquoted values may hold spaces (NTPsec reslist flags); repeated names: get() returns the last', () => {
  const r = parseVariableList('addr.0=127.0.0.1, flags.0=ntpport interface ignore, a=1, a=2');
  assert.ok(r.ok);
  assert.equal(r.value.get('flags.0'), 'ntpport interface ignore');
  assert.equal(r.value.get('a'), '2');
  assert.equal(r.value.size, 4);
  assert.deepEqual(r.value.names(), ['addr.0', 'flags.0', 'a']);
});

test('trailing NULs (ntpd pads some answers inside the count) are not a problem', () => {
  const r = parseVariableList(latin1('nonce=eeb2e1e143095e3b7e15e40c\r\n\0\0\0'));
  assert.ok(r.ok);
  assert.deepEqual(r.value.items, [{ name: 'nonce', value: 'eeb2e1e143095e3b7e15e40c', quoted: false }]);
});

test('NTPsec 1.2.2 garbage in filtdelay is reported, escaped, and the rest is kept', () => {
  // Captured: uninitialised octets before the numbers (ctl_putarray bug).
  const text = latin1('keyid=0,\r\nfiltdelay=@\xfd\xf0Q\xfe\x7f 0.00 0.00,\r\npmode=0,\r\nflash=0x1600, headway=0, ntscookies=-1\r\n');
  const r = parseVariableList(text);
  assert.ok(!r.ok);
  assert.ok(r.error instanceof Mode6VariablesError);
  assert.equal(r.error.code, 'MODE6_VARS_BINARY');
  assert.equal(r.error.offset, 21, 'the 0xfd after "filtdelay=@"');
  assert.equal(r.error.problems.length, 1);
  const { variables, problems } = variablesOf(r);
  assert.equal(problems.length, 1);
  assert.deepEqual(variables.names(), ['keyid', 'filtdelay', 'pmode', 'flash', 'headway', 'ntscookies']);
  assert.equal(variables.get('filtdelay'), '@\\xfd\\xf0Q\\xfe\\x7f 0.00 0.00');
  assert.equal(variableHex(variables.get('flash')), 0x1600);
});

test('each kind of garbage has its code, and parsing goes on after it', () => {
  const cases: [string, string, string[]][] = [
    ['a=1,,b=2', 'MODE6_VARS_EMPTY_ITEM', ['a', 'b']],
    ['a=1, =2, b=3', 'MODE6_VARS_EMPTY_NAME', ['a', 'b']],
    ['a=1, bad name=2, b=3', 'MODE6_VARS_BAD_NAME', ['a', 'b']],
    ['a=1, q"x=2, b=3', 'MODE6_VARS_BAD_NAME', ['a', 'b']],
    ['a=1, b="never closed, c=3', 'MODE6_VARS_UNTERMINATED_QUOTE', ['a', 'b']],
    ['a="x"y, b=2', 'MODE6_VARS_TEXT_AFTER_QUOTE', ['a', 'b']],
    ['a=1\0x, b=2', 'MODE6_VARS_NUL', ['a', 'b']],
    ['a\x01=1, b=2', 'MODE6_VARS_BAD_NAME', ['b']],
  ];
  for (const [text, code, names] of cases) {
    const r = parseVariableList(latin1(text));
    assert.ok(!r.ok, text);
    assert.equal(r.error.code, code, text);
    assert.deepEqual(r.error.partial.names(), names, text);
  }
  const many = parseVariableList('a, '.repeat(10), { maxItems: 3 });
  assert.ok(!many.ok);
  assert.equal(many.error.code, 'MODE6_VARS_TOO_MANY_ITEMS');
  assert.equal(many.error.partial.size, 3);
  const long = parseVariableList('abc=1, def=2', { maxLength: 6 });
  assert.ok(!long.ok);
  assert.equal(long.error.code, 'MODE6_VARS_TOO_LONG');
  assert.deepEqual(long.error.partial.toRecord(), { abc: '1' });
});

test('request lists: names and name=value, refused when ntpd would misread them', () => {
  assert.equal(encodeVariableList(['version', 'stratum']), 'version, stratum');
  assert.equal(encodeVariableList([['frags', 32], { name: 'nonce', value: 'abc' }, { name: 'flag' }, ['laddr', '127.0.0.1']]), 'frags=32, nonce=abc, flag, laddr=127.0.0.1');
  assert.equal(encodeVariableList([]), '');
  for (const bad of ['', 'a b', 'a,b', 'a=b', 'a"', 'é']) {
    assert.throws(() => encodeVariableList([bad]), (e: unknown) => e instanceof UsageError && e.code === 'MODE6_BAD_VARIABLE_NAME', bad);
  }
  for (const bad of ['x,y', 'x"y', 'x\r\ny', 'tab\there', 'ü']) {
    assert.throws(() => encodeVariableList([['a', bad]]), (e: unknown) => e instanceof UsageError && e.code === 'MODE6_BAD_VARIABLE_VALUE', bad);
  }
});

test('typed helpers read values as ntpd prints them', () => {
  assert.equal(variableInteger('123'), 123);
  assert.equal(variableInteger('-24'), -24);
  assert.equal(variableInteger('0x1f'), 31);
  assert.equal(variableInteger('1.5'), undefined);
  assert.equal(variableInteger(null), undefined);
  assert.equal(variableInteger('12abc'), undefined);
  assert.equal(variableNumber('0.000060'), 0.00006);
  assert.equal(variableNumber('-1.5'), -1.5);
  assert.equal(variableNumber('6e-05'), 0.00006);
  assert.equal(variableNumber('0x10'), 16);
  assert.equal(variableNumber('nan'), undefined);
  assert.equal(variableNumber('1.2.3'), undefined);
  assert.equal(variableHex('0x1600'), 0x1600);
  assert.equal(variableHex('ff'), 255);
  assert.equal(variableHex('0xzz'), undefined);
  assert.deepEqual(variableTimestamp('0xeeb2e149.715b14cb'), { seconds: 0xeeb2e149, fraction: 0x715b14cb });
  assert.deepEqual(variableTimestamp('00000000.00000000'), { seconds: 0, fraction: 0 });
  assert.equal(variableTimestamp('0x1.2.3'), undefined);
  assert.equal(variableTimestamp('0x123456789.0'), undefined);
  assert.equal(formatVariableTimestamp({ seconds: 0xeeb2e149, fraction: 0x5 }), '0xeeb2e149.00000005');
});

const arbName = fc.stringMatching(/^[a-z_][a-z0-9_.]{0,12}$/);
const arbValue = fc.oneof(
  fc.record({ value: fc.stringMatching(/^[!#-+\--~][ !#-+\--~]{0,20}[!#-+\--~]$/), quoted: fc.constant(false) }),
  fc.record({ value: fc.stringMatching(/^[ !#-~]{0,20}$/), quoted: fc.constant(true) }),
  fc.record({ value: fc.constant(null), quoted: fc.constant(false) }),
);

test('property: well-formed lists, written the way ntpd writes them, parse back to the same items', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(arbName, arbValue), { maxLength: 30 }), fc.array(fc.boolean(), { maxLength: 30 }), (items, breaks) => {
      const expected = items.map(([name, v]) => ({ name, value: v.value, quoted: v.quoted }));
      let text = '';
      expected.forEach((item, i) => {
        if (i > 0) text += breaks[i] === true ? ',\r\n' : ', ';
        text += item.value === null ? item.name : item.quoted ? `${item.name}="${item.value}"` : `${item.name}=${item.value}`;
      });
      if (expected.length > 0) text += '\r\n';
      const r = parseVariableList(text);
      assert.ok(r.ok, r.ok ? '' : `${r.error.message} in ${JSON.stringify(text)}`);
      assert.deepEqual(r.value.items, expected);
    }),
    { numRuns: 500 },
  );
});

test('property: parsing never throws, and every kept item has a clean name', () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), fc.string({ maxLength: 200 }).map((s) => s)), (input) => {
      const r = parseVariableList(input);
      const list: Mode6Variables = r.ok ? r.value : r.error.partial;
      for (const item of list.items) {
        assert.match(item.name, /^[!#-~]+$/);
        assert.ok(!item.name.includes('=') && !item.name.includes(','));
        if (item.value !== null) assert.match(item.value, /^[\t\x20-\x7e]*$/, 'values are printable (escaped)');
      }
      if (!r.ok) assert.ok(r.error.problems.length > 0);
    }),
    { numRuns: 1000 },
  );
});
