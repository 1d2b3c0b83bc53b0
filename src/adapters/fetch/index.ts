// nodefpm/fetch: serve WHATWG fetch handlers ((request) => Response, Hono apps, itty-router) over FastCGI.

import { createLogger } from '../../log.js';
import type { ServerOptions } from '../../server/options.js';
import { FcgiServer } from '../../server/server.js';
import { fetchExchangeHandler, type FetchHandler, type FetchHandlerOptions } from './handler.js';

export type CreateFetchServerOptions = ServerOptions & FetchHandlerOptions;

/**
 * A FastCGI server that answers every Responder request with a fetch handler.
 *
 *     import { Hono } from 'hono';
 *     const app = new Hono().get('/', (c) => c.text('Hello'));
 *     await createFetchServer(app).listen('unix:/run/app.sock');
 */
export function createFetchServer(handler: FetchHandler, options: CreateFetchServerOptions = {}): FcgiServer {
  const logger = options.logger ?? createLogger();
  return new FcgiServer(fetchExchangeHandler(handler, options, logger), { ...options, logger });
}

export { fetchExchangeHandler, FcgiBindings, type FetchFunction, type FetchHandler, type FetchHandlerOptions, type FetchObject } from './handler.js';
export {
  createFetchRequest,
  exchangeOfRequest,
  installRequestStandIn,
  isLazyRequest,
  isMaterialized,
  NativeRequest,
  RequestStandIn,
  uninstallRequestStandIn,
} from './request.js';
export {
  installGlobalObjects,
  installLightweightResponse,
  isRecordOnly,
  LightweightResponse,
  NativeResponse,
  restoreGlobalObjects,
  uninstallLightweightResponse,
} from './response.js';
export { requestUrl } from './url.js';
