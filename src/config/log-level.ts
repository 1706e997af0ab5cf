// The log levels the daemon and the approver accept (config files and --log-level alike), in one place.
// A pure module: the flag and config parsers need the list without loading the logger.

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** "debug, info, warn or error", for messages and fixes. */
export const LOG_LEVELS_TEXT = `${LOG_LEVELS.slice(0, -1).join(', ')} or ${LOG_LEVELS.at(-1)}`;

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}
