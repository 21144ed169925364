// ntpd's system variables → the quality served with time.source = "ntpd" (src/proto/ntpd/quality.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseVariableList, variablesOf } from '../../src/proto/mode6/variables.js';
import { NTPD_QUALITY_VARIABLES, ntpdSystemQuality } from '../../src/proto/ntpd/quality.js';
import { unsynchronisedQuality } from '../../src/proto/ntp/quality.js';
import { refIdFromAscii, refIdFromIPv4 } from '../../src/proto/ntp/packet.js';

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0) * 1000;
const vars = (text: string) => variablesOf(parseVariableList(text)).variables;
// NTPsec 1.2.2's answer to `rv 0 leap,stratum,...` of a stratum 2 server (captured shape).
const SYNCED = 'leap=0, stratum=2, precision=-24, rootdelay=12.345, rootdisp=3.250, refid=192.0.2.7, reftime=0xeeb2e2ac.80000000';

describe('ntpdSystemQuality', () => {
  it('mirrors a synchronised ntpd', () => {
    const r = ntpdSystemQuality(vars(SYNCED), NOW, -20);
    assert.ok(r.ok);
    assert.equal(r.value.synchronised, true);
    assert.equal(r.value.refidText, '192.0.2.7');
    const q = r.value.quality;
    assert.deepEqual([q.leap, q.stratum, q.refid, q.precision, q.rootDelayMicros, q.rootDispersionMicros], ['none', 2, refIdFromIPv4('192.0.2.7'), -24, 12_345, 3_250]);
    // 0xeeb2e2ac NTP seconds = 2026-11-26T...; .8 s.
    assert.equal(q.referenceTimeMicros % 1_000_000, 500_000);
    assert.ok(Math.abs(q.referenceTimeMicros - NOW) < 86_400e6);
  });

  it('reads the leap indicator as ntpd sends it (a number) or as ntpq prints it (two bits)', () => {
    for (const [text, leap] of [['1', 'add'], ['01', 'add'], ['2', 'delete'], ['10', 'delete']] as const) {
      const r = ntpdSystemQuality(vars(SYNCED.replace('leap=0', `leap=${text}`)), NOW, -20);
      assert.ok(r.ok && r.value.quality.leap === leap, text);
    }
  });

  it('an ASCII refid at stratum 1 (".GPS." or "GPS")', () => {
    for (const refid of ['.GPS.', 'GPS']) {
      const r = ntpdSystemQuality(vars(SYNCED.replace('stratum=2', 'stratum=1').replace('refid=192.0.2.7', `refid=${refid}`)), NOW, -20);
      assert.ok(r.ok);
      assert.deepEqual([r.value.quality.refid, r.value.refidText], [refIdFromAscii('GPS'), 'GPS']);
    }
  });

  it('leap 3, stratum 0 or 16 are served as unsynchronised at once', () => {
    for (const change of ['leap=3', 'leap=11', 'stratum=16', 'stratum=0']) {
      const [name] = change.split('=');
      const text = SYNCED.replace(new RegExp(`${name}=\\d+`), change);
      const r = ntpdSystemQuality(vars(text), NOW, -20);
      assert.ok(r.ok, change);
      assert.equal(r.value.synchronised, false, change);
      assert.deepEqual(r.value.quality, unsynchronisedQuality(-24), change);
    }
  });

  it('names the variable that is missing or unreadable', () => {
    const cases: Array<[string, string]> = [
      [SYNCED.replace('leap=0, ', ''), 'NTPD_BAD_LEAP'],
      [SYNCED.replace('leap=0', 'leap=x'), 'NTPD_BAD_LEAP'],
      [SYNCED.replace('stratum=2', 'stratum=two'), 'NTPD_BAD_STRATUM'],
      [SYNCED.replace('rootdelay=12.345', 'rootdelay=-1'), 'NTPD_BAD_ROOT_DELAY'],
      [SYNCED.replace('rootdisp=3.250', 'rootdisp=abc'), 'NTPD_BAD_ROOT_DISPERSION'],
      [SYNCED.replace('refid=192.0.2.7', 'refid=300.1.2.3'), 'NTPD_BAD_REFID'],
      [SYNCED.replace('refid=192.0.2.7', 'refid=TOOLONG'), 'NTPD_BAD_REFID'],
      [SYNCED.replace('reftime=0xeeb2e2ac.80000000', 'reftime=now'), 'NTPD_BAD_REFTIME'],
    ];
    for (const [text, code] of cases) {
      const r = ntpdSystemQuality(vars(text), NOW, -20);
      assert.ok(!r.ok, text);
      assert.equal(r.error.code, code, text);
    }
  });

  it('asks for exactly the variables it reads', () => {
    assert.deepEqual([...NTPD_QUALITY_VARIABLES].sort(), ['leap', 'precision', 'refid', 'reftime', 'rootdelay', 'rootdisp', 'stratum']);
  });

  it('never throws on arbitrary variable text, and what it accepts can be put on the wire', () => {
    const value = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -300, max: 300 }).map(String), fc.constantFrom('0x00000000.00000000', '0xeeb2e2ac.1', '.LOCL.', '127.0.0.1', '1e308'));
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...NTPD_QUALITY_VARIABLES), value), (record) => {
        const text = Object.entries(record).map(([k, v]) => `${k}=${v}`).join(', ');
        const r = ntpdSystemQuality(vars(text), NOW, -20);
        if (!r.ok) return;
        const q = r.value.quality;
        assert.ok(q.stratum >= 1 && q.stratum <= 16);
        assert.ok(q.rootDelayMicros >= 0 && q.rootDelayMicros <= 65535e6 && q.rootDispersionMicros >= 0 && q.rootDispersionMicros <= 65535e6);
        assert.ok(Number.isInteger(q.precision) && q.precision >= -128 && q.precision <= 127);
        assert.ok(Number.isInteger(q.refid) && q.refid >= 0 && q.refid <= 0xffffffff);
      }),
      { numRuns: 500 },
    );
  });
});
