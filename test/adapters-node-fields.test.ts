// The fields the Node adapter reserves on each request and response for Express: they hide no getter, Express apps see on nodefpm what they see on Node's http, and the option turns them off.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http, { IncomingMessage, ServerResponse, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import express4 from 'express4';
import { REQUEST_FIELDS, RESPONSE_FIELDS } from '../src/adapters/node/framework-fields.js';
import { createNodeServer, type NodeAdapterOptions } from '../src/adapters/node/index.js';
import { FcgiClient } from '../src/client/index.js';
import type { FcgiServer } from '../src/index.js';
import { formatListenAddress } from '../src/server/listen.js';
import { captureLogger } from './helpers/log-capture.js';
import { requestParams } from './helpers/raw-peer.js';
import { request } from './helpers/http-request.js';
import { tempDir } from './helpers/servers.js';

/** The accessor (getter or setter) named `name` on `prototype` or up its chain, where one is. */
function accessorOwner(prototype: object | null, name: string): object | undefined {
  for (let object = prototype; object !== null; object = Object.getPrototypeOf(object) as object | null) {
    const descriptor = Object.getOwnPropertyDescriptor(object, name);
    if (descriptor !== undefined) return descriptor.get !== undefined || descriptor.set !== undefined ? object : undefined;
  }
  return undefined;
}

describe('reserved framework fields hide nothing', () => {
  // An own field would shadow a getter of the same name (Express 5's req.query is one): none may be.
  const requestPrototypes: Array<[string, object]> = [
    ['http.IncomingMessage', IncomingMessage.prototype],
    ['Express 5 request', express().request as object],
    ['Express 4 request', express4().request as object],
  ];
  const responsePrototypes: Array<[string, object]> = [
    ['http.ServerResponse', ServerResponse.prototype],
    ['Express 5 response', express().response as object],
    ['Express 4 response', express4().response as object],
  ];
  for (const [where, prototype] of requestPrototypes) {
    test(`no request field is an accessor on ${where}`, () => {
      for (const name of REQUEST_FIELDS) assert.equal(accessorOwner(prototype, name), undefined, `${where} has an accessor ${name}`);
    });
  }
  for (const [where, prototype] of responsePrototypes) {
    test(`no response field is an accessor on ${where}`, () => {
      for (const name of RESPONSE_FIELDS) assert.equal(accessorOwner(prototype, name), undefined, `${where} has an accessor ${name}`);
    });
  }

  test('the check finds a getter when there is one (Express 5 req.query)', () => {
    assert.notEqual(accessorOwner(express().request as object, 'query'), undefined, 'Express 5 defines req.query as a getter');
  });
});

