// The nodefpm package entry: createServer for native handlers, and the public classes and types of every layer.

import type { Handler, HandlerOptions } from './http/handler.js';
import { serveRoles, type RoleHandlers } from './http/roles.js';
import { createLogger } from './log.js';
import type { ServerOptions } from './server/options.js';
import { FcgiServer } from './server/server.js';

export type CreateServerOptions = ServerOptions & HandlerOptions;

/**
 * A FastCGI server that answers every Responder request with `handler(req, res)` (every request of
 * the roles in `options.roles`, when given), or, given a handler per role, serves those roles and
 * answers FCGI_UNKNOWN_ROLE to the others (docs/roles.md).
 *
 *     const server = createServer((req, res) => res.end('Hello'));
 *     const gate = createServer({ authorizer: (req, res) => void (req.header('x-key') === key ? res.allow({ REMOTE_USER: 'app' }) : res.deny(401)) });
 *     await server.listen('unix:/run/app.sock');
 */
export function createServer(handler: Handler | RoleHandlers, options: CreateServerOptions = {}): FcgiServer {
  const logger = options.logger ?? createLogger();
  const served = serveRoles(handler, options, logger);
  return new FcgiServer(served.handler, { ...options, logger, roles: served.roles });
}

export { FcgiServer, type ExchangeHandler, type ServerStats } from './server/server.js';
export { Exchange, ExchangeState, type ExchangeListener, type ExchangeOutputObserver } from './server/exchange.js';
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
export {
  Response,
  HOP_BY_HOP_HEADERS,
  encodeLocation,
  type OutgoingHeaders,
  type OutgoingHeaderValue,
  type SetCookieOptions,
  type ResponseSettings,
} from './http/response.js';
export { Body, defaultBodyLimits, type BodyLimits } from './http/body.js';
export { parseQuery, strictDecode, PercentDecodingError, DEFAULT_MAX_QUERY_PARAMS, type Query, type QueryValue, type ParsedQuery } from './http/query.js';
export { requestUrl, mountPoint, normalizeBasePath, type MountPoint, type ParamSource } from './http/url.js';
export {
  Form,
  defaultFormLimits,
  MAX_PART_HEADER_BYTES,
  type FormLimits,
  type FormOptions,
  type StreamFormOptions,
  type TempFileFormOptions,
  type FileHandler,
  type IncomingFile,
} from './http/form.js';
export { UploadedFile, type FileInfo, type StreamedFile } from './http/uploads.js';
export { resolveRequestOptions, defaultRequestOptions, type RequestOptions, type ResolvedRequestOptions } from './http/request-options.js';
export { nativeExchangeHandler, type Handler, type HandlerOptions } from './http/handler.js';
export { serveRoles, type RoleHandlers, type ServedRoles } from './http/roles.js';
export { Signer, MIN_KEY_BYTES, looksSigned, type Verified } from './http/signing.js';
export {
  parseCookieHeader,
  serializeCookie,
  encodeCookieValue,
  decodeCookieValue,
  MAX_COOKIE_PAIR_BYTES,
  type CookieOptions,
  type SameSite,
  type CookiePriority,
} from './http/cookies.js';
export {
  sendFile,
  contentTypeFor,
  contentDisposition,
  parseRange,
  type SendFileOptions,
  type SendFileMode,
  type SendFileRequest,
  type SendFileResponse,
  type ByteRange,
} from './http/send-file.js';
export { renderErrorPage, errorPageFormat, type ErrorPageContent, type ErrorPageFormat } from './http/error-page.js';
export { compose, type Middleware } from './http/middleware.js';
export {
  Sessions,
  Session,
  defaultSessionOptions,
  MemoryStore,
  FileSessionStore,
  RedisSessionStore,
  newSessionId,
  isSessionId,
  SESSION_ID_BYTES,
  type SessionOptions,
  type SessionCookieOptions,
  type SessionOrigin,
  type SessionData,
  type SessionStore,
  type MemoryStoreOptions,
  type FileSessionStoreOptions,
  type RedisSessionStoreOptions,
  type RedisSessionClient,
  type NodeRedisLikeClient,
  type IoRedisLikeClient,
} from './http/session/index.js';
export { NodefpmError, errorCatalogue, isNodefpmError, type ErrorCode } from './errors.js';
export { createLogger, silentLogger, type Logger, type LogLevel, type LogFields } from './log.js';
export { Role, ProtocolStatus, RecordType, type Params } from './protocol/index.js';
