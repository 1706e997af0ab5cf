// sd_notify through systemd's own `systemd-notify` tool. Node has no unix datagram sockets, and the npm
// `systemd-notify` package wraps the same tool but cannot send WATCHDOG=1, so we call the tool with the
// assignments ourselves. The tool sends from its own PID and then waits on a barrier (BARRIER=1 with a
// pipe fd) until the service manager has processed the message, so the unit needs NotifyAccess=all and no
// message is lost to the helper exiting first.
import { execFile } from 'node:child_process';

interface Notifier {
  readonly enabled: boolean;
  /** Sends the assignments ("READY=1", "STATUS=…"); never throws: a failed notification is logged by the caller. */
  notify(...assignments: string[]): Promise<void>;
}

export function systemdNotifier(env: NodeJS.ProcessEnv = process.env, tool = 'systemd-notify'): Notifier {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return { enabled: false, notify: async () => {} };
  // One at a time and in order: READY must not overtake STATUS, STOPPING must come last.
  let queue: Promise<void> = Promise.resolve();
  return {
    enabled: true,
    notify(...assignments: string[]) {
      const clean = assignments.map((a) => a.replace(/[\r\n]+/g, ' '));
      queue = queue.then(
        () =>
          new Promise<void>((resolve, reject) => {
            execFile(tool, clean, { env: { ...env, NOTIFY_SOCKET: socket }, timeout: 5000 }, (err, _out, stderr) =>
              err
                ? reject(
                    new Error(
                      `systemd-notify ${clean.map((a) => a.split('=')[0]).join(' ')} failed: ` +
                        `${stderr.trim() || err.message}`,
                    ),
                  )
                : resolve(),
            );
          }),
      );
      const mine = queue;
      queue = queue.catch(() => {});
      return mine;
    },
  };
}

/** Half of WATCHDOG_USEC (as sd_watchdog_enabled recommends), or null when no watchdog is configured for us. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}
