// One transport connection from a web server: record demultiplexing, request state, keep-conn, management records, backpressure, timeouts.

import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { NodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  HEADER_LENGTH,
  KEEP_CONN,
  MAX_RECORD_TYPE,
  ProtocolStatus,
  RecordParser,
  RecordType,
  Role,
  ValueName,
  ParamsBlock,
  decodeBeginRequest,
  decodePairList,
  encodePairs,
  encodeRecord,
  encodeUnknownType,
  recordTypeName,
  roleName,
  writeEndRequest,
  type RecordSink,
} from '../protocol/index.js';
import { EVERY_REQUEST_PARAMS, Exchange, ExchangeState, type ExchangeHost } from './exchange.js';
import type { InputStream } from './input-stream.js';
import type { ResolvedOptions } from './options.js';
import {
  HAND_OVER_AT,
  MAX_READ_BUFFER_SIZE,
  READ_BUFFER_SIZE,
  fitReadSize,
  ownReadBuffer,
  readIntoOwnBuffers,
  sharedReadBuffer,
  worthHandingOver,
} from './read-buffers.js';
import { RequestTable } from './request-table.js';

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  /** True once the server is shutting down: no new requests. */
  readonly closing: boolean;
  /** Requests in progress on all connections. */
  readonly activeRequests: number;
  requestStarted(exchange: Exchange): void;
  requestFinished(exchange: Exchange): void;
  /** A connection asks to read into a buffer of its own (see maxReadBuffers); false when none is left. */
  claimReadBuffer(): boolean;
  /** The connection no longer holds one. */
  releaseReadBuffer(): void;
  /** PARAMS is complete: hand the request to the application. */
  dispatch(exchange: Exchange): void;
  connectionClosed(connection: Connection): void;
}

/** How long a connection we have ended may wait for the peer to close before it is destroyed. */
export const LINGER_MS = 5_000;
let connectionCounter = 0;

/** The Connection serving a socket, kept on the socket so one set of listener functions serves every socket. */
const kConnection = Symbol('nodefpm.connection');
type ServedSocket = Socket & { [kConnection]: Connection };

function largestReportable(value: number): string {
  return String(Number.isFinite(value) ? value : 0x7fffffff);
}

/**
 * Owns one socket. Records are parsed as they arrive and dispatched by type and request id; each
 * request is an Exchange with its own bounded input streams. Output of every request goes to the
 * same socket, corked while a chunk of input is being processed so that answers produced in the
 * same pass leave in one write.
 */
export class Connection implements RecordSink, ExchangeHost {
  readonly id = ++connectionCounter;
  readonly socket: Socket;
  readonly #host: ConnectionHost;
  readonly #options: ResolvedOptions;
  readonly #log: Logger;
  readonly #parser: RecordParser;
  readonly #requests = new RequestTable<Exchange>();
  /**
   * The highest request id begun here (0: none). Web servers allocate ids from 1 upwards, so a record
   * for an id at or below it most likely follows its END_REQUEST (routine), one above it was never begun.
   */
  #highestBegunId = 0;
  /** Accepted beyond maxConnections: every request is refused with OVERLOADED. */
  readonly #overloaded: boolean;
  /**
   * Queued output at which writers are told to wait: outputHighWaterMark, but never below the socket's
   * own mark, since the socket emits 'drain' only after a write that went over its mark (Node 22's
   * sockets default to 64 KiB, and a listener may ask for any mark).
   */
  readonly #outputLimit: number;
  #ending = false;
  #closed = false;
  #paused = false;
  #outputBacklog = false;
  #paramsPending = false;
  #warnedStray = false;
  /** Set by input and by a request ending; the server's sweep reads and clears it to time idleness. */
  #active = true;
  /** Sweep time since which the connection has had no request and no input (see sweep()). */
  #idleSince = 0;
  /** Sweep time at which our side was ended (the linger starts), or -1. */
  #endedAt = -1;
  /** True while a chunk of input is being processed: writes made meanwhile are flushed when it is done. */
  #inData = false;
  /** Exchanges with output queued for the end of this tick (null when none: most connections never need it). */
  #flushQueue: Exchange[] | null = null;
  /**
   * When the socket reads into reused buffers (read-buffers.ts): the buffer of this connection's own
   * it reads into (counted in maxReadBuffers), or null while it reads into the shared one.
   */
  #ownReadBuffer: Buffer | null = null;
  /** A view of #ownReadBuffer was kept during this read: the next read needs a fresh buffer. */
  #readBufferGiven = false;
  /** A large chunk was copied out of the shared buffer: read into a buffer of our own from now on. */
  #wantsOwnReadBuffer = false;
  /** The size of the next own read buffer, fitted to what the peer sends at once (fitReadSize). */
  #readSize = READ_BUFFER_SIZE;
  /** Bytes of the burst being read: reads so far that filled their buffer (the peer had more to send). */
  #burstBytes = 0;
  /** The socket reads into reused buffers: every chunk it delivers is a view valid only until the next read. */
  readonly #readsReusedBuffers: boolean;

