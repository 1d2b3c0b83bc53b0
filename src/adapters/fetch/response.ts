// Responses as the fetch adapter sends them: a lightweight stand-in for the global Response, and what the writer needs from any Response.

import { STATUS_CODES } from 'node:http';
import { NodefpmError } from '../../errors.js';
import { HOP_BY_HOP_HEADERS } from '../../http/response.js';
import { installRequestStandIn, kNativeClass, uninstallRequestStandIn } from './request.js';

/** The platform's Response class, even when the lightweight stand-in has replaced the global. */
export const NativeResponse: typeof Response =
  (globalThis.Response as unknown as Record<symbol, typeof Response>)[kNativeClass] ?? globalThis.Response;

const kNative = Symbol('nodefpm.nativeResponse');
const kBody = Symbol('nodefpm.body');
const kStatus = Symbol('nodefpm.status');
const kStatusText = Symbol('nodefpm.statusText');
const kList = Symbol('nodefpm.headerList');
const kUsed = Symbol('nodefpm.used');
const kMaterialize = Symbol('nodefpm.materialize');

/** What the Response constructor takes as a body. */
type BodyInit = ConstructorParameters<typeof Response>[0];
type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;
type Source = string | Uint8Array | null;

const EMPTY_LIST: HeaderList = Object.freeze([]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** After trimming, a header value may hold neither NUL, CR, LF nor anything above U+00FF (a ByteString). */
const BAD_VALUE = /[\0\r\n]|[^\0-\xff]/;
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;
/** What the fetch standard gives a string body with no Content-Type of its own. */
const TEXT_PLAIN = 'text/plain;charset=UTF-8';

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The headers of a ResponseInit as a list, when the fast path can take them exactly as the real
 * Response would: a Headers object (copied now, as the constructor copies it), or a plain object of
 * string values with legal, distinct names. null sends the caller to the real constructor, which
 * handles (or rejects) everything else itself.
 */
function headerListOf(headers: unknown): HeaderList | null {
  if (headers instanceof Headers) {
    const list: Array<[string, string]> = [];
    for (const entry of headers) list.push(entry);
    return list;
  }
  if (typeof headers !== 'object' || headers === null || !isPlainObject(headers)) return null;
  const list: Array<[string, string]> = [];
  const record = headers as Record<string, unknown>;
  for (const name in record) {
    let value = record[name];
    if (typeof value !== 'string' || !TOKEN.test(name)) return null;
    value = value.replace(EDGE_WHITESPACE, '');
    if (BAD_VALUE.test(value as string)) return null;
    const lower = name.toLowerCase();
    // Two spellings of one name are combined by Headers; leave that to it.
    for (const [existing] of list) if (existing === lower) return null;
    list.push([lower, value as string]);
  }
  return list;
}

function hasHeader(list: HeaderList, name: string): boolean {
  for (const [existing] of list) if (existing === name) return true;
  return false;
}

/**
 * A Response that is only a record (status, header list, string or bytes body) until the application
 * reads one of its properties other than status, statusText, ok and bodyUsed; then the real Response
 * is made from the record and everything forwards to it. The adapter writes an untouched one straight
 * from the record: no Headers, no ReadableStream, which is most of a small response's cost.
 * `instanceof Response` holds for it (and, through Symbol.hasInstance, for real Responses too when it
 * stands in for the global). Bodies other than strings and bytes, and inits the fast path cannot read
 * exactly, make the real Response at once, so behaviour never differs: only cost does.
 */
export class LightweightResponse {
  [kNative]: Response | undefined;
  [kBody]: Source;
  [kStatus]: number;
  [kStatusText]: string;
  [kList]: HeaderList;
  [kUsed]: boolean;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    this[kNative] = undefined;
    this[kBody] = null;
    this[kStatus] = 200;
    this[kStatusText] = '';
    this[kList] = EMPTY_LIST;
    this[kUsed] = false;
    if (!takeRecord(this, body, init)) this[kNative] = new NativeResponse(body, init);
  }

  get status(): number {
    const native = this[kNative];
    return native === undefined ? this[kStatus] : native.status;
  }

  get statusText(): string {
    const native = this[kNative];
    return native === undefined ? this[kStatusText] : native.statusText;
  }

  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }

  get bodyUsed(): boolean {
    const native = this[kNative];
    return native === undefined ? this[kUsed] : native.bodyUsed;
  }

  /** The real Response, made once from the record. */
  [kMaterialize](): Response {
    const existing = this[kNative];
    if (existing !== undefined) return existing;
    const body = this[kBody];
    const native = new NativeResponse(body, { status: this[kStatus], statusText: this[kStatusText], headers: this[kList] as Array<[string, string]> });
    // Sent already: the real one must report its body used too.
    if (this[kUsed] && native.body !== null) void native.body.cancel().catch(() => undefined);
    this[kNative] = native;
    return native;
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    // Standing in for the global Response, real Responses (from fetch(), Response.json()) must pass too;
    // a subclass keeps the ordinary check.
    if (this !== LightweightResponse) return Function.prototype[Symbol.hasInstance].call(this, value);
    return value instanceof NativeResponse;
  }
}

