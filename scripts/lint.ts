// `npm run lint`: Biome (formatting and lint rules, including lint/*.grit) and the house limits Biome
// cannot express: lines of at most 120 characters everywhere (shell scripts too), and modules of at most
// 400 lines in src/, scripts/ and bench/ (tests may be longer: a scenario reads better in one file).
// Files still over a limit are listed in lint/exceptions.txt, which only ever shrinks.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exitOnUncaught } from '../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('lint');

const ROOT = join(import.meta.dirname, '..');
const MAX_LINE = 120;
const MAX_MODULE_LINES = 400;

function trackedFiles(): string[] {
  const out = spawnSync('git', ['ls-files', 'src', 'scripts', 'bench', 'sim', 'test', 'bin', '.ci'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return out.stdout
    .split('\n')
    .filter((f) => f && !f.startsWith('bench/results/') && !f.startsWith('test/fuzz/corpus/'));
}

function isChecked(file: string): boolean {
  if (/\.(ts|sh|py|go)$/.test(file)) return true;
  // Extension-less executables (scripts/local-cluster, bin/nodecred, .ci/run) are shell or node scripts.
  return !file.includes('.', file.lastIndexOf('/') + 1) && readFileSync(join(ROOT, file), 'utf8').startsWith('#!');
}

function exceptions(): Set<string> {
  const text = readFileSync(join(ROOT, 'lint/exceptions.txt'), 'utf8');
  return new Set(
    text
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean),
  );
}

function houseLimits(): string[] {
  const allowed = exceptions();
  const problems: string[] = [];
  for (const file of trackedFiles().filter(isChecked)) {
    if (allowed.has(file)) continue;
    const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if ([...line].length > MAX_LINE)
        problems.push(`${file}:${i + 1}: line of ${[...line].length} characters (limit ${MAX_LINE})`);
    });
    const moduleLimited = /^(src|scripts|bench|sim)\//.test(file) && file.endsWith('.ts');
    if (moduleLimited && lines.length > MAX_MODULE_LINES) {
      problems.push(`${file}: ${lines.length} lines (limit ${MAX_MODULE_LINES}); split it by concern`);
    }
  }
  return problems;
}

const biome = spawnSync(join(ROOT, 'node_modules/.bin/biome'), ['ci', '--colors=off'], { cwd: ROOT, stdio: 'inherit' });
const problems = houseLimits();
for (const p of problems) process.stderr.write(`lint: ${p}\n`);
if (problems.length) process.stderr.write(`lint: ${problems.length} problem(s) with the house limits\n`);
process.exitCode = biome.status !== 0 || problems.length ? 1 : 0;
