// A Node single executable (SEA) of nodecred: the pinned Node 24 binary with a CommonJS bundle of an entry
// point injected. Used by `npm run build:sea` (scripts/build.ts) and by the benchmarks (bench/run.ts), so
// both measure and ship the same thing.
import { execFileSync } from 'node:child_process';
import {
  readFileSync,
  chmodSync,
  copyFileSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
  renameSync,
  realpathSync,
  mkdirSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { APPROVER_ASSET, bundleNodecred } from './bundle.ts';

const REPO = resolve(import.meta.dirname, '../..');
/** Node's fuse string that marks the binary as carrying a SEA blob. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Node options the executable starts with; bin/nodecred passes the same to the pinned Node. */
export const SEA_EXEC_ARGV = ['--max-semi-space-size=1'];

export async function buildSingleExecutable(entry: string, target: string): Promise<void> {
  // A failed build must not leave last time's executable behind.
  rmSync(target, { force: true });
  mkdirSync(dirname(target), { recursive: true });
  // The pinned Node (package.json "node"), never whatever node runs this: a distro or nvm build may link a
  // shared libnode, and the executable would then need it on every host.
  const pinnedNode = realpathSync(join(REPO, 'node_modules/.bin/node'));
  // Staged beside the target so the final rename never crosses filesystems (a tmpfs /tmp).
  const work = mkdtempSync(join(dirname(target), '.sea-'));
  try {
    // Node 24's SEA runs a CommonJS main only; import.meta is empty there, so no use of it may reach the output.
    const approver = join(work, APPROVER_ASSET);
    const main = await bundleNodecred(entry, join(work, 'nodecred.cjs'), {
      format: 'cjs',
      legalComments: 'none',
      approverAsset: approver,
    });
    if ([main, approver].some((file) => readFileSync(file, 'utf8').includes('import_meta'))) {
      throw new Error(
        'the CommonJS build uses import.meta, which is empty inside a single executable: remove that use from src/ ' +
          'or its dependency',
      );
    }
    const blob = join(work, 'sea-prep.blob');
    // The code cache (V8 bytecode for this exact binary) cuts start-up by a third. A young generation of 1 MiB
    // semi-spaces instead of V8's 16: an idle daemon then holds ~8 MiB less heap (bench/README.md, issue 13).
    writeFileSync(
      join(work, 'sea-config.json'),
      JSON.stringify({
        main,
        output: blob,
        disableExperimentalSEAWarning: true,
        useCodeCache: true,
        assets: { [APPROVER_ASSET]: approver },
        execArgv: SEA_EXEC_ARGV,
      }),
    );
    try {
      execFileSync(pinnedNode, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(
        `node --experimental-sea-config failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`,
      );
    }
    const exe = join(work, 'nodecred');
    copyFileSync(pinnedNode, exe);
    const { inject } = await import('postject');
    // postject warns "Can't find string offset for section name '.note.100'" for every Node binary on Linux;
    // anything else it says is passed on.
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (!String(args[0]).includes("Can't find string offset for section name")) warn(...args);
    };
    try {
      await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
    } finally {
      console.warn = warn;
    }
    chmodSync(exe, 0o755);
    renameSync(exe, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
