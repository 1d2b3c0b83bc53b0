// Unit tests of readCgiRequest and the request helpers: CGI variables and HTTP headers from raw PARAMS bytes, checked against a plain decode.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodePairList, encodePairs } from '../../protocol/index.js';
import { readCgiRequest } from './params.js';
import { displayName, httpVersionOf, rawHeadersFrom, requestUrl } from './request.js';

/** The same rules, written the obvious way over a decoded list: the reference the one-pass reader must match. */
function reference(pairs: Array<[string, string]>): Record<string, string> {
  const headers: Record<string, string> = {};
  // A non-empty CGI value anywhere wins over the HTTP_ copies; among several, the last one.
  const cgiType = pairs.some(([name, value]) => name === 'CONTENT_TYPE' && value !== '');
  const cgiLength = pairs.some(([name, value]) => name === 'CONTENT_LENGTH' && value !== '');
  for (const [name, value] of pairs) {
    if (name.length > 5 && name.startsWith('HTTP_')) {
      const key = name.slice(5).toLowerCase().replaceAll('_', '-');
      if (key === 'content-type' && (cgiType || value === '')) continue;
      if (key === 'content-length' && (cgiLength || value === '')) continue;
      headers[key] = value;
    } else if (name === 'CONTENT_TYPE' && value !== '') {
      headers['content-type'] = value;
    } else if (name === 'CONTENT_LENGTH' && value !== '') {
      headers['content-length'] = value;
    }
  }
  return headers;
}

describe('readCgiRequest', () => {
  test('the CGI variables the adapter uses, and headers in the order sent', () => {
    const cgi = readCgiRequest(
      encodePairs({
        GATEWAY_INTERFACE: 'CGI/1.1',
        REQUEST_METHOD: 'PUT',
        REQUEST_URI: '/a?b',
        SERVER_PROTOCOL: 'HTTP/1.0',
        REMOTE_ADDR: '198.51.100.4',
        REMOTE_PORT: '1234',
        SERVER_ADDR: '192.0.2.1',
        SERVER_PORT: '443',
        HTTPS: 'on',
        REQUEST_SCHEME: 'https',
        DOCUMENT_ROOT: '/srv',
        HTTP_HOST: 'example.com',
        HTTP_X_REQUEST_ID: 'abc',
        HTTP_ACCEPT: '*/*',
      }),
    );
    assert.deepEqual(cgi, {
      method: 'PUT',
      REQUEST_URI: '/a?b',
      SERVER_PROTOCOL: 'HTTP/1.0',
      REMOTE_ADDR: '198.51.100.4',
      REMOTE_PORT: '1234',
      SERVER_ADDR: '192.0.2.1',
      SERVER_PORT: '443',
      HTTPS: 'on',
      REQUEST_SCHEME: 'https',
      headers: { host: 'example.com', 'x-request-id': 'abc', accept: '*/*' },
    });
    assert.deepEqual(Object.keys(cgi.headers), ['host', 'x-request-id', 'accept']);
    assert.equal(Object.getPrototypeOf(cgi.headers), Object.prototype);
  });

  test('REQUEST_METHOD absent or empty is GET; other variables absent are undefined', () => {
    const none = readCgiRequest(encodePairs({}));
    assert.equal(none.method, 'GET');
    assert.equal(none.REQUEST_URI, undefined);
    assert.deepEqual(none.headers, {});
    assert.equal(readCgiRequest(encodePairs({ REQUEST_METHOD: '' })).method, 'GET');
  });

  test('content-type and content-length: CGI values win, in either order; empty ones make no header', () => {
    assert.deepEqual(readCgiRequest(encodePairs([['HTTP_CONTENT_TYPE', 'a/dup'], ['CONTENT_TYPE', 'a/cgi']])).headers, { 'content-type': 'a/cgi' });
    assert.deepEqual(readCgiRequest(encodePairs([['CONTENT_TYPE', 'a/cgi'], ['HTTP_CONTENT_TYPE', 'a/dup']])).headers, { 'content-type': 'a/cgi' });
    assert.deepEqual(readCgiRequest(encodePairs([['CONTENT_TYPE', ''], ['HTTP_CONTENT_TYPE', 'a/http']])).headers, { 'content-type': 'a/http' });
    assert.deepEqual(readCgiRequest(encodePairs([['CONTENT_LENGTH', ''], ['CONTENT_TYPE', '']])).headers, {});
    assert.deepEqual(readCgiRequest(encodePairs([['HTTP_CONTENT_LENGTH', '7'], ['CONTENT_LENGTH', '9']])).headers, { 'content-length': '9' });
    assert.deepEqual(readCgiRequest(encodePairs([['HTTP_CONTENT_LENGTH', '']])).headers, {});
  });

  test('content-type and content-length take the place of their HTTP_ copies, where the client sent them (as in Node\'s req.headers)', () => {
    // nginx's order: the CGI variables first, then the headers as the client sent them.
    const nginx = readCgiRequest(
      encodePairs([
        ['CONTENT_TYPE', 'text/plain'],
        ['CONTENT_LENGTH', '5'],
        ['REQUEST_URI', '/'],
        ['HTTP_HOST', 'localhost'],
        ['HTTP_CONTENT_LENGTH', '5'],
        ['HTTP_ACCEPT', '*/*'],
        ['HTTP_CONTENT_TYPE', 'text/plain'],
      ]),
    );
    assert.deepEqual(Object.entries(nginx.headers), [
      ['host', 'localhost'],
      ['content-length', '5'],
      ['accept', '*/*'],
      ['content-type', 'text/plain'],
    ]);
    // No copy: where the CGI variable is. A value that only mentions the name: at the end.
    assert.deepEqual(Object.keys(readCgiRequest(encodePairs([['CONTENT_TYPE', 'a/b'], ['HTTP_HOST', 'h']])).headers), ['content-type', 'host']);
    const mention = readCgiRequest(encodePairs([['CONTENT_TYPE', 'a/b'], ['HTTP_X_NOTE', 'HTTP_CONTENT_TYPE'], ['HTTP_HOST', 'h']]));
    assert.deepEqual(Object.entries(mention.headers), [
      ['x-note', 'HTTP_CONTENT_TYPE'],
      ['host', 'h'],
      ['content-type', 'a/b'],
    ]);
  });

  test('long names and values (four-byte lengths), bytes above 0x7F as Latin-1, a repeated param', () => {
    const long = 'c'.repeat(70_000);
    const cgi = readCgiRequest(
      encodePairs([
        ['HTTP_COOKIE', long],
        [`HTTP_X_${'N'.repeat(200)}`, 'v'],
        ['HTTP_X_BYTES', Buffer.from([0x63, 0xe9, 0xff])],
        ['REQUEST_URI', '/first'],
        ['REQUEST_URI', '/second'],
      ]),
    );
    assert.equal(cgi.headers.cookie, long);
    assert.equal(cgi.headers[`x-${'n'.repeat(200)}`], 'v');
    assert.equal(cgi.headers['x-bytes'], 'c\u00e9\u00ff');
    assert.equal(cgi.REQUEST_URI, '/second');
  });

  test('names that only look like headers or variables are not taken for them', () => {
    const cgi = readCgiRequest(encodePairs({ HTTP_: 'x', HTTPX: 'y', HTTPS_: 'z', REQUEST_URIX: 'w', request_uri: 'v', HTTPD_X: 'u' }));
    assert.deepEqual(cgi.headers, {});
    assert.equal(cgi.REQUEST_URI, undefined);
    assert.equal(cgi.HTTPS, undefined);
  });

  test('property: the headers match the plain decode for any params', () => {
    const name = fc.oneof(
      fc.constantFrom('CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTP_CONTENT_TYPE', 'HTTP_CONTENT_LENGTH', 'REQUEST_METHOD', 'HTTPS', 'HTTP_'),
      fc.stringMatching(/^HTTP_[A-Z0-9_]{1,20}$/),
      fc.stringMatching(/^[A-Z_]{1,16}$/),
    );
    const value = fc.oneof(fc.constant(''), fc.string({ maxLength: 40 }).map((text) => Buffer.from(text, 'utf8').toString('latin1')), fc.string({ minLength: 130, maxLength: 300 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 30 }), (pairs) => {
        const bytes = encodePairs(pairs);
        const decoded = decodePairList(bytes);
        assert.deepEqual(readCgiRequest(bytes).headers, reference(decoded));
      }),
      { numRuns: 300 },
    );
  });
});

