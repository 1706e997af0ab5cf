// scripts/local-cluster up|down|status --dir DIR: a real control plane on loopback (see lib/local-cluster.ts),
// and `kubelet`/`stop-kubelet`: a real kubelet for one node against it (lib/kubelet.ts).
import { runMain } from '../src/cli/exit.ts';
import { parseArgs } from 'node:util';
import { up, down, status, readState } from './lib/local-cluster.ts';
import { startKubelet, stopKubelet } from './lib/kubelet.ts';

const USAGE = `usage: scripts/local-cluster <up|down|status|kubelet|stop-kubelet> --dir DIR [options]

  up       build (first time, cached) and start etcd, kube-apiserver and kube-controller-manager on loopback;
           writes DIR/admin.kubeconfig, DIR/ca.crt, DIR/env and logs in DIR/logs
  down     stop every process started by 'up' or 'kubelet' in DIR
  status   show each component's process and health

options (up):
  --signing-duration D   kube-controller-manager --cluster-signing-duration (default 8760h)
  --audit                write an apiserver audit log to DIR/logs/audit.log
  --controllers LIST     kube-controller-manager --controllers (default *,bootstrapsigner,tokencleaner)

  kubelet --node-name N --kubeconfig K --cert-dir D [--bootstrap-kubeconfig B] [--node-ip IP]
           start a real kubelet (and a fake CRI runtime) for node N on the credentials nodecred keeps in
           K and D, with the KubeletConfiguration of docs/kubelet-config.yaml; prints its ports
  stop-kubelet --node-name N
           stop that kubelet and its runtime, and unmount its root dir
`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      'signing-duration': { type: 'string' },
      audit: { type: 'boolean', default: false },
      controllers: { type: 'string' },
      'node-name': { type: 'string' },
      kubeconfig: { type: 'string' },
      'cert-dir': { type: 'string' },
      'bootstrap-kubeconfig': { type: 'string' },
      'node-ip': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const command = positionals[0];
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const commands = ['up', 'down', 'status', 'kubelet', 'stop-kubelet'];
  if (!command || !commands.includes(command) || positionals.length > 1 || !values.dir) {
    process.stderr.write(
      `local-cluster: ` +
        `${!values.dir ? '--dir DIR is required' : `unknown command '${positionals.join(' ')}'`}\n${USAGE}`,
    );
    return 2;
  }
  const dir = values.dir;
  switch (command) {
    case 'up': {
      const state = await up({
        dir,
        audit: values.audit,
        ...(values.controllers ? { controllers: values.controllers } : {}),
        ...(values['signing-duration'] ? { signingDuration: values['signing-duration'] } : {}),
        log: (line) => process.stderr.write(`local-cluster: ${line}\n`),
      });
      process.stdout.write(`APISERVER=${state.apiserver}\nKUBECONFIG=${state.kubeconfig}\nKUBECTL=${state.kubectl}\n`);
      return 0;
    }
    case 'kubelet': {
      const missing = (['node-name', 'kubeconfig', 'cert-dir'] as const).filter((f) => !values[f]);
      if (missing.length) {
        process.stderr.write(`local-cluster: kubelet needs ${missing.map((f) => `--${f}`).join(', ')}\n${USAGE}`);
        return 2;
      }
      const k = await startKubelet({
        dir,
        nodeName: values['node-name']!,
        kubeconfig: values.kubeconfig!,
        certDir: values['cert-dir']!,
        ...(values['bootstrap-kubeconfig'] ? { bootstrapKubeconfig: values['bootstrap-kubeconfig'] } : {}),
        ...(values['node-ip'] ? { nodeIp: values['node-ip'] } : {}),
        log: (line) => process.stderr.write(`local-cluster: ${line}\n`),
      });
      process.stdout.write(
        `KUBELET_ADDRESS=${k.nodeIp}\nKUBELET_PORT=${k.port}\n` +
          `KUBELET_HEALTHZ_PORT=${k.healthzPort}\nKUBELET_LOG=${k.logFile}\n`,
      );
      return 0;
    }
    case 'stop-kubelet': {
      if (!values['node-name']) {
        process.stderr.write(`local-cluster: stop-kubelet needs --node-name\n${USAGE}`);
        return 2;
      }
      const stopped = await stopKubelet(dir, values['node-name']);
      process.stderr.write(`local-cluster: ${stopped ? 'stopped' : 'no'} kubelet for ${values['node-name']}\n`);
      return 0;
    }
    case 'down': {
      const pids = await down(dir);
      process.stderr.write(
        pids.length ? `local-cluster: stopped ${pids.join(', ')}\n` : `local-cluster: nothing running in ${dir}\n`,
      );
      return 0;
    }
    default: {
      const rows = await status(dir);
      if (!rows) {
        process.stdout.write(`no control plane in ${dir}\n`);
        return 1;
      }
      const state = readState(dir);
      process.stdout.write(`apiserver ${state?.apiserver}  kubeconfig ${state?.kubeconfig}\n`);
      for (const r of rows) {
        process.stdout.write(
          `${r.component.padEnd(24)} pid ${String(r.pid).padEnd(8)} ` +
            `${r.healthy ? 'healthy' : r.alive ? 'UNHEALTHY' : 'STOPPED'}  ${r.detail}\n`,
        );
      }
      return rows.every((r) => r.healthy) ? 0 : 1;
    }
  }
}

runMain('local-cluster', main, { exit: true });
