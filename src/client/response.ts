// What a client request resolves to: the parsed CGI head, the body stream, collected stderr, and END_REQUEST's statuses.

import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { NodefpmError } from '../errors.js';
import type { CgiHead } from './cgi-response.js';

/** The two statuses of FCGI_END_REQUEST (section 5.5). */
export interface EndStatus {
  /** The application's exit status for the request (a CGI script's exit code). */
  appStatus: number;
  /** ProtocolStatus: 0 REQUEST_COMPLETE, 1 CANT_MPX_CONN, 2 OVERLOADED, 3 UNKNOWN_ROLE. */
  protocolStatus: number;
}

/** The default number of stderr bytes a response keeps (more is counted and dropped, and still reported by the 'stderr' event). */
export const DEFAULT_MAX_STDERR_BYTES = 1024 * 1024;

/**
 * FCGI_STDERR text of one request, decoded as UTF-8 across record boundaries, kept up to a bound.
 * @internal shared by the connection and the response.
 */
export class StderrBuffer {
  readonly #limit: number;
  /** Made at the first byte: most requests send no stderr, and a StringDecoder allocates a buffer of its own. */
  #decoder: StringDecoder | null = null;
  #text = '';
  #keptBytes = 0;
  #droppedBytes = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Adds bytes; returns their text (for the 'stderr' event). */
  append(chunk: Buffer): string {
    this.#decoder ??= new StringDecoder('utf8');
    const text = this.#decoder.write(chunk);
    const room = this.#limit - this.#keptBytes;
    if (chunk.length <= room) {
      this.#text += text;
      this.#keptBytes += chunk.length;
    } else {
      if (room > 0) {
        // Cut at the byte bound; a character split there is dropped rather than kept half.
        this.#text += Buffer.from(text, 'utf8').subarray(0, room).toString('utf8').replace(/\uFFFD$/, '');
        this.#keptBytes = this.#limit;
      }
      this.#droppedBytes += chunk.length - Math.max(room, 0);
    }
    return text;
  }

  get text(): string {
    return this.#text;
  }

  get droppedBytes(): number {
    return this.#droppedBytes;
  }
}

const noop = (): void => {};

/**
 * The end of one request, as the connection learns it: END_REQUEST's statuses, or the error that ended
 * it. It becomes a promise only when someone asks (`response.ended`): most callers never do, and two
 * promises per request, with the handler that keeps a rejection from going unhandled, are not free.
 * @internal shared by the connection and the response.
 */
export class RequestEnd {
  #status: EndStatus | null = null;
  #error: Error | null = null;
  #promise: Promise<EndStatus> | null = null;
  #resolve: ((status: EndStatus) => void) | null = null;
  #reject: ((error: Error) => void) | null = null;

