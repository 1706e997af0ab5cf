// A self-signed serving pair for the kubelet to start with on first boot, before the node's real serving
// certificate can exist (the CSR needs the Node object, which only the running kubelet creates). It is what
// the kubelet makes for itself when it has neither tlsCertFile nor serverTLSBootstrap: nobody trusts it, so
// an API server with --kubelet-certificate-authority refuses it (logs, exec, proxy fail loudly, never
// silently insecure) until nodecred installs the real certificate and the kubelet reloads it.
import { randomBytes, type KeyObject } from 'node:crypto';
import { generateKey, spkiDer } from './keys.ts';
import { encodePem } from './pem.ts';
import { OID } from './x509-read.ts';
import { buildCertificateDer, seq, subjectAltNameExtension, type NameRdns } from './x509-write.ts';
import { encodeOid, encodeTlv, TAG } from './der.ts';

/** The subject's O marks the placeholder, so `openssl s_client` or `nodecred status` shows what it is. */
export const PLACEHOLDER_ORGANIZATION = 'nodecred:self-signed-placeholder';
const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
/** keyUsage digitalSignature: a BIT STRING of one byte with 7 unused bits, bit 0 set. */
const DIGITAL_SIGNATURE = encodeTlv(TAG.BIT_STRING, Buffer.from([0x07, 0x80]));

export async function selfSignedServingPair(
  nodeName: string,
  now: Date,
): Promise<{ chainPem: string; key: KeyObject }> {
  const { privateKey } = await generateKey('ecdsa-p256');
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // a positive INTEGER
  serial[0]! |= 0x01; // and minimally encoded (no leading zero byte)
  const name: NameRdns = [[[OID.commonName, nodeName]], [[OID.organization, PLACEHOLDER_ORGANIZATION]]];
  const der = buildCertificateDer(
    {
      serial,
      subject: name,
      issuer: name,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + VALIDITY_MS),
      publicSpkiDer: spkiDer(privateKey),
      extensions: [
        { id: OID.basicConstraints, critical: true, value: seq() },
        { id: OID.keyUsage, critical: true, value: DIGITAL_SIGNATURE },
        { id: OID.extendedKeyUsage, critical: false, value: seq(encodeOid(SERVER_AUTH)) },
        subjectAltNameExtension({ dnsNames: [nodeName], ipAddresses: [] }),
      ],
    },
    privateKey,
    'ecdsa-p256',
  );
  return { chainPem: encodePem('CERTIFICATE', der), key: privateKey };
}
