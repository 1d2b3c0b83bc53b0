// Cookies, response helpers, sendFile and error pages over real FastCGI (RawPeer and the client): exact CGI heads, signed cookies, 100 MB with bounded memory.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, realpathSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FcgiClient } from '../src/client/index.js';
import { NodefpmError, Signer, createServer, isNodefpmError, type CreateServerOptions, type Handler } from '../src/index.js';
import type { SendFileChildMessage } from './fixtures/send-file-server.js';
import { RawPeer, requestParams } from './helpers/raw-peer.js';
import { startServer, tempDir, type TestServer } from './helpers/servers.js';

const MiB = 1024 * 1024;
const OLD_KEY = 'old-signing-key-0123456789abcdef-0123456789';
const NEW_KEY = 'new-signing-key-0123456789abcdef-0123456789';
const TIMEOUT = 60_000;

interface Answer {
  /** The head lines after the Status line, as sent (order and repeats kept). */
  lines: string[];
  statusLine: string;
  status: number;
  /** Lower-case names; the last value of a repeated header. */
  headers: Record<string, string>;
  body: Buffer;
  stderr: string;
  appStatus: number;
}

function parseAnswer(stdout: Buffer, stderr: Buffer, appStatus: number): Answer {
  const end = stdout.indexOf('\r\n\r\n');
  assert.ok(end !== -1, `no CGI head in ${JSON.stringify(stdout.toString('latin1').slice(0, 200))}`);
  const all = stdout.toString('latin1', 0, end).split('\r\n');
  const statusLine = all[0]!;
  assert.match(statusLine, /^Status: \d{3} /, 'the head starts with a Status line');
  const lines = all.slice(1);
  const headers: Record<string, string> = {};
  for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
  return { lines, statusLine, status: Number(statusLine.split(' ')[1]), headers, body: stdout.subarray(end + 4), stderr: stderr.toString('utf8'), appStatus };
}

/** One request over a fresh connection; `params` are added to a GET of `uri`. */
async function ask(app: TestServer, uri: string, params: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams(method, uri, params));
    const response = await peer.waitForEnd(1, TIMEOUT);
    return parseAnswer(response.stdout, response.stderr, response.appStatus);
  } finally {
    peer.close();
  }
}

async function withServer(handler: Handler, options: CreateServerOptions, run: (app: TestServer) => Promise<void>): Promise<void> {
  const app = await startServer(handler, options);
  try {
    await run(app);
  } finally {
    await app.close();
  }
}

