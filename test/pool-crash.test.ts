// Crashes: kill -9 under load fails only the killed worker's requests and its replacement starts at once; back-off on repeated crashes; the emergency restart.

import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { APP, TIMEOUT, eventually, loggedAt, request, startLoad, startMaster, statusJson, tempDir } from './fixtures/pool-harness.js';

test('kill -9 of a worker under load: only its requests in progress fail, and a replacement starts at once', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'kill.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '2', '--status-path', '/status']);
  await master.waitForWorkers(2);
  // A new connection per request, so no request is retried by the client: a failure shows.
  const load = startLoad(t, address, { connections: 6, keepConn: false, uri: '/slow?ms=300' });
  await eventually(() => load.ok > 12, 'load to flow');

  // A long request, and the worker serving it is the one to die: it is surely in progress there.
  const from = master.stderr.length;
  const long = request(address, '/slow?ms=20000').then(
    () => null,
    (error: unknown) => error as Error & { code?: string },
  );
  const [, victimText] = (await master.waitFor(/nodefpm\[(\d+)\] stderr: slow request started: \/slow\?ms=20000/, { from })) as RegExpMatchArray;
  const victim = Number(victimText);
  const survivor = master.workers().find((pid) => pid !== victim)!;
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const longError = await long;
  assert.equal(longError?.code, 'NODEFPM_CLIENT_CLOSED', 'the request in progress on the killed worker failed: its connection closed');
  await master.waitFor(new RegExp(`worker ${victim} \\(slot (\\d)\\) exited unexpectedly with signal SIGKILL code=NODEFPM_WORKER_CRASHED`));
  await master.waitForWorkers(2);
  const after = load.ok;
  await eventually(() => load.ok > after + 12, 'load to go on after the kill');
  const result = await load.stop();

  assert.ok(result.failed <= 6, `at most one request per load connection was in progress: ${JSON.stringify(result.failures)}`);
  for (const failure of result.failures) {
    assert.match(failure.error, /NODEFPM_CLIENT_CLOSED/, 'they failed because their connection closed');
    assert.ok(failure.start <= killedAt + 100 && failure.end >= killedAt, `it was in progress at the kill: ${JSON.stringify(failure)} (kill at ${killedAt})`);
  }
  // The master reacted at once: its own log times, not the machine's speed.
  const exitLine = new RegExp(`worker ${victim} \\(slot \\d\\) exited unexpectedly`);
  const slot = new RegExp(`worker ${victim} \\(slot (\\d)\\)`).exec(master.stderr)![1];
  const exitedAt = loggedAt(master.stderr, exitLine)!;
  const restartedAt = loggedAt(master.stderr.slice(master.stderr.search(exitLine)), new RegExp(`worker \\d+ starting \\(slot ${slot}, generation 0\\)`))!;
  assert.ok(restartedAt - exitedAt < 1000, `the replacement was started ${restartedAt - exitedAt} ms after the crash`);
  assert.doesNotMatch(master.stderr, /restarting it in/, 'a first crash has no back-off');

  const status = await statusJson(address);
  const replaced = status.processes.find((p) => p.slot === Number(slot))!;
  assert.equal(replaced.restarts, 1, 'the slot counts its restart');
  assert.notEqual(replaced.pid, victim);
  assert.ok(status.processes.some((p) => p.pid === survivor && p.restarts === 0), 'the other worker was untouched');
});

test('a worker that keeps crashing is restarted with growing back-off, and recovers', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const marker = join(dir, 'crash-marker');
  const address = `unix:${join(dir, 'backoff.sock')}`;
  const master = startMaster(t, ['test/fixtures/pool-crash-on-start.mjs', '--listen', address, '--workers', '1'], {
    env: { POOL_FIXTURE_CRASH_MARKER: marker },
  });
  await master.waitForWorkers(1);
  writeFileSync(marker, 'crash');
  await request(address, '/crash').catch(() => undefined);
  await master.waitFor(/slot 0: crash number 4 in a row; restarting it in 0\.40 s/);
  const delays = [...master.stderr.matchAll(/crash number (\d+) in a row; restarting it in ([\d.]+) s/g)].map((match) => [Number(match[1]), Number(match[2])]);
  assert.deepEqual(delays.slice(0, 3), [
    [2, 0.1],
    [3, 0.2],
    [4, 0.4],
  ]);
  assert.match(master.stderr, /failed to start: .*pool-crash-on-start: this worker fails on purpose/);
  rmSync(marker);
  await eventually(async () => {
    try {
      return /^ok \d+$/.test((await request(address, '/')).body);
    } catch {
      return false;
    }
  }, 'the slot to recover once the cause is gone');
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});

test('--emergency-restart-threshold: that many crashes within the interval restart the whole pool', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'emergency.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '3', '--emergency-restart-threshold', '3', '--emergency-restart-interval', '1m']);
  const first = await master.waitForWorkers(3);
  for (let crash = 1; crash <= 3; crash++) {
    const from = master.stderr.length;
    await request(address, '/crash').catch(() => undefined);
    await master.waitFor(/exited unexpectedly with code 1 code=NODEFPM_WORKER_CRASHED/, { from });
    if (crash < 3) await master.waitForWorkers(3);
  }
  await master.waitFor(/3 workers crashed within 60\.0 s .*restarting the whole pool code=NODEFPM_EMERGENCY_RESTART/);
  await master.waitFor(/emergency restart: generation 1 serving/);
  await eventually(() => master.workers().length === 3 && master.workers().every((pid) => !first.includes(pid)), 'three workers of the new generation');
  assert.match((await request(address, '/')).body, /^v1 \d+ GET \/$/);
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});
