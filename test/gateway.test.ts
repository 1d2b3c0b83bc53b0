// The built-in HTTP front in front of a nodefpm server (and a scripted FastCGI app) in this process: params as nginx sends them, bodies both ways with backpressure, CGI heads, errors, aborts, script mode, files.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { createGateway, type Gateway, type GatewayOptions } from '../src/gateway/index.js';
import type { CreateServerOptions, Handler, Response } from '../src/index.js';
import {
  KEEP_CONN,
  ProtocolStatus,
  RecordParser,
  RecordType,
  decodeBeginRequest,
  decodePairList,
  encodeEndRequest,
  encodeRecord,
  encodeStream,
} from '../src/protocol/index.js';
import { captureLogger, type CaptureLogger } from './helpers/log-capture.js';
import { startServer, tempDir, type TestServer } from './helpers/servers.js';
import { request, write, type HttpResult } from './helpers/http-request.js';

const MiB = 1024 * 1024;
const TIMEOUT = 120_000;
/** Downloads repeat this block, so expected hashes can be computed without holding the whole body. */
const PATTERN = randomBytes(64 * 1024);

// ---- the nodefpm app behind the front ----

/** Resolvers the app calls at points a test waits for, named by the request's x-gate header (plus a suffix). */
const gates = new Map<string, () => void>();
/** Download progress by x-gate name. */
const progress = new Map<string, { written: number; waiting: boolean; stop: boolean }>();

function openGate(name: string): Promise<void> {
  return new Promise((resolve) => {
    gates.set(name, () => {
      gates.delete(name);
      resolve();
    });
  });
}

function callGate(name: string | undefined): void {
  if (name !== undefined) gates.get(name)?.();
}

function waitDrain(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

interface Echo {
  method: string;
  params: Record<string, string>;
  bodyLength: number;
  bodySha256: string;
}

/**
 * Routes on the path:
 *   /status      404 "Custom Reason" with two Set-Cookie headers
 *   /download    ?size=N bytes of PATTERN (or endless with no size) honouring backpressure; progress by x-gate
 *   /stderr      two lines on FCGI_STDERR, then "ok"
 *   /hold        calls gate `<x-gate>:started`, then waits for req.signal (calls `<x-gate>:aborted`) or 30 s
 *   /slow        ?ms=N before answering; calls `<x-gate>:aborted` if req.signal fires
 *   /head        an explicit Content-Length of 11 and "hello world"
 *   /noread      waits for gate `<x-gate>:read` before reading the body, then echoes
 *   /accel       X-Accel-Redirect: /protected/file.txt with a cookie and a fallback body
 *   /sendfile    X-Sendfile: ?path, status 200, its own Content-Type
 *   anything else: reads the body (gate `<x-gate>:first` at the first chunk) and echoes method, params, body length and hash
 */
const app: Handler = async (req, res) => {
  const url = new URL(req.url, 'http://app.invalid');
  const gate = req.header('x-gate');
  switch (url.pathname) {
    case '/status':
      res.statusCode = 404;
      res.statusMessage = 'Custom Reason';
      res.appendHeader('Set-Cookie', 'a=1; Path=/');
      res.appendHeader('Set-Cookie', 'b=2; Path=/; HttpOnly');
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('custom not found\n');
      return;
    case '/download': {
      const size = url.searchParams.get('size');
      let left = size === null ? Infinity : Number(size);
      const state = { written: 0, waiting: false, stop: false };
      if (gate !== undefined) progress.set(gate, state);
      req.signal.addEventListener('abort', () => callGate(`${gate}:aborted`));
      res.setHeader('Content-Type', 'application/octet-stream');
      while (left > 0 && !state.stop && !req.aborted && state.written < 1024 * MiB) {
        const piece = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
        left -= piece.length;
        state.written += piece.length;
        if (!res.write(piece)) {
          state.waiting = true;
          await waitDrain(res);
          state.waiting = false;
        }
      }
      res.end();
      return;
    }
    case '/stderr':
      res.writeStderr('first line from the app\nsecond line from the app\n');
      res.end('ok\n');
      return;
    case '/hold':
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 30_000);
        req.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          callGate(`${gate}:aborted`);
          resolve();
        });
        callGate(`${gate}:started`);
      });
      res.end('held\n');
      return;
    case '/slow':
      req.signal.addEventListener('abort', () => callGate(`${gate}:aborted`));
      await sleep(Number(url.searchParams.get('ms') ?? '1000'));
      res.end('slow answer\n');
      return;
    case '/head':
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('Content-Length', '11');
      res.end('hello world');
      return;
    case '/accel':
      res.setHeader('X-Accel-Redirect', '/protected/file.txt');
      res.setHeader('Content-Type', 'text/html');
      res.appendHeader('Set-Cookie', 'seen=1; Path=/');
      res.end('fallback body from the app\n');
      return;
    case '/sendfile':
      res.setHeader('X-Sendfile', url.searchParams.get('path') ?? '');
      res.setHeader('Content-Type', 'application/x-custom');
      res.end('fallback body from the app\n');
      return;
    default:
      break;
  }
  if (url.pathname === '/noread' && gate !== undefined) await openGatePromise(`${gate}:read`);
  const hash = createHash('sha256');
  let bodyLength = 0;
  for await (const chunk of req.body) {
    if (bodyLength === 0) callGate(`${gate}:first`);
    hash.update(chunk);
    bodyLength += chunk.length;
  }
  const echo: Echo = { method: req.method, params: { ...req.params }, bodyLength, bodySha256: hash.digest('hex') };
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(echo));
};

/** Gates the app itself waits on (test opens them by calling gates.get(name)). */
const appGates = new Map<string, Promise<void>>();
function openGatePromise(name: string): Promise<void> {
  let promise = appGates.get(name);
  if (promise === undefined) {
    promise = openGate(name);
    appGates.set(name, promise);
  }
  return promise;
}

// ---- a scripted FastCGI app, for CGI heads nodefpm itself would never write ----

interface RawRequest {
  params: Array<[string, string]>;
  stdin: Buffer;
  keepConn: boolean;
}

interface RawAnswer {
  stdout?: string | Buffer;
  stderr?: string;
  protocolStatus?: number;
}

interface RawApp {
  address: string;
  requests: RawRequest[];
  connections: number;
  close(): Promise<void>;
}

