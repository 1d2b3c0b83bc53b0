// Unit tests of the lightweight Response (it behaves as the real one) and of what the writer takes from any Response.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../../errors.js';
import {
  installLightweightResponse,
  isRecordOnly,
  LightweightResponse,
  NativeResponse,
  takeResponseParts,
  uninstallLightweightResponse,
} from './response.js';

type Init = ConstructorParameters<typeof Response>[1];
type Body = ConstructorParameters<typeof Response>[0];

const light = (body?: Body, init?: Init): Response => new LightweightResponse(body, init) as unknown as Response;

async function snapshot(response: Response): Promise<unknown> {
  return {
    status: response.status,
    statusText: response.statusText,
    ok: response.ok,
    headers: [...response.headers],
    cookies: response.headers.getSetCookie(),
    body: response.body === null ? null : await response.text(),
  };
}

test('instanceof: a lightweight Response is a Response, and a real one passes instanceof the stand-in', () => {
  const response = light('x');
  assert.ok(response instanceof NativeResponse, 'lightweight instanceof the real class');
  assert.ok(response instanceof LightweightResponse, 'lightweight instanceof its own class');
  assert.ok(new NativeResponse('x') instanceof LightweightResponse, 'a real Response instanceof the stand-in');
  assert.equal(Object.prototype.toString.call(response), '[object Response]');
  assert.ok((LightweightResponse as unknown as typeof Response).json({ a: 1 }) instanceof NativeResponse, 'statics come from the real class');
});

test('status, statusText, ok and bodyUsed are answered from the record; anything else makes the real Response', () => {
  const response = light('hello', { status: 201, statusText: 'Made' });
  assert.equal(response.status, 201);
  assert.equal(response.statusText, 'Made');
  assert.equal(response.ok, true);
  assert.equal(response.bodyUsed, false);
  assert.equal(isRecordOnly(response), true);
  assert.equal(response.headers.get('content-type'), 'text/plain;charset=UTF-8');
  assert.equal(isRecordOnly(response), false);
});

test('for every kind of (body, init) the lightweight Response shows what the real one shows', async () => {
  const headers = new Headers({ 'x-a': '1' });
  headers.append('set-cookie', 'a=1');
  headers.append('set-cookie', 'b=2');
  const cases: Array<[Body, Init]> = [
    [undefined, undefined],
    [null, { status: 204 }],
    ['text', undefined],
    ['text', { status: 404, statusText: 'Nope', headers: { 'Content-Type': 'text/html', 'X-Pad': '  padded  ' } }],
    ['text', { headers }],
    [new Uint8Array([104, 105]), { headers: [['x-list', 'a']] }],
    [new Uint8Array([1, 2, 3]).buffer, undefined],
    ['{"a":1}', { status: 200, headers: { 'content-type': 'application/json' } }],
    [new URLSearchParams('a=1&b=2'), undefined],
    [new Blob(['blob'], { type: 'text/x-blob' }), undefined],
    [new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('s')), c.close()) }), { status: 202 }],
    ['dup', { headers: { 'X-Dup': 'a', 'x-dup': 'b' } }],
  ];
  for (const [body, init] of cases) {
    // Each side gets its own body (a stream can be read once).
    const again = body instanceof ReadableStream ? new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('s')), c.close()) }) : body;
    const expected = await snapshot(new NativeResponse(body, init));
    assert.deepEqual(await snapshot(light(again, init)), expected, `body ${Object.prototype.toString.call(body)} init ${JSON.stringify(init)}`);
  }
});

test('what the real constructor rejects, the lightweight one rejects the same way', () => {
  const bad: Array<[Body, Init]> = [
    ['x', { status: 99 }],
    ['x', { status: 600 }],
    ['x', { status: 204 }],
    [null, { headers: { 'bad name': 'x' } }],
    [null, { headers: { 'x-nl': 'a\nb' } }],
    [null, { statusText: 'line\nbreak' }],
    [null, { headers: { 'x-wide': 'é€' } }],
  ];
  for (const [body, init] of bad) {
    let nativeError: unknown;
    try {
      new NativeResponse(body, init);
    } catch (error) {
      nativeError = error;
    }
    assert.ok(nativeError instanceof Error, `the real constructor rejects ${JSON.stringify(init)}`);
    assert.throws(() => light(body, init), (error: unknown) => (error as Error).constructor === (nativeError as Error).constructor, JSON.stringify(init));
  }
});

