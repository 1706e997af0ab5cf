// What `bootstrap` and `run` share: flags → config → logger → prepared store → manager.
import { CertStore } from '../store/cert-store.ts';
import { acquireLock, type Lock } from '../store/lock.ts';
import type { CertificateManager, ManagerEvents } from '../manager/manager.ts';
import { createNodeManager } from '../node-manager.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Config } from '../config/schema.ts';
import { parseFlags, loadConfig, NODE_FLAGS, flagsHelp, argvSecretWarnings } from './flags.ts';

export interface NodeSetup {
  config: Config;
  log: Logger;
  store: CertStore;
  manager: CertificateManager;
  /** One nodecred per cert dir: bootstrap and run both hold it; release it on exit. */
  lock: Lock;
}

export function nodeHelp(usage: string, description: string): string {
  return `${usage}\n\n${description}\n\nflags:\n${flagsHelp(NODE_FLAGS)}\n`;
}

export async function setUpNode(
  args: string[],
  opts: { events?: ManagerEvents; signal?: AbortSignal } = {},
): Promise<NodeSetup> {
  const flags = parseFlags(args, NODE_FLAGS);
  for (const warning of argvSecretWarnings(flags)) process.stderr.write(`nodecred: ${warning}\n`);
  const config = await loadConfig(flags);
  // The lock is taken before anything touches the cert dir: a second instance must not even repair it.
  const lock = await acquireLock(config.certDir);
  try {
    const log = createLogger(config.logLevel);
    const store = new CertStore(config.certDir);
    for (const note of await store.prepare()) log[note.severity]({ certDir: config.certDir }, note.message);
    const manager = createNodeManager({ config, store, log, ...opts });
    return { config, log, store, manager, lock };
  } catch (err) {
    await lock.release();
    throw err;
  }
}