describe('request helpers', () => {
  test('httpVersionOf reads SERVER_PROTOCOL, and falls back to 1.1', () => {
    assert.deepEqual(httpVersionOf('HTTP/1.1'), [1, 1]);
    assert.deepEqual(httpVersionOf('HTTP/1.0'), [1, 0]);
    assert.deepEqual(httpVersionOf('HTTP/2.0'), [2, 0]);
    assert.deepEqual(httpVersionOf('HTTP/2'), [2, 0]);
    assert.deepEqual(httpVersionOf('HTTP/3'), [3, 0]);
    assert.deepEqual(httpVersionOf(undefined), [1, 1]);
    assert.deepEqual(httpVersionOf('INCLUDED'), [1, 1]);
  });

  test('requestUrl: REQUEST_URI, else SCRIPT_NAME + PATH_INFO + ?QUERY_STRING, else /', () => {
    const params: Record<string, string> = { SCRIPT_NAME: '/index.js', PATH_INFO: '/p', QUERY_STRING: 'q=1' };
    assert.equal(requestUrl('/given', (name) => params[name]), '/given');
    assert.equal(requestUrl('', (name) => params[name]), '/index.js/p?q=1');
    assert.equal(requestUrl(undefined, () => undefined), '/');
  });

  test('rawHeaders spell names the usual way', () => {
    assert.equal(displayName('x-forwarded-for'), 'X-Forwarded-For');
    assert.equal(displayName('host'), 'Host');
    assert.equal(displayName('x-1a'), 'X-1a');
    assert.deepEqual(rawHeadersFrom({ host: 'h', 'accept-encoding': 'gzip' }), ['Host', 'h', 'Accept-Encoding', 'gzip']);
  });
});
