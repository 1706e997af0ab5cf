// A real systemd as PID 1, for tests of units: a minimal Debian rootfs (mmdebstrap, cached) booted with
// systemd-nspawn, driven from the host with nsenter. The host's systemd need not be PID 1 (it is not on the
// CI machine): the container runs under --keep-unit --register=no, without machined or the host's D-Bus.
// The host network is shared, so the test control plane on 127.0.0.1 is reachable from inside.
//
// API (see test/integration/systemd-unit.test.ts for a whole example):
//   const rootfs = await cachedRootfs({ log });            // ~/.cache/nodecred/rootfs-…, built once (≈ 30 s)
//   const box = await bootContainer({ rootfs, log });      // a fresh, throw-away root (tmpfs overlay)
//   t.after(() => box.stop());                             // always: stops the container, even after a failure
//   await box.copyIn(hostFile, '/usr/local/bin/x', 0o755);  // or box.writeFile('/etc/x.conf', text, 0o600)
//   await box.systemctl('enable', '--now', 'x.service');   // → { code, stdout, stderr }
//   await box.show('x.service', ['ActiveState']);          // → { ActiveState: 'active' }
//   await box.journal('x.service');                        // the unit's journal, messages only
//   box.path('/var/lib/x')                                 // the host path of a path inside (to stat, read)
// Every boot starts from the pristine cached rootfs (--volatile=overlay: writes go to a tmpfs that vanishes
// with the container), so tests never see each other's files.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

type Log = (line: string) => void;

