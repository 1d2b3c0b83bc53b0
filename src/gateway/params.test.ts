// The params builder against what nginx 1.22 with Debian's fastcgi_params sent for the same requests (names, order, values), and where it differs on purpose.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { buildParams, plainAddress, type HttpSide, type ParamSettings } from './params.js';
import { parseTarget } from './uri.js';

function side(target: string, rawHeaders: string[], extra: Partial<HttpSide> = {}): HttpSide {
  return {
    method: 'GET',
    httpVersion: '1.1',
    target: parseTarget(target),
    rawHeaders,
    tls: false,
    remoteAddress: '127.0.0.1',
    remotePort: 51000,
    localAddress: '127.0.0.1',
    localPort: 8080,
    contentLength: '',
    ...extra,
  };
}

const settings: ParamSettings = { documentRoot: '/srv/www', serverName: undefined, serverSoftware: 'nodefpm/0.1.0', trustProxy: false, extra: [] };

test('a GET: the names in the order of Debian fastcgi_params, then HTTP_HOST and the headers', () => {
  const params = buildParams(side('/echo/path?x=1&y=two%20words', ['Host', '127.0.0.1:8080', 'X-Test', 'hello', 'Connection', 'keep-alive']), null, settings);
  // nginx 1.22.1 sent (test/interop/nginx.test.ts): the same names in this order, HTTP_CONNECTION
  // included (the front drops hop-by-hop headers) and HTTP_HOST without its port (the front keeps it).
  assert.deepEqual(params, [
    ['QUERY_STRING', 'x=1&y=two%20words'],
    ['REQUEST_METHOD', 'GET'],
    ['CONTENT_TYPE', ''],
    ['CONTENT_LENGTH', ''],
    ['SCRIPT_NAME', '/echo/path'],
    ['REQUEST_URI', '/echo/path?x=1&y=two%20words'],
    ['DOCUMENT_URI', '/echo/path'],
    ['DOCUMENT_ROOT', '/srv/www'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', 'http'],
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', 'nodefpm/0.1.0'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REMOTE_PORT', '51000'],
    ['REMOTE_USER', ''],
    ['SERVER_ADDR', '127.0.0.1'],
    ['SERVER_PORT', '8080'],
    ['SERVER_NAME', '127.0.0.1'],
    ['REDIRECT_STATUS', '200'],
    ['HTTP_HOST', '127.0.0.1:8080'],
    ['HTTP_X_TEST', 'hello'],
  ]);
});

test('a POST: CONTENT_TYPE and CONTENT_LENGTH, and their HTTP_ copies as nginx sends them', () => {
  const params = new Map(
    buildParams(side('/p', ['Host', 'h', 'Content-Type', 'text/plain', 'Content-Length', '3'], { method: 'POST', contentLength: '3' }), null, settings),
  );
  assert.equal(params.get('CONTENT_TYPE'), 'text/plain');
  assert.equal(params.get('CONTENT_LENGTH'), '3');
  assert.equal(params.get('HTTP_CONTENT_TYPE'), 'text/plain');
  assert.equal(params.get('HTTP_CONTENT_LENGTH'), '3');
});

test('repeated headers joined (Cookie with "; "); underscores, Proxy and hop-by-hop headers dropped; Transfer-Encoding kept', () => {
  const raw = [
    'Host', 'h', 'X-A', '1', 'Cookie', 'a=1', 'x-a', '2', 'Cookie', 'b=2', 'X_Under', 'sneaky', 'X-Real-IP', '10.0.0.1', 'Proxy', 'http://evil',
    'Keep-Alive', '5', 'TE', 'trailers', 'Upgrade', 'h2c', 'Connection', 'close, X-Hop, Content-Length', 'X-Hop', 'gone',
    'Transfer-Encoding', 'chunked', 'Proxy-Authorization', 'Basic x', 'Authorization', 'Basic y',
  ];
  const params = buildParams(side('/', raw), null, settings);
  const headers = params.filter(([name]) => name.startsWith('HTTP_'));
  assert.deepEqual(headers, [
    ['HTTP_HOST', 'h'],
    ['HTTP_X_A', '1, 2'],
    ['HTTP_COOKIE', 'a=1; b=2'],
    ['HTTP_X_REAL_IP', '10.0.0.1'],
    ['HTTP_TRANSFER_ENCODING', 'chunked'],
    ['HTTP_AUTHORIZATION', 'Basic y'],
  ]);
});

