/**
 * The client side of docs/eks.md §5: keeping an issued key in the NTP client's own keys file (`ntptsc ekey --out`).
 * Pure: text in, text out; the shell reads and writes the file.
 *
 * The key lives in a managed block of full-line comments, one per EKS server:
 *
 *     # BEGIN ntptsc ekey ntp.example.com:4460
 *     # key 32770 from ntptsd at ntp.example.com:4460, expires 2026-11-28T17:00:00Z
 *     32770 AES128CMAC 00112233445566778899aabbccddeeff
 *     # END ntptsc ekey ntp.example.com:4460
 *
 * - Both ntpd/NTPsec and chrony skip full-line `#` comments. chrony does not accept a trailing comment on a key
 *   line, so what we say about the key goes on a comment line of its own.
 * - Nothing outside the block is changed, byte for byte (line endings and a missing final newline included).
 * - A block we cannot delimit with certainty (BEGIN without END, a stray END, nested or repeated blocks) is an
 *   error, never a guess: guessing would delete the operator's lines or leave a stale key defined twice.
 * - Key lines are only written for issued keys, ids 32768..65535 (docs/eks.md §3), and never for an id the file
 *   already defines outside the block: an operator's key, or another EKS server's block (two servers both start
 *   allocating at 32768). NTP clients take the first or the last definition of an id, so one of the two keys
 *   would silently lose. A line defines the id of its first field when that is a decimal number, in ntpd/NTPsec
 *   and chrony syntax alike.
 */

import { EPHEMERAL_KEY_ID_MAX, EPHEMERAL_KEY_ID_MIN, isEphemeralKeyId } from '../../crypto/ephemeral-keys.js';
import { type Result, UsageError, decodeError, ok } from '../errors.js';
import { EKS_AES128CMAC_KEY_LENGTH } from './records.js';

export type KeysFileFormat = 'ntp' | 'chrony';

export interface ManagedKey {
  readonly keyId: number;
  readonly key: Uint8Array;
}

/** The lines written inside the block, between its BEGIN and END markers. */
export interface ManagedBlockLines {
  /** Comment texts; each becomes a line `# text` (no line breaks). */
  readonly comments: readonly string[];
  /** From `formatKeyLine`. */
  readonly keyLine: string;
}

export const KeysBlockCodes = {
  /** A BEGIN for this source has no END before the file ends or before another BEGIN for it. */
  UNTERMINATED_BLOCK: 'KEYS_UNTERMINATED_BLOCK',
  /** An END for this source that closes no BEGIN. */
  UNMATCHED_END: 'KEYS_UNMATCHED_END',
  /** A marker of another source inside this source's block. */
  NESTED_BLOCK: 'KEYS_NESTED_BLOCK',
  /** Two blocks for this source: the key would be defined twice. */
  DUPLICATE_BLOCK: 'KEYS_DUPLICATE_BLOCK',
  /** The new key's id is already defined outside this source's block (an operator's key, another server's block). */
  KEY_ID_TAKEN: 'KEYS_KEY_ID_TAKEN',
} as const;

/** ntpd and NTPsec refuse key ids above 65535 (NTP_MAXKEY); chrony takes any u32 (docs/eks.md §3). */
const MAX_KEY_ID: Readonly<Record<KeysFileFormat, number>> = { ntp: 65535, chrony: 0xffffffff };

