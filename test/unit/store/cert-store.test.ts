import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { UserError } from '../../../src/errors.ts';
import { parsePemBlocks } from '../../../src/pki/pem.ts';
import { encodePrivateKeyPem, generateKey, samePublicKey } from '../../../src/pki/keys.ts';
import { CertStore, fileTimestamp, parsePairFile, type CertKind } from '../../../src/store/cert-store.ts';
import { TEMP_MARKER } from '../../../src/store/atomic.ts';
import { issueLeaf, makeCa, SERVER_AUTH } from '../pki/helpers.ts';

const ca = await makeCa('kubernetes-test-ca');

interface Pair {
  chainPem: string;
  key: KeyObject;
}

async function newPair(kind: CertKind = 'client', algorithm: 'ecdsa-p256' | 'rsa-2048' = 'ecdsa-p256'): Promise<Pair> {
  const { privateKey } = await generateKey(algorithm);
  const leaf = await issueLeaf(
    ca,
    kind === 'client'
      ? { publicKey: privateKey }
      : { publicKey: privateKey, extendedKeyUsages: [SERVER_AUTH], dnsNames: ['node-1'] },
  );
  return { chainPem: leaf + ca.certificatePem, key: privateKey };
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function userErrorOf(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  assert.fail('expected a UserError');
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
const at = (second: number) => new Date(Date.UTC(2025, 0, 2, 3, 4, second));
const pairName = (kind: CertKind, second: number) => `kubelet-${kind}-${fileTimestamp(at(second))}.pem`;

test("fileTimestamp is kubelet's YYYY-MM-DD-HH-MM-SS, in UTC, seconds truncated", () => {
  assert.equal(fileTimestamp(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 999))), '2024-01-02-03-04-05');
  assert.equal(fileTimestamp(new Date('2025-12-31T23:59:59.000Z')), '2025-12-31-23-59-59');
});

test('install writes kubelet-<kind>-<timestamp>.pem (chain then key, 0600), points -current.pem at it', async (t) => {
  const dir = join(await tempDir(t), 'pki');
  const store = new CertStore(dir);
  const pair = await newPair();
  const path = await store.install('client', pair.chainPem, pair.key, new Date(Date.UTC(2024, 0, 2, 3, 4, 5)));
  assert.equal(path, join(dir, 'kubelet-client-2024-01-02-03-04-05.pem'));
  assert.equal(await modeOf(path), 0o600);
  assert.equal(await modeOf(dir), 0o700, 'the directory is created private');
  const text = await readFile(path, 'utf8');
  assert.deepEqual(
    parsePemBlocks(text, 'pair').map((b) => b.label),
    ['CERTIFICATE', 'CERTIFICATE', 'EC PRIVATE KEY'],
  );
  assert.ok(text.startsWith(pair.chainPem), 'the chain comes first, as given');
  assert.ok(text.endsWith(encodePrivateKeyPem(pair.key)), 'then the key, as kubelet writes it');
  assert.equal(await readlink(store.currentPath('client')), 'kubelet-client-2024-01-02-03-04-05.pem');
  assert.deepEqual((await readdir(dir)).sort(), [
    'kubelet-client-2024-01-02-03-04-05.pem',
    'kubelet-client-current.pem',
  ]);
});

test('install accepts a chain without a trailing newline', async (t) => {
  const store = new CertStore(await tempDir(t));
  const pair = await newPair();
  const path = await store.install('client', pair.chainPem.trimEnd(), pair.key, at(0));
  assert.deepEqual(
    parsePemBlocks(await readFile(path, 'utf8'), 'pair').map((b) => b.label),
    ['CERTIFICATE', 'CERTIFICATE', 'EC PRIVATE KEY'],
  );
  assert.ok(await store.readCurrent('client'));
});

test('readCurrent round-trips what install wrote', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const pair = await newPair('server', 'rsa-2048');
  const path = await store.install('server', pair.chainPem, pair.key, at(0));
  const current = await store.readCurrent('server');
  assert.ok(current);
  assert.equal(current.file, path);
  assert.equal(current.chainPem, pair.chainPem);
  assert.equal(current.certificates.length, 2);
  assert.deepEqual(current.certificates[0]!.summary.dnsNames, ['node-1']);
  assert.equal(current.certificates[1]!.summary.subjectCommonName, 'kubernetes-test-ca');
  assert.ok(samePublicKey(current.key, pair.key));
  assert.equal(current.key.type, 'private');
  assert.equal(encodePrivateKeyPem(current.key), encodePrivateKeyPem(pair.key));
});

