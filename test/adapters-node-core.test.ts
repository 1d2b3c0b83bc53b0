// Plain Node request listeners over real FastCGI connections: what they see of the request, the CGI output they produce, failures, aborts and backpressure.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNodeServer, exchangeOf, type CreateNodeServerOptions, type NodeRequestListener } from '../src/adapters/node/index.js';
import { FcgiClient } from '../src/client/index.js';
import type { FcgiServer } from '../src/index.js';
import { Role } from '../src/protocol/index.js';
import { formatListenAddress } from '../src/server/listen.js';
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

const running = new Set<Running>();
// One folder for every server of this file, each with its own socket.
const dir = tempDir();
let sockets = 0;
after(async () => {
  for (const app of running) await app.close();
  dir.remove();
});

async function start(listener: NodeRequestListener, options: CreateNodeServerOptions = {}): Promise<Running> {
  const logs = captureLogger();
  const server = createNodeServer(listener, { logger: logs, ...options });
  const address = formatListenAddress(await server.listen(`unix:${join(dir.path, `app-${++sockets}.sock`)}`));
  const client = new FcgiClient({ address, maxConnections: 4 });
  const app: Running = {
    server,
    client,
    address,
    logs,
    async close() {
      running.delete(app);
      client.destroy();
      await server.close({ timeout: 1000 });
    },
  };
  running.add(app);
  return app;
}

/** A listener that reads the body and keeps the code of the error its request fails with (`failure.code`, read once it has come). */
async function startBodyReader(options: CreateNodeServerOptions): Promise<{ app: Running; failure: { readonly code: string | undefined } }> {
  let error: unknown;
  const app = await start((req) => {
    req.on('error', (failure) => {
      error = failure;
    });
    req.resume();
  }, options);
  return {
    app,
    failure: {
      get code() {
        return (error as { code?: string } | undefined)?.code;
      },
    },
  };
}

/** One request over a raw connection; the whole CGI output, split. */
async function raw(app: Running, params: Record<string, string>, body = ''): Promise<{ status: number; head: string; body: Buffer; stderr: string; appStatus: number }> {
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, params, body);
    const response = await peer.waitForEnd(1);
    const end = response.stdout.indexOf('\r\n\r\n');
    const cgi = splitCgi(response.stdout);
    return {
      status: cgi.status,
      head: response.stdout.toString('latin1', 0, end + 4),
      body: cgi.body,
      stderr: response.stderr.toString(),
      appStatus: response.appStatus,
    };
  } finally {
    peer.close();
  }
}

