import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalIp } from '../../../src/pki/san.ts';
import {
  believableDenial,
  DEFAULT_BACKOFF,
  denialStands,
  DENIED_RETRY_BACKOFF,
  recordDenial,
  KUBELET_ROTATION_WINDOW,
  nextPass,
  retryDelayMs,
  rotationDeadline,
  sameSans,
  servingSansFromAddresses,
  standingOf,
  type NodeAddress,
} from '../../../src/manager/policy.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The largest double below 1: what Math.random can return at most. */
const ALMOST_ONE = 1 - 2 ** -53;
const fixed = (value: number) => () => value;

// ── rotation deadline ────────────────────────────────────────────────────────────────────────────────

test('rotationDeadline: random()=0 gives exactly NotBefore + from × lifetime', () => {
  const notBefore = new Date('2025-01-01T00:00:00Z');
  const notAfter = new Date(notBefore.getTime() + 365 * DAY);
  const deadline = rotationDeadline(notBefore, notAfter, KUBELET_ROTATION_WINDOW, fixed(0));
  assert.equal(deadline.getTime(), notBefore.getTime() + 0.7 * 365 * DAY);
  assert.equal(
    rotationDeadline(notBefore, notAfter, { from: 0.5, to: 0.9 }, fixed(0)).getTime(),
    notBefore.getTime() + 0.5 * 365 * DAY,
  );
});

test('rotationDeadline: random()→1 approaches but stays below NotBefore + to × lifetime', () => {
  const notBefore = new Date('2025-01-01T00:00:00Z');
  for (const lifetime of [10 * MINUTE, HOUR, DAY, 365 * DAY]) {
    const notAfter = new Date(notBefore.getTime() + lifetime);
    const upper = notBefore.getTime() + 0.9 * lifetime;
    const deadline = rotationDeadline(notBefore, notAfter, KUBELET_ROTATION_WINDOW, fixed(ALMOST_ONE)).getTime();
    assert.ok(deadline < upper, `${lifetime}: ${deadline} < ${upper}`);
    assert.ok(upper - deadline <= 1, 'within a millisecond of the end of the window');
  }
});

test('rotationDeadline: a day-long certificate: 0.7 × 1 day is 16.8 h to the millisecond', () => {
  // 86_400_000 × 0.7 is 60479999.99999999 in floating point; the deadline is whole milliseconds.
  const notBefore = new Date('2025-01-01T00:00:00Z');
  const deadline = rotationDeadline(notBefore, new Date(notBefore.getTime() + DAY), KUBELET_ROTATION_WINDOW, fixed(0));
  assert.equal(deadline.toISOString(), '2025-01-01T16:48:00.000Z');
});

test('rotationDeadline: random()=0.5 is the middle of the window; from = to is deterministic', () => {
  const notBefore = new Date(0);
  const notAfter = new Date(1000 * HOUR);
  assert.equal(rotationDeadline(notBefore, notAfter, KUBELET_ROTATION_WINDOW, fixed(0.5)).getTime(), 800 * HOUR);
  for (const r of [0, 0.3, ALMOST_ONE]) {
    assert.equal(rotationDeadline(notBefore, notAfter, { from: 0.8, to: 0.8 }, fixed(r)).getTime(), 800 * HOUR);
  }
});

test('rotationDeadline: property: within [from, to) of the lifetime for random certificates', () => {
  const window = fc
    .tuple(fc.double({ min: 0.01, max: 0.99, noNaN: true }), fc.double({ min: 0.01, max: 0.99, noNaN: true }))
    .map(([a, b]) => ({ from: Math.min(a, b), to: Math.max(a, b) }));
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 4_000_000_000_000 }),
      fc.integer({ min: 10 * MINUTE, max: 10 * 365 * DAY }),
      fc.oneof(window, fc.constant(KUBELET_ROTATION_WINDOW)),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (start, lifetime, win, r) => {
        const deadline = rotationDeadline(new Date(start), new Date(start + lifetime), win, fixed(r)).getTime();
        const offset = deadline - start;
        assert.ok(Number.isInteger(deadline));
        // Dates hold whole milliseconds: the start of the window is rounded to one.
        assert.ok(offset >= Math.round(lifetime * win.from), `${offset} before the window`);
        if (Math.round(lifetime * win.from) < lifetime * win.to)
          assert.ok(offset < lifetime * win.to, `${offset} not before the end of the window`);
        assert.ok(deadline < start + lifetime, 'always before NotAfter');
      },
    ),
    { numRuns: 1000 },
  );
});

