// res.sendFile behind real web servers: nginx follows X-Accel-Redirect (with Range), lighttpd serves X-Sendfile, and nodefpm's own Range/conditionals pass through nginx.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { createServer, type FcgiServer, type Handler, type SendFileOptions } from '../../src/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import { captureLogger, type CaptureLogger } from '../helpers/log-capture.js';
import { startWebServer, type WebServer } from './harness.js';
import { lighttpd } from './lighttpd-server.js';
import { nginx } from './nginx-server.js';

const TIMEOUT = 120_000;
const MiB = 1024 * 1024;
/** A file of random bytes, big enough that it takes many writes and socket round trips. */
const BIG = randomBytes(4 * MiB + 123);
const UNICODE_NAME = 'space name ü.txt';
const UNICODE_CONTENT = 'a file with a space and a non-ASCII letter in its name\n';

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on its own connection (agent: false), so one test's keep-alive cannot hide another's failure. */
function get(origin: string, path: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${origin}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(TIMEOUT, () => req.destroy(new Error(`no answer to ${method} ${path} within ${TIMEOUT} ms`)));
    req.end();
  });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes the test files into `root`. */
function writeFiles(root: string): void {
  writeFileSync(join(root, 'big.bin'), BIG);
  writeFileSync(join(root, UNICODE_NAME), UNICODE_CONTENT);
  writeFileSync(join(root, 'page.html'), '<p>from a file</p>\n');
  writeFileSync(join(root, '.hidden'), 'must not be served\n');
  // lighttpd percent-decodes X-Sendfile: were this name sent as is, it would serve 100A.txt.
  writeFileSync(join(root, '100%41.txt'), 'the file with a percent sign\n');
  writeFileSync(join(root, '100A.txt'), 'the wrong file\n');
}

/** nodefpm plus one web server in front of it, with the web server's and nodefpm's logs for assertion messages. */
interface Setup {
  server: FcgiServer;
  logs: CaptureLogger;
  web: WebServer;
  /** The folder sendFile serves. */
  root: string;
  context(): string;
  teardown(): Promise<void>;
}

/**
 * Routes on the first path segment: /stream/REST and /MODE/REST send REST from the root with that mode.
 * `root()` is read per request because the web server's folder (nginx's internal location) exists only
 * once it runs.
 */
function app(root: () => string, modeOptions: Record<string, SendFileOptions>): Handler {
  return async (req, res) => {
    const match = /^\/([^/]+)\/(.*)$/.exec(req.path);
    const options = match === null ? undefined : modeOptions[match[1]!];
    if (match === null || options === undefined) {
      res.text('no such route\n', 404);
      return;
    }
    await res.sendFile(match[2]!, { root: root(), ...options });
  };
}

async function setUp(
  makeWeb: (upstream: string) => Parameters<typeof startWebServer>[0],
  rootIn: (web: WebServer) => string,
  modes: Record<string, SendFileOptions>,
): Promise<Setup> {
  const logs = captureLogger();
  let root = '';
  const server = createServer(app(() => root, modes), { logger: logs });
  const socketDir = mkdtempSync(join(tmpdir(), 'nodefpm-sock-'));
  let web: WebServer | null = null;
  const teardown = async (): Promise<void> => {
    try {
      await web?.stop();
    } finally {
      await server.close({ timeout: 5000 });
      rmSync(socketDir, { recursive: true, force: true });
    }
  };
  try {
    const upstream = formatListenAddress(await server.listen(`unix:${join(socketDir, 'app.sock')}`));
    web = await startWebServer(makeWeb(upstream));
    root = rootIn(web);
    writeFiles(root);
    const started = web;
    return {
      server,
      logs,
      web: started,
      root,
      context: () => {
        const problems = logs.entries.filter((entry) => entry.level === 'error' || entry.level === 'warn');
        const ours = problems.map((entry) => `[${entry.level}] ${entry.message} ${inspect(entry.fields, { breakLength: Infinity })}`);
        return `\n${started.describe()}${ours.length > 0 ? `\n--- nodefpm warnings/errors ---\n${ours.join('\n')}` : ''}`;
      },
      teardown,
    };
  } catch (error) {
    await teardown();
    throw error;
  }
}

