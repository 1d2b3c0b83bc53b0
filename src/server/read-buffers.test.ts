// readIntoOwnBuffers(): an accepted socket moved to reads into given buffers; the sockets it leaves as they are; the buffers' sizes; the malloc raise.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  HAND_OVER_AT,
  MAX_READ_BUFFER_SIZE,
  READ_BUFFER_SIZE,
  fitReadSize,
  ownReadBuffer,
  readIntoOwnBuffers,
  sharedReadBuffer,
  worthHandingOver,
} from './read-buffers.js';

/** A TCP server on loopback and a client connected to it; `accepted` is the server side of the connection. */
async function pair(pauseOnConnect: boolean): Promise<{ server: net.Server; client: net.Socket; accepted: net.Socket }> {
  const server = net.createServer({ pauseOnConnect });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const acceptedPromise = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  return { server, client, accepted: await acceptedPromise };
}

function connections(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}

test('a socket accepted paused moves to a new Socket whose reads land in the buffers given, in order, then ends', async () => {
  const { server, client, accepted } = await pair(true);
  try {
    const buffers = [Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8)];
    let asked = 0;
    const received: string[] = [];
    const landedIn: Buffer[] = [];
    const socket = readIntoOwnBuffers(
      accepted,
      () => buffers[Math.min(asked++, buffers.length - 1)]!,
      function (this: net.Socket, bytesRead, buffer) {
        assert.equal(this, socket, 'called on the new socket');
        landedIn.push(buffer);
        received.push(buffer.toString('latin1', 0, bytesRead));
      },
    );
    assert.ok(socket !== null && socket !== accepted);
    assert.equal(asked, 1, 'the first buffer is asked for at once');
    assert.equal(accepted.destroyed, true, 'the original socket let go of the handle');
    assert.equal(await connections(server), 0, "and left its server's count");
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    client.end('0123456789abcdefghij');
    await ended;
    assert.equal(received.join(''), '0123456789abcdefghij', 'every byte, in order, 8 at most per read');
    assert.ok(received.length >= 3);
    assert.equal(landedIn[0], buffers[0], 'the first read landed in the first buffer given');
    assert.equal(landedIn[1], buffers[1], 'each next read in the buffer asked for after the previous one');
    assert.equal(asked, received.length + 1, 'a buffer is asked for after every read');
    socket.end();
  } finally {
    client.destroy();
    server.close();
  }
});

