// What the benchmark phases (bench/phases/p1.ts … p5.ts) share: paths, the options, the result rows, the
// context each phase runs in, and small helpers for logs and output. bench/run.ts is the entry point.
import { join, resolve } from 'node:path';
import type { ClusterState } from '../../scripts/lib/local-cluster.ts';
import type { AuditLog } from './audit.ts';
import { round } from './stats.ts';
import type { Admin } from './cluster.ts';
import type { FlowRun } from './flows.ts';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const NODE = join(REPO, 'node_modules/.bin/node');
export const NODECRED = join(REPO, 'bin/nodecred');
export const FLOOR = join(REPO, 'bench/baselines/floor.ts');
export const SHELL = join(REPO, 'bench/baselines/poll-shell.sh');
export const RESULTS = join(REPO, 'bench/results');
export const PHASES = ['P1', 'P2', 'P3', 'P4', 'P5'] as const;
export type Phase = (typeof PHASES)[number];

// ---------------------------------------------------------------------------------------------- options

export interface Options {
  only: Set<Phase>;
  quick: boolean;
  p1Runs: number;
  idleSeconds: number;
  rotations: number;
  installs: number;
  stormNodes: number;
  stormConcurrency: number;
  stormRounds: number;
  keepTmp: boolean;
  noBundle: boolean;
}

export const progress = (s: string) => process.stderr.write(`bench: ${s}\n`);
export const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : 'n/a');
export const mib = (kib: number) => `${round(kib / 1024, 1)} MiB`;

interface LogLine {
  time: number;
  msg: string;
  [k: string]: unknown;
}

export function parseLogLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o.time === 'string' && typeof o.msg === 'string')
        out.push({ ...o, time: Date.parse(o.time), msg: o.msg });
    } catch {
      /* not a log line */
    }
  }
  return out;
}

/** Rotates the list by k: interleaving order changes every iteration so no flow always goes first. */
export const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

export const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

export interface Row {
  phase: string;
  figure: string;
  /** Who was measured; default "nodecred". */
  who?: string;
  subject: string;
  baseline: string;
  baselineValue: string;
  ratio: number | null;
  /** For "p50 / p95" rows: the p95 ratio. */
  ratio95?: number | null;
  /** Shown instead of "n/a" when there is no ratio (e.g. a baseline of 0). */
  note?: string;
}

export interface Ctx {
  opts: Options;
  state: ClusterState;
  admin: Admin;
  audit: AuditLog;
  tmp: string;
  rows: Row[];
  results: Record<string, unknown>;
  /** Filled by P1 and reused by P2/P4. */
  bootstrapRuns?: FlowRun[];
}

export function row(ctx: Ctx, r: Row): void {
  ctx.rows.push(r);
}
