// Processes of the local test plane: start detached, wait until ready, stop (SIGTERM, then SIGKILL), and the
// small HTTP probe the readiness checks use. Shared by the control plane (local-cluster.ts), the node-side
// processes attached to it (attached.ts, kubelet.ts) and the etcd runbook's test cluster.
import { spawn } from 'node:child_process';
import { UserError } from '../../src/errors.ts';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';

/** A failure of the control plane a user can act on (a component that did not start, a port in use). */
export class ClusterError extends UserError {
  constructor(message: string) {
    super(message, { code: 'CLUSTER' });
    this.name = 'ClusterError';
  }
}

/** True while the process exists and is not a zombie (an exited child nobody reaped yet counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface HttpCheck {
  url: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** Default GET; a JSON body is sent with POST. */
  method?: string;
  body?: string;
  headers?: Record<string, string>;
}

/** GET a URL with TLS verification against the given CA; resolves to [status, body]. */
export function httpGet(check: HttpCheck, timeoutMs = 3000): Promise<[number, string]> {
  return new Promise((res, rej) => {
    const url = new URL(check.url);
    const options = {
      ...(check.ca ? { ca: check.ca } : {}),
      ...(check.cert ? { cert: check.cert, key: check.key } : {}),
      ...(check.method ? { method: check.method } : {}),
      headers: { ...(check.body ? { 'content-type': 'application/json' } : {}), ...check.headers },
      timeout: timeoutMs,
    };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (resp) => {
      let body = '';
      resp.on('data', (d: Buffer) => (body += d.toString()));
      resp.on('end', () => res([resp.statusCode ?? 0, body]));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', rej);
    req.end(check.body);
  });
}

interface WaitTarget {
  component: string;
  pid: number;
  logFile: string;
  ready: () => Promise<boolean>;
  timeoutMs: number;
}

/** Polls a readiness condition until it holds, the process dies, or the deadline passes. */
export async function waitReady(t: WaitTarget): Promise<number> {
  const start = Date.now();
  let delay = 100;
  let lastError = '';
  while (Date.now() - start < t.timeoutMs) {
    if (!isAlive(t.pid)) {
      throw new ClusterError(`${t.component} exited during start-up; last lines of ${t.logFile}:\n${tail(t.logFile)}`);
    }
    try {
      if (await t.ready()) return Date.now() - start;
      lastError = 'not ready yet';
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new ClusterError(
    `${t.component} not ready within ${t.timeoutMs / 1000}s (last check: ${lastError}); ` +
      `last lines of ${t.logFile}:\n${tail(t.logFile)}`,
  );
}

/** Starts `binary component args…` detached (its own process group, outliving this process), output to logFile. */
export function startProcess(
  binary: string,
  component: string,
  args: string[],
  logFile: string,
  opts: { cwd?: string; env?: Record<string, string> } = {},
): number {
  const fd = openSync(logFile, 'a');
  const child = spawn(binary, [component, ...args], {
    detached: true,
    stdio: ['ignore', fd, fd],
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
  });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new ClusterError(`could not start ${component} from ${binary}`);
  return child.pid;
}

export async function stopPids(pids: number[], graceMs: number): Promise<void> {
  for (const pid of [...pids].reverse()) signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(isAlive)) signalGroup(pid, 'SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (pids.some(isAlive) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 50));
  const left = pids.filter(isAlive);
  if (left.length) throw new ClusterError(`processes still running after SIGKILL: ${left.join(', ')}`);
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  // Each component was started detached, as the leader of its own process group.
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch {
      /* already gone */
    }
  }
}
