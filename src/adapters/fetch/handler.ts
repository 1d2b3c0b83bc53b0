// Runs a WHATWG fetch handler for each request: a lazy Request in, the Response written out as CGI with backpressure, failures as 500s.

import { Buffer } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import { isNodefpmError, NodefpmError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Params } from '../../protocol/index.js';
import type { Exchange, ExchangeListener } from '../../server/exchange.js';
import type { ExchangeHandler } from '../../server/server.js';
import { createFetchRequest, markResponded } from './request.js';
import { installGlobalObjects, NativeResponse, takeResponseParts, type ResponseParts } from './response.js';

/**
 * What a fetch handler gets besides the Request (Hono's `c.env`): the FastCGI request behind it, for
 * the params a Request has no place for (SCRIPT_FILENAME, REMOTE_ADDR, ...).
 */
export class FcgiBindings {
  readonly exchange: Exchange;

  constructor(exchange: Exchange) {
    this.exchange = exchange;
  }

  /** Every FastCGI param, decoded on first use. */
  get params(): Params {
    return this.exchange.params;
  }

  /** One FastCGI param by name, without decoding the others. */
  param(name: string): string | undefined {
    return this.exchange.param(name);
  }
}

/** A fetch handler as a function. */
export type FetchFunction = (request: Request, env: FcgiBindings) => Response | Promise<Response>;

/** A fetch handler as an object with a fetch method (a Hono app, itty-router, Cloudflare-style modules). */
export interface FetchObject {
  // A method signature, so apps whose fetch takes (request, env?, ctx?) with their own env type fit.
  fetch(request: Request, env: FcgiBindings): Response | Promise<Response>;
}

export type FetchHandler = FetchFunction | FetchObject;

export interface FetchHandlerOptions {
  /** Show error messages and stacks in 500 pages (never in production). Default false. */
  development?: boolean;
  /**
   * Replace `globalThis.Response` with nodefpm's lightweight stand-in, which makes `new Response(text)`
   * nearly free and is sent without a stream, and `globalThis.Request` with a subclass that copies
   * lazy Requests (what @hono/node-server does by default). Behaviour is the same; set false to keep
   * the platform's classes as the globals. Default true.
   */
  overrideGlobalObjects?: boolean;
  /** The host for the Request's URL when the params carry neither HTTP_HOST nor SERVER_NAME. Default "localhost". */
  hostname?: string;
}

/** Chunks a stream may already hold when the handler returns: taken before the head is sent, so a short stream gets a Content-Length. */
const EAGER_READS = 16;
const EAGER_BYTES = 64 * 1024;