/** A FastCGI app answering each request with what `script` returns, once its STDIN has ended. */
async function startRawApp(script: (request: RawRequest) => RawAnswer | Promise<RawAnswer>): Promise<RawApp> {
  const dir = tempDir('nodefpm-gw-raw-');
  const sockets = new Set<net.Socket>();
  const state: RawApp = {
    address: `unix:${join(dir.path, 'raw.sock')}`,
    requests: [],
    connections: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      dir.remove();
    },
  };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const pending = new Map<number, { keepConn: boolean; params: Buffer[]; stdin: Buffer[]; paramsDone: boolean }>();
    const parser = new RecordParser({
      onRecord: (type, id, content) => {
        if (type === RecordType.BeginRequest) {
          pending.set(id, { keepConn: (decodeBeginRequest(content).flags & KEEP_CONN) !== 0, params: [], stdin: [], paramsDone: false });
          return;
        }
        const request = pending.get(id);
        if (request === undefined) return;
        if (type === RecordType.Params) {
          if (content.length === 0) request.paramsDone = true;
          else request.params.push(Buffer.from(content));
        } else if (type === RecordType.Stdin) {
          if (content.length > 0) {
            request.stdin.push(Buffer.from(content));
            return;
          }
          pending.delete(id);
          const seen: RawRequest = { params: decodePairList(Buffer.concat(request.params)), stdin: Buffer.concat(request.stdin), keepConn: request.keepConn };
          state.requests.push(seen);
          void Promise.resolve(script(seen)).then((answer) => {
            if (socket.destroyed) return;
            const out: Buffer[] = [];
            if (answer.stderr !== undefined) out.push(encodeStream(RecordType.Stderr, id, Buffer.from(answer.stderr), true));
            if (answer.stdout !== undefined) out.push(encodeStream(RecordType.Stdout, id, Buffer.from(answer.stdout), true));
            else if (answer.protocolStatus === undefined) out.push(encodeRecord(RecordType.Stdout, id));
            out.push(encodeEndRequest(id, 0, answer.protocolStatus ?? ProtocolStatus.RequestComplete));
            socket.write(Buffer.concat(out));
            if (!seen.keepConn) socket.end();
          });
        }
      },
    });
    socket.on('data', (chunk: Buffer) => {
      if (parser.push(chunk) !== undefined) socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(join(dir.path, 'raw.sock'), resolve));
  return state;
}

// ---- set-up ----

interface Setup {
  gateway: Gateway;
  backend: TestServer;
  logs: CaptureLogger;
  origin: string;
  port: number;
  agent: http.Agent;
  /** The gateway's log, for assertion messages. */
  context(): string;
}

function describeLogs(logs: CaptureLogger): string {
  return logs.entries.map((entry) => `[${entry.level}] ${entry.message} ${inspect(entry.fields, { breakLength: Infinity })}`).join('\n');
}

/** Runs `body` with a nodefpm server, a gateway in front of it (on 127.0.0.1:0), and a keep-alive agent; tears all down after. */
async function withGateway(
  options: Partial<GatewayOptions>,
  body: (setup: Setup) => Promise<void>,
  serverOptions: CreateServerOptions = {},
): Promise<void> {
  const backend = await startServer(app, serverOptions);
  const logs = captureLogger();
  let gateway: Gateway | null = null;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  try {
    gateway = createGateway({ upstream: backend.address, logger: logs, ...options });
    const bound = await gateway.listen('127.0.0.1:0');
    assert.ok(bound.url !== null, 'a TCP address has a URL');
    const port = bound.address.kind === 'tcp' ? bound.address.port : 0;
    const started = gateway;
    await body({ gateway: started, backend, logs, origin: bound.url, port, agent, context: () => `\n--- gateway log ---\n${describeLogs(logs)}` });
  } finally {
    agent.destroy();
    await gateway?.close({ timeout: 2000 });
    await backend.close();
  }
}

/** The JSON body of a raw HTTP answer (which rawHttp returns as Latin-1 text): decoded as the UTF-8 it is. */
function rawJson<T>(answer: string): T {
  return JSON.parse(Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8')) as T;
}

/** Sends raw bytes on a new connection and returns everything the server sent until it closed (as Latin-1 text). */
function rawHttp(port: number, text: string | Buffer, options: { host?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, options.host ?? '127.0.0.1');
    let out = '';
    socket.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(TIMEOUT, () => socket.destroy(new Error('raw HTTP exchange timed out')));
    socket.write(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  });
}

