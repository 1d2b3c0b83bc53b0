// Unit tests for src/protocol/record.ts: header layout, padding, stream splitting and the fixed-size bodies, byte for byte.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { NodefpmError } from '../errors.js';
import { HEADER_LENGTH, KEEP_CONN, MAX_CONTENT_LENGTH, ProtocolStatus, RecordType, Role } from './constants.js';
import {
  decodeBeginRequest,
  decodeEndRequest,
  decodeUnknownType,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeRecord,
  encodeStream,
  encodeUnknownType,
  paddingFor,
  readHeader,
  recordSize,
  streamSize,
  writeEndRequest,
  writeHeader,
  writePadding,
  writeStream,
} from './record.js';

/** Bytes from a spaced hex string: h('01 02 ff'). */
function h(spaced: string): Buffer {
  return Buffer.from(spaced.replace(/\s+/g, ''), 'hex');
}

/** Spaced hex of some bytes, for readable assertion diffs. */
function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

/** A deterministic, non-constant byte pattern of `length` bytes. */
function pattern(length: number, seed = 0): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (seed + i * 31 + (i >>> 8)) & 0xff;
  return out;
}

function assertRecordError(fn: () => unknown): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof NodefpmError, `expected a NodefpmError, got ${String(error)}`);
    assert.equal(error.code, 'NODEFPM_PROTOCOL_RECORD');
    return true;
  });
}

describe('paddingFor / recordSize', () => {
  const table: Array<[number, number]> = [
    [0, 0],
    [1, 7],
    [2, 6],
    [7, 1],
    [8, 0],
    [9, 7],
    [15, 1],
    [16, 0],
    [25, 7],
    [465, 7],
    [65528, 0],
    [65534, 2],
    [65535, 1],
  ];
  for (const [length, padding] of table) {
    it(`content ${length} -> padding ${padding}, record ${HEADER_LENGTH + length + padding} bytes`, () => {
      assert.equal(paddingFor(length), padding);
      assert.equal(recordSize(length), HEADER_LENGTH + length + padding);
      assert.equal(recordSize(length) % 8, 0);
    });
  }

  it('padding is always -len & 7, in 0..7, and aligns the record to 8 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_CONTENT_LENGTH }), (length) => {
        const padding = paddingFor(length);
        assert.equal(padding, -length & 7);
        assert.ok(padding >= 0 && padding <= 7, 'padding >= 0 && padding <= 7');
        assert.equal((length + padding) % 8, 0);
      }),
    );
  });
});

describe('writeHeader / readHeader', () => {
  // [type, requestId, contentLength, paddingLength, expected 8 bytes]
  const table: Array<[number, number, number, number, string]> = [
    [RecordType.BeginRequest, 1, 8, 0, '01 01 00 01 00 08 00 00'],
    [RecordType.AbortRequest, 1, 0, 0, '01 02 00 01 00 00 00 00'],
    [RecordType.Params, 0, 0, 0, '01 04 00 00 00 00 00 00'],
    [RecordType.Stdin, 255, 255, 1, '01 05 00 ff 00 ff 01 00'],
    [RecordType.Stdout, 256, 256, 0, '01 06 01 00 01 00 00 00'],
    [RecordType.Stderr, 257, 465, 7, '01 07 01 01 01 d1 07 00'],
    [RecordType.Data, 0x1234, 0xabcd, 3, '01 08 12 34 ab cd 03 00'],
    [RecordType.GetValues, 0, 25, 7, '01 09 00 00 00 19 07 00'],
    [RecordType.UnknownType, 0xff00, 0x00ff, 0x80, '01 0b ff 00 00 ff 80 00'],
    [0, 0x8000, 0x8000, 0, '01 00 80 00 80 00 00 00'],
    [255, 65535, 65535, 255, '01 ff ff ff ff ff ff 00'],
  ];
  for (const [type, requestId, contentLength, paddingLength, expected] of table) {
    it(`type ${type} id ${requestId} length ${contentLength} padding ${paddingLength} -> ${expected}`, () => {
      // Pre-fill with a non-zero byte so the reserved byte must really be written as 0.
      const target = Buffer.alloc(HEADER_LENGTH, 0xee);
      const next = writeHeader(target, 0, type, requestId, contentLength, paddingLength);
      assert.equal(next, HEADER_LENGTH);
      assert.equal(hex(target), expected);
      assert.deepEqual(readHeader(target), { version: 1, type, requestId, contentLength, paddingLength });
    });
  }

  it('writes at an offset and touches nothing else', () => {
    const target = Buffer.alloc(20, 0xaa);
    const next = writeHeader(target, 5, RecordType.Stdout, 0x0102, 0x0304, 5);
    assert.equal(next, 13);
    assert.equal(hex(target), 'aa aa aa aa aa 01 06 01 02 03 04 05 00 aa aa aa aa aa aa aa');
    assert.deepEqual(readHeader(target, 5), {
      version: 1,
      type: RecordType.Stdout,
      requestId: 0x0102,
      contentLength: 0x0304,
      paddingLength: 5,
    });
  });

  it('readHeader reports the version byte as found (it does not validate)', () => {
    assert.equal(readHeader(h('02 01 00 01 00 08 00 00')).version, 2);
    assert.equal(readHeader(h('00 01 00 01 00 08 00 00')).version, 0);
  });

  it('round-trips every field (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 255 }),
        (type, requestId, contentLength, paddingLength) => {
          const target = Buffer.alloc(HEADER_LENGTH, 0xff);
          writeHeader(target, 0, type, requestId, contentLength, paddingLength);
          assert.equal(target[0], 1);
          assert.equal(target[2]! * 256 + target[3]!, requestId);
          assert.equal(target[4]! * 256 + target[5]!, contentLength);
          assert.equal(target[7], 0);
          assert.deepEqual(readHeader(target), { version: 1, type, requestId, contentLength, paddingLength });
        },
      ),
    );
  });
});

