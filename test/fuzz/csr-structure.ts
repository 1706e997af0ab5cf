// The structure-aware CSR fuzz target: valid kubelet-serving requests mutated at the DER level (attribute
// order and duplication, OID encodings, lengths, tags, SET vs SEQUENCE, extension duplication and nesting,
// SAN and subject contents), re-signed with the request's own key so only the encoding is under attack,
// judged by the approver (strict reader + policy) and by Go (test/cluster csr-inspect, batched).
//
// The property, for every input: if the approver approves, Go parses it, would sign it, and the subject and
// SAN sets of the certificate Go's signer makes equal the approver's and are each inside the policy. And
// wherever both readers accept a request, they read the same names (a stronger check that does not need
// the rare approval). Go refusing what the approver would read is counted, not a failure: it fails closed.
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { NodeClaims } from '../../src/approver/names.ts';
import { decideServingCsr, type ApproverPolicy, type ClusterView, type CsrFacts } from '../../src/approver/policy.ts';
import type { ParsedCsr } from '../../src/pki/csr.ts';
import { parseStrictCsr, type StrictCsr } from '../../src/pki/strict-csr.ts';
import {
  cons,
  decodeNode,
  encodeNode,
  extension,
  extensionRequest,
  generalNames,
  nodeName,
  oid,
  OIDS,
  prim,
  rdn,
  requestInfo,
  sanExtension,
  seq,
  set,
  signRequest,
  toPem,
  utf8,
  type DerNode,
  type San,
} from '../helpers/der-builder.ts';
import type { GoNames, GoOracle, GoView } from './go-oracle.ts';

export const FUZZ_NODE = 'fuzz-node';
export const FUZZ_POLICY: ApproverPolicy = {
  dnsPatterns: ['*.fuzz.example', 'shared.example'],
  allowedCidrs: ['10.0.0.0/24', '2001:db8::/64'],
  maxExpirationSeconds: undefined,
  allowedKeyAlgorithms: ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'],
  clusterDomain: 'cluster.local',
  allowLoopback: false,
  denyMode: 'deny',
  onUnknownNode: 'deny',
  nodeNamePattern: undefined,
};
const claims = new NodeClaims();
claims.set('other-node', [
  { type: 'InternalIP', address: '10.0.0.6' },
  { type: 'InternalDNS', address: 'other-node.fuzz.example' },
]);
export const FUZZ_CLUSTER: ClusterView = {
  claimants: (key, requester) => claims.claimants(key, requester),
  apiServer: { dnsNames: new Set(['api.fuzz.example']), ips: new Set(['10.0.0.1']) },
};

/** Names worth smuggling: the node's own, the cluster's, another node's, wildcards, odd spellings. */
const NASTY: San[] = [
  { dns: 'kubernetes.default.svc' },
  { dns: 'kubernetes' },
  { dns: `*.fuzz.example` },
  { dns: `${FUZZ_NODE}.fuzz.example` },
  { dns: 'other-node' },
  { dns: 'other-node.fuzz.example' },
  { dns: 'FUZZ-NODE' },
  { dns: 'localhost' },
  { dns: 'shared.example' },
  { dns: '10.0.0.5' },
  { dns: '' },
  { ip: '10.0.0.6' },
  { ip: '10.0.0.1' },
  { ip: '127.0.0.1' },
  { ip: '::ffff:10.0.0.5' },
  { ip: '10.0.0.7' },
  { ip: '2001:db8::7' },
  { email: 'a@fuzz.example' },
  { uri: 'spiffe://fuzz/x' },
];
const OIDS_TO_TRY = [
  OIDS.extensionRequest,
  OIDS.san,
  OIDS.cn,
  OIDS.o,
  OIDS.ou,
  OIDS.challengePassword,
  OIDS.keyUsage,
  '1.3.6.1.4.1.99999.1',
];
const TAGS_TO_TRY = [0x30, 0x31, 0xa0, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x1e, 0x81, 0x82, 0x87, 0xa2, 0xa4];

const key: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const OWN: San[] = [{ dns: FUZZ_NODE }, { dns: `${FUZZ_NODE}.fuzz.example` }, { ip: '10.0.0.5' }];

/** certificationRequestInfo trees the policy approves, to mutate from. */
const BASES: DerNode[] = [
  requestInfo(key, nodeName(FUZZ_NODE), [extensionRequest(sanExtension(OWN))]),
  requestInfo(key, nodeName(FUZZ_NODE), [extensionRequest(sanExtension([{ ip: '10.0.0.5' }]))]),
  requestInfo(key, nodeName(FUZZ_NODE), [
    extensionRequest(extension(OIDS.keyUsage, prim(0x03, [0x07, 0x80])), sanExtension(OWN)),
  ]),
];

