// EKS-style provisioning: from a small NodeConfig (what cloud-init / user-data carries) write
//   (a) the node kubeconfig, whose user is an exec credential plugin (aws-iam-authenticator style), and
//   (b) the nodecred configuration: client credentials external (the plugin's), serving certificate managed.
// Run by examples/eks/provision.sh. Both files are validated with nodecred's own parsers before they are
// written, rewritten only when their content changes (so running it twice changes nothing), and replaced
// atomically.
import { runMain } from '../../src/cli/exit.ts';
import { readFile } from 'node:fs/promises';
import { dirname, delimiter, join } from 'node:path';
import { accessSync, constants } from 'node:fs';
import { stringify } from 'yaml';
import { UserError } from '../../src/errors.ts';
import { renderExecKubeconfig } from '../../src/kube/kubeconfig-render.ts';
import { parseKubeconfig } from '../../src/kube/kubeconfig.ts';
import { overridesFromDocument, mergeConfig, CONFIG_API_VERSION, CONFIG_KIND } from '../../src/config/schema.ts';
import { writeFileAtomic, makeDirs } from '../../src/store/atomic.ts';
import {
  NODE_CONFIG_API_VERSION,
  NODE_CONFIG_KIND,
  parseNodeConfig,
  type NodeConfig,
  type ProvisionOverrides,
} from './eks-node-config.ts';

interface RenderedFiles {
  kubeconfig: string;
  config: string;
}

/** The two files, validated by the parsers nodecred itself uses when it reads them. */
function renderFiles(nc: NodeConfig): RenderedFiles {
  const kubeconfig = renderExecKubeconfig({
    server: nc.server,
    caData: nc.caPem,
    clusterName: nc.clusterName,
    userName: 'kubelet',
    contextName: 'kubelet',
    command: nc.exec.command,
    args: nc.exec.args,
    env: nc.exec.env,
    apiVersion: nc.exec.apiVersion,
  });
  parseKubeconfig(kubeconfig, nc.kubeconfigPath);
  const doc = {
    apiVersion: CONFIG_API_VERSION,
    kind: CONFIG_KIND,
    nodeName: nc.nodeName,
    kubeconfig: nc.kubeconfigPath,
    certDir: nc.certDir,
    // The node's identity comes from the exec plugin (IAM): nodecred neither bootstraps nor rotates a
    // client certificate, and never rewrites the kubeconfig. It obtains and rotates the serving certificate.
    clientCredentials: 'external',
    rotateCertificates: false,
    rotateServerCertificates: true,
    ...(nc.addresses.length ? { serving: { addresses: nc.addresses } } : {}),
    ...nc.extraConfig,
  };
  const config =
    `# Written by examples/eks/provision.sh from a NodeConfig; edit the NodeConfig and run it ` +
    `again.\n${stringify(doc, { lineWidth: 0 })}`;
  mergeConfig(overridesFromDocument(doc, nc.configPath));
  return { kubeconfig, config };
}

async function writeIfChanged(path: string, text: string, mode: number): Promise<'created' | 'updated' | 'unchanged'> {
  const existing = await readFile(path, 'utf8').catch(() => null);
  if (existing === text) return 'unchanged';
  await makeDirs(dirname(path));
  await writeFileAtomic(path, text, mode);
  return existing === null ? 'created' : 'updated';
}

function onPath(command: string): boolean {
  const candidates = command.includes('/')
    ? [command]
    : (process.env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, command));
  return candidates.some((c) => {
    try {
      accessSync(c, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const USAGE = `usage: provision.sh --node-config FILE [--node-name NAME] [--node-ip IP]... [--kubeconfig-out FILE]
                    [--config-out FILE] [--dry-run]

Writes, from an EKS-style NodeConfig (apiVersion ${NODE_CONFIG_API_VERSION}, kind ${NODE_CONFIG_KIND}):
  - the node kubeconfig (0600, default /var/lib/kubelet/kubeconfig) whose user is the exec credential plugin
    of spec.credentials.exec (default: aws-iam-authenticator token -i <spec.cluster.name>);
  - the nodecred configuration (0644, default /etc/nodecred/config.yaml): clientCredentials: external,
    rotateServerCertificates: true, so nodecred obtains and rotates only the kubelet serving certificate.
Files whose content would not change are left alone; running it again is safe.

flags:
  --node-config FILE     the NodeConfig (default /etc/nodecred/nodeconfig.yaml)
  --node-name NAME       overrides spec.node.name (e.g. the EC2 private DNS name from instance metadata)
  --node-ip IP           overrides spec.node.addresses with InternalIP addresses (repeatable)
  --kubeconfig-out FILE  overrides spec.nodecred.kubeconfig
  --config-out FILE      overrides spec.nodecred.configFile
  --dry-run              print both files on stdout instead of writing them
  -h, --help             this help
`;

export async function main(argv: string[]): Promise<number> {
  let nodeConfigPath = '/etc/nodecred/nodeconfig.yaml';
  let dryRun = false;
  const overrides: ProvisionOverrides = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '')
        throw new UserError(`${flag} needs a value`, { fix: 'see --help', code: 'USAGE' });
      return v;
    };
    switch (flag) {
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        return 0;
      case '--node-config':
        nodeConfigPath = value();
        break;
      case '--node-name':
        overrides.nodeName = value();
        break;
      case '--node-ip':
        overrides.nodeIps = [
          ...(overrides.nodeIps ?? []),
          ...value()
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        ];
        break;
      case '--kubeconfig-out':
        overrides.kubeconfigPath = value();
        break;
      case '--config-out':
        overrides.configPath = value();
        break;
      case '--dry-run':
        dryRun = true;
        break;
      default:
        throw new UserError(`unknown argument "${arg}"`, { fix: 'see --help', code: 'USAGE' });
    }
  }
  let text: string;
  try {
    text = await readFile(nodeConfigPath, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read the NodeConfig: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      where: nodeConfigPath,
      fix: 'pass --node-config FILE (cloud-init writes it, see examples/eks/user-data.yaml)',
      code: 'USAGE',
    });
  }
  const nc = parseNodeConfig(text, nodeConfigPath, overrides);
  const files = renderFiles(nc);
  if (dryRun) {
    process.stdout.write(`# ${nc.kubeconfigPath}\n${files.kubeconfig}---\n# ${nc.configPath}\n${files.config}`);
    return 0;
  }
  const k = await writeIfChanged(nc.kubeconfigPath, files.kubeconfig, 0o600);
  process.stderr.write(
    `provision: kubeconfig ${nc.kubeconfigPath} ${k} (server ${nc.server}, exec ` +
      `${[nc.exec.command, ...nc.exec.args].join(' ')})\n`,
  );
  const c = await writeIfChanged(nc.configPath, files.config, 0o644);
  process.stderr.write(
    `provision: nodecred config ${nc.configPath} ${c} (node ${nc.nodeName}, client credentials external, serving ` +
      `certificate managed in ${nc.certDir})\n`,
  );
  if (!onPath(nc.exec.command)) {
    process.stderr.write(
      `provision: warning: exec command "${nc.exec.command}" is not an executable on PATH yet; nodecred and kubelet ` +
        `fail to authenticate until it is installed\n`,
    );
  }
  return 0;
}

if (import.meta.main) {
  runMain('provision', () => main(process.argv.slice(2)));
}
