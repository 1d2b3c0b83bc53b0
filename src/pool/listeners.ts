// The master's listening sockets: opened once (every --listen form), owned and moded, shared with the workers, and their accept queues read.

import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { chmodSync, chownSync, fstatSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { NodefpmError } from '../errors.js';
import { chooseSystemdSocket, clearStaleSocket, formatListenAddress, type ListenAddress } from '../server/listen.js';

/**
 * The libuv handle of a socket, as node:net keeps it. The master holds the socket bound (and, when
 * inherited, already listening) but never watches it: each worker calls listen on its own copy and
 * accepts, and the kernel hands every connection to one of them. The master must not accept too:
 * libuv has no way to stop watching a listening handle short of closing it, and an idle master would
 * win most accept races. node:cluster shares sockets the same way (its SCHED_NONE policy) with the
 * same function, net._createServerHandle, which is what makes a bound socket without listening.
 */
export interface SocketHandle {
  readonly fd: number;
  close(): void;
  getsockname?(out: Record<string, unknown>): number;
}

type CreateServerHandle = (address: string | null, port: number | null, addressType: number | null, fd?: number, flags?: number) => SocketHandle | number;

function createServerHandle(): CreateServerHandle {
  const create = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;
  if (typeof create !== 'function') {
    throw new NodefpmError('NODEFPM_INVALID_ADDRESS', `this Node.js (${process.version}) lacks net._createServerHandle, which the pool needs to share a socket`);
  }
  return create;
}

export interface ListenerOptions {
  /** Unix socket permission bits (php-fpm listen.mode). */
  socketMode: number;
  /** Unix socket owner and group ids (php-fpm listen.owner, listen.group); undefined: leave as created. */
  socketOwner?: number;
  socketGroup?: number;
  /** listen(2) backlog the workers ask for (php-fpm listen.backlog). */
  backlog: number;
  env: NodeJS.ProcessEnv;
}

function failed(what: string, errno: number): NodefpmError {
  const name = getSystemErrorName(errno);
  if (name === 'EADDRINUSE') return new NodefpmError('NODEFPM_ADDRESS_IN_USE', `${what} is in use`);
  if (name === 'EINVAL' || name === 'EBADF' || name === 'ENOTSOCK') return new NodefpmError('NODEFPM_NO_LISTENER', `${what} is not a socket (${name})`);
  return new NodefpmError('NODEFPM_INVALID_ADDRESS', `cannot listen on ${what}: ${name}`);
}

/** One socket the pool listens on. */
export class SharedListener {
  /** The address as bound (the real port when port 0 was asked). */
  readonly address: ListenAddress;
  readonly label: string;
  readonly handle: SocketHandle;
  readonly transport: 'tcp' | 'unix';
  /** The socket's inode, which /proc/net and ss name it by. */
  readonly inode: number | null;
  readonly #backlog: number;
  /** When the master accepts itself (ondemand): the server watching the handle. */
  #server: net.Server | null = null;
  #closed = false;

  constructor(address: ListenAddress, label: string, handle: SocketHandle, backlog: number) {
    this.address = address;
    this.label = label;
    this.handle = handle;
    this.#backlog = backlog;
    let inode: number | null = null;
    let transport: 'tcp' | 'unix' = 'unix';
    try {
      const stats = fstatSync(handle.fd);
      inode = stats.ino;
    } catch {
      // An fd we cannot stat has no queue we can read.
    }
    transport = handle.constructor.name === 'TCP' ? 'tcp' : 'unix';
    this.inode = inode;
    this.transport = transport;
  }

  /**
   * Makes the master accept on this socket itself and hand each connection (unread) to `onConnection`:
   * the ondemand pool, which must see a connection arrive when no worker is running.
   */
  serve(onConnection: (socket: net.Socket) => void): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, onConnection);
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(error.code === 'EINVAL' ? new NodefpmError('NODEFPM_NO_LISTENER', `${this.label} is not a listening socket`, { cause: error }) : error);
      });
      server.listen(this.handle as unknown as net.ListenOptions, this.#backlog, () => resolve());
    });
  }

  /** Closes the master's copy. A Unix socket the master created is removed with it (libuv unlinks it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#server !== null) this.#server.close();
    else this.handle.close();
  }

  /** Connections waiting to be accepted now, and the queue's size; nulls where Linux does not say (see docs/pool.md). */
  async queue(): Promise<{ length: number | null; size: number | null }> {
    if (this.inode === null) return { length: null, size: null };
    if (this.transport === 'tcp') return { length: tcpQueue(this.inode), size: effectiveBacklog(this.#backlog) };
    return unixQueue(this.inode);
  }
}

/** The backlog the kernel applies: what was asked, capped by net.core.somaxconn. */
function effectiveBacklog(asked: number): number | null {
  try {
    return Math.min(asked, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()));
  } catch {
    return asked;
  }
}

