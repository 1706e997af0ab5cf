// `npm run build`: one file, dist/nodecred.mjs, that runs every nodecred command on a VM image without
// node_modules: only Node ≥ 24 is needed there (or use the project's pinned node binary next to it).
// `npm run build -- --sea`: also dist/nodecred, a single executable (Node's SEA: the pinned Node 24 binary
// with the bundle injected), for images that should carry no Node at all.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync, renameSync, realpathSync } from 'node:fs';
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
  const target = join(root, 'dist/nodecred');
  // A failed build must not leave last time's executable beside a new bundle.
  rmSync(target, { force: true });
  // The pinned Node (package.json "node"), never whatever node runs this script: a distro or nvm build may
  // link a shared libnode, and the executable would then need it on every host.
  const pinnedNode = realpathSync(join(root, 'node_modules/.bin/node'));
  // Staged inside dist/ so the final rename never crosses filesystems (a tmpfs /tmp).
  const work = mkdtempSync(join(root, 'dist/.sea-'));
  try {
    // Node 24's SEA runs a CommonJS main only. The one import.meta use (src/version.ts) sits in the branch
    // the version define removes; the check below fails the build if any other ever reaches the output.
    const main = join(work, 'nodecred.cjs');
    await build({ ...common, outfile: main, format: 'cjs', legalComments: 'none', logOverride: { 'empty-import-meta': 'silent' } });
    if (readFileSync(main, 'utf8').includes('import_meta')) {
      throw new Error('the CommonJS build uses import.meta, which is empty inside a single executable: remove that use from src/ or its dependency');
    }
    const blob = join(work, 'sea-prep.blob');
    // The code cache (V8 bytecode for this exact binary) cuts start-up by a third.
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
    try {
      execFileSync(pinnedNode, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`node --experimental-sea-config failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`);
    }
    const exe = join(work, 'nodecred');
    copyFileSync(pinnedNode, exe);
    const { inject } = await import('postject');
    // postject warns "Can't find string offset for section name '.note.100'" for every Node binary on Linux;
    // anything else it says is passed on.
    const warn = console.warn;
    console.warn = (...args: unknown[]) => { if (!String(args[0]).includes("Can't find string offset for section name")) warn(...args); };
    try {
      await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
    } finally {
      console.warn = warn;
    }
    chmodSync(exe, 0o755);
    renameSync(exe, target);
    process.stdout.write(`built ${target} (single executable, ${mib(target)} MiB: ${execFileSync(target, ['--version'], { encoding: 'utf8' }).trim()}) in ${Date.now() - seaStarted} ms\n`);
  } catch (err) {
    process.stderr.write(`build: single executable not built: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
