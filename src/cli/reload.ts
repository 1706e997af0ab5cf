// `nodecred reload --pid PID`: what the unit's ExecReload= runs instead of `/bin/kill -HUP $MAINPID`
// (minimal images have no kill binary; systemd ≥ 253's Type=notify-reload would send the signal itself,
// but Debian 12 ships 252). It checks that PID is a `nodecred run`, validates the configuration that
// daemon will re-read (its own arguments, from its working directory), and only then sends SIGHUP. So
// `systemctl reload nodecred` fails, with the reason in one line, when the new config is broken; the
// daemon would reject it too and keep the running one.
import { readFile } from 'node:fs/promises';
import { UserError, errnoError } from '../errors.ts';
import type { Command } from './commands.ts';
import { EXIT_CODES_HELP } from './exit.ts';
import { flagsHelp, loadConfig, NODE_FLAGS, parseFlags, usageError } from './flags.ts';

const RELOAD_FLAGS: Parameters<typeof parseFlags>[1] = [
  { name: 'pid', kind: 'string', placeholder: 'PID', help: 'the daemon to reload (systemd: $MAINPID)' },
];

const HELP = `usage: nodecred reload --pid PID

Validate the configuration the \`nodecred run\` with this PID would re-read, then send it SIGHUP (the
daemon reloads: RELOADING=1 … READY=1). Exits 1 without signalling when the config is broken.
For the unit's ExecReload=; it needs no kill binary on the host.

flags:
${flagsHelp(RELOAD_FLAGS)}

${EXIT_CODES_HELP}`;

/**
 * The arguments after `run` of a nodecred daemon's command line: the single executable (`nodecred run …`),
 * or node running the sources or the bundle (`node …/main.ts run …`, `node /usr/local/bin/nodecred run …`).
 */
export function daemonArgs(argv: string[]): string[] | null {
  if (argv[1] === 'run') return argv.slice(2);
  // node [options] SCRIPT run …: bin/nodecred passes node options (--max-semi-space-size=1) before the script.
  let script = 1;
  while (argv[script]?.startsWith('-')) script++;
  if (argv[script + 1] === 'run' && /(\.(ts|mjs|js)|\/nodecred)$/.test(argv[script] ?? ''))
    return argv.slice(script + 2);
  return null;
}

export const reloadCommand: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const text = parseFlags(args, RELOAD_FLAGS).get('pid')?.[0];
    const pid = Number(text);
    if (!text || !Number.isInteger(pid) || pid <= 1) throw usageError(`--pid needs a process ID, got "${text ?? ''}"`);
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new UserError(`no process ${pid}`, { where: '--pid', fix: 'is the daemon running? (systemctl status)' });
      throw errnoError(err) ?? err;
    });
    const daemon = daemonArgs(cmdline.split('\0').slice(0, -1));
    if (!daemon) {
      throw new UserError(`process ${pid} is not a nodecred daemon (\`nodecred run\`)`, {
        where: '--pid',
        fix: 'pass the PID of `nodecred run` (systemd: $MAINPID)',
      });
    }
    // Relative paths in its arguments are relative to the daemon's working directory.
    process.chdir(`/proc/${pid}/cwd`);
    await loadConfig(parseFlags(daemon, NODE_FLAGS));
    process.kill(pid, 'SIGHUP');
    process.stdout.write(`nodecred: configuration valid; sent SIGHUP to nodecred run (pid ${pid})\n`);
    return 0;
  },
};