/**
 * True for a LightweightResponse (or a subclass's instance). Not instanceof: standing in for the global,
 * the class answers instanceof for real Responses too.
 */
function isLight(value: unknown): value is LightweightResponse {
  return typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, kUsed);
}

/** Fills `target` from (body, init) when the record can represent them exactly; false otherwise. */
function takeRecord(target: LightweightResponse, body: unknown, init: unknown): boolean {
  let source: Source;
  if (body === undefined || body === null) source = null;
  else if (typeof body === 'string') source = body;
  else if (body instanceof Uint8Array) source = body;
  else if (body instanceof ArrayBuffer) source = new Uint8Array(body);
  else return false;
  let status = 200;
  let statusText = '';
  let list = EMPTY_LIST;
  if (init !== undefined && init !== null) {
    if (typeof init !== 'object') return false;
    if (isLight(init)) {
      // new Response(body, otherResponse): Hono's HEAD answers are made this way.
      if (init[kNative] !== undefined) return false;
      status = init[kStatus];
      statusText = init[kStatusText];
      list = init[kList];
    } else {
      if (!isPlainObject(init)) return false;
      const options = init as ResponseInit;
      if (options.status !== undefined) {
        const value = options.status;
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 200 || value > 599) return false;
        status = value;
      }
      if (options.statusText !== undefined) {
        if (typeof options.statusText !== 'string' || !REASON_PHRASE.test(options.statusText)) return false;
        statusText = options.statusText;
      }
      if (options.headers !== undefined) {
        const taken = headerListOf(options.headers);
        if (taken === null) return false;
        list = taken;
      }
    }
  }
  // A body with a null-body status is a TypeError from the real constructor: let it throw that.
  if (source !== null && (status === 204 || status === 205 || status === 304)) return false;
  if (typeof source === 'string' && !hasHeader(list, 'content-type')) list = [...list, ['content-type', TEXT_PLAIN]];
  target[kBody] = source;
  target[kStatus] = status;
  target[kStatusText] = statusText;
  target[kList] = list;
  return true;
}

// Everything else (headers, body, clone(), text(), ...) forwards to the real Response.
const OWN = new Set(['constructor', 'status', 'statusText', 'ok', 'bodyUsed']);
for (const name of Object.getOwnPropertyNames(NativeResponse.prototype)) {
  if (OWN.has(name)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(NativeResponse.prototype, name)!;
  if (descriptor.get !== undefined) {
    Object.defineProperty(LightweightResponse.prototype, name, {
      get(this: LightweightResponse) {
        return (this[kMaterialize]() as unknown as Record<string, unknown>)[name];
      },
      configurable: true,
    });
  } else if (typeof descriptor.value === 'function') {
    Object.defineProperty(LightweightResponse.prototype, name, {
      value(this: LightweightResponse, ...args: unknown[]) {
        const native = this[kMaterialize]() as unknown as Record<string, (...a: unknown[]) => unknown>;
        return native[name]!(...args);
      },
      writable: true,
      configurable: true,
    });
  }
}
// The platform reads a Response's internal slots through symbol-keyed properties: forward those as well.
for (const key of Reflect.ownKeys(new NativeResponse(''))) {
  if (typeof key !== 'symbol' || key in LightweightResponse.prototype) continue;
  Object.defineProperty(LightweightResponse.prototype, key, {
    get(this: LightweightResponse) {
      return (this[kMaterialize]() as unknown as Record<symbol, unknown>)[key];
    },
    configurable: true,
  });
}
Object.defineProperty(LightweightResponse.prototype, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: LightweightResponse, depth: number, options: object, inspect: (value: unknown, options: object) => string) {
    const native = this[kNative];
    if (native !== undefined) return inspect(native, { ...options, depth: depth < 0 ? null : depth });
    const shown = { status: this[kStatus], statusText: this[kStatusText], headers: this[kList], body: this[kBody] };
    return `Response (nodefpm, lightweight) ${inspect(shown, { ...options, depth: depth < 0 ? null : depth - 1 })}`;
  },
});
Object.defineProperty(LightweightResponse, kNativeClass, { value: NativeResponse });
// Statics (Response.json, Response.redirect, Response.error) come from the real class.
Object.setPrototypeOf(LightweightResponse, NativeResponse);
Object.setPrototypeOf(LightweightResponse.prototype, NativeResponse.prototype);

/**
 * Replaces the globals as @hono/node-server does by default: `globalThis.Response` becomes the
 * lightweight stand-in (so `new Response(...)` is the cheap record) and `globalThis.Request` the
 * RequestStandIn (so `new Request(request)` copies lazy Requests). Idempotent.
 */
