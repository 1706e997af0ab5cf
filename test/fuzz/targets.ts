// Fuzz targets: every parser that faces input nodecred does not control (config files, kubeconfigs, PEM
// from disk or the API, CSRs, exec plugin output, cluster-info). The contract under fuzzing: return, or
// throw a UserError (one clear line); anything else, or a case that takes longer than a second, is a crash.
// Inputs are random text and, more usefully, valid documents with random mutations.
import { x509 } from '../helpers/x509.ts';
import fc from 'fast-check';
import { generateKeyPairSync, webcrypto, createPublicKey } from 'node:crypto';
import { stringify } from 'yaml';
import { overridesFromDocument } from '../../src/config/schema.ts';
import { parseYamlDocument } from '../../src/config/yaml-file.ts';
import { parseDuration } from '../../src/config/duration.ts';
import { parseKubeconfig } from '../../src/kube/kubeconfig.ts';
import { parseExecCredential } from '../../src/kube/exec-credential.ts';
import { verifyClusterInfoJws, parseDiscoveryToken, signClusterInfo } from '../../src/kube/discovery.ts';
import { parsePemBlocks } from '../../src/pki/pem.ts';
import { loadCertificates } from '../../src/pki/cert.ts';
import { loadPrivateKeyPem, encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { buildCsrPem, parseCsrPem } from '../../src/pki/csr.ts';
import { parseStrictCsr } from '../../src/pki/strict-csr.ts';
import { parsePairFile } from '../../src/store/cert-store.ts';

export interface FuzzTarget {
  name: string;
  arbitrary: fc.Arbitrary<string>;
  run(input: string): unknown;
}

/** A valid document with random edits: character flips, deletions, insertions, truncation, duplication. */
function mutationsOf(seed: string): fc.Arbitrary<string> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 1 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 20 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 6 }).map((edits) => {
    let s = seed;
    for (const e of edits) {
      const at = s.length ? e.at % s.length : 0;
      switch (e.kind) {
        case 'flip':
          s = s.slice(0, at) + e.ch + s.slice(at + 1);
          break;
        case 'delete':
          s = s.slice(0, at) + s.slice(at + e.len);
          break;
        case 'insert':
          s = s.slice(0, at) + e.text + s.slice(at);
          break;
        case 'truncate':
          s = s.slice(0, at);
          break;
        case 'duplicate':
          s = s.slice(0, at) + s.slice(at, at + e.len) + s.slice(at);
          break;
      }
    }
    return s;
  });
}

const text = (seed: string) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
    { weight: 6, arbitrary: mutationsOf(seed) },
  );

