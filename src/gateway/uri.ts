// The request target and Host as nginx reads them: REQUEST_URI, QUERY_STRING, the decoded and normalised path ($uri), and the host.

import { NodefpmError } from '../errors.js';

/** What the request line's target gives the params. Strings hold raw bytes, one per char (Latin-1), as params do. */
export interface ParsedTarget {
  /** REQUEST_URI: the target as sent, but only path and query for an absolute-form target (as nginx's $request_uri). */
  requestUri: string;
  /** QUERY_STRING: the raw bytes after the first "?", "" when there is none. */
  queryString: string;
  /**
   * nginx's $uri: the path percent-decoded, "//" merged, "." and ".." resolved. Decoded bytes stay
   * bytes (UTF-8 stays UTF-8), one per char. "*" for `OPTIONS *`.
   */
  path: string;
  /** The authority of an absolute-form target (`GET http://host:port/x`), lower-cased, which then wins over Host. */
  authority: string | null;
}

function bad(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_GATEWAY_BAD_REQUEST', message);
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** Percent-decodes a path into bytes-as-chars; bad escapes and NUL are refused, as nginx answers 400 to both. */
export function percentDecodePath(raw: string): string {
  if (!raw.includes('%')) {
    if (raw.includes('\0')) throw bad('the request path contains a NUL byte');
    return raw;
  }
  let out = '';
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) !== 0x25) continue;
    const high = hexValue(raw.charCodeAt(i + 1));
    const low = hexValue(raw.charCodeAt(i + 2));
    if (high < 0 || low < 0) throw bad(`the request path has a "%" not followed by two hex digits: ${JSON.stringify(raw.slice(i, i + 3))}`);
    const byte = high * 16 + low;
    if (byte === 0) throw bad('the request path contains %00');
    out += raw.slice(start, i) + String.fromCharCode(byte);
    start = i + 3;
    i += 2;
  }
  out += raw.slice(start);
  if (out.includes('\0')) throw bad('the request path contains a NUL byte');
  return out;
}

/**
 * Resolves "." and ".." and merges repeated slashes (nginx's merge_slashes on). A ".." that would
 * climb above the root is refused (nginx: 400). A trailing "/", "/." or "/.." leaves a trailing slash.
 */
export function normalizePath(decoded: string): string {
  const segments = decoded.split('/');
  const kept: string[] = [];
  let trailing = false;
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (segment === '' || segment === '.') {
      trailing = last;
      continue;
    }
    if (segment === '..') {
      if (kept.length === 0) throw bad('the request path climbs above the root with ".."');
      kept.pop();
      trailing = last;
      continue;
    }
    kept.push(segment);
    trailing = false;
  }
  if (kept.length === 0) return '/';
  return `/${kept.join('/')}${trailing ? '/' : ''}`;
}

/** Splits and decodes a request target as Node's http gives it (req.url, raw bytes as Latin-1). */
export function parseTarget(target: string): ParsedTarget {
  if (target === '*') return { requestUri: '*', queryString: '', path: '*', authority: null };
  let rest = target;
  let authority: string | null = null;
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.exec(target);
  if (absolute !== null) {
    const after = target.slice(absolute[0].length);
    const end = after.search(/[/?]/);
    authority = (end < 0 ? after : after.slice(0, end)).toLowerCase();
    if (authority.includes('@')) throw bad('the request target carries user information');
    rest = end < 0 ? '/' : after.slice(end);
    if (rest.startsWith('?')) rest = `/${rest}`;
  } else if (!target.startsWith('/')) {
    throw bad(`the request target ${JSON.stringify(target.slice(0, 100))} is not a path`);
  }
  const mark = rest.indexOf('?');
  const rawPath = mark < 0 ? rest : rest.slice(0, mark);
  const queryString = mark < 0 ? '' : rest.slice(mark + 1);
  return { requestUri: rest, queryString, path: normalizePath(percentDecodePath(rawPath)), authority };
}

/** A host and optional port as they may appear in Host or an absolute target. */
const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+,;=%-]+)(?::([0-9]*))?$/;

/** The host (for HTTP_HOST and SERVER_NAME): lower-cased, a trailing dot dropped, the port kept when one was given. */
export interface RequestHost {
  /** host[:port], as HTTP_HOST is sent. */
  authority: string;
  /** The host alone, without brackets for IPv6: SERVER_NAME's default. */
  name: string;
}

/**
 * The request's host, as nginx works out `$host` (the absolute target's authority first, then Host),
 * checked as nginx checks it: a malformed host, or ".." in it, is a 400. Unlike Debian 12's
 * fastcgi_params (`HTTP_HOST $host`), the port is kept: see docs/gateway.md.
 */
export function parseHost(value: string): RequestHost {
  const lower = value.trim().toLowerCase();
  const match = HOST.exec(lower);
  if (match === null || match[1]!.includes('..')) throw bad(`the host ${JSON.stringify(value.slice(0, 100))} is not a host name`);
  let name = match[1]!;
  if (name.endsWith('.') && name.length > 1) name = name.slice(0, -1);
  const port = match[2];
  const authority = port === undefined || port === '' ? name : `${name}:${port}`;
  return { authority, name: name.startsWith('[') ? name.slice(1, -1) : name };
}
