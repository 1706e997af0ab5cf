// The policy modules read time and set timers only through the injected Clock (src/clock.ts), so a fake clock
// drives them (test/unit/manager, the fleet simulator). lint/no-wall-clock.grit enforces it, applied by
// biome.json to the modules it lists; this checks that Biome, with the project's own configuration, really
// reports each wall-clock use there and nothing elsewhere (a plugin that fails to load, or an override whose
// paths no longer match, would otherwise pass `npm run lint` silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ROOT = join(import.meta.dirname, '../../..');
const WALL_CLOCK = [
  'export const a = () => Date.now();',
  'export const b = () => new Date();',
  'export const c = (f: () => void) => setTimeout(f, 1);',
  'export const d = (f: () => void) => setInterval(f, 1);',
  'export const fine = (ms: number) => new Date(ms);',
].join('\n');

function lint(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nodecred-lint-'));
  try {
    const config = JSON.parse(readFileSync(join(ROOT, 'biome.json'), 'utf8'));
    // The copy is not a git checkout: no VCS integration; the schema path is not needed to lint.
    delete config.$schema;
    config.vcs = { enabled: false };
    writeFileSync(join(dir, 'biome.json'), JSON.stringify(config));
    cpSync(join(ROOT, 'lint'), join(dir, 'lint'), { recursive: true });
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), `${text}\n`);
    }
    const r = spawnSync(join(ROOT, 'node_modules/.bin/biome'), ['lint', '--colors=off', ...Object.keys(files)], {
      cwd: dir,
      encoding: 'utf8',
    });
    return `${r.stdout}${r.stderr}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('Date.now(), new Date(), setTimeout and setInterval are lint errors in the policy modules only', () => {
  const policy = ['src/manager/probe.ts', 'src/daemon.ts', 'src/cli/bootstrap.ts'];
  const out = lint({ ...Object.fromEntries(policy.map((p) => [p, WALL_CLOCK])), 'src/health/probe.ts': WALL_CLOCK });
  const reported = out.split('\n').filter((l) => /^\S+\.ts:\d+:\d+ plugin/.test(l));
  for (const file of policy) {
    const lines = reported.filter((l) => l.startsWith(`${file}:`)).map((l) => Number(l.split(':')[1]));
    assert.deepEqual(lines, [1, 2, 3, 4], `${file}: each wall-clock use is reported, new Date(ms) is not\n${out}`);
  }
  assert.equal(reported.filter((l) => l.startsWith('src/health/')).length, 0, 'outside the policy modules: allowed');
  assert.match(out, /Read time and set timers through the Clock/);
});
