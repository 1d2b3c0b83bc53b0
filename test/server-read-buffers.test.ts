// Real-socket tests of reads into reused buffers: what handlers keep stays intact, own buffers are bounded and given back, consume() lends.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { setImmediate as nextLoop } from 'node:timers/promises';
import type { Handler } from '../src/index.js';
import type { Connection } from '../src/server/connection.js';
import { MAX_READ_BUFFER_SIZE, fitReadSize } from '../src/server/read-buffers.js';
import { KEEP_CONN, RecordType, Role, encodeBeginRequest, encodeParams, encodeRecord, encodeStream } from '../src/protocol/index.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { startServer, tempDir } from './helpers/servers.js';
import { tapSocketReads } from './helpers/socket-tap.js';

const OPTS = { timeout: 60_000 };
const WAIT = 20_000;

/** Bodies around the sizes that matter: empty, copied (< 4 KiB), handed over (>= 4 KiB), over one read, over inputHighWaterMark. */
const SIZES = [0, 100, 4_095, 4_096, 16_384, 40_000, 65_536, 200_000];

/** Deterministic bytes that differ from body to body, so a chunk overwritten by another read cannot pass. */
function bodyBytes(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Every request's records (BEGIN, PARAMS, STDIN in records of `recordSize`), interleaved round robin
 * across the requests and sent in one write, so that reads carry parts of several requests at once.
 */
function interleavedRequests(requests: Array<{ id: number; tag: string; body: Buffer }>, recordSize: number): Buffer {
  const queues = requests.map(({ id, tag, body }) => {
    const records = [
      encodeBeginRequest(id, Role.Responder, KEEP_CONN),
      encodeParams(id, requestParams('POST', `/r/${id}`, { CONTENT_LENGTH: String(body.length), HTTP_X_TAG: tag })),
    ];
    for (let at = 0; at < body.length; at += recordSize) {
      records.push(encodeStream(RecordType.Stdin, id, body.subarray(at, at + recordSize), false));
    }
    records.push(encodeRecord(RecordType.Stdin, id));
    return records;
  });
  const out: Buffer[] = [];
  while (queues.some((queue) => queue.length > 0)) {
    for (const queue of queues) {
      const record = queue.shift();
      if (record !== undefined) out.push(record);
    }
  }
  return Buffer.concat(out);
}

/** Answers "<uri> <tag> <sha256> <length>" for the body, read with `for await` and kept chunk by chunk across later reads. */
const keepingHandler: Handler = async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    chunks.push(chunk);
    // Let the connection read on (other requests' records, this body's next records) while the chunk is held.
    await nextLoop();
  }
  const body = Buffer.concat(chunks);
  res.end(`${req.url} ${req.headers['x-tag']} ${sha256(body)} ${body.length}`);
};

/** Sends SIZES as one interleaved batch on each of `connections` connections and checks every answer. */
async function sendAndCheck(address: string, connections: number, recordSize: number): Promise<RawPeer[]> {
  const peers = await Promise.all(Array.from({ length: connections }, () => RawPeer.connect(address)));
  const sent = peers.map((peer, p) => {
    const requests = SIZES.map((size, i) => ({ id: i + 1, tag: `c${p}-r${i + 1}`, body: bodyBytes(p * 100 + i + 1, size) }));
    peer.send(interleavedRequests(requests, recordSize));
    return requests;
  });
  for (const [p, peer] of peers.entries()) {
    for (const { id, tag, body } of sent[p]!) {
      const response = await peer.waitForEnd(id, WAIT);
      const { status, body: answer } = splitCgi(response.stdout);
      assert.equal(status, 200, `request ${tag}`);
      assert.equal(answer.toString(), `/r/${id} ${tag} ${sha256(body)} ${body.length}`, `request ${tag} got its own params and body, intact`);
      assert.equal(response.endCount, 1);
    }
  }
  return peers;
}

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await nextLoop();
  }
}

test('kept body chunks and params stay intact while later reads reuse the read buffers; own buffers are claimed, then given back at close', OPTS, async () => {
  const app = await startServer(keepingHandler);
  try {
    // nginx's record size, Apache's (about), and records small enough to be copied out one by one.
    for (const [recordSize, ownBuffers] of [
      [32_768, 'some'],
      [7_001, 'some'],
      [3_001, 'none'],
    ] as const) {
      const peers = await sendAndCheck(app.address, 3, recordSize);
      // Chunks of 4 KiB and more were kept, so the connections moved to buffers of their own (one each at most).
      const inUse = app.server.readBuffersInUse;
      if (ownBuffers === 'some') assert.ok(inUse >= 1 && inUse <= 3, `records of ${recordSize}: own buffers in use: ${inUse}`);
      else assert.equal(inUse, 0, `records of ${recordSize} are all copied`);
      for (const peer of peers) peer.socket.destroy();
      await waitUntil(() => app.server.readBuffersInUse === 0, 'the own read buffers to be given back');
    }
    assert.deepEqual(app.logs.entries.filter((entry) => entry.level === 'error' || entry.level === 'warn'), []);
  } finally {
    await app.close();
  }
});

test('maxReadBuffers: 0 keeps every connection on the shared buffer, and kept chunks are copied out intact', OPTS, async () => {
  const app = await startServer(keepingHandler, { maxReadBuffers: 0 });
  try {
    const peers = await sendAndCheck(app.address, 3, 32_768);
    assert.equal(app.server.readBuffersInUse, 0);
    for (const peer of peers) peer.socket.destroy();
  } finally {
    await app.close();
  }
});

