// File watching: the cert dir, the node kubeconfig, the bootstrap kubeconfig and the config file. Watching
// directories, not files: kubelet-style symlink swaps replace the link, which a watch on the link misses.
// Events are debounced into one wake-up; the daemon's periodic local check is the safety net for anything
// a watcher misses (a directory deleted and re-created, an editor's rename dance).
import { basename, dirname, resolve } from 'node:path';
import { TEMP_MARKER } from '../store/atomic.ts';
import { watch, type FSWatcher } from 'chokidar';

interface WatchTargets {
  certDir: string;
  files: string[];
}

interface FileWatcher {
  close(): Promise<void>;
}

export function watchCredentials(
  targets: WatchTargets,
  onChange: (path: string) => void,
  debounceMs = 300,
): FileWatcher {
  const certDir = resolve(targets.certDir);
  const files = targets.files.map((f) => resolve(f));
  // The cert dir's parent too, so deleting and re-creating the cert dir itself is seen.
  const dirs = [...new Set([certDir, dirname(certDir), ...files.map((f) => dirname(f))])];
  // nodecred's own scratch files (temporary files of atomic writes, pending request keys) are not news.
  const ownScratch = (name: string) =>
    name.startsWith(TEMP_MARKER) || /^nodecred-(client|server)-pending\.key$/.test(name);
  const relevant = (p: string) => {
    const abs = resolve(p);
    if (ownScratch(basename(abs))) return false;
    return abs === certDir || dirname(abs) === certDir || files.includes(abs);
  };
  let timer: NodeJS.Timeout | undefined;
  let last = '';
  const watcher: FSWatcher = watch(dirs, { depth: 0, ignoreInitial: true, followSymlinks: false, atomic: false });
  watcher.on('all', (event, path) => {
    // A cert dir deleted and re-created is a new inode: the old watch on it is dead, so watch it again.
    if (event === 'addDir' && resolve(path) === certDir) watcher.add(certDir);
    if (!relevant(path)) return;
    last = path;
    clearTimeout(timer);
    timer = setTimeout(() => onChange(last), debounceMs);
  });
  // A watched directory that disappears is not an error worth dying for; the safety net covers it.
  watcher.on('error', () => {});
  return {
    close: async () => {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
