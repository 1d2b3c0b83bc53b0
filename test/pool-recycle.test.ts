// Recycling: a worker is replaced after --worker-max-requests requests or above --worker-max-memory, and not one request fails.

import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { APP, TIMEOUT, eventually, request, startLoad, startMaster, tempDir } from './fixtures/pool-harness.js';

test('--worker-max-requests replaces workers under load with zero failed requests', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'recycle.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '2', '--worker-max-requests', '25']);
  const first = await master.waitForWorkers(2);
  const kept = startLoad(t, address, { connections: 3, keepConn: true });
  const fresh = startLoad(t, address, { connections: 3, keepConn: false });
  await eventually(() => master.everReady().length >= 6, 'at least four replacements');
  const keptResult = await kept.stop();
  const freshResult = await fresh.stop();
  assert.equal(keptResult.failed, 0, `kept connections: ${JSON.stringify(keptResult.failures.slice(0, 5))}`);
  assert.equal(freshResult.failed, 0, `new connections: ${JSON.stringify(freshResult.failures.slice(0, 5))}`);
  for (const pid of first) {
    assert.match(master.stderr, new RegExp(`recycling worker ${pid} \\(slot \\d\\): served \\d+ requests \\(--worker-max-requests 25\\)`));
    assert.match(master.stderr, new RegExp(`worker ${pid} \\(slot \\d\\) exited \\(code 0\\)`), `worker ${pid} drained and exited by itself`);
  }
  const pids = new Set([...keptResult.bodies, ...freshResult.bodies].map((body) => body.split(' ')[1]));
  assert.ok(pids.size >= 4, `answers came from the replacements too: ${[...pids].join(', ')}`);
  assert.doesNotMatch(master.stderr, /exited unexpectedly|killing it/, 'no worker crashed or had to be killed');
});

test('--worker-max-memory replaces a worker whose memory grew, with zero failed requests', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'memory.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '1', '--worker-max-memory', '200M']);
  const [worker] = await master.waitForWorkers(1);
  const load = startLoad(t, address, { connections: 2, keepConn: true });
  await eventually(() => load.ok > 20, 'load to flow');
  assert.match((await request(address, '/grow?mb=256')).body, new RegExp(`^v1 ${worker} `));
  await master.waitFor(new RegExp(`recycling worker ${worker} \\(slot 0\\): resident memory \\d+ MiB is above --worker-max-memory \\(200 MiB\\)`));
  await master.waitFor(new RegExp(`worker ${worker} \\(slot 0\\) exited \\(code 0\\)`));
  const after = load.ok;
  await eventually(() => load.ok > after + 20, 'load to go on');
  const result = await load.stop();
  assert.equal(result.failed, 0, JSON.stringify(result.failures.slice(0, 5)));
  assert.notEqual(master.workers()[0], worker, 'a new worker serves');
});

test('a recycle whose replacement fails to start: the old worker serves on, and the master tries again until one starts (regression)', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const address = `unix:${join(dir, 'retry.sock')}`;
  const marker = join(dir, 'fail-on-start');
  const master = startMaster(t, ['test/fixtures/pool-crash-on-start.mjs', '--listen', address, '--workers', '1', '--worker-max-requests', '3'], {
    env: { POOL_FIXTURE_CRASH_MARKER: marker },
  });
  const [worker] = await master.waitForWorkers(1);
  writeFileSync(marker, '');
  for (let i = 0; i < 3; i++) assert.equal((await request(address, '/')).body, `ok ${worker}`);
  await master.waitFor(new RegExp(`the replacement of worker ${worker} \\(slot 0\\) failed: .*the old worker goes on`));
  await master.waitFor(new RegExp(`worker ${worker} \\(slot 0\\): recycling again in 5\\.00 s`));
  assert.equal((await request(address, '/')).body, `ok ${worker}`, 'the old worker still serves');
  rmSync(marker);
  await master.waitFor(new RegExp(`worker ${worker} \\(slot 0\\) exited \\(code 0\\)`), { timeout: 20_000 });
  const answer = await request(address, '/');
  assert.match(answer.body, /^ok \d+$/);
  assert.notEqual(answer.body, `ok ${worker}`, 'a new worker serves once a retry could start one');
});
