// The incremental record parser: socket chunks in, records out as views, copying only what must be whole.

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../errors.js';
import { FCGI_VERSION_1, HEADER_LENGTH, RecordType } from './constants.js';

/**
 * Receives records. `content` may be a view into the socket chunk: copy it to keep it past the call.
 * With `streamParts`, one stream record may arrive in several calls (see RecordParserOptions).
 */
export interface RecordSink {
  onRecord(type: number, requestId: number, content: Buffer): void;
}

export interface RecordParserOptions {
  /**
   * Hand the content of a stream record (PARAMS, STDIN, STDOUT, STDERR, DATA) that spans socket chunks
   * to the sink in parts, each a view of its chunk, instead of assembling a copy. A stream's value is the
   * concatenation of its records' contents, independent of record boundaries (section 3.3), so
   * a consumer of streams loses nothing; parts are never empty, so an empty content still means the
   * stream's end. Discrete records (BEGIN_REQUEST, END_REQUEST, management records) are always whole.
   * Default false: every call is one whole record.
   */
  streamParts?: boolean;
}

const EMPTY = Buffer.alloc(0);

function isStreamType(type: number): boolean {
  return type >= RecordType.Params && type <= RecordType.Data;
}

/**
 * Parses a FastCGI byte stream pushed in chunks of any size. A record wholly inside one chunk is handed
 * on as a view of that chunk. A record that spans chunks is assembled into a buffer of its own (at most
 * 65535 bytes) — or, with `streamParts` and a stream type, handed on as views part by part. A header
 * split across chunks is gathered into 8 bytes kept here. Padding is skipped.
 *
 * The only fatal input is a version byte other than 1: push() then returns the error and the parser
 * ignores everything after it. Nothing here throws on input.
 */
export class RecordParser {
  readonly #sink: RecordSink;
  readonly #streamParts: boolean;
  /** Allocated on the first header split across chunks: most connections never need it. */
  #header: Buffer | null = null;
  #headerFill = 0;
  /** The record in progress when it spans chunks: its header fields and the content gathered so far. */
  #type = 0;
  #requestId = 0;
  #content: Buffer | null = null;
  #contentFill = 0;
  /** Content bytes of a stream record still to be handed on in parts (streamParts). */
  #partsLeft = 0;
  #paddingLeft = 0;
  #error: NodefpmError | null = null;
  #stopped = false;
  #recordsSeen = 0;

  constructor(sink: RecordSink, options: RecordParserOptions = {}) {
    this.#sink = sink;
    this.#streamParts = options.streamParts ?? false;
  }

  /** The error that stopped the parser, if any. */
  get error(): NodefpmError | null {
    return this.#error;
  }

  /** Whole records received so far (a record handed on in parts counts once, at its last part). */
  get recordsSeen(): number {
    return this.#recordsSeen;
  }

  /** True when a record or header is partly received: the stream ended mid-record if it closes now. */
  get midRecord(): boolean {
    return this.#headerFill > 0 || this.#content !== null || this.#partsLeft > 0 || this.#paddingLeft > 0;
  }

  /** Stops parsing: the rest of the current chunk and later pushes are ignored (the connection is going away). */
  stop(): void {
    this.#stopped = true;
  }

  /** Parses `chunk`; returns the protocol error that stopped the parser, or undefined. */
  push(chunk: Buffer): NodefpmError | undefined {
    if (this.#error !== null) return this.#error;
    const end = chunk.length;
    let offset = 0;
    while (offset < end && !this.#stopped) {
      if (this.#partsLeft > 0) {
        offset = this.#handPart(chunk, offset);
        continue;
      }
      if (this.#content !== null) {
        offset = this.#fillContent(chunk, offset);
        continue;
      }
      if (this.#paddingLeft > 0) {
        const skip = Math.min(this.#paddingLeft, end - offset);
        this.#paddingLeft -= skip;
        offset += skip;
        continue;
      }
      if (this.#headerFill === 0 && end - offset >= HEADER_LENGTH) {
        // The common case: the header is whole in this chunk, and usually the record too.
        if (chunk[offset] !== FCGI_VERSION_1) return this.#fail(chunk[offset]!);
        const type = chunk[offset + 1]!;
        const requestId = (chunk[offset + 2]! << 8) | chunk[offset + 3]!;
        const contentLength = (chunk[offset + 4]! << 8) | chunk[offset + 5]!;
        const paddingLength = chunk[offset + 6]!;
        const contentStart = offset + HEADER_LENGTH;
        const contentEnd = contentStart + contentLength;
        if (contentEnd <= end) {
          offset = Math.min(contentEnd + paddingLength, end);
          this.#paddingLeft = contentEnd + paddingLength - offset;
          this.#recordsSeen++;
          this.#sink.onRecord(type, requestId, contentLength === 0 ? EMPTY : chunk.subarray(contentStart, contentEnd));
        } else {
          this.#begin(type, requestId, contentLength, paddingLength);
          offset = contentStart;
        }
        continue;
      }
      // A header split across chunks: gather its 8 bytes first.
      const header = (this.#header ??= Buffer.allocUnsafe(HEADER_LENGTH));
      const take = Math.min(HEADER_LENGTH - this.#headerFill, end - offset);
      chunk.copy(header, this.#headerFill, offset, offset + take);
      this.#headerFill += take;
      offset += take;
      if (this.#headerFill < HEADER_LENGTH) break;
      this.#headerFill = 0;
      if (header[0] !== FCGI_VERSION_1) return this.#fail(header[0]!);
      const contentLength = (header[4]! << 8) | header[5]!;
      const type = header[1]!;
      const requestId = (header[2]! << 8) | header[3]!;
      if (contentLength === 0) {
        this.#paddingLeft = header[6]!;
        this.#recordsSeen++;
        this.#sink.onRecord(type, requestId, EMPTY);
      } else {
        this.#begin(type, requestId, contentLength, header[6]!);
      }
    }
    return undefined;
  }

  /** Starts a record (content length > 0) whose content continues past the current chunk. */
  #begin(type: number, requestId: number, contentLength: number, paddingLength: number): void {
    this.#type = type;
    this.#requestId = requestId;
    this.#paddingLeft = paddingLength;
    if (this.#streamParts && isStreamType(type)) {
      this.#partsLeft = contentLength;
    } else {
      this.#content = Buffer.allocUnsafe(contentLength);
      this.#contentFill = 0;
    }
  }

  #handPart(chunk: Buffer, offset: number): number {
    const take = Math.min(this.#partsLeft, chunk.length - offset);
    this.#partsLeft -= take;
    if (this.#partsLeft === 0) this.#recordsSeen++;
    this.#sink.onRecord(this.#type, this.#requestId, chunk.subarray(offset, offset + take));
    return offset + take;
  }

  #fillContent(chunk: Buffer, offset: number): number {
    const content = this.#content!;
    const take = Math.min(content.length - this.#contentFill, chunk.length - offset);
    chunk.copy(content, this.#contentFill, offset, offset + take);
    this.#contentFill += take;
    if (this.#contentFill === content.length) {
      this.#content = null;
      this.#recordsSeen++;
      this.#sink.onRecord(this.#type, this.#requestId, content);
    }
    return offset + take;
  }

  #fail(version: number): NodefpmError {
    this.#error = new NodefpmError(
      'NODEFPM_PROTOCOL_VERSION',
      `record version ${version} is not FCGI_VERSION_1 after ${this.#recordsSeen} good records: not a FastCGI peer, or the stream lost sync`,
    );
    return this.#error;
  }
}
