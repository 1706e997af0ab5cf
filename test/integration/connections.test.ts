// Connection sharing (src/kube/client-node.ts TimedKubeConfig, used by the approver): requests made through one
// KubeConfig share a connection instead of a handshake each, a connection the server dropped is replaced, a
// silently dead one is detected (headers timeout, unanswered PING) and replaced, a retired instance lets go
// of its pool, a new identity gets its own, and server verification still applies. Without sharing (the Lease) every
// request connects anew. Counted at a loopback proxy in front of the real API server (TLS passes through).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { testCluster, waitFor } from '../helpers/cluster.ts';
import { startProxy, type FaultProxy } from '../helpers/proxy.ts';
import { connectionFromKubeconfigFile, type ApiConnection } from '../../src/kube/api.ts';
import { kubeConfigFor, type TimedKubeConfig } from '../../src/kube/client-node.ts';
import { makeCa } from '../unit/pki/helpers.ts';

describe('API connections', () => {
  let proxy: FaultProxy;
  let admin: ApiConnection;

  before(async () => {
    const c = testCluster();
    proxy = await startProxy(c.state.apiserver);
    const conn = await connectionFromKubeconfigFile(c.state.kubeconfig, 'test admin');
    admin = { ...conn, endpoint: { ...conn.endpoint, server: proxy.url } };
  });
  after(async () => {
    await proxy.close();
  });

  const shared = () => kubeConfigFor(admin, { shareConnections: true });
  const readDefault = async (kc: TimedKubeConfig) =>
    (await kc.makeApiClient(CoreV1Api).readNamespace({ name: 'default' })).metadata?.name;

  test('sequential requests via one KubeConfig use one connection; one the server dropped is replaced', async () => {
    const kc = await shared();
    const before = proxy.accepted();
    for (let i = 0; i < 10; i++) assert.equal(await readDefault(kc), 'default');
    assert.equal(proxy.accepted() - before, 1, '10 requests, 1 connection');
    assert.equal(kc.openConnections(), 1);

    proxy.reset();
    await waitFor(
      'the client to see the dropped connection',
      async () => (kc.openConnections() === 0 ? true : undefined),
      10_000,
    );
    assert.equal(await readDefault(kc), 'default', 'works again after the server dropped the connection');
    assert.equal(proxy.accepted() - before, 2, 'one new connection after the drop');
  });

  test('concurrent requests share one connection (HTTP/2 multiplexing, negotiated with the API server)', async () => {
    const kc = await shared();
    const before = proxy.accepted();
    const names = await Promise.all(Array.from({ length: 8 }, () => readDefault(kc)));
    assert.deepEqual(new Set(names), new Set(['default']));
    assert.equal(proxy.accepted() - before, 1, 'HTTP/1.1 keep-alive would need one connection per concurrent request');
  });

  // undici PINGs the stalled HTTP/2 session and replaces it.
  test('a stalled shared connection: the request fails, the session is replaced, the next request works', async () => {
    // 1 s instead of 20 s: the same mechanism, without making the suite wait.
    const kc = await kubeConfigFor(admin, { shareConnections: true, headersTimeoutMs: 1000 });
    assert.equal(await readDefault(kc), 'default');
    const before = proxy.accepted();
    proxy.stallOpenConnections();
    const outcome = await readDefault(kc).then(
      () => 'answered',
      (err: Error) => `${err.name} ${(err as { cause?: Error }).cause?.name ?? ''}`,
    );
    assert.match(outcome, /HeadersTimeoutError/, 'undici gave up on the request');
    assert.equal(proxy.accepted() - before, 0, 'the request went to the stalled shared connection');
    await waitFor(
      'the unanswered PING to drop the session',
      async () => (kc.openConnections() === 0 ? true : undefined),
      10_000,
    );
    assert.equal(await readDefault(kc), 'default');
    assert.equal(proxy.accepted() - before, 1, 'one new connection');
  });

  test('after retire() an instance connects per request again, and its pool closes', async () => {
    const kc = await shared();
    await readDefault(kc);
    kc.retire();
    await waitFor('the retired pool to close', async () => (kc.openConnections() === 0 ? true : undefined), 10_000);
    const before = proxy.accepted();
    await readDefault(kc);
    await readDefault(kc);
    assert.equal(proxy.accepted() - before, 2);
  });

  test('a new KubeConfig (new credentials) opens its own connection', async () => {
    const first = await shared();
    const second = await shared();
    const before = proxy.accepted();
    await readDefault(first);
    await readDefault(second);
    await readDefault(first);
    assert.equal(proxy.accepted() - before, 2);
  });

  test("without sharing (the approver's Lease) every request connects anew", async () => {
    const kc = await kubeConfigFor(admin);
    const before = proxy.accepted();
    for (let i = 0; i < 3; i++) assert.equal(await readDefault(kc), 'default');
    assert.equal(proxy.accepted() - before, 3);
  });

  test('shared connections still verify the API server: a CA that did not sign it fails', async () => {
    const rogue = await makeCa('not the cluster CA');
    const kc = await kubeConfigFor(
      { ...admin, endpoint: { ...admin.endpoint, caPem: rogue.certificatePem } },
      { shareConnections: true },
    );
    await assert.rejects(
      () => readDefault(kc),
      (err: Error) =>
        /certificate|self[- ]signed|issuer/i.test(`${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`),
    );
  });
});