describe('cookies', () => {
  test('Set-Cookie lines: every attribute, one line per cookie, exact strings', async () => {
    const expires = new Date(Date.UTC(2031, 1, 3, 4, 5, 6));
    await withServer(
      (_req, res) => {
        res.setCookie('plain', 'v');
        res.setCookie('all', 'a b;c', {
          maxAge: 600,
          expires,
          domain: 'example.com',
          path: '/app',
          secure: true,
          httpOnly: true,
          sameSite: 'None',
          partitioned: true,
          priority: 'High',
        });
        res.setCookie('lax', '1', { sameSite: 'lax', httpOnly: true });
        res.clearCookie('old', { path: '/app', domain: 'example.com' });
        res.text('ok');
      },
      {},
      async (app) => {
        const answer = await ask(app, '/');
        assert.deepEqual(
          answer.lines.filter((line) => line.startsWith('Set-Cookie:')),
          [
            'Set-Cookie: plain=v; Path=/',
            'Set-Cookie: all=a%20b%3Bc; Max-Age=600; Expires=Mon, 03 Feb 2031 04:05:06 GMT; Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=None; Partitioned; Priority=High',
            'Set-Cookie: lax=1; Path=/; HttpOnly; SameSite=Lax',
            'Set-Cookie: old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Path=/app',
          ],
        );
      },
    );
  });

  test('req.cookies parses HTTP_COOKIE (first occurrence wins, percent-decoded, raw UTF-8 re-read)', async () => {
    await withServer(
      (req, res) => res.json({ ...req.cookies }),
      {},
      async (app) => {
        // Params travel as bytes: "é" as raw UTF-8 is what a browser sends for document.cookie = "u=é".
        const raw = Buffer.from('a=1; b=hello%20world; a=2; u=é', 'utf8').toString('latin1');
        const answer = await ask(app, '/', { HTTP_COOKIE: raw });
        assert.deepEqual(JSON.parse(answer.body.toString()), { a: '1', b: 'hello world', u: 'é' });
      },
    );
  });

  test('an invalid cookie to set is a 500 with the reason in the log', async () => {
    await withServer(
      (_req, res) => {
        res.setCookie('bad name', 'v');
      },
      {},
      async (app) => {
        const answer = await ask(app, '/');
        assert.equal(answer.status, 500);
        const entry = await app.logs.waitFor('handler failed');
        assert.equal(entry.fields?.code, 'NODEFPM_COOKIE_INVALID');
      },
    );
  });

  test('a Cookie header over maxCookieBytes: 431 with the reason, logged', async () => {
    await withServer(
      (req, res) => res.json(Object.keys(req.cookies)),
      { maxCookieBytes: 100 },
      async (app) => {
        assert.equal((await ask(app, '/', { HTTP_COOKIE: `a=${'x'.repeat(90)}` })).status, 200, 'within the bound');
        const answer = await ask(app, '/', { HTTP_COOKIE: `a=${'x'.repeat(200)}` });
        assert.equal(answer.status, 431);
        assert.match(answer.body.toString(), /431 Request Header Fields Too Large\nthe Cookie header has 202 bytes, more than the 100 allowed/);
        const entry = await app.logs.waitFor('request refused with 431');
        assert.equal(entry.fields?.code, 'NODEFPM_COOKIE_HEADER_TOO_LARGE');
        assert.equal(answer.stderr, '', 'client errors stay out of FCGI_STDERR');
      },
    );
  });

  test('maxCookieBytes and keys are checked when the server is made', () => {
    // createServer without listening: the checks run when it is made.
    const invalid = (error: unknown): boolean => isNodefpmError(error, 'NODEFPM_INVALID_OPTION');
    assert.throws(() => createServer(() => {}, { maxCookieBytes: 0 }), invalid);
    assert.throws(() => createServer(() => {}, { keys: ['short'] }), invalid);
    assert.throws(() => createServer(() => {}, { keys: [] }), invalid);
  });
});

