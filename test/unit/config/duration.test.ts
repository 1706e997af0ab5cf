import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UserError } from '../../../src/errors.ts';
import { formatDuration, parseDuration } from '../../../src/config/duration.ts';
import { userError } from '../../helpers/assert.ts';

const WHERE = '/etc/nodecred/config.yaml: timeout';
const S = 1000;
const M = 60 * S;
const H = 60 * M;

test('parseDuration: single units', () => {
  assert.equal(parseDuration('500ms', WHERE), 500);
  assert.equal(parseDuration('90s', WHERE), 90 * S);
  assert.equal(parseDuration('15m', WHERE), 15 * M);
  assert.equal(parseDuration('8760h', WHERE), 8760 * H);
});

test('parseDuration: combinations add up, in any order, as Go does', () => {
  assert.equal(parseDuration('1h30m', WHERE), 90 * M);
  assert.equal(parseDuration('1h0m0s', WHERE), H);
  assert.equal(parseDuration('2h45m30s250ms', WHERE), 2 * H + 45 * M + 30 * S + 250);
  assert.equal(parseDuration('30m1h', WHERE), 90 * M);
  // "ms" must win over "m" followed by "s".
  assert.equal(parseDuration('1m5ms', WHERE), M + 5);
  assert.equal(parseDuration('1ms', WHERE), 1);
});

test('parseDuration: zero, fractions and surrounding whitespace', () => {
  assert.equal(parseDuration('0', WHERE), 0);
  assert.equal(parseDuration('0s', WHERE), 0);
  assert.equal(parseDuration('0h0m', WHERE), 0);
  assert.equal(parseDuration('1.5h', WHERE), 90 * M);
  assert.equal(parseDuration('0.5s', WHERE), 500);
  assert.equal(parseDuration('  15m\n', WHERE), 15 * M);
});

test('parseDuration: invalid text is a UserError naming where it came from', () => {
  const invalid = [
    '',
    ' ',
    '5',
    '00',
    '0.5',
    'h',
    '1h30',
    '-5m',
    '+5m',
    '1d',
    '1w',
    '1us',
    '1ns',
    '1 h',
    '1h 30m',
    '1H',
    '.5h',
    '5.h',
    '1h,30m',
    'fifteen minutes',
    '15 minutes',
    '∞',
    'NaN',
    'Infinity',
    '1e3s',
    '0x10s',
    // Enough digits to overflow to Infinity: not a duration anyone meant.
    `${'9'.repeat(400)}h`,
  ];
  for (const text of invalid) {
    const err = userError(() => parseDuration(text, WHERE));
    assert.equal(err.where, WHERE, text);
    assert.equal(err.code, 'USAGE', text);
    assert.match(err.message, /invalid duration/, text);
    assert.ok(err.message.includes(JSON.stringify(text)), `message quotes the input: ${err.message}`);
    assert.match(err.fix ?? '', /1h30m/);
    assert.ok(err.oneLine().startsWith(`${WHERE}: invalid duration`), err.oneLine());
  }
});

test('parseDuration: a failed parse does not leave state behind for the next one', () => {
  // The parser uses a sticky global regex; its lastIndex must not leak between calls.
  userError(() => parseDuration('1h30', WHERE));
  assert.equal(parseDuration('1h', WHERE), H);
  assert.equal(parseDuration('2h', WHERE), 2 * H);
  userError(() => parseDuration('1hx', WHERE));
  assert.equal(parseDuration('45s', WHERE), 45 * S);
});

test('parseDuration: property: h/m/s/ms parts always sum', () => {
  fc.assert(
    fc.property(
      fc.nat(100_000),
      fc.nat(10_000),
      fc.nat(10_000),
      fc.nat(10_000),
      fc.subarray(['h', 'm', 's', 'ms'] as const, { minLength: 1 }),
      (h, m, s, ms, units) => {
        const values = { h: [h, H], m: [m, M], s: [s, S], ms: [ms, 1] } as const;
        const text = units.map((u) => `${values[u][0]}${u}`).join('');
        const expected = units.reduce((sum, u) => sum + values[u][0] * values[u][1], 0);
        assert.equal(parseDuration(text, WHERE), expected);
      },
    ),
    { numRuns: 300 },
  );
});

test('parseDuration: property: any string gives a finite non-negative number or a UserError', () => {
  const durationish = fc.stringMatching(/^[0-9.hms\- ]{0,12}$/);
  fc.assert(
    fc.property(fc.oneof(fc.string(), durationish), (text) => {
      try {
        const ms = parseDuration(text, WHERE);
        assert.ok(Number.isFinite(ms) && ms >= 0, `${JSON.stringify(text)} → ${ms}`);
      } catch (err) {
        assert.ok(err instanceof UserError, `${JSON.stringify(text)} threw ${String(err)}`);
      }
    }),
    { numRuns: 500 },
  );
});

test('formatDuration: the largest two units, rounded down', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(999), '0s');
  assert.equal(formatDuration(59_999), '59s');
  assert.equal(formatDuration(90 * S), '1m30s');
  assert.equal(formatDuration(H), '1h0m');
  assert.equal(formatDuration(90 * M), '1h30m');
  assert.equal(formatDuration(25 * H + 59 * M), '1d1h');
  assert.equal(formatDuration(365 * 24 * H), '365d0h');
  assert.equal(formatDuration(-90 * S), '-1m30s');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), '∞');
  assert.equal(formatDuration(Number.NEGATIVE_INFINITY), '-∞');
});

test('formatDuration output below a day parses back to within a second', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 24 * H - 1 }), (ms) => {
      const back = parseDuration(formatDuration(ms), WHERE);
      assert.ok(back <= ms && ms - back < (ms >= H ? M : S), `${ms} → ${formatDuration(ms)} → ${back}`);
    }),
    { numRuns: 300 },
  );
});
