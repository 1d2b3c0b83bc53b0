// End-to-end tests of ./bin/nodefpm (the built dist): serving over Unix, TCP and an inherited fd 0, graceful stop, start-up errors and exit codes.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FcgiClient } from '../src/client/index.js';
import { BIN, FIXTURES, ROOT, startMaster as start } from './fixtures/pool-harness.js';

const LAUNCHER = join(FIXTURES, 'cli-fd0-launcher.py');
const TIMEOUT = 60_000;

/** A temporary folder for sockets, removed when the test ends. */
function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nodefpm-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One request through the project's FastCGI client (a text body, when given, goes with CONTENT_LENGTH); resolves to the status and the body. */
async function send(
  address: string,
  uri: string,
  { method = 'GET', body, params = {} }: { method?: string; body?: string; params?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  const client = new FcgiClient({ address, keepConn: false });
  try {
    const [path, query = ''] = uri.split('?');
    const bodyParams: Record<string, string> = body === undefined ? {} : { CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: String(Buffer.byteLength(body)) };
    const response = await client.request({
      params: {
        REQUEST_METHOD: method,
        REQUEST_URI: uri,
        SCRIPT_NAME: path!,
        QUERY_STRING: query,
        SERVER_PROTOCOL: 'HTTP/1.1',
        GATEWAY_INTERFACE: 'CGI/1.1',
        ...bodyParams,
        ...params,
      },
      body,
    });
    return { status: response.status, body: await response.text() };
  } finally {
    await client.close();
  }
}

function get(address: string, uri = '/', params: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return send(address, uri, { params });
}

test('serves a native app on a Unix socket (mode 0660), and SIGTERM stops it with status 0', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'app.sock');
  const app = start(t, ['test/fixtures/cli-hello.mjs', '--listen', `unix:${socket}`]);
  await app.waitFor(/serving .*cli-hello\.mjs as a native handler .*kind from its api export.*pid \d+/);
  assert.ok(app.stderr.includes(`listening on unix:${socket}`), `the listening address is printed:\n${app.stderr}`);
  assert.equal(statSync(socket).mode & 0o777, 0o660, 'the socket gets the default --socket-mode');
  assert.deepEqual(await get(`unix:${socket}`, '/a?b=1'), { status: 200, body: 'hello GET /a?b=1' });
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.match(app.stderr, /SIGTERM: stopping gracefully/);
});

