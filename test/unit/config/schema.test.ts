import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UserError } from '../../../src/errors.ts';
import {
  CONFIG_API_VERSION,
  CONFIG_KIND,
  defaultConfig,
  mergeConfig,
  overridesFromDocument,
  type ConfigOverrides,
} from '../../../src/config/schema.ts';
import {
  FieldReader,
  validateAddress,
  validateApiServer,
  validateDiscoveryToken,
  validateNodeName,
  validateRequestedLifetime,
  validateTimeout,
} from '../../../src/config/fields.ts';
import { userError } from '../../helpers/assert.ts';

const FILE = '/etc/x.yaml';
const PIN = `sha256:${'ab'.repeat(32)}`;
const PIN2 = `sha256:${'0c'.repeat(32)}`;
const TOKEN = 'abcdef.0123456789abcdef';

function doc(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: CONFIG_API_VERSION, kind: CONFIG_KIND, ...fields };
}

/** The error overridesFromDocument raises for `fields`, checked to name `<FILE>: <path>`. */
function rejects(fields: Record<string, unknown>, path: string, message?: RegExp): UserError {
  const err = userError(() => overridesFromDocument(doc(fields), FILE));
  assert.equal(err.where, `${FILE}: ${path}`, `${JSON.stringify(fields)}: ${err.oneLine()}`);
  if (message) assert.match(err.message, message);
  assert.ok(err.fix, 'every config error says how to fix it');
  return err;
}

const discovery = (fields: Record<string, unknown> = {}) => ({
  apiServer: 'https://10.0.0.1:6443',
  token: TOKEN,
  caCertHashes: [PIN],
  ...fields,
});

test('a document with only apiVersion and kind overrides nothing', () => {
  assert.deepEqual(overridesFromDocument(doc(), FILE), {});
});

test('every field is read into its override', () => {
  const o = overridesFromDocument(
    doc({
      nodeName: 'ip-10-0-0-5.ec2.internal',
      kubeconfig: '/etc/kubernetes/kubelet.conf',
      bootstrapKubeconfig: '/etc/kubernetes/bootstrap-kubelet.conf',
      discovery: {
        apiServer: '10.0.0.1:6443',
        token: TOKEN,
        caCertHashes: [PIN.toUpperCase().replace('SHA256', 'sha256'), PIN2],
        tlsServerName: 'kubernetes',
      },
      certDir: '/var/lib/nodecred/pki',
      rotateCertificates: false,
      rotateServerCertificates: true,
      keyAlgorithm: 'rsa-3072',
      requestedLifetime: '24h',
      rotation: { from: 0.5, to: 0.6 },
      serving: {
        addresses: [
          { type: 'Hostname', address: 'node-1' },
          { type: 'InternalIP', address: '10.0.0.5' },
          { type: 'ExternalIP', address: '2001:db8::5' },
          { type: 'InternalDNS', address: 'node-1.internal' },
          { type: 'ExternalDNS', address: 'node-1.example.com' },
        ],
      },
      clusterCAFile: '/etc/kubernetes/pki/ca.crt',
      timeout: '5m',
      clockSkew: '30s',
      logLevel: 'debug',
    }),
    FILE,
  );
  const expected: ConfigOverrides = {
    nodeName: 'ip-10-0-0-5.ec2.internal',
    kubeconfig: '/etc/kubernetes/kubelet.conf',
    bootstrapKubeconfig: '/etc/kubernetes/bootstrap-kubelet.conf',
    discovery: {
      apiServer: 'https://10.0.0.1:6443',
      token: TOKEN,
      caCertHashes: [PIN, PIN2],
      tlsServerName: 'kubernetes',
    },
    certDir: '/var/lib/nodecred/pki',
    rotateCertificates: false,
    rotateServerCertificates: true,
    keyAlgorithm: 'rsa-3072',
    requestedLifetimeMs: 24 * 3_600_000,
    rotationWindow: { from: 0.5, to: 0.6 },
    servingAddresses: [
      { type: 'Hostname', address: 'node-1' },
      { type: 'InternalIP', address: '10.0.0.5' },
      { type: 'ExternalIP', address: '2001:db8::5' },
      { type: 'InternalDNS', address: 'node-1.internal' },
      { type: 'ExternalDNS', address: 'node-1.example.com' },
    ],
    clusterCAFile: '/etc/kubernetes/pki/ca.crt',
    timeoutMs: 5 * 60_000,
    clockSkewMs: 30_000,
    logLevel: 'debug',
  };
  assert.deepEqual(o, expected);
  // Every override key is a Config key: a typo in the reader would silently set a field nobody reads.
  const configKeys = new Set(Object.keys(defaultConfig()));
  for (const key of Object.keys(o)) assert.ok(configKeys.has(key), key);
});

