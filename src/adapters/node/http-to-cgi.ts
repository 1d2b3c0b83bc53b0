// Translates the HTTP/1.x bytes Node's ServerResponse writes into CGI output: a Status: head without hop-by-hop headers, then the body with chunk framing removed.

import { Buffer } from 'node:buffer';
import { HOP_BY_HOP_HEADERS } from '../../http/response.js';

/** Where the translation goes: the request's Exchange, or a recorder in tests. */
export interface CgiSink {
  /** Takes the whole CGI head (Latin-1 text ending with an empty line). False: wait for a drain. */
  writeHead(head: string): boolean;
  /** Takes body bytes (strings as UTF-8). False: wait for a drain. */
  write(chunk: string | Uint8Array): boolean;
  /** True while an earlier write returned false and no drain has been reported since. */
  readonly needsDrain: boolean;
}

/** Told when the output cannot be translated (it is not what Node's ServerResponse writes). */
export interface MalformedReporter {
  malformedOutput(reason: string): void;
}

/** What the translator is reading. */
const Mode = {
  /** The response head (or an interim 1xx head before it). */
  Head: 0,
  /** A body framed by Content-Length or by the end of the response: passed through. */
  Body: 1,
  /** A body in chunked transfer coding: framing removed. */
  Chunked: 2,
  /** Bytes that must not reach the web server (HEAD, 204, 304, after an unreadable head). */
  Drop: 3,
} as const;
type Mode = (typeof Mode)[keyof typeof Mode];

/** Where the de-chunker is inside the chunked body. */
const Chunk = {
  Size: 0,
  Extension: 1,
  SizeLf: 2,
  Data: 3,
  DataCr: 4,
  DataLf: 5,
  TrailerStart: 6,
  TrailerLine: 7,
  TrailerLf: 8,
  Done: 9,
} as const;
type Chunk = (typeof Chunk)[keyof typeof Chunk];

const CR = 13;
const LF = 10;
const SEMICOLON = 59;
/** A response head longer than this without its blank line is not an HTTP head (Node's are a few hundred bytes). */
export const MAX_HEAD_LENGTH = 1024 * 1024;
/** Node's own test for "chunked" in Transfer-Encoding (lib/_http_outgoing.js RE_TE_CHUNKED). */
const CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;
const NON_ASCII = /[^\x00-\x7f]/;
/**
 * A header line with a hop-by-hop name: its line break, the name (any case) and the colon Node
 * writes right after it. One regular-expression pass finds them all, where looking at each line
 * cost two searches per line.
 */
const HOP_LINE = new RegExp(`\\r\\n(${[...HOP_BY_HOP_HEADERS].join('|')}):`, 'gi');
const TRANSFER_ENCODING_LENGTH = 'transfer-encoding'.length;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

function isUtf8(encoding: BufferEncoding | null | undefined): boolean {
  return encoding === undefined || encoding === null || encoding === 'utf8' || encoding === 'utf-8';
}