const OPS = [
  'dupAttribute',
  'swapAttributes',
  'dropAttribute',
  'addAttribute',
  'padOid',
  'changeOid',
  'longLength',
  'retag',
  'setSeqSwap',
  'dupExtension',
  'nestExtension',
  'criticalFlag',
  'addExtension',
  'sanEdit',
  'subjectEdit',
  'dupNode',
  'deleteNode',
  'wrapNode',
] as const;
const OUTER = ['none', 'none', 'none', 'none', 'trailing', 'flipByte', 'truncate', 'oldSignature'] as const;

interface Op {
  kind: (typeof OPS)[number];
  a: number;
  b: number;
  c: number;
}
export interface Recipe {
  base: number;
  ops: Op[];
  outer: (typeof OUTER)[number];
  at: number;
}

export const recipeArbitrary: fc.Arbitrary<Recipe> = fc.record({
  base: fc.nat(),
  ops: fc.array(fc.record({ kind: fc.constantFrom(...OPS), a: fc.nat(), b: fc.nat(), c: fc.nat() }), {
    minLength: 1,
    maxLength: 4,
  }),
  outer: fc.constantFrom(...OUTER),
  at: fc.nat(),
});

type Parent = { children: DerNode[] };
interface Located {
  node: DerNode;
  parent: Parent | undefined;
  index: number;
}

function walk(node: DerNode, parent?: Parent, index = 0, out: Located[] = []): Located[] {
  out.push({ node, parent, index });
  if ('children' in node) for (const [i, c] of node.children.entries()) walk(c, node, i, out);
  return out;
}

const pick = <T>(xs: readonly T[], n: number): T | undefined => (xs.length ? xs[n % xs.length] : undefined);
const clone = (n: DerNode): DerNode =>
  'children' in n ? { ...n, children: n.children.map(clone) } : { ...n, contents: Buffer.from(n.contents) };

/** The extensionRequest-like attributes' Extensions SEQUENCEs, and the SAN extensions in them. */
function extensionLists(info: Parent): Parent[] {
  const attrs = info.children[3];
  if (!attrs || !('children' in attrs)) return [];
  return attrs.children.flatMap((attr) => {
    const values = 'children' in attr ? attr.children[1] : undefined;
    return values && 'children' in values ? values.children.filter((v): v is DerNode & Parent => 'children' in v) : [];
  });
}

