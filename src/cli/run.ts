// `nodecred run`: the daemon. Bootstraps if needed, keeps the certificates valid, serves health and
// metrics, talks to systemd (READY/STATUS/WATCHDOG/RELOADING/STOPPING), reloads its config on SIGHUP and
// stops gracefully on SIGTERM/SIGINT.
import { Daemon } from '../daemon.ts';
import { errorLine } from '../errors.ts';
import { createMetrics } from '../health/metrics.ts';
import { managerHealthSource } from '../health/source.ts';
import { parseListen } from '../config/listen.ts';
import { createHealthServer, listen } from '../health/server.ts';
import { systemdNotifier, watchdogIntervalMs } from '../systemd/notify.ts';
import { watchCredentials } from '../watch/watcher.ts';
import { runHooks } from '../hooks.ts';
import { formatDuration } from '../config/duration.ts';
import { parseFlags, loadConfig, NODE_FLAGS } from './flags.ts';
import { reloadedConfig } from '../config/reload.ts';
import type { CertificateManager } from '../manager/manager.ts';
import type { Command } from './commands.ts';
import type { Server } from 'node:http';
import type { createSecureServer } from '../health/secure.ts';
import { nodeHelp, setUpNode } from './node-setup.ts';

const HELP = nodeHelp(
  'usage: nodecred run [flags]',
  [
    'Run the credential daemon: bootstrap if needed, then rotate the client certificate (and the serving',
    'certificate with --rotate-server-certificates) before expiry, recovering from expired or missing files.',
    'Serves /livez /readyz /healthz /metrics on --health-listen; SIGHUP reloads the config.',
  ].join('\n'),
);

function statusLine(manager: CertificateManager, daemon?: Daemon): string {
  const now = Date.now();
  const { config } = manager.deps;
  const part = (label: string, s: CertificateManager['states']['client']) =>
    s.pendingCsr
      ? `${label}: waiting for CSR ${s.pendingCsr}`
      : label === 'serving' && daemon?.waitingForNode
        ? `${label}: self-signed placeholder until the kubelet registers Node ${config.nodeName}`
        : s.notAfter
          ? `${label}: valid ${formatDuration(s.notAfter.getTime() - now)}`
          : `${label}: none${s.lastError ? ' (error)' : ''}`;
  return [
    config.clientCredentials === 'managed' ? part('client', manager.states.client) : 'client: external',
    config.rotateServerCertificates ? part('serving', manager.states.server) : '',
  ]
    .filter(Boolean)
    .join('; ');
}

