import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UserError } from '../../../src/errors.ts';
import type { ExecCredentialSpec } from '../../../src/kube/kubeconfig.ts';
import {
  ExecCredentialCache,
  credentialIsFresh,
  parseExecCredential,
  runExecPlugin,
  type ExecCredential,
} from '../../../src/kube/exec-credential.ts';

const V1B1 = 'client.authentication.k8s.io/v1beta1';
const TOKEN = 'k8s-aws-v1.SECRETTOKENVALUE';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nSECRETKEYVALUE\n-----END PRIVATE KEY-----\n';

const cred = (status: unknown, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ apiVersion: V1B1, kind: 'ExecCredential', status, ...extra });

async function userError(fn: () => unknown): Promise<UserError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  assert.fail('expected a UserError');
}

test('parses a token credential with an expiry (v1beta1) and a cert/key credential (v1)', () => {
  assert.deepEqual(parseExecCredential(cred({ token: TOKEN, expirationTimestamp: '2030-01-02T03:04:05Z' })), {
    token: TOKEN,
    expirationTimestamp: new Date('2030-01-02T03:04:05Z'),
  });
  const v1 = JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    spec: { interactive: false },
    status: { clientCertificateData: CERT, clientKeyData: KEY, expirationTimestamp: '2030-01-02T03:04:05.123+02:00' },
  });
  const c = parseExecCredential(v1, { expectedApiVersion: 'client.authentication.k8s.io/v1' });
  assert.equal(c.clientCertificateData, CERT);
  assert.equal(c.clientKeyData, KEY);
  assert.equal(c.expirationTimestamp?.toISOString(), '2030-01-02T01:04:05.123Z');
});

test('invalid outputs are UserErrors naming the field, never the secret', async () => {
  const cases: Array<[string, string | RegExp]> = [
    [`not json ${TOKEN}`, 'exec credential plugin output'],
    ['[1]', 'exec credential plugin output'],
    [cred({ token: TOKEN }, { kind: 'Secret' }), 'exec credential plugin output: kind'],
    [
      cred({ token: TOKEN }, { apiVersion: 'client.authentication.k8s.io/v1alpha1' }),
      'exec credential plugin output: apiVersion',
    ],
    [JSON.stringify({ apiVersion: V1B1, kind: 'ExecCredential' }), 'exec credential plugin output: status'],
    [cred('x'), 'exec credential plugin output: status'],
    [cred({}), 'exec credential plugin output: status'],
    [cred({ token: 42 }), 'exec credential plugin output: status.token'],
    [cred({ token: `${TOKEN} ${TOKEN}` }), 'exec credential plugin output: status.token'],
    [cred({ clientCertificateData: CERT }), 'exec credential plugin output: status.clientKeyData'],
    [cred({ clientKeyData: KEY }), 'exec credential plugin output: status.clientCertificateData'],
    [
      cred({ clientCertificateData: CERT, clientKeyData: 'SECRETKEYVALUE' }),
      'exec credential plugin output: status.clientKeyData',
    ],
    [
      cred({ token: TOKEN, expirationTimestamp: 'tomorrow' }),
      'exec credential plugin output: status.expirationTimestamp',
    ],
    [
      cred({ token: TOKEN, expirationTimestamp: '2030-13-01T00:00:00Z' }),
      'exec credential plugin output: status.expirationTimestamp',
    ],
    [
      cred({ token: TOKEN, expirationTimestamp: 1893456000 }),
      'exec credential plugin output: status.expirationTimestamp',
    ],
  ];
  for (const [stdout, where] of cases) {
    const e = await userError(() => parseExecCredential(stdout));
    assert.equal(e.where, where, stdout);
    assert.equal(e.code, 'EXEC_CREDENTIAL_INVALID');
    const line = e.oneLine();
    assert.ok(!line.includes('SECRETTOKENVALUE') && !line.includes('SECRETKEYVALUE'), line);
  }
  const mismatch = await userError(() =>
    parseExecCredential(cred({ token: TOKEN }), {
      expectedApiVersion: 'client.authentication.k8s.io/v1',
      source: 'exec plugin "aws"',
    }),
  );
  assert.equal(mismatch.where, 'exec plugin "aws" output: apiVersion');
});

