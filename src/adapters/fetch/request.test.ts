// Unit tests of the lazy fetch Request on an in-memory exchange: cheap fields without a real Request, the body with backpressure, abort.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodefpmError } from '../../errors.js';
import { encodePairs, ParamsBlock } from '../../protocol/index.js';
import { Exchange, type ExchangeHost } from '../../server/exchange.js';
import {
  createFetchRequest,
  exchangeOfRequest,
  installRequestStandIn,
  isMaterialized,
  markResponded,
  NativeRequest,
  RequestStandIn,
  uninstallRequestStandIn,
} from './request.js';

/** An exchange on no socket: params installed, stdin fed by the test, room reported back. */
function memoryExchange(params: Record<string, string>, highWaterMark = 1024): { exchange: Exchange; roomCalls: () => number } {
  let room = 0;
  const host: ExchangeHost = {
    outputBlocked: false,
    writeOut() {},
    writeOutBatch() {},
    scheduleFlush() {},
    exchangeEnded() {},
    inputHasRoom() {
      room++;
    },
  };
  const exchange = new Exchange(host, 1, 1, true, highWaterMark, false);
  exchange.setParams(new ParamsBlock(encodePairs(params)));
  return { exchange, roomCalls: () => room };
}

const base = {
  REQUEST_METHOD: 'POST',
  REQUEST_URI: '/upload?x=1',
  QUERY_STRING: 'x=1',
  HTTP_HOST: 'example.com',
  CONTENT_TYPE: 'text/plain',
  CONTENT_LENGTH: '11',
  HTTP_X_TRACE: 'abc',
  SERVER_PROTOCOL: 'HTTP/1.1',
};

test('a lazy Request is a Request; method, url, headers and signal do not make the real one', () => {
  const { exchange } = memoryExchange(base);
  const request = createFetchRequest(exchange);
  assert.ok(request instanceof Request, 'instanceof Request');
  assert.equal(request.method, 'POST');
  assert.equal(request.url, 'http://example.com/upload?x=1');
  assert.equal(request.headers.get('x-trace'), 'abc');
  assert.equal(request.headers.get('content-type'), 'text/plain');
  assert.equal(request.headers.get('content-length'), '11');
  assert.equal(request.signal.aborted, false);
  assert.equal(request.bodyUsed, false);
  assert.equal(exchangeOfRequest(request), exchange);
  assert.equal(isMaterialized(request), false);
  assert.equal(request.cache, 'default');
  assert.equal(isMaterialized(request), true, 'other properties make the real Request');
});

test('methods are normalised as the fetch standard does; forbidden ones are kept', () => {
  for (const [sent, seen] of [
    ['get', 'GET'],
    ['delete', 'DELETE'],
    ['patch', 'patch'],
    ['PROPFIND', 'PROPFIND'],
    ['', 'GET'],
  ]) {
    const { exchange } = memoryExchange({ ...base, REQUEST_METHOD: sent! });
    assert.equal(createFetchRequest(exchange).method, seen, `method ${sent}`);
  }
  const { exchange } = memoryExchange({ ...base, REQUEST_METHOD: 'TRACE' });
  const request = createFetchRequest(exchange);
  assert.equal(request.method, 'TRACE');
  assert.equal(request.redirect, 'follow', 'a real Request can be made for it');
  assert.equal(request.method, 'TRACE');
});

test('text() reads FCGI_STDIN directly; a second read is refused as the standard refuses it', async () => {
  const { exchange } = memoryExchange(base);
  const request = createFetchRequest(exchange);
  const text = request.text();
  exchange.stdin.push(Buffer.from('hello '));
  exchange.stdin.push(Buffer.from('world'));
  exchange.stdin.end();
  assert.equal(await text, 'hello world');
  assert.equal(request.bodyUsed, true);
  assert.equal(isMaterialized(request), false, 'no real Request was needed');
  await assert.rejects(request.text(), TypeError);
  assert.throws(() => request.clone(), TypeError, 'clone() of a used body fails');
});

test('json(), arrayBuffer(), bytes() and blob() read the body too', async () => {
  for (const method of ['json', 'arrayBuffer', 'bytes', 'blob'] as const) {
    const { exchange } = memoryExchange({ ...base, CONTENT_TYPE: 'application/json' });
    exchange.stdin.push(Buffer.from('{"a":[1,2]}'));
    exchange.stdin.end();
    const request = createFetchRequest(exchange);
    const value: unknown = await (request as unknown as Record<string, () => Promise<unknown>>)[method]!.call(request);
    let text: string;
    if (method === 'json') text = JSON.stringify(value);
    else if (method === 'blob') text = await (value as Blob).text();
    else text = Buffer.from(value as ArrayBuffer).toString();
    assert.equal(text, '{"a":[1,2]}', method);
  }
});

