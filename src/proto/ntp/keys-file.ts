/**
 * The ntpd/NTPsec symmetric key file (`ntp.keys`), read the way NTPsec's authreadkeys() reads it:
 *
 *     # comment
 *     1  MD5         textpassword        # up to 20 printable characters: the octets themselves
 *     2  SHA1        0123…4567            # more than 20 characters: hex, 2 digits per octet
 *     3  AES128CMAC  000102…0e0f
 *
 * - Fields are separated by spaces or tabs; `#` ends a field and starts a comment.
 * - Key id: 1..65535 (NTP_MAXKEY). NTPsec reads it with atoi (so "12x" would be key 12); here it must be
 *   all digits.
 * - Type, case-insensitive: MD5; SHA1 (also SHA-1, the OpenSSL alias); AES128CMAC, AES or AES-128 for
 *   AES-128-CMAC (NTPsec turns "AES"/"AES128CMAC" into the cipher AES-128-CBC and appends "-CBC" to other
 *   names, so AES-128 works too but AES-128-CMAC does not). Any other name starting with M is taken as MD5
 *   (NTPsec's compatibility rule). Other OpenSSL digests NTPsec would accept (SHA256, …) are not supported
 *   here and reported.
 * - Key: 20 characters or fewer is ASCII used as is; more is hex, truncated to 64 digits (32 octets), an odd
 *   last digit dropped. An AES-128-CMAC key longer than 16 octets is cut to 16. A shorter one is refused:
 *   NTPsec 1.2.2 logs "will be padded" but pads the wrong buffer, so the key it uses continues with whatever
 *   its line buffer held (observed: "abcdefghij" became "abcdefghij\0\0" + 4 octets of the previous line).
 *
 * Lines NTPsec skips are `problems` (line number, code, reason); lines it accepts but adjusts (truncated or
 * padded keys, a key id defined twice: the last one wins) are `warnings`. The Result is ok when there is no
 * problem; otherwise the error holds the keys that were read anyway.
 */

import { AES128CMAC_KEY_LENGTH, NTP_MAX_KEY_ID, type SymmetricKey, type SymmetricMacAlgorithm } from '../../crypto/symmetric-mac.js';
import { DecodeError, fail, ok, type Result } from '../errors.js';

export interface NtpKey extends SymmetricKey {
  /** The type as written in the file. */
  readonly typeName: string;
  /** 1-based line number. */
  readonly line: number;
}

export interface KeysFileIssue {
  readonly line: number;
  readonly code: string;
  readonly reason: string;
}

export interface KeysFile {
  /** By key id; a later definition replaces an earlier one. */
  readonly keys: ReadonlyMap<number, NtpKey>;
  readonly warnings: readonly KeysFileIssue[];
}

export class KeysFileError extends DecodeError {
  constructor(
    readonly partial: KeysFile,
    readonly problems: readonly KeysFileIssue[],
  ) {
    const first = problems[0] as KeysFileIssue;
    super(first.code, `line ${first.line}: ${first.reason}${problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : ''}`, first.line);
  }
}

export const KeysFileCodes = {
  BAD_KEY_ID: 'KEYS_BAD_KEY_ID',
  KEY_ID_RANGE: 'KEYS_KEY_ID_RANGE',
  MISSING_TYPE: 'KEYS_MISSING_TYPE',
  UNKNOWN_TYPE: 'KEYS_UNKNOWN_TYPE',
  UNSUPPORTED_TYPE: 'KEYS_UNSUPPORTED_TYPE',
  MISSING_KEY: 'KEYS_MISSING_KEY',
  BAD_HEX: 'KEYS_BAD_HEX',
  BAD_CHARACTER: 'KEYS_BAD_CHARACTER',
  EXTRA_FIELDS: 'KEYS_EXTRA_FIELDS',
  KEY_TRUNCATED: 'KEYS_KEY_TRUNCATED',
  ODD_HEX: 'KEYS_ODD_HEX',
  CMAC_KEY_TRUNCATED: 'KEYS_CMAC_KEY_TRUNCATED',
  CMAC_KEY_SHORT: 'KEYS_CMAC_KEY_SHORT',
  DUPLICATE_KEY_ID: 'KEYS_DUPLICATE_KEY_ID',
} as const;

/** Longest key NTPsec reads as ASCII (authreadkeys: "Bug 2537"). */
export const KEYS_MAX_ASCII_KEY = 20;
/** Most hex digits NTPsec reads (a 32-octet key buffer). */
export const KEYS_MAX_HEX_DIGITS = 64;

/** OpenSSL digest names NTPsec accepts that these MACs do not implement. */
const OTHER_DIGESTS = new Set(['SHA224', 'SHA256', 'SHA384', 'SHA512', 'SHA-224', 'SHA-256', 'SHA-384', 'SHA-512', 'SHA3-224', 'SHA3-256', 'SHA3-384', 'SHA3-512', 'SHA512-224', 'SHA512-256', 'RIPEMD160', 'SM3', 'BLAKE2B512', 'BLAKE2S256', 'AES-192', 'AES-256']);

