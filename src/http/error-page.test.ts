// Unit tests of error pages: format by Accept, escaping, what each format shows, and the FCGI_STDERR line prefix.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorDetails, errorPageFormat, renderErrorPage, stderrText } from './error-page.js';

test('format by Accept: html for browsers, json for API clients, text otherwise', () => {
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'text'],
    ['', 'text'],
    ['*/*', 'text'],
    ['text/plain', 'text'],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'html'],
    ['application/xhtml+xml', 'html'],
    ['application/json', 'json'],
    ['application/problem+json', 'json'],
    ['application/json, text/html;q=0.5', 'json'],
    ['text/html;q=0.5, application/json', 'json'],
    ['text/html, application/json', 'html'],
    ['text/html;q=0', 'text'],
    ['TEXT/HTML', 'html'],
  ];
  for (const [accept, format] of cases) assert.equal(errorPageFormat(accept), format, `Accept: ${String(accept)}`);
});

test('text page: status line, message, request id, details', () => {
  const page = renderErrorPage({ status: 400, requestId: 'r-1', message: 'the body is not JSON' }, 'text');
  assert.equal(page.contentType, 'text/plain; charset=utf-8');
  assert.equal(page.body, '400 Bad Request\nthe body is not JSON\nRequest id: r-1\n');
  const bare = renderErrorPage({ status: 500, requestId: 'r-2' }, 'text');
  assert.equal(bare.body, '500 Internal Server Error\nRequest id: r-2\n');
  const dev = renderErrorPage({ status: 500, requestId: 'r-3', message: 'boom', details: 'Error: boom\n    at x' }, 'text');
  assert.equal(dev.body, '500 Internal Server Error\nboom\nRequest id: r-3\n\nError: boom\n    at x\n');
});

test('html page escapes everything it shows', () => {
  const page = renderErrorPage({ status: 404, requestId: '<id>', message: '<script>alert("x")</script>', details: "a & b's" }, 'html');
  assert.equal(page.contentType, 'text/html; charset=utf-8');
  assert.ok(page.body.startsWith('<!DOCTYPE html>'), 'a full document');
  assert.ok(page.body.includes('<title>404 Not Found</title>'), 'the title');
  assert.ok(page.body.includes('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;'), 'the message escaped');
  assert.ok(!page.body.includes('<script>'), 'no live markup from the message');
  assert.ok(page.body.includes('<code>&#60;id&#62;</code>'), 'the request id escaped');
  assert.ok(page.body.includes('<pre>a &#38; b&#39;s</pre>'), 'the details escaped');
});

test('json page', () => {
  const page = renderErrorPage({ status: 431, requestId: 'r', message: 'cookies too big' }, 'json');
  assert.equal(page.contentType, 'application/json; charset=utf-8');
  assert.deepEqual(JSON.parse(page.body), { status: 431, error: 'Request Header Fields Too Large', requestId: 'r', message: 'cookies too big' });
  assert.deepEqual(JSON.parse(renderErrorPage({ status: 599, requestId: 'r' }, 'json').body), { status: 599, error: 'Error', requestId: 'r' });
});

test('errorDetails follows causes', () => {
  const inner = new Error('inner');
  const outer = new Error('outer', { cause: inner });
  const text = errorDetails(outer);
  assert.match(text, /^Error: outer\n/);
  assert.match(text, /\nCaused by: Error: inner\n/);
  assert.equal(errorDetails('plain'), 'plain');
  assert.equal(errorDetails(42), '42');
});

test('stderrText prefixes every line with the pid and request id and neutralises control characters', () => {
  const text = stderrText('abc-1', 'GET / failed: Error: x\n    at a\r\n\n    at b\u001b[31m');
  const prefix = `nodefpm[${process.pid}] request abc-1: `;
  assert.equal(text, `${prefix}GET / failed: Error: x\n${prefix}    at a\n${prefix}    at b?[31m\n`);
});
