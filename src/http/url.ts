// The request's URL from CGI params: the absolute URL (scheme, host, REQUEST_URI) and the mount point (SCRIPT_NAME / PATH_INFO as each web server sends them).

import { NodefpmError } from '../errors.js';
import { PercentDecodingError, strictDecode } from './query.js';

/** Where the params come from: the Request (one lookup per name, the rest stay undecoded). */
export interface ParamSource {
  param(name: string): string | undefined;
}

function isOn(value: string | undefined): boolean {
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return lower === 'on' || lower === '1' || lower === 'true' || lower === 'yes';
}

/** "https" when HTTPS is on (Apache, nginx, lighttpd) or REQUEST_SCHEME says so; else "http". */
export function schemeOf(source: ParamSource): 'http' | 'https' {
  if (isOn(source.param('HTTPS'))) return 'https';
  return source.param('REQUEST_SCHEME')?.toLowerCase() === 'https' ? 'https' : 'http';
}

/** 80 for http, 443 for https. */
export function defaultPort(scheme: 'http' | 'https'): number {
  return scheme === 'https' ? 443 : 80;
}

/**
 * The authority: HTTP_HOST as the client sent it (Debian's nginx fastcgi_params sends `$host`, which
 * has no port: see docs/request.md), else SERVER_NAME with SERVER_PORT unless it is the scheme's
 * default, else "localhost". An IPv6 SERVER_NAME gets its brackets.
 */
export function authorityOf(source: ParamSource, scheme: 'http' | 'https'): string {
  const host = source.param('HTTP_HOST');
  if (host !== undefined && host !== '') return host;
  let name = source.param('SERVER_NAME');
  if (name === undefined || name === '') return 'localhost';
  if (name.includes(':') && !name.startsWith('[')) name = `[${name}]`;
  const port = source.param('SERVER_PORT');
  if (port === undefined || port === '' || port === String(defaultPort(scheme))) return name;
  return `${name}:${port}`;
}

/** Characters a URL path keeps as they are; everything else in a decoded path is percent-encoded. */
const PATH_SAFE = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/") PATH_SAFE[c.charCodeAt(0)] = 1;

/** Percent-encodes a Latin-1 string for a URL: bytes above 0x7f as %XX (the bytes the client sent), and, with `all`, every character a path must escape. */
function encodeBytes(text: string, all: boolean): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || (all && PATH_SAFE[c] !== 1)) {
      out += `${text.slice(start, i)}%${c.toString(16).toUpperCase().padStart(2, '0')}`;
      start = i + 1;
    }
  }
  return start === 0 ? text : out + text.slice(start);
}

/** The request target: REQUEST_URI, or (web servers that send none) SCRIPT_NAME + PATH_INFO, re-encoded, + ?QUERY_STRING. */
export function targetOf(source: ParamSource): string {
  const uri = source.param('REQUEST_URI');
  if (uri !== undefined && uri !== '') return uri;
  const path = encodeBytes((source.param('SCRIPT_NAME') ?? '') + (source.param('PATH_INFO') ?? ''), true) || '/';
  const query = source.param('QUERY_STRING');
  return query === undefined || query === '' ? path : `${path}?${query}`;
}

function badUrl(message: string, cause?: unknown): NodefpmError {
  return new NodefpmError('NODEFPM_BAD_URL', message, cause === undefined ? undefined : { cause });
}

/**
 * The absolute URL of the request (a WHATWG URL): the scheme, the authority (see authorityOf), then
 * REQUEST_URI. An absolute-form REQUEST_URI (a proxy request) names its own scheme and host; `*`
 * (OPTIONS *) is the root. Raw bytes above 0x7f in the target are percent-encoded as the bytes they
 * are. A Host with a delimiter in it, or a target that is not a path, is NODEFPM_BAD_URL (400).
 */
