// The node-side commands (bootstrap, run, status, check) reach the API server through nodecred's own client:
// nothing they import, now or lazily, may pull in @kubernetes/client-node or the npm undici (≈ 0.8 s and
// 80 MiB, and a second HTTP stack). esbuild follows every static and dynamic import, as the bundle does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const REPO = resolve(import.meta.dirname, '../..');

async function inputsOf(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [join(REPO, entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    outdir: '/nonexistent',
  });
  return Object.keys(result.metafile.inputs);
}

const FORBIDDEN = [/node_modules\/@kubernetes\/client-node\//, /node_modules\/undici\//];

for (const entry of ['src/cli/bootstrap.ts', 'src/cli/run.ts', 'src/cli/status.ts']) {
  test(`${entry} imports neither @kubernetes/client-node nor undici`, async () => {
    const inputs = await inputsOf(entry);
    assert.ok(inputs.some((i) => i.endsWith('src/kube/http-node-api.ts') || i.endsWith('src/cli/status.ts')));
    const bad = inputs.filter((i) => FORBIDDEN.some((re) => re.test(i)));
    assert.deepEqual(bad.slice(0, 5), [], `${entry} reaches ${bad.length} forbidden modules`);
  });
}

test('the approver still uses @kubernetes/client-node (this check can fail)', async () => {
  const inputs = await inputsOf('src/cli/approve.ts');
  assert.ok(inputs.some((i) => FORBIDDEN[0]!.test(i)));
});
