// Reading the API server's names from its serving certificates (src/approver/api-server-certs.ts): a real
// TLS handshake on loopback with throwaway CAs. The chain must verify; the names are what the certificate
// holds; an address that fails keeps what it showed before; nothing is decided before one certificate is read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:tls';
import {
  ApiServerCertificates,
  readServingNames,
  type ServingEndpoint,
} from '../../../src/approver/api-server-certs.ts';
import { createLogger } from '../../../src/log.ts';
import { makeCa, serveCertificate, type TestCa } from '../pki/helpers.ts';

async function tlsServer(
  ca: TestCa,
  dnsNames: string[],
  ipAddresses: string[],
): Promise<{ server: Server; endpoint: ServingEndpoint }> {
  const { server, port } = await serveCertificate(ca, '127.0.0.1', dnsNames, ipAddresses);
  return { server, endpoint: { host: '127.0.0.1', port } };
}

const close = (s: Server) => new Promise((r) => s.close(r));

test('readServingNames: the SANs of a CA-chained certificate, dialled by an address it does not name', async () => {
  const ca = await makeCa('cluster-ca');
  const { server, endpoint } = await tlsServer(ca, ['kubernetes', 'K8s-API.example.com'], ['10.96.0.1', '2001:DB8::1']);
  try {
    assert.deepEqual(await readServingNames(endpoint, ca.certificatePem), {
      dnsNames: ['kubernetes', 'k8s-api.example.com'],
      ips: ['10.96.0.1', '2001:db8::1'],
    });
    // Another CA's certificate teaches nothing: its names are not the cluster's.
    const other = await makeCa('other-ca');
    await assert.rejects(readServingNames(endpoint, other.certificatePem), /certificate|self[- ]signed|issuer/i);
  } finally {
    await close(server);
  }
});

test('ApiServerCertificates: ready after one read; a failing address keeps its names, a removed one not', async () => {
  const ca = await makeCa('cluster-ca');
  const a = await tlsServer(ca, ['api-a.example'], ['10.0.0.1']);
  const b = await tlsServer(ca, ['api-b.example'], ['10.0.0.2']);
  const lines: string[] = [];
  const log = createLogger('info', { write: (l: string) => lines.push(l) });
  const certs = new ApiServerCertificates({ log, trustedCa: async () => ca.certificatePem });
  let ready = false;
  void certs.ready.then(() => (ready = true));
  try {
    const dead = { host: '127.0.0.1', port: 1 };
    certs.setEndpoints([dead]);
    await certs.refresh(true);
    await new Promise((r) => setImmediate(r));
    assert.equal(ready, false, 'nothing read: nothing may be decided');
    assert.match(
      lines.join(''),
      /"endpoint":"127\.0\.0\.1:1","err":"connect ECONNREFUSED[^"]*","msg":"cannot read the API server's serving cert/,
    );
    assert.match(lines.join(''), /no API server certificate could be read: no CSR is decided/);

    certs.setEndpoints([dead, a.endpoint, b.endpoint]);
    assert.equal(await certs.refresh(false), true);
    await certs.ready;
    assert.deepEqual(certs.names(), { dnsNames: ['api-a.example', 'api-b.example'], ips: ['10.0.0.1', '10.0.0.2'] });

    // b stops answering: what it showed stays reserved while it is listed, and the failure is logged once.
    await close(b.server);
    assert.equal(await certs.refresh(true), false);
    await certs.refresh(true);
    assert.deepEqual(certs.names().dnsNames, ['api-a.example', 'api-b.example']);
    const keeping = lines.filter((l) => l.includes('keeping the names it showed before'));
    assert.equal(keeping.length, 1, 'one line per address and reason, not one per resync');
    // Removed from the EndpointSlices: forgotten.
    certs.setEndpoints([a.endpoint]);
    assert.deepEqual(certs.names(), { dnsNames: ['api-a.example'], ips: ['10.0.0.1'] });
  } finally {
    for (const s of [a.server, b.server]) if (s.listening) await close(s);
  }
});
