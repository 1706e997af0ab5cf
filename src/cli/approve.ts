// `nodecred approve`: the cluster-side kubelet-serving CSR approver. Runs as a Deployment (in-cluster
// service account) or a systemd unit on a control-plane host (--kubeconfig); several replicas elect a
// leader on a Lease and only the leader decides.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { UserError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { isLogLevel } from '../config/log-level.ts';
import { ApiSource, checkPermissions, kubeLeaseStore, requiredPermissions } from '../approver/api.ts';
import {
  APPROVER_CONFIG_KIND,
  mergeApproverConfig,
  parseMetricsListen,
  policyOf,
  readApproverConfigFile,
  unboundedPolicyProblem,
  validateLeaseName,
  validateNamespace,
  type ApproverConfig,
  type ApproverOverrides,
} from '../approver/config.ts';
import { ApprovalController } from '../approver/controller.ts';
import { startApproverHttp, type ApproverHttp } from '../approver/http.ts';
import { LeaderElector, DEFAULT_LEADER_TIMINGS } from '../approver/leader.ts';
import { createApproverMetrics } from '../approver/metrics.ts';
import { CONFIG_API_VERSION } from '../config/schema.ts';
import type { Command } from './commands.ts';
import { flagsHelp, parseFlags, usageError, type ParsedFlags } from './flags.ts';

export const APPROVE_FLAGS: Parameters<typeof parseFlags>[1] = [
  {
    name: 'kubeconfig',
    kind: 'string',
    placeholder: 'PATH',
    help:
      "kubeconfig of the approver's identity (default: the in-cluster service account when " +
      'KUBERNETES_SERVICE_HOST is set)',
  },
  {
    name: 'config',
    kind: 'string',
    placeholder: 'FILE',
    help: `YAML config (apiVersion ${CONFIG_API_VERSION}, kind ${APPROVER_CONFIG_KIND}); flags override it`,
  },
  {
    name: 'lease-namespace',
    kind: 'string',
    placeholder: 'NS',
    help: 'namespace of the leader-election Lease (default kube-system)',
  },
  {
    name: 'lease-name',
    kind: 'string',
    placeholder: 'NAME',
    help: 'name of the leader-election Lease (default nodecred-approver)',
  },
  {
    name: 'metrics-listen',
    kind: 'string',
    placeholder: 'HOST:PORT',
    help: '/metrics and /healthz listener, or off (default 127.0.0.1:10291; port 0 picks one)',
  },
  { name: 'log-level', kind: 'string', placeholder: 'LEVEL', help: 'debug | info | warn | error (default info)' },
];

const HELP = `usage: nodecred approve [flags]

Approve or deny kubelet-serving CSRs (signer kubernetes.io/kubelet-serving), which kube-controller-manager
signs but never approves. A CSR is approved only when it comes from the node it names, asks for exactly
the serving usages, is read the same way by Go's crypto/x509 (the signer), and every SAN is bounded by
the configuration (dnsPatterns, the node's own name included; allowedCidrs), is not the cluster's own
(kubernetes, *.svc, the API server's addresses and every name in its serving certificate, reservedNames,
reservedCidrs, loopback) and is not claimed by another Node. The configuration must set allowedCidrs or
dnsPatterns. Several instances may run: they elect a leader on a Lease, and only the leader decides.

flags:
${flagsHelp(APPROVE_FLAGS)}
`;

function one(flags: ParsedFlags, name: string): string | undefined {
  return flags.get(name)?.[0];
}

async function loadApproverConfig(flags: ParsedFlags): Promise<ApproverConfig> {
  const file = one(flags, 'config');
  const fromFile = file ? await readApproverConfigFile(file) : {};
  const o: ApproverOverrides = {};
  const ns = one(flags, 'lease-namespace');
  if (ns !== undefined) o.leaseNamespace = validateNamespace(ns, '--lease-namespace');
  const name = one(flags, 'lease-name');
  if (name !== undefined) o.leaseName = validateLeaseName(name, '--lease-name');
  const listen = one(flags, 'metrics-listen');
  if (listen !== undefined) {
    parseMetricsListen(listen, '--metrics-listen');
    o.metricsListen = listen;
  }
  const level = one(flags, 'log-level');
  if (level !== undefined) {
    if (!isLogLevel(level)) throw usageError(`unknown log level "${level}"`, '--log-level');
    o.logLevel = level;
  }
  return mergeApproverConfig(fromFile, o);
}

async function apiSource(flags: ParsedFlags): Promise<ApiSource> {
  const kubeconfig = one(flags, 'kubeconfig');
  if (kubeconfig) return ApiSource.fromKubeconfig(kubeconfig);
  if (process.env.KUBERNETES_SERVICE_HOST) return ApiSource.inCluster();
  throw usageError('--kubeconfig is required outside a cluster (KUBERNETES_SERVICE_HOST is not set)', '--kubeconfig');
}

export const approveCommand: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const flags = parseFlags(args, APPROVE_FLAGS);
    const config = await loadApproverConfig(flags);
    const unbounded = unboundedPolicyProblem(config);
    if (unbounded)
      throw new UserError(
        `refusing to start: ${unbounded}, so no IP SAN and no DNS name but each node's own could be approved`,
        {
          where: one(flags, 'config') ?? '--config',
          fix:
            'set allowedCidrs to the node network (e.g. [10.0.0.0/16]) and/or dnsPatterns (e.g. ' +
            '["*.compute.internal"])',
          code: 'CONFIG_INVALID',
        },
      );
    const listen = parseMetricsListen(config.metricsListen, '--metrics-listen');
    const source = await apiSource(flags);
    const identity = `${hostname()}_${randomBytes(4).toString('hex')}`;
    const log = createLogger(config.logLevel).child({ identity });
    const policy = policyOf(config);

    await checkPermissions(source, requiredPermissions(config.leaseNamespace, config.leaseName));
    const metrics = createApproverMetrics();
    const stop = new AbortController();
    const elector: LeaderElector = new LeaderElector({
      store: kubeLeaseStore(source, config.leaseNamespace, config.leaseName),
      identity,
      log,
      timings: DEFAULT_LEADER_TIMINGS,
      onLeadershipChange: (leading) => metrics.leader.set(leading ? 1 : 0),
      lead: (signal) =>
        new ApprovalController({
          source,
          policy,
          log,
          metrics,
          identity,
          isLeader: () => elector.isLeader(),
          resyncIntervalMs: config.resyncIntervalMs,
        }).run(signal),
    });
    let http: ApproverHttp | undefined;
    if (listen)
      http = await startApproverHttp(listen, metrics.registry, () => ({ identity, leader: elector.isLeader() }));
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        log.info({ signal: sig }, 'stopping');
        stop.abort();
      });
    }
    log.info(
      {
        credentials: source.description,
        lease: `${config.leaseNamespace}/${config.leaseName}`,
        metrics: http?.address ?? 'off',
        // The policy as the controller applies it, with the pattern as written (a RegExp logs as {}).
        policy: { ...policy, nodeNamePattern: config.nodeNamePattern, apiServerNames: source.serverNames },
      },
      'nodecred approver running',
    );
    try {
      await elector.run(stop.signal);
    } finally {
      await http?.close();
    }
    if (!stop.signal.aborted) throw new UserError('the approver stopped unexpectedly', { code: 'STOPPED' });
    log.info('stopped');
    return 0;
  },
};
