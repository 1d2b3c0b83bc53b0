// A scripted web server for tests: sends exact FastCGI bytes on a socket and collects the records that come back.

import net from 'node:net';
import {
  KEEP_CONN,
  RecordParser,
  RecordType,
  Role,
  decodeEndRequest,
  encodeBeginRequest,
  encodeParams,
  encodePairs,
  encodeRecord,
  encodeStream,
  type PairsInput,
} from '../../src/protocol/index.js';

export interface ReceivedRecord {
  type: number;
  requestId: number;
  content: Buffer;
}

export interface PeerResponse {
  stdout: Buffer;
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
  /** The STDOUT records' contents, in order (to check how output was split). */
  stdoutRecords: Buffer[];
  /** How many END_REQUEST records arrived for this id. */
  endCount: number;
}

export type PeerAddress = string | { path: string } | { host: string; port: number };

function connectOptions(address: PeerAddress): net.NetConnectOpts {
  if (typeof address !== 'string') return address;
  if (address.startsWith('unix:')) return { path: address.slice(5) };
  if (address.startsWith('/')) return { path: address };
  const bracket = /^\[(.+)\]:(\d+)$/.exec(address);
  if (bracket !== null) return { host: bracket[1]!, port: Number(bracket[2]) };
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

export class RawPeer {
  readonly socket: net.Socket;
  readonly records: ReceivedRecord[] = [];
  #closed = false;
  #error: Error | null = null;
  #parseError: Error | null = null;
  #listeners = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    const parser = new RecordParser({
      onRecord: (type, requestId, content) => {
        this.records.push({ type, requestId, content: Buffer.from(content) });
      },
    });
    socket.on('data', (chunk: Buffer) => {
      const error = parser.push(chunk);
      if (error !== undefined) this.#parseError = error;
      this.#notify();
    });
    socket.on('error', (error) => {
      this.#error = error;
      this.#notify();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#notify();
    });
  }

  static connect(address: PeerAddress): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(connectOptions(address));
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawPeer(socket));
      });
      socket.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A socket error seen (ECONNRESET and the like), if any. */
  get error(): Error | null {
    return this.#error;
  }

  send(...buffers: Buffer[]): void {
    for (const buffer of buffers) this.socket.write(buffer);
  }

  sendBegin(requestId: number, options: { role?: number; keepConn?: boolean } = {}): void {
    this.send(encodeBeginRequest(requestId, options.role ?? Role.Responder, options.keepConn === false ? 0 : KEEP_CONN));
  }

  /** Sends the whole PARAMS stream, terminator included. */
  sendParams(requestId: number, params: PairsInput): void {
    this.send(encodeParams(requestId, params));
  }

  /** Sends STDIN bytes, and the empty terminator unless `end` is false. */
  sendStdin(requestId: number, data: Buffer | string = '', end = true): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (bytes.length > 0) this.send(encodeStream(RecordType.Stdin, requestId, bytes, false));
    if (end) this.send(encodeRecord(RecordType.Stdin, requestId));
  }

  sendData(requestId: number, data: Buffer | string = '', end = true): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (bytes.length > 0) this.send(encodeStream(RecordType.Data, requestId, bytes, false));
    if (end) this.send(encodeRecord(RecordType.Data, requestId));
  }

  sendAbort(requestId: number): void {
    this.send(encodeRecord(RecordType.AbortRequest, requestId));
  }

  sendGetValues(names: string[]): void {
    this.send(encodeRecord(RecordType.GetValues, 0, encodePairs(names.map((name) => [name, '']))));
  }

  /** BEGIN + PARAMS + STDIN in one go: a whole simple request. */
  sendRequest(requestId: number, params: PairsInput, body: Buffer | string = '', options: { keepConn?: boolean; role?: number } = {}): void {
    this.sendBegin(requestId, options);
    this.sendParams(requestId, params);
    this.sendStdin(requestId, body);
  }

  /** Resolves once `predicate` holds over the records received (or rejects after `timeout` ms, or on close if `failOnClose`). */
  waitFor(predicate: (records: ReceivedRecord[]) => boolean, timeout = 5000, what = 'condition'): Promise<ReceivedRecord[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (predicate(this.records)) {
          finish();
          resolve(this.records);
          return true;
        }
        if (this.#parseError !== null) {
          finish();
          reject(this.#parseError);
          return true;
        }
        if (this.#closed) {
          finish();
          reject(new Error(`connection closed before ${what}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; got ${this.records.length} records`));
      }, timeout);
      const finish = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = (): void => {
        check();
      };
      if (!check()) this.#listeners.add(listener);
    });
  }

  /** Waits for END_REQUEST of `requestId` and gathers that request's output. */
  async waitForEnd(requestId: number, timeout = 5000): Promise<PeerResponse> {
    await this.waitFor(
      (records) => records.some((r) => r.type === RecordType.EndRequest && r.requestId === requestId),
      timeout,
      `END_REQUEST for request ${requestId}`,
    );
    return this.response(requestId);
  }

  /** The output received so far for `requestId`. */
  response(requestId: number): PeerResponse {
    const mine = this.records.filter((r) => r.requestId === requestId);
    const stdoutRecords = mine.filter((r) => r.type === RecordType.Stdout).map((r) => r.content);
    const ends = mine.filter((r) => r.type === RecordType.EndRequest);
    const end = ends[0] === undefined ? { appStatus: -1, protocolStatus: -1 } : decodeEndRequest(ends[0].content);
    return {
      stdout: Buffer.concat(stdoutRecords),
      stderr: Buffer.concat(mine.filter((r) => r.type === RecordType.Stderr).map((r) => r.content)),
      appStatus: end.appStatus,
      protocolStatus: end.protocolStatus,
      stdoutRecords,
      endCount: ends.length,
    };
  }

  /** Resolves when the server closes the connection (rejects after `timeout` ms). */
  waitForClose(timeout = 5000): Promise<void> {
    return this.waitFor(() => false, timeout, 'close').then(
      () => undefined,
      (error: Error) => {
        if (this.#closed) return undefined;
        throw error;
      },
    );
  }

  /** True if the server has not closed the connection within `ms`. */
  async staysOpen(ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return !this.#closed;
  }

  close(): void {
    this.socket.destroy();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}

/** Splits a CGI response into its head lines and body, for assertions. */
export function splitCgi(stdout: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
  const end = stdout.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no CGI head in ${JSON.stringify(stdout.toString('latin1').slice(0, 200))}`);
  const headers: Record<string, string> = {};
  for (const line of stdout.toString('latin1', 0, end).split('\r\n')) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number((headers.status ?? '200').split(' ')[0]), headers, body: stdout.subarray(end + 4) };
}

/** Params for a simple request. */
export function requestParams(method = 'GET', uri = '/', extra: Record<string, string> = {}): Record<string, string> {
  const query = uri.includes('?') ? uri.slice(uri.indexOf('?') + 1) : '';
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: method,
    REQUEST_URI: uri,
    SCRIPT_NAME: uri.split('?')[0]!,
    QUERY_STRING: query,
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_PORT: '50000',
    HTTP_HOST: 'localhost',
    ...extra,
  };
}
