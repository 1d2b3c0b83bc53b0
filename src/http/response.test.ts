// The native Response on a live server: the exact CGI head, header rules and errors, Content-Length, bodiless responses, events, toWritable.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { RawPeer, requestParams, type PeerResponse } from '../../test/helpers/raw-peer.js';
import { startServer, type TestServer } from '../../test/helpers/servers.js';
import { isNodefpmError, type ErrorCode } from '../errors.js';
import { RecordType } from '../protocol/index.js';
import type { Handler } from './handler.js';
import type { Response } from './response.js';

let app: TestServer;
let current: Handler = (_req, res) => {
  res.end();
};

before(async () => {
  app = await startServer((req, res) => current(req, res));
});

after(async () => {
  await app.close();
});

/** Runs `handler` for one request and returns what reached the web server. */
async function run(handler: Handler, params: Record<string, string> = requestParams()): Promise<PeerResponse & { text: string }> {
  current = handler;
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, params);
    const response = await peer.waitForEnd(1, 10_000);
    assert.equal(response.endCount, 1, 'exactly one END_REQUEST');
    return { ...response, text: response.stdout.toString('latin1') };
  } finally {
    peer.close();
  }
}

/** Calls `action` and returns the NodefpmError code it threw (or "no error"). */
function codeOf(action: () => unknown): ErrorCode | 'no error' | 'not a NodefpmError' {
  try {
    action();
    return 'no error';
  } catch (error) {
    return isNodefpmError(error) ? error.code : 'not a NodefpmError';
  }
}