/** Encodings whose strings hold one byte per character (how Node writes heads and chunk sizes). */
function isByteString(encoding: BufferEncoding | null | undefined): boolean {
  return encoding === 'latin1' || encoding === 'binary' || encoding === 'ascii';
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** A part of a string, or a view (not a copy) of a part of bytes. */
function slice(chunk: string | Uint8Array, start: number, end?: number): string | Buffer {
  return typeof chunk === 'string' ? chunk.slice(start, end) : asBuffer(chunk).subarray(start, end);
}

/** Strings up to this length are checked for non-ASCII characters whole; longer ones by their head only. */
const SHORT_STRING = 4096;

/** The number the three decimal digits at `at` spell, or NaN. */
function threeDigits(text: string, at: number): number {
  const a = text.charCodeAt(at) - 48;
  const b = text.charCodeAt(at + 1) - 48;
  const c = text.charCodeAt(at + 2) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 && c >= 0 && c <= 9 ? a * 100 + b * 10 + c : NaN;
}

function hexValue(byte: number): number {
  if (byte >= 48 && byte <= 57) return byte - 48;
  const lower = byte | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/**
 * One response's translation. Node writes the head as one Latin-1 string (sometimes with the first
 * body chunk appended to it, in the body's encoding), then body chunks; interim heads (100 Continue,
 * 103 Early Hints) may come first. Every split of that stream is handled: a head may arrive in pieces,
 * and chunk framing may be split anywhere.
 *
 * Head bytes are kept as a "byte string" (one char per byte, Latin-1), which is what
 * Exchange.writeHead sends. When Node prepends its head to a UTF-8 body string, the head's
 * characters above U+007F go out UTF-8 encoded on Node's own socket; the same is done here so the
 * bytes match http.createServer's.
 */
export class HttpToCgi {
  readonly #sink: CgiSink;
  readonly #isHead: boolean;
  readonly #reporter: MalformedReporter | null;
  #mode: Mode = Mode.Head;
  /** Pieces of a head not yet complete (kept apart: joining on every write would copy it each time). Rare: Node writes heads whole. */
  #headParts: string[] | null = null;
  #headLength = 0;
  /** The last three characters received of an incomplete head: its blank line may straddle writes. */
  #headTail = '';
  #status = 0;
  #headWritten = false;
  #chunk: Chunk = Chunk.Size;
  #size = 0;
  #digits = 0;
  #remaining = 0;

  /** `isHead`: the request was HEAD, so no body may follow whatever the head says. */
  constructor(sink: CgiSink, isHead: boolean, reporter?: MalformedReporter) {
    this.#sink = sink;
    this.#isHead = isHead;
    this.#reporter = reporter ?? null;
  }

  /** The final status, once its head was read (0 before). */
  get status(): number {
    return this.#status;
  }

  /** True once the CGI head was handed to the sink. */
  get headWritten(): boolean {
    return this.#headWritten;
  }

  /** True when the body is chunked and its last chunk (and trailers) have been read. */
  get chunkedComplete(): boolean {
    return this.#mode === Mode.Chunked && this.#chunk === Chunk.Done;
  }

  /**
   * Feeds bytes exactly as Node hands them to its socket (a string with its encoding, or bytes).
   * Returns what the last sink call returned, or whether the sink is free when nothing was passed on.
   */
  write(chunk: string | Uint8Array, encoding?: BufferEncoding | null): boolean {
    switch (this.#mode) {
      case Mode.Body:
        return this.#passBody(chunk, encoding);
      case Mode.Chunked:
        return this.#dechunk(chunk, encoding);
      case Mode.Drop:
        return !this.#sink.needsDrain;
      default:
        return this.#readHead(chunk, encoding);
    }
  }

  // ---- the head ----

  #readHead(chunk: string | Uint8Array, encoding: BufferEncoding | null | undefined): boolean {
    if (typeof chunk === 'string' && !isUtf8(encoding) && !isByteString(encoding)) {
      chunk = Buffer.from(chunk, encoding ?? 'utf8');
    }
    const end = this.#headEnd(chunk);
    if (end === -1) {
      const piece = this.#byteString(chunk, encoding);
      (this.#headParts ??= []).push(piece);
      this.#headLength += piece.length;
      this.#headTail = (this.#headTail + piece.slice(-3)).slice(-3);
      if (this.#headLength > MAX_HEAD_LENGTH) this.#malformed(`no end of the response head within ${MAX_HEAD_LENGTH} bytes`);
      return !this.#sink.needsDrain;
    }
    // Node writes a head and a short body as one string: when it is all ASCII (one native length
    // count, far cheaper than the regular expression on the head), the head needs no re-encoding.
    const ascii = typeof chunk === 'string' && chunk.length <= SHORT_STRING && Buffer.byteLength(chunk, 'utf8') === chunk.length;
    const last = ascii ? (chunk as string).slice(0, end) : this.#byteString(slice(chunk, 0, end), encoding);
    const text = this.#headParts === null ? last : this.#headParts.join('') + last;
    this.#clearHead();
    let result = this.#takeHead(text);
    if (end < chunk.length) result = this.write(slice(chunk, end), encoding);
    return result;
  }

  /** Index in `chunk` just past the blank line ending the head, or -1 (the four bytes may straddle earlier pieces). */
  #headEnd(chunk: string | Uint8Array): number {
    if (this.#headLength > 0) {
      const tail = this.#headTail;
      const lead = typeof chunk === 'string' ? chunk.slice(0, 3) : asBuffer(chunk).toString('latin1', 0, 3);
      const at = (tail + lead).indexOf('\r\n\r\n');
      if (at !== -1) return at + 4 - tail.length;
    }
    const at = typeof chunk === 'string' ? chunk.indexOf('\r\n\r\n') : asBuffer(chunk).indexOf(HEAD_END);
    return at === -1 ? -1 : at + 4;
  }

  #byteString(piece: string | Uint8Array, encoding: BufferEncoding | null | undefined): string {
    if (typeof piece !== 'string') return asBuffer(piece).toString('latin1');
    // Node's socket encodes a UTF-8 string as UTF-8, head characters included.
    if (isUtf8(encoding) && NON_ASCII.test(piece)) return Buffer.from(piece, 'utf8').toString('latin1');
    return piece;
  }

  /** Handles one complete head (ending with the blank line). Interim 1xx heads are dropped: CGI cannot carry them. */
  #takeHead(text: string): boolean {
    const lineEnd = text.indexOf('\r\n');
    // "HTTP/1.1 200 OK": the version, a space, three digits, a space and the reason (possibly empty).
    const space = text.indexOf(' ');
    const code = space === -1 ? NaN : threeDigits(text, space + 1);
    if (
      !text.startsWith('HTTP/') ||
      space === -1 ||
      space > lineEnd ||
      !Number.isInteger(code) ||
      code < 100 ||
      (space + 4 < lineEnd && text.charCodeAt(space + 4) !== 32)
    ) {
      this.#malformed(`the response does not start with an HTTP status line: ${JSON.stringify(text.slice(0, Math.min(lineEnd, 80)))}`);
      return !this.#sink.needsDrain;
    }
    if (code < 200) return !this.#sink.needsDrain;

    let out = `Status: ${text.slice(space + 1, lineEnd)}\r\n`;
    let keptFrom = lineEnd + 2;
    let chunked = false;
    // From the status line's line break: each match starts at the break before its line.
    HOP_LINE.lastIndex = lineEnd;
    for (let match = HOP_LINE.exec(text); match !== null; match = HOP_LINE.exec(text)) {
      const lineStart = match.index + 2;
      const colon = lineStart + match[1]!.length;
      const next = text.indexOf('\r\n', colon);
      if (match[1]!.length === TRANSFER_ENCODING_LENGTH && CHUNKED.test(text.slice(colon + 1, next))) chunked = true;
      out += text.slice(keptFrom, lineStart);
      keptFrom = next + 2;
      HOP_LINE.lastIndex = next;
    }
    out += text.slice(keptFrom);

    this.#status = code;
    if (this.#isHead || code === 204 || code === 304) this.#mode = Mode.Drop;
    else if (chunked) this.#mode = Mode.Chunked;
    else this.#mode = Mode.Body;
    this.#headWritten = true;
    return this.#sink.writeHead(out);
  }

  #clearHead(): void {
    this.#headParts = null;
    this.#headLength = 0;
    this.#headTail = '';
  }

  #malformed(reason: string): void {
    // Only code writing to the socket directly can get here (Node always writes a valid head). The web
    // server would reject such output with a 502; say so ourselves and drop the rest.
    this.#mode = Mode.Drop;
    this.#clearHead();
    this.#reporter?.malformedOutput(reason);
    if (!this.#headWritten) {
      this.#headWritten = true;
      this.#status = 502;
      this.#sink.writeHead('Status: 502 Bad Gateway\r\n\r\n');
    }
  }

  // ---- the body ----

  #passBody(chunk: string | Uint8Array, encoding: BufferEncoding | null | undefined): boolean {
    if (chunk.length === 0) return !this.#sink.needsDrain;
    if (typeof chunk !== 'string' || isUtf8(encoding)) return this.#sink.write(chunk);
    return this.#sink.write(Buffer.from(chunk, encoding ?? 'utf8'));
  }

  #dechunk(chunk: string | Uint8Array, encoding: BufferEncoding | null | undefined): boolean {
    if (typeof chunk === 'string') {
      // Node writes each chunk's data as its own write between the size line and the CRLF: pass a
      // UTF-8 string on whole, without encoding it here.
      if (this.#chunk === Chunk.Data && isUtf8(encoding)) {
        const bytes = Buffer.byteLength(chunk, 'utf8');
        if (bytes <= this.#remaining) {
          if (bytes === 0) return !this.#sink.needsDrain;
          this.#remaining -= bytes;
          if (this.#remaining === 0) this.#chunk = Chunk.DataCr;
          return this.#sink.write(chunk);
        }
      }
      chunk = Buffer.from(chunk, encoding ?? 'utf8');
    }
    const bytes = asBuffer(chunk);
    let result: boolean | null = null;
    const length = bytes.length;
    let i = 0;
    while (i < length) {
      switch (this.#chunk) {
        case Chunk.Size: {
          const byte = bytes[i]!;
          const digit = hexValue(byte);
          if (digit !== -1) {
            this.#size = this.#size * 16 + digit;
            this.#digits++;
            if (this.#digits > 13) return this.#chunkError('a chunk size of more than 13 hex digits');
          } else if (byte === SEMICOLON && this.#digits > 0) {
            this.#chunk = Chunk.Extension;
          } else if (byte === CR && this.#digits > 0) {
            this.#chunk = Chunk.SizeLf;
          } else {
            return this.#chunkError(`byte ${byte} in a chunk size line`);
          }
          i++;
          break;
        }
        case Chunk.Extension: {
          const at = bytes.indexOf(CR, i);
          if (at === -1) {
            i = length;
          } else {
            i = at + 1;
            this.#chunk = Chunk.SizeLf;
          }
          break;
        }
        case Chunk.SizeLf:
          if (bytes[i] !== LF) return this.#chunkError('no LF after a chunk size');
          i++;
          if (this.#size === 0) {
            this.#chunk = Chunk.TrailerStart;
          } else {
            this.#remaining = this.#size;
            this.#chunk = Chunk.Data;
          }
          this.#size = 0;
          this.#digits = 0;
          break;
        case Chunk.Data: {
          const take = Math.min(this.#remaining, length - i);
          result = this.#sink.write(bytes.subarray(i, i + take));
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#chunk = Chunk.DataCr;
          break;
        }
        case Chunk.DataCr:
          if (bytes[i] !== CR) return this.#chunkError('no CRLF after chunk data');
          i++;
          this.#chunk = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (bytes[i] !== LF) return this.#chunkError('no CRLF after chunk data');
          i++;
          this.#chunk = Chunk.Size;
          break;
        case Chunk.TrailerStart:
          // Trailers (res.addTrailers) cannot be carried by CGI: they are read and dropped.
          if (bytes[i] === CR) {
            this.#chunk = Chunk.TrailerLf;
            i++;
          } else {
            this.#chunk = Chunk.TrailerLine;
          }
          break;
        case Chunk.TrailerLine: {
          const at = bytes.indexOf(LF, i);
          if (at === -1) {
            i = length;
          } else {
            i = at + 1;
            this.#chunk = Chunk.TrailerStart;
          }
          break;
        }
        case Chunk.TrailerLf:
          if (bytes[i] !== LF) return this.#chunkError('no LF after the last chunk');
          i++;
          this.#chunk = Chunk.Done;
          break;
        default:
          // After the last chunk nothing belongs to this response.
          i = length;
      }
    }
    return result ?? !this.#sink.needsDrain;
  }

  #chunkError(reason: string): boolean {
    this.#malformed(`malformed chunked body: ${reason}`);
    return !this.#sink.needsDrain;
  }
}
