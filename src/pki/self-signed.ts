// A self-signed serving pair for the kubelet to start with on first boot, before the node's real serving
// certificate can exist (the CSR needs the Node object, which only the running kubelet creates). It is what
// the kubelet makes for itself when it has neither tlsCertFile nor serverTLSBootstrap: nobody trusts it, so
// an API server with --kubelet-certificate-authority refuses it (logs, exec, proxy fail loudly, never
// silently insecure) until nodecred installs the real certificate and the kubelet reloads it.
import { x509 } from './x509.ts';
import { randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { generateKey, publicKeyOf } from './keys.ts';

/** The subject's O marks the placeholder, so `openssl s_client` or `nodecred status` shows what it is. */
export const PLACEHOLDER_ORGANIZATION = 'nodecred:self-signed-placeholder';
const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' };

export async function selfSignedServingPair(
  nodeName: string,
  now: Date,
): Promise<{ chainPem: string; key: KeyObject }> {
  const { privateKey } = await generateKey('ecdsa-p256');
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // a positive INTEGER
  const name = `CN=${nodeName}, O=${PLACEHOLDER_ORGANIZATION}`;
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial.toString('hex'),
      subject: name,
      issuer: name,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + VALIDITY_MS),
      publicKey: publicKeyOf(privateKey).toCryptoKey(ECDSA_P256, true, ['verify']),
      signingKey: privateKey.toCryptoKey(ECDSA_P256, false, ['sign']),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: nodeName }]),
      ],
    },
    webcrypto,
  );
  return { chainPem: `${certificate.toString('pem')}\n`, key: privateKey };
}
