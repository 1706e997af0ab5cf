// The serving certificate: keep one installed whose SANs are the node's current addresses (the Node's
// status.addresses, or the configured ones until the Node exists), renewed before it expires.
import { UserError, isUserError } from '../errors.ts';
import type { ApiConnection } from '../kube/api.ts';
import { lifetimeOf } from './installed.ts';
import { ManagedCertificate } from './managed.ts';
import { isPlaceholder } from './placeholder.ts';
import { sameSans, servingSansFromAddresses, type SubjectAltNames } from './policy.ts';
import { requestSpec } from './requests.ts';
import type { EnsureOptions, EnsureResult } from './state.ts';

export class ServingCertificate extends ManagedCertificate {
  async ensure(opts: EnsureOptions): Promise<EnsureResult> {
    // The node's own identity speaks in this pass: what the API server says to it counts (client.ts).
    const fingerprint = this.installed.states.client.fingerprint;
    try {
      const conn = await this.deps.credentials.node();
      const ca = await this.deps.credentials.clusterCa(conn.endpoint);
      const sans = await this.wantedSans(conn);
      this.installed.noteNodeAuthentication(fingerprint, true);
      const current = await this.installed.current('server', ca, sans);
      const state = this.installed.states.server;
      const installedSans = { dnsNames: state.dnsNames ?? [], ipAddresses: state.ipAddresses ?? [] };
      // nodecred's first-boot placeholder (placeholder.ts) is replaced like an expired certificate.
      const placeholder = current.pair !== null && isPlaceholder(current.pair);
      const addressesChanged = current.pair !== null && !placeholder && !sameSans(sans, installedSans);
      if (!addressesChanged && (current.standing === 'valid' || (current.standing === 'due' && !opts.rotate))) {
        state.lastError = undefined;
        return 'valid';
      }
      if (addressesChanged)
        this.deps.log.info(
          { installed: { dns: state.dnsNames, ip: state.ipAddresses }, wanted: sans },
          'node addresses changed; requesting a new serving certificate',
        );
      else if (placeholder)
        this.deps.log.info(
          { sans },
          'the Node is registered: requesting the serving certificate to replace the placeholder',
        );
      else if (current.pair)
        this.deps.log.info(
          { problems: current.problems, deadline: state.rotationDeadline },
          'serving certificate due; requesting a new one',
        );
      const spec = requestSpec(this.deps.config, 'server', sans);
      const { store, clock, log } = this.deps;
      const issued = await this.requestUnlessDenied(conn, spec, ca, opts.deadline);
      await store.install('server', issued.chainPem, issued.key, new Date(clock.now()));
      await store.removePendingKey('server');
      this.installed.assessInstalled('server', await this.installed.read('server'), ca, sans, issued.verdict);
      this.installed.recordInstalled('server', lifetimeOf(current.pair));
      log.info(
        { csr: issued.csrName, ...sans, notAfter: state.notAfter, path: state.path },
        'installed serving certificate',
      );
      return 'installed';
    } catch (err) {
      if (isUserError(err) && err.code === 'UNAUTHORIZED') this.installed.noteNodeAuthentication(fingerprint, false);
      this.installed.recordError('server', err);
      throw err;
    }
  }

  /** The serving certificate's SANs: the Node's status.addresses, or the configured ones before it exists. */
  async wantedSans(conn: ApiConnection): Promise<SubjectAltNames> {
    const { config } = this.deps;
    const fromNode = await this.deps.connect(conn).nodeAddresses(config.nodeName);
    const addresses = fromNode?.length ? fromNode : config.servingAddresses;
    const sans = servingSansFromAddresses(addresses);
    if (sans.dnsNames.length + sans.ipAddresses.length === 0) {
      throw new UserError(`Node ${config.nodeName} has no addresses yet and none are configured`, {
        where: 'serving.addresses',
        fix: 'wait for kubelet to register the Node, or list the node addresses under serving.addresses (or --node-ip)',
        code: 'NO_SERVING_ADDRESSES',
      });
    }
    return sans;
  }
}
