// One FastCGI request as the server sees it: its params and input streams in, STDOUT/STDERR and END_REQUEST out.

import { Buffer } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import { NodefpmError } from '../errors.js';
import {
  HEADER_LENGTH,
  MAX_CONTENT_LENGTH,
  ProtocolStatus,
  RecordType,
  Role,
  paddingFor,
  writeEndRequest,
  writeHeader,
  writePadding,
  ParamNames,
  type ParamsBlock,
  type Params,
} from '../protocol/index.js';
import { InputStream, type InputSource } from './input-stream.js';

/** What an exchange needs from its connection. */
export interface ExchangeHost extends InputSource {
  /** True when the socket's queue is over the output high-water mark. */
  readonly outputBlocked: boolean;
  /** Writes bytes to the socket now. */
  writeOut(buffer: Buffer): void;
  /** Writes several buffers in one corked batch. */
  writeOutBatch(buffers: Buffer[]): void;
  /** Asks for flushPending() on this exchange before the current tick ends. */
  scheduleFlush(exchange: Exchange): void;
  /** The exchange sent END_REQUEST (or can no longer): forget it. */
  exchangeEnded(exchange: Exchange): void;
}

/**
 * Watches a request's output as the handler produces it, for a layer that must know without taking
 * part (a process manager's access log and request watchdog). null, the default, costs one check per call.
 */
export interface ExchangeOutputObserver {
  /** The CGI head was queued (again, when a handler replaces a head that has not gone out yet). */
  headQueued(head: string): void;
  /** The handler produced output (head, body, FCGI_STDERR or the end): bytes may reach the socket from now on. Called once. */
  outputBegan(): void;
}

/** Told about events the layer above must react to. */
export interface ExchangeListener {
  /** Output may be written again after write() returned false. */
  exchangeDrained(): void;
  /** The request was aborted or its connection lost (called once). */
  exchangeAborted(reason: NodefpmError): void;
}

export const ExchangeState = {
  /** BEGIN_REQUEST seen, PARAMS still arriving. */
  ReceivingParams: 0,
  /** PARAMS complete, the handler has it. */
  Running: 1,
  /** END_REQUEST sent, or the connection is gone. */
  Ended: 2,
} as const;
export type ExchangeState = (typeof ExchangeState)[keyof typeof ExchangeState];

/** Output is written at once when this much is queued; smaller writes wait for the end of the tick. */
const FLUSH_BYTES = 16 * 1024;
/** A Filter's output held until the end of STDIN: past this, write() asks the writer to wait for the release. */
const HELD_OUTPUT_MARK = 64 * 1024;

/** A length param (CONTENT_LENGTH, FCGI_DATA_LENGTH) as a number; -1 when absent, empty or not a length. */
function declaredLengthOf(value: string | undefined): number {
  if (value === undefined || value === '') return -1;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : -1;
}

/**
 * Params read for (nearly) every request, found while the PARAMS stream is validated rather than by a
 * walk each: the body's length (here), the method (every Request, every adapter's status line), the URI.
 */
export const EVERY_REQUEST_PARAMS = new ParamNames(['CONTENT_LENGTH', 'REQUEST_METHOD', 'REQUEST_URI', 'FCGI_DATA_LENGTH']);

const EMPTY_PARAMS: Params = Object.freeze(Object.create(null) as Params);

/**
 * A request: created on BEGIN_REQUEST, running once PARAMS is complete, ended when END_REQUEST goes out.
 *
 * Output written in one tick is coalesced: the CGI head and small body writes are copied into one
 * buffer holding as few STDOUT records as possible, and end() adds the terminating records and
 * END_REQUEST to that same buffer, so a small response is a single socket write. Large chunks are
 * not copied: they go out as record headers plus views of the caller's bytes.
 */
