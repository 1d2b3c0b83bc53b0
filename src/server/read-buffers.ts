// Socket reads into buffers the server reuses (Node's `onread`), instead of a new 64 KiB buffer per read.

import { Buffer } from 'node:buffer';
import net from 'node:net';

/** Bytes of one read buffer: what Node reads at once by default. */
export const READ_BUFFER_SIZE = 64 * 1024;

/**
 * A kept chunk at least this large is worth a connection's own read buffer (handed over to it whole);
 * a smaller one is copied. So a kept view holds at most 16 times its size in memory (a chunk of Node's
 * own reads holds its whole read, 64 KiB for a byte), while the 8 KiB records Apache sends, like
 * nginx's 32 KiB ones, are not copied.
 */
export const HAND_OVER_AT = 4 * 1024;

let shared: Buffer | null = null;

/**
 * The buffer every connection reads into while what it reads is used up at once (params are copied,
 * bodies go to readers that take them as they come). Reads are processed one at a time on the main
 * thread, so one buffer serves every connection of the process; a connection whose chunks must outlive
 * the read moves to a buffer of its own.
 */
export function sharedReadBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE));
}

/** A fresh buffer for one connection's reads, given away whole when a chunk of it is kept. */
export function ownReadBuffer(): Buffer {
  return Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
}

/** Called on the socket (`this`) with the bytes read and the buffer they are in. */
export type ReadCallback = (this: net.Socket, bytesRead: number, buffer: Buffer) => void;
/** The buffer for the next read: called (with no `this`) before the first read and after each. */
export type ReadBufferSource = () => Buffer;

interface StreamHandle {
  reading?: boolean;
  useUserBuffer?: unknown;
}
type HandleSocket = net.Socket & { _handle?: StreamHandle | null };

/**
 * Moves a freshly accepted socket's handle into a new Socket created with `onread`, so that its reads
 * land in the buffers `nextBuffer` gives and reach `onRead` directly: no Buffer object, no read-buffer
 * allocation and no stream machinery per read. Node offers `onread` only on sockets it creates for a
 * connect, not on accepted ones, hence the move; the listener must accept with `pauseOnConnect` so that
 * nothing was read before it. Returns null, leaving the socket as it was, when the socket has started
 * reading or this Node's sockets lack what the move needs; the caller then reads it with 'data' events.
 */
export function readIntoOwnBuffers(socket: net.Socket, nextBuffer: ReadBufferSource, onRead: ReadCallback): net.Socket | null {
  const original = socket as HandleSocket;
  const handle = original._handle;
  if (
    handle === null ||
    handle === undefined ||
    handle.reading === true ||
    typeof handle.useUserBuffer !== 'function' ||
    original.readableLength > 0 ||
    original.destroyed
  ) {
    return null;
  }
  // The original Socket lets go of the handle without closing it: destroy() without a handle only
  // marks it destroyed and takes it off its net.Server's count (the FcgiServer keeps its own).
  original._handle = null;
  original.destroy();
  // TCP_NODELAY and keep-alive, which the listener set, belong to the handle and come along with it.
  const options = {
    handle,
    allowHalfOpen: original.allowHalfOpen,
    writableHighWaterMark: original.writableHighWaterMark,
    onread: { buffer: nextBuffer, callback: onRead },
  } as unknown as net.SocketConstructorOpts;
  return new net.Socket(options);
}
