// Unit tests of the fetch Request URL: scheme, host and target from params, the fast path agreeing with new URL().

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isNodefpmError } from '../../errors.js';
import { ParamsBlock, encodePairs } from '../../protocol/index.js';
import { hostOf, readTargetParams, requestUrl, schemeOf, targetLookup, targetMethod, targetOf } from './url.js';

const lookup =
  (params: Record<string, string>) =>
  (name: string): string | undefined =>
    params[name];

test('scheme: HTTPS=on (any case, or 1) and REQUEST_SCHEME=https mean https', () => {
  assert.equal(schemeOf(lookup({})), 'http');
  assert.equal(schemeOf(lookup({ HTTPS: 'on' })), 'https');
  assert.equal(schemeOf(lookup({ HTTPS: 'ON' })), 'https');
  assert.equal(schemeOf(lookup({ HTTPS: '1' })), 'https');
  assert.equal(schemeOf(lookup({ HTTPS: 'off' })), 'http');
  assert.equal(schemeOf(lookup({ HTTPS: '' })), 'http');
  assert.equal(schemeOf(lookup({ REQUEST_SCHEME: 'https' })), 'https');
});

test('host: HTTP_HOST first, then SERVER_NAME with a non-default port, then the fallback', () => {
  assert.equal(hostOf(lookup({ HTTP_HOST: 'a.example:8080', SERVER_NAME: 'b' }), 'http', 'x'), 'a.example:8080');
  assert.equal(hostOf(lookup({ SERVER_NAME: 'b.example', SERVER_PORT: '80' }), 'http', 'x'), 'b.example');
  assert.equal(hostOf(lookup({ SERVER_NAME: 'b.example', SERVER_PORT: '443' }), 'https', 'x'), 'b.example');
  assert.equal(hostOf(lookup({ SERVER_NAME: 'b.example', SERVER_PORT: '443' }), 'http', 'x'), 'b.example:443');
  assert.equal(hostOf(lookup({ SERVER_NAME: '::1', SERVER_PORT: '8080' }), 'http', 'x'), '[::1]:8080');
  assert.equal(hostOf(lookup({ HTTP_HOST: '' }), 'http', 'fallback'), 'fallback');
});

test('target: REQUEST_URI, else SCRIPT_NAME + PATH_INFO + ?QUERY_STRING', () => {
  assert.equal(targetOf(lookup({ REQUEST_URI: '/a?b' })), '/a?b');
  assert.equal(targetOf(lookup({ SCRIPT_NAME: '/app', PATH_INFO: '/x', QUERY_STRING: 'q=1' })), '/app/x?q=1');
  assert.equal(targetOf(lookup({ SCRIPT_NAME: '', QUERY_STRING: '' })), '/');
});

test('the fast path gives exactly what new URL() gives', () => {
  const cases: Array<Record<string, string>> = [
    { HTTP_HOST: 'localhost', REQUEST_URI: '/' },
    { HTTP_HOST: 'example.com', REQUEST_URI: '/a/b.c?x=1&y=%20z' },
    { HTTP_HOST: 'example.com:8080', REQUEST_URI: '/search?q=a+b' },
    { HTTP_HOST: 'Example.COM', REQUEST_URI: '/' },
    { HTTP_HOST: 'example.com:80', REQUEST_URI: '/' },
    { HTTP_HOST: 'example.com', HTTPS: 'on', REQUEST_URI: '/x' },
    { HTTP_HOST: 'example.com', HTTPS: 'on', REQUEST_URI: '/x', SERVER_PORT: '443' },
    { HTTP_HOST: 'example.com:443', HTTPS: 'on', REQUEST_URI: '/x' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a/../b' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a/./b' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a/.' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a/%2e%2E/b' },
    { HTTP_HOST: 'h', REQUEST_URI: '/.hidden/x' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a b?c d' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a"b<c>' },
    { HTTP_HOST: 'h', REQUEST_URI: "/it's?q='x'" },
    { HTTP_HOST: 'h', REQUEST_URI: '/a%zz' },
    { HTTP_HOST: 'h', REQUEST_URI: '/{x}|y' },
    { HTTP_HOST: 'h', REQUEST_URI: '/a?b/../c' },
    { HTTP_HOST: '[::1]:3000', REQUEST_URI: '/v6' },
    { HTTP_HOST: 'h', REQUEST_URI: '/x#frag' },
  ];
  for (const params of cases) {
    const scheme = params.HTTPS === 'on' ? 'https' : 'http';
    const expected = new URL(`${scheme}://${params.HTTP_HOST}${params.REQUEST_URI}`).href;
    assert.equal(requestUrl(lookup(params)), expected, JSON.stringify(params));
  }
});

test('raw bytes above 0x7f (Latin-1 characters in params) are percent-encoded as the bytes they are', () => {
  // "/café" sent as raw UTF-8 arrives as the Latin-1 string "/cafÃ©".
  const latin1 = Buffer.from('/café?q=é', 'utf8').toString('latin1');
  assert.equal(requestUrl(lookup({ HTTP_HOST: 'h', REQUEST_URI: latin1 })), 'http://h/caf%C3%A9?q=%C3%A9');
});

test('absolute-form targets name their own host; OPTIONS * is the root', () => {
  assert.equal(requestUrl(lookup({ HTTP_HOST: 'h', REQUEST_URI: 'http://other.example/p?q' })), 'http://other.example/p?q');
  assert.equal(requestUrl(lookup({ HTTP_HOST: 'h', REQUEST_URI: '*' })), 'http://h/');
});

test('a host that would smuggle a path or userinfo, or a target that is not a path, is NODEFPM_FETCH_BAD_URL (400)', () => {
  for (const params of [
    { HTTP_HOST: 'evil.example/x', REQUEST_URI: '/' },
    { HTTP_HOST: 'user@evil.example', REQUEST_URI: '/' },
    { HTTP_HOST: 'h', REQUEST_URI: 'relative' },
    { HTTP_HOST: 'bad host', REQUEST_URI: '/' },
  ]) {
    assert.throws(
      () => requestUrl(lookup(params)),
      (error: unknown) => isNodefpmError(error, 'NODEFPM_FETCH_BAD_URL') && error.status === 400,
      JSON.stringify(params),
    );
  }
});

test('readTargetParams finds in one pass what ParamsBlock.get finds one name at a time', () => {
  const names = ['REQUEST_METHOD', 'REQUEST_URI', 'HTTPS', 'REQUEST_SCHEME', 'HTTP_HOST', 'SERVER_NAME', 'SERVER_PORT', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING'];
  const name = fc.oneof(fc.constantFrom(...names, 'REQUEST_URIX', 'HTTP_HOSTS', 'SERVER_ADDR', 'HTTPX', 'SCRIPT_FILENAME'), fc.stringMatching(/^[A-Z_]{0,16}$/));
  const value = fc.string({ maxLength: 30 }).map((text) => Buffer.from(text, 'utf8').toString('latin1'));
  fc.assert(
    fc.property(fc.array(fc.tuple(name, value), { maxLength: 30 }), (pairs) => {
      const bytes = encodePairs(pairs);
      const block = new ParamsBlock(bytes);
      const found = readTargetParams(bytes);
      const lookUp = targetLookup(found);
      for (const wanted of names) assert.equal(lookUp(wanted), block.get(wanted), wanted);
      assert.equal(targetMethod(found), block.get('REQUEST_METHOD'));
      assert.equal(lookUp('SERVER_ADDR'), undefined, 'names it does not read are undefined');
    }),
    { numRuns: 300 },
  );
});

