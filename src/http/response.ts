// The native Response: status, headers and body written as CGI output (a Status: line, no hop-by-hop headers), with backpressure.

import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import { Writable } from 'node:stream';
import { NodefpmError } from '../errors.js';
import type { Exchange, ExchangeListener } from '../server/exchange.js';
import { requireSigner, serializeCookie, type CookieOptions } from './cookies.js';
import { sendFile, type SendFileOptions } from './send-file.js';
import type { Signer } from './signing.js';

export type OutgoingHeaderValue = string | number | readonly string[];
export type OutgoingHeaders = Record<string, string | string[]>;

/** res.setCookie's options: the cookie attributes, and `signed` to sign the value with the `keys` option. */
export interface SetCookieOptions extends CookieOptions {
  /** Sign the value (HMAC-SHA256 with the first of the handler's `keys`, bound to the cookie name); read it back with req.signedCookie. */
  signed?: boolean;
}

/** What the handler gives each Response: the signer for signed cookies and the handler-wide sendFile defaults. */
export interface ResponseSettings {
  readonly signer?: Signer | null;
  readonly sendFile?: SendFileOptions;
}

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

/**
 * A Location value as a header may carry it: characters outside those URLs use are percent-encoded as
 * UTF-8 (CR and LF among them, so no header can be smuggled in), '%' not starting an escape becomes
 * %25, and a lone surrogate becomes U+FFFD's escape.
 */
export function encodeLocation(url: string): string {
  return url.replace(/%(?![0-9A-Fa-f]{2})|[^\x21\x23-\x3B\x3D\x3F-\x5F\x61-\x7A\x7C\x7E]/gu, (char) => {
    try {
      return encodeURIComponent(char);
    } catch {
      return '%EF%BF%BD';
    }
  });
}

/** A body chunk as the exchange takes it: strings in an encoding other than UTF-8 become bytes. */
function encodedChunk(chunk: string | Uint8Array, encoding: BufferEncoding | undefined): string | Uint8Array {
  if (typeof chunk === 'string' && encoding !== undefined && encoding !== 'utf8' && encoding !== 'utf-8') return Buffer.from(chunk, encoding);
  return chunk;
}

/** `Status: 200 OK\r\n` and the like, by code: made once per code, as every response with the standard reason starts with one. */
const STATUS_LINES: string[] = [];

