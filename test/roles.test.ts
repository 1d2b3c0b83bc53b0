// Real-socket tests of the Authorizer and Filter roles and of role dispatch: allow/deny, no STDIN, UNKNOWN_ROLE, DATA, the Filter's output hold.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FcgiClient, FcgiRejectedError } from '../src/client/index.js';
import { createServer, isNodefpmError, silentLogger, type Handler, type Request } from '../src/index.js';
import { ProtocolStatus, RecordType, Role } from '../src/protocol/index.js';
import { InputStream } from '../src/server/input-stream.js';
import { RawPeer, requestParams, splitCgi, type ReceivedRecord } from './helpers/raw-peer.js';
import { startServer, type TestServer } from './helpers/servers.js';

/** Generous waits: the machine may be loaded. */
const WAIT = 15_000;
const OPTS = { timeout: 60_000 };

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** Polls `condition` every few ms until it holds; fails after WAIT (a stuck server, not a slow one). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Params as Apache's mod_authnz_fcgi sends them: no CONTENT_LENGTH, SCRIPT_NAME, PATH_INFO nor PATH_TRANSLATED. */
function authorizerParams(extra: Record<string, string> = {}): Record<string, string> {
  const params = requestParams('GET', '/private/page?x=1', {
    FCGI_ROLE: 'AUTHORIZER',
    FCGI_APACHE_ROLE: 'AUTHENTICATOR',
    HTTP_AUTHORIZATION: 'Bearer let-me-in',
    HTTP_CONNECTION: 'close',
    ...extra,
  });
  delete params.SCRIPT_NAME;
  return params;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The records of `requestId` that are output (STDOUT, STDERR, END_REQUEST). */
function outputOf(records: readonly ReceivedRecord[], requestId: number): ReceivedRecord[] {
  return records.filter(
    (r) => r.requestId === requestId && (r.type === RecordType.Stdout || r.type === RecordType.Stderr || r.type === RecordType.EndRequest),
  );
}

/**
 * Proves that nothing of `requestId` has been written yet: a GET_VALUES sent now is answered on the same
 * socket after anything the server already wrote, so when its answer arrives, earlier output would have too.
 */
async function assertNoOutputYet(peer: RawPeer, requestId: number, what: string): Promise<void> {
  const before = peer.records.filter((r) => r.type === RecordType.GetValuesResult).length;
  peer.sendGetValues(['FCGI_MPXS_CONNS']);
  await peer.waitFor((records) => records.filter((r) => r.type === RecordType.GetValuesResult).length > before, WAIT, 'GET_VALUES_RESULT');
  assert.deepEqual(outputOf(peer.records, requestId), [], what);
}

async function withClient<T>(app: TestServer, run: (client: FcgiClient) => Promise<T>): Promise<T> {
  const client = new FcgiClient({ address: app.address, timeout: WAIT });
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

// ---- the Authorizer ----

describe('Authorizer', () => {
  test('res.allow(variables) answers 200 with Variable-NAME headers and no body; the body reads empty', OPTS, async () => {
    const seen: Array<{ role: number; body: string; chunks: number }> = [];
    const app = await startServer({
      authorizer: async (req, res) => {
        const body = await req.text();
        let chunks = 0;
        for await (const _chunk of req) chunks++;
        seen.push({ role: req.role, body, chunks });
        res.allow({ REMOTE_USER: 'alice', AUTH_GROUPS: 'staff,ops' });
      },
    });
    try {
      await withClient(app, async (client) => {
        const response = await client.request({ params: authorizerParams(), role: Role.Authorizer });
        assert.equal(response.status, 200);
        assert.equal(response.headers['variable-remote_user'], 'alice');
        assert.equal(response.headers['variable-auth_groups'], 'staff,ops');
        assert.equal(response.headers['content-length'], undefined, 'no Content-Length for the web server to pass on');
        assert.equal((await response.bytes()).length, 0, 'no body');
      });
      assert.deepEqual(seen, [{ role: Role.Authorizer, body: '', chunks: 0 }]);
    } finally {
      await app.close();
    }
  });

  test('res.deny(status, body, headers) sends that status, headers and body; res.deny() is a 403 page', OPTS, async () => {
    const app = await startServer({
      authorizer: (req, res) => {
        if (req.header('authorization') === undefined) res.deny(401, 'log in first\n', { 'WWW-Authenticate': 'Bearer realm="app"', 'Content-Type': 'text/plain' });
        else res.deny();
      },
    });
    try {
      await withClient(app, async (client) => {
        const params = authorizerParams();
        delete params.HTTP_AUTHORIZATION;
        const unauthorized = await client.request({ params, role: Role.Authorizer });
        assert.equal(unauthorized.status, 401);
        assert.equal(unauthorized.headers['www-authenticate'], 'Bearer realm="app"');
        assert.equal(unauthorized.headers['content-type'], 'text/plain');
        assert.equal(await unauthorized.text(), 'log in first\n');

        const forbidden = await client.request({ params: authorizerParams(), role: Role.Authorizer });
        assert.equal(forbidden.status, 403);
        assert.equal(forbidden.headers['content-type'], 'text/plain; charset=utf-8');
        assert.equal(await forbidden.text(), '403 Forbidden\n');
      });
    } finally {
      await app.close();
    }
  });

  test('res.deny(200) is refused: 200 is what grants access', OPTS, async () => {
    const thrown = deferred<unknown>();
    const app = await startServer({
      authorizer: (_req, res) => {
        try {
          res.deny(200);
        } catch (error) {
          thrown.resolve(error);
        }
        res.deny(403);
      },
    });
    try {
      await withClient(app, async (client) => {
        const response = await client.request({ params: authorizerParams(), role: Role.Authorizer });
        assert.equal(response.status, 403);
      });
      assert.ok(isNodefpmError(await thrown.promise, 'NODEFPM_INVALID_STATUS'), 'deny(200) throws NODEFPM_INVALID_STATUS');
    } finally {
      await app.close();
    }
  });

  test('Apache: BEGIN_REQUEST and PARAMS, no FCGI_STDIN at all, and the answer still comes', OPTS, async () => {
    const bodies: string[] = [];
    const app = await startServer({
      authorizer: async (req, res) => {
        // Everything a handler might do with a body must resolve without STDIN.
        bodies.push(await req.text());
        bodies.push((await req.bytes().catch(() => Buffer.from('consumed'))).toString());
        bodies.push(String(await req.readLine()));
        res.allow({ REMOTE_USER: req.header('authorization') === 'Bearer let-me-in' ? 'apache-user' : '' });
      },
    });
    const peer = await RawPeer.connect(app.address);
    try {
      // mod_authnz_fcgi: request id 1, FCGI_KEEP_CONN off, then waits for the answer with no STDIN sent.
      peer.sendBegin(1, { role: Role.Authorizer, keepConn: false });
      peer.sendParams(1, authorizerParams());
      const response = await peer.waitForEnd(1, WAIT);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      const cgi = splitCgi(response.stdout);
      assert.equal(cgi.status, 200);
      assert.equal(cgi.headers['variable-remote_user'], 'apache-user');
      assert.equal(cgi.body.length, 0);
      assert.deepEqual(bodies, ['', 'consumed', 'null'], 'text() is empty, a second whole read is refused, readLine() ends');
      assert.equal(peer.records.filter((r) => r.type === RecordType.Stdin).length, 0, 'the test really sent no STDIN');
      await peer.waitForClose(WAIT); // FCGI_KEEP_CONN was off: the app closes
    } finally {
      peer.close();
      await app.close();
    }
  });

  test('lighttpd: PARAMS without CONTENT_LENGTH, then an empty STDIN, answered the same; the connection stays usable', OPTS, async () => {
    const app = await startServer({
      authorizer: async (req, res) => {
        const body = await req.text();
        if (req.header('authorization') === undefined) res.deny(401, `no credentials${body}\n`, { 'WWW-Authenticate': 'Basic realm="x"' });
        else res.allow({ REMOTE_USER: 'lighty' });
      },
    });
    const peer = await RawPeer.connect(app.address);
    try {
      const params = authorizerParams();
      delete params.FCGI_ROLE;
      delete params.FCGI_APACHE_ROLE;
      peer.sendRequest(1, params, '', { role: Role.Authorizer });
      const allowed = await peer.waitForEnd(1, WAIT);
      assert.equal(splitCgi(allowed.stdout).status, 200);
      assert.equal(splitCgi(allowed.stdout).headers['variable-remote_user'], 'lighty');

      delete params.HTTP_AUTHORIZATION;
      peer.sendRequest(2, params, '', { role: Role.Authorizer });
      const denied = await peer.waitForEnd(2, WAIT);
      const cgi = splitCgi(denied.stdout);
      assert.equal(cgi.status, 401);
      assert.equal(cgi.headers['www-authenticate'], 'Basic realm="x"');
      assert.equal(cgi.body.toString(), 'no credentials\n');
    } finally {
      peer.close();
      await app.close();
    }
  });

  test('STDIN bytes sent to an Authorizer anyway are dropped, not waited for nor handed to the handler', OPTS, async () => {
    const allow: Handler = async (req, res) => {
      res.allow({ BODY: `[${await req.text()}]` });
    };
    const app = await startServer({ authorizer: allow }, { inputHighWaterMark: 1024 });
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendBegin(1, { role: Role.Authorizer });
      peer.sendParams(1, authorizerParams());
      peer.sendStdin(1, randomBytes(256 * 1024), false); // far over the high-water mark, and never ended
      const response = await peer.waitForEnd(1, WAIT);
      assert.equal(splitCgi(response.stdout).headers['variable-body'], '[]');
      peer.sendRequest(2, requestParams(), '', { role: Role.Authorizer });
      assert.equal(splitCgi((await peer.waitForEnd(2, WAIT)).stdout).status, 200, 'the connection was not left paused');
    } finally {
      peer.close();
      await app.close();
    }
  });
});

// ---- which roles a server serves ----

describe('roles served', () => {
  test('a server with only a responder answers FCGI_UNKNOWN_ROLE to Authorizer and Filter, in both API forms', OPTS, async () => {
    const responder: Handler = (_req, res) => {
      res.end('responder');
    };
    for (const handler of [responder, { responder }]) {
      const app = await startServer(handler);
      try {
        await withClient(app, async (client) => {
          for (const role of [Role.Authorizer, Role.Filter]) {
            const refused = await client.request({ params: requestParams(), role }).then(
              () => null,
              (error: unknown) => error,
            );
            assert.ok(refused instanceof FcgiRejectedError, `role ${role} is rejected`);
            assert.equal(refused.protocolStatus, ProtocolStatus.UnknownRole, `role ${role} gets FCGI_UNKNOWN_ROLE`);
          }
          assert.equal(await (await client.request({ params: requestParams() })).text(), 'responder');
        });
      } finally {
        await app.close();
      }
    }
  });

  test('an authorizer-only server refuses the Responder role', OPTS, async () => {
    const app = await startServer({
      authorizer: (_req, res) => {
        res.allow();
      },
    });
    try {
      await withClient(app, async (client) => {
        const refused = await client.request({ params: requestParams() }).catch((error: unknown) => error);
        assert.ok(refused instanceof FcgiRejectedError, 'the Responder role is rejected');
        assert.equal(refused.protocolStatus, ProtocolStatus.UnknownRole);
        assert.equal((await client.request({ params: authorizerParams(), role: Role.Authorizer })).status, 200);
      });
      assert.deepEqual([...app.server.options.roles], [Role.Authorizer]);
    } finally {
      await app.close();
    }
  });

  test('a server with all three handlers dispatches each role to its own', OPTS, async () => {
    const calls: string[] = [];
    const app = await startServer({
      responder: (req, res) => {
        calls.push(`responder ${req.role}`);
        res.end('from the responder');
      },
      authorizer: (req, res) => {
        calls.push(`authorizer ${req.role}`);
        res.allow({ REMOTE_USER: 'u' });
      },
      filter: async (req, res) => {
        calls.push(`filter ${req.role}`);
        const stdin = await req.text();
        const data = await req.data!.text();
        res.end(`${stdin}|${data.toUpperCase()}`);
      },
    });
    try {
      await withClient(app, async (client) => {
        assert.equal(await (await client.request({ params: requestParams() })).text(), 'from the responder');
        assert.equal((await client.request({ params: authorizerParams(), role: Role.Authorizer })).headers['variable-remote_user'], 'u');
        const filtered = await client.request({
          params: requestParams('GET', '/doc.txt', { FCGI_DATA_LENGTH: '4', CONTENT_LENGTH: '2' }),
          role: Role.Filter,
          body: 'in',
          data: 'file',
        });
        assert.equal(await filtered.text(), 'in|FILE');
      });
      assert.deepEqual(calls, [`responder ${Role.Responder}`, `authorizer ${Role.Authorizer}`, `filter ${Role.Filter}`]);
      assert.deepEqual([...app.server.options.roles].sort(), [Role.Responder, Role.Authorizer, Role.Filter]);
    } finally {
      await app.close();
    }
  });

  test('one handler for several roles through the roles option still works, and sees req.role', OPTS, async () => {
    const both: Handler = (req, res) => {
      if (req.isAuthorizer) res.allow({ ROLE: String(req.role) });
      else res.end(`role ${req.role}`);
    };
    const app = await startServer(both, { roles: [Role.Responder, Role.Authorizer] });
    try {
      await withClient(app, async (client) => {
        assert.equal(await (await client.request({ params: requestParams() })).text(), `role ${Role.Responder}`);
        assert.equal((await client.request({ params: authorizerParams(), role: Role.Authorizer })).headers['variable-role'], String(Role.Authorizer));
        const refused = await client.request({ params: requestParams(), role: Role.Filter }).catch((error: unknown) => error);
        assert.ok(refused instanceof FcgiRejectedError && refused.protocolStatus === ProtocolStatus.UnknownRole, 'Filter is not in roles');
      });
    } finally {
      await app.close();
    }
  });

  test('createServer refuses no handler, an unknown role name, a non-function, and a roles option that contradicts the handlers', () => {
    const noop: Handler = (_req, res) => {
      res.end();
    };
    const options = { logger: silentLogger };
    const invalid = (make: () => unknown, pattern: RegExp): void => {
      assert.throws(make, (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION') && pattern.test((error as Error).message));
    };
    invalid(() => createServer({}, options), /no handler given/);
    invalid(() => createServer({ authoriser: noop } as never, options), /"authoriser" is not a role/);
    invalid(() => createServer({ filter: 'nope' } as never, options), /filter handler must be a function/);
    invalid(() => createServer({ responder: noop }, { ...options, roles: [Role.Responder, Role.Authorizer] }), /does not match the handlers/);
    invalid(() => createServer(null as never, options), /handler function or an object/);
    // The same set, spelt out, is accepted.
    assert.deepEqual([...createServer({ filter: noop, responder: noop }, { ...options, roles: [Role.Filter, Role.Responder] }).options.roles], [Role.Responder, Role.Filter]);
  });
});

// ---- the Filter ----

describe('Filter', () => {
  test('DATA is streamed to the handler as it arrives, after STDIN', OPTS, async () => {
    const firstChunk = deferred();
    const log: string[] = [];
    const app = await startServer(
      {
        filter: async (req, res) => {
          log.push(`stdin ${await req.text()}`);
          const hash = createHash('sha256');
          let bytes = 0;
          for await (const chunk of req.data!) {
            if (bytes === 0) firstChunk.resolve();
            bytes += chunk.length;
            hash.update(chunk);
          }
          log.push(`data ${bytes}`);
          res.setHeader('Content-Type', 'text/plain');
          res.end(hash.digest('hex'));
        },
      },
      { inputHighWaterMark: 16 * 1024 },
    );
    const parts = [randomBytes(100_000), randomBytes(300_000), randomBytes(5)];
    async function* file(): AsyncGenerator<Buffer> {
      yield parts[0]!;
      // The handler must see the first part before the rest is even produced: DATA is not gathered first.
      await firstChunk.promise;
      yield parts[1]!;
      yield parts[2]!;
    }
    try {
      await withClient(app, async (client) => {
        const total = parts.reduce((sum, part) => sum + part.length, 0);
        const response = await client.request({
          params: requestParams('GET', '/big.bin', { FCGI_DATA_LENGTH: String(total), CONTENT_LENGTH: '5' }),
          role: Role.Filter,
          body: 'hello',
          data: file(),
        });
        assert.equal(await response.text(), sha256(Buffer.concat(parts)));
        assert.deepEqual(log, ['stdin hello', `data ${total}`]);
      });
    } finally {
      await app.close();
    }
  });

  test('FCGI_DATA_LAST_MOD and FCGI_DATA_LENGTH are parsed; absent or malformed ones are null', OPTS, async () => {
    const app = await startServer({
      filter: (req, res) => {
        res.end(JSON.stringify({ lastModified: req.dataLastModified?.toISOString() ?? null, length: req.dataLength }));
      },
    });
    try {
      await withClient(app, async (client) => {
        const ask = async (extra: Record<string, string>): Promise<unknown> =>
          JSON.parse(await (await client.request({ params: requestParams('GET', '/f', extra), role: Role.Filter, data: '' })).text());
        assert.deepEqual(await ask({ FCGI_DATA_LAST_MOD: '1700000000', FCGI_DATA_LENGTH: '0' }), { lastModified: '2023-11-14T22:13:20.000Z', length: 0 });
        assert.deepEqual(await ask({}), { lastModified: null, length: null });
        assert.deepEqual(await ask({ FCGI_DATA_LAST_MOD: 'yesterday', FCGI_DATA_LENGTH: '-3' }), { lastModified: null, length: null });
      });
    } finally {
      await app.close();
    }
  });

  test('output (STDOUT, STDERR and the end) waits until STDIN has ended, even when the handler answers first', OPTS, async () => {
    const ended = deferred();
    const app = await startServer({
      filter: (_req, res) => {
        res.setHeader('Content-Type', 'text/plain');
        res.writeStderr('filter note\n');
        res.write('early ');
        res.end('answer');
        ended.resolve();
      },
    });
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendBegin(1, { role: Role.Filter });
      peer.sendParams(1, requestParams('GET', '/f', { CONTENT_LENGTH: '10', FCGI_DATA_LENGTH: '4' }));
      peer.sendStdin(1, 'first', false);
      await ended.promise;
      await assertNoOutputYet(peer, 1, 'nothing leaves while STDIN is still arriving');
      peer.sendStdin(1, 'secnd', false);
      await assertNoOutputYet(peer, 1, 'nor after more STDIN, before its end');
      peer.sendStdin(1, ''); // the end of STDIN
      const response = await peer.waitForEnd(1, WAIT);
      const cgi = splitCgi(response.stdout);
      assert.equal(cgi.status, 200);
      assert.equal(cgi.body.toString(), 'early answer');
      assert.equal(response.stderr.toString(), 'filter note\n');
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      // DATA was never sent, let alone read: the request ended without it. The connection serves on.
      peer.sendRequest(2, requestParams('GET', '/g'), '', { role: Role.Filter });
      peer.sendData(2, '');
      assert.equal(splitCgi((await peer.waitForEnd(2, WAIT)).stdout).body.toString(), 'early answer');
    } finally {
      peer.close();
      await app.close();
    }
  });

  test('a handler that writes first and reads STDIN later gets all of it: STDIN is kept for it, beyond the high-water mark', OPTS, async () => {
    const stdin = randomBytes(1024 * 1024);
    const app = await startServer(
      {
        filter: async (req, res) => {
          res.write('started\n');
          // Wait until all of STDIN has arrived unread: 64 times the high-water mark, so it was not paused.
          await until(() => req.body.bytesReceived === stdin.length, 'all of STDIN to arrive unread');
          res.end(sha256(await req.bytes()));
        },
      },
      { inputHighWaterMark: 16 * 1024 },
    );
    try {
      await withClient(app, async (client) => {
        const response = await client.request({
          params: requestParams('POST', '/f', { CONTENT_LENGTH: String(stdin.length), FCGI_DATA_LENGTH: '0' }),
          role: Role.Filter,
          body: stdin,
        });
        assert.equal(await response.text(), `started\n${sha256(stdin)}`);
      });
    } finally {
      await app.close();
    }
  });

  test('unread STDIN beyond bodyLimit while the output waits is dropped, and reading it fails with NODEFPM_FILTER_INPUT_DROPPED', OPTS, async () => {
    const stdin = randomBytes(512 * 1024);
    const app = await startServer(
      {
        filter: async (req, res) => {
          res.write('started\n');
          // Until STDIN has failed (dropped) or, for a small one, all arrived unread.
          await until(() => req.body.finished || req.body.bytesReceived === req.contentLength, 'STDIN to arrive or fail');
          const outcome = await req.bytes().then(
            (bytes) => `read ${bytes.length}`,
            (error: unknown) => (isNodefpmError(error) ? error.code : String(error)),
          );
          res.end(outcome);
        },
      },
      { inputHighWaterMark: 16 * 1024, bodyLimit: 64 * 1024 },
    );
    try {
      await withClient(app, async (client) => {
        const response = await client.request({
          params: requestParams('POST', '/f', { CONTENT_LENGTH: String(stdin.length) }),
          role: Role.Filter,
          body: stdin,
        });
        assert.equal(await response.text(), 'started\nNODEFPM_FILTER_INPUT_DROPPED');
        // The connection went on: the rest of STDIN was read and dropped, not left in the socket.
        const next = await client.request({ params: requestParams('POST', '/f', { CONTENT_LENGTH: '1' }), role: Role.Filter, body: 'x', data: 'y' });
        assert.equal(await next.text(), 'started\nread 1');
      });
    } finally {
      await app.close();
    }
  });

  test('a DATA stream shorter or longer than FCGI_DATA_LENGTH fails req.data reads with NODEFPM_DATA_INCOMPLETE', OPTS, async () => {
    const app = await startServer({
      filter: async (req, res) => {
        await req.text();
        const outcome = await req.data!.bytes().then(
          (bytes) => `ok ${bytes.length}`,
          (error: unknown) => (isNodefpmError(error) ? `${error.code} ${error.status}` : String(error)),
        );
        res.end(outcome);
      },
    });
    try {
      await withClient(app, async (client) => {
        const ask = async (declared: string, data: string): Promise<string> =>
          (await client.request({ params: requestParams('GET', '/f', { FCGI_DATA_LENGTH: declared }), role: Role.Filter, data })).text();
        assert.equal(await ask('10', 'short'), 'NODEFPM_DATA_INCOMPLETE 500');
        assert.equal(await ask('3', 'too long'), 'NODEFPM_DATA_INCOMPLETE 500');
        assert.equal(await ask('8', 'just rig'), 'ok 8');
      });
      assert.ok(app.logs.find('NODEFPM_DATA_INCOMPLETE').length >= 2, 'each mismatch is logged with its code');
    } finally {
      await app.close();
    }
  });

  test('a filter answering from cache need not read DATA: never sent, or large and unread, the request ends and the connection goes on', OPTS, async () => {
    const cache = new Map<number, string>([[1_700_000_000_000, 'cached copy']]);
    const answer: Handler = async (req: Request, res) => {
      await req.text();
      const hit = cache.get(req.dataLastModified?.getTime() ?? -1);
      if (hit !== undefined) res.end(hit);
      else res.end(`fresh ${(await req.data!.bytes()).length}`);
    };
    const app = await startServer({ filter: answer }, { inputHighWaterMark: 16 * 1024 });
    try {
      // DATA never sent at all.
      const peer = await RawPeer.connect(app.address);
      try {
        peer.sendRequest(1, requestParams('GET', '/f', { FCGI_DATA_LAST_MOD: '1700000000', FCGI_DATA_LENGTH: '999999' }), '', { role: Role.Filter });
        const response = await peer.waitForEnd(1, WAIT);
        assert.equal(splitCgi(response.stdout).body.toString(), 'cached copy');
      } finally {
        peer.close();
      }
      // DATA far over the high-water mark, sent and never read: the connection is not left paused.
      await withClient(app, async (client) => {
        const big = randomBytes(2 * 1024 * 1024);
        const params = requestParams('GET', '/f', { FCGI_DATA_LAST_MOD: '1700000000', FCGI_DATA_LENGTH: String(big.length) });
        assert.equal(await (await client.request({ params, role: Role.Filter, data: big })).text(), 'cached copy');
        const fresh = requestParams('GET', '/f', { FCGI_DATA_LAST_MOD: '1600000000', FCGI_DATA_LENGTH: '5' });
        assert.equal(await (await client.request({ params: fresh, role: Role.Filter, data: 'abcde' })).text(), 'fresh 5');
      });
    } finally {
      await app.close();
    }
  });

  test('FCGI_ABORT_REQUEST while an ended handler waits for the end of STDIN: END_REQUEST at once, no output', OPTS, async () => {
    const ended = deferred();
    const app = await startServer(
      {
        filter: (_req, res) => {
          res.end('never sent');
          ended.resolve();
        },
      },
      // A long abortTimeout: the answer must not depend on it.
      { abortTimeout: 600_000 },
    );
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendBegin(1, { role: Role.Filter });
      peer.sendParams(1, requestParams('GET', '/f'));
      await ended.promise;
      peer.sendAbort(1);
      const response = await peer.waitForEnd(1, WAIT);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(response.stdout.length, 0, 'the held output was dropped');
      assert.equal(response.endCount, 1);
    } finally {
      peer.close();
      await app.close();
    }
  });

  test('STDIN shorter than CONTENT_LENGTH still releases the output at its end; reading it fails with NODEFPM_BODY_INCOMPLETE', OPTS, async () => {
    const app = await startServer({
      filter: async (req, res) => {
        res.write('head\n');
        await until(() => req.body.finished, 'STDIN to end or fail');
        res.end(await req.text().catch((error: unknown) => (isNodefpmError(error) ? error.code : String(error))));
      },
    });
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('POST', '/f', { CONTENT_LENGTH: '100' }), 'only this', { role: Role.Filter });
      const response = await peer.waitForEnd(1, WAIT);
      assert.equal(splitCgi(response.stdout).body.toString(), 'head\nNODEFPM_BODY_INCOMPLETE');
    } finally {
      peer.close();
      await app.close();
    }
  });
});