export function installGlobalObjects(): void {
  installLightweightResponse();
  installRequestStandIn();
}

/** Puts the platform's Response and Request back as the globals. */
export function restoreGlobalObjects(): void {
  uninstallLightweightResponse();
  uninstallRequestStandIn();
}

/** Makes `globalThis.Response` the lightweight stand-in. Idempotent. */
export function installLightweightResponse(): void {
  if (globalThis.Response === (LightweightResponse as unknown)) return;
  Object.defineProperty(globalThis, 'Response', { value: LightweightResponse, writable: true, configurable: true, enumerable: false });
}

/** Puts the platform's Response back as the global (for tests, and for applications that must have it). */
export function uninstallLightweightResponse(): void {
  if (globalThis.Response !== (LightweightResponse as unknown)) return;
  Object.defineProperty(globalThis, 'Response', { value: NativeResponse, writable: true, configurable: true, enumerable: false });
}

/** True for a LightweightResponse that is still only a record. */
export function isRecordOnly(response: unknown): boolean {
  return isLight(response) && response[kNative] === undefined;
}

// ---- what the writer needs ----

/** Undici keeps a Response's body as { stream, source, length } under this symbol; read, never written. */
const STATE_KEY = Reflect.ownKeys(new NativeResponse('')).find((key): key is symbol => typeof key === 'symbol' && key.description === 'state');

/** The string or bytes a real Response was made from, when its stream is untouched; undefined otherwise. */
function sourceOf(response: Response): string | Uint8Array | undefined {
  if (STATE_KEY === undefined) return undefined;
  const state = (response as unknown as Record<symbol, { body?: { source?: unknown; stream?: ReadableStream } | null } | undefined>)[STATE_KEY];
  const body = state?.body;
  if (body === undefined || body === null) return undefined;
  const source = body.source;
  if (typeof source !== 'string' && !(source instanceof Uint8Array)) return undefined;
  return source;
}

/** What the writer sends: the CGI head's pieces and the body, whole when known, else as a stream. */
export interface ResponseParts {
  status: number;
  /** The reason phrase to send: statusText, or the standard one for the status. */
  reason: string;
  /** "name: value\r\n" per header, Set-Cookie one line per cookie, hop-by-hop headers left out. */
  lines: string;
  /** The application set Content-Length itself. */
  hasContentLength: boolean;
  /** The whole body (null: none) when known without reading a stream; undefined when `stream` must be read. */
  source: Source | undefined;
  stream: ReadableStream<Uint8Array> | null;
}

function reasonFor(status: number, statusText: string): string {
  return statusText !== '' ? statusText : (STATUS_CODES[status] ?? 'Unknown');
}

function bodyUsedError(): NodefpmError {
  return new NodefpmError(
    'NODEFPM_FETCH_BODY_USED',
    'the handler returned a Response whose body was already read or locked; return a new Response (or response.clone() before reading it)',
  );
}

/**
 * Takes what the writer needs from `response` and marks its body used (the server is its one reader).
 * Throws NODEFPM_FETCH_BODY_USED when the body was already used or locked.
 */
export function takeResponseParts(response: Response): ResponseParts {
  if (isLight(response) && response[kNative] === undefined) {
    if (response[kUsed]) throw bodyUsedError();
    response[kUsed] = true;
    const status = response[kStatus];
    let lines = '';
    let hasContentLength = false;
    for (const [name, value] of response[kList]) {
      if (HOP_BY_HOP_HEADERS.has(name)) continue;
      if (name === 'content-length') hasContentLength = true;
      lines += `${name}: ${value}\r\n`;
    }
    return { status, reason: reasonFor(status, response[kStatusText]), lines, hasContentLength, source: response[kBody], stream: null };
  }

  const native = isLight(response) ? response[kMaterialize]() : response;
  const stream = native.body;
  if (native.bodyUsed || (stream !== null && stream.locked)) throw bodyUsedError();
  const status = native.status;
  let lines = '';
  let hasContentLength = false;
  const headers = native.headers;
  for (const [name, value] of headers) {
    if (name === 'set-cookie' || HOP_BY_HOP_HEADERS.has(name)) continue;
    if (name === 'content-length') hasContentLength = true;
    lines += `${name}: ${value}\r\n`;
  }
  for (const cookie of headers.getSetCookie()) lines += `set-cookie: ${cookie}\r\n`;
  let source: Source | undefined = stream === null ? null : sourceOf(native);
  if (source !== undefined && stream !== null) {
    // Sent from its source: the stream is not read, so cancel it to mark the body used, as reading would.
    stream.cancel().catch(() => undefined);
  }
  if (isLight(response)) response[kUsed] = true;
  return { status, reason: reasonFor(status, native.statusText), lines, hasContentLength, source, stream: source === undefined ? stream : null };
}