export const runCommand: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const started = Date.now();
    // SIGHUP's default action ends the process, so the handler goes in before anything else; a reload asked
    // for before the daemon can apply one (a config-management run right after start) waits until it can,
    // since the config read at start may be older than the signal.
    let reload: (() => void) | undefined;
    let reloadAsked = false;
    process.on('SIGHUP', () => {
      if (reload) reload();
      else reloadAsked = true;
    });
    let manager: CertificateManager | undefined;
    const metrics = createMetrics(() => manager);
    const stop = new AbortController();
    let secure: ReturnType<typeof createSecureServer> | undefined;
    // Set once the daemon exists; install events before that only come from the first pass, which runs later.
    let health: ReturnType<typeof managerHealthSource> | undefined;
    const setup = await setUpNode(args, {
      waitForFiles: true,
      signal: stop.signal,
      events: {
        installed: (kind, state, previous) => {
          metrics.events.installed?.(kind, state, previous);
          if (kind === 'client' && !previous) metrics.bootstrapDuration.observe((Date.now() - started) / 1000);
          health?.invalidate();
          secure?.reload();
          void runHooks(
            setup.config.hooks,
            { kind, certFile: setup.store.currentPath(kind), kubeconfig: setup.config.kubeconfig },
            setup.log,
          );
        },
        failed: (kind, err) => metrics.events.failed?.(kind, err),
        // An operator's certificate is news for the secure listener and the hooks too.
        adopted: (kind) => {
          health?.invalidate();
          if (kind === 'server') secure?.reload();
          void runHooks(
            setup.config.hooks,
            { kind, certFile: setup.store.currentPath(kind), kubeconfig: setup.config.kubeconfig },
            setup.log,
          );
        },
      },
    });
    manager = setup.manager;
    const { log, config } = setup;
    const notifier = systemdNotifier();
    const notify = (...a: string[]) =>
      notifier.notify(...a).catch((err: Error) => log.warn({ err: err.message }, 'systemd notification failed'));
    let ready = false;
    let allInPlace = false;
    // READY=1 as soon as the kubelet (ordered after this unit) can start: its client credential is in
    // place and a serving pair exists. Waiting for the real serving certificate would deadlock a first
    // boot: that certificate needs the Node the kubelet registers. STATUS= tells what is still pending.
    const daemon = new Daemon(manager, log, {
      onPass: (healthy: boolean) => {
        void notify(`STATUS=${statusLine(manager!, daemon)}`);
        if (healthy && !allInPlace) {
          allInPlace = true;
          log.info({ startupMs: Date.now() - started }, 'credentials in place; ready');
        }
      },
      onKubeletStartable: () => {
        if (ready) return;
        ready = true;
        void (async () => {
          await notify(`STATUS=${statusLine(manager!, daemon)}`);
          await notify('READY=1');
        })();
        log.info(
          { startupMs: Date.now() - started },
          'the kubelet can start: client credential and serving pair in place',
        );
      },
    });
    const loopStaleMs = 60_000;
    health = managerHealthSource(manager, {
      expiryThresholdMs: config.readyExpiryThresholdMs,
      loopStaleMs,
      authCacheMs: 30_000,
      heartbeat: () => (daemon.alive(new Date(), loopStaleMs) ? new Date() : daemon.heartbeat),
    });
    const servers: Server[] = [];
    if (config.healthListen) {
      const server = createHealthServer(health, metrics.registry);
      const addr = await listen(server, parseListen(config.healthListen, '--health-listen'), '--health-listen');
      log.info({ address: `${addr.address}:${addr.port}` }, 'health and metrics listening');
      servers.push(server);
    }
    if (config.secureListen) {
      // Loaded only when configured: TokenReview/SubjectAccessReview caches and x509 identities are not needed
      // by a daemon without the secure listener (issue 13).
      const { createSecureServer } = await import('../health/secure.ts');
      secure = createSecureServer({ manager, health, registry: metrics.registry, log });
      const addr = await listen(secure.server, parseListen(config.secureListen, '--secure-listen'), '--secure-listen');
      log.info(
        { address: `${addr.address}:${addr.port}` },
        'secure health and metrics listening (serving certificate, webhook authn/authz)',
      );
      servers.push(secure.server);
    }

    const watchdogMs = watchdogIntervalMs();
    const watchdog = watchdogMs
      ? setInterval(() => {
          // systemd arms the watchdog once start-up is complete (READY=1). Only a loop that is making
          // progress keeps it fed; a stuck one gets restarted.
          if (!ready) return;
          if (daemon.alive(new Date(), loopStaleMs)) void notify('WATCHDOG=1');
          else log.warn('manager loop looks stuck; not feeding the systemd watchdog');
        }, watchdogMs)
      : undefined;

    const watcher = watchCredentials(
      {
        certDir: config.certDir,
        files: [config.kubeconfig, ...(config.bootstrapKubeconfig ? [config.bootstrapKubeconfig] : [])],
      },
      (path) => daemon.wake(`${path} changed`),
    );

    const onStop = (sig: string) => {
      log.info({ signal: sig }, 'stopping');
      void notify('STOPPING=1');
      stop.abort();
    };
    process.once('SIGTERM', () => onStop('SIGTERM'));
    process.once('SIGINT', () => onStop('SIGINT'));
    reload = () => {
      void (async () => {
        // RELOADING=1 … READY=1 only once started: a READY=1 before then would end systemd's start-up job, and
        // the kubelet (ordered after this unit) would start before its client credential is in place.
        const wasReady = ready;
        if (wasReady) await notify('RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
        try {
          const reloaded = reloadedConfig(manager!.config, await loadConfig(parseFlags(args, NODE_FLAGS)));
          if (reloaded.keptUntilRestart.length)
            log.warn(
              { fields: reloaded.keptUntilRestart },
              'these settings change only on restart; keeping the running values',
            );
          manager!.reconfigure(reloaded.config);
          log.level = reloaded.config.logLevel;
          log.info('configuration reloaded');
          daemon.wake('SIGHUP');
        } catch (err) {
          log.error({ err: errorLine(err, String) }, 'new configuration rejected; keeping the old one');
        }
        await notify(...(wasReady ? ['READY=1'] : []), `STATUS=${statusLine(manager!, daemon)}`);
      })();
    };
    if (reloadAsked) reload();

    log.info(
      {
        nodeName: config.nodeName,
        certDir: config.certDir,
        kubeconfig: config.kubeconfig,
        rotateServerCertificates: config.rotateServerCertificates,
        systemd: notifier.enabled,
        watchdogMs,
      },
      'nodecred running',
    );
    try {
      await daemon.run(stop.signal);
    } finally {
      if (watchdog) clearInterval(watchdog);
      await watcher.close();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      // The secure listener's shared API connection would keep the process alive until its keep-alive ends.
      secure?.close();
      await setup.lock.release();
    }
    log.info('stopped');
    return 0;
  },
};
