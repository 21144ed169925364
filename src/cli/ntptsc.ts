/**
 * `ntptsc`: the client for ntptsd and for NTP/NTS servers in general. Commands are added here as the
 * capabilities behind them land; every command takes --json and exits non-zero with a one-line reason.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command('ntptsc')
    .description('Client for ntptsd and NTP/NTS servers: query time, run NTS-KE, manage the daemon')
    .version(VERSION)
    .showHelpAfterError(false)
    .exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return 1;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end through exitOverride with exit code 0.
      return error.exitCode;
    }
    console.error(`ntptsc: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
