// The differential test: one corpus sent to the same Express 4/5, Koa, Connect, Fastify and Hono apps on Node's own http server and over nodefpm, answers and what the apps observed compared; then again under the validator, which may find only what it rightly finds in a framework.

import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { getRequestListener } from '@hono/node-server';
import { fetchExchangeHandler, type FcgiBindings, type FetchFunction } from '../src/adapters/fetch/index.js';
import { nodeExchangeHandler, type NodeRequestListener } from '../src/adapters/node/index.js';
import { validateExchangeHandler, validateFetchHandler, type ValidatingExchangeHandler } from '../src/adapters/validate/index.js';
import { FcgiClient, type FcgiResponse } from '../src/client/index.js';
import type { BodySource } from '../src/client/connection.js';
import { silentLogger } from '../src/log.js';
import { formatListenAddress } from '../src/server/listen.js';
import { FcgiServer, type ExchangeHandler } from '../src/server/server.js';
import type { AppProbe } from './fixtures/apps/fetch.js';
import { createHonoApp } from './fixtures/apps/hono.js';
import { nodeApps } from './fixtures/apps/node-apps.js';
import type { NodeProbe } from './fixtures/apps/node-shared.js';
import { bodyChunks, cgiParams, corpus, wireHeaders, type AppName, type CorpusRequest, type DifferenceId } from './fixtures/corpus.js';
import { tempDir } from './helpers/servers.js';

// A self-signed certificate for localhost and 127.0.0.1, valid until 2126, for the requests sent over
// TLS (made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 36500`): kept
// here so the test needs nothing but Node.
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOrqO5qi9RMg+lxmr
3lrXMzEG4+f9G1cu6ICFLqng2xuhRANCAAQqN1CeaSU+7gZoI6KS6geH2lb0yy9y
t4bj5/Pc1niKsKFblLXZCbBn2NgW40NeI6u++PtbKJVGvk4uLMrtfRuV
-----END PRIVATE KEY-----
`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUTCR15+Uzewf4BWKV3G60+Q+4ZaYwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMzIxNDEwNVoYDzIxMjYxMDMw
MjE0MTA1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQqN1CeaSU+7gZoI6KS6geH2lb0yy9yt4bj5/Pc1niKsKFblLXZCbBn
2NgW40NeI6u++PtbKJVGvk4uLMrtfRuVo28wbTAdBgNVHQ4EFgQUfeLgNdtDU3Ci
HHJuHsZMZQnylq4wHwYDVR0jBBgwFoAUfeLgNdtDU3CiHHJuHsZMZQnylq4wDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgDjCwZji7gOoa0TIiCus1EVsdp2F/wUlxcQK7DEGe29sCIHGY
riLm1+UU+dkG4WaiBwH+BTOoxZ0rI3kZ12/P2pmz
-----END CERTIFICATE-----
`;

const HOST = 'localhost';

// ---- what the apps observe ----

/**
 * What one side's app saw of each request: events recorded by a wrapper around the app (Node
 * listeners: 'aborted' and 'close' on req, 'finish' and 'close' on res; fetch handlers: the request's
 * signal aborting) and by the app's own probe (the fetch apps' onAbort). Requests are sent to a side
 * one at a time, so the events belong to the request in flight.
 */
class Observer {
  events: string[] = [];
  #waiters: Array<() => void> = [];

  reset(): void {
    this.events = [];
  }

