// File watching: the cert dir, the node kubeconfig, the bootstrap kubeconfig and the config file. Watching
// directories, not files: kubelet-style symlink swaps replace the link, which a watch on the link misses.
// Events are debounced into one wake-up; the daemon's periodic local check is the safety net for anything
// a watcher misses (a directory deleted and re-created, an editor's rename dance).
// node:fs watch (inotify on Linux), not chokidar: one directory level is all we need, and the library cost
// every daemon ~0.5 MiB of idle RSS for it (issue 13).
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { TEMP_MARKER } from '../store/atomic.ts';

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
  let closed = false;
  const watchers = new Map<string, FSWatcher>();
  const watchDir = (dir: string) => {
    watchers.get(dir)?.close();
    watchers.delete(dir);
    if (closed) return;
    try {
      const watcher = watch(dir, { persistent: true }, (_event, name) => seen(dir, name));
      // A watched directory that disappears is not an error worth dying for; the safety net covers it.
      watcher.on('error', () => {
        watcher.close();
        if (watchers.get(dir) === watcher) watchers.delete(dir);
      });
      watchers.set(dir, watcher);
    } catch {
      // Missing for now: its parent's watch (the cert dir's) or the periodic check sees it appear.
    }
  };
  const seen = (dir: string, name: string | null) => {
    const path = name ? join(dir, name) : dir;
    // A cert dir deleted and re-created is a new inode: the old watch on it is dead, so watch it again.
    if (path === certDir && dir !== certDir) watchDir(certDir);
    if (!relevant(path)) return;
    last = path;
    clearTimeout(timer);
    timer = setTimeout(() => onChange(last), debounceMs);
  };
  for (const dir of dirs) watchDir(dir);
  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}
