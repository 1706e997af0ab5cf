// The command table. Each command lives in its own module and owns its flags and help text.
export interface Command {
  name: string;
  summary: string;
  /** Returns the process exit code; throws UserError for problems the user can fix. */
  run(args: string[]): Promise<number>;
}

import { bootstrapCommand } from './bootstrap.ts';
import { runCommand } from './run.ts';
import { statusCommand, checkCommand } from './status.ts';
import { approveCommand } from './approve.ts';
import { reloadCommand } from './reload.ts';

export const COMMANDS: Command[] = [
  bootstrapCommand,
  runCommand,
  reloadCommand,
  statusCommand,
  checkCommand,
  approveCommand,
];
