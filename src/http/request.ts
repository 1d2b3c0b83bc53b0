// The native Request: what the web server sent (params, headers, addresses, scheme) and the body, all read lazily.

import { Role, type Params } from '../protocol/index.js';
import type { Exchange } from '../server/exchange.js';
import { Body, type BodyLimits } from './body.js';
import { DEFAULT_MAX_COOKIE_BYTES, requestCookies, verifiedCookies, verifySignedCookie, type CookieSettings } from './cookies.js';
import { silentLogger } from '../log.js';
import type { Form, FormOptions, StreamFormOptions, TempFileFormOptions } from './form.js';
import { FormState, type ClosingResponse } from './form-reader.js';
import { parseQuery, type ParsedQuery, type Query } from './query.js';
import { defaultRequestOptions, type ResolvedRequestOptions } from './request-options.js';
import type { StreamedFile, UploadedFile } from './uploads.js';
import { defaultPort, mountPoint, requestUrl, type MountPoint } from './url.js';

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

/** Cookie settings of a Request made without any (tests, adapters): the default bound, no keys, no log. */
const defaultCookieSettings: CookieSettings = Object.freeze({ maxCookieBytes: DEFAULT_MAX_COOKIE_BYTES, signer: null, log: silentLogger });

/** Request ids: the pid and the process start time (pids are reused), then a counter, all base 36. */
const ID_PREFIX = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;
let idCounter = 0;

/**
 * One request, as the native handler sees it. Everything is computed from the FastCGI params on first
 * use. The body is `req.body` (also iterable straight from `req`), readable once, in bounded ways.
 */
export class Request implements AsyncIterable<Buffer> {
  readonly #exchange: Exchange;
  readonly #limits: BodyLimits;
  readonly #cookieSettings: CookieSettings;
  #cookies: Record<string, string> | null = null;
  #signedCookies: Record<string, string> | null = null;
  #id: string | null = null;
  #headers: IncomingHeaders | null = null;
  #body: Body | null = null;
  #data: Body | null = null;
  readonly #options: ResolvedRequestOptions;
  #fullUrl: URL | null = null;
  #mount: MountPoint | null = null;
  #query: ParsedQuery | null = null;
  #searchParams: URLSearchParams | null = null;
  #response: ClosingResponse | null = null;
  #forms: FormState | null = null;

  constructor(
    exchange: Exchange,
    limits: BodyLimits,
    cookieSettings: CookieSettings = defaultCookieSettings,
    options: ResolvedRequestOptions = defaultRequestOptions,
  ) {
    this.#exchange = exchange;
    this.#limits = limits;
    this.#cookieSettings = cookieSettings;
    this.#options = options;
  }

