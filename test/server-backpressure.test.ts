// Backpressure over real sockets: an unread body stops the socket being read, an unread STDOUT makes write() wait for 'drain', a slow request does not stall its neighbours, an unread body is discarded.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nativeExchangeHandler, type Handler } from '../src/http/handler.js';
import { RecordType, encodeStream } from '../src/protocol/index.js';
import type { Connection } from '../src/server/connection.js';
import type { Exchange } from '../src/server/exchange.js';
import type { ServerOptions } from '../src/server/options.js';
import { FcgiServer } from '../src/server/server.js';
import { captureLogger, type CaptureLogger } from './helpers/log-capture.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';
import { tapSocketReads } from './helpers/socket-tap.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const WAIT = 30_000;
/** The most a socket read hands over at once (libuv reads into 64 KiB buffers). */
const SOCKET_CHUNK = 64 * KiB;

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeout = WAIT): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * Waits until `value()` has not changed for `quietMs` and over at least 15 turns of the event loop
 * (each turn polls for I/O, so a stall of the whole process does not pass for a settled value).
 */
async function settled(value: () => number, what: string, quietMs = 300): Promise<number> {
  const deadline = Date.now() + WAIT;
  let last = value();
  let since = Date.now();
  let quietTurns = 0;
  for (;;) {
    await sleep(20);
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
      quietTurns = 0;
    } else if (++quietTurns >= 15 && Date.now() - since >= quietMs) {
      return now;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to settle`);
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

interface Harness {
  server: FcgiServer;
  address: string;
  logs: CaptureLogger;
  /** Exchanges by REQUEST_URI, as the server handed them to the application. */
  exchanges: Map<string, Exchange>;
  /** Server-side connections, in the order accepted. */
  connections: Connection[];
  close(): Promise<void>;
}

/** An FcgiServer running a native handler, with its exchanges and connections exposed to the test. */
async function harness(handler: Handler, options: ServerOptions): Promise<Harness> {
  const logs = captureLogger();
  const exchanges = new Map<string, Exchange>();
  const connections: Connection[] = [];
  const native = nativeExchangeHandler(handler, {}, logs);
  const server = new FcgiServer(
    (exchange) => {
      exchanges.set(exchange.param('REQUEST_URI') ?? '', exchange);
      native(exchange);
    },
    { logger: logs, ...options },
  );
  server.on('connection', (connection: Connection) => connections.push(connection));
  const dir = tempDir();
  const path = join(dir.path, 'app.sock');
  await server.listen(`unix:${path}`);
  return {
    server,
    address: `unix:${path}`,
    logs,
    exchanges,
    connections,
    async close() {
      await server.close({ timeout: 2000 });
      dir.remove();
    },
  };
}

describe('input backpressure: a handler that does not read its body', () => {
  const highWaterMark = 64 * KiB;
  const body = randomBytes(32 * MiB);
  const bodyHash = sha256(body);
  const startReading = gate();
  let h: Harness;

  before(async () => {
    h = await harness(
      async (req, res) => {
        await startReading.promise;
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of req.body) {
          hash.update(chunk);
          bytes += chunk.length;
        }
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      },
      { inputHighWaterMark: highWaterMark },
    );
  });
  after(async () => {
    startReading.open();
    await h.close();
  });

  test('the server stops reading the socket once the request buffer is full, holds about the high-water mark, then delivers the whole body intact', async (t) => {
    const peer = await RawPeer.connect(h.address);
    try {
      await until(() => h.connections.length === 1, 'the server accepting the connection');
      const connection = h.connections[0]!;
      let maxBuffered = 0;
      let exchange: Exchange | undefined;
      let reads = 0;
      // After the connection has processed each chunk it reads: sees the queue at its fullest.
      tapSocketReads(
        connection.socket,
        () => {
          reads++;
          exchange ??= h.exchanges.get('/upload');
          if (exchange !== undefined) maxBuffered = Math.max(maxBuffered, exchange.stdin.bytesBuffered);
        },
        'after',
      );
      let peerDrains = 0;
      peer.socket.on('drain', () => peerDrains++);

      peer.sendBegin(1);
      peer.sendParams(1, requestParams('POST', '/upload', { CONTENT_LENGTH: String(body.length) }));
      // One write per record, as a web server sends a body, so writableLength shows what is still queued.
      const records = encodeStream(RecordType.Stdin, 1, body, true);
      const recordSize = 8 + 65535 + 1;
      let accepted = true;
      for (let offset = 0; offset < records.length; offset += recordSize) {
        accepted = peer.socket.write(records.subarray(offset, Math.min(offset + recordSize, records.length)));
      }
      assert.equal(accepted, false, '32 MiB does not fit in the socket buffers: write() asks the peer to wait');

      await until(() => h.exchanges.has('/upload'), 'the request reaching the handler');
      exchange = h.exchanges.get('/upload')!;
      const received = await settled(() => exchange!.stdin.bytesReceived, 'bytes received while the handler does not read');
      assert.ok(connection.socket.isPaused(), 'the server paused its socket');
      assert.ok(received < body.length, `the server stopped reading before the end of the body (${received} of ${body.length})`);
      assert.ok(
        received <= highWaterMark + 2 * SOCKET_CHUNK,
        `no more than the high-water mark plus what one socket read holds was taken in (${received})`,
      );
      assert.ok(exchange.stdin.full, 'the request buffer is over its high-water mark');
      assert.ok(exchange.stdin.bytesBuffered >= highWaterMark, `the buffer filled up to the mark (${exchange.stdin.bytesBuffered})`);
      assert.ok(reads > 0 && maxBuffered >= highWaterMark, `the tap saw the reads fill the buffer (${reads} reads, max ${maxBuffered})`);
      assert.ok(maxBuffered <= highWaterMark + 2 * SOCKET_CHUNK, `buffered bytes stayed near the high-water mark (max ${maxBuffered})`);
      assert.ok(peer.socket.writableLength > 16 * MiB, `the peer's writes back up (${peer.socket.writableLength} bytes queued)`);
      assert.equal(peerDrains, 0, "no 'drain' for the peer while the server does not read");
      t.diagnostic(`stalled: ${received} bytes received, ${exchange.stdin.bytesBuffered} buffered, ${peer.socket.writableLength} queued at the peer`);

      startReading.open();
      const response = await peer.waitForEnd(1, WAIT);
      const cgi = splitCgi(response.stdout);
      assert.equal(cgi.status, 200);
      assert.deepEqual(JSON.parse(cgi.body.toString()), { bytes: body.length, sha256: bodyHash });
      assert.equal(peerDrains, 1, "the peer's socket drained once the server read again");
      assert.equal(peer.socket.writableLength, 0);
      assert.ok(maxBuffered <= highWaterMark + 2 * SOCKET_CHUNK, `buffered bytes stayed bounded while the handler read (max ${maxBuffered})`);
      assert.ok(!connection.socket.isPaused(), 'the connection reads again once the request ended');
      t.diagnostic(`most bytes buffered for the request at any time: ${maxBuffered} (high-water mark ${highWaterMark})`);
    } finally {
      peer.close();
    }
  });
});

