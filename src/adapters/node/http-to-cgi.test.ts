// Unit tests of HttpToCgi: Node's HTTP/1.1 output turned into CGI output, for every way that output can be split.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HttpToCgi, MAX_HEAD_LENGTH, type CgiSink } from './http-to-cgi.js';

/** A sink that records what the translator hands on, and can pretend to be full. */
class Recorder implements CgiSink {
  heads: string[] = [];
  parts: Array<string | Uint8Array> = [];
  needsDrain = false;
  /** What write()/writeHead() return (false simulates a web server that is behind). */
  accept = true;

  writeHead(head: string): boolean {
    this.heads.push(head);
    if (!this.accept) this.needsDrain = true;
    return this.accept;
  }

  write(chunk: string | Uint8Array): boolean {
    this.parts.push(chunk);
    if (!this.accept) this.needsDrain = true;
    return this.accept;
  }

  /** The head bytes as the Exchange sends them (Latin-1). */
  get head(): string {
    assert.equal(this.heads.length, 1, `expected exactly one CGI head, got ${this.heads.length}`);
    return this.heads[0]!;
  }

  /** The body bytes as the Exchange sends them (strings as UTF-8). */
  get body(): Buffer {
    return Buffer.concat(this.parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(part))));
  }
}

function translate(isHead = false): { recorder: Recorder; translator: HttpToCgi; malformed: string[] } {
  const recorder = new Recorder();
  const malformed: string[] = [];
  const translator = new HttpToCgi(recorder, isHead, { malformedOutput: (reason) => malformed.push(reason) });
  return { recorder, translator, malformed };
}

const NODE_HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: Mon, 23 Nov 2026 10:00:00 GMT\r\n' +
  'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n';
const CGI_HEAD = 'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: Mon, 23 Nov 2026 10:00:00 GMT\r\n\r\n';

