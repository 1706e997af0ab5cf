// The one esbuild configuration for nodecred's single-file builds: `npm run build` (dist/nodecred.mjs), the
// single executable (scripts/lib/sea.ts, CommonJS) and the benchmarks (bench/run.ts, from the current
// sources into their temp dir), so what is measured is what ships.
import { build, type Plugin } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');

export interface BundleOptions {
  /** esm: a file `node` runs (or, with the shebang, the host does); cjs: a single executable's main. */
  format: 'esm' | 'cjs';
  /** linked: third-party license texts beside the output (what is shipped); none: not wanted. */
  legalComments: 'linked' | 'none';
  /**
   * cjs only: bundle `nodecred approve` (the approver and @kubernetes/client-node, 80 % of the code) into this
   * separate file, which the main bundle loads as the single executable's asset APPROVER_ASSET when `approve`
   * runs. The node-side commands then neither parse nor hold it (bench/imports.ts: −24 MiB, −30 ms).
   */
  approverAsset?: string;
}

/** The single executable's asset name for the approver bundle (scripts/lib/sea.ts). */
export const APPROVER_ASSET = 'approver.cjs';

/** commands.ts's `import('./approve.ts')`, answered from the single executable's asset instead. */
const approverFromAsset: Plugin = {
  name: 'approver-from-asset',
  setup(b) {
    b.onResolve({ filter: /^\.\/approve\.ts$/ }, (args) =>
      args.importer.endsWith(join('src', 'cli', 'commands.ts')) ? { path: 'approver-asset', namespace: 'sea' } : null,
    );
    b.onLoad({ filter: /.*/, namespace: 'sea' }, () => ({
      loader: 'js',
      contents: [
        `const { getAsset } = require('node:sea');`,
        `const { runInThisContext } = require('node:vm');`,
        `const source = getAsset(${JSON.stringify(APPROVER_ASSET)}, 'utf8');`,
        `const load = runInThisContext('(function (exports, require, module) {' + source + '\\n})', {`,
        `  filename: ${JSON.stringify(APPROVER_ASSET)},`,
        `});`,
        `const approver = { exports: {} };`,
        `load(approver.exports, require, approver);`,
        `module.exports = approver.exports;`,
      ].join('\n'),
    }));
  },
};

export async function bundleNodecred(entry: string, outfile: string, opts: BundleOptions): Promise<string> {
  if (opts.approverAsset) {
    if (opts.format !== 'cjs') throw new Error('bundleNodecred: approverAsset needs the cjs format');
    await bundleOne(join(REPO, 'src/cli/approve.ts'), opts.approverAsset, opts, []);
  }
  await bundleOne(entry, outfile, opts, opts.approverAsset ? [approverFromAsset] : []);
  return outfile;
}

async function bundleOne(entry: string, outfile: string, opts: BundleOptions, plugins: Plugin[]): Promise<void> {
  const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  await build({
    entryPoints: [entry],
    outfile,
    plugins,
    bundle: true,
    platform: 'node',
    format: opts.format,
    target: 'node24',
    minifySyntax: true,
    legalComments: opts.legalComments,
    define: { __NODECRED_VERSION__: JSON.stringify(version) },
    logLevel: 'warning',
    ...(opts.format === 'esm'
      ? // CommonJS dependencies call require(); give the ESM bundle one.
        {
          banner: {
            js:
              `#!/usr/bin/env node\nimport { createRequire as __nodecredRequire } from 'node:module'; const ` +
              `require = __nodecredRequire(import.meta.url);`,
          },
        }
      : // The one import.meta use (src/version.ts) sits in the branch the version define removes; callers
        // check the output (scripts/lib/sea.ts) so no other use can slip through unnoticed.
        { logOverride: { 'empty-import-meta': 'silent' } }),
  });
}
