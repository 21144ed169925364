// The client's keys file (docs/eks.md §5, `ntptsc ekey --out`): key lines in ntpd/NTPsec and chrony syntax and
// the managed block that holds them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import {
  type KeysFileFormat,
  type ManagedBlockLines,
  KeysBlockCodes,
  beginMarker,
  checkManagedBlock,
  endMarker,
  formatKeyLine,
  managedKeyComment,
  readManagedKey,
  replaceManagedBlock,
} from '../../src/proto/eks/keys-file.js';
import { parseKeysFile } from '../../src/proto/ntp/keys-file.js';
import { hex } from './ntske-fixtures.js';

const KEY = { keyId: 32770, key: hex('00112233445566778899aabbccddeeff') };
const SOURCE = 'ntp.example.com:4460';
const NTP_LINE = '32770 AES128CMAC 00112233445566778899aabbccddeeff';
const CHRONY_LINE = '32770 AES128 HEX:00112233445566778899aabbccddeeff';
const COMMENT = 'key 32770 from ntptsd at ntp.example.com:4460, expires 2026-11-28T17:00:00Z';
const LINES: ManagedBlockLines = { comments: [COMMENT], keyLine: NTP_LINE };
const BLOCK = ['# BEGIN ntptsc ekey ntp.example.com:4460', `# ${COMMENT}`, NTP_LINE, '# END ntptsc ekey ntp.example.com:4460', ''].join('\n');

