// ApiSource: callers arriving together share one generation of clients; a 401 builds a new one; other
// failures change nothing (connection failures are undici's to handle); and none of this may throw, also
// for a kubeconfig without a CA (client-node then makes no Agent of its own, which once crashed here).
// The kubeconfig points at a port nothing listens on, so requests fail with "connection refused".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ApiException } from '@kubernetes/client-node';
import { ApiSource } from '../../../src/approver/api.ts';

async function withSource(fn: (source: ApiSource) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-api-source-'));
  try {
    const file = join(dir, 'approver.conf');
    await writeFile(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'a',
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
        contexts: [{ name: 'a', context: { cluster: 'c', user: 'u' } }],
        users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
      }),
      { mode: 0o600 },
    );
    await fn(await ApiSource.fromKubeconfig(file));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('ApiSource: concurrent callers share one generation', async () => {
  await withSource(async (source) => {
    const all = await Promise.all(Array.from({ length: 6 }, () => source.clients()));
    assert.equal(new Set(all.map((c) => c.kubeConfig)).size, 1);
  });
});

test('ApiSource: a 401 builds new clients; a 500 or refused connection changes nothing, throws nothing', async () => {
  await withSource(async (source) => {
    const first = await source.clients();
    const refused = await first.core.readNamespace({ name: 'default' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(refused, 'nothing listens on port 1');
    source.noteFailure(refused);
    source.noteFailure(new ApiException(500, 'Internal Server Error', '{}', {}));
    assert.equal((await source.clients()).kubeConfig, first.kubeConfig);

    source.noteFailure(new ApiException(401, 'Unauthorized', '{}', {}));
    const second = await source.clients();
    assert.notEqual(second.kubeConfig, first.kubeConfig, 'a 401 builds new clients');
    assert.equal(first.kubeConfig.openConnections(), 0);
    // The retired generation still works, on a connection per request.
    assert.ok(
      await first.core.readNamespace({ name: 'default' }).then(
        () => false,
        () => true,
      ),
    );
  });
});
