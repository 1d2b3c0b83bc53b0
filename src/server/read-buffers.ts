// Socket reads into buffers the server reuses (Node's `onread`), instead of a new 64 KiB buffer per read.

import { Buffer } from 'node:buffer';
import net from 'node:net';

/** Bytes of a connection's first own read buffer, and the least it is given: what Node reads at once by default. */
export const READ_BUFFER_SIZE = 64 * 1024;

/** The most one read takes: the shared buffer's size, and the cap on a connection's own (see fitReadSize). */
export const MAX_READ_BUFFER_SIZE = 128 * 1024;

const PAGE = 4096;

/**
 * The size of a connection's next own read buffer once a burst of its peer's bytes has ended (a read that
 * did not fill its buffer ends it): the whole burst plus a sixteenth, in pages, between READ_BUFFER_SIZE
 * and MAX_READ_BUFFER_SIZE. So a request that came in two reads (a 64 KiB body is 64 KiB plus its
 * records and params) comes in one the next time, with room for the next to be a little larger; the
 * burst of a long upload is ended by nothing, and the size doubles while reads keep filling (see
 * Connection). This is Netty's adaptive receive buffer, fitted in one step instead of a ladder.
 */
export function fitReadSize(burstBytes: number): number {
  const wanted = Math.ceil((burstBytes + (burstBytes >>> 4)) / PAGE) * PAGE;
  return Math.min(MAX_READ_BUFFER_SIZE, Math.max(READ_BUFFER_SIZE, wanted));
}

/**
 * A kept chunk at least this large, and at least a sixteenth of the buffer it is in, is worth a
 * connection's own read buffer (handed over to it whole); a smaller one is copied. So a kept view holds
 * at most 16 times its size in memory (a chunk of Node's own reads holds its whole read, 64 KiB for a
 * byte), while the 8 KiB records Apache sends, like nginx's 32 KiB ones, are not copied.
 */
export const HAND_OVER_AT = 4 * 1024;

/** Whether a kept chunk of `chunkLength` bytes is handed its read buffer of `bufferLength` bytes rather than copied. */
export function worthHandingOver(chunkLength: number, bufferLength: number): boolean {
  return chunkLength >= HAND_OVER_AT && chunkLength >= bufferLength >>> 4;
}

let shared: Buffer | null = null;

/**
 * The buffer every connection reads into while what it reads is used up at once (params are copied,
 * bodies go to readers that take them as they come). Reads are processed one at a time on the main
 * thread, so one buffer serves every connection of the process; a connection whose chunks must outlive
 * the read moves to a buffer of its own.
 */
export function sharedReadBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(MAX_READ_BUFFER_SIZE));
}

let mallocRaised = false;

/**
 * Once per process, raises glibc malloc's trim threshold to 32 MiB (and its mmap threshold to 16 MiB),
 * the way glibc raises them itself once it frees a block it had mmap'd: by allocating 16 MiB and
 * letting it go (one page is touched; freed at the next GC). Why: body chunks a handler keeps are
 * handed their read buffers, 64–128 KiB each, and V8 frees them in batches of some 32 MiB at each
 * scavenge. With the default 128 KiB threshold glibc gives the top of its heap back to the kernel at
 * such a batch and faults it in again, a page at a time, as the next requests take it: measured, 0.5 to
 * 2.5 page faults per 64 KiB POST, a fifth of its time, varying from run to run with the heap's layout;
 * with the raise, under 0.1. The cost: up to 32 MiB freed are kept by the process rather than returned,
 * and blocks up to 16 MiB come from the heap rather than their own mappings. Other allocators (musl,
 * jemalloc) ignore it. A server does it when a connection first takes a buffer of its own, unless its
 * option tuneMalloc is false; a process whose handlers keep no body chunks never pays the cost.
 */
export function raiseMallocThresholds(): void {
  if (mallocRaised) return;
  mallocRaised = true;
  // glibc adopts a freed mmap'd block's size as its mmap threshold only up to 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX).
  Buffer.allocUnsafeSlow(16 * 1024 * 1024);
}

/** A fresh buffer for one connection's reads, given away whole when a chunk of it is kept. */
export function ownReadBuffer(size = READ_BUFFER_SIZE): Buffer {
  return Buffer.allocUnsafeSlow(size);
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
