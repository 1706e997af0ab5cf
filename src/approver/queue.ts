// A work queue of CSR names, as client-go's workqueue: a name is queued at most once, never processed by
// two workers at a time, and a name added while it is being processed is processed again afterwards.
export class WorkQueue {
  private readonly items: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly waiters: Array<() => void> = [];

  get length(): number {
    return this.items.length;
  }

  add(name: string): void {
    if (this.active.has(name)) {
      this.dirty.add(name);
      return;
    }
    if (this.queued.has(name)) return;
    this.queued.add(name);
    this.items.push(name);
    this.waiters.shift()?.();
  }

  /** The next name to process, or undefined once `signal` aborts. Call done(name) when finished. */
  async get(signal: AbortSignal): Promise<string | undefined> {
    while (!signal.aborted) {
      const name = this.items.shift();
      if (name !== undefined) {
        this.queued.delete(name);
        this.active.add(name);
        return name;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener('abort', wake);
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        };
        this.waiters.push(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
    return undefined;
  }

  done(name: string): void {
    this.active.delete(name);
    if (this.dirty.delete(name)) this.add(name);
  }
}
