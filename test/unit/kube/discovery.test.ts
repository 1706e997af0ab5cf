import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  pinnedCaCertificates,
  clusterInfoJwsKey,
  extractClusterCa,
  parseDiscoveryToken,
  signClusterInfo,
  verifyClusterInfoJws,
} from '../../../src/kube/discovery.ts';
import { userError } from '../../helpers/assert.ts';

test('parseDiscoveryToken splits id and secret and never echoes a bad secret', () => {
  assert.deepEqual(parseDiscoveryToken('abcdef.0123456789abcdef'), {
    tokenId: 'abcdef',
    tokenSecret: '0123456789abcdef',
  });
  assert.deepEqual(parseDiscoveryToken(' abcdef.0123456789abcdef\n'), {
    tokenId: 'abcdef',
    tokenSecret: '0123456789abcdef',
  });
  for (const bad of [
    'ABCDEF.0123456789abcdef',
    'abcde.0123456789abcdef',
    'abcdef.0123456789abcdeX',
    'abcdef:0123456789abcdef',
    'abcdef.0123456789abcdef0',
    '',
  ]) {
    const e = userError(() => parseDiscoveryToken(bad, '--token'));
    assert.equal(e.where, '--token');
    assert.equal(e.code, 'DISCOVERY_TOKEN_INVALID');
    assert.ok(!e.oneLine().includes('0123456789abcde'), e.oneLine());
  }
});

// Vectors from Kubernetes' own tests of the detached JWS (k8s.io/cluster-bootstrap token/jws, jws_test.go).
const K8S_CONTENT = 'Hello from the other side. I must have called a thousand times.';
const K8S_VECTORS: Array<[content: string, secret: string, jws: string]> = [
  [
    K8S_CONTENT,
    'my voice is my passcode',
    'eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8',
  ],
  [
    '',
    'my voice is my passcode',
    'eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk',
  ],
  [
    K8S_CONTENT,
    'my voice is my passcode. my voice is my passcode',
    'eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..SFoKn0-YxqnvpSExt4LuCZ_7pvIBdX3SoUO_NsTpkdg',
  ],
  [
    '',
    'my voice is my passcode. my voice is my passcode',
    'eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..kzZha466Sbz_vFhUBjjYp2rl3F7yHgdDdUIBGxQg4js',
  ],
];

test('signClusterInfo and verifyClusterInfoJws agree with the Kubernetes test vectors', () => {
  for (const [content, secret, jws] of K8S_VECTORS) {
    assert.equal(signClusterInfo(content, 'joshua', secret), jws);
    verifyClusterInfoJws({ kubeconfigText: content, jwsDetached: jws, tokenId: 'joshua', tokenSecret: secret });
  }
  assert.equal(clusterInfoJwsKey('abcdef'), 'jws-kubeconfig-abcdef');
});

test('verifyClusterInfoJws: missing signature, wrong secret, wrong kid and malformed JWS are distinct', () => {
  const text = 'apiVersion: v1\nkind: Config\n';
  const good = signClusterInfo(text, 'abcdef', '0123456789abcdef');
  const base = { kubeconfigText: text, tokenId: 'abcdef', tokenSecret: '0123456789abcdef' };

  const none = userError(() => verifyClusterInfoJws({ ...base, jwsDetached: undefined }));
  assert.equal(none.code, 'DISCOVERY_NO_SIGNATURE');
  assert.equal(
    none.message,
    'no signature for token id abcdef in cluster-info (token unknown, expired, or bootstrapsigner not running)',
  );
  assert.equal(none.where, 'configmap kube-public/cluster-info: data.jws-kubeconfig-abcdef');

  const wrong = userError(() => verifyClusterInfoJws({ ...base, jwsDetached: good, tokenSecret: 'fedcba9876543210' }));
  assert.equal(wrong.code, 'DISCOVERY_SIGNATURE_MISMATCH');
  assert.equal(wrong.message, 'signature does not match (wrong token secret or tampered cluster-info)');
  assert.ok(!wrong.oneLine().includes('fedcba9876543210') && !wrong.oneLine().includes('0123456789abcdef'));

  const tampered = userError(() => verifyClusterInfoJws({ ...base, kubeconfigText: `${text} `, jwsDetached: good }));
  assert.equal(tampered.code, 'DISCOVERY_SIGNATURE_MISMATCH');

  const otherKid = userError(() =>
    verifyClusterInfoJws({ ...base, jwsDetached: signClusterInfo(text, 'zzzzzz', '0123456789abcdef') }),
  );
  assert.equal(otherKid.code, 'DISCOVERY_SIGNATURE_MISMATCH');

  const sig = good.split('..')[1];
  const hdr = (h: unknown) => Buffer.from(JSON.stringify(h)).toString('base64url');
  for (const bad of [
    'abc',
    `${hdr({ alg: 'none', kid: 'abcdef' })}..`,
    `${hdr({ alg: 'HS512', kid: 'abcdef' })}..${sig}`,
    `${hdr({ alg: 'HS256', kid: 'abcdef', crit: ['b64'], b64: false })}..${sig}`,
    `${good.split('..')[0]}.${Buffer.from(text).toString('base64url')}.${sig}`,
    `${good}=`,
    `!!..${sig}`,
  ]) {
    assert.equal(
      userError(() => verifyClusterInfoJws({ ...base, jwsDetached: bad })).code,
      'DISCOVERY_SIGNATURE_MALFORMED',
      bad,
    );
  }
});

