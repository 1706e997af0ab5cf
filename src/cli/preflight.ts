// What `bootstrap` and `run` check before they create or write anything, so a wrong path or a broken file
// leaves no directory behind: the config and flags (loadConfig), and the credentials nodecred would start
// from. A bootstrap kubeconfig is read and parsed completely, with every file it refers to (CA, token file,
// client certificate and key); an exec plugin is not run here (it may need the network), only its spec
// parsed. The daemon (`run`) may start before cloud-init has written the bootstrap kubeconfig: for it a
// *missing* file is a note, and it waits for the file to appear; anything unreadable or garbled is an error.
import { lstat } from 'node:fs/promises';
import { UserError, isUserError } from '../errors.ts';
import { connectionFromKubeconfig, readKubeconfigFile } from '../kube/api.ts';
import type { Config } from '../config/schema.ts';

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );

/** Throws a UserError when nodecred could not even start; returns notes to log once a logger exists. */
export async function checkCredentialSources(config: Config, opts: { waitForFiles: boolean }): Promise<string[]> {
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