export function requestUrl(source: ParamSource): URL {
  const scheme = schemeOf(source);
  const target = targetOf(source);
  let input: string;
  if (/^https?:\/\//i.test(target)) {
    input = target;
  } else {
    const authority = authorityOf(source, scheme);
    // A Host header with a delimiter in it would move part of itself into the path or the userinfo.
    if (/[/?#@\\\s]/.test(authority)) throw badUrl(`the host ${JSON.stringify(authority.slice(0, 200))} is not a host name`);
    if (target.startsWith('/')) input = `${scheme}://${authority}${target}`;
    else if (target === '*') input = `${scheme}://${authority}/`;
    else throw badUrl(`the request target ${JSON.stringify(target.slice(0, 200))} is not a path`);
  }
  try {
    return new URL(encodeBytes(input, false));
  } catch (error) {
    throw badUrl(`the request URL ${JSON.stringify(input.slice(0, 200))} cannot be parsed`, error);
  }
}

/** Where the web server mounted the app, and the path below it; basePath + pathInfo is the whole (decoded) path. */
export interface MountPoint {
  /** The mount point, decoded, without a trailing slash: "" at the root, "/app" below it. */
  readonly basePath: string;
  /** The decoded path below the mount point: "/users/42", "/" at the mount's root, "" for the mount point itself without its slash. */
  readonly pathInfo: string;
}

/**
 * Checks and normalises the basePath option: "" or "/" mean the root (""), "/app/" becomes "/app".
 * It is a decoded path ("/my app", not "/my%20app"), as SCRIPT_NAME is.
 */
export function normalizeBasePath(option: string): string {
  if (typeof option !== 'string' || (option !== '' && !option.startsWith('/')) || /[?#\0]/.test(option)) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `option basePath must be "" or a decoded path starting with "/", without "?" or "#", got ${JSON.stringify(option)}`);
  }
  return option.replace(/\/+$/, '');
}

/** A param read as Latin-1 bytes, decoded as UTF-8 strictly (the web server already percent-decoded it). */
function utf8Param(source: ParamSource, name: string): string {
  const value = source.param(name);
  if (value === undefined || value === '') return '';
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return value;
  // strictDecode with no "%" in play only validates and converts the bytes; a literal "%" must stay one.
  const escaped = value.replaceAll('%', '%25');
  try {
    return strictDecode(escaped, false);
  } catch (error) {
    if (!(error instanceof PercentDecodingError)) throw error;
    throw badUrl(`${name} is not valid UTF-8: ${JSON.stringify(error.sequence)} ${error.problem}`, error);
  }
}

/** The path of REQUEST_URI with dot segments resolved, percent-decoded strictly ("+" stays a plus). */
function decodedRequestPath(source: ParamSource): string {
  const target = targetOf(source);
  let path: string;
  if (target.startsWith('/')) {
    const mark = target.search(/[?#]/);
    path = mark === -1 ? target : target.slice(0, mark);
    // Resolve "." and ".." the way the URL parser (and every web server) does, without a host to get wrong.
    if (/(^|\/)\.|%2e/i.test(path)) path = new URL(encodeBytes(path, false), 'http://h').pathname;
  } else if (/^https?:\/\//i.test(target)) {
    try {
      path = new URL(encodeBytes(target, false)).pathname;
    } catch (error) {
      throw badUrl(`the request URL ${JSON.stringify(target.slice(0, 200))} cannot be parsed`, error);
    }
  } else {
    path = '/';
  }
  try {
    return strictDecode(path, false);
  } catch (error) {
    if (!(error instanceof PercentDecodingError)) throw error;
    throw badUrl(error.describe('the request path'), error);
  }
}

function splitAt(whole: string, basePath: string): MountPoint {
  if (basePath === '') return { basePath: '', pathInfo: whole };
  if (whole === basePath || whole.startsWith(`${basePath}/`)) return { basePath, pathInfo: whole.slice(basePath.length) };
  // Not under the forced mount (a rewrite sent it elsewhere): all of it is the path, so the two still add up.
  return { basePath: '', pathInfo: whole };
}

/**
 * The mount point, from what the web server sent (docs/request.md has the table of what each sends):
 *
 * - `forcedBasePath` (the basePath option, normalised) wins: it is split off the whole path when the
 *   path is under it. For web servers that send nothing usable: nginx with Debian's fastcgi_params,
 *   Apache's ProxyPass without proxy-fcgi-pathinfo, h2o (always SCRIPT_NAME="").
 * - A non-empty PATH_INFO means the web server split the path: SCRIPT_NAME is the mount (nginx with
 *   fastcgi_split_path_info, Apache with proxy-fcgi-pathinfo, lighttpd, h2o).
 * - Otherwise SCRIPT_NAME is the whole path (nginx and Apache by default) and the mount is unknown:
 *   basePath is "" and pathInfo is the whole path.
 *
 * The whole path is SCRIPT_NAME + PATH_INFO when the web server sent either (decoded and normalised by
 * it: nginx and lighttpd merge "//", all of them resolve ".."), else REQUEST_URI's path, decoded here.
 */
export function mountPoint(source: ParamSource, forcedBasePath: string | null): MountPoint {
  const scriptName = utf8Param(source, 'SCRIPT_NAME');
  const pathInfo = utf8Param(source, 'PATH_INFO');
  const whole = scriptName + pathInfo || decodedRequestPath(source);
  if (forcedBasePath !== null) return splitAt(whole, forcedBasePath);
  if (pathInfo !== '') {
    // A SCRIPT_NAME with a trailing slash (a split regex that kept it) gives its slash to pathInfo.
    const basePath = scriptName.replace(/\/+$/, '');
    return { basePath, pathInfo: whole.slice(basePath.length) };
  }
  return { basePath: '', pathInfo: whole };
}