export class Exchange {
  readonly id: number;
  readonly role: number;
  /** FCGI_KEEP_CONN: the web server keeps the connection open after this request. */
  readonly keepConn: boolean;
  readonly stdin: InputStream;
  /** The Filter role's FCGI_DATA stream; null for other roles. */
  readonly data: InputStream | null;
  /** CONTENT_LENGTH as a number once PARAMS is complete; -1 when absent, empty or not a length. */
  declaredLength = -1;
  /** The Filter role's FCGI_DATA_LENGTH as a number once PARAMS is complete; -1 when absent or not a length. */
  declaredDataLength = -1;
  /**
   * Filter role: unread STDIN bytes kept for the handler when its output starts before the end of
   * STDIN (that output waits for the end, section 6.4); beyond it the rest of STDIN is dropped and reads
   * fail with NODEFPM_FILTER_INPUT_DROPPED. createServer sets the handlers' bodyLimit here (src/http/roles.ts).
   */
  unreadStdinLimit: number;
  state: ExchangeState = ExchangeState.ReceivingParams;
  /** When BEGIN_REQUEST arrived (performance.now()). */
  readonly startedAt: number;
  /** Pending timer for paramsTimeout or abortTimeout, owned by the connection. */
  timer: NodeJS.Timeout | null = null;
  /** Body input arrived since the connection's last sweep (set by the connection, cleared by its sweep). */
  bodyInputSeen = false;
  /** Sweep time since which the body has been awaited with no input; -1 until a sweep has looked. */
  bodyIdleSince = -1;
  /** The layer above (the native Response, an adapter) that hears about drain and abort. */
  listener: ExchangeListener | null = null;
  /** Watches output for a process manager (see ExchangeOutputObserver); set before dispatch. */
  outputObserver: ExchangeOutputObserver | null = null;

  readonly #host: ExchangeHost;
  #paramsBlock: ParamsBlock | null = null;
  #paramsParts: Buffer[] = [];
  #paramsBytes = 0;
  #abortReason: NodefpmError | null = null;
  #controller: AbortController | null = null;
  #head: string | null = null;
  #out: Array<string | Uint8Array> = [];
  #outBytes = 0;
  #flushQueued = false;
  /** Set by endWith() while it queues what end() sends at once: no flush is scheduled for those writes. */
  #endComing = false;
  #stdoutBytes = 0;
  #stderrUsed = false;
  #needDrain = false;
  /** outputObserver.outputBegan() was called. */
  #outputBegan = false;
  /**
   * Filter role (section 6.4: STDIN is read to its end before output starts): true until the web server
   * has sent all of STDIN. Meanwhile output is queued, not sent; end() is remembered in #heldEnd.
   */
  #awaitingStdin: boolean;
  #heldEnd: number | null = null;
  #heldStderr: Uint8Array[] = [];
  #heldStderrBytes = 0;

  constructor(host: ExchangeHost, id: number, role: number, keepConn: boolean, inputHighWaterMark: number, withData: boolean) {
    this.#host = host;
    this.id = id;
    this.role = role;
    this.keepConn = keepConn;
    this.stdin = new InputStream(host, inputHighWaterMark);
    this.data = withData ? new InputStream(host, inputHighWaterMark) : null;
    this.unreadStdinLimit = inputHighWaterMark;
    this.#awaitingStdin = role === Role.Filter;
    // An Authorizer has no body (section 6.3), and Apache's mod_authnz_fcgi sends no FCGI_STDIN at all:
    // the stream ends now, so no reader in any layer waits for it (STDIN sent anyway is ignored).
    if (role === Role.Authorizer) this.stdin.end();
    this.startedAt = performance.now();
  }

  // ---- input, driven by the connection ----

  /** Adds a PARAMS record's content; returns the total params bytes so far. */
  addParams(content: Buffer): number {
    this.#paramsParts.push(content);
    this.#paramsBytes += content.length;
    return this.#paramsBytes;
  }

  /** The whole PARAMS stream, once its empty record arrived. */
  takeParamsBytes(): Buffer {
    const parts = this.#paramsParts;
    this.#paramsParts = [];
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#paramsBytes);
  }

  /** Installs the complete (validated) PARAMS stream. */
  setParams(block: ParamsBlock): void {
    this.#paramsBlock = block;
    this.declaredLength = declaredLengthOf(block.get('CONTENT_LENGTH'));
    if (this.data !== null) this.declaredDataLength = declaredLengthOf(block.get('FCGI_DATA_LENGTH'));
  }

  /** Every param, decoded on first use; empty until PARAMS is complete. */
  get params(): Params {
    return this.#paramsBlock === null ? EMPTY_PARAMS : this.#paramsBlock.toObject();
  }

  /** One param's value, found without decoding the others. */
  param(name: string): string | undefined {
    return this.#paramsBlock?.get(name);
  }

  /** The connection carrying the request (a process manager reads its socket to answer for a blocked worker). */
  get host(): ExchangeHost {
    return this.#host;
  }

  /** The PARAMS stream as received (null until complete), for a layer that reads every pair in one pass of its own. */
  get paramsBlock(): ParamsBlock | null {
    return this.#paramsBlock;
  }

