// `npm run build`: one file, dist/nodecred.mjs, that runs every nodecred command on a VM image without
// node_modules: only Node ≥ 24 is needed there (or use the project's pinned node binary next to it).
// `npm run build -- --sea`: also dist/nodecred, a single executable (Node's SEA: the pinned Node 24 binary
// with the bundle injected), for images that should carry no Node at all.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const sea = process.argv.includes('--sea');
const mib = (path: string) => (statSync(path).size / 1048576).toFixed(1);
const common = {
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
  ...common,
  outfile,
  format: 'esm',
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: `#!/usr/bin/env node\nimport { createRequire as __nodecredRequire } from 'node:module'; const require = __nodecredRequire(import.meta.url);` },
});
chmodSync(outfile, 0o755);
process.stdout.write(`built ${outfile} (${mib(outfile)} MiB, nodecred ${version}) in ${Date.now() - started} ms\n`);

if (sea) {
  const seaStarted = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'nodecred-sea-'));
  try {
    // Node 24's SEA runs a CommonJS main only. The one import.meta use (src/version.ts) sits in the branch
    // the version define removes, so esbuild's "import.meta will be empty" warning does not apply.
    const main = join(work, 'nodecred.cjs');
    await build({ ...common, outfile: main, format: 'cjs', legalComments: 'none', logOverride: { 'empty-import-meta': 'silent' } });
    const blob = join(work, 'sea-prep.blob');
    // The code cache (V8 bytecode for this exact binary) cuts start-up by a quarter.
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
    try {
      execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'pipe' });
    } catch (err) {
      process.stderr.write(`build: node --experimental-sea-config failed:\n${String((err as { stderr?: Buffer }).stderr ?? err)}\n`);
      process.exit(1);
    }
    // The binary that runs this script is the pinned Node (bin/nodecred and npm scripts use it).
    const exe = join(work, 'nodecred');
    copyFileSync(process.execPath, exe);
    const { inject } = await import('postject');
    // postject prints harmless "Can't find string offset for section name '.note.100'" warnings on Linux.
    const warn = console.warn;
    console.warn = () => {};
    try {
      await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
    } finally {
      console.warn = warn;
    }
    chmodSync(exe, 0o755);
    const target = join(root, 'dist/nodecred');
    renameSync(exe, target);
    process.stdout.write(`built ${target} (single executable, ${mib(target)} MiB, Node ${process.version}) in ${Date.now() - seaStarted} ms\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
