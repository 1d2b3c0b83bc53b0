// Runs a Node `http` request listener for each FastCGI request: builds the socket, request and response, refuses upgrades, turns listener failures into 500s.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../log.js';
import { encodePairs } from '../../protocol/index.js';
import type { Exchange } from '../../server/exchange.js';
import type { ExchangeHandler } from '../../server/server.js';
import { reserveFrameworkFields } from './framework-fields.js';
import { readCgiRequest, type CgiRequest } from './params.js';
import { createIncomingMessage } from './request.js';
import { createServerResponse } from './response.js';
import { FcgiSocket } from './socket.js';

/**
 * A Node request listener, as given to http.createServer: Express and Connect apps, Koa's
 * `app.callback()`, Fastify's `routing`. A returned promise is only watched for rejection (the
 * response ends when the listener ends it, as with Node's http).
 */
export type NodeRequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface NodeAdapterOptions {
  /** Show error messages and stacks in 500 pages when a listener throws (never in production). Default false. */
  development?: boolean;
  /**
   * Give each request and response, before the listener runs, the fields Express sets on every one
   * (undefined until it does), which makes Express apps much faster on Node 20's V8; see
   * framework-fields.ts. Off: the objects have only the properties Node's http gives them. Default true.
   */
  reserveFrameworkFields?: boolean;
}

/** True for requests Node's server would hand to 'upgrade' or 'connect' listeners: a FastCGI response cannot carry them. */
export function isUpgradeRequest(cgi: Pick<CgiRequest, 'method' | 'headers'>): boolean {
  if (cgi.method === 'CONNECT') return true;
  const upgrade = cgi.headers.upgrade;
  if (upgrade === undefined || upgrade === '') return false;
  const connection = cgi.headers.connection;
  if (connection === undefined) return false;
  for (const token of connection.split(',')) if (token.trim().toLowerCase() === 'upgrade') return true;
  return false;
}

/** The Exchange behind a request or response made by this adapter (for its params, role, FCGI_DATA); undefined for others. */
export function exchangeOf(message: IncomingMessage | ServerResponse): Exchange | undefined {
  const socket: unknown = message.socket;
  return socket instanceof FcgiSocket ? socket.exchange : undefined;
}

/**
 * Wraps a Node request listener into the server's per-request callback. Each request gets its own
 * FcgiSocket (standing for the client connection) and a real http.IncomingMessage and
 * http.ServerResponse on it, and the listener is called with them.
 */
export function nodeExchangeHandler(listener: NodeRequestListener, options: NodeAdapterOptions, log: Logger): ExchangeHandler {
  if (typeof listener !== 'function') throw new TypeError('nodeExchangeHandler: the listener must be a function (req, res)');
  const development = options.development ?? false;
  const reserveFields = options.reserveFrameworkFields ?? true;
  return (exchange: Exchange): void => {
    // One pass over the raw params: decoding them all into an object costs more than the rest of the
    // adapter's work on a small request.
    const cgi = readCgiRequest(exchange.paramsBlock?.bytes ?? encodePairs(exchange.params));
    if (isUpgradeRequest(cgi)) {
      refuseUpgrade(exchange, cgi, log);
      return;
    }
    const socket = new FcgiSocket(exchange, cgi, log);
    // The socket is a Duplex standing for the connection, not a net.Socket; Node's classes only use
    // the stream surface and the properties it provides.
    const req = createIncomingMessage(socket as unknown as Socket, cgi, exchange);
    const res = createServerResponse(req, socket as unknown as FcgiSocket & Socket);
    if (reserveFields) reserveFrameworkFields(req, res);
    socket.attach(req, res);
    exchange.listener = socket;
    let result: unknown;
    try {
      result = listener(req, res);
    } catch (error) {
      listenerFailed(error, exchange, req, res, socket, log, development);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(undefined, (error: unknown) => listenerFailed(error, exchange, req, res, socket, log, development));
    }
  };
}

function refuseUpgrade(exchange: Exchange, cgi: CgiRequest, log: Logger): void {
  const what = cgi.method === 'CONNECT' ? 'a CONNECT tunnel' : `an upgrade to ${cgi.headers.upgrade}`;
  log.info(`refused ${what} with 501: FastCGI carries one response per request, not a protocol switch`, {
    request: exchange.id,
    uri: cgi.REQUEST_URI,
  });
  exchange.stdin.discard();
  exchange.respondWithStatus(
    501,
    `${what} cannot be served over FastCGI; route such requests to the application over HTTP (or let the web server handle them)`,
  );
}

/**
 * The listener threw, or its promise rejected. Node's http would crash the process; here the error
 * goes to our log and to FCGI_STDERR (the web server's error log), the client gets a 500 when the
 * head is not out yet (else the response is ended where it stands), END_REQUEST says 1, and the
 * server goes on with the next request.
 */
export function listenerFailed(
  error: unknown,
  exchange: Exchange,
  req: IncomingMessage,
  res: ServerResponse,
  socket: FcgiSocket,
  log: Logger,
  development: boolean,
): void {
  const where = `${req.method ?? 'GET'} ${req.url ?? '/'}`;
  if (exchange.aborted) {
    log.debug('request listener failed after its request was aborted', { request: exchange.id, error: (error as Error)?.message });
    return;
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log.error(`request listener failed: ${where}`, { request: exchange.id, error });
  socket.appStatus = 1;
  exchange.writeStderr(`nodefpm: request ${exchange.id} ${where} failed: ${text}\n`);
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.statusCode = 500;
  res.statusMessage = '';
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(`500 Internal Server Error${development ? `\n\n${text}` : ''}\n`);
}