test('serves on TCP port 0 and prints the port it bound; options reach the server; SIGINT stops it with 0', { timeout: TIMEOUT }, async (t) => {
  const app = start(t, ['test/fixtures/cli-hello.mjs', '--listen', '127.0.0.1:0', '--no-multiplex', '--max-connections', '7', '--log-level', 'debug']);
  const [, port] = await app.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  await app.waitFor(/serving /);
  assert.notEqual(Number(port), 0, 'the real port is printed');
  const client = new FcgiClient({ address: `127.0.0.1:${port!}` });
  try {
    const values = await client.getValues();
    assert.equal(values.FCGI_MAX_CONNS, '7', '--max-connections reaches the server');
    assert.equal(values.FCGI_MPXS_CONNS, '0', '--no-multiplex reaches the server');
  } finally {
    await client.close();
  }
  assert.deepEqual(await get(`127.0.0.1:${port!}`, '/tcp'), { status: 200, body: 'hello GET /tcp' });
  app.child.kill('SIGINT');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test("examples/hello.ts, the README's first example, loads through tsx under plain node and answers", { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'hello.sock');
  const app = start(t, ['examples/hello.ts', '--listen', socket]);
  await app.waitFor(/serving .*examples\/hello\.ts as a native handler/);
  const response = await get(`unix:${socket}`, '/world');
  assert.deepEqual(response, { status: 200, body: 'Hello from GET /world\n' });
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('without --listen and with stdin not a socket: it says what to pass and exits 2', { timeout: TIMEOUT }, async (t) => {
  const app = start(t, ['test/fixtures/cli-hello.mjs'], { stdin: 'ignore' });
  assert.deepEqual(await app.exited, { code: 2, signal: null });
  assert.match(app.stderr, /nothing to listen on: no --listen was given, fd 0 is not a socket/);
  for (const form of ['--listen unix:/run/app.sock', '--listen 127.0.0.1:9000', '--listen fd:N', '--listen systemd[:NAME]', 'spawn-fcgi -n -s']) {
    assert.ok(app.stderr.includes(form), `the message shows ${form}:\n${app.stderr}`);
  }
});

test('without --listen and with stdin a socket that is not listening (a pipe): it says so and exits 2', { timeout: TIMEOUT }, async (t) => {
  const app = start(t, ['test/fixtures/cli-hello.mjs'], { stdin: 'pipe' });
  assert.deepEqual(await app.exited, { code: 2, signal: null });
  assert.match(app.stderr, /cannot serve the socket on fd 0: fd 0 is not a listening socket code=NODEFPM_NO_LISTENER/);
  assert.match(app.stderr, /Pass --listen ADDR/);
  assert.doesNotMatch(app.stderr, /^\s+at /m, 'no stack trace');
});

test('serves the listening Unix socket it inherits on fd 0, as from spawn-fcgi (a TypeScript app)', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'fd0.sock');
  const app = start(t, [LAUNCHER, 'unix', socket, BIN, 'test/fixtures/cli-hello-ts.ts'], { command: 'python3' });
  await app.waitFor(/listening on fd:0/);
  await app.waitFor(/serving .*cli-hello-ts\.ts/);
  assert.deepEqual(await get(`unix:${socket}`, '/inherited'), { status: 200, body: 'hello from TypeScript: GET /inherited' });
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('serves the listening TCP socket it inherits on fd 0', { timeout: TIMEOUT }, async (t) => {
  const app = start(t, [LAUNCHER, 'tcp', '127.0.0.1', BIN, 'test/fixtures/cli-hello.mjs'], { command: 'python3' });
  const port = await app.firstStdoutLine();
  await app.waitFor(/serving /);
  assert.deepEqual(await get(`127.0.0.1:${port}`, '/tcp0'), { status: 200, body: 'hello GET /tcp0' });
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('serves the sockets systemd passes (LISTEN_FDS for its pid), and hides LISTEN_* from the app afterwards', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'activated.sock');
  const app = start(t, [LAUNCHER, 'systemd', socket, BIN, 'test/fixtures/cli-hello.mjs'], { command: 'python3' });
  await app.waitFor(/listening on fd:3/);
  await app.waitFor(/serving /);
  assert.deepEqual(await get(`unix:${socket}`, '/activated'), { status: 200, body: 'hello GET /activated' });
  assert.deepEqual(await get(`unix:${socket}`, '/listen-fds'), { status: 200, body: 'LISTEN_FDS=unset' });
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('SIGTERM during a slow request: no new connections, the request completes, exit 0', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'slow.sock');
  const app = start(t, ['test/fixtures/cli-slow.mjs', '--listen', `unix:${socket}`]);
  await app.waitFor(/serving /);
  const slow = get(`unix:${socket}`, '/slow?ms=1500');
  await app.waitFor(/slow request started: \/slow/);
  app.child.kill('SIGTERM');
  await app.waitFor(/SIGTERM: stopping gracefully: .*for 1 request in progress/);
  await assert.rejects(get(`unix:${socket}`, '/late'), 'a connection after SIGTERM is refused');
  assert.deepEqual(await slow, { status: 200, body: 'finished /slow?ms=1500' });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.doesNotMatch(app.stderr, /slow request started: \/late/, 'the late request never reached the app');
});

test('a second signal during the graceful stop exits at once with status 1', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'stuck.sock');
  const app = start(t, ['test/fixtures/cli-slow.mjs', '--listen', `unix:${socket}`]);
  await app.waitFor(/serving /);
  const stuck = get(`unix:${socket}`, '/forever').catch((error: unknown) => error);
  await app.waitFor(/slow request started: \/forever/);
  app.child.kill('SIGINT');
  await app.waitFor(/SIGINT: stopping gracefully/);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 1, signal: null });
  assert.match(app.stderr, /SIGTERM again during the graceful stop: exiting at once with 1 request in progress/);
  assert.ok((await stuck) instanceof Error, 'the request that never finished fails when the process goes');
});