test('property: arbitrary JSON and arbitrary text only ever produce UserErrors', () => {
  const statusish = fc.record(
    {
      token: fc.oneof(fc.constant(TOKEN), fc.jsonValue({ maxDepth: 1 })),
      clientCertificateData: fc.oneof(fc.constant(CERT), fc.jsonValue({ maxDepth: 1 })),
      clientKeyData: fc.oneof(fc.constant(KEY), fc.jsonValue({ maxDepth: 1 })),
      expirationTimestamp: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.string(),
        fc.jsonValue({ maxDepth: 1 }),
      ),
    },
    { requiredKeys: [] },
  );
  const doc = fc.oneof(
    fc.jsonValue(),
    fc.record(
      {
        apiVersion: fc.oneof(fc.constant(V1B1), fc.jsonValue({ maxDepth: 1 })),
        kind: fc.oneof(fc.constant('ExecCredential'), fc.jsonValue({ maxDepth: 1 })),
        status: fc.oneof(statusish, fc.jsonValue({ maxDepth: 2 })),
      },
      { requiredKeys: [] },
    ),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        doc.map((d) => JSON.stringify(d) ?? ''),
        fc.string({ unit: 'binary' }),
      ),
      (stdout) => {
        try {
          const c = parseExecCredential(stdout);
          assert.ok(c.token !== undefined || c.clientCertificateData !== undefined);
        } catch (err) {
          if (!(err instanceof UserError)) throw err;
          assert.ok(!err.oneLine().includes('\n'));
          assert.ok(!err.oneLine().includes('SECRETTOKENVALUE') && !err.oneLine().includes('SECRETKEYVALUE'));
        }
      },
    ),
    { numRuns: 200 },
  );
});

// ---------------------------------------------------------------------------------------------------------
// Running plugins (tiny /bin/sh scripts)

function shSpec(script: string, extra: Partial<ExecCredentialSpec> = {}): ExecCredentialSpec {
  return {
    kind: 'exec',
    command: '/bin/sh',
    args: ['-c', script],
    env: [],
    apiVersion: V1B1,
    installHint: undefined,
    provideClusterInfo: false,
    where: '/etc/k.conf: users[0].user.exec',
    ...extra,
  };
}

test('runExecPlugin passes KUBERNETES_EXEC_INFO and the kubeconfig env, and parses stdout', async () => {
  // The plugin hands back what it received as the "token", base64-encoded so it has no whitespace.
  const script =
    `printf '{"apiVersion":"${V1B1}","kind":"ExecCredential","status":{"token":"%s"}}' ` +
    `"$(printf '%s|%s' "$KUBERNETES_EXEC_INFO" "$GREETING" | base64 | tr -d '\\n')"`;
  const got = await runExecPlugin(
    shSpec(script, { env: [{ name: 'GREETING', value: 'hi' }], provideClusterInfo: true }),
    {
      timeoutMs: 5000,
      clusterInfo: { server: 'https://10.0.0.1:6443', caData: CERT, tlsServerName: 'kubernetes' },
    },
  );
  const [info, greeting] = Buffer.from(got.token ?? '', 'base64')
    .toString('utf8')
    .split('|');
  assert.equal(greeting, 'hi');
  assert.deepEqual(JSON.parse(info ?? ''), {
    apiVersion: V1B1,
    kind: 'ExecCredential',
    spec: {
      interactive: false,
      cluster: {
        server: 'https://10.0.0.1:6443',
        'tls-server-name': 'kubernetes',
        'certificate-authority-data': Buffer.from(CERT).toString('base64'),
      },
    },
  });
});

