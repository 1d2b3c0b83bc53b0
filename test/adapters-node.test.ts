// Express 4 and 5, Koa, Connect and Fastify apps run unchanged over real FastCGI connections, and answer as they do on Node's own http server.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http, { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import { createNodeServer, type NodeRequestListener } from '../src/adapters/node/index.js';
import { FcgiClient } from '../src/client/index.js';
import type { FcgiServer } from '../src/index.js';
import { formatListenAddress } from '../src/server/listen.js';
import { addRoutes } from './fixtures/apps/fastify.js';
import { nodeApps } from './fixtures/apps/node-apps.js';
import { patternBytes, type NodeApp, type NodeProbe } from './fixtures/apps/node-shared.js';
import { captureLogger, type CaptureLogger } from './helpers/log-capture.js';
import { RawPeer, requestParams } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';

/** Events the apps report through their probe, with a way to wait for them. */
class EventLog {
  readonly events: string[] = [];
  readonly chunks: Array<{ index: number; accepted: boolean | undefined }> = [];
  readonly instances: Array<{ req: IncomingMessage; res: ServerResponse }> = [];
  #waiters: Array<() => void> = [];

  readonly probe: NodeProbe = {
    onEvent: (name) => this.#add(() => this.events.push(name)),
    onChunk: (index, accepted) => this.#add(() => this.chunks.push({ index, accepted })),
    onInstance: (req, res) => this.#add(() => this.instances.push({ req, res })),
  };

  clear(): void {
    this.events.length = 0;
    this.chunks.length = 0;
    this.instances.length = 0;
  }

