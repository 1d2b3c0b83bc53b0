// End to end behind a real nginx, over a Unix socket and TCP with fastcgi_keep_conn off and on: GET, streamed and buffered POSTs, status lines, X-Accel-Redirect, aborts, backpressure, connection reuse.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { createServer, type FcgiServer, type Handler, type Response } from '../../src/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import { request as sendHttp, write, type HttpResult, type RequestSpec } from '../helpers/http-request.js';
import { captureLogger, type CaptureLogger } from '../helpers/log-capture.js';
import { tapSocketReads } from '../helpers/socket-tap.js';
import { startWebServer, type WebServer } from './harness.js';
import { ACCEL_CONTENT, ACCEL_FILE, nginx } from './nginx-server.js';

const MiB = 1024 * 1024;
/** nodefpm's idleTimeout in these tests: short, so a test can watch it close kept connections. */
const IDLE_TIMEOUT = 3000;
const TIMEOUT = 120_000;
const BEGIN_REQUEST = 1;
const PARAMS = 4;
const STDIN = 5;
const TYPE_NAMES: Record<number, string> = { 1: 'BEGIN_REQUEST', 2: 'ABORT_REQUEST', 4: 'PARAMS', 5: 'STDIN', 8: 'DATA', 9: 'GET_VALUES' };

/** A block of random bytes that downloads repeat, so the test can compute the expected hash. */
const PATTERN = randomBytes(64 * 1024);

// ---- the app ----

/**
 * Resolvers the app calls at a point a test waits for, named by a request header: `x-gate` (the first
 * body chunk arrived; the X-Accel-Redirect response closed; the endless stream was aborted),
 * `x-abort-gate` (req.signal fired while the body was being read).
 */
const gates = new Map<string, () => void>();
/** The firehose route's progress, by the request's x-gate name. */
interface Firehose {
  written: number;
  /** Waiting for 'drain' after res.write() returned false. */
  waiting: boolean;
  /** Set by the test: end the response after the current write. */
  stop: boolean;
}
const firehoses = new Map<string, Firehose>();

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

interface EchoInfo {
  method: string;
  url: string;
  params: Record<string, string>;
  headers: Record<string, string>;
  contentLength: number | null;
  bodyLength: number;
  bodySha256: string;
  bodyChunks: number;
}

/**
 * The native handler, routed on the end of the path:
 *   .../status404          `404 Custom Reason`, two Set-Cookie headers
 *   .../throw              throws (a 500, the error on FCGI_STDERR)
 *   .../accel?size=N       X-Accel-Redirect to nginx's internal file, with N bytes of fallback body
 *   .../endless            streams slowly until the request is aborted
 *   .../download?size=N    N bytes of PATTERN, honouring backpressure
 *   .../firehose           PATTERN until the test says stop, honouring backpressure
 *   anything else          reads the whole body and echoes what it saw as a JSON line, then a few
 *                          more lines in separate writes
 */
