// Fetch handlers over real FastCGI connections: a plain fetch function and a Hono app, driven by the project's client and a raw peer.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createFetchServer,
  NativeResponse,
  restoreGlobalObjects,
  type CreateFetchServerOptions,
  type FcgiBindings,
  type FetchHandler,
} from '../src/adapters/fetch/index.js';
import { FcgiClient, type FcgiResponse } from '../src/client/index.js';
import type { FcgiServer } from '../src/index.js';
import { RecordType } from '../src/protocol/index.js';
import { formatListenAddress } from '../src/server/listen.js';
import { createFetchApp, patternBytes, type AppProbe } from './fixtures/apps/fetch.js';
import { createHonoApp } from './fixtures/apps/hono.js';
import { captureLogger, type CaptureLogger } from './helpers/log-capture.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';

interface Running {
  server: FcgiServer;
  client: FcgiClient;
  address: string;
  logs: CaptureLogger;
  close(): Promise<void>;
}

async function start(handler: FetchHandler, options: CreateFetchServerOptions = {}): Promise<Running> {
  const logs = captureLogger();
  const server = createFetchServer(handler, { logger: logs, ...options });
  const dir = tempDir();
  const address = formatListenAddress(await server.listen(`unix:${join(dir.path, 'app.sock')}`));
  const client = new FcgiClient({ address, maxConnections: 4 });
  return {
    server,
    client,
    address,
    logs,
    async close() {
      client.destroy();
      await server.close({ timeout: 1000 });
      dir.remove();
    },
  };
}

