// Every command meets the ways a node's disk and files go wrong, and answers each with exactly one line on
// stderr (what failed, the path, the errno, the fix), no stack frame, and the exit code `nodecred --help`
// documents: a parent that is a file, a dangling symbolic link, /proc and /sys paths, EACCES as an
// unprivileged user (setpriv), ENOSPC on small tmpfs mounts (no space; no inodes), and garbage or empty
// files where a kubeconfig, a config or a certificate is expected. The paths that get past validation talk
// to the real control plane (the ENOSPC bootstrap gets as far as writing its key).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCluster, createBootstrapToken, ensureBootstrapRbac, uniqueName } from '../helpers/cluster.ts';
import { inlineTokenKubeconfig, NODECRED, REPO } from '../helpers/node.ts';
import { bundleNodecred } from '../../scripts/lib/bundle.ts';

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
let T = '';
const at = (...p: string[]) => join(T, ...p);
/** How the unprivileged user runs nodecred: the checkout if it may read it, else a copy in T. */
let nobodyNodecred: string[] = [];
const mounts: string[] = [];
let busy: Server | undefined;
let busyPort = 0;

function sh(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
}

/** A tmpfs of `options` at `dir`, then filled with files until the kernel says ENOSPC. */
async function fullTmpfs(dir: string, options: string, fileSize: number): Promise<void> {
  await mkdir(dir);
  sh(['mount', '-t', 'tmpfs', '-o', `${options},mode=0755`, 'tmpfs', dir]);
  mounts.push(dir);
  for (let i = 0; ; i++) {
    try {
      await writeFile(join(dir, `filler-${i}`), Buffer.alloc(fileSize));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      return;
    }
  }
}

before(async () => {
  const c = testCluster();
  T = await mkdtemp(join(tmpdir(), 'nodecred-failures-'));
  await chmod(T, 0o711); // the unprivileged user may pass through, not list
  await writeFile(at('file'), 'a file where a directory is expected\n');
  await symlink(at('nowhere'), at('dangling'));
  await writeFile(at('garbage'), '{{{ this is : not: [yaml or PEM\n');
  await writeFile(at('empty'), '');
  await mkdir(at('adir'));
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const bootstrap = inlineTokenKubeconfig(c, token.token);
  await mkdir(at('public'), { mode: 0o755 });
  await writeFile(at('public', 'bootstrap.conf'), bootstrap, { mode: 0o644 });
  await mkdir(at('private'), { mode: 0o700 });
  await writeFile(at('private', 'bootstrap.conf'), bootstrap, { mode: 0o600 });
  await writeFile(at('private', 'cert.pem'), c.ca, { mode: 0o600 });
  await fullTmpfs(at('nospace'), 'size=64k', 4096);
  await fullTmpfs(at('noinodes'), 'size=1m,nr_inodes=8', 0);
  busy = createServer();
  await new Promise<void>((r) => busy!.listen(0, '127.0.0.1', r));
  busyPort = (busy.address() as { port: number }).port;

  const probe = spawnSync(NOBODY[0]!, [...NOBODY.slice(1), NODECRED, '--version'], { encoding: 'utf8' });
  if (probe.status === 0) nobodyNodecred = [NODECRED];
  else {
    // The checkout is not readable by others (a private home): give the unprivileged user its own copy.
    await mkdir(at('bin'), { mode: 0o755 });
    await bundleNodecred(join(REPO, 'src/cli/main.ts'), at('bin', 'nodecred.mjs'), {
      format: 'esm',
      legalComments: 'none',
    });
    await copyFile(join(REPO, 'node_modules/node/bin/node'), at('bin', 'node'));
    await chmod(at('bin', 'node'), 0o755);
    await chmod(at('bin', 'nodecred.mjs'), 0o644);
    nobodyNodecred = [at('bin', 'node'), at('bin', 'nodecred.mjs')];
  }
});

after(async () => {
  busy?.close();
  for (const dir of mounts) spawnSync('umount', [dir]);
  if (T) await rm(T, { recursive: true, force: true });
});