test('rotationDeadline: property: a fleet issued together spreads over the whole window', () => {
  // Deterministic "random" sequence: evenly spaced values cover the window evenly.
  const notBefore = new Date(0);
  const notAfter = new Date(100 * DAY);
  const deadlines = Array.from({ length: 100 }, (_, i) =>
    rotationDeadline(notBefore, notAfter, KUBELET_ROTATION_WINDOW, fixed(i / 100)).getTime(),
  );
  assert.equal(new Set(deadlines).size, 100);
  assert.equal(Math.min(...deadlines), 70 * DAY);
  assert.ok(Math.max(...deadlines) < 90 * DAY);
});

// ── retry backoff ────────────────────────────────────────────────────────────────────────────────────

test('retryDelayMs: exponential from initialMs, capped at maxMs (random()=0 gives cap/2)', () => {
  const backoff = { initialMs: 1000, maxMs: 64_000 };
  const lows = Array.from({ length: 10 }, (_, attempt) => retryDelayMs(attempt, backoff, fixed(0)));
  assert.deepEqual(lows, [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 32_000, 32_000, 32_000]);
  const highs = Array.from({ length: 10 }, (_, attempt) => retryDelayMs(attempt, backoff, fixed(ALMOST_ONE)));
  assert.deepEqual(highs, [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 64_000, 64_000, 64_000]);
});

test('retryDelayMs: the default backoff reaches five minutes and stays there', () => {
  assert.equal(retryDelayMs(0, DEFAULT_BACKOFF, fixed(ALMOST_ONE)), 1000);
  assert.equal(retryDelayMs(8, DEFAULT_BACKOFF, fixed(ALMOST_ONE)), 256_000);
  assert.equal(retryDelayMs(9, DEFAULT_BACKOFF, fixed(ALMOST_ONE)), 5 * MINUTE);
  assert.equal(retryDelayMs(1000, DEFAULT_BACKOFF, fixed(0)), 2.5 * MINUTE);
});

test('retryDelayMs: huge attempt numbers stay finite and capped', () => {
  for (const attempt of [31, 1024, 1e9, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Number.POSITIVE_INFINITY]) {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const delay = retryDelayMs(attempt, DEFAULT_BACKOFF, fixed(r));
      assert.ok(Number.isFinite(delay), `${attempt}: ${delay}`);
      assert.ok(delay >= DEFAULT_BACKOFF.maxMs / 2 && delay <= DEFAULT_BACKOFF.maxMs, `${attempt}: ${delay}`);
    }
  }
  // A large maxMs must not be reached through overflow either.
  const delay = retryDelayMs(1e6, { initialMs: 1000, maxMs: Number.MAX_SAFE_INTEGER }, fixed(0));
  assert.ok(Number.isFinite(delay) && delay > 0);
});

test('retryDelayMs: property: an integer in [cap/2, cap], never NaN, non-decreasing in attempt', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 1, max: 1_000_000_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, initialMs, extra, r) => {
        const backoff = { initialMs, maxMs: initialMs + extra };
        const delay = retryDelayMs(attempt, backoff, fixed(r));
        const cap = Math.min(backoff.maxMs, initialMs * 2 ** Math.min(attempt, 30));
        assert.ok(Number.isInteger(delay), `${delay}`);
        assert.ok(delay >= Math.floor(cap / 2) && delay <= cap, `${delay} not in [${cap / 2}, ${cap}]`);
        assert.ok(delay <= backoff.maxMs);
        assert.ok(retryDelayMs(attempt + 1, backoff, fixed(r)) >= delay, 'never shorter on the next attempt');
      },
    ),
    { numRuns: 1000 },
  );
});

// ── serving SANs ─────────────────────────────────────────────────────────────────────────────────────

const addr = (type: string, address: string): NodeAddress => ({ type, address });

test('servingSansFromAddresses: a typical cloud node, as kubelet computes it', () => {
  const sans = servingSansFromAddresses([
    addr('InternalIP', '10.0.0.5'),
    addr('ExternalIP', '203.0.113.7'),
    addr('InternalDNS', 'ip-10-0-0-5.ec2.internal'),
    addr('ExternalDNS', 'ec2-203-0-113-7.compute.amazonaws.com'),
    addr('Hostname', 'ip-10-0-0-5.ec2.internal'),
  ]);
  assert.deepEqual(sans, {
    dnsNames: ['ec2-203-0-113-7.compute.amazonaws.com', 'ip-10-0-0-5.ec2.internal'],
    ipAddresses: ['10.0.0.5', '203.0.113.7'],
  });
});