/**
 * Traversal attempts through the web server. Those that climb above "/" nginx itself answers 400; those
 * that stay under "/" in the web server's view (it normalises the path, then routes it to the app) but
 * climb out of sendFile's root arrive in REQUEST_URI as sent, and nodefpm must refuse them (404). The
 * root is the web server's folder's static/ (nginx) or a temp folder: one level up there is a file.
 */
async function refuses(s: Setup, eq: (actual: unknown, expected: unknown, what: string) => void, route: string): Promise<void> {
  const attempts = [
    `/${route}/..%2fnginx.conf`, // nginx: /route/../nginx.conf -> /nginx.conf, still "/", passed on
    `/${route}/%2e%2e/nginx.conf`,
    `/${route}/%2e%2e%2fnginx.conf`,
    `/${route}/..%2f..%2f..%2fetc%2fpasswd`,
    `/${route}/.hidden`,
    `/${route}/big.bin%00.txt`,
    `/${route}/%252e%252e/nginx.conf`,
  ];
  const before = s.logs.find('request refused with 404').length;
  for (const path of attempts) {
    const result = await get(s.web.origin, path);
    assert.ok(result.status === 404 || result.status === 400, `${path}: refused with 404 (nodefpm) or 400 (the web server), got ${result.status}${s.context()}`);
    eq(/daemon off|root:|must not be served|server\.modules/.test(result.body.toString()), false, `${path}: no file content`);
  }
  const refusals = s.logs.find('request refused with 404').slice(before);
  const codes = new Set(refusals.map((entry) => entry.fields?.code));
  assert.ok(codes.has('NODEFPM_PATH_REFUSED'), `some attempts reached nodefpm and were refused, with the reason logged${s.context()}`);
}