test('readCurrent: nothing installed is null, and the kinds are independent', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  assert.equal(await store.readCurrent('client'), null);
  assert.equal(await new CertStore(join(dir, 'missing')).readCurrent('client'), null);
  const pair = await newPair();
  await store.install('client', pair.chainPem, pair.key, at(0));
  assert.ok(await store.readCurrent('client'));
  assert.equal(await store.readCurrent('server'), null);
});

test('a second install re-points the link; the old pair stays until garbage-collected', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const first = await newPair();
  const second = await newPair();
  await store.install('client', first.chainPem, first.key, at(1));
  const path = await store.install('client', second.chainPem, second.key, at(2));
  const current = await store.readCurrent('client');
  assert.equal(current?.file, path);
  assert.ok(samePublicKey(current.key, second.key));
  assert.deepEqual(await store.pairFiles('client'), [pairName('client', 1), pairName('client', 2)]);
});

test('readCurrent follows an absolute link, as kubelet writes them', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const pair = await newPair();
  const path = await store.install('client', pair.chainPem, pair.key, at(0));
  await rm(store.currentPath('client'));
  await symlink(path, store.currentPath('client'));
  const current = await store.readCurrent('client');
  assert.equal(current?.file, path);
  assert.deepEqual(await store.prepare(), [], 'an intact absolute link needs no repair');
  assert.equal(await readlink(store.currentPath('client')), path);
});

test('readCurrent reads a -current.pem that is a regular file', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const pair = await newPair();
  await writeFile(store.currentPath('client'), pair.chainPem + encodePrivateKeyPem(pair.key), { mode: 0o600 });
  const current = await store.readCurrent('client');
  assert.equal(current?.file, store.currentPath('client'));
  assert.ok(samePublicKey(current.key, pair.key));
});

test('garbage collection keeps `keep` pairs of the kind, newest first, including the current one', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 3);
  const serverPair = await newPair('server');
  await store.install('server', serverPair.chainPem, serverPair.key, at(0));
  const pair = await newPair();
  for (let s = 1; s <= 6; s++) await store.install('client', pair.chainPem, pair.key, at(s));
  assert.deepEqual(await store.pairFiles('client'), [
    pairName('client', 4),
    pairName('client', 5),
    pairName('client', 6),
  ]);
  assert.equal(await readlink(store.currentPath('client')), pairName('client', 6));
  assert.deepEqual(await store.pairFiles('server'), [pairName('server', 0)], 'other kinds are not collected');
});

test('garbage collection never removes the current pair, even when it is the oldest', async (t) => {
  const dir = await tempDir(t);
  const pair = await newPair();
  const roomy = new CertStore(dir, 10);
  for (let s = 10; s <= 14; s++) await roomy.install('client', pair.chainPem, pair.key, at(s));
  // The clock went backwards: the new pair sorts before all the others.
  const store = new CertStore(dir, 2);
  await store.install('client', pair.chainPem, pair.key, at(1));
  assert.deepEqual(await store.pairFiles('client'), [pairName('client', 1), pairName('client', 14)]);
  assert.equal(await readlink(store.currentPath('client')), pairName('client', 1));
  assert.ok(await store.readCurrent('client'));
});

test('keep = 1 leaves only the current pair', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 1);
  const pair = await newPair();
  for (let s = 0; s < 3; s++) await store.install('client', pair.chainPem, pair.key, at(s));
  assert.deepEqual(await store.pairFiles('client'), [pairName('client', 2)]);
});

test('pairFiles lists only well-formed timestamped names of the kind, oldest first', async (t) => {
  const dir = await tempDir(t);
  const names = [
    'kubelet-client-2025-01-02-03-04-09.pem',
    'kubelet-client-2024-12-31-23-59-59.pem',
    'kubelet-client-current.pem',
    'kubelet-server-2025-01-01-00-00-00.pem',
    'kubelet-client-2025-01-01.pem',
    'kubelet-client-2025-01-01-00-00-00.pem.bak',
    'kubelet-client.crt',
    `${TEMP_MARKER}kubelet-client-2025-01-01-00-00-00.pem-abcd`,
  ];
  for (const n of names) await writeFile(join(dir, n), '');
  const store = new CertStore(dir);
  assert.deepEqual(await store.pairFiles('client'), [
    'kubelet-client-2024-12-31-23-59-59.pem',
    'kubelet-client-2025-01-02-03-04-09.pem',
  ]);
  assert.deepEqual(await store.pairFiles('server'), ['kubelet-server-2025-01-01-00-00-00.pem']);
  assert.deepEqual(await new CertStore(join(dir, 'missing')).pairFiles('client'), []);
});

