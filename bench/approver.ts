// P6 approver throughput: N serving CSRs from N real node identities (client certificates for
// system:node:<name> from the cluster CA) for N Node objects, decided by `nodecred approve` against the bare
// approver baseline (bench/baselines/bare-approver.ts) in the same run, on the same control plane.
// Reports decisions per second (first create → last decision seen) and p50/p95 latency (create answered
// or sent → decision seen on a watch), and the ratios. Usage: node bench/approver.ts [--nodes 1000] [--rounds 1]
import { x509 } from '../src/pki/x509.ts';
import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  KubeConfig,
  CoreV1Api,
  CertificatesV1Api,
  Watch,
  type V1CertificateSigningRequest,
} from '@kubernetes/client-node';
import { up, down, type ClusterState } from '../scripts/lib/local-cluster.ts';
import { buildCsrPem } from '../src/pki/csr.ts';
import { encodePrivateKeyPem } from '../src/pki/keys.ts';
import { summarize, ratio, round } from './lib/stats.ts';

const REPO = resolve(import.meta.dirname, '..');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--nodes', 1000);
const ROUNDS = arg('--rounds', 1);
const CONCURRENCY = 20;
const SIGNER = 'kubernetes.io/kubelet-serving';

async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

async function retry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
  }
}

interface NodeId {
  name: string;
  ip: string;
  key: KeyObject;
  kc: KubeConfig;
}