test('Host: absolute-form target wins; a repeated or malformed Host is a 400; none (HTTP/1.0) gives the server name', () => {
  const absolute = new Map(buildParams(side('http://Other.Example:81/abs?x', ['Host', 'ignored']), null, settings));
  assert.equal(absolute.get('HTTP_HOST'), 'other.example:81');
  assert.equal(absolute.get('REQUEST_URI'), '/abs?x');
  assert.equal(absolute.get('SERVER_NAME'), 'other.example');
  for (const raw of [['Host', 'a', 'Host', 'b'], ['Host', 'a b'], ['Host', 'a/b']]) {
    assert.throws(() => buildParams(side('/', raw), null, settings), (error: unknown) => isNodefpmError(error, 'NODEFPM_GATEWAY_BAD_REQUEST'), raw.join(' '));
  }
  const old = new Map(buildParams(side('/', [], { httpVersion: '1.0' }), null, { ...settings, serverName: 'dev.local' }));
  assert.equal(old.get('HTTP_HOST'), 'dev.local');
  assert.equal(old.get('SERVER_NAME'), 'dev.local');
  assert.equal(old.get('SERVER_PROTOCOL'), 'HTTP/1.0');
});

test('TLS adds HTTPS=on; Unix sockets give unix: addresses and empty ports, as nginx does', () => {
  const tls = new Map(buildParams(side('/', ['Host', 'h'], { tls: true }), null, settings));
  assert.equal(tls.get('HTTPS'), 'on');
  assert.equal(tls.get('REQUEST_SCHEME'), 'https');
  const plain = new Map(buildParams(side('/', ['Host', 'h']), null, settings));
  assert.equal(plain.has('HTTPS'), false, 'no HTTPS param without TLS (if_not_empty)');
  const unix = new Map(buildParams(side('/', ['Host', 'h'], { remoteAddress: undefined, remotePort: undefined, localAddress: undefined, localPort: undefined }), null, settings));
  assert.equal(unix.get('REMOTE_ADDR'), 'unix:');
  assert.equal(unix.get('REMOTE_PORT'), '');
  assert.equal(unix.get('SERVER_ADDR'), 'unix:');
  assert.equal(unix.get('SERVER_PORT'), '');
  assert.equal(plainAddress('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(plainAddress('::1'), '::1');
});

test('trustProxy: X-Forwarded-* believed only from trusted peers; the chain is walked past trusted proxies', () => {
  const raw = ['Host', 'inner:8080', 'X-Forwarded-For', '203.0.113.7, 10.0.0.2', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'www.example.com', 'X-Forwarded-Port', '443'];
  const off = new Map(buildParams(side('/', raw), null, settings));
  assert.equal(off.get('REMOTE_ADDR'), '127.0.0.1', 'not trusted by default');
  assert.equal(off.get('HTTPS'), undefined);
  const on = new Map(buildParams(side('/', raw), null, { ...settings, trustProxy: true }));
  assert.equal(on.get('REMOTE_ADDR'), '10.0.0.2', 'trustProxy true trusts the peer only: the last entry');
  assert.equal(on.get('REMOTE_PORT'), '');
  assert.equal(on.get('HTTPS'), 'on');
  assert.equal(on.get('REQUEST_SCHEME'), 'https');
  assert.equal(on.get('HTTP_HOST'), 'www.example.com');
  assert.equal(on.get('SERVER_PORT'), '443');
  const list = new Map(buildParams(side('/', raw), null, { ...settings, trustProxy: ['127.0.0.1', '10.0.0.2'] }));
  assert.equal(list.get('REMOTE_ADDR'), '203.0.113.7', 'a list of proxies: the first address from the right that is not one');
  const other = new Map(buildParams(side('/', raw, { remoteAddress: '192.0.2.1' }), null, { ...settings, trustProxy: ['127.0.0.1'] }));
  assert.equal(other.get('REMOTE_ADDR'), '192.0.2.1', 'a peer not in the list is not believed');
});

test('script mode adds SCRIPT_FILENAME first and PATH_INFO; extra params replace in place or go before the headers', () => {
  const script = { scriptName: '/index.php', pathInfo: '/a/b', documentUri: '/index.php/a/b', scriptFilename: '/srv/www/index.php' };
  const params = buildParams(side('/index.php/a/b', ['Host', 'h']), script, {
    ...settings,
    extra: [
      ['SERVER_NAME', 'forced'],
      ['APP_ENV', 'dev'],
      ['HTTP_HOST', 'pinned'],
    ],
  });
  assert.deepEqual(params[0], ['SCRIPT_FILENAME', '/srv/www/index.php']);
  const map = new Map(params);
  assert.equal(map.get('SCRIPT_NAME'), '/index.php');
  assert.equal(map.get('PATH_INFO'), '/a/b');
  assert.equal(map.get('DOCUMENT_URI'), '/index.php/a/b');
  assert.equal(map.get('SERVER_NAME'), 'forced');
  assert.equal(map.get('HTTP_HOST'), 'pinned');
  const names = params.map(([name]) => name);
  assert.equal(names.indexOf('APP_ENV'), names.indexOf('HTTP_HOST') - 1, 'a new extra param goes just before the HTTP_ ones');
  assert.equal(names.filter((name) => name === 'HTTP_HOST').length, 1, 'HTTP_HOST is sent once');
});