test('an empty or missing document is reported as missing apiVersion', () => {
  for (const empty of [null, undefined]) {
    const err = userError(() => overridesFromDocument(empty, FILE));
    assert.equal(err.where, `${FILE}: apiVersion`);
    assert.match(err.message, /must be nodecred\.io\/v1alpha1, got nothing/);
    assert.equal(err.code, 'CONFIG_INVALID');
  }
});

test('a document that is not a mapping names the document', () => {
  for (const bad of ['apiVersion: x', 42, true, [doc()], []]) {
    const err = userError(() => overridesFromDocument(bad, FILE));
    assert.equal(err.where, `${FILE}: (document)`);
    assert.match(err.message, /must be a mapping/);
  }
});

test('wrong apiVersion or kind', () => {
  rejects(
    { apiVersion: 'nodecred.io/v1beta1' },
    'apiVersion',
    /must be nodecred\.io\/v1alpha1, got "nodecred\.io\/v1beta1"/,
  );
  rejects({ apiVersion: 1 }, 'apiVersion', /got number 1/);
  rejects({ kind: 'KubeletConfiguration' }, 'kind', /must be NodeCredConfiguration/);
  assert.equal(userError(() => overridesFromDocument({ kind: CONFIG_KIND }, FILE)).where, `${FILE}: apiVersion`);
  assert.equal(userError(() => overridesFromDocument({ apiVersion: CONFIG_API_VERSION }, FILE)).where, `${FILE}: kind`);
});

test('a kubelet configuration passed by mistake is reported as the wrong kind, not as an unknown field', () => {
  const kubelet = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    rotateCertificates: true,
    serverTLSBootstrap: true,
  };
  const err = userError(() => overridesFromDocument(kubelet, FILE));
  assert.equal(err.where, `${FILE}: apiVersion`);
});

test('unknown fields at the top level and nested name their full path', () => {
  const top = rejects({ nodname: 'node-1' }, 'nodname', /unknown field/);
  assert.match(top.fix ?? '', /nodeName/, 'the fix lists the known fields');
  rejects({ rotation: { fro: 0.7 } }, 'rotation.fro', /unknown field/);
  rejects({ rotation: { from: 0.7, jitter: true } }, 'rotation.jitter', /unknown field/);
  rejects({ serving: { adresses: [] } }, 'serving.adresses', /unknown field/);
  rejects(
    {
      serving: {
        addresses: [
          { type: 'InternalIP', address: '10.0.0.1' },
          { type: 'InternalIP', address: '10.0.0.2', typ: 'x' },
        ],
      },
    },
    'serving.addresses[1].typ',
    /unknown field/,
  );
  rejects({ discovery: discovery({ caCertHash: PIN }) }, 'discovery.caCertHash', /unknown field/);
  // Names that exist on every object's prototype are still unknown fields.
  rejects({ toString: 'x' }, 'toString', /unknown field/);
  rejects({ rotation: { constructor: 1 } }, 'rotation.constructor', /unknown field/);
  const oneLine = userError(() => overridesFromDocument(doc({ rotation: { fro: 0.7 } }), FILE)).oneLine();
  assert.ok(
    oneLine.startsWith('/etc/x.yaml: rotation.fro: unknown field (fix: remove it; known fields here: from, to)'),
    oneLine,
  );
});

test('strings: wrong types and empty values', () => {
  for (const field of [
    'kubeconfig',
    'bootstrapKubeconfig',
    'certDir',
    'clusterCAFile',
    'nodeName',
    'keyAlgorithm',
    'logLevel',
  ]) {
    rejects({ [field]: 5 }, field, /must be a non-empty string, got number 5/);
    rejects({ [field]: '' }, field, /non-empty string/);
    rejects({ [field]: '   ' }, field, /non-empty string/);
    rejects({ [field]: null }, field, /got null/);
    rejects({ [field]: ['a'] }, field, /got a list/);
    rejects({ [field]: { a: 1 } }, field, /got a mapping/);
  }
  // Long values are shortened in the message.
  const err = rejects({ logLevel: 'x'.repeat(100) }, 'logLevel');
  assert.ok(err.message.length < 120, err.message);
});