  // ---- abort ----

  /** Why the request was aborted, or null. */
  get abortReason(): NodefpmError | null {
    return this.#abortReason;
  }

  get aborted(): boolean {
    return this.#abortReason !== null;
  }

  /** Aborted when the web server aborts the request or drops the connection. Created on first use. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#abortReason !== null) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /**
   * Marks the request aborted: the signal fires, input streams fail with `reason`, queued and later
   * output is dropped. The connection decides when END_REQUEST goes out.
   */
  abort(reason: NodefpmError): void {
    if (this.#abortReason !== null || this.state === ExchangeState.Ended) return;
    this.#abortReason = reason;
    this.#head = null;
    this.#out = [];
    this.#outBytes = 0;
    const heldEnd = this.#heldEnd;
    this.#dropHeld();
    this.stdin.fail(reason);
    this.data?.fail(reason);
    this.#controller?.abort(reason);
    this.listener?.exchangeAborted(reason);
    // A Filter handler that had ended was only waiting for the end of STDIN, which will not come now.
    // On a lost connection nothing can be sent, and the connection forgets the request itself.
    if (heldEnd !== null && reason.code !== 'NODEFPM_CONNECTION_LOST') this.end(heldEnd);
  }

  // ---- the Filter role's output hold ----

  /** True while output waits for the end of STDIN (Filter role, section 6.4). */
  get awaitingStdin(): boolean {
    return this.#awaitingStdin;
  }

  /**
   * The web server has sent all of STDIN (its empty record arrived, whether or not the stream failed on
   * the way): a Filter's held output goes out now, and a held end() ends the request.
   */
  stdinComplete(): void {
    if (!this.#awaitingStdin) return;
    this.#releaseHeld();
    if (this.#needDrain && !this.#host.outputBlocked && this.state !== ExchangeState.Ended) this.drained();
  }

  /** Sends what was held (STDOUT first, then STDERR) and ends the request if end() was called meanwhile. */
  #releaseHeld(): void {
    const stderr = this.#heldStderr;
    const heldEnd = this.#heldEnd;
    this.#dropHeld();
    if (this.state === ExchangeState.Ended || this.#abortReason !== null) return;
    if (stderr.length > 0) {
      this.flushPending();
      this.#stderrUsed = true;
      this.#writeRecords(RecordType.Stderr, stderr);
    }
    // end() sends queued output with the terminators in one write; otherwise send it now.
    if (heldEnd !== null) this.end(heldEnd);
    else this.flushPending();
  }

  #dropHeld(): void {
    this.#awaitingStdin = false;
    this.#heldEnd = null;
    this.#heldStderr = [];
    this.#heldStderrBytes = 0;
  }

  /**
   * Output arrived before the end of STDIN: it stays queued. STDIN must keep arriving so that its end
   * can (a handler that writes first may never read it), so up to unreadStdinLimit unread bytes are
   * kept for the handler without backpressure. Returns what write() returns.
   */
  #hold(): boolean {
    this.stdin.keepUnread(
      this.unreadStdinLimit,
      () =>
        new NodefpmError(
          'NODEFPM_FILTER_INPUT_DROPPED',
          `the response started before FCGI_STDIN was read to its end, and more than ${this.unreadStdinLimit} bytes were left unread while it waited`,
        ),
    );
    if (this.#outBytes + this.#heldStderrBytes >= HELD_OUTPUT_MARK) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  // ---- output ----

  get ended(): boolean {
    return this.state === ExchangeState.Ended;
  }

  /** Body and head bytes handed to write() and writeHead() so far. */
  get stdoutBytes(): number {
    return this.#stdoutBytes;
  }

  /**
   * Queues the CGI head (written as Latin-1, as HTTP header bytes are). It goes out before any body
   * bytes, in the same record when they fit.
   */
  writeHead(head: string): boolean {
    const observer = this.outputObserver;
    if (observer !== null) {
      observer.headQueued(head);
      this.#noteOutput();
    }
    if (this.#abortReason !== null || this.state === ExchangeState.Ended) return true;
    // A head still queued is replaced: its bytes must leave the count, or the STDOUT record's length would lie.
    if (this.#head !== null) this.#outBytes -= this.#head.length;
    this.#head = head;
    this.#outBytes += head.length;
    this.#stdoutBytes += head.length;
    return this.#afterWrite();
  }

  /** Queues STDOUT bytes (strings as UTF-8). Returns false when the caller should wait for exchangeDrained(). */
  write(chunk: string | Uint8Array): boolean {
    if (this.outputObserver !== null) this.#noteOutput();
    if (this.#abortReason !== null || this.state === ExchangeState.Ended) return true;
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (length === 0) return !this.#host.outputBlocked;
    this.#out.push(chunk);
    this.#outBytes += length;
    this.#stdoutBytes += length;
    return this.#afterWrite();
  }

  /** Writes to FCGI_STDERR, which web servers put in their error log. Queued STDOUT goes first. */
  writeStderr(chunk: string | Uint8Array): boolean {
    if (this.outputObserver !== null) this.#noteOutput();
    if (this.#abortReason !== null || this.state === ExchangeState.Ended) return true;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (bytes.length === 0) return !this.#host.outputBlocked;
    if (this.#awaitingStdin) {
      this.#heldStderr.push(bytes);
      this.#heldStderrBytes += bytes.length;
      return this.#hold();
    }
    this.flushPending();
    this.#stderrUsed = true;
    this.#writeRecords(RecordType.Stderr, [bytes]);
    return this.#checkBlocked();
  }

  /**
   * Ends the request: queued output, the empty STDOUT (and STDERR, if used) records and END_REQUEST
   * with `appStatus` go out together. After an abort only END_REQUEST is sent. Later calls do nothing.
   */
  end(appStatus = 0): void {
    if (this.outputObserver !== null) this.#noteOutput();
    if (this.state === ExchangeState.Ended) return;
    if (this.#awaitingStdin && this.#abortReason === null) {
      // Section 6.4: nothing leaves before the end of STDIN. The handler is done, so what it has not
      // read is not wanted: dropping it lets that end arrive without holding the bytes.
      this.#heldEnd = appStatus;
      this.stdin.discard();
      return;
    }
    this.state = ExchangeState.Ended;
    // After an abort the queue is empty, so only the terminators and END_REQUEST go out; on a lost
    // connection nothing can.
    if (this.#abortReason?.code !== 'NODEFPM_CONNECTION_LOST') {
      this.#flush(true, appStatus, ProtocolStatus.RequestComplete);
    }
    this.#host.exchangeEnded(this);
  }

  /**
   * Queues a last head (unless null) and chunk (unless null), then ends with `appStatus`: writeHead(),
   * write() and end() in turn, minus the flush those writes would schedule for the end of the tick, since
   * end() sends everything queued at once. A response known whole leaves in one write with no tick queued.
   */
  endWith(head: string | null, chunk: string | Uint8Array | null, appStatus = 0): void {
    this.#endComing = true;
    if (head !== null) this.writeHead(head);
    if (chunk !== null) this.write(chunk);
    this.#endComing = false;
    this.end(appStatus);
  }

  /** Ends the request with a protocol-level refusal (CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE): END_REQUEST only. */
  reject(protocolStatus: ProtocolStatus): void {
    if (this.state === ExchangeState.Ended) return;
    this.state = ExchangeState.Ended;
    const record = Buffer.allocUnsafe(HEADER_LENGTH + 8);
    writeEndRequest(record, 0, this.id, 0, protocolStatus);
    this.#host.writeOut(record);
    this.#host.exchangeEnded(this);
  }

  /** Marks the request ended without output: its connection is gone. */
  detach(): void {
    this.state = ExchangeState.Ended;
    this.#dropHeld();
    this.#out = [];
    this.#head = null;
  }

  /**
   * Answers with a plain-text status page and ends, for requests the server itself refuses (limits,
   * bad params) before or instead of the handler. Does nothing when output was already written.
   */
  respondWithStatus(status: number, message: string): void {
    if (this.state === ExchangeState.Ended) return;
    // A refusal by the server itself is not the handler's output: it does not wait for the end of STDIN.
    // (If the handler had ended meanwhile, that releases its end, and what follows does nothing.)
    if (this.#awaitingStdin) this.#releaseHeld();
    const appStatus = status >= 500 ? 1 : 0;
    if (this.#stdoutBytes > 0 || this.#abortReason !== null) {
      this.end(appStatus);
      return;
    }
    const body = `${status} ${STATUS_CODES[status] ?? 'Error'}: ${message}\n`;
    const head =
      `Status: ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    this.endWith(head, body, appStatus);
  }

  /** True when write() returned false and the listener has not been told of a drain since. */
  get needsDrain(): boolean {
    return this.#needDrain;
  }

  /** The connection's socket drained: tell a writer that was asked to wait. */
  drained(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this.listener?.exchangeDrained();
  }

  /** Sends whatever output is queued (called by the connection at the end of the tick). */
  flushPending(): void {
    this.#flushQueued = false;
    if (this.#outBytes > 0 && this.state !== ExchangeState.Ended && !this.#awaitingStdin) this.#flush(false, 0, 0);
  }

  /** Tells the output observer, the first time only, that output began. */
  #noteOutput(): void {
    if (this.#outputBegan) return;
    this.#outputBegan = true;
    this.outputObserver!.outputBegan();
  }

  #afterWrite(): boolean {
    if (this.#awaitingStdin) return this.#hold();
    if (this.#outBytes >= FLUSH_BYTES) {
      this.#flush(false, 0, 0);
    } else if (!this.#flushQueued && !this.#endComing) {
      this.#flushQueued = true;
      this.#host.scheduleFlush(this);
    }
    return this.#checkBlocked();
  }

  #checkBlocked(): boolean {
    if (this.#host.outputBlocked) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  #flush(final: boolean, appStatus: number, protocolStatus: number): void {
    const head = this.#head;
    const chunks = this.#out;
    const bytes = this.#outBytes;
    this.#head = null;
    this.#out = [];
    this.#outBytes = 0;
    const tailSize = final ? HEADER_LENGTH + (this.#stderrUsed ? HEADER_LENGTH : 0) + HEADER_LENGTH + 8 : 0;

    if (bytes > MAX_CONTENT_LENGTH) {
      // Too much for one record: send record headers with views of the chunks, copying nothing large.
      const parts: Array<string | Uint8Array> = head === null ? chunks : [Buffer.from(head, 'latin1'), ...chunks];
      const buffers = this.#recordsFor(RecordType.Stdout, parts);
      if (final) buffers.push(this.#tail(tailSize, appStatus, protocolStatus));
      this.#host.writeOutBatch(buffers);
      return;
    }

    const padding = paddingFor(bytes);
    const size = (bytes > 0 ? HEADER_LENGTH + bytes + padding : 0) + tailSize;
    if (size === 0) return;
    const out = Buffer.allocUnsafe(size);
    let offset = 0;
    if (bytes > 0) {
      offset = writeHeader(out, 0, RecordType.Stdout, this.id, bytes, padding);
      if (head !== null) offset += out.write(head, offset, 'latin1');
      for (const chunk of chunks) {
        if (typeof chunk === 'string') {
          offset += out.write(chunk, offset, 'utf8');
        } else {
          out.set(chunk, offset);
          offset += chunk.length;
        }
      }
      offset = writePadding(out, offset, padding);
    }
    if (final) this.#writeTail(out, offset, appStatus, protocolStatus);
    this.#host.writeOut(out);
  }

  /** Record headers and payload views for `parts`, each record at most 65535 bytes (no padding). */
  #recordsFor(type: number, parts: Array<string | Uint8Array>): Buffer[] {
    const buffers: Buffer[] = [];
    for (const part of parts) {
      const bytes = typeof part === 'string' ? Buffer.from(part) : Buffer.from(part.buffer, part.byteOffset, part.length);
      for (let position = 0; position < bytes.length; position += MAX_CONTENT_LENGTH) {
        const length = Math.min(MAX_CONTENT_LENGTH, bytes.length - position);
        const header = Buffer.allocUnsafe(HEADER_LENGTH);
        writeHeader(header, 0, type, this.id, length, 0);
        buffers.push(header, bytes.subarray(position, position + length));
      }
    }
    return buffers;
  }

  #writeRecords(type: number, parts: Uint8Array[]): void {
    this.#host.writeOutBatch(this.#recordsFor(type, parts));
  }

  #tail(size: number, appStatus: number, protocolStatus: number): Buffer {
    const tail = Buffer.allocUnsafe(size);
    this.#writeTail(tail, 0, appStatus, protocolStatus);
    return tail;
  }

  #writeTail(target: Buffer, offset: number, appStatus: number, protocolStatus: number): void {
    offset = writeHeader(target, offset, RecordType.Stdout, this.id, 0, 0);
    if (this.#stderrUsed) offset = writeHeader(target, offset, RecordType.Stderr, this.id, 0, 0);
    writeEndRequest(target, offset, this.id, appStatus, protocolStatus);
  }
}