test('servingSansFromAddresses: Hostname is an IP when it parses as one, else a DNS name', () => {
  assert.deepEqual(servingSansFromAddresses([addr('Hostname', '192.168.1.10')]), {
    dnsNames: [],
    ipAddresses: ['192.168.1.10'],
  });
  assert.deepEqual(servingSansFromAddresses([addr('Hostname', '2001:db8::10')]), {
    dnsNames: [],
    ipAddresses: ['2001:db8::10'],
  });
  assert.deepEqual(servingSansFromAddresses([addr('Hostname', 'node-1')]), { dnsNames: ['node-1'], ipAddresses: [] });
});

test('servingSansFromAddresses: *IP types never become DNS names; *DNS types never become IPs', () => {
  assert.deepEqual(servingSansFromAddresses([addr('InternalIP', 'node-1'), addr('ExternalIP', 'not-an-ip')]), {
    dnsNames: [],
    ipAddresses: [],
  });
  // A DNS-typed address that looks like an IP stays a DNS name, as in kubelet.
  assert.deepEqual(servingSansFromAddresses([addr('InternalDNS', '10.0.0.1')]), {
    dnsNames: ['10.0.0.1'],
    ipAddresses: [],
  });
});

test('servingSansFromAddresses: other address types are ignored (types are case-sensitive)', () => {
  assert.deepEqual(
    servingSansFromAddresses([
      addr('LegacyHostIP', '10.0.0.9'),
      addr('internalip', '10.0.0.8'),
      addr('', '10.0.0.7'),
      addr('Foo', 'node-x'),
      addr('InternalIP', '10.0.0.1'),
    ]),
    { dnsNames: [], ipAddresses: ['10.0.0.1'] },
  );
});

test('servingSansFromAddresses: empty addresses skipped, whitespace trimmed', () => {
  assert.deepEqual(
    servingSansFromAddresses([
      addr('InternalIP', ''),
      addr('Hostname', '   '),
      addr('InternalDNS', ' node-1 '),
      addr('InternalIP', ' 10.0.0.1\n'),
    ]),
    {
      dnsNames: ['node-1'],
      ipAddresses: ['10.0.0.1'],
    },
  );
  assert.deepEqual(servingSansFromAddresses([]), { dnsNames: [], ipAddresses: [] });
});

test('servingSansFromAddresses: IPv6 canonicalised (RFC 5952), IPv4-mapped becomes IPv4, duplicates collapse', () => {
  const sans = servingSansFromAddresses([
    addr('InternalIP', '2001:DB8:0:0:0:0:0:1'),
    addr('ExternalIP', '2001:db8::1'),
    addr('Hostname', '2001:0db8::0001'),
    addr('InternalIP', '::ffff:10.0.0.1'),
    addr('ExternalIP', '10.0.0.1'),
    addr('InternalIP', 'FE80::A'),
  ]);
  assert.deepEqual(sans.ipAddresses, ['10.0.0.1', '2001:db8::1', 'fe80::a']);
});

test('servingSansFromAddresses: zoned IPv6 cannot go in a certificate: ignored as an IP', () => {
  // isIP() accepts "fe80::1%eth0"; a certificate cannot hold it, and the CSR builder would refuse the request.
  assert.deepEqual(servingSansFromAddresses([addr('InternalIP', 'fe80::1%eth0'), addr('ExternalIP', '10.0.0.1')]), {
    dnsNames: [],
    ipAddresses: ['10.0.0.1'],
  });
});

test('servingSansFromAddresses: DNS names de-duplicated case-insensitively and sorted', () => {
  const sans = servingSansFromAddresses([
    addr('Hostname', 'Node-B'),
    addr('InternalDNS', 'node-b'),
    addr('ExternalDNS', 'NODE-A.example.com'),
    addr('InternalDNS', 'node-c'),
  ]);
  assert.deepEqual(sans.dnsNames, ['node-a.example.com', 'node-b', 'node-c']);
});

const addressArb = fc.record({
  type: fc.constantFrom('Hostname', 'InternalIP', 'ExternalIP', 'InternalDNS', 'ExternalDNS', 'Other'),
  address: fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.domain(),
    fc.constantFrom('', ' ', 'fe80::1%eth0', '::ffff:10.0.0.1', 'NODE-1'),
    fc.string({ maxLength: 8 }),
  ),
});

