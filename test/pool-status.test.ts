// The pool's socket, status page and ping: owner/group/mode of the Unix socket, the fields in JSON, text, XML, HTML and Prometheus, and graceful stops.

import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { APP, TIMEOUT, eventually, request, startMaster, statusJson, tempDir } from './fixtures/pool-harness.js';

/** A user and group other than root's to own the socket, when the tests run as root (else our own). */
function socketOwnership(): { user: string; group: string; uid: number; gid: number } {
  const uid = process.getuid!();
  if (uid === 0) {
    const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
    const group = spawnSync('getent', ['group', 'nogroup'], { encoding: 'utf8' });
    if (nobody.status === 0 && group.status === 0) {
      return { user: 'nobody', group: 'nogroup', uid: Number(nobody.stdout.trim()), gid: Number(group.stdout.split(':')[2]) };
    }
  }
  const user = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim();
  const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  return { user, group, uid, gid: process.getgid!() };
}

test('a static pool on a Unix socket with owner, group and mode; status page in every format; ping', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'pool.sock');
  const owner = socketOwnership();
  const master = startMaster(t, [
    APP,
    '--listen',
    `unix:${socket}`,
    '--workers',
    '2',
    '--socket-owner',
    owner.user,
    '--socket-group',
    owner.group,
    '--socket-mode',
    '0640',
    '--status-path',
    '/fpm-status',
    '--ping-path',
    '/fpm-ping',
    '--ping-response',
    'still here',
    '--pool-name',
    'www',
  ]);
  const pids = await master.waitForWorkers(2);
  await master.waitFor(/serving .*pool-app\.mjs .*with a static pool of 2 workers, master pid \d+/);
  const address = `unix:${socket}`;

  const stats = statSync(socket);
  assert.equal(stats.mode & 0o777, 0o640, '--socket-mode sets the mode');
  assert.equal(stats.uid, owner.uid, '--socket-owner sets the owner');
  assert.equal(stats.gid, owner.gid, '--socket-group sets the group');

  const ping = await request(address, '/fpm-ping');
  assert.equal(ping.status, 200);
  assert.equal(ping.body, 'still here\n');
  assert.equal(ping.headers['cache-control'], 'no-cache, no-store, must-revalidate, max-age=0');

  for (let i = 0; i < 6; i++) assert.match((await request(address, `/n${i}`)).body, /^v1 \d+ GET \/n\d$/);

  // A request in progress while the status is read.
  const slow = request(address, '/slow?ms=3000');
  await master.waitFor(/slow request started: \/slow\?ms=3000/);
  const status = await statusJson(address, '/fpm-status');
  assert.equal(status.pool, 'www');
  assert.equal(status['process manager'], 'static');
  assert.equal(status['total processes'], 2);
  assert.equal(status['requests'], 7, 'six app requests and the ping finished');
  assert.equal(status['accepted conn'], 9, 'one connection per request: 6, the ping, the slow one and this one');
  assert.equal(status['active requests'], 2, 'the slow request and the status request itself');
  assert.ok((status['start since'] as number) >= 0, 'start since is a number of seconds');
  assert.equal(status['listen queue len'], 511, 'the backlog is read back from the kernel (ss)');
  assert.equal(status['listen queue'], 0);
  assert.equal(status['max children reached'], 0);
  assert.equal(status['slow requests'], 0);
  assert.deepEqual(status.processes.map((p) => p.pid).sort(), [...pids].sort(), 'every worker is listed with its pid');
  const busy = status.processes.find((p) => (p['current requests'] as Array<{ uri: string }>).some((r) => r.uri === '/slow?ms=3000'));
  assert.ok(busy !== undefined, `the slow request shows as current in one worker: ${JSON.stringify(status.processes)}`);
  const current = (busy['current requests'] as Array<{ method: string; uri: string; duration: number }>).find((r) => r.uri === '/slow?ms=3000')!;
  assert.equal(current.method, 'GET');
  assert.ok(current.duration > 0, 'the current request has a duration (µs)');
  for (const process of status.processes) {
    assert.ok(['Idle', 'Running'].includes(process.state as string), `state of ${String(process.pid)}: ${String(process.state)}`);
    assert.equal(process.restarts, 0);
    assert.ok((process['memory'] as number) > 0, 'a worker reports its memory');
  }
  const served = status.processes.reduce((sum, p) => sum + (p.requests as number), 0);
  assert.equal(served, 7, 'the workers’ request counts add up to the pool’s');

  // Text, php-fpm's layout; ?full adds each worker.
  const text = await request(address, '/fpm-status?full');
  assert.equal(text.headers['content-type'], 'text/plain; charset=utf-8');
  assert.match(text.body, /^pool:\s+www\nprocess manager:\s+static\nstart time:\s+\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\n/);
  assert.match(text.body, /\naccepted conn:\s+\d+\n/);
  assert.match(text.body, /\ntotal processes:\s+2\n/);
  for (const pid of pids) assert.match(text.body, new RegExp(`\\npid:\\s+${pid}\\n`));
  assert.match(text.body, /current request:\s+GET \/slow\?ms=3000 \(\d+ ms\)/);

  // Prometheus and OpenMetrics, by query switch and by Accept.
  const prometheus = await request(address, '/fpm-status?prometheus');
  assert.equal(prometheus.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(prometheus.body, /^# HELP nodefpm_up /m);
  assert.match(prometheus.body, /^# TYPE nodefpm_requests counter$/m);
  assert.match(prometheus.body, /^nodefpm_requests_total\{pool="www"\} \d+$/m);
  assert.match(prometheus.body, /^nodefpm_total_processes\{pool="www"\} 2$/m);
  for (const pid of pids) assert.match(prometheus.body, new RegExp(`^nodefpm_worker_requests_total\\{pool="www",pid="${pid}",slot="\\d"\\} \\d+$`, 'm'));
  const openMetrics = await request(address, '/fpm-status', { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' });
  assert.equal(openMetrics.headers['content-type'], 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  assert.match(openMetrics.body, /\n# EOF\n$/);
  const json = await request(address, '/fpm-status', { accept: 'application/json' });
  assert.equal(json.headers['content-type'], 'application/json');
  assert.equal((JSON.parse(json.body) as { processes?: unknown }).processes, undefined, 'without full, no processes (as php-fpm)');
  const xml = await request(address, '/fpm-status?xml&full');
  assert.match(xml.body, /^<\?xml version="1.0" \?>\n<status>\n<pool>www<\/pool>/);
  assert.match(xml.body, /<processes>\n<process>\n<pid>\d+<\/pid>/);
  const html = await request(address, '/fpm-status?html');
  assert.match(html.body, /<table border="1">/);
  const head = await request(address, '/fpm-status?json', { method: 'HEAD' });
  assert.equal(head.body, '', 'HEAD gets the headers only');

  assert.match((await slow).body, /^v1 \d+ GET \/slow\?ms=3000$/);
  // The status path is matched exactly: below it is the app's.
  assert.match((await request(address, '/fpm-status/more')).body, /^v1 /);

  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
  assert.throws(() => statSync(socket), 'the socket file is removed when the pool stops');
});

test('SIGTERM finishes the request in progress and refuses new connections; SIGQUIT waits with no time limit', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  for (const [signal, socketName] of [
    ['SIGTERM', 'term.sock'],
    ['SIGQUIT', 'quit.sock'],
  ] as const) {
    const socket = join(dir, socketName);
    const master = startMaster(t, [APP, '--listen', socket, '--workers', '2', '--close-timeout', signal === 'SIGQUIT' ? '100ms' : '30s']);
    const workers = await master.waitForWorkers(2);
    const slow = request(`unix:${socket}`, '/slow?ms=1500');
    await master.waitFor(/slow request started/);
    master.signal(signal);
    await master.waitFor(new RegExp(`${signal}: stopping gracefully`));
    await eventually(async () => {
      try {
        await request(`unix:${socket}`, '/late');
        return false;
      } catch {
        return true;
      }
    }, 'new connections to be refused');
    // With SIGQUIT the 100 ms close timeout does not apply: the 1.5 s request still finishes.
    assert.match((await slow).body, /^v1 \d+ GET \/slow\?ms=1500$/, `${signal}: the request in progress completes`);
    assert.deepEqual(await master.exited, { code: 0, signal: null }, `${signal}: exit 0`);
    assert.doesNotMatch(master.stderr, /slow request started: \/late/, 'the late request never reached the app');
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), `worker ${pid} is gone`);
  }
});

test('a second SIGTERM during the graceful stop kills the workers and exits 1', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'twice.sock');
  const master = startMaster(t, [APP, '--listen', socket, '--workers', '1']);
  const [worker] = await master.waitForWorkers(1);
  const stuck = request(`unix:${socket}`, '/forever').catch((error: unknown) => error);
  await master.waitFor(/forever request started/);
  master.signal('SIGINT');
  await master.waitFor(/SIGINT: stopping gracefully/);
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 1, signal: null });
  assert.match(master.stderr, /SIGTERM again during the graceful stop: killing the workers and exiting at once/);
  assert.ok((await stuck) instanceof Error, 'the request that never finished fails');
  assert.throws(() => process.kill(worker!, 0), 'the worker is gone');
});

