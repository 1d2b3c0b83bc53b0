// FastCGI records: the 8-byte header, padding, streams split at 65535 bytes, and the fixed-size bodies.

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../errors.js';
import {
  FCGI_VERSION_1,
  HEADER_LENGTH,
  MAX_CONTENT_LENGTH,
  NULL_REQUEST_ID,
  RecordType,
  type ProtocolStatus,
  type Role,
} from './constants.js';

export interface RecordHeader {
  version: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
}

/** A whole record: its header fields and content (padding already dropped). */
export interface FcgiRecord {
  type: number;
  requestId: number;
  content: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Padding that brings a record to a multiple of 8 bytes, as the specification recommends. */
export function paddingFor(contentLength: number): number {
  return -contentLength & 7;
}

/** Bytes of one record carrying `contentLength` bytes, header and padding included. */
export function recordSize(contentLength: number): number {
  return HEADER_LENGTH + contentLength + paddingFor(contentLength);
}

/** Writes a record header at `offset`; returns the offset just past it. */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): number {
  target[offset] = FCGI_VERSION_1;
  target[offset + 1] = type;
  target[offset + 2] = requestId >>> 8;
  target[offset + 3] = requestId & 0xff;
  target[offset + 4] = contentLength >>> 8;
  target[offset + 5] = contentLength & 0xff;
  target[offset + 6] = paddingLength;
  target[offset + 7] = 0;
  return offset + HEADER_LENGTH;
}

/**
 * Zeroes the `padding` bytes (0-7) at `offset` and returns the offset after them. A loop: Buffer.fill's
 * argument checks and call into C++ cost more than the few bytes a record is ever padded with.
 */
export function writePadding(target: Uint8Array, offset: number, padding: number): number {
  for (let index = 0; index < padding; index++) target[offset + index] = 0;
  return offset + padding;
}

/** Reads the header at `offset` (the caller guarantees 8 bytes are there). */
export function readHeader(source: Uint8Array, offset = 0): RecordHeader {
  return {
    version: source[offset]!,
    type: source[offset + 1]!,
    requestId: (source[offset + 2]! << 8) | source[offset + 3]!,
    contentLength: (source[offset + 4]! << 8) | source[offset + 5]!,
    paddingLength: source[offset + 6]!,
  };
}

/** Encodes one record; `content` must fit in one record (at most 65535 bytes). */
export function encodeRecord(type: number, requestId: number, content: Uint8Array = EMPTY): Buffer {
  if (content.length > MAX_CONTENT_LENGTH) {
    throw new RangeError(`record content of ${content.length} bytes exceeds ${MAX_CONTENT_LENGTH}; use encodeStream`);
  }
  const padding = paddingFor(content.length);
  const out = Buffer.allocUnsafe(recordSize(content.length));
  const offset = writeHeader(out, 0, type, requestId, content.length, padding);
  out.set(content, offset);
  writePadding(out, offset + content.length, padding);
  return out;
}

/** Bytes of a stream of `length` bytes once split into records, plus the empty terminator when asked. */
export function streamSize(length: number, terminate: boolean): number {
  const full = Math.floor(length / MAX_CONTENT_LENGTH);
  const rest = length - full * MAX_CONTENT_LENGTH;
  return full * recordSize(MAX_CONTENT_LENGTH) + (rest > 0 ? recordSize(rest) : 0) + (terminate ? HEADER_LENGTH : 0);
}

/**
 * Writes `data` as stream records of `type` at `offset` (split at 65535 bytes, each padded to 8), then the
 * empty terminating record when `terminate` is set. Returns the offset just past what was written; the
 * target must hold streamSize(data.length, terminate) bytes from `offset`.
 */
export function writeStream(
  target: Buffer,
  offset: number,
  type: number,
  requestId: number,
  data: Uint8Array,
  terminate: boolean,
): number {
  let position = 0;
  while (position < data.length) {
    const length = Math.min(MAX_CONTENT_LENGTH, data.length - position);
    const padding = paddingFor(length);
    offset = writeHeader(target, offset, type, requestId, length, padding);
    target.set(data.subarray(position, position + length), offset);
    offset = writePadding(target, offset + length, padding);
    position += length;
  }
  if (terminate) offset = writeHeader(target, offset, type, requestId, 0, 0);
  return offset;
}

/** Encodes `data` as a stream of records (see writeStream). */
export function encodeStream(type: number, requestId: number, data: Uint8Array, terminate = true): Buffer {
  const out = Buffer.allocUnsafe(streamSize(data.length, terminate));
  writeStream(out, 0, type, requestId, data, terminate);
  return out;
}

function expectLength(content: Uint8Array, length: number, what: string): void {
  if (content.length !== length) {
    throw new NodefpmError('NODEFPM_PROTOCOL_RECORD', `${what} body must be ${length} bytes, got ${content.length}`);
  }
}

export interface BeginRequestBody {
  role: number;
  flags: number;
}

export function encodeBeginRequest(requestId: number, role: Role | number, flags: number): Buffer {
  const out = Buffer.alloc(HEADER_LENGTH + 8);
  writeHeader(out, 0, RecordType.BeginRequest, requestId, 8, 0);
  out[8] = (role >>> 8) & 0xff;
  out[9] = role & 0xff;
  out[10] = flags;
  return out;
}

export function decodeBeginRequest(content: Uint8Array): BeginRequestBody {
  expectLength(content, 8, 'FCGI_BEGIN_REQUEST');
  return { role: (content[0]! << 8) | content[1]!, flags: content[2]! };
}

export interface EndRequestBody {
  appStatus: number;
  protocolStatus: number;
}

/** Writes an END_REQUEST record (16 bytes) at `offset`; returns the offset past it. */
export function writeEndRequest(
  target: Uint8Array,
  offset: number,
  requestId: number,
  appStatus: number,
  protocolStatus: ProtocolStatus | number,
): number {
  offset = writeHeader(target, offset, RecordType.EndRequest, requestId, 8, 0);
  const status = appStatus >>> 0;
  target[offset] = status >>> 24;
  target[offset + 1] = (status >>> 16) & 0xff;
  target[offset + 2] = (status >>> 8) & 0xff;
  target[offset + 3] = status & 0xff;
  target[offset + 4] = protocolStatus;
  target[offset + 5] = 0;
  target[offset + 6] = 0;
  target[offset + 7] = 0;
  return offset + 8;
}

export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: ProtocolStatus | number): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + 8);
  writeEndRequest(out, 0, requestId, appStatus, protocolStatus);
  return out;
}

export function decodeEndRequest(content: Uint8Array): EndRequestBody {
  expectLength(content, 8, 'FCGI_END_REQUEST');
  const appStatus = ((content[0]! << 24) | (content[1]! << 16) | (content[2]! << 8) | content[3]!) >>> 0;
  return { appStatus, protocolStatus: content[4]! };
}

/** FCGI_UNKNOWN_TYPE, the answer to a management record of a type this side does not know (section 4.2). */
export function encodeUnknownType(type: number): Buffer {
  const out = Buffer.alloc(HEADER_LENGTH + 8);
  writeHeader(out, 0, RecordType.UnknownType, NULL_REQUEST_ID, 8, 0);
  out[8] = type;
  return out;
}

export function decodeUnknownType(content: Uint8Array): number {
  expectLength(content, 8, 'FCGI_UNKNOWN_TYPE');
  return content[0]!;
}

export function encodeAbortRequest(requestId: number): Buffer {
  return encodeRecord(RecordType.AbortRequest, requestId);
}
