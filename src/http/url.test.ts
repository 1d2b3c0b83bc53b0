// Unit tests for the request URL and the mount point, over the params Apache, nginx, lighttpd and h2o were seen to send (test/interop/url-*.test.ts checks them live).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { mountPoint, normalizeBasePath, requestUrl, type ParamSource } from './url.js';

function source(params: Record<string, string>): ParamSource {
  return { param: (name) => params[name] };
}

/** A param value as the web server sends it: UTF-8 bytes, read as Latin-1. */
function bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

test('requestUrl: scheme, HTTP_HOST and REQUEST_URI', () => {
  const url = requestUrl(source({ HTTP_HOST: 'example.com:8080', REQUEST_URI: '/a/b?x=1&y=%20', SERVER_PORT: '8080' }));
  assert.equal(url.href, 'http://example.com:8080/a/b?x=1&y=%20');
  assert.equal(url.host, 'example.com:8080');
  assert.equal(url.pathname, '/a/b');
  assert.equal(url.search, '?x=1&y=%20');
});

test('requestUrl: HTTPS=on or REQUEST_SCHEME=https make it https; default ports are left out', () => {
  assert.equal(requestUrl(source({ HTTPS: 'on', HTTP_HOST: 'example.com:443', REQUEST_URI: '/' })).href, 'https://example.com/');
  assert.equal(requestUrl(source({ REQUEST_SCHEME: 'https', HTTP_HOST: 'example.com', REQUEST_URI: '/' })).href, 'https://example.com/');
  assert.equal(requestUrl(source({ HTTPS: 'off', HTTP_HOST: 'example.com:80', REQUEST_URI: '/' })).href, 'http://example.com/');
});

test('requestUrl: without HTTP_HOST, SERVER_NAME and SERVER_PORT (not the default), IPv6 bracketed; else localhost', () => {
  assert.equal(requestUrl(source({ SERVER_NAME: 'app.test', SERVER_PORT: '8080', REQUEST_URI: '/x' })).href, 'http://app.test:8080/x');
  assert.equal(requestUrl(source({ SERVER_NAME: 'app.test', SERVER_PORT: '80', REQUEST_URI: '/x' })).href, 'http://app.test/x');
  assert.equal(requestUrl(source({ HTTPS: 'on', SERVER_NAME: 'app.test', SERVER_PORT: '443', REQUEST_URI: '/x' })).href, 'https://app.test/x');
  assert.equal(requestUrl(source({ SERVER_NAME: '::1', SERVER_PORT: '9000', REQUEST_URI: '/' })).href, 'http://[::1]:9000/');
  assert.equal(requestUrl(source({ REQUEST_URI: '/' })).href, 'http://localhost/');
});

test('requestUrl: without REQUEST_URI, SCRIPT_NAME + PATH_INFO re-encoded, and QUERY_STRING', () => {
  const url = requestUrl(source({ HTTP_HOST: 'h', SCRIPT_NAME: '/app', PATH_INFO: bytes('/a b/é?#'), QUERY_STRING: 'q=1' }));
  assert.equal(url.pathname, '/app/a%20b/%C3%A9%3F%23');
  assert.equal(url.search, '?q=1');
});

test('requestUrl: raw UTF-8 bytes in the target stay the bytes they were', () => {
  assert.equal(requestUrl(source({ HTTP_HOST: 'h', REQUEST_URI: bytes('/café?q=é') })).href, 'http://h/caf%C3%A9?q=%C3%A9');
});

test('requestUrl: absolute-form targets and OPTIONS *', () => {
  assert.equal(requestUrl(source({ HTTP_HOST: 'ignored', REQUEST_URI: 'http://other.test/p?q' })).href, 'http://other.test/p?q');
  assert.equal(requestUrl(source({ HTTP_HOST: 'h', REQUEST_URI: '*' })).href, 'http://h/');
});

test('requestUrl: a Host with delimiters, or a target that is not a path, is NODEFPM_BAD_URL (400)', () => {
  for (const host of ['evil.test/path', 'a@b', 'a b', 'x?y', 'x#y', 'a\\b']) {
    assert.throws(
      () => requestUrl(source({ HTTP_HOST: host, REQUEST_URI: '/' })),
      (error: unknown) => isNodefpmError(error, 'NODEFPM_BAD_URL') && error.status === 400,
      `host ${host}`,
    );
  }
  assert.throws(() => requestUrl(source({ HTTP_HOST: 'h', REQUEST_URI: 'relative' })), (error: unknown) => isNodefpmError(error, 'NODEFPM_BAD_URL'));
  assert.throws(() => requestUrl(source({ HTTP_HOST: 'host:99999', REQUEST_URI: '/' })), (error: unknown) => isNodefpmError(error, 'NODEFPM_BAD_URL'));
});

