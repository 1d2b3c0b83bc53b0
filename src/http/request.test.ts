// The native Request: headers from CGI params, url/path/query, scheme, ports, addresses, lazily decoded params, repeated names.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawPeer, requestParams } from '../../test/helpers/raw-peer.js';
import { startServer, type TestServer } from '../../test/helpers/servers.js';
import { decodePairs, encodePairs, type PairsInput } from '../protocol/index.js';
import { headersFromParams, type Request } from './request.js';

// ---- headersFromParams, on its own ----

test('HTTP_* params become lower-case dashed header names; other params are not headers', () => {
  const headers = headersFromParams({
    HTTP_HOST: 'example.org',
    HTTP_ACCEPT_LANGUAGE: 'en, fr;q=0.5',
    HTTP_X_FORWARDED_FOR: '10.0.0.1',
    HTTP_COOKIE: 'a=1; b=2',
    HTTP_: 'not a header',
    HTTPS: 'on',
    REQUEST_METHOD: 'GET',
    SERVER_NAME: 'example.org',
    GATEWAY_INTERFACE: 'CGI/1.1',
  });
  assert.deepEqual({ ...headers }, {
    host: 'example.org',
    'accept-language': 'en, fr;q=0.5',
    'x-forwarded-for': '10.0.0.1',
    cookie: 'a=1; b=2',
  });
});

test('CONTENT_TYPE and CONTENT_LENGTH become headers and win over the HTTP_CONTENT_* duplicates lighttpd also sends', () => {
  const same = headersFromParams({ CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '5', HTTP_CONTENT_TYPE: 'text/plain', HTTP_CONTENT_LENGTH: '5' });
  assert.deepEqual({ ...same }, { 'content-type': 'text/plain', 'content-length': '5' });
  const differing = headersFromParams({ HTTP_CONTENT_LENGTH: '99', CONTENT_LENGTH: '10', HTTP_CONTENT_TYPE: 'a/b', CONTENT_TYPE: 'c/d' });
  assert.equal(differing['content-length'], '10');
  assert.equal(differing['content-type'], 'c/d');
  const cgiOnly = headersFromParams({ CONTENT_TYPE: 'application/json', CONTENT_LENGTH: '0' });
  assert.deepEqual({ ...cgiOnly }, { 'content-type': 'application/json', 'content-length': '0' });
});

test('the empty CONTENT_LENGTH and CONTENT_TYPE nginx sends are left out', () => {
  const headers = headersFromParams({ CONTENT_LENGTH: '', CONTENT_TYPE: '', HTTP_HOST: 'h', QUERY_STRING: '' });
  assert.deepEqual({ ...headers }, { host: 'h' });
  assert.equal('content-length' in headers, false);
  assert.equal('content-type' in headers, false);
  // A chunked upload through nginx unbuffered: CONTENT_LENGTH="" and the Transfer-Encoding header.
  const chunked = headersFromParams({ CONTENT_LENGTH: '', CONTENT_TYPE: 'text/plain', HTTP_TRANSFER_ENCODING: 'chunked' });
  assert.deepEqual({ ...chunked }, { 'transfer-encoding': 'chunked', 'content-type': 'text/plain' });
  const emptyDuplicate = headersFromParams({ CONTENT_LENGTH: '', HTTP_CONTENT_LENGTH: '' });
  assert.equal('content-length' in emptyDuplicate, false);
});

// ---- Request on a live server ----

let app: TestServer;
let inspect: (req: Request) => unknown = () => null;
let seen: unknown;

before(async () => {
  app = await startServer(async (req, res) => {
    seen = inspect(req);
    res.end('ok');
  });
});

after(async () => {
  await app.close();
});

/** Sends one request with exactly `params` and returns what `look` computed from the Request. */
async function observe<T>(params: PairsInput, look: (req: Request) => T): Promise<T> {
  inspect = look;
  seen = undefined;
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, params);
    const response = await peer.waitForEnd(1, 10_000);
    assert.equal(response.appStatus, 0, 'the handler ran to completion');
    return seen as T;
  } finally {
    peer.close();
  }
}