describe('signed cookies', () => {
  const app: Handler = (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/set') {
      res.setCookie('sid', url.searchParams.get('v') ?? '', { signed: true, httpOnly: true });
      res.text('set');
      return;
    }
    if (url.pathname === '/all') {
      res.json({ ...req.signedCookies });
      return;
    }
    res.json({ sid: req.signedCookie('sid') ?? null, id: req.id });
  };

  function cookieFrom(answer: Answer): string {
    const line = answer.lines.find((l) => l.startsWith('Set-Cookie: sid='));
    assert.ok(line !== undefined, `a Set-Cookie for sid in ${answer.lines.join(' | ')}`);
    return line.slice('Set-Cookie: '.length, line.indexOf(';'));
  }

  test('round trip: set signed, read back verified', async () => {
    await withServer(app, { keys: [NEW_KEY] }, async (server) => {
      const set = await ask(server, '/set?v=user%2042');
      const cookie = cookieFrom(set);
      assert.equal(cookie, `sid=user%2042.${new Signer([NEW_KEY]).signature('user 42', 'sid')}`, 'value.signature, bound to the name');
      assert.match(set.lines.find((l) => l.startsWith('Set-Cookie'))!, /; Path=\/; HttpOnly$/);
      const read = await ask(server, '/', { HTTP_COOKIE: cookie });
      assert.equal(JSON.parse(read.body.toString()).sid, 'user 42');
      const absent = await ask(server, '/');
      assert.equal(JSON.parse(absent.body.toString()).sid, null, 'an absent cookie is undefined, not an error');
    });
  });

  test('key rotation: a cookie signed with the old key verifies; new cookies are signed with the new key', async () => {
    let oldCookie = '';
    await withServer(app, { keys: [OLD_KEY] }, async (server) => {
      oldCookie = cookieFrom(await ask(server, '/set?v=alice'));
    });
    await withServer(app, { keys: [NEW_KEY, OLD_KEY] }, async (server) => {
      const read = await ask(server, '/', { HTTP_COOKIE: oldCookie });
      assert.equal(JSON.parse(read.body.toString()).sid, 'alice', 'the old key still verifies');
      const fresh = cookieFrom(await ask(server, '/set?v=alice'));
      assert.notEqual(fresh, oldCookie);
      assert.equal(fresh, `sid=alice.${new Signer([NEW_KEY]).signature('alice', 'sid')}`, 'the new key signs');
    });
    await withServer(app, { keys: [NEW_KEY] }, async (server) => {
      const read = await ask(server, '/', { HTTP_COOKIE: oldCookie });
      assert.equal(read.status, 400, 'once the old key is retired, its cookies fail');
    });
  });

  test('tampered, foreign-key, unsigned and renamed cookies: 400 with the reason, logged; signedCookies leaves them out', async () => {
    await withServer(app, { keys: [NEW_KEY] }, async (server) => {
      const good = cookieFrom(await ask(server, '/set?v=bob'));
      const tampered = good.replace('sid=bob.', 'sid=eve.');
      const foreign = `sid=bob.${new Signer([OLD_KEY]).signature('bob', 'sid')}`;
      const renamed = `other=${good.slice(4)}`; // the same value.signature under another name
      for (const [cookie, what] of [
        [tampered, 'tampered value'],
        [foreign, 'foreign key'],
        ['sid=bob', 'no signature'],
      ] as const) {
        const answer = await ask(server, '/', { HTTP_COOKIE: cookie });
        assert.equal(answer.status, 400, what);
        assert.match(answer.body.toString(), /400 Bad Request\ncookie sid has a bad signature/, what);
        assert.match(answer.body.toString(), /Request id: \S+/, `${what}: the page names the request id`);
      }
      const logged = server.logs.find('signed cookie sid failed verification');
      assert.equal(logged.length, 3, 'each failure is logged');
      assert.equal(logged[0]!.fields?.code, 'NODEFPM_COOKIE_SIGNATURE');
      assert.equal(typeof logged[0]!.fields?.requestId, 'string', 'with the request id');
      assert.equal(server.logs.find('request refused with 400').length, 3);

      const all = await ask(server, '/all', { HTTP_COOKIE: `${tampered}; ${renamed}; plain=1; keep=${good.slice(4)}` });
      assert.equal(all.status, 200);
      assert.deepEqual(JSON.parse(all.body.toString()), {}, 'none of them verifies (keep= is signed for sid, not keep)');
      const ok = await ask(server, '/all', { HTTP_COOKIE: `${good}; plain=1` });
      assert.deepEqual(JSON.parse(ok.body.toString()), { sid: 'bob' });
    });
  });

  test('signed cookies without keys: a 500 naming the keys option', async () => {
    await withServer(app, {}, async (server) => {
      const answer = await ask(server, '/set?v=x');
      assert.equal(answer.status, 500);
      const entry = await server.logs.waitFor('handler failed');
      assert.match(String((entry.fields?.error as Error).message), /keys option/);
    });
  });
});