describe('encodeRecord', () => {
  it('encodes a 3-byte STDIN record with 5 zero padding bytes', () => {
    const record = encodeRecord(RecordType.Stdin, 1, Buffer.from('abc', 'latin1'));
    assert.equal(hex(record), '01 05 00 01 00 03 05 00 61 62 63 00 00 00 00 00');
  });

  it('encodes an empty record as the 8-byte header alone', () => {
    assert.equal(hex(encodeRecord(RecordType.Stdout, 0x0201)), '01 06 02 01 00 00 00 00');
    assert.equal(hex(encodeRecord(RecordType.Stdout, 0x0201, new Uint8Array(0))), '01 06 02 01 00 00 00 00');
  });

  it('needs no padding for 8 bytes of content', () => {
    const record = encodeRecord(RecordType.Data, 300, h('00 11 22 33 44 55 66 77'));
    assert.equal(hex(record), '01 08 01 2c 00 08 00 00 00 11 22 33 44 55 66 77');
  });

  it('accepts a plain Uint8Array, and a view into a larger buffer', () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]);
    const record = encodeRecord(RecordType.Stdout, 1, backing.subarray(2, 11));
    assert.equal(hex(record), '01 06 00 01 00 09 07 00 01 02 03 04 05 06 07 08 09 00 00 00 00 00 00 00');
  });

  it('encodes the largest record: 65535 bytes and 1 byte of padding', () => {
    const content = pattern(MAX_CONTENT_LENGTH, 7);
    const record = encodeRecord(RecordType.Stdout, 65535, content);
    assert.equal(record.length, 8 + 65535 + 1);
    assert.equal(hex(record.subarray(0, 8)), '01 06 ff ff ff ff 01 00');
    assert.ok(record.subarray(8, 8 + 65535).equals(content), 'record.subarray(8, 8 + 65535).equals(content)');
    assert.equal(record[record.length - 1], 0);
  });

  it('refuses content over 65535 bytes with a RangeError', () => {
    assert.throws(() => encodeRecord(RecordType.Stdout, 1, new Uint8Array(MAX_CONTENT_LENGTH + 1)), RangeError);
  });

  it('always writes zero padding, even from dirty pooled memory (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 0, max: 65535 }), (content, id) => {
        // Allocate and dirty pooled memory first, so padding left unwritten is likely to show as garbage.
        Buffer.allocUnsafe(512).fill(0xff);
        const record = encodeRecord(RecordType.Stdout, id, content);
        const padding = -content.length & 7;
        assert.equal(record.length, 8 + content.length + padding);
        assert.deepEqual(readHeader(record), {
          version: 1,
          type: RecordType.Stdout,
          requestId: id,
          contentLength: content.length,
          paddingLength: padding,
        });
        assert.equal(record[7], 0);
        assert.ok(record.subarray(8, 8 + content.length).equals(content), 'record.subarray(8, 8 + content.length).equals(content)');
        for (let i = 8 + content.length; i < record.length; i++) assert.equal(record[i], 0, `padding byte ${i}`);
      }),
    );
  });
});

