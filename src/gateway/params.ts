// The CGI/1.1 params of one HTTP request, in the names, order and values nginx's Debian fastcgi_params sends, with the differences docs/gateway.md lists.

import { isIP } from 'node:net';
import { NodefpmError } from '../errors.js';
import { parseHost, type ParsedTarget, type RequestHost } from './uri.js';

/** What the HTTP side of one request gives the params. Strings hold raw bytes, one per char (Latin-1), as Node's http gives header values. */
export interface HttpSide {
  method: string;
  /** "1.1", "1.0". */
  httpVersion: string;
  target: ParsedTarget;
  /** Node's req.rawHeaders: name, value, name, value... in the order received. */
  rawHeaders: readonly string[];
  /** The connection is TLS. */
  tls: boolean;
  /** The peer; undefined on a Unix socket. */
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  /** Our end; undefined on a Unix socket. */
  localAddress: string | undefined;
  localPort: number | undefined;
  /** CONTENT_LENGTH as the gateway decided it: the header, the spooled length, or "" (no body, or a chunked body streamed). */
  contentLength: string;
}

/** Where a script-mode request goes (see script.ts); null in app mode. */
export interface ScriptParams {
  scriptName: string;
  pathInfo: string;
  documentUri: string;
  scriptFilename: string;
}

/** Which peers are proxies whose X-Forwarded-* headers are believed. */
export type TrustProxy = boolean | readonly string[];

export interface ParamSettings {
  /** DOCUMENT_ROOT, as bytes-as-chars; "" when none is configured. */
  documentRoot: string;
  /** SERVER_NAME; when undefined, the request's host name. */
  serverName: string | undefined;
  /** SERVER_SOFTWARE: "nodefpm/<version>". */
  serverSoftware: string;
  trustProxy: TrustProxy;
  /** Extra params (fastcgi_param): one of a name already sent replaces its value in place (HTTP_ ones too); a new name goes before the HTTP_ ones. */
  extra: ReadonlyArray<readonly [string, string]>;
}

/**
 * Request headers that are about one hop, not the request: never passed on as HTTP_ params (RFC 9110
 * section 7.6.1; Proxy-Authorization is for a proxy, which is us). Transfer-Encoding is kept, as nginx
 * keeps it: with CONTENT_LENGTH="" it is how an app (Express's body-parser, for one) knows a body comes.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'http2-settings']);
/** Headers a Connection header may not take away from the app: they describe the body, not the hop. */
const END_TO_END = new Set(['content-length', 'content-type', 'transfer-encoding']);
/**
 * Header names nginx passes (ignore_invalid_headers on, underscores_in_headers off): letters, digits
 * and "-". An underscore would make X-Real_IP and X-Real-IP the same HTTP_X_REAL_IP param, so one
 * header could pose as another: such headers are dropped, as nginx drops them.
 */
const VALID_NAME = /^[A-Za-z0-9-]+$/;

function bad(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_GATEWAY_BAD_REQUEST', message);
}

/** "::ffff:127.0.0.1" as "127.0.0.1": a dual-stack listener reports IPv4 peers that way, and apps compare with the IPv4 form. */
export function plainAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** The request headers, grouped by lower-case name in the order first seen, with their values in order. */
interface HeaderGroups {
  groups: Map<string, { name: string; values: string[] }>;
  hosts: string[];
  connectionTokens: Set<string>;
}

function groupHeaders(rawHeaders: readonly string[]): HeaderGroups {
  const groups = new Map<string, { name: string; values: string[] }>();
  const hosts: string[] = [];
  const connectionTokens = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'host') {
      hosts.push(value);
      continue;
    }
    if (lower === 'connection') {
      for (const token of value.split(',')) {
        const trimmed = token.trim().toLowerCase();
        if (trimmed !== '' && !END_TO_END.has(trimmed)) connectionTokens.add(trimmed);
      }
    }
    const group = groups.get(lower);
    if (group === undefined) groups.set(lower, { name: lower, values: [value] });
    else group.values.push(value);
  }
  return { groups, hosts, connectionTokens };
}

function isTrusted(trust: TrustProxy, address: string | undefined): boolean {
  if (trust === true) return true;
  if (trust === false || address === undefined) return false;
  return trust.includes(address);
}

/** The last value of a comma-separated forwarding header (what the proxy next to us added). */
function lastListed(values: string[] | undefined): string | undefined {
  if (values === undefined) return undefined;
  const items = values.join(',').split(',').map((item) => item.trim()).filter((item) => item !== '');
  return items.at(-1);
}

/**
 * The client's address from X-Forwarded-For: walking from the right, past every proxy that is
 * trusted, the first address that is not; with `true` only the peer is trusted, so the last entry.
 */
function forwardedFor(values: string[] | undefined, trust: TrustProxy): string | undefined {
  if (values === undefined) return undefined;
  const items = values.join(',').split(',').map((item) => plainAddress(item.trim())!).filter((item) => isIP(item) !== 0);
  if (items.length === 0) return undefined;
  if (trust === true) return items.at(-1);
  for (let i = items.length - 1; i >= 0; i--) if (!isTrusted(trust, items[i])) return items[i];
  return items[0];
}

