// The health and metrics endpoints. One request handler serves both listeners: the plain one on
// --health-listen (loopback by default, no auth, like kubelet's 10248 healthz) and the secure one on
// --secure-listen (kubelet-style authn/authz in front, see secure.ts).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsSource } from './exposition.ts';
import { UserError } from '../errors.ts';
import {
  livezChecks,
  readyzChecks,
  renderChecks,
  certificateReport,
  type HealthInput,
  type CheckResult,
} from './checks.ts';

// Not `import … from 'node:http'`: an ES module namespace of node:http reads every export, and its lazy
// WebSocket getter loads Node's internal undici (+13 MiB RSS, bench/imports.ts). The CommonJS object does not.
const { createServer } = process.getBuiltinModule('node:http');

export interface HealthSource {
  /** Gathers what the checks need; may refresh a cached API check. */
  input(): Promise<HealthInput>;
}

const CHECK_SETS: Record<'livez' | 'readyz' | 'healthz', (i: HealthInput) => CheckResult[]> = {
  livez: livezChecks,
  readyz: readyzChecks,
  healthz: (i) => [...livezChecks(i), ...readyzChecks(i)],
};

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

export function createHandler(source: HealthSource, registry: MetricsSource) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
    if (url.pathname === '/metrics') {
      return send(res, 200, await registry.metrics(), registry.contentType);
    }
    const [, endpoint, single] = /^\/(livez|readyz|healthz)(?:\/([a-z0-9-]+))?\/?$/.exec(url.pathname) ?? [];
    if (!endpoint) return send(res, 404, `not found; try /livez, /readyz, /healthz, /metrics\n`);
    const input = await source.input();
    let checks = CHECK_SETS[endpoint as keyof typeof CHECK_SETS](input);
    if (single) {
      const check = checks.find((c) => c.name === single);
      if (!check)
        return send(
          res,
          404,
          `no check "${single}" under /${endpoint}; checks: ${checks.map((c) => c.name).join(', ')}\n`,
        );
      checks = [check];
    }
    if ((req.headers.accept ?? '').includes('application/json')) {
      const ok = checks.filter((c) => !url.searchParams.getAll('exclude').includes(c.name)).every((c) => c.ok);
      const body = {
        status: ok ? 'ok' : 'failed',
        checks,
        certificates: {
          ...(input.clientManaged ? { client: certificateReport(input.client, input.now) } : {}),
          ...(input.servingEnabled ? { server: certificateReport(input.server, input.now) } : {}),
        },
      };
      return send(res, ok ? 200 : 500, `${JSON.stringify(body, null, 2)}\n`, 'application/json');
    }
    const rendered = single
      ? { status: checks[0]!.ok ? 200 : 500, body: checks[0]!.ok ? 'ok' : `${checks[0]!.message}\n` }
      : renderChecks(checks, {
          verbose: url.searchParams.has('verbose'),
          exclude: url.searchParams.getAll('exclude'),
          endpoint: endpoint as 'livez',
        });
    return send(res, rendered.status, rendered.body);
  };
}

export async function listen(
  server: Server,
  address: { host: string; port: number },
  where: string,
): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new UserError(`cannot listen on ${address.host}:${address.port}: ${err.code}`, {
          where,
          fix: err.code === 'EADDRINUSE' ? 'another process uses that port; pick another' : 'check the address',
          code: 'LISTEN_FAILED',
        }),
      ),
    );
    server.listen(address.port, address.host, () => resolve());
  });
  return server.address() as AddressInfo;
}

export function createHealthServer(source: HealthSource, registry: MetricsSource): Server {
  const handler = createHandler(source, registry);
  return createServer((req, res) => {
    handler(req, res).catch((err: unknown) => send(res, 500, `internal error: ${(err as Error).message}\n`));
  });
}
