// EKS-style nodes on the real control plane: examples/eks/provision.sh turns a NodeConfig into a kubeconfig
// whose user is an exec credential plugin and a nodecred config with clientCredentials: external; nodecred
// then obtains (and would rotate) only the kubelet serving certificate, never a client certificate, and
// never rewrites the plugin kubeconfig.
//
// The plugin must return a credential the API server really accepts. EKS's aws-iam-authenticator returns a
// token that the cluster maps to system:node:<name> in system:nodes, which a loopback control plane cannot
// reproduce (no webhook authenticator). Two stand-ins, each real for the API server:
//   1. the plugin returns a client certificate for system:node:<name> (clientCertificateData/clientKeyData)
//      signed by the cluster CA: the exact node identity, so the Node authorizer and NodeRestriction apply as
//      on EKS, and a serving-CSR approver that checks the requester sees a node. Not a token, though.
//   2. the plugin returns a ServiceAccount token from the TokenRequest API, with expirationTimestamp: the
//      credential has EKS's shape (a bearer token that expires), but the identity is a ServiceAccount that
//      needs RBAC (get nodes, create CSRs) and that a strict approver would refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { chmod, lstat, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml, stringify } from 'yaml';
import { testCluster, approveCsr, waitFor, uniqueName, type TestCluster } from '../helpers/cluster.ts';
import { REPO, newNodeDir, runNodecred, startDaemon, type NodeDir } from '../helpers/node.ts';
import { issueLeaf, newEcKey, CLIENT_AUTH } from '../unit/pki/helpers.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { parseKubeconfig } from '../../src/kube/kubeconfig.ts';

const run = promisify(execFile);
const PROVISION = join(REPO, 'examples/eks/provision.sh');

function provision(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROVISION, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** An exec plugin that logs its arguments and prints the ExecCredential in `credential.json`. */
async function writePlugin(node: NodeDir, status: Record<string, string>): Promise<{ command: string; calls: string }> {
  const command = join(node.dir, 'node-credential-plugin');
  const calls = join(node.dir, 'plugin-calls.log');
  await writeFile(
    join(node.dir, 'credential.json'),
    JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status }),
    { mode: 0o600 },
  );
  await writeFile(
    command,
    '#!/bin/sh\n# stands in for aws-iam-authenticator token -i <cluster>\n' +
      `echo "$*" >> '${calls}'\nexec cat '${join(node.dir, 'credential.json')}'\n`,
  );
  await chmod(command, 0o755);
  return { command, calls };
}

/** The NodeConfig cloud-init would carry, pointed at this node's directory and the plugin. */
async function writeNodeConfig(
  c: TestCluster,
  node: NodeDir,
  command: string,
): Promise<{ file: string; config: string }> {
  const file = join(node.dir, 'nodeconfig.yaml');
  const config = join(node.dir, 'config.yaml');
  await writeFile(
    file,
    stringify({
      apiVersion: 'node.nodecred.io/v1alpha1',
      kind: 'NodeConfig',
      spec: {
        cluster: {
          name: 'eks-test',
          apiServerEndpoint: c.state.apiserver,
          certificateAuthority: Buffer.from(c.ca).toString('base64'),
        },
        node: { name: node.name, addresses: [{ type: 'InternalIP', address: '10.0.1.23' }] },
        credentials: { exec: { command, args: ['token', '-i', 'eks-test'] } },
        nodecred: {
          kubeconfig: node.kubeconfig,
          certDir: node.certDir,
          configFile: config,
          config: { logLevel: 'debug', timeout: '60s', healthListen: '' },
        },
      },
    }),
  );
  return { file, config };
}

/** Approves the first pending kubelet-serving CSR requested by `username`; returns its name. */
async function approveServingCsr(c: TestCluster, username: string): Promise<string> {
  const name = await waitFor(`a serving CSR from ${username}`, async () => {
    const list = await c.certificates.listCertificateSigningRequest();
    const csr = list.items.find(
      (x) =>
        x.spec.username === username &&
        x.spec.signerName === 'kubernetes.io/kubelet-serving' &&
        !x.status?.conditions?.length,
    );
    return csr?.metadata?.name;
  });
  await approveCsr(c, name, 'approved by the EKS-style test');
  return name;
}

