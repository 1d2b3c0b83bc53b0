// Tests for FcgiClient against a scripted FastCGI peer (Unix socket and TCP) built on the protocol layer.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { isNodefpmError, type ErrorCode } from '../errors.js';
import {
  KEEP_CONN,
  MAX_CONTENT_LENGTH,
  ProtocolStatus,
  RecordParser,
  RecordType,
  Role,
  decodeBeginRequest,
  decodePairList,
  decodePairs,
  encodeEndRequest,
  encodePairs,
  encodeRecord,
  encodeUnknownType,
  type Params,
} from '../protocol/index.js';
import { ClientConnection, FcgiClient, FcgiRejectedError, createClient, type FcgiClientOptions } from './index.js';

// --- the scripted peer ---

type Handler = (request: PeerRequest) => void | Promise<void>;

interface PeerOptions {
  /** What GET_VALUES is answered with: the known values, 'unknown-type', or 'ignore'. */
  values?: Record<string, string> | 'unknown-type' | 'ignore';
}

class PeerRequest {
  readonly id: number;
  readonly role: number;
  readonly flags: number;
  readonly connection: PeerConnection;
  params: Params = Object.create(null) as Params;
  readonly paramChunks: Buffer[] = [];
  readonly stdinChunks: Buffer[] = [];
  readonly dataChunks: Buffer[] = [];
  /** The record types received for this request, in order (for checking what was sent and when). */
  readonly types: number[] = [];
  stdinRecords = 0;
  stdinBytes = 0;
  aborted = false;
  ended = false;
  readonly stdinDone: Promise<Buffer>;
  readonly dataDone: Promise<Buffer>;
  readonly abortReceived: Promise<void>;
  resolveStdin!: () => void;
  resolveData!: () => void;
  resolveAbort!: () => void;

  constructor(connection: PeerConnection, id: number, role: number, flags: number) {
    this.connection = connection;
    this.id = id;
    this.role = role;
    this.flags = flags;
    this.stdinDone = new Promise<void>((resolve) => (this.resolveStdin = resolve)).then(() => Buffer.concat(this.stdinChunks));
    this.dataDone = new Promise<void>((resolve) => (this.resolveData = resolve)).then(() => Buffer.concat(this.dataChunks));
    this.abortReceived = new Promise((resolve) => (this.resolveAbort = resolve));
  }

  get keepConn(): boolean {
    return (this.flags & KEEP_CONN) !== 0;
  }

  /** Writes `data` as STDOUT records of at most `recordSize` bytes. */
  stdout(data: string | Buffer, recordSize = MAX_CONTENT_LENGTH): boolean {
    return this.#stream(RecordType.Stdout, Buffer.from(data), recordSize);
  }

  stderr(data: string | Buffer, recordSize = MAX_CONTENT_LENGTH): boolean {
    return this.#stream(RecordType.Stderr, Buffer.from(data), recordSize);
  }

  /** Writes `total` bytes of STDOUT in `recordSize` records, waiting for 'drain'; `progress` counts what was written. */
  async stdoutLarge(payload: Buffer, recordSize: number, progress: { written: number }): Promise<void> {
    for (let offset = 0; offset < payload.length; offset += recordSize) {
      const piece = payload.subarray(offset, Math.min(offset + recordSize, payload.length));
      const ok = this.connection.write(encodeRecord(RecordType.Stdout, this.id, piece));
      progress.written += piece.length;
      if (!ok) await this.connection.drain();
      if (this.connection.socket.destroyed) return;
    }
  }

  /** Ends the request; closes the connection when the client did not ask to keep it. */
  end(appStatus = 0, protocolStatus: number = ProtocolStatus.RequestComplete): void {
    this.ended = true;
    const writes = [encodeRecord(RecordType.Stdout, this.id), encodeEndRequest(this.id, appStatus, protocolStatus)];
    this.connection.write(Buffer.concat(writes));
    this.connection.requests.delete(this.id);
    if (!this.keepConn) this.connection.socket.end();
  }

  #stream(type: number, data: Buffer, recordSize: number): boolean {
    let ok = true;
    for (let offset = 0; offset < data.length; offset += recordSize) {
      ok = this.connection.write(encodeRecord(type, this.id, data.subarray(offset, Math.min(offset + recordSize, data.length))));
    }
    return ok;
  }
}

class PeerConnection {
  readonly socket: Socket;
  readonly number: number;
  readonly requests = new Map<number, PeerRequest>();
  readonly closed: Promise<void>;
  readonly #peer: Peer;
  readonly #parser: RecordParser;

  constructor(peer: Peer, socket: Socket, number: number) {
    this.#peer = peer;
    this.socket = socket;
    this.number = number;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.#parser = new RecordParser({ onRecord: (type, id, content) => this.#onRecord(type, id, Buffer.from(content)) });
    socket.on('data', (chunk: Buffer) => {
      const error = this.#parser.push(chunk);
      if (error !== undefined) peer.errors.push(error);
    });
    socket.on('error', () => {});
  }