/** Runs a host command to completion (never rejects: the caller judges the exit code). */
export function runCommand(
  argv: string[],
  opts: { input?: string; timeoutMs?: number; onStderr?: Log } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      for (const line of d.toString().split('\n').filter(Boolean)) opts.onStderr?.(line);
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${opts.timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A command that exits before reading its input closes the pipe: EPIPE on stdin, which (unhandled)
    // crashed the whole test file; the exit code and stderr already say what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** systemd as PID 1 and the D-Bus that systemctl talks to: the smallest image that boots. */
export const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'dbus'];
const SUITE = 'bookworm';

/** Why this machine cannot boot a container, or null when it can. */
export function nspawnUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'systemd-nspawn needs root';
  for (const tool of ['systemd-nspawn', 'mmdebstrap', 'nsenter'])
    if (!['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, tool))))
      return `${tool} is not installed (scripts/install-test-deps installs it)`;
  return null;
}

/**
 * A minimal Debian rootfs with BASE_PACKAGES plus `packages`, built by mmdebstrap on first use and cached
 * in ~/.cache/nodecred (NODECRED_CACHE) under a name keyed by the suite and the package list. Built into a
 * temporary directory and renamed into place, so an interrupted or concurrent build never leaves a
 * half-made rootfs under the cached name.
 */
export async function cachedRootfs(opts: { packages?: string[]; log?: Log } = {}): Promise<string> {
  const packages = [...new Set([...BASE_PACKAGES, ...(opts.packages ?? [])])].sort();
  const key = createHash('sha256')
    .update(JSON.stringify({ suite: SUITE, variant: 'minbase', packages }))
    .digest('hex')
    .slice(0, 12);
  const cache = process.env.NODECRED_CACHE ?? join(homedir(), '.cache', 'nodecred');
  const target = join(cache, `rootfs-${SUITE}-${key}`);
  if (existsSync(join(target, 'usr/lib/systemd/systemd'))) return target;
  await mkdir(cache, { recursive: true });
  const temp = `${target}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  opts.log?.(
    `nspawn: building a minimal Debian ${SUITE} rootfs (mmdebstrap minbase + ${packages.join(', ')}); ` +
      `once, ≈ 30 s, cached in ${target}`,
  );
  const started = performance.now();
  const built = await runCommand(['mmdebstrap', '--variant=minbase', `--include=${packages.join(',')}`, SUITE, temp], {
    timeoutMs: 15 * 60_000,
  });
  if (built.code !== 0) {
    await rm(temp, { recursive: true, force: true });
    throw new Error(`mmdebstrap failed (exit ${built.code}): ${built.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
  await rename(temp, target).catch(async (err: NodeJS.ErrnoException) => {
    // Another test run built the same rootfs meanwhile: keep theirs.
    await rm(temp, { recursive: true, force: true });
    if (!existsSync(target)) throw err;
  });
  opts.log?.(`nspawn: rootfs built in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return target;
}

/** nspawn refuses to start without a writable /run/systemd/nspawn; on a host without systemd it is missing. */
async function ensureNspawnRunDir(): Promise<void> {
  const mounted = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .some((l) => l.split(' ')[1] === '/run/systemd/nspawn');
  if (mounted) return;
  await mkdir('/run/systemd/nspawn', { recursive: true });
  // Two test files may boot containers at once: check and mount under one lock, or the second tmpfs would
  // be stacked over the first and hide the running container's files.
  const r = await runCommand([
    'flock',
    '/run/nodecred-nspawn-mount.lock',
    'sh',
    '-c',
    'mountpoint -q /run/systemd/nspawn || mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn',
  ]);
  if (r.code !== 0 && !(await readFile('/proc/self/mounts', 'utf8')).includes(' /run/systemd/nspawn '))
    throw new Error(`cannot mount a tmpfs at /run/systemd/nspawn: ${r.stderr.trim()}`);
}

export interface Container {
  readonly name: string;
  /** The container's PID 1 (its systemd) as the host sees it. */
  readonly pid: number;
  /** The host path of `path` inside the container (through /proc/PID/root). */
  path(path: string): string;
  writeFile(path: string, data: string | Uint8Array, mode?: number): Promise<void>;
  copyIn(hostPath: string, path: string, mode?: number): Promise<void>;
  /** Runs a command inside the container (all its namespaces), like a shell on the booted machine. */
  run(argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  systemctl(...args: string[]): Promise<RunResult>;
  /** The unit's journal, messages only (`journalctl -u UNIT -o cat`). */
  journal(unit: string): Promise<string>;
  show(unit: string, properties: string[]): Promise<Record<string, string>>;
  /** What the container printed on its console so far (boot messages). */
  console(): string;
  /** Powers the container off (SIGKILL after 30 s); safe to call twice or after a failed boot. */
  stop(): Promise<void>;
}

/** The container's PID 1: nspawn's child (found through /proc, since nspawn does not print it). */
async function containerInit(nspawn: ChildProcess): Promise<number | undefined> {
  const children = await readFile(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, 'utf8').catch(() => '');
  // nspawn's first child can be a short-lived helper that sets the container up and exits; entering its
  // namespaces later fails ("stat of /proc/PID/ns/user"). The init is the child that has become systemd.
  for (const pid of children.trim().split(/\s+/).map(Number)) {
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    if (pid > 0 && comm.trim() === 'systemd') return pid;
  }
  return undefined;
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Boots `rootfs` with systemd as PID 1 and waits until the system is up (running or degraded). */
export async function bootContainer(opts: { rootfs: string; log?: Log; bootTimeoutMs?: number }): Promise<Container> {
  await ensureNspawnRunDir();
  const name = `nodecred-${randomBytes(4).toString('hex')}`;
  const nspawn = spawn(
    'systemd-nspawn',
    ['--quiet', '--register=no', '--keep-unit', '--volatile=overlay', `--machine=${name}`, '-D', opts.rootfs, '-b'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let consoleText = '';
  nspawn.stdout!.on('data', (d: Buffer) => (consoleText += d.toString()));
  nspawn.stderr!.on('data', (d: Buffer) => (consoleText += d.toString()));
  const exited = new Promise<void>((r) => nspawn.once('exit', () => r()));
  // If the test process dies without stop(), the container must not outlive it.
  const killOnExit = () => nspawn.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (nspawn.exitCode === null && nspawn.signalCode === null) {
      nspawn.kill('SIGTERM'); // nspawn asks the container's systemd to power off
      const timer = setTimeout(() => nspawn.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    process.removeListener('exit', killOnExit);
  };
  try {
    const pid = await waitUntil('the container to start', 60_000, async () => {
      if (nspawn.exitCode !== null)
        throw new Error(`systemd-nspawn exited ${nspawn.exitCode}: ${consoleText.slice(-1500)}`);
      return containerInit(nspawn);
    });
    const run = (argv: string[], o: { input?: string; timeoutMs?: number } = {}) =>
      runCommand(['nsenter', '-t', String(pid), '-a', ...argv], o);
    let lastAnswer = '(none)';
    const state = await waitUntil('the container to boot', opts.bootTimeoutMs ?? 120_000, async () => {
      if (nspawn.exitCode !== null) throw new Error(`the container stopped while booting: ${consoleText.slice(-1500)}`);
      const r = await run(['systemctl', 'is-system-running', '--wait'], { timeoutMs: 30_000 });
      lastAnswer = `${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`;
      const s = r.stdout.trim();
      return s === 'running' || s === 'degraded' ? s : undefined;
    }).catch(async (err: Error) => {
      // A boot that never finishes is a job that never ends: say which, and what the console showed.
      const jobs = await run(['systemctl', '--no-pager', 'list-jobs'], { timeoutMs: 10_000 }).catch(() => null);
      throw new Error(
        `${err.message}; is-system-running said: ${lastAnswer}; jobs: ${jobs?.stdout.trim() || '(none)'}; ` +
          `console: ${consoleText.slice(-1500)}`,
      );
    });
    opts.log?.(`nspawn: ${name} booted (${state}), systemd is pid ${pid} on the host`);
    const path = (p: string) => `/proc/${pid}/root${p}`;
    const box: Container = {
      name,
      pid,
      path,
      async writeFile(p, data, mode = 0o644) {
        await mkdir(dirname(path(p)), { recursive: true });
        await writeFile(path(p), data, { mode });
        await chmod(path(p), mode);
      },
      async copyIn(hostPath, p, mode = 0o644) {
        await mkdir(dirname(path(p)), { recursive: true });
        await copyFile(hostPath, path(p));
        await chmod(path(p), mode);
      },
      run,
      systemctl: (...args) => run(['systemctl', '--no-pager', ...args], { timeoutMs: 180_000 }),
      journal: async (unit) => (await run(['journalctl', '--no-pager', '-o', 'cat', '-u', unit])).stdout,
      async show(unit, properties) {
        const r = await run(['systemctl', 'show', unit, ...properties.map((p) => `--property=${p}`)]);
        return Object.fromEntries(
          r.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
      },
      console: () => consoleText,
      stop,
    };
    return box;
  } catch (err) {
    await stop();
    throw err;
  }
}
