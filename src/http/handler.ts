// Runs a native handler for each request: builds Request and Response, ends the response, turns failures into 500s.

import { STATUS_CODES } from 'node:http';
import { isNodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Exchange } from '../server/exchange.js';
import type { ExchangeHandler } from '../server/server.js';
import { defaultBodyLimits, type BodyLimits } from './body.js';
import { Request } from './request.js';
import { Response } from './response.js';

/**
 * A native handler. If it returns a promise, the response is ended when the promise resolves (if the
 * handler did not end it). If it returns nothing, the response stays open until res.end(), so
 * callback-style code can finish later, as with Node's http.
 */
export type Handler = (req: Request, res: Response) => void | Promise<void>;

export interface HandlerOptions extends Partial<BodyLimits> {
  /** Show error messages and stacks in 500 pages (never in production). Default false. */
  development?: boolean;
}

/** Wraps a native handler into the server's per-request callback. */
export function nativeExchangeHandler(handler: Handler, options: HandlerOptions, log: Logger): ExchangeHandler {
  const limits: BodyLimits = {
    bodyLimit: options.bodyLimit ?? defaultBodyLimits.bodyLimit,
    lineLimit: options.lineLimit ?? defaultBodyLimits.lineLimit,
  };
  const development = options.development ?? false;
  return (exchange: Exchange): void => {
    const req = new Request(exchange, limits);
    const res = new Response(exchange, req.method);
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
    log.debug('handler ended after its request was aborted', { request: req.requestId, error: (error as Error)?.message });
    if (!res.writableEnded) res.end();
    return;
  }
  const status = statusFor(error);
  const where = `${req.method} ${req.url}`;
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  if (status >= 500) log.error(`handler failed: ${where}`, { request: req.requestId, error });
  else log.warn(`request refused with ${status}: ${where}: ${(error as Error).message}`, { request: req.requestId, code: (error as { code?: string }).code });
  res.appStatus = status >= 500 ? 1 : 0;
  if (res.writableEnded) return;
  if (status >= 500) res.writeStderr(`nodefpm: request ${req.requestId} ${where} failed: ${text}\n`);
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.statusCode = status;
  res.statusMessage = undefined;
  const reason = STATUS_CODES[status] ?? 'Error';
  // 4xx reasons come from our own checks and say what was wrong; 5xx details only in development.
  const detail = status < 500 && isNodefpmError(error) ? `\n${error.message}` : development ? `\n\n${text}` : '';
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(`${status} ${reason}${detail}\n`);
}
