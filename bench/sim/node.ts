// One simulated node running the real nodecred: the real CertificateManager and daemon loop, on a simulated
// clock, disk and API. Powering it off stops the process (memory is lost, the disk stays); powering it on
// starts a new one, as a reboot would.
import { silentLogger, type Logger } from '../../src/log.ts';
import { Daemon } from '../../src/daemon.ts';
import { defaultConfig, type Config } from '../../src/config/schema.ts';
import { CertificateManager } from '../../src/manager/manager.ts';
import type { RequestCrypto } from '../../src/manager/request.ts';
import type { ManagerEvents } from '../../src/manager/state.ts';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { SimCluster } from './cluster.ts';
import { SimCredentials, SimDisk, SimStore } from './disk.ts';
import { SIM_SERVER, simConnect } from './node-api.ts';
import { buildKnownCsr, readCsr, selfSignedServing } from './pki.ts';
import { Rng } from './rng.ts';
import { SimClock, type Scheduler } from './scheduler.ts';

/**
 * Key generation and CSRs, synchronously: node:crypto's generateKeyPairSync (the same primitive as the
 * asynchronous call production makes) and PKCS#10 built with node:crypto (bench/sim/pki.ts) instead of
 * @peculiar/x509, whose asynchronous WebCrypto calls the simulated clock would have to wait on one node at a
 * time. Everything downstream (names, submission, waiting, verification, install) is the real code.
 */
export const SIM_CRYPTO: RequestCrypto = {
  generateKey: async (algorithm) => {
    if (algorithm !== 'ecdsa-p256') throw new Error(`the simulator generates ecdsa-p256 keys only, not ${algorithm}`);
    return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  },
  // The same key and request give an equivalent request: a node retrying through a day-long outage
  // rebuilds it hundreds of times, which costs a real node nothing and the simulator a lot.
  buildCsr: async (key, request) => {
    const text = JSON.stringify(request);
    const known = requests.get(key);
    if (known?.text === text) return known.pem;
    const pem = buildKnownCsr(key, request);
    requests.set(key, { text, pem });
    return pem;
  },
  readCsr: async (pem) => readCsr(pem),
  selfSignedServing: async (nodeName, now) => selfSignedServing(nodeName, now),
};
const requests = new WeakMap<KeyObject, { text: string; pem: string }>();

export const SILENT: Logger = silentLogger();

export interface SimNodeOptions {
  index: number;
  name: string;
  scheduler: Scheduler;
  cluster: SimCluster;
  seed: number;
  skewMs: number;
  config: Partial<Config>;
  log?: Logger;
  events?: ManagerEvents;
  /** Real crypto wrapped for the scheduler (slower; measures what SIM_CRYPTO saves). */
  crypto?: RequestCrypto;
  localCheckMs?: number;
}

export class SimNode {
  readonly index: number;
  readonly disk = new SimDisk();
  readonly store: SimStore;
  readonly credentials: SimCredentials;
  readonly clock: SimClock;
  readonly config: Config;
  private readonly o: SimNodeOptions;
  manager: CertificateManager | undefined;
  private running: { stop: AbortController; done: Promise<void> } | undefined;

  constructor(o: SimNodeOptions) {
    this.o = o;
    this.index = o.index;
    this.store = new SimStore(this.disk);
    this.credentials = new SimCredentials(this.store, this.disk, { server: SIM_SERVER, caPem: o.cluster.ca.pem });
    this.clock = new SimClock(o.scheduler, new Rng(o.seed, o.index + 1), o.skewMs);
    this.config = {
      ...defaultConfig(),
      nodeName: o.name,
      bootstrapKubeconfig: '/etc/kubernetes/bootstrap-kubelet.conf',
      rotateServerCertificates: true,
      healthListen: '',
      logLevel: 'error',
      ...o.config,
    };
  }

  get on(): boolean {
    return this.running !== undefined;
  }

  /** A fresh process: a new manager (nothing in memory) on the same disk. */
  newManager(signal?: AbortSignal): CertificateManager {
    this.manager = new CertificateManager({
      config: this.config,
      store: this.store,
      credentials: this.credentials,
      connect: simConnect(this.o.cluster, this.index),
      clock: this.clock,
      log: this.o.log ?? SILENT,
      crypto: this.o.crypto ?? SIM_CRYPTO,
      ...(this.o.events ? { events: this.o.events } : {}),
      ...(signal ? { signal } : {}),
    });
    return this.manager;
  }

  /** Starts the daemon (`nodecred run`). */
  powerOn(): void {
    if (this.running) return;
    const stop = new AbortController();
    const daemon = new Daemon(this.newManager(stop.signal), this.o.log ?? SILENT, {
      localCheckMs: this.o.localCheckMs ?? Number.POSITIVE_INFINITY,
    });
    this.running = { stop, done: daemon.run(stop.signal) };
  }

  /** Stops the process at once (power off, kill -9): whatever it was doing is lost, the disk stays. */
  async powerOff(): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.running = undefined;
    running.stop.abort();
    await running.done;
  }
}
