// Unit tests of cookie parsing (lenient, as browsers send) and serialising (strict, every attribute, exact strings).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { decodeCookieValue, encodeCookieValue, parseCookieHeader, serializeCookie, type CookieOptions } from './cookies.js';

const isInvalid = (error: unknown): boolean => isNodefpmError(error, 'NODEFPM_COOKIE_INVALID');

test('parse: pairs split on ";", spaces and tabs trimmed, null prototype', () => {
  const cookies = parseCookieHeader('a=1; b=2;c=3 ;\td = 4\t;  e=');
  assert.deepEqual({ ...cookies }, { a: '1', b: '2', c: '3', d: '4', e: '' });
  assert.equal(Object.getPrototypeOf(cookies), null);
  const tricky = parseCookieHeader('__proto__=x; constructor=y; toString=z');
  assert.equal(tricky.__proto__, 'x');
  assert.equal(tricky.constructor, 'y');
  assert.equal(tricky.toString, 'z');
  assert.equal(Object.getPrototypeOf(tricky), null, 'a __proto__ cookie does not change the prototype');
});

test('parse: empty and absent headers give an empty object', () => {
  for (const header of ['', undefined, null, ';', ' ; ; ', '=', '=x']) {
    assert.deepEqual({ ...parseCookieHeader(header) }, {}, `header ${JSON.stringify(header)}`);
  }
});

test('parse: the first occurrence of a name wins (browsers send the most specific path first)', () => {
  assert.deepEqual({ ...parseCookieHeader('sid=deep; other=1; sid=shallow') }, { sid: 'deep', other: '1' });
});

test('parse: pairs without "=" are skipped; values may hold "=" and quotes are removed once', () => {
  assert.deepEqual({ ...parseCookieHeader('flag; a=b=c; q="quoted"; h="; x=1') }, { a: 'b=c', q: 'quoted', h: '"', x: '1' });
  assert.equal(parseCookieHeader('q=""').q, '');
  assert.equal(parseCookieHeader('q="a"b"').q, 'a"b', 'only a surrounding pair of quotes is removed');
});

test('parse: percent-decoding, never throwing, keeping the raw value when it is not valid UTF-8 percent-encoding', () => {
  const cookies = parseCookieHeader('a=hello%20world; b=%E2%9C%93; c=100%; d=%E2%9C; e=%zz; f=%25');
  assert.equal(cookies.a, 'hello world');
  assert.equal(cookies.b, '✓');
  assert.equal(cookies.c, '100%', 'a lone % is kept');
  assert.equal(cookies.d, '%E2%9C', 'a truncated UTF-8 sequence is kept raw');
  assert.equal(cookies.e, '%zz');
  assert.equal(cookies.f, '%');
  assert.equal(decodeCookieValue('%ff'), '%ff');
});

test('parse: names are case-sensitive and kept as sent, odd bytes survive', () => {
  const cookies = parseCookieHeader('SID=1; sid=2; wéird=\u00e9; a b=3');
  assert.equal(cookies.SID, '1');
  assert.equal(cookies.sid, '2');
  assert.equal(cookies['wéird'], 'é');
  assert.equal(cookies['a b'], '3', 'browsers send such names; the parser does not judge them');
});

test('serialize: every attribute, in a fixed order, as exact strings', () => {
  const expires = new Date(Date.UTC(2030, 0, 2, 3, 4, 5));
  const cases: Array<[string, string, CookieOptions, string]> = [
    ['a', 'b', {}, 'a=b'],
    ['a', '', {}, 'a='],
    ['sid', 'x', { maxAge: 3600 }, 'sid=x; Max-Age=3600'],
    ['sid', 'x', { maxAge: 1.9 }, 'sid=x; Max-Age=1'],
    ['sid', 'x', { maxAge: 0 }, 'sid=x; Max-Age=0'],
    ['sid', 'x', { maxAge: -5 }, 'sid=x; Max-Age=-5'],
    ['sid', 'x', { expires }, 'sid=x; Expires=Wed, 02 Jan 2030 03:04:05 GMT'],
    ['sid', 'x', { path: '/app' }, 'sid=x; Path=/app'],
    ['sid', 'x', { domain: '.example.com' }, 'sid=x; Domain=.example.com'],
    ['sid', 'x', { secure: true }, 'sid=x; Secure'],
    ['sid', 'x', { httpOnly: true }, 'sid=x; HttpOnly'],
    ['sid', 'x', { secure: false, httpOnly: false, partitioned: false }, 'sid=x'],
    ['sid', 'x', { sameSite: 'Strict' }, 'sid=x; SameSite=Strict'],
    ['sid', 'x', { sameSite: 'lax' }, 'sid=x; SameSite=Lax'],
    ['sid', 'x', { sameSite: 'none', secure: true }, 'sid=x; Secure; SameSite=None'],
    ['sid', 'x', { partitioned: true, secure: true }, 'sid=x; Secure; Partitioned'],
    ['sid', 'x', { priority: 'high' }, 'sid=x; Priority=High'],
    ['sid', 'x', { priority: 'Low' }, 'sid=x; Priority=Low'],
    [
      'sid',
      'x',
      { priority: 'Medium', partitioned: true, sameSite: 'None', httpOnly: true, secure: true, path: '/', domain: 'example.com', expires, maxAge: 60 },
      'sid=x; Max-Age=60; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Domain=example.com; Path=/; Secure; HttpOnly; SameSite=None; Partitioned; Priority=Medium',
    ],
    ['__Secure-id', 'x', { secure: true }, '__Secure-id=x; Secure'],
    ['__Host-id', 'x', { secure: true, path: '/' }, '__Host-id=x; Path=/; Secure'],
  ];
  for (const [name, value, options, expected] of cases) {
    assert.equal(serializeCookie(name, value, options), expected, JSON.stringify(options));
  }
});