describe('the head', () => {
  test('a head and body written as one string become a Status: head without hop-by-hop lines, then the body', () => {
    const { recorder, translator } = translate();
    assert.equal(translator.write(NODE_HEAD + 'hello', 'utf8'), true);
    assert.equal(recorder.head, CGI_HEAD);
    assert.equal(recorder.body.toString(), 'hello');
    assert.equal(translator.status, 200);
    assert.equal(translator.headWritten, true);
  });

  test('a Latin-1 head string followed by a Buffer body (what Node writes for Buffer bodies)', () => {
    const { recorder, translator } = translate();
    translator.write(NODE_HEAD, 'latin1');
    assert.equal(recorder.head, CGI_HEAD);
    translator.write(Buffer.from('hello'));
    assert.equal(recorder.body.toString(), 'hello');
  });

  test('a head split at every position, across two writes, comes out the same', () => {
    const whole = NODE_HEAD + 'hello';
    for (let at = 1; at < whole.length; at++) {
      const { recorder, translator } = translate();
      translator.write(whole.slice(0, at), 'latin1');
      translator.write(whole.slice(at), 'latin1');
      assert.equal(recorder.head, CGI_HEAD, `split at ${at}`);
      assert.equal(recorder.body.toString(), 'hello', `split at ${at}`);
    }
  });

  test('a head fed one byte at a time, as Buffers, comes out the same', () => {
    const { recorder, translator } = translate();
    const bytes = Buffer.from(NODE_HEAD + 'hello', 'latin1');
    for (let i = 0; i < bytes.length; i++) translator.write(bytes.subarray(i, i + 1));
    assert.equal(recorder.head, CGI_HEAD);
    assert.equal(recorder.body.toString(), 'hello');
  });

  test('head and body in one Buffer', () => {
    const { recorder, translator } = translate();
    translator.write(Buffer.from(NODE_HEAD + 'hello', 'latin1'));
    assert.equal(recorder.head, CGI_HEAD);
    assert.equal(recorder.body.toString(), 'hello');
  });

  test('a plain Uint8Array (not a Buffer) is accepted', () => {
    const { recorder, translator } = translate();
    translator.write(new Uint8Array(Buffer.from(NODE_HEAD + 'hello', 'latin1')));
    assert.equal(recorder.head, CGI_HEAD);
    assert.equal(recorder.body.toString(), 'hello');
  });

  test('every hop-by-hop header is stripped, in any case; look-alike names are kept', () => {
    const { recorder, translator } = translate();
    translator.write(
      'HTTP/1.1 200 OK\r\nconnection: close\r\nKEEP-ALIVE: timeout=5\r\nTransfer-Encoding: gzip\r\nTE: trailers\r\nTrailer: X-Sum\r\n' +
        'Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nStatus: 418 Teapot\r\nX-Connection: kept\r\nConnection-Id: 7\r\nUpgrades: 2\r\n' +
        'Content-Length: 0\r\n\r\n',
      'latin1',
    );
    assert.equal(recorder.head, 'Status: 200 OK\r\nX-Connection: kept\r\nConnection-Id: 7\r\nUpgrades: 2\r\nContent-Length: 0\r\n\r\n');
  });

  test('repeated Set-Cookie lines stay, each on its own line, in order', () => {
    const { recorder, translator } = translate();
    translator.write('HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nSet-Cookie: c=3\r\nConnection: close\r\n\r\n', 'latin1');
    assert.equal(recorder.head, 'Status: 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nSet-Cookie: c=3\r\n\r\n');
  });

  test('the reason phrase is kept as written, including a custom one and an empty one', () => {
    const custom = translate();
    custom.translator.write('HTTP/1.1 404 Nothing Here\r\n\r\n', 'latin1');
    assert.equal(custom.recorder.head, 'Status: 404 Nothing Here\r\n\r\n');
    const empty = translate();
    empty.translator.write('HTTP/1.1 299 \r\nX: y\r\n\r\n', 'latin1');
    assert.equal(empty.recorder.head, 'Status: 299 \r\nX: y\r\n\r\n');
    assert.equal(empty.translator.status, 299);
  });

  test('header bytes above 0x7F: kept as bytes from a Latin-1 head, UTF-8 encoded when Node prepends the head to a UTF-8 body', () => {
    const latin = translate();
    latin.translator.write('HTTP/1.1 200 OK\r\nX-Name: caf\u00e9\r\n\r\n', 'latin1');
    assert.equal(Buffer.from(latin.recorder.head, 'latin1').toString('hex').includes('636166e9'), true, 'Latin-1 é is one byte E9');
    const utf8 = translate();
    utf8.translator.write('HTTP/1.1 200 OK\r\nX-Name: caf\u00e9\r\n\r\nd\u00e9j\u00e0', 'utf8');
    assert.equal(Buffer.from(utf8.recorder.head, 'latin1').toString('hex').includes('636166c3a9'), true, 'UTF-8 é is C3 A9, as on Node socket');
    assert.equal(utf8.recorder.body.toString('utf8'), 'd\u00e9j\u00e0');
  });

  test('interim 1xx heads (100 Continue, 102, 103 Early Hints) are dropped; the final head follows', () => {
    const { recorder, translator } = translate();
    translator.write('HTTP/1.1 100 Continue\r\n\r\n', 'ascii');
    translator.write('HTTP/1.1 102 Processing\r\n\r\n', 'ascii');
    translator.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n', 'latin1');
    assert.equal(recorder.heads.length, 0);
    assert.equal(translator.headWritten, false);
    translator.write('HTTP/1.1 201 Created\r\nLocation: /x\r\n\r\nmade', 'utf8');
    assert.equal(recorder.head, 'Status: 201 Created\r\nLocation: /x\r\n\r\n');
    assert.equal(recorder.body.toString(), 'made');
  });

  test('an interim head and the final head in one write', () => {
    const { recorder, translator } = translate();
    translator.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'latin1');
    assert.equal(recorder.head, 'Status: 200 OK\r\nContent-Length: 2\r\n\r\n');
    assert.equal(recorder.body.toString(), 'ok');
  });

  test('output that is not an HTTP head becomes a 502 and is reported; what follows is dropped', () => {
    const { recorder, translator, malformed } = translate();
    translator.write('hello world\r\n\r\nmore', 'utf8');
    assert.equal(recorder.head, 'Status: 502 Bad Gateway\r\n\r\n');
    assert.equal(recorder.body.length, 0);
    assert.equal(malformed.length, 1);
    assert.match(malformed[0]!, /HTTP status line/);
    translator.write('even more', 'utf8');
    assert.equal(recorder.body.length, 0);
  });

  test('a head that never ends is cut off at MAX_HEAD_LENGTH', () => {
    const { recorder, translator, malformed } = translate();
    const line = `X-Filler: ${'a'.repeat(1000)}\r\n`;
    translator.write('HTTP/1.1 200 OK\r\n', 'latin1');
    for (let written = 0; written <= MAX_HEAD_LENGTH; written += line.length) translator.write(line, 'latin1');
    assert.equal(malformed.length, 1);
    assert.equal(recorder.head, 'Status: 502 Bad Gateway\r\n\r\n');
  });

  test('a head-only write returns the sink\'s answer; a partial head returns whether the sink is free', () => {
    const { recorder, translator } = translate();
    recorder.accept = false;
    assert.equal(translator.write('HTTP/1.1 200 OK\r\n', 'latin1'), true, 'nothing handed on, sink not yet full');
    assert.equal(translator.write('Content-Length: 0\r\n\r\n', 'latin1'), false, 'the head went to a full sink');
    assert.equal(translator.write('', 'latin1'), false, 'an empty write while the sink needs a drain');
  });
});

