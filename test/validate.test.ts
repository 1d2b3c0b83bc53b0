// The validator over real FastCGI connections: each check fires on a deliberately broken app or params set, and correct apps raise nothing.

import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetchExchangeHandler, NativeResponse, type FetchHandler } from '../src/adapters/fetch/index.js';
import { nodeExchangeHandler } from '../src/adapters/node/index.js';
import {
  createValidatedFetchServer,
  createValidatedServer,
  validateExchangeHandler,
  validateFetchHandler,
  ValidationError,
  type ValidateCode,
  type ValidateOptions,
  type ValidatingExchangeHandler,
} from '../src/adapters/validate/index.js';
import { FcgiClient } from '../src/client/index.js';
import { errorCatalogue } from '../src/errors.js';
import { FcgiServer, nativeExchangeHandler, type ExchangeHandler, type Handler } from '../src/index.js';
import { formatListenAddress } from '../src/server/listen.js';
import { createFetchApp, patternBytes } from './fixtures/apps/fetch.js';
import { createHonoApp } from './fixtures/apps/hono.js';
import { captureLogger, type CaptureLogger } from './helpers/log-capture.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';

interface Validated {
  handler: ValidatingExchangeHandler;
  server: FcgiServer;
  client: FcgiClient;
  address: string;
  logs: CaptureLogger;
  codes(): ValidateCode[];
  close(): Promise<void>;
}

/** Serves `inner` under the validator (collecting, unless told otherwise) on a fresh Unix socket. */
async function serve(inner: (logs: CaptureLogger) => ExchangeHandler, options: ValidateOptions = {}): Promise<Validated> {
  const logs = captureLogger();
  const handler = validateExchangeHandler(inner(logs), { mode: 'collect', logger: logs, endTimeout: 200, ...options });
  const server = new FcgiServer(handler, { logger: logs, abortTimeout: 2000 });
  const dir = tempDir();
  const address = formatListenAddress(await server.listen(`unix:${join(dir.path, 'app.sock')}`));
  const client = new FcgiClient({ address });
  return {
    handler,
    server,
    client,
    address,
    logs,
    codes: () => handler.violations.map((violation) => violation.code),
    async close() {
      client.destroy();
      await server.close({ timeout: 1000 });
      dir.remove();
    },
  };
}

const raw = (handler: ExchangeHandler) => () => handler;
const fetchApp = (app: FetchHandler) => (logs: CaptureLogger) => fetchExchangeHandler(validateFetchHandler(app), {}, logs);
const nativeApp = (app: Handler) => (logs: CaptureLogger) => nativeExchangeHandler(app, {}, logs);
const nodeApp = (app: (req: IncomingMessage, res: ServerResponse) => void) => (logs: CaptureLogger) => nodeExchangeHandler(app, {}, logs);

/**
 * Sends one request and reads the whole response, whatever it is (broken heads included: STDOUT is
 * taken raw); resolves with the status its head gives.
 */
async function send(app: Validated, method: string, uri: string, body?: Uint8Array | string, extra: Record<string, string> = {}): Promise<number> {
  const length = body === undefined ? undefined : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const params = requestParams(method, uri, length === undefined ? extra : { CONTENT_LENGTH: String(length), CONTENT_TYPE: 'application/octet-stream', ...extra });
  const response = await app.client.requestRaw({ params, body });
  const stdout = (await response.bytes()).toString('latin1');
  await response.ended;
  const status = /^Status: (\d{3})/im.exec(stdout.slice(0, Math.max(0, stdout.indexOf('\r\n\r\n'))));
  return status === null ? 200 : Number(status[1]);
}

/**
 * The codes a test below has seen fire as it should (recorded once its assertions passed): the last
 * test walks the error catalogue and wants every NODEFPM_VALIDATE_* code in here, so a check added
 * to the validator without a test that makes it fire fails the suite.
 */
const proven = new Set<ValidateCode>();

