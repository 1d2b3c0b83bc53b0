// FcgiClient: a small pool of kept-alive connections to one FastCGI application, and the request API on top of it.

import { Buffer } from 'node:buffer';
import { NodefpmError, isNodefpmError } from '../errors.js';
import { encodePairs, type Role } from '../protocol/index.js';
import { formatConnectTarget, parseConnectAddress, type ConnectAddress, type ConnectTarget } from './address.js';
import { DEFAULT_MAX_HEAD_BYTES } from './cgi-response.js';
import {
  ClientConnection,
  DEFAULT_VALUE_NAMES,
  type BodySource,
  type ConnectionRequestOptions,
  type ParamsInput,
  type RequestHandle,
} from './connection.js';
import { deferred } from './deferred.js';
import { DEFAULT_MAX_STDERR_BYTES, type FcgiRawResponse, type FcgiResponse } from './response.js';

/**
 * The client's options. Times are in milliseconds; 0 turns a timeout off.
 *
 * | option | default | |
 * |---|---|---|
 * | address | (required) | `unix:/path`, `/abs/path`, `HOST:PORT`, `[IPv6]:PORT`, `{ path }` or `{ host, port }` |
 * | keepConn | true | send FCGI_KEEP_CONN and keep idle connections for the next request |
 * | maxConnections | 8 | connections open at once; requests beyond wait in order |
 * | multiplex | false | run several requests on one connection (the application must support it) |
 * | maxRequestsPerConnection | 100 | with multiplex, requests at once on one connection |
 * | connectTimeout | 5000 | to establish a connection: NODEFPM_CLIENT_CONNECT |
 * | timeout | 0 | from the start of a request on its connection until END_REQUEST: NODEFPM_CLIENT_TIMEOUT |
 * | idleTimeout | 30000 | an idle kept connection is closed after this long |
 * | abortGrace | 1000 | after FCGI_ABORT_REQUEST, the wait for END_REQUEST before the connection is closed |
 * | maxHeadBytes | 65536 | bound on the CGI response head: NODEFPM_CLIENT_BAD_RESPONSE |
 * | maxStderrBytes | 1048576 | FCGI_STDERR bytes kept per response |
 */
export interface FcgiClientOptions {
  address: ConnectAddress;
  keepConn?: boolean;
  maxConnections?: number;
  multiplex?: boolean;
  maxRequestsPerConnection?: number;
  connectTimeout?: number;
  timeout?: number;
  idleTimeout?: number;
  abortGrace?: number;
  maxHeadBytes?: number;
  maxStderrBytes?: number;
}

/** One request. */
export interface FcgiRequestOptions {
  /** The CGI/FastCGI environment, sent as given: the client adds nothing (not CONTENT_LENGTH either). */
  params: ParamsInput;
  /** FCGI_STDIN: bytes, a string (UTF-8), or a stream (Node Readable, async iterable). Empty when absent. */
  body?: BodySource;
  /** FCGI_DATA for the Filter role, sent after STDIN (always sent, maybe empty, for that role). */
  data?: BodySource;
  /** Role.Responder by default. */
  role?: Role | number;
  /** Aborting sends FCGI_ABORT_REQUEST and fails the request (or errors its body) with NODEFPM_CLIENT_ABORTED. */
  signal?: AbortSignal;
  /** Overrides the client's keepConn for this request; false means the connection is closed after it. */
  keepConn?: boolean;
  /** Overrides the client's timeout for this request. */
  timeout?: number;
  /** On abort, close the connection at once instead of waiting up to abortGrace for END_REQUEST. Default false. */
  closeOnAbort?: boolean;
  /** Called with each FCGI_STDERR chunk as it arrives. */
  onStderr?: (chunk: Buffer) => void;
}

/** A request started with startRequest. */
export interface FcgiRequestHandle<R extends FcgiRawResponse = FcgiResponse> {
  /** What request() returns. */
  readonly response: Promise<R>;
  /**
   * Aborts the request as aborting its `signal` would: a queued request leaves the queue, a running one
   * is abandoned with FCGI_ABORT_REQUEST (or its connection closed, with closeOnAbort), and the response
   * rejects, or its body errors, with NODEFPM_CLIENT_ABORTED (`reason` as its cause). Does nothing once
   * the response body has ended, nor a second time.
   */
  abort(reason?: unknown): void;
}

