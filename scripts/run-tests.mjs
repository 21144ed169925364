#!/usr/bin/env node
// Runs every test/**/*.test.ts through node:test with tsx. Node 20's --test does not expand globs or
// pick up .ts files by itself, so the file list is built here. Extra arguments are passed through
// (e.g. `npm test -- --test-name-pattern=siv`); a path argument narrows the run to matching files.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
const filters = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));
let files = findTests('test');
if (filters.length > 0) files = files.filter((f) => filters.some((p) => f.includes(p)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The interop tests run real chrony and NTPsec unpacked into .peers/; fetch them on first use.
if (files.some((f) => f.includes('interop') || f.includes('test/source')) && !existsSync('.peers/root/usr/sbin/chronyd')) {
  const install = spawnSync('bash', ['scripts/install-peers.sh'], { stdio: 'inherit' });
  if (install.status !== 0) {
    console.error('could not install the interop peers (scripts/install-peers.sh needs root and the Debian mirrors)');
    process.exit(1);
  }
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...flags, ...files.map((f) => relative('.', f))],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