test('booleans must be real booleans', () => {
  for (const field of ['rotateCertificates', 'rotateServerCertificates']) {
    rejects({ [field]: 'true' }, field, /must be true or false, got "true"/);
    rejects({ [field]: 1 }, field, /got number 1/);
    rejects({ [field]: null }, field);
    assert.deepEqual(overridesFromDocument(doc({ [field]: false }), FILE), { [field]: false });
  }
});

test('keyAlgorithm and logLevel are closed sets', () => {
  rejects({ keyAlgorithm: 'dsa-1024' }, 'keyAlgorithm', /unknown key algorithm "dsa-1024"/);
  rejects({ keyAlgorithm: 'ECDSA-P256' }, 'keyAlgorithm');
  for (const alg of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']) {
    assert.equal(overridesFromDocument(doc({ keyAlgorithm: alg }), FILE).keyAlgorithm, alg);
  }
  rejects({ logLevel: 'trace' }, 'logLevel', /unknown level "trace"/);
  for (const level of ['debug', 'info', 'warn', 'error'])
    assert.equal(overridesFromDocument(doc({ logLevel: level }), FILE).logLevel, level);
});

test('durations: Go syntax, named in errors', () => {
  assert.equal(overridesFromDocument(doc({ clockSkew: '0' }), FILE).clockSkewMs, 0);
  assert.equal(overridesFromDocument(doc({ timeout: '1h30m' }), FILE).timeoutMs, 90 * 60_000);
  for (const field of ['requestedLifetime', 'timeout', 'clockSkew']) {
    rejects({ [field]: 3600 }, field, /non-empty string, got number 3600/);
    const err = rejects({ [field]: '15 minutes' }, field, /invalid duration "15 minutes"/);
    assert.equal(err.code, 'USAGE');
  }
});

test('requestedLifetime must be something the API server accepts as spec.expirationSeconds', () => {
  assert.equal(overridesFromDocument(doc({ requestedLifetime: '10m' }), FILE).requestedLifetimeMs, 600_000);
  assert.equal(overridesFromDocument(doc({ requestedLifetime: '8760h' }), FILE).requestedLifetimeMs, 8760 * 3_600_000);
  rejects({ requestedLifetime: '9m59s' }, 'requestedLifetime', /between 10m and/);
  rejects({ requestedLifetime: '0' }, 'requestedLifetime', /between 10m and/);
  // int32 seconds: 2^31 s is one too many.
  rejects({ requestedLifetime: `${2 ** 31}s` }, 'requestedLifetime', /between 10m and/);
  assert.equal(
    overridesFromDocument(doc({ requestedLifetime: `${2 ** 31 - 1}s` }), FILE).requestedLifetimeMs,
    (2 ** 31 - 1) * 1000,
  );
});

test('timeout must be longer than 0', () => {
  rejects({ timeout: '0' }, 'timeout', /longer than 0/);
  rejects({ timeout: '0s' }, 'timeout', /longer than 0/);
});

// 0 made every pass due at once and every CSR wait end at once: a loop of Node GETs and CSR reads per node.
test('recheckInterval must be at least 1s', () => {
  assert.equal(overridesFromDocument(doc({ recheckInterval: '1s' }), FILE).recheckIntervalMs, 1000);
  rejects({ recheckInterval: '0' }, 'recheckInterval', /at least 1s/);
  rejects({ recheckInterval: '500ms' }, 'recheckInterval', /at least 1s/);
});

// They used to be checked only when the daemon bound them, as "--health-listen", a flag nobody had passed, and
// `nodecred reload` (ExecReload=) called a file with a broken address valid.
test('healthListen and secureListen are host:port (or empty), named in the file', () => {
  const o = overridesFromDocument(doc({ healthListen: '[::1]:10271', secureListen: '' }), FILE);
  assert.deepEqual([o.healthListen, o.secureListen], ['[::1]:10271', '']);
  rejects({ healthListen: 'localhost' }, 'healthListen', /is not host:port/);
  rejects({ secureListen: '0.0.0.0:99999' }, 'secureListen', /is not host:port/);
});

