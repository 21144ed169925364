import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildPeerRow, PEERS_HEADER, prettyInterval, pyFixed } from '../../src/proto/mode6/peers.js';
import { parseVariableList, variablesOf } from '../../src/proto/mode6/variables.js';

// Expected lines were produced by NTPsec 1.2.2's own ntpq code (pylib PeerSummary, "peers" mode, numeric, 80
// columns) from the same variable text and status, with time.time() fixed at NTP 0xeeb2e200 — the first two
// are READVAR answers captured from NTPsec, the others cover each type letter and number format. (pylib lacks
// NTP_MINPOLL, so a negative poll crashes ntpq; the generator set it to 0, the C header's value.)
const NOW_MICROS = (0xeeb2e200 - 2_208_988_800) * 1_000_000;

const CASES: { associationId: number; status: number; text: string; line: string }[] = [
  {
    associationId: 17767,
    status: 0xb014,
    text: "srcadr=10.123.45.2, srcport=123, dstadr=10.123.45.1, dstport=123,\r\nleap=0, hmode=3, stratum=8, ppoll=99, hpoll=3, precision=-26,\r\nrootdelay=0.000, rootdisp=0.000, refid=127.127.1.1,\r\nreftime=0xeeb2e1db.4e046667, rec=0xeeb2e1df.b9cbbb72,\r\nxmt=0xeeb2e1df.b9cb21b8, reach=0x1, unreach=1, delay=0.044154,\r\noffset=0.012914, jitter=0.003050, dispersion=3937.507568, keyid=0,\r\nfiltdelay=\u000b 0.04 0.09 0.00 0.00 0.00 0.00 0.00 0.00,\r\nfiltoffset=\u000b 0.04 0.09 0.00 0.00 0.00 0.00 0.00 0.00 0.01 0.02 0.00 0.00 0.00 0.00 0.00 0.00,\r\npmode=4,\r\nfiltdisp=\u000b 0.04 0.09 0.00 0.00 0.\u0004 0.00 0.03 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00,\r\nflash=0x400, headway=9, ntscookies=-1\r\n",
    line: " 10.123.45.2     127.127.1.1      8 u   32    8    1   0.0442   0.0129   0.0031",
  },
  {
    associationId: 17768,
    status: 0x8011,
    text: "srcadr=192.0.2.1, srcport=123, dstadr=0.0.0.0, dstport=0, leap=3,\r\nhmode=3, stratum=16, ppoll=99, hpoll=4, precision=-24, rootdelay=0.000,\r\nrootdisp=0.000, refid=INIT, reftime=0x00000000.00000000,\r\nrec=0x00000000.00000000, xmt=0x00000000.00000000, reach=0x0, unreach=1,\r\ndelay=0.000000, offset=0.000000, jitter=0.000060,\r\ndispersion=15937.500000, keyid=0,\r\nfiltdelay= 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00,\r\nfiltoffset= 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00,\r\npmode=0,\r\nfiltdisp= 0.00 0.00 0.00 0.00 0.0 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00,\r\nflash=0x1600, headway=0, ntscookies=-1\r\n",
    line: " 192.0.2.1       .INIT.          16 u    -   16    0   0.0000   0.0000   0.0001",
  },
  {
    associationId: 3,
    status: 0x961a,
    text: "srcadr=192.0.2.10, srcport=123, hmode=3, stratum=2, ppoll=6, hpoll=10, refid=203.0.113.5, reftime=0xeeb2d000.00000000, rec=0xeeb2d9a0.80000000, reach=0xff, delay=12345.678901, offset=-123.456789, jitter=0.062500, ntscookies=4",
    line: "*192.0.2.10      203.0.113.5      2 4  36m   64  377 12345.68 -123.457   0.0625",
  },
  {
    associationId: 4,
    status: 0x9424,
    text: "srcadr=0.0.0.0, srchost=\"pool.ntp.org\", hmode=3, stratum=16, ppoll=6, hpoll=6, refid=POOL, reach=0x0, delay=0.000000, offset=-0.000000, jitter=nan",
    line: "+pool.ntp.org    .POOL.          16 p    -   64    0   0.0000  -0.0000      nan",
  },
  {
    associationId: 5,
    status: 0x9314,
    text: "srcadr=224.0.1.1, hmode=5, stratum=3, ppoll=6, hpoll=6, refid=192.0.2.1, rec=0xeeb0df60.00000000, reach=0x3, delay=1.234, offset=-1000.5, dispersion=2.5",
    line: "-224.0.1.1       192.0.2.1        3 M  37h   64    3    1.234 -1000.50    2.500",
  },
  {
    associationId: 6,
    status: 0x9514,
    text: "srcadr=198.51.100.7, hmode=1, stratum=3, ppoll=4, hpoll=5, refid=192.0.2.1, rec=0xeeb2df50.00000000, reach=0x7, delay=0.5, offset=100000.25, jitter=1000000.5",
    line: "#198.51.100.7    192.0.2.1        3 s  688   16    7    0.500 100000.2  1000000",
  },
  {
    associationId: 7,
    status: 0x9214,
    text: "srcadr=198.51.100.8, hmode=2, stratum=3, ppoll=4, hpoll=-2, refid=192.0.2.1, rec=0xeeb2df50.00000000, reach=0x1, delay=0.000123, offset=-99999.000000, jitter=-0.000001",
    line: ".198.51.100.8    192.0.2.1        3 S  688    1    1   0.0001 -99999.0  -0.0000",
  },
  {
    associationId: 8,
    status: 0x9614,
    text: "srcadr=127.127.28.0, srchost=\"SHM(0)\", hmode=3, stratum=0, ppoll=4, hpoll=4, refid=GPS, rec=0xeeb29f60.00000000, reach=0x1ff, delay=0.000000, offset=0.001000, jitter=0.000500",
    line: "*SHM(0)          .GPS.            0 l 284m   16  777   0.0000   0.0010   0.0005",
  },
  {
    associationId: 9,
    status: 0x9014,
    text: "srcadr=2001:db8:1234:5678:9abc::1, hmode=6, stratum=2, ppoll=4, hpoll=4, refid=2001:db8:aaaa:bbbb:cccc::99, rec=0xe0000000.00000000, reach=0x1, delay=0.000000, offset=0.000000, jitter=0.000000",
    line: " 2001:db8:1234:5 -:bbbb:cccc::99  2 b 2854   16    1   0.0000   0.0000   0.0000",
  },
];

