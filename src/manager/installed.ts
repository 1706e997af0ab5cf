// The installed certificates as the manager sees them: read from the store, verified against what we would
// request, given a rotation deadline, recorded in CertificateState; and the last verified pair kept in
// memory, to put back when the file vanishes or is damaged.
import { errorLine } from '../errors.ts';
import { nodeSubject } from '../pki/csr.ts';
import { verifyIssuedCertificate } from '../pki/verify.ts';
import type { CertKind, StoredPair } from '../store/cert-store.ts';
import {
  noteRefusal,
  refusedForGood,
  rotationDeadline,
  standingOf,
  type Refusal,
  type RotationWindow,
  type Standing,
  type SubjectAltNames,
} from './policy.ts';
import type { AcceptedCertificate } from './request.ts';
import type { CertificateState, Lifetime, ManagerDeps } from './state.ts';

interface Assessment {
  standing: Standing;
  /** Why it is not usable, when it is not. */
  problems: string[];
}

/** An assessment that passed: the verdict holds for the same inputs while the clock stays in its window. */
interface RememberedVerdict {
  chainPem: string;
  ca: string;
  template: string;
  verdict: AcceptedCertificate;
}

/** What a verdict was reached against, besides the chain and the CA: the request the certificate answers. */
function templateKey(kind: CertKind, nodeName: string, sans: SubjectAltNames): string {
  return `${kind} ${nodeName} ${sans.dnsNames.join(',')} ${sans.ipAddresses.join(',')}`;
}

const LEAF_FIELDS = [
  'subject',
  'dnsNames',
  'ipAddresses',
  'notBefore',
  'notAfter',
  'rotationDeadline',
  'fingerprint',
  'issuer',
] as const;

export function lifetimeOf(pair: StoredPair | null): Lifetime | null {
  if (!pair) return null;
  const leaf = pair.certificates[0]!.summary;
  return { notBefore: leaf.notBefore, notAfter: leaf.notAfter };
}

export class InstalledCertificates {
  readonly states: Record<CertKind, CertificateState>;
  private readonly deps: ManagerDeps;
  /** The last pair that passed verification, to reinstall when the file vanishes or is damaged. */
  private readonly lastGood: Partial<Record<CertKind, StoredPair>> = {};
  /** Rotation deadlines are drawn once per certificate (by fingerprint) and window, so the jitter is stable. */
  private readonly deadlines = new Map<string, RotationWindow & { deadline: Date }>();
  /** Verifying an unchanged pair on every pass would cost milliseconds of CPU each time for nothing. */
  private readonly verdicts: Partial<Record<CertKind, RememberedVerdict>> = {};
  /** 401s to the node's own client certificate, in a row (policy.ts Refusal). */
  private refusal: Refusal | undefined;

  constructor(deps: ManagerDeps) {
    this.deps = deps;
    this.states = {
      client: { kind: 'client', path: deps.store.currentPath('client') },
      server: { kind: 'server', path: deps.store.currentPath('server') },
    };
  }

  lastVerified(kind: CertKind): StoredPair | undefined {
    return this.lastGood[kind];
  }

  /** The installed pair; an unreadable one counts as missing (and is said so). */
  async read(kind: CertKind): Promise<StoredPair | null> {
    try {
      return await this.deps.store.readCurrent(kind);
    } catch (err) {
      this.deps.log.warn(
        { kind, err: errorLine(err, String) },
        'installed certificate unreadable; treating it as missing',
      );
      return null;
    }
  }

  /**
   * Reads and assesses the installed pair; when it is missing or damaged but the pair we last verified is
   * still good, puts that one back rather than request a new certificate.
   */
  async current(kind: CertKind, ca: string, sans: SubjectAltNames): Promise<{ pair: StoredPair | null } & Assessment> {
    const pair = await this.read(kind);
    const assessment = this.assess(kind, pair, ca, sans);
    if (assessment.standing === 'valid' || assessment.standing === 'due') return { pair, ...assessment };
    const remembered = this.lastGood[kind];
    if (!remembered) return { pair, ...assessment };
    if (kind === 'client' && this.refusal?.fingerprint === remembered.certificates[0]!.summary.sha256Fingerprint) {
      // The API server refused it: putting it back would undo an operator's removal and keep the node locked out.
      this.deps.log.warn({ kind }, 'client certificate on disk missing; the API server refused it, not reinstalling');
      return { pair, ...assessment };
    }
    const again = this.assess(kind, remembered, ca, sans);
    if (again.standing !== 'valid' && again.standing !== 'due') return { pair, ...assessment };
    await this.deps.store.install(kind, remembered.chainPem, remembered.key, new Date(this.deps.clock.now()));
    this.deps.log.warn(
      { kind, problems: assessment.problems, path: this.deps.store.currentPath(kind) },
      'certificate on disk missing or damaged; reinstalled the verified one from memory',
    );
    return { pair: remembered, ...again };
  }

  /**
   * Assesses the pair just installed from a certificate that passed verification as it was accepted
   * (request.ts acceptIssued, against the same CA and request): that verdict is recorded rather than the
   * installed copy verified a second time.
   */
  assessInstalled(
    kind: CertKind,
    pair: StoredPair | null,
    ca: string,
    sans: SubjectAltNames,
    accepted: AcceptedCertificate,
  ): Assessment {
    if (pair && pair.certificates[0]!.summary.sha256Fingerprint === accepted.summary.sha256Fingerprint) {
      const template = templateKey(kind, this.deps.config.nodeName, sans);
      this.verdicts[kind] = { chainPem: pair.chainPem, ca, template, verdict: accepted };
    }
    return this.assess(kind, pair, ca, sans);
  }