// A name that only looked like a signal (SIGRELOAD) passed, and each install then logged "Unknown signal": the
// server the hook should reload kept its old certificate until that expired.
test('hooks.signal must be a signal this system has', () => {
  const hooks = (signal: string) => overridesFromDocument(doc({ hooks: { pidFile: '/run/x.pid', signal } }), FILE);
  assert.equal(hooks('SIGUSR1').hooks?.signal, 'SIGUSR1');
  rejects({ hooks: { pidFile: '/run/x.pid', signal: 'SIGRELOAD' } }, 'hooks.signal', /not a signal/);
  rejects({ hooks: { pidFile: '/run/x.pid', signal: 'HUP' } }, 'hooks.signal', /not a signal/);
});

// The idle guard on a CSR watch is 1.25 × watchTimeout: from about 477h on, that no longer fits a timer, which
// Node then fires after 1 ms. Every watch was taken as half-open at once, its connection dropped, a new one
// made, forever.
test('watchTimeout is between 1s and 24h', () => {
  assert.equal(overridesFromDocument(doc({ watchTimeout: '24h' }), FILE).watchTimeoutMs, 24 * 3_600_000);
  rejects({ watchTimeout: '500ms' }, 'watchTimeout', /between 1s and 24h/);
  rejects({ watchTimeout: '500h' }, 'watchTimeout', /between 1s and 24h/);
});

test('the lifetime and timeout checks are exported for the flags, naming the flag', () => {
  assert.equal(validateRequestedLifetime(600_000, '--requested-lifetime'), 600_000);
  assert.equal(
    userError(() => validateRequestedLifetime(60_000, '--requested-lifetime')).where,
    '--requested-lifetime',
  );
  assert.equal(validateTimeout(1, '--timeout'), 1);
  assert.equal(userError(() => validateTimeout(0, '--timeout')).where, '--timeout');
});

test('rotation window: fractions in (0, 1), to not below from, defaults for the missing end', () => {
  assert.deepEqual(overridesFromDocument(doc({ rotation: {} }), FILE).rotationWindow, { from: 0.7, to: 0.9 });
  assert.deepEqual(overridesFromDocument(doc({ rotation: { from: 0.8 } }), FILE).rotationWindow, {
    from: 0.8,
    to: 0.9,
  });
  assert.deepEqual(overridesFromDocument(doc({ rotation: { to: 0.75 } }), FILE).rotationWindow, {
    from: 0.7,
    to: 0.75,
  });
  assert.deepEqual(overridesFromDocument(doc({ rotation: { from: 0.5, to: 0.5 } }), FILE).rotationWindow, {
    from: 0.5,
    to: 0.5,
  });
  for (const bad of [0, 1, -0.1, 1.5, '0.7', null, true, Number.NaN, Number.POSITIVE_INFINITY]) {
    rejects({ rotation: { from: bad } }, 'rotation.from', /between 0 and 1/);
    rejects({ rotation: { to: bad } }, 'rotation.to', /between 0 and 1/);
  }
  rejects({ rotation: { from: 0.8, to: 0.6 } }, 'rotation.to', /must not be below rotation\.from \(0\.8\)/);
  rejects({ rotation: { from: 0.95 } }, 'rotation.to', /must not be below/);
  rejects({ rotation: 'kubelet' }, 'rotation', /must be a mapping, got "kubelet"/);
  rejects({ rotation: [0.7, 0.9] }, 'rotation', /got a list/);
  rejects({ rotation: null }, 'rotation', /got null/);
});

