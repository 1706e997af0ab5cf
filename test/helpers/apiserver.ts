// A second, real kube-apiserver on the test cluster's etcd and PKI, with flags of the test's choosing (e.g.
// --disable-http2-serving, --watch-cache=false): what the shared API server cannot show without disturbing
// every other test. Same binary, same CA and serving certificate (its SANs include 127.0.0.1), so every
// credential the shared API server accepts works here too.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort, httpGet, isAlive } from '../../scripts/lib/local-cluster.ts';
import { apiserverArgs } from '../../scripts/lib/apiserver-args.ts';
import { waitFor, type TestCluster } from './cluster.ts';

export interface ExtraApiserver {
  url: string;
  stop(): Promise<void>;
}

export async function startExtraApiserver(c: TestCluster, extraArgs: string[]): Promise<ExtraApiserver> {
  const pki = dirname(c.state.caKeyFile);
  const port = await freePort();
  const logFile = join(await mkdtemp(join(tmpdir(), 'nodecred-apiserver-')), 'kube-apiserver.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(
    c.state.binary,
    [
      'kube-apiserver',
      ...apiserverArgs({ etcd: c.state.etcd, port, pki, caFile: c.state.caFile }),
      // The shared API server owns the cluster's bookkeeping; this one only serves requests.
      '--etcd-compaction-interval=0',
      ...extraArgs,
    ],
    { detached: true, stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const url = `https://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || !child.pid) return;
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(-child.pid, 'SIGTERM');
    await exited;
  };
  const tls = {
    ca: c.ca,
    cert: readFileSync(join(pki, 'admin.crt'), 'utf8'),
    key: readFileSync(join(pki, 'admin.key'), 'utf8'),
  };
  try {
    await waitFor(
      `a second kube-apiserver ready at ${url} (log: ${logFile})`,
      async () => {
        if (!child.pid || !isAlive(child.pid)) throw new Error(`kube-apiserver exited; see ${logFile}`);
        const [status] = await httpGet({ url: `${url}/readyz`, ...tls }).catch(() => [0]);
        return status === 200 ? true : undefined;
      },
      120_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}
