// Tests for the CGI response head parser: statuses, header forms, every chunk split, and the malformed heads it refuses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { CgiHeadParser, DEFAULT_MAX_HEAD_BYTES, type CgiHead } from './cgi-response.js';

function parseWhole(text: string | Buffer, maxHeadBytes?: number): { head: CgiHead; rest: Buffer } {
  const parser = new CgiHeadParser(maxHeadBytes === undefined ? {} : { maxHeadBytes });
  const result = parser.push(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'));
  assert.ok(result !== null, 'head should be complete');
  return { head: result.head, rest: Buffer.from(result.rest) };
}

/** Feeds `input` split at every position into two chunks, and into one-byte chunks: all must agree. */
function parseAllSplits(input: string): { head: CgiHead; body: string } {
  const bytes = Buffer.from(input, 'latin1');
  const outcomes: Array<{ head: CgiHead; body: string }> = [];
  const splits: Buffer[][] = [[bytes]];
  for (let at = 1; at < bytes.length; at++) splits.push([bytes.subarray(0, at), bytes.subarray(at)]);
  splits.push([...bytes].map((byte) => Buffer.from([byte])));
  for (const chunks of splits) {
    const parser = new CgiHeadParser();
    let body = '';
    let head: CgiHead | null = null;
    for (const chunk of chunks) {
      if (head !== null) {
        body += chunk.toString('latin1');
        continue;
      }
      const result = parser.push(chunk);
      if (result !== null) {
        head = result.head;
        body += result.rest.toString('latin1');
      }
    }
    assert.ok(head !== null, `head incomplete for split ${chunks.map((c) => c.length).join('+')}`);
    outcomes.push({ head, body });
  }
  for (const outcome of outcomes) assert.deepEqual(outcome, outcomes[0]);
  return outcomes[0]!;
}

test('no Status gives 200 OK; the bytes after the blank line are body', () => {
  const { head, rest } = parseWhole('Content-Type: text/plain\r\n\r\nhello');
  assert.equal(head.status, 200);
  assert.equal(head.statusText, 'OK');
  assert.deepEqual({ ...head.headers }, { 'content-type': 'text/plain' });
  assert.deepEqual(head.rawHeaders, [['Content-Type', 'text/plain']]);
  assert.equal(rest.toString(), 'hello');
});

test('Status gives the code and reason, and is not a header', () => {
  const { head } = parseWhole('Status: 404 Nope Not Here\r\nX-A: 1\r\n\r\n');
  assert.equal(head.status, 404);
  assert.equal(head.statusText, 'Nope Not Here');
  assert.deepEqual(head.rawHeaders, [['X-A', '1']]);
  assert.equal(head.headers.status, undefined);
});

test('Status without a reason takes the standard one', () => {
  assert.equal(parseWhole('status: 503\n\n').head.statusText, 'Service Unavailable');
  assert.equal(parseWhole('Status: 299\n\n').head.statusText, '');
});

test('Location without Status is a 302; with Status the Status wins', () => {
  const redirect = parseWhole('Location: https://example.org/\r\n\r\n').head;
  assert.equal(redirect.status, 302);
  assert.equal(redirect.statusText, 'Found');
  assert.equal(redirect.headers.location, 'https://example.org/');
  const created = parseWhole('Location: /x\r\nStatus: 201 Created\r\n\r\n').head;
  assert.equal(created.status, 201);
});

test('repeated headers become arrays in order; rawHeaders keeps case and order', () => {
  const { head } = parseWhole('Set-Cookie: a=1\nX-One: x\nset-cookie: b=2\nSET-COOKIE: c=3\n\n');
  assert.deepEqual(head.headers['set-cookie'], ['a=1', 'b=2', 'c=3']);
  assert.equal(head.headers['x-one'], 'x');
  assert.deepEqual(head.rawHeaders, [
    ['Set-Cookie', 'a=1'],
    ['X-One', 'x'],
    ['set-cookie', 'b=2'],
    ['SET-COOKIE', 'c=3'],
  ]);
});

test('headers is a null-prototype map: constructor and __proto__ are plain names', () => {
  const { head } = parseWhole('Constructor: yes\n__proto__: also\n\n');
  assert.equal(head.headers.constructor, 'yes');
  assert.equal(Object.getPrototypeOf(head.headers), null);
  assert.equal(head.headers['__proto__'], 'also');
});

test('values are trimmed of spaces and tabs; empty values are kept; Latin-1 bytes survive', () => {
  const { head } = parseWhole(Buffer.concat([Buffer.from('A:\t  v a l \t\r\nB:\r\nC: caf'), Buffer.from([0xe9]), Buffer.from('\r\n\r\n')]));
  assert.equal(head.headers.a, 'v a l');
  assert.equal(head.headers.b, '');
  assert.equal(head.headers.c, 'caf\u00e9');
});

test('a folded line continues the previous header', () => {
  const { head } = parseWhole('X-Long: one\r\n  two\r\n\tthree\r\n\r\n');
  assert.equal(head.headers['x-long'], 'one two three');
});

test('the same result for every chunk split, CRLF and bare LF mixed', () => {
  const { head, body } = parseAllSplits('Status: 418 Teapot\r\nContent-Type: text/html\nX-A: 1\r\nX-A: 2\r\n\r\nbody\r\n\r\nmore');
  assert.equal(head.status, 418);
  assert.equal(head.statusText, 'Teapot');
  assert.deepEqual(head.headers['x-a'], ['1', '2']);
  assert.equal(head.headers['content-type'], 'text/html');
  assert.equal(body, 'body\r\n\r\nmore');
});

test('an empty head (a blank first line) is 200 with no headers', () => {
  const { head, rest } = parseWhole('\r\nraw');
  assert.equal(head.status, 200);
  assert.deepEqual(head.rawHeaders, []);
  assert.equal(rest.toString(), 'raw');
});

test('finish(): empty STDOUT is 200 with no headers', () => {
  const parser = new CgiHeadParser();
  const head = parser.finish();
  assert.equal(head.status, 200);
  assert.deepEqual(head.rawHeaders, []);
});

test('finish(): a head without its blank line counts the last line, ended or not', () => {
  const a = new CgiHeadParser();
  assert.equal(a.push(Buffer.from('Status: 403 Denied\r\n')), null);
  assert.equal(a.finish().status, 403);
  const b = new CgiHeadParser();
  assert.equal(b.push(Buffer.from('X-A: 1\r\nStatus: 401')), null);
  const head = b.finish();
  assert.equal(head.status, 401);
  assert.deepEqual(head.rawHeaders, [['X-A', '1']]);
});

const malformed: Array<[string, string | Buffer, RegExp]> = [
  ['a line without a colon', 'Content-Type: text/plain\r\nhello world\r\n\r\n', /line 2 "hello world" has no colon/],
  ['body without any head', '<html>\n\n', /has no colon/],
  ['a name with a space', 'Bad Name: x\r\n\r\n', /not a valid HTTP token/],
  ['an empty name', ': x\r\n\r\n', /not a valid HTTP token/],
  ['a space before the colon', 'Name : x\r\n\r\n', /not a valid HTTP token/],
  ['a status that is not a code', 'Status: OK\r\n\r\n', /three-digit code/],
  ['a two-digit status', 'Status: 99 Low\r\n\r\n', /three-digit code/],
  ['Status twice', 'Status: 200\r\nStatus: 404\r\n\r\n', /Status is given twice/],
  ['a NUL in a value', 'X-A: a\u0000b\r\n\r\n', /NUL or CR/],
  ['a bare CR in a value', 'X-A: a\rb\r\n\r\n', /NUL or CR/],
  ['a fold on the first line', ' X-A: 1\r\n\r\n', /starts with whitespace/],
];

for (const [what, input, message] of malformed) {
  test(`refuses ${what}`, () => {
    const parser = new CgiHeadParser();
    assert.throws(
      () => parser.push(Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1')),
      (error: unknown) => isNodefpmError(error, 'NODEFPM_CLIENT_BAD_RESPONSE') && message.test(error.message),
    );
  });
}

test('finish() refuses output that is not a head', () => {
  const parser = new CgiHeadParser();
  assert.equal(parser.push(Buffer.from('hello')), null);
  assert.throws(() => parser.finish(), (error: unknown) => isNodefpmError(error, 'NODEFPM_CLIENT_BAD_RESPONSE'));
});

test('a head over maxHeadBytes is refused, even when it arrives a byte at a time', () => {
  const parser = new CgiHeadParser({ maxHeadBytes: 100 });
  const line = Buffer.from(`X-Pad: ${'p'.repeat(200)}\r\n`);
  assert.throws(
    () => {
      for (const byte of line) parser.push(Buffer.from([byte]));
    },
    (error: unknown) => isNodefpmError(error, 'NODEFPM_CLIENT_BAD_RESPONSE') && /maxHeadBytes \(100 bytes\)/.test(error.message),
  );
  assert.ok(parser.bytesSeen <= 101);
});

test('a head of exactly maxHeadBytes passes; body bytes after it do not count', () => {
  const head = 'X-A: 12345\r\n\r\n';
  const result = new CgiHeadParser({ maxHeadBytes: head.length }).push(Buffer.from(head + 'b'.repeat(1000)));
  assert.ok(result !== null);
  assert.equal(result.rest.length, 1000);
  assert.throws(() => new CgiHeadParser({ maxHeadBytes: head.length - 1 }).push(Buffer.from(head)), /maxHeadBytes/);
});

test('the default bound is 64 KiB', () => {
  assert.equal(DEFAULT_MAX_HEAD_BYTES, 65536);
  const big = `X-Big: ${'x'.repeat(70_000)}\r\n\r\n`;
  assert.throws(() => new CgiHeadParser().push(Buffer.from(big)), /maxHeadBytes/);
});

test('push after the head is complete is a programming error', () => {
  const parser = new CgiHeadParser();
  assert.ok(parser.push(Buffer.from('\n')) !== null);
  assert.throws(() => parser.push(Buffer.from('x')), /after the head was complete/);
  assert.equal(parser.head?.status, 200);
});
