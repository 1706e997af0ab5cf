// docs/security.md promises that every control has a test. This checks it mechanically: every row of a
// control table (first cell an id such as D1) names at least one test as `file` › "name", and each named
// file exists and declares a test with exactly that name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../../..');
const DOC = readFileSync(join(REPO, 'docs/security.md'), 'utf8');

const unescapeHtml = (s: string) => s.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/** The names of the tests a file declares: test('…'), test("…"), test(`…`), first argument a plain literal. */
export function declaredTests(source: string): Set<string> {
  const names = new Set<string>();
  const re = /\btest\(\s*(?:'((?:\\.|[^'\\])*)'|"((?:\\.|[^"\\])*)"|`((?:\\.|[^`\\$])*)`)/g;
  for (const m of source.matchAll(re)) {
    const raw = m[1] ?? m[2] ?? m[3] ?? '';
    names.add(raw.replace(/\\(.)/g, '$1'));
  }
  return names;
}

interface ControlRow {
  id: string;
  refs: Array<{ file: string; name: string }>;
}

function controlRows(doc: string): ControlRow[] {
  const rows: ControlRow[] = [];
  for (const line of doc.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    // | id | control | tests |
    if (cells.length < 5 || !/^[A-Z]\d+$/.test(cells[1]!)) continue;
    const refs = [...cells[3]!.matchAll(/`(test\/[\w./-]+\.test\.ts)` › "([^"]+)"/g)].map((m) => ({
      file: m[1]!,
      name: unescapeHtml(m[2]!),
    }));
    rows.push({ id: cells[1]!, refs });
  }
  return rows;
}

test('docs/security.md: every control names at least one test, and every named test exists under that name', () => {
  const rows = controlRows(DOC);
  assert.ok(rows.length >= 15, `found ${rows.length} control rows: the table format changed?`);
  const ids = rows.map((r) => r.id);
  assert.deepEqual(ids, [...new Set(ids)], 'control ids are unique');
  const cache = new Map<string, Set<string>>();
  for (const row of rows) {
    assert.ok(row.refs.length > 0, `${row.id} names no test`);
    for (const { file, name } of row.refs) {
      const path = join(REPO, file);
      assert.ok(existsSync(path), `${row.id}: ${file} does not exist`);
      if (!cache.has(file)) cache.set(file, declaredTests(readFileSync(path, 'utf8')));
      assert.ok(cache.get(file)!.has(name), `${row.id}: ${file} declares no test named "${name}"`);
    }
  }
});

test('declaredTests reads the quoting styles the suite uses, escapes included', () => {
  const names = declaredTests(
    `test('a \\'quoted\\' one', () => {});\ntest(\n  "kubeadm's",\n  async () => {});\ntest(\`tmpl\`, () => {});`,
  );
  assert.deepEqual([...names], ["a 'quoted' one", "kubeadm's", 'tmpl']);
});