describe('output backpressure: a web server that does not read STDOUT', () => {
  const cases = [
    { name: 'default sockets', outputHighWaterMark: 64 * KiB, socketHighWaterMark: undefined, sizes: [65536, 1000, 16384, 100_000, 7] },
    // Node 22 makes 64 KiB the default socket mark; Node 20 has it when the listener asks (as a process manager may).
    // Small writes, so the queue can sit between the two marks.
    { name: "outputHighWaterMark below the socket's own high-water mark", outputHighWaterMark: 16 * KiB, socketHighWaterMark: 64 * KiB, sizes: [1000, 3000] },
  ];
  for (const { name, outputHighWaterMark, socketHighWaterMark, sizes } of cases) {
  test(`res.write() returns false, 'drain' comes only once the peer reads again, and the whole body arrives intact (${name})`, async (t) => {
    const total = 16 * MiB;
    const payload = randomBytes(total);
    let written = 0;
    let falseReturns = 0;
    let drains = 0;
    let maxQueued = 0;
    let connection: Connection | undefined;
    const h = await harness(
      async (_req, res) => {
        res.on('drain', () => drains++);
        res.setHeader('Content-Type', 'application/octet-stream');
        let i = 0;
        while (written < total) {
          const size = Math.min(sizes[i++ % sizes.length]!, total - written);
          const ok = res.write(payload.subarray(written, written + size));
          written += size;
          maxQueued = Math.max(maxQueued, connection?.socket.writableLength ?? 0);
          if (!ok) {
            falseReturns++;
            await new Promise<void>((resolve) => res.once('drain', resolve));
          }
        }
        res.end();
      },
      { outputHighWaterMark },
    );
    // With a socket mark asked for, connections come through a listener of our own and handleConnection().
    let listener: net.Server | undefined;
    let address = h.address;
    if (socketHighWaterMark !== undefined) {
      listener = net.createServer({ highWaterMark: socketHighWaterMark, allowHalfOpen: true }, (socket) => h.server.handleConnection(socket));
      const dir = tempDir();
      address = `unix:${join(dir.path, 'hwm.sock')}`;
      await new Promise<void>((resolve) => listener!.listen(address.slice(5), resolve));
      listener.once('close', () => dir.remove());
    }
    const peer = await RawPeer.connect(address);
    try {
      await until(() => h.connections.length === 1, 'the server accepting the connection');
      connection = h.connections[0]!;
      if (socketHighWaterMark !== undefined) assert.equal(connection.socket.writableHighWaterMark, socketHighWaterMark);
      peer.socket.pause();
      peer.sendRequest(1, requestParams('GET', '/download'));

      // Until the kernel's socket buffers are full, the queue drains into them; then the handler waits.
      const stuckAt = await settled(() => written, 'bytes written while the peer does not read');
      assert.ok(falseReturns >= 1, 'write() returned false');
      assert.ok(stuckAt < total, `the handler is waiting for 'drain' (${stuckAt} of ${total} written)`);
      t.diagnostic(`stuck: written ${stuckAt}, false ${falseReturns}, drains ${drains}, queued ${connection.socket.writableLength}, socket needDrain ${connection.socket.writableNeedDrain}`);
      assert.ok(connection.socket.writableLength >= outputHighWaterMark, 'output is queued over the high-water mark');
      const drainsWhileStuck = drains;
      assert.equal(drainsWhileStuck, falseReturns - 1, "the last false from write() has had no 'drain' yet");
      await sleep(300);
      assert.equal(drains, drainsWhileStuck, "no 'drain' while the peer does not read");
      assert.equal(written, stuckAt, 'the handler is still waiting');

      peer.socket.resume();
      const response = await peer.waitForEnd(1, WAIT);
      const cgi = splitCgi(response.stdout);
      assert.equal(cgi.status, 200);
      assert.equal(cgi.body.length, total);
      assert.equal(sha256(cgi.body), sha256(payload), 'the body arrived intact');
      assert.ok(drains > drainsWhileStuck, "'drain' fired once the peer read again");
      assert.equal(drains, falseReturns, "every false from write() was followed by one 'drain'");
      t.diagnostic(`write() returned false ${falseReturns} times; most bytes queued on the socket: ${maxQueued}`);
      // Over the mark by at most one write, or one batch of small writes coalesced (16 KiB), plus record headers.
      const bound = Math.max(outputHighWaterMark, socketHighWaterMark ?? 0) + Math.max(...sizes, 16 * KiB) + 1024;
      assert.ok(maxQueued <= bound, `the socket queue stayed bounded near the high-water mark (max ${maxQueued}, bound ${bound})`);
    } finally {
      peer.close();
      listener?.close();
      await h.close();
    }
  });
  }
});