test('takeResponseParts: a record gives its source, its header lines (Set-Cookie one line each, hop-by-hop dropped), and marks it used', () => {
  const headers = new Headers({ 'x-a': '1', connection: 'close', 'transfer-encoding': 'chunked', status: '500' });
  headers.append('set-cookie', 'a=1');
  headers.append('set-cookie', 'b=2; Path=/');
  const response = light('hello', { status: 201, headers });
  const parts = takeResponseParts(response);
  assert.equal(parts.status, 201);
  assert.equal(parts.reason, 'Created');
  assert.equal(parts.source, 'hello');
  assert.equal(parts.stream, null);
  assert.equal(parts.hasContentLength, false);
  const lines = parts.lines.split('\r\n').filter((line) => line !== '');
  assert.deepEqual(lines.sort(), ['content-type: text/plain;charset=UTF-8', 'set-cookie: a=1', 'set-cookie: b=2; Path=/', 'x-a: 1'].sort());
  assert.equal(response.bodyUsed, true);
  assert.throws(() => takeResponseParts(response), (error: unknown) => isNodefpmError(error, 'NODEFPM_FETCH_BODY_USED'));
});

test('takeResponseParts: a real Response made from a string or bytes is sent from its source without reading the stream', () => {
  const response = new NativeResponse('from source', { headers: { 'content-length': '11' } });
  const parts = takeResponseParts(response);
  assert.equal(parts.source, 'from source');
  assert.equal(parts.hasContentLength, true);
  assert.equal(response.bodyUsed, true, 'the body counts as used, as if read');
  const bytes = takeResponseParts(new NativeResponse(new Uint8Array([1, 2])));
  assert.deepEqual([...(bytes.source as Uint8Array)], [1, 2]);
  assert.equal(takeResponseParts(new NativeResponse(null)).source, null);
});

test('takeResponseParts: a stream body is handed over as the stream; a used or locked body is NODEFPM_FETCH_BODY_USED', async () => {
  const streamed = new NativeResponse(new ReadableStream({ start: (c) => c.close() }));
  const parts = takeResponseParts(streamed);
  assert.equal(parts.source, undefined);
  assert.ok(parts.stream instanceof ReadableStream, 'the stream is handed over');

  const read = new NativeResponse('x');
  await read.text();
  assert.throws(() => takeResponseParts(read), (error: unknown) => isNodefpmError(error, 'NODEFPM_FETCH_BODY_USED'));
  const locked = new NativeResponse(new ReadableStream());
  locked.body!.getReader();
  assert.throws(() => takeResponseParts(locked), (error: unknown) => isNodefpmError(error, 'NODEFPM_FETCH_BODY_USED'));

  const materialized = light('m');
  await materialized.text();
  assert.throws(() => takeResponseParts(materialized), (error: unknown) => isNodefpmError(error, 'NODEFPM_FETCH_BODY_USED'));
});

test('installLightweightResponse replaces the global Response, and uninstall puts the real one back', () => {
  const before = globalThis.Response;
  try {
    installLightweightResponse();
    assert.equal(globalThis.Response, LightweightResponse as unknown);
    const response = new Response('x');
    assert.equal(isRecordOnly(response), true);
    assert.ok(response instanceof Response, 'instanceof the (replaced) global');
    assert.ok(new NativeResponse('y') instanceof Response, 'real Responses too');
    installLightweightResponse();
    uninstallLightweightResponse();
    assert.equal(globalThis.Response, NativeResponse);
  } finally {
    Object.defineProperty(globalThis, 'Response', { value: before, writable: true, configurable: true });
  }
});
