// A real multi-member etcd cluster with TLS on loopback, for the etcd runbook's test (and anyone who wants to
// rehearse a member replacement): an etcd CA and per-member server and peer certificates made with the real
// openssl CLI (kubeadm's shapes: both EKUs, SAN = the member's address), members from the multicall binary
// built by scripts/build-cluster, each on its own 127.0.0.x address with free ports, client and peer
// certificate authentication on, like a kubeadm control plane's etcd.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { httpGet, isAlive } from './local-cluster.ts';

const run = promisify(execFile);

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed in ${cwd}: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
}

export interface CaFiles {
  crt: string;
  key: string;
}

export interface CertFiles {
  crt: string;
  key: string;
}

/** A self-signed EC P-256 CA in `dir` as NAME.crt / NAME.key. */
export async function createCa(dir: string, name: string, cn = name): Promise<CaFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-subj',
      `/CN=${cn}`,
      '-days',
      '3650',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
  await chmod(join(dir, `${name}.key`), 0o600);
  return { crt: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

export interface LeafOptions {
  cn: string;
  /** "IP:127.0.0.21", "DNS:localhost"; none for a client certificate. */
  sans?: string[];
  usages: Array<'serverAuth' | 'clientAuth'>;
  days?: number;
}

/**
 * An EC P-256 leaf signed by `ca`, written to DIR/NAME.crt and DIR/NAME.key. Two openssl runs (key + CSR,
 * then signing) and a random serial instead of a serial file, so several can be issued at once.
 */
export async function issueCert(ca: CaFiles, dir: string, name: string, opts: LeafOptions): Promise<CertFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ext = `${[
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${opts.usages.join(',')}`,
    ...(opts.sans?.length ? [`subjectAltName=${opts.sans.join(',')}`] : []),
  ].join('\n')}\n`;
  await writeFile(join(dir, `${name}.ext`), ext);
  await openssl(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-subj',
      `/CN=${opts.cn}`,
      '-out',
      `${name}.csr`,
    ],
    dir,
  );
  await chmod(join(dir, `${name}.key`), 0o600);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      ca.crt,
      '-CAkey',
      ca.key,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(opts.days ?? 365),
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
  return { crt: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/**
 * kubeadm's etcd server and peer certificates for a member at `ip`: both EKUs, SANs = the member's name and
 * address plus localhost, 127.0.0.1 and ::1 (kubeadm adds those too). On one loopback interface every
 * outgoing peer connection comes from 127.0.0.1, and with --peer-client-cert-auth etcd checks the client
 * certificate's SANs against the remote address, so here the loopback SANs are not optional.
 */
export async function memberCerts(
  ca: CaFiles,
  dir: string,
  name: string,
  ip: string,
  extraSans: string[] = [],
): Promise<{ server: CertFiles; peer: CertFiles }> {
  const sans = [`DNS:${name}`, 'DNS:localhost', `IP:${ip}`, 'IP:127.0.0.1', 'IP:::1', ...extraSans];
  const [server, peer] = await Promise.all([
    issueCert(ca, dir, `${name}-server`, { cn: name, sans, usages: ['serverAuth', 'clientAuth'] }),
    issueCert(ca, dir, `${name}-peer`, { cn: name, sans, usages: ['serverAuth', 'clientAuth'] }),
  ]);
  return { server, peer };
}

/** A port nothing listens on at `host` right now. */
export function freePortOn(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error(`no free port on ${host}`))));
    });
  });
}

export interface EtcdMember {
  name: string;
  ip: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  server: CertFiles;
  peer: CertFiles;
  pid?: number;
}

/** Allocates addresses and ports for a member; certificates must be issued separately. */
export async function planMember(
  dir: string,
  name: string,
  ip: string,
  certs: { server: CertFiles; peer: CertFiles },
): Promise<EtcdMember> {
  const clientPort = await freePortOn(ip);
  let peerPort = await freePortOn(ip);
  while (peerPort === clientPort) peerPort = await freePortOn(ip);
  return {
    name,
    ip,
    clientUrl: `https://${ip}:${clientPort}`,
    peerUrl: `https://${ip}:${peerPort}`,
    dataDir: join(dir, `${name}.etcd`),
    logFile: join(dir, `${name}.log`),
    ...certs,
  };
}

