// N node identities for the approver benchmark (P6): a client certificate for system:node:<name> signed by
// the cluster CA (what `nodecred bootstrap` would have obtained), a Node object with one InternalIP, and
// the CSRs such a node sends: a serving CSR for its own name and IP, a client-certificate renewal.
import { x509 } from '../../test/helpers/x509.ts';
import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KubeConfig, CoreV1Api, type V1CertificateSigningRequestSpec } from '@kubernetes/client-node';
import type { ClusterState } from '../../scripts/lib/local-cluster.ts';
import { buildCsrPem, nodeSubject } from '../../src/pki/csr.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';

/** Where the nodes' InternalIPs are: the approver's allowedCidrs in the benchmark. */
export const NODE_NETWORK = '10.60.0.0/14';
const CONCURRENCY = 20;

export interface NodeId {
  name: string;
  ip: string;
  key: KeyObject;
  kc: KubeConfig;
}

export async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/** Retries with a growing pause: at 1,000 requests at once the API server answers some with 429. */
export async function retry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
  }
}

export async function makeNodes(state: ClusterState, admin: KubeConfig, runId: string, n: number): Promise<NodeId[]> {
  const core = admin.makeApiClient(CoreV1Api);
  const caPem = await readFile(state.caFile, 'utf8');
  const caKey = createPrivateKey(await readFile(state.caKeyFile));
  const caCert = new x509.X509Certificate(caPem);
  const signingKey = caKey.toCryptoKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const nodes: NodeId[] = [];
  for (let i = 0; i < n; i++) {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const name = `p6-${runId}-${i}`;
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomBytes(8)
          .toString('hex')
          .replace(/^[89a-f]/, '1'),
        subject: `O=system:nodes, CN=system:node:${name}`,
        issuer: caCert.subjectName,
        notBefore: new Date(Date.now() - 3600_000),
        notAfter: new Date(Date.now() + 86400_000),
        publicKey: await webcrypto.subtle.importKey(
          'spki',
          keys.publicKey.export({ type: 'spki', format: 'der' }),
          { name: 'ECDSA', namedCurve: 'P-256' },
          true,
          ['verify'],
        ),
        signingKey,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: [new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2'])],
      },
      webcrypto,
    );
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: state.apiserver, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false },
      ],
      users: [
        {
          name: 'u',
          certData: Buffer.from(cert.toString('pem')).toString('base64'),
          keyData: Buffer.from(encodePrivateKeyPem(keys.privateKey)).toString('base64'),
        },
      ],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    nodes.push({ name, ip: `10.${60 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, key: keys.privateKey, kc });
  }
  await pool(nodes, CONCURRENCY, async (node) => {
    await retry(() => core.createNode({ body: { metadata: { name: node.name } } }));
    await retry(async () => {
      const object = await core.readNodeStatus({ name: node.name });
      object.status = { ...(object.status ?? {}), addresses: [{ type: 'InternalIP', address: node.ip }] };
      await core.replaceNodeStatus({ name: node.name, body: object });
    });
  });
  return nodes;
}

/** The serving CSR a kubelet sends: its own name and IP, for kubernetes.io/kubelet-serving. */
export async function servingCsr(node: NodeId): Promise<V1CertificateSigningRequestSpec> {
  const pem = await buildCsrPem(node.key, { ...nodeSubject(node.name), dnsNames: [node.name], ipAddresses: [node.ip] });
  return {
    request: Buffer.from(pem).toString('base64'),
    signerName: 'kubernetes.io/kubelet-serving',
    usages: ['digital signature', 'server auth'],
  };
}

/** A client-certificate renewal (kube-controller-manager's csrapproving controller approves these). */
export async function clientCsr(node: NodeId): Promise<V1CertificateSigningRequestSpec> {
  const pem = await buildCsrPem(node.key, nodeSubject(node.name));
  return {
    request: Buffer.from(pem).toString('base64'),
    signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
    usages: ['digital signature', 'client auth'],
  };
}
