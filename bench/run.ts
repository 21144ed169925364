/**
 * `npm run bench -- NAME [args]`: runs bench/NAME.ts. Each benchmark prints its figures side by side with a
 * reference implementation measured in the same run, so the ratios mean something on any machine.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...args] = process.argv.slice(2);
const chosen = name === undefined ? available : [name];
for (const bench of chosen) {
  if (!available.includes(bench)) {
    console.error(`unknown benchmark "${bench}"; available: ${available.join(', ')}`);
    process.exit(2);
  }
  const module = (await import(pathToFileURL(join(here, `${bench}.ts`)).href)) as { run(args: string[]): Promise<void> };
  console.log(`\n## ${bench}\n`);
  await module.run(args);
}