describe('helpers', () => {
  const app: Handler = (req, res) => {
    const url = new URL(req.url, 'http://x');
    switch (url.pathname) {
      case '/json':
        res.json({ a: 1, é: 'ü' });
        return;
      case '/json-201':
        res.json([1, 2], 201);
        return;
      case '/json-undefined':
        res.json(undefined);
        return;
      case '/json-typed':
        res.setHeader('Content-Type', 'application/problem+json');
        res.json({ title: 'x' }, 422);
        return;
      case '/text':
        res.text('héllo');
        return;
      case '/html':
        res.html('<p>hi</p>', 404);
        return;
      case '/redirect':
        res.redirect('/target?a=1');
        return;
      case '/redirect-301':
        res.redirect('https://example.com/a b/ü?q=%20x&p=100%', 301);
        return;
      case '/redirect-injection':
        res.redirect('/x\r\nSet-Cookie: evil=1');
        return;
      case '/redirect-bad-status':
        res.redirect('/x', 200);
        return;
      case '/ids':
        res.text(`${req.id} ${req.id}`);
        return;
    }
    res.text('?', 404);
  };

  test('json, text and html: status, Content-Type with charset, Content-Length, body', async () => {
    await withServer(app, {}, async (server) => {
      const json = await ask(server, '/json');
      assert.equal(json.statusLine, 'Status: 200 OK');
      assert.deepEqual(json.lines, ['Content-Type: application/json; charset=utf-8', `Content-Length: ${Buffer.byteLength('{"a":1,"é":"ü"}')}`]);
      assert.equal(json.body.toString(), '{"a":1,"é":"ü"}');
      const created = await ask(server, '/json-201');
      assert.equal(created.statusLine, 'Status: 201 Created');
      assert.equal(created.body.toString(), '[1,2]');
      assert.equal((await ask(server, '/json-undefined')).body.toString(), 'null');
      const typed = await ask(server, '/json-typed');
      assert.equal(typed.status, 422);
      assert.equal(typed.headers['content-type'], 'application/problem+json', 'a Content-Type set first is kept');
      const text = await ask(server, '/text');
      assert.deepEqual(text.lines, ['Content-Type: text/plain; charset=utf-8', 'Content-Length: 6']);
      assert.equal(text.body.toString(), 'héllo');
      const html = await ask(server, '/html');
      assert.equal(html.statusLine, 'Status: 404 Not Found');
      assert.deepEqual(html.lines, ['Content-Type: text/html; charset=utf-8', 'Content-Length: 9']);
      const head = await ask(server, '/json', {}, 'HEAD');
      assert.equal(head.body.length, 0, 'HEAD gets no body');
      assert.equal(head.headers['content-length'], undefined, 'and, as with end(), no Content-Length for HEAD');
    });
  });

  test('redirect: always a Status line with Location (Apache and h2o would answer 200 to a bare Location)', async () => {
    await withServer(app, {}, async (server) => {
      const found = await ask(server, '/redirect');
      assert.equal(found.statusLine, 'Status: 302 Found');
      assert.equal(found.headers.location, '/target?a=1');
      assert.equal(found.body.toString(), 'Redirecting to /target?a=1\n');
      const moved = await ask(server, '/redirect-301');
      assert.equal(moved.statusLine, 'Status: 301 Moved Permanently');
      assert.equal(moved.headers.location, 'https://example.com/a%20b/%C3%BC?q=%20x&p=100%25', 'encoded, existing escapes kept');
      const injection = await ask(server, '/redirect-injection');
      assert.equal(injection.status, 302);
      assert.equal(injection.headers.location, '/x%0D%0ASet-Cookie:%20evil=1');
      assert.equal(injection.headers['set-cookie'], undefined, 'no header smuggled in');
      const bad = await ask(server, '/redirect-bad-status');
      assert.equal(bad.status, 500, 'a non-3xx redirect status is a programming error');
    });
  });

  test('req.id: unique per request, stable within one', async () => {
    await withServer(app, {}, async (server) => {
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const [first, second] = (await ask(server, '/ids')).body.toString().split(' ');
        assert.equal(first, second, 'the same id twice in one request');
        assert.match(first!, new RegExp(`^${process.pid.toString(36)}-[0-9a-z]+-[0-9a-z]+$`));
        ids.add(first!);
      }
      assert.equal(ids.size, 5, 'five requests, five ids');
    });
  });
});