/** Asserts the validator recorded exactly `codes` (in order), and counts each as proven. */
function expectCodes(app: Validated, codes: ValidateCode[], what = ''): void {
  assert.deepEqual(app.codes(), codes, what);
  for (const code of codes) proven.add(code);
}

/** Waits until the validator has recorded `code` (checks found after the response, such as NOT_ENDED). */
async function waitForCode(app: Validated, code: ValidateCode, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!app.codes().includes(code)) {
    if (Date.now() > deadline) assert.fail(`no ${code} within ${timeout} ms; got ${JSON.stringify(app.codes())}`);
    await sleep(10);
  }
}

/** A raw exchange handler that writes `head`, then `body`, then ends. */
function writes(head: string, body = ''): ExchangeHandler {
  return (exchange) => {
    exchange.writeHead(head);
    if (body !== '') exchange.write(body);
    exchange.end();
  };
}

describe('validator: each application-side check fires', () => {
  const cases: Array<[ValidateCode, string, ExchangeHandler, string?]> = [
    ['NODEFPM_VALIDATE_HEAD_TWICE', 'a head written twice', (ex) => (ex.writeHead('Status: 200 OK\r\n\r\n'), ex.writeHead('Status: 200 OK\r\n\r\n'), ex.end())],
    ['NODEFPM_VALIDATE_NO_HEAD', 'a body before the head', (ex) => (ex.write('body'), ex.end())],
    ['NODEFPM_VALIDATE_NO_HEAD', 'an end without a head', (ex) => ex.end()],
    ['NODEFPM_VALIDATE_WRITE_AFTER_END', 'a write after end', (ex) => (ex.writeHead('Status: 200 OK\r\n\r\n'), ex.end(), ex.write('late'))],
    ['NODEFPM_VALIDATE_WRITE_AFTER_END', 'a head after end', (ex) => (ex.writeHead('Status: 200 OK\r\n\r\n'), ex.end(), ex.writeHead('Status: 200 OK\r\n\r\n'))],
    ['NODEFPM_VALIDATE_WRITE_AFTER_END', 'stderr after end', (ex) => (ex.writeHead('Status: 200 OK\r\n\r\n'), ex.end(), ex.writeStderr('late\n'))],
    ['NODEFPM_VALIDATE_HEAD_MALFORMED', 'a head without its empty line', writes('Status: 200 OK\r\n')],
    ['NODEFPM_VALIDATE_HEAD_MALFORMED', 'a head with no header at all', writes('\r\n')],
    ['NODEFPM_VALIDATE_HEAD_MALFORMED', 'a head line without a colon', writes('Status: 200 OK\r\nno colon\r\n\r\n')],
    ['NODEFPM_VALIDATE_STATUS', 'a status out of range', writes('Status: 99 Odd\r\n\r\n')],
    ['NODEFPM_VALIDATE_STATUS', 'two Status headers', writes('Status: 200 OK\r\nStatus: 201 Created\r\n\r\n')],
    ['NODEFPM_VALIDATE_HEADER_NAME', 'an illegal header name', writes('Status: 200 OK\r\nBad Name: x\r\n\r\n')],
    ['NODEFPM_VALIDATE_HEADER_VALUE', 'a control character in a header value', writes('Status: 200 OK\r\nX-Bell: a\u0007b\r\n\r\n')],
    ['NODEFPM_VALIDATE_HOP_BY_HOP', 'Transfer-Encoding', writes('Status: 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n')],
    ['NODEFPM_VALIDATE_HOP_BY_HOP', 'Connection', writes('Status: 200 OK\r\nConnection: close\r\n\r\n')],
    ['NODEFPM_VALIDATE_CONTENT_LENGTH', 'fewer bytes than Content-Length', writes('Status: 200 OK\r\nContent-Length: 10\r\n\r\n', 'short')],
    ['NODEFPM_VALIDATE_CONTENT_LENGTH', 'more bytes than Content-Length', writes('Status: 200 OK\r\nContent-Length: 2\r\n\r\n', 'longer')],
    ['NODEFPM_VALIDATE_CONTENT_LENGTH', 'a Content-Length that is not a number', writes('Status: 200 OK\r\nContent-Length: ten\r\n\r\n')],
    ['NODEFPM_VALIDATE_CONTENT_LENGTH', 'a Content-Length on a 204 (Fastify 5 sends one on HEAD of a 204 route)', writes('Status: 204 No Content\r\nContent-Length: 0\r\n\r\n')],
    ['NODEFPM_VALIDATE_BODY_NOT_ALLOWED', 'a body with 204', writes('Status: 204 No Content\r\n\r\n', 'body')],
    ['NODEFPM_VALIDATE_BODY_NOT_ALLOWED', 'a body with 304', writes('Status: 304 Not Modified\r\n\r\n', 'body')],
    ['NODEFPM_VALIDATE_BODY_NOT_ALLOWED', 'a body on HEAD', writes('Status: 200 OK\r\nContent-Length: 4\r\n\r\n', 'body'), 'HEAD'],
    [
      'NODEFPM_VALIDATE_READ_AFTER_END',
      'the body read after end',
      (ex) => {
        ex.writeHead('Status: 200 OK\r\n\r\n');
        ex.end();
        ex.stdin.readSync();
      },
    ],
  ];
  for (const [code, what, handler, method] of cases) {
    test(`${code}: ${what}`, async () => {
      const app = await serve(raw(handler));
      try {
        await send(app, method ?? 'GET', '/');
        expectCodes(app, [code]);
        const violation = app.handler.violations[0]!;
        assert.ok(violation instanceof ValidationError, 'a ValidationError');
        assert.equal(violation.side, 'app');
        assert.ok(violation.message.length > 20, `the message says what to fix: ${violation.message}`);
      } finally {
        await app.close();
      }
    });
  }

  test('NODEFPM_VALIDATE_NOT_ENDED: the web server aborts and the app never ends its response', async () => {
    const app = await serve(raw(() => {}));
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('GET', '/'));
      await sleep(20);
      peer.sendAbort(1);
      await waitForCode(app, 'NODEFPM_VALIDATE_NOT_ENDED');
      expectCodes(app, ['NODEFPM_VALIDATE_NOT_ENDED']);
    } finally {
      peer.close();
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_NOT_ENDED: a dropped connection, for a native handler that never calls res.end()', async () => {
    const app = await serve(nativeApp(() => {}));
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('GET', '/'));
      await sleep(20);
      peer.close();
      await waitForCode(app, 'NODEFPM_VALIDATE_NOT_ENDED');
      expectCodes(app, ['NODEFPM_VALIDATE_NOT_ENDED']);
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_NOT_ENDED: requestTimeout reports a response still open, and report mode answers 500', async () => {
    const app = await serve(raw(() => {}), { mode: 'report', requestTimeout: 100 });
    try {
      const response = await app.client.request({ params: requestParams('GET', '/') });
      assert.equal(response.status, 500);
      assert.match(await response.text(), /NODEFPM_VALIDATE_NOT_ENDED/);
      assert.equal(app.logs.find('NODEFPM_VALIDATE_NOT_ENDED').length, 1);
    } finally {
      await app.close();
    }
  });
});

