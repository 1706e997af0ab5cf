// Simulated time. One Scheduler holds the true time and a queue of timers; each simulated node reads it
// through its own Clock (src/clock.ts), offset by the node's clock skew and with its own random stream.
// Time jumps from one timer to the next; before it moves on, every reaction to the timers just fired has
// run to completion (all promise continuations, and any real asynchronous work registered with track()),
// so a node never sees time pass in the middle of a step. Same inputs and seed, same run.
import { abortableSleep, type Clock } from '../../src/clock.ts';
import type { Rng } from './rng.ts';

interface Timer {
  time: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
  fired: boolean;
}

export class Scheduler {
  private time: number;
  private seq = 0;
  private heap: Timer[] = [];
  private cancelled = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Timers fired so far (a measure of the simulation's work). */
  fired = 0;

  constructor(start: number) {
    this.time = start;
  }

  get now(): number {
    return this.time;
  }

  /** Calls `fn` at `time` (never earlier than now); the returned function cancels it. */
  at(time: number, fn: () => void): () => void {
    const timer: Timer = { time: Math.max(time, this.time), seq: this.seq++, fn, cancelled: false, fired: false };
    this.push(timer);
    return () => {
      if (timer.cancelled || timer.fired) return;
      timer.cancelled = true;
      // Cancelled timers wait in the heap until their time; drop them when they pile up (CSR watches set
      // a deadline hours ahead and cancel it a minute later).
      if (++this.cancelled > 100_000 && this.cancelled > this.heap.length / 2) this.compact();
    };
  }

  /** Real asynchronous work (threadpool crypto) the simulated world must wait for before time moves on. */
  track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    const done = () => this.inFlight.delete(work);
    work.then(done, done);
    return work;
  }

  /** Runs every timer due up to `end`, then sets the time to `end`. */
  async runUntil(end: number): Promise<void> {
    if (this.running) throw new Error('Scheduler.runUntil is already running: time has one driver');
    this.running = true;
    try {
      await this.run(end);
    } finally {
      this.running = false;
    }
  }
  private running = false;

  private async run(end: number): Promise<void> {
    // Whatever was started before (a node powered on) reacts at the current time first.
    await this.settle();
    while (this.heap.length > 0 && this.heap[0]!.time <= end) {
      this.time = this.heap[0]!.time;
      while (this.heap.length > 0 && this.heap[0]!.time === this.time) {
        const timer = this.pop();
        if (timer.cancelled) {
          this.cancelled--;
          continue;
        }
        this.fired++;
        timer.fired = true;
        timer.fn();
      }
      await this.settle();
    }
    this.time = Math.max(this.time, end);
  }

  /** Lets every continuation of what just happened run, including tracked real work. */
  async settle(): Promise<void> {
    do {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    } while (this.inFlight.size > 0);
  }

  private compact(): void {
    const live = this.heap.filter((t) => !t.cancelled);
    live.sort((a, b) => (before(a, b) ? -1 : 1));
    this.heap = live;
    this.cancelled = 0;
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): Timer {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/** A node's clock: the scheduler's time plus the node's skew, the node's own random stream. */
export class SimClock implements Clock {
  private readonly scheduler: Scheduler;
  readonly skewMs: number;
  private readonly rng: Rng;

  constructor(scheduler: Scheduler, rng: Rng, skewMs = 0) {
    this.scheduler = scheduler;
    this.rng = rng;
    this.skewMs = skewMs;
  }

  now(): number {
    return this.scheduler.now + this.skewMs;
  }

  timer(ms: number, fn: () => void): () => void {
    return this.scheduler.at(this.scheduler.now + Math.max(0, ms), fn);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return abortableSleep((delay, fn) => this.timer(delay, fn), ms, signal);
  }

  random(): number {
    return this.rng.next();
  }
}
