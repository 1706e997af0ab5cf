// The node side's own HTTP client (src/kube/http-node-api.ts) against the real control plane: every behaviour
// the node side used to get from @kubernetes/client-node, and the contract's (src/kube/node-api.ts) statuses,
// deadlines and watch ends, over HTTP/2 and HTTP/1.1, directly and through proxies.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { promisify } from 'node:util';
import {
  testCluster,
  createBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  uniqueName,
  waitFor,
  type TestCluster,
} from '../helpers/cluster.ts';
import { ensureClusterInfo, newNodeDir, runNodecred, writeKubeconfig } from '../helpers/node.ts';
import { startProxy } from '../helpers/proxy.ts';
import { startConnectProxy } from '../helpers/connect-proxy.ts';
import { startExtraApiserver } from '../helpers/apiserver.ts';
import { issueLeaf, issueServingPair, makeCa, newEcKey, CLIENT_AUTH } from '../unit/pki/helpers.ts';
import { httpNodeApi, type HttpNodeApiOptions } from '../../src/kube/http-node-api.ts';
import { ConnectionPool } from '../../src/kube/http/pool.ts';
import { connectionFromKubeconfigFile, TransientApiError, type ApiConnection } from '../../src/kube/api.ts';
import { CLIENT_SIGNER } from '../../src/kube/csr-name.ts';
import { buildCsrPem, nodeSubject } from '../../src/pki/csr.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { caPinHash } from '../../src/pki/cert.ts';
import { waitForCsr } from '../../src/manager/csr-wait.ts';
import { systemClock } from '../../src/clock.ts';
import { UserError } from '../../src/errors.ts';
import type { Csr, NodeApi } from '../../src/kube/node-api.ts';

const execFileP = promisify(execFile);
const USAGES = ['digital signature', 'client auth'];

async function submission(name = uniqueName('http-client')) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    name,
    requestPem: await buildCsrPem(privateKey, nodeSubject(name)),
    signerName: CLIENT_SIGNER,
    usages: USAGES,
  };
}

async function created(api: NodeApi, s?: Awaited<ReturnType<typeof submission>>): Promise<Csr> {
  const csr = await api.createCsr(s ?? (await submission()));
  assert.notEqual(csr, 'exists');
  return csr as Csr;
}

const forever = () => new AbortController().signal;

/** Rejects with `err` checked by `check`, or fails. */
async function rejection<T>(p: Promise<unknown>, check: (err: T) => boolean, what: string): Promise<T> {
  try {
    await p;
  } catch (err) {
    assert.ok(check(err as T), `${what}: got ${(err as Error).name}: ${(err as Error).message}`);
    return err as T;
  }
  assert.fail(`${what}: resolved`);
}

/** A serving certificate from the cluster CA naming only `ip`, written to `dir` for a second API server. */
async function ipOnlyServingCertificate(c: TestCluster, dir: string, ip: string) {
  const ca = { name: 'cluster', certificatePem: c.ca, privateKey: createPrivateKey(await readFile(c.state.caKeyFile)) };
  const { cert, key } = await issueServingPair(ca, [], [ip]);
  const certFile = join(dir, 'ip-only.crt');
  const keyFile = join(dir, 'ip-only.key');
  await writeFile(certFile, cert);
  await writeFile(keyFile, key, { mode: 0o600 });
  return { certFile, keyFile };
}

const isUserError = (code: string) => (e: unknown) => e instanceof UserError && e.code === code;