  write(bytes: Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable) return true;
    return this.socket.write(bytes);
  }

  drain(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  #onRecord(type: number, id: number, content: Buffer): void {
    if (id === 0) {
      this.#onManagement(type, content);
      return;
    }
    if (type === RecordType.BeginRequest) {
      const { role, flags } = decodeBeginRequest(content);
      const request = new PeerRequest(this, id, role, flags);
      this.requests.set(id, request);
      this.#peer.requests.push(request);
      request.types.push(type);
      return;
    }
    const request = this.requests.get(id);
    if (request === undefined) return;
    request.types.push(type);
    switch (type) {
      case RecordType.Params:
        if (content.length > 0) request.paramChunks.push(content);
        else {
          request.params = decodePairs(Buffer.concat(request.paramChunks));
          void Promise.resolve(this.#peer.handler(request)).catch((error: unknown) => {
            this.#peer.errors.push(error as Error);
            this.socket.destroy();
          });
        }
        break;
      case RecordType.Stdin:
        if (content.length === 0) request.resolveStdin();
        else {
          request.stdinRecords++;
          request.stdinBytes += content.length;
          request.stdinChunks.push(content);
        }
        break;
      case RecordType.Data:
        if (content.length === 0) request.resolveData();
        else request.dataChunks.push(content);
        break;
      case RecordType.AbortRequest:
        request.aborted = true;
        request.resolveAbort();
        break;
      default:
        break;
    }
  }

  #onManagement(type: number, content: Buffer): void {
    if (type !== RecordType.GetValues) {
      this.write(encodeUnknownType(type));
      return;
    }
    const values = this.#peer.options.values ?? {};
    if (values === 'ignore') return;
    if (values === 'unknown-type') {
      this.write(encodeUnknownType(type));
      return;
    }
    const answer: Array<[string, string]> = [];
    for (const [name] of decodePairList(content)) {
      const value = values[name];
      if (value !== undefined) answer.push([name, value]);
    }
    this.write(encodeRecord(RecordType.GetValuesResult, 0, encodePairs(answer)));
  }
}

let socketCounter = 0;

class Peer {
  readonly server: Server;
  readonly options: PeerOptions;
  readonly connections: PeerConnection[] = [];
  readonly requests: PeerRequest[] = [];
  readonly errors: Error[] = [];
  handler: Handler;
  address = '';
  path: string | undefined;
  /** The most connections open at once. */
  maxOpen = 0;
  #open = 0;

