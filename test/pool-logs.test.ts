// Log files: access log lines in the Common Log Format, JSON and a php-fpm template; the workers' output stamped with their pid; SIGUSR1 reopening.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { APP, TIMEOUT, eventually, request, startMaster, tempDir } from './fixtures/pool-harness.js';

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((line) => line !== '') : [];
}

test('access log in the Common Log Format, as JSON lines, and from a php-fpm template', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const formats: Array<[string, string[]]> = [
    ['common', []],
    ['json', ['--access-format', 'json']],
    ['template', ['--access-format', '%m %r%Q%q %s pid=%p pool=%n ms=%{milliseconds}d %{HTTP_X_TRACE}e']],
  ];
  for (const [name, extra] of formats) {
    const log = join(dir, `${name}.log`);
    const address = `unix:${join(dir, `${name}.sock`)}`;
    const master = startMaster(t, [APP, '--listen', address, '--workers', '1', '--access-log', log, ...extra]);
    const [worker] = await master.waitForWorkers(1);
    const ok = await request(address, '/a?x=1');
    await request(address, '/status-code?code=404');
    await eventually(() => lines(log).length === 2, `two ${name} lines`);
    const [first, second] = lines(log) as [string, string];
    if (name === 'common') {
      assert.match(first, new RegExp(`^192\\.0\\.2\\.7 - - \\[\\d\\d/\\w{3}/\\d{4}:\\d\\d:\\d\\d:\\d\\d [+-]\\d{4}\\] "GET /a\\?x=1 HTTP/1\\.1" 200 ${Buffer.byteLength(ok.body)}$`));
      assert.match(second, /"GET \/status-code\?code=404 HTTP\/1\.1" 404 \d+$/);
    } else if (name === 'json') {
      const entry = JSON.parse(first) as Record<string, unknown>;
      assert.equal(entry.remote_addr, '192.0.2.7');
      assert.equal(entry.method, 'GET');
      assert.equal(entry.uri, '/a?x=1');
      assert.equal(entry.status, 200);
      assert.equal(entry.bytes, Buffer.byteLength(ok.body));
      assert.equal(entry.pid, worker);
      assert.equal(entry.pool, 'pool-app');
      assert.equal(typeof entry.duration_ms, 'number');
      assert.ok(!Number.isNaN(Date.parse(entry.time as string)), 'an ISO time');
      assert.equal((JSON.parse(second) as { status: number }).status, 404);
    } else {
      assert.match(first, new RegExp(`^GET /a\\?x=1 200 pid=${worker} pool=pool-app ms=\\d+\\.\\d{3} -$`));
    }
    master.signal('SIGTERM');
    assert.deepEqual(await master.exited, { code: 0, signal: null });
  }
});

test("the error log carries the workers' output with their pid; SIGUSR1 reopens the error, access and slow logs", { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const errorLog = join(dir, 'error.log');
  const accessLog = join(dir, 'access.log');
  const slowLog = join(dir, 'slow.log');
  const address = `unix:${join(dir, 'logs.sock')}`;
  const master = startMaster(t, [
    APP,
    '--listen',
    address,
    '--workers',
    '1',
    '--error-log',
    errorLog,
    '--access-log',
    accessLog,
    '--slowlog',
    slowLog,
    '--slowlog-timeout',
    '200ms',
  ]);
  await eventually(() => /worker (\d+) ready/.test(existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''), 'the worker in the error log');
  const worker = /worker (\d+) ready/.exec(readFileSync(errorLog, 'utf8'))![1];
  await request(address, '/print');
  await eventually(() => readFileSync(errorLog, 'utf8').includes('a line the app printed on stderr'), 'the app output');
  const log = readFileSync(errorLog, 'utf8');
  assert.match(log, new RegExp(`^\\S+ nodefpm\\[${worker}\\] stdout: a line the app printed on stdout$`, 'm'), 'stdout, stamped with the worker pid');
  assert.match(log, new RegExp(`^\\S+ nodefpm\\[${worker}\\] stderr: a line the app printed on stderr$`, 'm'), 'stderr, stamped with the worker pid');
  await request(address, '/slow?ms=500');
  await eventually(() => lines(accessLog).length === 2 && lines(slowLog).length > 0, 'the access and slow log lines');

  // What logrotate does: move the files away, then tell nodefpm.
  renameSync(errorLog, `${errorLog}.1`);
  renameSync(accessLog, `${accessLog}.1`);
  renameSync(slowLog, `${slowLog}.1`);
  master.signal('SIGUSR1');
  await eventually(() => existsSync(errorLog) && readFileSync(errorLog, 'utf8').includes('log files reopened'), 'a new error log');
  // The workers reopen theirs on the master's word; a request after that lands in the new file.
  await eventually(async () => {
    await request(address, '/after-rotation');
    return lines(accessLog).some((line) => line.includes('/after-rotation'));
  }, 'a new access log');
  await request(address, '/slow?ms=500');
  await eventually(() => lines(slowLog).some((line) => line.includes('request = GET /slow?ms=500')), 'a new slow log');
  await request(address, '/after-check');
  await eventually(() => lines(accessLog).some((line) => line.includes('/after-check')), 'the next line in the new access log');
  assert.ok(!lines(`${accessLog}.1`).some((line) => line.includes('/after-check')), 'the rotated access log gets nothing after the reopen');
  assert.doesNotMatch(readFileSync(`${errorLog}.1`, 'utf8'), /log files reopened/, 'the rotated error log got nothing more');
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});