/** Resolves with `read`'s result if it is already settled (or settles within a few microtasks), else undefined. */
function readIfReady<T>(read: Promise<T>): Promise<T | undefined> {
  return Promise.race([read, Promise.resolve().then(() => Promise.resolve(undefined))]);
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  // Not allowed by the standard, accepted as Node's own writers accept it.
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError(`the response body stream produced ${chunk === null ? 'null' : typeof chunk}, not a Uint8Array`);
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'no constructor'})`;
  return `a ${typeof value}`;
}

/** The status a thrown error asks for: its own 4xx/5xx status (bad URL, body limits), else 500. */
function statusFor(error: unknown): number {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500;
}

function head(parts: ResponseParts, contentLength: number): string {
  let text = `Status: ${parts.status} ${parts.reason}\r\n${parts.lines}`;
  if (contentLength >= 0 && !parts.hasContentLength) text += `Content-Length: ${contentLength}\r\n`;
  return text + '\r\n';
}

/** Statuses whose responses carry no body (a Response cannot have one with 204, 205 or 304; 1xx cannot be made). */
function statusHasNoBody(status: number): boolean {
  return status === 204 || status === 205 || status === 304 || status < 200;
}

/**
 * Writes a streamed body with backpressure: waits for exchangeDrained() when write() returns false,
 * and cancels the stream when the web server aborts or drops the request.
 */
class StreamWriter implements ExchangeListener {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #drained: (() => void) | null = null;
  aborted = false;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  waitForDrain(): Promise<void> {
    if (this.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = resolve;
    });
  }

  exchangeDrained(): void {
    const drained = this.#drained;
    this.#drained = null;
    drained?.();
  }

  exchangeAborted(reason: NodefpmError): void {
    this.aborted = true;
    this.#reader.cancel(reason).catch(() => undefined);
    this.exchangeDrained();
  }
}

/** Wraps a fetch handler into the server's per-request callback. */
export function fetchExchangeHandler(handler: FetchHandler, options: FetchHandlerOptions, log: Logger): ExchangeHandler {
  if (typeof handler !== 'function' && (typeof handler !== 'object' || handler === null || typeof handler.fetch !== 'function')) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', 'a fetch handler must be a function (request) => Response or an object with a fetch(request) method');
  }
  if (options.overrideGlobalObjects !== false) installGlobalObjects();
  const development = options.development ?? false;
  const hostname = options.hostname ?? 'localhost';
  const call: FetchFunction = typeof handler === 'function' ? handler : (request, env) => handler.fetch(request, env);

  const failed = (exchange: Exchange, request: Request, error: unknown): void => {
    markResponded(request);
    if (exchange.aborted || exchange.ended) {
      // The web server gave up on this request: the failure is a consequence, not news.
      log.debug('fetch handler ended after its request was aborted', { request: exchange.id, error: (error as Error)?.message });
      exchange.end(0);
      return;
    }
    const status = statusFor(error);
    const where = `${exchange.param('REQUEST_METHOD') ?? 'GET'} ${exchange.param('REQUEST_URI') ?? ''}`;
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (status >= 500) {
      log.error(`fetch handler failed: ${where}`, { request: exchange.id, error, code: (error as { code?: string } | null)?.code });
      exchange.writeStderr(`nodefpm: request ${exchange.id} ${where} failed: ${text}\n`);
    } else {
      log.warn(`request refused with ${status}: ${where}: ${(error as Error).message}`, { request: exchange.id, code: (error as { code?: string }).code });
    }
    if (exchange.stdoutBytes > 0) {
      // The head is out: all that can be done is to cut the response short.
      exchange.end(status >= 500 ? 1 : 0);
      return;
    }
    const reason = STATUS_CODES[status] ?? 'Error';
    // 4xx reasons come from our own checks and say what was wrong; 5xx details only in development.
    const detail = status < 500 && isNodefpmError(error) ? `\n${error.message}` : development ? `\n\n${text}` : '';
    const body = `${status} ${reason}${detail}\n`;
    exchange.endWith(
      `Status: ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
      exchange.param('REQUEST_METHOD') === 'HEAD' ? null : body,
      status >= 500 ? 1 : 0,
    );
  };

  const stream = async (exchange: Exchange, request: Request, parts: ResponseParts, noBody: boolean): Promise<void> => {
    const body = parts.stream!;
    if (noBody) {
      body.cancel().catch(() => undefined);
      markResponded(request);
      exchange.endWith(head(parts, -1), null);
      return;
    }
    const reader = body.getReader();
    const writer = new StreamWriter(reader);
    exchange.listener = writer;
    try {
      // Chunks that are already there go out with the head; if that is the whole body, with a Content-Length.
      const early: Uint8Array[] = [];
      let earlyBytes = 0;
      let done = false;
      let pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']> | null = null;
      while (early.length < EAGER_READS && earlyBytes < EAGER_BYTES) {
        const read = reader.read();
        const result = await readIfReady(read);
        if (result === undefined) {
          pending = read;
          break;
        }
        if (result.done) {
          done = true;
          break;
        }
        const bytes = toBytes(result.value);
        early.push(bytes);
        earlyBytes += bytes.length;
      }
      if (exchange.aborted) return;
      exchange.writeHead(head(parts, done ? earlyBytes : -1));
      let ready = true;
      for (const chunk of early) ready = exchange.write(chunk);
      while (!done) {
        if (!ready) await writer.waitForDrain();
        if (writer.aborted) return;
        const result = await (pending ?? reader.read());
        pending = null;
        if (result.done || writer.aborted) return;
        ready = exchange.write(toBytes(result.value));
      }
    } catch (error) {
      // After an abort the stream was cancelled on purpose: its error is no news.
      if (!exchange.aborted && !exchange.ended) {
        reader.cancel(error).catch(() => undefined);
        failed(exchange, request, error);
      }
    } finally {
      if (exchange.listener === writer) exchange.listener = null;
      if (!exchange.ended) {
        markResponded(request);
        exchange.end(0);
      }
    }
  };

  const respond = (exchange: Exchange, request: Request, response: unknown): void => {
    if (!(response instanceof NativeResponse)) {
      failed(
        exchange,
        request,
        new NodefpmError('NODEFPM_FETCH_NOT_A_RESPONSE', `the fetch handler returned ${describeValue(response)}, not a Response; return (or resolve to) a Response`),
      );
      return;
    }
    let parts: ResponseParts;
    try {
      parts = takeResponseParts(response);
    } catch (error) {
      failed(exchange, request, error);
      return;
    }
    if (exchange.aborted || exchange.ended) {
      parts.stream?.cancel(exchange.abortReason).catch(() => undefined);
      markResponded(request);
      exchange.end(0);
      return;
    }
    const noBody = request.method === 'HEAD' || statusHasNoBody(parts.status);
    const source = parts.source;
    if (source === undefined) {
      void stream(exchange, request, parts, noBody);
      return;
    }
    // The whole body is known: head, body and END_REQUEST leave in one socket write.
    markResponded(request);
    if (source === null) {
      exchange.endWith(head(parts, -1), null);
    } else {
      const length = typeof source === 'string' ? Buffer.byteLength(source) : source.length;
      exchange.endWith(head(parts, statusHasNoBody(parts.status) ? -1 : length), noBody || length === 0 ? null : source);
    }
  };

  return (exchange: Exchange): void => {
    let request: Request;
    let result: Response | Promise<Response>;
    try {
      request = createFetchRequest(exchange, hostname);
    } catch (error) {
      exchange.respondWithStatus(500, 'internal error');
      log.error('could not make the fetch Request', { request: exchange.id, error });
      return;
    }
    try {
      result = call(request, new FcgiBindings(exchange));
    } catch (error) {
      failed(exchange, request, error);
      return;
    }
    if (result instanceof Promise || (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function')) {
      (result as Promise<Response>).then(
        (response) => respond(exchange, request, response),
        (error: unknown) => failed(exchange, request, error),
      );
    } else {
      respond(exchange, request, result);
    }
  };
}