function standardStatusLine(status: number): string {
  return (STATUS_LINES[status] ??= `Status: ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`);
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
  /** beforeHead() hooks; null (the common case) costs one check when the head goes out. */
  #headHooks: Array<(res: Response) => void> | null = null;
  /** beforeEnd() hooks; null (the common case) costs one check in end(). */
  #endHooks: Array<(res: Response) => void | PromiseLike<void>> | null = null;
  /** end() was called and waits for beforeEnd() hooks to settle. */
  #holding = false;

  readonly #settings: ResponseSettings;

  constructor(exchange: Exchange, method: string, settings: ResponseSettings = {}) {
    super();
    this.#exchange = exchange;
    this.#settings = settings;
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
    if (this.#ended || this.#holding) throw new NodefpmError('NODEFPM_WRITE_AFTER_END', 'response.write() after response.end()');
    if (!this.#headersSent) this.#sendHead();
    if (this.#noBody) return true;
    return this.#exchange.write(encodedChunk(chunk, encoding));
  }

  /**
   * Ends the response, with a last chunk if given. When the head has not gone out yet the body is
   * known whole, so Content-Length is added (unless set, or the status has no body).
   */
  end(chunk?: string | Uint8Array, encoding?: BufferEncoding): this {
    if (this.#ended || this.#holding) return this;
    if (this.#endHooks !== null) return this.#endAfterHooks(chunk, encoding);
    // First, so that an unknown encoding throws before anything is decided or sent.
    const body = chunk === undefined ? null : encodedChunk(chunk, encoding);
    let head: string | null = null;
    if (!this.#headersSent) {
      // Before Content-Length is decided, since a hook may still change the status or the headers.
      if (this.#headHooks !== null) this.#runHeadHooks();
      const autoLength = !this.#isHead && !statusHasNoBody(this.statusCode) && !this.#headers.has('content-length');
      if (autoLength) {
        const length = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
        this.#headers.set('content-length', ['Content-Length', String(length)]);
      }
      try {
        head = this.#buildHead();
      } catch (error) {
        // Nothing went out (an invalid status): leave no Content-Length behind for a later end() with another body.
        if (autoLength) this.#headers.delete('content-length');
        throw error;
      }
    }
    this.#ended = true;
    // Head, last chunk and END_REQUEST leave together, in one write when they fit one record.
    this.#exchange.endWith(head, this.#noBody ? null : body, this.appStatus);
    this.emit('finish');
    this.#emitClose();
    return this;
  }

  /** True once end() was called (also while end() waits for beforeEnd() hooks). */
  get writableEnded(): boolean {
    return this.#ended || this.#holding;
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

  // ---- helpers: cookies, whole bodies, redirects, files ----

  /**
   * Adds a Set-Cookie line (one per call; earlier ones are kept). Path defaults to "/" (the browser's
   * default would be the request's folder). `signed: true` signs the value with the first of the
   * handler's `keys`. Throws NODEFPM_COOKIE_INVALID for what browsers would drop (see serializeCookie).
   */
  setCookie(name: string, value: string, options: SetCookieOptions = {}): this {
    const { signed, ...attributes } = options;
    const cookieValue = signed === true ? requireSigner(this.#settings.signer ?? null).sign(value, name) : value;
    return this.appendHeader('Set-Cookie', serializeCookie(name, cookieValue, { path: '/', ...attributes }));
  }

  /**
   * Deletes a cookie in the browser: an empty value with Max-Age=0 and an Expires in the past. Give
   * the same Path and Domain it was set with (Path defaults to "/", as in setCookie), else the browser
   * keeps it.
   */
  clearCookie(name: string, options: Omit<SetCookieOptions, 'maxAge' | 'expires' | 'signed'> = {}): this {
    const { signed: _signed, maxAge: _maxAge, expires: _expires, ...attributes } = options as SetCookieOptions;
    return this.appendHeader('Set-Cookie', serializeCookie(name, '', { path: '/', ...attributes, maxAge: 0, expires: new Date(0) }));
  }

  /** Ends the response with `value` as JSON (application/json; charset=utf-8, unless a Content-Type is set). `undefined` is sent as null. */
  json(value: unknown, status?: number): void {
    this.#sendWhole(JSON.stringify(value) ?? 'null', 'application/json; charset=utf-8', status);
  }

  /** Ends the response with plain text (text/plain; charset=utf-8, unless a Content-Type is set). */
  text(text: string, status?: number): void {
    this.#sendWhole(text, 'text/plain; charset=utf-8', status);
  }

  /** Ends the response with HTML (text/html; charset=utf-8, unless a Content-Type is set). */
  html(html: string, status?: number): void {
    this.#sendWhole(html, 'text/html; charset=utf-8', status);
  }

  /**
   * Redirects: `Status: 302` (or the 3xx given) and `Location`, always both — Apache and h2o answer
   * 200 to a CGI response with Location and no Status. Characters a URL may not hold are
   * percent-encoded (existing %XX escapes are kept); a short text body says where to go.
   */
  redirect(location: string, status = 302): void {
    if (!Number.isInteger(status) || status < 300 || status > 399) {
      throw new NodefpmError('NODEFPM_INVALID_STATUS', `redirect status must be a 3xx code, got ${String(status)}`);
    }
    const target = encodeLocation(location);
    this.setHeader('Location', target);
    this.#sendWhole(`Redirecting to ${target}\n`, 'text/plain; charset=utf-8', status);
  }

  /**
   * Sends a file: streamed with backpressure, Range, ETag and conditional requests, or handed to the
   * web server (X-Sendfile, X-Accel-Redirect); see SendFileOptions. Options given here override the
   * handler's `sendFile` defaults. Resolves once the response has ended (also when the client left
   * mid-file); rejects with a 404 NodefpmError (NODEFPM_FILE_NOT_FOUND, NODEFPM_PATH_REFUSED) before
   * writing anything when the file cannot or may not be sent.
   */
  sendFile(path: string, options: SendFileOptions = {}): Promise<void> {
    const exchange = this.#exchange;
    const request = {
      method: this.#isHead ? 'HEAD' : (exchange.param('REQUEST_METHOD') ?? 'GET'),
      header: (name: string) => exchange.param(`HTTP_${name.toUpperCase().replaceAll('-', '_')}`),
      get aborted() {
        return exchange.aborted;
      },
    };
    const defaults = this.#settings.sendFile;
    return sendFile(this, request, path, defaults === undefined ? options : { ...defaults, ...options });
  }

  /** Whole-body helpers end the response and return nothing, so that `(req, res) => res.json(x)` is a Handler. */
  #sendWhole(body: string, contentType: string, status: number | undefined): void {
    if (status !== undefined) this.statusCode = status;
    if (!this.#headers.has('content-type')) this.setHeader('Content-Type', contentType);
    this.end(body);
  }

  // ---- the Authorizer role ----

  /**
   * Authorizer role: grants access. Sends `Status: 200` with one `Variable-NAME: value` header per
   * variable, which the web server turns into NAME=value for the requests that follow (Apache's
   * mod_authnz_fcgi needs `REMOTE_USER` among them when its UserExpr reads it), and no body: web
   * servers ignore the body of a 200. Other headers set before are sent too; Apache passes them to the
   * client even on 200. Ends the response.
   */
  allow(variables: Readonly<Record<string, string>> = {}): this {
    this.#assertHeadOpen('allow access');
    this.statusCode = 200;
    this.statusMessage = undefined;
    for (const [name, value] of Object.entries(variables)) this.setHeader(`Variable-${name}`, value);
    // Sending the head first keeps end() from adding a Content-Length the web server would pass on.
    this.#sendHead();
    return this.end();
  }

  /**
   * Authorizer role: denies access. The web server sends this status (403 unless given; any but 200),
   * these headers (WWW-Authenticate with a 401, say) and this body (a short text page unless given) to
   * the client. Ends the response.
   */
  deny(status = 403, body?: string | Uint8Array, headers?: OutgoingHeaders): this {
    this.#assertHeadOpen('deny access');
    if (status === 200) throw new NodefpmError('NODEFPM_INVALID_STATUS', 'deny() needs a status other than 200: 200 grants access');
    this.statusCode = status;
    this.statusMessage = undefined;
    if (headers !== undefined) for (const [name, value] of Object.entries(headers)) this.setHeader(name, value);
    if (body === undefined) {
      if (!this.#headers.has('content-type')) this.setHeader('Content-Type', 'text/plain; charset=utf-8');
      body = `${status} ${STATUS_CODES[status] ?? 'Access denied'}\n`;
    }
    return this.end(body);
  }

  // ---- ExchangeListener ----

  exchangeDrained(): void {
    this.emit('drain');
  }

  exchangeAborted(): void {
    this.#emitClose();
  }

  // ---- hooks: for middleware that must act on the head or finish work before the response completes ----

  /**
   * Calls `hook` once, synchronously, just before the head is built: from the first write(), or
   * writeHead(), flushHeaders() or end(), whichever comes first. The hook may still set the status
   * and headers (a session's Set-Cookie, a timing header). Hooks run in the order added; one added
   * after the head went out is never called. A hook that throws makes the call that sends the head throw.
   */
  beforeHead(hook: (res: Response) => void): this {
    this.#assertHeadOpen('add a beforeHead hook');
    (this.#headHooks ??= []).push(hook);
    return this;
  }

  /**
   * Calls `hook` when end() is called, before anything of end() happens. When a hook returns a
   * promise, end() returns at once but holds everything it would send — the head if it has not gone
   * out, the last chunk, and FCGI_END_REQUEST — until every hook's promise settles, so work such as
   * saving a session is done before the client can see the response complete. Meanwhile
   * writableEnded is true, write() throws, and headers may still be set if the head has not gone out.
   *
   * A hook that throws or rejects turns the response into a 500 (when the head has not gone out; the
   * held chunk is dropped) or cuts it short (when it has), with application status 1 and the error on
   * FCGI_STDERR; a hook that wants another outcome catches its own errors. Hooks added while end()
   * holds run after those that were waited for.
   */
  beforeEnd(hook: (res: Response) => void | PromiseLike<void>): this {
    if (this.#ended) throw new NodefpmError('NODEFPM_WRITE_AFTER_END', 'cannot add a beforeEnd hook: the response has ended');
    (this.#endHooks ??= []).push(hook);
    return this;
  }

  #runHeadHooks(): void {
    const hooks = this.#headHooks!;
    this.#headHooks = null;
    for (const hook of hooks) hook(this);
  }

  #endAfterHooks(chunk: string | Uint8Array | undefined, encoding: BufferEncoding | undefined): this {
    const hooks = this.#endHooks!;
    this.#endHooks = null;
    const pending: PromiseLike<void>[] = [];
    let failure: { error: unknown } | null = null;
    for (const hook of hooks) {
      try {
        const result = hook(this);
        if (result !== undefined && typeof (result as PromiseLike<void>).then === 'function') pending.push(result as PromiseLike<void>);
      } catch (error) {
        failure ??= { error };
      }
    }
    const finish = (): void => {
      if (failure !== null) {
        this.#endAfterHookFailure(failure.error);
        return;
      }
      try {
        this.end(chunk, encoding);
      } catch (error) {
        this.#endAfterHookFailure(error);
      }
    };
    if (pending.length === 0) {
      finish();
      return this;
    }
    this.#holding = true;
    void Promise.allSettled(pending).then((results) => {
      this.#holding = false;
      for (const result of results) if (result.status === 'rejected') failure ??= { error: result.reason };
      finish();
    });
    return this;
  }

  #endAfterHookFailure(error: unknown): void {
    this.appStatus = 1;
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.writeStderr(`nodefpm: request ${this.#exchange.id}: a beforeEnd hook failed: ${text}\n`);
    try {
      if (!this.#headersSent) {
        this.#headers.clear();
        this.statusCode = 500;
        this.statusMessage = undefined;
        this.#headers.set('content-type', ['Content-Type', 'text/plain; charset=utf-8']);
        this.end('500 Internal Server Error\n');
      } else {
        this.end();
      }
    } catch {
      // A head hook threw again: end at the exchange, which still answers 500 when nothing went out.
      this.#ended = true;
      this.#exchange.respondWithStatus(500, 'a response hook failed');
      this.emit('finish');
      this.#emitClose();
    }
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
    this.#exchange.writeHead(this.#buildHead());
  }

  /** Runs the beforeHead() hooks and renders the CGI head; from here on the head counts as sent. */
  #buildHead(): string {
    if (this.#headHooks !== null) this.#runHeadHooks();
    const status = this.statusCode;
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new NodefpmError('NODEFPM_INVALID_STATUS', `status code ${String(status)} is not an integer in 100-999`);
    }
    const message = this.statusMessage;
    if (message !== undefined && /[\r\n]/.test(message)) throw new NodefpmError('NODEFPM_INVALID_STATUS', 'the status message contains CR or LF');
    let head = message === undefined ? standardStatusLine(status) : `Status: ${status} ${message}\r\n`;
    for (const [key, [name, value]] of this.#headers) {
      if (HOP_BY_HOP_HEADERS.has(key)) continue;
      if (typeof value === 'string') head += `${name}: ${value}\r\n`;
      else for (const item of value) head += `${name}: ${item}\r\n`;
    }
    this.#headersSent = true;
    this.#noBody = this.#isHead || statusHasNoBody(status);
    return head + '\r\n';
  }
}