/** A listening TCP socket's accept queue from /proc/net/tcp{,6}: rx_queue is sk_ack_backlog for sockets in LISTEN. */
function tcpQueue(inode: number): number | null {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[9] === String(inode) && fields[3] === '0A') return parseInt(fields[4]!.split(':')[1]!, 16);
    }
  }
  return null;
}

/** A Unix socket's queue: /proc/net/unix does not show it, so `ss -xl` (netlink sock_diag) is asked, when installed. */
function unixQueue(inode: number): Promise<{ length: number | null; size: number | null }> {
  return new Promise((resolve) => {
    execFile('ss', ['-xlnH'], { timeout: 2000, maxBuffer: 8 * 1024 * 1024 }, (error, stdout) => {
      if (error !== null) {
        resolve({ length: null, size: null });
        return;
      }
      for (const line of stdout.split('\n')) {
        const match = /^\S+\s+LISTEN\s+(\d+)\s+(\d+)\s+.*\s(\d+)\s+\*\s+\d+\s*$/.exec(line);
        if (match !== null && Number(match[3]) === inode) {
          resolve({ length: Number(match[1]), size: Number(match[2]) });
          return;
        }
      }
      resolve({ length: null, size: null });
    });
  });
}

/** Opens `address` for the pool. Throws NODEFPM_ADDRESS_IN_USE, NODEFPM_NO_LISTENER or NODEFPM_INVALID_ADDRESS. */
export async function openListener(address: ListenAddress, options: ListenerOptions): Promise<SharedListener> {
  const create = createServerHandle();
  switch (address.kind) {
    case 'unix': {
      await clearStaleSocket(address.path);
      const handle = create(address.path, -1, -1);
      if (typeof handle === 'number') throw failed(`unix:${address.path}`, handle);
      try {
        chmodSync(address.path, options.socketMode);
        if (options.socketOwner !== undefined || options.socketGroup !== undefined) {
          chownSync(address.path, options.socketOwner ?? -1, options.socketGroup ?? -1);
        }
      } catch (error) {
        handle.close();
        throw new NodefpmError('NODEFPM_INVALID_ADDRESS', `cannot set the owner or mode of unix:${address.path}: ${(error as Error).message}`, { cause: error });
      }
      return new SharedListener(address, formatListenAddress(address), handle, options.backlog);
    }
    case 'tcp': {
      let resolved: { address: string; family: number };
      try {
        resolved = await lookup(address.host);
      } catch (error) {
        throw new NodefpmError('NODEFPM_INVALID_ADDRESS', `cannot resolve ${address.host}: ${(error as Error).message}`, { cause: error });
      }
      const handle = create(resolved.address, address.port, resolved.family);
      if (typeof handle === 'number') throw failed(formatListenAddress(address), handle);
      const out: Record<string, unknown> = {};
      handle.getsockname?.(out);
      const bound: ListenAddress = { kind: 'tcp', host: address.host, port: typeof out.port === 'number' ? out.port : address.port };
      return new SharedListener(bound, formatListenAddress(bound), handle, options.backlog);
    }
    case 'fd': {
      const handle = create(null, null, null, address.fd);
      if (typeof handle === 'number') throw failed(`fd ${address.fd}`, handle);
      return new SharedListener(address, formatListenAddress(address), handle, options.backlog);
    }
    case 'systemd': {
      const chosen = chooseSystemdSocket(address.name, options.env);
      const handle = create(null, null, null, chosen.fd);
      if (typeof handle === 'number') throw failed(`systemd socket fd ${chosen.fd}`, handle);
      return new SharedListener({ kind: 'fd', fd: chosen.fd }, `fd:${chosen.fd}`, handle, options.backlog);
    }
  }
}