/** Figures about the pool, for tests and benchmarks. */
export interface FcgiClientStats {
  /** Open connections (connected). */
  connections: number;
  /** Connections being established. */
  connecting: number;
  /** Open connections with no request in progress. */
  idle: number;
  /** Requests waiting for a connection. */
  queued: number;
}

/**
 * One request through the pool: waiting for a connection, then running on one (and maybe, once, on a
 * fresh one). A record the pool's methods act on rather than a set of closures: it is made per request.
 */
interface PoolRequest {
  readonly options: ConnectionRequestOptions;
  readonly raw: boolean;
  /** Needs a connection of its own (KEEP_CONN=0 will close it). */
  readonly exclusive: boolean;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (response: FcgiRawResponse) => void;
  readonly reject: (error: Error) => void;
  /** A retry: only a newly opened connection will do. */
  fresh: boolean;
  /** Waiting for a connection: in the queue, or for one being opened for it. */
  waiting: boolean;
  /** Gave up while waiting: a connection opened for it goes to the pool instead. */
  cancelled: boolean;
  aborted: boolean;
  /** The run on a connection, once started. */
  running: RequestHandle | null;
  /** The signal's listener while the request waits (only a request that waits needs one). */
  onSignal: (() => void) | null;
}

function checkInteger(name: string, value: unknown, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `${name} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

function checkBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new NodefpmError('NODEFPM_INVALID_OPTION', `${name} must be true or false, got ${String(value)}`);
  return value;
}

/** A request refused before it started: its response rejects, and there is nothing to abort. */
function failedHandle(error: Error): FcgiRequestHandle<FcgiRawResponse> {
  return { response: Promise.reject(error), abort: () => {} };
}

function abortedError(reason: unknown): NodefpmError {
  const detail = reason instanceof Error ? `: ${reason.message}` : '';
  return new NodefpmError('NODEFPM_CLIENT_ABORTED', `the request was aborted${detail}`, { cause: reason });
}

/**
 * A FastCGI client for one application address, with a pool of connections.
 *
 * Pooling: an idle kept-alive connection is reused (the most recently used first); otherwise a new one
 * is opened while fewer than maxConnections are open; otherwise the request waits in line. With
 * `multiplex`, requests share connections (the least busy first, up to maxRequestsPerConnection). A
 * connection the application closed (KEEP_CONN=0, its idle timeout, a crash) leaves the pool at once.
 *
 * Retry: a request that fails with NODEFPM_CLIENT_CLOSED on a reused idle connection before any byte
 * of the response arrived (the application closed it as we sent) is sent once more on a new
 * connection, as HTTP clients do — unless a one-shot body stream had already been pulled from.
 */
export class FcgiClient {
  readonly #target: ConnectTarget;
  readonly #where: string;
  readonly #keepConn: boolean;
  readonly #maxConnections: number;
  readonly #multiplex: boolean;
  readonly #maxRequestsPerConnection: number;
  readonly #connectTimeout: number;
  readonly #timeout: number;
  readonly #idleTimeout: number;
  readonly #abortGrace: number;
  readonly #maxHeadBytes: number;
  readonly #maxStderrBytes: number;

  readonly #connections = new Set<ClientConnection>();
  /** Idle connections, the most recently released last. */
  #idle: ClientConnection[] = [];
  readonly #idleTimers = new Map<ClientConnection, NodeJS.Timeout>();
  #connecting = 0;
  #waiters: PoolRequest[] = [];
  #closed = false;
  /** destroy() was called: connections still being opened are closed as they arrive. */
  #destroyed = false;
  #closeResolvers: Array<() => void> = [];

  constructor(options: FcgiClientOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', 'FcgiClient needs an options object with an address');
    }
    this.#target = parseConnectAddress(options.address);
    this.#where = formatConnectTarget(this.#target);
    this.#keepConn = checkBoolean('keepConn', options.keepConn, true);
    this.#maxConnections = checkInteger('maxConnections', options.maxConnections, 1, 8);
    this.#multiplex = checkBoolean('multiplex', options.multiplex, false);
    this.#maxRequestsPerConnection = Math.min(checkInteger('maxRequestsPerConnection', options.maxRequestsPerConnection, 1, 100), 65535);
    this.#connectTimeout = checkInteger('connectTimeout', options.connectTimeout, 0, 5000);
    this.#timeout = checkInteger('timeout', options.timeout, 0, 0);
    this.#idleTimeout = checkInteger('idleTimeout', options.idleTimeout, 0, 30_000);
    this.#abortGrace = checkInteger('abortGrace', options.abortGrace, 0, 1000);
    this.#maxHeadBytes = checkInteger('maxHeadBytes', options.maxHeadBytes, 1, DEFAULT_MAX_HEAD_BYTES);
    this.#maxStderrBytes = checkInteger('maxStderrBytes', options.maxStderrBytes, 0, DEFAULT_MAX_STDERR_BYTES);
  }

  /** The application's address, as text. */
  get address(): string {
    return this.#where;
  }

  get stats(): FcgiClientStats {
    let idle = 0;
    for (const connection of this.#connections) if (connection.isIdle) idle++;
    return { connections: this.#connections.size, connecting: this.#connecting, idle, queued: this.#waiters.length };
  }

  /**
   * Sends a request and resolves once the CGI head of its STDOUT is parsed. When END_REQUEST comes
   * with an empty STDOUT the response is 200 with no headers and an empty body (what an Authorizer
   * granting access may send); STDOUT that ends inside the head counts its last line and ends the head.
   *
   * Rejects with NODEFPM_CLIENT_CONNECT, _CLOSED, _TIMEOUT, _ABORTED, _BAD_RESPONSE, _BODY,
   * _REJECTED (an FcgiRejectedError, with protocolStatus), NODEFPM_INVALID_PARAM, or
   * NODEFPM_CLIENT_CLOSING after close(). Failures after the response was handed out error its body
   * and reject its `ended`.
   */
  request(options: FcgiRequestOptions): Promise<FcgiResponse> {
    return this.#start(options, false).response as Promise<FcgiResponse>;
  }

  /**
   * Like request(), but returns at once, with the response to come and `abort`, which does what
   * aborting `signal` does. For a caller that makes a request per incoming request and seldom aborts
   * (the HTTP front): an AbortSignal and its listeners cost microseconds on every request, this nothing.
   */
  startRequest(options: FcgiRequestOptions): FcgiRequestHandle {
    return this.#start(options, false) as FcgiRequestHandle;
  }

  /**
   * Like request(), but STDOUT is handed over as is, with no CGI head parsed: resolves at the first
   * STDOUT record or at END_REQUEST. For tests, and for roles whose output is not a CGI response.
   */
  requestRaw(options: FcgiRequestOptions): Promise<FcgiRawResponse> {
    return this.#start(options, true).response;
  }

  /**
   * Asks the application for FCGI_GET_VALUES on a connection of its own (opened for this and closed
   * after, outside maxConnections, since some applications close the connection after answering).
   * Resolves with the names it answered (PHP-FPM answers only FCGI_MPXS_CONNS). Waits at most
   * `timeout` ms: the client's timeout, or 5000 when that is 0.
   */
  async getValues(names: readonly string[] = DEFAULT_VALUE_NAMES, options: { timeout?: number } = {}): Promise<Record<string, string>> {
    if (this.#closed) throw this.#closingError();
    const timeout = options.timeout ?? (this.#timeout > 0 ? this.#timeout : 5000);
    const connection = await ClientConnection.connect(this.#target, { connectTimeout: this.#connectTimeout });
    try {
      return await connection.getValues(names, timeout);
    } finally {
      void connection.close();
    }
  }

  /**
   * Takes no new request, lets queued and running ones finish, closes idle connections at once and the
   * others as their requests end, and resolves when all are closed. A response body nobody reads keeps
   * its request, and so close(), from finishing.
   */
  close(): Promise<void> {
    this.#closed = true;
    const done = new Promise<void>((resolve) => this.#closeResolvers.push(resolve));
    for (const connection of [...this.#connections]) if (connection.isIdle) void connection.close();
    this.#checkClosed();
    return done;
  }

  /** Closes everything now: queued requests fail with NODEFPM_CLIENT_CLOSING, running ones with NODEFPM_CLIENT_CLOSED. */
  destroy(): void {
    this.#closed = true;
    this.#destroyed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) this.#fail(waiter, this.#closingError());
    for (const connection of [...this.#connections]) connection.destroy();
    this.#checkClosed();
  }

  #closingError(): NodefpmError {
    return new NodefpmError('NODEFPM_CLIENT_CLOSING', `the FastCGI client for ${this.#where} is closed`);
  }

  #start(options: FcgiRequestOptions, raw: boolean): FcgiRequestHandle<FcgiRawResponse> {
    if (this.#closed) return failedHandle(this.#closingError());
    if (typeof options !== 'object' || options === null) {
      return failedHandle(new NodefpmError('NODEFPM_INVALID_OPTION', 'request options must be an object with params'));
    }
    const signal = options.signal;
    if (signal?.aborted === true) return failedHandle(abortedError(signal.reason));
    let pairs: Buffer;
    try {
      // Encoded once, here: a bad param fails before a connection is taken, and a retry reuses the bytes.
      pairs = Buffer.isBuffer(options.params) ? options.params : encodePairs(options.params);
    } catch (error) {
      return failedHandle(error as Error);
    }
    const keepConn = options.keepConn ?? this.#keepConn;
    const { promise: response, resolve, reject } = deferred<FcgiRawResponse>();
    const request: PoolRequest = {
      options: {
        params: pairs,
        body: options.body,
        data: options.data,
        role: options.role,
        keepConn,
        signal,
        timeout: options.timeout ?? this.#timeout,
        closeOnAbort: options.closeOnAbort,
        abortGrace: this.#abortGrace,
        maxHeadBytes: this.#maxHeadBytes,
        maxStderrBytes: this.#maxStderrBytes,
        onStderr: options.onStderr,
      },
      raw,
      exclusive: !keepConn,
      signal,
      resolve,
      reject,
      fresh: false,
      waiting: false,
      cancelled: false,
      aborted: false,
      running: null,
      onSignal: null,
    };
    this.#enqueue(request);
    return { response, abort: (reason?: unknown) => this.#abort(request, reason) };
  }

  /** Puts the request in line; most find a connection at once, in #dispatch. */
  #enqueue(request: PoolRequest): void {
    request.waiting = true;
    this.#waiters.push(request);
    this.#dispatch();
    const signal = request.signal;
    if (request.waiting && signal !== undefined) {
      // Once the request runs, its connection listens to the signal itself.
      request.onSignal = () => {
        request.onSignal = null;
        this.#cancel(request, signal.reason);
      };
      signal.addEventListener('abort', request.onSignal, { once: true });
    }
  }

  /** The request leaves the queue: it starts, fails, or is cancelled. */
  #leaveQueue(request: PoolRequest): void {
    request.waiting = false;
    if (request.onSignal !== null) {
      request.signal!.removeEventListener('abort', request.onSignal);
      request.onSignal = null;
    }
  }

  #abort(request: PoolRequest, reason: unknown): void {
    if (request.aborted) return;
    request.aborted = true;
    if (request.waiting) this.#cancel(request, reason);
    else request.running?.abort(reason);
  }

  /** Gives up a waiting request: it rejects with NODEFPM_CLIENT_ABORTED. */
  #cancel(request: PoolRequest, reason: unknown): void {
    if (!request.waiting) return;
    this.#leaveQueue(request);
    request.cancelled = true;
    const index = this.#waiters.indexOf(request);
    if (index >= 0) this.#waiters.splice(index, 1);
    request.reject(abortedError(reason));
    this.#checkClosed();
  }

  #fail(request: PoolRequest, error: Error): void {
    this.#leaveQueue(request);
    request.reject(error);
  }

  /** Starts the request on `connection`, synchronously (so no one else can take it in between). */
  #begin(request: PoolRequest, connection: ClientConnection, reused: boolean): void {
    this.#leaveQueue(request);
    let handle: RequestHandle;
    try {
      handle = connection.startRequest(request.options, request.raw);
    } catch (error) {
      request.reject(error as Error);
      // The connection stays usable: hand it on.
      this.#onRelease(connection);
      return;
    }
    request.running = handle;
    const fresh = request.fresh;
    handle.response.then(request.resolve, (error: unknown) => {
      const retry =
        !fresh &&
        reused &&
        isNodefpmError(error, 'NODEFPM_CLIENT_CLOSED') &&
        !handle.responseStarted &&
        !handle.bodyPulled &&
        !request.aborted &&
        request.signal?.aborted !== true;
      if (!retry) {
        request.reject(error as Error);
        return;
      }
      request.fresh = true;
      this.#enqueue(request);
    });
  }

  /** Hands connections to waiting requests, in order, opening new connections within maxConnections. */
  #dispatch(): void {
    while (this.#waiters.length > 0) {
      const waiter = this.#waiters[0]!;
      const connection = waiter.fresh ? undefined : this.#pick(waiter.exclusive);
      if (connection !== undefined) {
        this.#waiters.shift();
        // #pick popped an idle connection already; a shared one may still be listed as idle.
        if (this.#multiplex) this.#take(connection);
        this.#begin(waiter, connection, connection.requestsStarted > 0 && connection.activeRequests === 0);
        continue;
      }
      if (this.#connections.size + this.#connecting < this.#maxConnections) {
        this.#waiters.shift();
        this.#open(waiter);
        continue;
      }
      // A retry at the bound may close an idle connection to make room: it is likely as stale as the one that failed.
      const victim = waiter.fresh ? this.#idle.shift() : undefined;
      if (victim === undefined) break;
      this.#forget(victim);
      victim.destroy();
    }
  }

  /** A connection that can take this request now, if any. */
  #pick(exclusive: boolean): ClientConnection | undefined {
    if (this.#multiplex && !exclusive) {
      let best: ClientConnection | undefined;
      for (const connection of this.#connections) {
        if (connection.canTakeRequest && (best === undefined || connection.activeRequests < best.activeRequests)) best = connection;
      }
      return best;
    }
    while (this.#idle.length > 0) {
      const connection = this.#idle.pop()!;
      if (connection.isIdle) return connection;
    }
    return undefined;
  }

  /** Takes a connection out of the idle list (it is about to be used, or it closed). */
  #take(connection: ClientConnection): void {
    const index = this.#idle.indexOf(connection);
    if (index >= 0) this.#idle.splice(index, 1);
  }

  /**
   * Starts the connection's idle countdown again. One timer per connection, refreshed at each release
   * rather than made and cleared per request; when it fires on a connection taken since and still
   * busy, it does nothing, and the next release starts the countdown again.
   */
  #startIdleTimer(connection: ClientConnection): void {
    if (this.#idleTimeout === 0) return;
    const timer = this.#idleTimers.get(connection);
    if (timer !== undefined) {
      timer.refresh();
      return;
    }
    const created = setTimeout(() => {
      if (connection.isIdle && this.#idle.includes(connection)) void connection.close();
    }, this.#idleTimeout);
    created.unref();
    this.#idleTimers.set(connection, created);
  }

  #open(waiter: PoolRequest): void {
    this.#connecting++;
    ClientConnection.connect(this.#target, {
      connectTimeout: this.#connectTimeout,
      multiplex: this.#multiplex,
      maxRequests: this.#maxRequestsPerConnection,
    }).then(
      (connection) => {
        this.#connecting--;
        this.#connections.add(connection);
        connection.on('release', () => this.#onRelease(connection));
        connection.on('close', () => {
          this.#forget(connection);
          this.#dispatch();
          this.#checkClosed();
        });
        if (this.#destroyed) {
          if (!waiter.cancelled) this.#fail(waiter, this.#closingError());
          connection.destroy();
          return;
        }
        // A waiter that gave up meanwhile leaves the connection to the pool.
        if (waiter.cancelled) this.#onRelease(connection);
        else {
          this.#begin(waiter, connection, false);
          // With multiplexing, requests queued behind this one may share the new connection.
          this.#dispatch();
        }
      },
      (error: Error) => {
        this.#connecting--;
        if (!waiter.cancelled) this.#fail(waiter, error);
        this.#dispatch();
        this.#checkClosed();
      },
    );
  }

  /** A request on `connection` ended: keep it idle, give it to the next waiter, or close it. */
  #onRelease(connection: ClientConnection): void {
    if (connection.isIdle) {
      if (this.#closed && this.#waiters.length === 0) {
        void connection.close();
        return;
      }
      if (!this.#idle.includes(connection)) {
        this.#idle.push(connection);
        this.#startIdleTimer(connection);
      }
    }
    this.#dispatch();
  }

  #forget(connection: ClientConnection): void {
    this.#connections.delete(connection);
    this.#take(connection);
    clearTimeout(this.#idleTimers.get(connection));
    this.#idleTimers.delete(connection);
  }

  #checkClosed(): void {
    if (!this.#closed || this.#connections.size > 0 || this.#connecting > 0 || this.#waiters.length > 0) return;
    const resolvers = this.#closeResolvers;
    this.#closeResolvers = [];
    for (const resolve of resolvers) resolve();
  }
}

/** Creates an FcgiClient: `createClient({ address: 'unix:/run/php/php-fpm.sock' })`. */
export function createClient(options: FcgiClientOptions): FcgiClient {
  return new FcgiClient(options);
}
