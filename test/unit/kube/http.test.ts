// The pure parts of the node side's HTTP client: URL and query building, proxy choice (Go's httpproxy
// rules), the answer → error mapping, the classification the contract promises, and watch line framing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { apiUrl, noProxyMatches, proxyFor, segment } from '../../../src/kube/http/url.ts';
import { HttpStatusError, parseStatus, readJsonResponse, retryAfter } from '../../../src/kube/http/status.ts';
import { MAX_WATCH_LINE, WatchFramingError, WatchLineDecoder } from '../../../src/kube/http/watch-lines.ts';
import { ApiStatusError, TransientApiError, explainApiError, type ApiConnection } from '../../../src/kube/api.ts';
import { RequestTimeout } from '../../../src/kube/http-node-api.ts';
import { ProxyConnectError } from '../../../src/kube/http/connect.ts';
import { UserError } from '../../../src/errors.ts';
import { decisionOf, toCsr, csrBody } from '../../../src/kube/csr-object.ts';

test('apiUrl: the server path is a prefix, query values keep their order, undefined ones are left out', () => {
  assert.equal(String(apiUrl('https://10.0.0.1:6443', '/api/v1/nodes/n1')), 'https://10.0.0.1:6443/api/v1/nodes/n1');
  assert.equal(String(apiUrl('https://lb.example/k8s/', '/version')), 'https://lb.example/k8s/version');
  const url = apiUrl('https://[fd00::1]:6443', '/apis/x', {
    watch: 'true',
    fieldSelector: 'metadata.name=a.b',
    resourceVersion: '',
    timeoutSeconds: 60,
    skipped: undefined,
  });
  assert.equal(url.hostname, '[fd00::1]');
  assert.equal(url.search, '?watch=true&fieldSelector=metadata.name%3Da.b&resourceVersion=&timeoutSeconds=60');
});

test('segment: a name never becomes a separator or a dot-segment', () => {
  assert.equal(segment('nodecred-client-abc'), 'nodecred-client-abc');
  assert.equal(segment('a/b?c#d'), 'a%2Fb%3Fc%23d');
  for (const bad of ['', '.', '..']) assert.throws(() => segment(bad));
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), (name) => {
      fc.pre(name !== '.' && name !== '..');
      const url = apiUrl('https://h', `/api/v1/nodes/${segment(name)}`);
      return url.pathname.split('/').length === 5 && decodeURIComponent(url.pathname.split('/')[4]!) === name;
    }),
  );
});

test("proxyFor: proxy-url wins; HTTPS_PROXY unless NO_PROXY or loopback (Go's rules)", () => {
  const api = new URL('https://api.cluster.example:6443');
  assert.equal(proxyFor(api, {}), undefined);
  assert.equal(proxyFor(api, { HTTPS_PROXY: 'http://proxy:3128' })?.href, 'http://proxy:3128/');
  assert.equal(proxyFor(api, { https_proxy: 'proxy:3128' })?.href, 'http://proxy:3128/', 'scheme defaults to http');
  assert.equal(proxyFor(api, { HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:1' })?.host, 'a:1');
  assert.equal(proxyFor(api, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '.example' }), undefined);
  assert.equal(proxyFor(api, { HTTPS_PROXY: 'http://p:1', no_proxy: 'cluster.example' }), undefined);
  assert.equal(proxyFor(new URL('https://127.0.0.1:6443'), { HTTPS_PROXY: 'http://p:1' }), undefined);
  assert.equal(proxyFor(new URL('https://localhost:6443'), { HTTPS_PROXY: 'http://p:1' }), undefined);
  assert.equal(proxyFor(new URL('https://[::1]:6443'), { HTTPS_PROXY: 'http://p:1' }), undefined);
  // The kubeconfig's proxy-url has no exceptions, loopback included (client-go: http.ProxyURL).
  assert.equal(proxyFor(new URL('https://127.0.0.1:6443'), {}, 'http://p:9')?.host, 'p:9');
  assert.equal(proxyFor(api, { NO_PROXY: '*', HTTPS_PROXY: 'http://p:1' }, 'http://q:2')?.host, 'q:2');
});

test('proxyFor: an empty NO_PROXY does not hide no_proxy (Go takes the first non-empty of the two)', () => {
  const api = new URL('https://api.cluster.example:6443');
  assert.equal(proxyFor(api, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '', no_proxy: '.example' }), undefined);
  assert.equal(
    proxyFor(api, { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'other.example', no_proxy: '.example' })?.host,
    'p:1',
  );
  assert.equal(proxyFor(api, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '', no_proxy: '' })?.host, 'p:1');
});

