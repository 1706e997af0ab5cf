// The health source's cached "does the node credential authenticate" answer, on an injected clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { managerHealthSource } from '../../../src/health/source.ts';
import type { CertificateManager } from '../../../src/manager/manager.ts';

const HOUR = 3_600_000;

/** A manager whose node credential answers SelfSubjectReviews as `user`, counting them. */
function fakeManager() {
  const reviews = { count: 0, user: 'system:node:worker-1' };
  const manager = {
    deps: {
      config: { nodeName: 'worker-1', clientCredentials: 'managed', rotateServerCertificates: false },
      connect: () => ({
        whoAmI: async () => {
          reviews.count++;
          return { username: reviews.user, groups: [] };
        },
      }),
    },
    states: { client: { kind: 'client', path: '/x' }, server: { kind: 'server', path: '/y' } },
    nodeConnection: async () => ({}),
    noteNodeAuthentication: () => {},
  } as unknown as CertificateManager;
  return { manager, reviews };
}

// A wall clock stepped back 8 hours (NTP after an RTC kept in local time) kept the last answer for 8 hours:
// /readyz went on saying the credential authenticates (or that it does not) long after that changed.
test('the API authentication check is not cached across a clock stepped back', async () => {
  const { manager, reviews } = fakeManager();
  let now = new Date(Date.UTC(2030, 0, 1, 8));
  const source = managerHealthSource(manager, {
    expiryThresholdMs: 0,
    loopStaleMs: 60_000,
    authCacheMs: 30_000,
    heartbeat: () => now,
    now: () => now,
  });
  assert.equal((await source.input()).apiAuth?.ok, true);
  await source.input();
  assert.equal(reviews.count, 1, 'cached within authCacheMs');
  now = new Date(now.getTime() - 8 * HOUR);
  reviews.user = 'system:anonymous';
  const after = (await source.input()).apiAuth;
  assert.equal(reviews.count, 2, 'checked again after the step');
  assert.equal(after?.ok, false);
});