  /** Resolves once every name in `names` was reported (rejects after `timeout` ms). */
  async waitFor(names: string[], timeout = 5000): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!names.every((name) => this.events.includes(name))) {
      if (Date.now() > deadline) throw new Error(`waited ${timeout} ms for ${names.join(', ')}; saw ${this.events.join(', ') || 'nothing'}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  #add(record: () => void): void {
    record();
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

/** One app behind both servers: nodefpm (with the project's client) and Node's http. */
interface Pair {
  app: NodeApp;
  log: EventLog;
  fcgi: FcgiServer;
  client: FcgiClient;
  address: string;
  logs: CaptureLogger;
  /** Times the listener was called on the FastCGI side. */
  calls: { count: number };
  httpPort: number;
  close(): Promise<void>;
}

async function startPair(name: keyof typeof nodeApps): Promise<Pair> {
  const log = new EventLog();
  const app = await nodeApps[name](log.probe);
  const calls = { count: 0 };
  const counted: NodeRequestListener = (req, res) => {
    calls.count++;
    app.listener(req, res);
  };
  const logs = captureLogger();
  const fcgi = createNodeServer(counted, { logger: logs });
  const dir = tempDir();
  const address = formatListenAddress(await fcgi.listen(`unix:${join(dir.path, 'app.sock')}`));
  const client = new FcgiClient({ address, maxConnections: 4 });
  const httpServer = http.createServer(app.listener);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    app,
    log,
    fcgi,
    client,
    address,
    logs,
    calls,
    httpPort: (httpServer.address() as AddressInfo).port,
    async close() {
      client.destroy();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await fcgi.close({ timeout: 1000 });
      await app.close();
      dir.remove();
    },
  };
}

interface Answer {
  status: number;
  /** Header lines as sent, names lower-cased, in order. */
  headers: Array<[string, string]>;
  body: Buffer;
}

interface Call {
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Extra FastCGI params (HTTPS, REMOTE_ADDR, ...); nodefpm only. */
  params?: Record<string, string>;
}

/** The params a web server sends for this request: CGI variables plus one HTTP_* param per header. */
function paramsFor(method: string, uri: string, call: Call): Record<string, string> {
  const extra: Record<string, string> = {};
  for (const [name, value] of Object.entries(call.headers ?? {})) {
    const key = name.toLowerCase();
    if (key === 'content-type') extra.CONTENT_TYPE = value;
    else if (key === 'content-length') extra.CONTENT_LENGTH = value;
    else extra[`HTTP_${key.toUpperCase().replaceAll('-', '_')}`] = value;
  }
  if (call.body !== undefined && extra.CONTENT_LENGTH === undefined) extra.CONTENT_LENGTH = String(Buffer.byteLength(call.body));
  return { ...requestParams(method, uri), ...extra, ...call.params };
}

async function viaFcgi(pair: Pair, method: string, uri: string, call: Call = {}): Promise<Answer> {
  const response = await pair.client.request({ params: paramsFor(method, uri, call), body: call.body });
  return {
    status: response.status,
    headers: response.rawHeaders.map(([name, value]) => [name.toLowerCase(), value]),
    body: await response.bytes(),
  };
}

function viaHttp(pair: Pair, method: string, uri: string, call: Call = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: 'localhost', ...call.headers };
    if (call.body !== undefined) headers['content-length'] = String(Buffer.byteLength(call.body));
    const request = http.request({ host: '127.0.0.1', port: pair.httpPort, method, path: uri, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const lines: Array<[string, string]> = [];
        for (let i = 0; i < response.rawHeaders.length; i += 2) lines.push([response.rawHeaders[i]!.toLowerCase(), response.rawHeaders[i + 1]!]);
        resolve({ status: response.statusCode ?? 0, headers: lines, body: Buffer.concat(chunks) });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(call.body);
  });
}

/** What the two servers must agree on: hop-by-hop headers and Date aside, every header line in order. */
function comparable(headers: Array<[string, string]>): Array<[string, string]> {
  const skip = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);
  return headers.filter(([name]) => !skip.has(name));
}

function header(answer: Answer, name: string): string[] {
  return answer.headers.filter(([key]) => key === name).map(([, value]) => value);
}

function json(answer: Answer): Record<string, unknown> {
  return JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
}

/** Requests both servers are asked, whose answers must match. */
const DIFFERENTIAL: Array<[string, string, Call?]> = [
  ['GET', '/'],
  ['HEAD', '/'],
  ['GET', '/query?a=1&b=two&b=three&empty=&sp=a%20b'],
  ['POST', '/json', { headers: { 'content-type': 'application/json' }, body: '{"name":"nodefpm","list":[1,2,3]}' }],
  ['POST', '/upload', { headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from(patternBytes(0, 100_000)) }],
  ['POST', '/echo', { headers: { 'content-type': 'application/octet-stream' }, body: 'echo me' }],
  ['GET', '/stream?chunks=3&size=10'],
  ['GET', '/large?size=200000'],
  ['GET', '/cookies'],
  ['GET', '/redirect'],
  ['GET', '/empty'],
  ['GET', '/etag'],
  ['GET', '/etag', { headers: { 'if-none-match': '"v1"' } }],
  ['GET', '/error'],
  ['GET', '/unicode/%C3%A9t%C3%A9'],
  ['GET', '/no-such-route'],
];

for (const name of Object.keys(nodeApps) as Array<keyof typeof nodeApps>) {
  describe(`${name} over FastCGI`, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair(name);
    });
    after(async () => {
      await pair.close();
    });

    test('answers as on Node\'s http server: status, headers (less Date and hop-by-hop ones) and body', async () => {
      for (const [method, uri, call] of DIFFERENTIAL) {
        const [overFcgi, overHttp] = await Promise.all([viaFcgi(pair, method, uri, call), viaHttp(pair, method, uri, call)]);
        const what = `${method} ${uri}`;
        assert.equal(overFcgi.status, overHttp.status, `${what}: status`);
        assert.deepEqual(comparable(overFcgi.headers), comparable(overHttp.headers), `${what}: headers`);
        assert.equal(overFcgi.body.toString('latin1'), overHttp.body.toString('latin1'), `${what}: body`);
        assert.equal(header(overFcgi, 'transfer-encoding').length, 0, `${what}: no Transfer-Encoding reaches FastCGI`);
        assert.equal(header(overFcgi, 'connection').length, 0, `${what}: no Connection reaches FastCGI`);
      }
    });

    test('routing and query strings', async () => {
      const root = await viaFcgi(pair, 'GET', '/');
      assert.equal(root.status, 200);
      assert.equal(root.body.toString(), 'Hello World!');
      const query = json(await viaFcgi(pair, 'GET', '/query?a=1&b=two&b=three'));
      assert.deepEqual([query.a].flat(), ['1']);
      assert.deepEqual([query.b].flat(), ['two', 'three']);
      assert.equal((await viaFcgi(pair, 'GET', '/no-such-route')).status, 404);
    });

    test('a JSON body is parsed', async () => {
      const answer = await viaFcgi(pair, 'POST', '/json', { headers: { 'content-type': 'application/json' }, body: '{"a":[1,2],"b":"\u00e9"}' });
      assert.equal(answer.status, 201);
      assert.deepEqual(json(answer), { received: { a: [1, 2], b: '\u00e9' } });
    });

    test('a streamed upload arrives whole', async () => {
      const size = 3 * 1024 * 1024 + 17;
      const data = Buffer.from(patternBytes(0, size));
      async function* pieces(): AsyncGenerator<Buffer> {
        for (let offset = 0; offset < size; offset += 50_000) {
          yield data.subarray(offset, Math.min(size, offset + 50_000));
          if (offset % 1_000_000 === 0) await sleep(1);
        }
      }
      const response = await pair.client.request({
        params: paramsFor('POST', '/upload', { headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) } }),
        body: Readable.from(pieces()),
      });
      assert.equal(response.status, 200);
      assert.deepEqual(JSON.parse(await response.text()), { bytes: size, sha256: createHash('sha256').update(data).digest('hex') });
    });

    test('a streamed response comes without chunk framing', async () => {
      const answer = await viaFcgi(pair, 'GET', '/stream?chunks=5&size=1000');
      assert.equal(answer.status, 200);
      assert.equal(answer.body.length, 5000);
      assert.deepEqual(answer.body, Buffer.from(patternBytes(0, 5000)));
      assert.equal(header(answer, 'transfer-encoding').length, 0);
    });

    test('redirects: Status 302 and Location', async () => {
      const answer = await viaFcgi(pair, 'GET', '/redirect');
      assert.equal(answer.status, 302);
      assert.deepEqual(header(answer, 'location'), ['/target']);
    });

    test('cookies: Set-Cookie repeated, one line each', async () => {
      const answer = await viaFcgi(pair, 'GET', '/cookies');
      const cookies = header(answer, 'set-cookie');
      assert.equal(cookies.length, 2);
      assert.match(cookies[0]!, /^a=1; Path=\//i);
      assert.match(cookies[1]!, /^b=2; Path=\/; HttpOnly/i);
    });

    test('the client connection: remote address and port from the params, HTTPS from the web server', async () => {
      const plain = json(await viaFcgi(pair, 'GET', '/info', { params: { REMOTE_ADDR: '203.0.113.9', REMOTE_PORT: '4242' } }));
      assert.equal(plain.remoteAddress, '203.0.113.9');
      assert.equal(plain.remotePort, 4242);
      assert.equal(plain.encrypted, false);
      if (name !== 'connect') {
        assert.equal(plain.ip, '203.0.113.9');
        assert.equal(plain.protocol, 'http');
        assert.equal(plain.hostname, 'localhost');
      }
      const secure = json(await viaFcgi(pair, 'GET', '/info', { params: { HTTPS: 'on', SERVER_PORT: '443' } }));
      assert.equal(secure.encrypted, true);
      if (name !== 'connect') assert.equal(secure.protocol, 'https');
      if (name.startsWith('express') || name === 'koa') assert.equal(secure.secure, true);
      assert.equal(secure.httpVersion, '1.1');
    });

    test('HEAD, 204 and 304 come without a body', async () => {
      const head = await viaFcgi(pair, 'HEAD', '/');
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      assert.deepEqual(header(head, 'content-length'), ['12']);
      const empty = await viaFcgi(pair, 'GET', '/empty');
      assert.equal(empty.status, 204);
      assert.equal(empty.body.length, 0);
      const fresh = await viaFcgi(pair, 'GET', '/etag', { headers: { 'if-none-match': '"v1"' } });
      assert.equal(fresh.status, 304);
      assert.equal(fresh.body.length, 0);
      assert.deepEqual(header(fresh, 'etag'), ['"v1"']);
      const stale = await viaFcgi(pair, 'GET', '/etag', { headers: { 'if-none-match': '"v0"' } });
      assert.equal(stale.status, 200);
      assert.equal(stale.body.toString(), 'etag body');
    });

    test('an error in a route is the framework\'s 500, and the next request is served', async () => {
      const answer = await viaFcgi(pair, 'GET', '/error');
      assert.equal(answer.status, 500);
      assert.equal((await viaFcgi(pair, 'GET', '/')).status, 200);
    });

    test('req and res are Node\'s IncomingMessage and ServerResponse', async () => {
      pair.log.clear();
      await viaFcgi(pair, 'GET', '/instance');
      const seen = pair.log.instances[0];
      assert.ok(seen !== undefined, 'the app saw the request');
      assert.ok(seen.req instanceof IncomingMessage, 'req instanceof http.IncomingMessage');
      assert.ok(seen.res instanceof ServerResponse, 'res instanceof http.ServerResponse');
      assert.equal(seen.req.headers.host, 'localhost');
    });

    test('FCGI_ABORT_REQUEST: \'aborted\' and \'close\' on the request, \'close\' on the response', async () => {
      pair.log.clear();
      const peer = await RawPeer.connect(pair.address);
      try {
        peer.sendRequest(1, requestParams('GET', '/wait'));
        await pair.log.waitFor(['wait']);
        peer.sendAbort(1);
        await pair.log.waitFor(['req:aborted', 'req:close', 'res:close']);
        const end = await peer.waitForEnd(1);
        assert.equal(end.endCount, 1);
        assert.equal(end.stdout.length, 0, 'nothing is written for an aborted request');
      } finally {
        peer.close();
      }
    });

    test('a dropped connection: \'aborted\' and \'close\' on the request, \'close\' on the response', async () => {
      pair.log.clear();
      const peer = await RawPeer.connect(pair.address);
      peer.sendRequest(1, requestParams('GET', '/wait'));
      await pair.log.waitFor(['wait']);
      peer.close();
      await pair.log.waitFor(['req:aborted', 'req:close', 'res:close']);
      assert.equal((await viaFcgi(pair, 'GET', '/')).status, 200, 'the server goes on');
    });

    test('an upgrade request gets a 501 and the app is not called', async () => {
      const before = pair.calls.count;
      const answer = await viaFcgi(pair, 'GET', '/', { headers: { upgrade: 'websocket', connection: 'keep-alive, Upgrade' } });
      assert.equal(answer.status, 501);
      assert.match(answer.body.toString(), /FastCGI/);
      assert.equal(pair.calls.count, before, 'the listener was not called');
    });

    test('backpressure: a big streamed response to a slow reader waits for it', async () => {
      pair.log.clear();
      const chunks = 1024;
      const size = 32 * 1024;
      const response = await pair.client.request({ params: paramsFor('GET', `/stream?chunks=${chunks}&size=${size}`, {}) });
      // The client is not reading: production must come to a stop, far short of the whole 32 MiB.
      let produced = -1;
      let steady = 0;
      for (let waited = 0; steady < 3 && waited < 10_000; waited += 100) {
        await sleep(100);
        steady = pair.log.chunks.length === produced ? steady + 1 : 0;
        produced = pair.log.chunks.length;
      }
      assert.ok(steady >= 3, `production stopped while nobody read (${produced} chunks so far)`);
      assert.ok(produced * size < 8 * 1024 * 1024, `produced ${produced} chunks (${produced * size} bytes) while nobody read`);
      // res.write() said "wait" (and 'drain' came) on the way.
      const body = await response.bytes();
      assert.equal(body.length, chunks * size);
      assert.equal(body.subarray(size * 500, size * 500 + 64).equals(Buffer.from(patternBytes(size * 500, 64))), true, 'bytes in place');
      assert.equal(pair.log.chunks.length, chunks);
      assert.ok(pair.log.events.includes('res:drain'), 'the response emitted drain, so a write had returned false');
      if (name.startsWith('express') || name === 'connect') {
        assert.ok(pair.log.chunks.some((chunk) => chunk.accepted === false), 'res.write() returned false at some point');
      }
    });
  });
}

describe('Fastify through serverFactory', () => {
  test('the handler Fastify gives its serverFactory is served by a nodefpm server returned from it', async () => {
    const logs = captureLogger();
    const dir = tempDir();
    const app = Fastify({
      // Fastify's documented hook for a custom server: it hands over its request handler and uses the
      // server returned (here nodefpm's, which Fastify never listens on itself).
      serverFactory: (handler) => createNodeServer(handler, { logger: logs }) as unknown as http.Server,
    });
    addRoutes(app, {});
    await app.ready();
    const server = app.server as unknown as FcgiServer;
    const address = formatListenAddress(await server.listen(`unix:${join(dir.path, 'app.sock')}`));
    const client = new FcgiClient({ address });
    try {
      const response = await client.request({ params: requestParams('GET', '/query?x=1') });
      assert.equal(response.status, 200);
      assert.deepEqual(JSON.parse(await response.text()), { x: '1' });
    } finally {
      client.destroy();
      await app.close();
      await server.close({ timeout: 1000 });
      dir.remove();
    }
  });
});
