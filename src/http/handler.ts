// Runs a native handler for each request: builds Request and Response, ends the response, turns failures into 500s.

import { NodefpmError, isNodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Exchange } from '../server/exchange.js';
import type { ExchangeHandler } from '../server/server.js';
import { defaultBodyLimits, type BodyLimits } from './body.js';
import { DEFAULT_MAX_COOKIE_BYTES, type CookieSettings } from './cookies.js';
import { errorDetails, errorPageFormat, renderErrorPage, stderrText } from './error-page.js';
import { Request } from './request.js';
import { resolveRequestOptions, type RequestOptions } from './request-options.js';
import { Response, type ResponseSettings } from './response.js';
import type { SendFileOptions } from './send-file.js';
import { Signer } from './signing.js';

/**
 * A native handler. If it returns a promise, the response is ended when the promise resolves (if the
 * handler did not end it). If it returns nothing, the response stays open until res.end(), so
 * callback-style code can finish later, as with Node's http.
 */
export type Handler = (req: Request, res: Response) => void | Promise<void>;

export interface HandlerOptions extends Partial<BodyLimits>, RequestOptions {
  /** Show error messages, stacks and causes in error pages, as Smisk's show_traceback (never in production). Default false. */
  development?: boolean;
  /**
   * Keys for signed cookies (res.setCookie(name, value, { signed: true }), req.signedCookie): the
   * first signs, every one verifies, so a new key goes first and an old one stays until its cookies
   * have expired. Each at least 32 bytes. Default: none (signed cookies are then an error).
   */
  keys?: readonly (string | Uint8Array)[];
  /** Bytes of the Cookie request header req.cookies will parse; a longer one is a 431. Default 16 KiB. */
  maxCookieBytes?: number;
  /** Defaults for every res.sendFile (mode, root, internalLocation, cacheControl, ...); each call's options override them. */
  sendFile?: SendFileOptions;
}

/** Wraps a native handler into the server's per-request callback. */
export function nativeExchangeHandler(handler: Handler, options: HandlerOptions, log: Logger): ExchangeHandler {
  const limits: BodyLimits = {
    bodyLimit: options.bodyLimit ?? defaultBodyLimits.bodyLimit,
    lineLimit: options.lineLimit ?? defaultBodyLimits.lineLimit,
  };
  const development = options.development ?? false;
  const maxCookieBytes = options.maxCookieBytes ?? DEFAULT_MAX_COOKIE_BYTES;
  if (!Number.isSafeInteger(maxCookieBytes) || maxCookieBytes < 1) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `option maxCookieBytes must be a positive integer, got ${String(maxCookieBytes)}`);
  }
  // Made once, so bad keys fail createServer rather than the first request.
  const signer = options.keys === undefined ? null : new Signer(options.keys);
  const cookieSettings: CookieSettings = { maxCookieBytes, signer, log };
  // URL mount point, query bound, form limits and upload folder, checked once (see request-options.ts).
  const requestOptions = resolveRequestOptions(options);
  const responseSettings: ResponseSettings = { signer, sendFile: options.sendFile };
  return (exchange: Exchange): void => {
    const req = new Request(exchange, limits, cookieSettings, requestOptions);
    const res = new Response(exchange, req.method, responseSettings);
    req.attachResponse(res);
    let result: void | Promise<void>;
    try {
      result = handler(req, res);
    } catch (error) {
      handlerFailed(error, req, res, log, development);
      return;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(
        () => {
          if (!res.writableEnded) res.end();
        },
        (error: unknown) => handlerFailed(error, req, res, log, development),
      );
    }
  };
}

/** The status a thrown error asks for: its own 4xx/5xx status (limits, bad bodies), else 500. */
function statusFor(error: unknown): number {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500;
}

/**
 * A handler threw or rejected. The error goes to FCGI_STDERR (the web server's error log) and to our
 * log with the request id; the client gets an error page when the head is not out yet, else a
 * truncated response. END_REQUEST carries application status 1.
 */
export function handlerFailed(error: unknown, req: Request, res: Response, log: Logger, development: boolean): void {
  if (req.aborted) {
    // The web server gave up on this request: the failure is a consequence, not news.
    log.debug('handler ended after its request was aborted', { request: req.requestId, requestId: req.id, error: (error as Error)?.message });
    if (!res.writableEnded) res.end();
    return;
  }
  const status = statusFor(error);
  const where = `${req.method} ${req.url}`;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (status >= 500) {
    log.error(`handler failed: ${where}`, { request: req.requestId, requestId: req.id, code, error });
  } else {
    // A 4xx error's cause holds what only the log may say (why sendFile refused a path, say).
    const reason = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
    log.warn(`request refused with ${status}: ${where}: ${message}`, { request: req.requestId, requestId: req.id, code, reason });
  }
  res.appStatus = status >= 500 ? 1 : 0;
  if (res.writableEnded) return;
  // 4xx are the client's doing and stay out of the web server's error log, where a client could flood it.
  if (status >= 500) res.writeStderr(stderrText(req.id, `${where} failed with ${status}: ${errorDetails(error)}`));
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.statusCode = status;
  res.statusMessage = undefined;
  // 4xx messages from our own checks say what to fix; anything else only in development.
  const exposed = status < 500 && (isNodefpmError(error) || (error as { expose?: unknown } | null)?.expose === true);
  const page = renderErrorPage(
    {
      status,
      requestId: req.id,
      message: exposed || development ? message : undefined,
      details: development ? errorDetails(error) : undefined,
    },
    errorPageFormat(req.header('accept')),
  );
  res.setHeader('Content-Type', page.contentType);
  res.setHeader('Cache-Control', 'no-store');
  res.end(page.body);
}