/** Resolves with `promise`, or rejects naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('the head is a Status line, the headers in the order set, and the Content-Length end() adds', async () => {
  const { text } = await run((_req, res) => {
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('X-Second', 'two');
    res.setHeader('x-first', 'one');
    res.setHeader('X-Second', 'replaced'); // keeps its place, takes the new value and spelling
    res.setHeader('X-Number', 42);
    res.end('hello');
  });
  assert.equal(
    text,
    'Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Second: replaced\r\nx-first: one\r\nX-Number: 42\r\nContent-Length: 5\r\n\r\nhello',
  );
});

test('standard reasons, custom reasons, and unknown codes', async () => {
  const head = async (setup: (res: Response) => void): Promise<string> => {
    const { text } = await run((_req, res) => {
      setup(res);
      res.end();
    });
    return text.slice(0, text.indexOf('\r\n'));
  };
  assert.equal(await head((res) => (res.statusCode = 404)), 'Status: 404 Not Found');
  assert.equal(await head((res) => (res.statusCode = 201)), 'Status: 201 Created');
  assert.equal(await head((res) => (res.statusCode = 503)), 'Status: 503 Service Unavailable');
  assert.equal(
    await head((res) => {
      res.statusCode = 404;
      res.statusMessage = 'Nope';
    }),
    'Status: 404 Nope',
  );
  // Standard lines are made once per code: a custom reason is never kept for the next response.
  assert.equal(await head((res) => (res.statusCode = 404)), 'Status: 404 Not Found');
  assert.equal(await head((res) => res.writeHead(418, 'Short and stout')), 'Status: 418 Short and stout');
  assert.equal(await head((res) => (res.statusCode = 418)), "Status: 418 I'm a Teapot");
  assert.equal(await head((res) => (res.statusCode = 799)), 'Status: 799 Unknown');
  assert.equal(await head((res) => (res.statusCode = 799)), 'Status: 799 Unknown');
});

test('array values are repeated lines; appendHeader adds values; setHeader replaces them', async () => {
  const { text } = await run((_req, res) => {
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.appendHeader('set-cookie', 'c=3');
    res.appendHeader('Link', '</a>; rel=preload');
    res.appendHeader('Link', ['</b>; rel=preload', '</c>; rel=preload']);
    res.setHeader('X-Replaced', ['old1', 'old2']);
    res.appendHeader('X-Replaced', 'old3');
    res.setHeader('X-Replaced', 'new');
    res.end();
  });
  assert.equal(
    text,
    'Status: 200 OK\r\n' +
      'Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\n' +
      'Link: </a>; rel=preload\r\nLink: </b>; rel=preload\r\nLink: </c>; rel=preload\r\n' +
      'X-Replaced: new\r\nContent-Length: 0\r\n\r\n',
  );
});

test('getHeader, hasHeader, getHeaders, getHeaderNames and removeHeader see the headers by lower-case name', async () => {
  let view: unknown;
  const { text } = await run((_req, res) => {
    res.setHeader('X-A', 'a');
    res.setHeader('Set-Cookie', ['x=1']);
    res.appendHeader('Set-Cookie', 'y=2');
    res.setHeader('X-Gone', 'g');
    res.removeHeader('x-gone');
    view = {
      a: res.getHeader('x-a'),
      cookies: res.getHeader('SET-COOKIE'),
      has: res.hasHeader('X-a'),
      gone: res.hasHeader('X-Gone'),
      names: res.getHeaderNames(),
      all: { ...res.getHeaders() },
    };
    res.end();
  });
  assert.deepEqual(view, {
    a: 'a',
    cookies: ['x=1', 'y=2'],
    has: true,
    gone: false,
    names: ['x-a', 'set-cookie'],
    all: { 'x-a': 'a', 'set-cookie': ['x=1', 'y=2'] },
  });
  assert.equal(text.includes('X-Gone'), false);
});

test('hop-by-hop headers and a "Status" header are never sent', async () => {
  const hopByHop = ['Connection', 'Keep-Alive', 'Proxy-Connection', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'Status'];
  const { text } = await run((_req, res) => {
    for (const name of hopByHop) res.setHeader(name, name === 'Status' ? '500 Oops' : 'x');
    res.setHeader('X-Kept', 'yes');
    res.end('body');
  });
  assert.equal(text, 'Status: 200 OK\r\nX-Kept: yes\r\nContent-Length: 4\r\n\r\nbody');

  const viaWriteHead = await run((_req, res) => {
    res.writeHead(200, { 'Transfer-Encoding': 'chunked', Connection: 'close', 'Content-Type': 'text/plain' });
    res.end('x');
  });
  assert.equal(viaWriteHead.text, 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nx');
});

test('header names must be tokens and values must not hold CR, LF, NUL or characters above U+00FF: NODEFPM_INVALID_HEADER', async () => {
  const codes: Record<string, string> = {};
  const { text } = await run((_req, res) => {
    const attempts: Record<string, () => unknown> = {
      'name with space': () => res.setHeader('Bad Name', 'x'),
      'name with colon': () => res.setHeader('X:Y', 'x'),
      'empty name': () => res.setHeader('', 'x'),
      'name with CRLF': () => res.setHeader('X-A\r\nX-B', 'x'),
      'non-ASCII name': () => res.setHeader('X-Ünicode', 'x'),
      'value with CRLF': () => res.setHeader('X-Inject', 'a\r\nInjected: 1'),
      'value with LF': () => res.setHeader('X-Inject', 'a\nb'),
      'value with CR': () => res.setHeader('X-Inject', 'a\rb'),
      'value with NUL': () => res.setHeader('X-Inject', 'a\0b'),
      'value above U+00FF': () => res.setHeader('X-Inject', '€'),
      'array item with LF': () => res.setHeader('X-Inject', ['fine', 'bad\n']),
      'appended value with CRLF': () => res.appendHeader('X-Inject', 'a\r\nb'),
      'appended bad name': () => res.appendHeader('Bad Name', 'x'),
      'writeHead header with LF': () => res.writeHead(200, { 'X-Inject': 'a\nb' }),
    };
    for (const [what, attempt] of Object.entries(attempts)) codes[what] = codeOf(attempt);
    // Allowed: tabs, and Latin-1 characters (sent as single bytes).
    res.setHeader('X-Tab', 'a\tb');
    res.setHeader('X-Latin1', 'café');
    res.end();
  });
  for (const [what, code] of Object.entries(codes)) assert.equal(code, 'NODEFPM_INVALID_HEADER', what);
  assert.equal(text, 'Status: 200 OK\r\nX-Tab: a\tb\r\nX-Latin1: caf\xe9\r\nContent-Length: 0\r\n\r\n', 'nothing invalid reached the head');
});

test('changing headers after the head is out: NODEFPM_HEADERS_SENT', async () => {
  const codes: Record<string, string> = {};
  let sentBefore = true;
  let sentAfter = false;
  const { text } = await run((_req, res) => {
    sentBefore = res.headersSent;
    res.write('first');
    sentAfter = res.headersSent;
    codes.setHeader = codeOf(() => res.setHeader('X-Late', 'x'));
    codes.appendHeader = codeOf(() => res.appendHeader('X-Late', 'x'));
    codes.removeHeader = codeOf(() => res.removeHeader('X-Late'));
    codes.writeHead = codeOf(() => res.writeHead(500));
    res.end(' last');
  });
  assert.equal(sentBefore, false);
  assert.equal(sentAfter, true);
  assert.deepEqual(codes, {
    setHeader: 'NODEFPM_HEADERS_SENT',
    appendHeader: 'NODEFPM_HEADERS_SENT',
    removeHeader: 'NODEFPM_HEADERS_SENT',
    writeHead: 'NODEFPM_HEADERS_SENT',
  });
  assert.equal(text, 'Status: 200 OK\r\n\r\nfirst last', 'no Content-Length once the head went out before the end');
});

test('write after end: NODEFPM_WRITE_AFTER_END; a second end() does nothing', async () => {
  let code = '';
  let secondEnd: unknown;
  let ended = false;
  const response = await run((_req, res) => {
    res.end('done');
    ended = res.writableEnded;
    code = codeOf(() => res.write('more'));
    secondEnd = res.end('again') === res;
  });
  assert.equal(ended, true);
  assert.equal(code, 'NODEFPM_WRITE_AFTER_END');
  assert.equal(secondEnd, true);
  assert.equal(response.text, 'Status: 200 OK\r\nContent-Length: 4\r\n\r\ndone');
  assert.equal(response.appStatus, 0);
});

test('an invalid status: NODEFPM_INVALID_STATUS, and nothing of the failed attempt leaks into the response', async () => {
  const codes: Record<string, string> = {};
  const { text } = await run((_req, res) => {
    for (const status of [99, 1000, 200.5, Number.NaN, -200]) {
      res.statusCode = status;
      codes[String(status)] = codeOf(() => res.end('short'));
    }
    res.statusCode = 200;
    res.statusMessage = 'OK\r\nInjected: 1';
    codes.reasonWithCRLF = codeOf(() => res.write('x'));
    res.statusMessage = undefined;
    codes.writeHead = codeOf(() => res.writeHead(42));
    res.statusCode = 202;
    res.end('a longer body');
  });
  for (const [what, code] of Object.entries(codes)) assert.equal(code, 'NODEFPM_INVALID_STATUS', what);
  assert.equal(text, 'Status: 202 Accepted\r\nContent-Length: 13\r\n\r\na longer body');
});

test('Content-Length from end(): counted in bytes, for strings in any encoding and for Buffers; an explicit one is kept', async () => {
  const lengthOf = async (handler: Handler): Promise<{ length: string | undefined; body: string; lines: number }> => {
    const { text } = await run(handler);
    const split = text.indexOf('\r\n\r\n');
    const lines = text.slice(0, split).split('\r\n');
    const found = lines.filter((line) => line.toLowerCase().startsWith('content-length:'));
    return { length: found[0]?.slice(16), body: text.slice(split + 4), lines: found.length };
  };
  assert.deepEqual(await lengthOf((_req, res) => void res.end('héllo')), { length: '6', body: 'h\xc3\xa9llo', lines: 1 });
  assert.deepEqual(await lengthOf((_req, res) => void res.end(Buffer.from([1, 2, 3]))), { length: '3', body: '\x01\x02\x03', lines: 1 });
  assert.deepEqual(await lengthOf((_req, res) => void res.end('68656c6c6f', 'hex')), { length: '5', body: 'hello', lines: 1 });
  assert.deepEqual(await lengthOf((_req, res) => void res.end()), { length: '0', body: '', lines: 1 });
  assert.deepEqual(
    await lengthOf((_req, res) => {
      res.setHeader('content-length', '3');
      res.end('abc');
    }),
    { length: '3', body: 'abc', lines: 1 },
  );
  assert.deepEqual(
    await lengthOf((_req, res) => {
      res.write('streamed');
      res.end();
    }),
    { length: undefined, body: 'streamed', lines: 0 },
  );
});

test('end() with an unknown encoding throws before the head is decided: a later end() still sends the whole response', async () => {
  let thrown: unknown = null;
  const { text } = await run((_req, res) => {
    res.statusCode = 201;
    try {
      res.end('body', 'no-such-encoding' as BufferEncoding);
    } catch (error) {
      thrown = error;
    }
    assert.equal(res.headersSent, false, 'nothing was decided');
    res.end('done');
  });
  assert.equal((thrown as { code?: string } | null)?.code, 'ERR_UNKNOWN_ENCODING');
  assert.equal(text, 'Status: 201 Created\r\nContent-Length: 4\r\n\r\ndone');
});

test('HEAD: no body and no automatic Content-Length; one set by the handler is kept', async () => {
  const head = requestParams('HEAD', '/');
  const plain = await run((_req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.write('dropped ');
    res.end('also dropped');
  }, head);
  assert.equal(plain.text, 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n');
  const declared = await run((_req, res) => {
    res.setHeader('Content-Length', '12');
    res.end('also dropped');
  }, head);
  assert.equal(declared.text, 'Status: 200 OK\r\nContent-Length: 12\r\n\r\n');
});

test('204 and 304: no body and no automatic Content-Length', async () => {
  for (const [status, reason] of [
    [204, 'No Content'],
    [304, 'Not Modified'],
  ] as const) {
    let writeResult: boolean | undefined;
    const { text } = await run((_req, res) => {
      res.statusCode = status;
      res.setHeader('ETag', '"v1"');
      writeResult = res.write('dropped');
      res.end('dropped too');
    });
    assert.equal(text, `Status: ${status} ${reason}\r\nETag: "v1"\r\n\r\n`);
    assert.equal(writeResult, true, 'a dropped write never asks the caller to wait');
  }
});

test('writeHead(status, headers) sets everything and sends the head at once', async () => {
  let sent = false;
  let status = 0;
  const { text } = await run((_req, res) => {
    res.setHeader('X-Before', 'b');
    res.writeHead(201, { 'Content-Type': 'application/json', 'X-List': ['1', '2'] });
    sent = res.headersSent;
    status = res.statusCode;
    res.end('{}');
  });
  assert.equal(sent, true);
  assert.equal(status, 201);
  assert.equal(text, 'Status: 201 Created\r\nX-Before: b\r\nContent-Type: application/json\r\nX-List: 1\r\nX-List: 2\r\n\r\n{}');
});

test('flushHeaders sends the head before any body is written', async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  current = async (_req, res) => {
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/event-stream');
    res.flushHeaders();
    res.flushHeaders(); // a second call does nothing
    await released;
    res.end('data: late\n\n');
  };
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams());
    await peer.waitFor(
      (records) => Buffer.concat(records.filter((r) => r.type === RecordType.Stdout).map((r) => r.content)).includes('\r\n\r\n'),
      10_000,
      'the head',
    );
    assert.equal(peer.response(1).endCount, 0, 'the response is still open');
    assert.equal(peer.response(1).stdout.toString('latin1'), 'Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\n');
    release();
    const response = await peer.waitForEnd(1, 10_000);
    assert.equal(response.stdout.toString('latin1'), 'Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: late\n\n');
  } finally {
    release();
    peer.close();
  }
});

test("'finish' then 'close', once each, when the response ends", async () => {
  const events: string[] = [];
  await run((_req, res) => {
    res.on('finish', () => events.push(`finish ended=${String(res.writableEnded)}`));
    res.on('close', () => events.push('close'));
    res.end('x');
    res.end();
  });
  assert.deepEqual(events, ['finish ended=true', 'close']);
});

test("'close' fires when the web server aborts the request, before any 'finish'; END_REQUEST still goes out once", async () => {
  const events: string[] = [];
  current = (req, res) => {
    res.on('finish', () => events.push('finish'));
    res.on('close', () => {
      events.push(`close aborted=${String(req.aborted)}`);
      // The handler learns of the abort only through 'close' here, and ends the request.
      res.end();
    });
    res.write('partial');
  };
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams());
    await peer.waitFor((records) => records.some((r) => r.type === RecordType.Stdout && r.content.length > 0), 10_000, 'the first output');
    peer.sendAbort(1);
    const response = await peer.waitForEnd(1, 10_000);
    assert.equal(response.endCount, 1);
    assert.deepEqual(events, ['close aborted=true', 'finish'], "'close' once, when the abort arrived");
  } finally {
    peer.close();
  }
});

test('toWritable() works with pipeline(), waiting for drain when the web server reads slowly', async () => {
  const total = 4 * 1024 * 1024;
  let response: Response | null = null;
  let drains = 0;
  let outcome: Promise<unknown> = Promise.resolve('not started');
  current = (_req, res) => {
    response = res;
    res.on('drain', () => drains++);
    res.setHeader('Content-Type', 'application/octet-stream');
    const chunks = Array.from({ length: total / 65536 }, (_, i) => Buffer.alloc(65536, i % 251));
    outcome = pipeline(Readable.from(chunks), res.toWritable()).then(
      () => 'done',
      (error: unknown) => error,
    );
  };
  const peer = await RawPeer.connect(app.address);
  try {
    peer.socket.pause();
    peer.sendRequest(1, requestParams());
    // The peer reads nothing, so the socket's buffers fill and the response must ask the pipeline to wait.
    await until(() => response?.writableNeedDrain === true, 'write() to return false');
    peer.socket.resume();
    const result = await peer.waitForEnd(1, 30_000);
    assert.equal(await within(outcome, 10_000, 'the pipeline'), 'done');
    assert.ok(drains >= 1, `'drain' was emitted (${drains} times)`);
    const split = result.stdout.indexOf('\r\n\r\n');
    assert.equal(result.stdout.toString('latin1', 0, split), 'Status: 200 OK\r\nContent-Type: application/octet-stream');
    const body = result.stdout.subarray(split + 4);
    assert.equal(body.length, total);
    for (let i = 0; i < total / 65536; i++) assert.equal(body[i * 65536 + 100], i % 251, `chunk ${i} in place`);
  } finally {
    peer.close();
  }
});

test('toWritable(): a pipeline into a response whose connection is lost fails instead of hanging', async () => {
  let response: Response | null = null;
  let outcome: Promise<unknown> = Promise.resolve('not started');
  current = (_req, res) => {
    response = res;
    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(65536, 0x61));
      },
    });
    outcome = pipeline(endless, res.toWritable()).then(
      () => 'resolved',
      (error: unknown) => error,
    );
  };
  const peer = await RawPeer.connect(app.address);
  peer.socket.pause();
  peer.sendRequest(1, requestParams());
  try {
    await until(() => response?.writableNeedDrain === true, 'write() to return false');
  } finally {
    peer.close();
  }
  const result = await within(outcome, 10_000, 'the pipeline after the connection was lost');
  assert.ok(isNodefpmError(result, 'NODEFPM_CONNECTION_LOST'), `the pipeline fails with the abort reason, got ${String(result)}`);
});

test('toWritable(): a pipeline that throws inside the response (bad status) fails the pipeline', async () => {
  let outcome: Promise<unknown> = Promise.resolve('not started');
  const response = await run((_req, res) => {
    res.statusCode = 42;
    outcome = pipeline(Readable.from([Buffer.from('x')]), res.toWritable()).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    return outcome.then(() => {
      res.statusCode = 500;
      res.end('recovered');
    });
  });
  const result = await outcome;
  assert.ok(isNodefpmError(result, 'NODEFPM_INVALID_STATUS'), `the pipeline fails with the response's error, got ${String(result)}`);
  assert.equal(response.text, 'Status: 500 Internal Server Error\r\nContent-Length: 9\r\n\r\nrecovered');
});
