// A real Prometheus (Debian package `prometheus`, scripts/install-test-deps) scraping HTTPS /metrics endpoints
// with bearer tokens, as a cluster's monitoring would: the outside oracle for the metrics tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, httpGet } from '../../scripts/lib/local-cluster.ts';
import { waitFor } from './cluster.ts';

/** One scrape job: an HTTPS target scraped with `token`, its certificate checked against the job's CA. */
export interface ScrapeJob {
  job: string;
  /** host:port */
  target: string;
  token: string;
}

export interface Target {
  labels: { job: string };
  health: string;
  lastError: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RunningPrometheus {
  /** Each job's target after its first scrape (health `up` or `down`), by job name. */
  targets: Record<string, Target>;
  /** An instant query through the HTTP API. */
  query(promql: string): Promise<Sample[]>;
  /** Stops Prometheus and removes its directory (tokens, configuration, data). */
  stop(): Promise<void>;
}

function scrapeConfig(dir: string, caFile: string, jobs: readonly ScrapeJob[]): string {
  return [
    'global: {scrape_interval: 1s, scrape_timeout: 1s}',
    'scrape_configs:',
    ...jobs.flatMap(({ job, target }) => [
      `- job_name: ${job}`,
      '  scheme: https',
      `  authorization: {credentials_file: ${join(dir, `${job}.token`)}}`,
      `  tls_config: {ca_file: ${caFile}}`,
      `  static_configs: [{targets: ["${target}"]}]`,
    ]),
  ].join('\n');
}

/**
 * Starts Prometheus on a free loopback port with one job per entry (the tokens go to 0600 files, never on a
 * command line) and waits until every target has been scraped once.
 */
export async function startPrometheus(o: { caFile: string; jobs: readonly ScrapeJob[] }): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-prom-'));
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill();
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const { job, token } of o.jobs) await writeFile(join(dir, `${job}.token`), token, { mode: 0o600 });
    await writeFile(join(dir, 'prometheus.yml'), `${scrapeConfig(dir, o.caFile, o.jobs)}\n`);
    const port = await freePort();
    const api = `http://127.0.0.1:${port}/api/v1`;
    child = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    const scraped = await waitFor(
      `all ${o.jobs.length} Prometheus targets scraped`,
      async () => {
        const [status, body] = await httpGet({ url: `${api}/targets` }).catch(() => [0, ''] as [number, string]);
        if (status !== 200) return undefined;
        const active = (JSON.parse(body) as { data: { activeTargets: Target[] } }).data.activeTargets;
        return active.length === o.jobs.length && active.every((t) => t.health !== 'unknown') ? active : undefined;
      },
      60_000,
    );
    return {
      targets: Object.fromEntries(scraped.map((t) => [t.labels.job, t])),
      async query(promql) {
        const [, body] = await httpGet({ url: `${api}/query?query=${encodeURIComponent(promql)}` });
        return (JSON.parse(body) as { data: { result: Sample[] } }).data.result;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