function replaced(existing: string, source = SOURCE, lines = LINES): string {
  const r = replaceManagedBlock(existing, source, lines);
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

function failure(existing: string, source = SOURCE): string {
  const r = replaceManagedBlock(existing, source, LINES);
  return r.ok ? 'ok' : r.error.code;
}

const usage = (f: () => unknown, code: string) => assert.throws(f, (e: unknown) => e instanceof UsageError && e.code === code);

describe('key lines', () => {
  it('ntpd/NTPsec and chrony syntax', () => {
    assert.equal(formatKeyLine(KEY, 'ntp'), NTP_LINE);
    assert.equal(formatKeyLine(KEY, 'chrony'), CHRONY_LINE);
    assert.equal(formatKeyLine({ keyId: 65535, key: new Uint8Array(16).fill(0xab) }, 'ntp'), `65535 AES128CMAC ${'ab'.repeat(16)}`);
    assert.equal(formatKeyLine({ keyId: 32768, key: new Uint8Array(16) }, 'chrony'), `32768 AES128 HEX:${'00'.repeat(16)}`);
  });

  it('the ntp line reads back with the NTPsec-compatible parser as the same AES-128-CMAC key', () => {
    const r = parseKeysFile(replaced('1 MD5 static\n'));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const k = r.value.keys.get(32770);
    assert.equal(k?.algorithm, 'AES128CMAC');
    assert.deepEqual(k?.key, KEY.key);
    assert.deepEqual(r.value.warnings, []);
  });

  it('refuses ids outside the ephemeral range (docs/eks.md §3) in both formats, and keys the files cannot hold', () => {
    for (const format of ['ntp', 'chrony'] as const) {
      for (const keyId of [0, 1, 123, 32767, 65536, 0xffffffff, 2 ** 32, 32768.5, -32768]) {
        usage(() => formatKeyLine({ keyId, key: KEY.key }, format), 'KEYS_KEY_ID_RANGE');
      }
    }
    assert.throws(() => formatKeyLine({ keyId: 32767, key: KEY.key }, 'ntp'), /32767 is outside the ephemeral key range 32768\.\.65535/);
    usage(() => formatKeyLine({ keyId: 32768, key: new Uint8Array(15) }, 'ntp'), 'KEYS_BAD_KEY');
  });

  it('comment line', () => {
    assert.equal(managedKeyComment(32770, SOURCE, 1795885200), COMMENT);
    usage(() => managedKeyComment(1, SOURCE, Number.MAX_SAFE_INTEGER), 'KEYS_BAD_EXPIRY');
  });
});

describe('managed block', () => {
  it('appended to an empty file, to one ending with a newline and to one without', () => {
    assert.equal(replaced(''), BLOCK);
    assert.equal(replaced('1 MD5 static\n'), `1 MD5 static\n${BLOCK}`);
    assert.equal(replaced('1 MD5 static'), `1 MD5 static\n${BLOCK}`);
  });

  it('replaced in place; lines around it and other sources untouched', () => {
    const other = '# BEGIN ntptsc ekey other:4460\n9 AES128CMAC 00000000000000000000000000000000\n# END ntptsc ekey other:4460\n';
    const before = `# keys\n${other}1 MD5 static\n`;
    const after = '\n2 SHA1 0123456789abcdef0123456789abcdef01234567  # trailing\n';
    const old = '# BEGIN ntptsc ekey ntp.example.com:4460\n# old\n100 AES128CMAC ffffffffffffffffffffffffffffffff\n# END ntptsc ekey ntp.example.com:4460\n';
    assert.equal(replaced(before + old + after), before + BLOCK + after);
  });

  it('keeps CRLF line endings and a missing final newline', () => {
    const crlf = '1 MD5 static\r\n';
    assert.equal(replaced(crlf), crlf + BLOCK.replace(/\n/g, '\r\n'));
    const noFinal = `1 MD5 x\n${BLOCK.slice(0, -1)}`;
    const out = replaced(noFinal, SOURCE, { comments: [], keyLine: '7 AES128CMAC 000102030405060708090a0b0c0d0e0f' });
    assert.equal(out, '1 MD5 x\n# BEGIN ntptsc ekey ntp.example.com:4460\n7 AES128CMAC 000102030405060708090a0b0c0d0e0f\n# END ntptsc ekey ntp.example.com:4460');
  });

  it('markers are recognised whatever their spacing', () => {
    const loose = '#BEGIN  ntptsc ekey ntp.example.com:4460 \n5 AES128CMAC 00000000000000000000000000000000\n  #   END ntptsc\tekey ntp.example.com:4460\n';
    assert.equal(replaced(`a\n${loose}b\n`), `a\n${BLOCK}b\n`);
  });

  it('a block it cannot delimit with certainty is an error, not a guess', () => {
    const begin = '# BEGIN ntptsc ekey ntp.example.com:4460\n';
    const end = '# END ntptsc ekey ntp.example.com:4460\n';
    assert.equal(failure(`${begin}1 AES128CMAC 00\n`), 'KEYS_UNTERMINATED_BLOCK');
    assert.equal(failure(`${begin}${begin}${end}`), 'KEYS_UNTERMINATED_BLOCK');
    assert.equal(failure(`1 MD5 x\n${end}`), 'KEYS_UNMATCHED_END');
    assert.equal(failure(`${begin}${end}${end}`), 'KEYS_UNMATCHED_END');
    assert.equal(failure(`${begin}# END ntptsc ekey other:1\n${end}`), 'KEYS_NESTED_BLOCK');
    assert.equal(failure(`${begin}${end}${begin}${end}`), 'KEYS_DUPLICATE_BLOCK');
    // Another source's broken block is not ours to judge.
    assert.equal(failure('# BEGIN ntptsc ekey other:1\n'), 'ok');
  });

  it('refuses lines that would break the file', () => {
    usage(() => replaceManagedBlock('', 'has space', LINES), 'KEYS_BAD_SOURCE');
    usage(() => replaceManagedBlock('', '', LINES), 'KEYS_BAD_SOURCE');
    usage(() => replaceManagedBlock('', SOURCE, { comments: ['a\nb'], keyLine: NTP_LINE }), 'KEYS_BAD_LINE');
    usage(() => replaceManagedBlock('', SOURCE, { comments: ['END ntptsc ekey x'], keyLine: NTP_LINE }), 'KEYS_BAD_LINE');
    usage(() => replaceManagedBlock('', SOURCE, { comments: [], keyLine: '# 1 AES 00' }), 'KEYS_BAD_LINE');
    usage(() => replaceManagedBlock('', SOURCE, { comments: [], keyLine: ' ' }), 'KEYS_BAD_LINE');
    usage(() => replaceManagedBlock('', SOURCE, { comments: [], keyLine: `${NTP_LINE}\r` }), 'KEYS_BAD_LINE');
    usage(() => replaceManagedBlock('', SOURCE, { comments: [], keyLine: 'AES128CMAC 32770 00' }), 'KEYS_BAD_LINE');
  });

  it('checkManagedBlock: the delimiting checks alone, before any key id is known', () => {
    assert.deepEqual(checkManagedBlock('', SOURCE), { ok: true, value: null });
    assert.ok(checkManagedBlock(`32770 MD5 x\n${BLOCK}`, SOURCE).ok, 'a key id taken outside is not its business');
    const r = checkManagedBlock(`1 MD5 x\n# BEGIN ntptsc ekey ${SOURCE}\n`, SOURCE);
    assert.ok(!r.ok && r.error.code === KeysBlockCodes.UNTERMINATED_BLOCK);
    usage(() => checkManagedBlock('', 'has space'), 'KEYS_BAD_SOURCE');
  });

  it('marker helpers', () => {
    assert.equal(beginMarker(SOURCE), '# BEGIN ntptsc ekey ntp.example.com:4460');
    assert.equal(endMarker('[2001:db8::1]:4460'), '# END ntptsc ekey [2001:db8::1]:4460');
  });
});

describe('a key id already defined outside the block', () => {
  const taken = (existing: string, lines = LINES) => {
    const r = replaceManagedBlock(existing, SOURCE, lines);
    assert.ok(!r.ok, 'expected a refusal');
    assert.equal(r.error.code, 'KEYS_KEY_ID_TAKEN');
    return r.error;
  };

  it("an operator's key line, in ntpd/NTPsec or chrony syntax, however spaced: refused, naming the line", () => {
    for (const line of [
      '32770 MD5 secret',
      '32770 M secret # a comment',
      '  32770\tSHA1 0123456789abcdef0123456789abcdef01234567',
      '32770 AES128 HEX:00112233445566778899aabbccddeeff',
      '32770 HEX:00112233445566778899aabbccddeeff',
      '32770 tulip',
      '032770 MD5 leading zero, as atoi reads it',
      '32770',
      '32770#x',
    ]) {
      const error = taken(`# keys\n1 MD5 one\n${line}\n`);
      assert.equal(error.offset, 3, line);
      assert.equal(error.message, `line 3: key id 32770 is already defined there (outside the block for ${SOURCE})`);
    }
    // Also when this source's block exists (it would be replaced), with the other definition before or after it.
    assert.equal(taken(`${BLOCK}32770 MD5 x\n`).offset, 5);
    assert.equal(taken(`32770 MD5 x\r\n${BLOCK.replace(/\n/g, '\r\n')}`).offset, 1);
    // In the chrony format too.
    assert.equal(taken('32770 AES128 HEX:ffeeddccbbaa99887766554433221100\n', { comments: [], keyLine: CHRONY_LINE }).offset, 1);
  });

  it("another server's block holding the same id (both servers allocate from 32768): refused, naming that block", () => {
    const other = '# BEGIN ntptsc ekey other.example:4460\n# key 32770 from ntptsd at other.example:4460\n32770 AES128CMAC ffeeddccbbaa99887766554433221100\n# END ntptsc ekey other.example:4460\n';
    const error = taken(`1 MD5 x\n${other}`);
    assert.equal(error.message, 'line 4: key id 32770 is already defined there (in the block for other.example:4460)');
    assert.equal(taken(`${BLOCK}${other}`).offset, 7);
    // After the other block has ended, a line is the operator's again.
    assert.match(taken(`${other.replace('32770 AES', '40000 AES')}32770 MD5 x\n`).message, /^line 5: .*\(outside the block for /);
  });

  it('not a definition of the id: comments, other ids, other first fields; and the old key of our own block', () => {
    const fine = [
      '# 32770 MD5 commented out',
      '  # 32770 MD5 x',
      '327700 MD5 x',
      '3277 MD5 x',
      '32770x MD5 x',
      'x 32770 MD5',
      '-32770 MD5 x',
      '',
      '32771 AES128CMAC 00112233445566778899aabbccddeeff',
    ].join('\n');
    assert.equal(replaced(`${fine}\n`), `${fine}\n${BLOCK}`);
    // Our own block already defines 32770 (a renewal keeps the id): replaced, not refused.
    const renewed = replaced(`${fine}\n${BLOCK}`);
    assert.equal(renewed, `${fine}\n${BLOCK}`);
  });
});

describe('reading the held key back', () => {
  it('both formats', () => {
    assert.deepEqual(readManagedKey(`x\n${BLOCK}`, SOURCE, 'ntp'), KEY);
    const chrony = replaced('', SOURCE, { comments: [COMMENT], keyLine: CHRONY_LINE });
    assert.deepEqual(readManagedKey(chrony, SOURCE, 'chrony'), KEY);
    // NTPsec's aliases and case, a trailing comment (ntp only), hex in upper case.
    const aliased = BLOCK.replace(NTP_LINE, '32770\taes-128  00112233445566778899AABBCCDDEEFF # mine');
    assert.deepEqual(readManagedKey(aliased, SOURCE, 'ntp'), KEY);
    assert.deepEqual(readManagedKey(chrony.replace('AES128 HEX:', 'aes128 hex:'), SOURCE, 'chrony'), KEY);
  });

  it('null when there is no usable key', () => {
    const chrony = replaced('', SOURCE, { comments: [], keyLine: CHRONY_LINE });
    assert.equal(readManagedKey('', SOURCE, 'ntp'), null);
    assert.equal(readManagedKey(BLOCK, 'other:1', 'ntp'), null);
    assert.equal(readManagedKey(BLOCK, SOURCE, 'chrony'), null);
    assert.equal(readManagedKey(chrony, SOURCE, 'ntp'), null);
    assert.equal(readManagedKey(BLOCK.replace(NTP_LINE, `${NTP_LINE}\n1 AES128CMAC ${'00'.repeat(16)}`), SOURCE, 'ntp'), null);
    assert.equal(readManagedKey(BLOCK.replace(NTP_LINE, NTP_LINE.slice(0, -2)), SOURCE, 'ntp'), null);
    assert.equal(readManagedKey(BLOCK.replace(NTP_LINE, NTP_LINE.replace('AES128CMAC', 'MD5')), SOURCE, 'ntp'), null);
    assert.equal(readManagedKey(BLOCK.replace(NTP_LINE, NTP_LINE.replace('32770', '65536')), SOURCE, 'ntp'), null);
    assert.equal(readManagedKey(chrony.replace('HEX:', ''), SOURCE, 'chrony'), null);
    assert.equal(readManagedKey(BLOCK.replace('# END', '# NOT END'), SOURCE, 'ntp'), null);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties.

const isOurMarker = (line: string) => /^\s*#\s*(BEGIN|END)\s+ntptsc\s+ekey\s+src:1\s*$/.test(line);
/** Lines an operator might have: anything on one line, comments, other sources' markers (even unbalanced). */
const lineArb = fc
  .oneof(
    fc.string({ maxLength: 30 }),
    fc.string({ unit: 'grapheme', maxLength: 30 }),
    fc.constantFrom('', '#', '# comment', '1 MD5 x', '# BEGIN ntptsc ekey other:2', '# END ntptsc ekey other:2', '  \t'),
  )
  .map((s) => s.replace(/[\r\n]/g, ' '))
  .filter((s) => !isOurMarker(s) && !/^\s*\d{5}(?:[\s#]|$)/.test(s)); // no line defining an ephemeral id: covered below
const fileArb = fc
  .tuple(fc.array(lineArb, { maxLength: 12 }), fc.constantFrom('\n', '\r\n'), fc.boolean())
  .map(([lines, eol, final]) => lines.join(eol) + (final && lines.length > 0 ? eol : ''));
const keyArb = fc.record(
  { keyId: fc.integer({ min: 32768, max: 65535 }), key: fc.uint8Array({ minLength: 16, maxLength: 16 }) },
  { noNullPrototype: true },
);
const formatArb = fc.constantFrom<KeysFileFormat>('ntp', 'chrony');

function blockFor(key: { keyId: number; key: Uint8Array }, format: KeysFileFormat): ManagedBlockLines {
  return { comments: [managedKeyComment(key.keyId, 'src:1', 1795885200)], keyLine: formatKeyLine(key, format) };
}

/** Removes this source's block (markers included) from the text. */
function withoutBlock(text: string): string {
  return text.replace(/# BEGIN ntptsc ekey src:1(?:\r?\n)[\s\S]*?# END ntptsc ekey src:1(?:\r?\n)?/, '');
}

describe('properties', () => {
  it('appending keeps the file as a prefix; replacing keeps every line outside; idempotent; reads back', () => {
    fc.assert(
      fc.property(fileArb, fileArb, keyArb, keyArb, formatArb, (head, tail, first, second, format) => {
        // Append to the head.
        const once = replaced(head, 'src:1', blockFor(first, format));
        assert.ok(once.startsWith(head));
        const separator = head === '' || head.endsWith('\n') ? '' : head.includes('\r\n') ? '\r\n' : '\n';
        assert.equal(withoutBlock(once), head + separator);
        assert.deepEqual(readManagedKey(once, 'src:1', format), first);
        // Idempotent.
        assert.equal(replaced(once, 'src:1', blockFor(first, format)), once);
        // With lines after the block, replace it with another key: all outside lines kept byte for byte.
        const middle = once + tail;
        const twice = replaced(middle, 'src:1', blockFor(second, format));
        assert.equal(withoutBlock(twice), withoutBlock(middle));
        assert.deepEqual(readManagedKey(twice, 'src:1', format), second);
        assert.equal(replaced(twice, 'src:1', blockFor(second, format)), twice);
        // Other sources' blocks see nothing of ours.
        assert.equal(readManagedKey(twice, 'other:2', format), null);
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.constantFrom('src:1', 'other:2'), formatArb, (text, source, format) => {
        const r = replaceManagedBlock(text, source, blockFor({ keyId: 32768, key: new Uint8Array(16) }, format));
        if (!r.ok) assert.match(r.error.code, /^KEYS_(UNTERMINATED_BLOCK|UNMATCHED_END|NESTED_BLOCK|DUPLICATE_BLOCK|KEY_ID_TAKEN)$/);
        readManagedKey(text, source, format);
      }),
      { numRuns: 1000 },
    );
  });

  it('a written key id is defined exactly once in the file; a refusal names a line outside the block defining it', () => {
    const idLine = fc.constantFrom('40000 MD5 x', '  40000\tAES128 HEX:00', '40001 MD5 y', '# 40000 MD5 z', '40000', '040000 M w');
    const otherBlock = fc.constantFrom(
      '# BEGIN ntptsc ekey other:2\n40000 AES128CMAC 00112233445566778899aabbccddeeff\n# END ntptsc ekey other:2',
      '# BEGIN ntptsc ekey other:2\n40001 AES128CMAC 00112233445566778899aabbccddeeff\n# END ntptsc ekey other:2',
    );
    const ours = fc.constantFrom('', '# BEGIN ntptsc ekey src:1\n40000 AES128CMAC 00112233445566778899aabbccddeeff\n# END ntptsc ekey src:1');
    const defines = (line: string) => /^\s*0*40000(?:[\s#]|$)/.test(line);
    fc.assert(
      fc.property(fc.array(fc.oneof(lineArb, idLine, otherBlock), { maxLength: 8 }), ours, fc.nat(8), formatArb, (parts, block, at, format) => {
        const lines = [...parts];
        lines.splice(Math.min(at, lines.length), 0, block);
        const text = `${lines.join('\n')}\n`;
        const r = replaceManagedBlock(text, 'src:1', blockFor({ keyId: 40000, key: new Uint8Array(16) }, format));
        const outside = withoutBlock(text).split('\n');
        if (r.ok) {
          assert.ok(!outside.some(defines), 'written although the id is defined outside');
          assert.equal(r.value.split('\n').filter(defines).length, 1);
        } else {
          assert.equal(r.error.code, 'KEYS_KEY_ID_TAKEN');
          const all = text.split('\n');
          assert.ok(defines(all[(r.error.offset ?? 0) - 1] ?? ''), `line ${r.error.offset} does not define the id`);
          assert.ok(outside.some(defines));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
