// `npm run build`: one file, dist/nodecred.mjs, that runs every nodecred command on a VM image without
// node_modules: only Node ≥ 24 is needed there (or use the project's pinned node binary next to it).
// `npm run build -- --sea`: also dist/nodecred, a single executable (Node's SEA: the pinned Node 24 binary
// with the bundle injected), for images that should carry no Node at all.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleNodecred } from './lib/bundle.ts';
import { buildSingleExecutable } from './lib/sea.ts';
import { exitOnUncaught } from '../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('build');

const root = resolve(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const entry = join(root, 'src/cli/main.ts');
const mib = (path: string) => (statSync(path).size / 1048576).toFixed(1);

const started = Date.now();
const outfile = await bundleNodecred(entry, join(root, 'dist/nodecred.mjs'), {
  format: 'esm',
  legalComments: 'linked',
});
chmodSync(outfile, 0o755);
process.stdout.write(`built ${outfile} (${mib(outfile)} MiB, nodecred ${version}) in ${Date.now() - started} ms\n`);

if (process.argv.includes('--sea')) {
  const seaStarted = Date.now();
  const target = join(root, 'dist/nodecred');
  try {
    await buildSingleExecutable(entry, target);
    process.stdout.write(
      `built ${target} (single executable, ${mib(target)} MiB: ` +
        `${execFileSync(target, ['--version'], { encoding: 'utf8' }).trim()}) in ${Date.now() - seaStarted} ms\n`,
    );
  } catch (err) {
    process.stderr.write(`build: single executable not built: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