function applyOp(info: DerNode & Parent, op: Op): void {
  const nodes = walk(info);
  const attrs = info.children[3] as (DerNode & Parent) | undefined;
  const attrList = attrs && 'children' in attrs ? attrs.children : [];
  const lists = extensionLists(info);
  switch (op.kind) {
    case 'dupAttribute': {
      const a = pick(attrList, op.a);
      if (a) attrList.splice(op.b % (attrList.length + 1), 0, clone(a));
      break;
    }
    case 'swapAttributes':
      if (attrList.length > 1) attrList.reverse();
      break;
    case 'dropAttribute':
      if (attrList.length) attrList.splice(op.a % attrList.length, 1);
      break;
    case 'addAttribute':
      attrList.splice(
        op.b % (attrList.length + 1),
        0,
        op.c % 2
          ? seq(oid(OIDS.challengePassword), set(utf8('x')))
          : extensionRequest(sanExtension([pick(NASTY, op.a)!])),
      );
      break;
    case 'padOid': {
      const o = pick(
        nodes.filter((n) => n.node.tag === 0x06),
        op.a,
      );
      if (o && 'contents' in o.node) {
        const starts = [0, ...[...o.node.contents].flatMap((b, i) => ((b & 0x80) === 0 ? [i + 1] : []))];
        const at = starts[op.b % starts.length]!;
        if (at < o.node.contents.length)
          o.node.contents = Buffer.concat([
            o.node.contents.subarray(0, at),
            Buffer.from([0x80]),
            o.node.contents.subarray(at),
          ]);
      }
      break;
    }
    case 'changeOid': {
      const o = pick(
        nodes.filter((n) => n.node.tag === 0x06),
        op.a,
      );
      if (o?.parent) o.parent.children[o.index] = oid(pick(OIDS_TO_TRY, op.b)!);
      break;
    }
    case 'longLength': {
      const n = pick(nodes, op.a);
      if (n) n.node.lengthBytes = 1 + (op.b % 3);
      break;
    }
    case 'retag': {
      const n = pick(nodes.slice(1), op.a);
      if (n) n.node.tag = pick(TAGS_TO_TRY, op.b)!;
      break;
    }
    case 'setSeqSwap': {
      const n = pick(
        nodes.filter((x) => x.node.tag === 0x30 || x.node.tag === 0x31),
        op.a,
      );
      if (n?.parent) n.node.tag ^= 0x01;
      break;
    }
    case 'dupExtension': {
      const list = pick(lists, op.a);
      const e = list && pick(list.children, op.b);
      if (list && e) list.children.splice(op.c % (list.children.length + 1), 0, clone(e));
      break;
    }
    case 'nestExtension': {
      const list = pick(lists, op.a);
      const i = list ? op.b % Math.max(1, list.children.length) : 0;
      if (list?.children[i]) list.children[i] = seq(list.children[i]!);
      break;
    }
    case 'criticalFlag': {
      const list = pick(lists, op.a);
      const e = list && pick(list.children, op.b);
      if (e && 'children' in e && e.children.length === 2)
        e.children.splice(1, 0, prim(0x01, [pick([0xff, 0x00, 0x01], op.c)!]));
      break;
    }
    case 'addExtension': {
      const list = pick(lists, op.a);
      const added =
        op.c % 3 === 0
          ? sanExtension([pick(NASTY, op.b)!])
          : extension('1.3.6.1.4.1.99999.1', prim(0x05, []), op.c % 3 === 1 ? prim(0x01, [0xff]) : undefined);
      list?.children.push(added);
      break;
    }
    case 'sanEdit':
      editSan(lists, op);
      break;
    case 'subjectEdit':
      editSubject(info.children[1] as DerNode & Parent, op);
      break;
    case 'dupNode': {
      const n = pick(nodes.slice(1), op.a);
      if (n?.parent) n.parent.children.splice(n.index, 0, clone(n.node));
      break;
    }
    case 'deleteNode': {
      const n = pick(nodes.slice(1), op.a);
      if (n?.parent) n.parent.children.splice(n.index, 1);
      break;
    }
    case 'wrapNode': {
      const n = pick(nodes.slice(1), op.a);
      if (n?.parent) n.parent.children[n.index] = cons(op.b % 2 ? 0x31 : 0x30, n.node);
      break;
    }
  }
}

/** Edits inside a SAN extension's OCTET STRING: add a nasty name, re-tag or duplicate one, trailing bytes. */
function editSan(lists: Parent[], op: Op): void {
  const sans = lists.flatMap((l) =>
    l.children.filter(
      (e): e is DerNode & Parent =>
        'children' in e && e.children[0]?.tag === 0x06 && encodeNode(e.children[0]).equals(encodeNode(oid(OIDS.san))),
    ),
  );
  const ext = pick(sans, op.a);
  const octets = ext?.children[ext.children.length - 1];
  if (!octets || !('contents' in octets)) return;
  let names: DerNode;
  try {
    names = decodeNode(octets.contents);
  } catch {
    return;
  }
  if (!('children' in names)) return;
  const which = op.b % 4;
  if (which === 0) names.children.splice(op.c % (names.children.length + 1), 0, ...generalNamesOf(pick(NASTY, op.c)!));
  else if (which === 1 && names.children.length)
    pick(names.children, op.c)!.tag = pick([0x82, 0x87, 0xa2, 0x81, 0x86, 0x80], op.a)!;
  else if (which === 2 && names.children.length) names.children.push(clone(pick(names.children, op.c)!));
  octets.contents =
    which === 3
      ? Buffer.concat([encodeNode(names), encodeNode(generalNames([pick(NASTY, op.c)!]))])
      : encodeNode(names);
}

function generalNamesOf(san: San): DerNode[] {
  return (generalNames([san]) as Parent).children;
}

/** Subject edits: a second CN, an OU, O=system:masters, a multi-valued RDN, another string type. */
function editSubject(subject: (DerNode & Parent) | undefined, op: Op): void {
  if (!subject || !('children' in subject)) return;
  const which = op.a % 5;
  if (which === 0)
    subject.children.splice(op.b % (subject.children.length + 1), 0, rdn(OIDS.cn, utf8('system:node:other-node')));
  else if (which === 1) subject.children.push(rdn(OIDS.ou, utf8('ops')));
  else if (which === 2) subject.children.push(rdn(OIDS.o, utf8('system:masters')));
  else if (which === 3 && subject.children.length > 1) {
    const [first, second] = subject.children as [DerNode & Parent, DerNode & Parent];
    subject.children.splice(0, 2, cons(0x31, ...(first.children ?? []), ...(second.children ?? [])));
  } else {
    const value = pick(
      walk(subject).filter((n) => n.node.tag === 0x0c || n.node.tag === 0x13),
      op.b,
    );
    if (value) value.node.tag = pick([0x13, 0x16, 0x1e, 0x14, 0x0c], op.c)!;
  }
}