test('collect mode passes a second head on, and the record stream stays whole (regression: a replaced head miscounted STDOUT)', async () => {
  const app = await serve(raw((ex) => (ex.writeHead('Status: 200 OK\r\nX-First: 1\r\n\r\n'), ex.writeHead('Status: 201 Created\r\n\r\n'), ex.end())));
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/'));
    const end = await peer.waitForEnd(1);
    assert.equal(end.stdout.toString('latin1'), 'Status: 201 Created\r\n\r\n');
    assert.equal(splitCgi(end.stdout).status, 201);
    expectCodes(app, ['NODEFPM_VALIDATE_HEAD_TWICE']);
  } finally {
    peer.close();
    await app.close();
  }
});

describe('validator: the fetch-only checks fire', () => {
  test('NODEFPM_VALIDATE_NOT_A_RESPONSE: the handler returns a string', async () => {
    const app = await serve(fetchApp(() => 'hello' as unknown as Response));
    try {
      assert.equal(await send(app, 'GET', '/'), 500);
      expectCodes(app, ['NODEFPM_VALIDATE_NOT_A_RESPONSE']);
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_NOT_A_RESPONSE: the handler resolves to undefined (a missing return)', async () => {
    const app = await serve(fetchApp((async () => {}) as unknown as FetchHandler));
    try {
      assert.equal(await send(app, 'GET', '/'), 500);
      expectCodes(app, ['NODEFPM_VALIDATE_NOT_A_RESPONSE']);
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_BODY_USED: the handler returns a Response whose body it read', async () => {
    const app = await serve(
      fetchApp(async () => {
        const response = new Response('read');
        await response.text();
        return response;
      }),
    );
    try {
      assert.equal(await send(app, 'GET', '/'), 500);
      expectCodes(app, ['NODEFPM_VALIDATE_BODY_USED']);
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_BODY_USED: the handler returns the same Response object twice', async () => {
    const shared = new Response('shared');
    const app = await serve(fetchApp(() => shared));
    try {
      assert.equal(await send(app, 'GET', '/'), 200);
      assert.deepEqual(app.codes(), []);
      assert.equal(await send(app, 'GET', '/'), 500);
      expectCodes(app, ['NODEFPM_VALIDATE_BODY_USED']);
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_BODY_USED: the handler returns a Response whose body a reader has locked', async () => {
    const app = await serve(
      fetchApp(() => {
        const response = new NativeResponse('locked');
        response.body!.getReader();
        return response;
      }),
    );
    try {
      assert.equal(await send(app, 'GET', '/'), 500);
      expectCodes(app, ['NODEFPM_VALIDATE_BODY_USED']);
      assert.match(app.handler.violations[0]!.message, /locked/);
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_READ_AFTER_END: the handler reads the request body after its response was sent', async () => {
    const late: { read: Promise<unknown> | null } = { read: null };
    const app = await serve(
      fetchApp((request) => {
        late.read = sleep(50).then(() => request.text().catch((error: unknown) => error));
        return new Response('early');
      }),
    );
    try {
      assert.equal(await send(app, 'POST', '/', 'unread body'), 200);
      assert.ok(late.read !== null, 'the handler ran');
      assert.ok((await late.read) instanceof TypeError, 'the late read fails rather than waiting forever');
      expectCodes(app, ['NODEFPM_VALIDATE_READ_AFTER_END']);
    } finally {
      await app.close();
    }
  });
});

describe('validator: each server-side check fires', () => {
  const ok: ExchangeHandler = (exchange) => {
    exchange.writeHead('Status: 200 OK\r\nContent-Length: 2\r\n\r\n');
    exchange.write('ok');
    exchange.end();
  };
  const cases: Array<[ValidateCode, string, Record<string, string | undefined>]> = [
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'no REQUEST_METHOD', { REQUEST_METHOD: undefined }],
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'no SERVER_PROTOCOL', { SERVER_PROTOCOL: undefined }],
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'no QUERY_STRING', { QUERY_STRING: undefined }],
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'no SCRIPT_NAME', { SCRIPT_NAME: undefined }],
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'no SERVER_NAME', { SERVER_NAME: undefined }],
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'no SERVER_PORT', { SERVER_PORT: undefined }],
    ['NODEFPM_VALIDATE_PARAM_MISSING', 'an empty REQUEST_METHOD', { REQUEST_METHOD: '' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'REQUEST_METHOD not a token', { REQUEST_METHOD: 'GE T' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'SERVER_PORT not digits', { SERVER_PORT: 'http' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'REQUEST_URI not a path', { REQUEST_URI: 'index.html' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'SCRIPT_NAME ending in "/" before a PATH_INFO', { SCRIPT_NAME: '/app/', PATH_INFO: '/x' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'CONTENT_LENGTH not digits', { CONTENT_LENGTH: '12abc' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'SCRIPT_NAME not a path', { SCRIPT_NAME: 'index.php' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'PATH_INFO not a path', { PATH_INFO: 'x' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'GATEWAY_INTERFACE not CGI/1.x', { GATEWAY_INTERFACE: 'FastCGI/1.0' }],
    ['NODEFPM_VALIDATE_PARAM_INVALID', 'SERVER_PROTOCOL malformed', { SERVER_PROTOCOL: 'HTTP 1.1' }],
    ['NODEFPM_VALIDATE_PARAM_CONFLICT', 'HTTP_CONTENT_LENGTH disagreeing', { HTTP_CONTENT_LENGTH: '99' }],
    ['NODEFPM_VALIDATE_PARAM_CONFLICT', 'HTTP_CONTENT_TYPE disagreeing', { CONTENT_TYPE: 'text/plain', HTTP_CONTENT_TYPE: 'text/html' }],
  ];
  for (const [code, what, change] of cases) {
    test(`${code}: ${what}`, async () => {
      const app = await serve(raw(ok));
      try {
        const params: Record<string, string> = { ...requestParams('GET', '/') };
        for (const [name, value] of Object.entries(change)) {
          if (value === undefined) delete params[name];
          else params[name] = value;
        }
        const response = await app.client.request({ params });
        await response.bytes();
        expectCodes(app, [code]);
        assert.equal(app.handler.violations[0]!.side, 'server');
      } finally {
        await app.close();
      }
    });
  }

  test('NODEFPM_VALIDATE_BODY_LENGTH: a body shorter than CONTENT_LENGTH', async () => {
    const app = await serve(
      nativeApp(async (req, res) => {
        try {
          await req.bytes();
        } catch {
          // The native Request reports it too (400): the validator's concern is who broke the rule.
        }
        res.end('read');
      }),
    );
    try {
      const response = await app.client.request({ params: requestParams('POST', '/', { CONTENT_LENGTH: '10' }), body: 'short' });
      await response.bytes();
      expectCodes(app, ['NODEFPM_VALIDATE_BODY_LENGTH']);
      assert.equal(app.handler.violations[0]!.side, 'server');
    } finally {
      await app.close();
    }
  });

  test('NODEFPM_VALIDATE_BODY_LENGTH: a body longer than CONTENT_LENGTH, read to its end', async () => {
    const app = await serve(
      raw((exchange) => {
        void (async () => {
          let bytes = 0;
          try {
            for await (const chunk of exchange.stdin) bytes += chunk.length;
          } catch {
            // However the engine takes the extra bytes, the validator's concern is who broke the rule.
          }
          exchange.writeHead(`Status: 200 OK\r\nContent-Length: ${String(bytes).length}\r\n\r\n`);
          exchange.write(String(bytes));
          exchange.end();
        })();
      }),
    );
    try {
      const response = await app.client.request({ params: requestParams('POST', '/', { CONTENT_LENGTH: '4' }), body: 'longer' });
      await response.bytes();
      expectCodes(app, ['NODEFPM_VALIDATE_BODY_LENGTH']);
      assert.equal(app.handler.violations[0]!.side, 'server');
    } finally {
      await app.close();
    }
  });

  test("in the default 'report' mode a broken params set is answered 500 without running the app", async () => {
    let ran = false;
    const app = await serve(
      raw(() => {
        ran = true;
      }),
      { mode: 'report' },
    );
    try {
      const params: Record<string, string> = { ...requestParams('GET', '/') };
      delete params.REQUEST_METHOD;
      const response = await app.client.request({ params });
      assert.equal(response.status, 500);
      assert.match(await response.text(), /NODEFPM_VALIDATE_PARAM_MISSING: the web server sent no REQUEST_METHOD/);
      assert.match(response.stderr, /nodefpm validate: NODEFPM_VALIDATE_PARAM_MISSING/);
      assert.equal(ran, false);
      assert.equal(app.logs.find('NODEFPM_VALIDATE_PARAM_MISSING').length, 1);
    } finally {
      await app.close();
    }
  });
});

describe('validator: modes', () => {
  test("'report' answers 500 for a broken head and logs it; the app's output is dropped", async () => {
    const app = await serve(raw(writes('Status: 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'x')), { mode: 'report' });
    try {
      const response = await app.client.request({ params: requestParams('GET', '/') });
      assert.equal(response.status, 500);
      assert.match(await response.text(), /Transfer-Encoding/);
      assert.equal(app.logs.find('NODEFPM_VALIDATE_HOP_BY_HOP').length, 1);
    } finally {
      await app.close();
    }
  });

  test("'throw' throws into the adapter, which answers 500 as for any handler error", async () => {
    const app = await serve(fetchApp(() => 'no' as unknown as Response), { mode: 'throw' });
    try {
      assert.equal(await send(app, 'GET', '/'), 500);
      assert.equal(app.logs.find('NODEFPM_VALIDATE_NOT_A_RESPONSE').length, 1);
    } finally {
      await app.close();
    }
  });

  test('createValidatedServer and createValidatedFetchServer validate with the server logger', async () => {
    for (const make of [
      (logs: CaptureLogger) => createValidatedServer(
          (_req, res) => {
            res.writeHead(200, { Connection: 'close' }).end('ok');
          },
          { logger: logs },
        ),
      (logs: CaptureLogger) => createValidatedFetchServer(() => 42 as unknown as Response, { logger: logs }),
    ]) {
      const logs = captureLogger();
      const seen: string[] = [];
      const server = make(logs);
      const dir = tempDir();
      const address = formatListenAddress(await server.listen(`unix:${join(dir.path, 'app.sock')}`));
      const client = new FcgiClient({ address });
      try {
        const response = await client.request({ params: requestParams('GET', '/') });
        await response.bytes();
        seen.push(...logs.entries.map((entry) => String(entry.fields?.code ?? '')).filter((code) => code.startsWith('NODEFPM_VALIDATE_')));
      } finally {
        client.destroy();
        await server.close({ timeout: 1000 });
        dir.remove();
      }
      // The native Response drops hop-by-hop headers itself, so that app is clean; the fetch one is not.
      assert.ok(seen.length <= 1, `at most one report: ${seen.join(', ')}`);
    }
  });
});

describe('validator: correct apps over a varied set of requests raise nothing', () => {
  const native: Handler = async (req, res) => {
    switch (req.path) {
      case '/':
        res.setHeader('Content-Type', 'text/plain');
        res.end('Hello');
        return;
      case '/json': {
        const body = await req.json<unknown>();
        res.statusCode = 201;
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ body }));
        return;
      }
      case '/stream':
        for (let i = 0; i < 64; i++) {
          if (!res.write(patternBytes(i * 16384, 16384))) await new Promise((resolve) => res.once('drain', resolve));
        }
        res.end();
        return;
      case '/redirect':
        res.statusCode = 302;
        res.setHeader('Location', '/there');
        res.end();
        return;
      case '/empty':
        res.statusCode = 204;
        res.end();
        return;
      case '/error':
        throw new Error('deliberate');
      default:
        res.statusCode = 404;
        res.end('nope');
    }
  };

  // A plain Node listener, served by the Node adapter, with the same routes as the native app.
  const nodeListener = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/') {
      res.setHeader('Content-Type', 'text/plain');
      res.end('Hello');
    } else if (path === '/json' && req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ body: JSON.parse(Buffer.concat(chunks).toString()) as unknown }));
      });
    } else if (path === '/stream') {
      let i = 0;
      const more = (): void => {
        while (i < 64) {
          if (!res.write(patternBytes(i * 16384, 16384))) {
            i++;
            res.once('drain', more);
            return;
          }
          i++;
        }
        res.end();
      };
      more();
    } else if (path === '/redirect') {
      res.writeHead(302, { Location: '/there' }).end();
    } else if (path === '/empty') {
      res.writeHead(204).end();
    } else if (path === '/cookies') {
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.end('cookies');
    } else if (path === '/wait') {
      req.on('close', () => res.end());
    } else {
      res.statusCode = 404;
      res.end('nope');
    }
  };

  const corpus: Array<[string, string, (Uint8Array | string)?]> = [
    ['GET', '/'],
    ['HEAD', '/'],
    ['GET', '/query?a=1&a=2&b=%C3%A9'],
    ['POST', '/json', '{"a":[1,2,{"b":null}]}'],
    ['POST', '/upload', patternBytes(0, 1_000_000)],
    ['POST', '/echo', patternBytes(0, 200_000)],
    ['GET', '/stream?chunks=64&size=16384'],
    ['HEAD', '/stream?chunks=4&size=10'],
    ['GET', '/large?size=3000000'],
    ['GET', '/cookies'],
    ['GET', '/redirect'],
    ['GET', '/empty'],
    ['HEAD', '/empty'],
    ['GET', '/error'],
    ['GET', '/headers'],
    ['GET', '/unicode/%E2%9C%93'],
    ['GET', '/instance'],
    ['GET', '/missing'],
    ['OPTIONS', '/'],
    ['DELETE', '/json'],
  ];

  const apps: Array<[string, (logs: CaptureLogger) => ExchangeHandler]> = [
    ['the plain fetch app', fetchApp(createFetchApp())],
    ['the Hono app', fetchApp(createHonoApp())],
    ['a native app', nativeApp(native)],
    ['a Node request listener', nodeApp(nodeListener)],
  ];
  for (const [name, inner] of apps) {
    describe(name, () => {
      let app: Validated;
      before(async () => {
        app = await serve(inner);
      });
      after(async () => {
        await app.close();
      });

      test('the corpus', async () => {
        for (const [method, uri, body] of corpus) {
          await send(app, method, uri, body, { HTTP_ACCEPT: '*/*', HTTP_COOKIE: 'a=1; b=2' });
          assert.deepEqual(app.codes(), [], `${method} ${uri}: ${app.handler.violations.map((v) => v.message).join('; ')}`);
        }
      });

      test('an aborted request and a dropped connection', async () => {
        for (const drop of [false, true]) {
          const peer = await RawPeer.connect(app.address);
          peer.sendRequest(1, requestParams('GET', '/wait'));
          await sleep(20);
          if (drop) {
            peer.close();
          } else {
            peer.sendAbort(1);
            await peer.waitForEnd(1);
            peer.close();
          }
        }
        // The abort grace (endTimeout) is 200 ms here: wait past it before saying nothing was reported.
        await sleep(400);
        assert.deepEqual(app.codes(), []);
      });
    });
  }
});

test('every NODEFPM_VALIDATE_* code of the error catalogue has a test above that makes it fire', () => {
  // Runs last (node:test runs a file's top-level tests in order); a code missing here means a check
  // without a test, or a test above that failed.
  const codes = Object.keys(errorCatalogue).filter((code): code is ValidateCode => code.startsWith('NODEFPM_VALIDATE_'));
  assert.ok(codes.length >= 18, `the catalogue lists the validator's codes (${codes.length})`);
  assert.deepEqual(
    codes.filter((code) => !proven.has(code)),
    [],
    'codes no test made fire',
  );
});
