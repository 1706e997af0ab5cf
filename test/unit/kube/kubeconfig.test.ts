import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { UserError } from '../../../src/errors.ts';
import { parseKubeconfig, parseKubeconfigCluster } from '../../../src/kube/kubeconfig.ts';
import { renderExecKubeconfig, renderNodeKubeconfig } from '../../../src/kube/kubeconfig-render.ts';
import { userError } from '../../helpers/assert.ts';

const FILE = '/etc/kubernetes/bootstrap-kubelet.conf';
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcdummy\n-----END EC PRIVATE KEY-----\n';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const SECRET = 'abcdef.0123456789abcdef';

function config(user: Record<string, unknown>, cluster: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'kubernetes',
        cluster: { server: 'https://10.0.0.1:6443', 'certificate-authority-data': b64(CA_PEM), ...cluster },
      },
    ],
    contexts: [
      {
        name: 'tls-bootstrap-token-user@kubernetes',
        context: { cluster: 'kubernetes', user: 'tls-bootstrap-token-user' },
      },
    ],
    'current-context': 'tls-bootstrap-token-user@kubernetes',
    users: [{ name: 'tls-bootstrap-token-user', user }],
  };
}

function parse(obj: unknown, file = FILE) {
  return parseKubeconfig(stringify(obj), file);
}

test('kubeadm bootstrap kubeconfig with a token', () => {
  const c = parse(config({ token: SECRET }));
  assert.equal(c.file, FILE);
  assert.equal(c.contextName, 'tls-bootstrap-token-user@kubernetes');
  assert.equal(c.userName, 'tls-bootstrap-token-user');
  assert.deepEqual(c.cluster, { name: 'kubernetes', server: 'https://10.0.0.1:6443', caData: CA_PEM });
  assert.deepEqual(c.credential, { kind: 'token', token: SECRET });
});

test('relative paths resolve against the kubeconfig directory', () => {
  const c = parse(
    config(
      { 'client-certificate': 'pki/kubelet-client-current.pem', 'client-key': '/abs/key.pem' },
      { 'certificate-authority-data': null, 'certificate-authority': '../ca.crt', 'tls-server-name': 'kubernetes' },
    ),
    '/etc/kubernetes/kubelet.conf',
  );
  assert.deepEqual(c.credential, {
    kind: 'clientCert',
    certPath: '/etc/kubernetes/pki/kubelet-client-current.pem',
    keyPath: '/abs/key.pem',
  });
  assert.equal(c.cluster.caPath, '/etc/ca.crt');
  assert.equal(c.cluster.caData, undefined);
  assert.equal(c.cluster.tlsServerName, 'kubernetes');
  const t = parse(config({ tokenFile: 'token' }), '/var/lib/nodecred/boot.conf');
  assert.deepEqual(t.credential, { kind: 'token', tokenPath: '/var/lib/nodecred/token' });
});

test('inline client certificate and key data are decoded', () => {
  const c = parse(config({ 'client-certificate-data': b64(CA_PEM), 'client-key-data': b64(KEY_PEM) }));
  assert.deepEqual(c.credential, { kind: 'clientCert', certData: CA_PEM, keyData: KEY_PEM });
});

test('exec command: bare names stay for PATH lookup, names with a separator resolve against the kubeconfig dir', () => {
  const exec = (command: string) =>
    parse(
      config({
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command,
          args: ['token', '-i', 'c1'],
          env: [{ name: 'AWS_PROFILE', value: 'node' }],
          installHint: 'install aws-cli',
          provideClusterInfo: true,
        },
      }),
      '/etc/eks/kubeconfig',
    ).credential;
  assert.deepEqual(exec('aws'), {
    kind: 'exec',
    command: 'aws',
    args: ['token', '-i', 'c1'],
    env: [{ name: 'AWS_PROFILE', value: 'node' }],
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    installHint: 'install aws-cli',
    provideClusterInfo: true,
    where: '/etc/eks/kubeconfig: users[0].user.exec',
  });
  assert.equal((exec('./bin/plugin') as { command: string }).command, '/etc/eks/bin/plugin');
  assert.equal((exec('bin/plugin') as { command: string }).command, '/etc/eks/bin/plugin');
  assert.equal((exec('/usr/bin/plugin') as { command: string }).command, '/usr/bin/plugin');
});

