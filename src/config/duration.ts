// Go-style durations ("90s", "15m", "1h30m", "8760h"), the format kubelet and kubeadm users already write.
import { UserError } from '../errors.ts';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;

export function parseDuration(text: string, where: string): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  PART.lastIndex = 0;
  let total = 0;
  let matched = 0;
  for (let m = PART.exec(trimmed); m; m = PART.exec(trimmed)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    matched = PART.lastIndex;
  }
  // A run of digits long enough to overflow to Infinity is not a duration anyone meant.
  if (matched === 0 || matched !== trimmed.length || !Number.isFinite(total)) {
    throw new UserError(`invalid duration "${text}"`, {
      where,
      fix: 'write a duration like 90s, 15m, 1h30m or 8760h',
      code: 'USAGE',
    });
  }
  return total;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return ms > 0 ? '∞' : '-∞';
  const sign = ms < 0 ? '-' : '';
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${sign}${d}d${h}h`;
  if (h > 0) return `${sign}${h}h${m}m`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