/** Params for a request with a body of `length` bytes. */
function postParams(uri: string, length: number, type = 'application/octet-stream'): Record<string, string> {
  return requestParams('POST', uri, { CONTENT_LENGTH: String(length), CONTENT_TYPE: type });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The headers of a response as [lower-case name, value] pairs, Set-Cookie lines kept apart. */
function headerPairs(response: FcgiResponse): Array<[string, string]> {
  return response.rawHeaders.map(([name, value]) => [name.toLowerCase(), value]);
}

/** Chunks of `total` pattern bytes, made as they are asked for (a streamed upload). */
async function* patternChunks(total: number, size: number): AsyncGenerator<Uint8Array> {
  for (let position = 0; position < total; position += size) {
    await sleep(0);
    yield patternBytes(position, Math.min(size, total - position));
  }
}

/** Resolves with the reason once the probe's onAbort fires. */
function abortSeen(probe: AppProbe): Promise<unknown> {
  return new Promise((resolve) => {
    probe.onAbort = resolve;
  });
}

const apps: Array<[string, (probe: AppProbe) => FetchHandler]> = [
  ['a plain fetch function', (probe) => createFetchApp(probe)],
  ['a Hono app', (probe) => createHonoApp(probe)],
];

for (const [name, build] of apps) {
  describe(`fetch adapter: ${name}`, () => {
    const probe: AppProbe = {};
    let app: Running;
    before(async () => {
      app = await start(build(probe));
    });
    after(async () => {
      await app.close();
    });

    test('GET / is answered with the body, its Content-Type and a Content-Length', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/') });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), 'Hello World!');
      assert.match(String(response.headers['content-type']), /^text\/plain;\s?charset=UTF-8$/i);
      assert.equal(response.headers['content-length'], '12');
      assert.equal((await response.ended).appStatus, 0);
    });

    test('routing: an unknown path is 404', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/nowhere') });
      assert.equal(response.status, 404);
      await response.text();
    });

    test('the query string reaches the app, repeated keys and percent-encoding included', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/query?a=1&a=2&b=%C3%A9t%C3%A9&c=') });
      assert.deepEqual(JSON.parse(await response.text()), { a: ['1', '2'], b: ['été'], c: [''] });
    });

    test('a JSON body is parsed by the app', async () => {
      const body = JSON.stringify({ name: 'nodefpm', list: [1, 2, 3], unicode: 'ünï' });
      const response = await app.client.request({ params: postParams('/json', Buffer.byteLength(body), 'application/json'), body });
      assert.equal(response.status, 201);
      assert.deepEqual(JSON.parse(await response.text()), { received: JSON.parse(body) });
    });

    test('a streamed 8 MiB upload is read as a stream by the app (length and SHA-256 agree)', async () => {
      const total = 8 * 1024 * 1024 + 123;
      const response = await app.client.request({ params: postParams('/upload', total), body: patternChunks(total, 100_000) });
      assert.deepEqual(JSON.parse(await response.text()), { bytes: total, sha256: sha256(patternBytes(0, total)) });
    });

    test('a request body can be streamed straight back (POST /echo)', async () => {
      const body = patternBytes(0, 300_000);
      const response = await app.client.request({ params: postParams('/echo', body.length), body });
      assert.equal(response.headers['content-type'], 'application/octet-stream');
      assert.equal(sha256(await response.bytes()), sha256(body));
    });

    test('a streamed response waits for a client that does not read (backpressure), then arrives whole', async () => {
      const chunks = 512;
      const size = 64 * 1024;
      let produced = 0;
      probe.onChunk = (index) => {
        produced = index + 1;
      };
      try {
        const response = await app.client.request({ params: requestParams('GET', `/stream?chunks=${chunks}&size=${size}`) });
        // Do not read: production must stop once the buffers between app and client are full.
        let last = -1;
        while (produced !== last) {
          last = produced;
          await sleep(150);
        }
        assert.ok(produced < chunks / 2, `with the client not reading, the app stopped after ${produced} of ${chunks} chunks`);
        const bytes = await response.bytes();
        assert.equal(bytes.length, chunks * size);
        assert.equal(sha256(bytes), sha256(patternBytes(0, chunks * size)));
        assert.equal(produced, chunks);
      } finally {
        probe.onChunk = undefined;
      }
    });

    test('Set-Cookie headers stay separate lines', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/cookies') });
      const cookies = headerPairs(response).filter(([header]) => header === 'set-cookie').map(([, value]) => value);
      assert.deepEqual(cookies, ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
      assert.equal(await response.text(), 'cookies');
    });

    test('a redirect is a CGI "Status: 302" line with a Location header', async () => {
      const peer = await RawPeer.connect(app.address);
      try {
        peer.sendRequest(1, requestParams('GET', '/redirect'));
        const cgi = splitCgi((await peer.waitForEnd(1)).stdout);
        assert.equal(cgi.headers.status, '302 Found');
        assert.equal(cgi.headers.location, '/target');
        assert.equal(cgi.body.length, 0);
      } finally {
        peer.close();
      }
    });

    test('HEAD gets the head of GET and no body', async () => {
      const response = await app.client.request({ params: requestParams('HEAD', '/') });
      assert.equal(response.status, 200);
      assert.match(String(response.headers['content-type']), /^text\/plain/);
      assert.equal((await response.bytes()).length, 0);
    });

    test('204 has no body and no Content-Length', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/empty') });
      assert.equal(response.status, 204);
      assert.equal(response.headers['content-length'], undefined);
      assert.equal((await response.bytes()).length, 0);
    });

    test('an error in the app is a 500', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/error') });
      assert.equal(response.status, 500);
      assert.match(await response.text(), /Internal Server Error/);
    });

    test('request.signal fires on FCGI_ABORT_REQUEST, with NODEFPM_REQUEST_ABORTED, and the request ends', async () => {
      const seen = abortSeen(probe);
      const peer = await RawPeer.connect(app.address);
      try {
        peer.sendRequest(1, requestParams('GET', '/wait'));
        await sleep(20);
        peer.sendAbort(1);
        const reason = (await seen) as { code?: string };
        assert.equal(reason.code, 'NODEFPM_REQUEST_ABORTED');
        const end = await peer.waitForEnd(1);
        assert.equal(end.protocolStatus, 0);
        assert.equal(end.stdout.length, 0, 'nothing is written for an aborted request');
      } finally {
        probe.onAbort = undefined;
        peer.close();
      }
    });

    test('request.signal fires when the web server drops the connection, with NODEFPM_CONNECTION_LOST', async () => {
      const seen = abortSeen(probe);
      const peer = await RawPeer.connect(app.address);
      peer.sendRequest(1, requestParams('GET', '/wait'));
      await sleep(20);
      peer.close();
      const reason = (await seen) as { code?: string };
      probe.onAbort = undefined;
      assert.equal(reason.code, 'NODEFPM_CONNECTION_LOST');
    });

    test('the app gets a Request: request instanceof Request', async () => {
      let seen: Request | null = null;
      probe.onRequest = (request) => {
        seen = request;
      };
      try {
        const response = await app.client.request({ params: requestParams('GET', '/instance') });
        assert.deepEqual(JSON.parse(await response.text()), { isRequest: true });
        assert.ok(seen !== null && (seen as Request) instanceof Request, 'the probe saw a Request');
      } finally {
        probe.onRequest = undefined;
      }
    });

    test('the Request carries the URL (scheme from HTTPS, host from HTTP_HOST) and the HTTP headers', async () => {
      const params = requestParams('GET', '/headers?x=1', { HTTPS: 'on', HTTP_HOST: 'shop.example', HTTP_X_TRACE: 'abc', HTTP_ACCEPT_LANGUAGE: 'fr' });
      const seen = JSON.parse(await (await app.client.request({ params })).text()) as { method: string; url: string; headers: Record<string, string> };
      assert.equal(seen.method, 'GET');
      assert.equal(seen.url, 'https://shop.example/headers?x=1');
      assert.equal(seen.headers['x-trace'], 'abc');
      assert.equal(seen.headers['accept-language'], 'fr');
      assert.equal(seen.headers.host, 'shop.example');
    });

    test('a percent-encoded unicode path reaches the app', async () => {
      const response = await app.client.request({ params: requestParams('GET', '/unicode/%C3%A9t%C3%A9%20%E2%9C%93') });
      assert.equal(await response.text(), 'name: été ✓');
    });

    test('large bodies both ways: a 24 MiB response and a 24 MiB upload', async () => {
      const size = 24 * 1024 * 1024;
      const response = await app.client.request({ params: requestParams('GET', `/large?size=${size}`) });
      assert.equal(response.headers['content-length'], String(size));
      const bytes = await response.bytes();
      assert.equal(bytes.length, size);
      assert.equal(sha256(bytes), sha256(patternBytes(0, size)));
      const upload = patternBytes(0, size);
      const hashed = await app.client.request({ params: postParams('/upload', size), body: upload });
      assert.deepEqual(JSON.parse(await hashed.text()), { bytes: size, sha256: sha256(upload) });
    });

    test('many concurrent requests on kept-alive connections all succeed', async () => {
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) => app.client.request({ params: requestParams('GET', `/query?i=${i}`) }).then((r) => r.text())),
      );
      responses.forEach((text, i) => assert.deepEqual(JSON.parse(text), { i: [String(i)] }));
    });
  });
}