test('servingSansFromAddresses: property: sorted, unique, canonical, and independent of input order', () => {
  fc.assert(
    fc.property(fc.array(addressArb, { maxLength: 12 }), fc.nat(), (addresses, seed) => {
      const sans = servingSansFromAddresses(addresses);
      for (const list of [sans.dnsNames, sans.ipAddresses]) {
        assert.deepEqual(list, [...new Set(list)].sort());
      }
      for (const ip of sans.ipAddresses) assert.equal(canonicalIp(ip), ip);
      for (const name of sans.dnsNames) assert.equal(name, name.toLowerCase().trim());
      // A rotation of the input gives the same request.
      const k = addresses.length === 0 ? 0 : seed % addresses.length;
      const rotated = [...addresses.slice(k), ...addresses.slice(0, k)].reverse();
      assert.deepEqual(servingSansFromAddresses(rotated), sans);
      assert.ok(sameSans(servingSansFromAddresses(rotated), sans));
    }),
    { numRuns: 500 },
  );
});

// ── sameSans ─────────────────────────────────────────────────────────────────────────────────────────

test('sameSans: set equality: order, IP spelling, DNS case and duplicates do not matter', () => {
  const a = { dnsNames: ['node-1', 'node-1.internal'], ipAddresses: ['10.0.0.1', '2001:db8::1'] };
  assert.ok(sameSans(a, a));
  assert.ok(sameSans(a, { dnsNames: ['node-1.internal', 'node-1'], ipAddresses: ['2001:DB8:0::1', '10.0.0.1'] }));
  assert.ok(sameSans(a, { dnsNames: ['Node-1', 'NODE-1.internal'], ipAddresses: ['10.0.0.1', '2001:db8::1'] }));
  assert.ok(
    sameSans(a, {
      dnsNames: ['node-1', 'node-1', 'node-1.internal'],
      ipAddresses: ['10.0.0.1', '::ffff:10.0.0.1', '2001:db8::1'],
    }),
  );
  assert.ok(sameSans({ dnsNames: [], ipAddresses: [] }, { dnsNames: [], ipAddresses: [] }));
});

test('sameSans: any missing, extra or moved name makes them differ', () => {
  const a = { dnsNames: ['node-1'], ipAddresses: ['10.0.0.1'] };
  assert.ok(!sameSans(a, { dnsNames: ['node-1'], ipAddresses: [] }));
  assert.ok(!sameSans(a, { dnsNames: ['node-1'], ipAddresses: ['10.0.0.1', '10.0.0.2'] }));
  assert.ok(!sameSans(a, { dnsNames: ['node-2'], ipAddresses: ['10.0.0.1'] }));
  // A name in the other list is not the same SAN.
  assert.ok(!sameSans({ dnsNames: ['10.0.0.1'], ipAddresses: [] }, { dnsNames: [], ipAddresses: ['10.0.0.1'] }));
  assert.ok(!sameSans(a, { dnsNames: ['node-1', '10.0.0.1'], ipAddresses: [] }));
});

test('sameSans: does not reorder its arguments in place', () => {
  const a = { dnsNames: ['b', 'a'], ipAddresses: ['10.0.0.2', '10.0.0.1'] };
  sameSans(a, a);
  assert.deepEqual(a, { dnsNames: ['b', 'a'], ipAddresses: ['10.0.0.2', '10.0.0.1'] });
});

// ── where an installed certificate stands ────────────────────────────────────────────────────────────

const T0 = new Date('2025-06-01T00:00:00Z').getTime();
const at = (ms: number) => new Date(T0 + ms);

test('standingOf: nothing verified is missing; a failed verification is unusable, whatever the deadline', () => {
  assert.equal(standingOf(undefined, undefined, at(0)), 'missing');
  assert.equal(standingOf(undefined, at(-DAY), at(0)), 'missing');
  assert.equal(standingOf(false, at(DAY), at(0)), 'unusable');
  assert.equal(standingOf(false, at(-DAY), at(0)), 'unusable');
});

test('standingOf: a verified certificate is valid before its deadline and due from it on', () => {
  const deadline = at(8 * DAY);
  assert.equal(standingOf(true, deadline, at(DAY)), 'valid');
  assert.equal(standingOf(true, deadline, at(8 * DAY - 1)), 'valid');
  assert.equal(standingOf(true, deadline, at(8 * DAY)), 'due');
  assert.equal(standingOf(true, deadline, at(400 * DAY)), 'due');
});

// The validity rule itself (expired, not yet valid, the clock-skew tolerance) is verification's:
// test/unit/pki/verify.test.ts. The manager applies both through the same code (manager.test.ts).

// ── when the daemon runs its next pass ───────────────────────────────────────────────────────────────

