// Lets a test see each chunk a server socket reads, whether the socket emits 'data' or reads into reused buffers (Node's onread).

import type { Socket } from 'node:net';

/**
 * Calls `observe` with each chunk `socket` reads, `when` the server has processed it or before. The
 * server's sockets read into reused buffers with Node's `onread` option and emit no 'data' events,
 * so the socket's read callback is wrapped: Node keeps it under an internal symbol, kBufferCb. A
 * chunk seen before the server's processing is a view the next read overwrites: copy what you keep.
 * `buffer` is the whole buffer the chunk was read into (the chunk itself for a stream socket).
 */
export function tapSocketReads(socket: Socket, observe: (chunk: Buffer, buffer: Buffer) => void, when: 'before' | 'after'): void {
  const target = socket as Socket & Record<symbol, unknown>;
  const readCallback = Object.getOwnPropertySymbols(target).find((symbol) => symbol.description === 'kBufferCb');
  if (readCallback === undefined || typeof target[readCallback] !== 'function') {
    // A stream socket: a listener added now runs after the server's own 'data' listener.
    const onData = (chunk: Buffer): void => observe(chunk, chunk);
    if (when === 'before') socket.prependListener('data', onData);
    else socket.on('data', onData);
    return;
  }
  const serverRead = target[readCallback] as (this: unknown, bytesRead: number, buffer: Buffer) => unknown;
  target[readCallback] = function (this: unknown, bytesRead: number, buffer: Buffer): unknown {
    if (when === 'before') observe(buffer.subarray(0, bytesRead), buffer);
    const result = serverRead.call(this, bytesRead, buffer);
    if (when === 'after') observe(buffer.subarray(0, bytesRead), buffer);
    return result;
  };
}
