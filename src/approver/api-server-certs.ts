// The API server's own names as its serving certificates carry them. Every name in such a certificate is
// one clients trust as the API server (an external name, a load-balancer name, kubeadm's certSANs), and the
// kubelet-serving signer signs with the same CA on most clusters: a node with a certificate for one of those
// names could stand in for the API server. So they are reserved, and learnt where they are: by a TLS
// handshake to every address of the kubernetes Service's EndpointSlices (one per API server) and to the
// server of the approver's own kubeconfig. The chain must verify against the CA the approver trusts for the
// API server; the host name is not checked, because an endpoint is dialled by address and nothing is sent.
//
// Fail-safe: no decision is made until at least one certificate has been read (CSRs stay pending, which a
// denial could not undo), and what an address once showed stays reserved while the address is listed,
// even when a later handshake fails. Each failure is logged with the address and the reason.
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import type { Logger } from '../log.ts';
import { parseCertificatePem } from '../pki/cert.ts';
import { canonicalDnsName } from '../pki/san.ts';

export interface ServingEndpoint {
  host: string;
  port: number;
  /** SNI to send (the kubeconfig's tls-server-name or host name); never an IP. */
  serverName?: string;
}

interface ServingNames {
  dnsNames: string[];
  ips: string[];
}

const HANDSHAKE_TIMEOUT_MS = 10_000;

const endpointKey = (e: ServingEndpoint) =>
  `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}${e.serverName ? ` (${e.serverName})` : ''}`;

/** The DNS and IP SANs of the certificate `endpoint` serves, once its chain verifies against `caPem`. */
export function readServingNames(
  endpoint: ServingEndpoint,
  caPem: string | undefined,
  timeoutMs = HANDSHAKE_TIMEOUT_MS,
): Promise<ServingNames> {
  return new Promise((resolve, reject) => {
    const serverName = endpoint.serverName && isIP(endpoint.serverName) === 0 ? endpoint.serverName : undefined;
    const socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(caPem === undefined ? {} : { ca: caPem }),
      ...(serverName ? { servername: serverName } : {}),
      rejectUnauthorized: true,
      // Only the chain is checked: see the top of this file.
      checkServerIdentity: () => undefined,
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const peer = socket.getPeerX509Certificate();
      socket.destroy();
      if (!peer) return reject(new Error('the server presented no certificate'));
      try {
        const summary = parseCertificatePem(peer.toString(), 'API server certificate');
        resolve({ dnsNames: summary.dnsNames.map(canonicalDnsName), ips: summary.ipAddresses });
      } catch (err) {
        reject(err);
      }
    });
  });
}

interface ApiServerCertificatesOptions {
  log: Logger;
  /** The CA the approver trusts for the API server, read at each refresh (a rotated bundle is picked up). */
  trustedCa: () => Promise<string | undefined>;
  read?: typeof readServingNames;
}

/** The names learnt per endpoint; see the top of this file. */
export class ApiServerCertificates {
  private readonly o: ApiServerCertificatesOptions;
  private readonly read: typeof readServingNames;
  private readonly learnt = new Map<string, ServingNames>();
  private readonly lastError = new Map<string, string>();
  private endpoints: ServingEndpoint[] = [];
  private markReady!: () => void;
  /** Resolves once one certificate has been read. */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));

  constructor(options: ApiServerCertificatesOptions) {
    this.o = options;
    this.read = options.read ?? readServingNames;
  }

  /** Every name learnt from the endpoints still listed. */
  names(): ServingNames {
    const all = [...this.learnt.values()];
    return { dnsNames: [...new Set(all.flatMap((n) => n.dnsNames))], ips: [...new Set(all.flatMap((n) => n.ips))] };
  }

  /** Sets the endpoints to read; forgets what endpoints no longer listed showed. */
  setEndpoints(endpoints: ServingEndpoint[]): void {
    const keys = new Set(endpoints.map(endpointKey));
    this.endpoints = endpoints;
    for (const key of [...this.learnt.keys()]) if (!keys.has(key)) this.learnt.delete(key);
  }

  /** Reads every endpoint's certificate (those not read yet, unless `all`); true when anything changed. */
  async refresh(all: boolean): Promise<boolean> {
    const todo = this.endpoints.filter((e) => all || !this.learnt.has(endpointKey(e)));
    if (todo.length === 0) return false;
    const ca = await this.o.trustedCa();
    const before = JSON.stringify(this.names());
    await Promise.all(todo.map((e) => this.readOne(e, ca)));
    if (this.learnt.size > 0) this.markReady();
    else
      this.o.log.warn(
        { endpoints: this.endpoints.map(endpointKey) },
        'no API server certificate could be read: no CSR is decided until one is (its names must be reserved)',
      );
    return JSON.stringify(this.names()) !== before;
  }

  private async readOne(endpoint: ServingEndpoint, ca: string | undefined): Promise<void> {
    const key = endpointKey(endpoint);
    try {
      const names = await this.read(endpoint, ca);
      this.learnt.set(key, names);
      if (this.lastError.delete(key)) this.o.log.info({ endpoint: key }, "read the API server's certificate again");
    } catch (err) {
      const reason = (err as Error).message ?? String(err);
      if (this.lastError.get(key) !== reason) {
        this.lastError.set(key, reason);
        const kept = this.learnt.has(key) ? 'keeping the names it showed before' : 'its names are not known';
        this.o.log.warn(
          { endpoint: key, err: reason },
          `cannot read the API server's serving certificate at this address; ${kept}`,
        );
      }
    }
  }
}