  /** Verifies a pair against what we would request, records it in the state, and says where it stands. */
  assess(kind: CertKind, pair: StoredPair | null, ca: string, sans: SubjectAltNames): Assessment {
    const state = this.states[kind];
    if (!pair) {
      for (const field of LEAF_FIELDS) delete state[field];
      Object.assign(state, { verified: false, problems: ['no certificate installed'] });
      return { standing: 'missing', problems: ['no certificate installed'] };
    }
    const now = new Date(this.deps.clock.now());
    const verdict = this.verify(kind, pair, ca, sans, now);
    const leaf = pair.certificates[0]!.summary;
    const deadline = this.deadlineFor(leaf.sha256Fingerprint, leaf.notBefore, leaf.notAfter);
    // On most passes nothing changed: the same verified certificate, the same deadline.
    const unchanged =
      verdict.ok &&
      state.verified === true &&
      state.fingerprint === leaf.sha256Fingerprint &&
      state.rotationDeadline === deadline;
    if (!unchanged)
      Object.assign(state, {
        subject: `CN=${leaf.subjectCommonName}, O=${leaf.subjectOrganizations.join('+')}`,
        dnsNames: leaf.dnsNames,
        ipAddresses: leaf.ipAddresses,
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
        rotationDeadline: deadline,
        fingerprint: leaf.sha256Fingerprint,
        issuer: leaf.issuerCommonName,
        verified: verdict.ok,
        problems: verdict.ok ? [] : verdict.problems,
      });
    if (!verdict.ok) return { standing: 'unusable', problems: verdict.problems };
    this.noticeAdoption(kind, pair);
    this.lastGood[kind] = pair;
    return { standing: standingOf(true, deadline, now), problems: [] };
  }

  private verify(kind: CertKind, pair: StoredPair, ca: string, sans: SubjectAltNames, now: Date) {
    const { config } = this.deps;
    const key = templateKey(kind, config.nodeName, sans);
    const memo = this.verdicts[kind];
    const skew = config.clockSkewMs;
    if (
      memo?.chainPem === pair.chainPem &&
      memo.ca === ca &&
      memo.template === key &&
      now.getTime() + skew >= memo.verdict.validity.notBefore.getTime() &&
      now.getTime() - skew <= memo.verdict.validity.notAfter.getTime()
    ) {
      return memo.verdict;
    }
    const template = {
      ...nodeSubject(config.nodeName),
      usage: kind,
      dnsNames: sans.dnsNames,
      ipAddresses: sans.ipAddresses,
    };
    const verdict = verifyIssuedCertificate({
      certificatePem: pair.chainPem,
      key: pair.key,
      caBundlePem: ca,
      template,
      now,
      clockSkewMs: skew,
    });
    if (verdict.ok) this.verdicts[kind] = { chainPem: pair.chainPem, ca, template: key, verdict };
    else delete this.verdicts[kind];
    return verdict;
  }

  private deadlineFor(fingerprint: string, notBefore: Date, notAfter: Date): Date {
    // Drawn again when the window changes: a rotation window changed by a config reload (SIGHUP) applies at once.
    const window = this.deps.config.rotationWindow;
    const known = this.deadlines.get(fingerprint);
    if (known && known.from === window.from && known.to === window.to) return known.deadline;
    const deadline = rotationDeadline(notBefore, notAfter, window, () => this.deps.clock.random());
    this.deadlines.set(fingerprint, { from: window.from, to: window.to, deadline });
    return deadline;
  }

  /** A different verified certificate on disk that we did not request: an operator put it there. */
  private noticeAdoption(kind: CertKind, pair: StoredPair): void {
    const previous = this.lastGood[kind];
    const fingerprint = pair.certificates[0]!.summary.sha256Fingerprint;
    if (!previous || this.states[kind].pendingCsr !== undefined) return;
    if (previous.certificates[0]!.summary.sha256Fingerprint === fingerprint) return;
    this.deps.log.info({ kind, fingerprint, path: pair.file }, 'adopted a valid certificate found on disk');
    this.deps.events?.adopted?.(kind, this.states[kind]);
  }

  /**
   * What the API server said to the node's client certificate (`fingerprint`, the one in use when the request
   * was made): a 401 (accepted false) or any answer that authenticated it.
   */
  noteNodeAuthentication(fingerprint: string | undefined, accepted: boolean): void {
    // On exec-credential (EKS-style) nodes the client certificate is not ours to replace.
    if (fingerprint === undefined || this.deps.config.clientCredentials !== 'managed') return;
    if (accepted) {
      if (this.refusal?.fingerprint !== fingerprint) return;
      this.refusal = undefined;
      this.states.client.refusedSince = undefined;
      return;
    }
    this.refusal = noteRefusal(this.refusal, fingerprint, this.deps.clock.now());
    this.states.client.refusedSince = new Date(this.refusal.since);
  }

  /** The API server has refused this client pair persistently (policy.ts refusedForGood). */
  refusedForGood(pair: StoredPair | null): Refusal | undefined {
    const fingerprint = pair ? pair.certificates[0]!.summary.sha256Fingerprint : undefined;
    const { clock, config } = this.deps;
    return refusedForGood(this.refusal, fingerprint, clock.now(), config.unauthorizedGraceMs)
      ? this.refusal
      : undefined;
  }

  recordError(kind: CertKind, err: unknown): void {
    this.states[kind].lastError = errorLine(err);
    this.deps.events?.failed?.(kind, err);
  }

  recordInstalled(kind: CertKind, previous: Lifetime | null): void {
    if (kind === 'client') this.refusal = undefined;
    Object.assign(this.states[kind], {
      refusedSince: undefined,
      lastError: undefined,
      lastSuccess: new Date(this.deps.clock.now()),
      pendingCsr: undefined,
      pendingSince: undefined,
    });
    this.deps.events?.installed?.(kind, this.states[kind], previous);
  }
}