/** One listener on nodefpm (through the project's client) and on Node's http. */
interface Both {
  fcgiGet(uri: string, options?: { method?: string; body?: string; contentType?: string }): Promise<{ status: number; body: string }>;
  httpGet(uri: string, options?: { method?: string; body?: string; contentType?: string }): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

async function serveBoth(listener: RequestListener, options: NodeAdapterOptions = {}): Promise<Both> {
  const fcgi: FcgiServer = createNodeServer(listener, { ...options, logger: captureLogger() });
  const dir = tempDir();
  const address = formatListenAddress(await fcgi.listen(`unix:${join(dir.path, 'app.sock')}`));
  const client = new FcgiClient({ address });
  const httpServer = http.createServer(listener);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  return {
    async fcgiGet(uri, { method = 'GET', body, contentType } = {}) {
      const extra: Record<string, string> = {};
      if (body !== undefined) extra.CONTENT_LENGTH = String(Buffer.byteLength(body));
      if (contentType !== undefined) extra.CONTENT_TYPE = contentType;
      const response = await client.request({ params: requestParams(method, uri, extra), body });
      return { status: response.status, body: await response.text() };
    },
    async httpGet(uri, { method = 'GET', body, contentType } = {}) {
      const headers: http.OutgoingHttpHeaders = contentType === undefined ? {} : { 'content-type': contentType };
      const result = await request(origin, uri, { method, body, headers });
      return { status: result.status, body: result.body.toString() };
    },
    async close() {
      client.destroy();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await fcgi.close({ timeout: 1000 });
      dir.remove();
    },
  };
}

/** An app that reports every field the reservation touches, through a mounted router, a route parameter, middleware and a body parser. */
function reportingApp(createExpress: typeof express): RequestListener {
  const app = createExpress();
  const router = createExpress.Router();
  router.use((_req, res, next) => {
    res.locals.seen = 'router middleware';
    next();
  });
  const report = (req: express.Request, res: express.Response): void => {
    res.json({
      baseUrl: req.baseUrl,
      originalUrl: req.originalUrl,
      url: req.url,
      path: req.path,
      params: req.params,
      query: req.query,
      route: req.route === undefined ? null : String((req.route as { path: unknown }).path),
      body: req.body === undefined ? 'none' : (req.body as unknown),
      locals: res.locals,
      status: res.statusCode,
    });
  };
  router.get('/items/:id', report);
  router.post('/items/:id', createExpress.json(), report);
  app.use('/api', router);
  app.get('/plain', (req, res) => {
    res.status(202);
    report(req, res);
  });
  return app as unknown as RequestListener;
}

for (const [name, createExpress] of [
  ['Express 5', express],
  ['Express 4', express4 as unknown as typeof express],
] as const) {
  describe(`${name} sees the same request and response fields as on Node's http`, () => {
    let both: Both;
    before(async () => {
      both = await serveBoth(reportingApp(createExpress));
    });
    after(() => both.close());

    const cases: Array<[string, string, { method?: string; body?: string; contentType?: string }?]> = [
      ['a mounted router with a parameter and a query', '/api/items/42?color=red&n=1'],
      ['a JSON body', '/api/items/7', { method: 'POST', body: '{"a":[1,2]}', contentType: 'application/json' }],
      ['a route of the app with a status set', '/plain?x=%C3%A9'],
      ['no route (the 404 page)', '/missing'],
    ];
    for (const [what, uri, options] of cases) {
      test(what, async () => {
        const [viaFcgi, viaHttp] = await Promise.all([both.fcgiGet(uri, options), both.httpGet(uri, options)]);
        assert.equal(viaFcgi.status, viaHttp.status, `status of ${uri}`);
        assert.equal(viaFcgi.body, viaHttp.body, `body of ${uri}`);
        if (uri.startsWith('/api/items/42')) {
          const seen = JSON.parse(viaFcgi.body) as Record<string, unknown>;
          assert.deepEqual(seen.params, { id: '42' }, 'route parameter');
          assert.deepEqual(seen.query, { color: 'red', n: '1' }, 'query (a getter in Express 5, not hidden)');
          assert.equal(seen.baseUrl, '/api', 'baseUrl');
          assert.deepEqual(seen.locals, { seen: 'router middleware' }, 'locals');
        }
      });
    }
  });
}

describe('the reservation on a plain listener, and turned off', () => {
  const probe: RequestListener = (req, res) => {
    const own = (object: object, names: readonly string[]): string[] => names.filter((field) => Object.hasOwn(object, field));
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ request: own(req, REQUEST_FIELDS), response: own(res, RESPONSE_FIELDS), statusCode: res.statusCode, params: (req as { params?: unknown }).params ?? null }));
  };

  test('by default every field is there, holding what the object would read anyway', async () => {
    const both = await serveBoth(probe);
    try {
      const seen = JSON.parse((await both.fcgiGet('/')).body) as { request: string[]; response: string[]; statusCode: number; params: unknown };
      assert.deepEqual(seen.request, [...REQUEST_FIELDS], 'own request fields');
      assert.deepEqual(seen.response, [...RESPONSE_FIELDS], 'own response fields');
      assert.equal(seen.statusCode, 200, 'the status default');
      assert.equal(seen.params, null, 'params undefined until a framework sets it');
      const onHttp = JSON.parse((await both.httpGet('/')).body) as { request: string[]; response: string[] };
      assert.deepEqual(onHttp.request, [], "Node's http reserves nothing (the difference the option exists for)");
    } finally {
      await both.close();
    }
  });

  test('reserveFrameworkFields: false leaves the objects as Node makes them', async () => {
    const both = await serveBoth(probe, { reserveFrameworkFields: false });
    try {
      const seen = JSON.parse((await both.fcgiGet('/')).body) as { request: string[]; response: string[]; statusCode: number };
      assert.deepEqual(seen.request, [], 'no own request fields');
      assert.deepEqual(seen.response, [], 'no own response fields');
      assert.equal(seen.statusCode, 200, 'the status default, from the prototype');
    } finally {
      await both.close();
    }
  });
});

describe('what the reservation is for: V8 hidden classes shared between Express requests', () => {
  /** Runs test/fixtures/express-maps.ts with V8's natives syntax and answers what its third request reports. */
  async function thirdRequestReport(reserve: 'on' | 'off'): Promise<{ req: boolean; res: boolean }> {
    const dir = tempDir();
    const address = `unix:${join(dir.path, 'app.sock')}`;
    const fixture = fileURLToPath(new URL('./fixtures/express-maps.ts', import.meta.url));
    const child = spawn(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', fixture, address, reserve], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const client = new FcgiClient({ address, maxConnections: 1 });
    try {
      const [first] = (await once(child.stdout!, 'data')) as [Buffer];
      assert.match(first.toString(), /ready/, 'the fixture server started');
      let report: { req: boolean; res: boolean } | null = null;
      for (let i = 0; i < 3; i++) {
        const response = await client.request({ params: requestParams('GET', '/') });
        report = JSON.parse(await response.text()) as { req: boolean; res: boolean } | null;
      }
      assert.ok(report !== null, 'the third request compared itself with the second');
      return report;
    } finally {
      client.destroy();
      child.kill('SIGTERM');
      await once(child, 'exit');
      dir.remove();
    }
  }

  test('with the fields reserved, consecutive Express responses share one hidden class', { timeout: 60_000 }, async () => {
    // Every field Express and Node add to a response after the prototype swap is reserved: if one is
    // missing (or a new Express adds one), each response gets hidden classes of its own again.
    // Requests still get one per request from router 2's private tracing symbol, which cannot be
    // reserved, so only responses are asserted.
    const report = await thirdRequestReport('on');
    assert.equal(report.res, true, 'responses share their hidden class');
  });

  test('without them, each response has hidden classes of its own (the check can tell them apart)', { timeout: 60_000 }, async () => {
    // This is Node 20's V8 (see framework-fields.ts). Should a later V8 share hidden classes after a
    // prototype swap, this fails: the reservation would then no longer buy anything.
    const report = await thirdRequestReport('off');
    assert.equal(report.res, false, 'responses do not share their hidden class');
  });
});
