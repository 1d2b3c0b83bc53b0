// The built-in HTTP front in front of Debian's php-fpm 8.2 (script mode): $_SERVER, bodies, forms, headers, cookies, big responses, STDERR, files, keep-alive, aborts, and php-fpm's own FastCGI quirks.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { FcgiClient } from '../../src/client/index.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway/index.js';
import { RecordParser, encodeRecord } from '../../src/protocol/index.js';
import { captureLogger, type CaptureLogger } from '../helpers/log-capture.js';
import { startPhpFpm, type PhpFpm } from './php-fpm-server.js';
import { request, write } from '../helpers/http-request.js';

const MiB = 1024 * 1024;
const TIMEOUT = 120_000;

/** The PHP scripts, written into php-fpm's document root. */
const SCRIPTS: Record<string, string> = {
  'server.php': `<?php
header('Content-Type: application/json');
$keys = ['REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'QUERY_STRING', 'HTTPS', 'PHP_SELF',
  'DOCUMENT_ROOT', 'DOCUMENT_URI', 'HTTP_HOST', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_SOFTWARE', 'REMOTE_ADDR', 'CONTENT_LENGTH',
  'CONTENT_TYPE', 'GATEWAY_INTERFACE', 'REDIRECT_STATUS', 'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'HTTP_X_MULTI', 'HTTP_COOKIE',
  'HTTP_PROXY', 'HTTP_TRANSFER_ENCODING'];
$out = [];
foreach ($keys as $key) { $out[$key] = $_SERVER[$key] ?? null; }
echo json_encode(['server' => $out, 'get' => $_GET, 'cookie' => $_COOKIE, 'proxyEnv' => getenv('HTTP_PROXY')], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
`,
  'input.php': `<?php
$body = file_get_contents('php://input');
header('Content-Type: application/json');
echo json_encode(['length' => strlen($body), 'sha256' => hash('sha256', $body), 'contentLength' => $_SERVER['CONTENT_LENGTH'] ?? null]);
`,
  'form.php': `<?php
header('Content-Type: application/json');
$files = [];
foreach ($_FILES as $field => $file) { $files[$field] = ['name' => $file['name'], 'size' => $file['size'], 'sha256' => hash_file('sha256', $file['tmp_name'])]; }
echo json_encode(['post' => $_POST, 'files' => $files], JSON_UNESCAPED_UNICODE);
`,
  'headers.php': `<?php
http_response_code(404);
header('X-Custom: yes');
header('X-Multi: a');
header('X-Multi: b', false);
header('Content-Type: text/plain');
echo "not here\\n";
`,
  'reason.php': `<?php
header('HTTP/1.1 299 Fine Thanks');
echo "ok\\n";
`,
  'redirect.php': `<?php
header('Location: /target.php?from=redirect');
`,
  'cookies.php': `<?php
setcookie('first', 'one');
setcookie('second', 'two', ['httponly' => true, 'path' => '/app']);
echo "cookies\\n";
`,
  'large.php': `<?php
header('Content-Type: application/octet-stream');
$block = str_repeat('0123456789abcdef', 4096);
$blocks = (int) ($_GET['blocks'] ?? 16);
for ($i = 0; $i < $blocks; $i++) { echo $block; }
`,
  'errors.php': `<?php
error_log('php-error-marker ' . ($_GET['id'] ?? ''));
trigger_error('php-warning-marker', E_USER_WARNING);
echo "logged\\n";
`,
  'sleep.php': `<?php
sleep((int) ($_GET['s'] ?? 2));
file_put_contents(__DIR__ . '/../done-' . basename($_GET['id'] ?? 'x'), 'done');
echo "slept\\n";
`,
  'pause.php': `<?php
usleep(300000);
echo 'input ' . strlen(file_get_contents('php://input')) . ' bytes';
`,
  'index.php': `<?php
header('Content-Type: application/json');
echo json_encode(['front' => true, 'uri' => $_SERVER['REQUEST_URI'], 'script' => $_SERVER['SCRIPT_NAME'], 'pathInfo' => $_SERVER['PATH_INFO'] ?? null, 'get' => $_GET]);
`,
  'café.php': `<?php
echo $_SERVER['SCRIPT_NAME'];
`,
  'static.txt': 'a static file served by the front\n',
};