const schedule = (o: Partial<Parameters<typeof nextPass>[0]>) =>
  nextPass({
    now: T0,
    consecutiveFailures: 0,
    pending: false,
    deadlines: [],
    recheckIntervalMs: 5 * MINUTE,
    backoff: DEFAULT_BACKOFF,
    random: fixed(0.5),
    ...o,
  });

test('nextPass: healthy: at the recheck interval, or earlier at a rotation deadline still ahead', () => {
  assert.deepEqual(schedule({}), { at: T0 + 5 * MINUTE, backoffUntil: T0 });
  assert.deepEqual(schedule({ deadlines: [T0 + MINUTE, T0 + 2 * MINUTE] }), { at: T0 + MINUTE, backoffUntil: T0 });
  assert.equal(schedule({ deadlines: [T0 + HOUR] }).at, T0 + 5 * MINUTE, 'a far deadline waits for the recheck');
  assert.equal(schedule({ deadlines: [T0 - MINUTE, T0] }).at, T0 + 5 * MINUTE, 'a past deadline is not a wake-up');
});

test('nextPass: the recheck interval is jittered ±10 % (nodes started together drift apart)', () => {
  assert.equal(schedule({ random: fixed(0) }).at, T0 + 4.5 * MINUTE);
  assert.equal(schedule({ random: fixed(ALMOST_ONE) }).at, T0 + 5.5 * MINUTE);
});

test('nextPass: a pass that ended with a CSR still pending is followed at once (the watch stays open)', () => {
  assert.deepEqual(schedule({ pending: true, deadlines: [T0 + HOUR] }), { at: T0, backoffUntil: T0 });
  assert.ok(schedule({ pending: true, consecutiveFailures: 2 }).at > T0, 'a failure still backs off');
});

test('nextPass: after failures, the jittered backoff, which a wake-up may not cut short', () => {
  const first = schedule({ consecutiveFailures: 1, deadlines: [T0 + 1] });
  assert.equal(first.at, T0 + retryDelayMs(0, DEFAULT_BACKOFF, fixed(0.5)));
  assert.equal(first.backoffUntil, first.at);
  const tenth = schedule({ consecutiveFailures: 10, random: fixed(ALMOST_ONE) });
  assert.ok(tenth.at - T0 <= DEFAULT_BACKOFF.maxMs && tenth.at - T0 >= DEFAULT_BACKOFF.maxMs / 2);
});

// ── denied requests ──────────────────────────────────────────────────────────────────────────────────

test('recordDenial: every wait it draws is one a restarted daemon believes; a longer one read back is not', () => {
  const condition = { type: 'Denied' as const, reason: 'R', message: 'M' };
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: ALMOST_ONE, noNaN: true }), (n, r) => {
      let d: ReturnType<typeof recordDenial> | undefined;
      const now = Date.UTC(2030, 0, 1) + 0.25;
      for (let i = 0; i < n; i++)
        d = recordDenial(d, { request: 'q', csr: 'c', condition, message: 'm', now, random: () => r });
      assert.equal(d!.count, n);
      assert.ok(Number.isInteger(d!.at) && Number.isInteger(d!.retryAt), 'whole milliseconds, as on disk');
      assert.ok(believableDenial(d!, now), `count ${n}: ${d!.retryAt - now} ms`);
    }),
  );
  const now = Date.UTC(2030, 0, 1);
  const forged = { request: 'q', csr: 'c', condition, message: 'm', at: now, count: 1, retryAt: now + 30 * DAY };
  assert.equal(believableDenial(forged, now), false, 'a record cannot hold a request back for a month');
  assert.equal(believableDenial({ ...forged, retryAt: now + DENIED_RETRY_BACKOFF.maxMs }, now), true);
});

test('denialStands: a clock stepped back while the daemon runs does not stretch the hold-back past its longest', () => {
  // A node booted with its clock a day ahead, denied, then corrected by NTP: the same request must not wait a
  // day (a restart would already drop the record: believableDenial); it waits at most the longest draw.
  const condition = { type: 'Denied' as const, reason: 'R', message: 'M' };
  const ahead = Date.UTC(2030, 0, 2);
  const d = recordDenial(undefined, { request: 'q', csr: 'c', condition, message: 'm', now: ahead, random: () => 0.5 });
  assert.equal(denialStands(d, 'q', ahead + 1), true, 'held back on the clock it was recorded on');
  assert.equal(denialStands(d, 'q', d.retryAt), false);
  assert.equal(denialStands(d, 'r', ahead + 1), false, 'a different request is not held back');
  const corrected = ahead - DAY;
  assert.equal(denialStands(d, 'q', corrected), false, 'not held back a day longer after the clock stepped back');
});
