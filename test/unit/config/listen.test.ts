import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { parseListen } from '../../../src/config/listen.ts';
import { UserError } from '../../../src/errors.ts';

test('parseListen: IPv4, bracketed IPv6, host names, port 0, and ":port" for every interface', () => {
  assert.deepEqual(parseListen('127.0.0.1:10291', 'x'), { host: '127.0.0.1', port: 10291 });
  assert.deepEqual(parseListen('[::1]:0', 'x'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('localhost:80', 'x'), { host: 'localhost', port: 80 });
  assert.deepEqual(parseListen(':10271', 'x'), { host: '0.0.0.0', port: 10271 });
  assert.deepEqual(parseListen(' 127.0.0.1:65535\n', 'x'), { host: '127.0.0.1', port: 65535 });
});

test('parseListen: anything else is one line naming the flag, with an example', () => {
  for (const bad of ['::1:80', '1.2.3.4:70000', 'localhost', '127.0.0.1', 'off', '', 'local host:80', '[::1]80']) {
    assert.throws(
      () => parseListen(bad, '--metrics-listen'),
      (err: unknown) =>
        err instanceof UserError &&
        err.oneLine().startsWith('--metrics-listen: ') &&
        err.oneLine().includes('not host:port') &&
        !err.oneLine().includes('\n'),
      JSON.stringify(bad),
    );
  }
});

test('parseListen: what it returns is what node:net listens on (the oracle), port 0 a free port', async () => {
  for (const text of ['127.0.0.1:0', '[::1]:0']) {
    const { host, port } = parseListen(text, 'x');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const addr = server.address();
    await new Promise((r) => server.close(r));
    assert.ok(addr && typeof addr === 'object');
    assert.equal(addr.address, host);
    assert.ok(addr.port > 0);
  }
});
