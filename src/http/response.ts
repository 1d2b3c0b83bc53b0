// The native Response: status, headers and body written as CGI output (a Status: line, no hop-by-hop headers), with backpressure.

import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import { Writable } from 'node:stream';
import { NodefpmError } from '../errors.js';
import type { Exchange, ExchangeListener } from '../server/exchange.js';

export type OutgoingHeaderValue = string | number | readonly string[];
export type OutgoingHeaders = Record<string, string | string[]>;

/**
 * Headers that describe one HTTP hop, not the response: the web server owns them, and a CGI response
 * must not carry them (Transfer-Encoding above all: the web server frames the body itself). "Status"
 * is left out too, since statusCode writes it.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'status',
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

export function validateHeaderName(name: string): void {
  if (!TOKEN.test(name)) {
    throw new NodefpmError('NODEFPM_INVALID_HEADER', `header name ${JSON.stringify(name)} is not an HTTP token`);
  }
}

export function validateHeaderValue(name: string, value: string): void {
  if (INVALID_VALUE_CHAR.test(value)) {
    throw new NodefpmError(
      'NODEFPM_INVALID_HEADER',
      `value of header ${name} has a character HTTP does not allow (CR, LF, NUL, other controls, or above U+00FF)`,
    );
  }
}

/** True for statuses whose responses have no body (1xx, 204, 304). */
export function statusHasNoBody(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

/**
 * The response to one request. The head goes out with the first write (or end), as a CGI `Status:`
 * line and headers; end() adds Content-Length when it knows the whole body. write() returns false
 * when the web server is not keeping up: wait for 'drain'. Events: 'drain', 'finish' (after end),
 * 'close' (after finish, or when the request is aborted).
 */
export class Response extends EventEmitter implements ExchangeListener {
  /** The HTTP status; settable until the head is sent. */
  statusCode = 200;
  /** The reason phrase; the standard one for statusCode when undefined. */
  statusMessage: string | undefined = undefined;
  /** The application status sent in END_REQUEST (a CGI exit status: 0 means success). */
  appStatus = 0;
  readonly #exchange: Exchange;
  readonly #isHead: boolean;
  readonly #headers = new Map<string, [name: string, value: string | string[]]>();
  #headersSent = false;
  #noBody = false;
  #ended = false;
  #closed = false;

  constructor(exchange: Exchange, method: string) {
    super();
    this.#exchange = exchange;
    this.#isHead = method === 'HEAD';
    exchange.listener = this;
  }

  // ---- headers ----

  /** Sets a header, replacing any earlier value; an array sends one line per value. */
  setHeader(name: string, value: OutgoingHeaderValue): this {
    this.#assertHeadOpen(`set header ${name}`);
    validateHeaderName(name);
    this.#headers.set(name.toLowerCase(), [name, this.#checkValue(name, value)]);
    return this;
  }

  /** Adds a value to a header, keeping the earlier ones (Set-Cookie, Link, ...). */
  appendHeader(name: string, value: OutgoingHeaderValue): this {
    this.#assertHeadOpen(`append header ${name}`);
    validateHeaderName(name);
    const key = name.toLowerCase();
    const added = this.#checkValue(name, value);
    const existing = this.#headers.get(key);
    if (existing === undefined) {
      this.#headers.set(key, [name, added]);
    } else {
      const before = typeof existing[1] === 'string' ? [existing[1]] : existing[1];
      existing[1] = before.concat(added);
    }
    return this;
  }

  getHeader(name: string): string | string[] | undefined {
    return this.#headers.get(name.toLowerCase())?.[1];
  }

  hasHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }

  removeHeader(name: string): this {
    this.#assertHeadOpen(`remove header ${name}`);
    this.#headers.delete(name.toLowerCase());
    return this;
  }

  /** The headers set so far, by lower-case name. */
  getHeaders(): OutgoingHeaders {
    const headers: OutgoingHeaders = Object.create(null) as OutgoingHeaders;
    for (const [key, [, value]] of this.#headers) headers[key] = value;
    return headers;
  }

  getHeaderNames(): string[] {
    return [...this.#headers.keys()];
  }

  /** True once the head has been handed to the connection. */
  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** Sets the status (and reason, and headers) and sends the head now. */
  writeHead(statusCode: number, statusMessage?: string | OutgoingHeaders, headers?: OutgoingHeaders): this {
    this.#assertHeadOpen('write the head');
    if (typeof statusMessage === 'object') {
      headers = statusMessage;
      statusMessage = undefined;
    }
    this.statusCode = statusCode;
    if (statusMessage !== undefined) this.statusMessage = statusMessage;
    if (headers !== undefined) for (const [name, value] of Object.entries(headers)) this.setHeader(name, value);
    this.#sendHead();
    return this;
  }

  /** Sends the head now, before any body (for long polls and streams that start late). */
  flushHeaders(): void {
    if (!this.#headersSent) this.#sendHead();
  }

  // ---- body ----

  /**
   * Writes body bytes (strings in `encoding`, UTF-8 by default). Returns false when output is queued
   * beyond the high-water mark: wait for 'drain' before writing more. Bodies of HEAD requests and of
   * 204/304 responses are dropped.
   */
  write(chunk: string | Uint8Array, encoding?: BufferEncoding): boolean {
    if (this.#ended) throw new NodefpmError('NODEFPM_WRITE_AFTER_END', 'response.write() after response.end()');
    if (!this.#headersSent) this.#sendHead();
    if (this.#noBody) return true;
    if (typeof chunk === 'string' && encoding !== undefined && encoding !== 'utf8' && encoding !== 'utf-8') {
      return this.#exchange.write(Buffer.from(chunk, encoding));
    }
    return this.#exchange.write(chunk);
  }

  /**
   * Ends the response, with a last chunk if given. When the head has not gone out yet the body is
   * known whole, so Content-Length is added (unless set, or the status has no body).
   */
  end(chunk?: string | Uint8Array, encoding?: BufferEncoding): this {
    if (this.#ended) return this;
    if (!this.#headersSent) {
      const autoLength = !this.#isHead && !statusHasNoBody(this.statusCode) && !this.#headers.has('content-length');
      if (autoLength) {
        const length =
          chunk === undefined ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding ?? 'utf8') : chunk.length;
        this.#headers.set('content-length', ['Content-Length', String(length)]);
      }
      try {
        this.#sendHead();
      } catch (error) {
        // Nothing went out (an invalid status): leave no Content-Length behind for a later end() with another body.
        if (autoLength) this.#headers.delete('content-length');
        throw error;
      }
    }
    if (chunk !== undefined && !this.#noBody) this.write(chunk, encoding);
    this.#ended = true;
    this.#exchange.end(this.appStatus);
    this.emit('finish');
    this.#emitClose();
    return this;
  }

  /** True once end() was called. */
  get writableEnded(): boolean {
    return this.#ended;
  }

  /** True when write() would return false: the caller should wait for 'drain'. */
  get writableNeedDrain(): boolean {
    return this.#exchange.needsDrain;
  }

  /** Writes text to FCGI_STDERR, which web servers put in their error log. */
  writeStderr(text: string | Uint8Array): boolean {
    return this.#exchange.writeStderr(text);
  }

  /** A Node Writable over this response, for pipeline() and libraries that write to streams. */
  toWritable(): Writable {
    const writable = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        let ready: boolean;
        try {
          ready = this.write(chunk);
        } catch (error) {
          // Thrown out of _write it would be an uncaught exception; as the callback's error it fails the stream.
          callback(error as Error);
          return;
        }
        if (ready) callback();
        else this.once('drain', () => callback());
      },
      final: (callback) => {
        try {
          this.end();
        } catch (error) {
          callback(error as Error);
          return;
        }
        callback();
      },
    });
    // An aborted request or a lost connection never drains: fail the stream so that pipeline() settles.
    const closedEarly = (): void => {
      if (!this.#ended) {
        writable.destroy(this.#exchange.abortReason ?? new NodefpmError('NODEFPM_CONNECTION_LOST', 'the response closed before it ended'));
      }
    };
    if (this.#closed) closedEarly();
    else this.once('close', closedEarly);
    return writable;
  }

  // ---- ExchangeListener ----

  exchangeDrained(): void {
    this.emit('drain');
  }

  exchangeAborted(): void {
    this.#emitClose();
  }

  // ---- internals ----

  #emitClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  }

  #assertHeadOpen(what: string): void {
    if (this.#headersSent) throw new NodefpmError('NODEFPM_HEADERS_SENT', `cannot ${what}: the headers were already sent`);
  }

  #checkValue(name: string, value: OutgoingHeaderValue): string | string[] {
    if (typeof value === 'string') {
      validateHeaderValue(name, value);
      return value;
    }
    if (typeof value === 'number') return String(value);
    const values = [...value];
    for (const item of values) validateHeaderValue(name, item);
    return values;
  }

  #sendHead(): void {
    const status = this.statusCode;
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new NodefpmError('NODEFPM_INVALID_STATUS', `status code ${String(status)} is not an integer in 100-999`);
    }
    const reason = this.statusMessage ?? STATUS_CODES[status] ?? 'Unknown';
    if (/[\r\n]/.test(reason)) throw new NodefpmError('NODEFPM_INVALID_STATUS', 'the status message contains CR or LF');
    let head = `Status: ${status} ${reason}\r\n`;
    for (const [key, [name, value]] of this.#headers) {
      if (HOP_BY_HOP_HEADERS.has(key)) continue;
      if (typeof value === 'string') head += `${name}: ${value}\r\n`;
      else for (const item of value) head += `${name}: ${item}\r\n`;
    }
    this.#headersSent = true;
    this.#noBody = this.#isHead || statusHasNoBody(status);
    this.#exchange.writeHead(head + '\r\n');
  }
}