test('an app module that cannot be loaded: exit 1, NODEFPM_APP_LOAD with the path and the cause, no stack', { timeout: TIMEOUT }, async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['test/fixtures/cli-missing.mjs', /cannot load app \S*test\/fixtures\/cli-missing\.mjs: no such file/],
    ['test/fixtures/cli-syntax-error.mjs', /cannot load app \S*cli-syntax-error\.mjs: SyntaxError: .* at \S*cli-syntax-error\.mjs:3: res\.end\('never';/],
    ['test/fixtures/cli-no-default.mjs', /cli-no-default\.mjs: the module has no default export/],
    ['test/fixtures/cli-not-handler.mjs', /cli-not-handler\.mjs: the default export is a number \(42\), not a handler/],
    ['test/fixtures/cli-throws.mjs', /cli-throws\.mjs: Error: database URL is not configured/],
    ['test/fixtures/cli-ambiguous.mjs', /cli-ambiguous\.mjs: the default export is a function \(req, res\).*pass --api native or --api node/],
  ];
  const runs = cases.map(([module]) => start(t, [module, '--listen', `unix:${join(tempDir(t), 'never.sock')}`]));
  for (const [index, [module, message]] of cases.entries()) {
    const app = runs[index]!;
    assert.deepEqual(await app.exited, { code: 1, signal: null }, module);
    assert.match(app.stderr, /error: .*code=NODEFPM_APP_LOAD/, module);
    assert.match(app.stderr, message, module);
    assert.doesNotMatch(app.stderr, /^\s+at /m, `${module}: no stack trace at the default log level`);
  }
});

test('--log-level debug adds the stack of a load error', { timeout: TIMEOUT }, async (t) => {
  const app = start(t, ['test/fixtures/cli-throws.mjs', '--listen', `unix:${join(tempDir(t), 'never.sock')}`, '--log-level', 'debug']);
  assert.equal((await app.exited).code, 1);
  assert.match(app.stderr, /code=NODEFPM_APP_LOAD/);
  assert.match(app.stderr, /debug: stack: Error: database URL is not configured\n\s+at .*cli-throws\.mjs/);
});

test('a bad command line exits 2 naming the problem; --help and --version exit 0', { timeout: TIMEOUT }, async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['test/fixtures/cli-hello.mjs', '--max-body-bytes', 'lots'], /nodefpm: --max-body-bytes: expected a size in bytes/],
    [['test/fixtures/cli-hello.mjs', '--idle-timeot', '5s'], /nodefpm: unknown option --idle-timeot \(did you mean --idle-timeout\?\)/],
    [['test/fixtures/cli-hello.mjs', '--listen', 'here'], /nodefpm: --listen: listen address "here": no port given/],
    [['--listen', '127.0.0.1:0'], /nodefpm: no app module given\nUsage: nodefpm <app-module>/],
  ];
  const runs = cases.map(([args]) => start(t, args));
  for (const [index, [args, message]] of cases.entries()) {
    const app = runs[index]!;
    assert.deepEqual(await app.exited, { code: 2, signal: null }, args.join(' '));
    assert.match(app.stderr, message, args.join(' '));
  }
  const help = start(t, ['--help']);
  assert.equal((await help.exited).code, 0);
  for (const flag of ['--listen ADDR', '--api native|node|fetch', '--max-body-bytes BYTES', '--idle-timeout TIME', '--socket-mode MODE', '--no-multiplex', '--close-timeout TIME']) {
    assert.ok(help.stdout.includes(flag), `--help lists ${flag}`);
  }
  const version = start(t, ['--version']);
  assert.equal((await version.exited).code, 0);
  assert.match(version.stdout, /^nodefpm \d+\.\d+\.\d+/);
});

test('the bin runs when Node loads it as CommonJS, and asks for a build when dist is missing', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'bin'));
  copyFileSync(BIN, join(dir, 'bin', 'nodefpm'));
  // A package of type commonjs: the extensionless bin is loaded as a CommonJS script there.
  writeFileSync(join(dir, 'package.json'), '{ "type": "commonjs" }\n');
  const unbuilt = start(t, [join(dir, 'bin', 'nodefpm'), '--version'], { command: process.execPath });
  assert.deepEqual(await unbuilt.exited, { code: 1, signal: null });
  assert.match(unbuilt.stderr, /the build is missing \(dist\/esm\/cli\/main\.js\): run `npm ci` or `npm run build`/);
  symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
  const built = start(t, [join(dir, 'bin', 'nodefpm'), '--version'], { command: process.execPath });
  assert.deepEqual(await built.exited, { code: 0, signal: null });
  assert.match(built.stdout, /^nodefpm /);
});

// ---- the built-in HTTP front: --http, --upstream ----

/** One HTTP GET; resolves to the status and the body. */
async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