describe('writePadding', () => {
  it('zeroes exactly the padding bytes and returns the offset after them', () => {
    for (let padding = 0; padding <= 7; padding++) {
      const target = Buffer.alloc(12, 0xff);
      assert.equal(writePadding(target, 3, padding), 3 + padding);
      assert.equal(hex(target.subarray(3, 3 + padding)), padding === 0 ? '' : Array(padding).fill('00').join(' '));
      assert.ok(target.subarray(0, 3).every((byte) => byte === 0xff), 'bytes before are kept');
      assert.ok(target.subarray(3 + padding).every((byte) => byte === 0xff), 'bytes after are kept');
    }
  });
});

describe('streamSize / writeStream / encodeStream', () => {
  const sizes: Array<[number, boolean, number]> = [
    [0, false, 0],
    [0, true, 8],
    [1, false, 16],
    [1, true, 24],
    [8, false, 16],
    [9, true, 32],
    [65535, false, 65544],
    [65535, true, 65552],
    [65536, false, 65544 + 16],
    [66000, false, 65544 + 480],
    [66000, true, 65544 + 480 + 8],
    [131070, true, 2 * 65544 + 8],
    [131071, true, 2 * 65544 + 16 + 8],
  ];
  for (const [length, terminate, expected] of sizes) {
    it(`streamSize(${length}, ${terminate}) = ${expected}`, () => {
      assert.equal(streamSize(length, terminate), expected);
    });
  }

  it('splits a 66000-byte stream into records of 65535 (padding 1) and 465 (padding 7) plus the terminator', () => {
    const data = pattern(66000, 3);
    const out = encodeStream(RecordType.Stdout, 0x0102, data, true);
    assert.equal(out.length, 66032);
    // First record.
    assert.equal(hex(out.subarray(0, 8)), '01 06 01 02 ff ff 01 00');
    assert.ok(out.subarray(8, 8 + 65535).equals(data.subarray(0, 65535)), 'out.subarray(8, 8 + 65535).equals(data.subarray(0, 65535))');
    assert.equal(out[8 + 65535], 0);
    // Second record.
    const second = 8 + 65535 + 1;
    assert.equal(second, 65544);
    assert.equal(hex(out.subarray(second, second + 8)), '01 06 01 02 01 d1 07 00');
    assert.ok(out.subarray(second + 8, second + 8 + 465).equals(data.subarray(65535)), 'out.subarray(second + 8, second + 8 + 465).equals(data.subarray(65535))');
    assert.equal(hex(out.subarray(second + 8 + 465, second + 8 + 465 + 7)), '00 00 00 00 00 00 00');
    // The empty terminator, and nothing after it.
    const terminator = second + 8 + 465 + 7;
    assert.equal(terminator, 66024);
    assert.equal(hex(out.subarray(terminator)), '01 06 01 02 00 00 00 00');
  });

  it('without terminate a 66000-byte stream is the same two records and nothing else', () => {
    const data = pattern(66000, 5);
    const out = encodeStream(RecordType.Stdout, 1, data, false);
    assert.equal(out.length, 66024);
    assert.ok(out.equals(encodeStream(RecordType.Stdout, 1, data, true).subarray(0, 66024)), 'out.equals(encodeStream(RecordType.Stdout, 1, data, true).subarray(0, 66024))');
    assert.equal(hex(out.subarray(65544, 65552)), '01 06 00 01 01 d1 07 00');
  });

  it('keeps a 65535-byte stream in one record', () => {
    const data = pattern(65535, 9);
    const out = encodeStream(RecordType.Stdin, 3, data, false);
    assert.equal(out.length, 65544);
    assert.equal(hex(out.subarray(0, 8)), '01 05 00 03 ff ff 01 00');
    assert.ok(out.subarray(8, 65543).equals(data), 'out.subarray(8, 65543).equals(data)');
    assert.equal(out[65543], 0);
    const terminated = encodeStream(RecordType.Stdin, 3, data, true);
    assert.equal(terminated.length, 65552);
    assert.equal(hex(terminated.subarray(65544)), '01 05 00 03 00 00 00 00');
  });

  it('splits 65536 bytes into 65535 + 1', () => {
    const out = encodeStream(RecordType.Data, 1, pattern(65536), false);
    assert.equal(out.length, 65544 + 16);
    assert.equal(hex(out.subarray(65544, 65544 + 8)), '01 08 00 01 00 01 07 00');
    assert.equal(out[65544 + 8], pattern(65536)[65535]);
    assert.equal(hex(out.subarray(65544 + 9)), '00 00 00 00 00 00 00');
  });

  it('gives only the terminator for empty data, and nothing without terminate', () => {
    assert.equal(hex(encodeStream(RecordType.Params, 1, new Uint8Array(0), true)), '01 04 00 01 00 00 00 00');
    assert.equal(hex(encodeStream(RecordType.Params, 1, new Uint8Array(0))), '01 04 00 01 00 00 00 00');
    assert.equal(encodeStream(RecordType.Params, 1, new Uint8Array(0), false).length, 0);
  });

  it('encodes a short stream exactly', () => {
    const out = encodeStream(RecordType.Stdout, 1, Buffer.from('Hello', 'latin1'), true);
    assert.equal(hex(out), '01 06 00 01 00 05 03 00 48 65 6c 6c 6f 00 00 00 01 06 00 01 00 00 00 00');
  });

  it('writeStream writes at an offset, returns the end, and touches nothing else', () => {
    const data = Buffer.from('abcdefghij', 'latin1');
    const size = streamSize(data.length, true);
    const target = Buffer.alloc(4 + size + 4, 0xcc);
    const end = writeStream(target, 4, RecordType.Stderr, 2, data, true);
    assert.equal(end, 4 + size);
    assert.equal(
      hex(target),
      'cc cc cc cc 01 07 00 02 00 0a 06 00 61 62 63 64 65 66 67 68 69 6a 00 00 00 00 00 00 01 07 00 02 00 00 00 00 cc cc cc cc',
    );
  });

  it('writeStream of nothing without terminate writes nothing', () => {
    const target = Buffer.alloc(4, 0xcc);
    assert.equal(writeStream(target, 2, RecordType.Stdout, 1, new Uint8Array(0), false), 2);
    assert.equal(hex(target), 'cc cc cc cc');
  });

  it('every stream reassembles to its data with records of 65535 except the last (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.boolean(),
        (length, requestId, terminate) => {
          const data = pattern(length, requestId);
          Buffer.allocUnsafe(512).fill(0xff);
          const out = encodeStream(RecordType.Stdout, requestId, data, terminate);
          assert.equal(out.length, streamSize(length, terminate));
          const pieces: Buffer[] = [];
          const lengths: number[] = [];
          let offset = 0;
          while (offset < out.length) {
            const header = readHeader(out, offset);
            assert.equal(header.version, 1);
            assert.equal(header.type, RecordType.Stdout);
            assert.equal(header.requestId, requestId);
            assert.equal(header.paddingLength, -header.contentLength & 7);
            assert.equal(out[offset + 7], 0);
            const start = offset + 8;
            pieces.push(out.subarray(start, start + header.contentLength));
            lengths.push(header.contentLength);
            for (let i = 0; i < header.paddingLength; i++) assert.equal(out[start + header.contentLength + i], 0);
            offset = start + header.contentLength + header.paddingLength;
          }
          assert.equal(offset, out.length);
          assert.ok(Buffer.concat(pieces).equals(data), 'Buffer.concat(pieces).equals(data)');
          const expectedLengths: number[] = [];
          for (let rest = length; rest > 0; rest -= Math.min(rest, 65535)) expectedLengths.push(Math.min(rest, 65535));
          if (terminate) expectedLengths.push(0);
          assert.deepEqual(lengths, expectedLengths);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('BEGIN_REQUEST', () => {
  it('encodes a Responder with KEEP_CONN exactly', () => {
    assert.equal(
      hex(encodeBeginRequest(1, Role.Responder, KEEP_CONN)),
      '01 01 00 01 00 08 00 00 00 01 01 00 00 00 00 00',
    );
  });

  it('encodes an Authorizer without flags, a Filter, id > 255 and a 16-bit role exactly', () => {
    assert.equal(hex(encodeBeginRequest(1, Role.Authorizer, 0)), '01 01 00 01 00 08 00 00 00 02 00 00 00 00 00 00');
    assert.equal(hex(encodeBeginRequest(0x0304, Role.Filter, 0)), '01 01 03 04 00 08 00 00 00 03 00 00 00 00 00 00');
    assert.equal(hex(encodeBeginRequest(65535, 0xabcd, 0xff)), '01 01 ff ff 00 08 00 00 ab cd ff 00 00 00 00 00');
  });

  it('decodes role (16-bit big-endian) and flags, ignoring the reserved bytes', () => {
    assert.deepEqual(decodeBeginRequest(h('00 01 01 00 00 00 00 00')), { role: 1, flags: 1 });
    assert.deepEqual(decodeBeginRequest(h('01 02 00 ff ff ff ff ff')), { role: 0x0102, flags: 0 });
    assert.deepEqual(decodeBeginRequest(new Uint8Array([0xff, 0xff, 0xfe, 0, 0, 0, 0, 0])), { role: 65535, flags: 0xfe });
  });

  it('round-trips (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 255 }),
        (requestId, role, flags) => {
          const record = encodeBeginRequest(requestId, role, flags);
          assert.equal(record.length, 16);
          assert.deepEqual(readHeader(record), {
            version: 1,
            type: RecordType.BeginRequest,
            requestId,
            contentLength: 8,
            paddingLength: 0,
          });
          assert.equal(hex(record.subarray(11)), '00 00 00 00 00');
          assert.deepEqual(decodeBeginRequest(record.subarray(8)), { role, flags });
        },
      ),
    );
  });

  it('rejects bodies that are not 8 bytes with NODEFPM_PROTOCOL_RECORD', () => {
    for (const length of [0, 1, 7, 9, 16]) assertRecordError(() => decodeBeginRequest(new Uint8Array(length)));
  });
});

describe('END_REQUEST', () => {
  const table: Array<[number, number, number, string]> = [
    [1, 0, ProtocolStatus.RequestComplete, '01 03 00 01 00 08 00 00 00 00 00 00 00 00 00 00'],
    [1, 938, ProtocolStatus.RequestComplete, '01 03 00 01 00 08 00 00 00 00 03 aa 00 00 00 00'],
    [2, 0xffffffff, ProtocolStatus.CantMpxConn, '01 03 00 02 00 08 00 00 ff ff ff ff 01 00 00 00'],
    [0x0100, 0x01020304, ProtocolStatus.Overloaded, '01 03 01 00 00 08 00 00 01 02 03 04 02 00 00 00'],
    [65535, 0x80000000, ProtocolStatus.UnknownRole, '01 03 ff ff 00 08 00 00 80 00 00 00 03 00 00 00'],
  ];
  for (const [requestId, appStatus, protocolStatus, expected] of table) {
    it(`id ${requestId} appStatus ${appStatus} protocolStatus ${protocolStatus} -> exact bytes and back`, () => {
      const record = encodeEndRequest(requestId, appStatus, protocolStatus);
      assert.equal(hex(record), expected);
      assert.deepEqual(decodeEndRequest(record.subarray(8)), { appStatus, protocolStatus });
    });
  }

  it('wraps negative appStatus as 32-bit unsigned (>>> 0)', () => {
    assert.equal(hex(encodeEndRequest(1, -1, 0).subarray(8)), 'ff ff ff ff 00 00 00 00');
    assert.equal(hex(encodeEndRequest(1, -2, 0).subarray(8)), 'ff ff ff fe 00 00 00 00');
    assert.equal(hex(encodeEndRequest(1, -0x80000000, 0).subarray(8)), '80 00 00 00 00 00 00 00');
    assert.deepEqual(decodeEndRequest(encodeEndRequest(1, -1, 0).subarray(8)), { appStatus: 0xffffffff, protocolStatus: 0 });
    assert.deepEqual(decodeEndRequest(encodeEndRequest(1, -938, 0).subarray(8)), {
      appStatus: -938 >>> 0,
      protocolStatus: 0,
    });
  });

  it('decodes appStatus as unsigned even with the top bit set, and ignores reserved bytes', () => {
    assert.deepEqual(decodeEndRequest(h('ff ff ff ff 00 ff ff ff')), { appStatus: 4294967295, protocolStatus: 0 });
    assert.deepEqual(decodeEndRequest(h('80 00 00 01 03 00 00 00')), { appStatus: 2147483649, protocolStatus: 3 });
  });

  it('writeEndRequest writes 16 bytes at an offset over dirty memory and returns the end', () => {
    const target = Buffer.alloc(20, 0xee);
    assert.equal(writeEndRequest(target, 2, 7, 938, ProtocolStatus.RequestComplete), 18);
    assert.equal(hex(target), 'ee ee 01 03 00 07 00 08 00 00 00 00 03 aa 00 00 00 00 ee ee');
  });

  it('round-trips any 32-bit status, signed or unsigned (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65535 }),
        fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: -0x80000000, max: -1 })),
        fc.integer({ min: 0, max: 255 }),
        (requestId, appStatus, protocolStatus) => {
          const record = encodeEndRequest(requestId, appStatus, protocolStatus);
          assert.equal(record.length, 16);
          assert.deepEqual(readHeader(record), {
            version: 1,
            type: RecordType.EndRequest,
            requestId,
            contentLength: 8,
            paddingLength: 0,
          });
          assert.equal(record.readUInt32BE(8), appStatus >>> 0);
          assert.equal(hex(record.subarray(13)), '00 00 00');
          assert.deepEqual(decodeEndRequest(record.subarray(8)), { appStatus: appStatus >>> 0, protocolStatus });
        },
      ),
    );
  });

  it('rejects bodies that are not 8 bytes with NODEFPM_PROTOCOL_RECORD', () => {
    for (const length of [0, 4, 7, 9]) assertRecordError(() => decodeEndRequest(new Uint8Array(length)));
  });
});