describe('bodies without a body', () => {
  test('HEAD: the head goes on, body bytes are dropped whatever the head says', () => {
    const { recorder, translator } = translate(true);
    translator.write(NODE_HEAD, 'latin1');
    translator.write('hello', 'utf8');
    assert.equal(recorder.head, CGI_HEAD);
    assert.equal(recorder.parts.length, 0);
  });

  for (const status of [204, 304]) {
    test(`${status}: body bytes are dropped, chunked or not`, () => {
      const { recorder, translator } = translate();
      translator.write(`HTTP/1.1 ${status} X\r\nETag: "1"\r\nTransfer-Encoding: chunked\r\n\r\n`, 'latin1');
      translator.write('5\r\nhello\r\n0\r\n\r\n', 'latin1');
      assert.equal(recorder.head, `Status: ${status} X\r\nETag: "1"\r\n\r\n`);
      assert.equal(recorder.parts.length, 0);
    });
  }
});

describe('chunked bodies', () => {
  const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n';
  const CHUNKED_CGI = 'Status: 200 OK\r\nContent-Type: text/plain\r\nDate: x\r\n\r\n';

  test('Node\'s own pattern (size, CRLF, data, CRLF per write; "0\\r\\n\\r\\n" at the end): framing removed, data passed whole', () => {
    const { recorder, translator } = translate();
    const crlf = Buffer.from('\r\n');
    translator.write(CHUNKED_HEAD + '5', 'latin1');
    translator.write(crlf);
    const data = 'h\u00e9ll'; // five bytes in UTF-8, as the size line says
    translator.write(data, 'utf8');
    translator.write(crlf);
    translator.write('3', 'latin1');
    translator.write(crlf);
    translator.write(Buffer.from('abc'));
    translator.write(crlf);
    translator.write('0\r\n\r\n', 'latin1');
    assert.equal(recorder.head, CHUNKED_CGI);
    assert.equal(recorder.body.toString('utf8'), 'h\u00e9llabc');
    assert.equal(recorder.parts[0], 'h\u00e9ll', 'a UTF-8 string chunk is passed on as the same string, not re-encoded');
    assert.equal(translator.chunkedComplete, true);
  });

  test('a chunked stream split at every byte gives the same body', () => {
    const framed = Buffer.from(`${CHUNKED_HEAD}a\r\n0123456789\r\n1;ext=1\r\nX\r\n10\r\n${'y'.repeat(16)}\r\n0\r\nX-Trailer: 1\r\n\r\n`, 'latin1');
    for (let at = 1; at < framed.length; at++) {
      const { recorder, translator, malformed } = translate();
      translator.write(framed.subarray(0, at));
      translator.write(framed.subarray(at));
      assert.equal(recorder.head, CHUNKED_CGI, `split at ${at}`);
      assert.equal(recorder.body.toString('latin1'), `0123456789X${'y'.repeat(16)}`, `split at ${at}`);
      assert.deepEqual(malformed, [], `split at ${at}`);
      assert.equal(translator.chunkedComplete, true, `split at ${at}`);
    }
  });

  test('fed one byte at a time', () => {
    const { recorder, translator } = translate();
    const framed = Buffer.from(`${CHUNKED_HEAD}4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n`, 'latin1');
    for (let i = 0; i < framed.length; i++) translator.write(framed.subarray(i, i + 1));
    assert.equal(recorder.body.toString(), 'wikipedia');
  });

  test('data is handed on as views of the written bytes, not copies', () => {
    const { recorder, translator } = translate();
    translator.write(CHUNKED_HEAD, 'latin1');
    const framed = Buffer.from('4\r\nwiki\r\n0\r\n\r\n');
    translator.write(framed);
    const part = recorder.parts[0] as Buffer;
    assert.equal(part.buffer, framed.buffer, 'same memory');
    assert.equal(part.toString(), 'wiki');
  });

  test('trailers after the last chunk are dropped, and nothing after the end is passed on', () => {
    const { recorder, translator } = translate();
    translator.write(`${CHUNKED_HEAD}2\r\nok\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\ngarbage`, 'latin1');
    assert.equal(recorder.body.toString(), 'ok');
  });

  test('"chunked" is recognised as Node recognises it, among other codings', () => {
    const { recorder, translator } = translate();
    translator.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 'latin1');
    assert.equal(recorder.head, 'Status: 200 OK\r\n\r\n');
    assert.equal(recorder.body.toString(), 'abc');
  });

  test('broken framing is reported and the rest dropped', () => {
    const { recorder, translator, malformed } = translate();
    translator.write(`${CHUNKED_HEAD}zz\r\nhello`, 'latin1');
    assert.equal(malformed.length, 1);
    assert.match(malformed[0]!, /chunk/);
    assert.equal(recorder.parts.length, 0);
  });

  test('the return value is the sink\'s, for every data piece', () => {
    const { recorder, translator } = translate();
    translator.write(CHUNKED_HEAD, 'latin1');
    recorder.accept = false;
    assert.equal(translator.write('3\r\nabc\r\n', 'latin1'), false);
    assert.equal(translator.write('\r\n', 'latin1'), false, 'no data passed: still waiting for a drain');
    recorder.accept = true;
    recorder.needsDrain = false;
    assert.equal(translator.write('1\r\nz\r\n', 'latin1'), true);
  });
});

