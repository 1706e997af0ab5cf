// Post-install hooks: run a command and/or signal a process so consumers (a web server using the serving
// certificate, a sidecar) pick up the new files. Time-limited; a failing hook is logged and never blocks
// or undoes a rotation.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { HooksConfig } from './config/schema.ts';
import type { Logger } from './log.ts';

export interface InstallInfo {
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
            ...process.env,
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
              { hook: program, kind: info.kind, why, stderr: stderr.slice(-300) },
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
      const pid = Number((await readFile(hooks.pidFile, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no valid PID in ${hooks.pidFile}`);
      process.kill(pid, hooks.signal as NodeJS.Signals);
      log.info({ pid, signal: hooks.signal, kind: info.kind }, 'signalled process after install');
    } catch (err) {
      log.warn({ pidFile: hooks.pidFile, err: (err as Error).message }, 'could not signal the process after install');
    }
  }
}
