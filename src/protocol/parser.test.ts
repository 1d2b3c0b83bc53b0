// Unit tests for src/protocol/parser.ts (RecordParser): spec examples, padding, chunking invariance, views vs copies, errors, stop, midRecord.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { NodefpmError } from '../errors.js';
import { ProtocolStatus, RecordType, Role } from './constants.js';
import { decodePairs } from './name-value.js';
import { RecordParser, type RecordSink } from './parser.js';
import { decodeBeginRequest, decodeEndRequest, encodeBeginRequest, encodeEndRequest, encodeRecord } from './record.js';

interface Rec {
  type: number;
  requestId: number;
  content: Buffer;
}

interface Seen extends Rec {
  /** The buffer the parser handed over, uncopied (it may be a view into a chunk). */
  given: Buffer;
}

/** A sink that keeps a copy of every record, plus the buffer it was given; `onEach` runs after each one. */
function collector(onEach?: (seen: Seen, index: number) => void): { sink: RecordSink; seen: Seen[]; records: () => Rec[] } {
  const seen: Seen[] = [];
  const sink: RecordSink = {
    onRecord(type, requestId, content) {
      const entry = { type, requestId, content: Buffer.from(content), given: content };
      seen.push(entry);
      onEach?.(entry, seen.length - 1);
    },
  };
  return { sink, seen, records: () => seen.map(({ type, requestId, content }) => ({ type, requestId, content })) };
}

/** A record built byte by byte, independently of record.ts, with any padding and padding byte value. */
function raw(type: number, requestId: number, content: Uint8Array | string, padding = 0, padByte = 0): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'latin1') : Buffer.from(content);
  const header = Buffer.from([1, type, requestId >> 8, requestId & 0xff, body.length >> 8, body.length & 0xff, padding, 0]);
  return Buffer.concat([header, body, Buffer.alloc(padding, padByte)]);
}

function rec(type: number, requestId: number, content: Uint8Array | string): Rec {
  return { type, requestId, content: typeof content === 'string' ? Buffer.from(content, 'latin1') : Buffer.from(content) };
}