const app: Handler = async (req, res) => {
  const url = new URL(req.url, 'http://app.invalid');
  if (url.pathname.endsWith('/status404')) {
    res.statusCode = 404;
    res.statusMessage = 'Custom Reason';
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('X-App', 'nodefpm');
    res.appendHeader('Set-Cookie', 'a=1; Path=/');
    res.appendHeader('Set-Cookie', 'b=2; Path=/; HttpOnly');
    res.end('custom not found\n');
    return;
  }
  if (url.pathname.endsWith('/throw')) {
    throw new Error(`boom-marker ${url.searchParams.get('id') ?? ''}`);
  }
  if (url.pathname.endsWith('/accel')) {
    // Hand the response to nginx; the body is a fallback nginx drops (a big one is written in pieces).
    const size = Number(url.searchParams.get('size') ?? '0');
    const gate = req.header('x-gate');
    res.on('close', () => {
      if (gate !== undefined) gates.get(gate)?.();
    });
    res.setHeader('X-Accel-Redirect', `/internal/${ACCEL_FILE}`);
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    for (let left = size; left > 0 && !req.aborted; left -= PATTERN.length) {
      if (!res.write(left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left))) await waitDrain(res);
    }
    res.end('fallback body from the app\n');
    return;
  }
  if (url.pathname.endsWith('/endless')) {
    // Streams slowly until the web server drops the request (or 64 MiB, so a missed abort still ends).
    const gate = req.header('x-gate');
    req.signal.addEventListener('abort', () => {
      if (gate !== undefined) gates.get(gate)?.();
    });
    res.setHeader('Content-Type', 'application/octet-stream');
    for (let i = 0; i < 4096 && !req.aborted; i++) {
      if (!res.write(PATTERN.subarray(0, 16 * 1024))) await waitDrain(res);
      else await sleep(1);
    }
    res.end();
    return;
  }
  if (url.pathname.endsWith('/download')) {
    let left = Number(url.searchParams.get('size') ?? '0');
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('X-App', 'nodefpm');
    while (left > 0 && !req.aborted) {
      const piece = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) await waitDrain(res);
    }
    res.end();
    return;
  }
  if (url.pathname.endsWith('/firehose')) {
    // Writes PATTERN over and over, waiting for 'drain' whenever res.write() says so, until the test
    // says stop (or 256 MiB, so a broken backpressure still ends). X-Accel-Buffering: no keeps nginx
    // from spooling the response to disk, so a client that does not read holds the app back.
    const state: Firehose = { written: 0, waiting: false, stop: false };
    firehoses.set(req.header('x-gate') ?? '', state);
    res.setHeader('X-Accel-Buffering', 'no');
    res.setHeader('Content-Type', 'application/octet-stream');
    while (!state.stop && !req.aborted && state.written < 256 * MiB) {
      state.written += PATTERN.length;
      if (!res.write(PATTERN)) {
        state.waiting = true;
        await waitDrain(res);
        state.waiting = false;
      }
    }
    res.end();
    return;
  }
  const hash = createHash('sha256');
  let bodyLength = 0;
  let bodyChunks = 0;
  const gate = req.header('x-gate');
  const abortGate = req.header('x-abort-gate');
  if (abortGate !== undefined) req.signal.addEventListener('abort', () => gates.get(abortGate)?.());
  for await (const chunk of req.body) {
    hash.update(chunk);
    bodyLength += chunk.length;
    bodyChunks++;
    if (gate !== undefined) gates.get(gate)?.();
  }
  const info: EchoInfo = {
    method: req.method,
    url: req.url,
    params: { ...req.params },
    headers: { ...req.headers },
    contentLength: req.contentLength,
    bodyLength,
    bodySha256: hash.digest('hex'),
    bodyChunks,
  };
  res.setHeader('Content-Type', 'application/x-ndjson');
  res.setHeader('X-Echo-Method', req.method);
  res.setHeader('X-Echo-Test', req.header('x-test') ?? '(none)');
  res.write(`${JSON.stringify(info)}\n`);
  for (let i = 0; i < 4; i++) {
    await nextTurn(); // each part in its own tick, so each leaves as its own STDOUT record
    res.write(`part ${i}\n`);
  }
  res.end('end\n');
};

// ---- what nginx sends, seen on the wire ----

interface WireRecord {
  connection: number;
  type: number;
  requestId: number;
  contentLength: number;
  padding: number;
  /** BEGIN_REQUEST only: the FCGI_KEEP_CONN flag. */
  keepConn?: boolean;
}

/**
 * Reads the record headers of everything nginx sends on each connection (tapSocketReads), so the test
 * can check BEGIN_REQUEST flags and report record sizes and padding. Record contents are skipped, not copied.
 */
class WireTap {
  readonly records: WireRecord[] = [];
  /** Ids (WireRecord.connection) of the FastCGI connections closed so far, by either side. */
  readonly closed = new Set<number>();
  #connections = 0;

  attach(server: FcgiServer): void {
    server.on('connection', (connection: { socket: import('node:net').Socket }) => {
      const id = ++this.#connections;
      let head = Buffer.alloc(0);
      let skip = 0;
      const socket = connection.socket;
      socket.once('close', () => this.closed.add(id));
      const onChunk = (chunk: Buffer): void => {
        let offset = 0;
        while (offset < chunk.length) {
          if (skip > 0) {
            const n = Math.min(skip, chunk.length - offset);
            skip -= n;
            offset += n;
            continue;
          }
          const contentLength = head.length >= 8 ? head.readUInt16BE(4) : 0;
          const want = head.length >= 8 && head[1] === BEGIN_REQUEST && contentLength >= 8 ? 16 : 8;
          const take = Math.min(want - head.length, chunk.length - offset);
          head = Buffer.concat([head, chunk.subarray(offset, offset + take)]);
          offset += take;
          if (head.length < 8) continue;
          const type = head[1]!;
          const length = head.readUInt16BE(4);
          if (type === BEGIN_REQUEST && length >= 8 && head.length < 16) continue;
          const record: WireRecord = { connection: id, type, requestId: head.readUInt16BE(2), contentLength: length, padding: head[6]! };
          if (type === BEGIN_REQUEST && head.length >= 16) record.keepConn = (head[10]! & 1) === 1;
          this.records.push(record);
          skip = length + record.padding - (head.length - 8);
          head = Buffer.alloc(0);
        }
      };
      tapSocketReads(socket, onChunk, 'before');
    });
  }