describe('what the listener sees', () => {
  test('method, url, version, headers (lower-case, joined as the web server joined them), rawHeaders, headersDistinct', async () => {
    let seen: IncomingMessage | undefined;
    const app = await start((req, res) => {
      seen = req;
      res.end('ok');
    });
    await raw(app, {
      ...requestParams('POST', '/path/x%20y?q=1&q=2'),
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '0',
      HTTP_CONTENT_TYPE: 'ignored/duplicate',
      HTTP_ACCEPT_LANGUAGE: 'en, fr;q=0.5',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_X_FORWARDED_FOR: '10.0.0.1, 10.0.0.2',
    });
    const req = seen!;
    assert.ok(req !== undefined, 'the listener ran');
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/path/x%20y?q=1&q=2');
    assert.equal(req.httpVersion, '1.1');
    assert.equal(req.httpVersionMajor, 1);
    assert.equal(req.httpVersionMinor, 1);
    assert.equal(req.headers.host, 'localhost');
    assert.equal(req.headers['content-type'], 'text/plain', 'CONTENT_TYPE wins over HTTP_CONTENT_TYPE');
    assert.equal(req.headers['content-length'], '0');
    assert.equal(req.headers['accept-language'], 'en, fr;q=0.5');
    assert.equal(req.headers.cookie, 'a=1; b=2');
    assert.equal(req.headers['x-forwarded-for'], '10.0.0.1, 10.0.0.2');
    assert.equal(Object.getPrototypeOf(req.headers), Object.prototype, 'a plain object, as Node gives (hasOwnProperty works)');
    assert.ok(req.rawHeaders.includes('Accept-Language'), `rawHeaders spell names the usual way: ${req.rawHeaders.join(' ')}`);
    assert.equal(req.rawHeaders[req.rawHeaders.indexOf('X-Forwarded-For') + 1], '10.0.0.1, 10.0.0.2');
    assert.deepEqual(req.headersDistinct['accept-language'], ['en, fr;q=0.5']);
    assert.equal(req.complete, true);
    assert.equal((req as IncomingMessage & { upgrade?: boolean }).upgrade, false);
  });

  test('empty CONTENT_TYPE and CONTENT_LENGTH (nginx sends them on every GET) make no header', async () => {
    let headers: IncomingMessage['headers'] = {};
    const app = await start((req, res) => {
      headers = req.headers;
      res.end();
    });
    await raw(app, { ...requestParams('GET', '/'), CONTENT_TYPE: '', CONTENT_LENGTH: '' });
    assert.equal('content-type' in headers, false);
    assert.equal('content-length' in headers, false);
  });

  test('without REQUEST_URI the url is SCRIPT_NAME + PATH_INFO + ?QUERY_STRING', async () => {
    let url: string | undefined;
    const app = await start((req, res) => {
      url = req.url;
      res.end();
    });
    const params = requestParams('GET', '/');
    delete (params as Record<string, string | undefined>).REQUEST_URI;
    await raw(app, { ...params, SCRIPT_NAME: '/app.js', PATH_INFO: '/users/7', QUERY_STRING: 'full=1' });
    assert.equal(url, '/app.js/users/7?full=1');
  });

  test('the socket: addresses from the params, encrypted only for HTTPS, net.Socket\'s methods harmless', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const app = await start((req, res) => {
      const socket = req.socket as IncomingMessage['socket'] & { encrypted?: boolean };
      assert.equal(socket.setTimeout(1000), socket);
      assert.equal(socket.setNoDelay(true), socket);
      assert.equal(socket.setKeepAlive(true), socket);
      seen.push({
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        remoteFamily: socket.remoteFamily,
        localAddress: socket.localAddress,
        localPort: socket.localPort,
        encrypted: socket.encrypted,
        address: socket.address(),
        same: res.socket === socket,
        params: exchangeOf(req)?.param('SCRIPT_FILENAME'),
      });
      res.end();
    });
    await raw(app, { ...requestParams('GET', '/'), REMOTE_ADDR: '2001:db8::7', REMOTE_PORT: '51000', SERVER_ADDR: '192.0.2.1', SERVER_PORT: '8443', HTTPS: 'on', SCRIPT_FILENAME: '/srv/app.js' });
    await raw(app, { ...requestParams('GET', '/'), REQUEST_SCHEME: 'http' });
    assert.deepEqual(seen[0], {
      remoteAddress: '2001:db8::7',
      remotePort: 51000,
      remoteFamily: 'IPv6',
      localAddress: '192.0.2.1',
      localPort: 8443,
      encrypted: true,
      address: { address: '192.0.2.1', family: 'IPv4', port: 8443 },
      same: true,
      params: '/srv/app.js',
    });
    assert.equal(seen[1]!.encrypted, undefined, 'a plain connection has no encrypted flag, as a net.Socket has none');
  });

  test('HTTP/1.0: version 1.0, and the body framed as Node frames it for 1.0 (no Content-Length from end(body))', async () => {
    let version: string | undefined;
    const app = await start((req, res) => {
      version = req.httpVersion;
      res.end('old client');
    });
    const answer = await raw(app, { ...requestParams('GET', '/'), SERVER_PROTOCOL: 'HTTP/1.0' });
    assert.equal(version, '1.0');
    assert.equal(answer.body.toString(), 'old client');
    assert.doesNotMatch(answer.head, /content-length|connection/i);
  });

  test('HTTP/2.0 from the web server: version 2.0, and the response made by HTTP/1.1 rules (Content-Length kept)', async () => {
    let version: string | undefined;
    const app = await start((req, res) => {
      version = `${req.httpVersion} ${req.httpVersionMajor}`;
      res.end('new client');
    });
    const answer = await raw(app, { ...requestParams('GET', '/'), SERVER_PROTOCOL: 'HTTP/2.0' });
    assert.equal(version, '2.0 2');
    assert.match(answer.head, /Content-Length: 10\r\n/);
  });
});

