// How every entry point ends: the line and the exit code for each kind of failure (src/cli/exit.ts), and
// which command line `nodecred reload` recognises as a daemon's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { UserError } from '../../../src/errors.ts';
import { EXIT_CODES, debugRequested, describeFailure } from '../../../src/cli/exit.ts';
import { daemonArgs } from '../../../src/cli/reload.ts';

const errnoOf = (p: Promise<unknown>) =>
  p.then(
    () => assert.fail('expected a failure'),
    (err: unknown) => err,
  );

test('a UserError is its one line and exit 1; a usage error exit 2', () => {
  const failure = describeFailure(new UserError('no kubeconfig', { where: '/etc/x', fix: 'write one' }), 'nodecred');
  assert.deepEqual(failure, { line: 'nodecred: /etc/x: no kubeconfig (fix: write one)', code: EXIT_CODES.failure });
  const usage = describeFailure(new UserError('unknown flag --x', { code: 'USAGE', fix: 'see --help' }), 'nodecred');
  assert.equal(usage.code, EXIT_CODES.usage);
});

test('an errno error names the operation, the path, the errno and the fix', async () => {
  const enoent = await errnoOf(readFile('/nonexistent/nodecred.yaml'));
  assert.deepEqual(describeFailure(enoent, 'x'), {
    line:
      'x: cannot open /nonexistent/nodecred.yaml: ENOENT (fix: /nonexistent/nodecred.yaml (or a directory above it) ' +
      'does not exist: create it, or correct the path)',
    code: EXIT_CODES.failure,
  });
  const proc = await errnoOf(readFile('/proc/nodecred'));
  assert.match(describeFailure(proc, 'x').line, /ENOENT \(fix: \/proc\/nodecred is inside a kernel virtual filesystem/);
});

test('anything else is an internal error: one line that says it is a bug, exit 70', () => {
  const { line, code } = describeFailure(new TypeError('cannot read x\nof undefined'), 'nodecred');
  assert.equal(code, 70);
  assert.equal(line.split('\n').length, 1);
  assert.match(line, /^nodecred: internal error: TypeError: cannot read x of undefined \(fix: this is a bug; /);
  assert.equal(describeFailure('a string', 'p').code, 70);
});

test('debug output only when asked for', () => {
  assert.equal(debugRequested(['node', 'main.ts', 'run'], {}), false);
  assert.equal(debugRequested(['node', 'main.ts', 'run', '--log-level', 'debug'], {}), true);
  assert.equal(debugRequested(['node', 'main.ts', 'run', '--log-level=debug'], {}), true);
  assert.equal(debugRequested(['node', 'x.ts'], { NODECRED_DEBUG: '1' }), true);
});

test('reload recognises a daemon: the single executable, node + a script, not other commands', () => {
  assert.deepEqual(daemonArgs(['/usr/local/bin/nodecred', 'run', '--config', '/etc/c.yaml']), [
    '--config',
    '/etc/c.yaml',
  ]);
  assert.deepEqual(daemonArgs(['/x/node', '/repo/src/cli/main.ts', 'run', '--node-name', 'n']), ['--node-name', 'n']);
  // bin/nodecred runs the sources with node options first.
  assert.deepEqual(
    daemonArgs(['/x/node', '--max-semi-space-size=1', '/repo/src/cli/main.ts', 'run', '--node-name', 'n']),
    ['--node-name', 'n'],
  );
  assert.equal(daemonArgs(['/x/node', '--max-semi-space-size=1', '/repo/src/cli/main.ts', 'status']), null);
  assert.equal(daemonArgs(['/usr/local/bin/nodecred', 'bootstrap', 'run']), null);
  assert.equal(daemonArgs(['/usr/bin/sleep', '100']), null);
});