  /** The request ended with END_REQUEST. Only the first of resolve() and reject() counts. */
  resolve(status: EndStatus): void {
    if (this.#status !== null || this.#error !== null) return;
    this.#status = status;
    this.#resolve?.(status);
  }

  /** The request failed. */
  reject(error: Error): void {
    if (this.#status !== null || this.#error !== null) return;
    this.#error = error;
    this.#reject?.(error);
  }

  /** Resolves at END_REQUEST, rejects with the error that ended the request otherwise; never unhandled. */
  get promise(): Promise<EndStatus> {
    if (this.#promise === null) {
      if (this.#status !== null) this.#promise = Promise.resolve(this.#status);
      else if (this.#error !== null) this.#promise = Promise.reject(this.#error);
      else {
        this.#promise = new Promise<EndStatus>((resolve, reject) => {
          this.#resolve = resolve;
          this.#reject = reject;
        });
      }
      // It rejects whenever the request fails: whoever does not await it must not crash the process.
      this.#promise.catch(noop);
    }
    return this.#promise;
  }
}

/** @internal how the connection hands a response its parts. */
export interface ResponseParts {
  requestId: number;
  body: Readable;
  end: RequestEnd;
  stderr: StderrBuffer;
  /** The request's state as it goes on (the connection's own record, read, never written). */
  progress: RequestProgress;
}

/** @internal what a response reads of its request's state. */
export interface RequestProgress {
  /** The error that ended the request early, if any: bytes() and text() report it rather than a bare premature close. */
  readonly failure: Error | null;
  /** END_REQUEST came: no more STDOUT will be pushed to the body. */
  readonly endReceived: boolean;
}

export interface FcgiRawResponse {
  on(event: 'stderr', listener: (text: string) => void): this;
  once(event: 'stderr', listener: (text: string) => void): this;
  off(event: 'stderr', listener: (text: string) => void): this;
  emit(event: 'stderr', text: string): boolean;
}

/**
 * A response whose FCGI_STDOUT is given as is, with no CGI head parsed (`requestRaw`, and the base of
 * FcgiResponse). Emits `'stderr'` with each piece of FCGI_STDERR text that arrives after it was handed out.
 */
export class FcgiRawResponse extends EventEmitter {
  /** The FastCGI request id the request ran under on its connection. */
  readonly requestId: number;
  /**
   * The rest of FCGI_STDOUT. It ends at END_REQUEST, so a clean 'end' means the request completed; it
   * errors (NODEFPM_CLIENT_CLOSED, _TIMEOUT, _ABORTED) when the request fails after the response was
   * handed out. Without an 'error' listener the failure is not emitted (as Node's http does for
   * responses) and is reported by `ended`, `bytes()` and `text()` instead.
   *
   * Backpressure: while the consumer does not read, the client stops reading the socket only when no
   * request on the connection wants data; a request sharing a multiplexed connection with others is
   * buffered instead, so that a slow reader cannot stall its neighbours (its memory is the price).
   */
  readonly body: Readable;
  readonly #end: RequestEnd;
  readonly #stderr: StderrBuffer;
  readonly #progress: RequestProgress;
  #consumed = false;

  /** @internal made by the client connection. */
  constructor(parts: ResponseParts) {
    super();
    this.requestId = parts.requestId;
    this.body = parts.body;
    this.#end = parts.end;
    this.#stderr = parts.stderr;
    this.#progress = parts.progress;
  }

  /** Resolves at FCGI_END_REQUEST; rejects with the error that ended the request otherwise. Never unhandled. */
  get ended(): Promise<EndStatus> {
    return this.#end.promise;
  }

  /**
   * True once the request ended well (END_REQUEST came): what is left of STDOUT is all in `body`,
   * buffered (`body.readableLength` bytes, unless read meanwhile), and nothing more will come.
   */
  get complete(): boolean {
    return this.#progress.endReceived && this.#progress.failure === null;
  }

  /** FCGI_STDERR text received so far (decoded as UTF-8), up to maxStderrBytes. */
  get stderr(): string {
    return this.#stderr.text;
  }

  /** Bytes of FCGI_STDERR dropped because they went over maxStderrBytes. */
  get stderrDroppedBytes(): number {
    return this.#stderr.droppedBytes;
  }

  /** Reads the whole body. Rejects with the request's error if it fails, and with NODEFPM_BODY_CONSUMED if the body was already read. */
  async bytes(): Promise<Buffer> {
    if (this.#consumed || this.body.readableDidRead) {
      throw new NodefpmError('NODEFPM_BODY_CONSUMED', 'the response body was already read');
    }
    this.#consumed = true;
    const body = this.body;
    if (body.destroyed && !body.readableEnded) {
      // Destroyed already: its 'close' has been emitted, so waiting for it would wait forever.
      throw this.#progress.failure ?? body.errored ?? new NodefpmError('NODEFPM_CLIENT_ABORTED', 'the response body was destroyed before its end');
    }
    // Plain listeners rather than an async iterator: this is the path every small response takes.
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let length = 0;
      body.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
      });
      body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
      body.once('error', (error) => reject(this.#progress.failure ?? error));
      body.once('close', () => {
        if (!body.readableEnded) {
          reject(this.#progress.failure ?? new NodefpmError('NODEFPM_CLIENT_ABORTED', 'the response body was destroyed before its end'));
        }
      });
    });
  }

  /** Reads the whole body as text (UTF-8 unless told). */
  async text(encoding: BufferEncoding = 'utf8'): Promise<string> {
    return (await this.bytes()).toString(encoding);
  }
}

/** A response with its CGI head parsed: what `FcgiClient.request` resolves to. */
export class FcgiResponse extends FcgiRawResponse {
  /** From the `Status:` header; 302 for `Location:` alone; otherwise 200. */
  readonly status: number;
  /** The reason phrase given with `Status:`, or the standard one for the code. */
  readonly statusText: string;
  /** Lower-case names; a repeated header's values as an array; `Status` left out. */
  readonly headers: Record<string, string | string[]>;
  /** The headers as sent: original case, order and repeats kept. */
  readonly rawHeaders: Array<[string, string]>;

  /** @internal made by the client connection. */
  constructor(parts: ResponseParts, head: CgiHead) {
    super(parts);
    this.status = head.status;
    this.statusText = head.statusText;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
  }
}
