// Reads the apiserver audit log (Metadata level, one JSON event per line) incrementally and keeps only what
// the benchmarks count: who asked for what, and when. Long-running requests (watches) log two stages
// (ResponseStarted, ResponseComplete); a request is counted once, by auditID.
import { open } from 'node:fs/promises';

export interface AuditRequest {
  auditID: string;
  user: string;
  verb: string;
  uri: string;
  resource: string;
  subresource: string;
  name: string;
  code: number;
  /** ms since epoch (apiserver clock, microsecond precision kept as a fraction). */
  received: number;
  /** ms since epoch of the last stage seen (ResponseComplete for ordinary requests). */
  completed: number;
}

/** RFC 3339 with microseconds → ms since epoch, keeping the sub-millisecond part. */
function parseMicroTime(s: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s);
  if (!m) return Date.parse(s);
  const whole = Date.parse(`${m[1]}Z`);
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return whole + frac;
}

interface RawEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

export class AuditLog {
  readonly path: string;
  private offset = 0;
  private partial = '';
  private readonly byId = new Map<string, AuditRequest>();
  /** In file order of first appearance. */
  readonly requests: AuditRequest[] = [];

  constructor(path: string) {
    this.path = path;
  }

  /** Reads whatever was appended since the last call. */
  async refresh(): Promise<void> {
    const fh = await open(this.path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (!fh) return;
    try {
      const chunk = Buffer.alloc(1 << 20);
      for (let guard = 0; guard < 100_000; guard++) {
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        const text = this.partial + chunk.subarray(0, bytesRead).toString('utf8');
        const lines = text.split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) if (line) this.add(line);
      }
    } finally {
      await fh.close();
    }
  }

  private add(line: string): void {
    let e: RawEvent;
    try {
      e = JSON.parse(line) as RawEvent;
    } catch {
      return;
    }
    const seen = this.byId.get(e.auditID);
    const completed = parseMicroTime(e.stageTimestamp);
    if (seen) {
      seen.completed = Math.max(seen.completed, completed);
      if (e.responseStatus?.code) seen.code = e.responseStatus.code;
      return;
    }
    const r: AuditRequest = {
      auditID: e.auditID,
      user: e.user?.username ?? '',
      verb: e.verb,
      uri: e.requestURI,
      resource: e.objectRef?.resource ?? '',
      subresource: e.objectRef?.subresource ?? '',
      name: e.objectRef?.name ?? '',
      code: e.responseStatus?.code ?? 0,
      received: parseMicroTime(e.requestReceivedTimestamp),
      completed,
    };
    this.byId.set(e.auditID, r);
    this.requests.push(r);
  }

  /** Requests by any of `users`, received in [from, to] (ms since epoch) when given. */
  by(users: Iterable<string>, from = -Infinity, to = Infinity): AuditRequest[] {
    const set = new Set(users);
    return this.requests.filter((r) => set.has(r.user) && r.received >= from && r.received <= to);
  }

  /** When kube-controller-manager's signer wrote the certificate into the CSR's status (ms since epoch). */
  issuedAt(csrName: string): number | undefined {
    const r = this.requests.find(
      (x) =>
        x.name === csrName &&
        x.resource === 'certificatesigningrequests' &&
        x.subresource === 'status' &&
        x.verb === 'update' &&
        x.code === 200,
    );
    return r?.completed;
  }

  /** Waits (bounded, backing off) until `check` finds what it needs in the log. */
  async waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let delay = 20;
    for (let i = 0; i < 1000; i++) {
      await this.refresh();
      const v = check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 500);
    }
    throw new Error(`audit log ${this.path}: ${what} not found within ${timeoutMs} ms`);
  }
}

/** "get certificatesigningrequests" style breakdown of a request list. */
export function describeRequests(rs: AuditRequest[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rs) {
    const what = `${r.resource || r.uri.split('?')[0]}${r.subresource ? `/${r.subresource}` : ''}`;
    const key = `${r.verb} ${what}${r.code && r.code >= 400 ? ` (${r.code})` : ''}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