test('npm start: the guestbook with --http alone listens on a private Unix socket, prints the URL, answers HTTP, and removes the socket on SIGTERM', { timeout: TIMEOUT }, async (t) => {
  const app = start(t, ['examples/guestbook.ts', '--http', '127.0.0.1:0']);
  const [, url] = await app.waitFor(/HTTP front: open (http:\/\/127\.0\.0\.1:\d+\/)/);
  const [, socket] = await app.waitFor(/listening on unix:(\S+fastcgi\.sock)/);
  assert.ok(socket!.startsWith(tmpdir()), `the private socket is in the temp folder: ${socket}`);
  assert.equal(statSync(dirname(socket!)).mode & 0o777, 0o700, 'only this user can reach the private socket');
  const page = await httpGet(url!);
  assert.equal(page.status, 200, page.body);
  assert.match(page.body, /<h1>Guestbook<\/h1>/);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.throws(() => statSync(dirname(socket!)), /ENOENT/, 'the private folder is removed at exit');
});

test('--api node serves Express 4 and 5, Koa, Connect and Fastify app modules unchanged', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  await Promise.all(
    ['express5', 'express4', 'koa', 'connect', 'fastify'].map(async (name) => {
      const socket = join(dir, `${name}.sock`);
      const app = start(t, [`test/fixtures/cli-frameworks/${name}.mjs`, '--api', 'node', '--listen', `unix:${socket}`]);
      await app.waitFor(/serving .* as a Node request listener/);
      assert.deepEqual(await get(`unix:${socket}`, '/greet/ada?x=1'), { status: 200, body: `${name} ada 1` }, `${name}: a route with a parameter and a query`);
      assert.deepEqual(await send(`unix:${socket}`, '/echo', { method: 'POST', body: 'hello body' }), { status: 200, body: `${name} got hello body` }, `${name}: a request body`);
      app.child.kill('SIGTERM');
      assert.deepEqual(await app.exited, { code: 0, signal: null }, `${name}: stops gracefully`);
    }),
  );
});

test('--no-reserve-framework-fields reaches the Node adapter, in one process and in pool workers', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  for (const [name, args, expected] of [
    ['default', [], 'baseUrl,params,body,locals'],
    ['off', ['--no-reserve-framework-fields'], 'none'],
    ['off-pool', ['--no-reserve-framework-fields', '--workers', '1'], 'none'],
  ] as const) {
    const socket = join(dir, `${name}.sock`);
    const app = start(t, ['test/fixtures/cli-own-fields.mjs', '--listen', `unix:${socket}`, ...args]);
    await app.waitFor(/serving .* as a Node request listener|with a static pool/);
    assert.deepEqual(await get(`unix:${socket}`, '/'), { status: 200, body: expected }, name);
    app.child.kill('SIGTERM');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, `${name}: stops gracefully`);
  }
});

/** What get() leaves out and a CGI/1.1 app relies on: the validator wants them. */
const COMPLETE = { SERVER_NAME: 'localhost', SERVER_PORT: '80' };

