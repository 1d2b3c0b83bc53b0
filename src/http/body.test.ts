// The request Body on a live server: bytes/text/json and their limits, line reading across records, reading twice, early exit, toReadable.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { RawPeer, requestParams, splitCgi } from '../../test/helpers/raw-peer.js';
import { startServer, type TestServer } from '../../test/helpers/servers.js';
import { isNodefpmError, type ErrorCode } from '../errors.js';
import type { Handler } from './handler.js';

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

/** Sends a POST whose body arrives as one STDIN record per part. */
function sendPost(peer: RawPeer, id: number, parts: Array<string | Buffer>): void {
  const buffers = parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part));
  const total = buffers.reduce((sum, part) => sum + part.length, 0);
  peer.sendBegin(id);
  peer.sendParams(id, requestParams('POST', '/upload', { CONTENT_LENGTH: String(total), CONTENT_TYPE: 'application/octet-stream' }));
  for (const part of buffers) peer.sendStdin(id, part, false);
  peer.sendStdin(id);
}

/**
 * Runs `handler` on a POST with `parts` as its STDIN records, then a plain GET on the same connection
 * (which proves the first request left the connection flowing). Returns the first response.
 */
async function post(handler: Handler, parts: Array<string | Buffer>, server: TestServer = app) {
  current = handler;
  const peer = await RawPeer.connect(server.address);
  try {
    sendPost(peer, 1, parts);
    const response = await peer.waitForEnd(1, 20_000);
    assert.equal(response.endCount, 1, 'exactly one END_REQUEST');
    const cgi = splitCgi(response.stdout);
    current = (_req, res) => {
      res.end('next');
    };
    peer.sendRequest(2, requestParams('GET', '/next'));
    const next = await peer.waitForEnd(2, 20_000);
    assert.equal(splitCgi(next.stdout).body.toString(), 'next', 'the connection serves the next request');
    return { ...cgi, text: cgi.body.toString(), appStatus: response.appStatus };
  } finally {
    peer.close();
  }
}

/** Awaits `action` and returns the NodefpmError code it rejected with (or "no error"). */
async function codeOf(action: () => Promise<unknown>): Promise<ErrorCode | 'no error' | 'not a NodefpmError'> {
  try {
    await action();
    return 'no error';
  } catch (error) {
    return isNodefpmError(error) ? error.code : 'not a NodefpmError';
  }
}

async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('bytes(), text() and json() read the whole body, however it is split into records', async () => {
  let bytes: Buffer | null = null;
  await post(async (req, res) => {
    bytes = await req.bytes();
    res.end();
  }, ['ab', Buffer.from([0, 255]), 'cd']);
  assert.deepEqual(bytes, Buffer.from([0x61, 0x62, 0, 255, 0x63, 0x64]));

  const text = await post(async (req, res) => {
    res.end(`[${await req.text()}]`);
  }, ['hé', 'llo']);
  assert.equal(text.text, '[héllo]');

  const split = Buffer.from('é');
  const acrossRecords = await post(async (req, res) => {
    res.end(`[${await req.text()}]`);
  }, [split.subarray(0, 1), split.subarray(1)]);
  assert.equal(acrossRecords.text, '[é]', 'a UTF-8 character split across records decodes whole');

  const json = await post(async (req, res) => {
    const value = await req.json<{ a: number[] }>();
    res.end(String(value.a.reduce((x, y) => x + y, 0)));
  }, ['{"a": [1,', ' 2, 3]}']);
  assert.equal(json.text, '6');
});

test('an empty body: bytes() is empty, text() is "", readLine() is null', async () => {
  let view: unknown;
  await post(async (req, res) => {
    view = { line: await req.readLine(), text: await req.text() };
    res.end();
  }, []);
  assert.deepEqual(view, { line: null, text: '' });
});

