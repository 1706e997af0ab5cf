// `nodecred status` and `nodecred check`: read-only reports on the managed certificates and any extra
// certificate files, for humans (a table), scripts (--json) and runbooks (check's exit code).
import { readFile } from 'node:fs/promises';
import { UserError, errnoError, errorLine } from '../errors.ts';
import { parseDuration } from '../config/duration.ts';
import { readKubeconfigFile, endpointOf } from '../kube/api.ts';
import { CertStore, type CertKind } from '../store/cert-store.ts';
import { assessCertificate, healthy, renderTable, type CertRow, type Expectations } from '../status/report.ts';
import { deniedRequestRow, renderDeniedRequest, type DeniedRequestRow } from '../status/denial.ts';
import type { Config } from '../config/schema.ts';
import { parseFlags, loadConfig, flagsHelp, NODE_FLAGS, usageError } from './flags.ts';
import type { Command } from './commands.ts';

const read = (path: string) =>
  readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) =>
    err.code === 'ENOENT' ? null : Promise.reject(errnoError(err, { action: 'read', path }) ?? err),
  );

const SHARED = NODE_FLAGS.filter((f) =>
  ['config', 'cert-dir', 'kubeconfig', 'node-name', 'rotate-server-certificates', 'cluster-ca-file'].includes(f.name),
);
const JSON_FLAG = { name: 'json', kind: 'boolean' as const, help: 'print JSON instead of a table' };
const STATUS_FLAGS = [...SHARED, JSON_FLAG];
const CHECK_FLAGS = [
  ...SHARED,
  JSON_FLAG,
  {
    name: 'min-valid',
    kind: 'string' as const,
    placeholder: 'DURATION',
    help: 'unhealthy when a certificate expires sooner (default 24h)',
  },
  {
    name: 'cert',
    kind: 'list' as const,
    placeholder: 'FILE',
    help: 'check these certificate files instead of the managed ones (repeatable)',
  },
  {
    name: 'ca-file',
    kind: 'string' as const,
    placeholder: 'FILE',
    help: 'with --cert: the certificates must chain to this CA',
  },
  {
    name: 'expect-san',
    kind: 'list' as const,
    placeholder: 'NAME|IP',
    help: 'with --cert: each certificate must cover this SAN (repeatable)',
  },
];

async function clusterCa(config: Config): Promise<string | undefined> {
  if (config.clusterCAFile) return (await read(config.clusterCAFile)) ?? undefined;
  try {
    return (await endpointOf(await readKubeconfigFile(config.kubeconfig))).caPem;
  } catch {
    return undefined;
  }
}

async function managedRows(config: Config, e: Expectations): Promise<CertRow[]> {
  const store = new CertStore(config.certDir);
  const caPem = await clusterCa(config);
  const withCa: Expectations = { ...e, ...(caPem ? { caPem } : {}), rotationWindow: config.rotationWindow };
  const rows: CertRow[] = [];
  if (config.clientCredentials === 'managed')
    rows.push(
      assessCertificate('client', store.currentPath('client'), await read(store.currentPath('client')), withCa),
    );
  const serverText = await read(store.currentPath('server'));
  if (config.rotateServerCertificates || serverText !== null)
    rows.push(assessCertificate('serving', store.currentPath('server'), serverText, withCa));
  for (const extra of config.extraCertificates) {
    const ca = extra.caFile ? await read(extra.caFile) : null;
    rows.push(
      assessCertificate(extra.name, extra.path, await read(extra.path), { ...e, ...(ca ? { caPem: ca } : {}) }),
    );
  }
  return rows;
}

const UNHEALTHY_FIX: Record<CertRow['state'], string> = {
  ok: '',
  expiring: 'renew it before it expires (nodecred run rotates the managed ones)',
  expired: 'renew it (nodecred bootstrap requests a new client certificate)',
  'not-yet-valid': "check this host's clock",
  missing: 'install it, or run nodecred bootstrap for the managed ones',
  invalid: 'replace it with a valid PEM certificate (nodecred replaces the managed ones)',
};