function echoOf(result: HttpResult, setup: Setup): Echo {
  assert.equal(result.status, 200, `status of an echo: ${result.status} ${result.body.toString('utf8').slice(0, 300)}${setup.context()}`);
  return JSON.parse(result.body.toString('utf8')) as Echo;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Waits until `condition()` holds, polling; false after `ms`. */
async function eventually(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The bytes of a param as the app sees them (Latin-1 chars) read as UTF-8. */
function utf8(param: string | undefined): string {
  return Buffer.from(param ?? '', 'latin1').toString('utf8');
}

// ---- params ----

test('params: the names, order and values nginx with Debian fastcgi_params sends for a GET', { timeout: TIMEOUT }, async () => {
  const raw = await startRawApp(() => ({ stdout: 'Content-Type: text/plain\r\n\r\nok' }));
  const logs = captureLogger();
  const gateway = createGateway({ upstream: raw.address, logger: logs, documentRoot: '/srv/www' });
  try {
    const { url, address } = await gateway.listen('127.0.0.1:0');
    assert.ok(url !== null && address.kind === 'tcp', 'listening on TCP');
    const result = await request(url, '/echo/path?x=1&y=two%20words&z=%C3%A9', { headers: { 'X-Test': 'hello gateway', Connection: 'keep-alive' } });
    assert.equal(result.status, 200, describeLogs(logs));
    const params = raw.requests[0]!.params;
    // What nginx 1.22.1 sent for this request (test/interop/nginx.test.ts prints it), in its order; the
    // front leaves out HTTP_CONNECTION (hop-by-hop) and keeps the port in HTTP_HOST.
    const nginxOrder = [
      'QUERY_STRING', 'REQUEST_METHOD', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'SCRIPT_NAME', 'REQUEST_URI', 'DOCUMENT_URI', 'DOCUMENT_ROOT',
      'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'REMOTE_ADDR', 'REMOTE_PORT', 'REMOTE_USER',
      'SERVER_ADDR', 'SERVER_PORT', 'SERVER_NAME', 'REDIRECT_STATUS', 'HTTP_HOST', 'HTTP_X_TEST',
    ];
    assert.deepEqual(params.map(([name]) => name), nginxOrder);
    const map = new Map(params);
    assert.equal(map.get('QUERY_STRING'), 'x=1&y=two%20words&z=%C3%A9');
    assert.equal(map.get('REQUEST_URI'), '/echo/path?x=1&y=two%20words&z=%C3%A9');
    assert.equal(map.get('SCRIPT_NAME'), '/echo/path');
    assert.equal(map.get('DOCUMENT_URI'), '/echo/path');
    assert.equal(map.get('DOCUMENT_ROOT'), '/srv/www');
    assert.equal(map.get('CONTENT_LENGTH'), '', 'nginx sends CONTENT_LENGTH="" for a GET');
    assert.equal(map.get('CONTENT_TYPE'), '', 'nginx sends CONTENT_TYPE="" for a GET');
    assert.equal(map.get('SERVER_PROTOCOL'), 'HTTP/1.1');
    assert.equal(map.get('REQUEST_SCHEME'), 'http');
    assert.equal(map.get('GATEWAY_INTERFACE'), 'CGI/1.1');
    assert.match(map.get('SERVER_SOFTWARE') ?? '', /^nodefpm\/\d+\.\d+\.\d+/);
    assert.equal(map.get('REMOTE_ADDR'), '127.0.0.1');
    assert.match(map.get('REMOTE_PORT') ?? '', /^\d+$/);
    assert.equal(map.get('REMOTE_USER'), '');
    assert.equal(map.get('SERVER_ADDR'), '127.0.0.1');
    assert.equal(map.get('SERVER_PORT'), String(address.port));
    assert.equal(map.get('SERVER_NAME'), '127.0.0.1');
    assert.equal(map.get('REDIRECT_STATUS'), '200');
    assert.equal(map.get('HTTP_HOST'), `127.0.0.1:${address.port}`);
    assert.equal(map.get('HTTP_X_TEST'), 'hello gateway');
  } finally {
    await gateway.close();
    await raw.close();
  }
});

test('params through to a nodefpm app: POST lengths, unicode paths, repeated headers, cookies, and what is dropped', { timeout: TIMEOUT }, async () => {
  await withGateway({}, async (s) => {
    const post = echoOf(await request(s.origin, '/form?a=1', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' }), s);
    assert.equal(post.method, 'POST');
    assert.equal(post.params.CONTENT_LENGTH, '5');
    assert.equal(post.params.CONTENT_TYPE, 'text/plain');
    assert.equal(post.params.HTTP_CONTENT_LENGTH, '5', 'nginx also sends the HTTP_ copies');
    assert.equal(post.params.HTTP_CONTENT_TYPE, 'text/plain');
    assert.equal(post.bodyLength, 5);

    // Percent-decoded, ".." resolved, %2F a slash: nginx's $uri; REQUEST_URI and QUERY_STRING stay raw.
    // Sent raw: Node's http client would resolve the ".." itself.
    const unicodeRaw = await rawHttp(s.port, 'GET /caf%C3%A9/x/../%E2%9C%93%2Fdone?q=%C3%A9&r=%2F HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    const unicode = rawJson<Echo>(unicodeRaw);
    assert.equal(utf8(unicode.params.SCRIPT_NAME), '/café/✓/done');
    assert.equal(utf8(unicode.params.DOCUMENT_URI), '/café/✓/done');
    assert.equal(unicode.params.REQUEST_URI, '/caf%C3%A9/x/../%E2%9C%93%2Fdone?q=%C3%A9&r=%2F');
    assert.equal(unicode.params.QUERY_STRING, 'q=%C3%A9&r=%2F');

    const raw = await rawHttp(
      s.port,
      'GET /headers HTTP/1.1\r\nHost: Example.TEST:8080\r\nX-Multi: one\r\nCookie: a=1\r\nx-multi: two\r\nCookie: b=2\r\n' +
        'X_Under: sneaky\r\nX-Under: plain\r\nProxy: http://evil.example\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Hop: h\r\n' +
        'X-Latin: caf\xe9\r\nConnection: close, X-Hop\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1\.1 200 /, raw);
    const headers = rawJson<Echo>(raw).params;
    assert.equal(headers.HTTP_HOST, 'example.test:8080', 'host lower-cased, port kept');
    assert.equal(headers.SERVER_NAME, 'example.test');
    assert.equal(headers.HTTP_X_MULTI, 'one, two', 'repeated headers joined with ", "');
    assert.equal(headers.HTTP_COOKIE, 'a=1; b=2', 'cookies joined with "; "');
    assert.equal(headers.HTTP_X_UNDER, 'plain', 'X_Under is dropped, so it cannot pose as X-Under');
    assert.equal(headers.HTTP_X_LATIN, 'caf\xe9', 'header bytes pass as they are');
    for (const gone of ['HTTP_PROXY', 'HTTP_KEEP_ALIVE', 'HTTP_TE', 'HTTP_CONNECTION', 'HTTP_X_HOP']) {
      assert.equal(headers[gone], undefined, `${gone} is not passed on`);
    }

    // Absolute-form target: its host wins, REQUEST_URI is path and query (as nginx's $request_uri).
    const absolute = await rawHttp(s.port, 'GET http://Other.Example:81/abs?x=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n');
    const absoluteParams = rawJson<Echo>(absolute).params;
    assert.equal(absoluteParams.HTTP_HOST, 'other.example:81');
    assert.equal(absoluteParams.REQUEST_URI, '/abs?x=1');
    // HTTP/1.0 without Host: HTTP_HOST falls back to the server name, as nginx's $host does.
    const old = await rawHttp(s.port, 'GET /old HTTP/1.0\r\n\r\n');
    const oldParams = rawJson<Echo>(old).params;
    assert.equal(oldParams.SERVER_PROTOCOL, 'HTTP/1.0');
    assert.equal(oldParams.HTTP_HOST, '127.0.0.1');
  });
});

test('requests nginx refuses are refused with 400 before reaching the app, and logged', { timeout: TIMEOUT }, async () => {
  await withGateway({}, async (s) => {
    const before = s.backend.server.stats.requestsStarted;
    for (const [text, what] of [
      ['GET /a%00b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', '%00'],
      ['GET /a%zzb HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 'a bad escape'],
      ['GET /../etc/passwd HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', '".." above the root'],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n', 'two Host headers'],
      ['GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n', 'a malformed Host'],
    ] as const) {
      const answer = await rawHttp(s.port, text);
      assert.match(answer, /^HTTP\/1\.1 400 /, `${what}: ${answer}`);
    }
    assert.equal(s.backend.server.stats.requestsStarted, before, 'none of them reached the app');
    assert.ok(s.logs.find('NODEFPM_GATEWAY_BAD_REQUEST').length >= 5, `each refusal logged with its code${s.context()}`);
    assert.equal(s.gateway.stats.errors[400], 5);
  });
});

// ---- bodies ----

test('a 64 MiB upload (Content-Length) and a 64 MiB download stream through whole', { timeout: TIMEOUT }, async (t: TestContext) => {
  await withGateway({}, async (s) => {
    const size = 64 * MiB + 123;
    const hash = createHash('sha256');
    const upload = await request(s.origin, '/upload', {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': size },
      stream: async (req) => {
        for (let offset = 0; offset < size; offset += PATTERN.length) {
          const piece = PATTERN.subarray(0, Math.min(PATTERN.length, size - offset));
          hash.update(piece);
          await write(req, piece);
        }
      },
    });
    const echo = echoOf(upload, s);
    assert.equal(echo.bodyLength, size);
    assert.equal(echo.bodySha256, hash.digest('hex'));
    assert.equal(echo.params.CONTENT_LENGTH, String(size));

    const expected = createHash('sha256');
    for (let offset = 0; offset < size; offset += PATTERN.length) expected.update(PATTERN.subarray(0, Math.min(PATTERN.length, size - offset)));
    const got = createHash('sha256');
    let length = 0;
    let peak = 0;
    const base = process.memoryUsage().arrayBuffers;
    await new Promise<void>((resolve, reject) => {
      http.get(new URL(`/download?size=${size}`, s.origin), (res) => {
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['transfer-encoding'], 'chunked', 'no Content-Length from the app: Node chunks the body');
        res.on('data', (chunk: Buffer) => {
          got.update(chunk);
          length += chunk.length;
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
        });
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(length, size);
    assert.equal(got.digest('hex'), expected.digest('hex'));
    t.diagnostic(`download: peak growth of arrayBuffers in this process (client, gateway and app together, garbage not yet collected included) ${(peak / MiB).toFixed(1)} MiB for ${Math.round(size / MiB)} MiB`);
  });
});

test('download backpressure: an HTTP client that stops reading holds the app back; nothing is lost', { timeout: TIMEOUT }, async (t: TestContext) => {
  await withGateway({}, async (s) => {
    const gate = 'firehose';
    const received = createHash('sha256');
    let length = 0;
    let response: http.IncomingMessage | null = null;
    const done = new Promise<void>((resolve, reject) => {
      http.get(new URL('/download', s.origin), { headers: { 'X-Gate': gate } }, (res) => {
        response = res;
        res.pause();
        res.on('data', (chunk: Buffer) => {
          received.update(chunk);
          length += chunk.length;
        });
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.ok(await eventually(() => progress.get(gate)?.waiting === true, 30_000), 'the app saw res.write() return false');
    // Stable: the app stays blocked, its total written no longer moves.
    const stalledAt = progress.get(gate)!.written;
    await sleep(500);
    const state = progress.get(gate)!;
    assert.equal(state.written, stalledAt, 'the app wrote nothing more while the client did not read');
    assert.ok(state.written < 64 * MiB, `the app was held back after ${(state.written / MiB).toFixed(1)} MiB (sockets and buffers on the way), not allowed to write on`);
    t.diagnostic(`a paused HTTP client held the app back after ${(state.written / MiB).toFixed(1)} MiB written`);
    state.stop = true;
    (response as http.IncomingMessage | null)?.resume();
    await within(done, TIMEOUT, 'the download did not finish once the client read again');
    const expected = createHash('sha256');
    for (let offset = 0; offset < length; offset += PATTERN.length) expected.update(PATTERN.subarray(0, Math.min(PATTERN.length, length - offset)));
    assert.equal(length % PATTERN.length, 0, 'whole blocks arrived');
    assert.equal(received.digest('hex'), expected.digest('hex'), 'every byte arrived, in order');
  });
});

test('upload backpressure: an app that does not read holds the HTTP client back; then the body arrives whole', { timeout: TIMEOUT }, async (t: TestContext) => {
  await withGateway({}, async (s) => {
    const gate = 'slow-reader';
    const size = 256 * MiB;
    const hash = createHash('sha256');
    let sent = 0;
    let stalledAt = -1;
    const result = request(s.origin, '/noread', {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': size, 'X-Gate': gate },
      stream: async (req) => {
        while (sent < size) {
          const piece = PATTERN.subarray(0, Math.min(PATTERN.length, size - sent));
          hash.update(piece);
          sent += piece.length;
          if (!req.write(piece)) {
            const drained = once(req, 'drain').then(() => true);
            if (stalledAt < 0 && !(await Promise.race([drained, sleep(1500).then(() => false)]))) {
              // No drain for 1.5 s: the whole chain is full. Let the app read now.
              stalledAt = sent;
              gates.get(`${gate}:read`)?.();
            }
            await drained;
          }
        }
      },
    });
    const echo = echoOf(await within(result, TIMEOUT, 'the upload got no answer'), s);
    assert.ok(stalledAt > 0, 'the client was held back while the app did not read');
    assert.ok(stalledAt < 64 * MiB, `held back after ${(stalledAt / MiB).toFixed(1)} MiB of ${size / MiB} MiB`);
    t.diagnostic(`an app not reading held the HTTP client back after ${(stalledAt / MiB).toFixed(1)} MiB sent`);
    assert.equal(echo.bodyLength, size);
    assert.equal(echo.bodySha256, hash.digest('hex'));
  });
});

test('chunked uploads: streamed by default with CONTENT_LENGTH="" (nginx unbuffered), spooled to learn the length with chunkedUploads "buffer"', { timeout: TIMEOUT }, async () => {
  const body = randomBytes(3 * MiB + 17);
  await withGateway({}, async (s) => {
    const gate = 'chunked';
    const first = openGate(`${gate}:first`);
    const result = request(s.origin, '/chunked', {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'X-Gate': gate },
      stream: async (req) => {
        await write(req, body.subarray(0, 256 * 1024));
        // Streaming means the app sees bytes while the client still holds the rest back.
        await within(first, 30_000, 'the app saw no body bytes before the client sent the rest: not streamed');
        for (let offset = 256 * 1024; offset < body.length; offset += 100_000) await write(req, body.subarray(offset, Math.min(body.length, offset + 100_000)));
      },
    });
    const echo = echoOf(await result, s);
    assert.equal(echo.params.CONTENT_LENGTH, '', 'unbuffered chunked: CONTENT_LENGTH=""');
    assert.equal(echo.params.HTTP_TRANSFER_ENCODING, 'chunked', 'kept, as nginx keeps it, so apps know a body comes');
    assert.equal(echo.bodyLength, body.length);
    assert.equal(echo.bodySha256, sha256(body));
  });
  const spoolDir = mkdtempSync(join(tmpdir(), 'nodefpm-gw-spool-'));
  try {
    await withGateway({ chunkedUploads: 'buffer', bodyMemoryBytes: 64 * 1024, tempDir: spoolDir }, async (s) => {
      for (const size of [1000, body.length]) {
        const result = await request(s.origin, '/buffered', {
          method: 'POST',
          stream: async (req) => {
            for (let offset = 0; offset < size; offset += 100_000) await write(req, body.subarray(offset, Math.min(size, offset + 100_000)));
          },
        });
        const echo = echoOf(result, s);
        assert.equal(echo.params.CONTENT_LENGTH, String(size), 'spooled: the length is known');
        assert.equal(echo.bodyLength, size);
        assert.equal(echo.bodySha256, sha256(body.subarray(0, size)));
      }
      assert.deepEqual(readdirSync(spoolDir), [], 'no spool file is left behind');
    });
  } finally {
    rmSync(spoolDir, { recursive: true, force: true });
  }
});

test('maxBodyBytes: 413 for a declared length before the app sees anything, and for a chunked body that grows past it', { timeout: TIMEOUT }, async () => {
  await withGateway({ maxBodyBytes: MiB }, async (s) => {
    const before = s.backend.server.stats.requestsStarted;
    const declared = await request(s.origin, '/big', { method: 'POST', body: Buffer.alloc(2 * MiB) }).catch((error: Error) => error);
    // The client may see the 413 or, having sent on into a closed connection, a reset: both say "refused".
    if (!(declared instanceof Error)) assert.equal(declared.status, 413, 'declared too large');
    assert.equal(s.backend.server.stats.requestsStarted, before, 'a declared length over the limit never reaches the app');
    const chunked = await request(s.origin, '/big', {
      method: 'POST',
      stream: async (req) => {
        for (let i = 0; i < 32; i++) await write(req, PATTERN);
      },
    }).catch((error: Error) => error);
    if (!(chunked instanceof Error)) assert.equal(chunked.status, 413, 'chunked too large');
    assert.ok((await s.logs.waitFor('NODEFPM_BODY_TOO_LARGE', 10_000)).level === 'warn', 'the refusal is logged as a warning');
    assert.ok((s.gateway.stats.errors[413] ?? 0) >= 1, `413 counted${s.context()}`);
    const after = echoOf(await request(s.origin, '/after'), s);
    assert.equal(after.method, 'GET', 'the front still serves');
  });
});

test('Expect: 100-continue: 100 comes when the body is wanted; a body over the limit gets 413 without it', { timeout: TIMEOUT }, async () => {
  await withGateway({ maxBodyBytes: 1000 }, async (s) => {
    const socket = net.connect(s.port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.write('POST /continue HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    assert.ok(await eventually(() => text.includes('100 Continue'), 10_000), `the front sent 100 Continue: ${JSON.stringify(text)}`);
    assert.ok(!text.includes('200 OK'), 'no final answer before the body');
    socket.write('hello');
    await once(socket, 'close');
    const final = text.slice(text.indexOf('\r\n\r\n') + 4);
    assert.match(final, /^HTTP\/1\.1 200 OK/, final);
    const echo = JSON.parse(final.slice(final.indexOf('\r\n\r\n') + 4)) as Echo;
    assert.equal(echo.bodyLength, 5);
    assert.equal(echo.params.HTTP_EXPECT, '100-continue');

    const refused = await rawHttp(s.port, 'POST /continue HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
    assert.match(refused, /^HTTP\/1\.1 413 /, refused);
    assert.ok(!refused.includes('100 Continue'), 'no 100 Continue for a body that will be refused');
  });
});

// ---- responses ----

test('responses: custom reason and repeated Set-Cookie kept; HEAD without a body, the connection reused after', { timeout: TIMEOUT }, async () => {
  await withGateway({}, async (s) => {
    const status = await request(s.origin, '/status', { agent: s.agent });
    assert.equal(status.status, 404);
    assert.equal(status.statusMessage, 'Custom Reason', 'the reason phrase is kept, as nginx keeps it');
    assert.deepEqual(status.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
    assert.equal(status.body.toString(), 'custom not found\n');

    const head = await request(s.origin, '/head', { method: 'HEAD', agent: s.agent });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '11', "the app's Content-Length is passed for HEAD");
    assert.equal(head.body.length, 0);
    const bigHead = await request(s.origin, '/download?size=1000000', { method: 'HEAD', agent: s.agent });
    assert.equal(bigHead.status, 200);
    assert.equal(bigHead.body.length, 0);
    const after = await request(s.origin, '/head', { agent: s.agent });
    assert.equal(after.body.toString(), 'hello world', 'the connection still works after a HEAD whose app body was dropped');
    // An app that answers without reading a big body: the rest is drained so the HTTP connection carries on.
    const unread = await request(s.origin, '/status', { method: 'POST', body: Buffer.alloc(4 * MiB, 0x62), agent: s.agent });
    assert.equal(unread.status, 404);
    const next = await request(s.origin, '/head', { agent: s.agent });
    assert.equal(next.body.toString(), 'hello world', 'the next request on the kept HTTP connections is served');
    assert.ok(s.backend.server.stats.connectionsAccepted <= 2, `FastCGI connections reused: ${s.backend.server.stats.connectionsAccepted}`);
  });
});

test('CGI heads: Location alone is a 302, the reason is kept, hop-by-hop and X-Accel directives dropped, bad heads are 502', { timeout: TIMEOUT }, async () => {
  const raw = await startRawApp((request) => {
    const uri = new Map(request.params).get('REQUEST_URI');
    switch (uri) {
      case '/loc':
        return { stdout: 'Location: /elsewhere?x=1\r\n\r\n' };
      case '/reason':
        return { stdout: 'Status: 299 Fine Thanks\r\nX-Two: a\r\nX-Two: b\r\n\r\nbody' };
      case '/hop':
        return { stdout: 'Connection: close\r\nTransfer-Encoding: chunked\r\nKeep-Alive: x\r\nX-Accel-Buffering: no\r\nX-Ok: 1\r\n\r\nhello' };
      case '/garbage':
        return { stdout: 'this is not a CGI head\r\n\r\n' };
      case '/interim':
        return { stdout: 'Status: 103 Early Hints\r\n\r\n' };
      case '/badlength':
        return { stdout: 'Content-Length: 100\r\n\r\nshort' };
      case '/overloaded':
        return { protocolStatus: ProtocolStatus.Overloaded };
      case '/stderr':
        return { stderr: 'raw app complains\n', stdout: 'Status: 500 Oops\r\n\r\n' };
      default:
        return { stdout: 'Content-Type: text/plain\r\n\r\ndefault' };
    }
  });
  const logs = captureLogger();
  const gateway = createGateway({ upstream: raw.address, logger: logs });
  try {
    const { url } = await gateway.listen('127.0.0.1:0');
    assert.ok(url !== null, 'a URL');
    const loc = await request(url, '/loc');
    assert.equal(loc.status, 302, 'Location without Status: 302, as nginx');
    assert.equal(loc.statusMessage, 'Found');
    assert.equal(loc.headers.location, '/elsewhere?x=1');

    const reason = await request(url, '/reason');
    assert.equal(reason.status, 299);
    assert.equal(reason.statusMessage, 'Fine Thanks');
    assert.deepEqual(
      reason.rawHeaders.filter((_, i) => i % 2 === 0 && reason.rawHeaders[i] === 'X-Two').length,
      2,
      'a repeated header stays repeated',
    );
    assert.equal(reason.body.toString(), 'body');

    const hop = await request(url, '/hop');
    assert.equal(hop.body.toString(), 'hello', 'the body is not de-chunked or cut: the app framing headers were dropped');
    assert.equal(hop.headers['x-ok'], '1');
    assert.equal(hop.headers['keep-alive'], undefined);
    assert.equal(hop.headers['x-accel-buffering'], undefined, 'X-Accel-* are instructions to the front');

    for (const [path, status, code] of [
      ['/garbage', 502, 'NODEFPM_CLIENT_BAD_RESPONSE'],
      ['/interim', 502, 'NODEFPM_GATEWAY_BAD_RESPONSE'],
      ['/overloaded', 503, 'NODEFPM_CLIENT_REJECTED'],
    ] as const) {
      const result = await request(url, path);
      assert.equal(result.status, status, `${path}: ${describeLogs(logs)}`);
      assert.ok(logs.find(code).some((entry) => entry.level === 'error' && entry.fields?.uri === path), `${path}: logged as an error with ${code}`);
    }

    // A Content-Length the app does not keep to: the HTTP client sees the response cut, not a desynchronised connection.
    const bad = await request(url, '/badlength').catch((error: Error) => error);
    assert.ok(bad instanceof Error || bad.body.length < 100, 'a short body under a longer Content-Length is not passed as complete');
    assert.ok(await eventually(() => logs.find('response cut short').length > 0, 10_000), `logged: ${describeLogs(logs)}`);

    const stderr = await request(url, '/stderr');
    assert.equal(stderr.status, 500);
    assert.equal(stderr.statusMessage, 'Oops');
    assert.ok(await eventually(() => logs.find('FastCGI sent in stderr: raw app complains').length === 1, 10_000), 'STDERR logged');
    const fine = await request(url, '/');
    assert.equal(fine.body.toString(), 'default', 'still serving');
  } finally {
    await gateway.close();
    await raw.close();
  }
});

test('STDERR lines are logged one by one with the request they belong to', { timeout: TIMEOUT }, async () => {
  await withGateway({}, async (s) => {
    const result = await request(s.origin, '/stderr?x=1');
    assert.equal(result.body.toString(), 'ok\n');
    const first = await s.logs.waitFor('FastCGI sent in stderr: first line from the app');
    const second = await s.logs.waitFor('FastCGI sent in stderr: second line from the app');
    for (const entry of [first, second]) {
      assert.equal(entry.level, 'warn');
      assert.equal(entry.fields?.uri, '/stderr?x=1');
      assert.equal(entry.fields?.method, 'GET');
    }
  });
});

// ---- connections and failures ----

test('keep-alive: many requests, sequential and concurrent, share a few FastCGI connections', { timeout: TIMEOUT }, async () => {
  await withGateway({ client: { maxConnections: 4 } }, async (s) => {
    for (let i = 0; i < 60; i++) {
      const echo = echoOf(await request(s.origin, `/seq?i=${i}`, { agent: s.agent }), s);
      assert.equal(echo.params.QUERY_STRING, `i=${i}`);
    }
    for (let round = 0; round < 3; round++) {
      const batch = await Promise.all(Array.from({ length: 12 }, (_, i) => request(s.origin, `/par?i=${i}`, { agent: s.agent })));
      batch.forEach((result, i) => assert.equal(echoOf(result, s).params.QUERY_STRING, `i=${i}`));
    }
    const accepted = s.backend.server.stats.connectionsAccepted;
    assert.ok(accepted <= 4, `96 requests used ${accepted} FastCGI connections (maxConnections 4)`);
    assert.ok(s.gateway.stats.upstream.connections <= 4, 'the pool stays within maxConnections');
    assert.equal(s.gateway.stats.forwarded, 96);
  });
});

test('upstream unreachable: 502 with the reason logged', { timeout: TIMEOUT }, async () => {
  const dir = tempDir('nodefpm-gw-down-');
  const logs = captureLogger();
  const gateway = createGateway({ upstream: `unix:${join(dir.path, 'nobody.sock')}`, logger: logs });
  try {
    const { url } = await gateway.listen('127.0.0.1:0');
    const result = await request(url!, '/anything');
    assert.equal(result.status, 502);
    assert.equal(result.body.toString(), '502 Bad Gateway\n');
    const entry = await logs.waitFor('NODEFPM_CLIENT_CONNECT');
    assert.equal(entry.level, 'error');
    assert.match(String(entry.fields?.reason), /cannot connect/);
    assert.equal(entry.fields?.uri, '/anything');
    assert.equal(gateway.stats.errors[502], 1);
  } finally {
    await gateway.close();
    dir.remove();
  }
});

test('slow upstream: 504 after headTimeout, and the app is told (req.signal)', { timeout: TIMEOUT }, async () => {
  await withGateway({ headTimeout: 300 }, async (s) => {
    const aborted = openGate('slow:aborted');
    const result = await request(s.origin, '/slow?ms=20000', { headers: { 'X-Gate': 'slow' } });
    assert.equal(result.status, 504);
    await within(aborted, 30_000, "the app's req.signal did not fire after the 504");
    const entry = await s.logs.waitFor('NODEFPM_GATEWAY_HEAD_TIMEOUT');
    assert.equal(entry.level, 'error');
    const fast = await request(s.origin, '/slow?ms=1');
    assert.equal(fast.status, 200, 'the next request is served');
  });
});

test('OVERLOADED from a nodefpm server at its maxRequests: 503', { timeout: TIMEOUT }, async () => {
  await withGateway(
    { client: { maxConnections: 4 } },
    async (s) => {
      const started = openGate('hold:started');
      const held = http.get(new URL('/hold', s.origin), { headers: { 'X-Gate': 'hold' } });
      held.on('error', () => {});
      await within(started, 30_000, 'the held request did not start');
      const refused = await request(s.origin, '/second');
      assert.equal(refused.status, 503);
      const entry = await s.logs.waitFor('NODEFPM_CLIENT_REJECTED');
      assert.match(String(entry.fields?.reason), /FCGI_OVERLOADED/);
      held.destroy();
    },
    { maxRequests: 1 },
  );
});

test('client disconnect aborts the FastCGI request: the app sees req.signal, before and during the response', { timeout: TIMEOUT }, async () => {
  await withGateway({}, async (s) => {
    // Before any response: the app is waiting on its signal.
    const started = openGate('gone:started');
    const aborted = openGate('gone:aborted');
    const held = http.get(new URL('/hold', s.origin), { headers: { 'X-Gate': 'gone' } });
    held.on('error', () => {});
    await within(started, 30_000, 'the held request did not start');
    held.destroy();
    await within(aborted, 30_000, "the app's req.signal did not fire when the HTTP client went away");

    // During a response: an endless download.
    const downloadAborted = openGate('gone-download:aborted');
    await new Promise<void>((resolve, reject) => {
      const req = http.get(new URL('/download', s.origin), { headers: { 'X-Gate': 'gone-download' } }, (res) => {
        let seen = 0;
        res.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen > 4 * MiB) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (error) => (error.message === 'socket hang up' ? resolve() : reject(error)));
    });
    await within(downloadAborted, 30_000, "the app's req.signal did not fire when the client left mid-download");
    assert.ok(await eventually(() => s.gateway.stats.clientAborts >= 2, 10_000), `clientAborts counted: ${inspect(s.gateway.stats)}`);
    assert.ok(await eventually(() => s.gateway.stats.active === 0, 10_000), 'nothing left in progress');
    const next = echoOf(await request(s.origin, '/next'), s);
    assert.equal(next.params.REQUEST_URI, '/next', 'the front and the app go on');
  });
});

// ---- files ----

test('X-Accel-Redirect and X-Sendfile: served from the configured mapping, passed through without one', { timeout: TIMEOUT }, async () => {
  const files = mkdtempSync(join(tmpdir(), 'nodefpm-gw-files-'));
  try {
    writeFileSync(join(files, 'file.txt'), 'the protected file\n');
    await withGateway({ sendfile: { accel: { '/protected/': files }, roots: [files] } }, async (s) => {
      const accel = await request(s.origin, '/accel');
      assert.equal(accel.status, 200);
      assert.equal(accel.body.toString(), 'the protected file\n');
      assert.equal(accel.headers['x-accel-redirect'], undefined, 'the internal path is not shown');
      assert.deepEqual(accel.headers['set-cookie'], ['seen=1; Path=/'], "the app's cookie is kept, as nginx keeps it");
      assert.equal(accel.headers['content-type'], 'text/plain; charset=utf-8', 'the type comes from the file, as nginx does');

      const sendfile = await request(s.origin, `/sendfile?path=${encodeURIComponent(join(files, 'file.txt'))}`);
      assert.equal(sendfile.body.toString(), 'the protected file\n');
      assert.equal(sendfile.headers['content-type'], 'application/x-custom', "lighttpd keeps the app's headers");
      assert.equal(sendfile.headers['x-sendfile'], undefined);
      assert.equal(sendfile.headers['content-length'], String('the protected file\n'.length));

      const outside = await request(s.origin, `/sendfile?path=${encodeURIComponent('/etc/passwd')}`);
      assert.equal(outside.status, 404);
      assert.ok(s.logs.find('NODEFPM_GATEWAY_SENDFILE').length === 1, `refusal logged${s.context()}`);
      assert.equal(s.gateway.stats.sentFiles, 2);
      const after = echoOf(await request(s.origin, '/after'), s);
      assert.equal(after.method, 'GET', 'the dropped app bodies left the FastCGI connection usable');
    });
    await withGateway({}, async (s) => {
      const passed = await request(s.origin, '/accel');
      assert.equal(passed.headers['x-accel-redirect'], '/protected/file.txt', 'without a mapping the header is passed on');
      assert.equal(passed.body.toString(), 'fallback body from the app\n');
      assert.ok(s.logs.find('no sendfile mapping').length === 1, 'said once in the log');
    });
  } finally {
    rmSync(files, { recursive: true, force: true });
  }
});

test('script mode: SCRIPT_FILENAME, split PATH_INFO, index, front controller, static files, 301, 404 and 405', { timeout: TIMEOUT }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'nodefpm-gw-docroot-'));
  const raw = await startRawApp((request) => {
    const params = Object.fromEntries(request.params);
    return { stdout: `Content-Type: application/json\r\n\r\n${JSON.stringify({ params, body: request.stdin.toString(), keepConn: request.keepConn })}` };
  });
  const logs = captureLogger();
  try {
    writeFileSync(join(root, 'index.php'), '<?php // front');
    writeFileSync(join(root, 'info.php'), '<?php // info');
    writeFileSync(join(root, 'style.css'), 'body { color: red }\n');
    writeFileSync(join(root, '.env'), 'SECRET=1\n');
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'index.php'), '<?php // sub');
    mkdirSync(join(root, 'empty'));
    type Seen = { params: Record<string, string>; body: string; keepConn: boolean };
    const seen = (result: HttpResult): Seen => {
      assert.equal(result.status, 200, `${result.status} ${result.body.toString().slice(0, 200)}\n${describeLogs(logs)}`);
      return JSON.parse(result.body.toString()) as Seen;
    };
    for (const frontController of [null, '/index.php']) {
      const gateway = createGateway({ upstream: raw.address, logger: logs, documentRoot: root, script: { frontController } });
      try {
        const { url } = await gateway.listen('127.0.0.1:0');
        const origin = url!;
        const info = seen(await request(origin, '/info.php/a/b?x=1'));
        assert.equal(info.params.SCRIPT_FILENAME, join(root, 'info.php'));
        assert.equal(info.params.SCRIPT_NAME, '/info.php');
        assert.equal(info.params.PATH_INFO, '/a/b');
        assert.equal(info.params.DOCUMENT_URI, '/info.php/a/b');
        assert.equal(info.params.DOCUMENT_ROOT, root);
        assert.equal(info.params.REQUEST_URI, '/info.php/a/b?x=1');
        assert.equal(info.keepConn, true, 'a request without a body keeps its FastCGI connection');

        const index = seen(await request(origin, '/'));
        assert.equal(index.params.SCRIPT_NAME, '/index.php');
        assert.equal(index.params.DOCUMENT_URI, '/index.php', "the index module's internal redirect");
        assert.equal(index.params.PATH_INFO, '');
        assert.equal(seen(await request(origin, '/sub/')).params.SCRIPT_FILENAME, join(root, 'sub', 'index.php'));

        const post = seen(await request(origin, '/info.php', { method: 'POST', body: 'a=1' }));
        assert.equal(post.body, 'a=1');
        assert.equal(post.params.CONTENT_LENGTH, '3');
        assert.equal(post.keepConn, true, 'a body with its length keeps the connection');
        const chunked = seen(await request(origin, '/info.php', { method: 'POST', stream: async (req) => write(req, Buffer.from('b=2')) }));
        assert.equal(chunked.params.CONTENT_LENGTH, '3', 'script mode spools a chunked body to learn its length');
        assert.equal(chunked.keepConn, true);

        const redirect = await request(origin, '/sub?q=1');
        assert.equal(redirect.status, 301);
        assert.equal(redirect.headers.location, '/sub/?q=1');

        const css = await request(origin, '/style.css');
        assert.equal(css.status, 200);
        assert.equal(css.body.toString(), 'body { color: red }\n');
        assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
        assert.ok(typeof css.headers.etag === 'string' && typeof css.headers['last-modified'] === 'string', 'validators sent');
        const cached = await request(origin, '/style.css', { headers: { 'If-None-Match': css.headers.etag } });
        assert.equal(cached.status, 304);
        const posted = await request(origin, '/style.css', { method: 'POST', body: 'x' });
        assert.equal(posted.status, 405);
        assert.equal(posted.headers.allow, 'GET, HEAD');

        assert.equal((await request(origin, '/.env')).status, 404, 'dotfiles are never served');
        assert.equal((await request(origin, '/sub/.env/x.php')).status, 404, 'nor run');

        const missing = await request(origin, '/pretty/url?q=1');
        const missingScript = await request(origin, '/missing.php');
        if (frontController === null) {
          assert.equal(missing.status, 404);
          assert.equal(missingScript.status, 404, 'a missing script is not passed on (try_files $fastcgi_script_name =404)');
          assert.ok(logs.find('NODEFPM_GATEWAY_NOT_FOUND').length >= 2, '404s logged');
        } else {
          const front = seen(missing);
          assert.equal(front.params.SCRIPT_NAME, '/index.php');
          assert.equal(front.params.SCRIPT_FILENAME, join(root, 'index.php'));
          assert.equal(front.params.REQUEST_URI, '/pretty/url?q=1', 'REQUEST_URI stays the original');
          assert.equal(front.params.QUERY_STRING, 'q=1');
          assert.equal(front.params.PATH_INFO, '');
          assert.equal(seen(missingScript).params.SCRIPT_NAME, '/index.php');
        }
      } finally {
        await gateway.close();
      }
    }
    // chunkedUploads "stream" in script mode: CONTENT_LENGTH="", so the request gets a connection of its own.
    const streaming = createGateway({ upstream: raw.address, logger: logs, documentRoot: root, script: true, chunkedUploads: 'stream' });
    try {
      const { url } = await streaming.listen('127.0.0.1:0');
      const unsized = seen(await request(url!, '/info.php', { method: 'POST', stream: async (req) => write(req, Buffer.from('c=3')) }));
      assert.equal(unsized.params.CONTENT_LENGTH, '');
      assert.equal(unsized.body, 'c=3');
      assert.equal(unsized.keepConn, false, 'closeAfterUnsizedBody: FCGI_KEEP_CONN=0 for a body without a length');
    } finally {
      await streaming.close();
    }
  } finally {
    await raw.close();
    rmSync(root, { recursive: true, force: true });
  }
});

// ---- listening, TLS, closing ----

/** A self-signed certificate for 127.0.0.1 and localhost (EC P-256, valid until 2126), for the TLS test only. */
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/DrdFpMOySxAia4b
hJ/wU6pf4O9maqEB1V/miRbTxjShRANCAARe0ncEip/ueqA0dNL6xigP6rIzeFqS
OgjJZUxJzX3wAXjxQflI4R/3/ObepE8OOho96GXdSiO4WgjbkfO3tHX7
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUTpHq+ls9uFa81Tg7pY4UQQfVLYAwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMzIxNDYyM1oYDzIxMjYxMDMw
MjE0NjIzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARe0ncEip/ueqA0dNL6xigP6rIzeFqSOgjJZUxJzX3wAXjxQflI4R/3
/ObepE8OOho96GXdSiO4WgjbkfO3tHX7o28wbTAdBgNVHQ4EFgQU5/AbuKu950Tg
YZITAkLz3q0CZ8kwHwYDVR0jBBgwFoAU5/AbuKu950TgYZITAkLz3q0CZ8kwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIhAMG3nq7TFiEXrwgyxzvOVkDyFTioZe2R5dSZbaYSmDeNAiBJ
8CX4nwzQZd51bRylP3LHPMVzwtbXGx75idw0zxEqpQ==
-----END CERTIFICATE-----
`;

test('TLS: HTTPS=on and REQUEST_SCHEME=https; a Unix-socket front: REMOTE_ADDR unix: and no URL', { timeout: TIMEOUT }, async () => {
  await withGateway({ tls: { key: TEST_KEY, cert: TEST_CERT } }, async (s) => {
    assert.match(s.origin, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(new URL('/tls', s.origin), { rejectUnauthorized: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    const params = (JSON.parse(body) as Echo).params;
    assert.equal(params.HTTPS, 'on');
    assert.equal(params.REQUEST_SCHEME, 'https');
  });
  const dir = tempDir('nodefpm-gw-unix-');
  const backend = await startServer(app);
  const gateway = createGateway({ upstream: backend.address, logger: captureLogger() });
  try {
    const path = join(dir.path, 'front.sock');
    const bound = await gateway.listen(`unix:${path}`);
    assert.equal(bound.url, null, 'a Unix socket has no URL to open');
    assert.equal(bound.text, `unix:${path}`);
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ socketPath: path, path: '/over-unix', headers: { Host: 'dev.local' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    const params = (JSON.parse(body) as Echo).params;
    assert.equal(params.REMOTE_ADDR, 'unix:');
    assert.equal(params.SERVER_PORT, '');
    assert.equal(params.HTTP_HOST, 'dev.local');
    await gateway.close();
    assert.equal(existsSync(path), false, 'the socket file is removed on close');
  } finally {
    await gateway.close();
    await backend.close();
    dir.remove();
  }
});

test('close(): requests in progress finish, new connections are refused, the FastCGI client is closed', { timeout: TIMEOUT }, async () => {
  const backend = await startServer(app);
  const gateway = createGateway({ upstream: backend.address, logger: captureLogger() });
  try {
    const { url } = await gateway.listen('127.0.0.1:0');
    const inFlight = request(url!, '/slow?ms=500');
    await eventually(() => gateway.stats.active === 1, 10_000);
    const closing = gateway.close({ timeout: 10_000 });
    const refused = await request(url!, '/late').catch((error: NodeJS.ErrnoException) => error);
    assert.ok(refused instanceof Error && refused.code === 'ECONNREFUSED', `a new connection is refused: ${inspect(refused)}`);
    const result = await inFlight;
    assert.equal(result.status, 200);
    assert.equal(result.body.toString(), 'slow answer\n');
    await closing;
    assert.equal(gateway.stats.upstream.connections, 0, 'the FastCGI connections are closed');
  } finally {
    await gateway.close();
    await backend.close();
  }
});

test('options are checked: a bad option fails at once with NODEFPM_INVALID_OPTION', () => {
  const bad: Array<Partial<GatewayOptions>> = [
    { script: true },
    { maxBodyBytes: -1 },
    { chunkedUploads: 'maybe' as 'stream' },
    { trustProxy: 'yes' as unknown as boolean },
    { documentRoot: '/tmp', script: { frontController: 'index.php' } },
    { sendfile: { roots: ['relative/dir'] } },
  ];
  for (const options of bad) {
    assert.throws(
      () => createGateway({ upstream: '127.0.0.1:9000', logger: captureLogger(), ...options }),
      (error: unknown) => (error as { code?: string }).code === 'NODEFPM_INVALID_OPTION',
      inspect(options),
    );
  }
  assert.throws(() => createGateway({ upstream: 'nowhere', logger: captureLogger() }), (error: unknown) => (error as { code?: string }).code === 'NODEFPM_INVALID_ADDRESS');
});