test('over the limit given to bytes()/text()/json(): NODEFPM_BODY_TOO_LARGE, answered 413 when the handler lets it through', async () => {
  const codes: Record<string, string> = {};
  for (const [what, read] of [
    ['bytes', (req) => req.bytes({ limit: 4 })],
    ['text', (req) => req.text({ limit: 4 })],
    ['json', (req) => req.json({ limit: 4 })],
  ] as Array<[string, (req: Parameters<Handler>[0]) => Promise<unknown>]>) {
    await post(async (req, res) => {
      codes[what] = await codeOf(() => read(req));
      res.end();
    }, ['12', '3', '45']);
  }
  assert.deepEqual(codes, { bytes: 'NODEFPM_BODY_TOO_LARGE', text: 'NODEFPM_BODY_TOO_LARGE', json: 'NODEFPM_BODY_TOO_LARGE' });

  const exactly = await post(async (req, res) => {
    res.end(await req.text({ limit: 5 }));
  }, ['12', '345']);
  assert.equal(exactly.text, '12345', 'a body of exactly the limit is fine');

  const refused = await post(async (req, res) => {
    res.end(await req.text({ limit: 4 }));
  }, ['hello!']);
  assert.equal(refused.status, 413);
  assert.match(refused.text, /^413 Payload Too Large\nrequest body is larger than the 4-byte limit/);
});

test('the server-wide bodyLimit and lineLimit apply when no limit is given', async () => {
  const small = await startServer((req, res) => current(req, res), { bodyLimit: 8, lineLimit: 3 });
  try {
    const codes: Record<string, string> = {};
    await post(
      async (req, res) => {
        codes.json = await codeOf(() => req.json());
        res.end();
      },
      ['{"k": "0123456789"}'],
      small,
    );
    await post(
      async (req, res) => {
        codes.readLine = await codeOf(() => req.readLine());
        res.end();
      },
      ['abcd\n'],
      small,
    );
    const fits = await post(
      async (req, res) => {
        res.end(`${await req.readLine()}|${await req.text()}`);
      },
      ['abc\nrest'],
      small,
    );
    assert.deepEqual(codes, { json: 'NODEFPM_BODY_TOO_LARGE', readLine: 'NODEFPM_LINE_TOO_LONG' });
    assert.equal(fits.text, 'abc|rest');
  } finally {
    await small.close();
  }
});

test('malformed JSON: NODEFPM_BODY_MALFORMED, answered 400 when the handler lets it through', async () => {
  let code = '';
  await post(async (req, res) => {
    code = await codeOf(() => req.json());
    res.end();
  }, ['{"a": ']);
  assert.equal(code, 'NODEFPM_BODY_MALFORMED');
  const refused = await post(async (req, res) => {
    await req.json();
    res.end('unreachable');
  }, ['not json']);
  assert.equal(refused.status, 400);
  assert.match(refused.text, /^400 Bad Request\nrequest body is not valid JSON: /);
  assert.equal(refused.appStatus, 0, 'a client error is not an application failure');
});

test('readLine(): LF and CRLF endings, empty lines, and a last line without a newline', async () => {
  let lines: Array<string | null> = [];
  await post(async (req, res) => {
    for (let i = 0; i < 7; i++) lines.push(await req.readLine());
    res.end();
  }, ['one\ntwo\r\n\n\r\nlast']);
  assert.deepEqual(lines, ['one', 'two', '', '', 'last', null, null]);

  lines = [];
  await post(async (req, res) => {
    for (let i = 0; i < 3; i++) lines.push(await req.readLine());
    res.end();
  }, ['ends with newline\n']);
  assert.deepEqual(lines, ['ends with newline', null, null]);
});

test('readLine(): lines split across records, CR and LF in different records, several lines in one record', async () => {
  const lines: Array<string | null> = [];
  await post(async (req, res) => {
    for (let line = await req.readLine(); line !== null; line = await req.readLine()) lines.push(line);
    res.end();
  }, ['he', 'llo\r', '\nwor', 'ld\na\nb\r\nc', '', 'ont', 'inued\n', '\n']);
  assert.deepEqual(lines, ['hello', 'world', 'a', 'b', 'continued', '']);
});

test('readLineBytes() keeps bytes that are not UTF-8', async () => {
  let line: Buffer | null = null;
  await post(async (req, res) => {
    line = await req.body.readLineBytes();
    res.end();
  }, [Buffer.from([0xff, 0xfe, 0x0d, 0x0a, 0x41])]);
  assert.deepEqual(line, Buffer.from([0xff, 0xfe]));
});