/** The flags a member runs with, TLS and client/peer certificate authentication included. */
export function memberFlags(
  m: EtcdMember,
  caFile: string,
  initialCluster: string,
  state: 'new' | 'existing',
): string[] {
  return [
    `--name=${m.name}`,
    `--data-dir=${m.dataDir}`,
    `--listen-client-urls=${m.clientUrl}`,
    `--advertise-client-urls=${m.clientUrl}`,
    `--listen-peer-urls=${m.peerUrl}`,
    `--initial-advertise-peer-urls=${m.peerUrl}`,
    `--initial-cluster=${initialCluster}`,
    `--initial-cluster-state=${state}`,
    `--cert-file=${m.server.crt}`,
    `--key-file=${m.server.key}`,
    `--trusted-ca-file=${caFile}`,
    '--client-cert-auth',
    `--peer-cert-file=${m.peer.crt}`,
    `--peer-key-file=${m.peer.key}`,
    `--peer-trusted-ca-file=${caFile}`,
    '--peer-client-cert-auth',
    // A throwaway store on a busy 2-core machine: no fsync, and an election timeout that tolerates a
    // stalled scheduler without flapping leaders.
    '--unsafe-no-fsync',
    '--heartbeat-interval=200',
    '--election-timeout=2000',
    '--log-level=warn',
  ];
}

/** Starts etcd detached (its own process group, so the whole group can be killed); returns the pid. */
export function startEtcd(binary: string, m: EtcdMember, flags: string[]): number {
  const fd = openSync(m.logFile, 'a');
  const child = spawn(binary, ['etcd', ...flags], { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`could not start etcd member ${m.name} from ${binary}`);
  m.pid = child.pid;
  return child.pid;
}

export interface ClientTls {
  ca: string;
  cert: string;
  key: string;
}

export function readClientTls(caFile: string, cert: CertFiles): ClientTls {
  return {
    ca: readFileSync(caFile, 'utf8'),
    cert: readFileSync(cert.crt, 'utf8'),
    key: readFileSync(cert.key, 'utf8'),
  };
}

/** True when the member answers /health with "true" over mutual TLS. */
export async function memberHealthy(m: EtcdMember, tls: ClientTls): Promise<boolean> {
  try {
    const [code, body] = await httpGet({ url: `${m.clientUrl}/health`, ...tls }, 2000);
    return code === 200 && body.includes('"health":"true"');
  } catch {
    return false;
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls until every member is healthy, one dies, or the deadline passes (then throws with its log). */
export async function waitHealthy(members: EtcdMember[], tls: ClientTls, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (;;) {
    for (const m of members) {
      if (m.pid !== undefined && !isAlive(m.pid))
        throw new Error(`etcd member ${m.name} exited; last lines of ${m.logFile}:\n${tail(m.logFile)}`);
    }
    const states = await Promise.all(members.map((m) => memberHealthy(m, tls)));
    if (states.every(Boolean)) return;
    if (Date.now() > deadline) {
      const sick = members.filter((_, i) => !states[i]);
      throw new Error(
        `etcd members not healthy within ${timeoutMs / 1000}s: ` +
          `${sick.map((m) => `${m.name}; last lines of ${m.logFile}:\n${tail(m.logFile)}`).join('\n')}`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}

/** SIGKILLs a member's process group and waits until the process is gone. */
export async function killMember(m: EtcdMember, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<void> {
  if (m.pid === undefined) return;
  for (const target of [-m.pid, m.pid]) {
    try {
      process.kill(target, signal);
      break;
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (isAlive(m.pid)) {
    if (Date.now() > deadline)
      throw new Error(`etcd member ${m.name} (pid ${m.pid}) still alive ${timeoutMs} ms after ${signal}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
