// Listen addresses: parseListenAddress for every accepted form and its errors, formatListenAddress, systemdSockets.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { formatListenAddress, inheritedListenAddress, parseListenAddress, systemdSockets, type ListenAddress } from './listen.js';

test('every accepted form parses', () => {
  const cases: Array<[string, ListenAddress]> = [
    ['unix:/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
    ['unix:relative.sock', { kind: 'unix', path: 'relative.sock' }],
    ['/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
    ['./app.sock', { kind: 'unix', path: './app.sock' }],
    ['../run/app.sock', { kind: 'unix', path: '../run/app.sock' }],
    ['127.0.0.1:9000', { kind: 'tcp', host: '127.0.0.1', port: 9000 }],
    ['0.0.0.0:0', { kind: 'tcp', host: '0.0.0.0', port: 0 }],
    ['localhost:65535', { kind: 'tcp', host: 'localhost', port: 65535 }],
    ['[::1]:9000', { kind: 'tcp', host: '::1', port: 9000 }],
    ['[::]:0', { kind: 'tcp', host: '::', port: 0 }],
    ['[2001:db8::10]:8080', { kind: 'tcp', host: '2001:db8::10', port: 8080 }],
    ['[::ffff:127.0.0.1]:9000', { kind: 'tcp', host: '::ffff:127.0.0.1', port: 9000 }],
    ['fd:0', { kind: 'fd', fd: 0 }],
    ['fd:3', { kind: 'fd', fd: 3 }],
    ['systemd', { kind: 'systemd' }],
    ['systemd:web', { kind: 'systemd', name: 'web' }],
    ['  127.0.0.1:9000\n', { kind: 'tcp', host: '127.0.0.1', port: 9000 }],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseListenAddress(text), expected, JSON.stringify(text));
});

test('bad addresses fail with NODEFPM_INVALID_ADDRESS, quoting the input, saying why and listing the accepted forms', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['app.sock', /no port given \(a relative socket path needs the unix: prefix or \.\/\)/],
    ['unix:', /no socket path after unix:/],
    ['fd:', /fd: needs a file descriptor number/],
    ['fd:zero', /fd: needs a file descriptor number/],
    ['fd:-1', /fd: needs a file descriptor number/],
    ['systemd:', /no socket name after systemd:/],
    ['127.0.0.1', /no port given/],
    ['127.0.0.1:', /port "" is not 0-65535/],
    ['127.0.0.1:65536', /port "65536" is not 0-65535/],
    ['127.0.0.1:http', /port "http" is not 0-65535/],
    ['127.0.0.1:-1', /port "-1" is not 0-65535/],
    [':9000', /the host is empty/],
    ['::1:9000', /an IPv6 address must be written in brackets/],
    ['[::1]', /the port is missing after the bracketed address/],
    ['[::1]:', /port "" is not 0-65535/],
    ['[127.0.0.1]:9000', /"127\.0\.0\.1" is not an IPv6 address/],
    ['[::1]:99999', /port "99999" is not 0-65535/],
    // Rules listen addresses share with connect and HTTP addresses (src/address.ts).
    ['host name:9000', /host "host name" contains characters a host name cannot/],
    ['unix:/run/a\0b.sock', /the socket path contains a NUL byte/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseListenAddress(text),
      (error: unknown) => {
        assert.ok(isNodefpmError(error, 'NODEFPM_INVALID_ADDRESS'), `${JSON.stringify(text)}: expected NODEFPM_INVALID_ADDRESS, got ${String(error)}`);
        assert.ok(error.message.startsWith(`listen address ${JSON.stringify(text)}: `), `the message quotes the input: ${error.message}`);
        assert.match(error.message, why);
        assert.match(error.message, /accepted forms: unix:\/path\/app\.sock, \/path\/app\.sock, HOST:PORT, \[IPv6\]:PORT, fd:N, or systemd\[:NAME\]/);
        return true;
      },
      JSON.stringify(text),
    );
  }
});

test('formatListenAddress writes the canonical form, and parsing it gives the same address back', () => {
  const cases: Array<[ListenAddress, string]> = [
    [{ kind: 'unix', path: '/run/app.sock' }, 'unix:/run/app.sock'],
    [{ kind: 'tcp', host: '127.0.0.1', port: 9000 }, '127.0.0.1:9000'],
    [{ kind: 'tcp', host: 'localhost', port: 0 }, 'localhost:0'],
    [{ kind: 'tcp', host: '::1', port: 9000 }, '[::1]:9000'],
    [{ kind: 'tcp', host: 'fe80::1', port: 1 }, '[fe80::1]:1'],
    [{ kind: 'fd', fd: 0 }, 'fd:0'],
    [{ kind: 'systemd' }, 'systemd'],
    [{ kind: 'systemd', name: 'admin' }, 'systemd:admin'],
  ];
  for (const [address, text] of cases) {
    assert.equal(formatListenAddress(address), text);
    assert.deepEqual(parseListenAddress(text), address, text);
  }
  for (const text of ['/run/app.sock', './x.sock']) {
    assert.deepEqual(parseListenAddress(formatListenAddress(parseListenAddress(text))), parseListenAddress(text), text);
  }
});

test('systemdSockets: none without LISTEN_FDS, or with a count that is not a positive integer', () => {
  assert.deepEqual(systemdSockets({}), []);
  for (const count of ['0', '-1', 'two', '1.5', '']) {
    assert.deepEqual(systemdSockets({ LISTEN_FDS: count, LISTEN_PID: String(process.pid) }), [], `LISTEN_FDS=${count}`);
  }
});

test('systemdSockets: LISTEN_FDS sockets from fd 3, named by LISTEN_FDNAMES, "unknown" when unnamed', () => {
  assert.deepEqual(systemdSockets({ LISTEN_FDS: '1', LISTEN_PID: String(process.pid) }), [{ fd: 3, name: 'unknown' }]);
  assert.deepEqual(systemdSockets({ LISTEN_FDS: '3', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'web:admin' }), [
    { fd: 3, name: 'web' },
    { fd: 4, name: 'admin' },
    { fd: 5, name: 'unknown' },
  ]);
});

test('systemdSockets: sockets meant for another process (LISTEN_PID) are not ours; an unset LISTEN_PID is accepted', () => {
  assert.deepEqual(systemdSockets({ LISTEN_FDS: '1', LISTEN_PID: String(process.pid + 1) }), []);
  assert.deepEqual(systemdSockets({ LISTEN_FDS: '1', LISTEN_PID: 'x' }), []);
  // Launchers that exec the app without knowing its pid leave LISTEN_PID out.
  assert.deepEqual(systemdSockets({ LISTEN_FDS: '2' }), [
    { fd: 3, name: 'unknown' },
    { fd: 4, name: 'unknown' },
  ]);
});

test('inheritedListenAddress prefers the systemd sockets', () => {
  assert.deepEqual(inheritedListenAddress({ LISTEN_FDS: '1', LISTEN_PID: String(process.pid) }), { kind: 'systemd' });
});