test('url is REQUEST_URI; path is the part before "?", queryString is QUERY_STRING', async () => {
  const view = await observe(requestParams('GET', '/shop/item%20one?id=7&x=%2F'), (req) => ({
    url: req.url,
    path: req.path,
    queryString: req.queryString,
    method: req.method,
  }));
  assert.deepEqual(view, { url: '/shop/item%20one?id=7&x=%2F', path: '/shop/item%20one', queryString: 'id=7&x=%2F', method: 'GET' });
});

test('without REQUEST_URI (or with it empty) url is SCRIPT_NAME + PATH_INFO + ?QUERY_STRING', async () => {
  const look = (req: Request) => ({ url: req.url, path: req.path, queryString: req.queryString });
  assert.deepEqual(await observe({ SCRIPT_NAME: '/index.php', PATH_INFO: '/extra/bit', QUERY_STRING: 'q=1&r=2' }, look), {
    url: '/index.php/extra/bit?q=1&r=2',
    path: '/index.php/extra/bit',
    queryString: 'q=1&r=2',
  });
  assert.deepEqual(await observe({ REQUEST_URI: '', SCRIPT_NAME: '/app', QUERY_STRING: '' }, look), { url: '/app', path: '/app', queryString: '' });
  // h2o sends SCRIPT_NAME="" when "/" is mapped to the app.
  assert.deepEqual(await observe({ SCRIPT_NAME: '', PATH_INFO: '/p' }, look), { url: '/p', path: '/p', queryString: '' });
  assert.deepEqual(await observe({}, look), { url: '/', path: '/', queryString: '' });
});

test('method, protocol and content metadata, with defaults when the web server sends nothing', async () => {
  const look = (req: Request) => ({
    method: req.method,
    protocol: req.protocol,
    contentLength: req.contentLength,
    contentType: req.contentType,
  });
  assert.deepEqual(
    await observe({ REQUEST_METHOD: 'POST', SERVER_PROTOCOL: 'HTTP/2.0', CONTENT_LENGTH: '0', CONTENT_TYPE: 'application/json' }, look),
    { method: 'POST', protocol: 'HTTP/2.0', contentLength: 0, contentType: 'application/json' },
  );
  assert.deepEqual(await observe({}, look), { method: 'GET', protocol: 'HTTP/1.1', contentLength: null, contentType: undefined });
  assert.deepEqual(await observe({ CONTENT_LENGTH: '', CONTENT_TYPE: '' }, look), {
    method: 'GET',
    protocol: 'HTTP/1.1',
    contentLength: null,
    contentType: undefined,
  });
});

test('scheme is https for HTTPS=on, ON or 1 and for REQUEST_SCHEME=https, else http', async () => {
  const look = (req: Request) => ({ scheme: req.scheme, secure: req.secure });
  const https = { scheme: 'https', secure: true };
  const http = { scheme: 'http', secure: false };
  assert.deepEqual(await observe({ HTTPS: 'on' }, look), https);
  assert.deepEqual(await observe({ HTTPS: 'ON' }, look), https);
  assert.deepEqual(await observe({ HTTPS: '1' }, look), https);
  assert.deepEqual(await observe({ REQUEST_SCHEME: 'https' }, look), https);
  assert.deepEqual(await observe({ REQUEST_SCHEME: 'HTTPS' }, look), https);
  assert.deepEqual(await observe({ HTTPS: 'off', REQUEST_SCHEME: 'http' }, look), http);
  assert.deepEqual(await observe({ HTTPS: '' }, look), http);
  assert.deepEqual(await observe({}, look), http);
});

test('ports are numbers; addresses and server name are as sent; absent or unusable ports are undefined', async () => {
  const look = (req: Request) => ({
    remoteAddress: req.remoteAddress,
    remotePort: req.remotePort,
    serverAddress: req.serverAddress,
    serverPort: req.serverPort,
    serverName: req.serverName,
  });
  assert.deepEqual(
    await observe({ REMOTE_ADDR: '::1', REMOTE_PORT: '50123', SERVER_ADDR: '192.0.2.1', SERVER_PORT: '8443', SERVER_NAME: 'example.org' }, look),
    { remoteAddress: '::1', remotePort: 50123, serverAddress: '192.0.2.1', serverPort: 8443, serverName: 'example.org' },
  );
  assert.deepEqual(await observe({ REMOTE_PORT: '', SERVER_PORT: 'http' }, look), {
    remoteAddress: undefined,
    remotePort: undefined,
    serverAddress: undefined,
    serverPort: undefined,
    serverName: undefined,
  });
});

