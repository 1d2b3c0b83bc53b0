// Tables for the target and Host parsing: nginx's $request_uri, $args, $uri and $host, byte for byte.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { normalizePath, parseHost, parseTarget, percentDecodePath } from './uri.js';

test('parseTarget: REQUEST_URI, QUERY_STRING and the decoded, normalised path', () => {
  const table: Array<[string, { requestUri: string; queryString: string; path: string; authority: string | null }]> = [
    ['/', { requestUri: '/', queryString: '', path: '/', authority: null }],
    ['/a/b?x=1&y=%20', { requestUri: '/a/b?x=1&y=%20', queryString: 'x=1&y=%20', path: '/a/b', authority: null }],
    ['/a?', { requestUri: '/a?', queryString: '', path: '/a', authority: null }],
    ['/a?b?c', { requestUri: '/a?b?c', queryString: 'b?c', path: '/a', authority: null }],
    // nginx decodes first, then resolves: %2F is a slash and %2e%2e a "..".
    ['/a%20b/../c/./d%2Fe?q', { requestUri: '/a%20b/../c/./d%2Fe?q', queryString: 'q', path: '/c/d/e', authority: null }],
    ['/x/%2e%2e/y', { requestUri: '/x/%2e%2e/y', queryString: '', path: '/y', authority: null }],
    ['//a///b//', { requestUri: '//a///b//', queryString: '', path: '/a/b/', authority: null }],
    ['/a/b/..', { requestUri: '/a/b/..', queryString: '', path: '/a/', authority: null }],
    ['/a/.', { requestUri: '/a/.', queryString: '', path: '/a/', authority: null }],
    // UTF-8 stays bytes, one char per byte, as params carry it.
    ['/caf%C3%A9', { requestUri: '/caf%C3%A9', queryString: '', path: '/caf\u00c3\u00a9', authority: null }],
    // Absolute form: REQUEST_URI is the path and query only, the authority wins over Host.
    ['http://Example.COM:81/x?y', { requestUri: '/x?y', queryString: 'y', path: '/x', authority: 'example.com:81' }],
    ['http://example.com', { requestUri: '/', queryString: '', path: '/', authority: 'example.com' }],
    ['http://example.com?q', { requestUri: '/?q', queryString: 'q', path: '/', authority: 'example.com' }],
    ['*', { requestUri: '*', queryString: '', path: '*', authority: null }],
  ];
  for (const [target, expected] of table) assert.deepEqual(parseTarget(target), expected, target);
});

test('parseTarget refuses what nginx answers 400: bad escapes, NUL, climbing above the root, no path', () => {
  for (const target of ['/a%zz', '/a%0', '/a%00b', '/../etc/passwd', '/a/../../b', '/%2e%2e/x', 'relative', 'http://user@host/']) {
    assert.throws(() => parseTarget(target), (error: unknown) => isNodefpmError(error, 'NODEFPM_GATEWAY_BAD_REQUEST'), target);
  }
});

test('percentDecodePath and normalizePath on their own', () => {
  assert.equal(percentDecodePath('/a%41%62'), '/aAb');
  assert.equal(percentDecodePath('/plain'), '/plain');
  assert.equal(normalizePath('/'), '/');
  assert.equal(normalizePath('/a/./b/../c'), '/a/c');
  assert.equal(normalizePath('/a/..'), '/');
});

test('parseHost: lower-cased, trailing dot dropped, port kept; malformed hosts refused', () => {
  assert.deepEqual(parseHost('Example.COM:8080'), { authority: 'example.com:8080', name: 'example.com' });
  assert.deepEqual(parseHost('example.com.'), { authority: 'example.com', name: 'example.com' });
  assert.deepEqual(parseHost('[::1]:9000'), { authority: '[::1]:9000', name: '::1' });
  assert.deepEqual(parseHost('127.0.0.1:'), { authority: '127.0.0.1', name: '127.0.0.1' });
  for (const bad of ['a b', 'a/b', 'a@b', 'exa..mple', '', '[zz]', 'a:b:c']) {
    assert.throws(() => parseHost(bad), (error: unknown) => isNodefpmError(error, 'NODEFPM_GATEWAY_BAD_REQUEST'), JSON.stringify(bad));
  }
});
