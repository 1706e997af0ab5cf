// Entry point: dispatch to one command module. Every failure ends as one line on stderr and an exit code
// from the table in exit.ts (also in --help and the README); no stack trace unless --log-level debug.
import { flushCompileCache } from 'node:module';
import { VERSION } from '../version.ts';
import { EXIT_CODES_HELP, runMain } from './exit.ts';
import { COMMANDS, type CommandEntry } from './commands.ts';

/**
 * V8 for a daemon (commands.ts memoryOverSpeed): the Ignition interpreter only (no Sparkplug, Maglev or
 * TurboFan). Set at run time, they apply to everything compiled after; bin/nodecred passes the same on the
 * command line for `run`. Not --optimize-for-size: −1.5 MiB idle RSS, but its memory-reducing collections
 * cost 30–40 ms of CPU in the first idle minute (bench P3's window; ≤ 10 ms a minute is the goal).
 */
const MEMORY_OVER_SPEED = ['--no-sparkplug', '--no-maglev', '--no-turbofan'];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: nodecred <command> [flags]',
    '',
    "nodecred owns a Kubernetes node's credentials: TLS bootstrap, client and serving certificate",
    'rotation, recovery, health checks and metrics.',
    '',
    'commands:',
    ...lines,
    '',
    'Run `nodecred <command> --help` for the flags of a command.',
    '',
    EXIT_CODES_HELP,
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`nodecred ${VERSION} (node ${process.version})\n`);
    return 0;
  }
  const command: CommandEntry | undefined = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`nodecred: unknown command '${name}'; run 'nodecred --help' for the list\n`);
    return 2;
  }
  // bin/nodecred passes them on the command line already; node:v8 is loaded only to set them here (~0.25 MiB).
  const missing = MEMORY_OVER_SPEED.filter((flag) => !process.execArgv.includes(flag));
  if (command.memoryOverSpeed && missing.length > 0) {
    const { setFlagsFromString } = process.getBuiltinModule('node:v8');
    for (const flag of missing) setFlagsFromString(flag);
  }
  const loaded = await command.load();
  // What this start compiled is written now, not only at exit: a daemon may end with SIGKILL.
  flushCompileCache();
  return loaded.run(rest);
}

// bin/nodecred enables Node's compile cache for itself; hooks and exec plugins that are Node programs must not
// inherit it.
delete process.env.NODE_COMPILE_CACHE;

runMain('nodecred', () => main(process.argv.slice(2)));
