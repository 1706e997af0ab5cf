// Errors a user can cause (bad config, bad kubeconfig, wrong CA, denied CSR, expired token) are
// UserErrors: they name what they concern and how to fix it, and the CLI prints them as one line without a
// stack trace. Anything else is a programming error and crashes loudly.

export interface UserErrorDetails {
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

  /** The one line the CLI prints: "<where>: <message> (fix: <fix>)". */
  oneLine(): string {
    const where = this.where ? `${this.where}: ` : '';
    const fix = this.fix ? ` (fix: ${this.fix})` : '';
    return `${where}${this.message}${fix}`;
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}