const BASE_SIGNED = BASES.map((b) => signRequest(b, key));

/** The request a recipe makes (DER). */
export function buildMutant(recipe: Recipe): Buffer {
  const baseIndex = recipe.base % BASES.length;
  const info = clone(BASES[baseIndex]!) as DerNode & Parent;
  for (const op of recipe.ops) applyOp(info, op);
  let der: Buffer;
  if (recipe.outer === 'oldSignature') {
    // The mutated info with the base request's signature: a proof of possession that does not verify.
    const old = decodeNode(BASE_SIGNED[baseIndex]!) as Parent;
    der = encodeNode(seq(info, old.children[1]!, old.children[2]!));
  } else der = signRequest(info, key);
  const at = recipe.at % der.length;
  if (recipe.outer === 'trailing') return Buffer.concat([der, Buffer.from([0, 0x30, 0])]);
  if (recipe.outer === 'truncate') return der.subarray(0, at);
  if (recipe.outer === 'flipByte') {
    const copy = Buffer.from(der);
    copy[at] = copy[at]! ^ (1 << (recipe.at % 8));
    return copy;
  }
  return der;
}

export interface Judgement {
  decision: 'approve' | 'deny' | 'skip';
  reason?: string;
  approverAccepted: boolean;
  goParsed: boolean;
  /** Property violations: each a one-line description. Empty when all is well. */
  violations: string[];
}

const sorted = (xs: readonly string[] | null | undefined) => [...new Set(xs ?? [])].sort();
const same = (a: readonly string[] | null | undefined, b: readonly string[] | null | undefined) =>
  JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

function facts(request: CsrFacts['request']): CsrFacts {
  return {
    signerName: 'kubernetes.io/kubelet-serving',
    username: `system:node:${FUZZ_NODE}`,
    groups: ['system:nodes', 'system:authenticated'],
    usages: ['digital signature', 'server auth'],
    expirationSeconds: undefined,
    request,
  };
}

const FUZZ_NODE_FACTS = { name: FUZZ_NODE, addresses: [] };

/** How the approver reads spec.request: the strict reader, or (to prove the fuzz can fail) another. */
export type RequestReader = (pem: Buffer) => Promise<ParsedCsr | { refusal: 'InvalidRequest'; message: string }>;

export const strictReader: RequestReader = async (pem) => {
  const parsed = parseStrictCsr(pem);
  return parsed.ok ? parsed.csr : { refusal: parsed.reason as 'InvalidRequest', message: parsed.message };
};

/** The approver's decision on spec.request bytes, as the controller makes it. */
export async function approverDecision(pem: Buffer, read: RequestReader = strictReader) {
  const request = await read(pem);
  return {
    decision: decideServingCsr(facts(request), FUZZ_NODE_FACTS, FUZZ_POLICY, FUZZ_CLUSTER),
    csr: 'refusal' in request ? undefined : (request as Partial<StrictCsr> & ParsedCsr),
  };
}

/** Compares the approver's reading and decision with Go's; see the property at the top of this file. */
export async function judge(pem: Buffer, go: GoView, read: RequestReader = strictReader): Promise<Judgement> {
  const { decision, csr } = await approverDecision(pem, read);
  const v: string[] = [];
  const goParsed = go.parseError === undefined;
  if (csr && goParsed) compareReadings(csr, go, v);
  if (decision.decision === 'approve') {
    if (!goParsed) v.push(`approved, but Go cannot parse it: ${go.parseError}`);
    else if (!go.signatureValid) v.push(`approved, but Go finds the signature invalid: ${go.signatureError}`);
    else if (go.kubeletServingError) v.push(`approved, but the signer refuses it: ${go.kubeletServingError}`);
    else if (!go.signed) v.push(`approved, but Go's signer fails: ${go.signedError}`);
    else checkSigned(csr!, go.signed, v);
  }
  return {
    decision: decision.decision,
    ...('reason' in decision ? { reason: decision.reason } : {}),
    approverAccepted: csr !== undefined,
    goParsed,
    violations: v,
  };
}

