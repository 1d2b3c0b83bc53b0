// res.redirect behind Apache and h2o, the two servers that answer 200 to a CGI Location without Status: the redirect status must reach the client.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { FcgiServer, nativeExchangeHandler, type ExchangeHandler, type Handler } from '../../src/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import { captureLogger } from '../helpers/log-capture.js';
import { apache, fcgiTarget, proxyPass } from './apache-server.js';
import { h2o } from './h2o-server.js';
import { startWebServer, type WebServer, type WebServerKind } from './harness.js';

const TIMEOUT = 120_000;

const app: Handler = async (req, res) => {
  const path = req.path;
  if (path === '/r/302') return res.redirect('/target?x=1');
  if (path === '/r/301') return res.redirect('https://example.com/ü space', 301);
  if (path === '/r/303') {
    await req.body.bytes();
    return res.redirect('/after-post', 303);
  }
  if (path === '/r/307') return res.redirect('/again', 307);
  if (path === '/r/login') {
    res.setCookie('session', 'abc', { httpOnly: true });
    return res.redirect('/home');
  }
  res.text(`no route ${path}\n`, 404);
};

/**
 * The app, plus /bare: a CGI response with Location and no Status line (what a CGI script that
 * "just sets Location" sends), written straight to the exchange since the native Response always
 * writes Status. It shows what the web server makes of it, which is why redirect() sends Status.
 */
function handler(): { handle: ExchangeHandler; logs: ReturnType<typeof captureLogger> } {
  const logs = captureLogger();
  const native = nativeExchangeHandler(app, {}, logs);
  return {
    logs,
    handle: (exchange) => {
      if (exchange.param('REQUEST_URI') === '/bare') {
        exchange.writeHead('Location: /target\r\nContent-Type: text/plain\r\n\r\n');
        exchange.write('bare location\n');
        exchange.end(0);
        return;
      }
      native(exchange);
    },
  };
}

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request, redirects not followed. */
function request(origin: string, path: string, method = 'GET', body?: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = body === undefined ? {} : { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };
    const req = http.request(`${origin}${path}`, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.setTimeout(TIMEOUT, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.end(body);
  });
}

const servers: Array<{ name: string; kind: (upstream: string) => WebServerKind }> = [
  // Apache's workers run as www-data, so the app listens on TCP.
  { name: 'Apache mod_proxy_fcgi', kind: (upstream) => apache({ directives: proxyPass('/', fcgiTarget(upstream)) }) },
  { name: 'h2o', kind: (upstream) => h2o({ mounts: [{ path: '/', upstream }] }) },
];

for (const { name, kind } of servers) {
  describe(`redirects through ${name}`, { timeout: 10 * TIMEOUT }, () => {
    let server: FcgiServer | null = null;
    let web: WebServer | null = null;
    let context = (): string => '';

    before(async () => {
      const { handle, logs } = handler();
      server = new FcgiServer(handle, { logger: logs });
      const upstream = formatListenAddress(await server.listen('127.0.0.1:0'));
      web = await startWebServer(kind(upstream));
      const started = web;
      context = () => {
        const problems = logs.entries.filter((entry) => entry.level !== 'debug' && entry.level !== 'info');
        return `\n${started.describe()}${problems.length > 0 ? `\n--- nodefpm ---\n${inspect(problems, { breakLength: Infinity })}` : ''}`;
      };
    }, { timeout: TIMEOUT });

    after(async () => {
      try {
        await web?.stop();
      } finally {
        await server?.close({ timeout: 5000 });
      }
    }, { timeout: TIMEOUT });

    const ready = (): WebServer => {
      assert.ok(web !== null, `${name} and nodefpm did not start (see the before hook error)`);
      return web;
    };
    const eq = (actual: unknown, expected: unknown, what: string): void => {
      assert.deepEqual(actual, expected, `${what}: expected ${inspect(expected)}, got ${inspect(actual)}${context()}`);
    };

    test('a bare Location without Status comes out as 200: why redirect() always sends Status', { timeout: TIMEOUT }, async () => {
      const result = await request(ready().origin, '/bare');
      eq(result.status, 200, `${name} turns a CGI Location without Status into`);
      eq(result.headers.location, '/target', 'the Location header is passed on as is');
    });

    test('res.redirect(): 302 with Location reaches the client', { timeout: TIMEOUT }, async () => {
      const result = await request(ready().origin, '/r/302');
      eq(result.status, 302, 'status');
      eq(result.headers.location, '/target?x=1', 'Location');
    });

    test('res.redirect(url, 301) with an absolute, encoded URL', { timeout: TIMEOUT }, async () => {
      const result = await request(ready().origin, '/r/301');
      eq(result.status, 301, 'status');
      eq(result.headers.location, 'https://example.com/%C3%BC%20space', 'Location');
    });

    test('303 after a POST, and 307', { timeout: TIMEOUT }, async () => {
      const posted = await request(ready().origin, '/r/303', 'POST', 'name=value');
      eq(posted.status, 303, 'status after POST');
      eq(posted.headers.location, '/after-post', 'Location after POST');
      const again = await request(ready().origin, '/r/307');
      eq(again.status, 307, '307 status');
      eq(again.headers.location, '/again', '307 Location');
    });

    test('a login redirect carries its Set-Cookie', { timeout: TIMEOUT }, async () => {
      const result = await request(ready().origin, '/r/login');
      eq(result.status, 302, 'status');
      eq(result.headers.location, '/home', 'Location');
      eq(result.headers['set-cookie'], ['session=abc; Path=/; HttpOnly'], 'Set-Cookie');
    });
  });
}
