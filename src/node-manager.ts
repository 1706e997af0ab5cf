// The certificate manager with the real parts: the certificate store on disk, credentials from the
// kubeconfig files (or token discovery), the API through nodecred's own HTTP client (http-node-api.ts), the
// system clock.
import { systemClock } from './clock.ts';
import type { Config } from './config/schema.ts';
import { httpNodeApi } from './kube/http-node-api.ts';
import { fileCredentials } from './kube/node-credentials.ts';
import type { Logger } from './log.ts';
import { CertificateManager } from './manager/manager.ts';
import type { ManagerDeps, ManagerEvents } from './manager/state.ts';
import type { CertStore } from './store/cert-store.ts';

export function createNodeManager(o: {
  config: Config;
  store: CertStore;
  log: Logger;
  events?: ManagerEvents;
  signal?: AbortSignal;
}): CertificateManager {
  const deps: ManagerDeps = {
    config: o.config,
    store: o.store,
    // Reads the configuration through deps, so a SIGHUP reload (CertificateManager.reconfigure) applies.
    credentials: fileCredentials(() => deps.config, o.log, o.store.currentPath('client')),
    connect: (connection) => httpNodeApi(connection),
    clock: systemClock,
    log: o.log,
    ...(o.events ? { events: o.events } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  };
  return new CertificateManager(deps);
}
