import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../../src/approver/queue.ts';

test('a name is queued once, in order', async () => {
  const q = new WorkQueue();
  const signal = new AbortController().signal;
  for (const n of ['a', 'b', 'a', 'c', 'b']) q.add(n);
  assert.equal(q.length, 3);
  const got = [await q.get(signal), await q.get(signal), await q.get(signal)];
  assert.deepEqual(got, ['a', 'b', 'c']);
});

test('a name added while it is processed is processed again afterwards, never concurrently', async () => {
  const q = new WorkQueue();
  const signal = new AbortController().signal;
  q.add('a');
  assert.equal(await q.get(signal), 'a');
  q.add('a');
  assert.equal(q.length, 0, 'not handed to a second worker while the first holds it');
  q.done('a');
  assert.equal(q.length, 1);
  assert.equal(await q.get(signal), 'a');
  q.done('a');
  assert.equal(q.length, 0);
});

test('get waits for work, and returns undefined once aborted', async () => {
  const q = new WorkQueue();
  const stop = new AbortController();
  const waiting = q.get(stop.signal);
  setTimeout(() => q.add('late'), 5);
  assert.equal(await waiting, 'late');
  const idle = q.get(stop.signal);
  stop.abort();
  assert.equal(await idle, undefined);
});
