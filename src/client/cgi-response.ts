// The CGI response head at the start of FCGI_STDOUT: an incremental parser giving status, headers and the first body bytes.

import { Buffer } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import { NodefpmError } from '../errors.js';

/** The parsed head of a CGI response (RFC 3875 section 6). */
export interface CgiHead {
  /** From `Status:`; 302 when only `Location:` is given; otherwise 200. */
  status: number;
  /** The reason phrase after the code in `Status:`, or Node's standard text for the code. */
  statusText: string;
  /**
   * Header names in lower case. A header given once is a string, a repeated one an array of its values
   * in order. The CGI `Status` field is not a header and is left out (it is `status` and `statusText`).
   * A null-prototype object, so names such as `constructor` are plain keys.
   */
  headers: Record<string, string | string[]>;
  /** Every header as sent: original name case, in order, repeats kept, `Status` left out. */
  rawHeaders: Array<[string, string]>;
}

/** The head once complete, and the bytes of the chunk that followed it (the first body bytes, maybe empty). */
export interface CgiHeadResult {
  head: CgiHead;
  rest: Buffer;
}

export interface CgiHeadParserOptions {
  /** The most bytes the head may take, line ends and the blank line included. Default 64 KiB. */
  maxHeadBytes?: number;
}

/** The default bound on a CGI response head. */
export const DEFAULT_MAX_HEAD_BYTES = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Bytes that would let a header value smuggle a line or string end into whatever relays it.
const FORBIDDEN_IN_VALUE = /[\0\r\n]/;

