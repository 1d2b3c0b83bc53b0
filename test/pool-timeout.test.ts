// A blocked event loop: the slow log shows the JavaScript stack, and --request-timeout kills the stuck worker (its request answered 504) while the others serve.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FcgiClient } from '../src/client/index.js';
import { APP, TIMEOUT, eventually, request, startLoad, startMaster, statusJson, tempDir } from './fixtures/pool-harness.js';

test('the slow log holds the request and the stack of the function blocking the event loop', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const slowlog = join(dir, 'slow.log');
  const address = `unix:${join(dir, 'slow.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '1', '--slowlog-timeout', '300ms', '--slowlog', slowlog, '--status-path', '/status']);
  const [worker] = await master.waitForWorkers(1);
  // Blocking: the stack is the handler's.
  assert.match((await request(address, '/block?ms=1500')).body, /^v1 \d+ GET \/block\?ms=1500$/, 'a slow request still completes');
  await eventually(() => readFileSync(slowlog, 'utf8').includes('blockTheEventLoop'), 'the slow log entry');
  const entry = readFileSync(slowlog, 'utf8');
  assert.match(entry, new RegExp(`^\\[\\S+\\] \\[pool pool-app\\] pid ${worker}\\nrequest = GET /block\\?ms=1500\\nduration = [\\d.]+ s\\n`));
  assert.match(entry, /^ {4}at blockTheEventLoop \(file:\/\/\S*pool-app\.mjs:\d+:\d+\)$/m, 'the frame of the blocking function, with its file and line');
  assert.match(master.stderr, /request GET \/block\?ms=1500 is running slowly \([\d.]+ s\); logged to \S+slow\.log code=NODEFPM_SLOW_REQUEST/);

  // Waiting, not blocking: logged, with the reason there is no stack.
  await request(address, '/slow?ms=800');
  await eventually(() => readFileSync(slowlog, 'utf8').includes('request = GET /slow?ms=800'), 'the second entry');
  assert.match(readFileSync(slowlog, 'utf8'), /request = GET \/slow\?ms=800\n.*\n {4}\(no stack: the event loop was not blocked: the request was waiting/);
  const status = await statusJson(address);
  assert.equal(status['slow requests'], 2);
});

test('--request-timeout kills a worker whose event loop stays blocked: its request gets 504, the other worker serves on', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'timeout.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '2', '--request-timeout', '1s']);
  await master.waitForWorkers(2);
  const load = startLoad(t, address, { connections: 2, keepConn: true });
  await eventually(() => load.ok > 20, 'load to flow');

  // Blocks far longer than the timeout: only the kill ends it.
  const stuck = await request(address, '/block?ms=60000');
  assert.equal(stuck.status, 504, `the blocked request is answered: ${stuck.body}`);
  assert.match(stuck.body, /^504 Gateway Timeout: the nodefpm worker serving this request \(pid (\d+)\) had its event loop blocked for [\d.]+ s/);
  const pid = Number(/\(pid (\d+)\)/.exec(stuck.body)![1]);
  const killed = await master.waitFor(new RegExp(`worker ${pid} \\(slot \\d\\) killed: its event loop was blocked for [\\d.]+ s, longer than --request-timeout \\(1\\.00 s\\); requests: GET /block\\?ms=60000 \\([\\d.]+ s, answered 504\\)`));
  assert.ok(killed !== null, 'the kill is logged with the request');
  assert.match(master.stderr, /code=NODEFPM_REQUEST_TIMEOUT\n {4}at blockTheEventLoop \(/, 'with the stack of the blocking function');
  await eventually(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 'the stuck worker to be gone (and reaped)');
  await master.waitForWorkers(2);
  const after = load.ok;
  await eventually(() => load.ok > after + 20, 'load to go on');
  const result = await load.stop();
  // Kept connections to the killed worker that were idle are retried by the client; one in use there would fail.
  assert.ok(result.failed <= 2, `at most the requests the stuck worker held: ${JSON.stringify(result.failures)}`);
  assert.doesNotMatch(master.stderr, /NODEFPM_WORKER_CRASHED/, 'a timeout kill is not counted as a crash');
});

test('--request-timeout: a request whose output had begun is not answered by the watchdog; its connection is closed', { timeout: TIMEOUT }, async (t) => {
  const address = `unix:${join(tempDir(t), 'timeout-output.sock')}`;
  const master = startMaster(t, [APP, '--listen', address, '--workers', '1', '--request-timeout', '1s']);
  await master.waitForWorkers(1);
  const client = new FcgiClient({ address, keepConn: false });
  t.after(() => client.close());
  const response = await client.request({
    params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/flush-then-block?ms=60000', SCRIPT_NAME: '/flush-then-block', QUERY_STRING: 'ms=60000', SERVER_PROTOCOL: 'HTTP/1.1' },
  });
  // The head the handler flushed arrived; a 504 written after it would corrupt the stream, so none comes.
  assert.equal(response.status, 200, 'the head the handler sent');
  await assert.rejects(response.text(), /connection/i, 'the body ends with the lost connection, not with a 504 page');
  const killed = await master.waitFor(/killed: its event loop was blocked for [\d.]+ s, longer than --request-timeout \(1\.00 s\); requests: GET \/flush-then-block\?ms=60000 \([\d.]+ s, connection closed\)/);
  assert.ok(killed !== null, 'the kill is logged, the request as closed rather than answered');
  await master.waitForWorkers(1);
  const after = await request(address, '/');
  assert.equal(after.status, 200, 'the replacement worker serves');
});
