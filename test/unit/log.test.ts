// The log line layout journald and log shippers see (pino's: level label, ISO time, bindings, fields, msg),
// levels, and redaction of fields that could carry secrets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { createLogger } from '../../src/log.ts';

function capture(level: 'debug' | 'info' | 'warn' | 'error' = 'info') {
  const lines: string[] = [];
  const log = createLogger(level, { write: (l: string) => lines.push(l) });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('a line is one JSON object: level label, ISO time, component, child bindings, fields, msg, in that order', () => {
  const { log, lines, parsed } = capture();
  log.child({ identity: 'approver-1' }).info({ csr: 'csr-abc', attempt: 2 }, 'approved CSR');
  log.warn('no fields');
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')));
  const [first, second] = parsed();
  assert.deepEqual(Object.keys(first!), ['level', 'time', 'component', 'identity', 'csr', 'attempt', 'msg']);
  assert.equal(first!.level, 'info');
  assert.equal(first!.component, 'nodecred');
  assert.equal(first!.msg, 'approved CSR');
  assert.equal(new Date(first!.time as string).toISOString(), first!.time);
  assert.deepEqual(second, { level: 'warn', time: second!.time, component: 'nodecred', msg: 'no fields' });
});

test('levels: lines below the level are not written; a new level holds from the next line; children inherit', () => {
  const { log, parsed } = capture('warn');
  log.debug('d1');
  log.info('i1');
  log.warn('w1');
  log.error('e1');
  log.level = 'debug';
  const child = log.child({ part: 'x' });
  log.debug('d2');
  child.debug('d3');
  assert.equal(child.level, 'debug');
  // A reload sets the root's level: children made before it follow (the approver logs through a child).
  log.level = 'error';
  child.warn('w2');
  child.error('e2');
  assert.equal(child.level, 'error');
  assert.deepEqual(
    parsed().map((l) => l.msg),
    ['w1', 'e1', 'd2', 'd3', 'e2'],
  );
});

test('redaction compares names without case, dashes or underscores: Authorization, client-key-data, password', () => {
  const { log, lines } = capture();
  log.info(
    { headers: { Authorization: 'Bearer s1' }, 'client-key-data': 's2', token_secret: 's3', password: 's4' },
    'm',
  );
  for (const secret of ['s1', 's2', 's3', 's4']) assert.ok(!lines[0]!.includes(`"${secret}`), secret);
});

test('redaction: secret-named fields are censored at any depth; bigints, errors and cycles do not break a line', () => {
  const { log, lines, parsed } = capture();
  const cyclic: Record<string, unknown> = { name: 'loop' };
  cyclic.self = cyclic;
  log.info(
    {
      token: 'abcdef.0123456789abcdef',
      request: { headers: { authorization: 'Bearer abcdef.0123456789abcdef' }, keyPem: '-----BEGIN EC PRIVATE' },
      nested: [{ tokenSecret: 's3cr3t' }],
      serial: 2n ** 70n,
      err: new TypeError('bad thing'),
      key: null,
    },
    'with secrets',
  );
  log.info({ cyclic }, 'cycle');
  const joined = lines.join('');
  for (const secret of ['abcdef.0123456789abcdef', 'BEGIN EC PRIVATE', 's3cr3t']) assert.ok(!joined.includes(secret));
  const [first, second] = parsed();
  assert.equal(first!.token, '[redacted]');
  assert.deepEqual(first!.request, { headers: { authorization: '[redacted]' }, keyPem: '[redacted]' });
  assert.deepEqual(first!.nested, [{ tokenSecret: '[redacted]' }]);
  assert.equal(first!.serial, (2n ** 70n).toString());
  assert.deepEqual(first!.err, { type: 'TypeError', message: 'bad thing' });
  assert.equal(first!.key, null, 'an absent secret stays visibly absent');
  assert.equal(second!.msg, 'cycle');
  assert.equal(second!.logError, 'fields could not be serialised');
});

test('the default destination writes to fd 1 synchronously: every line is out before the process is killed', () => {
  // SIGKILL straight after logging, as the systemd watchdog's SIGABRT would end it: nothing may be buffered.
  const script = [
    `const { createLogger } = await import(${JSON.stringify(resolve(import.meta.dirname, '../../src/log.ts'))});`,
    'const log = createLogger("info");',
    'for (let i = 0; i < 2000; i++) log.info({ i }, "line");',
    'process.kill(process.pid, "SIGKILL");',
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL');
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 2000);
  assert.equal((JSON.parse(lines.at(-1)!) as { i: number }).i, 1999);
});

test('a line cut short by a full pipe (non-blocking stdout, nobody reading) does not swallow the next', async () => {
  // Node makes a pipe on fd 1 non-blocking once anything touches process.stdout; a reader that stalls past
  // the destination's one-second wait leaves a line half written. The next line must still be a line of its own.
  const script = [
    `const { createLogger } = await import(${JSON.stringify(resolve(import.meta.dirname, '../../src/log.ts'))});`,
    'process.stdout;',
    'const log = createLogger("info");',
    'log.info({ pad: "x".repeat(1 << 20) }, "first");',
    'process.stderr.write("gave up\\n");',
    'await new Promise((resolve) => process.stdin.once("data", resolve));',
    'log.info("second");',
    'process.exit(0);',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'pipe' });
  // Not reading stdout until the child says the first line was given up (a condition, not a delay).
  child.stdout.pause();
  await new Promise<void>((resolve) => child.stderr.once('data', () => resolve()));
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => {
    chunks.push(c);
    if (chunks.length === 1) child.stdin.end('go\n');
  });
  child.stdout.resume();
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0);
  const lines = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
  assert.ok(lines[0]!.startsWith('{"level":"info"'), 'the first line was cut short, not lost whole');
  assert.deepEqual(JSON.parse(lines.at(-1)!), {
    level: 'info',
    time: (JSON.parse(lines.at(-1)!) as { time: string }).time,
    component: 'nodecred',
    msg: 'second',
  });
});
