// `npm run build`: one file, dist/nodecred.mjs, that runs every nodecred command on a VM image without
// node_modules: only Node ≥ 24 is needed there (or use the project's pinned node binary next to it).
// `npm run build -- --sea`: also dist/nodecred, a single executable (Node's SEA: the pinned Node 24 binary
// with the bundle injected), for images that should carry no Node at all.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildSingleExecutable } from './lib/sea.ts';

const root = resolve(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const sea = process.argv.includes('--sea');
const mib = (path: string) => (statSync(path).size / 1048576).toFixed(1);
const esm = {
  entryPoints: [join(root, 'src/cli/main.ts')],
  bundle: true,
  platform: 'node' as const,
  target: 'node24',
  minifySyntax: true,
  legalComments: 'linked' as const,
  define: { __NODECRED_VERSION__: JSON.stringify(version) },
  logLevel: 'warning' as const,
};

const started = Date.now();
const outfile = join(root, 'dist/nodecred.mjs');
await build({
  ...esm,
  outfile,
  format: 'esm',
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: `#!/usr/bin/env node\nimport { createRequire as __nodecredRequire } from 'node:module'; const require = __nodecredRequire(import.meta.url);` },
});
chmodSync(outfile, 0o755);
process.stdout.write(`built ${outfile} (${mib(outfile)} MiB, nodecred ${version}) in ${Date.now() - started} ms\n`);

if (sea) {
  const seaStarted = Date.now();
  const target = join(root, 'dist/nodecred');
  try {
    await buildSingleExecutable(join(root, 'src/cli/main.ts'), target);
    process.stdout.write(`built ${target} (single executable, ${mib(target)} MiB: ${execFileSync(target, ['--version'], { encoding: 'utf8' }).trim()}) in ${Date.now() - seaStarted} ms\n`);
  } catch (err) {
    process.stderr.write(`build: single executable not built: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