test('serving addresses: types, IPs and DNS names are checked and named', () => {
  assert.deepEqual(overridesFromDocument(doc({ serving: {} }), FILE), {});
  assert.deepEqual(overridesFromDocument(doc({ serving: { addresses: [] } }), FILE).servingAddresses, []);
  assert.deepEqual(
    overridesFromDocument(doc({ serving: { addresses: [{ type: 'Hostname', address: '10.0.0.5' }] } }), FILE)
      .servingAddresses,
    [{ type: 'Hostname', address: '10.0.0.5' }],
  );
  rejects({ serving: 'x' }, 'serving', /must be a mapping/);
  rejects({ serving: { addresses: 'x' } }, 'serving.addresses', /must be a list/);
  rejects({ serving: { addresses: { type: 'InternalIP' } } }, 'serving.addresses', /must be a list/);
  rejects({ serving: { addresses: [5] } }, 'serving.addresses[0]', /must be a mapping, got number 5/);
  const ok = { type: 'InternalIP', address: '10.0.0.1' };
  rejects(
    { serving: { addresses: [ok, { type: 'InternalIp', address: '10.0.0.2' }] } },
    'serving.addresses[1].type',
    /unknown address type "InternalIp"/,
  );
  rejects({ serving: { addresses: [{ address: '10.0.0.2' }] } }, 'serving.addresses[0].type', /got nothing/);
  rejects({ serving: { addresses: [{ type: 'InternalIP' }] } }, 'serving.addresses[0].address', /got nothing/);
  for (const ip of ['node-1', '10.0.0.256', '010.0.0.1', 'fe80::1%eth0', '10.0.0.0/8', ' 10.0.0.1']) {
    rejects(
      { serving: { addresses: [{ type: 'ExternalIP', address: ip }] } },
      'serving.addresses[0].address',
      /is not an IP address/,
    );
  }
  for (const name of ['node 1', 'node-1.', '-node', 'node..internal', 'nöde', 'a'.repeat(64)]) {
    rejects(
      { serving: { addresses: [{ type: 'InternalDNS', address: name }] } },
      'serving.addresses[0].address',
      /not a valid DNS name/,
    );
    rejects(
      { serving: { addresses: [{ type: 'Hostname', address: name }] } },
      'serving.addresses[0].address',
      /not a valid DNS name/,
    );
  }
});

test('discovery: a valid block is normalised', () => {
  const d = overridesFromDocument(
    doc({ discovery: discovery({ apiServer: 'https://api.example.com:6443/some/path' }) }),
    FILE,
  ).discovery;
  assert.deepEqual(d, { apiServer: 'https://api.example.com:6443', token: TOKEN, caCertHashes: [PIN] });
  assert.equal(
    overridesFromDocument(doc({ discovery: discovery({ apiServer: '[2001:db8::1]:6443' }) }), FILE).discovery
      ?.apiServer,
    'https://[2001:db8::1]:6443',
  );
});

test('discovery requires at least one CA pin', () => {
  rejects(
    { discovery: { apiServer: 'https://10.0.0.1:6443', token: TOKEN } },
    'discovery.caCertHashes',
    /at least one CA hash is required/,
  );
  rejects({ discovery: discovery({ caCertHashes: [] }) }, 'discovery.caCertHashes', /at least one CA hash is required/);
  rejects(
    { discovery: discovery({ caCertHashes: null }) },
    'discovery.caCertHashes',
    /at least one CA hash is required/,
  );
  rejects({ discovery: discovery({ caCertHashes: PIN }) }, 'discovery.caCertHashes', /must be a list/);
  const bad = rejects(
    { discovery: discovery({ caCertHashes: [PIN, 'sha256:1234'] }) },
    'discovery.caCertHashes[1]',
    /invalid CA pin/,
  );
  assert.equal(bad.code, 'CA_PIN_INVALID');
  rejects({ discovery: discovery({ caCertHashes: [PIN, 7] }) }, 'discovery.caCertHashes[1]', /non-empty string/);
});

test('discovery is https only', () => {
  rejects(
    { discovery: discovery({ apiServer: 'http://10.0.0.1:6443' }) },
    'discovery.apiServer',
    /over https, got http:/,
  );
  rejects({ discovery: discovery({ apiServer: 'ftp://10.0.0.1' }) }, 'discovery.apiServer', /over https/);
  rejects({ discovery: discovery({ apiServer: 'https://' }) }, 'discovery.apiServer', /is not a URL/);
  rejects({ discovery: discovery({ apiServer: 'https://exa mple.com' }) }, 'discovery.apiServer', /is not a URL/);
  rejects({ discovery: discovery({ apiServer: undefined }) }, 'discovery.apiServer', /got nothing/);
});

test('discovery token: format checked, and the secret never echoed', () => {
  const secret = 'qwerty.ZYXWVUTSRQPONMLK';
  const err = rejects({ discovery: discovery({ token: secret }) }, 'discovery.token', /must look like/);
  assert.ok(!err.oneLine().includes('ZYXWV'), err.oneLine());
  rejects({ discovery: discovery({ token: undefined }) }, 'discovery.token', /non-empty string/);
  rejects({ discovery: 'token' }, 'discovery', /must be a mapping/);
  rejects({ discovery: discovery({ tlsServerName: '' }) }, 'discovery.tlsServerName', /non-empty string/);
});

