// How every entry point ends (nodecred's commands, the scripts in scripts/, the benchmarks): with an exit
// code from the table below and, on failure, exactly one line on stderr: what failed, the path or object,
// the errno when the OS refused, and the fix. Never a stack trace, unless asked for (--log-level debug or
// NODECRED_DEBUG=1): a user reads the line; a bug report wants the stack.
import { errnoError, isUserError } from '../errors.ts';

export const EXIT_CODES = {
  /** Done; for `check`: every certificate is healthy. */
  ok: 0,
  /** A failure the message names (config, credentials, files, the API server, the lock); `check`: unhealthy. */
  failure: 1,
  /** Bad flags or arguments. */
  usage: 2,
  /** An internal error: a bug in nodecred. The line says so; the stack is printed with debug on. */
  internal: 70,
} as const;

/** For --help texts and the README: the table above as text. */
export const EXIT_CODES_HELP = `exit status:
  0   success (check: every certificate healthy)
  1   failure, named in one line on stderr: config, credentials, a file or directory (with the errno), the
      API server, the lock held by another nodecred (check: a certificate is unhealthy)
  2   usage error: unknown flag or bad value
  70  internal error (a bug): one line; --log-level debug (scripts: NODECRED_DEBUG=1) adds the stack trace
`;

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

/** The line and exit code for anything an entry point may throw. */
export function describeFailure(err: unknown, prog: string): { line: string; code: number } {
  const known = isUserError(err) ? err : errnoError(err);
  if (known) {
    return {
      line: `${prog}: ${oneLine(known.oneLine())}`,
      code: known.code === 'USAGE' ? EXIT_CODES.usage : EXIT_CODES.failure,
    };
  }
  const message = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  return {
    line:
      `${prog}: internal error: ${oneLine(message)} (fix: this is a bug; run again with --log-level debug ` +
      'or NODECRED_DEBUG=1 for the stack trace and report it)',
    code: EXIT_CODES.internal,
  };
}

/** Debug output wanted: `--log-level debug` / `--log-level=debug` among the arguments, or NODECRED_DEBUG=1. */
export function debugRequested(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NODECRED_DEBUG === '1') return true;
  return argv.some((a, i) => a === '--log-level=debug' || (a === '--log-level' && argv[i + 1] === 'debug'));
}

function report(err: unknown, prog: string): number {
  const { line, code } = describeFailure(err, prog);
  process.stderr.write(`${line}\n`);
  if (debugRequested() && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return code;
}

/**
 * Errors nobody catches (an event handler, a timer, a rejected top-level await in a script) end the
 * process as the table above says, with one line. Scripts written as top-level code call this first.
 */
export function exitOnUncaught(prog: string): void {
  const fatal = (err: unknown) => {
    process.exitCode = report(err, prog);
    process.exit();
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}

/**
 * Runs an entry point's main and ends the process as the table above says. `exit: true` calls
 * process.exit when main is done, for scripts that may leave handles open (a child's pipes) that must not
 * keep them alive.
 */
export function runMain(prog: string, main: () => Promise<number>, opts: { exit?: boolean } = {}): void {
  exitOnUncaught(prog);
  main().then(
    (code) => {
      process.exitCode = code;
      if (opts.exit) process.exit(code);
    },
    (err: unknown) => {
      process.exitCode = report(err, prog);
      if (opts.exit) process.exit();
    },
  );
}
