/** Files in the state directory: created with restrictive modes and replaced atomically. */
import { mkdir, open, rename, rm, stat, chmod } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Creates the state directory with mode 0700 (or tightens an existing one we own). */
export async function ensureStateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const info = await stat(path);
  if (!info.isDirectory()) throw Object.assign(new Error(`${path} is not a directory`), { code: 'ENOTDIR' });
  if ((info.mode & 0o077) !== 0 && info.uid === process.getuid?.()) await chmod(path, 0o700);
}

/**
 * Writes `content` to `path` atomically with `mode`: a temp file in the same directory, fsync, rename.
 * A crash leaves either the old file or the new one, never a torn one.
 */
export async function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o600): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
