// nodefpm/node: run any Node `http` request listener (Express, Koa, Connect, Fastify) over FastCGI, unchanged.

import { createLogger } from '../../log.js';
import type { ServerOptions } from '../../server/options.js';
import { FcgiServer } from '../../server/server.js';
import { nodeExchangeHandler, type NodeAdapterOptions, type NodeRequestListener } from './handler.js';

export type CreateNodeServerOptions = ServerOptions & NodeAdapterOptions;

/**
 * A FastCGI server that answers every request with a Node request listener, as
 * http.createServer(listener) would over HTTP. The listener gets real http.IncomingMessage and
 * http.ServerResponse objects; see docs/frameworks.md for each framework and the limits.
 *
 *     const app = express();
 *     const server = createNodeServer(app);
 *     await server.listen('unix:/run/app.sock');
 */
export function createNodeServer(listener: NodeRequestListener, options: CreateNodeServerOptions = {}): FcgiServer {
  const logger = options.logger ?? createLogger();
  return new FcgiServer(nodeExchangeHandler(listener, options, logger), { ...options, logger });
}

export { nodeExchangeHandler, exchangeOf, type NodeAdapterOptions, type NodeRequestListener } from './handler.js';
export { FcgiSocket } from './socket.js';