describe('plain bodies', () => {
  test('strings in other encodings are converted to their bytes', () => {
    const { recorder, translator } = translate();
    translator.write(NODE_HEAD, 'latin1');
    translator.write('\u00e9', 'latin1');
    translator.write('6869', 'hex');
    translator.write('IQ==', 'base64');
    assert.deepEqual([...recorder.body], [0xe9, 0x68, 0x69, 0x21]);
  });

  test('a head written in another encoding (hex) is still read', () => {
    const { recorder, translator } = translate();
    translator.write(Buffer.from(NODE_HEAD + 'hi', 'latin1').toString('hex'), 'hex');
    assert.equal(recorder.head, CGI_HEAD);
    assert.equal(recorder.body.toString(), 'hi');
  });

  test('empty writes pass nothing on and report whether the sink is free', () => {
    const { recorder, translator } = translate();
    translator.write(NODE_HEAD, 'latin1');
    assert.equal(translator.write('', 'latin1'), true);
    assert.equal(translator.write(Buffer.alloc(0)), true);
    recorder.needsDrain = true;
    assert.equal(translator.write(''), false);
    assert.equal(recorder.parts.length, 0);
  });

  test('a body that looks like a head is body', () => {
    const { recorder, translator } = translate();
    translator.write(NODE_HEAD, 'latin1');
    translator.write('HTTP/1.1 500 Oops\r\n\r\n', 'latin1');
    assert.equal(recorder.heads.length, 1);
    assert.equal(recorder.body.toString(), 'HTTP/1.1 500 Oops\r\n\r\n');
  });
});