test('NO_PROXY entries: names, subdomains, leading dots, ports, IPs, CIDRs, *', () => {
  const cases: Array<[string, string, number, boolean]> = [
    ['example.com', 'example.com', 443, true],
    ['example.com', 'api.example.com', 443, true],
    ['example.com', 'badexample.com', 443, false],
    ['.example.com', 'example.com', 443, false],
    ['.example.com', 'a.example.com', 443, true],
    ['*.example.com', 'a.example.com', 443, true],
    ['example.com:6443', 'example.com', 6443, true],
    ['example.com:6443', 'example.com', 443, false],
    ['10.0.0.1', '10.0.0.1', 443, true],
    ['10.0.0.1', '10.0.0.2', 443, false],
    ['10.0.0.0/8', '10.200.3.4', 443, true],
    ['10.0.0.0/8', '11.0.0.1', 443, false],
    ['fd00::/8', 'fd12::1', 443, true],
    ['[fd00::1]', 'fd00::1', 443, true],
    ['10.0.0.0/8', 'ten.example', 443, false],
    [' a.example , b.example ', 'b.example', 443, true],
    ['*', 'anything', 1, true],
    ['', 'anything', 1, false],
  ];
  for (const [noProxy, host, port, want] of cases) {
    assert.equal(noProxyMatches(noProxy, host, port), want, `${noProxy} vs ${host}:${port}`);
  }
});

test('status: a Status body gives message and reason; Retry-After in seconds; 2xx JSON parses', () => {
  const body = JSON.stringify({ kind: 'Status', status: 'Failure', message: 'nope', reason: 'Forbidden', code: 403 });
  assert.deepEqual(parseStatus(body), {
    kind: 'Status',
    status: 'Failure',
    message: 'nope',
    reason: 'Forbidden',
    code: 403,
  });
  assert.equal(parseStatus('<html>'), undefined);
  assert.equal(parseStatus('{"kind":"Node"}'), undefined);
  assert.equal(retryAfter('3'), 3);
  assert.equal(retryAfter(['7']), 7);
  assert.equal(retryAfter('Wed, 21 Oct 2015 07:28:00 GMT'), undefined);
  assert.deepEqual(readJsonResponse(200, '{"a":1}'), { a: 1 });
  assert.throws(
    () => readJsonResponse(429, body, { 'retry-after': '2' }),
    (e) => e instanceof HttpStatusError && e.status === 429 && e.retryAfterSeconds === 2 && e.body?.message === 'nope',
  );
  assert.throws(() => readJsonResponse(200, 'not json'), HttpStatusError);
});

const conn: ApiConnection = {
  endpoint: { server: 'https://10.0.0.1:6443', caPem: undefined },
  credential: { kind: 'token', token: 'abcdef.0123456789abcdef' },
  description: 'bootstrap token from /etc/kubernetes/bootstrap-kubelet.conf',
};
const status = (code: number, message = 'm') =>
  new HttpStatusError(code, { kind: 'Status', message, reason: 'R', code });