test('a line longer than the limit: NODEFPM_LINE_TOO_LONG; a line of exactly the limit passes with LF and with CRLF', async () => {
  const results: Record<string, unknown> = {};
  await post(async (req, res) => {
    results.tooLong = await codeOf(() => req.readLine({ limit: 5 }));
    res.end();
  }, ['abc', 'def\n']);
  await post(async (req, res) => {
    results.noNewline = await codeOf(() => req.readLine({ limit: 5 }));
    res.end();
  }, ['abcdef']);
  await post(async (req, res) => {
    results.lastLineWithCR = await codeOf(() => req.readLine({ limit: 5 }));
    res.end();
  }, ['abcde\r']);
  await post(async (req, res) => {
    results.lf = await req.readLine({ limit: 5 });
    results.crlf = await req.readLine({ limit: 5 });
    results.crlfSplit = await req.readLine({ limit: 5 });
    results.crlfSplitAfter = await req.readLine({ limit: 5 });
    results.end = await req.readLine({ limit: 5 });
    res.end();
  }, ['abcde\nfghij\r\nklm', 'no\r', '\npqrst\r', '\n']);
  const refused = await post(async (req, res) => {
    res.end(String(await req.readLine({ limit: 2 })));
  }, ['long line\n']);
  assert.deepEqual(results, {
    tooLong: 'NODEFPM_LINE_TOO_LONG',
    noNewline: 'NODEFPM_LINE_TOO_LONG',
    lastLineWithCR: 'NODEFPM_LINE_TOO_LONG',
    lf: 'abcde',
    crlf: 'fghij',
    crlfSplit: 'klmno',
    crlfSplitAfter: 'pqrst',
    end: null,
  });
  assert.equal(refused.status, 413);
  assert.match(refused.text, /longer than 2 bytes/);
});

test('readLine() then bytes() takes the rest of the body, the part after the line included', async () => {
  let view: unknown;
  await post(async (req, res) => {
    const first = await req.readLine();
    const second = await req.readLine();
    const rest = (await req.bytes()).toString();
    view = { first, second, rest };
    res.end();
  }, ['header: 1\nheader: 2\r\nbody', ' starts\nhere']);
  assert.deepEqual(view, { first: 'header: 1', second: 'header: 2', rest: 'body starts\nhere' });
});

test('lines() iterates the remaining lines; readLines() returns them, bounded in total', async () => {
  let viaLines: string[] = [];
  let viaReadLines: string[] = [];
  let overLimit = '';
  await post(async (req, res) => {
    const first = await req.readLine();
    viaLines.push(`first=${first}`);
    for await (const line of req.lines()) viaLines.push(line);
    res.end();
  }, ['a\nb\r\n', 'c\n\nd']);
  await post(async (req, res) => {
    viaReadLines = await req.body.readLines();
    res.end();
  }, ['x\ny', '\nz']);
  await post(async (req, res) => {
    overLimit = await codeOf(() => req.body.readLines({ limit: 6 }));
    res.end();
  }, ['abc\ndef\nghi\n']);
  assert.deepEqual(viaLines, ['first=a', 'b', 'c', '', 'd']);
  assert.deepEqual(viaReadLines, ['x', 'y', 'z']);
  assert.equal(overLimit, 'NODEFPM_BODY_TOO_LARGE');
  viaLines = [];
  await post(async (req, res) => {
    for await (const line of req.body.lines({ limit: 3 })) viaLines.push(line);
    res.end();
  }, ['abc\nde']);
  assert.deepEqual(viaLines, ['abc', 'de']);
});

test('reading the body whole twice: NODEFPM_BODY_CONSUMED', async () => {
  const codes: Record<string, string> = {};
  await post(async (req, res) => {
    await req.text();
    codes.textText = await codeOf(() => req.text());
    codes.textBytes = await codeOf(() => req.bytes());
    codes.textJson = await codeOf(() => req.json());
    res.end();
  }, ['"x"']);
  await post(async (req, res) => {
    await req.json();
    codes.jsonText = await codeOf(() => req.body.text());
    res.end();
  }, ['"x"']);
  assert.deepEqual(codes, {
    textText: 'NODEFPM_BODY_CONSUMED',
    textBytes: 'NODEFPM_BODY_CONSUMED',
    textJson: 'NODEFPM_BODY_CONSUMED',
    jsonText: 'NODEFPM_BODY_CONSUMED',
  });
});

test('iterating the body yields every byte in order', async () => {
  const body = Buffer.alloc(300_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 256;
  let received: Buffer | null = null;
  await post(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(Buffer.from(chunk));
    received = Buffer.concat(chunks);
    res.end();
  }, [body]);
  assert.ok(received !== null, 'the handler read the body');
  assert.equal(Buffer.compare(received, body), 0);
});

