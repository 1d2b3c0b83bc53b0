// resolveOptions: defaults, validation messages, timeouts, roles, and the FCGI_WEB_SERVER_ADDRS / allowedClients allow-list.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureLogger } from '../../test/helpers/log-capture.js';
import { RawPeer, requestParams, splitCgi } from '../../test/helpers/raw-peer.js';
import { createServer } from '../index.js';
import { isNodefpmError } from '../errors.js';
import { Role } from '../protocol/index.js';
import { defaultLimits, normalizeAddress, resolveOptions, type ServerOptions } from './options.js';
import { FcgiServer } from './server.js';

const noEnv: NodeJS.ProcessEnv = {};

function invalidOption(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isNodefpmError(error, 'NODEFPM_INVALID_OPTION'), `expected NODEFPM_INVALID_OPTION, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  };
}

test('defaults: every limit from defaultLimits, multiplexing on, malloc tuned, the Responder role, no allow-list', () => {
  const resolved = resolveOptions({}, noEnv);
  for (const [key, value] of Object.entries(defaultLimits)) {
    assert.equal(resolved[key as keyof typeof defaultLimits], value, `default for ${key}`);
  }
  assert.equal(resolved.multiplex, true);
  assert.equal(resolved.tuneMalloc, true);
  assert.deepEqual([...resolved.roles], [Role.Responder]);
  assert.equal(resolved.allowedClients, null, 'no FCGI_WEB_SERVER_ADDRS and no allowedClients: everyone may connect');
  assert.equal(Object.isFrozen(defaultLimits), true);
});

test('given values replace the defaults; Infinity is accepted for counts and sizes', () => {
  const resolved = resolveOptions(
    { maxConnections: 5, maxBodyBytes: Infinity, paramsTimeout: 0, multiplex: false, tuneMalloc: false, roles: [Role.Responder, Role.Authorizer, Role.Filter] },
    noEnv,
  );
  assert.equal(resolved.maxConnections, 5);
  assert.equal(resolved.maxBodyBytes, Infinity);
  assert.equal(resolved.paramsTimeout, 0, '0 turns a timeout off');
  assert.equal(resolved.maxRequests, defaultLimits.maxRequests);
  assert.equal(resolved.multiplex, false);
  assert.equal(resolved.tuneMalloc, false);
  assert.deepEqual([...resolved.roles].sort(), [1, 2, 3]);
});

test('a bad limit is refused with a message naming the option, the rule and the value', () => {
  const cases: Array<[ServerOptions, RegExp]> = [
    [{ maxConnections: 0 }, /^option maxConnections must be an integer >= 1 \(or Infinity\), got 0$/],
    [{ maxRequests: 1.5 }, /option maxRequests must be an integer >= 1.*got 1\.5/],
    [{ maxParamsBytes: Number.NaN }, /option maxParamsBytes .*got NaN/],
    [{ maxRequestsPerConnection: -3 }, /option maxRequestsPerConnection .*got -3/],
    [{ inputHighWaterMark: '65536' as unknown as number }, /option inputHighWaterMark .*got 65536/],
    [{ idleTimeout: -1 }, /^option idleTimeout must be an integer from 0 \(off\) to 2147483647 ms, or Infinity \(off\), got -1$/],
    [{ outputHighWaterMark: 1024 }, /^option outputHighWaterMark must be at least 16384$/],
  ];
  for (const [options, pattern] of cases) {
    assert.throws(() => resolveOptions(options, noEnv), invalidOption(pattern), JSON.stringify(options));
  }
});

test('a role that is not 1, 2 or 3 is refused', () => {
  assert.throws(() => resolveOptions({ roles: [Role.Responder, 4] }, noEnv), invalidOption(/option roles: 4 is not a FastCGI role/));
});

test('Infinity turns a timeout off (it must not become a 1 ms timer), and a timeout beyond what timers hold is refused', () => {
  // Node's timers treat anything above 2^31-1 ms as 1 ms, and socket.setTimeout(Infinity) throws.
  const resolved = resolveOptions({ idleTimeout: Infinity, paramsTimeout: Infinity, abortTimeout: Infinity }, noEnv);
  assert.equal(resolved.idleTimeout, 0);
  assert.equal(resolved.paramsTimeout, 0);
  assert.equal(resolved.abortTimeout, 0);
  assert.equal(resolveOptions({ idleTimeout: 2_147_483_647 }, noEnv).idleTimeout, 2_147_483_647);
  assert.throws(() => resolveOptions({ abortTimeout: 3_000_000_000 }, noEnv), invalidOption(/option abortTimeout .*2147483647.*got 3000000000/));
});

test('FCGI_WEB_SERVER_ADDRS: a comma-separated list, spaces around entries ignored', () => {
  const resolved = resolveOptions({}, { FCGI_WEB_SERVER_ADDRS: '199.170.183.28,199.170.183.71' });
  assert.deepEqual([...(resolved.allowedClients ?? [])], ['199.170.183.28', '199.170.183.71']);
  const spaced = resolveOptions({}, { FCGI_WEB_SERVER_ADDRS: ' 10.0.0.1 , 10.0.0.2,\t10.0.0.3 ,' });
  assert.deepEqual([...(spaced.allowedClients ?? [])], ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
});

test('FCGI_WEB_SERVER_ADDRS: IPv4-mapped IPv6 entries are compared as IPv4, IPv6 entries are kept', () => {
  const resolved = resolveOptions({}, { FCGI_WEB_SERVER_ADDRS: '::ffff:10.1.2.3,::FFFF:192.168.0.1,::1,FE80::1' });
  assert.deepEqual([...(resolved.allowedClients ?? [])], ['10.1.2.3', '192.168.0.1', '::1', 'fe80::1']);
});

test('normalizeAddress: what a socket reports is compared in the list form', () => {
  assert.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(normalizeAddress('127.0.0.1'), '127.0.0.1');
  assert.equal(normalizeAddress('::1'), '::1');
  assert.equal(normalizeAddress('2001:DB8::1'), '2001:db8::1');
});

test('allowedClients adds to FCGI_WEB_SERVER_ADDRS, and alone makes a list', () => {
  const both = resolveOptions({ allowedClients: ['10.9.9.9', '::ffff:10.8.8.8'] }, { FCGI_WEB_SERVER_ADDRS: '10.0.0.1' });
  assert.deepEqual([...(both.allowedClients ?? [])], ['10.0.0.1', '10.9.9.9', '10.8.8.8']);
  const alone = resolveOptions({ allowedClients: ['127.0.0.1'] }, noEnv);
  assert.deepEqual([...(alone.allowedClients ?? [])], ['127.0.0.1']);
});

test('useWebServerAddrs: false ignores the environment variable', () => {
  const ignored = resolveOptions({ useWebServerAddrs: false }, { FCGI_WEB_SERVER_ADDRS: '10.0.0.1' });
  assert.equal(ignored.allowedClients, null);
  const explicit = resolveOptions({ useWebServerAddrs: false, allowedClients: ['10.0.0.2'] }, { FCGI_WEB_SERVER_ADDRS: '10.0.0.1' });
  assert.deepEqual([...(explicit.allowedClients ?? [])], ['10.0.0.2']);
});

test('the environment variable is read by default (useWebServerAddrs unset or true)', () => {
  for (const options of [{}, { useWebServerAddrs: true }]) {
    const resolved = resolveOptions(options, { FCGI_WEB_SERVER_ADDRS: '10.0.0.1' });
    assert.deepEqual([...(resolved.allowedClients ?? [])], ['10.0.0.1'], JSON.stringify(options));
  }
});

test('an entry that is not an IP address is refused, naming where it came from', () => {
  assert.throws(
    () => resolveOptions({}, { FCGI_WEB_SERVER_ADDRS: '127.0.0.1,localhost' }),
    invalidOption(/FCGI_WEB_SERVER_ADDRS.*"localhost" is not an IP address/),
  );
  assert.throws(() => resolveOptions({ allowedClients: ['10.0.0.300'] }, noEnv), invalidOption(/allowedClients.*"10\.0\.0\.300" is not an IP address/));
});

test('an empty FCGI_WEB_SERVER_ADDRS allows nobody, and the server warns about it', async () => {
  const resolved = resolveOptions({}, { FCGI_WEB_SERVER_ADDRS: '' });
  assert.ok(resolved.allowedClients !== null, 'a set but empty variable is an allow-list, not "everyone"');
  assert.equal(resolved.allowedClients.size, 0);

  // FcgiServer reads process.env itself; this file runs in its own process, so setting it here is contained.
  const saved = process.env.FCGI_WEB_SERVER_ADDRS;
  process.env.FCGI_WEB_SERVER_ADDRS = '';
  try {
    const logs = captureLogger();
    const server = new FcgiServer(() => undefined, { logger: logs });
    assert.equal(server.options.allowedClients?.size, 0);
    const warning = await logs.waitFor(/lists no address: every connection will be refused/, 1000);
    assert.equal(warning.level, 'warn');
    await server.close();
  } finally {
    if (saved === undefined) delete process.env.FCGI_WEB_SERVER_ADDRS;
    else process.env.FCGI_WEB_SERVER_ADDRS = saved;
  }
});

test('a server with idleTimeout, paramsTimeout and abortTimeout at Infinity serves requests (no 1 ms timers, no crash)', async () => {
  const logs = captureLogger();
  const server = createServer(
    async (_req, res) => {
      // Longer than a misread 1 ms paramsTimeout/abortTimeout would allow.
      await new Promise((resolve) => setTimeout(resolve, 50));
      res.end('still here');
    },
    { logger: logs, idleTimeout: Infinity, paramsTimeout: Infinity, abortTimeout: Infinity, useWebServerAddrs: false },
  );
  try {
    const bound = await server.listen('127.0.0.1:0');
    assert.equal(bound.kind, 'tcp');
    const peer = await RawPeer.connect({ host: '127.0.0.1', port: bound.kind === 'tcp' ? bound.port : 0 });
    try {
      peer.sendBegin(1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      peer.sendParams(1, requestParams());
      peer.sendStdin(1);
      const response = await peer.waitForEnd(1, 10_000);
      assert.equal(splitCgi(response.stdout).body.toString(), 'still here');
      assert.equal(await peer.staysOpen(50), true, 'an idle connection is not closed by a 1 ms timer');
    } finally {
      peer.close();
    }
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test('the allow-list compares addresses by value: other spellings of an entry and IPv4-mapped forms match', () => {
  const resolved = resolveOptions({ allowedClients: ['127.0.0.1', '0:0:0:0:0:0:0:1', 'FE80::1'] }, noEnv);
  const allowed = resolved.allowedClients;
  assert.ok(allowed !== null, 'a list was given');
  for (const peer of ['127.0.0.1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::1', 'fe80::1', 'fe80:0:0:0:0:0:0:1']) {
    assert.equal(allowed.allows(peer), true, `${peer} should match an entry`);
  }
  for (const peer of ['127.0.0.2', '::2', '::ffff:127.0.0.2', undefined, 'not-an-address']) {
    assert.equal(allowed.allows(peer), false, `${String(peer)} should not match`);
  }
});
