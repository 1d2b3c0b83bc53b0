// Sizing: a dynamic pool grows under load and shrinks when idle; an ondemand pool starts no worker before the first connection and stops idle ones.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { APP, TIMEOUT, eventually, request, sleep, startLoad, startMaster, statusJson, tempDir } from './fixtures/pool-harness.js';

test('dynamic: workers are added while spare capacity is short, and stopped when it is in excess', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'dynamic.sock')}`;
  const master = startMaster(t, [
    APP,
    '--listen',
    address,
    '--pm',
    'dynamic',
    '--workers',
    '4',
    '--start-workers',
    '1',
    '--min-spare-workers',
    '1',
    '--max-spare-workers',
    '2',
    '--worker-concurrency',
    '2',
    '--status-path',
    '/status',
  ]);
  await master.waitForWorkers(1);
  await master.waitFor(/with a dynamic pool of 1 to 4 workers \(spare capacity 1-2\)/);
  await sleep(1500);
  assert.equal(master.workers().length, 1, 'one idle worker is spare capacity enough');

  // Six requests in progress at all times, for a concurrency target of 2: the pool must grow.
  const load = startLoad(t, address, { connections: 6, keepConn: false, uri: '/slow?ms=200' });
  await eventually(() => master.workers().length >= 3, 'the pool to grow to three workers or more');
  const status = await statusJson(address);
  assert.ok((status['total processes'] as number) >= 3, 'the status page counts them');
  const result = await load.stop();
  assert.equal(result.failed, 0, JSON.stringify(result.failures.slice(0, 5)));
  const peak = master.workers().length;

  // Idle now: spare capacity is one worker each, above the maximum of 2; one worker a second is stopped.
  await eventually(() => master.workers().length === 2, 'the pool to shrink to two idle workers', 30_000);
  assert.match(master.stderr, /draining: spare capacity [\d.]+ is above --max-spare-workers \(2\)/);
  await sleep(2500);
  assert.equal(master.workers().length, 2, `it stays at two (from a peak of ${peak})`);
  assert.match((await request(address, '/')).body, /^v1 /);
});

test('ondemand: no worker until the first connection; more under load; none again after the idle timeout', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'ondemand.sock')}`;
  const master = startMaster(t, [
    APP,
    '--listen',
    address,
    '--pm',
    'ondemand',
    '--workers',
    '3',
    '--worker-idle-timeout',
    '1s',
    '--worker-concurrency',
    '1',
  ]);
  await master.waitFor(/with an ondemand pool of up to 3 workers \(none until the first connection\)/);
  await sleep(1000);
  assert.doesNotMatch(master.stderr, /worker \d+ starting/, 'no worker before a connection');

  const first = await request(address, '/first');
  assert.match(first.body, /^v1 \d+ GET \/first$/, 'the first connection waited for a worker and was served');
  assert.equal(master.workers().length, 1);

  // Three at a time, each worker meant to carry one: more workers are started.
  const replies = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => request(address, `/slow?ms=1500&n=${n}`)));
  assert.ok(replies.every((reply) => reply.status === 200), 'all served');
  assert.ok(master.everReady().length >= 2, `more workers started under load: ${master.everReady().length}`);

  await eventually(() => master.workers().length === 0, 'every worker to stop after the idle timeout', 30_000);
  assert.match(master.stderr, /draining: idle for [\d.]+ s \(--worker-idle-timeout\)/);
  const again = await request(address, '/again');
  assert.match(again.body, /^v1 \d+ GET \/again$/, 'a connection after that starts a worker again');
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});
