// What `bootstrap` and `run` check before they create or write anything, so a wrong path or a broken file
// leaves no directory behind: the config and flags (loadConfig), and the credentials nodecred would start
// from. A bootstrap kubeconfig is read and parsed completely, with every file it refers to (CA, token file,
// client certificate and key); an exec plugin is not run here (it may need the network), only its spec
// parsed. The daemon (`run`) may start before cloud-init has written the bootstrap kubeconfig: for it a
// *missing* file is a note, and it waits for the file to appear; anything unreadable or garbled is an error.
import { lstat, readFile } from 'node:fs/promises';
import { UserError, errnoError, isUserError } from '../errors.ts';
import { connectionFromKubeconfig, readKubeconfigFile } from '../kube/api.ts';
import { splitCertificatePems } from '../pki/cert.ts';
import type { Config } from '../config/schema.ts';

/** Missing means ENOENT (or a file in the way); anything else (EACCES) is reported by the read that follows. */
const exists = (path: string) =>
  lstat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => err.code !== 'ENOENT' && err.code !== 'ENOTDIR',
  );

/** A CA bundle setting must name a readable file with at least one certificate. */
async function checkCaFile(path: string | undefined, setting: string): Promise<void> {
  if (!path) return;
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw errnoError(err, { action: `read ${setting}`, path }) ?? err;
  });
  splitCertificatePems(text, setting, path);
}

/** Throws a UserError when nodecred could not even start; returns notes to log once a logger exists. */
export async function checkCredentialSources(config: Config, opts: { waitForFiles: boolean }): Promise<string[]> {
  await checkCaFile(config.clusterCAFile, 'clusterCAFile');
  await checkCaFile(config.clientCAFile, 'clientCAFile');
  if (config.clientCredentials === 'external') {
    // EKS-style: the kubeconfig is the provisioner's (an exec plugin); nodecred only reads it.
    if (opts.waitForFiles && !(await exists(config.kubeconfig)))
      return [`${config.kubeconfig} does not exist yet; waiting for it to appear`];
    await readKubeconfigFile(config.kubeconfig);
    return [];
  }
  if (config.discovery) return [];
  const haveNodeKubeconfig = await exists(config.kubeconfig);
  const bootstrap = config.bootstrapKubeconfig;
  if (!bootstrap) {
    if (haveNodeKubeconfig || opts.waitForFiles) return [];
    throw new UserError('no node kubeconfig and no bootstrap credentials', {
      where: config.kubeconfig,
      fix: 'pass --bootstrap-kubeconfig, or --api-server with --discovery-token and --discovery-token-ca-cert-hash',
      code: 'NO_CREDENTIALS',
    });
  }
  if (opts.waitForFiles && !haveNodeKubeconfig && !(await exists(bootstrap)))
    return [`bootstrap kubeconfig ${bootstrap} does not exist yet; waiting for it to appear`];
  try {
    await connectionFromKubeconfig(await readKubeconfigFile(bootstrap), 'bootstrap');
    return [];
  } catch (err) {
    // A node that already has its own kubeconfig needs the bootstrap one only if its certificate expires.
    if (isUserError(err) && haveNodeKubeconfig)
      return [`bootstrap kubeconfig unusable, continuing with the node kubeconfig: ${err.oneLine()}`];
    throw err;
  }
}
