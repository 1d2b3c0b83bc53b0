// The FastCGI client's public API: the pooled FcgiClient, single connections, responses, addresses and the CGI head parser.

export { FcgiClient, createClient, type FcgiClientOptions, type FcgiClientStats, type FcgiRequestHandle, type FcgiRequestOptions } from './client.js';
export {
  ClientConnection,
  DEFAULT_VALUE_NAMES,
  FcgiRejectedError,
  type BodySource,
  type ClientConnectionOptions,
  type ConnectOptions,
  type ConnectionRequestOptions,
  type ParamsInput,
  type RequestHandle,
} from './connection.js';
export { DEFAULT_MAX_STDERR_BYTES, FcgiRawResponse, FcgiResponse, type EndStatus } from './response.js';
export { CgiHeadParser, DEFAULT_MAX_HEAD_BYTES, type CgiHead, type CgiHeadParserOptions, type CgiHeadResult } from './cgi-response.js';
export { formatConnectTarget, parseConnectAddress, type ConnectAddress, type ConnectTarget, type TcpTarget, type UnixTarget } from './address.js';
export { ProtocolStatus, Role } from '../protocol/index.js';
