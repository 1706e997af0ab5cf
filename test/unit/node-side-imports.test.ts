// The node-side commands (bootstrap, run, reload, status, check) reach the API server through nodecred's own
// client: nothing they import, now or lazily, may pull in @kubernetes/client-node or the npm undici (≈ 0.8 s
// and 80 MiB, and a second HTTP stack). esbuild follows every static and dynamic import, as the bundle does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const REPO = resolve(import.meta.dirname, '../..');
const ENTRIES = ['bootstrap', 'run', 'reload', 'status', 'approve'];
const FORBIDDEN = [/node_modules\/@kubernetes\/client-node\//, /node_modules\/undici\//];

/** Per entry (src/cli/<name>.ts): every module its bundle holds. One build for all of them and all tests. */
let built: Promise<Map<string, string[]>> | undefined;
function inputsByEntry(): Promise<Map<string, string[]>> {
  built ??= buildAll();
  return built;
}

async function buildAll(): Promise<Map<string, string[]>> {
  const result = await build({
    entryPoints: ENTRIES.map((e) => join(REPO, 'src/cli', `${e}.ts`)),
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    outdir: '/nonexistent',
  });
  const out = new Map<string, string[]>();
  for (const o of Object.values(result.metafile.outputs)) {
    const entry = o.entryPoint?.replace(/^.*src\/cli\/(\w+)\.ts$/, '$1');
    if (entry) out.set(entry, Object.keys(o.inputs));
  }
  return out;
}

test('the node-side commands import neither @kubernetes/client-node nor undici; the approver does', async () => {
  const inputs = await inputsByEntry();
  for (const entry of ENTRIES.filter((e) => e !== 'approve')) {
    const files = inputs.get(entry) ?? [];
    assert.ok(files.length > 10, `${entry}: bundled`);
    const bad = files.filter((i) => FORBIDDEN.some((re) => re.test(i)));
    assert.deepEqual(bad.slice(0, 5), [], `${entry} reaches ${bad.length} forbidden modules`);
  }
  assert.ok(
    inputs.get('bootstrap')!.some((i) => i.endsWith('src/kube/http-node-api.ts')),
    'bootstrap uses the node client',
  );
  // The check can fail: the approver's bundle does hold client-node.
  assert.ok(inputs.get('approve')!.some((i) => FORBIDDEN[0]!.test(i)));
});

// Issue 13: an idle daemon held ~8 MiB for @peculiar/x509's ASN.1 stack and ~2 MiB for prom-client; the node
// side reads and writes X.509 with src/pki/x509-read.ts and x509-write.ts, and renders /metrics itself.
const HEAVY = [
  /node_modules\/@peculiar\//,
  /node_modules\/reflect-metadata\//,
  /node_modules\/tsyringe\//,
  /node_modules\/prom-client\//,
  /node_modules\/@opentelemetry\//,
];

test('the node-side commands hold neither @peculiar/x509 and its ASN.1 stack nor prom-client', async () => {
  const inputs = await inputsByEntry();
  for (const entry of ENTRIES.filter((e) => e !== 'approve')) {
    const bad = (inputs.get(entry) ?? []).filter((i) => HEAVY.some((re) => re.test(i)));
    assert.deepEqual(bad.slice(0, 5), [], `${entry} reaches ${bad.length} of those modules`);
  }
  // The check can fail: the approver's metrics are prom-client's.
  assert.ok(inputs.get('approve')!.some((i) => /node_modules\/prom-client\//.test(i)));
});

// What esbuild cannot see: builtins loaded by the ES module namespaces of node:util and node:http (their lazy
// getters load worker_threads and Node's internal undici), and the yaml library, which the daemon needs only
// for documents its block reader leaves to it. Node itself says what a process that imports the daemon and
// reads a block kubeconfig and config has loaded.
test('the daemon loads neither worker_threads nor the internal undici, nor the yaml library for block YAML', () => {
  const script = `
    import { createRequire } from 'node:module';
    import { writeFileSync } from 'node:fs';
    await import(${JSON.stringify(join(REPO, 'src/cli/run.ts'))});
    const { parseKubeconfig } = await import(${JSON.stringify(join(REPO, 'src/kube/kubeconfig.ts'))});
    const { parseYamlDocument } = await import(${JSON.stringify(join(REPO, 'src/config/yaml-file.ts'))});
    const kubeconfig = [
      'apiVersion: v1', 'kind: Config', 'clusters:', '- name: c', '  cluster:', '    server: https://10.0.0.1:6443',
      'users:', '- name: u', '  user:', '    token: abc', 'contexts:', '- name: x', '  context:', '    cluster: c',
      '    user: u', 'current-context: x', ''].join('\\n');
    parseKubeconfig(kubeconfig, '/k');
    parseYamlDocument('nodeName: worker-1\\nlogLevel: info\\n', '/c');
    const flow = process.argv.includes('flow');
    if (flow) parseYamlDocument('nodeName: {a: 1}\\n', '/c');
    const yaml = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/yaml/'));
    process.stdout.write(JSON.stringify({ builtins: process.moduleLoadList, yaml: yaml.length }));
  `;
  const load = (...args: string[]) => {
    const r = spawnSync(join(REPO, 'node_modules/.bin/node'), ['--input-type=module', '-e', script, ...args], {
      cwd: REPO,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { builtins: string[]; yaml: number };
  };
  const block = load();
  const heavy = block.builtins.filter((m) => /^NativeModule (worker_threads|internal\/deps\/undici\/undici)$/.test(m));
  assert.deepEqual(heavy, []);
  assert.equal(block.yaml, 0, 'block YAML read without the library');
  // The check can fail: a flow mapping is the library's, and it is then loaded.
  assert.ok(load('flow').yaml > 0);
});