function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function fromHex(text: string): Uint8Array | undefined {
  if (!/^(?:[0-9A-Fa-f]{2})+$/.test(text)) return undefined;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * One key line. ntp (ntpd/NTPsec keys file): `32770 AES128CMAC <32 hex digits>` (more than 20 characters, so read
 * as hex). chrony (keyfile, AES-128-CMAC since chrony 4.0): `32770 AES128 HEX:<32 hex digits>`. Only for issued
 * keys: an id outside 32768..65535 (docs/eks.md §3) throws KEYS_KEY_ID_RANGE.
 */
export function formatKeyLine(key: ManagedKey, format: KeysFileFormat): string {
  if (!isEphemeralKeyId(key.keyId)) {
    throw new UsageError('KEYS_KEY_ID_RANGE', `key id ${key.keyId} is outside the ephemeral key range ${EPHEMERAL_KEY_ID_MIN}..${EPHEMERAL_KEY_ID_MAX} (docs/eks.md §3)`);
  }
  if (key.key.length !== EKS_AES128CMAC_KEY_LENGTH) {
    throw new UsageError('KEYS_BAD_KEY', `AES-128-CMAC key of ${key.key.length} octets, not ${EKS_AES128CMAC_KEY_LENGTH}`);
  }
  return format === 'ntp' ? `${key.keyId} AES128CMAC ${toHex(key.key)}` : `${key.keyId} AES128 HEX:${toHex(key.key)}`;
}

/** The comment line text for the block: what the key is, where it came from and when it expires (UTC). */
export function managedKeyComment(keyId: number, source: string, expirySeconds: number): string {
  const date = new Date(expirySeconds * 1000);
  if (!Number.isFinite(date.getTime())) throw new UsageError('KEYS_BAD_EXPIRY', `expiry ${expirySeconds} is not a representable time`);
  return `key ${keyId} from ntptsd at ${source}, expires ${date.toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
}

function checkSource(source: string): void {
  if (!/^[\x21-\x7e]+$/.test(source)) throw new UsageError('KEYS_BAD_SOURCE', `source ${JSON.stringify(source)} must be printable ASCII without spaces`);
}

export function beginMarker(source: string): string {
  checkSource(source);
  return `# BEGIN ntptsc ekey ${source}`;
}

export function endMarker(source: string): string {
  checkSource(source);
  return `# END ntptsc ekey ${source}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Lines and markers.

interface Line {
  /** The line without its terminator. */
  readonly text: string;
  /** '\n', '\r\n', or '' for a last line without one. */
  readonly end: string;
}

/** Splits on LF (as fgets-based readers do), keeping each terminator so that joining gives the input back. */
function splitLines(text: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      out.push({ text: text.slice(start), end: '' });
      break;
    }
    const crlf = nl > start && text[nl - 1] === '\r';
    out.push({ text: text.slice(start, crlf ? nl - 1 : nl), end: crlf ? '\r\n' : '\n' });
    start = nl + 1;
  }
  return out;
}

function join(lines: readonly Line[]): string {
  return lines.map((l) => l.text + l.end).join('');
}

/** Markers are recognised whatever the spacing, so that an operator's reformatting does not orphan a block. */
const MARKER = /^#\s*(BEGIN|END)\s+ntptsc\s+ekey\s+(\S+)\s*$/;

function markerOf(text: string): { readonly kind: 'BEGIN' | 'END'; readonly source: string } | undefined {
  const m = MARKER.exec(text.trim());
  if (m === null) return undefined;
  return { kind: m[1] === 'BEGIN' ? 'BEGIN' : 'END', source: m[2] ?? '' };
}

/** Line indexes of this source's BEGIN and END, null when there is no block, or the coded reason it is unsafe. */
function findBlock(lines: readonly Line[], source: string): Result<{ readonly begin: number; readonly end: number } | null> {
  let found: { begin: number; end: number } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const m = markerOf(lines[i]?.text ?? '');
    if (m === undefined || m.source !== source) continue;
    if (m.kind === 'END') return decodeError(KeysBlockCodes.UNMATCHED_END, `line ${i + 1}: END for ${source} without a BEGIN`, i + 1);
    if (found !== null) return decodeError(KeysBlockCodes.DUPLICATE_BLOCK, `line ${i + 1}: a second block for ${source}`, i + 1);
    let end = -1;
    for (let j = i + 1; j < lines.length && end < 0; j++) {
      const inner = markerOf(lines[j]?.text ?? '');
      if (inner === undefined) continue;
      if (inner.source === source && inner.kind === 'END') end = j;
      else if (inner.source === source) return decodeError(KeysBlockCodes.UNTERMINATED_BLOCK, `line ${i + 1}: BEGIN for ${source} without an END`, i + 1);
      else return decodeError(KeysBlockCodes.NESTED_BLOCK, `line ${j + 1}: a marker for ${inner.source} inside the block for ${source}`, j + 1);
    }
    if (end < 0) return decodeError(KeysBlockCodes.UNTERMINATED_BLOCK, `line ${i + 1}: BEGIN for ${source} without an END`, i + 1);
    found = { begin: i, end };
    i = end;
  }
  return ok(found);
}

/**
 * The key id a keys-file line defines: its first field when that is a decimal number (ntpd/NTPsec keys files and
 * chrony key files both start a key line with the id), else null (comments, blank lines, anything else).
 */
function definedKeyId(text: string): number | null {
  const m = /^\s*(\d+)(?=[\s#]|$)/.exec(text);
  return m === null ? null : Number(m[1]);
}

/**
 * The first line outside this source's block (`block`, line indexes) that defines `keyId`, with the source of the
 * other block it lies in (null: an operator's line); null when there is none.
 */
function findKeyIdOutside(
  lines: readonly Line[],
  source: string,
  block: { readonly begin: number; readonly end: number } | null,
  keyId: number,
): { readonly line: number; readonly otherSource: string | null } | null {
  let otherSource: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    if (block !== null && i >= block.begin && i <= block.end) continue;
    const text = lines[i]?.text ?? '';
    const marker = markerOf(text);
    if (marker !== undefined) {
      if (marker.source === source) continue; // only our own block's markers, which findBlock has vetted
      if (marker.kind === 'BEGIN') otherSource = marker.source;
      else if (marker.source === otherSource) otherSource = null;
      continue;
    }
    if (definedKeyId(text) === keyId) return { line: i + 1, otherSource };
  }
  return null;
}

/** Ok when this source's block can be replaced safely (no block, or one delimited with certainty), else the coded reason. */
export function checkManagedBlock(existing: string, source: string): Result<null> {
  checkSource(source);
  const found = findBlock(splitLines(existing), source);
  return found.ok ? ok(null) : found;
}

function checkLine(text: string, what: string): void {
  if (/[\r\n]/.test(text)) throw new UsageError('KEYS_BAD_LINE', `${what} contains a line break`);
  if (markerOf(text) !== undefined) throw new UsageError('KEYS_BAD_LINE', `${what} would read as a block marker`);
}

/**
 * `existing` with this source's block replaced by one holding `lines`, or the block appended when there is none
 * (after a newline if the file does not end with one). New lines use the file's line ending (CRLF if its first
 * line has one). Fails with a `KeysBlockCodes` code when the block cannot be delimited safely, or with
 * KEYS_KEY_ID_TAKEN (naming the line) when the key line's id is already defined outside the block: on any failure
 * nothing is to be written. Throws KEYS_BAD_LINE for a key line that does not start with a key id.
 */
export function replaceManagedBlock(existing: string, source: string, lines: ManagedBlockLines): Result<string> {
  const begin = beginMarker(source);
  const comments = lines.comments.map((c) => (c === '' ? '#' : `# ${c}`));
  for (const c of comments) checkLine(c, 'comment');
  checkLine(lines.keyLine, 'key line');
  if (lines.keyLine.trim() === '' || lines.keyLine.trimStart().startsWith('#')) {
    throw new UsageError('KEYS_BAD_LINE', 'the key line is empty or a comment');
  }
  const keyId = definedKeyId(lines.keyLine);
  if (keyId === null) throw new UsageError('KEYS_BAD_LINE', 'the key line does not start with a key id');
  const parsed = splitLines(existing);
  const found = findBlock(parsed, source);
  if (!found.ok) return found;
  const taken = findKeyIdOutside(parsed, source, found.value, keyId);
  if (taken !== null) {
    const where = taken.otherSource === null ? `outside the block for ${source}` : `in the block for ${taken.otherSource}`;
    return decodeError(KeysBlockCodes.KEY_ID_TAKEN, `line ${taken.line}: key id ${keyId} is already defined there (${where})`, taken.line);
  }
  const eol = parsed.find((l) => l.end !== '')?.end ?? '\n';
  const body = [begin, ...comments, lines.keyLine, endMarker(source)].join(eol);
  if (found.value === null) {
    const separator = existing === '' || existing.endsWith('\n') ? '' : eol;
    return ok(existing + separator + body + eol);
  }
  const { begin: b, end: e } = found.value;
  // The END line's terminator is kept: a block at the end of a file without a final newline stays that way.
  const terminator = parsed[e]?.end ?? '';
  return ok(join(parsed.slice(0, b)) + body + terminator + join(parsed.slice(e + 1)));
}

function parseKeyLine(text: string, format: KeysFileFormat): ManagedKey | null {
  // ntpd/NTPsec end a line at '#'; chrony has no trailing comments (and its keys never contain '#').
  const fields = (format === 'ntp' ? text.replace(/#.*$/, '') : text).trim().split(/[ \t]+/);
  if (fields.length !== 3) return null;
  const [id, type, material] = fields as [string, string, string];
  if (!/^\d{1,10}$/.test(id)) return null;
  const keyId = Number(id);
  if (keyId < 1 || keyId > MAX_KEY_ID[format]) return null;
  let hex: string;
  if (format === 'ntp') {
    // The names NTPsec reads as AES-128-CMAC (see src/proto/ntp/keys-file.ts).
    if (!['AES128CMAC', 'AES', 'AES-128'].includes(type.toUpperCase())) return null;
    hex = material;
  } else {
    if (type.toUpperCase() !== 'AES128' || !/^HEX:/i.test(material)) return null;
    hex = material.slice(4);
  }
  const key = fromHex(hex);
  return key !== undefined && key.length === EKS_AES128CMAC_KEY_LENGTH ? { keyId, key } : null;
}

/**
 * The key held in this source's block, to prove possession on renewal (docs/eks.md §5). null when there is no
 * block, the block is unsafe (see `replaceManagedBlock`), or it does not hold exactly one AES-128-CMAC key line
 * of `format`.
 */
export function readManagedKey(existing: string, source: string, format: KeysFileFormat): ManagedKey | null {
  checkSource(source);
  const lines = splitLines(existing);
  const found = findBlock(lines, source);
  if (!found.ok || found.value === null) return null;
  const inside = lines.slice(found.value.begin + 1, found.value.end).filter((l) => {
    const t = l.text.trim();
    return t !== '' && !t.startsWith('#');
  });
  if (inside.length !== 1) return null;
  return parseKeyLine(inside[0]?.text ?? '', format);
}
