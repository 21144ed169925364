/**
 * The MAC keys of the NTP service (docs/eks.md §7): the operator's static keys from `ntp.keys-file` (ntpd/NTPsec
 * `ntp.keys` format) and the ephemeral keys derived from the key ring. Read at start and on reload; a file that
 * cannot be read or parsed, or that puts a static key in the ephemeral id range, is an error naming the key
 * `ntp.keys-file` and the line, never a silent fallback to no keys.
 */
import { readFile } from 'node:fs/promises';
import type { PreparedMac } from '../crypto/symmetric-mac.js';
import { parseKeysFile } from '../proto/ntp/keys-file.js';
import { staticMacKeys } from '../proto/ntp/mac-keys.js';

export class NtpKeysFileError extends Error {
  override readonly name = 'NtpKeysFileError';
  readonly code = 'NTP_KEYS_FILE';
}

export async function loadStaticMacKeys(path: string | null): Promise<Map<number, PreparedMac>> {
  if (path === null) return new Map();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new NtpKeysFileError(`ntp.keys-file: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const parsed = parseKeysFile(text);
  if (!parsed.ok) throw new NtpKeysFileError(`ntp.keys-file: ${path}: ${parsed.error.message}`);
  const keys = [...parsed.value.keys.values()];
  const prepared = staticMacKeys(keys);
  if (!prepared.ok) {
    const key = prepared.error.offset === undefined ? undefined : keys[prepared.error.offset];
    throw new NtpKeysFileError(`ntp.keys-file: ${path}${key === undefined ? '' : `: line ${key.line}`}: ${prepared.error.message}`);
  }
  return prepared.value;
}
