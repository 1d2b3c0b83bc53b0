// nodefpm/validate: wrap an app so that every request checks both sides of the CGI/FastCGI interface, as wsgiref.validate does for WSGI.

import { nativeExchangeHandler, type Handler, type HandlerOptions } from '../../http/handler.js';
import { createLogger } from '../../log.js';
import type { ServerOptions } from '../../server/options.js';
import { FcgiServer } from '../../server/server.js';
import { fetchExchangeHandler, type FetchHandler, type FetchHandlerOptions } from '../fetch/handler.js';
import { validateExchangeHandler, type ValidateOptions } from './exchange.js';
import { validateFetchHandler } from './fetch.js';

/** Server, handler and validator options together; `validate` holds the validator's (its logger defaults to the server's). */
export type ValidatedServerOptions<H> = ServerOptions & H & { validate?: ValidateOptions };

/** createServer (native handlers) with every request validated. */
export function createValidatedServer(handler: Handler, options: ValidatedServerOptions<HandlerOptions> = {}): FcgiServer {
  const logger = options.logger ?? createLogger();
  const inner = nativeExchangeHandler(handler, options, logger);
  return new FcgiServer(validateExchangeHandler(inner, { logger, ...options.validate }), { ...options, logger });
}

/** createFetchServer with every request validated, the fetch-only checks included. */
export function createValidatedFetchServer(handler: FetchHandler, options: ValidatedServerOptions<FetchHandlerOptions> = {}): FcgiServer {
  const logger = options.logger ?? createLogger();
  const inner = fetchExchangeHandler(validateFetchHandler(handler), options, logger);
  return new FcgiServer(validateExchangeHandler(inner, { logger, ...options.validate }), { ...options, logger });
}

export {
  ExchangeMonitor,
  monitorOf,
  validateExchangeHandler,
  ValidationError,
  type ValidateMode,
  type ValidateOptions,
  type ValidatingExchangeHandler,
  type ViolationSide,
} from './exchange.js';
export { validateFetchHandler } from './fetch.js';
export { checkBodyLength, checkCgiHead, checkParams, type Finding, type HeadInfo, type ValidateCode } from './checks.js';
