// Crash-test driver: performs CertStore.install's writes (pair file by temp+fsync+rename, then the
// -current.pem symlink swapped by rename) and the node kubeconfig's atomic rewrite, in a tight loop, until
// it is killed. It imports only the crash-safety primitives (src/store/atomic.ts) so that each of the 200
// processes starts in milliseconds; prints "ready" once loaded, so the killer's random delay lands inside
// the loop.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, replaceSymlink } from '../../src/store/atomic.ts';

const [certDir, kubeconfig, pairA, pairB] = process.argv.slice(2) as [string, string, string, string];
const pairs = [pairA, pairB].map((f) => readFileSync(f, 'utf8'));
const kubeconfigText = readFileSync(kubeconfig, 'utf8').replace(/^(# .*\n)+/, '');
process.stdout.write('ready\n');
for (let i = 0; ; i++) {
  const name = `kubelet-client-2030-01-01-00-00-${String(i % 60).padStart(2, '0')}.pem`;
  await writeFileAtomic(join(certDir, name), pairs[i % 2]!, 0o600);
  await replaceSymlink(name, join(certDir, 'kubelet-client-current.pem'));
  await writeFileAtomic(kubeconfig, `# install ${i}\n${kubeconfigText}`, 0o600);
}