function compareReadings(csr: Partial<StrictCsr> & ParsedCsr, go: GoView, v: string[]): void {
  const differ = (what: string, ours: unknown, theirs: unknown) =>
    v.push(`both read it, differently: ${what} ${JSON.stringify(ours)} vs Go ${JSON.stringify(theirs)}`);
  if (!same(csr.dnsNames, go.dnsNames)) differ('DNS SANs', csr.dnsNames, go.dnsNames);
  if (!same(csr.ipAddresses, go.ipAddresses)) differ('IP SANs', csr.ipAddresses, go.ipAddresses);
  if (!same(csr.emailAddresses, go.emailAddresses)) differ('email SANs', csr.emailAddresses, go.emailAddresses);
  if (!same(csr.uris, go.uris)) differ('URI SANs', csr.uris, go.uris);
  if ((csr.commonName ?? '') !== go.commonName) differ('CN', csr.commonName, go.commonName);
  if (!same(csr.organizations, go.organization)) differ('O', csr.organizations, go.organization);
  if (csr.signatureValid !== go.signatureValid) differ('signature valid', csr.signatureValid, go.signatureValid);
  const ids = (xs: Array<{ id: string; critical: boolean }> | null | undefined) =>
    (xs ?? []).map((e) => `${e.id}${e.critical ? '!' : ''}`);
  if (csr.extensions && JSON.stringify(ids(csr.extensions)) !== JSON.stringify(ids(go.extensions)))
    differ('extensions', ids(csr.extensions), ids(go.extensions));
}

function checkSigned(csr: ParsedCsr, signed: GoNames, v: string[]): void {
  if (!same(csr.dnsNames, signed.dnsNames)) v.push(`signed DNS SANs ${signed.dnsNames} ≠ approved ${csr.dnsNames}`);
  if (!same(csr.ipAddresses, signed.ipAddresses))
    v.push(`signed IP SANs ${signed.ipAddresses} ≠ approved ${csr.ipAddresses}`);
  if (signed.emailAddresses.length || signed.uris.length) v.push('signed email or URI SANs');
  if (signed.commonName !== csr.commonName || !same(signed.organization, csr.organizations))
    v.push(`signed subject CN=${signed.commonName} O=${signed.organization} ≠ approved`);
  const extra = signed.names.filter((n) => n.type !== '2.5.4.3' && n.type !== '2.5.4.10');
  if (extra.length) v.push(`signed subject has more than CN and O: ${JSON.stringify(extra)}`);
  // Each signed name on its own must pass the policy, read back through the same rules.
  const alone: ParsedCsr = {
    ...csr,
    dnsNames: signed.dnsNames,
    ipAddresses: signed.ipAddresses,
    emailAddresses: [],
    uris: [],
    otherSubjectAltNames: [],
    publicKey: csr.publicKey ?? createPublicKey(key),
  };
  const again = decideServingCsr(facts(alone), FUZZ_NODE_FACTS, FUZZ_POLICY, FUZZ_CLUSTER);
  if (again.decision !== 'approve') v.push(`a signed name is outside the policy: ${again.message}`);
}

export interface FuzzStats {
  cases: number;
  seconds: number;
  approved: number;
  approverAccepted: number;
  goParsed: number;
  goOnly: number;
  failures: Array<{ pem: string; violations: string[] }>;
}

/** Runs `count` generated mutants (in batches through one oracle process); never throws on a finding. */
export async function fuzzAgainstGo(
  oracle: GoOracle,
  count: number,
  seed: number,
  read: RequestReader = strictReader,
  batch = 500,
): Promise<FuzzStats> {
  const stats: FuzzStats = {
    cases: 0,
    seconds: 0,
    approved: 0,
    approverAccepted: 0,
    goParsed: 0,
    goOnly: 0,
    failures: [],
  };
  const started = performance.now();
  for (let done = 0; done < count; done += batch) {
    const recipes = fc.sample(recipeArbitrary, { numRuns: Math.min(batch, count - done), seed: seed + done });
    const pems = recipes.map((r) => Buffer.from(toPem(buildMutant(r))));
    const views = await oracle.inspect(pems);
    for (const [i, pem] of pems.entries()) {
      const j = await judge(pem, views[i]!, read);
      stats.cases++;
      if (j.decision === 'approve') stats.approved++;
      if (j.approverAccepted) stats.approverAccepted++;
      if (j.goParsed) stats.goParsed++;
      if (j.goParsed && !j.approverAccepted) stats.goOnly++;
      if (j.violations.length) stats.failures.push({ pem: pem.toString(), violations: j.violations });
    }
  }
  stats.seconds = (performance.now() - started) / 1000;
  return stats;
}
