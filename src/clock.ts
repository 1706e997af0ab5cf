// Time and chance, injected. Policy code (the manager, the CSR wait, the daemon loop) reads the time, sets
// timers, sleeps and draws random numbers only through a Clock, so a test or the fleet simulator can run it
// on a simulated clock: a year of rotations in seconds, deterministic given a seed. lint/no-wall-clock.grit
// enforces this in the policy modules (biome.json lists them); this file is the one real implementation.

export interface Clock {
  /** Milliseconds since the epoch, as this node's clock reads it (it may be skewed: certificates say so). */
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. Never rejects; the caller checks `signal`. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` once after `ms`; the returned function cancels it (harmless after it fired). */
  timer(ms: number, fn: () => void): () => void;
  /** Uniform in [0, 1). */
  random(): number;
}

/** setTimeout's largest delay; longer ones would fire at once, so the system clock re-arms in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function systemTimer(ms: number, fn: () => void): () => void {
  const due = Date.now() + Math.max(0, ms);
  let handle: NodeJS.Timeout;
  const arm = () => {
    const left = due - Date.now();
    handle = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fn, Math.max(0, left));
  };
  arm();
  return () => clearTimeout(handle);
}

/** The real clock: wall time, Node's timers, Math.random. */
export const systemClock: Clock = {
  now: () => Date.now(),
  timer: systemTimer,
  random: Math.random,
  sleep: (ms, signal) => abortableSleep(systemTimer, ms, signal),
};

/** A sleep built on any timer: resolves when the timer fires or the signal aborts, and cleans up both. */
export function abortableSleep(
  timer: (ms: number, fn: () => void) => () => void,
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const cancel = timer(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * An AbortSignal that aborts after `ms` on `clock` or when `parent` aborts, whichever comes first.
 * `release` cancels the timer and detaches from the parent once the signal is no longer needed.
 */
export function deadlineSignal(
  clock: Clock,
  ms: number,
  parent?: AbortSignal,
): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  const cancel = clock.timer(ms, abort);
  if (parent?.aborted) controller.abort();
  else parent?.addEventListener('abort', abort, { once: true });
  return {
    signal: controller.signal,
    release: () => {
      cancel();
      parent?.removeEventListener('abort', abort);
    },
  };
}
