// Inherited sockets shared with the workers: a Unix or TCP socket on fd 0 (spawn-fcgi), and systemd's LISTEN_FDS.

import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, FIXTURES, TIMEOUT, request, startMaster, statusJson, tempDir } from './fixtures/pool-harness.js';

const LAUNCHER = join(FIXTURES, 'cli-fd0-launcher.py');

/** The sockets a process holds, as /proc shows them ("socket:[inode]"). */
function socketsOf(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`)
    .map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((target) => target.startsWith('socket:'));
}

for (const transport of ['unix', 'tcp'] as const) {
  test(`a listening ${transport} socket inherited on fd 0 is shared with every worker`, { timeout: TIMEOUT }, async (t) => {
    const socket = join(tempDir(t), 'fd0.sock');
    const where = transport === 'unix' ? socket : '127.0.0.1';
    const master = startMaster(t, [LAUNCHER, transport, where, BIN, 'test/fixtures/pool-app.mjs', '--workers', '2', '--status-path', '/status'], {
      command: 'python3',
    });
    const address = transport === 'unix' ? `unix:${socket}` : `127.0.0.1:${(await new Promise<string>((resolve) => master.child.stdout!.once('data', (text: Buffer | string) => resolve(String(text).trim()))))}`;
    const workers = await master.waitForWorkers(2);
    await master.waitFor(/listening on fd:0/);
    const listening = readlinkSync(`/proc/${master.pid}/fd/0`);
    assert.match(listening, /^socket:\[\d+\]$/, 'the master holds the inherited socket on fd 0');
    for (const pid of workers) {
      assert.ok(socketsOf(pid).includes(listening), `worker ${pid} accepts on the same socket (${listening})`);
      assert.equal(readlinkSync(`/proc/${pid}/fd/0`), '/dev/null', `worker ${pid} does not have the socket as its stdin`);
    }
    for (let i = 0; i < 10; i++) assert.match((await request(address, `/i${i}`)).body, /^v1 \d+ GET \/i\d$/);
    const status = await statusJson(address);
    assert.equal(status['total processes'], 2);
    // Linux tells the accept queue of a TCP socket in /proc/net/tcp, of a Unix one through ss.
    assert.equal(status['listen queue'], 0, 'the accept queue is read');
    assert.equal(status['listen queue len'], 511, 'the workers listen with --listen-backlog');
    master.signal('SIGTERM');
    assert.deepEqual(await master.exited, { code: 0, signal: null });
  });
}

test("systemd's socket (LISTEN_FDS) is shared with the workers, and LISTEN_* are not passed on to them", { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'activated.sock');
  const master = startMaster(t, [LAUNCHER, 'systemd', socket, BIN, 'test/fixtures/cli-hello.mjs', '--workers', '2'], { command: 'python3' });
  await master.waitForWorkers(2);
  await master.waitFor(/listening on fd:3/);
  assert.deepEqual(await request(`unix:${socket}`, '/activated').then((reply) => reply.body), 'hello GET /activated');
  assert.deepEqual(await request(`unix:${socket}`, '/listen-fds').then((reply) => reply.body), 'LISTEN_FDS=unset');
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});
