// res.sendFile: a file streamed with backpressure, Range, ETag and conditional requests, or handed to the web server (X-Sendfile, X-Accel-Redirect); paths kept inside their root.

import { Buffer } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { NodefpmError } from '../errors.js';

/**
 * How the file reaches the client:
 * - `stream`: nodefpm reads it and writes it to FCGI_STDOUT, honouring backpressure, with Range and
 *   conditional requests answered here.
 * - `x-sendfile`: the response carries `X-Sendfile: <absolute real path>` and no body; the web server
 *   sends the file (lighttpd with `"allow-x-send-file" => "enable"`, Apache with mod_xsendfile). A
 *   path with '%' in it is streamed instead: lighttpd percent-decodes the header, Apache does not.
 * - `x-accel-redirect`: the response carries `X-Accel-Redirect: <internalLocation><path under root>`;
 *   nginx serves it from an `internal` location that maps to the same root.
 * In the last two the web server does Range, ETag and conditionals itself.
 */
export type SendFileMode = 'stream' | 'x-sendfile' | 'x-accel-redirect';

/** Options of res.sendFile (and the handler's `sendFile` defaults). */
export interface SendFileOptions {
  /**
   * The folder files are served from. With a root, `path` is taken relative to it (a leading "/"
   * too, as URL paths are) and may not leave it: `..` segments, a NUL, a backslash, bad
   * percent-encoding, a symlink resolving outside the root (checked with realpath) are refused with
   * NODEFPM_PATH_REFUSED (a 404, so that what exists outside is not revealed; the reason is logged).
   * Without a root, `path` must be absolute and is trusted, except that `..` segments and NULs are
   * still refused.
   */
  root?: string;
  /** With a root: `path` is a URL path, percent-decoded once before use (as req.path is still encoded). Default true. */
  decode?: boolean;
  /** Default 'stream'. */
  mode?: SendFileMode;
  /** x-accel-redirect: the URI prefix of nginx's `internal` location whose `alias` is `root`, e.g. "/protected/". Required in that mode. */
  internalLocation?: string;
  /** Files and folders whose names start with "." (under the root; the file name alone without one): 'deny' (default, 404) or 'allow'. */
  dotfiles?: 'deny' | 'allow';
  /** A file to serve when the path names a folder (e.g. "index.html"). Default false: a folder is a 404. */
  index?: string | false;
  /** Content-Type; default from the extension (text types with charset=utf-8), application/octet-stream when unknown. A Content-Type already set on the response is kept. */
  contentType?: string;
  /** Content-Disposition: attachment, with this file name (true: the file's own name). Non-ASCII names get filename* (RFC 6266). */
  download?: boolean | string;
  /** The Cache-Control header, or false for none. Default "no-cache" (store, but revalidate: ETag makes that a cheap 304), unless maxAge is given. A Cache-Control already set is kept. */
  cacheControl?: string | false;
  /** Seconds: Cache-Control `public, max-age=N` (with `immutable` if asked). Ignored when cacheControl is given. */
  maxAge?: number;
  immutable?: boolean;
  /** Send a weak ETag made of size and mtime, and honour If-None-Match / If-Match. Default true. */
  etag?: boolean;
  /** Send Last-Modified and honour If-Modified-Since / If-Unmodified-Since. Default true. */
  lastModified?: boolean;
  /** Accept single byte ranges (Accept-Ranges: bytes, 206). Default true. */
  acceptRanges?: boolean;
  /** Bytes read from the file per write (stream mode). Default 64 KiB. */
  chunkSize?: number;
}

