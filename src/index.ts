// The nodefpm package entry: createServer for native handlers, and the public classes and types of every layer.

import { nativeExchangeHandler, type Handler, type HandlerOptions } from './http/handler.js';
import { createLogger } from './log.js';
import type { ServerOptions } from './server/options.js';
import { FcgiServer } from './server/server.js';

export type CreateServerOptions = ServerOptions & HandlerOptions;

/**
 * A FastCGI server that answers every Responder request with `handler(req, res)`.
 *
 *     const server = createServer((req, res) => res.end('Hello'));
 *     await server.listen('unix:/run/app.sock');
 */
export function createServer(handler: Handler, options: CreateServerOptions = {}): FcgiServer {
  const logger = options.logger ?? createLogger();
  return new FcgiServer(nativeExchangeHandler(handler, options, logger), { ...options, logger });
}

export { FcgiServer, type ExchangeHandler, type ServerStats } from './server/server.js';
export { Exchange, ExchangeState, type ExchangeListener } from './server/exchange.js';
export { InputStream } from './server/input-stream.js';
export { defaultLimits, type Limits, type ServerOptions } from './server/options.js';
export {
  parseListenAddress,
  formatListenAddress,
  inheritedListenAddress,
  systemdSockets,
  type ListenAddress,
  type ListenOptions,
} from './server/listen.js';
export { Request, headersFromParams, type IncomingHeaders } from './http/request.js';
export { Response, HOP_BY_HOP_HEADERS, type OutgoingHeaders, type OutgoingHeaderValue } from './http/response.js';
export { Body, defaultBodyLimits, type BodyLimits } from './http/body.js';
export { nativeExchangeHandler, type Handler, type HandlerOptions } from './http/handler.js';
export { NodefpmError, errorCatalogue, isNodefpmError, type ErrorCode } from './errors.js';
export { createLogger, silentLogger, type Logger, type LogLevel, type LogFields } from './log.js';
export { Role, ProtocolStatus, RecordType, type Params } from './protocol/index.js';
