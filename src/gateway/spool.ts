// Request bodies on their way to FCGI_STDIN: counted against maxBodyBytes while streamed, or spooled whole (memory, then a temp file) to learn a chunked body's length.

import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { NodefpmError } from '../errors.js';

function tooLarge(limit: number): NodefpmError {
  return new NodefpmError('NODEFPM_BODY_TOO_LARGE', `the request body exceeds maxBodyBytes (${limit} bytes)`);
}

/**
 * The body as an async iterable that pulls one chunk at a time (the FastCGI client asks for the next
 * only once the socket drained, so the HTTP client is held back), counting bytes against `limit`
 * (NODEFPM_BODY_TOO_LARGE past it). `onFirstPull` runs when the client first asks for the body: the
 * moment to send `100 Continue`. Leaving early does not destroy `req`: that would reset the socket
 * under the response still to be written; the gateway drains what is left instead.
 */
export async function* countedBody(req: IncomingMessage, limit: number, onFirstPull: (() => void) | null): AsyncGenerator<Buffer> {
  onFirstPull?.();
  let total = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooLarge(limit);
    yield chunk;
  }
}

/** A body read whole before the request is sent: its length, its bytes as a fresh stream, and the temp file to drop. */
export interface SpooledBody {
  length: number;
  /** The bytes: in memory, or a stream of the temp file. Call once. */
  open(): Buffer | AsyncIterable<Buffer>;
  /** Closes the temp file, if there is one. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Reads the whole body, as nginx does with a chunked upload by default (fastcgi_request_buffering
 * on), so that CONTENT_LENGTH can be sent: PHP reads no body without it. Up to `memoryBytes` stay in
 * memory; beyond, everything goes to a temp file in `dir`, unlinked at once so that nothing is left
 * behind even if the process dies, and read back through its descriptor. Fails with
 * NODEFPM_BODY_TOO_LARGE past `limit`, NODEFPM_GATEWAY_SPOOL when the file cannot be written.
 */
export async function spoolBody(req: IncomingMessage, limit: number, memoryBytes: number, dir: string): Promise<SpooledBody> {
  const chunks: Buffer[] = [];
  let length = 0;
  let file: FileHandle | null = null;
  const dispose = async (): Promise<void> => {
    const handle = file;
    file = null;
    await handle?.close().catch(() => {});
  };
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > limit) throw tooLarge(limit);
      if (file === null && length <= memoryBytes) {
        chunks.push(chunk);
        continue;
      }
      if (file === null) {
        file = await openTemp(dir);
        for (const held of chunks.splice(0)) await writeAll(file, held);
      }
      await writeAll(file, chunk);
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  const spooled = file as FileHandle | null;
  return {
    length,
    open(): Buffer | AsyncIterable<Buffer> {
      if (spooled === null) return Buffer.concat(chunks, length);
      // autoClose off: the handle is dispose()'s to close, after the request, whatever became of the stream.
      return createReadStream('', { fd: spooled, start: 0, autoClose: false, highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>;
    },
    dispose,
  };
}

async function openTemp(dir: string): Promise<FileHandle> {
  const path = join(dir, `nodefpm-gateway-body-${process.pid}-${randomBytes(8).toString('hex')}`);
  let handle: FileHandle;
  try {
    handle = await open(path, 'wx+', 0o600);
  } catch (error) {
    throw new NodefpmError('NODEFPM_GATEWAY_SPOOL', `cannot create a temp file for the request body in ${dir}: ${(error as Error).message}`, { cause: error });
  }
  // Unlinked while open: the data lives as long as the descriptor, and no file outlives the process.
  await unlink(path).catch(() => {});
  return handle;
}

async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  try {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
  } catch (error) {
    throw new NodefpmError('NODEFPM_GATEWAY_SPOOL', `cannot write the request body to its temp file: ${(error as Error).message}`, { cause: error });
  }
}
