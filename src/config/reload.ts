// SIGHUP: a new configuration applies to the running daemon, except for what it cannot change without a
// restart: the cert dir (its lock is held), the kubeconfig path (watched), the listeners (bound), and the node
// name (the running kubelet took its own at start: certificates for another name would lock it out).
import type { Config } from './schema.ts';

const RESTART_ONLY = ['certDir', 'kubeconfig', 'healthListen', 'secureListen', 'clientCAFile', 'nodeName'] as const;

/** The configuration to run with after a reload, and the restart-only settings that were asked to change. */
export function reloadedConfig(running: Config, next: Config): { config: Config; keptUntilRestart: string[] } {
  const keptUntilRestart = RESTART_ONLY.filter((field) => next[field] !== running[field]);
  const config: Config = {
    ...next,
    certDir: running.certDir,
    kubeconfig: running.kubeconfig,
    healthListen: running.healthListen,
    secureListen: running.secureListen,
    clientCAFile: running.clientCAFile,
    nodeName: running.nodeName,
  };
  return { config, keptUntilRestart };
}
