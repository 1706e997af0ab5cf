// PKI for the local test control plane, made with the real openssl CLI: a cluster CA, serving certificates
// for the apiserver and controller-manager on loopback, client certificates for admin, the
// controller-manager and the apiserver's connections to kubelets, and the service-account signing key.
// EC P-256 everywhere: fast to generate.
import { execFile } from 'node:child_process';
import { writeFile, chmod } from 'node:fs/promises';
import { makeDirs } from '../../src/store/atomic.ts';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// With libfaketime installed, certificates are made a day in the past (NotBefore = now − 1 day), so tests
// can move a node's clock back (clock-skew scenarios) without the API server's own certificate turning
// "not yet valid". Without it they start now, which is all the demo needs.
let backdate: Promise<boolean> | undefined;
const canBackdate = () =>
  (backdate ??= run('faketime', ['-f', '-1d', 'true']).then(
    () => true,
    () => false,
  ));

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    if (await canBackdate()) await run('faketime', ['-f', '-1d', 'openssl', ...args], { cwd });
    else await run('openssl', args, { cwd });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed in ${cwd}: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
}

async function ecKey(dir: string, name: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  await chmod(join(dir, `${name}.key`), 0o600);
}

interface LeafSpec {
  name: string;
  subject: string;
  extensions: string;
  days: number;
}

async function signedLeaf(dir: string, ca: string, spec: LeafSpec): Promise<void> {
  await ecKey(dir, spec.name);
  const ext = `${spec.name}.ext`;
  await writeFile(join(dir, ext), spec.extensions);
  await openssl(['req', '-new', '-key', `${spec.name}.key`, '-subj', spec.subject, '-out', `${spec.name}.csr`], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${spec.name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      String(spec.days),
      '-sha256',
      '-extfile',
      ext,
      '-out',
      `${spec.name}.crt`,
    ],
    dir,
  );
}

const serverExt = (sans: string) =>
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
  `subjectAltName=${sans}\n`;
const clientExt =
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';

/**
 * A name in the API server's certificate that no rule of the approver knows, as kubeadm's certSANs add an
 * external or load-balancer name: the approver must learn it from the certificate to reserve it.
 */
export const API_SERVER_EXTERNAL_NAME = 'api.nodecred.test';

/** Writes everything into `dir/pki` (0700) and returns that directory. */
export async function generateClusterPki(dir: string): Promise<string> {
  const pki = join(dir, 'pki');
  await makeDirs(pki, 0o700);
  await ecKey(pki, 'ca');
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=nodecred-local-ca',
      '-days',
      '3650',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      '-out',
      'ca.crt',
    ],
    pki,
  );
  const loopbackSans = 'IP:127.0.0.1,IP:::1,DNS:localhost';
  await signedLeaf(pki, 'ca', {
    name: 'apiserver',
    subject: '/CN=kube-apiserver',
    days: 3650,
    extensions: serverExt(
      `${loopbackSans},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1,` +
        `DNS:${API_SERVER_EXTERNAL_NAME}`,
    ),
  });
  await signedLeaf(pki, 'ca', {
    name: 'controller-manager-serving',
    subject: '/CN=kube-controller-manager',
    days: 3650,
    extensions: serverExt(loopbackSans),
  });
  await signedLeaf(pki, 'ca', {
    name: 'admin',
    subject: '/O=system:masters/CN=kubernetes-admin',
    days: 3650,
    extensions: clientExt,
  });
  await signedLeaf(pki, 'ca', {
    name: 'controller-manager',
    subject: '/CN=system:kube-controller-manager',
    days: 3650,
    extensions: clientExt,
  });
  // The API server's identity towards kubelets (logs, exec, node proxy), as kubeadm names it; authorized on
  // the kubelet by a binding to system:kubelet-api-admin, not by system:masters.
  await signedLeaf(pki, 'ca', {
    name: 'apiserver-kubelet-client',
    subject: '/CN=kube-apiserver-kubelet-client',
    days: 3650,
    extensions: clientExt,
  });
  await ecKey(pki, 'sa');
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], pki);
  return pki;
}
