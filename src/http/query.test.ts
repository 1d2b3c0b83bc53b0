// Unit tests for the strict percent-decoder and the query parser: repeated keys, "+", bad escapes and bad UTF-8 named, the pair bound.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isNodefpmError } from '../errors.js';
import { PercentDecodingError, parseQuery, strictDecode } from './query.js';

/** A UTF-8 string as a Latin-1 string of its bytes: what a FastCGI param holds when the client sent raw bytes. */
function latin1Bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

test('strictDecode: plain text comes back as is, escapes and "+" as the form rules say', () => {
  assert.equal(strictDecode('abc-._~', true), 'abc-._~');
  assert.equal(strictDecode('a+b', true), 'a b');
  assert.equal(strictDecode('a+b', false), 'a+b');
  assert.equal(strictDecode('a%2Bb', true), 'a+b');
  assert.equal(strictDecode('%41%62%63', false), 'Abc');
  assert.equal(strictDecode('caf%C3%A9', true), 'café');
  assert.equal(strictDecode('%e2%82%ac', true), '€');
  assert.equal(strictDecode('%F0%9F%98%80', true), '😀');
  assert.equal(strictDecode('%25zz', true), '%zz');
});

test('strictDecode: raw bytes above 0x7f count as the UTF-8 bytes they are', () => {
  assert.equal(strictDecode(latin1Bytes('naïve'), false), 'naïve');
  assert.equal(strictDecode(`${latin1Bytes('é')}%C3%A9`, true), 'éé');
});

/** The error strictDecode throws for `input`, checked to be a PercentDecodingError. */
function decodeError(input: string): PercentDecodingError {
  try {
    strictDecode(input, true);
  } catch (error) {
    assert.ok(error instanceof PercentDecodingError, `expected a PercentDecodingError for ${JSON.stringify(input)}, got ${String(error)}`);
    return error;
  }
  assert.fail(`strictDecode(${JSON.stringify(input)}) should have thrown`);
}

test('strictDecode: a "%" not followed by two hex digits is named with its offset', () => {
  const cases: Array<[string, string, number]> = [
    ['%zz', '%zz', 0],
    ['ab%z1', '%z1', 2],
    ['ab%1', '%1', 2],
    ['ab%', '%', 2],
    ['x%%41', '%%4', 1],
  ];
  for (const [input, sequence, index] of cases) {
    const error = decodeError(input);
    assert.equal(error.sequence, sequence, `sequence for ${input}`);
    assert.equal(error.index, index, `index for ${input}`);
    assert.match(error.message, /two hex digits/);
  }
});

test('strictDecode: bad UTF-8 is refused and the offending sequence named', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['%E0%A4', '%E0%A4', /truncated/], // truncated at the end
    ['%E0%A4x', '%E0%A4', /truncated/], // truncated mid-string
    ['ok%C3', '%C3', /truncated/],
    ['%80', '%80', /continuation byte/],
    ['%FF', '%FF', /never occurs/],
    ['%C0%AF', '%C0', /never occurs/], // overlong "/"
    ['%E0%80%AF', '%E0', /truncated/], // overlong: E0 must be followed by A0-BF
    ['%ED%A0%80', '%ED', /truncated/], // a UTF-16 surrogate
    ['%F4%90%80%80', '%F4', /truncated/], // above U+10FFFF
    [latin1Bytes('é').slice(0, 1), '%C3', /truncated/], // a raw byte, shown escaped
  ];
  for (const [input, sequence, problem] of cases) {
    const error = decodeError(input);
    assert.equal(error.sequence, sequence, `sequence for ${JSON.stringify(input)}`);
    assert.match(error.message, problem, `problem for ${JSON.stringify(input)}`);
  }
});

test('strictDecode agrees with decodeURIComponent on every string it can encode (property)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
      assert.equal(strictDecode(encodeURIComponent(text), false), text);
      assert.equal(strictDecode(encodeURIComponent(text).replaceAll('%20', '+'), true), text);
    }),
  );
});