test('exec: unsupported apiVersion and interactiveMode Always are rejected', () => {
  const e1 = userError(() =>
    parse(config({ exec: { apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' } })),
  );
  assert.equal(e1.where, `${FILE}: users[0].user.exec.apiVersion`);
  const e2 = userError(() =>
    parse(config({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'x', interactiveMode: 'Always' } })),
  );
  assert.equal(e2.where, `${FILE}: users[0].user.exec.interactiveMode`);
  const e3 = userError(() => parse(config({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: '' } })));
  assert.equal(e3.where, `${FILE}: users[0].user.exec.command`);
});

test('insecure-skip-tls-verify: true is refused with a fix', () => {
  const e = userError(() => parse(config({ token: SECRET }, { 'insecure-skip-tls-verify': true })));
  assert.equal(e.code, 'KUBECONFIG_INSECURE');
  assert.equal(e.where, `${FILE}: clusters[0].cluster.insecure-skip-tls-verify`);
  assert.match(e.fix ?? '', /certificate-authority/);
  // false is harmless
  assert.equal(
    parse(config({ token: SECRET }, { 'insecure-skip-tls-verify': false })).cluster.server,
    'https://10.0.0.1:6443',
  );
});

test('errors name the file and yaml path and never echo the token', () => {
  const e = userError(() => parse(config({ token: 123456 })));
  assert.equal(e.where, `${FILE}: users[0].user.token`);
  assert.ok(e.fix);
  const secretish = 'abcdef.0123456789abcdef';
  for (const bad of [
    `users:\n- name: u\n  user:\n    token: ${secretish}\n   bad: indent\n`,
    `users: [{name: u, user: {token: ${secretish}}`,
    `users:\n- name: u\n  user:\n    token: ${secretish}\n    token: ${secretish}\n`,
  ]) {
    const y = userError(() => parseKubeconfig(bad, FILE));
    assert.equal(y.code, 'KUBECONFIG_YAML');
    assert.ok(!y.oneLine().includes('0123456789abcdef'), y.oneLine());
  }
  const k = userError(() =>
    parse(config({ 'client-certificate-data': b64(CA_PEM), 'client-key-data': '!!!not base64 SECRETKEY' })),
  );
  assert.equal(k.where, `${FILE}: users[0].user.client-key-data`);
  assert.ok(!k.oneLine().includes('SECRETKEY'));
});

test('context, cluster and user resolution problems', () => {
  const noCurrent = { ...config({ token: SECRET }), 'current-context': '' };
  assert.equal(userError(() => parse(noCurrent)).where, `${FILE}: current-context`);
  assert.equal(
    parseKubeconfig(stringify(noCurrent), FILE, { context: 'tls-bootstrap-token-user@kubernetes' }).userName,
    'tls-bootstrap-token-user',
  );
  const missingUser = { ...config({ token: SECRET }), users: [] };
  const e = userError(() => parse(missingUser));
  assert.equal(e.where, `${FILE}: contexts[0].context.user`);
  assert.match(e.message, /user "tls-bootstrap-token-user" is not defined in users/);
  const dup = config({ token: SECRET });
  (dup.users as unknown[]).push({ name: 'tls-bootstrap-token-user', user: { token: 'x' } });
  assert.equal(userError(() => parse(dup)).where, `${FILE}: users[1].name`);
  assert.equal(userError(() => parseKubeconfig('', FILE)).message, 'is empty');
  assert.equal(userError(() => parseKubeconfig('- a\n- b\n', FILE)).message, 'must be a YAML mapping, got a list');
});

test('ambiguous or unsupported credentials and servers are refused', () => {
  const cases: Array<[Record<string, unknown>, Record<string, unknown>, string]> = [
    [{ token: SECRET, 'client-certificate': 'c', 'client-key': 'k' }, {}, 'users[0].user'],
    [{ token: SECRET, tokenFile: 't' }, {}, 'users[0].user'],
    [{ 'client-certificate': 'c' }, {}, 'users[0].user.client-key'],
    [{ 'client-certificate': 'c', 'client-certificate-data': b64(CA_PEM), 'client-key': 'k' }, {}, 'users[0].user'],
    [{}, {}, 'users[0].user'],
    [{ username: 'admin', password: 'pw' }, {}, 'users[0].user'],
    [{ 'auth-provider': { name: 'gcp' } }, {}, 'users[0].user.auth-provider'],
    [{ token: SECRET }, { server: 'http://10.0.0.1:8080' }, 'clusters[0].cluster.server'],
    [{ token: SECRET }, { server: '' }, 'clusters[0].cluster.server'],
    [{ token: SECRET }, { 'certificate-authority': '/ca.crt' }, 'clusters[0].cluster'],
    [
      { token: SECRET },
      { 'certificate-authority-data': b64('not a pem') },
      'clusters[0].cluster.certificate-authority-data',
    ],
  ];
  for (const [user, cluster, at] of cases) {
    const e = userError(() => parse(config(user, cluster)));
    assert.equal(e.where, `${FILE}: ${at}`, JSON.stringify(user));
    assert.ok(e.fix, e.message);
  }
});

test('renderNodeKubeconfig round-trips through the parser (kubelet layout)', () => {
  const pem = '/var/lib/kubelet/pki/kubelet-client-current.pem';
  const text = renderNodeKubeconfig({
    server: 'https://api.example:6443',
    caData: CA_PEM + CA_PEM,
    tlsServerName: 'kubernetes',
    certPath: pem,
    keyPath: pem,
  });
  const c = parseKubeconfig(text, '/etc/kubernetes/kubelet.conf');
  assert.equal(c.contextName, 'default-context');
  assert.equal(c.userName, 'default-auth');
  assert.equal(c.namespace, 'default');
  assert.deepEqual(c.cluster, {
    name: 'default-cluster',
    server: 'https://api.example:6443',
    caData: CA_PEM + CA_PEM,
    tlsServerName: 'kubernetes',
  });
  assert.deepEqual(c.credential, { kind: 'clientCert', certPath: pem, keyPath: pem });
  assert.match(text, /^ {4}client-certificate: \/var\/lib\/kubelet\/pki\/kubelet-client-current\.pem$/m);
});

test('renderExecKubeconfig round-trips through the parser', () => {
  const text = renderExecKubeconfig({
    server: 'https://eks.example',
    caData: CA_PEM,
    command: 'aws',
    args: ['eks', 'get-token', '--cluster-name', 'c1'],
    env: [{ name: 'AWS_REGION', value: 'eu-west-1' }],
    provideClusterInfo: true,
    clusterName: 'c1',
    userName: 'node',
  });
  const c = parseKubeconfig(text, '/etc/eks/kubeconfig');
  assert.equal(c.cluster.name, 'c1');
  assert.deepEqual(c.credential, {
    kind: 'exec',
    command: 'aws',
    args: ['eks', 'get-token', '--cluster-name', 'c1'],
    env: [{ name: 'AWS_REGION', value: 'eu-west-1' }],
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    installHint: undefined,
    provideClusterInfo: true,
    where: '/etc/eks/kubeconfig: users[0].user.exec',
  });
  assert.match(text, /interactiveMode: Never/);
});

test('parseKubeconfigCluster reads the kubeadm cluster-info kubeconfig (no users, no contexts)', () => {
  const text =
    `apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ${b64(CA_PEM)}\n` +
    '    server: https://10.0.0.1:6443\n  name: ""\ncontexts: null\ncurrent-context: ""\nkind: Config\n' +
    'preferences: {}\nusers: null\n';
  assert.deepEqual(parseKubeconfigCluster(text, 'cluster-info'), {
    name: '',
    server: 'https://10.0.0.1:6443',
    caData: CA_PEM,
  });
});

// ---------------------------------------------------------------------------------------------------------
// Properties: whatever the input, the parser returns or throws a one-line UserError.

function onlyUserErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    assert.ok(!err.oneLine().includes('\n'), err.oneLine());
    return false;
  }
}

