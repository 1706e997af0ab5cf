// Cold and warm start of each artifact: bin/nodecred (sources, Node's compile cache), the esbuild bundle
// (`npm run build`) and the single executable (`npm run build:sea`), against a bare `node` in the same run.
// A start is `ARTIFACT bootstrap --help`: the process starts, loads the `bootstrap` command with everything it
// imports, prints its help and exits. Cold: the page cache of every file the artifact reads is dropped
// first (POSIX_FADV_DONTNEED, as after a reboot) and, for the sources, the compile cache is empty; warm: the
// same again at once. Interleaved, order rotated every round.
//
//   node bench/start.ts [--runs N]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { bundleNodecred } from '../scripts/lib/bundle.ts';
import { buildSingleExecutable } from '../scripts/lib/sea.ts';
import { summarize, ratio, round } from './lib/stats.ts';

const REPO = resolve(import.meta.dirname, '..');
const NODE = realpathSync(join(REPO, 'node_modules/.bin/node'));

interface Artifact {
  name: string;
  /** The command line of one start. */
  argv: () => string[];
  env: () => NodeJS.ProcessEnv;
  /** Files and directories whose page cache a cold start drops. */
  files: string[];
  /** Makes the next start cold beyond the page cache (an empty compile cache). */
  reset?: () => void;
}

/** Every regular file under the given paths. */
function filesUnder(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const s = statSync(p);
    if (s.isFile()) out.push(p);
    else if (s.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  for (const p of paths) walk(p);
  return out;
}

/** Drops the page cache of the files (Node has no posix_fadvise; python3 does, and the tests use it). */
function dropCache(files: string[]): void {
  const script =
    'import os,sys\nfor p in sys.stdin.read().split("\\0"):\n' +
    '  if p:\n    fd=os.open(p,os.O_RDONLY)\n    os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\n    os.close(fd)\n';
  execFileSync('python3', ['-c', script], { input: files.join('\0') });
}

function timeOnce(a: Artifact): number {
  const t0 = performance.now();
  const r = spawnSync(a.argv()[0]!, a.argv().slice(1), { env: a.env(), stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${a.name}: exit ${r.status}: ${String(r.stderr).slice(-500)}`);
  return ms;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--runs');
  const runs = at >= 0 ? Number(process.argv[at + 1]) : 5;
  const tmp = mkdtempSync(join(tmpdir(), 'nodecred-start-'));
  try {
    const bundle = await bundleNodecred(join(REPO, 'src/cli/main.ts'), join(tmp, 'nodecred.mjs'), {
      format: 'esm',
      legalComments: 'none',
    });
    const sea = join(tmp, 'nodecred');
    await buildSingleExecutable(join(REPO, 'src/cli/main.ts'), sea);
    const compileCache = join(tmp, 'compile-cache');
    const sourceFiles = filesUnder([join(REPO, 'src'), join(REPO, 'node_modules'), join(REPO, 'package.json')]);
    const help = ['bootstrap', '--help'];
    const artifacts: Artifact[] = [
      {
        name: 'bare node (`node -e 0`)',
        argv: () => [NODE, '-e', '0'],
        env: () => process.env,
        files: [NODE],
      },
      {
        name: 'bin/nodecred (sources)',
        argv: () => [join(REPO, 'bin/nodecred'), ...help],
        env: () => ({ ...process.env, NODE_COMPILE_CACHE: compileCache }),
        files: [NODE, ...sourceFiles],
        reset: () => rmSync(compileCache, { recursive: true, force: true }),
      },
      {
        name: 'bundle (`npm run build`)',
        argv: () => [NODE, bundle, ...help],
        env: () => process.env,
        files: [NODE, bundle],
      },
      {
        name: 'single executable (`npm run build:sea`)',
        argv: () => [sea, ...help],
        env: () => process.env,
        files: [sea],
      },
    ];
    const cold = new Map<string, number[]>();
    const warm = new Map<string, number[]>();
    for (let r = 0; r < runs; r++) {
      for (let k = 0; k < artifacts.length; k++) {
        const a = artifacts[(k + r) % artifacts.length]!;
        a.reset?.();
        dropCache(a.files);
        cold.set(a.name, [...(cold.get(a.name) ?? []), timeOnce(a)]);
        warm.set(a.name, [...(warm.get(a.name) ?? []), timeOnce(a)]);
      }
      process.stderr.write(`start: round ${r + 1}/${runs}\n`);
    }
    const p50 = (m: Map<string, number[]>, name: string) => summarize(m.get(name)!).p50;
    const bare = artifacts[0]!.name;
    const lines = [
      `Node ${process.version}, ${runs} rounds, medians; ` +
        'a start is `ARTIFACT bootstrap --help` (bare node: `node -e 0`)',
      '',
      '| artifact | cold start | warm start | cold / bare node | warm / bare node |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...artifacts.map(
        (a) =>
          `| ${a.name} | ${round(p50(cold, a.name), 0)} ms | ${round(p50(warm, a.name), 0)} ms | ` +
          `${ratio(p50(cold, a.name), p50(cold, bare))}× | ${ratio(p50(warm, a.name), p50(warm, bare))}× |`,
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
