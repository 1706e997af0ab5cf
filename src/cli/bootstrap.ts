// `nodecred bootstrap`: one shot for cloud-init and runbooks. Exit 0 once a valid client certificate and
// kubeconfig (and a serving certificate when asked) are installed; otherwise one clear line and exit 1.
import { UserError } from '../errors.ts';
import { WaitTimeout } from '../manager/csr-wait.ts';
import { isTransient } from '../kube/api.ts';
import { retryDelayMs } from '../manager/policy.ts';
import { formatDuration } from '../config/duration.ts';
import type { Command } from './commands.ts';
import { nodeHelp, setUpNode, type NodeSetup } from './node-setup.ts';

const HELP = nodeHelp(
  'usage: nodecred bootstrap [flags]',
  'Make sure a valid client certificate and kubeconfig exist (and a serving certificate with\n' +
    '--rotate-server-certificates), requesting them through the CSR API if needed, then exit.\n' +
    'Safe to run again: it re-attaches to a CSR it submitted earlier instead of creating another.\n' +
    'An unreachable API server is retried until --timeout.',
);

/** One attempt; returns the summary line. */
async function ensureOnce({ config, manager }: NodeSetup, deadline: number): Promise<string> {
  const managed = config.clientCredentials === 'managed';
  if (!managed && !config.rotateServerCertificates) {
    throw new UserError('nothing to do: clientCredentials is external and serving certificates are off', {
      where: '--config',
      fix: 'set rotateServerCertificates: true (or --rotate-server-certificates)',
      code: 'USAGE',
    });
  }
  const client = managed ? await manager.ensureClient({ deadline, rotate: false }) : undefined;
  const serving = config.rotateServerCertificates
    ? await manager.ensureServing({ deadline, rotate: false })
    : undefined;
  const c = manager.states.client;
  const s = manager.states.server;
  return [
    client
      ? `client certificate ${client} (${c.subject}, expires ${c.notAfter?.toISOString()}), kubeconfig ` +
        `${config.kubeconfig}`
      : `client credentials external (${config.kubeconfig})`,
    serving ? `serving certificate ${serving} (${[...(s.dnsNames ?? []), ...(s.ipAddresses ?? [])].join(', ')})` : '',
  ]
    .filter(Boolean)
    .join('; ');
}

function timeoutError(setup: NodeSetup): UserError {
  const pending = setup.manager.states.server.pendingCsr ?? setup.manager.states.client.pendingCsr;
  return new UserError(
    `timed out after ${formatDuration(setup.config.timeoutMs)} waiting for CSR ${pending ?? '(none submitted)'} to ` +
      `be approved and issued`,
    {
      where: pending ? `certificatesigningrequest/${pending}` : setup.config.kubeconfig,
      fix:
        'approve it (kubectl certificate approve), or check the auto-approve ClusterRoleBindings / serving ' +
        'approver; running bootstrap again re-attaches to the same CSR',
      code: 'TIMEOUT',
    },
  );
}

export const bootstrapCommand: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const setup = await setUpNode(args);
    try {
      return await bootstrapWithRetries(setup);
    } finally {
      await setup.lock.release();
    }
  },
};

/**
 * cloud-init may run us before the API server (or the network) is reachable: retry what can go away by
 * itself until the deadline, with capped jittered backoff; what the user must fix ends the run at once.
 */
async function bootstrapWithRetries(setup: NodeSetup): Promise<number> {
  const { config, log } = setup;
  const { clock } = setup.manager.deps;
  const started = clock.now();
  const deadline = started + config.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      const summary = await ensureOnce(setup, deadline);
      log.info({ durationMs: clock.now() - started }, `bootstrap complete: ${summary}`);
      process.stderr.write(`nodecred: ${summary}\n`);
      return 0;
    } catch (err) {
      if (err instanceof WaitTimeout) throw timeoutError(setup);
      if (!isTransient(err)) throw err;
      const delay = retryDelayMs(attempt, { initialMs: 1000, maxMs: 30_000 }, () => clock.random());
      if (clock.now() + delay >= deadline) {
        throw new UserError(`gave up after ${formatDuration(clock.now() - started)}: ${(err as Error).message}`, {
          where: config.kubeconfig,
          fix: 'check that the API server is reachable from this node',
          code: 'UNREACHABLE',
        });
      }
      log.warn(
        { err: (err as Error).message, retryInMs: delay, attempt: attempt + 1 },
        'API server unreachable; retrying',
      );
      await clock.sleep(delay);
    }
  }
}
