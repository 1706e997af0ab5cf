// Connection construction on a real node (the manager's Credentials seam): the bootstrap identity from
// token discovery or the bootstrap kubeconfig, the node's own from the node kubeconfig, and the node
// kubeconfig written in kubelet's form (its client-certificate and client-key both point at
// kubelet-client-current.pem, so a rotation needs no kubeconfig change).
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UserError, errorLine, isUserError } from '../errors.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { ensureParentDirs, writeFileAtomic } from '../store/atomic.ts';
import { diskError } from '../store/cert-store.ts';
import type { Credentials } from '../manager/state.ts';
import { connectionFromKubeconfig, endpointOf, readKubeconfigFile, type ApiEndpoint } from './api.ts';
import { discover } from './discovery-client.ts';
import { renderNodeKubeconfig } from './kubeconfig-render.ts';

export function fileCredentials(
  getConfig: () => Config,
  log: Logger,
  /** kubelet-client-current.pem: what the node kubeconfig's credentials point at. */
  clientCertPath: string,
): Credentials {
  return {
    async bootstrap() {
      const { discovery, bootstrapKubeconfig } = getConfig();
      if (discovery) return discover(discovery);
      if (bootstrapKubeconfig)
        return connectionFromKubeconfig(await readKubeconfigFile(bootstrapKubeconfig), 'bootstrap');
      return null;
    },

    async nodeEndpoint() {
      const path = getConfig().kubeconfig;
      try {
        return await endpointOf(await readKubeconfigFile(path));
      } catch (err) {
        if (isUserError(err) && err.code === 'FILE_UNREADABLE') return null;
        log.warn({ path, err: errorLine(err, String) }, 'node kubeconfig unreadable; it will be rewritten');
        return null;
      }
    },

    async node() {
      return connectionFromKubeconfig(await readKubeconfigFile(getConfig().kubeconfig), 'node');
    },

    async writeNodeKubeconfig(endpoint: ApiEndpoint, caPem: string) {
      const path = getConfig().kubeconfig;
      const text = renderNodeKubeconfig({
        server: endpoint.server,
        caData: caPem,
        ...(endpoint.tlsServerName ? { tlsServerName: endpoint.tlsServerName } : {}),
        ...(endpoint.proxyUrl ? { proxyUrl: endpoint.proxyUrl } : {}),
        // Absolute: the kubelet resolves a relative path against the kubeconfig's directory, not our cwd.
        certPath: resolve(clientCertPath),
        keyPath: resolve(clientCertPath),
      });
      const existing = await readFile(path, 'utf8').catch(() => null);
      if (existing === text) return;
      // Create the directory if missing (0700), but never change the mode of one we do not own (/var/lib/kubelet).
      await ensureParentDirs(path);
      await writeFileAtomic(path, text, 0o600).catch((err: unknown) => {
        throw diskError(err, path);
      });
      log.info({ path, server: endpoint.server }, 'wrote node kubeconfig');
    },

    async nodeKubeconfigPresent() {
      // A stat, not a read: the daemon asks every few seconds.
      const info = await stat(getConfig().kubeconfig).catch(() => null);
      return info?.isFile() === true && info.size > 0;
    },

    async clusterCa(endpoint: ApiEndpoint) {
      const file = getConfig().clusterCAFile;
      if (file) {
        try {
          return await readFile(file, 'utf8');
        } catch (err) {
          throw new UserError(`cannot read cluster CA: ${(err as NodeJS.ErrnoException).code}`, {
            where: `clusterCAFile ${file}`,
            fix: 'point clusterCAFile at the CA that signs node certificates',
            code: 'FILE_UNREADABLE',
          });
        }
      }
      if (!endpoint.caPem) {
        throw new UserError('no cluster CA to verify issued certificates against', {
          where: endpoint.server,
          fix: 'set certificate-authority(-data) in the kubeconfig or clusterCAFile in the config',
          code: 'NO_CA',
        });
      }
      return endpoint.caPem;
    },
  };
}