describe('nginx: X-Accel-Redirect, and Range and conditionals in stream mode', { timeout: 10 * TIMEOUT }, () => {
  let setup: Setup | null = null;
  const ready = (): Setup => {
    assert.ok(setup !== null, 'nginx and nodefpm did not start (see the before hook error)');
    return setup;
  };
  /** assert.deepEqual with nginx's logs in the message. */
  const eq = (actual: unknown, expected: unknown, what: string): void => {
    assert.deepEqual(actual, expected, `${what}: expected ${inspect(expected)}, got ${inspect(actual)}${ready().context()}`);
  };

  before(async () => {
    // The reference config's `location /internal/ { internal; alias DIR/static/; }` is the internal location.
    setup = await setUp(
      (upstream) => nginx({ upstream, keepConn: false }),
      (web) => join(web.dir, 'static'),
      { accel: { mode: 'x-accel-redirect', internalLocation: '/internal/' }, stream: { mode: 'stream' } },
    );
  }, { timeout: TIMEOUT });

  after(async () => {
    await setup?.teardown();
  }, { timeout: TIMEOUT });

  test('X-Accel-Redirect: nginx sends the file; the app sent only headers', { timeout: TIMEOUT }, async (t) => {
    const s = ready();
    const result = await get(s.web.origin, '/accel/big.bin');
    eq(result.status, 200, 'status');
    eq(result.body.length, BIG.length, 'length');
    eq(sha256(result.body), sha256(BIG), 'content');
    eq(result.headers['content-length'], String(BIG.length), 'Content-Length from nginx');
    eq(result.headers['x-accel-redirect'], undefined, 'nginx does not pass X-Accel-Redirect on');
    eq(result.headers['content-type'], 'application/octet-stream', "the app's Content-Type");
    t.diagnostic(`headers nginx sent: ${JSON.stringify(result.headers)}`);
  });

  test('X-Accel-Redirect: a name with a space and a non-ASCII letter (percent-encoded in the header, decoded by nginx)', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const result = await get(s.web.origin, `/accel/${encodeURIComponent(UNICODE_NAME)}`);
    eq(result.status, 200, 'status');
    eq(result.body.toString('utf8'), UNICODE_CONTENT, 'content');
    eq(result.headers['content-type'], 'text/plain; charset=utf-8', "the app's Content-Type is kept by nginx");
  });

  test("X-Accel-Redirect: a name with '%' is sent as %25 and nginx serves the right file", { timeout: TIMEOUT }, async () => {
    const s = ready();
    const result = await get(s.web.origin, '/accel/100%2541.txt');
    eq(result.status, 200, 'status');
    eq(result.body.toString(), 'the file with a percent sign\n', 'content');
  });

  test('X-Accel-Redirect with Range: nginx answers 206 from the file', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const result = await get(s.web.origin, '/accel/big.bin', { Range: 'bytes=1000-1999' });
    eq(result.status, 206, 'status');
    eq(result.headers['content-range'], `bytes 1000-1999/${BIG.length}`, 'Content-Range');
    eq(sha256(result.body), sha256(BIG.subarray(1000, 2000)), 'the range');
  });

  test('X-Accel-Redirect: traversal and dotfiles are refused by nodefpm before nginx is asked', { timeout: TIMEOUT }, async () => {
    const s = ready();
    await refuses(s, eq, 'accel');
  });

  test('stream mode through nginx: the whole file, 206 for a Range, 416, 304 and HEAD', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const full = await get(s.web.origin, '/stream/big.bin');
    eq(full.status, 200, 'status');
    eq(sha256(full.body), sha256(BIG), 'content');
    eq(full.headers['accept-ranges'], 'bytes', 'Accept-Ranges');
    const etag = full.headers.etag;
    assert.ok(etag !== undefined && etag.startsWith('W/"'), `a weak ETag passed through: ${String(etag)}${s.context()}`);

    const range = await get(s.web.origin, '/stream/big.bin', { Range: 'bytes=-100' });
    eq(range.status, 206, 'Range status');
    eq(range.headers['content-range'], `bytes ${BIG.length - 100}-${BIG.length - 1}/${BIG.length}`, 'Content-Range');
    eq(sha256(range.body), sha256(BIG.subarray(BIG.length - 100)), 'the last 100 bytes');

    const middle = await get(s.web.origin, '/stream/big.bin', { Range: `bytes=${MiB}-${2 * MiB - 1}` });
    eq(middle.status, 206, 'a 1 MiB range');
    eq(sha256(middle.body), sha256(BIG.subarray(MiB, 2 * MiB)), 'the middle MiB');

    const unsatisfiable = await get(s.web.origin, '/stream/big.bin', { Range: `bytes=${BIG.length}-` });
    eq(unsatisfiable.status, 416, '416 status');
    eq(unsatisfiable.headers['content-range'], `bytes */${BIG.length}`, '416 Content-Range');

    const notModified = await get(s.web.origin, '/stream/big.bin', { 'If-None-Match': etag });
    eq(notModified.status, 304, 'If-None-Match');
    eq(notModified.body.length, 0, '304 body');
    const since = await get(s.web.origin, '/stream/big.bin', { 'If-Modified-Since': full.headers['last-modified'] });
    eq(since.status, 304, 'If-Modified-Since');

    const head = await get(s.web.origin, '/stream/big.bin', {}, 'HEAD');
    eq(head.status, 200, 'HEAD status');
    eq(head.headers['content-length'], String(BIG.length), 'HEAD Content-Length');
  });

  test('stream mode through nginx: encoded traversal in the URL is refused', { timeout: TIMEOUT }, async () => {
    const s = ready();
    await refuses(s, eq, 'stream');
  });

  test('nothing went wrong on either side: no nginx errors, no nodefpm errors', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const errors = s.web
      .errorLog()
      .split('\n')
      .filter((line) => /\[(error|crit|alert|emerg)\]/.test(line));
    eq(errors, [], 'nginx error log lines');
    eq(s.logs.entries.filter((entry) => entry.level === 'error').map((entry) => entry.message), [], 'nodefpm errors');
  });
});

