/**
 * Daemon logging: pino to stderr, JSON with `--log-format json`, a readable single line per event otherwise.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };
export type LogFormat = 'text' | 'json';

export function createLogger(options: { level: LevelWithSilent; format: LogFormat; name?: string }): Logger {
  const base = { level: options.level, name: options.name ?? 'ntptsd', base: { pid: process.pid } };
  if (options.format === 'json') return pino(base, pino.destination({ fd: 2, sync: true }));
  // Synchronous pretty-printing on the main thread: a transport would start a worker thread per daemon.
  const stream = pretty({ destination: 2, sync: true, colorize: false, singleLine: true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,name' });
  return pino(base, stream);
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