test('maxReadBuffers bounds the connections holding a buffer of their own; the others are served as well', OPTS, async () => {
  const app = await startServer(keepingHandler, { maxReadBuffers: 1 });
  try {
    const peers = await sendAndCheck(app.address, 3, 32_768);
    assert.equal(app.server.readBuffersInUse, 1);
    for (const peer of peers) peer.socket.destroy();
    await waitUntil(() => app.server.readBuffersInUse === 0, 'the own read buffer to be given back');
  } finally {
    await app.close();
  }
});

test('body.consume() reads every body from the shared buffer: lent chunks, none kept, no buffer of its own', OPTS, async () => {
  const app = await startServer(async (req, res) => {
    const hash = createHash('sha256');
    const bytes = await req.body.consume((chunk) => hash.update(chunk));
    res.end(`${req.url} ${req.headers['x-tag']} ${hash.digest('hex')} ${bytes}`);
  });
  try {
    const peers = await sendAndCheck(app.address, 2, 32_768);
    assert.equal(app.server.readBuffersInUse, 0);
    for (const peer of peers) peer.socket.destroy();
  } finally {
    await app.close();
  }
});

test('sockets handed to handleConnection are served whether they already read (as streams) or were accepted paused', OPTS, async () => {
  const app = await startServer(keepingHandler);
  const dir = tempDir();
  const listeners: net.Server[] = [];
  try {
    for (const pauseOnConnect of [false, true]) {
      const path = `${dir.path}/handed-${pauseOnConnect}.sock`;
      const listener = net.createServer({ pauseOnConnect, allowHalfOpen: true }, (socket) => app.server.handleConnection(socket));
      listeners.push(listener);
      await new Promise<void>((resolve) => listener.listen(path, resolve));
      const peers = await sendAndCheck(`unix:${path}`, 1, 32_768);
      for (const peer of peers) peer.socket.destroy();
    }
  } finally {
    for (const listener of listeners) listener.close();
    await app.close();
    dir.remove();
  }
});

test('large params are copied out of the shared buffer and do not take a buffer of their own', OPTS, async () => {
  const app = await startServer((req, res) => {
    res.end(`${req.headers.cookie?.length ?? 0} ${req.headers.cookie === 'c'.repeat(6000)}`);
  });
  try {
    const peer = await RawPeer.connect(app.address);
    // Several requests in one write, so that later reads reuse the buffer the first params came in.
    for (let id = 1; id <= 4; id++) peer.sendRequest(id, requestParams('GET', `/p/${id}`, { HTTP_COOKIE: 'c'.repeat(6000) }));
    for (let id = 1; id <= 4; id++) {
      assert.equal(splitCgi((await peer.waitForEnd(id, WAIT)).stdout).body.toString(), '6000 true');
    }
    assert.equal(app.server.readBuffersInUse, 0);
    peer.socket.destroy();
  } finally {
    await app.close();
  }
});

test('reads are fitted to what the peer sends at once: each 64 KiB POST in one read, a long body 128 KiB at a time', OPTS, async () => {
  const app = await startServer(keepingHandler);
  const reads: Array<{ bytes: number; size: number }> = [];
  app.server.on('connection', (connection: Connection) => {
    tapSocketReads(connection.socket, (chunk, buffer) => reads.push({ bytes: chunk.length, size: buffer.length }), 'before');
  });
  try {
    const peer = await RawPeer.connect(app.address);
    let id = 0;
    const post = async (body: Buffer, tag: string): Promise<number> => {
      // As nginx sends it: params, then the body in 32 KiB records, in one write.
      id++;
      const wire = interleavedRequests([{ id, tag, body }], 32_768);
      peer.send(wire);
      const { status, body: answer } = splitCgi((await peer.waitForEnd(id, WAIT)).stdout);
      assert.equal(status, 200);
      assert.equal(answer.toString(), `/r/${id} ${tag} ${sha256(body)} ${body.length}`, `request ${tag} intact`);
      return wire.length;
    };
    // The first lands in the shared buffer (128 KiB) in one read; its body chunks are copied out and
    // the connection takes a buffer of its own, fitted to that request, for the next ones.
    const wireLength = await post(bodyBytes(1, 65_536), 'first');
    // (Request ids 1 to 4 have as many digits: the same params length, the same wire length.)
    assert.ok(wireLength > 65_536, 'a 64 KiB body is more than 64 KiB on the wire');
    assert.deepEqual(reads.splice(0), [{ bytes: wireLength, size: MAX_READ_BUFFER_SIZE }]);
    for (let i = 2; i <= 4; i++) await post(bodyBytes(i, 65_536), `next-${i}`);
    // Each in one read, into a buffer of its own (handed over to the kept chunks, so a new one each time).
    assert.deepEqual(reads.splice(0), Array.from({ length: 3 }, () => ({ bytes: wireLength, size: fitReadSize(wireLength) })));
    assert.equal(app.server.readBuffersInUse, 1);

    // A 1 MiB body arrives faster than it is read: the reads fill their buffers, which double up to the cap.
    await post(bodyBytes(9, 1024 * 1024), 'long');
    const sizes = reads.splice(0).map((read) => read.size);
    assert.ok(sizes.includes(MAX_READ_BUFFER_SIZE), `read buffers grew to ${MAX_READ_BUFFER_SIZE}: ${sizes.join(' ')}`);
    assert.ok(sizes.every((size) => size <= MAX_READ_BUFFER_SIZE), `never beyond the cap: ${sizes.join(' ')}`);
    peer.socket.destroy();
  } finally {
    await app.close();
  }
});
