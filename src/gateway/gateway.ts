// The built-in HTTP front: a node:http server that forwards each request over FastCGI (through FcgiClient's kept-alive pool) and relays the CGI response.

import { Buffer } from 'node:buffer';
import { STATUS_CODES, createServer as createHttpServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { TextDecoder } from 'node:util';
import { FcgiClient, type FcgiClientOptions, type FcgiClientStats } from '../client/client.js';
import type { ConnectAddress } from '../client/address.js';
import type { BodySource } from '../client/connection.js';
import type { FcgiResponse } from '../client/response.js';
import { NodefpmError, isNodefpmError } from '../errors.js';
import { HOP_BY_HOP_HEADERS } from '../http/response.js';
import { createLogger, type LogFields, type Logger } from '../log.js';
import { formatHttpAddress, listenOn, parseHttpAddress, urlFor, type GatewayAddress, type HttpListenAddress } from './address.js';
import { buildParams, type ScriptParams, type TrustProxy } from './params.js';
import { resolveScript, resolveScriptOptions, type ResolvedScriptOptions, type ScriptOptions } from './script.js';
import { accelFile, resolveSendfileOptions, sendfileFile, type ResolvedSendfile, type SendfileOptions } from './sendfile.js';
import { countedBody, spoolBody, type SpooledBody } from './spool.js';
import { sendFile } from './static.js';
import { parseTarget, type ParsedTarget } from './uri.js';
import { NODEFPM_VERSION } from './version.js';

/** Extra params for every request (fastcgi_param): fixed, or computed per request. */
export type ExtraParams = Readonly<Record<string, string>> | ((req: IncomingMessage) => Readonly<Record<string, string>>);

/**
 * The options of createGateway. Times in milliseconds (0 turns a timeout off), sizes in bytes.
 *
 * | option | default | |
 * |---|---|---|
 * | upstream | (required) | a FastCGI address (`unix:/path`, `/path`, `HOST:PORT`, `[IPv6]:PORT`, `{ path }`, `{ host, port }`) or an FcgiClient |
 * | client | keepConn true, maxConnections 16 | options of the FcgiClient made for an address upstream |
 * | documentRoot | none | DOCUMENT_ROOT; required by script mode |
 * | script | off | script mode for PHP-FPM: true, or ScriptOptions |
 * | params | none | extra params (fastcgi_param) |
 * | maxBodyBytes | 1 GiB | request body bound: 413 |
 * | chunkedUploads | "stream" (app mode), "buffer" (script mode) | a chunked body streamed with CONTENT_LENGTH="", or spooled to learn its length |
 * | bodyMemoryBytes | 1 MiB | a spooled body beyond this goes to a temp file |
 * | tempDir | os.tmpdir() | where spooled bodies go |
 * | headTimeout | 60000 | until the CGI head is complete: 504 |
 * | closeOnAbort | false | on a client disconnect, close the FastCGI connection rather than send FCGI_ABORT_REQUEST |
 * | closeAfterUnsizedBody | false (app mode), true (script mode) | send FCGI_KEEP_CONN=0 with a body that goes with CONTENT_LENGTH="" (PHP-FPM breaks a kept connection on it) |
 * | trustProxy | false | believe X-Forwarded-For/-Proto/-Host/-Port from these peers (true: any peer) |
 * | serverName | the request's host | SERVER_NAME |
 * | serverSoftware | nodefpm/VERSION | SERVER_SOFTWARE |
 * | sendfile | none (pass through) | where X-Accel-Redirect and X-Sendfile may point |
 * | tls | none | key and cert (node:https options): serve HTTPS, HTTPS=on |
 * | logger | lines on stderr | |
 */
export interface GatewayOptions {
  upstream: ConnectAddress | FcgiClient;
  client?: Omit<FcgiClientOptions, 'address'>;
  documentRoot?: string;
  script?: boolean | ScriptOptions;
  params?: ExtraParams;
  maxBodyBytes?: number;
  chunkedUploads?: 'stream' | 'buffer';
  bodyMemoryBytes?: number;
  tempDir?: string;
  headTimeout?: number;
  closeOnAbort?: boolean;
  closeAfterUnsizedBody?: boolean;
  trustProxy?: TrustProxy;
  serverName?: string;
  serverSoftware?: string;
  sendfile?: SendfileOptions;
  tls?: HttpsServerOptions;
  logger?: Logger;
}

/** Counters for tests, benchmarks and a status line. */
export interface GatewayStats {
  /** HTTP requests received. */
  requests: number;
  /** HTTP requests whose response is not finished. */
  active: number;
  /** Requests sent to the FastCGI application. */
  forwarded: number;
  /** Files served from documentRoot (script mode). */
  staticFiles: number;
  /** Files served for X-Accel-Redirect or X-Sendfile. */
  sentFiles: number;
  /** Responses the HTTP client did not wait for (it closed the connection first). */
  clientAborts: number;
  /** Responses the front made itself, by status (400, 404, 413, 502, 503, 504...). */
  errors: Record<number, number>;
  /** The FastCGI client's pool. */
  upstream: FcgiClientStats;
}

const MiB = 1024 * 1024;
const DEFAULTS = {
  maxBodyBytes: 1024 * MiB,
  bodyMemoryBytes: MiB,
  headTimeout: 60_000,
  maxConnections: 16,
};
/** A response body already complete when its head is relayed is sent in one piece up to this size. */
const WHOLE_BODY_BYTES = 64 * 1024;
/** Longest STDERR line logged as one entry: a line without an end is flushed at this size. */
const MAX_STDERR_LINE = 8 * 1024;

/**
 * CGI response headers that are about the hop from the app (Node frames the body itself) or are
 * instructions to the front (nginx hides X-Accel-*): never sent to the HTTP client.
 */
const RESPONSE_DROPPED = new Set([
  ...HOP_BY_HOP_HEADERS,
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-limit-rate',
  'x-accel-expires',
]);
/** The app's headers nginx keeps when it follows X-Accel-Redirect (its upstream header table's `redirect` flag). */
const ACCEL_KEPT = new Set(['set-cookie', 'content-disposition', 'cache-control', 'expires']);

function invalid(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', message);
}

function sizeOption(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(Number.isInteger(value) || value === Infinity) || value < 0) {
    throw invalid(`option ${name} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/** The bytes of a file system path as params carry them (one char per byte), without a trailing slash. */
function pathBytes(path: string): string {
  return Buffer.from(path.replace(/\/+$/, '') || '/', 'utf8').toString('latin1');
}

/** The app's Content-Length: null when absent, undefined when it is not one number (repeats must agree). */
function declaredLength(value: string | string[] | undefined): number | null | undefined {
  if (value === undefined) return null;
  const values = typeof value === 'string' ? [value] : value;
  const first = values[0]!;
  if (!/^[0-9]{1,15}$/.test(first) || values.some((other) => other !== first)) return undefined;
  return Number(first);
}

/**
 * Copies the app's body to the HTTP response with backpressure (the FastCGI socket is read only as
 * fast as the HTTP client takes the bytes). A body longer or shorter than the app's Content-Length
 * fails: the response is cut (the socket closed) rather than sent on a connection the client would
 * then misread. Rejects when either side fails; both are destroyed then.
 */
function relay(body: Readable, res: ServerResponse, declared: number | null, markCut: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', finish);
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (error === undefined) {
        resolve();
        return;
      }
      if (!res.destroyed) markCut();
      body.destroy();
      res.destroy();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      sent += chunk.length;
      if (declared !== null && sent > declared) {
        finish(new NodefpmError('NODEFPM_GATEWAY_BAD_RESPONSE', `the app sent more body than its Content-Length (${declared})`));
        return;
      }
      if (!res.write(chunk)) body.pause();
    };
    const onDrain = (): void => {
      body.resume();
    };
    const onEnd = (): void => {
      if (declared !== null && sent !== declared) {
        finish(new NodefpmError('NODEFPM_GATEWAY_BAD_RESPONSE', `the app sent ${sent} bytes of body under Content-Length ${declared}`));
        return;
      }
      res.end(() => finish());
    };
    const onClose = (): void => {
      if (!res.writableFinished) finish(new Error('the HTTP connection closed before the response was sent'));
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', finish);
    res.on('drain', onDrain);
    res.once('close', onClose);
  });
}

function ignore(): void {}

const NO_EXTRA: ReadonlyArray<readonly [string, string]> = [];

/** What goes to FCGI_STDIN, and CONTENT_LENGTH to go with it. */
interface RequestBody {
  body: BodySource;
  contentLength: string;
}

/** The FCGI_STDERR of one request, logged line by line as it arrives (a line without an end is cut at MAX_STDERR_LINE). */
class StderrLog {
  readonly #log: Logger;
  readonly #fields: LogFields;
  readonly #decoder = new TextDecoder('utf-8');
  #line = '';

  constructor(log: Logger, fields: LogFields) {
    this.#log = log;
    this.#fields = fields;
  }

  push(chunk: Buffer): void {
    this.#line += this.#decoder.decode(chunk, { stream: true });
    this.flush(false);
  }

  /** Logs the complete lines; with `final`, the rest too. */
  flush(final: boolean): void {
    let newline = this.#line.indexOf('\n');
    while (newline >= 0 || this.#line.length > MAX_STDERR_LINE || (final && this.#line !== '')) {
      const end = newline >= 0 ? newline : Math.min(this.#line.length, MAX_STDERR_LINE);
      const line = this.#line.slice(0, end).replace(/\r$/, '');
      this.#line = this.#line.slice(newline >= 0 ? end + 1 : end);
      if (line !== '') this.#log.warn(`FastCGI sent in stderr: ${line}`, this.#fields);
      newline = this.#line.indexOf('\n');
    }
  }

  /** Logs the rest when the request ends, well or not. */
  flushAtEnd(response: FcgiResponse): void {
    const flush = (): void => this.flush(true);
    response.ended.then(flush, flush);
  }
}

/** Per-request state the steps share. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  /** Log fields: method, uri, client. */
  fields: LogFields;
  expectContinue: boolean;
  /** Aborts the FastCGI request, once there is one. */
  abort: ((reason: Error) => void) | null;
  /** Set when the HTTP client went away: nothing more can be answered. */
  clientGone: boolean;
  /** Set when the front itself cut the response (the app failed after the head went out). */
  cut: boolean;
  spooled: SpooledBody | null;
}

/** The app's response headers that `keep` accepts (by lower-case name), for a file sent in its body's place; Set-Cookie stays a list. */
function appHeaders(response: FcgiResponse, keep: (lower: string) => boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of response.rawHeaders) {
    const lower = name.toLowerCase();
    if (!keep(lower)) continue;
    headers[lower] = lower === 'set-cookie' ? [...((headers[lower] as string[] | undefined) ?? []), value] : value;
  }
  return headers;
}

/**
 * The HTTP front. Made by createGateway; `listen` opens it, `close` drains and stops it. `server` is
 * the node:http (or node:https) Server; `handle` is its request listener, usable on a server of your own.
 */
export class Gateway {
  readonly server: Server;
  /** The FastCGI client requests go through (the one given as upstream, or one made for its address). */
  readonly client: FcgiClient;
  readonly #ownClient: boolean;
  readonly #log: Logger;
  readonly #tls: boolean;
  readonly #script: ResolvedScriptOptions | null;
  readonly #documentRoot: string;
  readonly #extra: ExtraParams | undefined;
  readonly #maxBodyBytes: number;
  readonly #bufferChunked: boolean;
  readonly #bodyMemoryBytes: number;
  readonly #tempDir: string;
  readonly #headTimeout: number;
  readonly #closeOnAbort: boolean;
  readonly #closeAfterUnsizedBody: boolean;
  readonly #trustProxy: TrustProxy;
  readonly #serverName: string | undefined;
  readonly #serverSoftware: string;
  readonly #sendfile: ResolvedSendfile | null;
  readonly #stats = { requests: 0, active: 0, forwarded: 0, staticFiles: 0, sentFiles: 0, clientAborts: 0, errors: {} as Record<number, number> };
  #address: GatewayAddress | null = null;
  #closing: Promise<void> | null = null;
  #idleWaiters: Array<() => void> = [];
  #warnedPassThrough = false;

  constructor(options: GatewayOptions) {
    if (typeof options !== 'object' || options === null) throw invalid('createGateway needs an options object with an upstream');
    this.#log = options.logger ?? createLogger();
    if (options.upstream instanceof FcgiClient) {
      if (options.client !== undefined) throw invalid('option client applies only when upstream is an address, not an FcgiClient');
      this.client = options.upstream;
      this.#ownClient = false;
    } else {
      if (options.upstream === undefined) throw invalid('option upstream is required: a FastCGI address or an FcgiClient');
      this.client = new FcgiClient({ keepConn: true, maxConnections: DEFAULTS.maxConnections, ...options.client, address: options.upstream });
      this.#ownClient = true;
    }
    if (options.documentRoot !== undefined && (typeof options.documentRoot !== 'string' || options.documentRoot === '')) {
      throw invalid('option documentRoot must be a directory path');
    }
    const root = options.documentRoot === undefined ? undefined : resolvePath(options.documentRoot);
    this.#documentRoot = root === undefined ? '' : pathBytes(root);
    const script = options.script ?? false;
    if (script !== false) {
      if (root === undefined) throw invalid('script mode needs option documentRoot: SCRIPT_FILENAME is documentRoot + the script path');
      this.#script = resolveScriptOptions(script === true ? {} : script);
    } else {
      this.#script = null;
    }
    if (options.params !== undefined && typeof options.params !== 'function' && (typeof options.params !== 'object' || options.params === null)) {
      throw invalid('option params must be an object of name: value, or a function of the request returning one');
    }
    this.#extra = options.params;
    this.#maxBodyBytes = sizeOption('maxBodyBytes', options.maxBodyBytes, DEFAULTS.maxBodyBytes);
    this.#bodyMemoryBytes = sizeOption('bodyMemoryBytes', options.bodyMemoryBytes, DEFAULTS.bodyMemoryBytes);
    this.#headTimeout = sizeOption('headTimeout', options.headTimeout, DEFAULTS.headTimeout);
    const chunked = options.chunkedUploads ?? (this.#script !== null ? 'buffer' : 'stream');
    if (chunked !== 'stream' && chunked !== 'buffer') throw invalid(`option chunkedUploads must be "stream" or "buffer", got ${String(chunked)}`);
    this.#bufferChunked = chunked === 'buffer';
    this.#tempDir = options.tempDir ?? tmpdir();
    this.#closeOnAbort = options.closeOnAbort ?? false;
    // PHP-FPM reads (and at the end drains) STDIN only up to CONTENT_LENGTH. With CONTENT_LENGTH="" the
    // body stays unread; on a kept connection it then takes those STDIN records for the next request
    // and closes the connection under it (a 502). Such a request gets a connection of its own.
    this.#closeAfterUnsizedBody = options.closeAfterUnsizedBody ?? this.#script !== null;
    if (typeof this.#closeOnAbort !== 'boolean' || typeof this.#closeAfterUnsizedBody !== 'boolean') {
      throw invalid('options closeOnAbort and closeAfterUnsizedBody must be true or false');
    }
    const trust = options.trustProxy ?? false;
    if (typeof trust !== 'boolean' && !(Array.isArray(trust) && trust.every((entry) => typeof entry === 'string'))) {
      throw invalid('option trustProxy must be true, false, or a list of proxy addresses');
    }
    this.#trustProxy = trust;
    this.#serverName = options.serverName;
    this.#serverSoftware = options.serverSoftware ?? `nodefpm/${NODEFPM_VERSION}`;
    this.#sendfile = resolveSendfileOptions(options.sendfile);
    this.#tls = options.tls !== undefined;
    const listener = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res, false);
    this.server = this.#tls ? createHttpsServer(options.tls!, listener) : createHttpServer(listener);
    // Expect: 100-continue: the interim answer goes out when the body is first pulled towards the app,
    // so a request refused first (413, 404, 502) never invites the body.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res, true));
  }

  /** The request listener: `http.createServer(gateway.handle)` serves through this gateway. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res, false);

  get stats(): GatewayStats {
    return { ...this.#stats, errors: { ...this.#stats.errors }, upstream: this.client.stats };
  }

  /** Where the front listens, once it does. */
  get address(): GatewayAddress | null {
    return this.#address;
  }

  /**
   * Listens on `HOST:PORT`, `[IPv6]:PORT`, `unix:/path` or `/path` (port 0: a free port). Resolves to
   * the bound address with a URL to print. Fails with NODEFPM_INVALID_ADDRESS or NODEFPM_ADDRESS_IN_USE.
   */
  async listen(address: string | HttpListenAddress): Promise<GatewayAddress> {
    const parsed = typeof address === 'string' ? parseHttpAddress(address) : address;
    const bound = await listenOn(this.server, parsed);
    this.#address = { address: bound, text: formatHttpAddress(bound), url: urlFor(bound, this.#tls) };
    this.#log.info(`HTTP front listening on ${this.#address.url ?? this.#address.text}, forwarding to FastCGI at ${this.client.address}`);
    return this.#address;
  }

  /**
   * Stops accepting, lets requests in progress finish for up to `timeout` ms (default 10 s), then
   * closes every connection; closes the FastCGI client too when the gateway made it. Idempotent.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.timeout ?? 10_000);
    return this.#closing;
  }

  async #close(timeout: number): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    this.server.closeIdleConnections();
    if (this.#stats.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeout);
        }),
      ]);
      clearTimeout(timer);
    }
    this.server.closeAllConnections();
    await closed;
    if (this.#ownClient) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.client.close(),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            this.client.destroy();
            resolve();
          }, 1000);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  // ---- one request ----

  #handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    this.#stats.requests++;
    this.#stats.active++;
    const exchange: Exchange = {
      req,
      res,
      fields: { method: req.method, uri: req.url, client: req.socket.remoteAddress ?? 'unix:' },
      expectContinue,
      abort: null,
      clientGone: false,
      cut: false,
      spooled: null,
    };
    // 'close' comes once: `on` spares the wrapper `once` would make per request.
    res.on('close', () => {
      this.#stats.active--;
      if (!res.writableFinished) {
        if (!exchange.cut) {
          exchange.clientGone = true;
          this.#stats.clientAborts++;
        }
        // Either way the app's request is no longer wanted.
        exchange.abort?.(new Error(exchange.cut ? 'the front cut the response' : 'the HTTP client closed the connection'));
      }
      void exchange.spooled?.dispose();
      if (!req.complete && !req.destroyed) {
        // A body the app did not read: drain it, so the connection can carry the next request.
        req.resume();
      }
      if (this.#closing !== null) {
        this.server.closeIdleConnections();
        if (this.#stats.active === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
      }
    });
    if (this.#closing !== null) {
      res.shouldKeepAlive = false;
      this.#answerError(exchange, new NodefpmError('NODEFPM_GATEWAY_CLOSING', 'the HTTP front is shutting down'));
      return;
    }
    this.#serve(exchange).catch((error: unknown) => this.#answerError(exchange, error));
  }

  /** Serves one request. Fails only through the promise (a bad target included). */
  #serve(exchange: Exchange): Promise<void> {
    let target: ParsedTarget;
    try {
      target = parseTarget(exchange.req.url ?? '/');
    } catch (error) {
      return Promise.reject(error as Error);
    }
    // App mode forwards every request: no step in between.
    return this.#script === null ? this.#forward(exchange, target, null) : this.#serveScript(exchange, target, this.#script);
  }

  /** Script mode: a script goes to the app, a static file is served here, anything else is a 301 or a 404. */
  async #serveScript(exchange: Exchange, target: ParsedTarget, options: ResolvedScriptOptions): Promise<void> {
    const { req, res } = exchange;
    const rawPath = target.requestUri.split('?', 1)[0]!;
    const route = await resolveScript(this.#documentRoot, target.path, rawPath, target.queryString, options);
    switch (route.kind) {
      case 'script':
        await this.#forward(exchange, target, route.params);
        return;
      case 'static':
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.setHeader('Allow', 'GET, HEAD');
          throw new NodefpmError('NODEFPM_GATEWAY_METHOD', `${req.method} is not allowed on the static file ${target.path}`);
        }
        this.#stats.staticFiles++;
        await sendFile(req, res, route.file, route.stats);
        return;
      case 'redirect':
        res.writeHead(301, { Location: route.location, 'Content-Type': 'text/plain; charset=utf-8' });
        res.end(`301 Moved Permanently: ${route.location}\n`);
        return;
      case 'not-found':
        throw new NodefpmError('NODEFPM_GATEWAY_NOT_FOUND', route.reason);
    }
  }

  /** What goes to FCGI_STDIN, and CONTENT_LENGTH to go with it: a promise only when the body is spooled first. */
  #body(exchange: Exchange): RequestBody | Promise<RequestBody> {
    const { req, res } = exchange;
    const declared = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const sendContinue = exchange.expectContinue ? () => res.writeContinue() : null;
    if (declared !== undefined && !chunked && Number(declared) > this.#maxBodyBytes) {
      // Refused before a byte is read: the rest of the body is not wanted on this connection.
      res.shouldKeepAlive = false;
      throw new NodefpmError('NODEFPM_BODY_TOO_LARGE', `Content-Length ${declared} exceeds maxBodyBytes (${this.#maxBodyBytes})`);
    }
    if (chunked && this.#bufferChunked) {
      sendContinue?.();
      return spoolBody(req, this.#maxBodyBytes, this.#bodyMemoryBytes, this.#tempDir).then((spooled) => {
        exchange.spooled = spooled;
        return { body: spooled.open(), contentLength: String(spooled.length) };
      });
    }
    // nginx unbuffered: a chunked body streams with CONTENT_LENGTH="" (and HTTP_TRANSFER_ENCODING kept).
    if (chunked) return { body: countedBody(req, this.#maxBodyBytes, sendContinue), contentLength: '' };
    if (declared !== undefined && declared !== '0') return { body: countedBody(req, this.#maxBodyBytes, sendContinue), contentLength: declared };
    return { body: undefined, contentLength: declared ?? '' };
  }

  #extraParams(req: IncomingMessage): ReadonlyArray<readonly [string, string]> {
    const extra = this.#extra;
    if (extra === undefined) return NO_EXTRA;
    return Object.entries(typeof extra === 'function' ? extra(req) : extra);
  }

  async #forward(exchange: Exchange, target: ParsedTarget, script: ScriptParams | null): Promise<void> {
    const { req } = exchange;
    const socket = req.socket;
    const unix = socket.remoteAddress === undefined && socket.localAddress === undefined;
    const settings = {
      documentRoot: this.#documentRoot,
      serverName: this.#serverName,
      serverSoftware: this.#serverSoftware,
      trustProxy: this.#trustProxy,
      extra: this.#extraParams(req),
    };
    const http = {
      method: req.method ?? 'GET',
      httpVersion: req.httpVersion,
      target,
      rawHeaders: req.rawHeaders,
      tls: this.#tls && (socket as TLSSocket).encrypted === true,
      remoteAddress: unix ? undefined : socket.remoteAddress,
      remotePort: unix ? undefined : socket.remotePort,
      localAddress: unix ? undefined : socket.localAddress,
      localPort: unix ? undefined : socket.localPort,
      contentLength: '',
    };
    // Built once before the body is read, so a bad Host is refused without taking the upload.
    const params = buildParams(http, script, settings);
    const pending = this.#body(exchange);
    // A bodiless request (and one streamed) goes on at once; only a spooled one waits here.
    const { body, contentLength } = pending instanceof Promise ? await pending : pending;
    const lengthParam = params.find((pair) => pair[0] === 'CONTENT_LENGTH');
    if (lengthParam !== undefined) lengthParam[1] = contentLength;
    if (exchange.clientGone) return;

    // Made at the first STDERR byte: most requests have none. What is left of a last line without an
    // end is logged when the request ends (or fails).
    // (Typed through `as`: assigned in the callback, it must not be narrowed to null below.)
    let stderr = null as StderrLog | null;
    let response: FcgiResponse | null = null;
    const onStderr = (chunk: Buffer): void => {
      if (stderr === null) {
        stderr = new StderrLog(this.#log, { ...exchange.fields, upstream: this.client.address });
        if (response !== null) stderr.flushAtEnd(response);
      }
      stderr.push(chunk);
    };

    this.#stats.forwarded++;
    // startRequest rather than a signal: an AbortSignal and its listeners cost microseconds on every request.
    const request = this.client.startRequest({
      params,
      body,
      onStderr,
      closeOnAbort: this.#closeOnAbort,
      keepConn: this.#closeAfterUnsizedBody && body !== undefined && contentLength === '' ? false : undefined,
    });
    exchange.abort = request.abort;
    let timedOut = false;
    const timer =
      this.#headTimeout > 0
        ? setTimeout(() => {
            timedOut = true;
            request.abort(new Error(`no CGI head within headTimeout (${this.#headTimeout} ms)`));
          }, this.#headTimeout)
        : undefined;
    try {
      response = await request.response;
    } catch (error) {
      stderr?.flush(true);
      if (exchange.clientGone) {
        this.#log.info('HTTP client closed the connection before the response; FastCGI request aborted', exchange.fields);
        return;
      }
      if (timedOut) {
        throw new NodefpmError('NODEFPM_GATEWAY_HEAD_TIMEOUT', `${this.client.address} sent no complete CGI head within headTimeout (${this.#headTimeout} ms)`, { cause: error });
      }
      // A failed upload: over maxBodyBytes (413), a broken spool file (500), or the HTTP client gone mid-body.
      if (isNodefpmError(error, 'NODEFPM_CLIENT_BODY') && error.cause instanceof NodefpmError) throw error.cause;
      throw error;
    } finally {
      clearTimeout(timer);
    }
    stderr?.flushAtEnd(response);
    // The client decides whether to emit a body error when it destroys the body, and emits it a tick
    // later: a listener removed in between (relay is done) would leave it unhandled. Failures are seen
    // through relay and `ended`; this one only keeps a late error from crashing the process.
    response.body.on('error', ignore);
    if (exchange.clientGone) {
      response.body.destroy();
      return;
    }
    const rest = this.#respond(exchange, response);
    if (rest !== undefined) await rest;
  }

  /**
   * Relays the CGI response: head, then body with backpressure; or the file X-Accel-Redirect /
   * X-Sendfile names. Returns the promise of what is left to do, if anything: a response with no body
   * to send, or whose small body is all here already, is done when this returns (no promise to make).
   */
  #respond(exchange: Exchange, response: FcgiResponse): Promise<void> | undefined {
    const { req, res } = exchange;
    if (this.#sendfile !== null) {
      const accel = response.headers['x-accel-redirect'];
      const sendfile = response.headers['x-sendfile'] ?? response.headers['x-lighttpd-send-file'];
      if (typeof accel === 'string' && this.#sendfile.accel.length > 0) return this.#sendAccelFile(exchange, response, accel, this.#sendfile);
      if (typeof sendfile === 'string' && this.#sendfile.roots.length > 0) return this.#sendFileNamed(exchange, response, sendfile, this.#sendfile);
    }
    if (!this.#warnedPassThrough && (response.headers['x-accel-redirect'] !== undefined || response.headers['x-sendfile'] !== undefined)) {
      this.#warnedPassThrough = true;
      this.#log.warn('the app sent X-Accel-Redirect or X-Sendfile, and no sendfile mapping is configured: passed to the HTTP client as is (said once)', exchange.fields);
    }

    if (response.status < 200) {
      response.body.destroy();
      throw new NodefpmError('NODEFPM_GATEWAY_BAD_RESPONSE', `the CGI head has status ${response.status}, which a final HTTP response cannot have`);
    }
    const flat: string[] = [];
    for (const [name, value] of response.rawHeaders) {
      if (!RESPONSE_DROPPED.has(name.toLowerCase())) flat.push(name, value);
    }
    const declared = declaredLength(response.headers['content-length']);
    if (declared === undefined) {
      response.body.destroy();
      throw new NodefpmError('NODEFPM_GATEWAY_BAD_RESPONSE', `the CGI head has a Content-Length that is not one number: ${JSON.stringify(response.headers['content-length'])}`);
    }
    try {
      res.writeHead(response.status, response.statusText, flat);
    } catch (error) {
      response.body.destroy();
      throw new NodefpmError('NODEFPM_GATEWAY_BAD_RESPONSE', `the CGI head cannot be sent as HTTP: ${(error as Error).message}`, { cause: error });
    }
    if (req.method === 'HEAD' || response.status === 204 || response.status === 304) {
      // No body goes out: drop the app's rather than pull it through for nothing.
      response.body.destroy();
      res.end();
      return undefined;
    }
    const body = response.body;
    if (response.complete && body.readableLength <= WHOLE_BODY_BYTES && (declared === null || body.readableLength === declared)) {
      // The whole body came with END_REQUEST (a small response): it goes out with the head in one write,
      // without the stream plumbing of relay. A body at odds with its Content-Length is left to relay.
      const whole = body.read() as Buffer | null;
      res.end(whole ?? undefined);
      return undefined;
    }
    return this.#relayBody(exchange, body, declared);
  }

  /** X-Accel-Redirect: the file instead of the app's body, with the few headers nginx keeps. */
  async #sendAccelFile(exchange: Exchange, response: FcgiResponse, accel: string, mapping: ResolvedSendfile): Promise<void> {
    // The app's body is not wanted: drop it (its request still ends normally, and its connection is kept).
    response.body.destroy();
    const { file, stats } = await accelFile(accel, mapping);
    const headers = appHeaders(response, (lower) => ACCEL_KEPT.has(lower));
    this.#stats.sentFiles++;
    await sendFile(exchange.req, exchange.res, file, stats, { headers });
  }

  /** X-Sendfile: the file as the body, under the app's status and headers (as lighttpd does). */
  async #sendFileNamed(exchange: Exchange, response: FcgiResponse, sendfile: string, mapping: ResolvedSendfile): Promise<void> {
    response.body.destroy();
    const { file, stats } = await sendfileFile(sendfile, mapping);
    const headers = appHeaders(response, (lower) => !RESPONSE_DROPPED.has(lower) && lower !== 'x-sendfile' && lower !== 'x-lighttpd-send-file');
    this.#stats.sentFiles++;
    await sendFile(exchange.req, exchange.res, file, stats, { status: response.status, statusText: response.statusText, headers });
  }

  /** The body after the head, with backpressure; a failure once the head is out can only cut the response. */
  async #relayBody(exchange: Exchange, body: Readable, declared: number | null): Promise<void> {
    try {
      await relay(body, exchange.res, declared, () => {
        exchange.cut = true;
      });
    } catch (error) {
      if (exchange.clientGone) {
        this.#log.info('HTTP client closed the connection during the response; FastCGI request aborted', exchange.fields);
        return;
      }
      // Headers are out: the HTTP client can only see the response cut short (relay destroyed it).
      const cause = error as Error & { code?: string };
      this.#log.error(`response cut short: ${cause.message}`, { ...exchange.fields, code: cause.code, upstream: this.client.address });
      this.#count(502);
    }
  }

  // ---- answers of the front's own ----

  #count(status: number): void {
    this.#stats.errors[status] = (this.#stats.errors[status] ?? 0) + 1;
  }

  /** Answers an error with its status (502 for anything unexpected), or cuts the response when its head is out. Logs the reason. */
  #answerError(exchange: Exchange, error: unknown): void {
    const { res } = exchange;
    if (exchange.clientGone) {
      this.#log.info('HTTP client closed the connection before the response', { ...exchange.fields, reason: (error as Error).message });
      return;
    }
    const known = error instanceof NodefpmError;
    const status = known && error.status !== undefined ? error.status : 502;
    const fields: LogFields = { ...exchange.fields, status, code: known ? error.code : (error as { code?: string }).code, reason: (error as Error).message };
    if (status >= 500) fields.upstream = this.client.address;
    const level = status >= 500 ? 'error' : status === 413 ? 'warn' : 'info';
    this.#log[level](`${status} ${STATUS_CODES[status] ?? ''}: ${(error as Error).message}`, fields);
    this.#count(status);
    // A body refused part-way is still arriving: this connection cannot carry another request.
    if (status === 413) res.shouldKeepAlive = false;
    if (res.headersSent) {
      exchange.cut = true;
      res.destroy();
      return;
    }
    const text = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
    try {
      res.removeHeader('content-length');
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
      res.end(exchange.req.method === 'HEAD' ? undefined : text);
    } catch {
      res.destroy();
    }
  }
}

/**
 * Makes the HTTP front. `await gateway.listen('127.0.0.1:8080')` opens it; `await gateway.close()`
 * stops it. See GatewayOptions and docs/gateway.md.
 *
 *     const gateway = createGateway({ upstream: 'unix:/run/app.sock' });
 *     const { url } = await gateway.listen('127.0.0.1:8080');
 *     console.log(`open ${url}`);
 */
export function createGateway(options: GatewayOptions): Gateway {
  return new Gateway(options);
}
