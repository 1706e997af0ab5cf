// Small statistics for few samples: linear-interpolated percentiles (R type 7, as numpy's default).

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (h - lo);
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 0.5),
    p95: percentile(s, 0.95),
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

/** subject / baseline, rounded; null when the baseline is zero or missing. */
export function ratio(subject: number, baseline: number): number | null {
  if (!Number.isFinite(subject) || !Number.isFinite(baseline) || baseline === 0) return null;
  return Math.round((subject / baseline) * 100) / 100;
}

export const round = (v: number, digits = 1): number =>
  Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v;
