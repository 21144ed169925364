// Placeholder until the daemon lands: the lead replaces this file.
import type { Config } from '../config/index.js';

export async function runDaemon(_config: Config, _options: { configPath: string | null }): Promise<number> {
  process.stderr.write('daemon not started: no services yet\n');
  return 1;
}
