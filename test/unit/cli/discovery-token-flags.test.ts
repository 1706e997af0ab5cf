import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argvSecretWarnings, NODE_FLAGS, overridesFromFlags, parseFlags } from '../../../src/cli/flags.ts';
import { userError } from '../../helpers/assert.ts';

const PIN = `sha256:${'a'.repeat(64)}`;
const TOKEN = 'abcdef.0123456789abcdef';
const base = ['--api-server', 'https://10.0.0.1:6443', '--discovery-token-ca-cert-hash', PIN];

test('the discovery token from a file, the environment or argv; only argv warns; two sources are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodecred-flags-'));
  try {
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const fromFile = parseFlags([...base, '--discovery-token-file', file], NODE_FLAGS);
    assert.equal(overridesFromFlags(fromFile, {}).discovery?.token, TOKEN);
    assert.deepEqual(argvSecretWarnings(fromFile), []);
    const fromEnv = parseFlags(base, NODE_FLAGS);
    assert.equal(overridesFromFlags(fromEnv, { NODECRED_DISCOVERY_TOKEN: TOKEN }).discovery?.token, TOKEN);
    assert.deepEqual(argvSecretWarnings(fromEnv), []);
    const onArgv = parseFlags([...base, '--discovery-token', TOKEN], NODE_FLAGS);
    assert.equal(overridesFromFlags(onArgv, {}).discovery?.token, TOKEN);
    assert.equal(argvSecretWarnings(onArgv).length, 1);
    assert.match(argvSecretWarnings(onArgv)[0]!, /--discovery-token-file FILE or NODECRED_DISCOVERY_TOKEN/);

    const both = userError(() =>
      overridesFromFlags(
        parseFlags([...base, '--discovery-token', TOKEN, '--discovery-token-file', file], NODE_FLAGS),
        {},
      ),
    );
    assert.match(both.message, /give the bootstrap token once/);
    const none = userError(() => overridesFromFlags(parseFlags(base, NODE_FLAGS), {}));
    assert.match(none.message, /token discovery needs --discovery-token-file \(or NODECRED_DISCOVERY_TOKEN\) too/);
    const missing = userError(() =>
      overridesFromFlags(parseFlags([...base, '--discovery-token-file', join(dir, 'nope')], NODE_FLAGS), {}),
    );
    assert.equal(missing.where, '--discovery-token-file');
    writeFileSync(file, 'not-a-token');
    const bad = userError(() => overridesFromFlags(fromFile, {}));
    assert.equal(bad.where, `--discovery-token-file ${file}`);
    assert.ok(!bad.oneLine().includes('not-a-token'), 'the value is never echoed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