test('a line read first, then iteration: the rest of that chunk comes first, then every later byte in order', async () => {
  const tail = Buffer.alloc(100_000, 'x');
  let seen: { line: string | null; rest: string } | null = null;
  await post(async (req, res) => {
    const line = await req.readLine();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(Buffer.from(chunk));
    seen = { line, rest: Buffer.concat(chunks).toString() };
    res.end();
  }, [Buffer.from('first line\nsecond '), Buffer.from('part\n'), tail]);
  assert.ok(seen !== null, 'the handler read the body');
  const { line, rest } = seen as { line: string | null; rest: string };
  assert.equal(line, 'first line');
  assert.equal(rest, `second part\n${tail.toString()}`, 'the leftover, then the rest');
});

test('breaking out of for-await discards the rest: the connection keeps reading and serves the next request', async () => {
  // Well over the 128 KiB input high-water mark: without the discard, the socket would stop being read.
  const total = 1024 * 1024;
  let firstChunk = 0;
  let receivedAtEnd = 0;
  await post(async (req, res) => {
    for await (const chunk of req) {
      firstChunk = chunk.length;
      break;
    }
    await until(() => req.body.bytesReceived === total, 'the rest of the body to be received and dropped');
    receivedAtEnd = req.body.bytesReceived;
    res.end('stopped early');
  }, [Buffer.alloc(total, 0x62)]);
  assert.ok(firstChunk > 0, 'one chunk was read before breaking out');
  assert.equal(receivedAtEnd, total);
});

test('toReadable() gives a Node Readable of the body, for pipeline()', async () => {
  const body = Buffer.alloc(200_000, 'abcdefgh');
  let digest = '';
  let count = 0;
  await post(async (req, res) => {
    const hash = createHash('sha256');
    await pipeline(
      req.body.toReadable(),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          count += chunk.length;
          hash.update(chunk);
          callback();
        },
      }),
    );
    digest = hash.digest('hex');
    res.end();
  }, [body.subarray(0, 70_000), body.subarray(70_000)]);
  assert.equal(count, body.length);
  assert.equal(digest, createHash('sha256').update(body).digest('hex'));
});

test('consume() lends every chunk in order, after what a line reader left over, and resolves with the byte count', async () => {
  let view: unknown;
  const response = await post(async (req, res) => {
    const first = await req.readLine();
    const chunks: string[] = [];
    const bytes = await req.body.consume((chunk) => chunks.push(chunk.toString()));
    view = { first, rest: chunks.join(''), bytes, finished: req.body.finished };
    res.end('done');
  }, ['line\nrest of', ' the body', Buffer.alloc(70_000, 'z')]);
  assert.equal(response.text, 'done');
  assert.deepEqual(view, { first: 'line', rest: `rest of the body${'z'.repeat(70_000)}`, bytes: 16 + 70_000, finished: true });
});

test('consume(): a callback that throws rejects it with that error, the rest is dropped, and the connection goes on', async () => {
  let caught: unknown;
  let calls = 0;
  const response = await post(async (req, res) => {
    try {
      await req.body.consume(() => {
        calls++;
        throw new Error('not this body');
      });
    } catch (error) {
      caught = error;
    }
    res.end('handled');
  }, ['one', 'two', Buffer.alloc(100_000, 1)]);
  assert.equal(response.text, 'handled');
  assert.equal((caught as Error).message, 'not this body');
  assert.equal(calls, 1);
});

test('bytes() without a declared length joins the copies of the chunks; with one, fills one buffer of that size', async () => {
  const payload = Buffer.alloc(150_000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  const digest = createHash('sha256').update(payload).digest('hex');
  current = async (req, res) => {
    const bytes = await req.bytes();
    res.end(`${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}`);
  };
  const peer = await RawPeer.connect(app.address);
  try {
    // No CONTENT_LENGTH (Apache sends none for a chunked upload): the body's length is known at its end only.
    const params = requestParams('POST', '/undeclared');
    assert.equal(params.CONTENT_LENGTH, undefined);
    peer.sendBegin(1);
    peer.sendParams(1, params);
    for (let at = 0; at < payload.length; at += 8192) peer.sendStdin(1, payload.subarray(at, at + 8192), false);
    peer.sendStdin(1);
    assert.equal(splitCgi((await peer.waitForEnd(1, 20_000)).stdout).body.toString(), `${payload.length} ${digest}`);

    sendPost(peer, 2, [payload.subarray(0, 70_000), payload.subarray(70_000)]);
    assert.equal(splitCgi((await peer.waitForEnd(2, 20_000)).stdout).body.toString(), `${payload.length} ${digest}`);
  } finally {
    peer.close();
  }
});