  /** @internal The handler ties the Response to its Request: req.form() removes its temp files when the response closes. */
  attachResponse(response: ClosingResponse): void {
    this.#response = response;
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

  /**
   * A process-unique id for this request ("<pid>-<start>-<n>"), made on first use; logs, FCGI_STDERR
   * lines and error pages carry it, so one failure can be found in all three.
   */
  get id(): string {
    if (this.#id === null) this.#id = `${ID_PREFIX}${(++idCounter).toString(36)}`;
    return this.#id;
  }

  /**
   * The request's cookies (HTTP_COOKIE parsed once; see parseCookieHeader), in a null-prototype
   * object. A Cookie header over maxCookieBytes throws NODEFPM_COOKIE_HEADER_TOO_LARGE (431).
   */
  get cookies(): Record<string, string> {
    if (this.#cookies === null) this.#cookies = requestCookies(this.param('HTTP_COOKIE'), this.#cookieSettings.maxCookieBytes);
    return this.#cookies;
  }

  /**
   * The value of a cookie set with `res.setCookie(name, value, { signed: true })`, verified with the
   * `keys` option (every key verifies; the first signs). Undefined when the cookie is absent. A
   * signature that does not verify — tampered, a key no longer in `keys`, or no signature — throws
   * NODEFPM_COOKIE_SIGNATURE (400) and is logged; use req.signedCookies for a lookup that never throws.
   */
  signedCookie(name: string): string | undefined {
    const raw = this.cookies[name];
    return raw === undefined ? undefined : verifySignedCookie(name, raw, this.#cookieSettings, this.id);
  }

  /** Only the cookies whose signatures verify, unsigned (forged-looking ones are logged, once, and left out). Never throws for a bad signature. */
  get signedCookies(): Record<string, string> {
    if (this.#signedCookies === null) this.#signedCookies = verifiedCookies(this.cookies, this.#cookieSettings, this.id);
    return this.#signedCookies;
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

  /** The body (FCGI_STDIN). An Authorizer's is empty and ends at once (see Exchange: Apache sends no FCGI_STDIN). */
  get body(): Body {
    if (this.#body === null) this.#body = new Body(this.#exchange.stdin, this.#limits, this.#exchange.declaredLength);
    return this.#body;
  }

  /** The Filter role's file (FCGI_DATA); null for other roles. */
  get data(): Body | null {
    if (this.#data === null && this.#exchange.data !== null) this.#data = new Body(this.#exchange.data, this.#limits, this.#exchange.declaredDataLength);
    return this.#data;
  }

  /** True for the Authorizer role, which gets no body (Apache sends no FCGI_STDIN at all). */
  get isAuthorizer(): boolean {
    return this.#exchange.role === Role.Authorizer;
  }

  /**
   * Filter role: when the file in req.data was last modified (FCGI_DATA_LAST_MOD, epoch seconds), so a
   * filter can answer from a cache without reading the data. Null when absent or not a number.
   */
  get dataLastModified(): Date | null {
    const value = this.param('FCGI_DATA_LAST_MOD');
    return value !== undefined && /^\d{1,15}$/.test(value) ? new Date(Number(value) * 1000) : null;
  }

  /** Filter role: the size of the file in req.data (FCGI_DATA_LENGTH); null when absent or not a length. */
  get dataLength(): number | null {
    const length = this.#exchange.declaredDataLength;
    return length >= 0 ? length : null;
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
  // ---- URL, query and forms (src/http/url.ts, query.ts, form.ts; docs/request.md) ----

  /**
   * The absolute URL: scheme (HTTPS, REQUEST_SCHEME), host (HTTP_HOST, else SERVER_NAME[:SERVER_PORT]),
   * then REQUEST_URI. Built on first use; a Host or target that cannot make a URL is NODEFPM_BAD_URL (400).
   */
  get fullUrl(): URL {
    return (this.#fullUrl ??= requestUrl(this));
  }

  /** The host with its port when not the scheme's default ("example.com", "example.com:8080"). */
  get host(): string {
    return this.fullUrl.host;
  }

  /** The host name without the port (an IPv6 address keeps its brackets). */
  get hostname(): string {
    return this.fullUrl.hostname;
  }

  /** The port the client addressed: the one in the host, else the scheme's default. */
  get port(): number {
    const port = this.fullUrl.port;
    return port === '' ? defaultPort(this.scheme) : Number(port);
  }

  /** Where the web server mounted the app, decoded, without a trailing slash ("" at the root). See docs/request.md. */
  get basePath(): string {
    return (this.#mount ??= mountPoint(this, this.#options.basePath)).basePath;
  }

  /** The decoded path below basePath ("/users/42"); basePath + pathInfo is the whole path. */
  get pathInfo(): string {
    return (this.#mount ??= mountPoint(this, this.#options.basePath)).pathInfo;
  }

  /**
   * The query parameters (QUERY_STRING, else REQUEST_URI's), in a null-prototype object: a repeated
   * name holds every value in order. Strictly decoded ("+" is a space): bad percent-encoding is
   * NODEFPM_QUERY_MALFORMED, more than maxQueryParams pairs NODEFPM_QUERY_TOO_MANY_PARAMS (both 400).
   */
  get query(): Query {
    return this.#parsedQuery().query;
  }

  /** The same parameters as a URLSearchParams (made once; decoded as req.query is). */
  get searchParams(): URLSearchParams {
    return (this.#searchParams ??= new URLSearchParams(this.#parsedQuery().pairs as Array<[string, string]>));
  }

  #parsedQuery(): ParsedQuery {
    if (this.#query === null) {
      let query = this.param('QUERY_STRING');
      if (query === undefined) {
        const url = this.url;
        const mark = url.indexOf('?');
        query = mark === -1 ? '' : url.slice(mark + 1);
      }
      this.#query = parseQuery(query, this.#options.maxQueryParams);
    }
    return this.#query;
  }

  /**
   * Reads the body as a form: application/x-www-form-urlencoded or multipart/form-data, as a stream,
   * within the form limits (the handler's, overridden by `options`). Files go to temp files, removed
   * when the response ends; with `onFile` they are handed over as streams instead. Over a limit:
   * a 413 NodefpmError; malformed input or another Content-Type: 400. See docs/request.md.
   */
  form(options: StreamFormOptions): Promise<Form<StreamedFile>>;
  form(options?: TempFileFormOptions): Promise<Form<UploadedFile>>;
  form(options?: FormOptions): Promise<Form<UploadedFile | StreamedFile>> {
    this.#forms ??= new FormState(this.#options.form, this.#response, this.aborted);
    return this.#forms.read(this, options);
  }

  lines(options?: { limit?: number }): AsyncGenerator<string, void, undefined> {
    return this.body.lines(options);
  }
}
