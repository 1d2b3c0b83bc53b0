// The incremental record parser: socket chunks in, whole records out, copying only records split across chunks.

import { NodefpmError } from '../errors.js';
import { FCGI_VERSION_1, HEADER_LENGTH } from './constants.js';

/** Receives each whole record. `content` may be a view into the socket chunk: copy it to keep it past the call. */
export interface RecordSink {
  onRecord(type: number, requestId: number, content: Buffer): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Parses a FastCGI byte stream pushed in chunks of any size. A record wholly inside one chunk is handed
 * on as a view of that chunk; only a record that spans chunks is assembled into a buffer of its own
 * (at most 65535 bytes), and a header split across chunks into 8 bytes kept here. Padding is skipped.
 *
 * The only fatal input is a version byte other than 1: push() then returns the error and the parser
 * ignores everything after it. Nothing here throws on input.
 */
export class RecordParser {
  readonly #sink: RecordSink;
  readonly #header = Buffer.alloc(HEADER_LENGTH);
  #headerFill = 0;
  /** The record in progress when it spans chunks: its header fields and the content gathered so far. */
  #type = 0;
  #requestId = 0;
  #content: Buffer | null = null;
  #contentFill = 0;
  #paddingLeft = 0;
  #error: NodefpmError | null = null;
  #stopped = false;
  #recordsSeen = 0;

  constructor(sink: RecordSink) {
    this.#sink = sink;
  }

  /** The error that stopped the parser, if any. */
  get error(): NodefpmError | null {
    return this.#error;
  }

  /** Records handed to the sink so far. */
  get recordsSeen(): number {
    return this.#recordsSeen;
  }

  /** True when a record or header is partly received: the stream ended mid-record if it closes now. */
  get midRecord(): boolean {
    return this.#headerFill > 0 || this.#content !== null || this.#paddingLeft > 0;
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
          this.#emit(type, requestId, contentLength === 0 ? EMPTY : chunk.subarray(contentStart, contentEnd));
        } else {
          this.#begin(type, requestId, contentLength, paddingLength);
          offset = this.#fillContent(chunk, contentStart);
        }
        continue;
      }
      // A header split across chunks: gather its 8 bytes first.
      const take = Math.min(HEADER_LENGTH - this.#headerFill, end - offset);
      chunk.copy(this.#header, this.#headerFill, offset, offset + take);
      this.#headerFill += take;
      offset += take;
      if (this.#headerFill < HEADER_LENGTH) break;
      this.#headerFill = 0;
      const header = this.#header;
      if (header[0] !== FCGI_VERSION_1) return this.#fail(header[0]!);
      const contentLength = (header[4]! << 8) | header[5]!;
      this.#begin(header[1]!, (header[2]! << 8) | header[3]!, contentLength, header[6]!);
      if (contentLength === 0) this.#finishSpanning();
    }
    return undefined;
  }

  #begin(type: number, requestId: number, contentLength: number, paddingLength: number): void {
    this.#type = type;
    this.#requestId = requestId;
    this.#content = contentLength === 0 ? EMPTY : Buffer.allocUnsafe(contentLength);
    this.#contentFill = 0;
    this.#paddingLeft = paddingLength;
  }

  #fillContent(chunk: Buffer, offset: number): number {
    const content = this.#content!;
    const take = Math.min(content.length - this.#contentFill, chunk.length - offset);
    chunk.copy(content, this.#contentFill, offset, offset + take);
    this.#contentFill += take;
    if (this.#contentFill === content.length) this.#finishSpanning();
    return offset + take;
  }

  #finishSpanning(): void {
    const content = this.#content!;
    this.#content = null;
    this.#emit(this.#type, this.#requestId, content);
  }

  #emit(type: number, requestId: number, content: Buffer): void {
    this.#recordsSeen++;
    this.#sink.onRecord(type, requestId, content);
  }

  #fail(version: number): NodefpmError {
    this.#error = new NodefpmError(
      'NODEFPM_PROTOCOL_VERSION',
      `record version ${version} is not FCGI_VERSION_1 after ${this.#recordsSeen} good records: not a FastCGI peer, or the stream lost sync`,
    );
    return this.#error;
  }
}