test('serialize: values are percent-encoded where needed and round-trip through the parser', () => {
  assert.equal(serializeCookie('a', 'hello world; "x",y\\z'), 'a=hello%20world%3B%20%22x%22%2Cy%5Cz');
  assert.equal(serializeCookie('a', '100%'), 'a=100%25', '% is encoded so decoding is exact');
  assert.equal(serializeCookie('a', 'a/b:c=d?e&f+g@h'), 'a=a/b:c=d?e&f+g@h', 'legal characters are left alone');
  assert.equal(serializeCookie('a', '✓'), 'a=%E2%9C%93');
  for (const value of ['plain', 'with space', '100%', '%20 literal', 'ü✓😀', '";,\\\t\n', 'a=b']) {
    const line = serializeCookie('n', value);
    const pair = line.slice(0, line.indexOf(';') === -1 ? undefined : line.indexOf(';'));
    assert.equal(parseCookieHeader(pair).n, value, `round trip of ${JSON.stringify(value)}`);
  }
  assert.equal(encodeCookieValue('a b'), 'a%20b');
  assert.throws(() => serializeCookie('a', '\ud800'), isInvalid, 'a lone surrogate');
});

test('serialize: custom and disabled encoders, whose output must still be legal', () => {
  assert.equal(serializeCookie('a', 'x y', { encode: (value) => value.replace(' ', '_') }), 'a=x_y');
  assert.equal(serializeCookie('a', 'raw%41', { encode: false }), 'a=raw%41');
  assert.equal(serializeCookie('a', '"quoted"', { encode: false }), 'a="quoted"', 'a quoted cookie-value is legal');
  assert.throws(() => serializeCookie('a', 'x y', { encode: false }), isInvalid);
  assert.throws(() => serializeCookie('a', 'x;y', { encode: (value) => value }), isInvalid);
});

test('serialize: illegal names are refused with NODEFPM_COOKIE_INVALID', () => {
  for (const name of ['', 'a b', 'a;b', 'a=b', 'a,b', 'a\tb', 'a\nb', 'é', '(x)', 'a"b', 'a/b', 'a@b']) {
    assert.throws(() => serializeCookie(name, 'v'), isInvalid, `name ${JSON.stringify(name)}`);
  }
  assert.throws(() => serializeCookie(42 as unknown as string, 'v'), isInvalid);
  assert.throws(() => serializeCookie('a', 42 as unknown as string), isInvalid);
});

test('serialize: illegal attributes and combinations browsers reject are refused', () => {
  const refused: Array<[string, string, CookieOptions]> = [
    ['a', 'v', { maxAge: Infinity }],
    ['a', 'v', { maxAge: Number.NaN }],
    ['a', 'v', { maxAge: '60' as unknown as number }],
    ['a', 'v', { expires: new Date('nope') }],
    ['a', 'v', { expires: 'tomorrow' as unknown as Date }],
    ['a', 'v', { path: '/a;b' }],
    ['a', 'v', { path: '/a\nb' }],
    ['a', 'v', { domain: 'a;b.com' }],
    ['a', 'v', { domain: '' }],
    ['a', 'v', { domain: 'a b.com' }],
    ['a', 'v', { sameSite: 'Sometimes' as 'Lax' }],
    ['a', 'v', { sameSite: 'None' }],
    ['a', 'v', { partitioned: true }],
    ['a', 'v', { priority: 'Urgent' as 'High' }],
    ['__Secure-a', 'v', {}],
    ['__secure-a', 'v', {}],
    ['__Host-a', 'v', { path: '/' }],
    ['__Host-a', 'v', { secure: true }],
    ['__Host-a', 'v', { secure: true, path: '/x' }],
    ['__HOST-a', 'v', { secure: true, path: '/', domain: 'example.com' }],
    ['a', 'x'.repeat(4096), {}],
  ];
  for (const [name, value, options] of refused) {
    assert.throws(() => serializeCookie(name, value, options), isInvalid, `${name} ${JSON.stringify(options)}`);
  }
  assert.equal(serializeCookie('a', 'x'.repeat(4095)).length, 4097, 'name and value of exactly 4096 bytes are allowed');
});
