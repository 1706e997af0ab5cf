// What each module costs to load: a fresh `node` per sample imports one module (or several, cumulatively),
// then reports the time the import took and its RSS (VmRSS; RssAnon = the process's own memory, RssFile =
// pages of the node binary and files it touched). Baseline in the same run, interleaved: the same process
// importing nothing. The lever measurements of issue 13 come from here.
//
//   node bench/imports.ts [--runs N] [--cumulative] [MODULE ...]
//
// Default modules: the node side's entry points and every dependency they load. --cumulative imports them in
// the order given in one process and reports each step's increment instead. Runs from the repository root
// with the pinned Node; NODE_COMPILE_CACHE is set to a temporary directory, warmed by one discarded run, so
// TypeScript sources are measured as bin/nodecred runs them (bench/README.md).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { summarize, round } from './lib/stats.ts';

const REPO = resolve(import.meta.dirname, '..');
const NODE = join(REPO, 'node_modules/.bin/node');

const DEFAULT_MODULES = [
  'node:http',
  'node:https',
  'node:http2',
  'yaml',
  'prom-client',
  './src/pki/csr.ts',
  '@kubernetes/client-node',
  'undici',
  './src/kube/http-node-api.ts',
  './src/cli/bootstrap.ts',
  './src/cli/run.ts',
  './src/cli/approve.ts',
];

/** The program one sample runs: import, then print {ms, rss, anon, file} per step as JSON. */
const PROBE = `
const mem = () => {
  const s = require('node:fs').readFileSync('/proc/self/status', 'utf8');
  const kib = (k) => Number(new RegExp('^' + k + ':\\\\s+(\\\\d+)', 'm').exec(s)[1]);
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
};
(async () => {
  const out = [{ step: 'start', ms: 0, ...mem() }];
  for (const m of JSON.parse(process.argv[1])) {
    const t = performance.now();
    await import(m.startsWith('.') ? require('node:url').pathToFileURL(m).href : m);
    out.push({ step: m, ms: performance.now() - t, ...mem() });
  }
  console.log(JSON.stringify(out));
})();
`;

interface Step {
  step: string;
  ms: number;
  rss: number;
  anon: number;
  file: number;
}

function sample(modules: string[], env: NodeJS.ProcessEnv): Step[] {
  const out = execFileSync(NODE, ['-e', PROBE, JSON.stringify(modules)], { cwd: REPO, env, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Step[];
}

function main(): void {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : 5;
  const cumulative = argv.includes('--cumulative');
  const named = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--runs');
  const modules = named.length ? named : DEFAULT_MODULES;
  const cache = mkdtempSync(join(tmpdir(), 'nodecred-imports-'));
  const env = { ...process.env, NODE_COMPILE_CACHE: cache };
  try {
    const sets = cumulative ? [modules] : modules.map((m) => [m]);
    for (const set of sets) sample(set, env); // warms the compile cache; not counted
    const bare: Step[] = [];
    const results = new Map<string, Step[][]>();
    for (let r = 0; r < runs; r++) {
      bare.push(sample([], env)[0]!);
      for (const set of r % 2 ? [...sets].reverse() : sets) {
        const key = set.join(' ');
        results.set(key, [...(results.get(key) ?? []), sample(set, env)]);
      }
    }
    const mib = (kib: number) => round(kib / 1024, 1);
    const base = summarize(bare.map((b) => b.rss)).p50;
    const lines = [
      `node ${execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim()}, ${runs} runs each, medians; ` +
        `bare node: RSS ${mib(base)} MiB (anon ${mib(summarize(bare.map((b) => b.anon)).p50)}, ` +
        `file ${mib(summarize(bare.map((b) => b.file)).p50)})`,
      '',
      `| ${cumulative ? 'then imports' : 'imports'} | ms | RSS MiB | +RSS | +anon | +file |`,
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    ];
    for (const [key, samples] of results) {
      for (let i = 1; i < samples[0]!.length; i++) {
        const at = (f: (s: Step) => number, step: number) => summarize(samples.map((s) => f(s[step]!))).p50;
        const delta = (f: (s: Step) => number) => mib(at(f, i) - at(f, i - 1));
        const cells = [
          cumulative ? samples[0]![i]!.step : key,
          round(
            at((s) => s.ms, i),
            0,
          ),
          mib(at((s) => s.rss, i)),
          delta((s) => s.rss),
          delta((s) => s.anon),
          delta((s) => s.file),
        ];
        lines.push(`| ${cells.join(' | ')} |`);
      }
    }
    lines.push(
      '',
      `+RSS, +anon, +file: over ${cumulative ? 'the previous step' : 'the same process before the import'}`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

main();
