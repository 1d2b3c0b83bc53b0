// Cookies both ways: the Cookie request header parsed leniently as browsers send it, Set-Cookie lines built strictly.

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import { looksSigned, type Signer } from './signing.js';

/** Browsers ignore a cookie whose name and value together exceed this many bytes (RFC 6265 section 6.1 minimum, Chrome's limit). */
export const MAX_COOKIE_PAIR_BYTES = 4096;

/** SameSite values; the lower-case spellings are accepted and written capitalised. */
export type SameSite = 'Strict' | 'Lax' | 'None' | 'strict' | 'lax' | 'none';
/** Chrome's Priority attribute. */
export type CookiePriority = 'Low' | 'Medium' | 'High' | 'low' | 'medium' | 'high';

/**
 * Set-Cookie attributes. Nothing is added that is not asked for (serializeCookie adds no Path, for
 * example; res.setCookie defaults path to "/").
 */
export interface CookieOptions {
  /** Max-Age in seconds (fractions are dropped; 0 or less deletes the cookie at once). */
  maxAge?: number;
  /** Expires, written as an HTTP date. Browsers prefer Max-Age when both are given. */
  expires?: Date;
  /** Path the cookie is sent for. */
  path?: string;
  /** Domain the cookie is sent to (and its subdomains); without it, only the host that set it. */
  domain?: string;
  /** Only over HTTPS. Required by SameSite=None, Partitioned, and the __Secure- and __Host- name prefixes. */
  secure?: boolean;
  /** Hidden from JavaScript (document.cookie). */
  httpOnly?: boolean;
  /** Cross-site sending policy. None requires secure (browsers drop the cookie otherwise, so it is an error here). */
  sameSite?: SameSite;
  /** CHIPS: a cookie kept per top-level site. Requires secure (an error otherwise, as for SameSite=None). */
  partitioned?: boolean;
  /** Chrome's eviction priority. */
  priority?: CookiePriority;
  /**
   * How the value is encoded. Default: percent-encoding (UTF-8) of '%' and of every character a
   * cookie value may not hold (controls, space, '"', ',', ';', '\\', non-ASCII), so that any string
   * survives the round trip through parseCookieHeader. `false`: the value is written as given and
   * must already consist of legal cookie characters.
   */
  encode?: ((value: string) => string) | false;
}