function print(rows: CertRow[], json: boolean, now: Date): void {
  process.stdout.write(
    json ? `${JSON.stringify({ healthy: healthy(rows), certificates: rows }, null, 2)}\n` : renderTable(rows, now),
  );
}

/**
 * A request of this kind the daemon holds back after a denial, from the record it keeps in the cert dir. A
 * record that cannot be read is one line on stderr, and the rest of the report stands.
 */
async function deniedRequest(store: CertStore, kind: CertKind, now: Date): Promise<DeniedRequestRow | null> {
  try {
    const record = await store.readDenial(kind);
    return record && deniedRequestRow(kind, record, store.denialPath(kind), now);
  } catch (err) {
    process.stderr.write(`nodecred: ${errorLine(err)}\n`);
    return null;
  }
}

export const statusCommand: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(
        'usage: nodecred status [flags]\n\nThe managed certificates, and a client or serving request the daemon ' +
          'holds back after a denial (which CSR, why, when the daemon retries; --json: deniedRequests).\n\n' +
          `flags:\n${flagsHelp(STATUS_FLAGS)}\n`,
      );
      return 0;
    }
    const flags = parseFlags(args, STATUS_FLAGS);
    const config = await loadConfig(new Map([...flags].filter(([k]) => k !== 'json')));
    const now = new Date();
    const rows = await managedRows(config, { now, minValidMs: config.readyExpiryThresholdMs });
    // Both records, whatever the configuration manages now: one left from before a change still explains a node.
    const store = new CertStore(config.certDir);
    const deniedRequests = {
      client: await deniedRequest(store, 'client', now),
      serving: await deniedRequest(store, 'server', now),
    };
    if (flags.get('json')?.[0] === 'true') {
      const report = { healthy: healthy(rows), certificates: rows, deniedRequests };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      const held = [deniedRequests.client, deniedRequests.serving].filter((d) => d !== null);
      process.stdout.write(renderTable(rows, now) + held.map((d) => renderDeniedRequest(d, now)).join(''));
    }
    return 0;
  },
};

export const checkCommand: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(
        'usage: nodecred check [flags]\n\nExit status: 0 healthy, 1 unhealthy, 2 usage error.\n\n' +
          `flags:\n${flagsHelp(CHECK_FLAGS)}\n`,
      );
      return 0;
    }
    const flags = parseFlags(args, CHECK_FLAGS);
    const json = flags.get('json')?.[0] === 'true';
    const minValidMs = parseDuration(flags.get('min-valid')?.[0] ?? '24h', '--min-valid');
    const now = new Date();
    const files = flags.get('cert') ?? [];
    if (!files.length && (flags.has('ca-file') || flags.has('expect-san')))
      throw usageError('--ca-file and --expect-san go with --cert');
    let rows: CertRow[];
    if (files.length) {
      const caFile = flags.get('ca-file')?.[0];
      const caPem = caFile ? await read(caFile) : undefined;
      if (caFile && !caPem)
        throw new UserError('CA file not found', {
          where: `--ca-file ${caFile}`,
          fix: 'check the path',
          code: 'USAGE',
        });
      const e: Expectations = {
        now,
        minValidMs,
        ...(caPem ? { caPem } : {}),
        expectSans: flags.get('expect-san') ?? [],
      };
      rows = await Promise.all(files.map(async (f) => assessCertificate(f, f, await read(f), e)));
    } else {
      const config = await loadConfig(new Map([...flags].filter(([k]) => SHARED.some((s) => s.name === k))));
      rows = await managedRows(config, { now, minValidMs });
    }
    print(rows, json, now);
    // The report is on stdout; each unhealthy certificate is also one line on stderr, as any failure is.
    for (const row of rows.filter((r) => r.state !== 'ok')) {
      const why = row.problems.length ? `: ${row.problems.join('; ')}` : '';
      const name = row.name === row.path ? '' : ` (${row.name})`;
      process.stderr.write(`nodecred: ${row.path}${name}: ${row.state}${why} (fix: ${UNHEALTHY_FIX[row.state]})\n`);
    }
    return healthy(rows) ? 0 : 1;
  },
};