test('normalizeBasePath: trailing slashes go, the root is "", anything not a path is refused', () => {
  assert.equal(normalizeBasePath('/app/'), '/app');
  assert.equal(normalizeBasePath('/app'), '/app');
  assert.equal(normalizeBasePath('/'), '');
  assert.equal(normalizeBasePath(''), '');
  assert.equal(normalizeBasePath('/a b/c'), '/a b/c');
  for (const bad of ['app', '/app?x', '/a#b']) {
    assert.throws(() => normalizeBasePath(bad), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'), bad);
  }
});

/**
 * What each web server sent for GET /app/users/42?x=1 with the app mounted at /app/ (and GET
 * /users/42 at /), on Debian 12; test/interop/url-*.test.ts checks these live. docs/request.md has
 * the same table.
 */
const seen: Array<{ server: string; params: Record<string, string>; basePath: string; pathInfo: string }> = [
  { server: 'nginx, fastcgi_params, /app/', params: { SCRIPT_NAME: '/app/users/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '', pathInfo: '/app/users/42' },
  { server: 'nginx, fastcgi_split_path_info, /app/', params: { SCRIPT_NAME: '/app', PATH_INFO: '/users/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '/app', pathInfo: '/users/42' },
  { server: 'nginx, fastcgi_split_path_info, /', params: { SCRIPT_NAME: '', PATH_INFO: '/users/42', REQUEST_URI: '/users/42?x=1' }, basePath: '', pathInfo: '/users/42' },
  { server: 'Apache ProxyPass, /app/', params: { SCRIPT_NAME: '/app/users/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '', pathInfo: '/app/users/42' },
  { server: 'Apache ProxyPass + proxy-fcgi-pathinfo, /app/', params: { SCRIPT_NAME: '/app', PATH_INFO: '/users/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '/app', pathInfo: '/users/42' },
  { server: 'Apache ProxyPass + proxy-fcgi-pathinfo, /', params: { SCRIPT_NAME: '', PATH_INFO: '/users/42', REQUEST_URI: '/users/42?x=1' }, basePath: '', pathInfo: '/users/42' },
  { server: 'lighttpd "/app" prefix', params: { SCRIPT_NAME: '/app', PATH_INFO: '/users/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '/app', pathInfo: '/users/42' },
  // lighttpd with a prefix ending in "/" splits after the first segment below it: its SCRIPT_NAME is not the mount.
  { server: 'lighttpd "/app/" prefix', params: { SCRIPT_NAME: '/app/users', PATH_INFO: '/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '/app/users', pathInfo: '/42' },
  { server: 'lighttpd "/" + fix-root-scriptname', params: { SCRIPT_NAME: '', PATH_INFO: '/users/42', REQUEST_URI: '/users/42?x=1' }, basePath: '', pathInfo: '/users/42' },
  { server: 'h2o, /app', params: { SCRIPT_NAME: '', PATH_INFO: '/app/users/42', REQUEST_URI: '/app/users/42?x=1' }, basePath: '', pathInfo: '/app/users/42' },
  { server: 'h2o, /', params: { SCRIPT_NAME: '', PATH_INFO: '/users/42', REQUEST_URI: '/users/42?x=1' }, basePath: '', pathInfo: '/users/42' },
];

test('mountPoint: derived from SCRIPT_NAME and PATH_INFO as each web server sends them', () => {
  for (const { server, params, basePath, pathInfo } of seen) {
    assert.deepEqual(mountPoint(source(params), null), { basePath, pathInfo }, server);
  }
});

test('mountPoint: the basePath option splits the whole path for every server that sends none (and fixes lighttpd\'s "/app/" split)', () => {
  for (const { server, params } of seen.filter((entry) => entry.params.REQUEST_URI!.startsWith('/app/'))) {
    assert.deepEqual(mountPoint(source(params), '/app'), { basePath: '/app', pathInfo: '/users/42' }, server);
  }
  // At the root, the option "" changes nothing but the servers that split wrongly.
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/users', PATH_INFO: '/42', REQUEST_URI: '/users/42' }), ''), { basePath: '', pathInfo: '/users/42' });
});

test('mountPoint: the mount itself, with and without its slash; a path outside the forced mount', () => {
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/app', PATH_INFO: '/', REQUEST_URI: '/app/' }), null), { basePath: '/app', pathInfo: '/' });
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/app/', REQUEST_URI: '/app/' }), '/app'), { basePath: '/app', pathInfo: '/' });
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/app', REQUEST_URI: '/app' }), '/app'), { basePath: '/app', pathInfo: '' });
  // "/apple" is not under "/app": the two parts still add up to the whole path.
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/apple', REQUEST_URI: '/apple' }), '/app'), { basePath: '', pathInfo: '/apple' });
});

test('mountPoint: a SCRIPT_NAME with a trailing slash gives the slash to pathInfo', () => {
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/app/', PATH_INFO: 'users/42' }), null), { basePath: '/app', pathInfo: '/users/42' });
});

test('mountPoint: decoded paths: web servers send UTF-8 bytes, and a literal "%" stays one', () => {
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '/app', PATH_INFO: bytes('/a b/c/d/é') }), null), { basePath: '/app', pathInfo: '/a b/c/d/é' });
  assert.deepEqual(mountPoint(source({ SCRIPT_NAME: '', PATH_INFO: '/100%25' }), null), { basePath: '', pathInfo: '/100%25' });
  assert.throws(
    () => mountPoint(source({ SCRIPT_NAME: '', PATH_INFO: '/\xff' }), null),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_BAD_URL') && /PATH_INFO is not valid UTF-8/.test(error.message),
  );
});

test('mountPoint: no SCRIPT_NAME or PATH_INFO (the Authorizer role, raw clients): REQUEST_URI decoded, dot segments resolved, "+" kept', () => {
  assert.deepEqual(mountPoint(source({ REQUEST_URI: '/a%20b/x+y/caf%C3%A9?q=1' }), null), { basePath: '', pathInfo: '/a b/x+y/café' });
  assert.deepEqual(mountPoint(source({ REQUEST_URI: '/a/b/../c/./d' }), null), { basePath: '', pathInfo: '/a/c/d' });
  assert.deepEqual(mountPoint(source({ REQUEST_URI: '/app/x' }), '/app'), { basePath: '/app', pathInfo: '/x' });
  assert.deepEqual(mountPoint(source({}), null), { basePath: '', pathInfo: '/' });
  assert.throws(
    () => mountPoint(source({ REQUEST_URI: '/bad%zz' }), null),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_BAD_URL') && error.status === 400 && /"%zz" at offset 4/.test(error.message),
  );
});
