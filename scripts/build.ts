// `npm run build`: one file, dist/nodecred.mjs, that runs every nodecred command on a VM image without
// node_modules: only Node ≥ 24 is needed there (or use the project's pinned node binary next to it).
import { build } from 'esbuild';
import { readFileSync, statSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const outfile = join(root, 'dist/nodecred.mjs');
const started = Date.now();
await build({
  entryPoints: [join(root, 'src/cli/main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  minifySyntax: true,
  legalComments: 'linked',
  define: { __NODECRED_VERSION__: JSON.stringify(version) },
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: `#!/usr/bin/env node\nimport { createRequire as __nodecredRequire } from 'node:module'; const require = __nodecredRequire(import.meta.url);` },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
process.stdout.write(`built ${outfile} (${(statSync(outfile).size / 1048576).toFixed(1)} MiB, nodecred ${version}) in ${Date.now() - started} ms\n`);
