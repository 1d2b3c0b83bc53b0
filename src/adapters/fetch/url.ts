// The absolute URL of a fetch Request, from CGI params: scheme, host (HTTP_HOST or SERVER_NAME:SERVER_PORT) and REQUEST_URI.

import { NodefpmError } from '../../errors.js';
import { PairCursor, ParamNames } from '../../protocol/index.js';

/** The params requestUrl() reads, found one by one so the rest stay undecoded. */
export type ParamLookup = (name: string) => string | undefined;

/** The params a Request's method and URL come from. */
const TARGET_NAMES = ['REQUEST_METHOD', 'REQUEST_URI', 'HTTPS', 'REQUEST_SCHEME', 'HTTP_HOST', 'SERVER_NAME', 'SERVER_PORT', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** Their values, in TARGET_NAMES order (an array: a store by computed property name into an object is several times slower). */
export type TargetParams = Array<string | undefined>;

/** TARGET_NAMES by length, as bytes with their index: a pair whose name has no such length is passed over at once. */
const targetsByLength = new ParamNames(TARGET_NAMES).byLength;

/**
 * The params of TARGET_NAMES, read in one pass over the PARAMS bytes (a later duplicate replaces an
 * earlier one, as Exchange.param gives). Looking each one up on its own (Exchange.param) walks the
 * whole block every time: five or six walks for every Request's method and URL.
 */
export function readTargetParams(bytes: Buffer): TargetParams {
  const found: TargetParams = new Array<string | undefined>(TARGET_NAMES.length).fill(undefined);
  // One Latin-1 decode, then slices of it: a native decode per value costs more than all the slices.
  let text: string | null = null;
  const cursor = new PairCursor(bytes);
  while (cursor.next()) {
    const candidates = targetsByLength[cursor.valueStart - cursor.nameStart];
    if (candidates === undefined) continue;
    for (const candidate of candidates) {
      if (cursor.nameIsBytes(candidate.bytes)) {
        text ??= bytes.toString('latin1');
        found[candidate.index] = text.slice(cursor.valueStart, cursor.valueEnd);
        break;
      }
    }
  }
  return found;
}

/** A ParamLookup over what readTargetParams() found (other names are undefined). */
export function targetLookup(found: TargetParams): ParamLookup {
  return (name) => {
    const index = TARGET_NAMES.indexOf(name as TargetName);
    return index === -1 ? undefined : found[index];
  };
}

/** REQUEST_METHOD from what readTargetParams() found. */
export function targetMethod(found: TargetParams): string | undefined {
  return found[0];
}

function isOn(value: string | undefined): boolean {
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return lower === 'on' || lower === '1' || lower === 'true' || lower === 'yes';
}

/** "https" when the web server says the client connection is secure (HTTPS=on, or REQUEST_SCHEME=https), as the native Request says. */
export function schemeOf(param: ParamLookup): 'http' | 'https' {
  if (isOn(param('HTTPS'))) return 'https';
  return param('REQUEST_SCHEME')?.toLowerCase() === 'https' ? 'https' : 'http';
}

/**
 * The authority part: HTTP_HOST as the client sent it, else SERVER_NAME with SERVER_PORT unless it is
 * the scheme's default, else `fallback`. An IPv6 SERVER_NAME gets its brackets.
 */
export function hostOf(param: ParamLookup, scheme: 'http' | 'https', fallback: string): string {
  const host = param('HTTP_HOST');
  if (host !== undefined && host !== '') return host;
  let name = param('SERVER_NAME');
  if (name === undefined || name === '') return fallback;
  if (name.includes(':') && !name.startsWith('[')) name = `[${name}]`;
  const port = param('SERVER_PORT');
  if (port === undefined || port === '' || (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443')) return name;
  return `${name}:${port}`;
}

/** The request target: REQUEST_URI, or (for web servers that send none) SCRIPT_NAME + PATH_INFO + ?QUERY_STRING. */
export function targetOf(param: ParamLookup): string {
  const uri = param('REQUEST_URI');
  if (uri !== undefined && uri !== '') return uri;
  const query = param('QUERY_STRING');
  const path = (param('SCRIPT_NAME') ?? '') + (param('PATH_INFO') ?? '') || '/';
  return query === undefined || query === '' ? path : `${path}?${query}`;
}

// Characters that stand for themselves in a URL path or query: anything else goes through new URL().
const PLAIN_TARGET = new Uint8Array(128);
const PLAIN_HOST = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) PLAIN_TARGET[c] = PLAIN_HOST[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) PLAIN_TARGET[c] = PLAIN_HOST[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) PLAIN_TARGET[c] = 1;
for (const c of "-./:?[]@!$&'()*+,;=~_") PLAIN_TARGET[c.charCodeAt(0)] = 1;
for (const c of '.-_') PLAIN_HOST[c.charCodeAt(0)] = 1;
const HEX = /^[0-9A-Fa-f]{2}$/;

/** True when `host` is lower-case name characters, optionally with :port — what new URL() would give back unchanged. */
function isPlainHost(host: string): boolean {
  const length = host.length;
  if (length === 0) return false;
  for (let i = 0; i < length; i++) {
    const c = host.charCodeAt(i);
    if (c === 0x3a /* : */) {
      if (i === 0 || i === length - 1) return false;
      for (let j = i + 1; j < length; j++) {
        const d = host.charCodeAt(j);
        if (d < 0x30 || d > 0x39) return false;
      }
      // A default port would be dropped by new URL(): only the slow path knows the scheme's default.
      const port = host.slice(i + 1);
      return port !== '80' && port !== '443';
    }
    if (c > 0x7f || PLAIN_HOST[c] === 0) return false;
  }
  return true;
}

/**
 * True when `target` (origin-form) is already what new URL() would serialise: it starts with "/", has
 * no dot segment in its path, and holds only characters that need no escaping ("%" only before two hex
 * digits that do not spell a dot).
 */
function isPlainTarget(target: string): boolean {
  if (target.charCodeAt(0) !== 0x2f) return false;
  let inPath = true;
  const length = target.length;
  for (let i = 0; i < length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f /* ? */) inPath = false;
    else if (c === 0x23 /* # */) return false;
    if (c === 0x25 /* % */) {
      const hex = target.slice(i + 1, i + 3);
      if (!HEX.test(hex) || (inPath && (hex === '2e' || hex === '2E'))) return false;
      continue;
    }
    if (c > 0x7f || PLAIN_TARGET[c] === 0) return false;
    // The query of an http(s) URL escapes the apostrophe; its path does not.
    if (!inPath && c === 0x27) return false;
    if (inPath && c === 0x2e /* . */ && target.charCodeAt(i - 1) === 0x2f) {
      // "/." or "/.." ending a segment would be removed by new URL().
      const next = target.charCodeAt(i + 1);
      const after = next === 0x2e ? target.charCodeAt(i + 2) : next;
      if (Number.isNaN(after) || after === 0x2f || after === 0x3f || after === 0x23) return false;
    }
  }
  return true;
}

/**
 * Params are Latin-1 strings: each character is one byte the client sent. Bytes above 0x7f are
 * percent-encoded as themselves, so a raw UTF-8 path reaches the URL parser as the bytes it was (new
 * URL() alone would encode each Latin-1 character as UTF-8, doubling them).
 */
function encodeHighBytes(text: string): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) {
      out += text.slice(start, i) + '%' + (c < 0x10 ? '0' : '') + c.toString(16).toUpperCase();
      start = i + 1;
    }
  }
  return start === 0 ? text : out + text.slice(start);
}

