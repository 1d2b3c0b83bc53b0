// The request body as the application reads it: chunks, whole (bytes, text, JSON) or line by line, each bounded.

import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { NodefpmError } from '../errors.js';
import type { InputStream } from '../server/input-stream.js';

export interface BodyLimits {
  /** Bytes bytes()/text()/json() hold in memory before failing with 413. Default 10 MiB. */
  bodyLimit: number;
  /** Bytes of one line for readLine()/lines() before failing with 413. Default 64 KiB. */
  lineLimit: number;
}

export const defaultBodyLimits: Readonly<BodyLimits> = Object.freeze({
  bodyLimit: 10 * 1024 * 1024,
  lineLimit: 64 * 1024,
});

const LF = 0x0a;
const CR = 0x0d;

/**
 * What `for await (const chunk of body)` runs on: the chunk a line reader left over, then the stream's
 * own. A class, not an async generator (each chunk then costs one promise, the stream's, where a
 * generator over read() made three) nor an object literal (three closures per loop, and its computed
 * Symbol.asyncIterator key took V8's slow path): this is the path every streamed body takes.
 */
class BodyIterator implements AsyncIterableIterator<Buffer> {
  readonly #stream: InputStream;
  #leftover: Buffer | null;

  constructor(stream: InputStream, leftover: Buffer | null) {
    this.#stream = stream;
    this.#leftover = leftover;
  }

  next(): Promise<IteratorResult<Buffer>> {
    const leftover = this.#leftover;
    if (leftover !== null) {
      this.#leftover = null;
      return Promise.resolve({ value: leftover, done: false });
    }
    return this.#stream.next();
  }

