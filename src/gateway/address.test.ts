// The HTTP listen address forms, their text form, and the URL printed for each.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { formatHttpAddress, parseHttpAddress, upstreamFor, urlFor } from './address.js';

test('parseHttpAddress accepts HOST:PORT, [IPv6]:PORT, unix:PATH and /PATH', () => {
  assert.deepEqual(parseHttpAddress('127.0.0.1:8080'), { kind: 'tcp', host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseHttpAddress('localhost:0'), { kind: 'tcp', host: 'localhost', port: 0 });
  assert.deepEqual(parseHttpAddress('[::1]:8080'), { kind: 'tcp', host: '::1', port: 8080 });
  assert.deepEqual(parseHttpAddress('unix:/run/front.sock'), { kind: 'unix', path: '/run/front.sock' });
  assert.deepEqual(parseHttpAddress('/run/front.sock'), { kind: 'unix', path: '/run/front.sock' });
  for (const bad of ['8080', '::1:8080', '[::1]', '[nothex]:80', 'host:99999', 'host:0x50', ':80', 'unix:', 'a b:80']) {
    assert.throws(() => parseHttpAddress(bad), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_ADDRESS'), bad);
  }
});

test('formatHttpAddress and urlFor: what `npm start` prints', () => {
  assert.equal(formatHttpAddress({ kind: 'tcp', host: '::1', port: 80 }), '[::1]:80');
  assert.equal(formatHttpAddress({ kind: 'unix', path: '/x.sock' }), 'unix:/x.sock');
  assert.equal(urlFor({ kind: 'tcp', host: '127.0.0.1', port: 8080 }, false), 'http://127.0.0.1:8080/');
  assert.equal(urlFor({ kind: 'tcp', host: '0.0.0.0', port: 8080 }, false), 'http://127.0.0.1:8080/', 'a wildcard is shown as loopback');
  assert.equal(urlFor({ kind: 'tcp', host: '::', port: 8443 }, true), 'https://[::1]:8443/');
  assert.equal(urlFor({ kind: 'tcp', host: 'localhost', port: 80 }, false), 'http://localhost/');
  assert.equal(urlFor({ kind: 'unix', path: '/x.sock' }, false), null);
});

test('upstreamFor: a FastCGI listener as an address to connect to', () => {
  assert.equal(upstreamFor({ kind: 'unix', path: '/run/app.sock' }), 'unix:/run/app.sock');
  assert.equal(upstreamFor({ kind: 'tcp', host: '127.0.0.1', port: 9000 }), '127.0.0.1:9000');
  assert.equal(upstreamFor({ kind: 'tcp', host: '0.0.0.0', port: 9000 }), '127.0.0.1:9000', 'a wildcard is reached on loopback');
  assert.equal(upstreamFor({ kind: 'tcp', host: '::', port: 9000 }), '[::1]:9000');
  assert.equal(upstreamFor({ kind: 'tcp', host: 'fe80::1', port: 9000 }), '[fe80::1]:9000');
  assert.equal(upstreamFor({ kind: 'fd', path: undefined }), null, 'an inherited socket: ask the socket');
  assert.equal(upstreamFor({ kind: 'tcp', host: '127.0.0.1', port: 0 }), null, 'port 0 is not a bound address');
});