test('pending key: written 0600, read back, removed (twice is fine)', async (t) => {
  const dir = join(await tempDir(t), 'pki');
  const store = new CertStore(dir);
  assert.equal(await store.readPendingKey('client'), null);
  const { privateKey } = await generateKey();
  await store.writePendingKey('client', privateKey);
  const path = store.pendingKeyPath('client');
  assert.equal(path, join(dir, 'nodecred-client-pending.key'));
  assert.equal(await modeOf(path), 0o600);
  assert.equal(await modeOf(dir), 0o700);
  assert.match(await readFile(path, 'utf8'), /^-----BEGIN EC PRIVATE KEY-----\n/);
  const back = await store.readPendingKey('client');
  assert.ok(back && samePublicKey(back, privateKey));
  assert.equal(await store.readPendingKey('server'), null, 'kinds are independent');
  await store.removePendingKey('client');
  assert.equal(await store.readPendingKey('client'), null);
  await store.removePendingKey('client');
});

test('pending key: a damaged file is a UserError naming it', async (t) => {
  const store = new CertStore(await tempDir(t));
  await writeFile(store.pendingKeyPath('server'), '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE');
  const err = await userErrorOf(store.readPendingKey('server'));
  assert.equal(err.where, store.pendingKeyPath('server'));
});

test('readCurrent on a truncated pair file is a UserError naming the file', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const pair = await newPair();
  const path = await store.install('client', pair.chainPem, pair.key, at(0));
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.slice(0, Math.floor(text.length / 2)));
  const err = await userErrorOf(store.readCurrent('client'));
  assert.equal(err.where, path);
  assert.ok(err.oneLine().startsWith(path), err.oneLine());
});

test('readCurrent on a file without its key is a UserError naming the file', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const pair = await newPair();
  const path = await store.install('client', pair.chainPem, pair.key, at(0));
  await writeFile(path, pair.chainPem);
  const err = await userErrorOf(store.readCurrent('client'));
  assert.equal(err.where, path);
  assert.equal(err.code, 'PAIR_MALFORMED');
});

test('a pair whose key does not belong to the certificate is rejected', async (t) => {
  const pair = await newPair();
  const other = await generateKey();
  const otherRsa = await generateKey('rsa-2048');
  for (const key of [other.privateKey, otherRsa.privateKey]) {
    assert.throws(
      () => parsePairFile(pair.chainPem + encodePrivateKeyPem(key), '/pki/x.pem'),
      (err: unknown) => err instanceof UserError && err.code === 'PAIR_MISMATCH' && err.where === '/pki/x.pem',
    );
  }
  // On disk, through readCurrent.
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const path = await store.install('client', pair.chainPem, pair.key, at(0));
  await writeFile(path, pair.chainPem + encodePrivateKeyPem(other.privateKey));
  const err = await userErrorOf(store.readCurrent('client'));
  assert.equal(err.code, 'PAIR_MISMATCH');
  assert.equal(err.where, path);
});

test('install refuses a key that does not belong to the certificate, and writes nothing', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir);
  const pair = await newPair();
  const other = await generateKey();
  const err = await userErrorOf(store.install('client', pair.chainPem, other.privateKey, at(0)));
  assert.equal(err.code, 'PAIR_MISMATCH');
  assert.deepEqual(await readdir(dir), []);
});

test('parsePairFile: exactly one key block; the key may be PKCS#8', async () => {
  const pair = await newPair();
  const key = encodePrivateKeyPem(pair.key);
  assert.throws(() => parsePairFile(pair.chainPem + key + key, 'f'), { code: 'PAIR_MALFORMED' });
  assert.throws(
    () => parsePairFile(key, 'f'),
    (err: unknown) => err instanceof UserError && err.where === 'f',
  );
  assert.throws(
    () => parsePairFile('', 'f'),
    (err: unknown) => err instanceof UserError && err.where === 'f',
  );
  const pkcs8 = pair.key.export({ format: 'pem', type: 'pkcs8' }) as string;
  const parsed = parsePairFile(pair.chainPem + pkcs8, 'f');
  assert.ok(samePublicKey(parsed.key, pair.key));
  // Key first is accepted too: blocks are found by label, not position.
  assert.equal(parsePairFile(key + pair.chainPem, 'f').chainPem, pair.chainPem);
});

test('prepare creates a missing directory 0700 and reports it', async (t) => {
  const dir = join(await tempDir(t), 'pki');
  const notes = await new CertStore(dir).prepare();
  assert.deepEqual(notes, [{ severity: 'info', message: `created ${dir} (0700)` }]);
  assert.equal(await modeOf(dir), 0o700);
});

test('prepare tightens an open directory to 0700 and reports it', async (t) => {
  const dir = join(await tempDir(t), 'pki');
  await mkdir(dir);
  await chmod(dir, 0o755);
  const notes = await new CertStore(dir).prepare();
  assert.equal(notes.length, 1);
  assert.equal(notes[0]!.severity, 'warn');
  assert.match(notes[0]!.message, /tightened .* from 755 to 0700/);
  assert.equal(await modeOf(dir), 0o700);
  assert.deepEqual(await new CertStore(dir).prepare(), [], 'a second run has nothing to say');
});

