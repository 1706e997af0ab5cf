// What the client and the serving certificate keepers share: the seams, the installed certificates, and
// the request runner.
import type { InstalledCertificates } from './installed.ts';
import type { Requests } from './requests.ts';
import type { ManagerDeps } from './state.ts';

export abstract class ManagedCertificate {
  protected readonly deps: ManagerDeps;
  protected readonly installed: InstalledCertificates;
  protected readonly requests: Requests;

  constructor(deps: ManagerDeps, installed: InstalledCertificates, requests: Requests) {
    this.deps = deps;
    this.installed = installed;
    this.requests = requests;
  }
}