test('property: sign → verify round-trips, and any single bit flip is rejected', () => {
  const id = fc.stringMatching(/^[a-z0-9]{6}$/);
  const secret = fc.stringMatching(/^[a-z0-9]{16}$/);
  const text = fc.string({ unit: 'binary-ascii', maxLength: 200 });
  fc.assert(
    fc.property(
      id,
      secret,
      text,
      fc.nat(),
      fc.nat(6),
      fc.boolean(),
      (tokenId, tokenSecret, kubeconfigText, pos, bit, flipText) => {
        const jws = signClusterInfo(kubeconfigText, tokenId, tokenSecret);
        verifyClusterInfoJws({ kubeconfigText, jwsDetached: jws, tokenId, tokenSecret });
        const flip = (s: string): string => {
          const i = pos % s.length;
          return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << bit)) + s.slice(i + 1);
        };
        if (flipText && kubeconfigText.length > 0) {
          const e = userError(() =>
            verifyClusterInfoJws({ kubeconfigText: flip(kubeconfigText), jwsDetached: jws, tokenId, tokenSecret }),
          );
          assert.equal(e.code, 'DISCOVERY_SIGNATURE_MISMATCH');
        } else {
          const e = userError(() =>
            verifyClusterInfoJws({ kubeconfigText, jwsDetached: flip(jws), tokenId, tokenSecret }),
          );
          assert.match(e.code, /^DISCOVERY_SIGNATURE_(MISMATCH|MALFORMED)$/);
        }
      },
    ),
    { numRuns: 300 },
  );
});

const CA1 = '-----BEGIN CERTIFICATE-----\nMIIBone\n-----END CERTIFICATE-----';
const CA2 = '-----BEGIN CERTIFICATE-----\nMIIBtwo\n-----END CERTIFICATE-----';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('extractClusterCa reads the kubeadm cluster-info kubeconfig', () => {
  const text =
    `apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ${b64(`${CA1}\n`)}\n` +
    '    server: https://10.0.0.1:6443\n  name: ""\ncontexts: null\ncurrent-context: ""\nkind: Config\n' +
    'preferences: {}\nusers: null\n';
  assert.deepEqual(extractClusterCa(text), { caPem: `${CA1}\n`, server: 'https://10.0.0.1:6443', clusterName: '' });
  const noCa = userError(() => extractClusterCa('clusters:\n- name: k\n  cluster:\n    server: https://x\n'));
  assert.equal(noCa.code, 'DISCOVERY_NO_CA');
  const fileCa = userError(() =>
    extractClusterCa(
      'clusters:\n- name: k\n  cluster:\n    server: https://x\n    certificate-authority: /etc/ca.crt\n',
    ),
  );
  assert.equal(fileCa.code, 'DISCOVERY_NO_CA');
  const garbage = userError(() => extractClusterCa('{'));
  assert.equal(garbage.where, 'configmap kube-public/cluster-info: data.kubeconfig');
});

test('pinnedCaCertificates keeps only the certificates matching a pin and reports found vs expected otherwise', () => {
  const fakeHash = (pem: string): string => `sha256:${createHash('sha256').update(pem).digest('hex')}`;
  const h1 = fakeHash(CA1);
  const h2 = fakeHash(CA2);
  const other = `sha256:${'0'.repeat(64)}`;
  assert.deepEqual(pinnedCaCertificates([CA1], [h1], fakeHash), { pinned: [CA1], unpinned: 0 });
  // A bundle of a pinned and an unpinned CA: only the pinned one is trusted, whichever comes first.
  assert.deepEqual(
    pinnedCaCertificates([`${CA1}\n${CA2}\n`], [other, h2.toUpperCase().replace('SHA256', 'sha256')], fakeHash),
    { pinned: [CA2], unpinned: 1 },
  );
  assert.deepEqual(pinnedCaCertificates([`${CA2}\n${CA1}\n`], [h1], fakeHash), { pinned: [CA1], unpinned: 1 });
  assert.deepEqual(pinnedCaCertificates([CA1, CA2], [h2, h1], fakeHash), { pinned: [CA1, CA2], unpinned: 0 });
  const miss = userError(() => pinnedCaCertificates([CA1, CA2], [other], fakeHash));
  assert.equal(miss.code, 'DISCOVERY_PIN_MISMATCH');
  assert.ok(miss.message.includes(h1) && miss.message.includes(h2) && miss.message.includes(other), miss.message);
  assert.equal(userError(() => pinnedCaCertificates([CA1], ['sha256:abc'], fakeHash)).code, 'DISCOVERY_PIN_INVALID');
  assert.equal(userError(() => pinnedCaCertificates([CA1], [], fakeHash)).code, 'DISCOVERY_PIN_MISSING');
  assert.equal(userError(() => pinnedCaCertificates(['no pem here'], [h1], fakeHash)).code, 'DISCOVERY_PIN_MISMATCH');
  const broken = userError(() =>
    pinnedCaCertificates([CA1], [h1], () => {
      throw new Error('asn1');
    }),
  );
  assert.equal(broken.code, 'DISCOVERY_CA_INVALID');
});
