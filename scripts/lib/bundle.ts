// The one esbuild configuration for nodecred's single-file builds: `npm run build` (dist/nodecred.mjs), the
// single executable (scripts/lib/sea.ts, CommonJS) and the benchmarks (bench/run.ts, from the current
// sources into their temp dir), so what is measured is what ships.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');

export interface BundleOptions {
  /** esm: a file `node` runs (or, with the shebang, the host does); cjs: a single executable's main. */
  format: 'esm' | 'cjs';
  /** linked: third-party license texts beside the output (what is shipped); none: not wanted. */
  legalComments: 'linked' | 'none';
}

export async function bundleNodecred(entry: string, outfile: string, opts: BundleOptions): Promise<string> {
  const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  await build({
    entryPoints: [entry],
    outfile,
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
            js: `#!/usr/bin/env node\nimport { createRequire as __nodecredRequire } from 'node:module'; const require = __nodecredRequire(import.meta.url);`,
          },
        }
      : // The one import.meta use (src/version.ts) sits in the branch the version define removes; callers
        // check the output (scripts/lib/sea.ts) so no other use can slip through unnoticed.
        { logOverride: { 'empty-import-meta': 'silent' } }),
  });
  return outfile;
}
