// readIntoOwnBuffers(): an accepted socket moved to reads into given buffers; the sockets it leaves as they are; the shared buffer.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { READ_BUFFER_SIZE, ownReadBuffer, readIntoOwnBuffers, sharedReadBuffer } from './read-buffers.js';

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

test('the shared buffer is one buffer; own buffers are new ones; both of the read size', () => {
  assert.equal(sharedReadBuffer(), sharedReadBuffer());
  assert.equal(sharedReadBuffer().length, READ_BUFFER_SIZE);
  const own = ownReadBuffer();
  assert.notEqual(own.buffer, ownReadBuffer().buffer);
  assert.equal(own.length, READ_BUFFER_SIZE);
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