interface Case {
  what: string;
  args: () => string[];
  code: number;
  line: RegExp;
  asNobody?: boolean;
  /** Directories that must not exist afterwards (validation happens before anything is created). */
  notCreated?: () => string[];
}

function runCase(c: Case): Promise<{ code: number | null; stderr: string }> {
  const argv = c.asNobody ? [...NOBODY, ...nobodyNodecred, ...c.args()] : [NODECRED, ...c.args()];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${c.what}: did not exit within 90 s; stderr: ${stderr}`));
    }, 90_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** Runs the cases, a few at a time (each is a process start), and checks the one-line contract. */
async function check(command: string, cases: Case[]): Promise<void> {
  const problems: string[] = [];
  const queue = [...cases];
  const worker = async () => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      const r = await runCase(c);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      const label = `${command}: ${c.what}`;
      if (r.code !== c.code) problems.push(`${label}: exit ${r.code}, expected ${c.code}; stderr: ${r.stderr}`);
      if (lines.length !== 1) problems.push(`${label}: ${lines.length} lines on stderr, expected 1:\n${r.stderr}`);
      if (/^\s+at /m.test(r.stderr)) problems.push(`${label}: a stack frame on stderr:\n${r.stderr}`);
      if (!c.line.test(lines[0] ?? '')) problems.push(`${label}: ${JSON.stringify(lines[0])} does not match ${c.line}`);
      for (const dir of c.notCreated?.() ?? []) {
        const exists = await readdir(dir).then(
          () => true,
          () => false,
        );
        if (exists) problems.push(`${label}: ${dir} was created although the command failed validation`);
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  assert.deepEqual(problems, [], problems.join('\n\n'));
}

const valid = () => ['--bootstrap-kubeconfig', at('public', 'bootstrap.conf')];
/**
 * Every case names its cert dir and kubeconfig: the defaults are the host's /var/lib/kubelet, which a case
 * that gets further than intended would write to (and whose kubeconfig, if another test left one, changes
 * what validation decides).
 */
const paths = (dir: string) => ['--cert-dir', at(dir, 'pki'), '--kubeconfig', at(dir, 'kc')];
const node = () => ['--node-name', uniqueName('failing')];
/** The same disk failures for bootstrap and run; `tag` keeps their directories apart. */
function diskCases(base: string[], tag: string): Case[] {
  const b = () => [...base, ...node()];
  return [
    {
      what: 'cert dir below a file',
      args: () => [...b(), ...valid(), '--cert-dir', at('file', 'pki'), '--kubeconfig', at(`${tag}-k1`, 'kc')],
      code: 1,
      line: /^nodecred: .*\/file exists but is not a directory \(fix: /,
      notCreated: () => [at(`${tag}-k1`)],
    },
    {
      what: 'kubeconfig below a file (nothing created for the cert dir either)',
      args: () => [...b(), ...valid(), '--cert-dir', at(`${tag}-ok`, 'pki'), '--kubeconfig', at('file', 'kc')],
      code: 1,
      line: /^nodecred: .*\/file exists but is not a directory \(fix: /,
      notCreated: () => [at(`${tag}-ok`)],
    },
    {
      what: 'cert dir is a dangling symlink',
      args: () => [...b(), ...valid(), '--cert-dir', at('dangling'), '--kubeconfig', at(`${tag}-k2`, 'kc')],
      code: 1,
      line: /^nodecred: .*\/dangling is a symbolic link to .*\/nowhere, which does not exist \(fix: create /,
    },
    {
      what: 'kubeconfig below a dangling symlink',
      args: () => [...b(), ...valid(), '--cert-dir', at(`${tag}-ok2`, 'pki'), '--kubeconfig', at('dangling', 'kc')],
      code: 1,
      line: /^nodecred: .*\/dangling is a symbolic link to .*nowhere, which does not exist/,
      notCreated: () => [at(`${tag}-ok2`)],
    },
    {
      what: 'cert dir in /proc',
      args: () => [...b(), ...valid(), '--cert-dir', '/proc/nodecred/pki', '--kubeconfig', at(`${tag}-k3`, 'kc')],
      code: 1,
      line: /^nodecred: cannot create directory \/proc\/nodecred: ENOENT \(fix: .*kernel virtual filesystem/,
    },
    {
      what: 'kubeconfig in /sys',
      args: () => [...b(), ...valid(), '--cert-dir', at(`${tag}-ok3`, 'pki'), '--kubeconfig', '/sys/fs/nodecred/kc'],
      code: 1,
      line: /^nodecred: cannot create directory \/sys\/fs\/nodecred: E[A-Z]+ \(fix: .*kernel virtual filesystem/,
    },
    {
      what: 'EACCES: cert dir in a directory the user may not enter',
      asNobody: true,
      args: () => [...b(), ...valid(), '--cert-dir', at('private', 'pki'), '--kubeconfig', at('private', 'kc')],
      code: 1,
      line: /^nodecred: cannot stat .*\/private\/pki: EACCES \(fix: nodecred \(uid 65534\) may not access /,
    },
    {
      what: 'EACCES: bootstrap kubeconfig the user may not read',
      asNobody: true,
      args: () => [
        ...b(),
        '--bootstrap-kubeconfig',
        at('private', 'bootstrap.conf'),
        '--cert-dir',
        at('x', 'pki'),
        '--kubeconfig',
        at('x', 'kc'),
      ],
      code: 1,
      line: /^nodecred: .*cannot read .*\/private\/bootstrap\.conf: EACCES \(fix: nodecred \(uid 65534\)/,
    },
    {
      what: 'garbage bootstrap kubeconfig',
      args: () => [...b(), '--bootstrap-kubeconfig', at('garbage'), ...paths(`${tag}-g`)],
      code: 1,
      line: /^nodecred: .*\/garbage: .*\(fix: /,
      notCreated: () => [at(`${tag}-g`)],
    },
    {
      what: 'empty bootstrap kubeconfig',
      args: () => [...b(), '--bootstrap-kubeconfig', at('empty'), ...paths(`${tag}-e`)],
      code: 1,
      line: /^nodecred: .*\/empty: is empty \(fix: write a kubeconfig/,
      notCreated: () => [at(`${tag}-e`)],
    },
    {
      what: 'garbage config',
      args: () => [...b(), '--config', at('garbage'), ...paths(`${tag}-c`)],
      code: 1,
      line: /^nodecred: .*\/garbage: .*\(fix: /,
      notCreated: () => [at(`${tag}-c`)],
    },
    {
      what: 'empty config',
      args: () => [...b(), '--config', at('empty'), ...paths(`${tag}-c2`)],
      code: 1,
      line: /^nodecred: .*\/empty: apiVersion: must be nodecred\.io\/v1alpha1/,
    },
    {
      what: 'config is a directory',
      args: () => [...b(), '--config', at('adir'), ...paths(`${tag}-c3`)],
      code: 2,
      line: /^nodecred: .*\/adir: cannot read config: EISDIR \(fix: .*is a directory where a file is expected/,
    },
    {
      what: 'config is a dangling symlink',
      args: () => [...b(), '--config', at('dangling'), ...paths(`${tag}-c4`)],
      code: 2,
      line: /^nodecred: .*\/dangling: cannot read config: ENOENT/,
    },
    {
      what: 'config in /proc',
      args: () => [...b(), '--config', '/proc/nodecred/config.yaml', ...paths(`${tag}-c5`)],
      code: 2,
      line: /^nodecred: \/proc\/nodecred\/config\.yaml: cannot read config: ENOENT \(fix: .*kernel virtual/,
    },
    {
      what: 'garbage where the cluster CA certificate is expected',
      args: () => [...b(), ...valid(), '--cluster-ca-file', at('garbage'), ...paths(`${tag}-ca`)],
      code: 1,
      line: /^nodecred: .*\/garbage: clusterCAFile contains no PEM "CERTIFICATE" block/,
      notCreated: () => [at(`${tag}-ca`)],
    },
  ];
}

test('bootstrap: one line and exit code for every disk and file failure', async () => {
  await check('bootstrap', [
    ...diskCases(['bootstrap', '--timeout', '60s'], 'b'),
    {
      what: 'ENOSPC: the disk is full when the key is written (after talking to the API server)',
      args: () => ['bootstrap', ...node(), ...valid(), '--cert-dir', at('nospace', 'pki'), '--kubeconfig', at('bk')],
      code: 1,
      line: /^nodecred: cannot write .*\/nospace\/pki\/\S+: ENOSPC.*\(fix: free space on the filesystem holding /,
    },
  ]);
});

test('run: one line and exit code for every failure before the daemon is up', async () => {
  await check('run', [
    // The same code paths as bootstrap's (setUpNode): one of each kind, not all again.
    ...diskCases(['run', '--health-listen', ''], 'r').filter((c) =>
      [
        'cert dir below a file',
        'cert dir is a dangling symlink',
        'cert dir in /proc',
        'EACCES: bootstrap kubeconfig the user may not read',
        'garbage bootstrap kubeconfig',
        'garbage config',
      ].includes(c.what),
    ),
    {
      what: 'ENOSPC: no inodes left for the cert dir',
      args: () => ['run', ...node(), ...valid(), '--cert-dir', at('noinodes', 'pki'), '--kubeconfig', at('rk', 'kc')],
      code: 1,
      line: /^nodecred: cannot create directory .*\/noinodes\/pki: ENOSPC \(fix: free space on the filesystem/,
    },
    {
      what: 'garbage where the client CA certificate is expected',
      args: () => [
        'run',
        ...node(),
        ...valid(),
        '--secure-listen',
        '127.0.0.1:0',
        '--client-ca-file',
        at('garbage'),
        ...paths('r-cca'),
      ],
      code: 1,
      line: /^nodecred: .*\/garbage: clientCAFile contains no PEM "CERTIFICATE" block/,
    },
    {
      what: 'health port in use',
      args: () => [
        'run',
        ...node(),
        ...valid(),
        '--cert-dir',
        at('rport', 'pki'),
        '--kubeconfig',
        at('rport', 'kc'),
        '--health-listen',
        `127.0.0.1:${busyPort}`,
      ],
      code: 1,
      line: /^nodecred: --health-listen: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE \(fix: /,
    },
  ]);
  // A start that failed after taking the cert-dir lock (the port in use) removed it on exit.
  const locks = await readdir('/run/nodecred').catch(() => [] as string[]);
  for (const name of locks) {
    const text = await readFile(join('/run/nodecred', name), 'utf8').catch(() => '');
    assert.ok(!text.includes(`${T}/`), `${name} was left behind: ${text}`);
  }
});

test('status and check: one line per failure, and per unhealthy certificate', async () => {
  await check('status', [
    { what: 'garbage config', args: () => ['status', '--config', at('garbage')], code: 1, line: /\/garbage: / },
    { what: 'empty config', args: () => ['status', '--config', at('empty')], code: 1, line: /\/empty: apiVersion/ },
    { what: 'config is a directory', args: () => ['status', '--config', at('adir')], code: 2, line: /EISDIR/ },
    { what: 'dangling config', args: () => ['status', '--config', at('dangling')], code: 2, line: /ENOENT/ },
    {
      what: 'config in /proc',
      args: () => ['status', '--config', '/proc/nodecred.yaml'],
      code: 2,
      line: /^nodecred: \/proc\/nodecred\.yaml: cannot read config: ENOENT/,
    },
    {
      what: 'EACCES: a cert dir the user may not read',
      asNobody: true,
      args: () => ['status', '--cert-dir', at('private')],
      code: 1,
      line: /^nodecred: cannot read .*\/private\/kubelet-client-current\.pem: EACCES \(fix: nodecred \(uid 65534\)/,
    },
  ]);
  await check('check', [
    {
      what: 'garbage certificate',
      args: () => ['check', '--cert', at('garbage')],
      code: 1,
      line: /^nodecred: .*\/garbage: invalid: certificate contains no PEM "CERTIFICATE" block \(fix: replace it/,
    },
    {
      what: 'empty certificate',
      args: () => ['check', '--cert', at('empty')],
      code: 1,
      line: /^nodecred: .*\/empty: invalid: /,
    },
    {
      what: 'certificate path is a directory',
      args: () => ['check', '--cert', at('adir')],
      code: 1,
      line: /^nodecred: cannot read .*\/adir: EISDIR \(fix: .*is a directory where a file is expected/,
    },
    {
      what: 'certificate is a dangling symlink',
      args: () => ['check', '--cert', at('dangling')],
      code: 1,
      line: /^nodecred: .*\/dangling: missing: /,
    },
    {
      what: 'certificate in /proc',
      args: () => ['check', '--cert', '/proc/self/status'],
      code: 1,
      line: /^nodecred: \/proc\/self\/status: invalid: /,
    },
    {
      what: 'garbage CA',
      args: () => ['check', '--cert', testCluster().state.caFile, '--ca-file', at('garbage')],
      code: 1,
      line: /^nodecred: /,
    },
    {
      what: 'EACCES: a certificate the user may not read',
      asNobody: true,
      args: () => ['check', '--cert', at('private', 'cert.pem')],
      code: 1,
      line: /^nodecred: cannot read .*\/private\/cert\.pem: EACCES \(fix: /,
    },
    { what: 'bad duration', args: () => ['check', '--min-valid', 'soon'], code: 2, line: /--min-valid/ },
  ]);
});

test('approve and reload: one line and exit code for every failure', async () => {
  // A valid policy (the approver refuses to start without one), so the kubeconfig is what fails.
  const policy = at('public', 'approver.yaml');
  await writeFile(
    policy,
    'apiVersion: nodecred.io/v1alpha1\nkind: ApproverConfiguration\nallowedCidrs: [10.0.0.0/8]\n',
  );
  const approve = (...a: string[]) => [
    'approve',
    '--metrics-listen',
    'off',
    ...(a.includes('--config') ? [] : ['--config', policy]),
    ...a,
  ];
  await check('approve', [
    { what: 'garbage kubeconfig', args: () => approve('--kubeconfig', at('garbage')), code: 1, line: /\/garbage: / },
    { what: 'empty kubeconfig', args: () => approve('--kubeconfig', at('empty')), code: 1, line: /is empty/ },
    {
      what: 'kubeconfig is a dangling symlink',
      args: () => approve('--kubeconfig', at('dangling')),
      code: 1,
      line: /^nodecred: cannot read .*\/dangling: ENOENT/,
    },
    {
      what: 'kubeconfig is a directory',
      args: () => approve('--kubeconfig', at('adir')),
      code: 1,
      line: /^nodecred: cannot read .*\/adir: EISDIR/,
    },
    {
      what: 'kubeconfig in /proc',
      args: () => approve('--kubeconfig', '/proc/nodecred.conf'),
      code: 1,
      line: /^nodecred: cannot read \/proc\/nodecred\.conf: ENOENT \(fix: .*kernel virtual/,
    },
    {
      what: 'EACCES: a kubeconfig the user may not read',
      asNobody: true,
      args: () => approve('--kubeconfig', at('private', 'bootstrap.conf')),
      code: 1,
      line: /^nodecred: cannot read .*\/private\/bootstrap\.conf: EACCES/,
    },
    {
      what: 'garbage config',
      args: () => approve('--kubeconfig', testCluster().state.kubeconfig, '--config', at('garbage')),
      code: 1,
      line: /\/garbage: /,
    },
    {
      what: 'empty config',
      args: () => approve('--kubeconfig', testCluster().state.kubeconfig, '--config', at('empty')),
      code: 1,
      line: /\/empty: apiVersion/,
    },
    {
      what: 'bad listen address',
      args: () => ['approve', '--config', policy, '--metrics-listen', 'nope'],
      code: 2,
      line: /nope/,
    },
  ]);
  await check('reload', [
    {
      what: 'a PID that is not a nodecred daemon',
      args: () => ['reload', '--pid', String(process.pid)],
      code: 1,
      line: new RegExp(`^nodecred: --pid: process ${process.pid} is not a nodecred daemon`),
    },
    { what: 'no such process', args: () => ['reload', '--pid', '999999999'], code: 1, line: /no process 999999999/ },
  ]);
});
