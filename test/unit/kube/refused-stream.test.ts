// The connection pool and an HTTP/2 server that refuses a stream (RST_STREAM REFUSED_STREAM, as a server
// draining after GOAWAY does for streams it will not process): RFC 9113 §8.7 says the request was not
// processed, so it is sent once more, on a new session; a second refusal is the caller's error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { ConnectionPool } from '../../../src/kube/http/pool.ts';
import { isTransient } from '../../../src/kube/api.ts';
import { issueServingPair, makeCa } from '../pki/helpers.ts';

async function refusingServer(refuse: number) {
  const ca = await makeCa('refused-stream-test');
  const { cert, key } = await issueServingPair(ca, ['localhost'], []);
  const seen: string[] = [];
  const server = createSecureServer({ cert, key });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {}); // the server's own end of a stream it refused
    seen.push(`${headers[':method']} ${headers[':path']}`);
    if (seen.length <= refuse) stream.close(constants.NGHTTP2_REFUSED_STREAM);
    else stream.respond({ ':status': 201 }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://localhost:${(server.address() as AddressInfo).port}`;
  const target = { server: new URL(url), ca: ca.certificatePem, tlsServerName: undefined, proxy: undefined };
  return { seen, server, url, target: { ...target, alpn: ['h2'] } };
}

const post = (url: string) => ({ method: 'POST', url: new URL(`${url}/apis/x`), headers: {}, body: '{}' });

test('a refused HTTP/2 stream is sent again once, on a new session; a second refusal is an error', async (t) => {
  const once = await refusingServer(1);
  t.after(() => once.server.close());
  const pool = new ConnectionPool();
  t.after(() => pool.close());
  const res = await pool.open(once.target, post(once.url), AbortSignal.timeout(10_000));
  assert.equal(res.status, 201);
  assert.deepEqual(once.seen, ['POST /apis/x', 'POST /apis/x'], 'sent again although POST: it was not processed');
  assert.equal(pool.stats.h2Sessions, 2, 'the refusing session took no further request');

  const twice = await refusingServer(2);
  t.after(() => twice.server.close());
  const err = await pool.open(twice.target, post(twice.url), AbortSignal.timeout(10_000)).catch((e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'REFUSED_STREAM');
  assert.ok(isTransient(err), 'retried later with backoff, like a reset connection');
  assert.equal(twice.seen.length, 2, 'retried once only');
});
