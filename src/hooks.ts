// Post-install hooks: run a command and/or signal a process so consumers (a web server using the serving
// certificate, a sidecar) pick up the new files. Time-limited; a failing hook is logged and never blocks
// or undoes a rotation.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { HooksConfig } from './config/schema.ts';
import type { Logger } from './log.ts';
import { redactSecrets } from './redact.ts';
import { DISCOVERY_TOKEN_ENV } from './cli/flags.ts';

interface InstallInfo {
  kind: 'client' | 'server';
  certFile: string;
  kubeconfig: string;
}

export async function runHooks(hooks: HooksConfig, info: InstallInfo, log: Logger): Promise<void> {
  if (hooks.command) {
    const [program, ...args] = hooks.command;
    await new Promise<void>((resolve) => {
      execFile(
        program!,
        args,
        {
          timeout: hooks.timeoutMs,
          killSignal: 'SIGKILL',
          env: {
            ...hookEnvironment(process.env),
            NODECRED_KIND: info.kind,
            NODECRED_CERT_FILE: info.certFile,
            NODECRED_KUBECONFIG: info.kubeconfig,
          },
        },
        (err, _stdout, stderr) => {
          if (err) {
            const why = (err as { killed?: boolean }).killed
              ? `killed after ${hooks.timeoutMs} ms`
              : `exit ${(err as { code?: unknown }).code}`;
            log.warn(
              { hook: program, kind: info.kind, why, stderr: redactSecrets(stderr).slice(-300) },
              'post-install hook failed (the certificate is installed regardless)',
            );
          } else {
            log.info({ hook: program, kind: info.kind }, 'post-install hook ran');
          }
          resolve();
        },
      );
    });
  }
  if (hooks.pidFile) {
    try {
      const pid = await readTrustedPid(hooks.pidFile);
      process.kill(pid, hooks.signal as NodeJS.Signals);
      log.info({ pid, signal: hooks.signal, kind: info.kind }, 'signalled process after install');
    } catch (err) {
      log.warn({ pidFile: hooks.pidFile, err: (err as Error).message }, 'could not signal the process after install');
    }
  }
}

/**
 * nodecred's environment without the bootstrap token it may hold there: a cluster-wide credential (any node
 * name's client certificate) that a reload script, and whatever it starts, has no use for.
 */
function hookEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { [DISCOVERY_TOKEN_ENV]: _token, ...rest } = env;
  return rest;
}

interface PidFileStat {
  uid: number;
  mode: number;
  isFile: boolean;
}

/**
 * Why the PID in this file must not be signalled, or undefined when it may. nodecred runs as root: whoever
 * can write the file chooses which process gets the signal (SIGKILL to sshd, say). So the file must be a
 * regular file owned by root or by nodecred's own user, and writable by nobody else.
 */
export function pidFileProblem(st: PidFileStat, ourUid: number): string | undefined {
  if (!st.isFile) return 'is not a regular file';
  if (st.uid !== 0 && st.uid !== ourUid)
    return `is owned by uid ${st.uid}, not root${ourUid ? ` or uid ${ourUid}` : ''}`;
  if (st.mode & 0o022) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    return `is ${st.mode & 0o020 ? 'group' : 'world'}-writable (mode ${mode})`;
  }
  return undefined;
}

/** The PID in a pid file that passes pidFileProblem; checked on the open file, so a swap cannot slip in. */
async function readTrustedPid(path: string): Promise<number> {
  // O_NOFOLLOW: a symlink is refused rather than followed to a file someone else chose.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
    throw new Error(err.code === 'ELOOP' ? `${path} is a symlink; refusing to follow it` : err.message);
  });
  try {
    const st = await fh.stat();
    const problem = pidFileProblem({ uid: st.uid, mode: st.mode, isFile: st.isFile() }, process.getuid?.() ?? 0);
    if (problem)
      throw new Error(`${path} ${problem}; refusing to signal the PID in it (fix: chown root and chmod go-w)`);
    const pid = Number((await fh.readFile('utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no valid PID in ${path}`);
    return pid;
  } finally {
    await fh.close();
  }
}
