// What an HTTP answer from the API server means, before the contract's classification (explainApiError in
// api.ts) turns it into a UserError, TransientApiError or ApiStatusError: a non-2xx answer becomes an
// HttpStatusError carrying the status and the API server's Status object (its message and reason), read
// through the same fields (`status`, `body`) api.ts reads from any client's errors. Pure.

/** The metav1.Status the API server sends with a failure, as far as nodecred reads it. */
interface ApiStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  /** The HTTP status; statusOf() in api.ts reads it. */
  readonly status: number;
  /** The Status object (or undefined when the body was not one); apiMessage() in api.ts reads its message. */
  readonly body: ApiStatus | undefined;
  /** Seconds from a Retry-After header (429, 503), when the server sent one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, body: ApiStatus | undefined, retryAfterSeconds?: number) {
    // Never the raw body: for a failed request it may echo what was sent.
    super(`HTTP ${status}${body?.reason ? ` ${body.reason}` : ''}${body?.message ? `: ${body.message}` : ''}`);
    this.status = status;
    this.body = body;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The Status object in a response body, if it is one. */
export function parseStatus(text: string): ApiStatus | undefined {
  try {
    const o = JSON.parse(text) as unknown;
    if (!o || typeof o !== 'object' || Array.isArray(o)) return undefined;
    const s = o as Record<string, unknown>;
    if (s.kind !== 'Status') return undefined;
    const out: ApiStatus = { kind: 'Status' };
    if (typeof s.status === 'string') out.status = s.status;
    if (typeof s.message === 'string') out.message = s.message;
    if (typeof s.reason === 'string') out.reason = s.reason;
    if (typeof s.code === 'number') out.code = s.code;
    return out;
  } catch {
    return undefined;
  }
}

/** Retry-After in seconds (the API server sends whole seconds); undefined when absent or a date. */
export function retryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

/** A 2xx body as JSON, or the HttpStatusError for anything else. */
export function readJsonResponse<T>(
  status: number,
  text: string,
  headers: Record<string, string | string[] | undefined> = {},
): T {
  if (status < 200 || status > 299)
    throw new HttpStatusError(status, parseStatus(text), retryAfter(headers['retry-after']));
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new HttpStatusError(status, { message: `response is not JSON (${text.length} bytes)` });
  }
}