  constructor(handler: Handler, options: PeerOptions) {
    this.handler = handler;
    this.options = options;
    this.server = createServer((socket) => {
      const connection = new PeerConnection(this, socket, this.connections.length + 1);
      this.connections.push(connection);
      this.#open++;
      this.maxOpen = Math.max(this.maxOpen, this.#open);
      socket.once('close', () => this.#open--);
    });
  }

  static async start(t: TestContext, kind: 'unix' | 'tcp', handler: Handler, options: PeerOptions = {}): Promise<Peer> {
    const peer = new Peer(handler, options);
    if (kind === 'unix') {
      peer.path = join(tmpdir(), `nodefpm-client-test-${process.pid}-${++socketCounter}.sock`);
      rmSync(peer.path, { force: true });
      await new Promise<void>((resolve) => peer.server.listen(peer.path, resolve));
      peer.address = `unix:${peer.path}`;
    } else {
      await new Promise<void>((resolve) => peer.server.listen(0, '127.0.0.1', resolve));
      const address = peer.server.address();
      assert.ok(address !== null && typeof address === 'object');
      peer.address = `127.0.0.1:${address.port}`;
    }
    t.after(() => peer.close());
    return peer;
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.path !== undefined) rmSync(this.path, { force: true });
  }
}

function client(t: TestContext, peer: Peer, options: Partial<FcgiClientOptions> = {}): FcgiClient {
  const created = createClient({ address: peer.address, ...options });
  t.after(() => created.destroy());
  return created;
}

/** Asserts `promise` rejects with a NodefpmError of `code`; returns it. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<Error> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    assert.ok(isNodefpmError(error, code), `expected ${code}, got ${String(error)}`);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
  return caught as Error;
}

async function until(condition: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const PARAMS = { REQUEST_METHOD: 'GET', SCRIPT_NAME: '/index', QUERY_STRING: '' };
const TEST_TIMEOUT = { timeout: 20_000 };

// --- the tests ---

for (const kind of ['unix', 'tcp'] as const) {
  test(`a response split into tiny STDOUT records with STDERR interleaved (${kind})`, TEST_TIMEOUT, async (t) => {
    const peer = await Peer.start(t, kind, async (request) => {
      const stdin = await request.stdinDone;
      const head = 'Status: 201 Made It\r\nContent-Type: text/plain\r\nX-Multi: a\r\nx-multi: b\r\n\r\n';
      const body = `echo:${stdin.toString()}:${request.params.QUERY_STRING}`;
      const whole = head + body;
      for (let offset = 0; offset < whole.length; offset += 3) {
        request.stdout(whole.slice(offset, offset + 3));
        if (offset % 12 === 0) request.stderr(`e${offset};`);
      }
      await sleep(50);
      request.stderr('late warning\n');
      request.stdout('!');
      request.end(7);
    });
    const fcgi = client(t, peer);
    const chunks: string[] = [];
    const response = await fcgi.request({
      params: { ...PARAMS, QUERY_STRING: 'q=1' },
      body: 'ping',
      onStderr: (chunk) => chunks.push(chunk.toString()),
    });
    const events: string[] = [];
    response.on('stderr', (text) => events.push(text));
    assert.equal(response.status, 201);
    assert.equal(response.statusText, 'Made It');
    assert.equal(response.headers['content-type'], 'text/plain');
    assert.deepEqual(response.headers['x-multi'], ['a', 'b']);
    assert.deepEqual(response.rawHeaders, [
      ['Content-Type', 'text/plain'],
      ['X-Multi', 'a'],
      ['x-multi', 'b'],
    ]);
    assert.equal(await response.text(), 'echo:ping:q=1!');
    assert.deepEqual(await response.ended, { appStatus: 7, protocolStatus: 0 });
    assert.match(response.stderr, /^e0;e12;.*late warning\n$/);
    assert.equal(chunks.join(''), response.stderr);
    assert.deepEqual(events, ['late warning\n']);
    const [seen] = peer.requests;
    assert.ok(seen !== undefined);
    assert.equal(seen.params.QUERY_STRING, 'q=1');
    assert.equal(seen.role, Role.Responder);
    assert.ok(seen.keepConn, 'FCGI_KEEP_CONN is set by default');
    assert.deepEqual(peer.errors, []);
  });
}

test('kept connections are reused: one socket serves consecutive requests, with request id 1', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    request.stdout(`Content-Type: text/plain\r\n\r\nrequest ${peer.requests.length}`);
    request.end();
  });
  const fcgi = client(t, peer);
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'request 1');
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'request 2');
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'request 3');
  assert.equal(peer.connections.length, 1);
  assert.ok(peer.requests.every((request) => request.connection === peer.connections[0] && request.id === 1 && request.keepConn));
  assert.deepEqual(fcgi.stats, { connections: 1, connecting: 0, idle: 1, queued: 0 });
});

test('keepConn false: FCGI_KEEP_CONN is clear, the peer closes, and the connection is never reused', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    request.stdout('Content-Type: text/plain\r\n\r\nbye');
    request.end();
  });
  const fcgi = client(t, peer, { keepConn: false });
  for (let i = 0; i < 3; i++) assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'bye');
  assert.equal(peer.connections.length, 3);
  assert.ok(peer.requests.every((request) => !request.keepConn));
  await until(() => fcgi.stats.connections === 0, 'the client to drop closed connections');
});

test('a kept connection the peer closes (its idle timeout) leaves the pool', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    request.stdout('\r\nok');
    request.end();
    // Closes although asked to keep the connection, as an application's idle timeout would.
    request.connection.socket.end();
  });
  const fcgi = client(t, peer);
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'ok');
  await until(() => fcgi.stats.connections === 0, 'the closed connection to leave the pool');
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'ok');
  assert.equal(peer.connections.length, 2);
});

test('a request on a reused connection the peer closed before answering is retried once on a new one', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    if (request.connection.number === 1 && peer.requests.length === 2) {
      // The race a pooled client must survive: the application drops the idle connection as we send.
      request.connection.socket.destroy();
      return;
    }
    const body = await request.stdinDone;
    request.stdout(`\r\n${body.toString()}`);
    request.end();
  });
  const fcgi = client(t, peer);
  assert.equal(await (await fcgi.request({ params: PARAMS, body: 'one' })).text(), 'one');
  assert.equal(await (await fcgi.request({ params: PARAMS, body: Buffer.from('two') })).text(), 'two');
  assert.equal(peer.connections.length, 2);
  assert.equal(peer.requests.length, 3);
  assert.equal(peer.requests[2]?.connection.number, 2);
});

test('no retry once a one-shot body stream was pulled from', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    if (request.connection.number === 1 && peer.requests.length === 2) {
      await until(() => request.stdinBytes > 0, 'some STDIN');
      request.connection.socket.destroy();
      return;
    }
    await request.stdinDone;
    request.stdout('\r\nok');
    request.end();
  });
  const fcgi = client(t, peer);
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'ok');
  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.from('first part');
    await sleep(500);
    yield Buffer.from('never sent');
  }
  await rejectsWith(fcgi.request({ params: PARAMS, body: body() }), 'NODEFPM_CLIENT_CLOSED', /before any response/);
  assert.equal(peer.requests.length, 2, 'not sent again');
});

test('a fresh connection closed before any response fails with NODEFPM_CLIENT_CLOSED, without a retry', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'tcp', (request) => {
    request.connection.socket.destroy();
  });
  const fcgi = client(t, peer);
  await rejectsWith(fcgi.request({ params: PARAMS }), 'NODEFPM_CLIENT_CLOSED');
  assert.equal(peer.requests.length, 1);
});

test('multiplexed requests on one connection, answered out of order, ids small and reused', TEST_TIMEOUT, async (t) => {
  const waiting: PeerRequest[] = [];
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    if (peer.requests.length > 3) {
      request.stdout(`\r\nlate ${request.params.N}`);
      request.end();
      return;
    }
    waiting.push(request);
    if (waiting.length < 3) return;
    // All three heads first, in reverse order, then their bodies interleaved record by record.
    const order = [...waiting].reverse();
    for (const each of order) each.stdout(`X-N: ${each.params.N}\r\n\r\n`);
    for (let i = 0; i < 5; i++) for (const each of order) each.stdout(`${each.params.N}${i}`);
    for (const each of order) each.end(Number(each.params.N));
  });
  const fcgi = client(t, peer, { multiplex: true, maxConnections: 1 });
  const responses = await Promise.all(['1', '2', '3'].map((n) => fcgi.request({ params: { ...PARAMS, N: n }, body: `body ${n}` })));
  for (const [index, response] of responses.entries()) {
    const n = String(index + 1);
    assert.equal(response.headers['x-n'], n);
    assert.equal(await response.text(), `${n}0${n}1${n}2${n}3${n}4`);
    assert.equal((await response.ended).appStatus, Number(n));
  }
  assert.deepEqual(
    peer.requests.map((request) => request.id).sort(),
    [1, 2, 3],
  );
  assert.equal(peer.connections.length, 1);
  const again = await fcgi.request({ params: { ...PARAMS, N: '4' } });
  assert.equal(await again.text(), 'late 4');
  assert.equal(peer.requests[3]?.id, 1, 'the smallest free id is reused');
  assert.equal(peer.connections.length, 1);
});

test('a streamed 10 MiB request body arrives intact, pulled only as fast as the socket drains', TEST_TIMEOUT, async (t) => {
  const total = 10 * 1024 * 1024;
  const payload = randomBytes(total);
  let pulled = 0;
  let pulledWhilePaused = -1;
  const peer = await Peer.start(t, 'unix', async (request) => {
    request.connection.socket.pause();
    await sleep(300);
    pulledWhilePaused = pulled;
    request.connection.socket.resume();
    const stdin = await request.stdinDone;
    request.stdout(`X-Length: ${stdin.length}\r\nX-Hash: ${sha256(stdin)}\r\n\r\n`);
    request.end();
  });
  // Chunks of uneven sizes, some larger than a record and some empty.
  async function* body(): AsyncGenerator<Uint8Array> {
    const sizes = [1, 0, 70_000, 65535, 65536, 3, 200_000, 0, 4096];
    let offset = 0;
    for (let i = 0; offset < total; i++) {
      const size = Math.min(sizes[i % sizes.length]!, total - offset);
      pulled += size;
      yield new Uint8Array(payload.buffer, payload.byteOffset + offset, size);
      offset += size;
    }
  }
  const fcgi = client(t, peer);
  const response = await fcgi.request({ params: { ...PARAMS, REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(total) }, body: body() });
  assert.equal(response.headers['x-length'], String(total));
  assert.equal(response.headers['x-hash'], sha256(payload));
  assert.ok(pulledWhilePaused >= 0 && pulledWhilePaused < 4 * 1024 * 1024, `pulled ${pulledWhilePaused} bytes while the peer was not reading`);
  assert.ok(peer.requests[0]!.stdinRecords >= Math.ceil(total / MAX_CONTENT_LENGTH));
  await response.ended;
});

test('a 10 MiB Buffer body and a Readable body arrive intact', TEST_TIMEOUT, async (t) => {
  const payload = randomBytes(10 * 1024 * 1024 + 13);
  const peer = await Peer.start(t, 'tcp', async (request) => {
    const stdin = await request.stdinDone;
    request.stdout(`\r\n${sha256(stdin)}`);
    request.end();
  });
  const fcgi = client(t, peer);
  assert.equal(await (await fcgi.request({ params: PARAMS, body: payload })).text(), sha256(payload));
  const readable = Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]);
  assert.equal(await (await fcgi.request({ params: PARAMS, body: readable })).text(), sha256(payload));
});

test('a streamed 10 MiB response, with backpressure reaching the peer while nobody reads', TEST_TIMEOUT, async (t) => {
  const payload = randomBytes(10 * 1024 * 1024);
  const progress = { written: 0 };
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    request.stdout('Content-Type: application/octet-stream\r\n\r\n');
    await request.stdoutLarge(payload, 32 * 1024 + 5, progress);
    request.end();
  });
  const fcgi = client(t, peer);
  const response = await fcgi.request({ params: PARAMS });
  await sleep(300);
  assert.ok(progress.written < payload.length / 2, `the peer wrote ${progress.written} bytes while nobody read`);
  const hash = createHash('sha256');
  let received = 0;
  for await (const chunk of response.body) {
    hash.update(chunk as Buffer);
    received += (chunk as Buffer).length;
  }
  assert.equal(received, payload.length);
  assert.equal(hash.digest('hex'), sha256(payload));
  assert.deepEqual(await response.ended, { appStatus: 0, protocolStatus: 0 });
});

test('a slow reader on a multiplexed connection does not stall the other requests', TEST_TIMEOUT, async (t) => {
  const payload = randomBytes(4 * 1024 * 1024);
  const progress = { written: 0 };
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    if (request.params.N === 'big') {
      request.stdout('\r\n');
      await request.stdoutLarge(payload, 65535, progress);
      request.end();
    } else {
      await until(() => progress.written > 0, 'the big response to start');
      request.stdout('\r\nsmall');
      request.end();
    }
  });
  const fcgi = client(t, peer, { multiplex: true, maxConnections: 1 });
  const big = await fcgi.request({ params: { ...PARAMS, N: 'big' } });
  const small = await fcgi.request({ params: { ...PARAMS, N: 'small' } });
  assert.equal(await small.text(), 'small');
  assert.equal(peer.connections.length, 1);
  assert.equal((await big.bytes()).equals(payload), true);
});

test('abort: ABORT_REQUEST is sent, the request fails with NODEFPM_CLIENT_ABORTED, and the answered id is reused', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    if (request.params.ABORT_ME === '1') {
      await request.abortReceived;
      request.end(1);
      return;
    }
    await request.stdinDone;
    request.stdout('\r\nfine');
    request.end();
  });
  const fcgi = client(t, peer);
  const controller = new AbortController();
  const pending = fcgi.request({ params: { ...PARAMS, ABORT_ME: '1' }, signal: controller.signal });
  await until(() => peer.requests.length === 1, 'the request to arrive');
  controller.abort(new Error('user went away'));
  const error = await rejectsWith(pending, 'NODEFPM_CLIENT_ABORTED', /user went away/);
  assert.ok(error.cause instanceof Error);
  await until(() => fcgi.stats.idle === 1, 'the connection to be released by END_REQUEST');
  assert.equal(peer.requests[0]?.aborted, true);
  assert.equal(await (await fcgi.request({ params: PARAMS })).text(), 'fine');
  assert.equal(peer.connections.length, 1, 'the connection survived the abort');
});

test('abort: an application ignoring ABORT_REQUEST has its connection closed after the grace', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', () => {});
  const fcgi = client(t, peer, { abortGrace: 100 });
  const controller = new AbortController();
  const pending = fcgi.request({ params: PARAMS, signal: controller.signal });
  await until(() => peer.requests.length === 1, 'the request to arrive');
  const started = Date.now();
  controller.abort();
  await rejectsWith(pending, 'NODEFPM_CLIENT_ABORTED');
  await peer.connections[0]!.closed;
  assert.ok(Date.now() - started >= 90, 'closed only after the grace');
  assert.equal(peer.requests[0]?.aborted, true);
});

test('abort with closeOnAbort closes the connection at once', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'tcp', () => {});
  const fcgi = client(t, peer, { abortGrace: 10_000 });
  const controller = new AbortController();
  const pending = fcgi.request({ params: PARAMS, signal: controller.signal, closeOnAbort: true });
  await until(() => peer.requests.length === 1, 'the request to arrive');
  controller.abort();
  await rejectsWith(pending, 'NODEFPM_CLIENT_ABORTED');
  await peer.connections[0]!.closed;
  await until(() => fcgi.stats.connections === 0, 'the pool to drop it');
});

test('abort after the head errors the body and rejects ended', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    request.stdout('\r\npart one;');
    await request.abortReceived;
    request.stdout('dropped');
    request.end();
  });
  const fcgi = client(t, peer);
  const controller = new AbortController();
  const response = await fcgi.request({ params: PARAMS, signal: controller.signal });
  const reading = response.text();
  controller.abort();
  await rejectsWith(reading, 'NODEFPM_CLIENT_ABORTED');
  await rejectsWith(response.ended, 'NODEFPM_CLIENT_ABORTED');
  await until(() => fcgi.stats.idle === 1, 'END_REQUEST to free the connection');
});

test('startRequest: abort() does what aborting the signal does, queued, running and after the head', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    if (request.params.MODE === 'head') request.stdout('\r\npart one;');
    await request.abortReceived;
    request.end(1);
  });
  const fcgi = client(t, peer, { maxConnections: 1 });
  const running = fcgi.startRequest({ params: { ...PARAMS, MODE: 'hold' } });
  const queued = fcgi.startRequest({ params: { ...PARAMS, MODE: 'hold' } });
  await until(() => peer.requests.length === 1 && fcgi.stats.queued === 1, 'one to run and one to wait');
  queued.abort(new Error('gave up waiting'));
  await rejectsWith(queued.response, 'NODEFPM_CLIENT_ABORTED', /gave up waiting/);
  assert.equal(fcgi.stats.queued, 0);
  running.abort(new Error('user went away'));
  const error = await rejectsWith(running.response, 'NODEFPM_CLIENT_ABORTED', /user went away/);
  assert.ok(error.cause instanceof Error);
  await until(() => fcgi.stats.idle === 1, 'END_REQUEST to free the connection');
  assert.equal(peer.requests[0]?.aborted, true);
  assert.equal(peer.requests.length, 1, 'the queued request was never sent');

  const started = fcgi.startRequest({ params: { ...PARAMS, MODE: 'head' } });
  const response = await started.response;
  assert.equal(response.complete, false);
  const reading = response.text();
  started.abort();
  started.abort();
  await rejectsWith(reading, 'NODEFPM_CLIENT_ABORTED');
  await rejectsWith(response.ended, 'NODEFPM_CLIENT_ABORTED');
  await until(() => fcgi.stats.idle === 1, 'END_REQUEST to free the connection');
});

test('complete: once END_REQUEST came, the whole body is buffered in the unread stream', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', (request) => {
    request.stdout('Content-Type: text/plain\r\n\r\nall of it');
    request.end();
  });
  const fcgi = client(t, peer);
  const { response, abort } = fcgi.startRequest({ params: PARAMS });
  const done = await response;
  await done.ended;
  assert.equal(done.complete, true);
  assert.equal(done.body.readableLength, 'all of it'.length);
  assert.equal(await done.text(), 'all of it');
  abort();
  assert.deepEqual(await done.ended, { appStatus: 0, protocolStatus: 0 }, 'an abort once the body was read changes nothing');
});

test('an already aborted signal fails before anything is sent', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', () => {});
  const fcgi = client(t, peer);
  await rejectsWith(fcgi.request({ params: PARAMS, signal: AbortSignal.abort() }), 'NODEFPM_CLIENT_ABORTED');
  assert.equal(peer.connections.length, 0);
});

test('the peer closing mid-response errors the body with NODEFPM_CLIENT_CLOSED', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    request.stdout('Content-Type: text/plain\r\n\r\nhalf of it');
    await sleep(30);
    request.connection.socket.destroy();
  });
  const fcgi = client(t, peer);
  const response = await fcgi.request({ params: PARAMS });
  await rejectsWith(response.text(), 'NODEFPM_CLIENT_CLOSED', /in the middle of the response/);
  await rejectsWith(response.ended, 'NODEFPM_CLIENT_CLOSED');
  await until(() => fcgi.stats.connections === 0, 'the pool to drop the connection');
});

test('FCGI_OVERLOADED before any output rejects with NODEFPM_CLIENT_REJECTED naming the status', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', (request) => {
    request.stderr('busy');
    request.end(0, request.params.STATUS === 'role' ? ProtocolStatus.UnknownRole : ProtocolStatus.Overloaded);
  });
  const fcgi = client(t, peer);
  const error = await rejectsWith(fcgi.request({ params: PARAMS }), 'NODEFPM_CLIENT_REJECTED', /FCGI_OVERLOADED/);
  assert.ok(error instanceof FcgiRejectedError);
  assert.equal(error.protocolStatus, ProtocolStatus.Overloaded);
  const role = await rejectsWith(fcgi.request({ params: { STATUS: 'role' }, role: 9 }), 'NODEFPM_CLIENT_REJECTED', /FCGI_UNKNOWN_ROLE/);
  assert.equal((role as FcgiRejectedError).protocolStatus, ProtocolStatus.UnknownRole);
  assert.equal(peer.requests[1]?.role, 9);
  assert.equal(peer.connections.length, 1, 'a rejection leaves the connection usable');
});

test('getValues asks FCGI_GET_VALUES on a connection of its own', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', () => {}, { values: { FCGI_MAX_CONNS: '10', FCGI_MAX_REQS: '50', FCGI_MPXS_CONNS: '1' } });
  const fcgi = client(t, peer);
  assert.deepEqual(await fcgi.getValues(), { FCGI_MAX_CONNS: '10', FCGI_MAX_REQS: '50', FCGI_MPXS_CONNS: '1' });
  assert.deepEqual(await fcgi.getValues(['FCGI_MPXS_CONNS', 'X_UNKNOWN']), { FCGI_MPXS_CONNS: '1' });
  await until(() => peer.connections.every((connection) => connection.socket.destroyed), 'the connections to close');
  assert.equal(peer.connections.length, 2);
});

test('getValues: UNKNOWN_TYPE gives {}, silence gives NODEFPM_CLIENT_TIMEOUT', TEST_TIMEOUT, async (t) => {
  const unknown = await Peer.start(t, 'unix', () => {}, { values: 'unknown-type' });
  assert.deepEqual(await client(t, unknown).getValues(), {});
  const silent = await Peer.start(t, 'tcp', () => {}, { values: 'ignore' });
  await rejectsWith(client(t, silent).getValues(undefined, { timeout: 100 }), 'NODEFPM_CLIENT_TIMEOUT', /GET_VALUES/);
});

test('getValues on a ClientConnection, pipelined, answered in order', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', () => {}, { values: { FCGI_MAX_CONNS: '3', FCGI_MPXS_CONNS: '0' } });
  const connection = await ClientConnection.connect(peer.address);
  t.after(() => connection.destroy());
  const [a, b] = await Promise.all([connection.getValues(['FCGI_MAX_CONNS']), connection.getValues(['FCGI_MPXS_CONNS'])]);
  assert.deepEqual(a, { FCGI_MAX_CONNS: '3' });
  assert.deepEqual(b, { FCGI_MPXS_CONNS: '0' });
});

test('timeout: no END_REQUEST in time fails with NODEFPM_CLIENT_TIMEOUT and closes the connection', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', (request) => {
    request.stdout('\r\nstarted but never ends');
  });
  const fcgi = client(t, peer, { timeout: 150 });
  const response = await fcgi.request({ params: PARAMS });
  await rejectsWith(response.ended, 'NODEFPM_CLIENT_TIMEOUT', /within 150 ms/);
  await peer.connections[0]!.closed;
  assert.equal(peer.requests[0]?.aborted, true, 'ABORT_REQUEST was sent before closing');
  // A request's own timeout overrides the client's: 0 lets the same never-ending answer run on.
  const unbounded = await fcgi.request({ params: PARAMS, timeout: 0 });
  await sleep(200);
  assert.equal(unbounded.body.destroyed, false);
  assert.equal(peer.connections.length, 2);
});

test('timeout before the head rejects the request itself', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'tcp', () => {});
  const fcgi = client(t, peer);
  await rejectsWith(fcgi.request({ params: PARAMS, timeout: 80 }), 'NODEFPM_CLIENT_TIMEOUT');
});

test('a bad CGI head rejects with NODEFPM_CLIENT_BAD_RESPONSE', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', (request) => {
    if (request.params.KIND === 'big') request.stdout(`X-Big: ${'x'.repeat(5000)}\r\n\r\n`);
    else request.stdout('<html>not a CGI head</html>\r\n\r\n');
    request.end();
  });
  const fcgi = client(t, peer, { maxHeadBytes: 1024 });
  await rejectsWith(fcgi.request({ params: { KIND: 'garbage' } }), 'NODEFPM_CLIENT_BAD_RESPONSE', /has no colon/);
  await rejectsWith(fcgi.request({ params: { KIND: 'big' } }), 'NODEFPM_CLIENT_BAD_RESPONSE', /maxHeadBytes \(1024 bytes\)/);
  const raw = await fcgi.requestRaw({ params: { KIND: 'garbage' } });
  assert.equal(await raw.text(), '<html>not a CGI head</html>\r\n\r\n');
});

test('requests beyond maxConnections wait their turn', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'tcp', async (request) => {
    await request.stdinDone;
    await sleep(30);
    request.stdout(`\r\n${request.params.N}`);
    request.end();
  });
  const fcgi = client(t, peer, { maxConnections: 2 });
  const pending = Array.from({ length: 7 }, (_, i) => fcgi.request({ params: { N: String(i) } }));
  await until(() => fcgi.stats.queued > 0, 'requests to queue');
  const texts = await Promise.all(pending.map(async (response) => (await response).text()));
  assert.deepEqual(texts, ['0', '1', '2', '3', '4', '5', '6']);
  assert.equal(peer.maxOpen, 2);
  assert.equal(peer.connections.length, 2);
});

test('an abort while queued removes the request from the line', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    await sleep(100);
    request.stdout('\r\nok');
    request.end();
  });
  const fcgi = client(t, peer, { maxConnections: 1 });
  const first = fcgi.request({ params: PARAMS });
  const controller = new AbortController();
  const second = fcgi.request({ params: PARAMS, signal: controller.signal });
  await until(() => fcgi.stats.queued === 1, 'the second to queue');
  controller.abort();
  await rejectsWith(second, 'NODEFPM_CLIENT_ABORTED');
  assert.equal(fcgi.stats.queued, 0);
  assert.equal(await (await first).text(), 'ok');
  assert.equal(peer.requests.length, 1);
});

test('Filter role: STDIN then DATA, read raw', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    const stdin = await request.stdinDone;
    const data = await request.dataDone;
    request.stdout(`${stdin.toString()}|${data.toString().toUpperCase()}`);
    request.end();
  });
  const fcgi = client(t, peer);
  async function* file(): AsyncGenerator<string> {
    yield 'file ';
    yield 'contents';
  }
  const response = await fcgi.requestRaw({ params: { FCGI_DATA_LENGTH: '13' }, role: Role.Filter, body: 'in', data: file() });
  assert.equal(await response.text(), 'in|FILE CONTENTS');
  const types = peer.requests[0]!.types;
  assert.ok(types.lastIndexOf(RecordType.Stdin) < types.indexOf(RecordType.Data), 'all of STDIN before DATA');
});

test('Filter role with no data still sends the empty DATA stream; Responder sends none', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    if (request.role === Role.Filter) await request.dataDone;
    request.stdout('\r\n');
    request.end();
  });
  const fcgi = client(t, peer);
  await (await fcgi.request({ params: PARAMS, role: Role.Filter })).ended;
  await (await fcgi.request({ params: PARAMS })).ended;
  assert.ok(peer.requests[0]!.types.includes(RecordType.Data));
  assert.ok(!peer.requests[1]!.types.includes(RecordType.Data));
  assert.ok(peer.requests[1]!.types.includes(RecordType.Stdin), 'the empty STDIN terminator is always sent');
});

test('an Authorizer answering with an empty STDOUT gives 200 with no headers and no body', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', (request) => {
    request.end();
  });
  const fcgi = client(t, peer);
  const response = await fcgi.request({ params: { REMOTE_USER: 'x' }, role: Role.Authorizer });
  assert.equal(response.status, 200);
  assert.deepEqual(response.rawHeaders, []);
  assert.equal((await response.bytes()).length, 0);
  assert.equal(peer.requests[0]?.role, Role.Authorizer);
});

test('a failing body stream fails the request with NODEFPM_CLIENT_BODY and closes the connection', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', () => {});
  const fcgi = client(t, peer);
  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.from('some');
    await sleep(20);
    throw new Error('upload broke');
  }
  const error = await rejectsWith(fcgi.request({ params: PARAMS, body: body() }), 'NODEFPM_CLIENT_BODY', /upload broke/);
  assert.equal((error.cause as Error).message, 'upload broke');
  await peer.connections[0]!.closed;
  assert.equal(peer.requests[0]?.aborted, true);
});

test('connecting to nothing fails with NODEFPM_CLIENT_CONNECT', TEST_TIMEOUT, async () => {
  const fcgi = new FcgiClient({ address: join(tmpdir(), `nodefpm-client-test-missing-${process.pid}.sock`) });
  await rejectsWith(fcgi.request({ params: PARAMS }), 'NODEFPM_CLIENT_CONNECT', /cannot connect to the FastCGI application at unix:.*ENOENT/);
  await fcgi.close();
});

test('close() waits for running requests, then refuses new ones', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', async (request) => {
    await sleep(100);
    request.stdout('\r\ndone');
    request.end();
  });
  const fcgi = client(t, peer);
  const pending = fcgi.request({ params: PARAMS });
  await until(() => peer.requests.length === 1, 'the request to arrive');
  let closed = false;
  const closing = fcgi.close().then(() => (closed = true));
  await sleep(20);
  assert.equal(closed, false);
  await rejectsWith(fcgi.request({ params: PARAMS }), 'NODEFPM_CLIENT_CLOSING');
  assert.equal(await (await pending).text(), 'done');
  await closing;
  await peer.connections[0]!.closed;
});

test('bad options and params are refused before anything is sent', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'unix', () => {});
  assert.throws(() => createClient({ address: peer.address, maxConnections: 0 }), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
  assert.throws(() => createClient({ address: 'nowhere' }), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_ADDRESS'));
  const fcgi = client(t, peer);
  await rejectsWith(fcgi.request({ params: { NAME: '\u20ac' } }), 'NODEFPM_INVALID_PARAM');
  assert.equal(peer.connections.length, 0);
});

test('destroying the body early drops the rest of STDOUT; the request still ends and its connection is reused', TEST_TIMEOUT, async (t) => {
  const payload = randomBytes(2 * 1024 * 1024);
  const progress = { written: 0 };
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    request.stdout('\r\n');
    await request.stdoutLarge(payload, 65535, progress);
    request.end(3);
  });
  const fcgi = client(t, peer);
  const response = await fcgi.request({ params: PARAMS });
  response.body.destroy();
  assert.deepEqual(await response.ended, { appStatus: 3, protocolStatus: 0 });
  assert.equal(progress.written, payload.length, 'the socket kept being read');
  await until(() => fcgi.stats.idle === 1, 'the connection to be idle');
  assert.equal(await (await fcgi.request({ params: PARAMS })).bytes().then((bytes) => bytes.equals(payload)), true);
  assert.equal(peer.connections.length, 1);
});

test('idleTimeout closes kept connections nobody uses', TEST_TIMEOUT, async (t) => {
  const peer = await Peer.start(t, 'tcp', async (request) => {
    await request.stdinDone;
    request.stdout('\r\n');
    request.end();
  });
  const fcgi = client(t, peer, { idleTimeout: 50 });
  await (await fcgi.request({ params: PARAMS })).ended;
  assert.equal(fcgi.stats.idle, 1);
  await peer.connections[0]!.closed;
  await until(() => fcgi.stats.connections === 0, 'the pool to drop it');
});

test('a connection that answered CANT_MPX_CONN takes one request at a time from then on', TEST_TIMEOUT, async (t) => {
  const held: PeerRequest[] = [];
  const peer = await Peer.start(t, 'unix', async (request) => {
    await request.stdinDone;
    if (request.connection.requests.size > 1) {
      request.end(0, ProtocolStatus.CantMpxConn);
      return;
    }
    held.push(request);
    await sleep(50);
    request.stdout('\r\nserved');
    request.end();
  });
  const fcgi = client(t, peer, { multiplex: true, maxConnections: 1 });
  const first = fcgi.request({ params: PARAMS });
  await until(() => held.length === 1, 'the first request to be held');
  await rejectsWith(fcgi.request({ params: PARAMS }), 'NODEFPM_CLIENT_REJECTED', /FCGI_CANT_MPX_CONN/);
  const [a, b] = await Promise.all([first, fcgi.request({ params: PARAMS })]);
  assert.equal(await a.text(), 'served');
  assert.equal(await b.text(), 'served');
  assert.equal(peer.connections.length, 1);
});

test('a response body destroyed with an error, its error listener removed before the tick ends, does not crash the process', async (t) => {
  const peer = await Peer.start(t, 'unix', (request) => {
    request.stdout('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial');
  });
  const fcgi = client(t, peer);
  const crashes: unknown[] = [];
  const onUncaught = (error: unknown): void => {
    crashes.push(error);
  };
  process.on('uncaughtException', onUncaught);
  try {
    const response = await fcgi.request({ params: { REQUEST_METHOD: 'GET' } });
    const listener = (): void => {};
    response.body.on('error', listener);
    response.body.destroy(new Error('caller gave up'));
    response.body.off('error', listener);
    await sleep(50);
    assert.deepEqual(crashes, [], 'no uncaught exception');
    await assert.rejects(response.bytes(), 'reading the destroyed body still reports the failure');
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});
