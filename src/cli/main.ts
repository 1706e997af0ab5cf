// Entry point: dispatch to one command module. Every failure ends as one line on stderr and an exit code
// from the table in exit.ts (also in --help and the README); no stack trace unless --log-level debug.
import { VERSION } from '../version.ts';
import { EXIT_CODES_HELP, runMain } from './exit.ts';
import { COMMANDS, type Command } from './commands.ts';

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
  const command: Command | undefined = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`nodecred: unknown command '${name}'; run 'nodecred --help' for the list\n`);
    return 2;
  }
  return command.run(rest);
}

runMain('nodecred', () => main(process.argv.slice(2)));