/**
 * The absolute URL of the request. Most requests take the fast path, a concatenation; hosts and
 * targets that new URL() would change (upper case, default ports, escapes, dot segments, absolute-form
 * targets) go through it. A URL that cannot be parsed is NODEFPM_FETCH_BAD_URL (400).
 */
export function requestUrl(param: ParamLookup, fallbackHost = 'localhost'): string {
  const scheme = schemeOf(param);
  const host = hostOf(param, scheme, fallbackHost);
  const target = targetOf(param);
  if (isPlainHost(host) && isPlainTarget(target)) return `${scheme}://${host}${target}`;
  let input: string;
  if (target.startsWith('http://') || target.startsWith('https://')) {
    // An absolute-form target (a proxy request) names its own scheme and host.
    input = target;
  } else {
    // A Host header with a delimiter in it would move part of itself into the path or userinfo.
    if (/[/?#@\\\s]/.test(host)) throw new NodefpmError('NODEFPM_FETCH_BAD_URL', `the host ${JSON.stringify(host.slice(0, 200))} is not a host name`);
    if (target.charCodeAt(0) === 0x2f) input = `${scheme}://${host}${target}`;
    // OPTIONS * addresses the server itself: its URL is the root.
    else if (target === '*') input = `${scheme}://${host}/`;
    else throw new NodefpmError('NODEFPM_FETCH_BAD_URL', `the request target ${JSON.stringify(target.slice(0, 200))} is not a path`);
  }
  try {
    const url = new URL(encodeHighBytes(input));
    return url.href;
  } catch (error) {
    throw new NodefpmError('NODEFPM_FETCH_BAD_URL', `the request URL ${JSON.stringify(input.slice(0, 200))} cannot be parsed`, { cause: error });
  }
}