const VALID_USERS = [
  { token: SECRET },
  { tokenFile: 'tok' },
  { 'client-certificate': 'c.pem', 'client-key': 'k.pem' },
  { 'client-certificate-data': b64(CA_PEM), 'client-key-data': b64(KEY_PEM) },
  {
    exec: {
      apiVersion: 'client.authentication.k8s.io/v1',
      command: './p',
      args: ['a'],
      env: [{ name: 'A', value: 'b' }],
      provideClusterInfo: true,
      interactiveMode: 'Never',
    },
  },
];

function leafPaths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') return [prefix];
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
  return [prefix, ...entries.flatMap(([k, x]) => leafPaths(x, [...prefix, k]))];
}

function setAt(root: unknown, p: (string | number)[], value: unknown): unknown {
  if (p.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of p.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  cur[p[p.length - 1] as string | number] = value;
  return copy;
}

const junk = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    '',
    ' ',
    '../x',
    'https://h',
    'http://h',
    '::',
    b64(CA_PEM),
    'client.authentication.k8s.io/v1beta1',
    'Always',
    true,
    null,
  ),
);

test('property: mutated kubeconfigs only ever produce UserErrors', () => {
  let ok = 0;
  fc.assert(
    fc.property(
      fc.nat(VALID_USERS.length - 1),
      fc.array(fc.tuple(fc.nat(), junk), { maxLength: 3 }),
      fc.boolean(),
      (u, mutations, asJson) => {
        let obj: unknown = config(VALID_USERS[u] as Record<string, unknown>);
        for (const [at, value] of mutations) {
          const paths = leafPaths(obj);
          obj = setAt(obj, paths[at % paths.length] as (string | number)[], value);
        }
        const text = asJson ? (JSON.stringify(obj) ?? 'null') : stringify(obj);
        if (onlyUserErrors(() => parseKubeconfig(text, FILE))) ok++;
        onlyUserErrors(() => parseKubeconfigCluster(text, 'cluster-info'));
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(ok > 10, `only ${ok} mutated configs parsed; the generator is too destructive`);
});

test('property: arbitrary YAML-ish text only ever produces UserErrors', () => {
  const yamlish = fc.string({
    unit: fc.constantFrom(...'ab: -\n\t"\'{}[],&*!|>%@`#?~=.0123456789'.split('')),
    maxLength: 60,
  });
  fc.assert(
    fc.property(fc.oneof(yamlish, fc.string({ unit: 'binary', maxLength: 60 })), (text) => {
      onlyUserErrors(() => parseKubeconfig(text, FILE));
    }),
    { numRuns: 300 },
  );
});
