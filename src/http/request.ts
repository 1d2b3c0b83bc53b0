// The native Request: what the web server sent (params, headers, addresses, scheme) and the body, all read lazily.

import { Role, type Params } from '../protocol/index.js';
import type { Exchange } from '../server/exchange.js';
import { Body, type BodyLimits } from './body.js';

/** Request headers with lower-case names, as Node's http gives them. */
export type IncomingHeaders = Record<string, string>;

/**
 * Builds HTTP headers from CGI params: HTTP_ACCEPT_LANGUAGE becomes accept-language; CONTENT_TYPE and
 * CONTENT_LENGTH (which CGI keeps without the HTTP_ prefix) become content-type and content-length,
 * taking precedence over the HTTP_CONTENT_* duplicates some web servers also send.
 */
export function headersFromParams(params: Params): IncomingHeaders {
  const headers: IncomingHeaders = Object.create(null) as IncomingHeaders;
  for (const name in params) {
    if (name.length > 5 && name.startsWith('HTTP_')) {
      headers[name.slice(5).toLowerCase().replaceAll('_', '-')] = params[name]!;
    }
  }
  const contentType = params.CONTENT_TYPE;
  if (contentType !== undefined && contentType !== '') headers['content-type'] = contentType;
  else if (headers['content-type'] === '') delete headers['content-type'];
  const contentLength = params.CONTENT_LENGTH;
  if (contentLength !== undefined && contentLength !== '') headers['content-length'] = contentLength;
  else if (headers['content-length'] === '') delete headers['content-length'];
  return headers;
}

function isOn(value: string | undefined): boolean {
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return lower === 'on' || lower === '1' || lower === 'true' || lower === 'yes';
}

function toPort(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  return Number.isInteger(port) ? port : undefined;
}

/**
 * One request, as the native handler sees it. Everything is computed from the FastCGI params on first
 * use. The body is `req.body` (also iterable straight from `req`), readable once, in bounded ways.
 */
export class Request implements AsyncIterable<Buffer> {
  readonly #exchange: Exchange;
  readonly #limits: BodyLimits;
  #headers: IncomingHeaders | null = null;
  #body: Body | null = null;
  #data: Body | null = null;

  constructor(exchange: Exchange, limits: BodyLimits) {
    this.#exchange = exchange;
    this.#limits = limits;
  }

  /** Every FastCGI param, as the web server sent it (values read as Latin-1, so no byte is lost). Decoded on first use. */
  get params(): Params {
    return this.#exchange.params;
  }

  /** One FastCGI param by its exact name (e.g. "SCRIPT_FILENAME"), without decoding the others. */
  param(name: string): string | undefined {
    return this.#exchange.param(name);
  }

  /** The FastCGI request id on its connection (small integers, reused). */
  get requestId(): number {
    return this.#exchange.id;
  }

  /** The FastCGI role: 1 Responder, 2 Authorizer, 3 Filter. */
  get role(): number {
    return this.#exchange.role;
  }

  /** REQUEST_METHOD, upper-case as sent ("GET" when the web server sent none). */
  get method(): string {
    return this.param('REQUEST_METHOD') ?? 'GET';
  }

  /**
   * The request target as the client sent it: REQUEST_URI, with path and query. Web servers that do
   * not send REQUEST_URI get SCRIPT_NAME + PATH_INFO + ?QUERY_STRING instead.
   */
  get url(): string {
    const uri = this.param('REQUEST_URI');
    if (uri !== undefined && uri !== '') return uri;
    const query = this.param('QUERY_STRING');
    const path = (this.param('SCRIPT_NAME') ?? '') + (this.param('PATH_INFO') ?? '') || '/';
    return query === undefined || query === '' ? path : `${path}?${query}`;
  }

  /** The path part of url (before "?"), still percent-encoded. */
  get path(): string {
    const url = this.url;
    const mark = url.indexOf('?');
    return mark === -1 ? url : url.slice(0, mark);
  }