describe('error pages', () => {
  const app: Handler = async (req) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/client') throw new NodefpmError('NODEFPM_BODY_MALFORMED', 'request body is not valid JSON: Unexpected token');
    if (url.pathname === '/teapot') throw Object.assign(new Error('exposed 4xx'), { status: 418, expose: true });
    if (url.pathname === '/hidden4xx') throw Object.assign(new Error('internal detail'), { status: 409 });
    throw new Error('secret-marker in the stack', { cause: new Error('the cause-marker') });
  };

  test('production: status, reason and request id; no message or stack; FCGI_STDERR has them, every line prefixed', async () => {
    await withServer(app, {}, async (server) => {
      const answer = await ask(server, '/boom');
      assert.equal(answer.status, 500);
      assert.equal(answer.appStatus, 1);
      assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(answer.headers['cache-control'], 'no-store');
      const body = answer.body.toString();
      const id = /^Request id: (\S+)$/m.exec(body)?.[1];
      assert.ok(id !== undefined, `the page names the request id: ${body}`);
      assert.equal(body, `500 Internal Server Error\nRequest id: ${id}\n`);
      const prefix = `nodefpm[${process.pid}] request ${id}: `;
      const lines = answer.stderr.trimEnd().split('\n');
      assert.ok(lines.length > 2, `a few lines of stderr: ${answer.stderr}`);
      for (const line of lines) assert.ok(line.startsWith(prefix), `every stderr line starts with "${prefix}": ${line}`);
      assert.equal(lines[0], `${prefix}GET /boom failed with 500: Error: secret-marker in the stack`);
      assert.ok(answer.stderr.includes('Caused by: Error: the cause-marker'), 'the cause goes to stderr too');
      const entry = await server.logs.waitFor('handler failed: GET /boom');
      assert.equal(entry.fields?.requestId, id, 'the log line has the same request id');
    });
  });

  test('production: HTML for browsers, JSON for API clients', async () => {
    await withServer(app, {}, async (server) => {
      const html = await ask(server, '/boom', { HTTP_ACCEPT: 'text/html,application/xhtml+xml,*/*;q=0.8' });
      assert.equal(html.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(html.body.toString(), /<h1>500 Internal Server Error<\/h1>/);
      assert.match(html.body.toString(), /Request id: <code>[^<]+<\/code>/);
      assert.ok(!html.body.toString().includes('secret-marker'), 'no details in production');
      const json = await ask(server, '/boom', { HTTP_ACCEPT: 'application/json' });
      assert.equal(json.headers['content-type'], 'application/json; charset=utf-8');
      const parsed = JSON.parse(json.body.toString()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(parsed), ['status', 'error', 'requestId']);
    });
  });

  test('development: message, stack and cause on the page', async () => {
    await withServer(app, { development: true }, async (server) => {
      const text = await ask(server, '/boom');
      const body = text.body.toString();
      assert.match(body, /^500 Internal Server Error\nsecret-marker in the stack\nRequest id: \S+\n\nError: secret-marker in the stack\n {4}at /);
      assert.ok(body.includes('Caused by: Error: the cause-marker'), 'the cause');
      const html = await ask(server, '/boom', { HTTP_ACCEPT: 'text/html' });
      assert.match(html.body.toString(), /<pre>Error: secret-marker in the stack\n {4}at /);
    });
  });

  test('4xx from NodefpmErrors keep their message; other 4xx only when they say expose; none goes to FCGI_STDERR', async () => {
    await withServer(app, {}, async (server) => {
      const client = await ask(server, '/client');
      assert.equal(client.status, 400);
      assert.equal(client.appStatus, 0);
      assert.match(client.body.toString(), /^400 Bad Request\nrequest body is not valid JSON: Unexpected token\nRequest id: /);
      assert.equal(client.stderr, '');
      const teapot = await ask(server, '/teapot');
      assert.equal(teapot.status, 418);
      assert.match(teapot.body.toString(), /\nexposed 4xx\n/);
      const hidden = await ask(server, '/hidden4xx');
      assert.equal(hidden.status, 409);
      assert.ok(!hidden.body.toString().includes('internal detail'), 'not exposed');
    });
  });
});