describe('multiplexing', () => {
  test('a slow request does not stall a second request on the same connection, which completes first', async () => {
    const slow = gate();
    const h = await harness(
      async (req, res) => {
        if (req.url === '/slow') {
          await slow.promise;
          res.end(`slow done, body ${(await req.bytes()).length}`);
          return;
        }
        res.end(`fast ${(await req.text()).length}`);
      },
      {},
    );
    const peer = await RawPeer.connect(h.address);
    try {
      // The slow request's body (under the high-water mark) sits unread meanwhile.
      peer.sendRequest(1, requestParams('POST', '/slow', { CONTENT_LENGTH: '50000' }), Buffer.alloc(50_000, 1));
      await until(() => h.exchanges.has('/slow'), 'the slow request reaching its handler');
      peer.sendRequest(2, requestParams('POST', '/fast', { CONTENT_LENGTH: '3' }), 'abc');
      const fast = await peer.waitForEnd(2, WAIT);
      assert.equal(splitCgi(fast.stdout).body.toString(), 'fast 3');
      assert.equal(peer.response(1).endCount, 0, 'the slow request is still in progress when the fast one completes');

      // A third request interleaved record by record with nothing else waiting.
      peer.sendRequest(3, requestParams('GET', '/fast'));
      assert.equal(splitCgi((await peer.waitForEnd(3, WAIT)).stdout).body.toString(), 'fast 0');
      assert.equal(peer.response(1).endCount, 0, 'still in progress');

      slow.open();
      const done = await peer.waitForEnd(1, WAIT);
      assert.equal(splitCgi(done.stdout).body.toString(), 'slow done, body 50000');
      const order = peer.records.filter((r) => r.type === RecordType.EndRequest).map((r) => r.requestId);
      assert.deepEqual(order, [2, 3, 1]);
    } finally {
      slow.open();
      peer.close();
      await h.close();
    }
  });
});