  constructor(accepted: Socket, host: ConnectionHost, overloaded: boolean) {
    // Reads land in reused buffers when the socket allows it (accepted paused), else come as 'data'.
    // Node calls the buffer source with no `this`, so unlike the socket's listeners it is a closure.
    const reading = readIntoOwnBuffers(accepted, () => this.#nextReadBuffer(), Connection.#onSocketRead);
    const socket = reading ?? accepted;
    this.socket = socket;
    this.#readsReusedBuffers = reading !== null;
    this.#host = host;
    this.#options = host.options;
    this.#log = host.log;
    this.#overloaded = overloaded;
    this.#outputLimit = Math.max(this.#options.outputHighWaterMark, socket.writableHighWaterMark);
    // Stream records are taken in parts as views: a body record straddling two socket reads is not copied.
    this.#parser = new RecordParser(this, { streamParts: true });
    // Shared listener functions find their connection on the socket: an idle kept-alive connection then
    // costs no closures and no timer of its own (the server's sweep times idleness for all of them).
    (socket as ServedSocket)[kConnection] = this;
    if (reading === null) {
      socket.on('data', Connection.#onSocketData);
      // A socket accepted paused that could not be moved reads as a stream; start it.
      socket.resume();
    }
    socket.on('drain', Connection.#onSocketDrain);
    socket.on('end', Connection.#onSocketEnd);
    socket.on('error', Connection.#onSocketError);
    socket.on('close', Connection.#onSocketClose);
  }

  static #onSocketData(this: Socket, chunk: Buffer): void {
    (this as ServedSocket)[kConnection].#onData(chunk);
  }

  static #onSocketRead(this: Socket, bytesRead: number, buffer: Buffer): void {
    const connection = (this as ServedSocket)[kConnection];
    connection.#sizeReads(bytesRead, buffer.length);
    connection.#onData(buffer.subarray(0, bytesRead));
  }

  /**
   * Fits the next own read buffer to the peer's bursts, so that what it sends at once is read at once:
   * a read that fills its buffer doubles the size (up to the cap) while the burst outgrows it; one that
   * does not ends the burst, and the size becomes the burst's (see fitReadSize).
   */
  #sizeReads(bytesRead: number, bufferLength: number): void {
    if (bytesRead === bufferLength) {
      const burst = (this.#burstBytes += bytesRead);
      if (burst >= this.#readSize) this.#readSize = Math.min(MAX_READ_BUFFER_SIZE, this.#readSize * 2);
      return;
    }
    this.#readSize = fitReadSize(this.#burstBytes + bytesRead);
    this.#burstBytes = 0;
  }

  /** The buffer for the socket's next read: asked for before the first read and after each. */
  #nextReadBuffer(): Buffer {
    const own = this.#ownReadBuffer;
    if (own !== null) {
      // Kept, the buffer is taken; too small for the peer's bursts, it is replaced (a larger one is kept on).
      if (!this.#readBufferGiven && own.length >= this.#readSize) return own;
      this.#readBufferGiven = false;
      return (this.#ownReadBuffer = ownReadBuffer(this.#readSize));
    }
    if (this.#wantsOwnReadBuffer) {
      this.#wantsOwnReadBuffer = false;
      if (!this.#closed && this.#host.claimReadBuffer()) return (this.#ownReadBuffer = ownReadBuffer(this.#readSize));
    }
    return sharedReadBuffer();
  }

  /**
   * A body chunk of the current read that must outlive it (queued, or taken by a reader). While reads land in
   * a reused buffer, that buffer is handed over to the chunk (a large chunk of our own buffer, or any
   * chunk once it was) or the chunk is copied; a large chunk copied from the shared buffer moves this
   * connection to a buffer of its own, so that its next large chunks are not.
   */
  #keepBodyChunk(view: Buffer): Buffer {
    if (!this.#readsReusedBuffers || this.#readBufferGiven) return view;
    const own = this.#ownReadBuffer;
    if (own !== null) {
      if (worthHandingOver(view.length, own.length)) {
        this.#readBufferGiven = true;
        return view;
      }
    } else if (view.length >= HAND_OVER_AT) {
      this.#wantsOwnReadBuffer = true;
    }
    return Buffer.from(view);
  }

  static #onSocketDrain(this: Socket): void {
    (this as ServedSocket)[kConnection].#onDrain();
  }

  static #onSocketEnd(this: Socket): void {
    (this as ServedSocket)[kConnection].#onPeerEnd();
  }

  static #onSocketError(this: Socket, error: NodeJS.ErrnoException): void {
    (this as ServedSocket)[kConnection].#onError(error);
  }

  static #onSocketClose(this: Socket): void {
    (this as ServedSocket)[kConnection].#onClose();
  }

  static #flushQueued(connection: Connection): void {
    const queue = connection.#flushQueue;
    connection.#flushQueue = null;
    if (queue !== null) for (const exchange of queue) exchange.flushPending();
  }

  /**
   * Called by the server every few hundred milliseconds with performance.now(): closes a connection that
   * had no request and no input for idleTimeout, and destroys one whose peer has not closed within the
   * linger time after we ended our side.
   */
  sweep(now: number): void {
    if (this.#closed) return;
    if (this.#endedAt >= 0) {
      if (now - this.#endedAt >= LINGER_MS) this.socket.destroy();
      return;
    }
    if (this.#active || this.#requests.size > 0) {
      this.#active = false;
      this.#idleSince = now;
      if (this.#requests.size > 0 && this.#options.bodyTimeout > 0) this.#sweepBodies(now);
      return;
    }
    const timeout = this.#options.idleTimeout;
    if (timeout > 0 && now - this.#idleSince >= timeout) {
      this.#log.debug(`closing connection idle for idleTimeout (${timeout} ms)`, {
        connection: this.id,
        code: 'NODEFPM_IDLE_TIMEOUT',
        midRecord: this.#parser.midRecord || undefined,
      });
      this.#end('idle timeout');
    }
  }

  /**
   * Fails the bodies the web server has stopped sending (bodyTimeout). A body counts as stalled only
   * while it is awaited and nothing here holds it back: not while this connection is paused for
   * backpressure (then the silence is ours), and not once it has ended or failed.
   */
  #sweepBodies(now: number): void {
    const timeout = this.#options.bodyTimeout;
    for (const exchange of this.#requests.values()) {
      if (exchange.state !== ExchangeState.Running) continue;
      const stdin = exchange.stdin;
      const data = exchange.data;
      const stdinAwaited = !stdin.ended && stdin.error === null;
      const awaited = stdinAwaited || (data !== null && !data.ended && data.error === null);
      if (!awaited || this.#paused || exchange.bodyInputSeen || exchange.bodyIdleSince < 0) {
        exchange.bodyInputSeen = false;
        exchange.bodyIdleSince = now;
        continue;
      }
      if (now - exchange.bodyIdleSince < timeout) continue;
      const stream = stdinAwaited ? stdin : data!;
      const name = stdinAwaited ? 'FCGI_STDIN' : 'FCGI_DATA';
      const error = new NodefpmError(
        'NODEFPM_BODY_TIMEOUT',
        `request body stalled: no ${name} record for bodyTimeout (${timeout} ms) after ${stream.bytesReceived} bytes`,
      );
      this.#log.warn(`${error.message}; answering 408`, { connection: this.id, request: exchange.id, code: error.code, uri: exchange.param('REQUEST_URI') });
      // As for a body over maxBodyBytes: the reader's next read rejects (a handler that lets it
      // propagate answers 408), and whatever still comes for this body is read and dropped.
      stream.fail(error);
      if (stream === stdin) exchange.stdinComplete();
      this.#updatePause();
    }
  }

  /** Requests in progress on this connection. */
  get requestCount(): number {
    return this.#requests.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * True once a request has begun on this connection. A process manager draining a worker closes used
   * idle connections at once but lets a fresh one bring the request its peer has sent or is sending.
   */
  get used(): boolean {
    return this.#highestBegunId > 0;
  }

  /** Stops taking requests; closes the connection as soon as none is in progress. */
  shutdown(): void {
    if (this.#requests.size === 0) this.#end('server shutting down');
    else this.#ending = true;
  }

  /** Aborts every request with `reason` and closes the socket now. */
  destroy(reason: NodefpmError): void {
    for (const exchange of this.#requests.values()) {
      exchange.abort(reason);
      exchange.end(1);
    }
    this.#parser.stop();
    this.socket.destroy();
  }

  // ---- input ----

  #onData(chunk: Buffer): void {
    const socket = this.socket;
    this.#active = true;
    this.#inData = true;
    socket.cork();
    const error = this.#parser.push(chunk);
    // Output written while the chunk was processed (by handlers that answered synchronously) goes out
    // now, in the same corked batch, instead of in a tick of its own.
    this.#inData = false;
    if (this.#flushQueue !== null) Connection.#flushQueued(this);
    socket.uncork();
    if (error !== undefined) {
      this.#protocolFailure(error);
      return;
    }
    if (this.#paramsPending) this.#armParamsTimers();
  }

  onRecord(type: number, requestId: number, content: Buffer): void {
    if (requestId === 0) {
      this.#management(type, content);
      return;
    }
    if (type === RecordType.BeginRequest) {
      this.#begin(requestId, content);
      return;
    }
    const exchange = this.#requests.get(requestId);
    if (exchange === undefined) {
      this.#stray(type, requestId);
      return;
    }
    switch (type) {
      case RecordType.Params:
        this.#params(exchange, content);
        return;
      case RecordType.Stdin:
        this.#input(exchange, exchange.stdin, content, 'STDIN');
        return;
      case RecordType.Data:
        if (exchange.data === null) this.#unexpected(exchange, 'FCGI_DATA for a request whose role has no DATA stream');
        else this.#input(exchange, exchange.data, content, 'DATA');
        return;
      case RecordType.AbortRequest:
        this.#abortRequest(exchange);
        return;
      case RecordType.GetValues:
        // A management record sent with a request id: answer it anyway, as management.
        this.#management(type, content);
        return;
      default:
        if (type === 0 || type > MAX_RECORD_TYPE) this.writeOut(encodeUnknownType(type));
        else this.#unexpected(exchange, `${recordTypeName(type)} record travels from application to web server, not to us`);
    }
  }

  #management(type: number, content: Buffer): void {
    if (type === RecordType.GetValues) {
      this.writeOut(encodeRecord(RecordType.GetValuesResult, 0, encodePairs(this.#getValues(content))));
    } else {
      this.#log.debug('answered FCGI_UNKNOWN_TYPE', { connection: this.id, type });
      this.writeOut(encodeUnknownType(type));
    }
    // A peer that sends management records without reading the answers must not grow our queue forever.
    if (this.socket.writableLength >= this.#outputLimit) {
      this.#outputBacklog = true;
      this.#updatePause();
    }
  }

  #getValues(content: Buffer): Array<[string, string]> {
    let names: Array<[string, string]>;
    try {
      names = decodePairList(content);
    } catch (error) {
      this.#log.warn('malformed FCGI_GET_VALUES; answering with no values', { connection: this.id, error: (error as Error).message });
      return [];
    }
    const answers: Array<[string, string]> = [];
    for (const [name] of names) {
      if (name === ValueName.MaxConns) answers.push([name, largestReportable(this.#options.maxConnections)]);
      else if (name === ValueName.MaxReqs) answers.push([name, largestReportable(this.#options.maxRequests)]);
      else if (name === ValueName.MpxsConns) answers.push([name, this.#options.multiplex ? '1' : '0']);
      // Names we do not know are left out (section 4.1).
    }
    return answers;
  }

  #begin(requestId: number, content: Buffer): void {
    let role: number;
    let keepConn: boolean;
    try {
      const body = decodeBeginRequest(content);
      role = body.role;
      keepConn = (body.flags & KEEP_CONN) !== 0;
    } catch (error) {
      this.#protocolFailure(error as NodefpmError);
      return;
    }
    if (this.#requests.has(requestId)) {
      this.#protocolFailure(
        new NodefpmError('NODEFPM_PROTOCOL_DUPLICATE_ID', `BEGIN_REQUEST for request ${requestId}, which is already active`),
      );
      return;
    }
    if (requestId > this.#highestBegunId) this.#highestBegunId = requestId;
    const options = this.#options;
    if (this.#ending || this.#closed) {
      this.#refuse(requestId, false, ProtocolStatus.Overloaded, 'the connection is closing');
    } else if (this.#overloaded) {
      this.#refuse(requestId, false, ProtocolStatus.Overloaded, `maxConnections (${options.maxConnections}) reached`);
    } else if (this.#host.closing) {
      this.#refuse(requestId, false, ProtocolStatus.Overloaded, 'the server is shutting down');
    } else if (!options.roles.has(role)) {
      this.#refuse(requestId, keepConn, ProtocolStatus.UnknownRole, `role ${roleName(role)} is not served`);
    } else if (!options.multiplex && this.#requests.size > 0) {
      this.#refuse(requestId, keepConn, ProtocolStatus.CantMpxConn, 'a request is already in progress and multiplexing is off');
    } else if (this.#requests.size >= options.maxRequestsPerConnection) {
      this.#refuse(requestId, keepConn, ProtocolStatus.Overloaded, `maxRequestsPerConnection (${options.maxRequestsPerConnection}) reached`);
    } else if (this.#host.activeRequests >= options.maxRequests) {
      this.#refuse(requestId, keepConn, ProtocolStatus.Overloaded, `maxRequests (${options.maxRequests}) reached`);
    } else {
      const exchange = new Exchange(this, requestId, role, keepConn, options.inputHighWaterMark, role === Role.Filter);
      this.#requests.add(exchange);
      this.#paramsPending = true;
      this.#host.requestStarted(exchange);
    }
  }

  #refuse(requestId: number, keepConn: boolean, status: ProtocolStatus, reason: string): void {
    const level = status === ProtocolStatus.UnknownRole ? 'info' : 'warn';
    this.#log[level](`refused request: ${reason}`, { connection: this.id, request: requestId, protocolStatus: status });
    const record = Buffer.allocUnsafe(HEADER_LENGTH + 8);
    writeEndRequest(record, 0, requestId, 0, status);
    this.writeOut(record);
    if (!keepConn || this.#overloaded) this.#endWhenIdle('refused request without FCGI_KEEP_CONN');
  }

  #params(exchange: Exchange, content: Buffer): void {
    if (exchange.state !== ExchangeState.ReceivingParams) {
      this.#unexpected(exchange, 'PARAMS after the PARAMS stream ended');
      return;
    }
    if (content.length > 0) {
      // Params are kept until the request ends and are small: copied out of a reused read buffer, always.
      const total = exchange.addParams(this.#readsReusedBuffers ? Buffer.from(content) : content);
      if (total > this.#options.maxParamsBytes) {
        this.#limitHit(exchange, 431, 'NODEFPM_PARAMS_TOO_LARGE', `params exceed maxParamsBytes (${this.#options.maxParamsBytes})`);
      }
      return;
    }
    this.#clearTimer(exchange);
    let block: ParamsBlock;
    try {
      block = new ParamsBlock(exchange.takeParamsBytes(), EVERY_REQUEST_PARAMS);
    } catch (error) {
      this.#log.error('malformed PARAMS stream; answering 400', { connection: this.id, request: exchange.id, error: (error as Error).message });
      exchange.respondWithStatus(400, 'malformed FastCGI params');
      return;
    }
    exchange.setParams(block);
    if (exchange.declaredLength > this.#options.maxBodyBytes) {
      this.#limitHit(
        exchange,
        413,
        'NODEFPM_BODY_TOO_LARGE',
        `CONTENT_LENGTH ${exchange.declaredLength} exceeds maxBodyBytes (${this.#options.maxBodyBytes})`,
      );
      return;
    }
    exchange.state = ExchangeState.Running;
    try {
      this.#host.dispatch(exchange);
    } catch (error) {
      this.#log.error('request dispatch failed', { connection: this.id, request: exchange.id, error });
      exchange.respondWithStatus(500, 'internal error');
    }
  }

  #input(exchange: Exchange, stream: InputStream, content: Buffer, name: string): void {
    if (exchange.state !== ExchangeState.Running) {
      // Sections 6.1-6.2: PARAMS comes whole before STDIN. A peer that interleaves them has lost track.
      this.#log.error(`${name} before the end of PARAMS; answering 400`, { connection: this.id, request: exchange.id });
      exchange.respondWithStatus(400, `${name} arrived before the end of PARAMS`);
      return;
    }
    if (content.length === 0) {
      if (stream.error === null) this.#inputEnded(exchange, stream, name);
      // A Filter's output waits for this (section 6.4), even when the stream failed on the way.
      if (stream === exchange.stdin) exchange.stdinComplete();
      return;
    }
    if (stream.error !== null) return;
    exchange.bodyInputSeen = true;
    const received = stream.bytesReceived + content.length;
    if (received > this.#options.maxBodyBytes) {
      const error = new NodefpmError('NODEFPM_BODY_TOO_LARGE', `request body exceeds maxBodyBytes (${this.#options.maxBodyBytes})`);
      this.#log.warn(error.message, { connection: this.id, request: exchange.id, code: error.code, uri: exchange.param('REQUEST_URI') });
      stream.fail(error);
      this.#updatePause();
      return;
    }
    if (stream === exchange.stdin) {
      const expected = exchange.declaredLength;
      if (expected >= 0 && received > expected) {
        this.#bodyLengthMismatch(exchange, stream, `STDIN carried more than CONTENT_LENGTH (${expected}) bytes`);
        return;
      }
    } else {
      const expected = exchange.declaredDataLength;
      if (expected >= 0 && received > expected) {
        this.#dataLengthMismatch(exchange, stream, `DATA carried more than FCGI_DATA_LENGTH (${expected}) bytes`);
        return;
      }
    }
    if (!stream.push(stream.keepsChunks ? this.#keepBodyChunk(content) : content)) this.#updatePause();
  }

  #inputEnded(exchange: Exchange, stream: InputStream, name: string): void {
    if (stream === exchange.stdin) {
      const expected = exchange.declaredLength;
      if (expected >= 0 && stream.bytesReceived !== expected) {
        this.#bodyLengthMismatch(exchange, stream, `STDIN ended after ${stream.bytesReceived} of CONTENT_LENGTH ${expected} bytes`);
        return;
      }
    } else {
      const expected = exchange.declaredDataLength;
      if (expected >= 0 && stream.bytesReceived !== expected) {
        this.#dataLengthMismatch(exchange, stream, `DATA ended after ${stream.bytesReceived} of FCGI_DATA_LENGTH ${expected} bytes`);
        return;
      }
    }
    this.#log.debug(`${name} complete`, { connection: this.id, request: exchange.id, bytes: stream.bytesReceived });
    stream.end();
  }

  #bodyLengthMismatch(exchange: Exchange, stream: InputStream, message: string): void {
    const error = new NodefpmError('NODEFPM_BODY_INCOMPLETE', `${message}: the client's upload did not arrive whole`);
    this.#log.warn(error.message, { connection: this.id, request: exchange.id, code: error.code });
    stream.fail(error);
    this.#updatePause();
  }

  /** Section 6.4: a Filter compares DATA's byte count with FCGI_DATA_LENGTH; a mismatch fails req.data reads. */
  #dataLengthMismatch(exchange: Exchange, stream: InputStream, message: string): void {
    const error = new NodefpmError('NODEFPM_DATA_INCOMPLETE', `${message}: the file changed or did not arrive whole`);
    this.#log.warn(error.message, { connection: this.id, request: exchange.id, code: error.code });
    stream.fail(error);
    this.#updatePause();
  }

  #abortRequest(exchange: Exchange): void {
    // A repeated ABORT_REQUEST changes nothing (it must not push the abortTimeout deadline back).
    if (exchange.aborted) return;
    this.#log.debug('FCGI_ABORT_REQUEST', { connection: this.id, request: exchange.id });
    const reason = new NodefpmError('NODEFPM_REQUEST_ABORTED', `the web server aborted request ${exchange.id}`);
    if (exchange.state === ExchangeState.ReceivingParams) {
      // No handler has it yet: answer for it.
      exchange.abort(reason);
      exchange.end(0);
      return;
    }
    exchange.abort(reason);
    this.#updatePause();
    if (this.#options.abortTimeout > 0 && !exchange.ended) {
      this.#clearTimer(exchange);
      exchange.timer = setTimeout(() => {
        this.#log.warn(`handler did not finish within abortTimeout (${this.#options.abortTimeout} ms) of FCGI_ABORT_REQUEST; ending the request without it`, {
          connection: this.id,
          request: exchange.id,
        });
        exchange.end(0);
      }, this.#options.abortTimeout);
    }
  }

  #limitHit(exchange: Exchange, status: number, code: 'NODEFPM_PARAMS_TOO_LARGE' | 'NODEFPM_BODY_TOO_LARGE' | 'NODEFPM_PARAMS_TIMEOUT', reason: string): void {
    this.#log.warn(`${reason}; answering ${status}`, { connection: this.id, request: exchange.id, code });
    this.#clearTimer(exchange);
    exchange.respondWithStatus(status, reason);
  }

  #armParamsTimers(): void {
    this.#paramsPending = false;
    const timeout = this.#options.paramsTimeout;
    if (timeout === 0) return;
    for (const exchange of this.#requests.values()) {
      if (exchange.state !== ExchangeState.ReceivingParams || exchange.timer !== null) continue;
      exchange.timer = setTimeout(() => {
        exchange.timer = null;
        this.#limitHit(exchange, 408, 'NODEFPM_PARAMS_TIMEOUT', `PARAMS not complete within paramsTimeout (${timeout} ms)`);
      }, timeout);
    }
  }

  #clearTimer(exchange: Exchange): void {
    if (exchange.timer !== null) {
      clearTimeout(exchange.timer);
      exchange.timer = null;
    }
  }

  #stray(type: number, requestId: number): void {
    // Section 3.3: records for an inactive request id are ignored. After END_REQUEST that is routine
    // (a web server may still be sending a body we stopped reading); for an id never begun it means
    // the peer is confused, which is worth one warning per connection.
    if (requestId <= this.#highestBegunId) return;
    if (!this.#warnedStray) {
      this.#warnedStray = true;
      this.#log.warn(`ignored ${recordTypeName(type)} for request ${requestId}, which has no BEGIN_REQUEST`, { connection: this.id });
    }
  }

  #unexpected(exchange: Exchange, what: string): void {
    this.#log.warn(`ignored record: ${what}`, { connection: this.id, request: exchange.id });
  }

  #protocolFailure(error: NodefpmError): void {
    this.#log.error(`protocol error, closing the connection: ${error.message}`, { connection: this.id, code: error.code });
    this.#parser.stop();
    this.socket.destroy();
  }

  // ---- output (ExchangeHost) ----

  get outputBlocked(): boolean {
    return this.socket.writableLength >= this.#outputLimit;
  }

  writeOut(buffer: Buffer): void {
    if (!this.#closed) this.socket.write(buffer);
  }

  writeOutBatch(buffers: Buffer[]): void {
    if (this.#closed) return;
    const socket = this.socket;
    socket.cork();
    for (const buffer of buffers) socket.write(buffer);
    socket.uncork();
  }

  scheduleFlush(exchange: Exchange): void {
    if (this.#flushQueue === null) {
      this.#flushQueue = [exchange];
      // Inside a chunk's processing the flush comes when the chunk is done; otherwise at the end of the tick.
      if (!this.#inData) process.nextTick(Connection.#flushQueued, this);
    } else {
      this.#flushQueue.push(exchange);
    }
  }

  exchangeEnded(exchange: Exchange): void {
    this.#active = true;
    this.#clearTimer(exchange);
    if (!this.#requests.remove(exchange)) return;
    this.#host.requestFinished(exchange);
    // Whatever input the handler left unread is not wanted now.
    exchange.stdin.discard();
    exchange.data?.discard();
    if (!exchange.keepConn) this.#endWhenIdle('request without FCGI_KEEP_CONN ended');
    else if (this.#ending && this.#requests.size === 0) this.#end('last request on a closing connection ended');
    else if (this.#paused) this.#updatePause();
  }

  inputHasRoom(): void {
    if (this.#paused) this.#updatePause();
  }

  // ---- lifetime ----

  #updatePause(): void {
    let stop = this.#outputBacklog;
    if (!stop) {
      for (const exchange of this.#requests.values()) {
        if (exchange.stdin.full || exchange.data?.full === true) {
          stop = true;
          break;
        }
      }
    }
    if (stop && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    } else if (!stop && this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  #onDrain(): void {
    if (this.#outputBacklog) {
      this.#outputBacklog = false;
      this.#updatePause();
    }
    for (const exchange of this.#requests.values()) exchange.drained();
  }

  #endWhenIdle(why: string): void {
    this.#ending = true;
    if (this.#requests.size === 0) this.#end(why);
  }

  /** Half-closes our side once queued output is out; input keeps being read (and ignored) until the peer closes. */
  #end(why: string): void {
    if (this.#closed || this.socket.writableEnded) return;
    this.#ending = true;
    this.#log.debug(`closing connection: ${why}`, { connection: this.id });
    this.socket.end();
    // Keep reading so a peer still sending gets no reset; the sweep gives up after the linger time.
    if (this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
    this.#endedAt = performance.now();
  }

  #onPeerEnd(): void {
    if (this.#parser.midRecord && !this.socket.writableEnded) {
      this.#log.error('protocol error: the web server closed the connection in the middle of a record; the truncated record is dropped', {
        connection: this.id,
        code: 'NODEFPM_PROTOCOL_RECORD',
      });
    }
    // FastCGI has no half-close: a web server that closes its side has dropped the connection (nginx
    // does so when its client goes away; section 5.4 makes closing the abort). Every request in
    // progress is aborted, so handlers see req.signal fire; output already queued still goes out, then
    // our side closes and 'close' forgets what is left, whether or not its handler has finished.
    const lost = new NodefpmError('NODEFPM_CONNECTION_LOST', 'the web server closed the connection before the request ended');
    for (const exchange of this.#requests.values()) {
      exchange.abort(lost);
      if (exchange.state === ExchangeState.ReceivingParams) exchange.end(0);
    }
    this.#end('the web server closed its side');
  }

  #onError(error: NodeJS.ErrnoException): void {
    // Resets and broken pipes are how web servers drop connections; 'close' follows and aborts requests.
    this.#log.debug('socket error', { connection: this.id, error: error.code ?? error.message });
  }

  #onClose(): void {
    this.#closed = true;
    this.#parser.stop();
    if (this.#ownReadBuffer !== null) {
      this.#ownReadBuffer = null;
      this.#host.releaseReadBuffer();
    }
    const lost = new NodefpmError('NODEFPM_CONNECTION_LOST', 'the connection to the web server closed before the request ended');
    for (const exchange of this.#requests.values()) {
      this.#clearTimer(exchange);
      exchange.abort(lost);
      exchange.detach();
      this.#host.requestFinished(exchange);
    }
    this.#requests.clear();
    this.#flushQueue = null;
    this.#host.connectionClosed(this);
  }
}