/** What sendFile needs of the response: the native Response provides all of it. */
export interface SendFileResponse {
  statusCode: number;
  setHeader(name: string, value: string | number): unknown;
  hasHeader(name: string): boolean;
  removeHeader(name: string): unknown;
  write(chunk: Uint8Array): boolean;
  end(chunk?: string): unknown;
  flushHeaders(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/** What sendFile needs of the request. */
export interface SendFileRequest {
  readonly method: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
  readonly aborted: boolean;
}

const DEFAULT_CHUNK = 64 * 1024;

// ---- content types ----

const TYPES: Record<string, string> = {
  html: 'text/html', htm: 'text/html', xhtml: 'application/xhtml+xml', css: 'text/css',
  js: 'text/javascript', mjs: 'text/javascript', cjs: 'text/javascript', map: 'application/json',
  json: 'application/json', jsonld: 'application/ld+json', webmanifest: 'application/manifest+json',
  txt: 'text/plain', text: 'text/plain', log: 'text/plain', md: 'text/markdown', csv: 'text/csv',
  tsv: 'text/tab-separated-values', xml: 'application/xml', rss: 'application/rss+xml', atom: 'application/atom+xml',
  yaml: 'application/yaml', yml: 'application/yaml', toml: 'application/toml', ics: 'text/calendar', vcf: 'text/vcard',
  svg: 'image/svg+xml', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  avif: 'image/avif', ico: 'image/x-icon', bmp: 'image/bmp', tif: 'image/tiff', tiff: 'image/tiff', heic: 'image/heic',
  woff: 'font/woff', woff2: 'font/woff2', ttf: 'font/ttf', otf: 'font/otf', eot: 'application/vnd.ms-fontobject',
  mp3: 'audio/mpeg', ogg: 'audio/ogg', oga: 'audio/ogg', opus: 'audio/opus', wav: 'audio/wav', flac: 'audio/flac',
  m4a: 'audio/mp4', aac: 'audio/aac', mp4: 'video/mp4', m4v: 'video/mp4', webm: 'video/webm', ogv: 'video/ogg',
  mov: 'video/quicktime', avi: 'video/x-msvideo', mkv: 'video/x-matroska', vtt: 'text/vtt',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tgz: 'application/gzip',
  tar: 'application/x-tar', bz2: 'application/x-bzip2', xz: 'application/x-xz', zst: 'application/zstd',
  '7z': 'application/x-7z-compressed', rar: 'application/vnd.rar', wasm: 'application/wasm',
  rtf: 'application/rtf', epub: 'application/epub+zip', doc: 'application/msword', xls: 'application/vnd.ms-excel',
  ppt: 'application/vnd.ms-powerpoint',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation', sh: 'application/x-sh',
};

/** Types that are text, written with charset=utf-8. */
function isText(type: string): boolean {
  return type.startsWith('text/') || /^application\/(json|javascript|xml|yaml|toml|[\w.-]+\+(json|xml))$/.test(type) || type === 'image/svg+xml';
}

/** The Content-Type for a file name from its extension (case-insensitive); application/octet-stream when unknown. */
export function contentTypeFor(path: string): string {
  const type = TYPES[extname(path).slice(1).toLowerCase()];
  if (type === undefined) return 'application/octet-stream';
  return isText(type) ? `${type}; charset=utf-8` : type;
}

// ---- Content-Disposition (RFC 6266, RFC 8187) ----

/** RFC 8187 attr-char: everything else is percent-encoded as UTF-8. */
function encodeExtValue(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * `attachment; filename="..."`, plus `filename*=UTF-8''...` when the name is not plain printable
 * ASCII (the quoted form then holds an ASCII fallback, with '?' for what it cannot show).
 */
export function contentDisposition(filename: string, type: 'attachment' | 'inline' = 'attachment'): string {
  const name = basename(filename.replaceAll('\\', '/'));
  const plain = /^[\x20-\x7e]*$/.test(name) && !name.includes('%');
  const fallback = name.replace(/[^\x20-\x7e]/gu, '?').replace(/["\\]/g, '\\$&');
  return plain ? `${type}; filename="${fallback}"` : `${type}; filename="${fallback}"; filename*=UTF-8''${encodeExtValue(name)}`;
}

// ---- Range and conditionals ----

/** A satisfiable single byte range, inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads a Range header for a file of `size` bytes (RFC 9110 section 14): a single satisfiable range,
 * 'unsatisfiable' (answer 416), or null to ignore the header and send the whole file — which is the
 * answer to a header that does not parse, to another unit than bytes, and to several ranges (a
 * server may ignore Range; multipart/byteranges is rarely worth its cost).
 */
export function parseRange(header: string, size: number): ByteRange | 'unsatisfiable' | null {
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (match === null) return null;
  const specs = match[1]!.split(',').map((spec) => spec.trim()).filter((spec) => spec !== '');
  if (specs.length !== 1) return null;
  const parts = /^(\d*)\s*-\s*(\d*)$/.exec(specs[0]!);
  if (parts === null) return null;
  const [, first, last] = parts as unknown as [string, string, string];
  if (first === '' && last === '') return null;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return null; // Invalid (RFC 9110 14.1.1): ignored.
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

/** The entity tags of an If-Match / If-None-Match list, or '*'. */
function parseEtagList(header: string): string[] | '*' {
  if (header.trim() === '*') return '*';
  return header.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** Weak comparison (If-None-Match): equal opaque tags, W/ or not. */
function weakMatch(header: string, etag: string | null): boolean {
  const list = parseEtagList(header);
  if (list === '*') return true;
  return etag !== null && list.some((tag) => opaque(tag) === opaque(etag));
}

/** Strong comparison (If-Match, If-Range): neither tag weak, and equal. Our ETags are weak, so only "*" passes If-Match. */
function strongMatch(header: string, etag: string | null): boolean {
  const list = parseEtagList(header);
  if (list === '*') return true;
  return etag !== null && !etag.startsWith('W/') && list.some((tag) => !tag.startsWith('W/') && tag === etag);
}

/** An HTTP date in whole seconds since the epoch, or null when it does not parse. */
function parseHttpDate(value: string | undefined): number | null {
  if (value === undefined) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : Math.floor(time / 1000);
}

// ---- path resolution ----

function refused(reason: string, path: string): NodefpmError {
  // The message is what the client sees; the reason (the cause) only goes to the log.
  return new NodefpmError('NODEFPM_PATH_REFUSED', `not found: ${displayPath(path)}`, { cause: new Error(`refused path ${JSON.stringify(path)}: ${reason}`) });
}

function notFound(reason: string, path: string): NodefpmError {
  return new NodefpmError('NODEFPM_FILE_NOT_FOUND', `not found: ${displayPath(path)}`, { cause: new Error(`${JSON.stringify(path)}: ${reason}`) });
}

/** The requested path for a message: printable, and short. */
function displayPath(path: string): string {
  const clean = path.replace(/[^\x20-\x7e\u00a0-\uffff]/gu, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}...` : clean;
}

function inside(root: string, file: string): boolean {
  return file === root || file.startsWith(root.endsWith(sep) ? root : root + sep);
}

function hasDotSegment(path: string): boolean {
  return path.split(/[/\\]/).some((segment) => segment.startsWith('.') && segment !== '.');
}

/** The file asked for, resolved and checked: its real path, the real root (or null), its stat, and an open handle in stream mode. */
interface ResolvedFile {
  real: string;
  realRoot: string | null;
  size: number;
  mtimeMs: number;
  handle: FileHandle | null;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM' || code === 'ELOOP' || code === 'ENAMETOOLONG' || code === 'EISDIR';
}

/** Checks `path` against the options and finds the file; throws NODEFPM_PATH_REFUSED or NODEFPM_FILE_NOT_FOUND. */
async function resolveFile(path: string, options: SendFileOptions, openIt: boolean): Promise<ResolvedFile> {
  if (typeof path !== 'string') throw new NodefpmError('NODEFPM_INVALID_OPTION', 'sendFile: path must be a string');
  const allowDotfiles = options.dotfiles === 'allow';
  let wanted: string;
  let realRoot: string | null = null;
  if (options.root !== undefined) {
    let relativePath = path;
    if (options.decode !== false && relativePath.includes('%')) {
      try {
        relativePath = decodeURIComponent(relativePath);
      } catch {
        throw refused('malformed percent-encoding', path);
      }
    }
    if (relativePath.includes('\0')) throw refused('a NUL byte', path);
    // Never a separator on POSIX, but a classic way to smuggle "..\" past checks that look for "/".
    if (relativePath.includes('\\')) throw refused('a backslash', path);
    if (relativePath.split('/').includes('..')) throw refused('a ".." segment climbs out of the root', path);
    if (!allowDotfiles && hasDotSegment(relativePath)) throw refused('a dotfile (dotfiles: deny)', path);
    const root = resolve(options.root);
    wanted = join(root, relativePath);
    if (!inside(root, wanted)) throw refused('resolves outside the root', path);
    try {
      realRoot = await realpath(root);
    } catch (error) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `sendFile: root ${root} cannot be used: ${(error as Error).message}`, { cause: error });
    }
  } else {
    if (path.includes('\0')) throw refused('a NUL byte', path);
    if (!isAbsolute(path)) throw new NodefpmError('NODEFPM_INVALID_OPTION', `sendFile: path must be absolute when no root is given: ${displayPath(path)}`);
    if (path.split(/[/\\]/).includes('..')) throw refused('a ".." segment', path);
    if (!allowDotfiles && basename(path).startsWith('.')) throw refused('a dotfile (dotfiles: deny)', path);
    wanted = path;
  }

  for (let attempt = 0; ; attempt++) {
    let real: string;
    try {
      real = await realpath(wanted);
    } catch (error) {
      if (isMissing(error)) throw notFound(`no such file (${(error as NodeJS.ErrnoException).code})`, path);
      throw error;
    }
    if (realRoot !== null) {
      if (!inside(realRoot, real)) throw refused(`a symlink leads outside the root, to ${real}`, path);
      if (!allowDotfiles && hasDotSegment(relative(realRoot, real))) throw refused('a symlink leads to a dotfile', path);
    }
    let handle: FileHandle | null = null;
    let info;
    try {
      if (openIt) {
        // O_NOFOLLOW: the last component cannot have been swapped for a symlink since realpath;
        // O_NONBLOCK: a FIFO put there meanwhile cannot hang the open.
        handle = await open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
        info = await handle.stat();
      } else {
        info = await stat(real);
      }
    } catch (error) {
      await handle?.close();
      if (isMissing(error)) throw notFound(`cannot open (${(error as NodeJS.ErrnoException).code})`, path);
      throw error;
    }
    if (info.isDirectory()) {
      await handle?.close();
      if (options.index === undefined || options.index === false || attempt > 0) throw notFound('a directory', path);
      wanted = join(real, options.index);
      continue;
    }
    if (!info.isFile()) {
      await handle?.close();
      throw notFound('not a regular file', path);
    }
    if (handle !== null && realRoot !== null && !(await openedInside(handle, realRoot))) {
      await handle.close();
      throw refused('the file moved outside the root while it was opened', path);
    }
    return { real, realRoot, size: info.size, mtimeMs: info.mtimeMs, handle };
  }
}

/**
 * Where the open descriptor really points (Linux's /proc/self/fd), checked against the root: closes
 * the gap between realpath and open, when a folder on the way is swapped for a symlink. True where
 * /proc is not available.
 */
async function openedInside(handle: FileHandle, realRoot: string): Promise<boolean> {
  let target: string;
  try {
    target = await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return true;
  }
  return inside(realRoot, target);
}

// ---- sending ----

function waitDrainOrClose(res: SendFileResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** The URI for X-Accel-Redirect: the internal location and the real path under the root, each segment percent-encoded (nginx decodes it). */
function accelUri(location: string, realRoot: string, real: string): string {
  const prefix = location.endsWith('/') ? location : `${location}/`;
  return prefix + relative(realRoot, real).split(sep).map(encodeURIComponent).join('/');
}

/** A path as header bytes: UTF-8 written through the Latin-1 head, so the web server gets the file name's own bytes. */
function headerBytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

function cacheControlFor(options: SendFileOptions): string | false {
  if (options.cacheControl !== undefined) return options.cacheControl;
  if (options.maxAge !== undefined) {
    const seconds = Math.max(0, Math.floor(options.maxAge));
    return `public, max-age=${seconds}${options.immutable === true ? ', immutable' : ''}`;
  }
  return 'no-cache';
}

function answer(res: SendFileResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(body);
}

/**
 * Sends the file at `path` (see SendFileOptions for how it is found and checked). Resolves when the
 * response has ended — also when the client went away mid-file. Rejects with NODEFPM_PATH_REFUSED or
 * NODEFPM_FILE_NOT_FOUND (both 404) before anything is written, so a handler can still answer
 * otherwise; a read error after the head went out ends the response short and rejects.
 */
export async function sendFile(res: SendFileResponse, req: SendFileRequest, path: string, options: SendFileOptions = {}): Promise<void> {
  let mode = options.mode ?? 'stream';
  if (mode !== 'stream' && mode !== 'x-sendfile' && mode !== 'x-accel-redirect') {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `sendFile: mode must be 'stream', 'x-sendfile' or 'x-accel-redirect', got ${String(mode)}`);
  }
  if (mode === 'x-accel-redirect' && (options.root === undefined || options.internalLocation === undefined)) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', "sendFile: mode 'x-accel-redirect' needs root and internalLocation (nginx's internal location for that root)");
  }
  let file = await resolveFile(path, options, mode === 'stream');
  if (mode === 'x-sendfile' && file.real.includes('%')) {
    // lighttpd percent-decodes X-Sendfile and Apache's mod_xsendfile does not, so no spelling of a '%'
    // is right for both; a wrong one sends another file, or climbs out through folders named "%2e%2e".
    // Such a file is streamed by nodefpm instead.
    mode = 'stream';
    file = await resolveFile(path, options, true);
  }
  const handle = file.handle;
  try {
    if (!res.hasHeader('Content-Type')) res.setHeader('Content-Type', options.contentType ?? contentTypeFor(file.real));
    if (options.download !== undefined && options.download !== false) {
      res.setHeader('Content-Disposition', contentDisposition(typeof options.download === 'string' ? options.download : file.real));
    }
    const cacheControl = cacheControlFor(options);
    if (cacheControl !== false && !res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', cacheControl);

    // A status the handler set first (a 404 page sent from a file, say) is kept, and then the file is
    // sent whole: conditionals and ranges only make sense for the 200 that would describe it.
    const plain = res.statusCode === 200;
    if (mode !== 'stream') {
      if (mode === 'x-sendfile') res.setHeader('X-Sendfile', headerBytes(file.real));
      else res.setHeader('X-Accel-Redirect', headerBytes(accelUri(options.internalLocation!, file.realRoot!, file.real)));
      // The head without Content-Length (end() would add "0"): the web server sets the file's length.
      res.flushHeaders();
      res.end();
      return;
    }

    const size = file.size;
    const mtime = Math.floor(file.mtimeMs / 1000);
    const etag = options.etag === false ? null : `W/"${size.toString(16)}-${Math.floor(file.mtimeMs).toString(16)}"`;
    const useDate = options.lastModified !== false;
    if (etag !== null) res.setHeader('ETag', etag);
    if (useDate) res.setHeader('Last-Modified', new Date(mtime * 1000).toUTCString());
    const acceptRanges = options.acceptRanges !== false;
    if (acceptRanges) res.setHeader('Accept-Ranges', 'bytes');

    if (!plain) {
      res.setHeader('Content-Length', size);
      if (req.method === 'HEAD' || size === 0) res.end();
      else await streamRange(res, req, handle!, 0, size, options.chunkSize ?? DEFAULT_CHUNK);
      return;
    }

    // Preconditions in the order of RFC 9110 section 13.2.2.
    const method = req.method;
    const safe = method === 'GET' || method === 'HEAD';
    const ifMatch = req.header('if-match');
    if (ifMatch !== undefined) {
      if (!strongMatch(ifMatch, etag)) return preconditionFailed(res);
    } else if (useDate) {
      const since = parseHttpDate(req.header('if-unmodified-since'));
      if (since !== null && mtime > since) return preconditionFailed(res);
    }
    const ifNoneMatch = req.header('if-none-match');
    if (ifNoneMatch !== undefined) {
      if (weakMatch(ifNoneMatch, etag)) return safe ? notModified(res) : preconditionFailed(res);
    } else if (safe && useDate) {
      const since = parseHttpDate(req.header('if-modified-since'));
      if (since !== null && mtime <= since) return notModified(res);
    }

    let range: ByteRange | null = null;
    const rangeHeader = acceptRanges && method === 'GET' ? req.header('range') : undefined;
    if (rangeHeader !== undefined && ifRangeHolds(req.header('if-range'), etag, useDate ? mtime : null)) {
      const parsed = parseRange(rangeHeader, size);
      if (parsed === 'unsatisfiable') {
        res.setHeader('Content-Range', `bytes */${size}`);
        answer(res, 416, `416 Range Not Satisfiable: the file has ${size} bytes\n`);
        return;
      }
      range = parsed;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    const length = end - start + 1;
    res.statusCode = range === null ? 200 : 206;
    if (range !== null) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    res.setHeader('Content-Length', length);
    if (method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    await streamRange(res, req, handle!, start, length, options.chunkSize ?? DEFAULT_CHUNK);
  } finally {
    await handle?.close();
  }
}

/** If-Range (RFC 9110 section 13.1.5): absent, or a strong ETag match, or exactly the Last-Modified date. */
function ifRangeHolds(header: string | undefined, etag: string | null, mtime: number | null): boolean {
  if (header === undefined) return true;
  const value = header.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return strongMatch(value, etag);
  const date = parseHttpDate(value);
  return date !== null && mtime !== null && date === mtime;
}

function notModified(res: SendFileResponse): void {
  res.statusCode = 304;
  // A 304 describes the representation without sending it: no Content-Type or Content-Length.
  res.removeHeader('Content-Type');
  res.removeHeader('Content-Disposition');
  res.removeHeader('Accept-Ranges');
  res.end();
}

function preconditionFailed(res: SendFileResponse): void {
  res.removeHeader('Content-Disposition');
  answer(res, 412, '412 Precondition Failed\n');
}

/** Writes `length` bytes from `start`, one chunk at a time, waiting for 'drain' whenever write() asks; stops if the request goes away. */
async function streamRange(res: SendFileResponse, req: SendFileRequest, handle: FileHandle, start: number, length: number, chunkSize: number): Promise<void> {
  let position = start;
  let left = length;
  while (left > 0) {
    if (req.aborted) break;
    const size = Math.min(chunkSize, left);
    // A fresh buffer per chunk: the connection may still hold the previous one queued for the socket.
    const buffer = Buffer.allocUnsafe(size);
    const { bytesRead } = await handle.read(buffer, 0, size, position);
    if (bytesRead === 0) {
      // The head promised more: the handler's failure path logs this and ends the response short.
      throw new Error(`the file shrank while it was sent: ${left} of ${length} bytes missing; the response was cut short`);
    }
    position += bytesRead;
    left -= bytesRead;
    if (req.aborted) break;
    if (!res.write(bytesRead === size ? buffer : buffer.subarray(0, bytesRead))) await waitDrainOrClose(res);
  }
  res.end();
}