test('--user and --group: the workers run as that user and group, the master as it was', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'user.sock');
  // As root, a user with no rights at all; otherwise our own (a process may always "switch" to itself).
  const owner = socketOwnership();
  const master = startMaster(t, [APP, '--listen', socket, '--workers', '1', '--user', owner.user, '--group', owner.group, '--socket-mode', '0666']);
  const [worker] = await master.waitForWorkers(1);
  const ids = (pid: number): { uid: number; gid: number } => {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { uid: Number(/^Uid:\s+(\d+)/m.exec(text)![1]), gid: Number(/^Gid:\s+(\d+)/m.exec(text)![1]) };
  };
  assert.deepEqual(ids(worker!), { uid: owner.uid, gid: owner.gid }, 'the worker runs as --user and --group');
  assert.deepEqual(ids(master.pid), { uid: process.getuid!(), gid: process.getgid!() }, 'the master keeps its own');
  assert.match((await request(`unix:${socket}`, '/as-user')).body, /^v1 \d+ GET \/as-user$/);
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});

test('--allowed-clients: the workers close connections from other addresses; listed ones are served', { timeout: TIMEOUT }, async (t) => {
  const refusing = startMaster(t, [APP, '--listen', '127.0.0.1:0', '--workers', '1', '--allowed-clients', '192.0.2.1']);
  const [, port] = await refusing.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  await refusing.waitForWorkers(1);
  await assert.rejects(request(`127.0.0.1:${port}`, '/denied'), 'a client not in the list is disconnected');
  await refusing.waitFor(/refused connection from 127\.0\.0\.1: not in FCGI_WEB_SERVER_ADDRS \/ allowedClients/);
  const allowing = startMaster(t, [APP, '--listen', '127.0.0.1:0', '--workers', '1', '--allowed-clients', '192.0.2.1,127.0.0.1']);
  const [, open] = await allowing.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  await allowing.waitForWorkers(1);
  assert.match((await request(`127.0.0.1:${open}`, '/allowed')).body, /^v1 \d+ GET \/allowed$/);
});
