// P7: what 1,000 requests with bogus bearer tokens cost the API server, read from its audit log. Anyone who
// can reach --secure-listen can send them; every token the listener has not seen could become a TokenReview
// by the node's identity. `npm run bench:secure -- [--requests 1000] [--concurrency 20] [--cluster DIR]`.
// Without --cluster it starts its own control plane (audit log on) and stops it at the end.
import { runMain } from '../src/cli/exit.ts';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { CertificatesV1Api, KubeConfig } from '@kubernetes/client-node';
import { up, down, readState, freePort, type ClusterState } from '../scripts/lib/local-cluster.ts';
import { AuditLog, describeRequests } from './lib/audit.ts';
import { admin, createToken, ensureBootstrapRbac, uniq, writeBootstrapKubeconfig } from './lib/cluster.ts';
import { killAll } from './lib/proc.ts';

const REPO = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '20' },
    // Client addresses to spread the requests over (127.0.0.2 …): one attacker, or many.
    sources: { type: 'string', default: '1' },
    cluster: { type: 'string' },
  },
});
const total = Number(values.requests);
const concurrency = Number(values.concurrency);
const sources = Math.min(250, Math.max(1, Number(values.sources)));

/** One GET /metrics with a fresh random bearer token; resolves to the status. */
function bogusRequest(port: number, ca: string, localAddress: string): Promise<number> {
  return new Promise((resolveStatus) => {
    const token = randomBytes(24).toString('base64url');
    const req = request(
      { host: '127.0.0.1', port, path: '/metrics', ca, localAddress, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolveStatus(res.statusCode ?? 0));
      },
    );
    req.setTimeout(60_000, () => req.destroy());
    req.on('error', () => resolveStatus(0));
    req.end();
  });
}

async function waitForLine(out: () => string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  while (!pattern.test(out())) {
    if (Date.now() > deadline) throw new Error(`daemon never logged ${pattern}; output:\n${out().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}

async function main(): Promise<void> {
  const own = values.cluster ? undefined : await mkdtemp(join(tmpdir(), 'nodecred-bench-secure-'));
  let state: ClusterState | null = values.cluster ? readState(values.cluster) : null;
  if (own) state = await up({ dir: join(own, 'cluster'), audit: true, log: (l) => process.stderr.write(`${l}\n`) });
  if (!state?.auditLog) throw new Error('the control plane must write an audit log (scripts/local-cluster up --audit)');
  const work = await mkdtemp(join(tmpdir(), 'nodecred-bench-secure-node-'));
  try {
    const a = admin(state);
    await ensureBootstrapRbac(a);
    const token = await createToken(a);
    const node = uniq('secure-bench');
    const bootstrap = await writeBootstrapKubeconfig(join(work, 'bootstrap.conf'), state, token.token);
    const port = await freePort();
    const child = spawn(
      join(REPO, 'bin/nodecred'),
      [
        'run',
        '--bootstrap-kubeconfig',
        bootstrap,
        '--node-name',
        node,
        '--cert-dir',
        join(work, 'pki'),
        '--kubeconfig',
        join(work, 'kubeconfig'),
        '--rotate-server-certificates',
        '--node-ip',
        '127.0.0.1',
        '--health-listen',
        '',
        '--secure-listen',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      // Approve the serving CSR as an admin would; the listener then serves the node's serving certificate.
      const certificates = (() => {
        const kc = new KubeConfig();
        kc.loadFromFile(state.kubeconfig);
        return kc.makeApiClient(CertificatesV1Api);
      })();
      const deadline = Date.now() + 120_000;
      for (;;) {
        const csr = (await certificates.listCertificateSigningRequest()).items.find(
          (x) => x.spec.username === `system:node:${node}` && x.spec.signerName === 'kubernetes.io/kubelet-serving',
        );
        if (csr) {
          const name = csr.metadata!.name!;
          await certificates.patchCertificateSigningRequestApproval({
            name,
            body: [
              {
                op: 'add',
                path: '/status/conditions',
                value: [{ type: 'Approved', status: 'True', reason: 'Bench', message: 'bench' }],
              },
            ],
          });
          break;
        }
        if (Date.now() > deadline) throw new Error(`no serving CSR; output:\n${out.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await waitForLine(() => out, /secure listener now serves the current serving certificate/, 120_000);

      const ca = await readFile(state.caFile, 'utf8');
      const audit = new AuditLog(state.auditLog);
      const from = Date.now();
      const statuses = new Map<number, number>();
      let sent = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (sent < total) {
            const source = `127.0.0.${2 + (sent % sources)}`;
            sent++;
            const s = await bogusRequest(port, ca, source);
            statuses.set(s, (statuses.get(s) ?? 0) + 1);
          }
        }),
      );
      const to = Date.now();
      // The audit log is written asynchronously: read until the node's count stops growing.
      let byNode = audit.by([]);
      for (let stable = 0, i = 0; stable < 3 && i < 120; i++) {
        await new Promise((r) => setTimeout(r, 500));
        await audit.refresh();
        const now = audit.by([`system:node:${node}`], from - 1000, to + 1000);
        stable = now.length === byNode.length ? stable + 1 : 0;
        byNode = now;
      }
      const tokenReviews = byNode.filter((r) => r.resource === 'tokenreviews').length;
      const result = {
        requests: total,
        concurrency,
        sources,
        seconds: (to - from) / 1000,
        responses: Object.fromEntries(statuses),
        apiRequestsByNode: byNode.length,
        tokenReviews,
        breakdown: describeRequests(byNode),
      };
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(
        `\n${total} bogus-token requests from ${sources} address(es) in ${result.seconds.toFixed(1)} s → ` +
          `${byNode.length} API requests by the node (${tokenReviews} TokenReviews)\n`,
      );
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    if (own) {
      await down(join(own, 'cluster'));
      await rm(own, { recursive: true, force: true });
    }
  }
}

// One line and a documented exit code for any failure (src/cli/exit.ts); the servers it started go first.
runMain('bench/secure-listener', () =>
  main().then(
    () => 0,
    (err: unknown) => {
      killAll();
      throw err;
    },
  ),
);
