// ApiSource's reaction to failures: a 401 rebuilds the clients (credentials re-read), an error without an
// HTTP status (timeout, reset, refused) keeps them but drops their shared connections, and an HTTP error
// keeps both. No request is made: the kubeconfig points at a port nothing listens on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ApiException } from '@kubernetes/client-node';
import { ApiSource } from '../../../src/approver/api.ts';
import type { TimedKubeConfig } from '../../../src/kube/api.ts';

async function withSource(fn: (source: ApiSource) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-api-source-'));
  try {
    const file = join(dir, 'approver.conf');
    await writeFile(file, stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'a',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      contexts: [{ name: 'a', context: { cluster: 'c', user: 'u' } }],
      users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
    }), { mode: 0o600 });
    await fn(await ApiSource.fromKubeconfig(file));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Records resetConnections() calls on the current generation. */
function watchResets(kc: TimedKubeConfig): { count: number } {
  const seen = { count: 0 };
  const reset = kc.resetConnections.bind(kc);
  kc.resetConnections = () => { seen.count++; reset(); };
  return seen;
}

test('ApiSource: 401 rebuilds the clients; a transport error resets connections only; an HTTP error changes nothing', async () => {
  await withSource(async (source) => {
    const first = (await source.clients()).kubeConfig;
    const resets = watchResets(first);
    assert.equal((await source.clients()).kubeConfig, first, 'clients are cached');

    source.noteFailure(new ApiException(500, 'Internal Server Error', '{}', {}));
    assert.equal((await source.clients()).kubeConfig, first);
    assert.equal(resets.count, 0, 'an HTTP answer proves the connection works');

    source.noteFailure(Object.assign(new Error('fetch failed'), { cause: { code: 'UND_ERR_SOCKET' } }));
    assert.equal(resets.count, 1, 'no HTTP status: the connections are dropped');
    assert.equal((await source.clients()).kubeConfig, first, 'but the credentials stay');

    source.noteFailure(new ApiException(401, 'Unauthorized', '{}', {}));
    assert.notEqual((await source.clients()).kubeConfig, first, 'a 401 builds new clients');
  });
});
