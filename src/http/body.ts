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
  /** The length the web server declared (CONTENT_LENGTH, FCGI_DATA_LENGTH), or -1; the connection holds the stream to it. */
  readonly #declaredLength: number;
  /** Bytes a line reader took from the stream but has not handed out. */
  #leftover: Buffer | null = null;
  #wholeRead = false;

  constructor(stream: InputStream, limits: BodyLimits, declaredLength = -1) {
    this.#stream = stream;
    this.#limits = limits;
    this.#declaredLength = declaredLength;
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

  /**
   * Reads the rest of the body by lending each chunk to `onChunk`, synchronously, as it arrives: the
   * chunk is valid only until onChunk returns, since it may be a view of the connection's read buffer,
   * which the next read overwrites; copy what you keep. For bodies used as they stream (hashed, counted,
   * parsed incrementally, written out synchronously): no memory is allocated for them and nothing is
   * queued. Resolves with the bytes read once the body has ended; rejects as read() does, or with what
   * onChunk threw (the rest of the body is then dropped).
   */
  async consume(onChunk: (chunk: Buffer) => void): Promise<number> {
    let bytes = 0;
    const leftover = this.#leftover;
    if (leftover !== null) {
      this.#leftover = null;
      bytes += leftover.length;
      try {
        onChunk(leftover);
      } catch (error) {
        this.#stream.discard();
        throw error;
      }
    }
    await this.#stream.consume((chunk) => {
      bytes += chunk.length;
      onChunk(chunk);
    });
    return bytes;
  }

  /** The rest of the body in one Buffer, at most `limit` bytes (default bodyLimit), else 413. */
  async bytes(options: { limit?: number } = {}): Promise<Buffer> {
    this.#claimWhole();
    const limit = options.limit ?? this.#limits.bodyLimit;
    const tooLarge = (): NodefpmError =>
      new NodefpmError('NODEFPM_BODY_TOO_LARGE', `request body is larger than the ${limit}-byte limit for reading it whole`);
    const stream = this.#stream;
    // The chunks are lent (consume()), so each is copied once: straight into a buffer of the size still
    // to come when the length is declared, else kept as copies and joined at the end.
    const handedOut = stream.bytesReceived - stream.bytesBuffered - (this.#leftover?.length ?? 0);
    const expected = this.#declaredLength >= 0 ? this.#declaredLength - handedOut : -1;
    // Declared too large: fail before reading any of it (a stream that failed already reports its own error).
    if (expected > limit && stream.error === null) {
      stream.discard();
      throw tooLarge();
    }
    let whole: Buffer | null = expected >= 0 && expected <= limit ? Buffer.allocUnsafe(expected) : null;
    const copies: Buffer[] = [];
    let total = 0;
    await this.consume((chunk) => {
      const at = total;
      total += chunk.length;
      if (total > limit) throw tooLarge();
      if (whole !== null && total <= whole.length) {
        chunk.copy(whole, at);
        return;
      }
      if (whole !== null) {
        // More than declared: the connection fails such a stream, but stay correct regardless.
        copies.push(whole.subarray(0, at));
        whole = null;
      }
      copies.push(Buffer.from(chunk));
    });
    if (whole !== null) return total === whole.length ? whole : whole.subarray(0, total);
    return copies.length === 1 ? copies[0]! : Buffer.concat(copies, total);
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