describe('a response that ends without reading a big body', () => {
  for (const when of ['at once', 'after the body filled its buffer'] as const) {
    test(`the rest of STDIN is discarded and the kept connection serves the next request (ends ${when})`, async () => {
      const highWaterMark = 64 * KiB;
      const bodyFull = gate();
      const h = await harness(
        async (req, res) => {
          if (req.url === '/early') {
            if (when !== 'at once') await bodyFull.promise;
            res.end('not reading that');
            return;
          }
          res.end(`next ${(await req.text()).length}`);
        },
        { inputHighWaterMark: highWaterMark },
      );
      const peer = await RawPeer.connect(h.address);
      try {
        const big = Buffer.alloc(8 * MiB, 0x42);
        peer.sendBegin(1);
        peer.sendParams(1, requestParams('PUT', '/early', { CONTENT_LENGTH: String(big.length) }));
        peer.socket.write(encodeStream(RecordType.Stdin, 1, big, true));
        // The next request is queued behind the whole body on the same connection.
        peer.sendRequest(2, requestParams('POST', '/next', { CONTENT_LENGTH: '4' }), 'next');

        await until(() => h.exchanges.has('/early'), 'the request reaching the handler');
        const exchange = h.exchanges.get('/early')!;
        if (when !== 'at once') {
          await until(() => exchange.stdin.full, 'the unread body filling its buffer');
          assert.ok(h.connections[0]!.socket.isPaused(), 'the connection stopped reading');
          bodyFull.open();
        }
        const early = await peer.waitForEnd(1, WAIT);
        assert.equal(splitCgi(early.stdout).body.toString(), 'not reading that');
        assert.ok(exchange.stdin.discarded, 'the unread rest of the body was discarded');
        assert.equal(exchange.stdin.bytesBuffered, 0, 'nothing of it is held');

        const next = await peer.waitForEnd(2, WAIT);
        assert.equal(splitCgi(next.stdout).body.toString(), 'next 4');
        assert.equal(next.protocolStatus, 0);
        assert.equal(peer.closed, false, 'the kept connection stays open');
        assert.equal(peer.socket.writableLength, 0, 'the server read (and dropped) the whole body');
        const complaints = h.logs.entries.filter((e) => e.level === 'warn' || e.level === 'error');
        assert.deepEqual(complaints, [], 'skipping the rest of a body is routine: nothing is logged as a warning or error');
      } finally {
        bodyFull.open();
        peer.close();
        await h.close();
      }
    });
  }
});
