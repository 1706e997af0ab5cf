// The floor for one bootstrap: the least a client of the same library must do to get a node client
// certificate issued — generate a key, build the PKCS#10 request, create the CSR, watch it until the
// certificate appears. No verification, no files, no restart-safety, no retries. Exit 0 when issued.
//
//   node bench/baselines/floor.ts --kubeconfig BOOTSTRAP.conf --node-name NAME [--timeout-ms 120000]
//
// Prints one JSON line: {"csr": NAME, "issuedSeenAt": ms since epoch, "importedAt": ..., "createdAt": ...}.
import { generateKeyPairSync, webcrypto, randomBytes, createPublicKey } from 'node:crypto';
import { x509 } from '../../test/helpers/x509.ts';
import { KubeConfig, CertificatesV1Api, Watch, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { exitOnUncaught } from '../../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('floor');

const importedAt = Date.now();

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) {
    process.stderr.write(`floor: ${name} is required\n`);
    process.exit(2);
  }
  return v;
}

const kubeconfig = arg('--kubeconfig');
const nodeName = arg('--node-name');
const timeoutMs = Number(arg('--timeout-ms', '120000'));
const timer = setTimeout(() => {
  process.stderr.write(`floor: not issued within ${timeoutMs} ms\n`);
  process.exit(1);
}, timeoutMs);

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const alg = { name: 'ECDSA', namedCurve: 'P-256' };
const csr = await x509.Pkcs10CertificateRequestGenerator.create(
  {
    name: [{ O: ['system:nodes'] }, { CN: [`system:node:${nodeName}`] }],
    keys: {
      privateKey: privateKey.toCryptoKey(alg, false, ['sign']),
      publicKey: createPublicKey(privateKey).toCryptoKey(alg, true, ['verify']),
    },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  },
  webcrypto,
);

const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const api = kc.makeApiClient(CertificatesV1Api);
const name = `floor-${nodeName}-${randomBytes(3).toString('hex')}`;
const created = await api.createCertificateSigningRequest({
  body: {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name },
    spec: {
      request: Buffer.from(csr.toString('pem')).toString('base64'),
      signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
      usages: ['digital signature', 'client auth'],
    },
  },
});
const createdAt = Date.now();

const issued = (o: V1CertificateSigningRequest) =>
  typeof o.status?.certificate === 'string' && o.status.certificate.length > 0;
await new Promise<void>((resolve, reject) => {
  void new Watch(kc)
    .watch(
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      {
        fieldSelector: `metadata.name=${name}`,
        resourceVersion: created.metadata?.resourceVersion ?? '',
        timeoutSeconds: Math.ceil(timeoutMs / 1000),
      },
      (type: string, obj: V1CertificateSigningRequest) => {
        if ((type === 'ADDED' || type === 'MODIFIED') && issued(obj)) {
          process.stdout.write(`${JSON.stringify({ csr: name, importedAt, createdAt, issuedSeenAt: Date.now() })}\n`);
          resolve();
        }
      },
      (err: unknown) => reject(err ?? new Error('watch closed before the certificate was issued')),
    )
    .catch(reject);
});
clearTimeout(timer);
process.exit(0);