describe('the CGI output', () => {
  test('writeHead with a reason and headers, setHeader with arrays, statusMessage', async () => {
    const app = await start((req, res) => {
      if (req.url === '/a') {
        res.setHeader('X-Multi', ['one', 'two']);
        res.writeHead(299, 'Fine Thanks', { 'Content-Type': 'text/plain', 'X-Single': 'yes' });
        res.end('a');
      } else {
        res.statusCode = 404;
        res.statusMessage = 'Nowhere';
        res.setHeader('Set-Cookie', ['s=1', 't=2']);
        res.end();
      }
    });
    const a = await raw(app, requestParams('GET', '/a'));
    assert.match(a.head, /^Status: 299 Fine Thanks\r\n/);
    assert.match(a.head, /X-Multi: one\r\nX-Multi: two\r\n/);
    assert.match(a.head, /X-Single: yes\r\n/);
    assert.equal(a.body.toString(), 'a');
    const b = await raw(app, requestParams('GET', '/b'));
    assert.match(b.head, /^Status: 404 Nowhere\r\n/);
    assert.match(b.head, /Set-Cookie: s=1\r\nSet-Cookie: t=2\r\n/);
    assert.match(b.head, /Content-Length: 0\r\n/);
  });

  test('no chunk framing and no hop-by-hop header reaches FCGI_STDOUT, whatever the app sets', async () => {
    const app = await start((_req, res) => {
      res.setHeader('Connection', 'close');
      res.setHeader('Keep-Alive', 'timeout=9');
      res.write('one ');
      res.write(Buffer.from('two '));
      setImmediate(() => res.end('three'));
    });
    const answer = await raw(app, requestParams('GET', '/'));
    assert.equal(answer.body.toString(), 'one two three');
    assert.doesNotMatch(answer.head, /transfer-encoding|connection|keep-alive/i);
    assert.match(answer.head, /^Status: 200 OK\r\n/);
    assert.match(answer.head, /Date: /);
  });

  test('flushHeaders sends the head before any body', async () => {
    let finish: (() => void) | undefined;
    const app = await start((_req, res) => {
      res.setHeader('Content-Type', 'text/event-stream');
      res.flushHeaders();
      finish = () => res.end('data: late\n\n');
    });
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('GET', '/events'));
      await peer.waitFor((records) => records.some((record) => record.type === 6 && record.content.length > 0), 5000, 'the head');
      assert.match(peer.response(1).stdout.toString(), /^Status: 200 OK\r\nContent-Type: text\/event-stream\r\n/);
      assert.equal(peer.response(1).endCount, 0, 'the request is still open');
      finish!();
      const response = await peer.waitForEnd(1);
      assert.equal(splitCgi(response.stdout).body.toString(), 'data: late\n\n');
    } finally {
      peer.close();
    }
  });

  test('interim responses (100 Continue, 103 Early Hints) are not sent: CGI has none', async () => {
    const app = await start((_req, res) => {
      res.writeContinue();
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.end('final');
    });
    const answer = await raw(app, { ...requestParams('POST', '/'), HTTP_EXPECT: '100-continue' }, 'x');
    assert.match(answer.head, /^Status: 200 OK\r\n/);
    assert.equal(answer.body.toString(), 'final');
  });

  test('Content-Length is Node\'s for end(body) and absent for streamed bodies', async () => {
    const app = await start((req, res) => {
      if (req.url === '/whole') res.end('\u00e9t\u00e9');
      else {
        res.write('x');
        res.end('y');
      }
    });
    assert.match((await raw(app, requestParams('GET', '/whole'))).head, /Content-Length: 5\r\n/);
    const streamed = await raw(app, requestParams('GET', '/streamed'));
    assert.doesNotMatch(streamed.head, /content-length/i);
    assert.equal(streamed.body.toString(), 'xy');
  });
});

