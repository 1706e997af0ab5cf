// `npm run simulate`: the fleet simulation. Prints the side-by-side table and the invariants, writes the
// JSON result and the SVG plot, and exits 1 when an invariant fails.
//
//   npm run simulate -- [--nodes 10000] [--days 365] [--seed 1] [--lifetime 720h] [--recheck 12h]
//                       [--shards 2] [--workers 2] [--policy both|nodecred|kubelet] [--out bench/results]
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseDuration } from '../../src/config/duration.ts';
import type { Policy } from './fleet.ts';
import { simulate } from './simulate.ts';
import { invariantLines, table } from './table.ts';
import { plot } from './svg.ts';
import { DEFAULT_SCENARIO } from './trace.ts';

const args = process.argv.slice(2);
function flag(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}

const policy = flag('policy', 'both');
const scenario = {
  ...DEFAULT_SCENARIO,
  nodes: Number(flag('nodes', String(DEFAULT_SCENARIO.nodes))),
  days: Number(flag('days', String(DEFAULT_SCENARIO.days))),
  seed: Number(flag('seed', String(DEFAULT_SCENARIO.seed))),
  lifetimeMs: parseDuration(flag('lifetime', '720h'), '--lifetime'),
  recheckMs: parseDuration(flag('recheck', '12h'), '--recheck'),
};
const out = flag('out', join(import.meta.dirname, '..', 'results'));
const cpu0 = process.cpuUsage();
const wall0 = performance.now();
const result = await simulate({
  scenario,
  policies: policy === 'both' ? ['nodecred', 'kubelet'] : [policy as Policy],
  shards: Number(flag('shards', '2')),
  workers: Number(flag('workers', '2')),
  progress: true,
});
// The whole process: the main thread, the workers and V8's helper threads (garbage collection).
const cpu = process.cpuUsage(cpu0);
const wallSeconds = Math.round((performance.now() - wall0) / 100) / 10;
const cpuSeconds = Math.round((cpu.user + cpu.system) / 1e5) / 10;

await mkdir(out, { recursive: true });
const { outageIntervals: _, ...json } = result;
await writeFile(join(out, 'simulation.json'), `${JSON.stringify({ ...json, wallSeconds, cpuSeconds })}\n`);
await writeFile(
  join(out, 'simulation.svg'),
  plot({
    results: result.results,
    outages: result.outageIntervals,
    start: scenario.start,
    days: scenario.days,
    title:
      `${scenario.nodes.toLocaleString('en')} nodes × ${scenario.days} days, ` +
      `certificates of ${flag('lifetime', '720h')}, seed ${scenario.seed}`,
  }),
);
process.stdout.write(`${table(result)}\n\nInvariants (nodecred, every node):\n\n${invariantLines(result)}\n`);
process.stdout.write(
  `\n${scenario.nodes} nodes × ${scenario.days} days: ${wallSeconds} s wall, ${cpuSeconds} s CPU; ${out}\n`,
);
process.exitCode = result.invariants.every((i) => i.ok) ? 0 : 1;