test('--validate: both sides are checked; a broken rule is answered 500 with its code, and logged', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'app.sock');
  const app = start(t, ['test/fixtures/cli-invalid.mjs', '--listen', `unix:${socket}`, '--validate']);
  await app.waitFor(/serving .*cli-invalid\.mjs as a fetch handler/);
  assert.match(app.stderr, /every request is validated \(--validate\)/, 'the start-up says so');
  assert.deepEqual(await get(`unix:${socket}`, '/', COMPLETE), { status: 200, body: 'ok GET' });
  // The app's side: a fetch handler must return a Response.
  const broken = await get(`unix:${socket}`, '/not-a-response', COMPLETE);
  assert.equal(broken.status, 500, 'a broken rule before any output is answered 500');
  assert.match(broken.body, /NODEFPM_VALIDATE_NOT_A_RESPONSE/, 'the 500 names the rule');
  // The web server's side: get() alone sends neither SERVER_NAME nor SERVER_PORT.
  const incomplete = await get(`unix:${socket}`, '/');
  assert.equal(incomplete.status, 500, 'missing params are answered 500');
  assert.match(incomplete.body, /NODEFPM_VALIDATE_PARAM_MISSING: the web server sent no SERVER_NAME param/);
  await app.waitFor(/NODEFPM_VALIDATE_PARAM_MISSING/);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('without --validate the same app and requests get no checks', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'app.sock');
  const app = start(t, ['test/fixtures/cli-invalid.mjs', '--listen', `unix:${socket}`]);
  await app.waitFor(/serving /);
  assert.deepEqual(await get(`unix:${socket}`, '/'), { status: 200, body: 'ok GET' }, 'incomplete params are served');
  const broken = await get(`unix:${socket}`, '/not-a-response', COMPLETE);
  assert.equal(broken.status, 500, "the fetch adapter's own 500");
  assert.doesNotMatch(broken.body, /NODEFPM_VALIDATE/, 'no validator involved');
  assert.doesNotMatch(app.stderr, /validated/, 'nothing said about validation');
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('--validate reaches the pool workers', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'pool.sock');
  const app = start(t, ['test/fixtures/cli-invalid.mjs', '--workers', '1', '--listen', socket, '--validate']);
  await app.waitFor(/serving .* with a static pool of 1 worker/);
  assert.deepEqual(await get(`unix:${socket}`, '/', COMPLETE), { status: 200, body: 'ok GET' });
  const incomplete = await get(`unix:${socket}`, '/');
  assert.equal(incomplete.status, 500, 'the worker validates');
  assert.match(incomplete.body, /NODEFPM_VALIDATE_PARAM_MISSING/);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('--http with --workers 2 and --listen: HTTP and FastCGI both reach the pool', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'pool.sock');
  const app = start(t, ['test/fixtures/cli-hello.mjs', '--workers', '2', '--listen', socket, '--http', '127.0.0.1:0', '--http-connections', '4']);
  const [, url] = await app.waitFor(/HTTP front: open (http:\/\/127\.0\.0\.1:\d+\/)/);
  await app.waitFor(/serving .* with a static pool of 2 workers/);
  const answers = await Promise.all(Array.from({ length: 20 }, (_, index) => httpGet(`${url!}n/${index}?q=${index}`)));
  answers.forEach((answer, index) => assert.deepEqual(answer, { status: 200, body: `hello GET /n/${index}?q=${index}`}));
  assert.deepEqual(await get(`unix:${socket}`, '/direct'), { status: 200, body: 'hello GET /direct' });
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('--upstream: no app module; the front forwards HTTP to another FastCGI server, and stops on SIGINT', { timeout: TIMEOUT }, async (t) => {
  const socket = join(tempDir(t), 'upstream.sock');
  const upstream = start(t, ['test/fixtures/cli-hello.mjs', '--listen', socket]);
  await upstream.waitFor(/serving /);
  const front = start(t, ['--upstream', `unix:${socket}`, '--http', '127.0.0.1:0']);
  const [, url] = await front.waitFor(/HTTP front: open (http:\/\/127\.0\.0\.1:\d+\/)/);
  await front.waitFor(/forwarding HTTP to FastCGI at unix:/);
  assert.deepEqual(await httpGet(`${url!}through/the/front?x=1`), { status: 200, body: 'hello GET /through/the/front?x=1'});
  front.child.kill('SIGINT');
  assert.deepEqual(await front.exited, { code: 0, signal: null });
  upstream.child.kill('SIGTERM');
  assert.deepEqual(await upstream.exited, { code: 0, signal: null });
});

test('HTTP front options that cannot work together, or a bad address, exit 2 before anything starts, saying why', { timeout: TIMEOUT }, async (t) => {
  const cases: Array<{ args: string[]; message: RegExp }> = [
    { args: ['--upstream', '127.0.0.1:9000'], message: /--upstream needs --http HOST:PORT/ },
    { args: ['test/fixtures/cli-hello.mjs', '--upstream', '127.0.0.1:9000', '--http', '127.0.0.1:0'], message: /an app module or --upstream, not both/ },
    { args: ['test/fixtures/cli-hello.mjs', '--http', 'localhost'], message: /--http: HTTP listen address "localhost": no port given/ },
    { args: ['--upstream', 'nowhere', '--http', '127.0.0.1:0'], message: /--upstream: .*no port given/ },
    { args: ['--upstream', '127.0.0.1:9000', '--http', '127.0.0.1:0', '--front-controller', '/index.php'], message: /--front-controller is for script mode: it needs --upstream and --document-root/ },
  ];
  for (const { args, message } of cases) {
    const run = start(t, args);
    assert.deepEqual(await run.exited, { code: 2, signal: null }, `${args.join(' ')}:\n${run.stderr}`);
    assert.match(run.stderr, message, args.join(' '));
  }
});
