// The programmatic pool (createPool), as benchmarks and embedding programs use it: start, status, reload, stop, from the TypeScript sources.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { appSetup } from '../src/cli/worker-setup.js';
import { createPool, type LogSink, type WorkerInfo } from '../src/pool/index.js';
import { formatListenAddress } from '../src/server/listen.js';
import { FIXTURES, TIMEOUT, request } from './fixtures/pool-harness.js';

function memorySink(): LogSink & { text: string } {
  return {
    text: '',
    write(line) {
      this.text += line;
    },
    reopen() {},
    flush() {},
    close() {},
  };
}

test('createPool: an app pool on TCP port 0; status(), workers, reload() and stop()', { timeout: TIMEOUT }, async (t) => {
  const log = memorySink();
  const dir = mkdtempSync(join(tmpdir(), 'nodefpm-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pool = createPool({
    listen: ['127.0.0.1:0', `unix:${join(dir, 'api.sock')}`],
    workers: 2,
    setup: appSetup({ app: join(FIXTURES, 'pool-app.mjs') }),
    statusPath: '/status',
    logSink: log,
  });
  t.after(() => pool.kill());
  const ready: WorkerInfo[] = [];
  pool.on('worker-ready', (info: WorkerInfo) => ready.push(info));
  await pool.start();
  const address = formatListenAddress(pool.addresses[0]!);
  assert.match(address, /^127\.0\.0\.1:[1-9]\d*$/, 'the real port');
  assert.equal(ready.length, 2);
  assert.deepEqual(pool.workers.map((worker) => worker.state), ['ready', 'ready']);
  assert.match((await request(address, '/x')).body, /^v1 \d+ GET \/x$/);
  assert.match((await request(`unix:${join(dir, 'api.sock')}`, '/x2')).body, /^v1 \d+ GET \/x2$/, 'every worker accepts on every listener');

  const status = await pool.status();
  assert.equal(status.processManager, 'static');
  assert.equal(status.totalProcesses, 2);
  assert.equal(status.requests, 2);
  assert.deepEqual(status.workers.map((worker) => worker.pid).sort(), pool.workers.map((worker) => worker.pid).sort());
  assert.equal(status.listenQueue, 0, 'read from /proc/net/tcp and ss');

  const before = pool.workers.map((worker) => worker.pid);
  await pool.reload();
  assert.equal(pool.generation, 1);
  assert.ok(pool.workers.filter((worker) => worker.state === 'ready').every((worker) => !before.includes(worker.pid)), 'new processes serve');
  assert.match((await request(address, '/y')).body, /^v1 \d+ GET \/y$/);

  await pool.stop();
  assert.equal(pool.workers.length, 0, 'every worker exited');
  await assert.rejects(request(address, '/z'), 'the socket is closed');
  assert.match(log.text, /worker \d+ ready \(slot 0, generation 0\)/);
});

test('createPool with a setup module of its own; a failing start rejects with the worker’s reason', { timeout: TIMEOUT }, async (t) => {
  const pool = createPool({
    listen: ['127.0.0.1:0'],
    workers: 1,
    setup: { module: pathToFileURL(join(FIXTURES, 'pool-setup.ts')).href, options: { greeting: 'hi' } },
    logSink: memorySink(),
  });
  t.after(() => pool.kill());
  await pool.start();
  assert.equal((await request(formatListenAddress(pool.addresses[0]!), '/q')).body, 'hi from slot 0, generation 0: /q');
  await pool.stop();

  const broken = createPool({ listen: ['127.0.0.1:0'], workers: 2, setup: appSetup({ app: join(FIXTURES, 'cli-throws.mjs') }), logSink: memorySink() });
  t.after(() => broken.kill());
  await assert.rejects(broken.start(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'NODEFPM_APP_LOAD');
    assert.match(error.message, /database URL is not configured/);
    return true;
  });
  assert.equal(broken.workers.length, 0, 'nothing is left running');
});