test('request.body is a stream that pulls from FCGI_STDIN only when read (backpressure)', async () => {
  const { exchange, roomCalls } = memoryExchange({ ...base, CONTENT_LENGTH: '' }, 8);
  const request = createFetchRequest(exchange);
  const reader = request.body!.getReader();
  // Over the high-water mark: the exchange tells its connection to stop reading the socket.
  assert.equal(exchange.stdin.push(Buffer.from('0123456789')), false);
  assert.equal(exchange.stdin.full, true);
  const first = await reader.read();
  assert.equal(Buffer.from(first.value!).toString(), '0123456789');
  assert.equal(roomCalls(), 1, 'reading made room');
  const pending = reader.read();
  exchange.stdin.push(Buffer.from('abc'));
  assert.equal(Buffer.from((await pending).value!).toString(), 'abc');
  exchange.stdin.end();
  assert.equal((await reader.read()).done, true);
});

test('new Request(request) and clone() copy a lazy Request with its body', async () => {
  const { exchange } = memoryExchange(base);
  exchange.stdin.push(Buffer.from('hello world'));
  exchange.stdin.end();
  const request = createFetchRequest(exchange);
  const copy = new Request(request, { headers: { 'x-copy': '1' } });
  assert.equal(copy.url, 'http://example.com/upload?x=1');
  assert.equal(copy.method, 'POST');
  assert.equal(copy.headers.get('x-copy'), '1');
  assert.equal(await copy.text(), 'hello world');

  const { exchange: other } = memoryExchange({ ...base, REQUEST_METHOD: 'GET', CONTENT_LENGTH: '' });
  const get = createFetchRequest(other);
  assert.equal(get.clone().url, 'http://example.com/upload?x=1');
  assert.equal(await get.text(), '', 'GET has no body');
});

test('request.signal aborts with the exchange, and a waiting body read fails with the reason', async () => {
  const { exchange } = memoryExchange(base);
  const request = createFetchRequest(exchange);
  const reading = request.text();
  const reason = new NodefpmError('NODEFPM_REQUEST_ABORTED', 'aborted by the web server');
  exchange.abort(reason);
  assert.equal(request.signal.aborted, true);
  assert.equal(request.signal.reason, reason);
  await assert.rejects(reading, (error: unknown) => error === reason);
});

test('after the response is sent, body reads fail at once instead of waiting for input that will not come', async () => {
  const { exchange } = memoryExchange(base);
  const request = createFetchRequest(exchange);
  const waiting = request.text();
  markResponded(request);
  await assert.rejects(waiting, /read after the response was sent/);

  const { exchange: later } = memoryExchange(base);
  const streamed = createFetchRequest(later);
  markResponded(streamed);
  await assert.rejects(streamed.body!.getReader().read(), /read after the response was sent/);
});

test('the Request stand-in copies a lazy Request, adds duplex for stream bodies, and can replace the global', async () => {
  const { exchange } = memoryExchange(base);
  exchange.stdin.push(Buffer.from('hello world'));
  exchange.stdin.end();
  const request = createFetchRequest(exchange);
  assert.ok(request instanceof RequestStandIn, 'a lazy Request is an instance of the stand-in');
  const copy = new RequestStandIn(request, { method: 'PUT' });
  assert.equal(copy.method, 'PUT');
  assert.equal(await copy.text(), 'hello world');
  const streamed = new RequestStandIn('http://localhost/', { method: 'POST', body: new ReadableStream({ start: (c) => c.close() }) });
  assert.equal(streamed.method, 'POST', 'no TypeError for a stream body without duplex');

  const before = globalThis.Request;
  try {
    installRequestStandIn();
    assert.equal(globalThis.Request, RequestStandIn);
    assert.ok(new NativeRequest('http://localhost/') instanceof Request, 'real Requests pass instanceof the stand-in');
    const get = createFetchRequest(memoryExchange({ ...base, REQUEST_METHOD: 'GET', CONTENT_LENGTH: '' }).exchange);
    assert.ok(get.clone() instanceof Request, 'so does the clone of a lazy Request');
    uninstallRequestStandIn();
    assert.equal(globalThis.Request, NativeRequest);
  } finally {
    Object.defineProperty(globalThis, 'Request', { value: before, writable: true, configurable: true });
  }
});
