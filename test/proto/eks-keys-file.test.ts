// The client's keys file (docs/eks.md §5, `ntptsc ekey --out`): key lines in ntpd/NTPsec and chrony syntax and
// the managed block that holds them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/proto/errors.js';
import {
  type KeysFileFormat,
  type ManagedBlockLines,
  beginMarker,
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
    assert.equal(formatKeyLine({ keyId: 0xffffffff, key: new Uint8Array(16) }, 'chrony'), `4294967295 AES128 HEX:${'00'.repeat(16)}`);
  });

  it('the ntp line reads back with the NTPsec-compatible parser as the same AES-128-CMAC key', () => {
    const r = parseKeysFile(replaced('1 MD5 static\n'));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const k = r.value.keys.get(32770);
    assert.equal(k?.algorithm, 'AES128CMAC');
    assert.deepEqual(k?.key, KEY.key);
    assert.deepEqual(r.value.warnings, []);
  });

  it('refuses ids and keys the files cannot hold', () => {
    usage(() => formatKeyLine({ keyId: 65536, key: KEY.key }, 'ntp'), 'KEYS_KEY_ID_RANGE');
    usage(() => formatKeyLine({ keyId: 0, key: KEY.key }, 'chrony'), 'KEYS_KEY_ID_RANGE');
    usage(() => formatKeyLine({ keyId: 2 ** 32, key: KEY.key }, 'chrony'), 'KEYS_KEY_ID_RANGE');
    usage(() => formatKeyLine({ keyId: 1, key: new Uint8Array(15) }, 'ntp'), 'KEYS_BAD_KEY');
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
  });

  it('marker helpers', () => {
    assert.equal(beginMarker(SOURCE), '# BEGIN ntptsc ekey ntp.example.com:4460');
    assert.equal(endMarker('[2001:db8::1]:4460'), '# END ntptsc ekey [2001:db8::1]:4460');
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
  .filter((s) => !isOurMarker(s));
const fileArb = fc
  .tuple(fc.array(lineArb, { maxLength: 12 }), fc.constantFrom('\n', '\r\n'), fc.boolean())
  .map(([lines, eol, final]) => lines.join(eol) + (final && lines.length > 0 ? eol : ''));
const keyArb = fc.record(
  { keyId: fc.integer({ min: 1, max: 65535 }), key: fc.uint8Array({ minLength: 16, maxLength: 16 }) },
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
        const r = replaceManagedBlock(text, source, blockFor({ keyId: 1, key: new Uint8Array(16) }, format));
        if (!r.ok) assert.match(r.error.code, /^KEYS_(UNTERMINATED_BLOCK|UNMATCHED_END|NESTED_BLOCK|DUPLICATE_BLOCK)$/);
        readManagedKey(text, source, format);
      }),
      { numRuns: 1000 },
    );
  });
});