describe('fetch adapter: behaviour of its own', () => {
  test('a handler that throws is a 500: logged with the request, its error in FCGI_STDERR, appStatus 1', async () => {
    const app = await start(createFetchApp());
    try {
      const response = await app.client.request({ params: requestParams('GET', '/error') });
      assert.equal(response.status, 500);
      assert.equal(await response.text(), '500 Internal Server Error\n', 'no detail outside development');
      assert.match(response.stderr, /deliberate failure/);
      assert.equal((await response.ended).appStatus, 1);
      assert.equal(app.logs.find('fetch handler failed: GET /error').length, 1);
    } finally {
      await app.close();
    }
  });

  test('a handler that returns something other than a Response is a 500 with NODEFPM_FETCH_NOT_A_RESPONSE', async () => {
    const app = await start(createFetchApp(), { development: true });
    try {
      const response = await app.client.request({ params: requestParams('GET', '/not-a-response') });
      assert.equal(response.status, 500);
      assert.match(await response.text(), /not a Response/);
      assert.equal(app.logs.find('NODEFPM_FETCH_NOT_A_RESPONSE').length, 1);
    } finally {
      await app.close();
    }
  });

  test('the same Response returned twice: the second time its body is used, NODEFPM_FETCH_BODY_USED, 500', async () => {
    const shared = new Response('once');
    const app = await start(() => shared);
    try {
      assert.equal(await (await app.client.request({ params: requestParams('GET', '/') })).text(), 'once');
      const second = await app.client.request({ params: requestParams('GET', '/') });
      assert.equal(second.status, 500);
      await second.text();
      assert.equal(app.logs.find('NODEFPM_FETCH_BODY_USED').length, 1);
    } finally {
      await app.close();
    }
  });

  test('object handlers get (request, env): env is the FcgiBindings with the params', async () => {
    const app = await start({
      fetch(request: Request, env: FcgiBindings) {
        return Response.json({ remote: env.param('REMOTE_ADDR'), script: env.params.SCRIPT_NAME, id: env.exchange.id, method: request.method });
      },
    });
    try {
      const response = await app.client.request({ params: requestParams('PUT', '/x', { CONTENT_LENGTH: '0' }) });
      assert.deepEqual(JSON.parse(await response.text()), { remote: '127.0.0.1', script: '/x', id: 1, method: 'PUT' });
    } finally {
      await app.close();
    }
  });

  test('a stream that is already complete gets a Content-Length; one that is not is sent without', async () => {
    const app = await start((request: Request) => {
      const encoder = new TextEncoder();
      if (new URL(request.url).pathname === '/ready') {
        return new Response(new ReadableStream({ start: (c) => (c.enqueue(encoder.encode('ab')), c.enqueue(encoder.encode('cd')), c.close()) }));
      }
      return new Response(
        new ReadableStream({
          async pull(c) {
            await sleep(5);
            c.enqueue(encoder.encode('late'));
            c.close();
          },
        }),
      );
    });
    try {
      const ready = await app.client.request({ params: requestParams('GET', '/ready') });
      assert.equal(ready.headers['content-length'], '4');
      assert.equal(await ready.text(), 'abcd');
      const late = await app.client.request({ params: requestParams('GET', '/late') });
      assert.equal(late.headers['content-length'], undefined);
      assert.equal(await late.text(), 'late');
    } finally {
      await app.close();
    }
  });

  test('a bad Host header is a 400 with NODEFPM_FETCH_BAD_URL, not a 500', async () => {
    const app = await start(createFetchApp());
    try {
      const response = await app.client.request({ params: requestParams('GET', '/', { HTTP_HOST: 'evil.example/path' }) });
      assert.equal(response.status, 400);
      assert.match(await response.text(), /not a host name/);
    } finally {
      await app.close();
    }
  });

  test('a response stream that fails midway cuts the response short: logged, FCGI_STDERR, appStatus 1', async () => {
    const app = await start(
      () =>
        new Response(
          new ReadableStream({
            async pull(c) {
              await sleep(5);
              c.error(new Error('stream broke'));
            },
          }),
        ),
    );
    try {
      const peer = await RawPeer.connect(app.address);
      try {
        peer.sendRequest(1, requestParams('GET', '/'));
        const end = await peer.waitForEnd(1);
        assert.equal(end.appStatus, 1);
        assert.match(end.stderr.toString(), /stream broke/);
        assert.equal(peer.records.filter((r) => r.type === RecordType.EndRequest).length, 1);
      } finally {
        peer.close();
      }
    } finally {
      await app.close();
    }
  });

  test('with overrideGlobalObjects: false, real Responses are sent the same way (a Hono app)', async () => {
    // Earlier tests in this file installed the stand-ins: take them out for this one.
    const saved = { Response: globalThis.Response, Request: globalThis.Request };
    restoreGlobalObjects();
    const before = globalThis.Response;
    assert.equal(before, NativeResponse);
    const app = await start(createHonoApp(), { overrideGlobalObjects: false });
    try {
      const response = await app.client.request({ params: requestParams('GET', '/') });
      assert.equal(await response.text(), 'Hello World!');
      assert.equal(response.headers['content-length'], '12');
      const cookies = await app.client.request({ params: requestParams('GET', '/cookies') });
      assert.deepEqual(
        headerPairs(cookies).filter(([header]) => header === 'set-cookie').map(([, value]) => value),
        ['a=1; Path=/', 'b=2; Path=/; HttpOnly'],
      );
      await cookies.text();
      assert.equal(globalThis.Response, before, 'the global was left alone');
    } finally {
      await app.close();
      for (const [name, value] of Object.entries(saved)) Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
    }
  });
});