describe('the same output as http.createServer for what plain listeners do', () => {
  /** Listeners doing the odd things Node's ServerResponse allows, one per path. */
  const listener: NodeRequestListener = (req, res) => {
    switch (req.url) {
      case '/raw-array':
        res.writeHead(200, ['X-A', '1', 'X-A', '2', 'Content-Type', 'text/plain']);
        res.end('raw array');
        return;
      case '/trailers':
        res.setHeader('Trailer', 'X-Checksum');
        res.write('with ');
        res.addTrailers({ 'X-Checksum': 'abc' });
        res.end('trailers');
        return;
      case '/explicit-chunked':
        res.setHeader('Transfer-Encoding', 'chunked');
        res.end('framed by the app\'s choice');
        return;
      case '/no-date':
        res.sendDate = false;
        res.end('dateless');
        return;
      case '/latin1-header':
        res.setHeader('X-Name', 'caf\u00e9');
        res.end('d\u00e9j\u00e0 vu');
        return;
      case '/encodings':
        res.write('68656c6c6f20', 'hex');
        res.end(Buffer.from('world'));
        return;
      case '/status-999':
        res.statusCode = 999;
        res.end();
        return;
      case '/304-chunked':
        res.writeHead(304, { 'Transfer-Encoding': 'chunked', ETag: '"x"' });
        res.end('dropped');
        return;
      default:
        res.writeHead(404).end();
    }
  };
  const paths = ['/raw-array', '/trailers', '/explicit-chunked', '/no-date', '/latin1-header', '/encodings', '/status-999', '/304-chunked'];

  test('status, header lines (less Date and hop-by-hop ones) and body bytes match', async () => {
    const app = await start(listener);
    const server = http.createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const skip = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'trailer']);
    try {
      for (const path of paths) {
        const overHttp = await new Promise<{ status: number; lines: string[]; body: Buffer }>((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
              const chunks: Buffer[] = [];
              response.on('data', (chunk: Buffer) => chunks.push(chunk));
              response.on('end', () => {
                const lines: string[] = [];
                for (let i = 0; i < response.rawHeaders.length; i += 2) {
                  if (!skip.has(response.rawHeaders[i]!.toLowerCase())) lines.push(`${response.rawHeaders[i]}: ${Buffer.from(response.rawHeaders[i + 1]!, 'latin1').toString('hex')}`);
                }
                resolve({ status: response.statusCode ?? 0, lines, body: Buffer.concat(chunks) });
              });
            })
            .on('error', reject);
        });
        const overFcgi = await raw(app, requestParams('GET', path));
        const lines = overFcgi.head
          .split('\r\n')
          .slice(1, -2)
          .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)] as const)
          .filter(([name]) => !skip.has(name.toLowerCase()))
          .map(([name, value]) => `${name}: ${Buffer.from(value, 'latin1').toString('hex')}`);
        assert.equal(overFcgi.status, overHttp.status, `${path}: status`);
        assert.deepEqual(lines, overHttp.lines, `${path}: header lines and their bytes`);
        assert.equal(overFcgi.body.toString('hex'), overHttp.body.toString('hex'), `${path}: body`);
        assert.doesNotMatch(overFcgi.head, /transfer-encoding|trailer/i, `${path}: no framing headers over FastCGI`);
      }
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('failures', () => {
  test('a listener that throws gets a 500; the error goes to FCGI_STDERR and the log; the next request is served', async () => {
    const app = await start((req, res) => {
      if (req.url === '/boom') {
        res.setHeader('X-Before', 'set before the throw');
        throw new Error('kaboom');
      }
      res.end('fine');
    });
    const failed = await raw(app, requestParams('GET', '/boom'));
    assert.equal(failed.status, 500);
    assert.match(failed.body.toString(), /^500 Internal Server Error/);
    assert.doesNotMatch(failed.body.toString(), /kaboom/, 'no details outside development');
    assert.doesNotMatch(failed.head, /X-Before/, 'headers set before the failure are dropped');
    assert.match(failed.stderr, /kaboom/);
    assert.equal(failed.appStatus, 1);
    assert.ok(app.logs.find('request listener failed').length === 1, 'the failure is logged once');
    const next = await raw(app, requestParams('GET', '/ok'));
    assert.equal(next.body.toString(), 'fine');
    assert.equal(next.appStatus, 0);
  });

  test('in development the 500 page shows the error', async () => {
    const app = await start(() => {
      throw new Error('visible detail');
    }, { development: true });
    assert.match((await raw(app, requestParams('GET', '/'))).body.toString(), /visible detail/);
  });

  test('a rejected promise from the listener is a 500 too', async () => {
    const app = await start(async () => {
      await sleep(1);
      throw new Error('async kaboom');
    });
    const answer = await raw(app, requestParams('GET', '/'));
    assert.equal(answer.status, 500);
    assert.match(answer.stderr, /async kaboom/);
  });

  test('a throw after the head went out ends the response where it stands, with application status 1', async () => {
    const app = await start((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('partial');
      throw new Error('midway');
    });
    const answer = await raw(app, requestParams('GET', '/'));
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), 'partial');
    assert.equal(answer.appStatus, 1);
    assert.match(answer.stderr, /midway/);
  });

  test('res.destroy() before the response: the request ends with no output, and the server goes on', async () => {
    const app = await start((req, res) => {
      if (req.url === '/drop') res.destroy();
      else res.end('ok');
    });
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('GET', '/drop'));
      const dropped = await peer.waitForEnd(1);
      assert.equal(dropped.stdout.length, 0);
      peer.sendRequest(2, requestParams('GET', '/ok'));
      assert.equal(splitCgi((await peer.waitForEnd(2)).stdout).body.toString(), 'ok');
    } finally {
      peer.close();
    }
  });

  test('an upgrade or a CONNECT gets a 501 without calling the listener', async () => {
    let calls = 0;
    const app = await start((_req, res) => {
      calls++;
      res.end();
    });
    const upgrade = await raw(app, { ...requestParams('GET', '/socket'), HTTP_UPGRADE: 'websocket', HTTP_CONNECTION: 'Upgrade' });
    assert.equal(upgrade.status, 501);
    assert.match(upgrade.body.toString(), /upgrade to websocket cannot be served over FastCGI/);
    const connect = await raw(app, requestParams('CONNECT', 'example.com:443'));
    assert.equal(connect.status, 501);
    const notUpgrade = await raw(app, { ...requestParams('GET', '/'), HTTP_UPGRADE: 'h2c', HTTP_CONNECTION: 'keep-alive' });
    assert.equal(notUpgrade.status, 200, 'Upgrade without Connection: upgrade is an ordinary request');
    assert.equal(calls, 1);
  });
});