// Seeds: one valid specimen of each format, made fresh (no key is ever committed).
const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyPem = encodePrivateKeyPem(keys.privateKey);
const certPem = `${(
  await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=system:node:fuzz, O=system:nodes',
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86400_000),
      keys: {
        privateKey: keys.privateKey.toCryptoKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']),
        publicKey: createPublicKey(keys.privateKey).toCryptoKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
          'verify',
        ]),
      },
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'fuzz.example' },
          { type: 'ip', value: '10.0.0.1' },
        ]),
      ],
    },
    webcrypto,
  )
).toString('pem')}\n`;
const csrPem = await buildCsrPem(keys.privateKey, {
  commonName: 'system:node:fuzz',
  organizations: ['system:nodes'],
  dnsNames: ['fuzz.example'],
  ipAddresses: ['10.0.0.1', '2001:db8::1'],
});
const configYaml = stringify({
  apiVersion: 'nodecred.io/v1alpha1',
  kind: 'NodeCredConfiguration',
  nodeName: 'worker-1',
  certDir: '/var/lib/kubelet/pki',
  rotateServerCertificates: true,
  keyAlgorithm: 'ecdsa-p384',
  requestedLifetime: '24h',
  rotation: { from: 0.7, to: 0.9 },
  serving: { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] },
  discovery: {
    apiServer: 'https://10.0.0.1:6443',
    token: 'abcdef.0123456789abcdef',
    caCertHashes: [`sha256:${'a'.repeat(64)}`],
  },
  hooks: { command: ['systemctl', 'reload', 'x'], timeout: '10s' },
  extraCertificates: [{ name: 'etcd', path: '/etc/etcd/server.crt' }],
});
const kubeconfigYaml = stringify({
  apiVersion: 'v1',
  kind: 'Config',
  'current-context': 'c',
  clusters: [
    {
      name: 'k',
      cluster: {
        server: 'https://10.0.0.1:6443',
        'certificate-authority-data': Buffer.from(certPem).toString('base64'),
        'tls-server-name': 'kubernetes',
      },
    },
  ],
  users: [
    {
      name: 'u',
      user: {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: 'aws-iam-authenticator',
          args: ['token', '-i', 'x'],
          env: [{ name: 'A', value: 'b' }],
        },
      },
    },
  ],
  contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
});
const execJson = JSON.stringify({
  apiVersion: 'client.authentication.k8s.io/v1beta1',
  kind: 'ExecCredential',
  status: { token: 'k8s-aws-v1.abc', expirationTimestamp: '2030-01-01T00:00:00Z' },
});
const clusterInfo = stringify({
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [
    {
      name: '',
      cluster: {
        server: 'https://10.0.0.1:6443',
        'certificate-authority-data': Buffer.from(certPem).toString('base64'),
      },
    },
  ],
});
const jws = signClusterInfo(clusterInfo, 'abcdef', '0123456789abcdef');

export const TARGETS: FuzzTarget[] = [
  {
    name: 'config file (YAML → NodeCredConfiguration)',
    arbitrary: text(configYaml),
    // What readConfigFile (src/cli/flags.ts) does with the text it read.
    run: (s) => overridesFromDocument(parseYamlDocument(s, '/etc/nodecred/config.yaml'), '/etc/nodecred/config.yaml'),
  },
  {
    name: 'duration',
    arbitrary: fc.oneof(fc.string({ maxLength: 30 }), mutationsOf('1h30m15s')),
    run: (s) => parseDuration(s, '--timeout'),
  },
  {
    name: 'kubeconfig',
    arbitrary: text(kubeconfigYaml),
    run: (s) => parseKubeconfig(s, '/etc/kubernetes/bootstrap-kubelet.conf'),
  },
  { name: 'ExecCredential (plugin stdout)', arbitrary: text(execJson), run: (s) => parseExecCredential(s) },
  { name: 'PEM framing', arbitrary: text(certPem + keyPem), run: (s) => parsePemBlocks(s, 'bundle') },
  { name: 'certificate bundle', arbitrary: text(certPem), run: (s) => loadCertificates(s, 'certificate') },
  { name: 'private key', arbitrary: text(keyPem), run: (s) => loadPrivateKeyPem(s, 'key.pem') },
  {
    name: 'kubelet pair file (chain + key)',
    arbitrary: text(certPem + keyPem),
    run: (s) => parsePairFile(s, 'kubelet-client-current.pem'),
  },
  { name: 'CSR (PKCS#10)', arbitrary: text(csrPem), run: (s) => parseCsrPem(s, 'csr') },
  // The approver's reader never throws: every input is a reading or a named refusal.
  { name: 'CSR, strict reader (approver)', arbitrary: text(csrPem), run: (s) => void parseStrictCsr(Buffer.from(s)) },
  {
    name: 'cluster-info JWS',
    arbitrary: text(jws),
    run: (s) =>
      verifyClusterInfoJws({
        kubeconfigText: clusterInfo,
        jwsDetached: s,
        tokenId: 'abcdef',
        tokenSecret: '0123456789abcdef',
      }),
  },
  {
    name: 'discovery token',
    arbitrary: fc.oneof(fc.string({ maxLength: 40 }), mutationsOf('abcdef.0123456789abcdef')),
    run: (s) => parseDiscoveryToken(s),
  },
];
