// The denied client or serving request on disk, one record per kind: what the daemon writes it reads back (and
// so does `nodecred status`), written 0600 and atomically, and anything else is one line naming the file and field.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUserError } from '../../../src/errors.ts';
import {
  denialFile,
  parseDenial,
  readDenialFile,
  serializeDenial,
  writeDenialFile,
  type DenialRecord,
} from '../../../src/store/denial-record.ts';

const RECORD: DenialRecord = {
  request: '["kubernetes.io/kubelet-serving","system:node:n1",["system:nodes"],[],["10.0.0.5"],null,"ecdsa-p256"]',
  csr: 'csr-serving-abc',
  condition: { type: 'Denied', reason: 'KubectlDeny', message: 'This CSR was denied by kubectl certificate deny.' },
  message: 'CSR csr-serving-abc was denied: KubectlDeny: This CSR was denied by kubectl certificate deny.',
  at: Date.UTC(2030, 0, 1, 12),
  count: 2,
  retryAt: Date.UTC(2030, 0, 1, 13, 30),
};

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-denial-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a record reads back as written; the file is readable JSON an SRE can cat', () => {
  const text = serializeDenial('server', RECORD);
  assert.deepEqual(parseDenial('server', text, 'f'), RECORD);
  const json = JSON.parse(text) as Record<string, unknown>;
  assert.equal(json.kind, 'RequestDenial');
  assert.equal(json.certificate, 'serving');
  assert.equal(json.retryAt, '2030-01-01T13:30:00.000Z');
  assert.equal(json.deniedAt, '2030-01-01T12:00:00.000Z');
  assert.equal(json.csr, 'csr-serving-abc');
});

test('written 0600 through a temporary file; null removes it; a missing file reads as none', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'nodecred-server-denied.json');
  assert.equal(await readDenialFile('server', path), null);
  await writeDenialFile('server', path, RECORD);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.deepEqual(await readDenialFile('server', path), RECORD);
  assert.deepEqual(await readdir(dir), ['nodecred-server-denied.json'], 'no temporary file left');
  await writeDenialFile('server', path, null);
  assert.deepEqual(await readdir(dir), []);
  await writeDenialFile('server', path, null); // removing what is not there is fine
});

test('a damaged record is one UserError naming the file and what is wrong, and how to fix it', async (t) => {
  const good = JSON.parse(serializeDenial('server', RECORD)) as Record<string, unknown>;
  const cases: Array<[string, string, RegExp]> = [
    ['truncated', serializeDenial('server', RECORD).slice(0, 40), /not JSON/],
    ['empty', '', /not JSON/],
    ['array', '[]', /not a JSON object/],
    ['other kind', JSON.stringify({ ...good, kind: 'Secret' }), /kind\/version "Secret"\/"1"/],
    ['future version', JSON.stringify({ ...good, version: 2 }), /expected RequestDenial\/1/],
    [
      'no certificate',
      JSON.stringify({ ...good, certificate: undefined }),
      /certificate "undefined", expected "serving"/,
    ],
    ['no csr', JSON.stringify({ ...good, csr: '' }), /csr must be a non-empty string/],
    ['condition type', JSON.stringify({ ...good, condition: { type: 'Approved' } }), /condition\.type/],
    ['condition reason', JSON.stringify({ ...good, condition: { type: 'Denied', reason: 7 } }), /condition\.reason/],
    ['count', JSON.stringify({ ...good, count: 0 }), /count must be a positive integer/],
    ['retryAt', JSON.stringify({ ...good, retryAt: 'tomorrow' }), /retryAt must be an RFC 3339 time/],
    ['order', JSON.stringify({ ...good, retryAt: '2029-01-01T00:00:00Z' }), /retryAt is before deniedAt/],
    ['huge', `${' '.repeat(70_000)}{}`, /larger than 65536 bytes/],
  ];
  for (const [what, text, expected] of cases) {
    assert.throws(
      () => parseDenial('server', text, '/pki/nodecred-server-denied.json'),
      (err: unknown) => {
        assert.ok(isUserError(err), what);
        assert.equal(err.code, 'DENIAL_RECORD_INVALID');
        assert.match(err.message, expected, what);
        const line = err.oneLine();
        assert.match(line, /^\/pki\/nodecred-server-denied\.json: unreadable denial record: /, what);
        assert.match(line, /\(fix: remove it: the daemon then submits the serving request/, what);
        assert.doesNotMatch(line, /\n/, what);
        return true;
      },
      what,
    );
  }
  const dir = await tempDir(t);
  await writeFile(join(dir, 'bad.json'), '{"kind":');
  await assert.rejects(readDenialFile('server', join(dir, 'bad.json')), /unreadable denial record: not JSON/);
  // A file that cannot be read at all is the errno's one line, not "remove it".
  await mkdir(join(dir, 'a-directory.json'));
  await assert.rejects(readDenialFile('server', join(dir, 'a-directory.json')), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.match(err.oneLine(), /a-directory\.json/);
    assert.doesNotMatch(err.oneLine(), /denial record|\n/);
    return true;
  });
});

// A client CSR that a policy denies is held back (and recorded) like a serving one, in its own file.
test("one record per kind, each in its own file; one kind's record never reads as the other's", async (t) => {
  assert.equal(denialFile('client'), 'nodecred-client-denied.json');
  assert.equal(denialFile('server'), 'nodecred-server-denied.json');
  const client: DenialRecord = { ...RECORD, request: '["kubernetes.io/kube-apiserver-client-kubelet"]renewal' };
  const dir = await tempDir(t);
  await writeDenialFile('client', join(dir, denialFile('client')), client);
  await writeDenialFile('server', join(dir, denialFile('server')), RECORD);
  assert.deepEqual(await readDenialFile('client', join(dir, denialFile('client'))), client);
  assert.deepEqual(await readDenialFile('server', join(dir, denialFile('server'))), RECORD);
  assert.equal(JSON.parse(serializeDenial('client', client)).certificate, 'client');
  // Copied or renamed into the other kind's file, a record is refused, naming the file and the fix for that kind.
  assert.throws(
    () => parseDenial('client', serializeDenial('server', RECORD), '/pki/nodecred-client-denied.json'),
    (err: unknown) => {
      assert.ok(isUserError(err));
      assert.equal(
        err.oneLine(),
        '/pki/nodecred-client-denied.json: unreadable denial record: certificate "serving", expected "client" ' +
          '(fix: remove it: the daemon then submits the client request at its next pass (and records a new denial))',
      );
      return true;
    },
  );
});
