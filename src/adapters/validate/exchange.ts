// The validator at the Exchange boundary: a view of each exchange that checks what the app writes and reads, and the params it was given.

import { Buffer } from 'node:buffer';
import { isNodefpmError, NodefpmError } from '../../errors.js';
import { createLogger, type Logger } from '../../log.js';
import { Exchange, type ExchangeHost, type ExchangeListener } from '../../server/exchange.js';
import { InputStream, type InputSource } from '../../server/input-stream.js';
import type { ExchangeHandler } from '../../server/server.js';
import { checkBodyLength, checkCgiHead, checkParams, type Finding, type ValidateCode } from './checks.js';

/** Which side of the interface broke a rule. */
export type ViolationSide = 'app' | 'server';

/** A broken rule, as the validator raises or records it. */
export class ValidationError extends NodefpmError {
  declare readonly code: ValidateCode;
  /** "app" when the application (or its adapter) broke the rule, "server" when the web server did. */
  readonly side: ViolationSide;
  /** The FastCGI request id. */
  readonly requestId: number;
  /** "METHOD REQUEST_URI" of the request, for the reader of a log. */
  readonly request: string;

  constructor(code: ValidateCode, message: string, side: ViolationSide, requestId: number, request: string) {
    super(code, message);
    this.name = 'ValidationError';
    this.side = side;
    this.requestId = requestId;
    this.request = request;
  }
}

/**
 * What the validator does when a rule is broken:
 * - 'report' (default): log it, write it to FCGI_STDERR (the web server's error log), and answer the
 *   request 500 with the message if nothing was sent yet (the application's later output is then
 *   dropped). Once the head is out, output passes through unchanged (a second head is dropped).
 * - 'throw': the call that broke the rule throws the ValidationError (and does nothing else). Rules
 *   found outside any call (a response never ended, a body length seen late) are reported instead.
 * - 'collect': record it in `violations` and change nothing: for tests.
 */
export type ValidateMode = 'report' | 'throw' | 'collect';

export interface ValidateOptions {
  mode?: ValidateMode;
  /** Where 'report' logs. Default: lines on stderr. */
  logger?: Logger;
  /** Codes not to check. */
  ignore?: Iterable<ValidateCode>;
  /** After the web server aborts or drops a request, the time the application has to end its response (ms). Default 5000. */
  endTimeout?: number;
  /** A response not ended this long after its request arrived is reported (ms; 0: never). Default 0. */
  requestTimeout?: number;
  /** Called with every violation, in every mode (before it is thrown, reported or collected). */
  onViolation?: (violation: ValidationError) => void;
}

/** An ExchangeHandler that validates, with the violations collected in 'collect' mode. */
export interface ValidatingExchangeHandler extends ExchangeHandler {
  readonly violations: ValidationError[];
}

interface Settings {
  mode: ValidateMode;
  log: Logger;
  ignore: ReadonlySet<string>;
  endTimeout: number;
  requestTimeout: number;
  onViolation: ((violation: ValidationError) => void) | undefined;
  violations: ValidationError[];
}

const kReal = Symbol('nodefpm.validate.real');
const kMonitor = Symbol('nodefpm.validate.monitor');

/** The monitors of validated exchanges, by the view the application was given (validateFetchHandler finds them here). */
const monitors = new WeakMap<object, ExchangeMonitor>();

function byteLength(chunk: string | Uint8Array): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
}

/**
 * The validator's record of one exchange. It stands between the application (which gets `view`) and
 * the real exchange (which the connection keeps using): every output call and body read passes
 * through it, and it is the real exchange's listener, so it hears of aborts first.
 */
export class ExchangeMonitor implements ExchangeListener {
  readonly real: Exchange;
  readonly view: Exchange;
  readonly #settings: Settings;
  readonly #request: string;
  readonly #isHead: boolean;
  #inner: ExchangeListener | null = null;
  #stdin: InputStream | null = null;
  #data: InputStream | null = null;
  #headWritten = false;
  #status = 200;
  #contentLength: number | null = null;
  #bodyBytes = 0;
  #appEnded = false;
  /** The validator answered the request itself: the application's output is dropped from now on. */
  #answered = false;
  #reported = new Set<string>();
  #timer: NodeJS.Timeout | null = null;

