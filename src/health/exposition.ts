// A small Prometheus registry for the node side: counters, gauges and histograms, rendered in the text
// exposition format (0.0.4) that Prometheus scrapes. The daemon exports about a dozen series; prom-client
// (which the approver keeps) cost its idle process ~3 MiB of RSS, loading @opentelemetry/api, cluster and
// perf_hooks with it, and its default metrics sampled the event loop on a timer (bench P3, issue 13).
// Format: https://prometheus.io/docs/instrumenting/exposition_formats/ — HELP and TYPE once per family, label
// values escaped, +Inf/-Inf/NaN spelled as Prometheus spells them.

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Record<string, string>;

interface Family {
  render(): string[];
}

/** What the HTTP handler needs of a registry (prom-client's Registry has the same two members). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export class MetricsRegistry implements MetricsSource {
  readonly contentType = EXPOSITION_CONTENT_TYPE;
  private readonly families: Family[] = [];

  /** `labelled`: a family of labelled series, with none until the first event (else one series at 0). */
  counter(name: string, help: string, labelled = false): Counter {
    return this.add(new Counter(name, help, labelled));
  }

  /** `collect` runs before every scrape, to set values that are read rather than counted. */
  gauge(name: string, help: string, collect?: (gauge: Gauge) => void): Gauge {
    return this.add(new Gauge(name, help, collect));
  }

  /** A counter kept elsewhere (CPU seconds), read before every scrape. */
  counterOf(name: string, help: string, read: () => number): void {
    this.add(new ReadCounter(name, help, read));
  }

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }

  async metrics(): Promise<string> {
    return `${this.families.flatMap((f) => f.render()).join('\n')}\n`;
  }

  private add<F extends Family>(family: F): F {
    this.families.push(family);
    return family;
  }
}

abstract class Series implements Family {
  protected readonly values = new Map<string, number>();
  readonly name: string;
  private readonly help: string;
  private readonly type: 'counter' | 'gauge';
  constructor(name: string, help: string, type: 'counter' | 'gauge') {
    this.name = name;
    this.help = help;
    this.type = type;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const [labels, value] of this.values) lines.push(`${this.name}${labels} ${formatValue(value)}`);
    return lines;
  }
}

export class Counter extends Series {
  constructor(name: string, help: string, labelled: boolean) {
    super(name, help, 'counter');
    if (!labelled) this.values.set('', 0); // 0 before the first event, not absent
  }

  inc(labels?: Labels, by = 1): void {
    const key = labelText(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
}

class ReadCounter extends Series {
  private readonly read: () => number;
  constructor(name: string, help: string, read: () => number) {
    super(name, help, 'counter');
    this.read = read;
  }

  override render(): string[] {
    this.values.set('', this.read());
    return super.render();
  }
}

export class Gauge extends Series {
  private readonly collect: ((gauge: Gauge) => void) | undefined;
  constructor(name: string, help: string, collect?: (gauge: Gauge) => void) {
    super(name, help, 'gauge');
    this.collect = collect;
  }

  set(value: number, labels?: Labels): void {
    this.values.set(labelText(labels), value);
  }

  reset(): void {
    this.values.clear();
  }

  override render(): string[] {
    this.collect?.(this);
    return super.render();
  }
}

export class Histogram implements Family {
  readonly name: string;
  private readonly help: string;
  private readonly buckets: readonly number[];
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.buckets.forEach((bound, i) => {
      if (value <= bound) this.counts[i]! += 1;
    });
    this.sum += value;
    this.count += 1;
  }

  render(): string[] {
    return [
      `# HELP ${this.name} ${escapeHelp(this.help)}`,
      `# TYPE ${this.name} histogram`,
      ...this.buckets.map((bound, i) => `${this.name}_bucket{le="${formatValue(bound)}"} ${this.counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.count}`,
      `${this.name}_sum ${formatValue(this.sum)}`,
      `${this.name}_count ${this.count}`,
    ];
  }
}

function labelText(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  const escaped = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  return `{${entries.map(([k, v]) => `${k}="${escaped(v)}"`).join(',')}}`;
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
