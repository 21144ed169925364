#!/usr/bin/env node
/**
 * `npm install` step: builds the native module (native/, batched UDP for the NTP service) with node-gyp.
 * A failed build (no compiler, not Linux) is a warning, not a failed install: the daemon then serves NTP
 * through Node's dgram and says so at start. The test suite requires the module on Linux.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// npm names its own node-gyp in npm_config_node_gyp; outside npm, one on the PATH.
const bundled = process.env.npm_config_node_gyp;
const [command, args] = bundled !== undefined && existsSync(bundled) ? [process.execPath, [bundled, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (result.status === 0) {
  console.log('ntptsd: native module built (build/Release/ntptsd_native.node)');
} else {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`.trim().split('\n').slice(-15).join('\n');
  console.warn(`ntptsd: the native module did not build; the NTP service will use Node's dgram (slower).\n${output}`);
}