describe("the node side's HTTP client against the real API server", () => {
  let c: TestCluster;
  let dir: string;
  let token: ApiConnection;
  /** A client-certificate identity whose CSRs nobody approves automatically: they stay pending. */
  let manual: ApiConnection;
  let admin: ApiConnection;
  const connect = (conn: ApiConnection, opts: HttpNodeApiOptions = {}) =>
    httpNodeApi(conn, { pool: new ConnectionPool(), ...opts });

  before(async () => {
    c = testCluster();
    dir = await mkdtemp(join(tmpdir(), 'nodecred-http-'));
    await ensureBootstrapRbac(c);
    const endpoint = { server: c.state.apiserver, caPem: c.ca };
    const t = await createBootstrapToken(c);
    token = { endpoint, credential: { kind: 'token', token: t.token }, description: `bootstrap token ${t.id}` };
    const group = 'nodecred-test:manual-approval';
    await ensureBootstrapRbac(c, { group, autoApprove: false, selfRenewal: false });
    const keys = newEcKey();
    const caKey = createPrivateKey(await readFile(c.state.caKeyFile));
    const certPem = await issueLeaf(
      { name: 'nodecred-local-ca', certificatePem: c.ca, privateKey: caKey },
      {
        publicKey: keys.publicKey,
        commonName: uniqueName('bootstrapper'),
        organizations: [group],
        extendedKeyUsages: [CLIENT_AUTH],
      },
    );
    manual = {
      endpoint,
      credential: { kind: 'clientCert', certPem, keyPem: encodePrivateKeyPem(keys.privateKey) },
      description: 'manual-approval test identity',
    };
    const pki = dirname(c.state.caKeyFile);
    admin = {
      endpoint,
      credential: {
        kind: 'clientCert',
        certPem: await readFile(join(pki, 'admin.crt'), 'utf8'),
        keyPem: await readFile(join(pki, 'admin.key'), 'utf8'),
      },
      description: 'admin client certificate',
    };
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('HTTP/2 by default: create, 409 on a second create, read, watch to issuance, 404s; one connection', async () => {
    const pool = new ConnectionPool();
    const api = httpNodeApi(token, { pool });
    const s = await submission();
    const csr = await created(api, s);
    assert.equal(csr.name, s.name);
    assert.equal(csr.signerName, CLIENT_SIGNER);
    assert.equal(csr.requestPem, s.requestPem);
    assert.equal(await api.createCsr(s), 'exists', '409 AlreadyExists is a result, not an error');
    const end = await api.watchCsr(s.name, csr.resourceVersion, {
      timeoutSeconds: 60,
      idleTimeoutMs: 90_000,
      signal: forever(),
    });
    assert.equal(end.kind, 'issued', 'auto-approved and signed by kube-controller-manager');
    assert.match((end as { certificatePem: string }).certificatePem, /^-----BEGIN CERTIFICATE-----/);
    assert.equal((await api.getCsr(s.name))?.decision?.kind, 'issued');
    assert.equal(await api.getCsr(uniqueName('missing')), null, '404 is null');
    assert.equal(await connect(admin).nodeAddresses(uniqueName('no-node')), null, '404 Node is null');
    assert.equal(await connect(admin).deleteCsr(uniqueName('missing')), true, 'already gone counts as deleted');
    assert.deepEqual(pool.stats, { h2Sessions: 1, http1Requests: 0 });
  });

  test('HTTP/1.1 when only it is offered: the same calls, one connection per request', async () => {
    const pool = new ConnectionPool();
    const api = httpNodeApi(token, { pool, alpn: ['http/1.1'] });
    const s = await submission();
    const csr = await created(api, s);
    assert.equal(await api.createCsr(s), 'exists');
    const end = await api.watchCsr(s.name, csr.resourceVersion, {
      timeoutSeconds: 60,
      idleTimeoutMs: 90_000,
      signal: forever(),
    });
    assert.equal(end.kind, 'issued');
    assert.equal(
      (await api.whoAmI()).username,
      `system:bootstrap:${(token.credential as { token: string }).token.split('.')[0]}`,
    );
    assert.deepEqual(pool.stats, { h2Sessions: 0, http1Requests: 4 });
  });

  // --disable-http2-serving: the server offers only http/1.1. --watch-cache=false: watches go to etcd, so a
  // compaction (the API server's own, every 5 min; here at once) makes an old resourceVersion 410 Gone.
  test('HTTP/1.1-only API server by ALPN (IP-only certificate); 410 for a compacted resourceVersion', async () => {
    // Its serving certificate, from the cluster CA, names nothing but IP:127.0.0.1.
    const ipOnly = await ipOnlyServingCertificate(c, dir, '127.0.0.1');
    const extra = await startExtraApiserver(c, [
      '--disable-http2-serving',
      '--watch-cache=false',
      `--tls-cert-file=${ipOnly.certFile}`,
      `--tls-private-key-file=${ipOnly.keyFile}`,
    ]);
    try {
      const pool = new ConnectionPool();
      const at = (conn: ApiConnection) => ({ ...conn, endpoint: { ...conn.endpoint, server: extra.url } });
      const seen: string[] = [];
      const api = httpNodeApi(at(manual), { pool, onWatchEvent: (t) => seen.push(t) });
      const pending = await created(api);
      // Two later writes, then compaction up to etcd's current revision: the revision after the CSR's creation
      // (where a watch from its resourceVersion starts) is gone from etcd's history.
      const marker = uniqueName('compaction-marker');
      await c.kubectl(['create', 'configmap', marker, '-n', 'default']);
      await c.kubectl(['delete', 'configmap', marker, '-n', 'default']);
      const etcd = async (path: string, body: object) => {
        const res = await fetch(`${c.state.etcd}${path}`, { method: 'POST', body: JSON.stringify(body) });
        assert.equal(res.status, 200, await res.clone().text());
        return (await res.json()) as { header: { revision: string } };
      };
      const { revision } = (await etcd('/v3/kv/range', { key: Buffer.from('\0').toString('base64') })).header;
      assert.ok(Number(revision) > Number(pending.resourceVersion) + 1);
      await etcd('/v3/kv/compaction', { revision, physical: true });

      const end = await api.watchCsr(pending.name, pending.resourceVersion, {
        timeoutSeconds: 30,
        idleTimeoutMs: 60_000,
        signal: forever(),
      });
      assert.deepEqual(end, { kind: 'closed', why: 'expired' });
      assert.deepEqual(seen, ['ERROR'], 'the API server said 410 Gone in a watch ERROR event');

      await approveCsr(c, pending.name);
      const progress: string[] = [];
      const outcome = await waitForCsr(api, systemClock, pending.name, {
        deadline: Date.now() + 60_000,
        initial: pending,
        onProgress: (p) => progress.push(p.detail),
      });
      assert.equal(outcome.kind, 'issued');
      assert.ok(
        progress.some((p) => p.startsWith('watch expired')),
        progress.join(' | '),
      );
      assert.equal(pool.stats.h2Sessions, 0, 'no HTTP/2 session with a server that does not speak it');
      assert.ok(pool.stats.http1Requests >= 4, `${pool.stats.http1Requests} HTTP/1.1 requests`);

      // Through a proxy on another address (127.0.0.2), the IP-only certificate is checked against the URL's IP,
      // not the proxy's address; by a name it does not carry, it is refused.
      const away = await startConnectProxy({ host: '127.0.0.2' });
      try {
        const viaAway = { ...at(token), endpoint: { ...at(token).endpoint, proxyUrl: away.url } };
        assert.match((await connect(viaAway).whoAmI()).username, /^system:bootstrap:/);
        assert.deepEqual(away.requests, [new URL(extra.url).host]);
      } finally {
        await away.close();
      }
      const byName = { ...token, endpoint: { ...token.endpoint, server: extra.url.replace('127.0.0.1', 'localhost') } };
      await rejection(connect(byName).whoAmI(), isUserError('TLS_UNTRUSTED'), 'a name the certificate does not carry');

      // A request given up while its connection is still being made: the HTTP/1.1 connection that completes
      // afterwards has no taker. It must be closed, not left open without an error listener (where the
      // server's reset would be an uncaught ECONNRESET: the daemon would exit).
      const held = await startConnectProxy({ hold: true });
      try {
        const target = {
          server: new URL(extra.url),
          ca: c.ca,
          tlsServerName: undefined,
          proxy: new URL(held.url),
          alpn: ['h2', 'http/1.1'],
        };
        const givenUp = new AbortController();
        const request = new ConnectionPool().open(
          target,
          { method: 'GET', url: new URL(`${extra.url}/readyz`), headers: {} },
          givenUp.signal,
        );
        await waitFor('the CONNECT to reach the proxy', async () => (held.requests.length ? true : undefined));
        givenUp.abort(new Error('the caller gave up'));
        await rejection(request, (e: Error) => e.message === 'the caller gave up', 'the abandoned request');
        held.release();
        await waitFor('the untaken connection to be closed by the client', async () =>
          held.clientCloses() === 1 ? true : undefined,
        );
        assert.ok(held.bytesFromServer() > 0, 'the TLS handshake with the API server happened');
      } finally {
        await held.close();
      }
    } finally {
      await extra.stop();
    }
  });

  test('watch bookmarks are consumed silently: a pending CSR watch ends when the server closes it', async () => {
    const seen: string[] = [];
    const api = connect(manual, { onWatchEvent: (t) => seen.push(t) });
    const pending = await created(api);
    const watching = api.watchCsr(pending.name, pending.resourceVersion, {
      timeoutSeconds: 6,
      idleTimeoutMs: 30_000,
      signal: forever(),
    });
    // The watch cache sends a bookmark 2 s before the watch's deadline, when its resourceVersion has moved
    // past the watch's: another CSR's creation moves it.
    await created(connect(manual));
    assert.deepEqual(await watching, { kind: 'closed', why: 'timeout' });
    assert.ok(seen.includes('BOOKMARK'), `events seen: ${seen.join(',') || 'none'}`);
    assert.ok(!seen.includes('ADDED') && !seen.includes('MODIFIED'), 'the other CSR is not ours: filtered out');
  });

  test('aborting a watch resolves it as aborted at once', async () => {
    const api = connect(manual);
    const pending = await created(api);
    const abort = new AbortController();
    const watching = api.watchCsr(pending.name, pending.resourceVersion, {
      timeoutSeconds: 300,
      idleTimeoutMs: 600_000,
      signal: abort.signal,
    });
    abort.abort();
    assert.deepEqual(await watching, { kind: 'closed', why: 'aborted' });
  });

  test('401: an unknown token is UNAUTHORIZED naming the credential, never the token', async () => {
    const api = connect({ ...token, credential: { kind: 'token', token: 'zzzzzz.0123456789abcdef' } });
    const err = await rejection<UserError>(api.whoAmI(), isUserError('UNAUTHORIZED'), 'whoAmI');
    assert.match(err.oneLine(), /SelfSubjectReview: 401 Unauthorized with the bootstrap token/);
    assert.ok(!err.oneLine().includes('0123456789abcdef'));
    await rejection(api.createCsr(await submission()), isUserError('UNAUTHORIZED'), 'createCsr');
  });

  test('401 with an exec credential: the next call runs the plugin again (as client-go does)', async () => {
    const good = (token.credential as { token: string }).token;
    const plugin = join(dir, 'plugin.sh');
    await writeFile(
      plugin,
      [
        '#!/bin/sh',
        'n=$(cat "$COUNT_FILE" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$COUNT_FILE"',
        'if [ "$n" -eq 1 ]; then tok=zzzzzz.0123456789abcdef; else tok=$GOOD_TOKEN; fi',
        'kind=\'"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential"\'',
        'printf \'{%s,"status":{"token":"%s"}}\' "$kind" "$tok"',
        '',
      ].join('\n'),
    );
    await chmod(plugin, 0o755);
    const count = join(dir, 'count');
    const kubeconfig = await writeKubeconfig(join(dir, 'exec.conf'), c, {
      exec: {
        command: plugin,
        env: [
          { name: 'COUNT_FILE', value: count },
          { name: 'GOOD_TOKEN', value: good },
        ],
      },
    });
    const api = connect(await connectionFromKubeconfigFile(kubeconfig, 'bootstrap'));
    await rejection(api.whoAmI(), isUserError('UNAUTHORIZED'), 'first call, refused credential');
    assert.equal((await api.whoAmI()).username, `system:bootstrap:${good.split('.')[0]}`);
    assert.equal((await readFile(count, 'utf8')).trim(), '2', 'the plugin ran once per credential');
    await api.whoAmI();
    assert.equal((await readFile(count, 'utf8')).trim(), '2', 'a good credential stays cached');
  });

  test('403: a bootstrap identity reading a Node is FORBIDDEN with the fix; deleting a CSR is false', async () => {
    const api = connect(token);
    const err = await rejection<UserError>(api.nodeAddresses('worker-1'), isUserError('FORBIDDEN'), 'nodeAddresses');
    assert.match(err.message, /read Node worker-1: 403 Forbidden: nodes "worker-1" is forbidden/);
    assert.match(err.fix ?? '', /Node authorizer/);
    assert.equal(await api.deleteCsr(uniqueName('any')), false);
  });

  test('429 from API Priority and Fairness is transient and says the API server is throttling', async () => {
    const t = await createBootstrapToken(c);
    const api = connect({ ...token, credential: { kind: 'token', token: t.token } });
    const name = uniqueName('nodecred-test-reject');
    // A priority level with the least concurrency (one seat), no borrowing and queuing off: of a burst of
    // concurrent requests, those that find the seat taken are rejected with 429.
    const objects = stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
          kind: 'PriorityLevelConfiguration',
          metadata: { name },
          spec: {
            type: 'Limited',
            limited: {
              nominalConcurrencyShares: 0,
              lendablePercent: 0,
              borrowingLimitPercent: 0,
              limitResponse: { type: 'Reject' },
            },
          },
        },
        {
          apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
          kind: 'FlowSchema',
          metadata: { name },
          spec: {
            priorityLevelConfiguration: { name },
            matchingPrecedence: 50,
            rules: [
              {
                subjects: [{ kind: 'User', user: { name: `system:bootstrap:${t.id}` } }],
                resourceRules: [
                  { verbs: ['*'], apiGroups: ['*'], resources: ['*'], clusterScope: true, namespaces: ['*'] },
                ],
                nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
              },
            ],
          },
        },
      ],
    });
    await c.kubectl(['apply', '-f', '-'], objects);
    try {
      // The API server applies flow-control objects a moment after they are stored: burst until it does.
      const rejected = await waitFor('a 429 from priority and fairness', async () => {
        const burst = await Promise.allSettled(Array.from({ length: 50 }, () => api.whoAmI()));
        const failures = burst.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
        return failures.length ? failures : undefined;
      });
      for (const err of rejected) {
        assert.ok(err instanceof TransientApiError, `${err.name}: ${err.message}`);
        assert.match(err.message, /SelfSubjectReview: the API server at \S+ is throttling requests \(HTTP 429/);
      }
    } finally {
      await c.kubectl(['delete', 'flowschema,prioritylevelconfiguration', name, '--ignore-not-found']);
    }
  });

  test('a black-holed connection: the request fails at the deadline (transient); the next one reconnects', async () => {
    const proxy = await startProxy(c.state.apiserver);
    try {
      const api = connect({ ...token, endpoint: { ...token.endpoint, server: proxy.url } }, { requestTimeoutMs: 2000 });
      await api.whoAmI();
      const before = proxy.accepted();
      proxy.stallOpenConnections();
      const err = await rejection<TransientApiError>(
        api.getCsr(uniqueName('any')),
        (e) => e instanceof TransientApiError,
        'getCsr on a silent connection',
      );
      assert.match(err.message, /ETIMEDOUT/);
      assert.ok((await api.whoAmI()).username.startsWith('system:bootstrap:'));
      assert.equal(proxy.accepted() - before, 1, 'the silent connection took no new request: one new connection');
    } finally {
      await proxy.close();
    }
  });

  test('tls-server-name: the certificate is checked against it instead of the URL host', async () => {
    const port = new URL(c.state.apiserver).port;
    const named = (server: string, tlsServerName?: string) =>
      connect({ ...token, endpoint: { ...token.endpoint, server, ...(tlsServerName ? { tlsServerName } : {}) } });
    assert.ok(await named(`https://127.0.0.1:${port}`, 'kubernetes.default').whoAmI());
    assert.ok(await named(`https://localhost:${port}`).whoAmI());
    const err = await rejection<UserError>(
      named(`https://127.0.0.1:${port}`, 'wrong.example').whoAmI(),
      isUserError('TLS_UNTRUSTED'),
      'a name the certificate does not carry',
    );
    assert.match(err.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
    const otherCa = connect({
      ...token,
      endpoint: { ...token.endpoint, caPem: (await makeCa('not-the-cluster-ca')).certificatePem },
    });
    await rejection(otherCa.whoAmI(), isUserError('TLS_UNTRUSTED'), 'a CA that did not sign the API server');
  });

  test('HTTPS_PROXY, NO_PROXY and the kubeconfig proxy-url', async () => {
    const proxy = await startConnectProxy();
    try {
      const port = new URL(c.state.apiserver).port;
      // A name only the proxy resolves (the API server's certificate carries it): success proves the tunnel.
      const viaName = { ...token, endpoint: { ...token.endpoint, server: `https://kubernetes.default.svc:${port}` } };
      const env = { HTTPS_PROXY: proxy.url };
      assert.match((await connect(viaName, { env }).whoAmI()).username, /^system:bootstrap:/);
      assert.deepEqual(proxy.requests, [`kubernetes.default.svc:${port}`]);

      await rejection(
        connect(viaName, { env: { ...env, NO_PROXY: 'localhost,.svc' } }).whoAmI(),
        (e) => e instanceof TransientApiError && /ENOTFOUND|EAI_AGAIN/.test(e.message),
        'NO_PROXY: straight to a name nobody resolves',
      );
      assert.equal(proxy.requests.length, 1, 'NO_PROXY kept the proxy out');

      assert.ok(await connect(token, { env }).whoAmI(), 'loopback is never proxied by HTTPS_PROXY');
      assert.equal(proxy.requests.length, 1);

      const withProxyUrl = { ...token, endpoint: { ...token.endpoint, proxyUrl: proxy.url } };
      assert.ok(await connect(withProxyUrl, { env: {} }).whoAmI(), 'proxy-url applies to loopback too');
      assert.deepEqual(proxy.requests.slice(1), [`127.0.0.1:${port}`]);
    } finally {
      await proxy.close();
    }
    const guarded = await startConnectProxy({ requireAuth: 'node:s3cret' });
    try {
      const viaName = { ...token, endpoint: { ...token.endpoint, proxyUrl: guarded.url } };
      const err = await rejection<UserError>(connect(viaName).whoAmI(), isUserError('PROXY_AUTH'), '407');
      assert.match(err.oneLine(), /requires authentication \(HTTP 407\)/);
      const withCreds = guarded.url.replace('http://', 'http://node:s3cret@');
      assert.ok(await connect({ ...token, endpoint: { ...token.endpoint, proxyUrl: withCreds } }).whoAmI());
    } finally {
      await guarded.close();
    }
  });

  // The API server's certificate names IP:10.96.0.1 and IP:127.0.0.1 (scripts/lib/pki.ts), not 10.96.0.2 nor
  // 127.0.0.2. Both proxies send every tunnel to the real API server. Through a tunnel Node would check the
  // certificate against the proxy's host unless told the name: a proxy at 127.0.0.2 then refuses the right
  // IP, and a proxy at 127.0.0.1 lets a certificate that does not name the URL's IP through.
  test('an IP server URL through a proxy: the certificate is checked against that IP, not the proxy', async () => {
    const port = new URL(c.state.apiserver).port;
    const named = await startConnectProxy();
    const unnamed = await startConnectProxy({ host: '127.0.0.2' });
    const forwarder = await startProxy(c.state.apiserver, '127.0.0.2');
    const at = (server: string, proxyUrl?: string) =>
      connect({ ...token, endpoint: { ...token.endpoint, server, ...(proxyUrl ? { proxyUrl } : {}) } });
    try {
      assert.ok(await at(`https://10.96.0.1:${port}`, unnamed.url).whoAmI(), 'the IP the certificate names');
      const err = await rejection<UserError>(
        at(`https://10.96.0.2:${port}`, named.url).whoAmI(),
        isUserError('TLS_UNTRUSTED'),
        'an IP the certificate does not name, through a proxy whose address it does name',
      );
      assert.match(err.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
      assert.deepEqual(unnamed.requests, [`10.96.0.1:${port}`]);
      assert.deepEqual(named.requests, [`10.96.0.2:${port}`]);
      // Direct: the URL's IP is checked too (127.0.0.2 reaches the API server but is not in its certificate).
      await rejection(at(forwarder.url).whoAmI(), isUserError('TLS_UNTRUSTED'), 'direct to an unnamed IP');
      assert.equal(forwarder.accepted(), 1);

      // Token discovery's pinned fetch goes through its own tunnel: the same check.
      await ensureClusterInfo(c);
      const d = await createBootstrapToken(c);
      await waitFor('bootstrapsigner to sign cluster-info for the token', async () => {
        const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
        return cm.data?.[`jws-kubeconfig-${d.id}`] ? true : undefined;
      });
      const discoverVia = async (server: string, proxyUrl: string) => {
        const node = await newNodeDir('proxied-ip-discovery');
        try {
          return await runNodecred(
            ['bootstrap', '--api-server', server, '--discovery-token-ca-cert-hash', caPinHash(c.ca), ...node.flags],
            { env: { HTTPS_PROXY: proxyUrl, NO_PROXY: '', no_proxy: '', NODECRED_DISCOVERY_TOKEN: d.token } },
          );
        } finally {
          await node.cleanup();
        }
      };
      const refused = await discoverVia(`https://10.96.0.2:${port}`, named.url);
      assert.notEqual(refused.code, 0, 'discovery trusted a certificate that does not name 10.96.0.2');
      assert.match(refused.stderr, /pinned CA \(ERR_TLS_CERT_ALTNAME_INVALID\)/, 'refused by discovery itself');
      const ok = await discoverVia(`https://10.96.0.1:${port}`, unnamed.url);
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await named.close();
      await unnamed.close();
      await forwarder.close();
    }
  });

  test("the bootstrap kubeconfig's proxy-url is carried into the node kubeconfig, kept on later passes", async () => {
    const proxy = await startConnectProxy();
    const node = await newNodeDir('proxy-url');
    try {
      const port = new URL(c.state.apiserver).port;
      // A name only the proxy resolves: every connection that works went through it.
      const server = `https://kubernetes.default.svc:${port}`;
      const t = await createBootstrapToken(c);
      const bootstrapKubeconfig = await writeKubeconfig(
        join(node.dir, 'bootstrap.conf'),
        c,
        { token: t.token },
        server,
        {
          'proxy-url': proxy.url,
        },
      );
      const args = ['bootstrap', '--bootstrap-kubeconfig', bootstrapKubeconfig, ...node.flags];
      const first = await runNodecred(args, { env: { HTTPS_PROXY: '', https_proxy: '' } });
      assert.equal(first.code, 0, first.stderr);
      const written = await readFile(node.kubeconfig, 'utf8');
      assert.match(written, new RegExp(`proxy-url: ${proxy.url.replaceAll('.', '\\.')}\\n`));

      // The kubelet's client (client-go, here kubectl) reads the same kubeconfig and goes through the proxy.
      const before = proxy.requests.length;
      const { stdout } = await execFileP(c.state.kubectl, [`--kubeconfig=${node.kubeconfig}`, 'auth', 'whoami']);
      assert.match(stdout, /system:node:/);
      assert.ok(proxy.requests.length > before, 'kubectl tunnelled through the proxy-url');

      // A later pass with the certificate still valid rewrites nothing away.
      const again = await runNodecred(args, { env: { HTTPS_PROXY: '', https_proxy: '' } });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(await readFile(node.kubeconfig, 'utf8'), written);
    } finally {
      await proxy.close();
      await node.cleanup();
    }
  });

  test('nodecred bootstrap, and token discovery, through HTTPS_PROXY to a name only the proxy resolves', async () => {
    const proxy = await startConnectProxy();
    const node = await newNodeDir('proxied');
    const discovered = await newNodeDir('proxied-discovery');
    try {
      const port = new URL(c.state.apiserver).port;
      const server = `https://kubernetes.default.svc:${port}`;
      const env = { HTTPS_PROXY: proxy.url, NO_PROXY: '' };
      const t = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: t.token }, server);
      const r = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(await readFile(node.kubeconfig, 'utf8'), /server: https:\/\/kubernetes\.default\.svc:/);

      // Discovery's two cluster-info fetches go through the proxy too (kubeadm's do, through client-go).
      await ensureClusterInfo(c);
      const d = await createBootstrapToken(c);
      await waitFor('bootstrapsigner to sign cluster-info for the token', async () => {
        const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
        return cm.data?.[`jws-kubeconfig-${d.id}`] ? true : undefined;
      });
      const before = proxy.requests.length;
      const viaDiscovery = await runNodecred(
        ['bootstrap', '--api-server', server, '--discovery-token-ca-cert-hash', caPinHash(c.ca), ...discovered.flags],
        { env: { ...env, NODECRED_DISCOVERY_TOKEN: d.token } },
      );
      assert.equal(viaDiscovery.code, 0, viaDiscovery.stderr);
      assert.ok(proxy.requests.length - before >= 3, 'two cluster-info fetches and the API requests');
      assert.ok(proxy.requests.every((target) => target === `kubernetes.default.svc:${port}`));
    } finally {
      await proxy.close();
      await node.cleanup();
      await discovered.cleanup();
    }
  });
});
