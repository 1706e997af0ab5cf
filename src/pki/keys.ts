// Private keys: generate, encode the way kubelet writes them, load what kubelet (or a human) left on disk,
// and describe a public key so the approver can police key type and size.

import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { UserError } from '../errors.ts';
import { libraryErrorMessage } from './library-error.ts';
import { encodePem, parsePemBlocks } from './pem.ts';

export const KEY_ALGORITHMS = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
/** kubelet's choice, and the cheapest to generate and to handshake with. */
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = 'ecdsa-p256';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** The PEM labels a private key may arrive under: SEC1, PKCS#1 and PKCS#8. */
const PRIVATE_KEY_LABELS = ['EC PRIVATE KEY', 'RSA PRIVATE KEY', 'PRIVATE KEY'] as const;
const ENCRYPTED_PRIVATE_KEY_LABEL = 'ENCRYPTED PRIVATE KEY';

// OpenSSL names the NIST curves differently from the NIST/JOSE names we expose.
const CURVE_NAMES: Record<string, string> = { prime256v1: 'p256', secp384r1: 'p384', secp521r1: 'p521' };
const NAMED_CURVE_OF: Record<string, string> = { 'ecdsa-p256': 'P-256', 'ecdsa-p384': 'P-384' };

const generateKeyPairAsync = process.getBuiltinModule('node:util').promisify(generateKeyPair);

export function isKeyAlgorithm(value: string): value is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(value);
}

export async function generateKey(algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM): Promise<KeyPair> {
  const namedCurve = NAMED_CURVE_OF[algorithm];
  if (namedCurve !== undefined) return generateKeyPairAsync('ec', { namedCurve });
  return generateKeyPairAsync('rsa', { modulusLength: rsaBits(algorithm), publicExponent: 0x10001 });
}

function rsaBits(algorithm: KeyAlgorithm): number {
  const bits = Number(algorithm.slice('rsa-'.length));
  if (!Number.isInteger(bits)) throw new Error(`not an RSA key algorithm: ${algorithm}`);
  return bits;
}

/** PEM as kubelet writes it: "EC PRIVATE KEY" (SEC1) or "RSA PRIVATE KEY" (PKCS#1). */
export function encodePrivateKeyPem(privateKey: KeyObject): string {
  if (privateKey.type !== 'private') throw new Error('encodePrivateKeyPem needs a private key');
  switch (privateKey.asymmetricKeyType) {
    case 'ec':
      return encodePem('EC PRIVATE KEY', privateKey.export({ format: 'der', type: 'sec1' }));
    case 'rsa':
      return encodePem('RSA PRIVATE KEY', privateKey.export({ format: 'der', type: 'pkcs1' }));
    default:
      throw unsupportedKeyType(privateKey);
  }
}

/**
 * Loads the one private key in `text` (SEC1, PKCS#1 or PKCS#8 PEM). Other blocks are skipped, so a
 * kubelet-style "certificate chain then key" file works. Only EC and RSA keys are accepted: nothing else
 * can be put in a CSR the Kubernetes signers accept. `source` names the file in error messages.
 */
export function loadPrivateKeyPem(text: string, source?: string): KeyObject {
  const blocks = parsePemBlocks(text, 'private key file', source);
  if (blocks.some((block) => block.label === ENCRYPTED_PRIVATE_KEY_LABEL)) {
    throw new UserError('the private key is encrypted; nodecred needs an unencrypted key', {
      where: source,
      fix: 'decrypt it first, e.g. `openssl pkey -in <file> -out <file>`',
      code: 'KEY_ENCRYPTED',
    });
  }
  const keyBlocks = blocks.filter((block) => (PRIVATE_KEY_LABELS as readonly string[]).includes(block.label));
  if (keyBlocks.length !== 1) {
    const found = keyBlocks.length === 0 ? 'no private key' : `${keyBlocks.length} private keys`;
    throw new UserError(`expected exactly one PEM private key, found ${found}`, {
      where: source,
      fix: 'provide a file with one "EC PRIVATE KEY", "RSA PRIVATE KEY" or "PRIVATE KEY" block',
      code: 'KEY_NOT_FOUND',
    });
  }
  const privateKey = decodePrivateKey(keyBlocks[0]!.pem, source);
  if (privateKey.asymmetricKeyType !== 'ec' && privateKey.asymmetricKeyType !== 'rsa') {
    throw unsupportedKeyType(privateKey, source);
  }
  return privateKey;
}

function decodePrivateKey(pem: string, source: string | undefined): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new UserError(`the private key could not be decoded: ${libraryErrorMessage(cause)}`, {
      where: source,
      fix: 'provide an unencrypted SEC1, PKCS#1 or PKCS#8 PEM private key',
      code: 'KEY_INVALID',
      cause,
    });
  }
}

/**
 * The algorithm of a key in our vocabulary: one of KEY_ALGORITHMS for the keys nodecred can use, and for
 * others a descriptive string in the same style ("ecdsa-p521", "rsa-1024", "ed25519") so the approver can
 * name what it refused. Works for private and public keys.
 */
export function describeKeyAlgorithm(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    const curve = details.namedCurve ?? 'unknown-curve';
    return `ecdsa-${CURVE_NAMES[curve] ?? curve}`;
  }
  if (type === 'rsa' || type === 'rsa-pss') return `${type}-${details.modulusLength ?? 'unknown-size'}`;
  return type;
}

/** The key's algorithm if nodecred supports it, else undefined. */
export function supportedKeyAlgorithm(key: KeyObject): KeyAlgorithm | undefined {
  const described = describeKeyAlgorithm(key);
  return isKeyAlgorithm(described) ? described : undefined;
}

/** The public half of a private key; a public key is returned as is. */
export function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}

/** Encoded public keys by key: exporting costs tens of microseconds and the same keys are compared often. */
const spkiOf = new WeakMap<KeyObject, Buffer>();

/** DER SubjectPublicKeyInfo of a (public or private) key. Shared: callers must not modify it. */
export function spkiDer(key: KeyObject): Buffer {
  let der = spkiOf.get(key);
  if (!der) {
    der = publicKeyOf(key).export({ format: 'der', type: 'spki' });
    spkiOf.set(key, der);
  }
  return der;
}

/** True when both keys (public or private) have the same public key. */
export function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  return spkiDer(a).equals(spkiDer(b));
}

function unsupportedKeyType(key: KeyObject, source?: string): UserError {
  return new UserError(`unsupported private key type ${describeKeyAlgorithm(key)}; nodecred uses EC and RSA keys`, {
    where: source,
    fix: `replace it with a key of one of ${KEY_ALGORITHMS.join(', ')}`,
    code: 'KEY_UNSUPPORTED',
  });
}