describe('sendFile through the server', () => {
  let dir: { path: string; remove(): void };
  const mtime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
  const content = '0123456789abcdefghij'; // 20 bytes

  before(() => {
    dir = tempDir('nodefpm-sendfile-int-');
    writeFileSync(join(dir.path, 'file.txt'), content);
    utimesSync(join(dir.path, 'file.txt'), mtime, mtime);
    writeFileSync(join(dir.path, '.env'), 'SECRET=1');
  });
  after(() => dir.remove());

  const app = (): Handler => (req, res) => res.sendFile(req.path, { root: dir.path });

  test('200, HEAD, 206, 304, 412, 416 as CGI heads', async () => {
    await withServer(app(), {}, async (server) => {
      const full = await ask(server, '/file.txt');
      assert.equal(full.statusLine, 'Status: 200 OK');
      assert.deepEqual(full.lines, [
        'Content-Type: text/plain; charset=utf-8',
        'Cache-Control: no-cache',
        `ETag: W/"14-${mtime.getTime().toString(16)}"`,
        'Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT',
        'Accept-Ranges: bytes',
        'Content-Length: 20',
      ]);
      assert.equal(full.body.toString(), content);
      const etag = full.headers.etag!;

      const head = await ask(server, '/file.txt', {}, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '20');
      assert.equal(head.body.length, 0);

      const partial = await ask(server, '/file.txt', { HTTP_RANGE: 'bytes=5-9' });
      assert.equal(partial.statusLine, 'Status: 206 Partial Content');
      assert.equal(partial.headers['content-range'], 'bytes 5-9/20');
      assert.equal(partial.headers['content-length'], '5');
      assert.equal(partial.body.toString(), '56789');

      const cached = await ask(server, '/file.txt', { HTTP_IF_NONE_MATCH: etag });
      assert.equal(cached.statusLine, 'Status: 304 Not Modified');
      assert.equal(cached.body.length, 0);
      assert.equal(cached.headers['content-length'], undefined);
      assert.equal((await ask(server, '/file.txt', { HTTP_IF_MODIFIED_SINCE: 'Tue, 02 Jan 2024 03:04:05 GMT' })).status, 304);

      const failed = await ask(server, '/file.txt', { HTTP_IF_UNMODIFIED_SINCE: 'Mon, 01 Jan 2024 00:00:00 GMT' });
      assert.equal(failed.statusLine, 'Status: 412 Precondition Failed');
      assert.equal((await ask(server, '/file.txt', { HTTP_IF_MATCH: '"nope"' })).status, 412);

      const unsatisfiable = await ask(server, '/file.txt', { HTTP_RANGE: 'bytes=20-' });
      assert.equal(unsatisfiable.statusLine, 'Status: 416 Range Not Satisfiable');
      assert.equal(unsatisfiable.headers['content-range'], 'bytes */20');
    });
  });

  test('refused and missing paths: a 404 page that does not tell them apart; the reason is logged', async () => {
    await withServer(app(), {}, async (server) => {
      const missing = await ask(server, '/nope.txt');
      const traversal = await ask(server, '/%2e%2e/%2e%2e/etc/passwd');
      const dotfile = await ask(server, '/.env');
      for (const answer of [missing, traversal, dotfile]) {
        assert.equal(answer.status, 404);
        assert.match(answer.body.toString(), /^404 Not Found\nnot found: \S+\nRequest id: /);
        assert.ok(!/refused|climbs|dotfile/.test(answer.body.toString()), `the page does not say why: ${answer.body.toString()}`);
      }
      const refusal = await server.logs.waitFor(/request refused with 404: GET \/%2e%2e/);
      assert.equal(refusal.fields?.code, 'NODEFPM_PATH_REFUSED');
      assert.match(String(refusal.fields?.reason), /climbs out of the root/);
      const dot = await server.logs.waitFor(/request refused with 404: GET \/\.env/);
      assert.match(String(dot.fields?.reason), /dotfile/);
      const gone = await server.logs.waitFor(/request refused with 404: GET \/nope\.txt/);
      assert.equal(gone.fields?.code, 'NODEFPM_FILE_NOT_FOUND');
    });
  });

  test('handler-wide sendFile defaults apply, and per-call options override them', async () => {
    await withServer(
      (req, res) => res.sendFile(req.path, req.url.includes('?override') ? { mode: 'stream' } : {}),
      { sendFile: { root: '/', mode: 'x-sendfile', cacheControl: 'private' } },
      async (server) => {
        const answer = await ask(server, `${dir.path}/file.txt`);
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['x-sendfile'], realpathSync(join(dir.path, 'file.txt')));
        assert.equal(answer.headers['cache-control'], 'private');
        assert.equal(answer.headers['content-length'], undefined, 'the web server sets the length');
        assert.equal(answer.body.length, 0);
        const streamed = await ask(server, `${dir.path}/file.txt?override`);
        assert.equal(streamed.body.toString(), content, 'a per-call mode overrides the default');
        assert.equal(streamed.headers['cache-control'], 'private', 'the other defaults still apply');
      },
    );
  });
});

