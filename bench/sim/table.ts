// What `npm run simulate` prints, and the README's fleet simulation section reproduces verbatim: the
// side-by-side table (markdown, one column per policy) and nodecred's invariants.
import { formatHours } from './ledger.ts';
import type { PolicySummary } from './report.ts';
import type { SimulationResult } from './simulate.ts';

const n = (v: number) => v.toLocaleString('en');
const longest = <T extends { hours: number }>(list: T[]) =>
  list.reduce<T | undefined>((a, b) => (a && a.hours >= b.hours ? a : b), undefined);
/** As the ledger labels outages ("approver 24 h on day 141"). */
const hoursText = (hours: number) => formatHours(hours * 3_600_000);

export function table(result: SimulationResult): string {
  const apiOutages = result.outages.api ?? [];
  const longestApi = longest(apiOutages.map((o, i) => ({ ...o, i })));
  const longestApprover = longest(result.outages.approver ?? []);
  const approverLabel = longestApprover
    ? `approver ${hoursText(longestApprover.hours)} on day ${longestApprover.day}`
    : undefined;
  const others = apiOutages.map((o, i) => ({ ...o, i })).filter((o) => o.i !== longestApi?.i);
  const herd = (r: PolicySummary) => (longestApi ? r.herds[longestApi.i] : undefined);
  const rows: Array<[string, (r: PolicySummary) => string]> = [
    [
      'expiries the policy caused (all expiries, each attributed)',
      (r) => `${n(r.expiries.policyFailures)} (${n(r.expiries.total)})`,
    ],
    ['CSRs created / certificates installed', (r) => `${n(r.csrs.total)} / ${n(r.csrs.installs)}`],
    ['CSRs per certificate (goal ≤ 1.05)', (r) => String(r.csrs.perRotation)],
    [
      'most CSRs for one certificate (any time / during an outage)',
      (r) => `${n(r.csrs.maxPerRotation)} / ${n(Math.max(0, ...Object.values(r.csrs.maxPerOutage)))}`,
    ],
    ...(approverLabel
      ? [
          [
            `… during the ${hoursText(longestApprover!.hours)} approver outage`,
            (r: PolicySummary) => n(r.csrs.maxPerOutage[approverLabel] ?? 0),
          ] as [string, (r: PolicySummary) => string],
        ]
      : []),
    ['wrongly issued certificates offered / installed', (r) => `${n(r.wronglyIssued)} / ${n(r.badInstalls.total)}`],
    ...(longestApi
      ? ([
          [
            `herd after the ${hoursText(longestApi.hours)} API outage: peak requests/s (at second)`,
            (r) => `${n(herd(r)!.peakPerSecond)} (s ${herd(r)!.peakAtSecond})`,
          ],
          ['… requests in its first 10 minutes', (r) => n(herd(r)!.firstTenMinutes)],
        ] as Array<[string, (r: PolicySummary) => string]>)
      : []),
    ...(others.length
      ? ([
          [
            `herd peaks after the ${others.map((o) => hoursText(o.hours)).join(' / ')} outages`,
            (r) => others.map((o) => n(r.herds[o.i]!.peakPerSecond)).join(' / '),
          ],
        ] as Array<[string, (r: PolicySummary) => string]>)
      : []),
    [
      'slowest return to the API server after an outage (goal ≤ 300 s, the backoff cap)',
      (r) =>
        r.policy === 'nodecred'
          ? `${r.recovery.maxSeconds} s (${n(r.recovery.nodes)} node-outages)`
          : `${r.recovery.maxSeconds} s`,
    ],
    [
      'API requests per node per day',
      (r) => `${r.requests.perNodePerDay}${r.policy === 'kubelet' ? ' (certificate manager only)' : ''}`,
    ],
    [
      'lowest hourly share of powered-on nodes with valid certificates',
      (r) => `${(r.validShare.min * 100).toFixed(2)} %`,
    ],
    ['join → both certificates, p50 / p99', (r) => `${r.firstReadySeconds.p50} s / ${r.firstReadySeconds.p99} s`],
  ];
  const names = result.results.map((r) => (r.policy === 'kubelet' ? 'kubelet policy (model)' : 'nodecred (real code)'));
  const header = `| | ${names.join(' | ')} |`;
  const rule = `|---|${result.results.map(() => '---').join('|')}|`;
  const body = rows.map(([label, f]) => `| ${label} | ${result.results.map(f).join(' | ')} |`);
  return [header, rule, ...body].join('\n');
}

/** nodecred's invariants as the README lists them. */
export function invariantLines(result: SimulationResult): string {
  return result.invariants.map((i) => `- ${i.ok ? '✔' : '✘ FAILED'} ${i.name}: ${i.detail}`).join('\n');
}
