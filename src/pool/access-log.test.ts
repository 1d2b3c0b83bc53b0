// Tests for the access log formats: the Common and Combined Log Formats, JSON lines, php-fpm placeholders and their errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { accessFormatter, statusOfHead, strftime, type AccessRecord } from './access-log.js';

const params: Record<string, string> = {
  REMOTE_ADDR: '192.0.2.1',
  REQUEST_METHOD: 'POST',
  REQUEST_URI: '/form?a=1',
  QUERY_STRING: 'a=1',
  SERVER_PROTOCOL: 'HTTP/1.1',
  HTTP_USER_AGENT: 'curl/8',
  CONTENT_LENGTH: '12',
  SCRIPT_FILENAME: '/srv/app.js',
};

const record: AccessRecord = {
  start: Date.UTC(2024, 0, 2, 3, 4, 5),
  duration: 12.3456,
  status: 201,
  bytes: 42,
  param: (name) => params[name] ?? '',
  pid: 99,
  pool: 'www',
  memory: 3 * 1024 * 1024,
  cpu: 12.5,
};

test('common and combined are the Apache layouts; missing values are "-"', () => {
  const time = strftime('%d/%b/%Y:%H:%M:%S %z', record.start);
  assert.equal(accessFormatter('common')(record), `192.0.2.1 - - [${time}] "POST /form?a=1 HTTP/1.1" 201 42\n`);
  assert.equal(accessFormatter('combined')(record), `192.0.2.1 - - [${time}] "POST /form?a=1 HTTP/1.1" 201 42 "-" "curl/8"\n`);
  assert.match(accessFormatter('common')({ ...record, bytes: 0 }), / 201 -\n$/, 'no body: "-"');
});

test('json: one object per line with the request, the response and the worker', () => {
  const entry = JSON.parse(accessFormatter('json')(record)) as Record<string, unknown>;
  assert.deepEqual(entry, {
    time: '2024-01-02T03:04:05.000Z',
    remote_addr: '192.0.2.1',
    remote_user: null,
    method: 'POST',
    uri: '/form?a=1',
    protocol: 'HTTP/1.1',
    status: 201,
    bytes: 42,
    duration_ms: 12.346,
    content_length: 12,
    referer: null,
    user_agent: 'curl/8',
    pid: 99,
    pool: 'www',
  });
});

test("php-fpm's placeholders, with their {arguments}", () => {
  const format = (template: string): string => accessFormatter(template)(record).trimEnd();
  assert.equal(format('%m %r %Q%q %s %l %f %n %p %R %u %%'), 'POST /form ?a=1 201 12 /srv/app.js www 99 192.0.2.1 - %');
  assert.equal(format('%d|%{seconds}d|%{milliseconds}d|%{micro}d'), '12346|0.012|12.346|12346');
  assert.equal(format('%M %{kilo}M %{mega}M %C'), `${3 * 1024 * 1024} 3072 3 12.50`);
  assert.equal(format('%{HTTP_USER_AGENT}e %{HTTP_NOPE}e'), 'curl/8 -');
  assert.equal(format('%{%Y-%m-%d}t'), strftime('%Y-%m-%d', record.start));
  for (const [bad, message] of [
    ['%Z', /unknown placeholder %Z/],
    ['%{x', /unclosed %\{/],
    ['ends %', /ends with a lone %/],
    ['%e', /%e needs a param name/],
    ['%{hours}d', /the unit must be seconds, milliseconds or microseconds/],
  ] as const) {
    assert.throws(() => accessFormatter(bad), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION') && message.test(error.message), bad);
  }
});

test('the status of a CGI head: its Status line, 302 with a Location, else 200', () => {
  assert.equal(statusOfHead('Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n'), 404);
  assert.equal(statusOfHead('Content-Type: text/plain\r\nstatus:503\r\n\r\n'), 503);
  assert.equal(statusOfHead('Location: /there\r\n\r\n'), 302);
  assert.equal(statusOfHead('Content-Type: text/html\r\n\r\n'), 200);
});