describe('request bodies', () => {
  test('a body read slowly arrives whole, with backpressure towards the web server', async () => {
    const size = 4 * 1024 * 1024;
    const app = await start((req, res) => {
      let bytes = 0;
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        req.pause();
        setTimeout(() => req.resume(), 1);
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), complete: req.complete })));
    });
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = i % 251;
    const response = await app.client.request({ params: { ...requestParams('POST', '/'), CONTENT_LENGTH: String(size) }, body });
    assert.deepEqual(JSON.parse(await response.text()), { bytes: size, sha256: createHash('sha256').update(body).digest('hex'), complete: true });
  });

  test('async iteration, and a body without CONTENT_LENGTH (a chunked upload the web server passed on)', async () => {
    const app = await start(async (req, res) => {
      const parts: Buffer[] = [];
      for await (const chunk of req) parts.push(chunk as Buffer);
      res.end(`got ${Buffer.concat(parts).toString()}`);
    });
    const response = await app.client.request({ params: { ...requestParams('POST', '/'), HTTP_TRANSFER_ENCODING: 'chunked' }, body: 'streamed upload' });
    assert.equal(await response.text(), 'got streamed upload');
  });

  test('a body past maxBodyBytes fails the request while it is read: 413, as Node answers what it cannot parse', async () => {
    const { app, failure } = await startBodyReader({ maxBodyBytes: 1000 });
    const answer = await raw(app, requestParams('POST', '/'), 'x'.repeat(5000));
    assert.equal(answer.status, 413);
    await sleep(10);
    assert.equal(failure.code, 'NODEFPM_BODY_TOO_LARGE');
  });

  test('a body the web server stops sending fails the request after bodyTimeout: 408, and the request gets the error', async () => {
    const { app, failure } = await startBodyReader({ bodyTimeout: 100 });
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendBegin(1);
      peer.sendParams(1, requestParams('POST', '/upload', { CONTENT_LENGTH: '5000' }));
      peer.sendStdin(1, 'x'.repeat(1000), false);
      const cgi = splitCgi((await peer.waitForEnd(1, 10_000)).stdout);
      assert.equal(cgi.status, 408);
      await sleep(10);
      assert.equal(failure.code, 'NODEFPM_BODY_TIMEOUT');
    } finally {
      peer.close();
    }
  });

  test('an Authorizer request (Apache sends no FCGI_STDIN at all) has an empty body that ends at once', async () => {
    const app = await start(
      async (req, res) => {
        let bytes = 0;
        for await (const chunk of req) bytes += (chunk as Buffer).length;
        res.setHeader('Variable-USER', 'alice');
        res.end(`read ${bytes}`);
      },
      { roles: [Role.Authorizer] },
    );
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendBegin(1, { role: Role.Authorizer });
      peer.sendParams(1, requestParams('GET', '/protected'));
      const cgi = splitCgi((await peer.waitForEnd(1)).stdout);
      assert.equal(cgi.headers['variable-user'], 'alice');
      assert.equal(cgi.body.toString(), 'read 0');
    } finally {
      peer.close();
    }
  });
});

