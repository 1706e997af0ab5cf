// When each part of the simulated control plane is down: sorted, non-overlapping intervals per component.

export interface Interval {
  start: number;
  end: number;
}

export class Timeline<C extends string = string> {
  private readonly outages: Record<C, Interval[]>;

  constructor(outages: Record<C, Interval[]>) {
    this.outages = Object.fromEntries(
      Object.entries(outages).map(([c, list]) => [c, merge(list as Interval[])]),
    ) as Record<C, Interval[]>;
  }

  intervals(component: C): readonly Interval[] {
    return this.outages[component];
  }

  /** The outage of `component` covering `t`, if any. */
  outageAt(component: C, t: number): Interval | undefined {
    const list = this.outages[component];
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const o = list[mid]!;
      if (t < o.start) hi = mid - 1;
      else if (t >= o.end) lo = mid + 1;
      else return o;
    }
    return undefined;
  }

  down(component: C, t: number): boolean {
    return this.outageAt(component, t) !== undefined;
  }

  /** `t` when `component` is up then, else the end of the outage covering it. */
  upAgain(component: C, t: number): number {
    return this.outageAt(component, t)?.end ?? t;
  }

  /** True when `component` was up for the whole of [from, to). */
  upThroughout(component: C, from: number, to: number): boolean {
    return this.outages[component].every((o) => o.end <= from || o.start >= to);
  }
}

/** Sorted, with overlapping or touching intervals joined. */
export function merge(list: readonly Interval[]): Interval[] {
  const sorted = [...list].filter((i) => i.end > i.start).sort((a, b) => a.start - b.start);
  const out: Interval[] = [];
  for (const i of sorted) {
    const last = out.at(-1);
    if (last && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else out.push({ ...i });
  }
  return out;
}
