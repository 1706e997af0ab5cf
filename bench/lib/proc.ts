// Child processes for the benchmarks: every one is registered so an interrupted run stops them all (by
// pid, never by name), every run is bounded by a timeout, and /proc sampling reads what `ps` would.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const live = new Set<ChildProcess>();

/** Kills every child still running (SIGKILL to its pid); used on the way out. */
export function killAll(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  live.clear();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Date.now() just before spawn. */
  startedAt: number;
  /** Wall time from spawn to exit (performance.now based). */
  wallMs: number;
}

/** Runs a command to completion; kills it (SIGKILL) and rejects after timeoutMs. */
export function run(cmd: string, args: string[], opts: SpawnOptions & { timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    const t0 = performance.now();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${cmd} ${args.slice(0, 2).join(' ')} did not finish within ${opts.timeoutMs} ms; stderr: ` +
            `${stderr.slice(-600)}`,
        ),
      );
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      const wallMs = performance.now() - t0;
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, startedAt, wallMs });
    });
  });
}

export interface Background {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the first line matching `pattern` (bounded); rejects if the process exits first. */
  waitForLine(pattern: RegExp, timeoutMs: number, after?: number): Promise<{ line: string; index: number }>;
  lines(): string[];
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Starts a long-running process and keeps its output lines. */
export function start(cmd: string, args: string[], opts: SpawnOptions = {}): Background {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  if (!child.pid) throw new Error(`could not start ${cmd}`);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) =>
    child.on('close', (code) => {
      live.delete(child);
      for (const l of listeners) l();
      r(code);
    }),
  );
  const lines = () => out.split('\n').filter(Boolean);
  return {
    child,
    pid: child.pid,
    output: () => out,
    lines,
    waitForLine: (pattern, timeoutMs, after = 0) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const ls = lines();
          for (let i = after; i < ls.length; i++) {
            if (pattern.test(ls[i]!)) {
              done();
              return resolve({ line: ls[i]!, index: i });
            }
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(
              new Error(
                `${cmd} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}; ` +
                  `output:\n${out.slice(-1500)}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${cmd}: no line matching ${pattern} within ${timeoutMs} ms; output:\n${out.slice(-1500)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      }),
    stop: async (timeoutMs = 15_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux; checked by `getconf CLK_TCK` in run.ts

export interface ProcSample {
  /** Date.now() */
  at: number;
  rssKiB: number;
  /** RssAnon: the process's own memory (heap, stacks, malloc), without pages of the binary and files. */
  rssAnonKiB: number;
  /** RssFile: pages of the executable and other files mapped in (shared with other processes running them). */
  rssFileKiB: number;
  /** utime + stime, in clock ticks */
  cpuTicks: number;
}

/** VmRSS from /proc/<pid>/status and utime+stime from /proc/<pid>/stat. */
export function sampleProc(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return {
    at: Date.now(),
    rssKiB: kib('VmRSS'),
    rssAnonKiB: kib('RssAnon'),
    rssFileKiB: kib('RssFile'),
    cpuTicks: utime + stime,
  };
}