async function makeNodes(state: ClusterState, admin: KubeConfig, runId: string): Promise<NodeId[]> {
  const core = admin.makeApiClient(CoreV1Api);
  const caPem = await readFile(state.caFile, 'utf8');
  const caKey = createPrivateKey(await readFile(state.caKeyFile));
  const caCert = new x509.X509Certificate(caPem);
  const signingKey = caKey.toCryptoKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const nodes: NodeId[] = [];
  for (let i = 0; i < N; i++) {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const name = `p6-${runId}-${i}`;
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomBytes(8)
          .toString('hex')
          .replace(/^[89a-f]/, '1'),
        subject: `O=system:nodes, CN=system:node:${name}`,
        issuer: caCert.subjectName,
        notBefore: new Date(Date.now() - 3600_000),
        notAfter: new Date(Date.now() + 86400_000),
        publicKey: await webcrypto.subtle.importKey(
          'spki',
          keys.publicKey.export({ type: 'spki', format: 'der' }),
          { name: 'ECDSA', namedCurve: 'P-256' },
          true,
          ['verify'],
        ),
        signingKey,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: [new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2'])],
      },
      webcrypto,
    );
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: state.apiserver, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false },
      ],
      users: [
        {
          name: 'u',
          certData: Buffer.from(cert.toString('pem')).toString('base64'),
          keyData: Buffer.from(encodePrivateKeyPem(keys.privateKey)).toString('base64'),
        },
      ],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    nodes.push({ name, ip: `10.${60 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, key: keys.privateKey, kc });
  }
  await pool(nodes, CONCURRENCY, async (n) => {
    await retry(() => core.createNode({ body: { metadata: { name: n.name } } }));
    await retry(async () => {
      const node = await core.readNodeStatus({ name: n.name });
      node.status = { ...(node.status ?? {}), addresses: [{ type: 'InternalIP', address: n.ip }] };
      await core.replaceNodeStatus({ name: n.name, body: node });
    });
  });
  return nodes;
}

function startApprover(cmd: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    const lines = createInterface(child.stdout!);
    lines.on('line', (l) => {
      if (ready.test(l)) res(child);
    });
    child.on('exit', (code) => rej(new Error(`${cmd} exited ${code} before it was ready`)));
  });
}

interface RoundResult {
  decisionsPerSecond: number;
  latencyMs: ReturnType<typeof summarize>;
  fromSentMs: ReturnType<typeof summarize>;
  approved: number;
  denied: number;
  seconds: number;
}

async function round1(
  _state: ClusterState,
  admin: KubeConfig,
  nodes: NodeId[],
  label: string,
  approver: () => Promise<ChildProcess>,
): Promise<RoundResult> {
  const sent = new Map<string, number>();
  const created = new Map<string, number>();
  const decided = new Map<string, { at: number; type: string }>();
  const prefix = `p6-${label}-${randomBytes(2).toString('hex')}-`;
  const child = await approver();
  // Decisions are seen on a watch; a watch the server ends is simply opened again (from the start: the
  // ADDED events of already decided CSRs carry their conditions).
  let stopped = false;
  let controller: AbortController | undefined;
  const openWatch = async (): Promise<void> => {
    if (stopped) return;
    const watch = new Watch(admin);
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 600_000;
    controller = await watch.watch(
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      { fieldSelector: `spec.signerName=${SIGNER}` },
      (_type: string, csr: V1CertificateSigningRequest) => {
        const name = csr.metadata?.name ?? '';
        if (!name.startsWith(prefix) || decided.has(name)) return;
        const c = csr.status?.conditions?.find((x) => x.type === 'Approved' || x.type === 'Denied');
        if (c) decided.set(name, { at: performance.now(), type: c.type });
      },
      () => {
        void openWatch();
      },
    );
  };
  await openWatch();
  const csrPems = await Promise.all(
    nodes.map((n) =>
      buildCsrPem(n.key, { commonName: `system:node:${n.name}`, organizations: ['system:nodes'], ipAddresses: [n.ip] }),
    ),
  );
  const t0 = performance.now();
  await pool(nodes, CONCURRENCY, async (n, i) => {
    const name = `${prefix}${i}`;
    // Two latencies: from sending the create (the node's view, retries after a 429 included) and from its
    // answer (the approver's share alone).
    sent.set(name, performance.now());
    await retry(() =>
      n.kc.makeApiClient(CertificatesV1Api).createCertificateSigningRequest({
        body: {
          metadata: { name },
          spec: {
            request: Buffer.from(csrPems[i]!).toString('base64'),
            signerName: SIGNER,
            usages: ['digital signature', 'server auth'],
          },
        },
      }),
    );
    created.set(name, performance.now());
  });
  const deadline = Date.now() + 10 * 60_000;
  let reported = Date.now();
  while (decided.size < nodes.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (Date.now() - reported >= 10_000) {
      reported = Date.now();
      process.stderr.write(
        `P6 ${label}: ${decided.size}/${nodes.length} decided after ${Math.round((performance.now() - t0) / 1000)} s\n`,
      );
    }
  }
  stopped = true;
  controller?.abort();
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (decided.size < nodes.length) throw new Error(`${label}: only ${decided.size}/${nodes.length} decided`);
  const last = Math.max(...[...decided.values()].map((d) => d.at));
  const latencies = [...decided].map(([name, d]) => d.at - created.get(name)!);
  const fromSent = [...decided].map(([name, d]) => d.at - sent.get(name)!);
  return {
    seconds: (last - t0) / 1000,
    decisionsPerSecond: nodes.length / ((last - t0) / 1000),
    latencyMs: summarize(latencies),
    fromSentMs: summarize(fromSent),
    approved: [...decided.values()].filter((d) => d.type === 'Approved').length,
    denied: [...decided.values()].filter((d) => d.type === 'Denied').length,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'nodecred-bench-p6-'));
let state: ClusterState | undefined;
try {
  process.stderr.write(`P6: starting a control plane, ${N} Nodes and node identities\n`);
  state = await up({ dir: join(dir, 'cluster'), log: () => {} });
  const admin = new KubeConfig();
  admin.loadFromFile(state.kubeconfig);
  const nodes = await makeNodes(state, admin, randomBytes(2).toString('hex'));
  const s = state;
  const bare = () =>
    startApprover(
      join(REPO, 'node_modules/.bin/node'),
      [join(REPO, 'bench/baselines/bare-approver.ts'), s.kubeconfig],
      /^ready$/,
    );
  const results: Record<string, RoundResult[]> = { bare: [], nodecred: [] };
  for (let r = 0; r < ROUNDS; r++) {
    // ABBA: alternate which goes first.
    const order = r % 2 === 0 ? (['bare', 'nodecred'] as const) : (['nodecred', 'bare'] as const);
    for (const which of order) {
      process.stderr.write(`P6 round ${r + 1}: ${which}\n`);
      results[which]!.push(
        await round1(
          s,
          admin,
          nodes,
          which,
          which === 'bare'
            ? bare
            : async () => {
                // nodecred logs nothing at warn until something is wrong: wait for its lease instead.
                const child = spawn(
                  join(REPO, 'bin/nodecred'),
                  ['approve', '--kubeconfig', s.kubeconfig, '--metrics-listen', 'off'],
                  { stdio: ['ignore', 'pipe', 'inherit'] },
                );
                await new Promise<void>((res, rej) => {
                  createInterface(child.stdout!).on('line', (l) => {
                    if (/"became leader"/.test(l)) res();
                  });
                  child.on('exit', (code) => rej(new Error(`nodecred approve exited ${code}`)));
                });
                child.stdout!.resume();
                return child;
              },
        ),
      );
    }
  }
  // Median; for an even number of rounds the mean of the middle two.
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const b = results.bare!;
  const n = results.nodecred!;
  const table = {
    nodes: N,
    rounds: ROUNDS,
    nodecred: {
      decisionsPerSecond: round(med(n.map((x) => x.decisionsPerSecond))),
      p50Ms: round(med(n.map((x) => x.latencyMs.p50))),
      p95Ms: round(med(n.map((x) => x.latencyMs.p95))),
      sentP50Ms: round(med(n.map((x) => x.fromSentMs.p50))),
      sentP95Ms: round(med(n.map((x) => x.fromSentMs.p95))),
      approved: n[0]!.approved,
      denied: n[0]!.denied,
    },
    bare: {
      decisionsPerSecond: round(med(b.map((x) => x.decisionsPerSecond))),
      p50Ms: round(med(b.map((x) => x.latencyMs.p50))),
      p95Ms: round(med(b.map((x) => x.latencyMs.p95))),
      sentP50Ms: round(med(b.map((x) => x.fromSentMs.p50))),
      sentP95Ms: round(med(b.map((x) => x.fromSentMs.p95))),
    },
  };
  const out = {
    ...table,
    ratios: {
      decisionsPerSecond: ratio(table.nodecred.decisionsPerSecond, table.bare.decisionsPerSecond),
      p50: ratio(table.nodecred.p50Ms, table.bare.p50Ms),
    },
    raw: results,
  };
  await mkdir(join(REPO, 'bench/results'), { recursive: true });
  await writeFile(join(REPO, 'bench/results/p6-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(
    `| P6 | decisions/s (${N} CSRs, ${N} Nodes) | nodecred approve ${table.nodecred.decisionsPerSecond} | bare approver ${table.bare.decisionsPerSecond} | ${out.ratios.decisionsPerSecond}× |\n`,
  );
  process.stdout.write(
    `| P6 | create answered → decision seen, p50 / p95 | ${table.nodecred.p50Ms} / ${table.nodecred.p95Ms} ms | ${table.bare.p50Ms} / ${table.bare.p95Ms} ms | ${out.ratios.p50}× (p50) |\n`,
  );
  process.stdout.write(
    `| P6 | create sent → decision seen (node's view), p50 / p95 | ${table.nodecred.sentP50Ms} / ${table.nodecred.sentP95Ms} ms | ${table.bare.sentP50Ms} / ${table.bare.sentP95Ms} ms | ${ratio(table.nodecred.sentP50Ms, table.bare.sentP50Ms)}× (p50) |\n`,
  );
  process.stdout.write(
    `| P6 | nodecred decisions | ${table.nodecred.approved} approved, ${table.nodecred.denied} denied | | |\n`,
  );
} finally {
  if (state) await down(join(dir, 'cluster')).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