/** Copies `bytes` into a fresh, unpooled ArrayBuffer, so identity checks on `.buffer` are meaningful. */
function own(bytes: Uint8Array): Buffer {
  const out = Buffer.from(new ArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

/** Splits `bytes` at the given cut points (any order, duplicates and out-of-range ignored). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(own(bytes.subarray(start, point)));
    start = point;
  }
  return chunks;
}

function parseChunks(chunks: Buffer[]): { records: Rec[]; errors: Array<NodefpmError | undefined>; parser: RecordParser } {
  const { sink, records } = collector();
  const parser = new RecordParser(sink);
  const errors = chunks.map((chunk) => parser.push(chunk));
  return { records: records(), errors, parser };
}

function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function assertVersionError(error: unknown): asserts error is NodefpmError {
  assert.ok(error instanceof NodefpmError, `expected a NodefpmError, got ${String(error)}`);
  assert.equal(error.code, 'NODEFPM_PROTOCOL_VERSION');
}

// ---------------------------------------------------------------------------------------------------------------------

describe('specification examples (Appendix B)', () => {
  const beginResponder = '\x00\x01\x00\x00\x00\x00\x00\x00';

  it('example 1: a Responder request with params in one record and an empty STDIN', () => {
    const params = '\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42';
    const stream = Buffer.concat([
      raw(RecordType.BeginRequest, 1, beginResponder),
      raw(RecordType.Params, 1, params, 6),
      raw(RecordType.Params, 1, ''),
      raw(RecordType.Stdin, 1, ''),
    ]);
    const expected = [
      rec(RecordType.BeginRequest, 1, beginResponder),
      rec(RecordType.Params, 1, params),
      rec(RecordType.Params, 1, ''),
      rec(RecordType.Stdin, 1, ''),
    ];
    for (const chunks of [[stream], split(stream, Array.from({ length: stream.length }, (_, i) => i))]) {
      const { records, errors, parser } = parseChunks(chunks);
      assert.deepEqual(records, expected);
      assert.ok(errors.every((e) => e === undefined), 'errors.every((e) => e === undefined)');
      assert.equal(parser.recordsSeen, 4);
      assert.equal(parser.midRecord, false);
    }
    const { records } = parseChunks([stream]);
    assert.deepEqual(decodeBeginRequest(records[0]!.content), { role: Role.Responder, flags: 0 });
    assert.deepEqual({ ...decodePairs(records[1]!.content) }, { SERVER_PORT: '80', SERVER_ADDR: '199.170.183.42' });
  });

  it('example 1 response: STDOUT, empty STDOUT, END_REQUEST {0, REQUEST_COMPLETE}', () => {
    const body = 'Content-type: text/html\r\n\r\n<html>\n<head> ... ';
    const stream = Buffer.concat([
      raw(RecordType.Stdout, 1, body, -body.length & 7),
      raw(RecordType.Stdout, 1, ''),
      encodeEndRequest(1, 0, ProtocolStatus.RequestComplete),
    ]);
    const { records } = parseChunks([stream]);
    assert.deepEqual(records.slice(0, 2), [rec(RecordType.Stdout, 1, body), rec(RecordType.Stdout, 1, '')]);
    assert.equal(records[2]!.type, RecordType.EndRequest);
    assert.deepEqual(decodeEndRequest(records[2]!.content), { appStatus: 0, protocolStatus: 0 });
  });

  it('example 2: PARAMS split mid-name, then STDIN with data', () => {
    const stream = Buffer.concat([
      raw(RecordType.BeginRequest, 1, beginResponder),
      raw(RecordType.Params, 1, '\x0b\x02SERVER_PORT80\x0b\x0eSER'),
      raw(RecordType.Params, 1, 'VER_ADDR199.170.183.42'),
      raw(RecordType.Params, 1, ''),
      raw(RecordType.Stdin, 1, 'quantity=100&item=3047936'),
      raw(RecordType.Stdin, 1, ''),
    ]);
    const expected = [
      rec(RecordType.BeginRequest, 1, beginResponder),
      rec(RecordType.Params, 1, '\x0b\x02SERVER_PORT80\x0b\x0eSER'),
      rec(RecordType.Params, 1, 'VER_ADDR199.170.183.42'),
      rec(RecordType.Params, 1, ''),
      rec(RecordType.Stdin, 1, 'quantity=100&item=3047936'),
      rec(RecordType.Stdin, 1, ''),
    ];
    for (const chunks of [[stream], split(stream, Array.from({ length: stream.length }, (_, i) => i)), split(stream, [20, 21, 40])]) {
      const { records, parser } = parseChunks(chunks);
      assert.deepEqual(records, expected);
      assert.equal(parser.recordsSeen, 6);
    }
    const { records } = parseChunks([stream]);
    const params = Buffer.concat(records.filter((r) => r.type === RecordType.Params).map((r) => r.content));
    assert.deepEqual({ ...decodePairs(params) }, { SERVER_PORT: '80', SERVER_ADDR: '199.170.183.42' });
    const stdin = Buffer.concat(records.filter((r) => r.type === RecordType.Stdin).map((r) => r.content));
    assert.equal(stdin.toString('latin1'), 'quantity=100&item=3047936');
  });

  it('example 2 as encoded by record.ts (padded to 8) parses the same', () => {
    const stream = Buffer.concat([
      encodeBeginRequest(1, Role.Responder, 0),
      encodeRecord(RecordType.Params, 1, Buffer.from('\x0b\x02SERVER_PORT80\x0b\x0eSER', 'latin1')),
      encodeRecord(RecordType.Params, 1, Buffer.from('VER_ADDR199.170.183.42', 'latin1')),
      encodeRecord(RecordType.Params, 1),
      encodeRecord(RecordType.Stdin, 1, Buffer.from('quantity=100&item=3047936', 'latin1')),
      encodeRecord(RecordType.Stdin, 1),
    ]);
    const { records } = parseChunks([stream]);
    assert.deepEqual(
      records.map((r) => [r.type, r.content.toString('latin1')]),
      [
        [RecordType.BeginRequest, beginResponder],
        [RecordType.Params, '\x0b\x02SERVER_PORT80\x0b\x0eSER'],
        [RecordType.Params, 'VER_ADDR199.170.183.42'],
        [RecordType.Params, ''],
        [RecordType.Stdin, 'quantity=100&item=3047936'],
        [RecordType.Stdin, ''],
      ],
    );
  });

  it('example 3 response: STDOUT and STDERR interleaved, END_REQUEST with appStatus 938', () => {
    const stream = Buffer.concat([
      raw(RecordType.Stdout, 1, 'Content-type: text/html\r\n\r\n<ht'),
      raw(RecordType.Stderr, 1, 'config error: missing SI_UID\n'),
      raw(RecordType.Stdout, 1, 'ml>\n<head> ... '),
      raw(RecordType.Stdout, 1, ''),
      raw(RecordType.Stderr, 1, ''),
      encodeEndRequest(1, 938, ProtocolStatus.RequestComplete),
    ]);
    const { records } = parseChunks(split(stream, [3, 50, 51, 52, 99]));
    assert.deepEqual(
      records.map((r) => r.type),
      [RecordType.Stdout, RecordType.Stderr, RecordType.Stdout, RecordType.Stdout, RecordType.Stderr, RecordType.EndRequest],
    );
    const stdout = Buffer.concat(records.filter((r) => r.type === RecordType.Stdout).map((r) => r.content));
    assert.equal(stdout.toString('latin1'), 'Content-type: text/html\r\n\r\n<html>\n<head> ... ');
    assert.equal(records[1]!.content.toString('latin1'), 'config error: missing SI_UID\n');
    assert.deepEqual(decodeEndRequest(records[5]!.content), { appStatus: 938, protocolStatus: 0 });
  });
});

describe('padding', () => {
  it('skips padding of every length 0..255, whatever the padding bytes hold', () => {
    const parts: Buffer[] = [];
    const expected: Rec[] = [];
    for (let padding = 0; padding <= 255; padding++) {
      const content = Buffer.from(`record ${padding}`, 'latin1');
      // Padding bytes of 0x01 look like a version byte: a parser that did not skip them would resync wrongly.
      parts.push(raw(RecordType.Stdout, padding + 1, content, padding, padding % 2 === 0 ? 0x01 : 0xff));
      expected.push(rec(RecordType.Stdout, padding + 1, content));
    }
    const stream = Buffer.concat(parts);
    for (const chunks of [[stream], split(stream, Array.from({ length: 200 }, (_, i) => i * 97 + 5))]) {
      const { records, errors, parser } = parseChunks(chunks);
      assert.ok(errors.every((e) => e === undefined), 'errors.every((e) => e === undefined)');
      assert.deepEqual(records, expected);
      assert.equal(parser.midRecord, false);
    }
  });

  it('skips padding on an empty record', () => {
    const stream = Buffer.concat([raw(RecordType.Params, 1, '', 255, 0x01), raw(RecordType.Stdin, 1, 'x', 7, 0x01)]);
    assert.deepEqual(parseChunks([stream]).records, [rec(RecordType.Params, 1, ''), rec(RecordType.Stdin, 1, 'x')]);
    assert.deepEqual(parseChunks(split(stream, [4, 8, 100, 263])).records, [
      rec(RecordType.Params, 1, ''),
      rec(RecordType.Stdin, 1, 'x'),
    ]);
  });

  it('delivers a record before its padding arrives, and skips padding that comes in later chunks', () => {
    const first = raw(RecordType.Stdout, 1, 'abc', 200, 0x01);
    const second = raw(RecordType.Stdout, 2, 'def', 3, 0x01);
    const { sink, records } = collector();
    const parser = new RecordParser(sink);
    assert.equal(parser.push(own(first.subarray(0, 8 + 3 + 10))), undefined);
    assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'abc')]);
    assert.equal(parser.midRecord, true, 'padding still owed');
    assert.equal(parser.push(own(first.subarray(21, 100))), undefined);
    assert.equal(parser.midRecord, true);
    assert.equal(parser.push(own(Buffer.concat([first.subarray(100), second.subarray(0, 2)]))), undefined);
    assert.equal(parser.midRecord, true, 'partial header');
    assert.equal(parser.push(own(second.subarray(2))), undefined);
    assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'abc'), rec(RecordType.Stdout, 2, 'def')]);
    assert.equal(parser.midRecord, false);
    assert.equal(parser.recordsSeen, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

interface Spec {
  type: number;
  requestId: number;
  length: number;
  seed: number;
  paddings: number[];
}

const lengthArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 40 }), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: 2000 }), weight: 3 },
  { arbitrary: fc.constantFrom(0, 1, 7, 8, 9, 65534, 65535, 65536, 70000), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 70000 }), weight: 1 },
);

const specArb: fc.Arbitrary<Spec> = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  requestId: fc.integer({ min: 0, max: 65535 }),
  length: lengthArb,
  seed: fc.integer({ min: 0, max: 255 }),
  paddings: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 2, maxLength: 2 }),
});

interface Built {
  stream: Buffer;
  expected: Rec[];
  /** Offsets where a record (with its padding) ends: the only places midRecord is false. */
  boundaries: Set<number>;
  /** For each record, the offset at which its content is complete (when the parser can hand it on). */
  contentEnds: number[];
}

/** Builds a valid stream: content over 65535 bytes is split into records of at most 65535, each with its own padding. */
function build(specs: Spec[]): Built {
  const parts: Buffer[] = [];
  const expected: Rec[] = [];
  const boundaries = new Set<number>([0]);
  const contentEnds: number[] = [];
  let offset = 0;
  for (const spec of specs) {
    const data = Buffer.alloc(spec.length);
    for (let i = 0; i < data.length; i++) data[i] = (spec.seed + i * 7 + (i >> 9)) & 0xff;
    const pieces: Buffer[] = [];
    for (let start = 0; start < data.length; start += 65535) pieces.push(data.subarray(start, start + 65535));
    if (pieces.length === 0) pieces.push(data);
    pieces.forEach((piece, index) => {
      const padding = spec.paddings[index % spec.paddings.length]!;
      const record = raw(spec.type, spec.requestId, piece, padding, (spec.seed + index) & 0xff);
      parts.push(record);
      expected.push(rec(spec.type, spec.requestId, piece));
      contentEnds.push(offset + 8 + piece.length);
      offset += record.length;
      boundaries.add(offset);
    });
  }
  return { stream: Buffer.concat(parts), expected, boundaries, contentEnds };
}

describe('chunking invariance', () => {
  it('every way of cutting a valid stream yields the same records as parsing it whole (property)', () => {
    fc.assert(
      fc.property(
        fc.array(specArb, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.integer({ min: 1, max: 16 }),
        (specs, cutSeeds, smallRun) => {
          const { stream, expected, boundaries, contentEnds } = build(specs);
          // Random cut points, plus a run of 1-byte chunks somewhere in the middle.
          const runStart = stream.length === 0 ? 0 : (cutSeeds[0] ?? 0) % stream.length;
          const cuts = [
            ...cutSeeds.map((c) => c % (stream.length + 1)),
            ...Array.from({ length: smallRun }, (_, i) => runStart + i),
          ];
          const whole = parseChunks([own(stream)]);
          assert.deepEqual(whole.records, expected);
          assert.equal(whole.errors[0], undefined);

          const { sink, records } = collector();
          const parser = new RecordParser(sink);
          let position = 0;
          for (const chunk of split(stream, cuts)) {
            assert.equal(parser.push(chunk), undefined);
            position += chunk.length;
            assert.equal(parser.midRecord, !boundaries.has(position), `midRecord at ${position}`);
            const due = contentEnds.filter((end) => end <= position).length;
            assert.equal(parser.recordsSeen, due, `records due at ${position}`);
            assert.equal(records().length, due);
          }
          assert.equal(position, stream.length);
          assert.deepEqual(records(), expected);
          assert.equal(parser.error, null);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('1-byte chunks across a 70000-byte stream split into 65535 + 4465, with padding', () => {
    const { stream, expected } = build([
      { type: RecordType.Stdin, requestId: 300, length: 70000, seed: 3, paddings: [255, 7] },
      { type: RecordType.Stdin, requestId: 300, length: 0, seed: 0, paddings: [0] },
    ]);
    assert.equal(expected.length, 3);
    assert.deepEqual(
      expected.map((r) => r.content.length),
      [65535, 4465, 0],
    );
    const { sink, records } = collector();
    const parser = new RecordParser(sink);
    for (let i = 0; i < stream.length; i++) assert.equal(parser.push(stream.subarray(i, i + 1)), undefined);
    assert.deepEqual(records(), expected);
    assert.equal(parser.midRecord, false);
  });

  it('every single cut point of a small mixed stream gives the same records', () => {
    const { stream, expected } = build([
      { type: RecordType.BeginRequest, requestId: 1, length: 8, seed: 1, paddings: [0] },
      { type: RecordType.Params, requestId: 1, length: 13, seed: 2, paddings: [3] },
      { type: RecordType.Params, requestId: 1, length: 0, seed: 0, paddings: [5] },
      { type: RecordType.Stdin, requestId: 1, length: 1, seed: 9, paddings: [0] },
      { type: RecordType.Stdin, requestId: 1, length: 0, seed: 0, paddings: [0] },
    ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      for (const extra of [cut + 1, cut + 8, cut + 9]) {
        assert.deepEqual(parseChunks(split(stream, [cut, extra])).records, expected, `cuts at ${cut}, ${extra}`);
      }
    }
  });

  it('empty chunks change nothing', () => {
    const record = raw(RecordType.Stdout, 1, 'hello', 3);
    const { sink, records } = collector();
    const parser = new RecordParser(sink);
    assert.equal(parser.push(Buffer.alloc(0)), undefined);
    assert.equal(parser.push(record.subarray(0, 5)), undefined);
    assert.equal(parser.push(Buffer.alloc(0)), undefined);
    assert.equal(parser.midRecord, true);
    assert.equal(parser.push(record.subarray(5)), undefined);
    assert.equal(parser.push(Buffer.alloc(0)), undefined);
    assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'hello')]);
    assert.equal(parser.midRecord, false);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('views and copies', () => {
  it('a record wholly inside a chunk is a view of that chunk', () => {
    const chunk = own(
      Buffer.concat([raw(RecordType.Stdout, 1, 'hello', 3), raw(RecordType.Stderr, 1, 'x'.repeat(20), 4), raw(RecordType.Stdout, 2, 'tail')]),
    );
    const { sink, seen } = collector();
    new RecordParser(sink).push(chunk);
    assert.equal(seen.length, 3);
    const offsets = [8, 16 + 8, 16 + 32 + 8];
    seen.forEach((entry, index) => {
      assert.equal(entry.given.buffer, chunk.buffer, `record ${index} shares the chunk's ArrayBuffer`);
      assert.equal(entry.given.byteOffset, chunk.byteOffset + offsets[index]!);
      assert.equal(entry.given.length, entry.content.length);
    });
    assert.equal(seen[0]!.given.toString(), 'hello');
    // A view: changing the chunk changes what the sink was given.
    chunk[8] = 0x4a;
    assert.equal(seen[0]!.given.toString(), 'Jello');
  });

  it('a record whose content is whole in the chunk but whose padding is not is still a view', () => {
    const record = raw(RecordType.Stdout, 1, 'abcdef', 2);
    const chunk = own(record.subarray(0, 14));
    const { sink, seen } = collector();
    const parser = new RecordParser(sink);
    parser.push(chunk);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.given.buffer, chunk.buffer);
    assert.equal(seen[0]!.given.byteOffset, 8);
  });

  it('a view into a chunk that is itself a slice of a larger buffer points at the right bytes', () => {
    const backing = own(Buffer.concat([Buffer.from('garbage!'), raw(RecordType.Data, 9, 'payload', 1), Buffer.from('more')]));
    const chunk = backing.subarray(8, 8 + 16);
    const { sink, seen } = collector();
    new RecordParser(sink).push(chunk);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.given.buffer, backing.buffer);
    assert.equal(seen[0]!.given.byteOffset, 16);
    assert.equal(seen[0]!.given.toString(), 'payload');
  });

  it('a record whose content spans chunks is a copy, safe from later changes to the chunks', () => {
    const record = raw(RecordType.Stdin, 1, 'spanning content', 0);
    const chunks = split(record, [12]);
    const { sink, seen } = collector();
    const parser = new RecordParser(sink);
    for (const chunk of chunks) parser.push(chunk);
    assert.equal(seen.length, 1);
    const given = seen[0]!.given;
    for (const chunk of chunks) assert.ok(!overlaps(given, chunk), 'content does not alias a chunk');
    assert.equal(given.toString(), 'spanning content');
    for (const chunk of chunks) chunk.fill(0);
    assert.equal(given.toString(), 'spanning content');
  });

  it('a record whose header spans chunks is a copy even when its content is whole in the second chunk', () => {
    const record = raw(RecordType.Stdin, 1, 'content', 1);
    const chunks = split(record, [3]);
    const { sink, seen } = collector();
    const parser = new RecordParser(sink);
    for (const chunk of chunks) parser.push(chunk);
    assert.equal(seen.length, 1);
    for (const chunk of chunks) assert.ok(!overlaps(seen[0]!.given, chunk), '!overlaps(seen[0]!.given, chunk)');
    assert.equal(seen[0]!.given.toString(), 'content');
  });

  it('views and copies hold the right bytes for any chunking (property)', () => {
    fc.assert(
      fc.property(fc.array(specArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 20 }), (specs, cutSeeds) => {
        const { stream, expected, contentEnds } = build(specs);
        const chunks = split(stream, cutSeeds.map((c) => c % (stream.length + 1)));
        const chunkStarts: number[] = [];
        let at = 0;
        for (const chunk of chunks) {
          chunkStarts.push(at);
          at += chunk.length;
        }
        const { sink, seen } = collector();
        const parser = new RecordParser(sink);
        for (const chunk of chunks) parser.push(chunk);
        assert.equal(seen.length, expected.length);
        seen.forEach((entry, index) => {
          const length = expected[index]!.content.length;
          if (length === 0) return;
          const contentStart = contentEnds[index]! - length;
          const headerStart = contentStart - 8;
          const chunkIndex = chunkStarts.findLastIndex((start) => start <= headerStart);
          const chunk = chunks[chunkIndex]!;
          const inside = headerStart >= chunkStarts[chunkIndex]! && contentEnds[index]! <= chunkStarts[chunkIndex]! + chunk.length;
          if (inside) {
            assert.equal(entry.given.buffer, chunk.buffer, `record ${index} is a view`);
            assert.equal(entry.given.byteOffset, chunk.byteOffset + contentStart - chunkStarts[chunkIndex]!);
          } else {
            for (const other of chunks) assert.ok(!overlaps(entry.given, other), `record ${index} is a copy`);
          }
        });
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('version errors', () => {
  for (const version of [0, 2, 0x46, 255]) {
    it(`version byte ${version} returns NODEFPM_PROTOCOL_VERSION and stops delivery for good`, () => {
      const good = raw(RecordType.Stdout, 1, 'good', 4);
      const bad = Buffer.from(raw(RecordType.Stdout, 1, 'bad'));
      bad[0] = version;
      const after = raw(RecordType.Stdout, 1, 'after');
      const { sink, records } = collector();
      const parser = new RecordParser(sink);
      const error = parser.push(Buffer.concat([good, bad, after]));
      assertVersionError(error);
      assert.equal(parser.error, error);
      assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'good')], 'records before the bad one are delivered, none after');
      assert.equal(parser.recordsSeen, 1);
      assert.match(error.message, new RegExp(`version ${version}\\b`));
      // Later pushes, even of valid records, return the very same error and deliver nothing.
      assert.equal(parser.push(after), error);
      assert.equal(parser.push(Buffer.alloc(0)), error);
      assert.equal(parser.push(good), error);
      assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'good')]);
      assert.equal(parser.recordsSeen, 1);
    });
  }

  it('is found in a header split across chunks', () => {
    const bad = Buffer.from(raw(RecordType.Stdin, 1, 'x'));
    bad[0] = 2;
    const { sink, records } = collector();
    const parser = new RecordParser(sink);
    assert.equal(parser.push(raw(RecordType.Stdin, 1, 'ok')), undefined);
    let error: NodefpmError | undefined;
    for (let i = 0; i < bad.length && error === undefined; i++) error = parser.push(bad.subarray(i, i + 1));
    assertVersionError(error);
    assert.equal(parser.error, error);
    assert.equal(parser.push(raw(RecordType.Stdin, 1, 'more')), error);
    assert.deepEqual(records(), [rec(RecordType.Stdin, 1, 'ok')]);
  });

  it('is found right after padding that ended in an earlier chunk', () => {
    const first = raw(RecordType.Stdout, 1, 'a', 7);
    const { sink, records } = collector();
    const parser = new RecordParser(sink);
    assert.equal(parser.push(first), undefined);
    assertVersionError(parser.push(Buffer.from([9, 6, 0, 1, 0, 0, 0, 0])));
    assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'a')]);
  });

  it('a fresh parser has no error', () => {
    const parser = new RecordParser(collector().sink);
    assert.equal(parser.error, null);
    assert.equal(parser.recordsSeen, 0);
    assert.equal(parser.midRecord, false);
  });
});

describe('random input (property)', () => {
  /** Pushes chunks; checks the contract of push() on any input and returns what was seen. */
  function pushAll(chunks: Buffer[], totalBytes: number): { records: Rec[]; error: NodefpmError | undefined } {
    // Every record takes at least its 8-byte header, so more records than this would mean a runaway loop.
    const bound = Math.floor(totalBytes / 8);
    const { sink, records } = collector(() => {
      if (records().length > bound) throw new Error(`more than ${bound} records from ${totalBytes} bytes`);
    });
    const parser = new RecordParser(sink);
    let first: NodefpmError | undefined;
    let pushes = 0;
    for (const chunk of chunks) {
      let result: NodefpmError | undefined;
      assert.doesNotThrow(() => {
        result = parser.push(chunk);
      });
      pushes++;
      if (first !== undefined) {
        assert.equal(result, first, 'after an error every push returns the same error');
      } else if (result !== undefined) {
        assertVersionError(result);
        first = result;
      }
      assert.equal(parser.error, first ?? null);
      assert.equal(parser.recordsSeen, records().length);
    }
    assert.equal(pushes, chunks.length, 'every push returned');
    return { records: records(), error: first };
  }

  it('random bytes in random chunks never throw, every push returns, whole and chunked agree', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.array(fc.nat(), { maxLength: 64 }), (bytes, cutSeeds) => {
        const stream = Buffer.from(bytes);
        const whole = pushAll([own(stream)], stream.length);
        const chunked = pushAll(split(stream, cutSeeds.map((c) => c % (stream.length + 1))), stream.length);
        assert.deepEqual(chunked.records, whole.records);
        assert.equal(chunked.error === undefined, whole.error === undefined);
      }),
      { numRuns: 400 },
    );
  });

  it('random bytes that start with version 1 (so headers parse) behave the same', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ minLength: 7, maxLength: 7 }), fc.uint8Array({ maxLength: 600 })), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 64 }),
        (pieces, cutSeeds) => {
          const stream = Buffer.concat(pieces.flatMap(([header, body]) => [Buffer.from([1]), Buffer.from(header), Buffer.from(body)]));
          const whole = pushAll([own(stream)], stream.length);
          const chunked = pushAll(split(stream, cutSeeds.map((c) => c % (stream.length + 1))), stream.length);
          assert.deepEqual(chunked.records, whole.records);
          assert.equal(chunked.error === undefined, whole.error === undefined);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('valid streams with random bytes overwritten never throw and agree whole and chunked', () => {
    fc.assert(
      fc.property(
        fc.array(specArb.map((s) => ({ ...s, length: s.length % 3000 })), { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (specs, mutations, cutSeeds) => {
          const stream = Buffer.from(build(specs).stream);
          for (const [at, value] of mutations) stream[at % stream.length] = value;
          const whole = pushAll([own(stream)], stream.length);
          const chunked = pushAll(split(stream, cutSeeds.map((c) => c % (stream.length + 1))), stream.length);
          assert.deepEqual(chunked.records, whole.records);
          assert.equal(chunked.error === undefined, whole.error === undefined);
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('stop()', () => {
  it('halts delivery within the current chunk', () => {
    const chunk = Buffer.concat([raw(RecordType.Stdout, 1, 'one'), raw(RecordType.Stdout, 1, 'two'), raw(RecordType.Stdout, 1, 'three')]);
    let parser!: RecordParser;
    const { sink, records } = collector((_, index) => {
      if (index === 0) parser.stop();
    });
    parser = new RecordParser(sink);
    assert.equal(parser.push(chunk), undefined);
    assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'one')]);
    assert.equal(parser.recordsSeen, 1);
    assert.equal(parser.push(raw(RecordType.Stdout, 1, 'four')), undefined);
    assert.deepEqual(records(), [rec(RecordType.Stdout, 1, 'one')]);
    assert.equal(parser.recordsSeen, 1);
    assert.equal(parser.error, null);
  });

  it('halts after a record completed across chunks, ignoring the rest of that chunk', () => {
    const first = raw(RecordType.Stdin, 1, 'spanning');
    let parser!: RecordParser;
    const { sink, records } = collector(() => parser.stop());
    parser = new RecordParser(sink);
    assert.equal(parser.push(first.subarray(0, 10)), undefined);
    assert.equal(parser.push(Buffer.concat([first.subarray(10), raw(RecordType.Stdin, 1, 'next')])), undefined);
    assert.deepEqual(records(), [rec(RecordType.Stdin, 1, 'spanning')]);
  });

  it('halts after an empty record whose header was split', () => {
    const stream = Buffer.concat([raw(RecordType.Params, 1, ''), raw(RecordType.Stdin, 1, 'x')]);
    let parser!: RecordParser;
    const { sink, records } = collector(() => parser.stop());
    parser = new RecordParser(sink);
    parser.push(stream.subarray(0, 4));
    parser.push(stream.subarray(4));
    assert.deepEqual(records(), [rec(RecordType.Params, 1, '')]);
  });

  it('before any push, nothing is delivered', () => {
    const { sink, records } = collector();
    const parser = new RecordParser(sink);
    parser.stop();
    assert.equal(parser.push(raw(RecordType.Stdout, 1, 'x')), undefined);
    assert.deepEqual(records(), []);
    assert.equal(parser.recordsSeen, 0);
  });

  it('stopping on record k of n in one chunk delivers exactly k records (property)', () => {
    fc.assert(
      fc.property(fc.array(specArb.map((s) => ({ ...s, length: s.length % 500 })), { minLength: 1, maxLength: 10 }), fc.nat(), (specs, pick) => {
        const { stream, expected } = build(specs);
        const stopAt = pick % expected.length;
        let parser!: RecordParser;
        const { sink, records } = collector((_, index) => {
          if (index === stopAt) parser.stop();
        });
        parser = new RecordParser(sink);
        parser.push(stream);
        parser.push(stream);
        assert.deepEqual(records(), expected.slice(0, stopAt + 1));
      }),
      { numRuns: 100 },
    );
  });
});

describe('midRecord and recordsSeen', () => {
  it('tracks partial headers, partial content and padding, and is false at record boundaries', () => {
    const record = raw(RecordType.Stdout, 1, '0123456789', 6);
    const { sink } = collector();
    const parser = new RecordParser(sink);
    assert.equal(parser.midRecord, false);
    parser.push(record.subarray(0, 3));
    assert.equal(parser.midRecord, true, 'partial header');
    assert.equal(parser.recordsSeen, 0);
    parser.push(record.subarray(3, 8));
    assert.equal(parser.midRecord, true, 'header whole, content missing');
    parser.push(record.subarray(8, 12));
    assert.equal(parser.midRecord, true, 'partial content');
    assert.equal(parser.recordsSeen, 0);
    parser.push(record.subarray(12, 18));
    assert.equal(parser.recordsSeen, 1, 'delivered once the content is whole');
    assert.equal(parser.midRecord, true, 'padding still owed');
    parser.push(record.subarray(18));
    assert.equal(parser.midRecord, false, 'at the boundary');
    parser.push(record);
    assert.equal(parser.midRecord, false);
    assert.equal(parser.recordsSeen, 2);
  });

  it('is true after a full header of a record with content, in the fast path', () => {
    const record = raw(RecordType.Stdin, 1, 'abc');
    const parser = new RecordParser(collector().sink);
    parser.push(record.subarray(0, 9));
    assert.equal(parser.midRecord, true);
    parser.push(record.subarray(9));
    assert.equal(parser.midRecord, false);
  });

  it('is false after an empty record with no padding whose header was split', () => {
    const record = raw(RecordType.Stdin, 1, '');
    const parser = new RecordParser(collector().sink);
    parser.push(record.subarray(0, 7));
    assert.equal(parser.midRecord, true);
    parser.push(record.subarray(7));
    assert.equal(parser.midRecord, false);
    assert.equal(parser.recordsSeen, 1);
  });

  it('counts records across many pushes', () => {
    const parser = new RecordParser(collector().sink);
    for (let i = 1; i <= 50; i++) {
      parser.push(raw(RecordType.Stdout, i, 'x'.repeat(i), i % 8));
      assert.equal(parser.recordsSeen, i);
    }
  });
});

describe('streamParts: stream records handed on in parts, as views', () => {
  const isStream = (type: number): boolean => type >= RecordType.Params && type <= RecordType.Data;

  it('a STDIN record split across two chunks arrives as two views, a BEGIN_REQUEST split the same way whole', () => {
    const stdin = raw(RecordType.Stdin, 1, Buffer.alloc(32768, 0x61), 0);
    const begin = encodeBeginRequest(1, Role.Responder, 1);
    const stream = Buffer.concat([stdin, begin]);
    const chunks = split(stream, [20000, stdin.length + 4]);
    const { sink, seen } = collector();
    const parser = new RecordParser(sink, { streamParts: true });
    for (const chunk of chunks) assert.equal(parser.push(chunk), undefined);
    assert.equal(seen.length, 3, 'two STDIN parts and one BEGIN_REQUEST');
    assert.deepEqual(
      seen.map((s) => [s.type, s.content.length]),
      [
        [RecordType.Stdin, 20000 - 8],
        [RecordType.Stdin, 32768 - (20000 - 8)],
        [RecordType.BeginRequest, 8],
      ],
    );
    assert.ok(overlaps(seen[0]!.given, chunks[0]!), 'first part is a view of the first chunk');
    assert.ok(overlaps(seen[1]!.given, chunks[1]!), 'second part is a view of the second chunk');
    assert.ok(!overlaps(seen[2]!.given, chunks[1]!) && !overlaps(seen[2]!.given, chunks[2]!), 'the split BEGIN_REQUEST is assembled');
    assert.deepEqual(decodeBeginRequest(seen[2]!.content), { role: Role.Responder, flags: 1 });
    assert.equal(parser.recordsSeen, 2, 'the STDIN record counts once');
  });

  it('for any chunking, stream records arrive as non-empty views that concatenate to each record, discrete records whole (property)', () => {
    fc.assert(
      fc.property(fc.array(specArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), (specs, cutSeeds) => {
        const { stream, expected } = build(specs);
        const chunks = split(stream, cutSeeds.map((c) => c % (stream.length + 1)));
        const { sink, seen } = collector();
        const parser = new RecordParser(sink, { streamParts: true });
        for (const chunk of chunks) assert.equal(parser.push(chunk), undefined);
        let next = 0;
        for (const record of expected) {
          if (!isStream(record.type) || record.content.length === 0) {
            const call = seen[next++];
            assert.ok(call !== undefined, 'a call for every record');
            assert.deepEqual({ type: call.type, requestId: call.requestId, content: call.content }, record);
            continue;
          }
          let gathered = 0;
          while (gathered < record.content.length) {
            const call = seen[next++];
            assert.ok(call !== undefined, `missing part of a ${record.content.length}-byte record`);
            assert.equal(call.type, record.type);
            assert.equal(call.requestId, record.requestId);
            assert.ok(call.content.length > 0, 'parts are never empty');
            assert.ok(
              chunks.some((chunk) => overlaps(call.given, chunk)),
              'every part is a view of a chunk',
            );
            assert.deepEqual(call.content, record.content.subarray(gathered, gathered + call.content.length));
            gathered += call.content.length;
          }
        }
        assert.equal(next, seen.length, 'no extra calls');
        assert.equal(parser.recordsSeen, expected.length);
        assert.equal(parser.midRecord, false, 'nothing pending at the end of a valid stream');
      }),
      { numRuns: 150 },
    );
  });
});