test('classification of HTTP answers and transport failures, as the contract says', () => {
  const classify = (err: unknown) => explainApiError(err, conn, { what: 'create CSR x', forbiddenFix: 'bind it' });
  const e401 = classify(status(401));
  assert.ok(e401 instanceof UserError && e401.code === 'UNAUTHORIZED');
  assert.ok(!e401.oneLine().includes('0123456789abcdef'), 'never the token');
  const e403 = classify(status(403, 'cannot create'));
  assert.ok(e403 instanceof UserError && e403.code === 'FORBIDDEN' && e403.fix === 'bind it');
  assert.match(e403.message, /cannot create/);
  for (const code of [429, 500, 503, 504]) assert.ok(classify(status(code)) instanceof TransientApiError, `${code}`);
  assert.match(classify(status(429)).message, /throttling/);
  for (const code of [400, 404, 409, 410, 422]) {
    const e = classify(status(code));
    assert.ok(e instanceof ApiStatusError && e.status === code, `${code}`);
  }
  const timeout = classify(new RequestTimeout('no complete response within 30000 ms'));
  assert.ok(timeout instanceof TransientApiError);
  assert.match(timeout.message, /ETIMEDOUT/);
  const refused = classify(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  assert.ok(refused instanceof TransientApiError && /ECONNREFUSED/.test(refused.message));
  const proxy = classify(new ProxyConnectError('proxy http://p:1 refused CONNECT 10.0.0.1:6443: HTTP 403', 403));
  assert.ok(proxy instanceof TransientApiError && /refused CONNECT/.test(proxy.message));
  const untrusted = classify(Object.assign(new Error('x'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }));
  assert.ok(untrusted instanceof UserError && untrusted.code === 'TLS_UNTRUSTED');
  const wrongName = classify(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }));
  assert.ok(wrongName instanceof UserError && wrongName.code === 'TLS_UNTRUSTED');
});

test('watch framing: events split across chunks and inside UTF-8 characters, CRLF, a last line without newline', () => {
  const events = [
    { type: 'ADDED', object: { metadata: { name: 'ü-1' } } },
    { type: 'BOOKMARK', object: { metadata: { resourceVersion: '42' } } },
    { type: 'ERROR', object: { kind: 'Status', code: 410 } },
  ];
  const bytes = Buffer.from(`${events.map((e) => JSON.stringify(e)).join('\r\n')}`);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 8 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const decoder = new WatchLineDecoder();
      const got = [];
      let from = 0;
      for (const p of [...points, bytes.length]) {
        got.push(...decoder.push(bytes.subarray(from, p)));
        from = p;
      }
      got.push(...decoder.end());
      assert.deepEqual(got, events);
    }),
  );
});

test('watch framing: garbage, unknown types and endless lines fail the stream', () => {
  assert.throws(() => new WatchLineDecoder().push('not json\n'), WatchFramingError);
  assert.throws(() => new WatchLineDecoder().push('{"type":"WHAT","object":{}}\n'), WatchFramingError);
  assert.throws(() => new WatchLineDecoder().push('{"type":"ADDED"}\n'), WatchFramingError);
  const d = new WatchLineDecoder();
  assert.throws(() => d.push('x'.repeat(MAX_WATCH_LINE + 1)), WatchFramingError);
  assert.deepEqual(new WatchLineDecoder().push('\n\n'), []);
});

test('CSR objects: Denied/Failed win over a certificate; Approved without one is pending', () => {
  const cert = Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64');
  assert.equal(decisionOf({}), undefined);
  assert.equal(decisionOf({ status: { conditions: [{ type: 'Approved', status: 'True' }] } }), undefined);
  assert.deepEqual(decisionOf({ status: { certificate: cert } }), {
    kind: 'issued',
    certificatePem: '-----BEGIN CERTIFICATE-----\n',
  });
  assert.deepEqual(
    decisionOf({ status: { certificate: cert, conditions: [{ type: 'Denied', status: 'True', reason: 'R' }] } }),
    { kind: 'denied', reason: 'R', message: '' },
  );
  assert.equal(decisionOf({ status: { conditions: [{ type: 'Failed', status: 'False' }] } }), undefined);
  const body = csrBody({ name: 'n', requestPem: 'PEM', signerName: 's', usages: ['client auth'] }) as {
    metadata: { labels: Record<string, string> };
    spec: Record<string, unknown>;
  };
  assert.equal(body.metadata.labels['app.kubernetes.io/managed-by'], 'nodecred');
  assert.equal(body.spec.request, Buffer.from('PEM').toString('base64'));
  assert.equal('expirationSeconds' in body.spec, false);
  const csr = toCsr({
    metadata: { name: 'n', resourceVersion: '7' },
    spec: { signerName: 's', request: body.spec.request as string },
  });
  assert.deepEqual(csr, { name: 'n', resourceVersion: '7', signerName: 's', requestPem: 'PEM', decision: undefined });
});