/** The 64 KiB block large.php repeats. */
const BLOCK = Buffer.from('0123456789abcdef'.repeat(4096));

/** A self-signed certificate for 127.0.0.1 (EC P-256, valid until 2126), for the HTTPS request only. */
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/DrdFpMOySxAia4b
hJ/wU6pf4O9maqEB1V/miRbTxjShRANCAARe0ncEip/ueqA0dNL6xigP6rIzeFqS
OgjJZUxJzX3wAXjxQflI4R/3/ObepE8OOho96GXdSiO4WgjbkfO3tHX7
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUTpHq+ls9uFa81Tg7pY4UQQfVLYAwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMzIxNDYyM1oYDzIxMjYxMDMw
MjE0NjIzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARe0ncEip/ueqA0dNL6xigP6rIzeFqSOgjJZUxJzX3wAXjxQflI4R/3
/ObepE8OOho96GXdSiO4WgjbkfO3tHX7o28wbTAdBgNVHQ4EFgQU5/AbuKu950Tg
YZITAkLz3q0CZ8kwHwYDVR0jBBgwFoAU5/AbuKu950TgYZITAkLz3q0CZ8kwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIhAMG3nq7TFiEXrwgyxzvOVkDyFTioZe2R5dSZbaYSmDeNAiBJ
8CX4nwzQZd51bRylP3LHPMVzwtbXGx75idw0zxEqpQ==
-----END CERTIFICATE-----
`;

// ---- HTTP helpers ----

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function eventually(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

interface ServerDump {
  server: Record<string, string | null>;
  get: Record<string, string>;
  cookie: Record<string, string>;
  proxyEnv: string | false;
}

// ---- the suite: one php-fpm, a gateway in script mode in front of it ----

describe('the HTTP front in front of php-fpm 8.2 (script mode)', { timeout: 20 * TIMEOUT }, () => {
  let php: PhpFpm | null = null;
  let gateway: Gateway | null = null;
  let logs: CaptureLogger = captureLogger();
  let origin = '';

  const ready = (): { php: PhpFpm; gateway: Gateway; origin: string } => {
    assert.ok(php !== null && gateway !== null, 'php-fpm and the gateway did not start (see the before hook error)');
    return { php, gateway, origin };
  };
  /** php-fpm's output and the gateway's log, for assertion messages. */
  const context = (): string =>
    `\n${php?.describe() ?? '(php-fpm not started)'}\n--- gateway log ---\n${logs.entries
      .map((entry) => `[${entry.level}] ${entry.message} ${inspect(entry.fields, { breakLength: Infinity })}`)
      .join('\n')}`;

  /**
   * Runs `body` with another gateway on the same php-fpm, with other options, and closes it after:
   * each kept FastCGI connection holds a php-fpm child (pm.max_children = 2) until it is closed, so
   * an idle gateway left open would starve the others for its client's idleTimeout.
   */
  async function withOtherGateway(options: Partial<GatewayOptions>, body: (other: { gateway: Gateway; origin: string }) => Promise<void>): Promise<void> {
    const { php: running } = ready();
    const made = createGateway({ upstream: running.address, documentRoot: running.documentRoot, script: true, logger: logs, client: { maxConnections: 1 }, ...options });
    try {
      const { url } = await made.listen('127.0.0.1:0');
      assert.ok(url !== null, 'a URL');
      await body({ gateway: made, origin: url });
    } finally {
      await made.close({ timeout: 2000 });
    }
  }

  before(async () => {
    php = await startPhpFpm(SCRIPTS);
    logs = captureLogger();
    // One FastCGI connection: a php-fpm child serves one kept connection until it closes, and the other
    // child is left for the gateways some tests add (pm.max_children = 2).
    gateway = createGateway({ upstream: php.address, documentRoot: php.documentRoot, script: { frontController: '/index.php' }, logger: logs, client: { maxConnections: 1 } });
    const { url } = await gateway.listen('127.0.0.1:0');
    assert.ok(url !== null, 'a URL');
    origin = url;
  }, { timeout: TIMEOUT });

  after(async () => {
    await gateway?.close({ timeout: 2000 });
    await php?.stop();
  }, { timeout: TIMEOUT });

  test('GET_VALUES through the client: php-fpm answers FCGI_MPXS_CONNS=0 only; an unknown management type closes the connection', { timeout: TIMEOUT }, async (t: TestContext) => {
    const { php: running } = ready();
    const client = new FcgiClient({ address: running.address });
    try {
      const values = await client.getValues();
      assert.deepEqual(values, { FCGI_MPXS_CONNS: '0' }, `php-fpm's answer to FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS${context()}`);
      t.diagnostic(`php-fpm GET_VALUES answer: ${JSON.stringify(values)} (FCGI_MAX_CONNS and FCGI_MAX_REQS left out)`);
    } finally {
      await client.close();
    }
    // FastCGI 4.2 asks for {FCGI_UNKNOWN_TYPE}; php-fpm closes the connection instead, sending nothing.
    const socket = net.connect({ path: running.address.slice('unix:'.length) });
    await once(socket, 'connect');
    const records: number[] = [];
    const parser = new RecordParser({ onRecord: (type) => records.push(type) });
    socket.on('data', (chunk: Buffer) => parser.push(chunk));
    socket.on('error', () => {});
    socket.write(encodeRecord(20, 0));
    const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(10_000).then(() => false)]);
    socket.destroy();
    assert.equal(closed, true, 'php-fpm closed the connection after an unknown management record');
    assert.deepEqual(records, [], 'and answered nothing (no FCGI_UNKNOWN_TYPE)');
  });

  test('$_SERVER: REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, PATH_INFO, QUERY_STRING, HTTPS and the rest', { timeout: TIMEOUT }, async () => {
    const { php: running, origin: front } = ready();
    const result = await request(front, '/server.php/extra/path?x=1&y=%C3%A9', {
      headers: { 'X-Multi': ['one', 'two'], Cookie: ['a=1', 'b=2'], Proxy: 'http://evil.example:3128' },
    });
    assert.equal(result.status, 200, `${result.body.toString()}${context()}`);
    const dump = JSON.parse(result.body.toString('utf8')) as ServerDump;
    const port = new URL(front).port;
    assert.deepEqual(dump.server, {
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/server.php/extra/path?x=1&y=%C3%A9',
      SCRIPT_NAME: '/server.php',
      SCRIPT_FILENAME: `${running.documentRoot}/server.php`,
      PATH_INFO: '/extra/path',
      QUERY_STRING: 'x=1&y=%C3%A9',
      HTTPS: null,
      PHP_SELF: '/server.php/extra/path',
      DOCUMENT_ROOT: running.documentRoot,
      DOCUMENT_URI: '/server.php/extra/path',
      HTTP_HOST: `127.0.0.1:${port}`,
      SERVER_NAME: '127.0.0.1',
      SERVER_PORT: port,
      SERVER_SOFTWARE: dump.server.SERVER_SOFTWARE,
      REMOTE_ADDR: '127.0.0.1',
      CONTENT_LENGTH: '',
      CONTENT_TYPE: '',
      GATEWAY_INTERFACE: 'CGI/1.1',
      REDIRECT_STATUS: '200',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_SCHEME: 'http',
      HTTP_X_MULTI: 'one, two',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_PROXY: null,
      HTTP_TRANSFER_ENCODING: null,
    });
    assert.match(dump.server.SERVER_SOFTWARE ?? '', /^nodefpm\//);
    assert.deepEqual(dump.get, { x: '1', y: 'é' });
    assert.deepEqual(dump.cookie, { a: '1', b: '2' });
    assert.equal(dump.proxyEnv, false, 'httpoxy: no Proxy header reaches getenv("HTTP_PROXY")');

    await withOtherGateway({ tls: { key: TEST_KEY, cert: TEST_CERT } }, async (tls) => {
      const secure = await new Promise<string>((resolve, reject) => {
        https
          .get(new URL('/server.php', tls.origin), { rejectUnauthorized: false }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => resolve(text));
          })
          .on('error', reject);
      });
      const secureDump = JSON.parse(secure) as ServerDump;
      assert.equal(secureDump.server.HTTPS, 'on', 'HTTPS is on over TLS');
      assert.equal(secureDump.server.REQUEST_SCHEME, 'https');
      assert.equal(secureDump.server.PATH_INFO, '', 'no path info: PATH_INFO is empty, as Debian fastcgi-php.conf sends it');
    });
  });

  test('request bodies: php://input of an 8 MiB upload, a chunked upload (spooled to learn its length), $_POST and $_FILES', { timeout: TIMEOUT }, async () => {
    const { origin: front } = ready();
    const body = randomBytes(8 * MiB + 5);
    const input = await request(front, '/input.php', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });
    assert.equal(input.status, 200, `${input.body.toString()}${context()}`);
    assert.deepEqual(JSON.parse(input.body.toString()), { length: body.length, sha256: sha256(body), contentLength: String(body.length) });

    const chunkedBody = body.subarray(0, 3 * MiB + 1);
    const chunked = await request(front, '/input.php', {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      stream: async (req) => {
        for (let offset = 0; offset < chunkedBody.length; offset += 100_000) await write(req, chunkedBody.subarray(offset, offset + 100_000));
      },
    });
    assert.deepEqual(
      JSON.parse(chunked.body.toString()),
      { length: chunkedBody.length, sha256: sha256(chunkedBody), contentLength: String(chunkedBody.length) },
      'PHP reads a body only with CONTENT_LENGTH: script mode spools chunked uploads to learn it',
    );

    const form = await request(front, '/form.php', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'name=Ada+Lovelace&city=London&note=%C3%A9t%C3%A9',
    });
    assert.deepEqual(JSON.parse(form.body.toString()), { post: { name: 'Ada Lovelace', city: 'London', note: 'été' }, files: [] });

    const file = randomBytes(200_000);
    const boundary = 'nodefpm-boundary-7e3a';
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nreport\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="upload"; filename="data.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      file,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const upload = await request(front, '/form.php', { method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body: multipart });
    assert.deepEqual(JSON.parse(upload.body.toString()), { post: { title: 'report' }, files: { upload: { name: 'data.bin', size: file.length, sha256: sha256(file) } } });
  });

  test('headers(), http_response_code(404), a custom reason, Location, setcookie twice, HEAD', { timeout: TIMEOUT }, async () => {
    const { origin: front } = ready();
    const headers = await request(front, '/headers.php');
    assert.equal(headers.status, 404);
    assert.equal(headers.headers['x-custom'], 'yes');
    const multi = headers.rawHeaders.filter((_, i) => i % 2 === 1 && headers.rawHeaders[i - 1]?.toLowerCase() === 'x-multi');
    assert.deepEqual(multi, ['a', 'b'], 'a header PHP sent twice stays two headers');
    assert.match(String(headers.headers['x-powered-by']), /^PHP\/8\.2/);
    assert.equal(headers.body.toString(), 'not here\n');

    const reason = await request(front, '/reason.php');
    assert.equal(reason.status, 299);
    assert.equal(reason.statusMessage, 'Fine Thanks', "PHP's own reason phrase is kept");

    const redirect = await request(front, '/redirect.php');
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.location, '/target.php?from=redirect');

    const cookies = await request(front, '/cookies.php');
    assert.deepEqual(cookies.headers['set-cookie'], ['first=one', 'second=two; path=/app; HttpOnly']);

    const head = await request(front, '/server.php', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0, 'no body for HEAD');
  });

  test('a 64 MiB response streams through whole', { timeout: TIMEOUT }, async () => {
    const { origin: front } = ready();
    const blocks = 1024;
    const expected = createHash('sha256');
    for (let i = 0; i < blocks; i++) expected.update(BLOCK);
    const got = createHash('sha256');
    let length = 0;
    await new Promise<void>((resolve, reject) => {
      http
        .get(new URL(`/large.php?blocks=${blocks}`, front), (res) => {
          assert.equal(res.statusCode, 200);
          res.on('data', (chunk: Buffer) => {
            got.update(chunk);
            length += chunk.length;
          });
          res.on('end', resolve);
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.equal(length, blocks * BLOCK.length);
    assert.equal(got.digest('hex'), expected.digest('hex'));
  });

  test("error_log() and PHP warnings arrive on FCGI_STDERR and appear in the front's log with the request", { timeout: TIMEOUT }, async () => {
    const { origin: front } = ready();
    const result = await request(front, '/errors.php?id=4711');
    assert.equal(result.body.toString(), 'logged\n');
    const marker = await logs.waitFor('php-error-marker 4711', 10_000);
    assert.match(marker.message, /^FastCGI sent in stderr: PHP message: php-error-marker 4711/);
    assert.equal(marker.fields?.uri, '/errors.php?id=4711');
    const warning = await logs.waitFor('php-warning-marker', 10_000);
    assert.match(warning.message, /PHP Warning: {2}php-warning-marker in .*errors\.php on line 3/);
  });

  test('script mode against real files: a UTF-8 script name, a static file, the front controller, 404 for a missing script', { timeout: TIMEOUT }, async () => {
    const { origin: front } = ready();
    const cafe = await request(front, '/caf%C3%A9.php');
    assert.equal(cafe.status, 200, `${cafe.body.toString()}${context()}`);
    assert.equal(cafe.body.toString('utf8'), '/café.php');

    const file = await request(front, '/static.txt');
    assert.equal(file.body.toString(), SCRIPTS['static.txt']);
    assert.equal(file.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(file.headers['x-powered-by'], undefined, 'served by the front, not by PHP');

    const pretty = await request(front, '/blog/2024/hello?draft=1');
    assert.deepEqual(JSON.parse(pretty.body.toString()), { front: true, uri: '/blog/2024/hello?draft=1', script: '/index.php', pathInfo: '', get: { draft: '1' } });
    await withOtherGateway({}, async (noFront) => {
      const missing = await request(noFront.origin, '/missing.php');
      assert.equal(missing.status, 404, 'without a front controller a missing script is a 404 from the front');
    });
  });

  test('keep-alive: 48 requests, 8 at a time, over one kept FastCGI connection', { timeout: TIMEOUT }, async () => {
    const { gateway: front, origin: url } = ready();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      for (let round = 0; round < 6; round++) {
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => request(url, `/server.php?i=${round * 8 + i}`, { agent })));
        results.forEach((result, i) => {
          assert.equal(result.status, 200, `request ${round * 8 + i}: ${result.body.toString()}${context()}`);
          assert.equal((JSON.parse(result.body.toString()) as ServerDump).get.i, String(round * 8 + i));
        });
        assert.ok(front.stats.upstream.connections <= 1, `FastCGI connections open: ${front.stats.upstream.connections}`);
      }
    } finally {
      agent.destroy();
    }
  });

  test('a body sent with CONTENT_LENGTH="": PHP reads none of it, and a kept connection breaks under the next request unless closeAfterUnsizedBody', { timeout: TIMEOUT }, async (t: TestContext) => {
    /** A chunked POST streamed as nginx unbuffered does, then (queued behind it on the one connection) a POST with a streamed body. */
    async function sequence(origin: string): Promise<{ first: string; second: number }> {
      const first = request(origin, '/pause.php', { method: 'POST', stream: async (req) => write(req, Buffer.alloc(50_000, 0x61)) });
      await sleep(100);
      const second = request(origin, '/input.php', {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': 5 },
        stream: async (req) => write(req, Buffer.from('hello')),
      });
      return { first: (await first).body.toString(), second: (await second).status };
    }
    await withOtherGateway({ chunkedUploads: 'stream', closeAfterUnsizedBody: false }, async (kept) => {
      const { first, second } = await sequence(kept.origin);
      t.diagnostic(`chunkedUploads "stream", closeAfterUnsizedBody off: php://input held ${first}; the next request got ${second}`);
      assert.equal(first, 'input 0 bytes', 'PHP reads no body without CONTENT_LENGTH');
      assert.equal(second, 502, 'php-fpm 8.2 took the leftover STDIN for the next request and closed the connection');
      assert.ok(logs.find('NODEFPM_CLIENT_CLOSED').length >= 1, `the 502 is logged with its reason${context()}`);
    });
    await withOtherGateway({ chunkedUploads: 'stream' }, async (closing) => {
      const { second } = await sequence(closing.origin);
      assert.equal(second, 200, 'with closeAfterUnsizedBody (on in script mode) the unsized body had a connection of its own');
    });
  });

  test("a client that leaves: the front logs it and serves on; php-fpm ignores the abort and runs the script to its end", { timeout: TIMEOUT }, async () => {
    const { php: running, origin: front } = ready();
    const req = http.get(new URL('/sleep.php?s=2&id=left', front));
    req.on('error', () => {});
    await sleep(500);
    req.destroy();
    assert.ok(await eventually(() => logs.find('HTTP client closed the connection').length > 0, 10_000), `the front logged the client leaving${context()}`);
    assert.ok(await eventually(() => existsSync(`${running.dir}/done-left`), 30_000), 'the PHP script ran to its end after FCGI_ABORT_REQUEST and the close');
    const next = await request(front, '/server.php?after=abort');
    assert.equal(next.status, 200, 'the front and php-fpm go on');
  });
  test('the command: nodefpm --upstream php-fpm --document-root --front-controller --http serves PHP scripts and static files, and stops on SIGTERM', { timeout: TIMEOUT }, async () => {
    const { php: running } = ready();
    const bin = fileURLToPath(new URL('../../bin/nodefpm', import.meta.url));
    const child = spawn(process.execPath, [bin, '--upstream', running.address, '--document-root', running.documentRoot, '--front-controller', '/index.php', '--http', '127.0.0.1:0', '--http-connections', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = once(child, 'exit');
    try {
      assert.ok(await eventually(() => /HTTP front: open http:/.test(stderr), 20_000), `the command printed its URL:\n${stderr}`);
      const front = /HTTP front: open (http:\/\/\S+)/.exec(stderr)![1]!;
      const server = await request(front, '/server.php/extra?cli=1');
      assert.equal(server.status, 200, `${server.body.toString()}\n${stderr}${context()}`);
      const seen = JSON.parse(server.body.toString()) as { server: Record<string, string | null>; get: Record<string, string> };
      assert.equal(seen.server.SCRIPT_FILENAME, `${running.documentRoot}/server.php`);
      assert.equal(seen.server.PATH_INFO, '/extra');
      assert.deepEqual(seen.get, { cli: '1' });
      const file = await request(front, '/static.txt');
      assert.equal(file.body.toString(), SCRIPTS['static.txt'], 'a static file from --document-root');
      const pretty = await request(front, '/no/such/file');
      assert.equal(JSON.parse(pretty.body.toString()).script, '/index.php', '--front-controller runs for a path naming no file');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, `exit status after SIGTERM:\n${stderr}`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