  /** Records since index `from`. */
  since(from: number): WireRecord[] {
    return this.records.slice(from);
  }
}

/** A one-line summary of record sizes and padding, for the test's diagnostics. */
function summarize(records: WireRecord[]): string {
  const byType = new Map<number, WireRecord[]>();
  for (const record of records) byType.set(record.type, [...(byType.get(record.type) ?? []), record]);
  const parts: string[] = [];
  for (const [type, list] of [...byType].sort((a, b) => a[0] - b[0])) {
    const nonEmpty = list.filter((r) => r.contentLength > 0);
    const sizes = [...new Set(nonEmpty.map((r) => r.contentLength))].sort((a, b) => b - a);
    const paddings = [...new Set(list.map((r) => r.padding))].sort((a, b) => a - b);
    const aligned = list.every((r) => (r.contentLength + r.padding) % 8 === 0);
    parts.push(
      `${TYPE_NAMES[type] ?? `type ${type}`}: ${list.length} records, sizes ${sizes.slice(0, 4).join('/')}${sizes.length > 4 ? '/...' : ''}` +
        `, padding ${paddings.join('/')}${aligned ? ' (8-aligned)' : ''}`,
    );
  }
  return parts.join('; ');
}

// ---- the HTTP client side ----

/** One request through the suite's keep-alive agent (test/helpers/http-request.ts). */
function request(agent: http.Agent, origin: string, path: string, spec: RequestSpec = {}): Promise<HttpResult> {
  return sendHttp(origin, path, { ...spec, agent });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A promise resolved when the app calls the gate `name` (see `gates`). */
function openGate(name: string): Promise<void> {
  return new Promise((resolve) => {
    gates.set(name, () => {
      gates.delete(name);
      resolve();
    });
  });
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

/** Splits the echo response: the JSON line, then the streamed parts. */
function parseEcho(result: HttpResult): { info: EchoInfo; rest: string[] } {
  const lines = result.body.toString('utf8').split('\n');
  return { info: JSON.parse(lines[0]!) as EchoInfo, rest: lines.slice(1) };
}

// ---- one nginx + nodefpm pair per transport and keep_conn setting ----

interface Setup {
  server: FcgiServer;
  logs: CaptureLogger;
  web: WebServer;
  tap: WireTap;
  agent: http.Agent;
  /** Context for assertion messages: nginx's output and logs, and nodefpm's warnings. */
  context(): string;
  teardown(): Promise<void>;
}

async function setUp(transport: 'unix' | 'tcp', keepConn: boolean): Promise<Setup> {
  const logs = captureLogger();
  const server = createServer(app, { logger: logs, idleTimeout: IDLE_TIMEOUT });
  const tap = new WireTap();
  tap.attach(server);
  const socketDir = transport === 'unix' ? mkdtempSync(join(tmpdir(), 'nodefpm-sock-')) : null;
  let web: WebServer | null = null;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const teardown = async (): Promise<void> => {
    agent.destroy();
    try {
      await web?.stop();
    } finally {
      await server.close({ timeout: 5000 });
      if (socketDir !== null) rmSync(socketDir, { recursive: true, force: true });
    }
  };
  try {
    const bound = await server.listen(socketDir !== null ? `unix:${join(socketDir, 'app.sock')}` : '127.0.0.1:0');
    const upstream = formatListenAddress(bound);
    web = await startWebServer(nginx({ upstream, keepConn }));
    const started = web;
    return {
      server,
      logs,
      web: started,
      tap,
      agent,
      context: () => {
        const problems = logs.entries.filter((entry) => entry.level === 'error' || entry.level === 'warn');
        const ours = problems.map((entry) => `[${entry.level}] ${entry.message} ${inspect(entry.fields, { breakLength: Infinity })}`);
        return `\n${started.describe()}${ours.length > 0 ? `\n--- nodefpm warnings/errors ---\n${ours.join('\n')}` : ''}`;
      },
      teardown,
    };
  } catch (error) {
    await teardown();
    throw error;
  }
}

/** assert.equal with both values and the servers' logs in the message. */
function eq(setup: Setup, actual: unknown, expected: unknown, what: string): void {
  assert.deepEqual(actual, expected, `${what}: expected ${inspect(expected)}, got ${inspect(actual)}${setup.context()}`);
}

/** Waits for `promise` up to `ms`, failing with `message` (and the logs) instead of hanging. */
async function within<T>(setup: Setup, promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message}${setup.context()}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

for (const transport of ['unix', 'tcp'] as const) {
  for (const keepConn of [false, true]) {
    describe(`nginx -> nodefpm over ${transport === 'unix' ? 'a Unix socket' : 'TCP'}, fastcgi_keep_conn ${keepConn ? 'on' : 'off'}`, { timeout: 10 * TIMEOUT }, () => {
      let setup: Setup | null = null;
      const ready = (): Setup => {
        assert.ok(setup !== null, 'nginx and nodefpm did not start (see the before hook error)');
        return setup;
      };

      before(async () => {
        setup = await setUp(transport, keepConn);
      }, { timeout: TIMEOUT });

      after(async () => {
        await setup?.teardown();
      }, { timeout: TIMEOUT });

      test('GET with a query string and a custom header', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        const from = s.tap.records.length;
        const result = await request(s.agent, s.web.origin, '/echo/path?x=1&y=two%20words&z=%C3%A9', { headers: { 'X-Test': 'hello nginx' } });
        eq(s, result.status, 200, 'status');
        eq(s, result.headers['content-type'], 'application/x-ndjson', 'Content-Type passed through');
        eq(s, result.headers['x-echo-method'], 'GET', 'X-Echo-Method passed through');
        eq(s, result.headers['x-echo-test'], 'hello nginx', 'X-Echo-Test passed through');
        const { info, rest } = parseEcho(result);
        eq(s, info.method, 'GET', 'REQUEST_METHOD');
        eq(s, info.url, '/echo/path?x=1&y=two%20words&z=%C3%A9', 'req.url (REQUEST_URI, still encoded)');
        eq(s, info.params.REQUEST_URI, '/echo/path?x=1&y=two%20words&z=%C3%A9', 'REQUEST_URI');
        eq(s, info.params.QUERY_STRING, 'x=1&y=two%20words&z=%C3%A9', 'QUERY_STRING');
        eq(s, info.params.HTTP_X_TEST, 'hello nginx', 'HTTP_X_TEST');
        eq(s, info.headers['x-test'], 'hello nginx', 'req.headers["x-test"]');
        eq(s, info.params.GATEWAY_INTERFACE, 'CGI/1.1', 'GATEWAY_INTERFACE');
        eq(s, info.params.REMOTE_ADDR, '127.0.0.1', 'REMOTE_ADDR');
        eq(s, info.params.SERVER_PORT, String(s.web.port), 'SERVER_PORT');
        eq(s, info.params.SERVER_PROTOCOL, 'HTTP/1.1', 'SERVER_PROTOCOL');
        eq(s, /^nginx\/\d/.test(info.params.SERVER_SOFTWARE ?? ''), true, `SERVER_SOFTWARE is nginx/x.y.z (${info.params.SERVER_SOFTWARE})`);
        eq(s, info.contentLength, null, 'a GET declares no body length');
        eq(s, info.bodyLength, 0, 'a GET has an empty body');
        eq(s, rest, ['part 0', 'part 1', 'part 2', 'part 3', 'end', ''], 'the streamed parts after the JSON line');
        const begins = s.tap.since(from).filter((r) => r.type === BEGIN_REQUEST);
        eq(s, begins.length, 1, 'BEGIN_REQUEST records for one GET');
        eq(s, begins[0]!.keepConn, keepConn, 'FCGI_KEEP_CONN in BEGIN_REQUEST follows fastcgi_keep_conn');
        eq(s, begins[0]!.requestId, 1, 'nginx uses request id 1');
        const empty = Object.entries(info.params).filter(([, value]) => value === '').map(([name]) => name);
        t.diagnostic(`params sent by nginx: ${Object.keys(info.params).sort().join(' ')}`);
        t.diagnostic(`empty-valued params: ${empty.sort().join(' ') || '(none)'}; HTTP_HOST=${info.params.HTTP_HOST}`);
        t.diagnostic(`records: ${summarize(s.tap.since(from))}`);
      });

      test('chunked POST streamed by nginx (fastcgi_request_buffering off), several MiB', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        const from = s.tap.records.length;
        const size = 8 * MiB + 12345;
        const body = randomBytes(size);
        const gate = `stream-${transport}-${String(keepConn)}`;
        const firstChunkSeen = openGate(gate);
        const pending = request(s.agent, s.web.origin, '/unbuffered/upload', {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream', 'X-Gate': gate },
          stream: async (req) => {
            const first = 256 * 1024;
            for (let offset = 0; offset < first; offset += 32 * 1024) await write(req, body.subarray(offset, offset + 32 * 1024));
            // Only a streaming nginx lets the app see body bytes before the client has sent the rest.
            // (Well inside nginx's client_body_timeout of 60 s, so the failure names the cause.)
            await within(s, firstChunkSeen, 30_000, 'the app saw no body bytes while the client held back the rest: nginx did not stream the body');
            for (let offset = first; offset < size; offset += 64 * 1024) await write(req, body.subarray(offset, Math.min(size, offset + 64 * 1024)));
          },
        });
        const result = await within(s, pending, TIMEOUT, 'the streamed POST got no answer');
        eq(s, result.status, 200, 'status');
        const { info, rest } = parseEcho(result);
        eq(s, info.method, 'POST', 'REQUEST_METHOD');
        eq(s, info.bodyLength, size, 'body length the app read');
        eq(s, info.bodySha256, sha256(body), 'SHA-256 of the body the app read');
        eq(s, info.params.HTTP_TRANSFER_ENCODING, 'chunked', 'HTTP_TRANSFER_ENCODING');
        eq(s, info.contentLength, null, 'an unbuffered chunked upload declares no length');
        eq(s, rest.at(-2), 'end', 'the response ends with the last streamed part');
        const stdin = s.tap.since(from).filter((r) => r.type === STDIN);
        t.diagnostic(`CONTENT_LENGTH=${JSON.stringify(info.params.CONTENT_LENGTH)}; body arrived in ${info.bodyChunks} chunks`);
        t.diagnostic(`records: ${summarize(s.tap.since(from))}; largest STDIN ${Math.max(...stdin.map((r) => r.contentLength))}`);
      });

      test('Content-Length POST streamed by nginx (fastcgi_request_buffering off)', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        const from = s.tap.records.length;
        const body = randomBytes(3 * MiB + 7);
        const result = await request(s.agent, s.web.origin, '/unbuffered/form', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });
        eq(s, result.status, 200, 'status');
        const { info } = parseEcho(result);
        eq(s, info.params.CONTENT_LENGTH, String(body.length), 'CONTENT_LENGTH');
        eq(s, info.contentLength, body.length, 'req.contentLength');
        eq(s, info.bodyLength, body.length, 'body length the app read');
        eq(s, info.bodySha256, sha256(body), 'SHA-256 of the body the app read');
        t.diagnostic(`records: ${summarize(s.tap.since(from))}`);
      });

      test('Content-Length POST buffered by nginx (the default), several MiB', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        const from = s.tap.records.length;
        const body = randomBytes(5 * MiB + 3);
        const result = await request(s.agent, s.web.origin, '/buffered?kind=length', {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream', 'X-Test': 'post' },
          body,
        });
        eq(s, result.status, 200, 'status');
        eq(s, result.headers['x-echo-method'], 'POST', 'X-Echo-Method passed through');
        const { info } = parseEcho(result);
        eq(s, info.params.CONTENT_LENGTH, String(body.length), 'CONTENT_LENGTH');
        eq(s, info.params.CONTENT_TYPE, 'application/octet-stream', 'CONTENT_TYPE');
        eq(s, info.bodyLength, body.length, 'body length the app read');
        eq(s, info.bodySha256, sha256(body), 'SHA-256 of the body the app read');
        t.diagnostic(`records: ${summarize(s.tap.since(from))}`);
      });

      test('chunked POST buffered by nginx (the default)', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        const body = randomBytes(2 * MiB + 99);
        const result = await request(s.agent, s.web.origin, '/buffered?kind=chunked', {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream' },
          stream: async (req) => {
            for (let offset = 0; offset < body.length; offset += 100_000) await write(req, body.subarray(offset, offset + 100_000));
          },
        });
        eq(s, result.status, 200, 'status');
        const { info } = parseEcho(result);
        eq(s, info.bodyLength, body.length, 'body length the app read');
        eq(s, info.bodySha256, sha256(body), 'SHA-256 of the body the app read');
        t.diagnostic(`buffered chunked upload: CONTENT_LENGTH=${JSON.stringify(info.params.CONTENT_LENGTH)}, HTTP_TRANSFER_ENCODING=${JSON.stringify(info.params.HTTP_TRANSFER_ENCODING)}`);
      });

      test('Status: 404 Custom Reason is kept by nginx', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const result = await request(s.agent, s.web.origin, '/missing/status404');
        eq(s, result.status, 404, 'status');
        eq(s, result.statusMessage, 'Custom Reason', 'reason phrase');
        eq(s, result.headers['x-app'], 'nodefpm', 'X-App passed through');
        eq(s, result.headers['content-type'], 'text/plain; charset=utf-8', 'Content-Type passed through');
        eq(s, result.body.toString('utf8'), 'custom not found\n', 'body');
        eq(s, result.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/; HttpOnly'], 'both Set-Cookie headers passed through');
      });

      test('HEAD: headers only', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const result = await request(s.agent, s.web.origin, '/echo/head?h=1', { method: 'HEAD', headers: { 'X-Test': 'head' } });
        eq(s, result.status, 200, 'status');
        eq(s, result.headers['x-echo-method'], 'HEAD', 'X-Echo-Method passed through');
        eq(s, result.headers['x-echo-test'], 'head', 'X-Echo-Test passed through');
        eq(s, result.body.length, 0, 'body bytes of a HEAD response');
      });

      test('a handler that throws: 500 through nginx, the error in nginx\'s log through FCGI_STDERR', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const id = `${transport}-${String(keepConn)}`;
        const result = await request(s.agent, s.web.origin, `/fail/throw?id=${id}`);
        eq(s, result.status, 500, 'status');
        eq(s, result.body.toString('utf8').includes('boom-marker'), false, 'the error stays out of the response (development off)');
        const logged = await eventually(() => s.web.errorLog().includes(`boom-marker ${id}`), 10_000);
        assert.ok(logged, `nginx's error log never showed the handler's error sent on FCGI_STDERR${s.context()}`);
        const line = s.web.errorLog().split('\n').find((l) => l.includes(`boom-marker ${id}`)) ?? '';
        eq(s, line.includes('FastCGI sent in stderr'), true, `nginx logs it as "FastCGI sent in stderr" (${line})`);
        const next = await request(s.agent, s.web.origin, '/after-throw');
        eq(s, next.status, 200, 'the request after the failure is served');
      });

      test('concurrent requests: nginx opens parallel FastCGI connections, every answer is right', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
        try {
          const results = await Promise.all(
            Array.from({ length: 24 }, (_, i) =>
              request(agent, s.web.origin, `/unbuffered/par?i=${i}`, { method: 'POST', body: Buffer.alloc(100_000 + i, i) }),
            ),
          );
          results.forEach((result, i) => {
            eq(s, result.status, 200, `status of request ${i}`);
            const { info } = parseEcho(result);
            eq(s, info.params.QUERY_STRING, `i=${i}`, `QUERY_STRING of request ${i}`);
            eq(s, info.bodySha256, sha256(Buffer.alloc(100_000 + i, i)), `body hash of request ${i}`);
          });
        } finally {
          agent.destroy();
        }
      });

      test('a response streamed in many writes with backpressure (3 MiB download)', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const size = 3 * MiB + 512;
        const result = await request(s.agent, s.web.origin, `/download?size=${size}`);
        eq(s, result.status, 200, 'status');
        eq(s, result.body.length, size, 'bytes received through nginx');
        const expected = createHash('sha256');
        for (let left = size; left > 0; left -= PATTERN.length) expected.update(left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left));
        eq(s, sha256(result.body), expected.digest('hex'), 'SHA-256 of the download');
      });

      test('X-Accel-Redirect: nginx serves the file instead and the app copes with its connection being dropped', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        for (const size of [0, 2 * MiB]) {
          const gate = `accel-${transport}-${String(keepConn)}-${size}`;
          const finished = openGate(gate);
          const from = s.tap.records.length;
          const result = await request(s.agent, s.web.origin, `/files/accel?size=${size}`, { headers: { 'X-Gate': gate } });
          eq(s, result.status, 200, `status (fallback body of ${size} bytes)`);
          eq(s, result.body.toString('utf8'), ACCEL_CONTENT, 'nginx served the internal file, not the app body');
          eq(s, result.headers['x-accel-redirect'], undefined, 'X-Accel-Redirect is not passed to the client');
          await within(s, finished, TIMEOUT / 2, `the app's response to the X-Accel-Redirect request (${size} bytes of fallback) never closed`);
          const idle = await eventually(() => s.server.activeRequests === 0, TIMEOUT / 2);
          assert.ok(idle, `requests still active after X-Accel-Redirect: ${s.server.activeRequests}${s.context()}`);
          const used = s.tap.since(from).find((r) => r.type === BEGIN_REQUEST)?.connection ?? -1;
          const next = await request(s.agent, s.web.origin, '/after-accel');
          eq(s, next.status, 200, 'the request after an X-Accel-Redirect is served');
          await sleep(200);
          t.diagnostic(`X-Accel-Redirect with ${size} fallback bytes: its FastCGI connection was ${s.tap.closed.has(used) ? 'closed' : 'kept'}`);
        }
      });

      test('the client gives up on a streamed response: the app sees req.signal abort, the next request is served', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const gate = `abort-${transport}-${String(keepConn)}`;
        const aborted = openGate(gate);
        await new Promise<void>((resolve, reject) => {
          const req = http.get(new URL('/stream/endless', s.web.origin), { agent: false, headers: { 'X-Gate': gate } }, (res) => {
            res.once('data', () => {
              // Some of the body arrived: hang up on nginx mid-response.
              req.destroy();
              resolve();
            });
          });
          req.on('error', (error: NodeJS.ErrnoException) => {
            if (error.code !== 'ECONNRESET') reject(error);
          });
        });
        await within(s, aborted, TIMEOUT / 2, 'the app never saw req.signal abort after the client hung up on nginx');
        const idle = await eventually(() => s.server.activeRequests === 0, TIMEOUT / 2);
        assert.ok(idle, `requests still active after the abort: ${s.server.activeRequests}${s.context()}`);
        const next = await request(s.agent, s.web.origin, '/after-abort?ok=1');
        eq(s, next.status, 200, 'the request after the abort is served');
        eq(s, parseEcho(next).info.params.QUERY_STRING, 'ok=1', 'QUERY_STRING of the request after the abort');
      });

      test('the client gives up mid-upload (unbuffered): the app sees req.signal abort, the next request is served', { timeout: TIMEOUT }, async () => {
        const s = ready();
        const gate = `upload-abort-first-${transport}-${String(keepConn)}`;
        const abortGate = `upload-abort-${transport}-${String(keepConn)}`;
        const firstChunkSeen = openGate(gate);
        const aborted = openGate(abortGate);
        const req = http.request(new URL('/unbuffered/abandoned', s.web.origin), {
          method: 'POST',
          agent: false,
          headers: { 'Transfer-Encoding': 'chunked', 'X-Gate': gate, 'X-Abort-Gate': abortGate },
        });
        req.on('error', () => {}); // the hang-up below
        await write(req, randomBytes(256 * 1024));
        await within(s, firstChunkSeen, 30_000, 'the app saw no body bytes of the upload');
        req.destroy();
        await within(s, aborted, TIMEOUT / 2, 'the app never saw req.signal abort after the client abandoned its upload');
        const idle = await eventually(() => s.server.activeRequests === 0, TIMEOUT / 2);
        assert.ok(idle, `requests still active after the abandoned upload: ${s.server.activeRequests}${s.context()}`);
        const body = randomBytes(300_000);
        const next = await request(s.agent, s.web.origin, '/unbuffered/after-abandon', { method: 'POST', body });
        eq(s, next.status, 200, 'the upload after the abandoned one is served');
        eq(s, parseEcho(next).info.bodySha256, sha256(body), 'body hash of the upload after the abandoned one');
      });

      test('a client that stops reading: backpressure reaches the app (X-Accel-Buffering: no), nothing is lost', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        const gate = `firehose-${transport}-${String(keepConn)}`;
        let response: http.IncomingMessage | null = null;
        const req = http.get(new URL('/stream/firehose', s.web.origin), { agent: false, headers: { 'X-Gate': gate } }, (res) => {
          res.pause(); // read nothing for now
          response = res;
        });
        const failed = new Promise<never>((_, reject) => req.on('error', reject));
        try {
          // The app must come to rest: waiting for 'drain', its byte count unchanged for a while.
          let last = -1;
          let still = 0;
          const rested = await eventually(() => {
            const state = firehoses.get(gate);
            if (state === undefined || response === null) return false;
            still = state.waiting && state.written === last ? still + 1 : 0;
            last = state.written;
            return still >= 10;
          }, 30_000);
          const state = firehoses.get(gate);
          assert.ok(rested && state !== undefined, `the app never came to rest waiting for 'drain' while the client read nothing (${state?.written ?? 0} bytes written)${s.context()}`);
          const inFlight = state.written;
          assert.ok(inFlight < 64 * MiB, `the app wrote ${inFlight} bytes to a client that reads nothing: backpressure did not hold it back${s.context()}`);
          state.stop = true;
          const res = response as http.IncomingMessage | null;
          assert.ok(res !== null, 'the response head arrived');
          eq(s, res.headers['x-accel-buffering'], undefined, 'nginx keeps X-Accel-Buffering to itself');
          const received = await within(
            s,
            Promise.race([
              failed,
              new Promise<{ length: number; hash: string }>((resolve, reject) => {
                const hash = createHash('sha256');
                let length = 0;
                res.on('data', (chunk: Buffer) => {
                  hash.update(chunk);
                  length += chunk.length;
                });
                res.on('end', () => resolve({ length, hash: hash.digest('hex') }));
                res.on('error', reject);
                res.resume();
              }),
            ]),
            TIMEOUT / 2,
            'the firehose response did not end after the client started reading',
          );
          eq(s, received.length, state.written, 'bytes received = bytes the app wrote');
          const expected = createHash('sha256');
          for (let i = 0; i < state.written / PATTERN.length; i++) expected.update(PATTERN);
          eq(s, received.hash, expected.digest('hex'), 'SHA-256 of what the client received');
          t.diagnostic(`the app came to rest with ${(inFlight / MiB).toFixed(2)} MiB written (held by the client socket, nginx, the FastCGI socket and nodefpm's queue)`);
        } finally {
          req.destroy();
          firehoses.delete(gate);
        }
      });

      test(`sequential requests: ${keepConn ? 'kept connections are reused' : 'one FastCGI connection per request'}`, { timeout: TIMEOUT }, async () => {
        const s = ready();
        const count = 10;
        const connectionsBefore = s.server.stats.connectionsAccepted;
        const requestsBefore = s.server.stats.requestsStarted;
        const from = s.tap.records.length;
        for (let i = 0; i < count; i++) {
          const result = await request(s.agent, s.web.origin, `/seq?i=${i}`, { headers: { 'X-Test': `seq ${i}` } });
          eq(s, result.status, 200, `status of request ${i}`);
          eq(s, parseEcho(result).info.params.QUERY_STRING, `i=${i}`, `QUERY_STRING of request ${i}`);
        }
        const connections = s.server.stats.connectionsAccepted - connectionsBefore;
        const requests = s.server.stats.requestsStarted - requestsBefore;
        eq(s, requests, count, 'FastCGI requests the app started');
        if (keepConn) {
          assert.ok(connections < requests, `with fastcgi_keep_conn on, nginx must reuse connections: ${connections} connections for ${requests} requests${s.context()}`);
        } else {
          eq(s, connections, requests, 'with fastcgi_keep_conn off, FastCGI connections = requests');
        }
        const flags = s.tap.since(from).filter((r) => r.type === BEGIN_REQUEST).map((r) => r.keepConn);
        eq(s, flags, new Array<boolean>(count).fill(keepConn), 'FCGI_KEEP_CONN of every BEGIN_REQUEST');
      });

      if (keepConn) {
        test('nodefpm closes idle kept connections (idleTimeout): nginx notices, the next requests get new ones', { timeout: TIMEOUT }, async () => {
          const s = ready();
          const idle = await eventually(() => s.server.connectionCount === 0, 30_000);
          assert.ok(idle, `kept connections still open ${IDLE_TIMEOUT} ms after the last request: ${s.server.connectionCount}${s.context()}`);
          const connectionsBefore = s.server.stats.connectionsAccepted;
          const get = await request(s.agent, s.web.origin, '/after-idle?get=1');
          eq(s, get.status, 200, 'GET after nodefpm closed the idle connections');
          const body = randomBytes(200_000);
          const post = await request(s.agent, s.web.origin, '/after-idle?post=1', { method: 'POST', body });
          eq(s, post.status, 200, 'POST after nodefpm closed the idle connections');
          eq(s, parseEcho(post).info.bodySha256, sha256(body), 'body hash of the POST');
          assert.ok(s.server.stats.connectionsAccepted > connectionsBefore, `nginx opened a new connection${s.context()}`);
        });
      }

      test('nothing went wrong on either side: no nginx errors, no nodefpm warnings', { timeout: TIMEOUT }, async (t: TestContext) => {
        const s = ready();
        // Give nginx a moment to log anything about connections that closed after the last response.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const log = s.web.errorLog();
        // The abort tests' client hang-ups and the throwing handler's STDERR are logged on purpose; nothing else may be.
        const bad = log
          .split(/\n(?=\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d )/) // entries (STDERR text may span lines)
          .filter((line) => /upstream prematurely closed|broken pipe|reset by peer|\[(error|crit|alert|emerg)\]/i.test(line))
          .filter((line) => !/request: "(GET \/stream\/endless |GET \/fail\/throw\?|POST \/unbuffered\/abandoned )/.test(line));
        eq(s, bad, [], "nginx error log lines at [error] or worse, or with 'upstream prematurely closed' / 'broken pipe' / 'reset by peer'");
        const ours = s.logs.entries
          .filter((entry) => (entry.level === 'error' || entry.level === 'warn') && !entry.message.includes('/fail/throw?'))
          .map((entry) => entry.message);
        eq(s, ours, [], 'nodefpm warnings and errors');
        const types = new Set(s.tap.records.map((r) => TYPE_NAMES[r.type] ?? `type ${r.type}`));
        eq(s, [...types].sort(), ['BEGIN_REQUEST', 'PARAMS', 'STDIN'], 'record types nginx sent');
        eq(s, s.tap.records.filter((r) => r.type === PARAMS || r.type === BEGIN_REQUEST).every((r) => r.requestId === 1), true, 'nginx never multiplexes: request id 1');
        t.diagnostic(`whole run: ${s.server.stats.requestsStarted} requests on ${s.server.stats.connectionsAccepted} connections; ${summarize(s.tap.records)}`);
      });
    });
  }
}
