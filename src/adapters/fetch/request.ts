// The fetch Request of one exchange, built lazily: method, url, headers and signal come straight from the params; a real Request (with a body stream over FCGI_STDIN) only when the handler touches anything else.

import { Buffer } from 'node:buffer';
import { headersFromParams } from '../../http/request.js';
import { encodePairs } from '../../protocol/index.js';
import type { Exchange } from '../../server/exchange.js';
import { readTargetParams, requestUrl, targetLookup, targetMethod, type TargetParams } from './url.js';

/** Set on a class that stands in for a global (Request, Response) to name the platform's own class. */
export const kNativeClass = Symbol.for('nodefpm.nativeClass');

/** The platform's Request class, even when a lightweight stand-in has replaced the global. */
export const NativeRequest: typeof Request = (globalThis.Request as unknown as Record<symbol, typeof Request>)[kNativeClass] ?? globalThis.Request;

const kExchange = Symbol('nodefpm.exchange');
const kHost = Symbol('nodefpm.fallbackHost');
const kMethod = Symbol('nodefpm.method');
const kTarget = Symbol('nodefpm.targetParams');
const kUrl = Symbol('nodefpm.url');
const kHeaders = Symbol('nodefpm.headers');
const kNative = Symbol('nodefpm.nativeRequest');
const kBodyRead = Symbol('nodefpm.bodyReadDirectly');
const kResponded = Symbol('nodefpm.responded');
const kPending = Symbol('nodefpm.pendingRead');
const kMaterialize = Symbol('nodefpm.materialize');

/** Methods the Request constructor refuses (forbidden methods); the lazy Request still reports them. */
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);

function normalizeMethod(method: string | undefined): string {
  if (method === undefined || method === '') return 'GET';
  switch (method) {
    case 'GET':
    case 'POST':
    case 'HEAD':
    case 'PUT':
    case 'DELETE':
    case 'OPTIONS':
    case 'PATCH':
      return method;
  }
  // The fetch standard upper-cases these six, and only these, whatever case they came in.
  const upper = method.toUpperCase();
  switch (upper) {
    case 'DELETE':
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'POST':
    case 'PUT':
      return upper;
    default:
      return method;
  }
}

function afterEndError(): TypeError {
  return new TypeError('the request body was read after the response was sent: read it before returning the Response (or from its body stream)');
}

function bodyUnusable(): TypeError {
  return new TypeError('Body is unusable: the request body has already been read');
}

/**
 * The lazy Request. Its prototype chain runs to Request.prototype, so `request instanceof Request`
 * holds; what it does not answer itself it forwards to a real Request made on first need.
 */
class LazyRequest {
  [kExchange]: Exchange;
  [kHost]: string;
  [kMethod]: string | undefined = undefined;
  [kUrl]: string | undefined = undefined;
  /** The params the method and URL come from, read together on first need. */
  [kTarget]: TargetParams | undefined = undefined;
  [kHeaders]: Headers | undefined = undefined;
  [kNative]: Request | undefined = undefined;
  /** The body was taken by text()/json()/arrayBuffer()/bytes()/blob() without a real Request. */
  [kBodyRead] = false;
  /** The response was sent: the body can no longer arrive. */
  [kResponded] = false;
  /** Fails a body read that is waiting for FCGI_STDIN when the response is sent. */
  [kPending]: ((error: unknown) => void) | null = null;

  constructor(exchange: Exchange, fallbackHost: string) {
    this[kExchange] = exchange;
    this[kHost] = fallbackHost;
  }

  get method(): string {
    return (this[kMethod] ??= normalizeMethod(targetMethod(targetParams(this))));
  }

  get url(): string {
    if (this[kUrl] === undefined) {
      this[kUrl] = requestUrl(targetLookup(targetParams(this)), this[kHost]);
    }
    return this[kUrl];
  }

  get headers(): Headers {
    return (this[kHeaders] ??= headersOf(this[kExchange]));
  }

  get signal(): AbortSignal {
    return this[kExchange].signal;
  }

  get bodyUsed(): boolean {
    if (this[kBodyRead]) return true;
    return this[kNative]?.bodyUsed ?? false;
  }

  text(): Promise<string> {
    const direct = readDirect(this);
    return direct === null ? this[kMaterialize]().text() : direct.then((bytes) => bytes.toString('utf8'));
  }

