// Unit tests for src/protocol/name-value.ts: 1- and 4-byte lengths, exact bytes, binary safety, malformed input and PARAMS framing.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { NodefpmError, isNodefpmError, type ErrorCode } from '../errors.js';
import { RecordType } from './constants.js';
import { decodePairList, decodePairs, encodePairs, encodeParams, forEachPair, MAX_PAIR_LENGTH, ParamNames, ParamsBlock, type PairsInput } from './name-value.js';
import { readHeader } from './record.js';

function h(spaced: string): Buffer {
  return Buffer.from(spaced.replace(/\s+/g, ''), 'hex');
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

function latin1(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

function assertCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof NodefpmError, `expected a NodefpmError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** Walks a record stream and returns [type, requestId, content] of each record, checking the framing. */
function records(stream: Buffer): Array<[number, number, Buffer]> {
  const out: Array<[number, number, Buffer]> = [];
  let offset = 0;
  while (offset < stream.length) {
    const header = readHeader(stream, offset);
    assert.equal(header.version, 1);
    const start = offset + 8;
    out.push([header.type, header.requestId, stream.subarray(start, start + header.contentLength)]);
    offset = start + header.contentLength + header.paddingLength;
  }
  assert.equal(offset, stream.length, 'stream ends on a record boundary');
  return out;
}

/** Strings of Latin-1 characters (U+0000..U+00FF), each one byte on the wire. */
function latin1String(maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength });
}

/** Lengths that cluster around the 127/128 boundary between 1- and 4-byte length fields. */
function pairString(): fc.Arbitrary<string> {
  return fc.oneof(
    latin1String(8),
    fc
      .tuple(fc.integer({ min: 120, max: 135 }), fc.integer({ min: 0, max: 255 }))
      .map(([length, seed]) => String.fromCharCode(...Array.from({ length }, (_, i) => (seed + i) & 0xff))),
    latin1String(400),
  );
}

const pairList = fc.array(fc.tuple(pairString(), pairString()), { maxLength: 12 });

describe('length encodings', () => {
  it('11: 1-byte name length, 1-byte value length', () => {
    assert.equal(hex(encodePairs([['SERVER_PORT', '80']])), '0b 02 ' + hex(latin1('SERVER_PORT80')));
  });

  it('11 at the boundary: lengths of 127 still take one byte each', () => {
    const name = 'n'.repeat(127);
    const value = 'v'.repeat(127);
    const bytes = encodePairs([[name, value]]);
    assert.equal(bytes.length, 2 + 127 + 127);
    assert.equal(hex(bytes.subarray(0, 2)), '7f 7f');
    assert.ok(bytes.subarray(2).equals(latin1(name + value)), 'bytes.subarray(2).equals(latin1(name + value))');
    assert.deepEqual(decodePairList(bytes), [[name, value]]);
  });

  it('14: 1-byte name length, 4-byte value length (128 is the first 4-byte length)', () => {
    const value = 'v'.repeat(128);
    const bytes = encodePairs([['A', value]]);
    assert.equal(hex(bytes.subarray(0, 6)), '01 80 00 00 80 41');
    assert.equal(bytes.length, 1 + 4 + 1 + 128);
    assert.ok(bytes.subarray(6).equals(latin1(value)), 'bytes.subarray(6).equals(latin1(value))');
    assert.deepEqual(decodePairList(bytes), [['A', value]]);
  });

  it('41: 4-byte name length, 1-byte value length', () => {
    const name = 'N'.repeat(128);
    const bytes = encodePairs([[name, 'z']]);
    assert.equal(hex(bytes.subarray(0, 5)), '80 00 00 80 01');
    assert.equal(bytes.length, 4 + 1 + 128 + 1);
    assert.ok(bytes.subarray(5).equals(latin1(name + 'z')), 'name then value follow the lengths');
    assert.deepEqual(decodePairList(bytes), [[name, 'z']]);
  });

  it('44: 4-byte lengths for both, multi-byte big-endian with the high bit set', () => {
    const name = 'x'.repeat(300); // 0x12c
    const value = 'y'.repeat(70000); // 0x11170
    const bytes = encodePairs([[name, value]]);
    assert.equal(hex(bytes.subarray(0, 8)), '80 00 01 2c 80 01 11 70');
    assert.equal(bytes.length, 8 + 300 + 70000);
    assert.ok(bytes.subarray(8, 308).equals(latin1(name)), 'bytes.subarray(8, 308).equals(latin1(name))');
    assert.ok(bytes.subarray(308).equals(latin1(value)), 'bytes.subarray(308).equals(latin1(value))');
    assert.deepEqual(decodePairList(bytes), [[name, value]]);
  });

  it('decodes all four combinations in one stream', () => {
    const long = 'L'.repeat(200);
    const pairs: Array<[string, string]> = [
      ['a', 'b'],
      ['c', long],
      [long, 'd'],
      [long, long],
    ];
    const bytes = encodePairs(pairs);
    assert.equal(hex(bytes.subarray(0, 4)), '01 01 61 62');
    assert.equal(hex(bytes.subarray(4, 10)), '01 80 00 00 c8 63');
    assert.deepEqual(decodePairList(bytes), pairs);
  });

  it('masks the high bit of a 4-byte length and reads the other 31 bits big-endian', () => {
    // 0x80000003 is a length of 3, not 2147483651: non-canonical 4-byte forms of short lengths must parse.
    assert.deepEqual(decodePairList(Buffer.concat([h('80 00 00 03 80 00 00 02'), latin1('abcde')])), [['abc', 'de']]);
    assert.deepEqual(decodePairList(Buffer.concat([h('80 00 00 00 80 00 00 00')])), [['', '']]);
    // A length whose low bytes are all set: 0x80 0x00 0x01 0x00 is 256.
    const value = 'q'.repeat(256);
    assert.deepEqual(decodePairList(Buffer.concat([h('01 80 00 01 00'), latin1('k' + value)])), [['k', value]]);
  });

  it('a 4-byte length of 0x7fffffff (all 31 bits) is reported as running past the end', () => {
    assertCode(() => decodePairs(Buffer.concat([h('01 ff ff ff ff'), latin1('kv')])), 'NODEFPM_PROTOCOL_NAME_VALUE');
    assertCode(() => decodePairs(Buffer.concat([h('ff ff ff ff 00'), latin1('kv')])), 'NODEFPM_PROTOCOL_NAME_VALUE');
  });

  it('4-byte lengths use bits 24..30: a 16 MiB + 1 value', () => {
    const big = Buffer.alloc(0x01000001, 0x61);
    const bytes = encodePairs([['BIG', big]]);
    assert.equal(hex(bytes.subarray(0, 5)), '03 81 00 00 01');
    assert.equal(bytes.length, 1 + 4 + 3 + 0x01000001);
    const list = decodePairList(bytes);
    assert.equal(list.length, 1);
    assert.equal(list[0]![0], 'BIG');
    assert.equal(list[0]![1].length, 0x01000001);
    // The same length on the name side.
    const swapped = Buffer.concat([h('81 00 00 01 00'), big]);
    const names = decodePairList(swapped);
    assert.equal(names.length, 1);
    assert.equal(names[0]![0].length, 0x01000001);
    assert.equal(names[0]![1], '');
  });

  it('MAX_PAIR_LENGTH is the 31-bit maximum', () => {
    assert.equal(MAX_PAIR_LENGTH, 0x7fffffff);
  });
});

describe('specification examples (Appendix B)', () => {
  const appendixB = '\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42';

  it('decodes "\\x0b\\x02SERVER_PORT80\\x0b\\x0eSERVER_ADDR199.170.183.42"', () => {
    const params = decodePairs(latin1(appendixB));
    assert.deepEqual({ ...params }, { SERVER_PORT: '80', SERVER_ADDR: '199.170.183.42' });
    assert.deepEqual(Object.keys(params), ['SERVER_PORT', 'SERVER_ADDR']);
    assert.deepEqual(decodePairList(latin1(appendixB)), [
      ['SERVER_PORT', '80'],
      ['SERVER_ADDR', '199.170.183.42'],
    ]);
  });

  it('encodes the same pairs to exactly those bytes', () => {
    const list = encodePairs([
      ['SERVER_PORT', '80'],
      ['SERVER_ADDR', '199.170.183.42'],
    ]);
    assert.equal(list.toString('latin1'), appendixB);
    assert.equal(hex(list.subarray(0, 2)), '0b 02');
    assert.equal(hex(list.subarray(15, 17)), '0b 0e');
    assert.equal(encodePairs({ SERVER_PORT: '80', SERVER_ADDR: '199.170.183.42' }).toString('latin1'), appendixB);
  });
});

describe('binary safety', () => {
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const allChars = allBytes.toString('latin1');

  it('all 256 byte values survive a round trip in the value, read as Latin-1', () => {
    const bytes = encodePairs([['BIN', allChars]]);
    assert.equal(hex(bytes.subarray(0, 8)), '03 80 00 01 00 42 49 4e');
    assert.ok(bytes.subarray(8).equals(allBytes), 'bytes.subarray(8).equals(allBytes)');
    const params = decodePairs(bytes);
    assert.equal(params['BIN'], allChars);
    assert.ok(Buffer.from(params['BIN']!, 'latin1').equals(allBytes), 'the Latin-1 string gives back the 256 bytes');
  });

  it('all 256 byte values survive in the name too, including NUL', () => {
    const bytes = encodePairs([[allChars, '']]);
    assert.deepEqual(decodePairList(bytes), [[allChars, '']]);
  });

  it('a Uint8Array value is sent as is, and decodes to its Latin-1 string', () => {
    const bytes = encodePairs([['B', new Uint8Array([0, 0xff, 0x80, 0x7f, 0x0a])]]);
    assert.equal(hex(bytes), '01 05 42 00 ff 80 7f 0a');
    assert.deepEqual(decodePairList(bytes), [['B', '\x00\xff\x80\x7f\n']]);
    const bigValue = Buffer.alloc(1000, 0xe9);
    assert.equal(decodePairs(encodePairs([['V', bigValue]]))['V'], '\xe9'.repeat(1000));
  });

  it('a UTF-8 value sent as bytes comes back as Latin-1 that converts back to the same UTF-8', () => {
    const utf8 = Buffer.from('caf\u00e9 \u20ac \u{1f600}', 'utf8');
    const value = decodePairs(encodePairs([['U', utf8]]))['U']!;
    assert.equal(value.length, utf8.length);
    assert.equal(Buffer.from(value, 'latin1').toString('utf8'), 'caf\u00e9 \u20ac \u{1f600}');
  });

  it('U+00E9 and U+00FF encode as single bytes', () => {
    assert.equal(hex(encodePairs([['\u00e9', '\u00ff']])), '01 01 e9 ff');
  });
});

describe('empty names and values, duplicates', () => {
  it('encodes and decodes empty names and values', () => {
    const pairs: Array<[string, string]> = [
      ['', ''],
      ['A', ''],
      ['', 'B'],
    ];
    const bytes = encodePairs(pairs);
    assert.equal(hex(bytes), '00 00 01 00 41 00 01 42');
    assert.deepEqual(decodePairList(bytes), pairs);
    assert.deepEqual({ ...decodePairs(bytes) }, { '': 'B', A: '' });
  });

  it('an empty value is kept as "" (QUERY_STRING="" is common), not dropped', () => {
    const params = decodePairs(encodePairs({ QUERY_STRING: '', CONTENT_LENGTH: '' }));
    assert.equal(params['QUERY_STRING'], '');
    assert.equal(params['CONTENT_LENGTH'], '');
    assert.deepEqual(Object.keys(params), ['QUERY_STRING', 'CONTENT_LENGTH']);
  });

  it('an empty input is no pairs', () => {
    assert.equal(encodePairs([]).length, 0);
    assert.equal(encodePairs({}).length, 0);
    assert.deepEqual(decodePairList(Buffer.alloc(0)), []);
    assert.deepEqual(Object.keys(decodePairs(Buffer.alloc(0))), []);
  });

  it('duplicate names: decodePairs keeps the last, decodePairList keeps all in order', () => {
    const pairs: Array<[string, string]> = [
      ['X', '1'],
      ['Y', 'y'],
      ['X', '2'],
      ['X', '3'],
    ];
    const bytes = encodePairs(pairs);
    assert.equal(hex(bytes), '01 01 58 31 01 01 59 79 01 01 58 32 01 01 58 33');
    assert.deepEqual(decodePairList(bytes), pairs);
    const params = decodePairs(bytes);
    assert.equal(params['X'], '3');
    assert.equal(params['Y'], 'y');
    assert.deepEqual(Object.keys(params), ['X', 'Y']);
  });
});

describe('input forms accepted by encodePairs', () => {
  const expected = '01 01 61 31 01 01 62 32';
  it('array of tuples, Map, plain object, generator', () => {
    assert.equal(
      hex(
        encodePairs([
          ['a', '1'],
          ['b', '2'],
        ]),
      ),
      expected,
    );
    assert.equal(
      hex(
        encodePairs(
          new Map([
            ['a', '1'],
            ['b', '2'],
          ]),
        ),
      ),
      expected,
    );
    assert.equal(hex(encodePairs({ a: '1', b: '2' })), expected);
    function* gen(): Generator<[string, string]> {
      yield ['a', '1'];
      yield ['b', '2'];
    }
    assert.equal(hex(encodePairs(gen())), expected);
  });
});

describe('malformed input', () => {
  const cases: Array<[string, Buffer]> = [
    ['a truncated 4-byte name length (1 byte)', h('80')],
    ['a truncated 4-byte name length (3 bytes)', h('80 00 00')],
    ['a missing value length', h('03')],
    ['a missing value length after a 4-byte name length', h('80 00 00 03')],
    ['a truncated 4-byte value length', h('01 80 00')],
    ['a name running past the end', Buffer.concat([h('05 00'), latin1('ab')])],
    ['a value running past the end', Buffer.concat([h('01 05'), latin1('abcd')])],
    ['a value one byte short', Buffer.concat([h('01 02'), latin1('k'), latin1('v')])],
    ['a good pair then a truncated one', Buffer.concat([h('01 01'), latin1('ab'), h('02')])],
    ['a good pair then a short value', Buffer.concat([h('01 01'), latin1('ab'), h('01 80 00 01 00'), latin1('k')])],
  ];
  for (const [what, bytes] of cases) {
    it(`${what} throws NODEFPM_PROTOCOL_NAME_VALUE from every decoder`, () => {
      assertCode(() => decodePairs(bytes), 'NODEFPM_PROTOCOL_NAME_VALUE');
      assertCode(() => decodePairList(bytes), 'NODEFPM_PROTOCOL_NAME_VALUE');
      assertCode(() => forEachPair(bytes, () => {}), 'NODEFPM_PROTOCOL_NAME_VALUE');
    });
  }

  it('forEachPair calls onPair for the good pairs before the broken one, and never for the broken one', () => {
    const seen: Array<[string, string]> = [];
    const bytes = Buffer.concat([h('01 01'), latin1('ab'), h('01 01'), latin1('cd'), h('01 09'), latin1('e')]);
    assertCode(() => forEachPair(bytes, (name, value) => seen.push([name, value])), 'NODEFPM_PROTOCOL_NAME_VALUE');
    assert.deepEqual(seen, [
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });

  it('the error says what was malformed', () => {
    try {
      decodePairs(h('01 05 61'));
      assert.fail('decodePairs accepted a value running past the end');
    } catch (error) {
      assert.ok(error instanceof NodefpmError, 'error instanceof NodefpmError');
      assert.match(error.message, /malformed name-value pair/);
    }
  });

  it('random bytes either decode or throw NODEFPM_PROTOCOL_NAME_VALUE, nothing else (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const buffer = Buffer.from(bytes);
        let list: Array<[string, string]> | undefined;
        try {
          list = decodePairList(buffer);
        } catch (error) {
          assert.ok(error instanceof NodefpmError, `unexpected ${String(error)}`);
          assert.equal(error.code, 'NODEFPM_PROTOCOL_NAME_VALUE');
          return;
        }
        // Every byte is accounted for: each pair took its name and value plus 2 to 8 bytes of lengths.
        const data = list.reduce((sum, [name, value]) => sum + name.length + value.length, 0);
        assert.ok(data + 2 * list.length <= buffer.length, 'pairs cannot use more bytes than were given');
        assert.ok(buffer.length <= data + 8 * list.length, 'no bytes left over');
      }),
      { numRuns: 500 },
    );
  });

  it('every proper prefix of a valid stream that cuts a pair throws; one that ends on a pair decodes to a prefix (property)', () => {
    fc.assert(
      fc.property(pairList, fc.nat(), (pairs, cutSeed) => {
        const bytes = encodePairs(pairs);
        const boundaries = new Map<number, number>([[0, 0]]);
        let offset = 0;
        pairs.forEach(([name, value], index) => {
          offset += encodePairs([[name, value]]).length;
          boundaries.set(offset, index + 1);
        });
        assert.equal(offset, bytes.length);
        const cut = bytes.length === 0 ? 0 : cutSeed % (bytes.length + 1);
        const prefix = bytes.subarray(0, cut);
        const whole = boundaries.get(cut);
        if (whole === undefined) {
          assertCode(() => decodePairList(prefix), 'NODEFPM_PROTOCOL_NAME_VALUE');
        } else {
          assert.deepEqual(decodePairList(prefix), pairs.slice(0, whole));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('characters the encoder refuses', () => {
  for (const bad of ['\u0100', '\u20ac', '\u{1f600}', 'ok\ufffd']) {
    it(`${JSON.stringify(bad)} throws NODEFPM_INVALID_PARAM in a name or a value`, () => {
      assertCode(() => encodePairs([['NAME', bad]]), 'NODEFPM_INVALID_PARAM');
      assertCode(() => encodePairs([[bad, 'value']]), 'NODEFPM_INVALID_PARAM');
      assertCode(() => encodePairs({ [bad]: '' }), 'NODEFPM_INVALID_PARAM');
      assertCode(() => encodeParams(1, [['A', bad]]), 'NODEFPM_INVALID_PARAM');
    });
  }

  it('the error names the param and the index of the character', () => {
    try {
      encodePairs([['HTTP_X', 'ab\u0101']]);
      assert.fail('encodePairs accepted U+0101');
    } catch (error) {
      assert.ok(error instanceof NodefpmError, 'error instanceof NodefpmError');
      assert.equal(error.code, 'NODEFPM_INVALID_PARAM');
      assert.match(error.message, /HTTP_X/);
      assert.match(error.message, /index 2/);
    }
  });

  it('any string with a character above U+00FF is refused, any Latin-1 string accepted (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (text) => {
        const wide = [...text].some((c) => c.codePointAt(0)! > 0xff) || /[\ud800-\udfff]/.test(text);
        if (wide) {
          assertCode(() => encodePairs([['V', text]]), 'NODEFPM_INVALID_PARAM');
        } else {
          assert.deepEqual(decodePairList(encodePairs([['V', text]])), [['V', text]]);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('encodeParams', () => {
  it('frames a small set as one PARAMS record, padded, then the empty PARAMS record', () => {
    assert.equal(
      hex(encodeParams(1, { A: 'b' })),
      '01 04 00 01 00 04 04 00 01 01 41 62 00 00 00 00 01 04 00 01 00 00 00 00',
    );
  });

  it('frames no params as just the empty PARAMS record', () => {
    assert.equal(hex(encodeParams(0x0203, [])), '01 04 02 03 00 00 00 00');
  });

  it('frames the Appendix B pairs exactly', () => {
    const stream = encodeParams(1, [
      ['SERVER_PORT', '80'],
      ['SERVER_ADDR', '199.170.183.42'],
    ]);
    // 15 + 27 = 42 bytes of pairs, 6 bytes of padding.
    assert.equal(hex(stream.subarray(0, 8)), '01 04 00 01 00 2a 06 00');
    assert.equal(stream.subarray(8, 50).toString('latin1'), '\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42');
    assert.equal(hex(stream.subarray(50)), '00 00 00 00 00 00 01 04 00 01 00 00 00 00');
  });

  it('splits pairs at 65535 bytes, even mid-pair, and ends with an empty PARAMS record', () => {
    const pairs: Array<[string, string]> = [
      ['HTTP_COOKIE', 'c'.repeat(70000)],
      ['SHORT', 'x'],
      ['BIG', 'b'.repeat(65535)],
    ];
    const payload = encodePairs(pairs);
    assert.equal(payload.length, (1 + 4 + 11 + 70000) + (1 + 1 + 5 + 1) + (1 + 4 + 3 + 65535));
    const stream = encodeParams(7, pairs);
    const parts = records(stream);
    assert.deepEqual(
      parts.map(([type, id, content]) => [type, id, content.length]),
      [
        [RecordType.Params, 7, 65535],
        [RecordType.Params, 7, 65535],
        [RecordType.Params, 7, payload.length - 2 * 65535],
        [RecordType.Params, 7, 0],
      ],
    );
    const joined = Buffer.concat(parts.map(([, , content]) => content));
    assert.ok(joined.equals(payload), 'joined.equals(payload)');
    assert.deepEqual(decodePairList(joined), pairs);
  });

  it('any pair list reassembles from its PARAMS records (property)', () => {
    fc.assert(
      fc.property(pairList, fc.integer({ min: 1, max: 65535 }), (pairs, requestId) => {
        const parts = records(encodeParams(requestId, pairs));
        const last = parts[parts.length - 1]!;
        assert.equal(last[2].length, 0);
        for (const [type, id, content] of parts) {
          assert.equal(type, RecordType.Params);
          assert.equal(id, requestId);
          assert.ok(content.length <= 65535, 'content.length <= 65535');
        }
        for (const [, , content] of parts.slice(0, -1)) assert.ok(content.length > 0, 'only the last record is empty');
        assert.deepEqual(decodePairList(Buffer.concat(parts.map(([, , content]) => content))), pairs);
      }),
      { numRuns: 100 },
    );
  });
});

describe('decodePairs result object', () => {
  it('has a null prototype', () => {
    assert.equal(Object.getPrototypeOf(decodePairs(latin1('\x01\x01ab'))), null);
    assert.equal(Object.getPrototypeOf(decodePairs(Buffer.alloc(0))), null);
  });

  it('treats "__proto__", "constructor" and friends as plain keys', () => {
    const bytes = encodePairs([
      ['__proto__', 'p'],
      ['constructor', 'c'],
      ['hasOwnProperty', 'h'],
    ]);
    const params = decodePairs(bytes);
    assert.equal(Object.getPrototypeOf(params), null, 'setting __proto__ did not change the prototype');
    assert.deepEqual(Object.keys(params), ['__proto__', 'constructor', 'hasOwnProperty']);
    assert.equal(params['__proto__'], 'p');
    assert.equal(params['constructor'], 'c');
    assert.equal(params['hasOwnProperty'], 'h');
    assert.equal(Object.getOwnPropertyDescriptor(params, '__proto__')?.value, 'p');
    assert.equal(({} as Record<string, unknown>)['p'], undefined, 'Object.prototype untouched');
  });

  it('inherits nothing: names it was not sent are absent', () => {
    const params = decodePairs(latin1('\x01\x01ab'));
    assert.equal(params['toString'], undefined);
    assert.equal(params['constructor'], undefined);
    assert.equal('toString' in params, false);
    assert.equal('__proto__' in params, false);
  });
});

describe('round trips (property)', () => {
  it('encodePairs then decodePairList gives the same list', () => {
    fc.assert(
      fc.property(pairList, (pairs) => {
        const bytes = encodePairs(pairs);
        const expectedLength = pairs.reduce(
          (sum, [name, value]) =>
            sum + (name.length > 127 ? 4 : 1) + (value.length > 127 ? 4 : 1) + name.length + value.length,
          0,
        );
        assert.equal(bytes.length, expectedLength);
        assert.deepEqual(decodePairList(bytes), pairs);
      }),
      { numRuns: 300 },
    );
  });

  it('decodePairs gives the last value of each name, with names in first-seen order', () => {
    // Draw names from a small set so duplicates are common.
    const names = fc.constantFrom('A', 'B', '__proto__', 'constructor', '', 'x'.repeat(130));
    fc.assert(
      fc.property(fc.array(fc.tuple(names, pairString()), { maxLength: 10 }), (pairs) => {
        const expected = new Map<string, string>();
        for (const [name, value] of pairs) expected.set(name, value);
        const params = decodePairs(encodePairs(pairs));
        assert.deepEqual(Object.entries(params), [...expected.entries()]);
      }),
      { numRuns: 300 },
    );
  });

  it('Uint8Array values round-trip to their Latin-1 strings', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(latin1String(10), fc.uint8Array({ maxLength: 300 })), { maxLength: 6 }), (pairs) => {
        const decoded = decodePairList(encodePairs(pairs));
        assert.deepEqual(
          decoded,
          pairs.map(([name, value]) => [name, Buffer.from(value).toString('latin1')]),
        );
      }),
      { numRuns: 200 },
    );
  });
});

describe('encodePairs: arrays of strings (its fast path) and every other input encode alike', () => {
  const asMap = (pairs: Array<[string, string]>): PairsInput => new Map(pairs);
  it('byte for byte, lengths of 1 and 4 bytes, Latin-1 above 0x7f', () => {
    const cases: Array<[string, Array<[string, string]>]> = [
      ['none', []],
      ['one', [['SERVER_PORT', '80']]],
      ['empty value', [['CONTENT_LENGTH', '']]],
      ['empty name and value', [['', '']]],
      ['127 and 128 bytes', [['A'.repeat(127), 'b'.repeat(128)]]],
      ['a long value', [['HTTP_COOKIE', 'c'.repeat(70_000)]]],
      ['Latin-1 bytes above 0x7f', [['HTTP_X', '\u00e9\u00ff\u0080'], ['N\u00ff', 'v']]],
    ];
    for (const [what, pairs] of cases) assert.equal(hex(encodePairs(pairs)), hex(encodePairs(asMap(pairs))), what);
  });
  it('an array mixing bytes and strings takes the general path and gives the same bytes', () => {
    assert.equal(hex(encodePairs([['BIN', Buffer.from([0, 1, 0xff])], ['TEXT', 'x']])), hex(encodePairs([['BIN', '\u0000\u0001\u00ff'], ['TEXT', 'x']])));
  });
  it('a character outside Latin-1 fails the same way from an array and from a Map: NODEFPM_INVALID_PARAM naming the param', () => {
    for (const [pairs, named] of [
      [[['HTTP_X', 'caf\u00e9 \u20ac']], /value of param "HTTP_X" has a character outside Latin-1 at index 5/],
      [[['N\u0100', 'v']], /param name "N\u0100" has a character outside Latin-1 at index 1/],
    ] as Array<[Array<[string, string]>, RegExp]>) {
      for (const input of [pairs, asMap(pairs)]) {
        assert.throws(() => encodePairs(input), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_PARAM') && named.test(error.message));
      }
    }
  });
});

describe('ParamsBlock', () => {
  const names = new ParamNames(['CONTENT_LENGTH', 'REQUEST_METHOD', 'REQUEST_URI']);

  it('finds names found while validating and names it scans for alike, the last of a repeated name winning', () => {
    const bytes = encodePairs([
      ['REQUEST_METHOD', 'GET'],
      ['HTTP_HOST', 'a'],
      ['REQUEST_METHOD', 'POST'],
      ['HTTP_HOST', 'b'],
      ['CONTENT_LENGTH', ''],
    ]);
    for (const block of [new ParamsBlock(bytes, names), new ParamsBlock(bytes)]) {
      assert.equal(block.get('REQUEST_METHOD'), 'POST');
      assert.equal(block.get('HTTP_HOST'), 'b');
      assert.equal(block.get('CONTENT_LENGTH'), '', 'an empty value is a value');
      assert.equal(block.get('REQUEST_URI'), undefined, 'a found name that was not sent');
      assert.equal(block.get('QUERY_STRING'), undefined);
      // Same length as REQUEST_METHOD, another name: never mistaken for it.
      assert.equal(block.get('CONTENT_LENGTX'), undefined);
    }
  });

  it('finds a value with a 4-byte length, and keeps Latin-1 bytes as they were', () => {
    const long = 'x'.repeat(300) + '\u00e9\u00ff';
    const block = new ParamsBlock(encodePairs({ REQUEST_URI: long, HTTP_X: '\u00e9' }), names);
    assert.equal(block.get('REQUEST_URI'), long);
    assert.equal(block.get('HTTP_X'), '\u00e9');
  });

  it('refuses a malformed stream when it is made', () => {
    const bytes = encodePairs({ REQUEST_METHOD: 'GET' });
    assertCode(() => new ParamsBlock(bytes.subarray(0, bytes.length - 1), names), 'NODEFPM_PROTOCOL_NAME_VALUE');
    assertCode(() => new ParamsBlock(h('0e'), names), 'NODEFPM_PROTOCOL_NAME_VALUE');
  });

  it('get() agrees with toObject() for every name, found or not (property)', () => {
    const name = fc.oneof(fc.constantFrom('CONTENT_LENGTH', 'REQUEST_METHOD', 'REQUEST_URI', 'REQUEST_METHOX'), latin1String(20).filter((n) => n !== ''));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, latin1String(300)), { maxLength: 12 }), (pairs) => {
        const bytes = encodePairs(pairs);
        const decoded = decodePairs(bytes);
        const block = new ParamsBlock(bytes, names);
        for (const [key] of pairs) assert.equal(block.get(key), decoded[key]);
        for (const key of names.names) assert.equal(block.get(key), decoded[key]);
      }),
    );
  });
});