describe('sendFile: 100 MB streamed with backpressure and bounded memory', () => {
  const SIZE = 100 * MiB;
  let dir: { path: string; remove(): void };
  let expected = '';

  before(() => {
    dir = tempDir('nodefpm-sendfile-big-');
    // Written in blocks, so the test itself never holds the file.
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
    const hash = createHash('sha256');
    const fd = openSync(join(dir.path, 'big.bin'), 'w');
    for (let i = 0; i < SIZE / MiB; i++) {
      block.writeUInt32BE(i, 0); // each block differs, so a repeated or skipped block changes the hash
      writeSync(fd, block);
      hash.update(block);
    }
    closeSync(fd);
    expected = hash.digest('hex');
  });
  after(() => dir.remove());

  test('a reader that pauses holds the server back (write() / drain), and every byte arrives intact', { timeout: 120_000 }, async (t) => {
    let written = 0;
    const app = await startServer(async (req, res) => {
      const write = res.write.bind(res);
      res.write = (chunk: string | Uint8Array, encoding?: BufferEncoding): boolean => {
        written += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        return write(chunk, encoding);
      };
      await res.sendFile(req.path, { root: dir.path });
    });
    const client = new FcgiClient({ address: app.address });
    try {
      const response = await client.request({ params: requestParams('GET', '/big.bin') });
      assert.equal(response.status, 200);
      assert.equal(response.headers['content-length'], String(SIZE));
      const hash = createHash('sha256');
      let received = 0;
      const body = response.body;
      // Read 8 MiB, then stop reading for a while: the server must stall, not read the file into memory.
      let paused: () => void = () => {};
      let pausedYet = false;
      const pausedOnce = new Promise<void>((resolve) => {
        paused = resolve;
      });
      const ended = new Promise<void>((resolve, reject) => {
        body.once('end', resolve);
        body.once('error', reject);
      });
      body.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        if (received >= 8 * MiB && !pausedYet) {
          pausedYet = true;
          body.pause();
          paused();
        }
      });
      await pausedOnce;
      await sleep(300);
      const stalledAt = written;
      await sleep(500);
      t.diagnostic(`paused at ${(received / MiB).toFixed(1)} MiB received; server had written ${(written / MiB).toFixed(1)} MiB`);
      assert.equal(written, stalledAt, 'the server writes nothing more while the reader is paused');
      assert.ok(written - received < 16 * MiB, `the server ran at most a few MiB ahead (${((written - received) / MiB).toFixed(1)} MiB)`);
      assert.ok(written < SIZE, 'the server did not write the whole file into its buffers');
      body.resume();
      await ended;
      await response.ended;
      assert.equal(received, SIZE, 'every byte arrived');
      assert.equal(hash.digest('hex'), expected, 'in order and intact');
    } finally {
      await client.close();
      await app.close();
    }
  });

  test('the server process grows by well under the file size (RSS, measured in a child process)', { timeout: 120_000 }, async (t) => {
    const socketDir = tempDir('nodefpm-sendfile-mem-');
    const address = `unix:${join(socketDir.path, 'app.sock')}`;
    const fixture = fileURLToPath(new URL('./fixtures/send-file-server.ts', import.meta.url));
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fixture, address, dir.path], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const inbox: SendFileChildMessage[] = [];
    child.on('message', (message: SendFileChildMessage) => inbox.push(message));
    const next = async <T extends SendFileChildMessage['type']>(type: T): Promise<Extract<SendFileChildMessage, { type: T }>> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const index = inbox.findIndex((message) => message.type === type);
        if (index !== -1) return inbox.splice(index, 1)[0] as Extract<SendFileChildMessage, { type: T }>;
        assert.ok(child.exitCode === null, `the server process exited (${String(child.exitCode)})`);
        assert.ok(Date.now() < deadline, `no ${type} message from the server process`);
        await sleep(10);
      }
    };
    const client = new FcgiClient({ address });
    try {
      await next('ready');
      const download = async (): Promise<string> => {
        const response = await client.request({ params: requestParams('GET', '/big.bin') });
        const hash = createHash('sha256');
        let count = 0;
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          hash.update(chunk);
          // A slow patch now and then, so the server meets a full socket many times.
          if (++count % 256 === 0) await sleep(20);
        }
        await response.ended;
        return hash.digest('hex');
      };
      assert.equal(await download(), expected, 'warm-up download intact');
      child.send({ type: 'mark' });
      const { rss: baseline } = await next('marked');
      assert.equal(await download(), expected, 'measured download intact');
      child.send({ type: 'figures' });
      const { peak } = await next('figures');
      const growth = peak - baseline;
      t.diagnostic(`server RSS ${(baseline / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB: growth ${(growth / MiB).toFixed(1)} MiB for a 100 MiB file`);
      assert.ok(growth < 48 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB, more than 48 MiB for a 100 MiB file`);
    } finally {
      await client.close();
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = once(child, 'exit');
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
      socketDir.remove();
    }
  });
});