  /** Leaving the loop early (break, return, throw): the rest is not wanted, so it is dropped and the connection keeps flowing. */
  return(): Promise<IteratorResult<Buffer>> {
    this.#leftover = null;
    if (!this.#stream.finished) this.#stream.discard();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }
}

/**
 * A body stream (FCGI_STDIN, or the Filter role's FCGI_DATA). Read it one way at a time: iterate the
 * chunks, or take it whole, or by lines (in the manner of Smisk's readline/readlines); the ways can be
 * mixed in sequence (a few lines, then the rest as bytes), never concurrently. Every way is bounded.
 */
export class Body implements AsyncIterable<Buffer> {
  readonly #stream: InputStream;
  readonly #limits: BodyLimits;
  /** Bytes a line reader took from the stream but has not handed out. */
  #leftover: Buffer | null = null;
  #wholeRead = false;

  constructor(stream: InputStream, limits: BodyLimits) {
    this.#stream = stream;
    this.#limits = limits;
  }

  /** Bytes received from the web server so far. */
  get bytesReceived(): number {
    return this.#stream.bytesReceived;
  }

  /** True once every byte has been read (or the stream failed). */
  get finished(): boolean {
    return this.#leftover === null && this.#stream.finished;
  }

  /** The next chunk, or null at the end. Rejects if the request was aborted or a limit was hit. */
  async read(): Promise<Buffer | null> {
    const leftover = this.#leftover;
    if (leftover !== null) {
      this.#leftover = null;
      return leftover;
    }
    return this.#stream.read();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    const leftover = this.#leftover;
    this.#leftover = null;
    return new BodyIterator(this.#stream, leftover);
  }

  /** The rest of the body in one Buffer, at most `limit` bytes (default bodyLimit), else 413. */
  async bytes(options: { limit?: number } = {}): Promise<Buffer> {
    this.#claimWhole();
    const limit = options.limit ?? this.#limits.bodyLimit;
    const chunks: Buffer[] = [];
    let total = 0;
    for (let chunk = await this.read(); chunk !== null; chunk = await this.read()) {
      total += chunk.length;
      if (total > limit) {
        this.#stream.discard();
        throw new NodefpmError('NODEFPM_BODY_TOO_LARGE', `request body is larger than the ${limit}-byte limit for reading it whole`);
      }
      chunks.push(chunk);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
  }

  /** The rest of the body decoded as UTF-8 (bounded as bytes()). */
  async text(options: { limit?: number } = {}): Promise<string> {
    return (await this.bytes(options)).toString('utf8');
  }

  /** The rest of the body parsed as JSON (bounded as bytes()); malformed JSON is a 400 error. */
  async json<T = unknown>(options: { limit?: number } = {}): Promise<T> {
    const text = await this.text(options);
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new NodefpmError('NODEFPM_BODY_MALFORMED', `request body is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * The next line as UTF-8 without its terminator (LF or CRLF), or null at the end. A last line with
   * no terminator is returned as is. A line longer than `limit` (default lineLimit) fails with 413.
   */
  async readLine(options: { limit?: number } = {}): Promise<string | null> {
    const line = await this.readLineBytes(options);
    return line === null ? null : line.toString('utf8');
  }

  /** As readLine(), as bytes (for bodies that are not UTF-8). */
  async readLineBytes(options: { limit?: number } = {}): Promise<Buffer | null> {
    const limit = options.limit ?? this.#limits.lineLimit;
    const parts: Buffer[] = [];
    let length = 0;
    /** The bytes gathered so far end with CR, which may be the first half of a CRLF split across chunks. */
    let endsWithCR = false;
    const tooLong = (): NodefpmError => {
      this.#stream.discard();
      return new NodefpmError('NODEFPM_LINE_TOO_LONG', `a line of the request body is longer than ${limit} bytes`);
    };
    for (;;) {
      const chunk = await this.read();
      if (chunk === null) {
        if (length > limit) throw tooLong();
        return length === 0 && parts.length === 0 ? null : Buffer.concat(parts, length);
      }
      const newline = chunk.indexOf(LF);
      const take = newline === -1 ? chunk.length : newline;
      // A CR before the LF belongs to the terminator, not to the line the limit bounds.
      const crAtEnd: boolean = take > 0 ? chunk[take - 1] === CR : endsWithCR;
      if (length + take - (crAtEnd ? 1 : 0) > limit) throw tooLong();
      if (newline === -1) {
        parts.push(chunk);
        length += chunk.length;
        endsWithCR = crAtEnd;
        continue;
      }
      if (newline + 1 < chunk.length) this.#leftover = chunk.subarray(newline + 1);
      parts.push(chunk.subarray(0, newline));
      length += newline;
      const line = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
      return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
    }
  }

  /** Iterates the remaining lines (see readLine). */
  async *lines(options: { limit?: number } = {}): AsyncGenerator<string, void, undefined> {
    for (let line = await this.readLine(options); line !== null; line = await this.readLine(options)) yield line;
  }

  /** All remaining lines, bounded in total by bodyLimit and each by lineLimit. */
  async readLines(options: { limit?: number; lineLimit?: number } = {}): Promise<string[]> {
    const limit = options.limit ?? this.#limits.bodyLimit;
    const lines: string[] = [];
    let total = 0;
    for await (const line of this.lines({ limit: options.lineLimit ?? this.#limits.lineLimit })) {
      total += line.length + 1;
      if (total > limit) {
        this.#stream.discard();
        throw new NodefpmError('NODEFPM_BODY_TOO_LARGE', `request body is larger than the ${limit}-byte limit for reading it whole`);
      }
      lines.push(line);
    }
    return lines;
  }

  /** Drops the rest of the body unread. */
  discard(): void {
    this.#leftover = null;
    this.#stream.discard();
  }

  /** The body as a Node Readable (for pipeline() and libraries that want one), with backpressure. */
  toReadable(): Readable {
    return Readable.from(this, { objectMode: false });
  }

  #claimWhole(): void {
    if (this.#wholeRead) throw new NodefpmError('NODEFPM_BODY_CONSUMED', 'the request body was already read whole');
    this.#wholeRead = true;
  }
}
