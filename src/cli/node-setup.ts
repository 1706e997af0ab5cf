// What `bootstrap` and `run` share: flags → config → credential check → directories → lock → logger →
// prepared store → manager. Nothing is created or written before the config, the flags and the bootstrap
// credentials have been read and validated (preflight.ts).
import { CertStore } from '../store/cert-store.ts';
import { ensureParentDirs } from '../store/atomic.ts';
import { acquireLock, type Lock } from '../store/lock.ts';
import type { CertificateManager, ManagerEvents } from '../manager/manager.ts';
import { createNodeManager } from '../node-manager.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Config } from '../config/schema.ts';
import { parseFlags, loadConfig, NODE_FLAGS, flagsHelp, argvSecretWarnings } from './flags.ts';
import { checkCredentialSources } from './preflight.ts';
import { EXIT_CODES_HELP } from './exit.ts';

export interface NodeSetup {
  config: Config;
  log: Logger;
  store: CertStore;
  manager: CertificateManager;
  /** One nodecred per cert dir: bootstrap and run both hold it; release it on exit. */
  lock: Lock;
}

export function nodeHelp(usage: string, description: string): string {
  return `${usage}\n\n${description}\n\nflags:\n${flagsHelp(NODE_FLAGS)}\n\n${EXIT_CODES_HELP}`;
}

export async function setUpNode(
  args: string[],
  opts: { events?: ManagerEvents; signal?: AbortSignal; waitForFiles?: boolean } = {},
): Promise<NodeSetup> {
  const flags = parseFlags(args, NODE_FLAGS);
  for (const warning of argvSecretWarnings(flags)) process.stderr.write(`nodecred: ${warning}\n`);
  const config = await loadConfig(flags);
  const notes = await checkCredentialSources(config, { waitForFiles: opts.waitForFiles ?? false });
  // A first boot has no /var/lib/kubelet (or an EKS-style custom parent): create what is missing, 0700.
  const created = await ensureParentDirs(config.certDir, config.kubeconfig);
  // The lock is taken before anything touches the cert dir: a second instance must not even repair it.
  const lock = await acquireLock(config.certDir);
  try {
    const log = createLogger(config.logLevel);
    for (const dir of created) log.info({ dir }, `created ${dir} (0700)`);
    for (const note of notes) log.warn(note);
    const store = new CertStore(config.certDir);
    for (const note of await store.prepare()) log[note.severity]({ certDir: config.certDir }, note.message);
    const manager = createNodeManager({ config, store, log, ...opts });
    return { config, log, store, manager, lock };
  } catch (err) {
    await lock.release();
    throw err;
  }
}
