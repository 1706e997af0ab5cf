// Single-file builds for the benchmarks, made the way `npm run build` (scripts/build.ts) makes
// dist/nodecred.mjs, but from the current sources into the run's temporary directory: the shipped form of
// nodecred, and the floor script bundled the same way so the two compare like for like.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');

export async function bundle(entry: string, outfile: string): Promise<string> {
  const { build } = await import('esbuild');
  const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minifySyntax: true,
    legalComments: 'none',
    define: { __NODECRED_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies call require(); give the ESM bundle one (as scripts/build.ts does).
    banner: { js: `import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);` },
    logLevel: 'error',
  });
  return outfile;
}