test('validateNodeName: DNS subdomains only', () => {
  const valid = [
    'a',
    '1',
    'node-1',
    '1node',
    'ip-10-0-0-1.ec2.internal',
    'a.b.c',
    'a'.repeat(253),
    `${'a'.repeat(63)}.${'b'.repeat(63)}`,
  ];
  for (const name of valid) assert.equal(validateNodeName(name, '--node-name'), name);
  const invalid = ['', 'Node-1', '-a', 'a-', '.a', 'a.', 'a..b', 'a_b', 'a b', 'ノード', 'a'.repeat(254), 'node-1\n'];
  for (const name of invalid) {
    const err = userError(() => validateNodeName(name, '--node-name'));
    assert.equal(err.where, '--node-name');
    assert.equal(err.code, 'CONFIG_INVALID');
  }
  rejects({ nodeName: 'Node_1' }, 'nodeName', /not a valid DNS subdomain/);
});

test('validateApiServer and validateDiscoveryToken on their own', () => {
  assert.equal(validateApiServer('10.0.0.1:6443', 'w'), 'https://10.0.0.1:6443');
  assert.equal(validateApiServer('HTTPS://API.Example.com', 'w'), 'https://api.example.com');
  assert.equal(validateApiServer('https://api.example.com:443', 'w'), 'https://api.example.com');
  assert.equal(userError(() => validateApiServer('http://a', 'flag --api-server')).where, 'flag --api-server');
  assert.equal(validateDiscoveryToken(TOKEN, 'w'), TOKEN);
  for (const bad of [
    'abcdef.0123456789abcde',
    'abcde.0123456789abcdef',
    'abcdef:0123456789abcdef',
    ` ${TOKEN}`,
    'ABCDEF.0123456789abcdef',
  ]) {
    assert.equal(userError(() => validateDiscoveryToken(bad, 'w')).where, 'w');
  }
});

test('validateAddress names the type and the address separately when told to', () => {
  assert.equal(userError(() => validateAddress('Foo', '10.0.0.1', 'w:address', 'w:type')).where, 'w:type');
  assert.equal(userError(() => validateAddress('InternalIP', 'x', 'w:address', 'w:type')).where, 'w:address');
  assert.equal(userError(() => validateAddress('Foo', '10.0.0.1', '--serving-address')).where, '--serving-address');
  assert.deepEqual(validateAddress('ExternalDNS', 'Node-1.Example.com', 'w'), {
    type: 'ExternalDNS',
    address: 'Node-1.Example.com',
  });
});

test('FieldReader builds nested paths', () => {
  const r = new FieldReader(FILE);
  assert.equal(r.where('a'), `${FILE}: a`);
  assert.equal(r.nested('a').nested('b[0]').where('c'), `${FILE}: a.b[0].c`);
});

test('mergeConfig: defaults, then layers in order, later wins', () => {
  const defaults = defaultConfig();
  assert.equal(defaults.certDir, '/var/lib/kubelet/pki');
  assert.equal(defaults.kubeconfig, '/var/lib/kubelet/kubeconfig');
  assert.deepEqual(defaults.rotationWindow, { from: 0.7, to: 0.9 });
  const merged = mergeConfig({ nodeName: 'node-1', certDir: '/file/pki', logLevel: 'warn' }, { certDir: '/flag/pki' });
  assert.deepEqual(merged, { ...defaults, nodeName: 'node-1', certDir: '/flag/pki', logLevel: 'warn' });
  assert.equal(mergeConfig({ nodeName: 'a' }, { nodeName: 'b' }, { nodeName: 'c' }).nodeName, 'c');
});

test('mergeConfig: an undefined value in a later layer does not override', () => {
  const merged = mergeConfig(
    { nodeName: 'node-1', certDir: '/file/pki', requestedLifetimeMs: 3_600_000, bootstrapKubeconfig: '/b.conf' },
    { nodeName: undefined, certDir: undefined, requestedLifetimeMs: undefined, bootstrapKubeconfig: undefined },
  );
  assert.equal(merged.nodeName, 'node-1');
  assert.equal(merged.certDir, '/file/pki');
  assert.equal(merged.requestedLifetimeMs, 3_600_000);
  assert.equal(merged.bootstrapKubeconfig, '/b.conf');
  // false and 0 are values, not absence.
  const falsy = mergeConfig({ nodeName: 'n' }, { rotateCertificates: false, clockSkewMs: 0 });
  assert.equal(falsy.rotateCertificates, false);
  assert.equal(falsy.clockSkewMs, 0);
});

