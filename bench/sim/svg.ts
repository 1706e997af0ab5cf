// The simulation's plot, written by hand (no plotting dependency): API requests per second and the share of
// nodes with valid certificates over the simulated year, and the reconnect herd after the longest API outage,
// nodecred against the kubelet model, outages shaded.
import type { Component } from './cluster.ts';
import type { PolicySummary } from './report.ts';
import type { Interval } from './timeline.ts';

const WIDTH = 960;
const PANEL = 200;
const LEFT = 70;
const RIGHT = 20;
const COLORS: Record<string, string> = { nodecred: '#1f77b4', kubelet: '#d62728' };
const LABELS: Record<string, string> = { nodecred: 'nodecred (real code)', kubelet: 'kubelet policy (model)' };
const SHADES: Record<Component, string> = { api: '#d6272833', approver: '#ff7f0e33', controllerManager: '#7f7f7f33' };

interface Panel {
  title: string;
  top: number;
  xMax: number;
  xLabel: string;
  yMin: number;
  yMax: number;
  yFormat: (v: number) => string;
}

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const fixed = (v: number) => Math.round(v * 10) / 10;

/** At most `n` points: each bucket keeps its extreme (max, or min for `low`), so spikes and dips survive. */
function downsample(values: number[], n: number, low = false): Array<[number, number]> {
  const size = Math.max(1, Math.ceil(values.length / n));
  const out: Array<[number, number]> = [];
  for (let i = 0; i < values.length; i += size) {
    const bucket = values.slice(i, i + size);
    out.push([i, low ? Math.min(...bucket) : Math.max(...bucket)]);
  }
  return out;
}

function axes(p: Panel): string {
  const w = WIDTH - LEFT - RIGHT;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const y = p.top + PANEL - f * PANEL;
    const v = p.yMin + f * (p.yMax - p.yMin);
    const grid = `<line x1="${LEFT}" x2="${LEFT + w}" y1="${y}" y2="${y}" stroke="#ddd"/>`;
    return `${grid}<text x="${LEFT - 6}" y="${y + 4}" text-anchor="end">${p.yFormat(v)}</text>`;
  });
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const x = LEFT + f * w;
    return `<text x="${x}" y="${p.top + PANEL + 16}" text-anchor="middle">${Math.round(f * p.xMax)}</text>`;
  });
  return [
    `<text x="${LEFT}" y="${p.top - 8}" font-weight="bold">${esc(p.title)}</text>`,
    ...ticks,
    ...xTicks,
    `<text x="${LEFT + w}" y="${p.top + PANEL + 30}" text-anchor="end">${esc(p.xLabel)}</text>`,
    `<rect x="${LEFT}" y="${p.top}" width="${w}" height="${PANEL}" fill="none" stroke="#999"/>`,
  ].join('');
}

function line(p: Panel, points: Array<[number, number]>, color: string): string {
  const w = WIDTH - LEFT - RIGHT;
  const span = p.yMax - p.yMin || 1;
  const xy = points.map(([x, y]) => {
    const clamped = Math.min(p.yMax, Math.max(p.yMin, y));
    return `${fixed(LEFT + (x / p.xMax) * w)},${fixed(p.top + PANEL - ((clamped - p.yMin) / span) * PANEL)}`;
  });
  return `<polyline fill="none" stroke="${color}" stroke-width="1.2" points="${xy.join(' ')}"/>`;
}

function shade(p: Panel, outages: Record<Component, readonly Interval[]>, start: number, unitMs: number): string {
  const w = WIDTH - LEFT - RIGHT;
  return (Object.entries(outages) as Array<[Component, Interval[]]>)
    .flatMap(([c, list]) =>
      list.map((o) => {
        const x = LEFT + ((o.start - start) / unitMs / p.xMax) * w;
        const width = Math.max(1.5, ((o.end - o.start) / unitMs / p.xMax) * w);
        return `<rect x="${fixed(x)}" y="${p.top}" width="${fixed(width)}" height="${PANEL}" fill="${SHADES[c]}"/>`;
      }),
    )
    .join('');
}

export function plot(o: {
  results: PolicySummary[];
  outages: Record<Component, readonly Interval[]>;
  start: number;
  days: number;
  title: string;
}): string {
  const { results, outages, start, days } = o;
  const hours = days * 24;
  const rate: Panel = {
    title: 'API requests per second (hourly mean; spikes kept)',
    top: 60,
    xMax: hours,
    xLabel: 'hour of the simulated year',
    yMin: 0,
    yMax: Math.max(1, ...results.flatMap((r) => r.hourly.requestsPerSecond)) * 1.05,
    yFormat: (v) => v.toFixed(v < 10 ? 1 : 0),
  };
  const lowest = Math.min(...results.flatMap((r) => r.hourly.validShare));
  const valid: Panel = {
    title: 'Share of powered-on nodes with a valid client and serving certificate',
    top: 60 + PANEL + 60,
    xMax: hours,
    xLabel: 'hour of the simulated year',
    yMin: Math.max(0, Math.floor(lowest * 100) / 100 - 0.01),
    yMax: 1,
    yFormat: (v) => `${(v * 100).toFixed(1)} %`,
  };
  const longest = [...(outages.api ?? [])]
    .map((x, i) => ({ i, length: x.end - x.start }))
    .sort((a, b) => b.length - a.length)[0];
  const herdSeries = results.map((r) => (longest ? r.herds[longest.i]!.perSecond : []));
  const herd: Panel = {
    title: `Reconnect herd: requests per second after the ${
      longest ? results[0]!.herds[longest.i]!.outage : 'API outage'
    } ended`,
    top: 60 + 2 * (PANEL + 60),
    xMax: Math.max(1, ...herdSeries.map((h) => h.length)),
    xLabel: 'seconds after the API server came back',
    yMin: 0,
    yMax: Math.max(1, ...herdSeries.flat()) * 1.05,
    yFormat: (v) => v.toFixed(0),
  };
  const legend = results
    .map(
      (r, i) =>
        `<rect x="${LEFT + i * 180}" y="24" width="14" height="4" fill="${COLORS[r.policy]}"/>` +
        `<text x="${LEFT + 20 + i * 180}" y="30">${LABELS[r.policy]}</text>`,
    )
    .join('');
  const shades = '<text x="540" y="30">outages: API (red), approver (orange), controller-manager (grey)</text>';
  const height = herd.top + PANEL + 40;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="16" font-size="13" font-weight="bold">${esc(o.title)}</text>`,
    legend,
    shades,
    axes(rate),
    shade(rate, outages, start, 3_600_000),
    ...results.map((r) => line(rate, downsample(r.hourly.requestsPerSecond, 1500), COLORS[r.policy]!)),
    axes(valid),
    shade(valid, outages, start, 3_600_000),
    ...results.map((r) => line(valid, downsample(r.hourly.validShare, 1500, true), COLORS[r.policy]!)),
    axes(herd),
    ...herdSeries.map((h, i) =>
      line(
        herd,
        h.map((v, x) => [x, v] as [number, number]),
        COLORS[results[i]!.policy]!,
      ),
    ),
    '</svg>',
    '',
  ].join('\n');
}
