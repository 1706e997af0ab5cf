// The client certificate: keep a valid one installed with the node kubeconfig pointing at it. Renew with the
// current certificate when it is due; bootstrap when it is missing, invalid or expired; and fall back to
// bootstrap when the API server refuses the renewal.
import { UserError, isUserError } from '../errors.ts';
import { encodePrivateKeyPem } from '../pki/keys.ts';
import type { ApiConnection, ApiEndpoint } from '../kube/api.ts';
import { lifetimeOf } from './installed.ts';
import { ManagedCertificate } from './managed.ts';
import { NO_SANS, requestSpec } from './requests.ts';
import type { Issued } from './request.ts';
import type { EnsureOptions, EnsureResult } from './state.ts';

/** Who asks for the certificate, and what the result is checked against and written for. */
interface Identity {
  connection: ApiConnection;
  /** Where the node kubeconfig points once the certificate is installed. */
  endpoint: ApiEndpoint;
  /** What the issued certificate must chain to. */
  ca: string;
  /** Speaking as the current client certificate (true) or as the bootstrap credentials. */
  renewal: boolean;
}

/** The bootstrap credentials are read (a file, or token discovery over the network) at most once a pass. */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => (loaded ??= load());
}

/** A renewal the API server refuses (certificate revoked, node deleted) or no longer trusted: bootstrap. */
function renewalRefused(err: unknown): boolean {
  return isUserError(err) && (err.code === 'UNAUTHORIZED' || err.code === 'TLS_UNTRUSTED');
}

export class ClientCertificate extends ManagedCertificate {
  async ensure(opts: EnsureOptions): Promise<EnsureResult> {
    try {
      const bootstrap = once(() => this.deps.credentials.bootstrap());
      const home = await this.home(bootstrap);
      const current = await this.installed.current('client', home.ca, NO_SANS);
      // A certificate that verifies here but that the API server persistently refuses (its client CA changed,
      // or it never trusted this signer) is unusable: bootstrap again now, not at the rotation deadline. With
      // no bootstrap credentials there is nothing better: keep it (the server may take it again; /readyz says).
      const refused = this.installed.refusedForGood(current.pair);
      const replace = refused !== undefined && (await bootstrap()) !== null;
      if (refused && !replace)
        this.deps.log.error(
          { path: this.deps.store.currentPath('client'), refusedSince: new Date(refused.since).toISOString() },
          'the API server refuses the client certificate and no bootstrap credentials are configured; keeping it',
        );
      if (!replace && (current.standing === 'valid' || (current.standing === 'due' && !opts.rotate))) {
        await this.deps.credentials.writeNodeKubeconfig(home.endpoint, home.endpoint.caPem ?? home.ca);
        this.installed.states.client.lastError = undefined;
        return 'valid';
      }
      const identity = replace
        ? await this.bootstrapFor(bootstrap, {
            pair: current.pair,
            problems: [
              `the API server refused it (401) ${refused.count} times since ${new Date(refused.since).toISOString()}`,
            ],
          })
        : current.standing === 'due'
          ? this.renewal(home)
          : await this.bootstrapFor(bootstrap, current);
      const { issued, by } = await this.requestFallingBack(identity, bootstrap, opts.deadline);
      await this.install(issued, by, lifetimeOf(current.pair));
      return 'installed';
    } catch (err) {
      this.installed.recordError('client', err);
      throw err;
    }
  }

  /**
   * The endpoint (server, CA, TLS name) the node kubeconfig carries: kept from the existing node kubeconfig
   * when there is one, else taken from the bootstrap source; and the CA issued certificates must chain to.
   */
  private async home(bootstrap: () => Promise<ApiConnection | null>): Promise<{ endpoint: ApiEndpoint; ca: string }> {
    const endpoint = (await this.deps.credentials.nodeEndpoint()) ?? (await bootstrap())?.endpoint;
    if (!endpoint) {
      throw new UserError('no node kubeconfig and no bootstrap credentials', {
        where: this.deps.config.kubeconfig,
        fix: 'pass --bootstrap-kubeconfig, or --api-server with --discovery-token and --discovery-token-ca-cert-hash',
        code: 'NO_CREDENTIALS',
      });
    }
    return { endpoint, ca: await this.deps.credentials.clusterCa(endpoint) };
  }