test('pause() and resume() stop and restart the reads of a moved socket', async () => {
  const { server, client, accepted } = await pair(true);
  try {
    let received: string = '';
    const buffer = Buffer.alloc(64);
    const socket = readIntoOwnBuffers(accepted, () => buffer, (bytesRead, into) => {
      received += into.toString('latin1', 0, bytesRead);
    })!;
    socket.pause();
    client.write('held');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(received, '', 'nothing is read while paused');
    socket.resume();
    const deadline = Date.now() + 5000;
    while ((received as string) !== 'held' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(received, 'held');
    socket.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});

test('a socket that already reads is left as it is (null), and still delivers data events', async () => {
  const { server, client, accepted } = await pair(false);
  try {
    assert.equal(readIntoOwnBuffers(accepted, () => Buffer.alloc(8), () => {}), null);
    assert.equal(accepted.destroyed, false);
    const data = new Promise<Buffer>((resolve) => accepted.once('data', resolve));
    client.write('still here');
    assert.equal((await data).toString(), 'still here');
  } finally {
    accepted.destroy();
    client.destroy();
    server.close();
  }
});

test('a stand-in socket with no handle is left as it is', () => {
  const stand = new net.Socket();
  assert.equal(readIntoOwnBuffers(stand, () => Buffer.alloc(8), () => {}), null);
  stand.destroy();
});

test('the shared buffer is one buffer of the largest read; own buffers are new ones, of the size asked (64 KiB unless told)', () => {
  assert.equal(sharedReadBuffer(), sharedReadBuffer());
  assert.equal(sharedReadBuffer().length, MAX_READ_BUFFER_SIZE);
  const own = ownReadBuffer();
  assert.notEqual(own.buffer, ownReadBuffer().buffer);
  assert.equal(own.length, READ_BUFFER_SIZE);
  assert.equal(ownReadBuffer(72 * 1024).length, 72 * 1024);
});

test('fitReadSize: the burst plus a sixteenth, in whole pages, between 64 and 128 KiB', () => {
  for (const [burst, size] of [
    [0, READ_BUFFER_SIZE],
    [1, READ_BUFFER_SIZE],
    [60_000, READ_BUFFER_SIZE], // 63 750 with the sixteenth: still the least size
    [61_681, READ_BUFFER_SIZE], // 61 681 + 3 855 = 65 536 exactly
    [61_682, 17 * 4096], // one byte over 64 KiB takes the next page
    [65_536, 68 * 1024], // a full 64 KiB read and nothing after it: room for 4 KiB more
    [66_136, 72 * 1024], // a 64 KiB body in nginx's records with its params: 70 269 bytes wanted
    [120_000, MAX_READ_BUFFER_SIZE],
    [10_000_000, MAX_READ_BUFFER_SIZE],
  ] as const) {
    assert.equal(fitReadSize(burst), size, `burst of ${burst}`);
  }
});

test('worthHandingOver: a chunk of at least 4 KiB and a sixteenth of its buffer', () => {
  assert.equal(worthHandingOver(HAND_OVER_AT, READ_BUFFER_SIZE), true);
  assert.equal(worthHandingOver(HAND_OVER_AT - 1, READ_BUFFER_SIZE), false);
  assert.equal(worthHandingOver(8 * 1024 - 1, MAX_READ_BUFFER_SIZE), false);
  assert.equal(worthHandingOver(8 * 1024, MAX_READ_BUFFER_SIZE), true);
  assert.equal(worthHandingOver(HAND_OVER_AT, 16 * 1024), true);
});

const readBuffersModule = fileURLToPath(new URL('./read-buffers.ts', import.meta.url));
const indexModule = fileURLToPath(new URL('../index.ts', import.meta.url));
const clientModule = fileURLToPath(new URL('../client/index.ts', import.meta.url));

/**
 * What the child does before it churns memory: nothing, the raise itself, or serve one request with
 * a server of its own (its options; a 64 KiB POST whose chunks the handler keeps, or a GET).
 */
type Setup = 'nothing' | 'raise' | { serverOptions: Record<string, unknown>; request: 'POST' | 'GET' };

/**
 * Page faults a child process takes to touch 18 MiB of 72 KiB buffers again after it freed the same:
 * what the server's heap goes through at every scavenge, when kept body chunks are let go.
 */
function refaultedPages(setup: Setup): { faults: number; glibc: boolean } {
  let prepare = '';
  if (setup === 'raise') {
    prepare = `(await import(${JSON.stringify(readBuffersModule)})).raiseMallocThresholds();`;
  } else if (setup !== 'nothing') {
    const post = setup.request === 'POST';
    prepare = `
      const { createServer } = await import(${JSON.stringify(indexModule)});
      const { FcgiClient } = await import(${JSON.stringify(clientModule)});
      const { mkdtempSync, rmSync } = await import('node:fs');
      const dir = mkdtempSync((await import('node:os')).tmpdir() + '/nodefpm-malloc-');
      const server = createServer(async (req, res) => {
        const chunks = [];
        for await (const chunk of req) chunks.push(chunk);
        res.end(String(Buffer.concat(chunks).length));
      }, { ...${JSON.stringify(setup.serverOptions)}, logger: { debug() {}, info() {}, warn() {}, error() {} } });
      await server.listen('unix:' + dir + '/app.sock');
      const client = new FcgiClient({ address: 'unix:' + dir + '/app.sock' });
      const response = await client.request({
        params: { REQUEST_METHOD: ${JSON.stringify(setup.request)}, REQUEST_URI: '/', SCRIPT_NAME: '', CONTENT_LENGTH: ${post ? "'65536'" : "''"} },
        body: ${post ? '(async function* () { yield Buffer.alloc(65536, 7); })()' : 'undefined'},
      });
      if ((await response.text()) !== ${post ? "'65536'" : "'0'"}) throw new Error('the request was not served');
      await client.close();
      await server.close();
      rmSync(dir, { recursive: true });`;
  }
  const script = `
    ${prepare}
    const settle = async () => { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 100)); };
    await settle();
    const round = () => Array.from({ length: 256 }, () => Buffer.allocUnsafeSlow(72 * 1024).fill(1));
    let kept = round();
    kept = null;
    await settle();
    const before = process.resourceUsage().minorPageFault;
    kept = round();
    const faults = process.resourceUsage().minorPageFault - before;
    const glibc = typeof process.report.getReport().header.glibcVersionRuntime === 'string';
    console.log(JSON.stringify({ faults, glibc, kept: kept.length }));`;
  const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as { faults: number; glibc: boolean };
}

test("raiseMallocThresholds (a server's tuneMalloc, once chunks are kept): with glibc, memory freed in a batch is kept, not faulted in again page by page", { timeout: 60_000 }, (t) => {
  const plain = refaultedPages('nothing');
  if (!plain.glibc) {
    // The raise works through glibc's dynamic mmap threshold; other allocators have their own ways.
    t.skip('not glibc: raiseMallocThresholds has no effect to check');
    return;
  }
  // 18 MiB is 4608 pages: glibc trims the freed top of its heap and faults it in again.
  assert.ok(plain.faults > 2000, `without the raise, ${plain.faults} pages were faulted in again`);
  const raised = refaultedPages('raise');
  assert.ok(raised.faults < plain.faults / 10, `with the raise, ${raised.faults} pages (without: ${plain.faults})`);
  // A server raises them once a handler keeps body chunks (a connection takes a buffer of its own),
  // unless told not to (option tuneMalloc); serving GET requests leaves them as they are.
  const kept = refaultedPages({ serverOptions: {}, request: 'POST' });
  assert.ok(kept.faults < plain.faults / 10, `after a kept 64 KiB body, ${kept.faults} pages (without: ${plain.faults})`);
  const untuned = refaultedPages({ serverOptions: { tuneMalloc: false }, request: 'POST' });
  assert.ok(untuned.faults > plain.faults / 2, `with tuneMalloc: false, ${untuned.faults} pages (without a server: ${plain.faults})`);
  const gets = refaultedPages({ serverOptions: {}, request: 'GET' });
  assert.ok(gets.faults > plain.faults / 2, `after a GET, ${gets.faults} pages (without a server: ${plain.faults})`);
});

test('the moved socket keeps what the listener set: half-open and the write high-water mark', async () => {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, highWaterMark: 32 * 1024, noDelay: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const acceptedPromise = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  try {
    const accepted = await acceptedPromise;
    const socket = readIntoOwnBuffers(accepted, () => Buffer.alloc(64), () => {})!;
    assert.equal(socket.allowHalfOpen, true);
    assert.equal(socket.writableHighWaterMark, 32 * 1024);
    // Half-open: the peer's end does not end our side, which can still answer.
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    const answered = new Promise<string>((resolve) => client.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    client.end();
    await ended;
    socket.end('after your end');
    assert.equal(await answered, 'after your end');
  } finally {
    client.destroy();
    server.close();
  }
});