test('mergeConfig: every call starts from fresh defaults', () => {
  const first = mergeConfig({ nodeName: 'node-1' });
  first.rotationWindow.from = 0.1;
  first.servingAddresses.push({ type: 'InternalIP', address: '10.0.0.1' });
  const second = mergeConfig({ nodeName: 'node-1' });
  assert.deepEqual(second.rotationWindow, { from: 0.7, to: 0.9 });
  assert.deepEqual(second.servingAddresses, []);
});

test('mergeConfig: the resulting node name is validated', () => {
  const err = userError(() => mergeConfig({ nodeName: 'Bad_Name' }));
  assert.equal(err.where, '--node-name');
  assert.match(err.message, /"Bad_Name"/);
});

test('a file and flags compose: file overrides defaults, flags override the file', () => {
  const file = overridesFromDocument(doc({ nodeName: 'from-file', certDir: '/file/pki', timeout: '5m' }), FILE);
  const config = mergeConfig(file, { certDir: '/flag/pki', nodeName: undefined });
  assert.equal(config.nodeName, 'from-file');
  assert.equal(config.certDir, '/flag/pki');
  assert.equal(config.timeoutMs, 5 * 60_000);
  assert.equal(config.kubeconfig, '/var/lib/kubelet/kubeconfig');
});

// ── property: untrusted documents never crash the reader ─────────────────────────────────────────────

function neverThrowsButUserError(value: unknown): void {
  try {
    overridesFromDocument(value, FILE);
  } catch (err) {
    if (!(err instanceof UserError))
      throw new Error(`threw ${String(err)} for ${JSON.stringify(value)}`, { cause: err });
    assert.ok(err.where?.startsWith(`${FILE}: `), `where names the file: ${err.where}`);
  }
}

const anyValue = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 2, withNullPrototype: true, withObjectString: true }) },
);

/** Plausible values for a field, mixed with anything at all. */
const near = (...valid: unknown[]) =>
  fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...valid) }, { weight: 1, arbitrary: anyValue });

const addressArb = fc.dictionary(
  fc.constantFrom('type', 'address', 'other'),
  near('Hostname', 'InternalIP', 'ExternalDNS', '10.0.0.1', 'fe80::1%eth0', 'node-1', ''),
  { maxKeys: 3 },
);

const documentArb = fc.record(
  {
    apiVersion: near(CONFIG_API_VERSION),
    kind: near(CONFIG_KIND),
    nodeName: near('node-1', 'Node_1', ''),
    kubeconfig: near('/etc/kubernetes/kubelet.conf'),
    certDir: near('/var/lib/kubelet/pki'),
    rotateCertificates: near(true, false, 'yes'),
    keyAlgorithm: near('ecdsa-p256', 'dsa'),
    requestedLifetime: near('24h', '1m', '0', '99999999999999999999999h'),
    timeout: near('15m', '0', 'x'),
    clockSkew: near('5m', '0'),
    logLevel: near('info', 'trace'),
    rotation: near({ from: 0.7, to: 0.9 }, { from: 0.9, to: 0.7 }, { fro: 1 }),
    serving: fc.oneof(
      anyValue,
      fc.record(
        { addresses: fc.oneof(anyValue, fc.array(fc.oneof(addressArb, anyValue), { maxLength: 3 })) },
        { requiredKeys: [] },
      ),
    ),
    discovery: fc.oneof(
      anyValue,
      fc.record(
        {
          apiServer: near('https://10.0.0.1:6443', 'http://x', 'https://', '[::1'),
          token: near(TOKEN, 'abc'),
          caCertHashes: fc.oneof(anyValue, fc.array(near(PIN, 'sha256:12'), { maxLength: 3 })),
          tlsServerName: near('kubernetes'),
        },
        { requiredKeys: [] },
      ),
    ),
    extra: anyValue,
  },
  { requiredKeys: [] },
);

test('property: any JSON-ish document yields overrides or a UserError naming the file, never another error', () => {
  fc.assert(fc.property(anyValue, neverThrowsButUserError), { numRuns: 300 });
  fc.assert(fc.property(documentArb, neverThrowsButUserError), { numRuns: 1500 });
});