  /** Renewal keeps the node kubeconfig's endpoint and speaks as the certificate being replaced. */
  private renewal(home: { endpoint: ApiEndpoint; ca: string }): Identity {
    const pair = this.installed.lastVerified('client')!;
    this.deps.log.info(
      { notAfter: this.installed.states.client.notAfter, deadline: this.installed.states.client.rotationDeadline },
      'client certificate due for rotation; renewing with it',
    );
    return {
      connection: {
        endpoint: home.endpoint,
        credential: { kind: 'clientCert', certPem: pair.chainPem, keyPem: encodePrivateKeyPem(pair.key) },
        description: `node client certificate ${this.deps.store.currentPath('client')}`,
      },
      ...home,
      renewal: true,
    };
  }

  /** The bootstrap identity, or a UserError when the certificate is unusable and there is none. */
  private async bootstrapFor(
    bootstrap: () => Promise<ApiConnection | null>,
    current: { pair: unknown; problems: string[] },
  ): Promise<Identity> {
    const connection = await bootstrap();
    if (!connection) {
      throw new UserError(
        `client certificate unusable (${current.problems.join('; ')}) and no bootstrap credentials configured`,
        {
          where: this.deps.store.currentPath('client'),
          fix: 'configure --bootstrap-kubeconfig or token discovery so nodecred can bootstrap again',
          code: 'NO_CREDENTIALS',
        },
      );
    }
    if (current.pair)
      this.deps.log.warn(
        { problems: current.problems, via: connection.description },
        'client certificate unusable; falling back to bootstrap credentials',
      );
    else this.deps.log.info({ via: connection.description }, 'no client certificate; bootstrapping');
    return this.bootstrapIdentity(connection);
  }

  /**
   * A bootstrap takes the bootstrap source's server and CA (which may have moved: a cluster CA rotation, a
   * new endpoint) for verification and for the kubeconfig.
   */
  private async bootstrapIdentity(connection: ApiConnection): Promise<Identity> {
    const endpoint = connection.endpoint;
    return { connection, endpoint, ca: await this.deps.credentials.clusterCa(endpoint), renewal: false };
  }

  private async requestFallingBack(
    identity: Identity,
    bootstrap: () => Promise<ApiConnection | null>,
    deadline: number,
  ): Promise<{ issued: Issued; by: Identity }> {
    const spec = requestSpec(this.deps.config, 'client', NO_SANS);
    // A denial holds back the same request from the same requester: a bootstrap after a denied renewal (the
    // certificate expired meanwhile) is another request, and so is one with new bootstrap credentials.
    const run = (by: Identity) =>
      this.requestUnlessDenied(
        by.connection,
        spec,
        by.ca,
        deadline,
        by.renewal ? 'renewal' : by.connection.description,
      );
    try {
      return { issued: await run(identity), by: identity };
    } catch (err) {
      const fallback = identity.renewal && renewalRefused(err) ? await bootstrap() : null;
      if (!fallback) throw err;
      this.deps.log.warn(
        { via: fallback.description, why: (err as UserError).code },
        'renewal with the node certificate failed; falling back to bootstrap credentials',
      );
      const by = await this.bootstrapIdentity(fallback);
      return { issued: await run(by), by };
    }
  }

  private async install(issued: Issued, by: Identity, previous: ReturnType<typeof lifetimeOf>): Promise<void> {
    const { store, credentials, clock, log } = this.deps;
    await store.install('client', issued.chainPem, issued.key, new Date(clock.now()));
    await store.removePendingKey('client');
    await credentials.writeNodeKubeconfig(by.endpoint, by.endpoint.caPem ?? by.ca);
    this.installed.assessInstalled('client', await this.installed.read('client'), by.ca, NO_SANS, issued.verdict);
    this.installed.recordInstalled('client', previous);
    const state = this.installed.states.client;
    log.info(
      { csr: issued.csrName, notAfter: state.notAfter, deadline: state.rotationDeadline, path: state.path },
      'installed client certificate',
    );
  }
}
