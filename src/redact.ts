// Scrubbing secrets out of text we did not write (an exec credential plugin's or a hook's stderr) before it
// reaches an error message, /healthz JSON or a log line. Such text is useful to diagnose a failure ("could
// not assume role ...") but may carry what the program was handling: tokens, keys, passwords. What looks
// like one is replaced; ordinary words, paths and short numbers stay readable.

const REDACTED = '[redacted]';

const PEM_BLOCK = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(-----END [A-Z0-9 ]+-----|$)/g;
// "Bearer xyz", "Basic xyz" (an Authorization header echoed in a debug line).
const AUTH_SCHEME = /\b(bearer|basic)(\s+)[^\s"',;]+/gi;
// token=xyz, "password": "xyz", secret: xyz, X-Api-Key=xyz … : the name stays, the value goes.
const SECRET_NAMES = 'token|secret|password|passwd|pwd|apikey|api[-_]key|key|credentials?|auth|session|signature';
const NAMED_SECRET = new RegExp(`\\b([\\w-]*(?:${SECRET_NAMES}))(["']?\\s*[:=]\\s*["']?)([^\\s"',;&]+)`, 'gi');
// Long runs of token alphabet (base64, base64url, hex, JWTs, bootstrap tokens, access key ids).
const TOKEN_RUN = /[A-Za-z0-9+/=_.~-]{16,}/g;

function looksLikeSecret(run: string): boolean {
  if (run.length >= 40) return true;
  // A run that mixes letters and digits is a token; so is one whose letters are a random mix of cases
  // (CamelCase words such as ExpiredTokenException have few capitals). Paths and plain words are kept.
  if (/[A-Za-z]/.test(run) && /[0-9]/.test(run)) return true;
  const upper = run.replace(/[^A-Z]/g, '').length;
  const lower = run.replace(/[^a-z]/g, '').length;
  return upper >= 4 && lower >= 4 && upper / (upper + lower) >= 0.25;
}

/** `text` with everything that looks like a credential replaced by [redacted]. */
export function redactSecrets(text: string): string {
  return text
    .replace(PEM_BLOCK, `${REDACTED} PEM block`)
    .replace(AUTH_SCHEME, (_m, scheme: string, space: string) => `${scheme}${space}${REDACTED}`)
    .replace(NAMED_SECRET, (_m, name: string, sep: string) => `${name}${sep}${REDACTED}`)
    .replace(TOKEN_RUN, (run) => (run === REDACTED || !looksLikeSecret(run) ? run : REDACTED));
}