async function sans(path: string): Promise<string> {
  const out = await run('openssl', ['x509', '-in', path, '-noout', '-ext', 'subjectAltName']);
  return out.stdout.split('\n').slice(1).join(' ').replace(/\s+/g, ' ').trim();
}

/** Provisions, checks both files, bootstraps the serving certificate while approving it as `requester`. */
async function provisionAndBootstrap(c: TestCluster, node: NodeDir, command: string, requester: string) {
  const { file, config } = await writeNodeConfig(c, node, command);
  const p = await provision(['--node-config', file]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(
    p.stderr,
    new RegExp(
      `kubeconfig ${node.kubeconfig} created \\(server ${c.state.apiserver}, exec ${command} token -i eks-test\\)`,
    ),
  );
  assert.match(p.stderr, /client credentials external, serving certificate managed/);
  assert.equal((await stat(node.kubeconfig)).mode & 0o777, 0o600);

  // (a) the kubeconfig: an exec user, parsed by nodecred's own parser.
  const kubeconfigText = await readFile(node.kubeconfig, 'utf8');
  const parsed = parseKubeconfig(kubeconfigText, node.kubeconfig);
  assert.equal(parsed.cluster.server, c.state.apiserver);
  assert.equal(parsed.cluster.caData?.trim(), c.ca.trim());
  assert.equal(parsed.credential.kind, 'exec');
  if (parsed.credential.kind === 'exec') {
    assert.equal(parsed.credential.command, command);
    assert.deepEqual(parsed.credential.args, ['token', '-i', 'eks-test']);
  }
  // (b) the nodecred config: serving only, client credentials external.
  const cfg = parseYaml(await readFile(config, 'utf8')) as Record<string, unknown>;
  assert.deepEqual(
    {
      kind: cfg.kind,
      nodeName: cfg.nodeName,
      clientCredentials: cfg.clientCredentials,
      rotateCertificates: cfg.rotateCertificates,
      rotateServerCertificates: cfg.rotateServerCertificates,
      kubeconfig: cfg.kubeconfig,
      certDir: cfg.certDir,
    },
    {
      kind: 'NodeCredConfiguration',
      nodeName: node.name,
      clientCredentials: 'external',
      rotateCertificates: false,
      rotateServerCertificates: true,
      kubeconfig: node.kubeconfig,
      certDir: node.certDir,
    },
  );

  // Provisioning again changes nothing.
  const before = (await stat(node.kubeconfig)).mtimeMs;
  const again = await provision(['--node-config', file]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((again.stderr.match(/ unchanged /g) ?? []).length, 2, again.stderr);
  assert.equal((await stat(node.kubeconfig)).mtimeMs, before);

  const bootstrap = runNodecred(['bootstrap', '--config', config]);
  const csr = await approveServingCsr(c, requester);
  const r = await bootstrap;
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(
    r.stderr,
    new RegExp(`client credentials external \\(${node.kubeconfig}\\); serving certificate installed`),
  );

  const server = join(node.certDir, 'kubelet-server-current.pem');
  assert.match((await run('openssl', ['verify', '-CAfile', c.state.caFile, server])).stdout, /: OK/);
  const subject = (await run('openssl', ['x509', '-in', server, '-noout', '-subject', '-ext', 'extendedKeyUsage']))
    .stdout;
  assert.match(subject, new RegExp(`O\\s*=\\s*system:nodes, CN\\s*=\\s*system:node:${node.name}`));
  assert.match(subject, /TLS Web Server Authentication/);
  await assert.rejects(
    lstat(join(node.certDir, 'kubelet-client-current.pem')),
    'no client certificate: the plugin owns the client side',
  );
  assert.equal(await readFile(node.kubeconfig, 'utf8'), kubeconfigText, 'the exec kubeconfig is never rewritten');
  return { config, csr, server, kubeconfigText };
}

/** Registers the Node with its addresses in one create, as kubelet does (no read-modify-write of status to race). */
async function registerNode(
  c: TestCluster,
  name: string,
  addresses: Array<{ type: string; address: string }>,
): Promise<void> {
  await c.core.createNode({ body: { metadata: { name }, status: { addresses } } });
}

async function clusterCa(c: TestCluster) {
  return {
    name: 'nodecred-local-ca',
    certificatePem: c.ca,
    privateKey: createPrivateKey(await readFile(c.state.caKeyFile)),
  };
}

// The node authenticates through an exec plugin with its own identity, with the files examples/eks/provision.sh
// lays out; `nodecred bootstrap` and `nodecred run` both manage only the serving certificate.
test('EKS-style: with an exec-plugin node identity, nodecred manages only the serving certificate', async () => {
  const c = testCluster();
  const node = await newNodeDir('eks');
  try {
    // The node identity the plugin hands out, as EKS maps the instance role to system:node:<name>.
    const keys = newEcKey();
    const cert = await issueLeaf(await clusterCa(c), {
      publicKey: keys.publicKey,
      commonName: `system:node:${node.name}`,
      organizations: ['system:nodes'],
      extendedKeyUsages: [CLIENT_AUTH],
    });
    const plugin = await writePlugin(node, {
      clientCertificateData: cert,
      clientKeyData: encodePrivateKeyPem(keys.privateKey),
    });
    // kubelet would have registered the Node by now; its addresses become the serving SANs.
    await registerNode(c, node.name, [
      { type: 'InternalIP', address: '10.0.1.23' },
      { type: 'InternalDNS', address: `${node.name}.eu-west-1.compute.internal` },
    ]);

    const { config, server, kubeconfigText } = await provisionAndBootstrap(
      c,
      node,
      plugin.command,
      `system:node:${node.name}`,
    );
    assert.equal(await sans(server), `DNS:${node.name}.eu-west-1.compute.internal, IP Address:10.0.1.23`);
    assert.match(
      await readFile(plugin.calls, 'utf8'),
      /^token -i eks-test$/m,
      "nodecred ran the plugin with the NodeConfig's args",
    );

    // The daemon: a full pass finds the serving certificate valid and touches no client credentials.
    const daemon = startDaemon(['--config', config]);
    try {
      await daemon.waitForLog(/credentials in place; ready/);
    } finally {
      await daemon.stop();
    }
    assert.doesNotMatch(daemon.output(), /certificate pass failed|bootstrapping|client certificate/);
    await assert.rejects(lstat(join(node.certDir, 'kubelet-client-current.pem')));
    assert.equal(await readFile(node.kubeconfig, 'utf8'), kubeconfigText);
  } finally {
    await c.core.deleteNode({ name: node.name }).catch(() => undefined);
    await node.cleanup();
  }
});

test('EKS-style: exec plugin returning an expiring bearer token (TokenRequest) works the same way', async () => {
  const c = testCluster();
  const node = await newNodeDir('eks');
  const sa = uniqueName('eks-node');
  const role = `nodecred-test:${sa}`;
  try {
    // What the IAM mapping grants a node, as RBAC for a ServiceAccount: read Nodes, create and watch CSRs.
    await c.kubectl(['-n', 'default', 'create', 'serviceaccount', sa]);
    await c.kubectl(['create', 'clusterrole', role, '--verb=get,list,watch', '--resource=nodes']);
    await c.kubectl(['create', 'clusterrolebinding', role, `--clusterrole=${role}`, `--serviceaccount=default:${sa}`]);
    await c.kubectl([
      'create',
      'clusterrolebinding',
      `${role}:csr`,
      '--clusterrole=system:node-bootstrapper',
      `--serviceaccount=default:${sa}`,
    ]);
    const token = (await c.kubectl(['-n', 'default', 'create', 'token', sa, '--duration', '1h'])).trim();
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number };
    const plugin = await writePlugin(node, {
      token,
      expirationTimestamp: new Date(exp.exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });
    await registerNode(c, node.name, [{ type: 'InternalIP', address: '10.0.1.24' }]);

    const { server } = await provisionAndBootstrap(c, node, plugin.command, `system:serviceaccount:default:${sa}`);
    assert.equal(await sans(server), 'IP Address:10.0.1.24');
    assert.match(await readFile(plugin.calls, 'utf8'), /^token -i eks-test$/m);
  } finally {
    for (const name of [role, `${role}:csr`]) await c.rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    await c.rbac.deleteClusterRole({ name: role }).catch(() => undefined);
    await c.core.deleteNamespacedServiceAccount({ namespace: 'default', name: sa }).catch(() => undefined);
    await c.core.deleteNode({ name: node.name }).catch(() => undefined);
    await node.cleanup();
  }
});

test('provision.sh: a NodeConfig mistake is one line naming the file and field, and nothing is written', async () => {
  const c = testCluster();
  const node = await newNodeDir('eks');
  try {
    const { file } = await writeNodeConfig(c, node, '/usr/local/bin/aws-iam-authenticator');
    const good = parseYaml(await readFile(file, 'utf8')) as { spec: Record<string, Record<string, unknown>> };
    const cases: Array<[string, (d: typeof good) => void, RegExp]> = [
      [
        'no endpoint',
        (d) => {
          delete d.spec.cluster!.apiServerEndpoint;
        },
        /spec\.cluster\.apiServerEndpoint: is missing/,
      ],
      [
        'http endpoint',
        (d) => {
          d.spec.cluster!.apiServerEndpoint = 'http://10.0.0.1';
        },
        /spec\.cluster\.apiServerEndpoint: "http:\/\/10\.0\.0\.1" is not an https:\/\/ URL/,
      ],
      [
        'bad CA',
        (d) => {
          d.spec.cluster!.certificateAuthority = Buffer.from('not a cert').toString('base64');
        },
        /spec\.cluster\.certificateAuthority: does not decode to a PEM certificate/,
      ],
      [
        'typo',
        (d) => {
          d.spec.node!.nmae = 'x';
        },
        /spec\.node\.nmae: unknown field/,
      ],
      [
        'owned field',
        (d) => {
          (d.spec.nodecred!.config as Record<string, unknown>).clientCredentials = 'managed';
        },
        /spec\.nodecred\.config\.clientCredentials: is set by the NodeConfig itself/,
      ],
      [
        'bad extra config',
        (d) => {
          (d.spec.nodecred!.config as Record<string, unknown>).logLevel = 'loud';
        },
        /logLevel: unknown level "loud"/,
      ],
    ];
    for (const [what, mutate, message] of cases) {
      const doc = structuredClone(good);
      mutate(doc);
      const broken = join(node.dir, 'broken.yaml');
      await writeFile(broken, stringify(doc));
      const r = await provision(['--node-config', broken]);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.ok(
        r.stderr.startsWith(`provision: ${broken}: `) || what === 'bad extra config',
        `${what} names the file: ${r.stderr}`,
      );
      assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
      await assert.rejects(lstat(node.kubeconfig), `${what}: nothing written`);
    }

    // The shipped examples are valid once the CA placeholder is filled in.
    const userData = parseYaml(await readFile(join(REPO, 'examples/eks/user-data.yaml'), 'utf8')) as {
      write_files: Array<{ path: string; content: string }>;
      runcmd: unknown[];
    };
    const embedded = userData.write_files.find((f) => f.path === '/etc/nodecred/nodeconfig.yaml')!.content;
    for (const [what, text] of [
      ['nodeconfig.yaml', await readFile(join(REPO, 'examples/eks/nodeconfig.yaml'), 'utf8')],
      ['user-data.yaml', embedded],
    ] as const) {
      const filled = join(node.dir, `example-${what}`);
      await writeFile(filled, text.replace('REPLACE_WITH_BASE64_CA', Buffer.from(c.ca).toString('base64')));
      const r = await provision([
        '--node-config',
        filled,
        '--node-name',
        'ip-10-0-1-23.eu-west-1.compute.internal',
        '--node-ip',
        '10.0.1.23',
        '--dry-run',
      ]);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.match(
        r.stdout,
        /command: \/usr\/local\/bin\/aws-iam-authenticator\n\s+args:\n\s+- token\n\s+- -i\n\s+- my-cluster/,
        what,
      );
      assert.match(r.stdout, /clientCredentials: external/, what);
    }
    assert.ok(userData.runcmd.some((step) => JSON.stringify(step).includes('provision.sh')));

    const usage = await provision(['--bogus']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown argument "--bogus"/);
  } finally {
    await node.cleanup();
  }
});
