// What both storm drivers share: a concurrency gate, the retry policy (the daemon's own backoff), and
// the result line they print.
import { readFileSync } from 'node:fs';

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
