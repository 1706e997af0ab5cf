// `nodecred bootstrap`: one shot for cloud-init and runbooks. Exit 0 once a valid client certificate and
// kubeconfig (and a serving certificate when asked) are installed; otherwise one clear line and exit 1.
import { UserError } from '../errors.ts';
import { WaitTimeout } from '../kube/csr-api.ts';
import { formatDuration } from '../config/duration.ts';
import type { Command } from './commands.ts';
import { nodeHelp, setUpNode } from './node-setup.ts';

const HELP = nodeHelp(
  'usage: nodecred bootstrap [flags]',
  'Make sure a valid client certificate and kubeconfig exist (and a serving certificate with\n--rotate-server-certificates), requesting them through the CSR API if needed, then exit.\nSafe to run again: it re-attaches to a CSR it submitted earlier instead of creating another.',
);

export const bootstrapCommand: Command = {
  name: 'bootstrap',
  summary: 'obtain a client certificate and kubeconfig (and serving certificate) once, then exit',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const { config, log, manager } = await setUpNode(args);
    const started = Date.now();
    const deadline = started + config.timeoutMs;
    try {
      const managed = config.clientCredentials === 'managed';
      if (!managed && !config.rotateServerCertificates) {
        throw new UserError('nothing to do: clientCredentials is external and serving certificates are off', { where: '--config', fix: 'set rotateServerCertificates: true (or --rotate-server-certificates)', code: 'USAGE' });
      }
      const client = managed ? await manager.ensureClient({ deadline, rotate: false }) : undefined;
      const serving = config.rotateServerCertificates ? await manager.ensureServing({ deadline, rotate: false }) : undefined;
      const c = manager.states.client;
      const parts = [
        client ? `client certificate ${client} (${c.subject}, expires ${c.notAfter?.toISOString()}), kubeconfig ${config.kubeconfig}` : `client credentials external (${config.kubeconfig})`,
        serving ? `serving certificate ${serving} (${[...(manager.states.server.dnsNames ?? []), ...(manager.states.server.ipAddresses ?? [])].join(', ')})` : '',
      ];
      const summary = parts.filter(Boolean).join('; ');
      log.info({ durationMs: Date.now() - started }, `bootstrap complete: ${summary}`);
      process.stderr.write(`nodecred: ${summary}\n`);
      return 0;
    } catch (err) {
      if (err instanceof WaitTimeout) {
        const pending = manager.states.server.pendingCsr ?? manager.states.client.pendingCsr;
        throw new UserError(`timed out after ${formatDuration(config.timeoutMs)} waiting for CSR ${pending ?? '(none submitted)'} to be approved and issued`, {
          where: pending ? `certificatesigningrequest/${pending}` : config.kubeconfig,
          fix: 'approve it (kubectl certificate approve), or check the auto-approve ClusterRoleBindings / serving approver; running bootstrap again re-attaches to the same CSR',
          code: 'TIMEOUT',
        });
      }
      throw err;
    }
  },
};