test('prepare removes temporary files left by an interrupted install', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o700);
  const store = new CertStore(dir);
  const pair = await newPair();
  await store.install('client', pair.chainPem, pair.key, at(0));
  const leftovers = [
    `${TEMP_MARKER}${pairName('client', 1)}-0a1b2c3d`,
    `${TEMP_MARKER}kubelet-client-current.pem-11223344`,
  ];
  await writeFile(join(dir, leftovers[0]!), 'half a pa');
  await symlink(pairName('client', 1), join(dir, leftovers[1]!));
  const notes = (await store.prepare()).map((n) => n.message);
  assert.deepEqual(notes.sort(), leftovers.map((n) => `removed ${n} left by an interrupted install`).sort());
  assert.deepEqual((await readdir(dir)).sort(), [pairName('client', 0), 'kubelet-client-current.pem']);
});

test('prepare re-points a dangling current link at the newest intact pair', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o700);
  const store = new CertStore(dir);
  const pairs = [await newPair(), await newPair(), await newPair()];
  for (const [i, p] of pairs.entries()) await store.install('client', p.chainPem, p.key, at(i));
  // The newest target removed by hand, and the one before it damaged: the oldest is the newest intact one.
  await rm(join(dir, pairName('client', 2)));
  await writeFile(join(dir, pairName('client', 1)), 'garbage');
  assert.equal(await store.readCurrent('client'), null, 'a dangling link reads as no certificate');
  const notes = await store.prepare();
  assert.equal(notes.length, 1);
  assert.match(notes[0]!.message, new RegExp(`re-pointed .*kubelet-client-current\\.pem at ${pairName('client', 0)}`));
  assert.equal(await readlink(store.currentPath('client')), pairName('client', 0));
  const current = await store.readCurrent('client');
  assert.ok(current && samePublicKey(current.key, pairs[0]!.key));
});

test('prepare re-points a link whose target is unreadable', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o700);
  const store = new CertStore(dir);
  const older = await newPair('server');
  const newer = await newPair('server');
  await store.install('server', older.chainPem, older.key, at(0));
  const path = await store.install('server', newer.chainPem, newer.key, at(1));
  await writeFile(path, (await readFile(path, 'utf8')).slice(0, 100));
  const notes = await store.prepare();
  assert.equal(notes.length, 1);
  assert.equal(await readlink(store.currentPath('server')), pairName('server', 0));
});

test('prepare removes a broken current link when no intact pair is left', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o700);
  const store = new CertStore(dir);
  const pair = await newPair();
  const path = await store.install('client', pair.chainPem, pair.key, at(0));
  await rm(path);
  await writeFile(join(dir, pairName('client', 5)), 'not a pair');
  const notes = await store.prepare();
  assert.equal(notes.length, 1);
  assert.match(notes[0]!.message, /removed .*kubelet-client-current\.pem: .*no intact pair/);
  assert.equal(await store.readCurrent('client'), null);
  assert.ok(!(await readdir(dir)).includes('kubelet-client-current.pem'));
});

test('prepare leaves an intact store alone', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o700);
  const store = new CertStore(dir);
  const client = await newPair('client');
  const server = await newPair('server');
  await store.install('client', client.chainPem, client.key, at(0));
  await store.install('server', server.chainPem, server.key, at(0));
  const before = (await readdir(dir)).sort();
  assert.deepEqual(await store.prepare(), []);
  assert.deepEqual((await readdir(dir)).sort(), before);
  assert.equal(await readlink(store.currentPath('client')), pairName('client', 0));
});

test('readCurrent parses a file once; a changed, replaced or removed file is read again', async (t) => {
  const dir = join(await tempDir(t), 'pki');
  const store = new CertStore(dir);
  await store.prepare();
  const first = await newPair();
  const file = await store.install('client', first.chainPem, first.key, at(1));
  const a = await store.readCurrent('client');
  assert.equal(await store.readCurrent('client'), a, 'unchanged file: the pair parsed before');
  // Rewritten in place with other content: a new pair, even with the same size.
  const second = await newPair();
  await writeFile(file, second.chainPem + encodePrivateKeyPem(second.key));
  const b = await store.readCurrent('client');
  assert.notEqual(b, a);
  assert.ok(samePublicKey(b!.key, second.key));
  // A new install is a new file.
  await store.install('client', first.chainPem, first.key, at(2));
  const c = await store.readCurrent('client');
  assert.ok(c !== b && samePublicKey(c!.key, first.key));
  await rm(c!.file);
  assert.equal(await store.readCurrent('client'), null, 'gone is gone, whatever was parsed before');
});