test('strictDecode accepts exactly what decodeURIComponent accepts for escaped bytes (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }), (bytes) => {
      const input = bytes.map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
      let expected: string | null;
      try {
        expected = decodeURIComponent(input);
      } catch {
        expected = null;
      }
      let actual: string | null;
      try {
        actual = strictDecode(input, false);
      } catch (error) {
        assert.ok(error instanceof PercentDecodingError, `unexpected error type for ${input}`);
        actual = null;
      }
      assert.equal(actual, expected, `decoding ${input}`);
    }),
  );
});

test('parseQuery: pairs, repeated keys kept in order, empty values and empty pairs', () => {
  const { query, pairs } = parseQuery('a=1&b=x+y&a=2&c&&d=&a=3&=e');
  assert.deepEqual({ ...query }, { a: ['1', '2', '3'], b: 'x y', c: '', d: '', '': 'e' });
  assert.deepEqual(pairs, [
    ['a', '1'],
    ['b', 'x y'],
    ['a', '2'],
    ['c', ''],
    ['d', ''],
    ['a', '3'],
    ['', 'e'],
  ]);
  assert.equal(Object.getPrototypeOf(query), null);
});

test('parseQuery: only the first "=" splits; names and values are decoded', () => {
  const { query } = parseQuery('q=a%3Db=c&na%6De=caf%C3%A9&x=1%2B1');
  assert.equal(query.q, 'a=b=c');
  assert.equal(query.name, 'café');
  assert.equal(query.x, '1+1');
});

test('parseQuery: keys such as __proto__ and constructor are plain keys', () => {
  const { query } = parseQuery('__proto__=x&constructor=y&toString=z');
  assert.equal(query.__proto__, 'x');
  assert.equal(query.constructor, 'y');
  assert.equal(query.toString, 'z');
  assert.equal(({} as Record<string, unknown>).x, undefined, 'Object.prototype untouched');
});

test('parseQuery: the empty query', () => {
  assert.deepEqual({ ...parseQuery('').query }, {});
  assert.deepEqual({ ...parseQuery('&&&').query }, {});
});

test('parseQuery: bad percent-encoding is NODEFPM_QUERY_MALFORMED (400) naming the sequence and its offset in the whole query', () => {
  assert.throws(
    () => parseQuery('a=1&b=%zz'),
    (error: unknown) =>
      isNodefpmError(error, 'NODEFPM_QUERY_MALFORMED') && error.status === 400 && /"%zz" at offset 6/.test(error.message),
  );
  assert.throws(
    () => parseQuery('name=%E0%A4'),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_QUERY_MALFORMED') && /"%E0%A4" at offset 5 .*truncated/.test(error.message),
  );
  assert.throws(() => parseQuery('%C3=1'), (error: unknown) => isNodefpmError(error, 'NODEFPM_QUERY_MALFORMED') && /"%C3" at offset 0/.test(error.message));
});

test('parseQuery: more pairs than the bound is NODEFPM_QUERY_TOO_MANY_PARAMS (400); exactly the bound is fine; empty pairs do not count', () => {
  const query = (n: number): string => Array.from({ length: n }, (_, i) => `k${i}=${i}`).join('&');
  assert.equal(Object.keys(parseQuery(query(5), 5).query).length, 5);
  assert.equal(Object.keys(parseQuery(`${query(5)}&&&`, 5).query).length, 5);
  assert.throws(
    () => parseQuery(query(6), 5),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_QUERY_TOO_MANY_PARAMS') && error.status === 400 && /more than 5/.test(error.message),
  );
  // The default bound is 1000.
  assert.equal(Object.keys(parseQuery(query(1000)).query).length, 1000);
  assert.throws(() => parseQuery(query(1001)), (error: unknown) => isNodefpmError(error, 'NODEFPM_QUERY_TOO_MANY_PARAMS'));
});

test('parseQuery agrees with URLSearchParams on well-formed queries (property)', () => {
  const part = fc.string({ unit: 'grapheme', maxLength: 12 });
  fc.assert(
    fc.property(fc.array(fc.tuple(part, part), { maxLength: 10 }), (entries) => {
      const text = new URLSearchParams(entries).toString();
      const { pairs } = parseQuery(text);
      assert.deepEqual(
        pairs.map(([name, value]) => [name, value]),
        [...new URLSearchParams(text)],
      );
    }),
  );
});
