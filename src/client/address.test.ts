// Tests for connect-address parsing: every accepted form, and the forms refused with NODEFPM_INVALID_ADDRESS.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { formatConnectTarget, parseConnectAddress, type ConnectAddress, type ConnectTarget } from './address.js';

const accepted: Array<[ConnectAddress, ConnectTarget]> = [
  ['unix:/run/app.sock', { path: '/run/app.sock' }],
  ['unix:relative/app.sock', { path: 'relative/app.sock' }],
  ['/tmp/app.sock', { path: '/tmp/app.sock' }],
  ['127.0.0.1:9000', { host: '127.0.0.1', port: 9000 }],
  ['localhost:1', { host: 'localhost', port: 1 }],
  ['php-fpm.internal:65535', { host: 'php-fpm.internal', port: 65535 }],
  ['[::1]:9000', { host: '::1', port: 9000 }],
  ['[fe80::1:2]:80', { host: 'fe80::1:2', port: 80 }],
  [{ path: '/run/x.sock' }, { path: '/run/x.sock' }],
  [{ host: '10.0.0.1', port: 9001 }, { host: '10.0.0.1', port: 9001 }],
  [{ host: '::1', port: 9001 }, { host: '::1', port: 9001 }],
  [{ host: '[::1]', port: 9001 }, { host: '::1', port: 9001 }],
];

for (const [address, expected] of accepted) {
  test(`accepts ${JSON.stringify(address)}`, () => {
    assert.deepEqual(parseConnectAddress(address), expected);
  });
}

const refused: unknown[] = [
  '',
  'app.sock',
  './app.sock',
  'unix:',
  '127.0.0.1',
  '127.0.0.1:',
  '127.0.0.1:0',
  '127.0.0.1:65536',
  '127.0.0.1:90x',
  '127.0.0.1: 90',
  '127.0.0.1:0x1f',
  ':9000',
  '::1:9000',
  '[::1]',
  '[::1]9000',
  '[::1:9000',
  '[not-ipv6]:9000',
  'host name:9000',
  'user@host:9000',
  { path: '' },
  { host: 'localhost' },
  { port: 9000 },
  { host: 'localhost', port: 0 },
  { host: 'localhost', port: 1.5 },
  { host: 'localhost', port: '9000' },
  { path: '/a', host: 'b', port: 1 },
  42,
  null,
];

for (const address of refused) {
  test(`refuses ${JSON.stringify(address)}`, () => {
    assert.throws(
      () => parseConnectAddress(address as ConnectAddress),
      (error: unknown) => {
        assert.ok(isNodefpmError(error, 'NODEFPM_INVALID_ADDRESS'), String(error));
        assert.match(error.message, /accepted forms: unix:\/path, \/absolute\/path, HOST:PORT, \[IPv6\]:PORT/);
        return true;
      },
    );
  });
}

test('formats targets back into address strings', () => {
  assert.equal(formatConnectTarget({ path: '/run/a.sock' }), 'unix:/run/a.sock');
  assert.equal(formatConnectTarget({ host: '127.0.0.1', port: 9000 }), '127.0.0.1:9000');
  assert.equal(formatConnectTarget({ host: '::1', port: 9000 }), '[::1]:9000');
  for (const text of ['unix:/x.sock', '10.1.2.3:80', '[::1]:81', 'example.org:9000']) {
    assert.equal(formatConnectTarget(parseConnectAddress(text)), text);
  }
});