/** The param name of a header: HTTP_ and the name upper-cased with "-" as "_". */
function paramName(lower: string): string {
  return `HTTP_${lower.toUpperCase().replaceAll('-', '_')}`;
}

/**
 * Builds the params for one request. Throws NODEFPM_GATEWAY_BAD_REQUEST (400) for a repeated or
 * malformed Host (nginx refuses both).
 */
export function buildParams(http: HttpSide, script: ScriptParams | null, settings: ParamSettings): Array<[string, string]> {
  const { groups, hosts, connectionTokens } = groupHeaders(http.rawHeaders);
  if (hosts.length > 1) throw bad('the request has more than one Host header');

  const remoteAddress = plainAddress(http.remoteAddress);
  const unix = http.remoteAddress === undefined && http.localAddress === undefined;
  const trusted = isTrusted(settings.trustProxy, remoteAddress);

  let host: RequestHost | null = null;
  if (http.target.authority !== null) host = parseHost(http.target.authority);
  else if (hosts.length === 1) host = parseHost(hosts[0]!);
  let scheme: 'http' | 'https' = http.tls ? 'https' : 'http';
  let clientAddress = unix ? 'unix:' : (remoteAddress ?? '');
  let clientPort = unix || http.remotePort === undefined ? '' : String(http.remotePort);
  let serverPort = unix || http.localPort === undefined ? '' : String(http.localPort);
  if (trusted) {
    const forwarded = forwardedFor(groups.get('x-forwarded-for')?.values, settings.trustProxy);
    if (forwarded !== undefined) {
      clientAddress = forwarded;
      // The port was the proxy's: the client's is not known.
      clientPort = '';
    }
    const proto = lastListed(groups.get('x-forwarded-proto')?.values)?.toLowerCase();
    if (proto === 'https' || proto === 'http') scheme = proto;
    const forwardedHost = lastListed(groups.get('x-forwarded-host')?.values);
    if (forwardedHost !== undefined) host = parseHost(forwardedHost);
    const forwardedPort = lastListed(groups.get('x-forwarded-port')?.values);
    if (forwardedPort !== undefined && /^[0-9]{1,5}$/.test(forwardedPort)) serverPort = forwardedPort;
  }
  const serverAddress = unix ? 'unix:' : (plainAddress(http.localAddress) ?? '');
  const serverName = settings.serverName ?? host?.name ?? serverAddress;

  const contentType = groups.get('content-type')?.values[0] ?? '';
  const params: Array<[string, string]> = [];
  if (script !== null) params.push(['SCRIPT_FILENAME', script.scriptFilename]);
  params.push(
    ['QUERY_STRING', http.target.queryString],
    ['REQUEST_METHOD', http.method],
    ['CONTENT_TYPE', contentType],
    ['CONTENT_LENGTH', http.contentLength],
    ['SCRIPT_NAME', script?.scriptName ?? http.target.path],
    ['REQUEST_URI', http.target.requestUri],
    ['DOCUMENT_URI', script?.documentUri ?? http.target.path],
    ['DOCUMENT_ROOT', settings.documentRoot],
    ['SERVER_PROTOCOL', `HTTP/${http.httpVersion}`],
    ['REQUEST_SCHEME', scheme],
  );
  // `fastcgi_param HTTPS $https if_not_empty`: present only on TLS.
  if (scheme === 'https') params.push(['HTTPS', 'on']);
  params.push(
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', settings.serverSoftware],
    ['REMOTE_ADDR', clientAddress],
    ['REMOTE_PORT', clientPort],
    // nginx sends $remote_user, taken from an Authorization header nobody checked; the front checks no
    // credentials, so it claims no user (the app still gets HTTP_AUTHORIZATION).
    ['REMOTE_USER', ''],
    ['SERVER_ADDR', serverAddress],
    ['SERVER_PORT', serverPort],
    ['SERVER_NAME', serverName],
    // PHP built with cgi.force_redirect (Debian's is) refuses to run without it.
    ['REDIRECT_STATUS', '200'],
  );
  if (script !== null) params.push(['PATH_INFO', script.pathInfo]);
  const headersFrom = params.length;
  // nginx's `$host`: the host of the request; with none (HTTP/1.0), the server name.
  params.push(['HTTP_HOST', host?.authority ?? serverName]);
  for (const { name, values } of groups.values()) {
    if (HOP_BY_HOP.has(name) || connectionTokens.has(name)) continue;
    // httpoxy: HTTP_PROXY would pass for the HTTP_PROXY environment variable HTTP clients obey.
    if (name === 'proxy') continue;
    if (!VALID_NAME.test(name)) continue;
    // Repeated headers become one param, as nginx (1.23.0 and later) joins them; cookies with "; " (RFC 6265 section 5.4).
    params.push([paramName(name), values.join(name === 'cookie' ? '; ' : ', ')]);
  }
  let insertAt = headersFrom;
  for (const [name, value] of settings.extra) {
    const existing = params.find((pair) => pair[0] === name);
    if (existing !== undefined) existing[1] = value;
    else params.splice(insertAt++, 0, [name, value]);
  }
  return params;
}