describe('lighttpd: X-Sendfile', { timeout: 10 * TIMEOUT }, () => {
  let setup: Setup | null = null;
  let rootDir = '';
  const ready = (): Setup => {
    assert.ok(setup !== null, 'lighttpd and nodefpm did not start (see the before hook error)');
    return setup;
  };
  const eq = (actual: unknown, expected: unknown, what: string): void => {
    assert.deepEqual(actual, expected, `${what}: expected ${inspect(expected)}, got ${inspect(actual)}${ready().context()}`);
  };

  before(async () => {
    // lighttpd runs as root in these tests (no server.username), so it can read a 0700 temp folder.
    rootDir = mkdtempSync(join(tmpdir(), 'nodefpm-xsendfile-'));
    setup = await setUp(
      (upstream) => lighttpd({ mounts: [{ prefix: '/', upstream, extra: { 'allow-x-send-file': true } }] }),
      () => rootDir,
      { sendfile: { mode: 'x-sendfile' }, stream: { mode: 'stream' } },
    );
  }, { timeout: TIMEOUT });

  after(async () => {
    await setup?.teardown();
    rmSync(rootDir, { recursive: true, force: true });
  }, { timeout: TIMEOUT });

  test('X-Sendfile: lighttpd sends the file; the header does not reach the client', { timeout: TIMEOUT }, async (t) => {
    const s = ready();
    const result = await get(s.web.origin, '/sendfile/big.bin');
    eq(result.status, 200, 'status');
    eq(result.body.length, BIG.length, 'length');
    eq(sha256(result.body), sha256(BIG), 'content');
    eq(result.headers['x-sendfile'], undefined, 'X-Sendfile is consumed by lighttpd');
    eq(result.headers['content-length'], String(BIG.length), 'Content-Length from lighttpd');
    eq(result.headers['content-type'], 'application/octet-stream', "the app's Content-Type");
    t.diagnostic(`headers lighttpd sent: ${JSON.stringify(result.headers)}`);
  });

  test('X-Sendfile: a name with a space and a non-ASCII letter', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const result = await get(s.web.origin, `/sendfile/${encodeURIComponent(UNICODE_NAME)}`);
    eq(result.status, 200, 'status');
    eq(result.body.toString('utf8'), UNICODE_CONTENT, 'content');
  });

  test("X-Sendfile: a name with '%' is the right file (nodefpm streams it, since lighttpd would decode it)", { timeout: TIMEOUT }, async () => {
    const s = ready();
    const result = await get(s.web.origin, '/sendfile/100%2541.txt');
    eq(result.status, 200, 'status');
    eq(result.body.toString(), 'the file with a percent sign\n', 'content');
  });

  test('X-Sendfile: the plain name next to it is still its own file', { timeout: TIMEOUT }, async () => {
    const s = ready();
    eq((await get(s.web.origin, '/sendfile/100A.txt')).body.toString(), 'the wrong file\n', 'the other file is still reachable by its own name');
  });

  test('X-Sendfile with Range: lighttpd answers 206 from the file', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const result = await get(s.web.origin, '/sendfile/big.bin', { Range: 'bytes=0-99' });
    eq(result.status, 206, 'status');
    eq(sha256(result.body), sha256(BIG.subarray(0, 100)), 'the range');
  });

  test('X-Sendfile: traversal refused by nodefpm', { timeout: TIMEOUT }, async () => {
    const s = ready();
    await refuses(s, eq, 'sendfile');
  });

  test('stream mode through lighttpd, with a Range', { timeout: TIMEOUT }, async () => {
    const s = ready();
    const full = await get(s.web.origin, '/stream/big.bin');
    eq(sha256(full.body), sha256(BIG), 'content');
    const range = await get(s.web.origin, '/stream/big.bin', { Range: 'bytes=10-19' });
    eq(range.status, 206, 'Range status');
    eq(range.body, BIG.subarray(10, 20), 'the range');
  });
});
