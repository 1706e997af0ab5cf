// SIGHUP (src/config/reload.ts): a reloaded configuration applies, except the settings only a restart can
// change, which keep their running values and are named. The end-to-end SIGHUP cases (a broken config
// keeps the old one, systemd's RELOADING=1) are in test/integration/operations.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reloadedConfig } from '../../../src/config/reload.ts';
import { mergeConfig } from '../../../src/config/schema.ts';

const running = mergeConfig({ nodeName: 'node-1', certDir: '/var/lib/kubelet/pki', logLevel: 'info' });

test('a reload applies the new settings and keeps every restart-only one, naming those asked to change', () => {
  const next = mergeConfig({
    nodeName: 'node-1',
    certDir: '/elsewhere/pki',
    kubeconfig: '/elsewhere/kubeconfig',
    healthListen: '127.0.0.1:1',
    secureListen: '127.0.0.1:2',
    clientCAFile: '/elsewhere/ca.crt',
    logLevel: 'debug',
    recheckIntervalMs: 60_000,
    rotationWindow: { from: 0.5, to: 0.6 },
  });
  const { config, keptUntilRestart } = reloadedConfig(running, next);
  assert.deepEqual(keptUntilRestart.sort(), ['certDir', 'clientCAFile', 'healthListen', 'kubeconfig', 'secureListen']);
  for (const field of keptUntilRestart) assert.equal(config[field as keyof typeof config], running[field as never]);
  assert.equal(config.logLevel, 'debug');
  assert.equal(config.recheckIntervalMs, 60_000);
  assert.deepEqual(config.rotationWindow, { from: 0.5, to: 0.6 });
  assert.equal(running.logLevel, 'info', 'the running configuration object is not modified');
});

test('a reload that changes nothing restart-only names nothing', () => {
  const next = mergeConfig({ nodeName: 'node-1', certDir: '/var/lib/kubelet/pki', logLevel: 'warn' });
  const { config, keptUntilRestart } = reloadedConfig(running, next);
  assert.deepEqual(keptUntilRestart, []);
  assert.deepEqual(config, next);
});

// The kubelet takes its node name at start. A reload that changed it (nodeName left to the default, the host
// renamed since, and `systemctl reload` for a log level) made nodecred bootstrap a client certificate for the
// new name into kubelet-client-current.pem: the running kubelet then spoke as another node, and NodeRestriction
// refused it its own Node.
test('the node name changes only on restart', () => {
  const next = mergeConfig({ nodeName: 'renamed-host', certDir: '/var/lib/kubelet/pki', logLevel: 'debug' });
  const { config, keptUntilRestart } = reloadedConfig(running, next);
  assert.deepEqual(keptUntilRestart, ['nodeName']);
  assert.equal(config.nodeName, 'node-1');
  assert.equal(config.logLevel, 'debug');
});
