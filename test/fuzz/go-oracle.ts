// The Go oracle: `cluster csr-inspect --batch` (test/cluster/csrinspect.go), one long-lived process that
// reads CSRs as kube-apiserver and the kubelet-serving signer do and answers, per request, what Go parsed
// and what certificate the signer's own code makes of it. Requests are piped one JSON line each, so
// thousands cost one process start.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface GoNames {
  commonName: string;
  organization: string[];
  names: Array<{ type: string; value: string }>;
  dnsNames: string[];
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
}

export interface GoView extends Partial<GoNames> {
  id: string;
  parseError?: string;
  extensions?: Array<{ id: string; critical: boolean }> | null;
  publicKeyAlgorithm?: string;
  signatureValid?: boolean;
  signatureError?: string;
  kubeletServingError?: string;
  /** The certificate the signer would issue, or why it would not. */
  signed?: GoNames;
  signedError?: string;
}

export class GoOracle {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<{ resolve: (view: GoView) => void; reject: (err: Error) => void }> = [];
  private stderr = '';
  private nextId = 0;
  private exited: Error | undefined;

  private constructor(binary: string) {
    this.child = spawn(binary, ['csr-inspect', '--batch'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface(this.child.stdout).on('line', (line) => this.waiting.shift()?.resolve(JSON.parse(line) as GoView));
    this.child.on('exit', (code) => {
      this.exited = new Error(`csr-inspect exited ${code}: ${this.stderr.trim().slice(-500)}`);
      for (const w of this.waiting.splice(0)) w.reject(this.exited);
    });
  }

  /** `binary`: the test/cluster multicall binary (scripts/lib/local-cluster.ts ensureBinary). */
  static start(binary: string): GoOracle {
    return new GoOracle(binary);
  }

  /** Go's reading of each request (PEM or DER bytes), in order. */
  inspect(requests: readonly Buffer[], usages?: string[]): Promise<GoView[]> {
    if (this.exited) return Promise.reject(this.exited);
    const answers = requests.map(
      () => new Promise<GoView>((resolve, reject) => this.waiting.push({ resolve, reject })),
    );
    const lines = requests.map((r) =>
      JSON.stringify({ id: String(this.nextId++), request: r.toString('base64'), ...(usages ? { usages } : {}) }),
    );
    this.child.stdin.write(`${lines.join('\n')}\n`);
    return Promise.all(answers);
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await done;
  }
}