// ---- the input stream under the Filter's hold ----

describe('InputStream.keepUnread (what keeps STDIN arriving while a Filter\'s output waits)', () => {
  test('a full stream asks its source to resume, keeps queueing past the mark, and fails one byte past the limit', async () => {
    let resumed = 0;
    const stream = new InputStream({ inputHasRoom: () => resumed++ }, 4);
    assert.equal(stream.push(Buffer.from('abcd')), false, 'at the high-water mark the source is told to pause');
    stream.keepUnread(10, () => new Error('dropped'));
    assert.equal(resumed, 1, 'the paused source is told to go on');
    assert.equal(stream.push(Buffer.from('efghij')), true, 'no backpressure up to the limit');
    assert.equal(stream.push(Buffer.from('k')), true, 'past the limit: failed, and the source is not paused');
    assert.equal(stream.bytesBuffered, 0, 'the queue was released');
    await assert.rejects(stream.read(), /dropped/);
    assert.equal(stream.push(Buffer.from('more')), true, 'later bytes are ignored');
  });

  test('already over the limit when called: fails at once; ended or discarded streams are left alone', async () => {
    const over = new InputStream({ inputHasRoom: () => {} }, 100);
    over.push(Buffer.from('0123456789'));
    over.keepUnread(5, () => new Error('too much unread'));
    await assert.rejects(over.read(), /too much unread/);

    const ended = new InputStream({ inputHasRoom: () => {} }, 100);
    ended.push(Buffer.from('0123456789'));
    ended.end();
    ended.keepUnread(5, () => new Error('must not fail'));
    assert.equal((await ended.read())?.toString(), '0123456789');

    const discarded = new InputStream({ inputHasRoom: () => {} }, 100);
    discarded.discard();
    discarded.keepUnread(5, () => new Error('must not fail'));
    discarded.push(Buffer.from('0123456789'));
    discarded.end();
    assert.equal(await discarded.read(), null);
  });
});

