// Unit tests for src/address.ts: the socket address forms shared by listen, connect and HTTP addresses, and the rules that differ.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSocketAddress, hostProblem, parseSocketAddress, pathProblem, portProblem, type AddressSyntax, type SocketAddress } from './address.js';
import { isNodefpmError } from './errors.js';

const listening: AddressSyntax = { what: 'listen address', accepted: 'FORMS', minPort: 0, relativePaths: true };
const connecting: AddressSyntax = { what: 'connect address', accepted: 'FORMS', minPort: 1 };

test('the forms every syntax reads', () => {
  const cases: Array<[string, SocketAddress]> = [
    ['unix:/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
    ['unix:relative.sock', { kind: 'unix', path: 'relative.sock' }],
    ['/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
    ['127.0.0.1:9000', { kind: 'tcp', host: '127.0.0.1', port: 9000 }],
    ['php-fpm.internal:65535', { kind: 'tcp', host: 'php-fpm.internal', port: 65535 }],
    ['[::1]:9000', { kind: 'tcp', host: '::1', port: 9000 }],
    ['[::ffff:127.0.0.1]:80', { kind: 'tcp', host: '::ffff:127.0.0.1', port: 80 }],
    [' localhost:8080\n', { kind: 'tcp', host: 'localhost', port: 8080 }],
  ];
  for (const syntax of [listening, connecting]) {
    for (const [text, expected] of cases) assert.deepEqual(parseSocketAddress(text, syntax), expected, `${syntax.what} ${JSON.stringify(text)}`);
  }
});

test('port 0 and ./ paths only where the syntax allows them', () => {
  assert.deepEqual(parseSocketAddress('0.0.0.0:0', listening), { kind: 'tcp', host: '0.0.0.0', port: 0 });
  assert.deepEqual(parseSocketAddress('./app.sock', listening), { kind: 'unix', path: './app.sock' });
  assert.deepEqual(parseSocketAddress('../run/app.sock', listening), { kind: 'unix', path: '../run/app.sock' });
  assert.throws(() => parseSocketAddress('0.0.0.0:0', connecting), /connect address "0\.0\.0\.0:0": port "0" is not 1-65535; accepted forms: FORMS/);
  assert.throws(() => parseSocketAddress('./app.sock', connecting), /no port given \(a relative socket path needs the unix: prefix\)/);
});

test('each bad address says what is wrong with it', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['   ', /it is empty/],
    ['unix:', /no socket path after unix:/],
    ['unix:/a\0b', /the socket path contains a NUL byte/],
    ['app.sock', /no port given/],
    ['127.0.0.1:', /port "" is not 0-65535/],
    ['127.0.0.1:65536', /port "65536" is not 0-65535/],
    ['127.0.0.1:0x1f', /port "0x1f" is not 0-65535/],
    ['127.0.0.1: 80', /port " 80" is not 0-65535/],
    ['127.0.0.1:1e3', /port "1e3" is not 0-65535/],
    [':9000', /the host is empty/],
    ['::1:9000', /an IPv6 address must be written in brackets, \[::1\]:9000/],
    ['[::1', /the IPv6 address has no closing bracket/],
    ['[::1]', /the port is missing after the bracketed address/],
    ['[::1]9000', /the port is missing after the bracketed address/],
    ['[example.org]:80', /"example\.org" is not an IPv6 address/],
    ['host name:80', /host "host name" contains characters a host name cannot/],
    ['user@host:80', /contains characters a host name cannot/],
    ['a/b:80', /contains characters a host name cannot/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseSocketAddress(text, listening),
      (error: unknown) => {
        assert.ok(isNodefpmError(error, 'NODEFPM_INVALID_ADDRESS'), `${JSON.stringify(text)}: ${String(error)}`);
        assert.ok(error.message.startsWith(`listen address ${JSON.stringify(text)}: `), `the message quotes the input: ${error.message}`);
        assert.match(error.message, why);
        assert.ok(error.message.endsWith('; accepted forms: FORMS'), error.message);
        return true;
      },
    );
  }
});

test('the checks the object forms of connect addresses use', () => {
  assert.equal(pathProblem('/run/a.sock'), null);
  assert.equal(pathProblem(''), 'the socket path is empty');
  assert.equal(hostProblem('::1'), null);
  assert.equal(hostProblem('example.org'), null);
  assert.match(hostProblem('::1:9000:x') ?? '', /is not an IPv6 address/);
  assert.match(hostProblem('a b') ?? '', /contains characters a host name cannot/);
  assert.equal(portProblem(1, 1), null);
  assert.equal(portProblem(0, 0), null);
  assert.equal(portProblem(0, 1), 'port 0 is not 1-65535');
  assert.equal(portProblem(1.5, 0), 'port 1.5 is not 0-65535');
  assert.equal(portProblem(65536, 0), 'port 65536 is not 0-65535');
});

test('formatting gives back text that parses to the same address', () => {
  const addresses: SocketAddress[] = [
    { kind: 'unix', path: '/run/app.sock' },
    { kind: 'unix', path: 'relative.sock' },
    { kind: 'tcp', host: '127.0.0.1', port: 9000 },
    { kind: 'tcp', host: '2001:db8::10', port: 8080 },
    { kind: 'tcp', host: 'localhost', port: 1 },
  ];
  for (const address of addresses) assert.deepEqual(parseSocketAddress(formatSocketAddress(address), connecting), address);
  assert.equal(formatSocketAddress({ kind: 'tcp', host: '::1', port: 80 }), '[::1]:80');
});