// RFC 6265 section 4.1.1: cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E.
const COOKIE_VALUE = /^(?:[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*|"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")$/;
/** What the default encoder replaces: anything outside cookie-octet, and '%' itself so decoding is exact. */
const ENCODE_CHARS = /[^\x21\x23\x24\x26-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]/gu;
// RFC 9110 token, which RFC 6265 requires of a cookie name.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 6265 av-octet: any CHAR except CTLs or ';' (Path and Domain values).
const ATTRIBUTE_VALUE = /^[\x20-\x3A\x3C-\x7E]*$/;

function invalid(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_COOKIE_INVALID', message);
}

/** The default value encoder: percent-encodes (as UTF-8) '%' and every character not allowed in a cookie value. */
export function encodeCookieValue(value: string): string {
  try {
    return value.replace(ENCODE_CHARS, encodeURIComponent);
  } catch (error) {
    // encodeURIComponent throws URIError on a lone surrogate, which has no UTF-8 form.
    throw new NodefpmError('NODEFPM_COOKIE_INVALID', 'cookie value is not well-formed Unicode (a lone surrogate)', { cause: error });
  }
}

/** Percent-decodes a cookie value; a value that is not valid percent-encoded UTF-8 is returned unchanged (never throws). */
export function decodeCookieValue(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/**
 * Parses a Cookie request header (HTTP_COOKIE) into a null-prototype object, as browsers send it and
 * as RFC 6265 section 5.4 describes. Lenient: pairs are split on ';', names and values trimmed of
 * spaces and tabs, a value in double quotes unquoted, pairs without '=' or with an empty name
 * skipped, values percent-decoded where that is valid UTF-8 and kept raw where it is not. Never
 * throws. When a name repeats, the first occurrence wins: browsers send the cookie with the most
 * specific Path (and, for equal paths, the oldest) first.
 */
export function parseCookieHeader(header: string | undefined | null): Record<string, string> {
  const cookies = Object.create(null) as Record<string, string>;
  if (header === undefined || header === null || header === '') return cookies;
  const length = header.length;
  let start = 0;
  while (start < length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = length;
    const equals = header.indexOf('=', start);
    if (equals !== -1 && equals < end) {
      let nameStart = start;
      let nameEnd = equals;
      while (nameStart < nameEnd && isSpace(header.charCodeAt(nameStart))) nameStart++;
      while (nameEnd > nameStart && isSpace(header.charCodeAt(nameEnd - 1))) nameEnd--;
      if (nameEnd > nameStart) {
        const name = header.slice(nameStart, nameEnd);
        if (!(name in cookies)) {
          let valueStart = equals + 1;
          let valueEnd = end;
          while (valueStart < valueEnd && isSpace(header.charCodeAt(valueStart))) valueStart++;
          while (valueEnd > valueStart && isSpace(header.charCodeAt(valueEnd - 1))) valueEnd--;
          if (valueEnd - valueStart >= 2 && header.charCodeAt(valueStart) === 0x22 && header.charCodeAt(valueEnd - 1) === 0x22) {
            valueStart++;
            valueEnd--;
          }
          cookies[name] = decodeCookieValue(header.slice(valueStart, valueEnd));
        }
      }
    }
    start = end + 1;
  }
  return cookies;
}

const SAME_SITE: Record<string, string> = { strict: 'Strict', lax: 'Lax', none: 'None' };
const PRIORITY: Record<string, string> = { low: 'Low', medium: 'Medium', high: 'High' };

/**
 * One Set-Cookie header value: `name=value` and the attributes asked for, in the order Max-Age,
 * Expires, Domain, Path, Secure, HttpOnly, SameSite, Partitioned, Priority.
 *
 * Strict, because a browser silently drops a cookie it does not like and the app never learns why:
 * each of these throws NodefpmError NODEFPM_COOKIE_INVALID — a name that is not an HTTP token; a
 * value with characters a cookie may not hold (only possible with a custom or disabled encoder); name
 * and value over 4096 bytes together; a Path or Domain with ';' or control characters; a Max-Age that
 * is not a finite number; an invalid Date; an unknown SameSite or Priority; SameSite=None or
 * Partitioned without Secure; a `__Secure-` name without Secure; a `__Host-` name without Secure, with
 * a Domain, or with a Path other than "/".
 */
export function serializeCookie(name: string, value: string, options: CookieOptions = {}): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw invalid(`cookie name ${JSON.stringify(name)} is not an HTTP token`);
  if (typeof value !== 'string') throw invalid(`value of cookie ${name} is not a string`);
  const encoded = options.encode === false ? value : (options.encode ?? encodeCookieValue)(value);
  if (!COOKIE_VALUE.test(encoded)) {
    throw invalid(`value of cookie ${name} has characters a cookie value may not hold (controls, space, '"', ',', ';', '\\', non-ASCII)`);
  }
  if (name.length + encoded.length > MAX_COOKIE_PAIR_BYTES) {
    throw invalid(`cookie ${name} is ${name.length + encoded.length} bytes with its value; browsers drop cookies over ${MAX_COOKIE_PAIR_BYTES}`);
  }
  let cookie = `${name}=${encoded}`;

  if (options.maxAge !== undefined) {
    if (typeof options.maxAge !== 'number' || !Number.isFinite(options.maxAge)) {
      throw invalid(`maxAge of cookie ${name} must be a finite number of seconds, got ${String(options.maxAge)}`);
    }
    cookie += `; Max-Age=${Math.floor(options.maxAge)}`;
  }
  if (options.expires !== undefined) {
    if (!(options.expires instanceof Date) || Number.isNaN(options.expires.getTime())) {
      throw invalid(`expires of cookie ${name} must be a valid Date`);
    }
    cookie += `; Expires=${options.expires.toUTCString()}`;
  }
  if (options.domain !== undefined) {
    if (options.domain === '' || !ATTRIBUTE_VALUE.test(options.domain) || options.domain.includes(' ')) {
      throw invalid(`domain of cookie ${name} is not a valid domain: ${JSON.stringify(options.domain)}`);
    }
    cookie += `; Domain=${options.domain}`;
  }
  if (options.path !== undefined) {
    if (!ATTRIBUTE_VALUE.test(options.path)) throw invalid(`path of cookie ${name} has ';' or control characters: ${JSON.stringify(options.path)}`);
    cookie += `; Path=${options.path}`;
  }
  const secure = options.secure === true;
  if (secure) cookie += '; Secure';
  if (options.httpOnly === true) cookie += '; HttpOnly';
  if (options.sameSite !== undefined) {
    const sameSite = SAME_SITE[String(options.sameSite).toLowerCase()];
    if (sameSite === undefined) throw invalid(`sameSite of cookie ${name} must be Strict, Lax or None, got ${String(options.sameSite)}`);
    if (sameSite === 'None' && !secure) throw invalid(`cookie ${name} has SameSite=None without Secure, which browsers reject`);
    cookie += `; SameSite=${sameSite}`;
  }
  if (options.partitioned === true) {
    if (!secure) throw invalid(`cookie ${name} is Partitioned without Secure, which browsers reject`);
    cookie += '; Partitioned';
  }
  if (options.priority !== undefined) {
    const priority = PRIORITY[String(options.priority).toLowerCase()];
    if (priority === undefined) throw invalid(`priority of cookie ${name} must be Low, Medium or High, got ${String(options.priority)}`);
    cookie += `; Priority=${priority}`;
  }

  // Cookie name prefixes (RFC 6265bis section 4.1.3); browsers compare them case-insensitively.
  const lower = name.toLowerCase();
  if (lower.startsWith('__secure-') && !secure) throw invalid(`cookie ${name} has the __Secure- prefix, which requires Secure`);
  if (lower.startsWith('__host-') && (!secure || options.domain !== undefined || options.path !== '/')) {
    throw invalid(`cookie ${name} has the __Host- prefix, which requires Secure, Path=/ and no Domain`);
  }
  return cookie;
}

// ---- the request side, as req.cookies and req.signedCookie use it ----

/** Default bound on the Cookie request header (maxCookieBytes): above any web server's default header limit, and cheap to parse. */
export const DEFAULT_MAX_COOKIE_BYTES = 16 * 1024;

/** What a Request needs for its cookies: the bound, the signing keys (null: none configured) and where to log forged ones. */
export interface CookieSettings {
  readonly maxCookieBytes: number;
  readonly signer: Signer | null;
  readonly log: Logger;
}

/**
 * The cookies of a request from its HTTP_COOKIE param. Params are read as Latin-1, so a header with
 * raw UTF-8 bytes (document.cookie = "a=é" sends them unencoded) is re-read as UTF-8 when it is valid
 * UTF-8. A header over `maxBytes` is NODEFPM_COOKIE_HEADER_TOO_LARGE (431) rather than parsed.
 */
export function requestCookies(header: string | undefined, maxBytes: number): Record<string, string> {
  if (header === undefined) return parseCookieHeader(undefined);
  if (header.length > maxBytes) {
    throw new NodefpmError(
      'NODEFPM_COOKIE_HEADER_TOO_LARGE',
      `the Cookie header has ${header.length} bytes, more than the ${maxBytes} allowed (maxCookieBytes); clear this site's cookies`,
    );
  }
  if (/[\x80-\xff]/.test(header)) {
    const utf8 = Buffer.from(header, 'latin1').toString('utf8');
    if (!utf8.includes('\ufffd')) header = utf8;
  }
  return parseCookieHeader(header);
}

/** The signer, or NODEFPM_INVALID_OPTION saying how to configure one. */
export function requireSigner(signer: Signer | null): Signer {
  if (signer === null) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', 'signed cookies need the keys option of createServer (signing keys of 32 bytes or more; the first signs)');
  }
  return signer;
}