  json(): Promise<unknown> {
    const direct = readDirect(this);
    return direct === null ? this[kMaterialize]().json() : direct.then((bytes) => JSON.parse(bytes.toString('utf8')) as unknown);
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    const direct = readDirect(this);
    return direct === null
      ? this[kMaterialize]().arrayBuffer()
      : direct.then((bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  }

  bytes(): Promise<Uint8Array> {
    const direct = readDirect(this);
    if (direct === null) return (this[kMaterialize]() as Request & { bytes(): Promise<Uint8Array> }).bytes();
    // A copy, as the standard's bytes() gives: the chunks may be views of a socket buffer.
    return direct.then((bytes) => new Uint8Array(bytes));
  }

  blob(): Promise<Blob> {
    const direct = readDirect(this);
    if (direct === null) return this[kMaterialize]().blob();
    const type = this.headers.get('content-type') ?? '';
    return direct.then((bytes) => new Blob([bytes], type === '' ? undefined : { type }));
  }

  /** The real Request, made once: same method, url, headers and signal, the body as a stream over FCGI_STDIN. */
  [kMaterialize](): Request {
    const existing = this[kNative];
    if (existing !== undefined) return existing;
    const exchange = this[kExchange];
    const method = this.method;
    const forbidden = FORBIDDEN_METHODS.has(method.toUpperCase());
    const init: RequestInit & { duplex?: 'half' } = { method: forbidden ? 'GET' : method, headers: this.headers, signal: exchange.signal };
    const hasBody = !forbidden && method !== 'GET' && method !== 'HEAD';
    if (hasBody) {
      init.body = this[kBodyRead] ? new ReadableStream() : bodyStream(this);
      init.duplex = 'half';
    }
    const native = new NativeRequest(this.url, init);
    if (forbidden) Object.defineProperty(native, 'method', { value: method });
    // A body already taken directly is spent: the real Request must say so too (bodyUsed, clone() refusing).
    if (hasBody && this[kBodyRead]) void native.body?.cancel();
    this[kNative] = native;
    return native;
  }
}

function targetParams(request: LazyRequest): TargetParams {
  if (request[kTarget] === undefined) {
    const exchange = request[kExchange];
    request[kTarget] = readTargetParams(exchange.paramsBlock?.bytes ?? encodePairs(exchange.params));
  }
  return request[kTarget];
}

function headersOf(exchange: Exchange): Headers {
  const record = headersFromParams(exchange.params);
  try {
    return new Headers(record);
  } catch {
    // A value Headers refuses (a control character from an odd web server): keep the others.
    const headers = new Headers();
    for (const name in record) {
      try {
        headers.append(name, record[name]!);
      } catch {
        // dropped
      }
    }
    return headers;
  }
}

/** Waits for the next FCGI_STDIN chunk; fails at once if the response is sent meanwhile. */
function waitForChunk(request: LazyRequest): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    request[kPending] = reject;
    request[kExchange].stdin.read().then(
      (chunk) => {
        request[kPending] = null;
        resolve(chunk);
      },
      (error: unknown) => {
        request[kPending] = null;
        reject(error);
      },
    );
  });
}

/** The next chunk of the body: a Buffer, null at its end; throws the stream's error or afterEndError(). */
function nextChunk(request: LazyRequest): Buffer | null | Promise<Buffer | null> {
  const chunk = request[kExchange].stdin.readSync();
  if (chunk !== undefined) return chunk;
  if (request[kResponded]) throw afterEndError();
  return waitForChunk(request);
}

/** The whole body for the direct readers, or null when they must go through a real Request. */
function readDirect(request: LazyRequest): Promise<Buffer> | null {
  if (request[kNative] !== undefined) return null;
  const method = request.method;
  // GET and HEAD have no body (the real Request says so: ""), and forbidden methods none either.
  if (method === 'GET' || method === 'HEAD' || FORBIDDEN_METHODS.has(method.toUpperCase())) return null;
  if (request[kBodyRead]) return Promise.reject(bodyUnusable());
  request[kBodyRead] = true;
  return (async () => {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const next = nextChunk(request);
      const chunk = next instanceof Promise ? await next : next;
      if (chunk === null) break;
      chunks.push(chunk);
      total += chunk.length;
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
  })();
}

/**
 * FCGI_STDIN as a ReadableStream. High-water mark 0: a chunk is taken from the exchange only when the
 * reader asks, so a handler that reads slowly leaves the bytes queued in the exchange, which stops
 * reading the socket (backpressure). A default (not byte) stream: chunks may be views of socket
 * buffers, which a byte stream would transfer (detach) on enqueue.
 */
function bodyStream(request: LazyRequest): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      pull(controller): void | Promise<void> {
        let next: Buffer | null | Promise<Buffer | null>;
        try {
          next = nextChunk(request);
        } catch (error) {
          controller.error(error);
          return;
        }
        if (!(next instanceof Promise)) {
          if (next === null) controller.close();
          else controller.enqueue(next);
          return;
        }
        return next.then(
          (chunk) => {
            if (chunk === null) controller.close();
            else controller.enqueue(chunk);
          },
          (error: unknown) => controller.error(error),
        );
      },
      cancel(): void {
        // The handler does not want the rest: drop it so the connection keeps flowing.
        request[kExchange].stdin.discard();
      },
    },
    { highWaterMark: 0 },
  );
}

// ---- the prototype: everything else forwards to the real Request ----

const OWN = new Set(['constructor', 'method', 'url', 'headers', 'signal', 'bodyUsed', 'text', 'json', 'arrayBuffer', 'bytes', 'blob']);