  /** QUERY_STRING without the "?" ("" when there is none). */
  get queryString(): string {
    return this.param('QUERY_STRING') ?? '';
  }

  /** HTTP request headers with lower-case names, rebuilt from the HTTP_* params. */
  get headers(): IncomingHeaders {
    if (this.#headers === null) this.#headers = headersFromParams(this.params);
    return this.#headers;
  }

  /** One request header by name (any case). */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }

  /** CONTENT_LENGTH as a number, or null when the body's length is not declared (chunked uploads). */
  get contentLength(): number | null {
    const value = this.param('CONTENT_LENGTH');
    if (value === undefined || value === '') return null;
    const length = Number(value);
    return Number.isSafeInteger(length) && length >= 0 ? length : null;
  }

  /** CONTENT_TYPE, or undefined when absent or empty. */
  get contentType(): string | undefined {
    const value = this.param('CONTENT_TYPE');
    return value === undefined || value === '' ? undefined : value;
  }

  /** SERVER_PROTOCOL, e.g. "HTTP/1.1". */
  get protocol(): string {
    return this.param('SERVER_PROTOCOL') ?? 'HTTP/1.1';
  }

  /** The client's address (REMOTE_ADDR). */
  get remoteAddress(): string | undefined {
    return this.param('REMOTE_ADDR');
  }

  get remotePort(): number | undefined {
    return toPort(this.param('REMOTE_PORT'));
  }

  /** The address the web server accepted the client on (SERVER_ADDR). */
  get serverAddress(): string | undefined {
    return this.param('SERVER_ADDR');
  }

  get serverPort(): number | undefined {
    return toPort(this.param('SERVER_PORT'));
  }

  /** SERVER_NAME, the virtual host's name as the web server knows it. */
  get serverName(): string | undefined {
    return this.param('SERVER_NAME');
  }

  /** "https" when the web server says the client connection is secure (HTTPS=on, or REQUEST_SCHEME=https), else "http". */
  get scheme(): 'http' | 'https' {
    if (isOn(this.param('HTTPS'))) return 'https';
    return this.param('REQUEST_SCHEME')?.toLowerCase() === 'https' ? 'https' : 'http';
  }

  get secure(): boolean {
    return this.scheme === 'https';
  }

  /** Aborted when the web server aborts the request or drops its connection. */
  get signal(): AbortSignal {
    return this.#exchange.signal;
  }

  get aborted(): boolean {
    return this.#exchange.aborted;
  }

  /** The body (FCGI_STDIN). */
  get body(): Body {
    if (this.#body === null) this.#body = new Body(this.#exchange.stdin, this.#limits);
    return this.#body;
  }

  /** The Filter role's file (FCGI_DATA); null for other roles. */
  get data(): Body | null {
    if (this.#data === null && this.#exchange.data !== null) this.#data = new Body(this.#exchange.data, this.#limits);
    return this.#data;
  }

  /** True for the Authorizer role, which gets no body (Apache sends no FCGI_STDIN at all). */
  get isAuthorizer(): boolean {
    return this.#exchange.role === Role.Authorizer;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.body[Symbol.asyncIterator]();
  }

  /** The body as UTF-8 text, at most bodyLimit bytes. */
  text(options?: { limit?: number }): Promise<string> {
    return this.body.text(options);
  }

  /** The body parsed as JSON, at most bodyLimit bytes; malformed JSON is a 400 error. */
  json<T = unknown>(options?: { limit?: number }): Promise<T> {
    return this.body.json<T>(options);
  }

  /** The body in one Buffer, at most bodyLimit bytes. */
  bytes(options?: { limit?: number }): Promise<Buffer> {
    return this.body.bytes(options);
  }

  /** The next body line without its terminator, or null at the end (see Body.readLine). */
  readLine(options?: { limit?: number }): Promise<string | null> {
    return this.body.readLine(options);
  }

  /** The remaining body lines (see Body.lines). */
  lines(options?: { limit?: number }): AsyncGenerator<string, void, undefined> {
    return this.body.lines(options);
  }
}
