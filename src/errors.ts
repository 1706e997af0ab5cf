// Errors a user can cause (bad config, bad kubeconfig, wrong CA, denied CSR, expired token) are
// UserErrors: they name what they concern and how to fix it, and the CLI prints them as one line without a
// stack trace. Anything else is a programming error and crashes loudly.

interface UserErrorDetails {
  /** The file, flag, field or API object the problem is in, e.g. "/etc/nodecred/config.yaml: rotation.fraction". */
  where?: string;
  /** What the user should do about it. */
  fix?: string;
  /** A stable machine-readable code, e.g. "CSR_DENIED", for tests, metrics and exit-code mapping. */
  code?: string;
  cause?: unknown;
}

/** Marks UserErrors across copies of this module (see Symbol.hasInstance below). */
const USER_ERROR = Symbol.for('nodecred.UserError');

export class UserError extends Error {
  // The single executable loads `approve` from a separate bundle with its own copy of this class
  // (scripts/lib/bundle.ts): its errors must still be UserErrors to src/cli/main.ts, which prints them as one line.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as { [USER_ERROR]?: unknown })[USER_ERROR] === true;
  }
  readonly [USER_ERROR] = true;

  readonly where: string | undefined;
  readonly fix: string | undefined;
  readonly code: string;

  constructor(message: string, details: UserErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'UserError';
    this.where = details.where;
    this.fix = details.fix;
    this.code = details.code ?? 'USER_ERROR';
  }

  /** The one line the CLI prints: "<where>: <message> (fix: <fix>)"; no "<where>: " when the message names it. */
  oneLine(): string {
    const where = this.where && !this.message.includes(this.where) ? `${this.where}: ` : '';
    const fix = this.fix ? ` (fix: ${this.fix})` : '';
    return `${where}${this.message}${fix}`;
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** The message of any thrown value (an Error's message, else the value as a string). */
function messageOf(err: unknown): string {
  return (err as Error | undefined)?.message ?? String(err);
}

/**
 * The one line a log field or status shows for an error: a UserError's own line (where, what, fix), anything
 * else as `otherwise` describes it (default: its message).
 */
export function errorLine(err: unknown, otherwise: (err: unknown) => string = messageOf): string {
  return isUserError(err) ? err.oneLine() : otherwise(err);
}

/**
 * A value we did not write (a user's file, a certificate we do not trust yet) quoted for a one-line
 * message: JSON-escaped, so no newline or control character reaches a log line, and capped at 100 characters.
 */
export function quote(value: string): string {
  const s = JSON.stringify(value);
  return s.length > 100 ? `${s.slice(0, 97)}..."` : s;
}

/** What each errno means for the operator; `path` is the file or directory the operation was on. */
const ERRNO_FIXES: Record<string, (path: string) => string> = {
  ENOENT: (p) => `${p} (or a directory above it) does not exist: create it, or correct the path`,
  EACCES: (p) =>
    `nodecred (uid ${process.getuid?.() ?? '?'}) may not access ${p}: ` +
    'check the owner and mode of it and of the directories above it',
  EPERM: (p) =>
    `the operation on ${p} is not permitted: check its owner, mode and attributes, and the unit's sandboxing`,
  ENOSPC: (p) => `free space on the filesystem holding ${p} (or inodes: df -i)`,
  EDQUOT: (p) => `raise the disk quota for ${p}`,
  EROFS: (p) => `${p} is on a read-only filesystem: make it writable (systemd: ReadWritePaths=)`,
  ENOTDIR: (p) => `a component of ${p} is a file, not a directory: move that file away or choose another path`,
  EISDIR: (p) => `${p} is a directory where a file is expected: point the setting at a file`,
  ELOOP: (p) => `${p} is a loop of symbolic links: fix the links`,
  ENAMETOOLONG: (p) => `${p} is too long a path: choose a shorter one`,
  EEXIST: (p) => `${p} is in the way: move it away`,
  EBUSY: (p) => `${p} is in use (a mount point?): choose another path`,
  EMFILE: () => 'raise the limit on open files (ulimit -n; systemd: LimitNOFILE=)',
  ENFILE: () => "the system's open-file table is full: close files or raise fs.file-max",
  EIO: (p) => `the device holding ${p} reports I/O errors: check it (dmesg)`,
};

/** Verbs for the system calls Node names in its errors. */
const SYSCALL_VERBS: Record<string, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  mkdir: 'create directory',
  rmdir: 'remove directory',
  unlink: 'remove',
  rename: 'rename',
  link: 'link',
  symlink: 'create symbolic link',
  readlink: 'read symbolic link',
  scandir: 'list directory',
  stat: 'stat',
  lstat: 'stat',
  chmod: 'change the mode of',
  fsync: 'sync',
  copyfile: 'copy',
  realpath: 'resolve',
  access: 'access',
};

/** Paths in kernel virtual filesystems, where nothing nodecred writes can live. */
function isVirtualFsPath(path: string): boolean {
  return /^\/(proc|sys)(\/|$)/.test(path);
}

/** A Node error from a system call (it carries an errno `code` such as "EACCES" and the `syscall`). */
function isErrnoError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    /^E[A-Z0-9]+$/.test((err as NodeJS.ErrnoException).code!) &&
    typeof (err as NodeJS.ErrnoException).syscall === 'string'
  );
}

interface ErrnoContext {
  /** What was being done, e.g. "write" or "create the cert dir"; default: from the system call. */
  action?: string;
  /** The path to name; default: the error's own path. */
  path?: string;
  /** Appended to the message, e.g. "the installed certificate was left in place". */
  consequence?: string;
}

/**
 * The one way an errno failure reaches a user: "cannot <action> <path>: <ERRNO>[; consequence]" with the
 * fix for that errno (a path under /proc or /sys gets the fix "choose a directory on a disk"). Returns
 * undefined for anything that is not an errno error, so callers can rethrow it unchanged.
 */
export function errnoError(err: unknown, context: ErrnoContext = {}): UserError | undefined {
  if (!isErrnoError(err)) return undefined;
  const path = context.path ?? err.path;
  const action = context.action ?? SYSCALL_VERBS[err.syscall!] ?? err.syscall!;
  if (path === undefined) {
    return new UserError(`cannot ${action}: ${err.code}`, { fix: 'see the errno', code: 'FILESYSTEM', cause: err });
  }
  const fix = isVirtualFsPath(path)
    ? `${path} is inside a kernel virtual filesystem (/proc, /sys) that holds no files: ` +
      'choose a directory on a disk, e.g. under /var/lib'
    : (ERRNO_FIXES[err.code]?.(path) ?? `check ${path}`);
  const consequence = context.consequence ? `; ${context.consequence}` : '';
  return new UserError(`cannot ${action} ${path}: ${err.code}${consequence}`, {
    where: path,
    fix,
    code: 'FILESYSTEM',
    cause: err,
  });
}