function row(c: { associationId: number; status: number; text: string }, now = NOW_MICROS) {
  const { variables } = variablesOf(parseVariableList(c.text));
  return buildPeerRow({ associationId: c.associationId, status: c.status, variables }, now);
}

test('rows print exactly as NTPsec ntpq -p -n prints them', () => {
  for (const c of CASES) assert.equal(row(c).line, c.line, c.text.slice(0, 40));
});

test('row fields: captured reachable association', () => {
  const r = row(CASES[0] as (typeof CASES)[number]);
  assert.equal(r.tally, ' ');
  assert.equal(r.status.reachable, true);
  assert.equal(r.remote, '10.123.45.2');
  assert.equal(r.refid, '127.127.1.1');
  assert.equal(r.stratum, 8);
  assert.equal(r.type, 'u');
  assert.equal(r.when, 32);
  assert.equal(r.poll, 8);
  assert.equal(r.reach, 1);
  assert.equal(r.delay, 0.044154);
  assert.equal(r.offset, 0.012914);
  assert.equal(r.jitter, 0.00305);
  assert.equal(r.jitterIsDispersion, false);
  assert.deepEqual(r.columns.reach, '  1');
});

test('never-heard association: when is null-ish (shown "-"), refid in dots', () => {
  const r = row(CASES[1] as (typeof CASES)[number]);
  assert.equal(r.refid, '.INIT.');
  assert.equal(r.columns.when, '   -');
  assert.ok(r.when === null || r.when <= 0);
});

test('no jitter: the dispersion is shown in its place', () => {
  const r = row(CASES.find((c) => c.associationId === 5) as (typeof CASES)[number]);
  assert.equal(r.jitterIsDispersion, true);
  assert.equal(r.jitter, 2.5);
  assert.equal(r.type, 'M');
});

test('garbage values that crash ntpq still give a row', () => {
  const r = row({ associationId: 10, status: 0x0014, text: 'srcadr=198.51.100.9, stratum=x, refid=, reach=zz, delay=abc' });
  assert.equal(r.stratum, 20);
  assert.equal(r.reach, 0);
  assert.equal(r.delay, null);
  assert.equal(r.columns.delay, '     abc');
  assert.equal(r.refid, '..');
  assert.equal(r.type, '?');
  const empty = row({ associationId: 11, status: 0, text: '' });
  assert.equal(empty.remote, '');
  assert.equal(empty.line.length, 79);
});

test('header and intervals', () => {
  assert.equal(PEERS_HEADER[0]?.length, 79);
  assert.equal(PEERS_HEADER[1], '='.repeat(79));
  assert.deepEqual([0, -1, 1, 2048, 2049, 18000, 18001, 345600, 345601, 1e9].map(prettyInterval), ['-', '-', '1', '2048', '34m', '5h', '5h', '4d', '4d', '11574d'], 'the values NTPsec pylib prettyinterval gives');
  assert.equal(prettyInterval(null), '-');
  assert.equal(prettyInterval(1.5), '-');
});

test("pyFixed matches Python's '%.Nf' on exact ties and negative zero", () => {
  assert.equal(pyFixed(100000.25, 1), '100000.2');
  assert.equal(pyFixed(100000.75, 1), '100000.8');
  assert.equal(pyFixed(0.0625, 3), '0.062');
  assert.equal(pyFixed(-0.0625, 3), '-0.062');
  assert.equal(pyFixed(2.5, 0), '2');
  assert.equal(pyFixed(-0, 4), '-0.0000');
  assert.equal(pyFixed(-0.00001, 4), '-0.0000');
  assert.equal(pyFixed(1.005, 2), '1.00', '1.005 is below the tie in binary');
  assert.equal(pyFixed(NaN, 3), 'nan');
});

test('property: any variables and status give a row of fixed layout, never a throw', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 2 ** 40 }), (text, status, now) => {
      const r = row({ associationId: 1, status, text }, now);
      assert.equal(r.line[0], r.tally);
      assert.equal(r.columns.remote.length, 15);
    }),
    { numRuns: 500 },
  );
});