function bad(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_CLIENT_BAD_RESPONSE', `bad CGI response head: ${message}`);
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** `text` from `start`, without the spaces and tabs at either end. */
function trimBlanks(text: string, start: number): string {
  let end = text.length;
  while (start < end && isBlank(text.charCodeAt(start))) start++;
  while (end > start && isBlank(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/** The code of a Status value: three digits, not starting with 0, then nothing or blanks and a reason; -1 otherwise. */
function statusCode(value: string): number {
  let status = 0;
  for (let i = 0; i < 3; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (!(digit >= 0 && digit <= 9) || (i === 0 && digit === 0)) return -1;
    status = status * 10 + digit;
  }
  return value.length === 3 || isBlank(value.charCodeAt(3)) ? status : -1;
}

function preview(line: string): string {
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}...` : line);
}

/**
 * Parses the CGI head from STDOUT chunks of any size. Lines end with CRLF or a bare LF; a blank line
 * ends the head and what follows is body. A line starting with a space or tab continues the previous
 * header (obsolete line folding, joined with one space). Text is read as Latin-1, as Node's http
 * reads header bytes, so no byte is lost.
 *
 * Errors are NODEFPM_CLIENT_BAD_RESPONSE: a line without a colon, a name that is not an HTTP token, a
 * value with a NUL or bare CR, a malformed or repeated `Status`, or a head over `maxHeadBytes`.
 */
export class CgiHeadParser {
  readonly #maxHeadBytes: number;
  /** The start of a line not yet ended, kept across chunks. */
  #partial: Buffer[] = [];
  #partialLength = 0;
  #size = 0;
  #lines: Array<[string, string]> = [];
  #head: CgiHead | null = null;

  constructor(options: CgiHeadParserOptions = {}) {
    this.#maxHeadBytes = options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
  }

  /** The head once parsed, else null. */
  get head(): CgiHead | null {
    return this.#head;
  }

  /** Bytes of the head consumed so far. */
  get bytesSeen(): number {
    return this.#size;
  }

  /**
   * Feeds the next STDOUT bytes. Returns null while the head is incomplete; once the blank line is seen,
   * the head and the rest of this chunk (a view, not a copy). Throws NODEFPM_CLIENT_BAD_RESPONSE.
   * Must not be called again after it returned a result.
   */
  push(chunk: Buffer): CgiHeadResult | null {
    if (this.#head !== null) throw new Error('CgiHeadParser.push called after the head was complete');
    let offset = 0;
    while (offset < chunk.length) {
      const lf = chunk.indexOf(LF, offset);
      const lineEnd = lf < 0 ? chunk.length : lf + 1;
      this.#size += lineEnd - offset;
      if (this.#size > this.#maxHeadBytes) {
        throw bad(`the head is longer than maxHeadBytes (${this.#maxHeadBytes} bytes) without a blank line`);
      }
      if (lf < 0) {
        this.#partial.push(chunk.subarray(offset));
        this.#partialLength += chunk.length - offset;
        break;
      }
      const line = this.#takeLine(chunk, offset, lf);
      offset = lineEnd;
      if (line === '') {
        this.#head = this.#build();
        return { head: this.#head, rest: offset < chunk.length ? chunk.subarray(offset) : EMPTY };
      }
      this.#addLine(line);
    }
    return null;
  }

  /**
   * Ends the head when STDOUT ended before a blank line. Empty STDOUT gives status 200 and no headers
   * (an Authorizer allowing access may send nothing); a last line without a line end counts as a line.
   * Output that is not a head at all fails here, on the line that has no colon.
   */
  finish(): CgiHead {
    if (this.#head !== null) return this.#head;
    if (this.#partialLength > 0) {
      const line = Buffer.concat(this.#partial, this.#partialLength).toString('latin1');
      this.#partial = [];
      this.#partialLength = 0;
      const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (trimmed !== '') this.#addLine(trimmed);
    }
    this.#head = this.#build();
    return this.#head;
  }

  #takeLine(chunk: Buffer, offset: number, lf: number): string {
    let end = lf;
    let text: string;
    if (this.#partialLength === 0) {
      if (end > offset && chunk[end - 1] === CR) end--;
      text = chunk.toString('latin1', offset, end);
    } else {
      // A line split across chunks (rare: heads are small): join its pieces once.
      this.#partial.push(chunk.subarray(offset, lf));
      const joined = Buffer.concat(this.#partial, this.#partialLength + (lf - offset));
      this.#partial = [];
      this.#partialLength = 0;
      const length = joined.length > 0 && joined[joined.length - 1] === CR ? joined.length - 1 : joined.length;
      text = joined.toString('latin1', 0, length);
    }
    return text;
  }

  #addLine(line: string): void {
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      const previous = this.#lines[this.#lines.length - 1];
      if (previous === undefined) throw bad(`the first line ${preview(line)} starts with whitespace`);
      const more = line.trim();
      if (FORBIDDEN_IN_VALUE.test(more)) throw bad(`the value of ${previous[0]} contains a NUL or CR byte`);
      if (more !== '') previous[1] = previous[1] === '' ? more : `${previous[1]} ${more}`;
      return;
    }
    const colon = line.indexOf(':');
    if (colon < 0) throw bad(`line ${this.#lines.length + 1} ${preview(line)} has no colon`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw bad(`header name ${preview(name)} is not a valid HTTP token`);
    const value = trimBlanks(line, colon + 1);
    if (FORBIDDEN_IN_VALUE.test(value)) throw bad(`the value of ${name} contains a NUL or CR byte`);
    this.#lines.push([name, value]);
  }

  #build(): CgiHead {
    const headers: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    const rawHeaders: Array<[string, string]> = [];
    let statusValue: string | undefined;
    for (const line of this.#lines) {
      const [name, value] = line;
      const lower = name.toLowerCase();
      if (lower === 'status') {
        if (statusValue !== undefined) throw bad('Status is given twice');
        statusValue = value;
        continue;
      }
      // The line's own pair: nothing changes it once the head is built.
      rawHeaders.push(line);
      const existing = headers[lower];
      if (existing === undefined) headers[lower] = value;
      else if (typeof existing === 'string') headers[lower] = [existing, value];
      else existing.push(value);
    }
    this.#lines = [];
    if (statusValue !== undefined) {
      const status = statusCode(statusValue);
      if (status < 0) throw bad(`Status ${preview(statusValue)} is not a three-digit code and an optional reason`);
      // The value is trimmed: what follows the code and its blanks is the reason, never empty.
      const reason = statusValue.length > 3 ? trimBlanks(statusValue, 3) : undefined;
      return { status, statusText: reason ?? STATUS_CODES[status] ?? '', headers, rawHeaders };
    }
    // RFC 3875 section 6.2.3-4: Location without Status is a redirect. Like nginx and lighttpd, any
    // Location counts (Apache and h2o keep 200); a local-path redirect is the gateway's to follow.
    if (headers.location !== undefined) return { status: 302, statusText: 'Found', headers, rawHeaders };
    return { status: 200, statusText: 'OK', headers, rawHeaders };
  }
}
