import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLIENT_SIGNER, SERVING_SIGNER, csrName, type CsrNameInput } from '../../../src/kube/csr-name.ts';

/** RFC 1123 DNS subdomain, as the API server validates metadata.name of a CSR (the names must pass it). */
function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

const base: CsrNameInput = {
  kind: 'client',
  spkiDer: new Uint8Array([0x30, 0x59, 1, 2, 3, 4]),
  commonName: 'system:node:worker-1',
  organizations: ['system:nodes'],
  usages: ['digital signature', 'client auth'],
  signerName: CLIENT_SIGNER,
};

test('names are readable, deterministic DNS subdomains', () => {
  const name = csrName(base);
  assert.match(name, /^nodecred-client-[0-9a-f]{24}$/);
  assert.equal(csrName({ ...base, organizations: [...base.organizations], usages: [...base.usages] }), name);
  assert.ok(isDnsSubdomain(name));
  assert.match(
    csrName({ ...base, kind: 'serving', signerName: SERVING_SIGNER, usages: ['digital signature', 'server auth'] }),
    /^nodecred-serving-[0-9a-f]{24}$/,
  );
  assert.equal(isDnsSubdomain('Nodecred-x'), false);
  assert.equal(isDnsSubdomain(`a${'b'.repeat(253)}`), false);
});

test('the order of organizations and usages does not matter', () => {
  const a = csrName({
    ...base,
    organizations: ['system:nodes', 'extra'],
    usages: ['key encipherment', 'digital signature', 'client auth'],
  });
  const b = csrName({
    ...base,
    organizations: ['extra', 'system:nodes'],
    usages: ['client auth', 'key encipherment', 'digital signature'],
  });
  assert.equal(a, b);
});

test('every field changes the name, and fields cannot bleed into each other', () => {
  const variants: CsrNameInput[] = [
    base,
    { ...base, spkiDer: new Uint8Array([0x30, 0x59, 1, 2, 3, 5]) },
    { ...base, spkiDer: new Uint8Array([0x30, 0x59, 1, 2, 3, 4, 0]) },
    { ...base, commonName: 'system:node:worker-2' },
    { ...base, organizations: [] },
    { ...base, organizations: ['system:nodes', 'system:nodes'] },
    { ...base, organizations: ['system:nodesx'] },
    { ...base, usages: ['digital signature', 'client auth', 'key encipherment'] },
    { ...base, usages: ['digital signatureclient auth'] },
    { ...base, signerName: 'kubernetes.io/kube-apiserver-client' },
    // Moving text between neighbouring fields must not collide.
    { ...base, organizations: ['system:nodes', 'digital signature'], usages: ['client auth'] },
    { ...base, commonName: 'system:node:worker-1system:nodes', organizations: [] },
  ];
  const names = new Set(variants.map(csrName));
  assert.equal(names.size, variants.length);
});

test('property: names are valid DNS subdomains and invariant under permutation', () => {
  const strs = fc.array(fc.string({ unit: 'binary', maxLength: 20 }), { maxLength: 5 });
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 100 }),
      fc.string({ unit: 'binary' }),
      strs,
      strs,
      fc.string(),
      fc.constantFrom('client' as const, 'serving' as const),
      (spkiDer, commonName, organizations, usages, signerName, kind) => {
        const input = { kind, spkiDer, commonName, organizations, usages, signerName };
        const name = csrName(input);
        assert.ok(isDnsSubdomain(name), name);
        assert.equal(
          csrName({ ...input, organizations: [...organizations].reverse(), usages: [...usages].reverse() }),
          name,
        );
      },
    ),
    { numRuns: 200 },
  );
});
