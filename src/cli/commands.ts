// The command table. Each command lives in its own module and owns its flags and help text; the table owns
// the names and one-line summaries, and loads a command's module only when it runs: `bootstrap` never pays
// for the approver's Kubernetes client, nor `approve` for the node's metrics and file watching.
export interface Command {
  /** Returns the process exit code; throws UserError for problems the user can fix. */
  run(args: string[]): Promise<number>;
}

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
  /**
   * A long-lived daemon that is idle almost all the time: V8 is set for memory over speed before its modules
   * load (main.ts MEMORY_OVER_SPEED). Its hot work is native (TLS, keys, JSON); the optimizing compilers'
   * code and buffers cost ~10 MiB of RSS for as long as it runs (bench P3, issue 13). One-shot commands keep
   * the defaults: start-up latency is what they are measured by (P1).
   */
  memoryOverSpeed?: boolean;
}

export const COMMANDS: CommandEntry[] = [
  {
    name: 'bootstrap',
    summary: 'obtain a client certificate and kubeconfig (and serving certificate) once, then exit',
    load: async () => (await import('./bootstrap.ts')).bootstrapCommand,
  },
  {
    name: 'run',
    summary: 'run the daemon: bootstrap if needed, then keep client and serving certificates fresh',
    load: async () => (await import('./run.ts')).runCommand,
    memoryOverSpeed: true,
  },
  {
    name: 'reload',
    summary: 'validate the config of a running daemon and send it SIGHUP (for ExecReload=)',
    load: async () => (await import('./reload.ts')).reloadCommand,
  },
  {
    name: 'status',
    summary: 'show every managed (and listed) certificate: expiry, residual time, issuer, rotation window, state',
    load: async () => (await import('./status.ts')).statusCommand,
  },
  {
    name: 'check',
    summary: 'exit 0 when every certificate is valid for at least --min-valid, 1 when not, 2 on usage errors',
    load: async () => (await import('./status.ts')).checkCommand,
  },
  {
    name: 'approve',
    summary: 'run the kubelet-serving CSR approver (cluster side; leader-elected)',
    load: async () => (await import('./approve.ts')).approveCommand,
  },
];