/**
 * The value of signed cookie `name` (signed with the name as context, as res.setCookie signs), or
 * NODEFPM_COOKIE_SIGNATURE (400) when its signature does not verify with any key; the reason is
 * logged (warn) with the request id.
 */
export function verifySignedCookie(name: string, raw: string, settings: CookieSettings, requestId: string): string {
  const value = requireSigner(settings.signer).unsign(raw, name);
  if (value !== false) return value;
  const reason = looksSigned(raw) ? 'tampered, or signed with a key that is not in keys' : 'it carries no signature';
  settings.log.warn(`signed cookie ${name} failed verification: ${reason}`, { requestId, code: 'NODEFPM_COOKIE_SIGNATURE' });
  return rejectSignature(name, reason);
}

function rejectSignature(name: string, reason: string): never {
  throw new NodefpmError('NODEFPM_COOKIE_SIGNATURE', `cookie ${name} has a bad signature (${reason}); clear it and sign in again`);
}

/**
 * Every cookie whose signature verifies, unsigned, in a null-prototype object; the others are left
 * out. Cookies that look signed (value.signature) but fail are logged (warn) as forgeries.
 */
export function verifiedCookies(cookies: Record<string, string>, settings: CookieSettings, requestId: string): Record<string, string> {
  const signer = requireSigner(settings.signer);
  const verified = Object.create(null) as Record<string, string>;
  for (const name in cookies) {
    const raw = cookies[name]!;
    const value = signer.unsign(raw, name);
    if (value !== false) verified[name] = value;
    else if (looksSigned(raw)) {
      settings.log.warn(`signed cookie ${name} failed verification: tampered, or signed with a key that is not in keys`, {
        requestId,
        code: 'NODEFPM_COOKIE_SIGNATURE',
      });
    }
  }
  return verified;
}