  add(event: string): void {
    this.events.push(event);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves once `event` was recorded for the request in flight; rejects after `timeout` ms. */
  async waitFor(event: string, timeout = 5000): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!this.events.includes(event)) {
      if (Date.now() > deadline) throw new Error(`waited ${timeout} ms for "${event}"; saw ${this.events.join(', ') || 'nothing'}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
}

/** A Node listener that records what its request and response go through, then runs `listener`. */
function observeListener(listener: NodeRequestListener, observer: Observer): NodeRequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    observer.add('app:called');
    req.once('aborted', () => observer.add('req:aborted'));
    req.once('close', () => observer.add('req:close'));
    res.once('finish', () => observer.add('res:finish'));
    res.once('close', () => observer.add(`res:close${res.writableFinished ? '' : ' (unfinished)'}`));
    return listener(req, res);
  };
}

/** A fetch handler that records its request's signal aborting, then runs `fetch`. */
function observeFetch<Env>(fetch: (request: Request, env: Env) => Response | Promise<Response>, observer: Observer): (request: Request, env: Env) => Response | Promise<Response> {
  return (request: Request, env: Env) => {
    request.signal.addEventListener('abort', () => observer.add('signal:abort'));
    const result = fetch(request, env);
    // Hono has run the route's synchronous part (the /wait route is listening for the abort now).
    observer.add('app:called');
    return result;
  };
}

// ---- the two servers of each app ----

interface Harness {
  name: AppName;
  /** Node's http server (and https, for the requests marked tls) and the nodefpm server run separate instances of the app. */
  httpObserver: Observer;
  fcgiObserver: Observer;
  httpPort: number;
  httpsPort: number;
  agent: http.Agent;
  tlsAgent: https.Agent;
  client: FcgiClient;
  /** nodefpm again, the app wrapped by the validator in 'collect' mode. */
  validated: { client: FcgiClient; handler: ValidatingExchangeHandler };
  close(): Promise<void>;
}

function listenHttp(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function listenFcgi(handler: ExchangeHandler, path: string): Promise<{ server: FcgiServer; client: FcgiClient }> {
  const server = new FcgiServer(handler, { logger: silentLogger, abortTimeout: 2000 });
  const address = formatListenAddress(await server.listen(`unix:${path}`));
  return { server, client: new FcgiClient({ address, maxConnections: 2 }) };
}

async function startHarness(name: AppName): Promise<Harness> {
  const httpObserver = new Observer();
  const fcgiObserver = new Observer();
  const closers: Array<() => Promise<void> | void> = [];
  let httpListener: NodeRequestListener;
  let fcgiHandler: ExchangeHandler;
  let validatedInner: ExchangeHandler;
  if (name === 'hono') {
    const probe = (observer: Observer): AppProbe => ({ onAbort: () => observer.add('app:abort') });
    const onHttp = createHonoApp(probe(httpObserver));
    const fcgiApp = createHonoApp(probe(fcgiObserver));
    const onFcgi: FetchFunction = observeFetch((request, env: FcgiBindings) => fcgiApp.fetch(request, env), fcgiObserver);
    // Both adapters replace globalThis.Response and Request with stand-ins of their own, and in one
    // process only one can be the global. nodefpm's are (its adapter installs them, as in production);
    // @hono/node-server is told not to install its own, and sends the Responses Hono makes through its
    // general path (a Response's headers and body) instead of its shortcut for its own stand-in. What
    // reaches the socket is the same either way: that is the stand-ins' contract.
    httpListener = getRequestListener(observeFetch((request, env) => onHttp.fetch(request, env), httpObserver), { overrideGlobalObjects: false });
    fcgiHandler = fetchExchangeHandler(onFcgi, {}, silentLogger);
    validatedInner = fetchExchangeHandler(validateFetchHandler(onFcgi), {}, silentLogger);
  } else {
    const probe = (observer: Observer): NodeProbe => ({ onEvent: (event) => event === 'wait' && observer.add('app:waiting') });
    const onHttp = await nodeApps[name](probe(httpObserver));
    const onFcgi = await nodeApps[name](probe(fcgiObserver));
    closers.push(() => onHttp.close(), () => onFcgi.close());
    httpListener = observeListener(onHttp.listener, httpObserver);
    const fcgiListener = observeListener(onFcgi.listener, fcgiObserver);
    fcgiHandler = nodeExchangeHandler(fcgiListener, {}, silentLogger);
    validatedInner = nodeExchangeHandler(fcgiListener, {}, silentLogger);
  }

  const httpServer = http.createServer(httpListener);
  const httpsServer = https.createServer({ key: TLS_KEY, cert: TLS_CERT }, httpListener);
  const httpPort = await listenHttp(httpServer);
  const httpsPort = await listenHttp(httpsServer);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });

  const dir = tempDir('nodefpm-differential-');
  const plain = await listenFcgi(fcgiHandler, join(dir.path, 'app.sock'));
  // The abort grace is short so the test need not wait long to know no NOT_ENDED is coming.
  const validatorHandler = validateExchangeHandler(validatedInner, { mode: 'collect', logger: silentLogger, endTimeout: 500 });
  const validated = await listenFcgi(validatorHandler, join(dir.path, 'validated.sock'));

  return {
    name,
    httpObserver,
    fcgiObserver,
    httpPort,
    httpsPort,
    agent,
    tlsAgent,
    client: plain.client,
    validated: { client: validated.client, handler: validatorHandler },
    async close() {
      agent.destroy();
      tlsAgent.destroy();
      plain.client.destroy();
      validated.client.destroy();
      for (const server of [httpServer, httpsServer]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await plain.server.close({ timeout: 1000 });
      await validated.server.close({ timeout: 1000 });
      for (const close of closers) await close();
      dir.remove();
    },
  };
}

// ---- sending the corpus ----

interface Answer {
  status: number;
  /** Header lines as received, names lower-cased, in order. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** The client gave up after the first body bytes: the body is not compared. */
  partial: boolean;
}

/** What one side gave: the answer (null when the client gave up before any), and what the app observed. */
interface Outcome {
  answer: Answer | null;
  observed: string[];
  /** The client's local port on the HTTP side: the web server passes it as REMOTE_PORT. */
  clientPort: number;
}

const expectOf = (request: CorpusRequest): string => request.expect?.kind ?? 'complete';

/** Waits until the app has the request and is waiting (Node apps report it; for Hono, its route has run). */
async function appWaiting(name: AppName, observer: Observer): Promise<void> {
  await observer.waitFor(name === 'hono' ? 'app:called' : 'app:waiting');
}

/** Waits until the app is reading the body (its route is running), for an abort in the middle of an upload. */
async function appReading(observer: Observer): Promise<void> {
  await observer.waitFor('app:called');
  await sleep(30);
}

/**
 * What the app saw, once the request has run its course: for Node listeners the response's 'close'
 * (it comes last on both servers), for fetch handlers the signal when the client gave up. Events
 * that come later than that would be missed on both sides alike.
 */
async function settled(name: AppName, request: CorpusRequest, observer: Observer): Promise<string[]> {
  const deadline = Date.now() + 5000;
  const done = (): boolean => {
    // Never called (Node's http refused the request itself): nothing is coming.
    if (!observer.events.includes('app:called')) return true;
    if (name === 'hono') return expectOf(request) === 'complete' || observer.events.includes('signal:abort');
    return observer.events.some((event) => event.startsWith('res:close'));
  };
  while (!done() && Date.now() < deadline) await sleep(5);
  // Let events queued behind the last one (req 'close' after res 'close') land.
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  return [...observer.events];
}

function headerPairs(raw: string[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return pairs;
}

/** Sends `request` with `wire` headers over HTTP (or HTTPS), as a keep-alive client. */
function sendHttp(harness: Harness, request: CorpusRequest, wire: Array<[string, string]>): Promise<{ answer: Answer | null; clientPort: number }> {
  const tls = request.tls === true;
  const expect = expectOf(request);
  return new Promise((resolve, reject) => {
    let clientPort = 0;
    let gaveUp = false;
    const giveUp = (answer: Answer | null): void => {
      gaveUp = true;
      outgoing.destroy();
      resolve({ answer, clientPort });
    };
    const options: https.RequestOptions = {
      host: '127.0.0.1',
      port: tls ? harness.httpsPort : harness.httpPort,
      method: request.method,
      path: request.target,
      // An array of raw lines: sent as they are, repeats included, and Node adds no header of its own.
      headers: wire.flat(),
      agent: tls ? harness.tlsAgent : harness.agent,
    };
    const outgoing = (tls ? https : http).request(options, (response) => {
      const chunks: Buffer[] = [];
      const answer = (partial: boolean): Answer => ({
        status: response.statusCode ?? 0,
        headers: headerPairs(response.rawHeaders),
        body: Buffer.concat(chunks),
        partial,
      });
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (expect === 'abort-after-first-byte' && !gaveUp) giveUp(answer(true));
      });
      response.on('end', () => {
        if (!gaveUp) resolve({ answer: answer(false), clientPort });
      });
      response.on('error', (error) => {
        if (!gaveUp) reject(error);
      });
    });
    outgoing.on('socket', (socket: Socket) => {
      const take = (): void => {
        clientPort = socket.localPort ?? 0;
      };
      if (socket.localPort !== undefined) take();
      else socket.once('connect', take);
    });
    outgoing.on('error', (error) => {
      if (!gaveUp) reject(error);
    });
    const body = request.body;
    if (body === undefined) {
      outgoing.end();
    } else if (body.kind === 'bytes') {
      outgoing.end(body.bytes);
    } else {
      void (async () => {
        const chunks = bodyChunks(body);
        for (let i = 0; i < chunks.length; i++) {
          if (request.expect?.kind === 'abort-during-upload' && i === request.expect.chunks) {
            await appReading(harness.httpObserver);
            giveUp(null);
            return;
          }
          if (!outgoing.write(chunks[i])) await new Promise((resume) => outgoing.once('drain', resume));
          if (body.pauseEvery !== undefined && (i + 1) % body.pauseEvery === 0) await sleep(2);
        }
        outgoing.end();
      })().catch(reject);
    }
    if (expect === 'abort-while-waiting') {
      appWaiting(harness.name, harness.httpObserver).then(() => giveUp(null), reject);
    }
  });
}

/** Sends `request` with `params` to a nodefpm server through the project's FastCGI client. */
async function sendFcgi(harness: Harness, client: FcgiClient, request: CorpusRequest, params: Array<[string, string]>): Promise<Answer | null> {
  const expect = expectOf(request);
  const controller = new AbortController();
  let body: BodySource;
  const spec = request.body;
  if (spec === undefined) {
    body = undefined;
  } else if (spec.kind === 'bytes') {
    body = spec.bytes;
  } else {
    body = (async function* streamed(): AsyncGenerator<Uint8Array> {
      const chunks = bodyChunks(spec);
      for (let i = 0; i < chunks.length; i++) {
        if (request.expect?.kind === 'abort-during-upload' && i === request.expect.chunks) {
          await appReading(harness.fcgiObserver);
          controller.abort();
          return;
        }
        yield chunks[i]!;
        if (spec.pauseEvery !== undefined && (i + 1) % spec.pauseEvery === 0) await sleep(2);
      }
    })();
  }
  const pending = client.request({ params, body, signal: controller.signal });
  if (expect === 'abort-while-waiting') {
    await appWaiting(harness.name, harness.fcgiObserver);
    controller.abort();
  }
  if (expect === 'abort-while-waiting' || expect === 'abort-during-upload') {
    await assert.rejects(pending, { code: 'NODEFPM_CLIENT_ABORTED' }, `${request.name}: the request ends as aborted`);
    return null;
  }
  const response: FcgiResponse = await pending;
  const answer = (bytes: Buffer, partial: boolean): Answer => ({
    status: response.status,
    headers: response.rawHeaders.map(([name, value]) => [name.toLowerCase(), value]),
    body: bytes,
    partial,
  });
  if (expect === 'abort-after-first-byte') {
    const first = await new Promise<Buffer>((resolve) => response.body.once('data', resolve));
    // The body errors with the abort; the failure is expected, so it is listened for and dropped.
    response.body.on('error', () => undefined);
    controller.abort();
    response.body.resume();
    await response.ended.catch(() => undefined);
    return answer(first, true);
  }
  const bytes = await response.bytes();
  const ended = await response.ended;
  assert.equal(ended.protocolStatus, 0, `${request.name}: END_REQUEST says REQUEST_COMPLETE`);
  return answer(bytes, false);
}

// ---- the documented differences ----

/** Request headers Node's http server keeps only the first of (lib/_http_incoming.js matchKnownFields), where nginx joins every repeat. */
const NODE_SINGLETON_HEADERS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

type Rewrite = (request: CorpusRequest, wire: Array<[string, string]>) => { target: string; wire: Array<[string, string]> };

/**
 * Most documented differences (docs/frameworks.md, "What the differential test found") are ways the
 * request reaching the app differs before nodefpm is involved: the web server changes it. For those
 * the reference request sent to Node's http server is rewritten to what the app gets through the web
 * server and nodefpm, and the unrewritten request is sent too, to check that its answer does differ:
 * a difference that goes away cannot stay listed (and normalised) unnoticed.
 */
const REWRITES: Record<Exclude<DifferenceId, 'node-http-refuses-raw-target'>, Rewrite> = {
  // nginx joins repeated headers into one param, singleton ones included; Node keeps the first of
  // those. The app behind nginx sees the joined value; so does Node's http when sent one joined line.
  'web-server-joins-singleton-headers': (request, wire) => {
    const out: Array<[string, string]> = [];
    for (const [name, value] of wire) {
      const lower = name.toLowerCase();
      const first = NODE_SINGLETON_HEADERS.has(lower) ? out.find(([existing]) => existing.toLowerCase() === lower) : undefined;
      if (first !== undefined) first[1] = `${first[1]}, ${value}`;
      else out.push([name, value]);
    }
    return { target: request.target, wire: out };
  },
  // nginx's default (underscores_in_headers off) drops such headers: the app never sees them.
  'web-server-drops-underscore-headers': (request, wire) => ({ target: request.target, wire: wire.filter(([name]) => !name.includes('_')) }),
};

function differencesFor(request: CorpusRequest, name: AppName): DifferenceId[] {
  return (request.differences ?? []).filter((d) => d.apps === 'all' || d.apps.includes(name)).map((d) => d.id);
}

// ---- comparing ----

/**
 * Response headers left out of the comparison, each for a reason:
 * - date: the time of the answer;
 * - connection, keep-alive, transfer-encoding: hop-by-hop (RFC 9110 7.6.1). Node's http server writes
 *   them for its own connection; over FastCGI the web server frames the body and manages the
 *   connection, and nodefpm must never pass them on (asserted separately below).
 */
const NOT_COMPARED = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

/** Header name -> its values in order (Set-Cookie is a list), names in sorted order; see compare() on why order across names is not compared for Hono. */
function headerMap(headers: Array<[string, string]>): Array<[string, string[]]> {
  const map = new Map<string, string[]>();
  for (const [name, value] of headers) {
    if (NOT_COMPARED.has(name)) continue;
    let values = map.get(name);
    if (values === undefined) map.set(name, (values = []));
    values.push(value);
  }
  return [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Where two bodies first differ, for a readable failure. */
function bodyDiff(a: Buffer, b: Buffer): string {
  let at = 0;
  while (at < a.length && at < b.length && a[at] === b[at]) at++;
  const show = (bytes: Buffer): string => JSON.stringify(bytes.subarray(Math.max(0, at - 40), at + 80).toString('latin1'));
  return `lengths ${a.length} and ${b.length}, first difference at byte ${at}: ${show(a)} vs ${show(b)}`;
}

/**
 * A streamed Response body is framed by whatever the adapter knows when it writes the head: both fetch
 * adapters first take the chunks the stream already holds, and if that is the whole body they send a
 * Content-Length, else the body goes chunked (over HTTP) or unframed (over FastCGI, where the web server
 * frames it). @hono/node-server takes two reads at once and, if the stream is not done, a third after a
 * timer; nodefpm up to 16 reads (64 KiB) within a few microtasks. So for a short stream (an echoed
 * body) either side may send a Content-Length the other does not, depending on timing. The bytes are
 * the same and so is what the client gets: the Content-Length is checked against the body, then left
 * out of the header comparison. Only for Hono: for Node listeners Node's own ServerResponse frames the
 * body on both servers.
 */
function sameFraming(what: string, request: CorpusRequest, ours: Answer, theirs: Answer): void {
  if (request.method === 'HEAD') return;
  const lengthOf = (answer: Answer): string | undefined => answer.headers.find(([header]) => header === 'content-length')?.[1];
  const chunked = theirs.headers.some(([header, value]) => header === 'transfer-encoding' && /chunked/i.test(value));
  let framed: Answer;
  if (lengthOf(ours) !== undefined && lengthOf(theirs) === undefined && chunked) framed = ours;
  else if (lengthOf(theirs) !== undefined && lengthOf(ours) === undefined) framed = theirs;
  else return;
  if (!framed.partial) assert.equal(lengthOf(framed), String(framed.body.length), `${what}: the Content-Length is the body's`);
  framed.headers = framed.headers.filter(([header]) => header !== 'content-length');
}

function compare(what: string, name: AppName, request: CorpusRequest, reference: Outcome, fcgi: Outcome): void {
  assert.deepEqual(fcgi.observed, reference.observed, `${what}: what the app observed (nodefpm, then Node's http)`);
  if (reference.answer === null || fcgi.answer === null) {
    assert.equal(fcgi.answer, reference.answer, `${what}: both or neither gave an answer`);
    return;
  }
  const [ours, theirs] = [fcgi.answer, reference.answer];
  assert.equal(ours.status, theirs.status, `${what}: status`);
  for (const [header] of ours.headers) assert.ok(!NOT_COMPARED.has(header) || header === 'date', `${what}: no ${header} header reaches the web server`);
  if (name === 'hono') {
    sameFraming(what, request, ours, theirs);
    // Header order across different names carries no meaning (RFC 9110 5.3) and the two fetch adapters
    // do not keep it alike: @hono/node-server writes the Headers object's iteration order (sorted by
    // name), nodefpm the order the Response was given. Values of one name keep their order (Set-Cookie).
    assert.deepEqual(headerMap(ours.headers), headerMap(theirs.headers), `${what}: headers`);
  } else {
    // Node's ServerResponse writes the head on both servers: every line, in order.
    const lines = (headers: Array<[string, string]>): Array<[string, string]> => headers.filter(([header]) => !NOT_COMPARED.has(header));
    assert.deepEqual(lines(ours.headers), lines(theirs.headers), `${what}: header lines`);
  }
  if (ours.partial || theirs.partial) {
    assert.ok(ours.body.length > 0 && theirs.body.length > 0, `${what}: both sides got the first body bytes`);
    const common = Math.min(ours.body.length, theirs.body.length);
    assert.ok(ours.body.subarray(0, common).equals(theirs.body.subarray(0, common)), `${what}: the first bytes agree: ${bodyDiff(ours.body, theirs.body)}`);
    return;
  }
  assert.ok(ours.body.equals(theirs.body), `${what}: body: ${bodyDiff(ours.body, theirs.body)}`);
}

/**
 * A request target with raw non-ASCII bytes: Node's http server refuses it (400, before any app runs),
 * so there is no reference to compare with. nginx passes it on, and the app behind nodefpm serves it.
 */
function refusedByNode(what: string, reference: Outcome, fcgi: Outcome): void {
  assert.equal(reference.answer?.status, 400, `${what}: Node's http refuses the raw target`);
  assert.deepEqual(reference.observed, [], `${what}: Node's http did not call the app`);
  assert.ok(fcgi.observed.includes('app:called'), `${what}: over nodefpm the app was called`);
  assert.equal(fcgi.answer?.status, 200, `${what}: and answered`);
}

/** Runs one corpus request on Node's http (as the reference) and on `client`'s nodefpm server. */
async function runOne(harness: Harness, request: CorpusRequest, client: FcgiClient): Promise<{ reference: Outcome; fcgi: Outcome; unrewritten: Outcome | null }> {
  const wire = wireHeaders(request, HOST);
  const differences = differencesFor(request, harness.name);
  let target = request.target;
  let referenceWire = wire;
  for (const id of differences) {
    if (id !== 'node-http-refuses-raw-target') ({ target, wire: referenceWire } = REWRITES[id]({ ...request, target }, referenceWire));
  }

  let unrewritten: Outcome | null = null;
  if (differences.some((id) => id !== 'node-http-refuses-raw-target')) {
    harness.httpObserver.reset();
    const sent = await sendHttp(harness, request, wire);
    unrewritten = { answer: sent.answer, clientPort: sent.clientPort, observed: await settled(harness.name, request, harness.httpObserver) };
  }

  harness.httpObserver.reset();
  const sent = await sendHttp(harness, { ...request, target }, referenceWire);
  const reference: Outcome = { answer: sent.answer, clientPort: sent.clientPort, observed: await settled(harness.name, request, harness.httpObserver) };

  harness.fcgiObserver.reset();
  const params = cgiParams(request, wire, {
    remoteAddress: '127.0.0.1',
    remotePort: sent.clientPort,
    serverAddress: '127.0.0.1',
    serverPort: request.tls === true ? harness.httpsPort : harness.httpPort,
    serverName: HOST,
    https: request.tls === true,
  });
  const answer = await sendFcgi(harness, client, request, params);
  const fcgi: Outcome = { answer, clientPort: 0, observed: await settled(harness.name, request, harness.fcgiObserver) };
  return { reference, fcgi, unrewritten };
}

// ---- the tests ----

test('the corpus covers what issue 4 asks for', () => {
  assert.ok(corpus.length >= 50, `at least 50 requests (${corpus.length})`);
  assert.equal(new Set(corpus.map((r) => r.name)).size, corpus.length, 'names are unique');
  const methods = new Set(corpus.map((r) => r.method));
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) assert.ok(methods.has(method), `method ${method}`);
  const has = (what: string, predicate: (r: CorpusRequest) => boolean): void => assert.ok(corpus.some(predicate), what);
  has('an odd query string', (r) => r.target.includes('%zz'));
  has('unicode', (r) => /%C3%A9|[\x80-\xff]/.test(r.target));
  has('a repeated header', (r) => new Set((r.headers ?? []).map(([n]) => n.toLowerCase())).size < (r.headers ?? []).length);
  has('two Cookie headers', (r) => (r.headers ?? []).filter(([n]) => n === 'Cookie').length === 2);
  has('a 5 MB body', (r) => r.body?.kind === 'bytes' && r.body.bytes.length >= 5_000_000);
  has('a streamed 5 MB body', (r) => r.body?.kind === 'stream' && r.body.bytes.length >= 5_000_000);
  has('a redirect', (r) => r.target === '/redirect');
  has('an error', (r) => r.target === '/error');
  has('a streaming response', (r) => r.target.startsWith('/stream'));
  for (const kind of ['abort-while-waiting', 'abort-after-first-byte', 'abort-during-upload']) has(`an abort: ${kind}`, (r) => expectOf(r) === kind);
});

/**
 * What the validator rightly finds in a framework (not in nodefpm): listed so the test proves the
 * check fires on it, rather than ignoring the code. Node's http passes these on unchanged too.
 */
const APP_FINDINGS: ReadonlyArray<{ app: AppName; request: string; code: string; message: string }> = [
  {
    // Fastify 5's automatic HEAD route (lib/head-route.js) sets content-length: 0 when the GET route
    // sends no payload, and onSendEnd (lib/reply.js) strips it only from 204 responses with a payload:
    // HEAD of a 204 route goes out with Content-Length: 0, which RFC 9110 8.6 forbids. (GET is fine.)
    app: 'fastify',
    request: 'HEAD of a 204',
    code: 'NODEFPM_VALIDATE_CONTENT_LENGTH',
    message: 'a 204 response must not have a Content-Length header (RFC 9110 8.6)',
  },
];

const APPS: AppName[] = ['express4', 'express5', 'koa', 'connect', 'fastify', 'hono'];

for (const name of APPS) {
  describe(`differential: ${name}`, { timeout: 120_000 }, () => {
    let harness: Harness;
    before(async () => {
      harness = await startHarness(name);
    });
    after(async () => {
      await harness.close();
    });

    test(`every corpus request answers the same on Node's http and over nodefpm`, async () => {
      for (const request of corpus) {
        const what = `${name}: ${request.name} (${request.method} ${request.target.slice(0, 60)})`;
        const { reference, fcgi, unrewritten } = await runOne(harness, request, harness.client);
        if (differencesFor(request, name).includes('node-http-refuses-raw-target')) {
          refusedByNode(what, reference, fcgi);
          continue;
        }
        compare(what, name, request, reference, fcgi);
        if (unrewritten !== null) {
          // The documented difference is real: without the rewrite, Node's http answers otherwise.
          assert.ok(
            unrewritten.answer === null || !unrewritten.answer.body.equals(fcgi.answer?.body ?? Buffer.alloc(0)),
            `${what}: the documented difference ${differencesFor(request, name).join(', ')} still shows (else drop it from the corpus and the docs)`,
          );
        }
      }
    });

    test('the same corpus under the validator: no violation but the known one, the same answers', async () => {
      const { client, handler } = harness.validated;
      let seen = 0;
      for (const request of corpus) {
        const what = `${name} (validated): ${request.name}`;
        const { reference, fcgi } = await runOne(harness, request, client);
        if (differencesFor(request, name).includes('node-http-refuses-raw-target')) refusedByNode(what, reference, fcgi);
        else compare(what, name, request, reference, fcgi);
        const found = handler.violations.slice(seen).map((v) => `${v.code} (${v.side}): ${v.message}`);
        seen = handler.violations.length;
        const expected = APP_FINDINGS.filter((f) => f.app === name && f.request === request.name).map((f) => `${f.code} (app): ${f.message}`);
        assert.deepEqual(found, expected, `${what}: what the validator found`);
      }
      // Past the validator's abort grace (endTimeout, 500 ms): NOT_ENDED would have been reported by now.
      await sleep(700);
      assert.deepEqual(handler.violations.slice(seen).map((v) => `${v.code} ${v.request}: ${v.message}`), [], `${name}: no late violation (NOT_ENDED)`);
    });
  });
}