describe('UNKNOWN_TYPE', () => {
  it('encodes the unknown type in the first body byte, on request id 0', () => {
    assert.equal(hex(encodeUnknownType(42)), '01 0b 00 00 00 08 00 00 2a 00 00 00 00 00 00 00');
    assert.equal(hex(encodeUnknownType(255)), '01 0b 00 00 00 08 00 00 ff 00 00 00 00 00 00 00');
    assert.equal(hex(encodeUnknownType(0)), '01 0b 00 00 00 08 00 00 00 00 00 00 00 00 00 00');
  });

  it('round-trips every type byte', () => {
    for (let type = 0; type < 256; type++) {
      const record = encodeUnknownType(type);
      assert.deepEqual(readHeader(record), {
        version: 1,
        type: RecordType.UnknownType,
        requestId: 0,
        contentLength: 8,
        paddingLength: 0,
      });
      assert.equal(decodeUnknownType(record.subarray(8)), type);
    }
  });

  it('rejects bodies that are not 8 bytes with NODEFPM_PROTOCOL_RECORD', () => {
    for (const length of [0, 1, 7, 9]) assertRecordError(() => decodeUnknownType(new Uint8Array(length)));
  });
});

describe('ABORT_REQUEST', () => {
  it('is an empty record of type 2', () => {
    assert.equal(hex(encodeAbortRequest(1)), '01 02 00 01 00 00 00 00');
    assert.equal(hex(encodeAbortRequest(0x1234)), '01 02 12 34 00 00 00 00');
    assert.equal(hex(encodeAbortRequest(65535)), '01 02 ff ff 00 00 00 00');
  });

  it('round-trips through readHeader', () => {
    for (const requestId of [1, 255, 256, 40000, 65535]) {
      assert.deepEqual(readHeader(encodeAbortRequest(requestId)), {
        version: 1,
        type: RecordType.AbortRequest,
        requestId,
        contentLength: 0,
        paddingLength: 0,
      });
    }
  });
});

describe('decoder errors', () => {
  it('are NodefpmError instances that name the record and the sizes', () => {
    try {
      decodeEndRequest(new Uint8Array(5));
      assert.fail('decodeEndRequest accepted a 5-byte body');
    } catch (error) {
      assert.ok(error instanceof NodefpmError, 'error instanceof NodefpmError');
      assert.equal(error.name, 'NodefpmError');
      assert.equal(error.code, 'NODEFPM_PROTOCOL_RECORD');
      assert.equal(error.status, undefined);
      assert.match(error.message, /FCGI_END_REQUEST/);
      assert.match(error.message, /\b8\b/);
      assert.match(error.message, /\b5\b/);
    }
  });
});