  constructor(real: Exchange, settings: Settings) {
    this.real = real;
    this.#settings = settings;
    const method = real.param('REQUEST_METHOD') ?? 'GET';
    this.#isHead = method === 'HEAD';
    this.#request = `${method} ${real.param('REQUEST_URI') ?? `${real.param('SCRIPT_NAME') ?? ''}${real.param('PATH_INFO') ?? ''}`}`;
    const view = Object.create(exchangeView) as Exchange & { [kReal]: Exchange; [kMonitor]: ExchangeMonitor };
    view[kReal] = real;
    view[kMonitor] = this;
    this.view = view;
    // Take over the listener slot before the application can: whatever it sets goes to #inner.
    this.#inner = real.listener;
    real.listener = this;
    monitors.set(view, this);
    if (settings.requestTimeout > 0) this.#arm(settings.requestTimeout, 'request');
  }

  /** True once the application ended its response (or the validator answered for it). */
  get appEnded(): boolean {
    return this.#appEnded;
  }

  /** True when the validator answered the request with a 500 of its own. */
  get answered(): boolean {
    return this.#answered;
  }

  // ---- reporting ----

  /**
   * Handles a broken rule per the mode. Returns true when the caller must not pass the operation on
   * (the validator answered the request instead). `canThrow` is false for rules found outside any
   * application call, which are reported even in 'throw' mode. A rule is reported once per request
   * (each chunk of a too-long body is one violation) unless `once` is false (distinct params).
   */
  violation(code: ValidateCode, message: string, side: ViolationSide, canThrow = true, once = true): boolean {
    const settings = this.#settings;
    if (settings.ignore.has(code)) return false;
    if (once) {
      if (this.#reported.has(code)) return this.#answered;
      this.#reported.add(code);
    }
    const error = new ValidationError(code, message, side, this.real.id, this.#request);
    settings.onViolation?.(error);
    if (settings.mode === 'collect') {
      settings.violations.push(error);
      return false;
    }
    if (settings.mode === 'throw' && canThrow) throw error;
    settings.log.error(`validate: ${side === 'app' ? 'the application' : 'the web server'} broke a rule: ${message}`, {
      code,
      request: this.real.id,
      uri: this.#request,
    });
    const real = this.real;
    if (real.ended || real.aborted) return this.#answered;
    real.writeStderr(`nodefpm validate: ${code}: ${message} (${this.#request})\n`);
    if (real.stdoutBytes === 0 && !this.#answered) {
      this.#answered = true;
      real.respondWithStatus(500, `${code}: ${message}`);
      return true;
    }
    return this.#answered;
  }

  /** Reports each finding; true when the validator answered the request. */
  findings(findings: Finding[], side: ViolationSide): boolean {
    let stop = false;
    for (const finding of findings) if (this.violation(finding.code, finding.message, side, true, false)) stop = true;
    return stop;
  }

  // ---- the application's output ----

  writeHead(head: string): boolean {
    if (this.#answered) return true;
    if (this.#appEnded) {
      this.violation('NODEFPM_VALIDATE_WRITE_AFTER_END', 'writeHead() was called after end(): the response is over; write the head before ending', 'app');
      return this.real.writeHead(head);
    }
    if (this.#headWritten) {
      this.violation('NODEFPM_VALIDATE_HEAD_TWICE', 'the CGI head was written a second time: write it once, before the body (a second head would be sent as body text)', 'app');
      if (this.#settings.mode !== 'collect') return true;
      return this.real.writeHead(head);
    }
    if (this.real.aborted) {
      this.#headWritten = true;
      return this.real.writeHead(head);
    }
    const info = checkCgiHead(head);
    if (this.findings(info.findings, 'app')) return true;
    this.#headWritten = true;
    this.#status = info.status;
    this.#contentLength = info.contentLength;
    return this.real.writeHead(head);
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.#answered) return true;
    if (this.#appEnded) {
      this.violation('NODEFPM_VALIDATE_WRITE_AFTER_END', 'write() was called after end(): the response is over; finish writing before ending it', 'app');
      return this.real.write(chunk);
    }
    const length = byteLength(chunk);
    if (!this.#headWritten && !this.real.aborted) {
      if (this.violation('NODEFPM_VALIDATE_NO_HEAD', 'body bytes were written before the CGI head: write the head (Status and headers, then an empty line) first', 'app')) return true;
    }
    if (length > 0 && this.#headWritten && !this.real.aborted) {
      this.#bodyBytes += length;
      if (this.#isHead) {
        this.violation('NODEFPM_VALIDATE_BODY_NOT_ALLOWED', 'the response to a HEAD request has body bytes: send the head only (Content-Length may still say the GET length)', 'app');
      } else if (this.#status === 204 || this.#status === 304) {
        this.violation('NODEFPM_VALIDATE_BODY_NOT_ALLOWED', `a ${this.#status} response has body bytes: it has no body, so write none`, 'app');
      } else if (this.#contentLength !== null && this.#bodyBytes > this.#contentLength) {
        this.violation(
          'NODEFPM_VALIDATE_CONTENT_LENGTH',
          `${this.#bodyBytes} body bytes were written but Content-Length says ${this.#contentLength}: send exactly Content-Length bytes, or no Content-Length`,
          'app',
        );
      }
    }
    return this.real.write(chunk);
  }

  writeStderr(chunk: string | Uint8Array): boolean {
    if (this.#answered) return true;
    if (this.#appEnded) {
      this.violation('NODEFPM_VALIDATE_WRITE_AFTER_END', 'writeStderr() was called after end(): FCGI_STDERR closes with the response; log elsewhere after it', 'app');
    }
    return this.real.writeStderr(chunk);
  }

  end(appStatus?: number): void {
    if (this.#appEnded) return;
    this.#disarm();
    if (this.#answered) {
      this.#appEnded = true;
      return;
    }
    const real = this.real;
    if (!real.aborted && !real.ended) {
      if (!this.#headWritten) {
        if (this.violation('NODEFPM_VALIDATE_NO_HEAD', 'the response was ended without a CGI head: write at least a Status header and an empty line before end()', 'app')) {
          this.#appEnded = true;
          return;
        }
      } else if (
        this.#contentLength !== null &&
        !this.#isHead &&
        this.#status !== 304 &&
        this.#status !== 204 &&
        this.#bodyBytes < this.#contentLength
      ) {
        this.violation(
          'NODEFPM_VALIDATE_CONTENT_LENGTH',
          `the response ended after ${this.#bodyBytes} body bytes but Content-Length says ${this.#contentLength}: send exactly Content-Length bytes, or no Content-Length`,
          'app',
        );
      }
      this.#checkInputLength(false);
    }
    this.#appEnded = true;
    real.end(appStatus);
  }

  respondWithStatus(status: number, message: string): void {
    if (this.#appEnded || this.#answered) {
      this.#appEnded = true;
      return;
    }
    this.#disarm();
    this.#appEnded = true;
    this.#headWritten = true;
    this.real.respondWithStatus(status, message);
  }

  // ---- the application's input ----

  /** A view of stdin (or data) that checks reads. */
  input(which: 'stdin' | 'data'): InputStream | null {
    if (which === 'stdin') return (this.#stdin ??= inputView(this.real.stdin, this));
    const data = this.real.data;
    if (data === null) return null;
    return (this.#data ??= inputView(data, this));
  }

  /** Before each body read: reading after the response ended is a rule broken. */
  beforeRead(): void {
    if (!this.#appEnded || this.#answered) return;
    this.violation(
      'NODEFPM_VALIDATE_READ_AFTER_END',
      'the request body was read after the response ended: the web server sends no more of it after END_REQUEST; read it before ending the response',
      'app',
    );
  }

  /** After a body read: the web server's body length checked against CONTENT_LENGTH, when known. */
  afterRead(error: unknown): void {
    if (error !== undefined && isNodefpmError(error, 'NODEFPM_BODY_INCOMPLETE')) this.#checkInputLength(true);
    else if (error === undefined && this.real.stdin.finished) this.#checkInputLength(false);
  }

  #checkInputLength(failed: boolean): void {
    const stdin = this.real.stdin;
    if (failed || isNodefpmError(stdin.error, 'NODEFPM_BODY_INCOMPLETE')) {
      const declared = this.real.param('CONTENT_LENGTH');
      this.violation(
        'NODEFPM_VALIDATE_BODY_LENGTH',
        `the web server sent a body whose length differs from CONTENT_LENGTH=${declared ?? '(none)'} (${stdin.bytesReceived} bytes arrived before it was cut off): it must send exactly CONTENT_LENGTH bytes`,
        'server',
        false,
      );
    } else if (stdin.ended) {
      const finding = checkBodyLength(this.real.param('CONTENT_LENGTH'), stdin.bytesReceived);
      if (finding !== null) this.violation(finding.code, finding.message, 'server', false);
    }
  }

  // ---- listener (the real exchange's) ----

  get listener(): ExchangeListener | null {
    return this.#inner;
  }

  set listener(listener: ExchangeListener | null) {
    this.#inner = listener;
  }

  exchangeDrained(): void {
    this.#inner?.exchangeDrained();
  }

  exchangeAborted(reason: NodefpmError): void {
    if (!this.#appEnded) this.#arm(this.#settings.endTimeout, 'abort');
    this.#inner?.exchangeAborted(reason);
  }

  // ---- the end-reached rule ----

  #arm(ms: number, why: 'abort' | 'request'): void {
    this.#disarm();
    const timer = setTimeout(() => {
      this.#timer = null;
      if (this.#appEnded) return;
      const message =
        why === 'abort'
          ? `the web server aborted or dropped the request and the application did not end its response within ${ms} ms: ` +
            'end it when request.signal (or the exchange) reports the abort'
          : `the response was not ended within ${ms} ms of the request: every code path must end the response (return a Response, call res.end())`;
      this.violation('NODEFPM_VALIDATE_NOT_ENDED', message, 'app', false);
    }, ms);
    // A hung request must not keep a process alive that is otherwise done.
    timer.unref();
    this.#timer = timer;
  }

  #disarm(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/** The monitor of a validated exchange (the view an application was given), if any. */
export function monitorOf(exchange: unknown): ExchangeMonitor | undefined {
  return typeof exchange === 'object' && exchange !== null ? monitors.get(exchange) : undefined;
}

// ---- the views ----

const dummyHost: ExchangeHost & InputSource = {
  outputBlocked: false,
  writeOut() {},
  writeOutBatch() {},
  scheduleFlush() {},
  exchangeEnded() {},
  inputHasRoom() {},
};

/**
 * A prototype whose every member forwards to `this[kReal]`: the class's methods and accessors, and the
 * instance fields a sample instance has (public fields are own properties, so they are found there).
 * Members added to the class later are forwarded too, without a change here.
 */
function forwardingPrototype(prototype: object, sample: object): Record<PropertyKey, unknown> {
  const forward = Object.create(prototype) as Record<PropertyKey, unknown>;
  const define = (name: string, descriptor: PropertyDescriptor): void => {
    Object.defineProperty(forward, name, { ...descriptor, configurable: true });
  };
  for (const name of Object.getOwnPropertyNames(prototype)) {
    if (name === 'constructor') continue;
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name)!;
    if (descriptor.get !== undefined || descriptor.set !== undefined) {
      define(name, {
        get(this: { [kReal]: Record<string, unknown> }) {
          return this[kReal][name];
        },
        set(this: { [kReal]: Record<string, unknown> }, value: unknown) {
          this[kReal][name] = value;
        },
      });
    } else if (typeof descriptor.value === 'function') {
      define(name, {
        value(this: { [kReal]: Record<string, (...args: unknown[]) => unknown> }, ...args: unknown[]) {
          return this[kReal][name]!(...args);
        },
        writable: true,
      });
    }
  }
  for (const name of Object.keys(sample)) {
    define(name, {
      get(this: { [kReal]: Record<string, unknown> }) {
        return this[kReal][name];
      },
      set(this: { [kReal]: Record<string, unknown> }, value: unknown) {
        this[kReal][name] = value;
      },
    });
  }
  return forward;
}

type ViewThis = { [kReal]: Exchange; [kMonitor]: ExchangeMonitor };

const exchangeView = forwardingPrototype(Exchange.prototype, new Exchange(dummyHost, 1, 1, false, 16, false));
Object.defineProperties(exchangeView, {
  writeHead: {
    value(this: ViewThis, head: string) {
      return this[kMonitor].writeHead(head);
    },
  },
  write: {
    value(this: ViewThis, chunk: string | Uint8Array) {
      return this[kMonitor].write(chunk);
    },
  },
  writeStderr: {
    value(this: ViewThis, chunk: string | Uint8Array) {
      return this[kMonitor].writeStderr(chunk);
    },
  },
  end: {
    value(this: ViewThis, appStatus?: number) {
      this[kMonitor].end(appStatus);
    },
  },
  endWith: {
    // Checked as the writeHead(), write() and end() it stands for.
    value(this: ViewThis, head: string | null, chunk: string | Uint8Array | null, appStatus?: number) {
      const monitor = this[kMonitor];
      if (head !== null) monitor.writeHead(head);
      if (chunk !== null) monitor.write(chunk);
      monitor.end(appStatus);
    },
  },
  respondWithStatus: {
    value(this: ViewThis, status: number, message: string) {
      this[kMonitor].respondWithStatus(status, message);
    },
  },
  stdin: {
    get(this: ViewThis) {
      return this[kMonitor].input('stdin');
    },
  },
  data: {
    get(this: ViewThis) {
      return this[kMonitor].input('data');
    },
  },
  listener: {
    get(this: ViewThis) {
      return this[kMonitor].listener;
    },
    set(this: ViewThis, listener: ExchangeListener | null) {
      this[kMonitor].listener = listener;
    },
  },
});

type InputViewThis = { [kReal]: InputStream; [kMonitor]: ExchangeMonitor };

const inputStreamView = forwardingPrototype(InputStream.prototype, new InputStream(dummyHost, 16));
Object.defineProperties(inputStreamView, {
  readSync: {
    value(this: InputViewThis) {
      this[kMonitor].beforeRead();
      try {
        const chunk = this[kReal].readSync();
        if (chunk === null) this[kMonitor].afterRead(undefined);
        return chunk;
      } catch (error) {
        this[kMonitor].afterRead(error);
        throw error;
      }
    },
  },
  next: {
    value(this: InputViewThis) {
      this[kMonitor].beforeRead();
      const monitor = this[kMonitor];
      return this[kReal].next().then(
        (result) => {
          if (result.done === true) monitor.afterRead(undefined);
          return result;
        },
        (error: unknown) => {
          monitor.afterRead(error);
          throw error;
        },
      );
    },
  },
  read: {
    async value(this: InputViewThis) {
      const result = await (this as unknown as InputStream).next();
      return result.done === true ? null : result.value;
    },
  },
  [Symbol.asyncIterator]: {
    value(this: InputViewThis) {
      const view = this as unknown as InputStream;
      return {
        next: () => view.next(),
        // Leaving a for-await early means the rest is not wanted, as with the real stream.
        return: () => {
          view.discard();
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  },
});

function inputView(real: InputStream, monitor: ExchangeMonitor): InputStream {
  const view = Object.create(inputStreamView) as InputStream & InputViewThis;
  view[kReal] = real;
  view[kMonitor] = monitor;
  return view;
}

/**
 * Wraps an ExchangeHandler (of any kind: native, Node listener, fetch) so that every request is
 * checked on both sides: the params the web server sent before the handler runs, and everything the
 * handler writes and reads through the exchange while it runs. The handler gets a view of the
 * exchange; the connection keeps the real one.
 */
export function validateExchangeHandler(inner: ExchangeHandler, options: ValidateOptions = {}): ValidatingExchangeHandler {
  const mode = options.mode ?? 'report';
  if (mode !== 'report' && mode !== 'throw' && mode !== 'collect') {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `validate option mode must be 'report', 'throw' or 'collect', got ${String(mode)}`);
  }
  const violations: ValidationError[] = [];
  const settings: Settings = {
    mode,
    log: options.logger ?? createLogger(),
    ignore: new Set(options.ignore ?? []),
    endTimeout: options.endTimeout ?? 5000,
    requestTimeout: options.requestTimeout ?? 0,
    onViolation: options.onViolation,
    violations,
  };
  const handler = (exchange: Exchange): void => {
    const monitor = new ExchangeMonitor(exchange, settings);
    const findings = checkParams((name) => exchange.param(name), exchange.role);
    if (findings.length > 0 && monitor.findings(findings, 'server')) return;
    inner(monitor.view);
  };
  Object.defineProperty(handler, 'violations', { value: violations, enumerable: true });
  return handler as ValidatingExchangeHandler;
}