describe('lifetime and backpressure', () => {
  test('a normal response: finish, then close on the response; end and close on the request; an unread body is dropped', async () => {
    const events: string[] = [];
    let closed: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      closed = resolve;
    });
    const app = await start((req, res) => {
      req.on('end', () => events.push('req:end'));
      req.on('close', () => events.push('req:close'));
      req.on('aborted', () => events.push('req:aborted'));
      res.on('finish', () => events.push('res:finish'));
      res.on('close', () => {
        events.push('res:close');
        setTimeout(closed, 20);
      });
      res.end('not reading your body');
    });
    const answer = await raw(app, requestParams('POST', '/'), 'an unread body');
    assert.equal(answer.body.toString(), 'not reading your body');
    await done;
    assert.deepEqual(events.filter((event) => event.startsWith('res:')), ['res:finish', 'res:close']);
    assert.ok(events.includes('req:end') && events.includes('req:close'), `request ended and closed: ${events.join(', ')}`);
    assert.equal(events.includes('req:aborted'), false);
  });

  test('res.write returns false when the web server is behind; drain follows; writableNeedDrain follows it; callbacks run once flushed', async () => {
    const trace = { falses: 0, drains: 0, needDrainAfterDrain: [] as boolean[], callbacks: 0 };
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const total = 64;
    const app = await start((_req, res: ServerResponse) => {
      let written = 0;
      res.on('drain', () => {
        trace.drains++;
        trace.needDrainAfterDrain.push(res.writableNeedDrain);
      });
      const more = (): void => {
        while (written < total) {
          written++;
          const ok = res.write(chunk, () => trace.callbacks++);
          if (!ok) {
            trace.falses++;
            assert.equal(res.writableNeedDrain, true);
            res.once('drain', more);
            return;
          }
        }
        res.end();
      };
      more();
    });
    const response = await app.client.request({ params: requestParams('GET', '/') });
    await sleep(200);
    assert.ok(trace.falses >= 1, 'write() returned false while the client was not reading');
    const body = await response.bytes();
    assert.equal(body.length, total * chunk.length);
    await sleep(20);
    assert.ok(trace.drains >= 1, 'drain was emitted');
    assert.ok(trace.needDrainAfterDrain.every((value) => value === false), `writableNeedDrain is false after each drain: ${trace.needDrainAfterDrain.join(',')}`);
    assert.equal(trace.callbacks, total);
  });

  test('req.socket.destroy() from the app ends the request; the listener sees close on both', async () => {
    const events: string[] = [];
    const app = await start((req, res) => {
      req.on('close', () => events.push('req:close'));
      res.on('close', () => events.push('res:close'));
      res.write('started');
      setImmediate(() => req.socket.destroy());
    });
    const answer = await raw(app, requestParams('GET', '/'));
    assert.equal(answer.body.toString(), 'started');
    await sleep(20);
    assert.deepEqual(events.sort(), ['req:close', 'res:close']);
  });

  test('server close() with requests in flight: they are aborted after the timeout and see close', async () => {
    const events: string[] = [];
    const app = await start((req, res) => {
      req.on('aborted', () => events.push('req:aborted'));
      res.on('close', () => events.push('res:close'));
    });
    const peer = await RawPeer.connect(app.address);
    peer.sendRequest(1, requestParams('GET', '/'));
    await sleep(50);
    await app.server.close({ timeout: 50 });
    peer.close();
    await sleep(20);
    assert.deepEqual(events.sort(), ['req:aborted', 'res:close']);
  });
});
