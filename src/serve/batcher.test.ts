import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Batcher } from './batcher.js';
import { DeadlineError } from './errors.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const busyWait = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

test('a deadline that passes while the batch runs answers 504 then; the others get their rows', async () => {
  const b = new Batcher<number, number>(
    'm',
    { batching: true, maxBatch: 8, maxDelayMs: 5, maxQueue: 16 },
    async (xs) => {
      await sleep(300); // an asynchronous run: the short deadline fires during it
      return xs.map((x) => x * 2);
    },
  );
  const t0 = performance.now();
  const short = b.submit(1, 1, 'k', 100);
  const long = b.submit(2, 1, 'k', 5000);
  const shortAt = short.then(
    () => assert.fail('the short request was answered after its deadline'),
    (e: unknown) => {
      assert.ok(e instanceof DeadlineError, String(e));
      assert.match((e as Error).message, /while its batch ran/);
      return performance.now() - t0;
    },
  );
  assert.equal(await long, 4);
  const at = await shortAt;
  assert.ok(at >= 95 && at < 280, `the 504 came at ${at.toFixed(0)} ms, not at the deadline (100 ms)`);
  await b.close();
});

test('a run that holds the thread past a deadline: that request gets 504 when the run returns, not a late answer', async () => {
  const b = new Batcher<number, number>(
    'm',
    { batching: true, maxBatch: 8, maxDelayMs: 1, maxQueue: 16 },
    async (xs) => {
      busyWait(150); // as ORT's synchronous run does
      return xs.map((x) => x + 1);
    },
  );
  const results = await Promise.allSettled([b.submit(1, 1, 'k', 60), b.submit(2, 1, 'k', 5000)]);
  assert.equal(results[0]!.status, 'rejected');
  assert.ok((results[0] as PromiseRejectedResult).reason instanceof DeadlineError, 'a DeadlineError');
  assert.deepEqual(results[1], { status: 'fulfilled', value: 3 });
  await b.close();
});
