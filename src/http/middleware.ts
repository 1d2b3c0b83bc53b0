// Middleware for native handlers: a function from the next handler to a handler, and compose() to stack them.

import { NodefpmError } from '../errors.js';
import type { Handler } from './handler.js';

/**
 * Wraps a handler: gets the next one and returns the handler to run in its place, which may act
 * before and after calling `next(req, res)`, or answer without calling it. Anything a middleware
 * gives the handler is reached through the middleware's own object (as `sessions.get(req)`), so
 * Request stays one class and every access is typed.
 *
 *     const logRequests: Middleware = (next) => (req, res) => {
 *       res.on('finish', () => console.log(req.method, req.url, res.statusCode));
 *       return next(req, res);
 *     };
 */
export type Middleware = (next: Handler) => Handler;

/**
 * One middleware made of several, the first given outermost: `compose(a, b)(handler)` is
 * `a(b(handler))`, so a request passes through a, then b, then reaches the handler.
 *
 *     createServer(compose(logRequests, sessions.middleware)(app));
 */
export function compose(...middleware: readonly Middleware[]): Middleware {
  for (const [index, item] of middleware.entries()) {
    if (typeof item !== 'function') throw new NodefpmError('NODEFPM_INVALID_OPTION', `compose(): argument ${index} is not a middleware function`);
  }
  return (handler: Handler): Handler => middleware.reduceRight<Handler>((next, wrap) => wrap(next), handler);
}
