// Connection sharing (src/kube/api.ts TimedKubeConfig, used by the approver): requests made through one
// KubeConfig share a connection instead of a handshake each, a connection the server dropped is replaced, a
// reset after a transport failure (a silently dead connection) moves requests to a fresh one, a new
// identity gets its own, and server verification still applies. Without sharing (the node daemon) every
// request connects anew. Counted at a loopback proxy in front of the real API server (TLS passes through).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { testCluster, waitFor } from '../helpers/cluster.ts';
import { startProxy, type FaultProxy } from '../helpers/proxy.ts';
import { connectionFromKubeconfigFile, kubeConfigFor, type ApiConnection, type TimedKubeConfig } from '../../src/kube/api.ts';
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
  const readDefault = async (kc: TimedKubeConfig) => (await kc.makeApiClient(CoreV1Api).readNamespace({ name: 'default' })).metadata?.name;

  test('sequential requests through one KubeConfig use one connection; one the server dropped is replaced', async () => {
    const kc = await shared();
    const before = proxy.accepted();
    for (let i = 0; i < 10; i++) assert.equal(await readDefault(kc), 'default');
    assert.equal(proxy.accepted() - before, 1, '10 requests, 1 connection');
    assert.equal(kc.openConnections(), 1);

    proxy.reset();
    await waitFor('the client to see the dropped connection', async () => (kc.openConnections() === 0 ? true : undefined), 10_000);
    assert.equal(await readDefault(kc), 'default', 'works again after the server dropped the connection');
    assert.equal(proxy.accepted() - before, 2, 'one new connection after the drop');
  });

  test('a stalled shared connection: the request fails at its deadline, resetConnections() moves the next to a new connection', async () => {
    const kc = await shared();
    assert.equal(await readDefault(kc), 'default');
    const before = proxy.accepted();
    proxy.stallOpenConnections();
    // Nothing comes back on a stalled connection: only the 30 s request deadline ends the wait.
    const outcome = await readDefault(kc).then(() => 'answered', (err: Error) => err.name);
    assert.match(outcome, /TimeoutError|AbortError/);
    assert.equal(proxy.accepted() - before, 0, 'the request went to the stalled shared connection');
    kc.resetConnections();
    assert.equal(await readDefault(kc), 'default');
    assert.equal(proxy.accepted() - before, 1, 'the reset opened one new connection');
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

  test('without sharing (the node daemon) every request connects anew', async () => {
    const kc = await kubeConfigFor(admin);
    const before = proxy.accepted();
    for (let i = 0; i < 3; i++) assert.equal(await readDefault(kc), 'default');
    assert.equal(proxy.accepted() - before, 3);
  });

  test('shared connections still verify the API server: a CA that did not sign it fails', async () => {
    const rogue = await makeCa('not the cluster CA');
    const kc = await kubeConfigFor({ ...admin, endpoint: { ...admin.endpoint, caPem: rogue.certificatePem } }, { shareConnections: true });
    await assert.rejects(() => readDefault(kc), (err: Error) => /certificate|self[- ]signed|issuer/i.test(`${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`));
  });
});
