// Sends a file from disk as an HTTP response, as nginx's static handler does (script mode's static files, X-Accel-Redirect and X-Sendfile).

import { createReadStream, type Stats } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** The types a development site mostly serves; anything else is application/octet-stream (nginx's default_type). */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.pdf': 'application/pdf',
  '.wasm': 'application/wasm',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.zip': 'application/zip',
};

export function contentTypeOf(file: Buffer | string): string {
  const name = typeof file === 'string' ? file : file.toString('latin1');
  return TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/** nginx's ETag: the modification time and size in hex. */
function etagOf(stats: Stats): string {
  return `"${Math.floor(stats.mtimeMs / 1000).toString(16)}-${stats.size.toString(16)}"`;
}

/** True when the request's validators say the client's copy is current (RFC 9110 section 13.2.2: If-None-Match first). */
function notModified(req: IncomingMessage, etag: string, stats: Stats): boolean {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    return ifNoneMatch.split(',').some((tag) => {
      const trimmed = tag.trim();
      return trimmed === '*' || trimmed === etag || trimmed === `W/${etag}`;
    });
  }
  const ifModifiedSince = req.headers['if-modified-since'];
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  return !Number.isNaN(since) && Math.floor(stats.mtimeMs / 1000) * 1000 <= since;
}

export interface SendFileOptions {
  /** The status for a full response (X-Sendfile keeps the app's). Default 200. */
  status?: number;
  statusText?: string;
  /** Headers to send with the file (the app's, for X-Accel-Redirect); Content-Length and the validators are the file's. */
  headers?: OutgoingHttpHeaders;
}

/**
 * Answers with the file: Content-Type (the given one, else by extension), Content-Length,
 * Last-Modified and ETag; 304 when the request's validators match; headers only for HEAD. The body is
 * streamed with backpressure. No ranges: Accept-Ranges is not sent, so clients ask for whole files.
 * Resolves when the response is done; rejects when reading the file or writing the socket fails.
 */
export async function sendFile(req: IncomingMessage, res: ServerResponse, file: Buffer, stats: Stats, options: SendFileOptions = {}): Promise<void> {
  const etag = etagOf(stats);
  const headers: OutgoingHttpHeaders = { ...options.headers };
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'etag' || lower === 'last-modified' || lower === 'content-encoding') delete headers[name];
  }
  headers['last-modified'] = new Date(Math.floor(stats.mtimeMs / 1000) * 1000).toUTCString();
  headers.etag = etag;
  const status = options.status ?? 200;
  if (status === 200 && notModified(req, etag, stats)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['content-type'] = contentTypeOf(file);
  headers['content-length'] = stats.size;
  if (options.statusText !== undefined) res.writeHead(status, options.statusText, headers);
  else res.writeHead(status, headers);
  if (req.method === 'HEAD' || stats.size === 0) {
    res.end();
    return;
  }
  // The size sent is the size stat saw: a file that grows meanwhile is cut there, one that shrinks fails the response.
  await pipeline(createReadStream(file, { start: 0, end: stats.size - 1, highWaterMark: 64 * 1024 }), res);
}
