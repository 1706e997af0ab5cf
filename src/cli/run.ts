// `nodecred run`: the daemon. Bootstraps if needed, then keeps the certificates valid until SIGTERM/SIGINT.
import { runDaemon } from '../daemon.ts';
import type { Command } from './commands.ts';
import { nodeHelp, setUpNode } from './node-setup.ts';

const HELP = nodeHelp(
  'usage: nodecred run [flags]',
  'Run the credential daemon: bootstrap if needed, then rotate the client certificate (and the serving\ncertificate with --rotate-server-certificates) before expiry, recovering from expired or missing files.',
);

export const runCommand: Command = {
  name: 'run',
  summary: 'run the daemon: bootstrap if needed, then keep client and serving certificates fresh',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const { log, manager, config } = await setUpNode(args);
    const stop = new AbortController();
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        log.info({ signal: sig }, 'stopping');
        stop.abort();
      });
    }
    log.info({ nodeName: config.nodeName, certDir: config.certDir, kubeconfig: config.kubeconfig, rotateServerCertificates: config.rotateServerCertificates }, 'nodecred running');
    await runDaemon(manager, log, stop.signal);
    log.info('stopped');
    return 0;
  },
};
