// What `bootstrap` and `run` share: flags → config → logger → prepared store → manager.
import { CertStore } from '../store/cert-store.ts';
import { CertificateManager, type ManagerEvents } from '../manager/manager.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Config } from '../config/schema.ts';
import { parseFlags, loadConfig, NODE_FLAGS, flagsHelp } from './flags.ts';

export interface NodeSetup {
  config: Config;
  log: Logger;
  store: CertStore;
  manager: CertificateManager;
}

export function nodeHelp(usage: string, description: string): string {
  return `${usage}\n\n${description}\n\nflags:\n${flagsHelp(NODE_FLAGS)}\n`;
}

export async function setUpNode(args: string[], opts: { events?: ManagerEvents; beforePrepare?: (config: Config) => Promise<void> } = {}): Promise<NodeSetup> {
  const config = await loadConfig(parseFlags(args, NODE_FLAGS));
  await opts.beforePrepare?.(config);
  const log = createLogger(config.logLevel);
  const store = new CertStore(config.certDir);
  for (const note of await store.prepare()) log[note.startsWith('created') ? 'info' : 'warn']({ certDir: config.certDir }, note);
  const manager = new CertificateManager({ config, store, log, now: () => new Date(), random: Math.random, ...(opts.events ? { events: opts.events } : {}) });
  return { config, log, store, manager };
}
