// What both storm drivers share: a concurrency gate, the retry policy (the daemon's own backoff), and
// the result line they print.
import { readFileSync } from 'node:fs';
import { retryDelayMs, DEFAULT_BACKOFF } from '../../src/manager/policy.ts';

export function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
}

/** At most `limit` holders at once; waiters are served in order. */
export class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly limit: number;
  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Peak RSS of this process so far (VmHWM), KiB. */
export function peakRssKiB(): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export interface StormResult {
  count: number;
  concurrency: number;
  /** ms from the start signal until every node had its certificate (issued; for the manager: installed). */
  allDoneMs: number;
  perNodeMs: number[];
  failedAttempts: number;
  nodesNotDone: number;
  firstErrors: string[];
  startedAt: number;
  peakRssKiB: number;
  cpuMs: number;
}

export function report(r: StormResult): void {
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
}

/** Failed attempts as both storm programs count them, retried with the daemon's own backoff. */
export class Attempts {
  failed = 0;
  nodesNotDone = 0;
  readonly firstErrors: string[] = [];

  /** Runs `attempt` until it succeeds (true), or until the next wait would pass `deadline` (false: not done). */
  async untilDone(name: string, deadline: number, attempt: () => Promise<unknown>): Promise<boolean> {
    for (let n = 0; ; n++) {
      try {
        await attempt();
        return true;
      } catch (err) {
        this.failed++;
        if (this.firstErrors.length < 5) this.firstErrors.push(`${name}: ${(err as Error).message}`.slice(0, 300));
        const wait = retryDelayMs(n, DEFAULT_BACKOFF, Math.random);
        if (Date.now() + wait >= deadline) {
          this.nodesNotDone++;
          return false;
        }
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
}
