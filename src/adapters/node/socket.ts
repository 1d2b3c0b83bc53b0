// The stand-in for a client connection that req.socket and res.socket are: addresses from the params, and a write side that turns Node's HTTP output into CGI output.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import { isNodefpmError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { Role } from '../../protocol/index.js';
import type { Exchange, ExchangeListener } from '../../server/exchange.js';
import { HttpToCgi } from './http-to-cgi.js';
import type { CgiRequest } from './params.js';
import { followBackpressure, type ResponseSocket } from './response.js';

type WriteCallback = (error?: Error | null) => void;

function isOn(value: string | undefined): boolean {
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return lower === 'on' || lower === '1' || lower === 'true' || lower === 'yes';
}

/** True when the web server says the client's connection is TLS (HTTPS=on, or REQUEST_SCHEME=https). */
export function isHttps(cgi: Pick<CgiRequest, 'HTTPS' | 'REQUEST_SCHEME'>): boolean {
  return isOn(cgi.HTTPS) || cgi.REQUEST_SCHEME?.toLowerCase() === 'https';
}

function toPort(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  return Number.isInteger(port) ? port : undefined;
}

function familyOf(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined;
  return address.includes(':') ? 'IPv6' : 'IPv4';
}

/** The error Node's server destroys a request with when its connection goes (lib/_http_server.js abortIncoming). */
function connectionReset(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

function destroyedError(): Error {
  return Object.assign(new Error('Cannot call write after a stream was destroyed'), { code: 'ERR_STREAM_DESTROYED' });
}

const DUPLEX_OPTIONS = { decodeStrings: false, allowHalfOpen: true } as const;

/**
 * One per request: it is the "connection" the app sees, and it plays the part Node's HTTP server
 * plays for a real socket.
 *
 * - Output: Node's ServerResponse writes its HTTP/1.1 bytes here; they go through HttpToCgi to the
 *   Exchange. `write` is overridden (a public Writable method) rather than left to Writable's queue:
 *   the bytes go straight on, and the return value and 'drain' are the Exchange's backpressure, so
 *   `res.write()` returns false exactly when the web server is behind.
 * - Input: IncomingMessage's own _read asks its socket to resume when it wants more body, as it does
 *   on a real connection; `resume` here moves FCGI_STDIN chunks into the request with `push`, as
 *   Node's parser does, stopping when push says the request's buffer is full.
 * - Lifetime: destroying it ends the FastCGI request: after the response, to close it; before,
 *   because the app dropped the connection (req.destroy(), res.destroy()) or the web server aborted
 *   the request. Either way 'close' follows, which ServerResponse turns into its own 'close'.
 *
 * _read/_write/_final/_destroy are the hooks Node documents for stream implementers; its own
 * readable side carries nothing.
 */
export class FcgiSocket extends Duplex implements ExchangeListener, ResponseSocket {
  readonly exchange: Exchange;
  /** REMOTE_ADDR: the client's address. */
  readonly remoteAddress: string | undefined;
  /** REMOTE_PORT. */
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  /** SERVER_ADDR: where the web server accepted the client. */
  readonly localAddress: string | undefined;
  /** SERVER_PORT. */
  readonly localPort: number | undefined;
  /** True when the web server says the client connection is TLS, as on a TLSSocket (undefined otherwise, as on a net.Socket). */
  readonly encrypted: true | undefined;
  readonly connecting = false;
  readonly #log: Logger;
  readonly #translator: HttpToCgi;
  #request: IncomingMessage | null = null;
  #response: ServerResponse | null = null;
  /** The request asked for body (its _read ran): it is being consumed. */
  #consuming = false;
  /** The request wants more body and FCGI_STDIN had none: push when it has. */
  #wanting = false;
  #paused = false;
  /** Callbacks of writes that returned false: called at the next drain, as a socket calls them when flushed. */
  #callbacks: WriteCallback[] | null = null;
  #needDrain = false;
  /** A write has returned false at least once. */
  #waited = false;
  #responseEnded = false;
  /** The application status for END_REQUEST (set to 1 when the listener failed). */
  appStatus = 0;

  constructor(exchange: Exchange, cgi: CgiRequest, log: Logger) {
    super(DUPLEX_OPTIONS);
    this.exchange = exchange;
    this.#log = log;
    this.remoteAddress = cgi.REMOTE_ADDR;
    this.remotePort = toPort(cgi.REMOTE_PORT);
    this.remoteFamily = familyOf(this.remoteAddress);
    this.localAddress = cgi.SERVER_ADDR;
    this.localPort = toPort(cgi.SERVER_PORT);
    this.encrypted = isHttps(cgi) ? true : undefined;
    this.#translator = new HttpToCgi(exchange, cgi.method === 'HEAD', this);
  }

  /** HttpToCgi's report of output that is not HTTP (only possible when the app writes to the socket itself). */
  malformedOutput(reason: string): void {
    this.#log.warn(`response output is not HTTP, answering 502: ${reason}`, { request: this.exchange.id, uri: this.#request?.url });
  }

  /** Binds the request and response this socket carries (they are made after it). */
  attach(request: IncomingMessage, response: ServerResponse): void {
    this.#request = request;
    this.#response = response;
    const stdin = this.exchange.stdin;
    if (stdin.ended) request.complete = true;
    stdin.onReadable = () => this.#stdinReadable();
  }

  /** True while a write returned false and the web server has not drained since. */
  get needsDrain(): boolean {
    return this.#needDrain;
  }

  // ---- net.Socket's surface that frameworks use ----

  /** Idle timeouts belong to the web server; never fires. */
  setTimeout(_timeout: number, _callback?: () => void): this {
    return this;
  }

  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  address(): { address: string; family: string; port: number } | Record<string, never> {
    const address = this.localAddress;
    if (address === undefined) return {};
    return { address, family: familyOf(address) ?? 'IPv4', port: this.localPort ?? 0 };
  }

  get readyState(): string {
    return this.destroyed ? 'closed' : this.writable ? 'open' : 'readOnly';
  }

  get pending(): boolean {
    return false;
  }

  /** Body bytes received from the web server so far. */
  get bytesRead(): number {
    return this.exchange.stdin.bytesReceived;
  }

  /** CGI output bytes (head and body) handed to the Exchange so far. */
  get bytesWritten(): number {
    return this.exchange.stdoutBytes;
  }

  // ---- the read side: the request body ----

  /**
   * IncomingMessage._read calls this when the app wants body (Node's parser reads on from the socket
   * then): move what FCGI_STDIN holds into the request.
   */
  override resume(): this {
    this.#paused = false;
    this.#consuming = true;
    this.#pump();
    return this;
  }

  /** Stops moving body into the request until resume(). */
  override pause(): this {
    this.#paused = true;
    return this;
  }

  override isPaused(): boolean {
    return this.#paused;
  }

  #pump(): void {
    this.#wanting = false;
    const request = this.#request;
    if (request === null || this.#paused || request.readableEnded || request.destroyed) return;
    if (this.exchange.role === Role.Authorizer) {
      // Apache's mod_authnz_fcgi sends no FCGI_STDIN at all for an Authorizer: there is no body to wait for.
      this.#bodyEnded(request);
      return;
    }
    const stdin = this.exchange.stdin;
    for (;;) {
      let chunk: Buffer | null | undefined;
      try {
        chunk = stdin.readSync();
      } catch (error) {
        this.#bodyFailed(request, error);
        return;
      }
      if (chunk === undefined) {
        this.#wanting = true;
        return;
      }
      if (chunk === null) {
        this.#bodyEnded(request);
        return;
      }
      if (!request.push(chunk)) return;
    }
  }

  #bodyEnded(request: IncomingMessage): void {
    request.complete = true;
    request.push(null);
  }

  #stdinReadable(): void {
    const stdin = this.exchange.stdin;
    if (stdin.ended && this.#request !== null) this.#request.complete = true;
    if (!this.#wanting) return;
    // A failure is reported from inside the connection's record handling: react once that is done.
    if (stdin.error !== null) process.nextTick(() => this.#pump());
    else this.#pump();
  }

  #bodyFailed(request: IncomingMessage, error: unknown): void {
    // An abort is handled by exchangeAborted (the request gets ECONNRESET, as Node gives it). Other
    // failures (a body over maxBodyBytes, shorter than CONTENT_LENGTH) end the request with that error,
    // as a parse error does on Node's server.
    if (this.exchange.aborted || request.destroyed) return;
    request.destroy(error instanceof Error ? error : new Error(String(error)));
  }

  /**
   * The response is complete, END_REQUEST goes out next and FCGI_STDIN stops with it. A body nobody
   * read is dropped, as Node's server dumps it. A body being read gets what has already arrived;
   * returns false when more was to come, which can no longer arrive.
   */
  #finishBody(request: IncomingMessage): boolean {
    const stdin = this.exchange.stdin;
    if (stdin.error !== null || request.readableEnded || request.destroyed || this.exchange.role === Role.Authorizer) return true;
    if (!this.#consuming && request.readableFlowing !== true) {
      // What Node's IncomingMessage._dump does, through public methods. Also when the whole body (or
      // none, for a GET) has already arrived: Node's parser has pushed the request's end by then, so
      // the dump ends it and 'end' and 'close' follow; without it a request nobody read (Koa's GET)
      // would never close.
      request.complete = true;
      stdin.discard();
      request.removeAllListeners('data');
      request.push(null);
      request.resume();
      return true;
    }
    if (stdin.finished) return true;
    try {
      for (let chunk = stdin.readSync(); chunk !== undefined; chunk = stdin.readSync()) {
        if (chunk === null) {
          this.#bodyEnded(request);
          return true;
        }
        request.push(chunk);
      }
    } catch {
      // The stream failed: the abort or error path ends the request.
      return true;
    }
    return false;
  }

  // ---- the write side ----

  override write(chunk: unknown, encoding?: BufferEncoding | null | WriteCallback, callback?: WriteCallback | null): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (typeof callback !== 'function') callback = undefined;
    if (this.destroyed || this.writableEnded) {
      if (callback !== undefined) process.nextTick(callback, destroyedError());
      return false;
    }
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      throw new TypeError('The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
    }
    const ok = this.#translator.write(chunk, encoding);
    if (!ok) {
      this.#needDrain = true;
      if (!this.#waited) {
        this.#waited = true;
        if (this.#response !== null) followBackpressure(this.#response, this);
      }
    }
    if (callback !== undefined) {
      if (ok) process.nextTick(callback, null);
      else (this.#callbacks ??= []).push(callback);
    }
    return ok;
  }

  /** Writable's hook for implementers; reached only through socket.end(chunk), since write() is overridden. */
  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: WriteCallback): void {
    this.#translator.write(chunk, encoding);
    callback(null);
  }

  /** socket.end() by the app: the connection closes once output is out, like a half-close on a real socket. */
  override _final(callback: WriteCallback): void {
    callback(null);
    process.nextTick(() => this.destroy());
  }

  /** Readable's hook for implementers: the connection itself yields nothing (the body is pushed into the request). */
  override _read(): void {}

  /** Readable/Writable's hook for implementers: ends the FastCGI request if the response did not. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const exchange = this.exchange;
    if (!exchange.ended) {
      if (exchange.aborted) {
        exchange.end(0);
      } else if (!this.#translator.headWritten && isNodefpmError(error) && error.status !== undefined) {
        // The body broke (over maxBodyBytes, shorter than CONTENT_LENGTH): answer like Node's server
        // answers a request it cannot parse.
        exchange.respondWithStatus(error.status, error.message);
      } else {
        // The app dropped the connection before its response was complete: the web server gets what
        // was written (nothing at all: it answers 502 itself).
        exchange.end(1);
      }
    }
    const callbacks = this.#callbacks;
    this.#callbacks = null;
    if (callbacks !== null) for (const pending of callbacks) process.nextTick(pending, destroyedError());
    // What Node's server does to requests still in progress when their connection closes.
    if (!this.#responseEnded) this.#request?.destroy(connectionReset());
    // Errors are not re-emitted on the socket: Node's HTTP server listens for its sockets' errors
    // itself, so apps never had to.
    callback(null);
  }

  // ---- ResponseSocket ----

  responseEnded(): void {
    if (this.#responseEnded) return;
    this.#responseEnded = true;
    const request = this.#request;
    // Before END_REQUEST: after it the connection drops whatever FCGI_STDIN still holds.
    const bodyWhole = request === null || this.#finishBody(request);
    this.exchange.end(this.appStatus);
    this.destroy();
    if (!bodyWhole) request?.destroy();
  }

  // ---- ExchangeListener ----

  exchangeDrained(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    const callbacks = this.#callbacks;
    this.#callbacks = null;
    if (callbacks !== null) for (const pending of callbacks) pending(null);
    this.emit('drain');
    // Node's HTTP server emits the response's 'drain' from its socket's; so does this one.
    const response = this.#response;
    if (response !== null && !response.writableEnded && !response.destroyed) response.emit('drain');
  }

  exchangeAborted(): void {
    // Called from inside the connection's own bookkeeping (which may end the exchange next): react
    // once it is done, as Node reacts to a closed socket from its 'close' event.
    process.nextTick(() => this.destroy());
  }
}