function algorithmOf(upper: string): SymmetricMacAlgorithm | 'unsupported' | undefined {
  if (upper === 'AES' || upper === 'AES128CMAC' || upper === 'AES-128') return 'AES128CMAC';
  if (upper === 'MD5') return 'MD5';
  if (upper === 'SHA1' || upper === 'SHA-1') return 'SHA1';
  if (OTHER_DIGESTS.has(upper)) return 'unsupported';
  if (upper.startsWith('M')) return 'MD5';
  return undefined;
}

/** Fields of a line as authreadkeys' nexttok() cuts them: space/tab separated, '#' ends the line. */
function fieldsOf(line: string): string[] {
  const hash = line.indexOf('#');
  const body = hash >= 0 ? line.slice(0, hash) : line;
  return body.split(/[ \t]+/).filter((f) => f !== '');
}

/** Parses the text of a keys file. Pure and total: never throws. */
export function parseKeysFile(text: string): Result<KeysFile, KeysFileError> {
  const keys = new Map<number, NtpKey>();
  const warnings: KeysFileIssue[] = [];
  const problems: KeysFileIssue[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    const fields = fieldsOf(raw.replace(/\r$/, ''));
    if (fields.length === 0) return;
    const problem = (code: string, reason: string): void => {
      problems.push({ line, code, reason });
    };
    const [idText, typeName, keyText] = fields as [string, string | undefined, string | undefined];
    if (!/^\d+$/.test(idText)) return problem(KeysFileCodes.BAD_KEY_ID, `key id ${JSON.stringify(idText)} is not a number`);
    const keyId = Number(idText);
    if (keyId < 1 || keyId > NTP_MAX_KEY_ID) return problem(KeysFileCodes.KEY_ID_RANGE, `key id ${idText} is outside 1..${NTP_MAX_KEY_ID}`);
    if (typeName === undefined) return problem(KeysFileCodes.MISSING_TYPE, `no key type for key ${keyId}`);
    const algorithm = algorithmOf(typeName.toUpperCase());
    if (algorithm === undefined) return problem(KeysFileCodes.UNKNOWN_TYPE, `unknown key type ${JSON.stringify(typeName)} for key ${keyId}`);
    if (algorithm === 'unsupported') return problem(KeysFileCodes.UNSUPPORTED_TYPE, `key type ${typeName} of key ${keyId} is not supported (MD5, SHA1 and AES128CMAC are)`);
    if (keyText === undefined) return problem(KeysFileCodes.MISSING_KEY, `no key for key ${keyId}`);
    if (fields.length > 3) warnings.push({ line, code: KeysFileCodes.EXTRA_FIELDS, reason: `text after the key of key ${keyId} is ignored` });

    let key: Uint8Array;
    if (keyText.length <= KEYS_MAX_ASCII_KEY) {
      if (!/^[\x21-\x7e]+$/.test(keyText)) return problem(KeysFileCodes.BAD_CHARACTER, `key ${keyId} has a character outside printable ASCII`);
      key = new Uint8Array([...keyText].map((c) => c.charCodeAt(0)));
    } else {
      let digits = keyText;
      if (digits.length > KEYS_MAX_HEX_DIGITS) {
        warnings.push({ line, code: KeysFileCodes.KEY_TRUNCATED, reason: `key ${keyId} is cut to ${KEYS_MAX_HEX_DIGITS} hex digits (32 octets)` });
        digits = digits.slice(0, KEYS_MAX_HEX_DIGITS);
      }
      const bad = digits.search(/[^0-9a-f]/i);
      if (bad >= 0) return problem(KeysFileCodes.BAD_HEX, `key ${keyId} is longer than ${KEYS_MAX_ASCII_KEY} characters, so hex, but has ${JSON.stringify(digits[bad])} at position ${bad + 1}`);
      if (digits.length % 2 === 1) {
        warnings.push({ line, code: KeysFileCodes.ODD_HEX, reason: `key ${keyId} has an odd number of hex digits: the last one is ignored` });
        digits = digits.slice(0, -1);
      }
      key = new Uint8Array(Buffer.from(digits, 'hex'));
    }
    if (algorithm === 'AES128CMAC' && key.length < AES128CMAC_KEY_LENGTH) {
      return problem(KeysFileCodes.CMAC_KEY_SHORT, `AES-128-CMAC key ${keyId} is ${key.length} octets, not ${AES128CMAC_KEY_LENGTH}: NTPsec would fill the rest with unpredictable octets`);
    }
    if (algorithm === 'AES128CMAC' && key.length > AES128CMAC_KEY_LENGTH) {
      warnings.push({ line, code: KeysFileCodes.CMAC_KEY_TRUNCATED, reason: `AES-128-CMAC key ${keyId} is ${key.length} octets: only the first ${AES128CMAC_KEY_LENGTH} are used` });
      key = key.slice(0, AES128CMAC_KEY_LENGTH);
    }
    if (keys.has(keyId)) warnings.push({ line, code: KeysFileCodes.DUPLICATE_KEY_ID, reason: `key ${keyId} is defined again: this definition replaces line ${(keys.get(keyId) as NtpKey).line}` });
    keys.set(keyId, { keyId, algorithm, key, typeName, line });
    return undefined;
  });
  const file: KeysFile = { keys, warnings };
  return problems.length === 0 ? ok(file) : fail(new KeysFileError(file, problems));
}