for (const name of Object.getOwnPropertyNames(NativeRequest.prototype)) {
  if (OWN.has(name)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(NativeRequest.prototype, name)!;
  if (descriptor.get !== undefined) {
    Object.defineProperty(LazyRequest.prototype, name, {
      get(this: LazyRequest) {
        return (this[kMaterialize]() as unknown as Record<string, unknown>)[name];
      },
      configurable: true,
    });
  } else if (typeof descriptor.value === 'function') {
    Object.defineProperty(LazyRequest.prototype, name, {
      value(this: LazyRequest, ...args: unknown[]) {
        const native = this[kMaterialize]() as unknown as Record<string, (...a: unknown[]) => unknown>;
        return native[name]!(...args);
      },
      writable: true,
      configurable: true,
    });
  }
}

// The platform reads a Request's internal slots through symbol-keyed properties (new Request(request),
// fetch(request)): forward them too, so a lazy Request can be copied or sent like a real one.
for (const key of Reflect.ownKeys(new NativeRequest('http://localhost/'))) {
  if (typeof key !== 'symbol' || key in LazyRequest.prototype) continue;
  Object.defineProperty(LazyRequest.prototype, key, {
    get(this: LazyRequest) {
      return (this[kMaterialize]() as unknown as Record<symbol, unknown>)[key];
    },
    configurable: true,
  });
}

/**
 * Stands in for the global Request when the adapter replaces the globals (overrideGlobalObjects), as
 * @hono/node-server's does: `new Request(lazyRequest, init)` copies the real Request behind it (the
 * platform reads a Request's slots directly, which a lazy one forwards only as far as the platform's
 * version lets it), and a stream body without `duplex` gets `duplex: 'half'`, the only value there is.
 */
export class RequestStandIn extends NativeRequest {
  constructor(input: ConstructorParameters<typeof Request>[0], init?: RequestInit) {
    if (input instanceof LazyRequest) input = input[kMaterialize]();
    const body = (init as { body?: unknown } | undefined)?.body;
    if (body !== null && typeof (body as ReadableStream | undefined)?.getReader === 'function' && (init as { duplex?: string }).duplex === undefined) {
      init = { ...init, duplex: 'half' } as RequestInit;
    }
    super(input, init);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // As the global, Requests the platform makes itself (clone(), fetch internals) must pass too; a
    // subclass keeps the ordinary check.
    if (this !== RequestStandIn) return Function.prototype[Symbol.hasInstance].call(this, value);
    return value instanceof NativeRequest;
  }
}
Object.defineProperty(RequestStandIn, kNativeClass, { value: NativeRequest });
Object.defineProperty(RequestStandIn, 'name', { value: 'Request' });

Object.defineProperty(LazyRequest.prototype, 'constructor', { value: RequestStandIn, writable: true, configurable: true });
Object.defineProperty(LazyRequest.prototype, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: LazyRequest, depth: number, options: object, inspect: (value: unknown, options: object) => string) {
    const shown = { method: this.method, url: this.url, headers: this.headers, nativeRequest: this[kNative] };
    return `Request (nodefpm, lazy) ${inspect(shown, { ...options, depth: depth < 0 ? null : depth - 1 })}`;
  },
});
// Lazy Requests are instances of the stand-in, and so of the platform's Request, whichever is global.
Object.setPrototypeOf(LazyRequest.prototype, RequestStandIn.prototype);

/** Makes `globalThis.Request` the stand-in. Idempotent. */
export function installRequestStandIn(): void {
  if (globalThis.Request === (RequestStandIn as unknown)) return;
  Object.defineProperty(globalThis, 'Request', { value: RequestStandIn, writable: true, configurable: true, enumerable: false });
}

/** Puts the platform's Request back as the global. */
export function uninstallRequestStandIn(): void {
  if (globalThis.Request !== (RequestStandIn as unknown)) return;
  Object.defineProperty(globalThis, 'Request', { value: NativeRequest, writable: true, configurable: true, enumerable: false });
}

// ---- the adapter's side ----

/** The Request a fetch handler gets for `exchange`. */
export function createFetchRequest(exchange: Exchange, fallbackHost = 'localhost'): Request {
  return new LazyRequest(exchange, fallbackHost) as unknown as Request;
}

/** True for a Request made by createFetchRequest. */
export function isLazyRequest(request: unknown): boolean {
  return request instanceof LazyRequest;
}

/** The exchange behind a Request made by createFetchRequest, or undefined for any other Request. */
export function exchangeOfRequest(request: Request): Exchange | undefined {
  return request instanceof LazyRequest ? request[kExchange] : undefined;
}

/** True when the handler made the real Request (touched more than method, url, headers, signal and the body readers). */
export function isMaterialized(request: Request): boolean {
  return request instanceof LazyRequest && request[kNative] !== undefined;
}

/**
 * The response is out: body reads from now on fail (the connection drops unread input at END_REQUEST,
 * so a read would wait forever), and a read already waiting fails now.
 */
export function markResponded(request: Request): void {
  if (!(request instanceof LazyRequest)) return;
  request[kResponded] = true;
  const pending = request[kPending];
  if (pending !== null) {
    request[kPending] = null;
    pending(afterEndError());
  }
}