test('headers and header() on a live request, built from the params', async () => {
  const view = await observe(
    requestParams('POST', '/', { HTTP_X_TRACE_ID: 'abc', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '', HTTP_CONTENT_LENGTH: '' }),
    (req) => ({ headers: { ...req.headers }, trace: req.header('X-Trace-Id'), type: req.header('Content-Type'), same: req.headers === req.headers }),
  );
  assert.deepEqual(view, {
    headers: { host: 'localhost', 'x-trace-id': 'abc', 'content-type': 'text/plain' },
    trace: 'abc',
    type: 'text/plain',
    same: true,
  });
});

test('param() before the full decode agrees with params after it, for short, long and binary (Latin-1) values', async () => {
  const long = 'v'.repeat(300); // a 4-byte value length
  const longName = `X_${'N'.repeat(200)}`; // a 4-byte name length
  const binary = Buffer.from([0x00, 0x7f, 0x80, 0xc3, 0xa9, 0xff]);
  const sent: Array<[string, string | Buffer]> = [
    ['REQUEST_METHOD', 'PUT'],
    ['EMPTY', ''],
    ['LONG', long],
    [longName, 'n'],
    ['BINARY', binary],
    ['HTTP_X_UTF8', Buffer.from('café', 'utf8')],
  ];
  const names = sent.map(([name]) => name);
  const view = await observe(sent, (req) => {
    const single = Object.fromEntries([...names, 'ABSENT'].map((name) => [name, req.param(name)]));
    const all = { ...req.params };
    const again = Object.fromEntries([...names, 'ABSENT'].map((name) => [name, req.param(name)]));
    return { single, all, again };
  });
  const full = { ...decodePairs(encodePairs(sent)) };
  assert.deepEqual(view.all, full, 'params is the full decode of what was sent');
  for (const name of names) {
    assert.equal(view.single[name], full[name], `param(${name.slice(0, 20)}) before the decode`);
    assert.equal(view.again[name], full[name], `param(${name.slice(0, 20)}) after the decode`);
  }
  assert.equal(view.single.ABSENT, undefined);
  assert.equal(view.again.ABSENT, undefined);
  assert.equal(view.single.BINARY, binary.toString('latin1'), 'values are Latin-1: every byte is kept');
  assert.equal(Buffer.from(view.single.BINARY!, 'latin1').equals(binary), true);
  assert.equal(view.single.HTTP_X_UTF8, 'cafÃ©', 'UTF-8 bytes arrive as their Latin-1 characters, as in Node http headers');
  assert.equal(view.single.LONG, long);
});

test('a name repeated in the PARAMS stream: param(), params and headers all give the last value', async () => {
  const view = await observe(
    [
      ['X_DUP', 'first'],
      ['REQUEST_URI', '/one'],
      ['X_DUP', 'second'],
      ['HTTP_X_H', 'a'],
      ['REQUEST_URI', '/two'],
      ['HTTP_X_H', 'b'],
      ['X_DUP', 'third'],
    ],
    (req) => ({ before: req.param('X_DUP'), url: req.url, after: req.params.X_DUP, header: req.header('x-h'), afterParam: req.param('X_DUP') }),
  );
  assert.deepEqual(view, { before: 'third', url: '/two', after: 'third', header: 'b', afterParam: 'third' });
});

test('request id and role come from BEGIN_REQUEST', async () => {
  const view = await observe(requestParams(), (req) => ({ id: req.requestId, role: req.role, authorizer: req.isAuthorizer, data: req.data }));
  assert.deepEqual(view, { id: 1, role: 1, authorizer: false, data: null });
});
