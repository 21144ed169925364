/**
 * The native module (native/, built by `npm install` with node-gyp into build/Release): batched UDP for the
 * NTP service (src/server/udp-batch.ts) and AES on the CPU's AES instructions (src/crypto/aes.ts). Loaded
 * once; when it is missing (no compiler at install, another system) everything works without it, slower,
 * and `loadNativeModule()` says why.
 */
import { createRequire } from 'node:module';

/** `build/Release` at the package root: two levels above src/server and dist/server. */
const MODULE_PATH = new URL('../../build/Release/ntptsd_native.node', import.meta.url);

let loaded: { readonly binding: Record<string, unknown> } | { readonly reason: string } | undefined;

export function loadNativeModule(): { readonly binding: Record<string, unknown> } | { readonly reason: string } {
  if (loaded !== undefined) return loaded;
  try {
    loaded = { binding: createRequire(import.meta.url)(MODULE_PATH.pathname) as Record<string, unknown> };
  } catch (error) {
    loaded = { reason: `the native module did not load (${(error as Error).message.split('\n')[0]}); npm install builds it with node-gyp` };
  }
  return loaded;
}