test('runExecPlugin failures are UserErrors naming the command', async () => {
  const exit = await userError(() =>
    runExecPlugin(shSpec('echo "could not assume role" >&2; echo more >&2; exit 3'), { timeoutMs: 5000 }),
  );
  assert.equal(exit.code, 'EXEC_PLUGIN_FAILED');
  assert.equal(exit.where, '/etc/k.conf: users[0].user.exec');
  assert.equal(exit.message, 'exec plugin "/bin/sh" exited with code 3: could not assume role | more');

  const long = await userError(() =>
    runExecPlugin(shSpec('yes "could not assume role" | head -c 5000 >&2; exit 1'), { timeoutMs: 5000 }),
  );
  assert.ok(long.message.length < 1200, `${long.message.length}`);
  assert.match(long.message, /more chars\)$/);

  // What the plugin prints goes into the error (and so the log and /healthz) only redacted.
  const leaky = await userError(() =>
    runExecPlugin(shSpec('echo "token rejected: 07401b.f395accd246ae52d" >&2; exit 1'), { timeoutMs: 5000 }),
  );
  assert.equal(leaky.message, 'exec plugin "/bin/sh" exited with code 1: token rejected: [redacted]');

  const missing = await userError(() =>
    runExecPlugin(
      shSpec('', {
        command: '/nonexistent/aws-iam-authenticator',
        args: [],
        installHint: 'install aws-iam-authenticator from your package manager',
      }),
      { timeoutMs: 5000 },
    ),
  );
  assert.equal(missing.code, 'EXEC_PLUGIN_NOT_FOUND');
  assert.equal(missing.fix, 'install aws-iam-authenticator from your package manager');
  assert.match(missing.message, /aws-iam-authenticator/);

  const bad = await userError(() =>
    runExecPlugin(
      shSpec(`echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'`),
      { timeoutMs: 5000 },
    ),
  );
  assert.equal(bad.code, 'EXEC_CREDENTIAL_INVALID');
  assert.equal(bad.where, 'exec plugin "/bin/sh" output: apiVersion');

  const started = Date.now();
  // The shell forks `sleep`, which keeps stdout open after the shell is killed.
  const slow = await userError(() => runExecPlugin(shSpec('sleep 5; echo never'), { timeoutMs: 200 }));
  assert.equal(slow.code, 'EXEC_PLUGIN_TIMEOUT');
  assert.ok(Date.now() - started < 3000, 'the timeout must not wait for grandchildren');
});

// ---------------------------------------------------------------------------------------------------------
// Cache

test('credentialIsFresh honours the margin; no expiry means fresh', () => {
  const c: ExecCredential = { token: 't', expirationTimestamp: new Date(100_000) };
  assert.equal(credentialIsFresh(c, 39_999, 60_000), true);
  assert.equal(credentialIsFresh(c, 40_000, 60_000), false);
  assert.equal(credentialIsFresh({ token: 't' }, Number.MAX_SAFE_INTEGER, 60_000), true);
});

test('ExecCredentialCache reuses, refreshes near expiry, shares in-flight fetches, never caches failures', async () => {
  let now = 0;
  let calls = 0;
  let failNext = false;
  const cache = new ExecCredentialCache(
    async () => {
      calls++;
      if (failNext) {
        failNext = false;
        throw new UserError('boom');
      }
      return { token: `t${calls}`, expirationTimestamp: new Date(now + 600_000) };
    },
    { marginMs: 60_000, now: () => now },
  );
  const [a, b] = await Promise.all([cache.get(), cache.get()]);
  assert.equal(a.token, 't1');
  assert.equal(b, a);
  now = 539_999;
  assert.equal((await cache.get()).token, 't1');
  now = 540_000;
  assert.equal((await cache.get()).token, 't2');
  cache.invalidate();
  failNext = true;
  await assert.rejects(cache.get(), UserError);
  assert.equal((await cache.get()).token, 't4');
  assert.equal(calls, 4);
});
