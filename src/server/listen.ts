// Listening addresses: parsing the accepted forms, inherited sockets (fd 0, systemd), and opening a net.Server on one.

import { chmod, lstat, unlink } from 'node:fs/promises';
import { fstatSync } from 'node:fs';
import net from 'node:net';
import { formatSocketAddress, invalidAddress, parseSocketAddress, type AddressSyntax, type SocketAddress } from '../address.js';
import { NodefpmError } from '../errors.js';

export type ListenAddress =
  | SocketAddress
  | { kind: 'fd'; fd: number }
  /** A socket passed by systemd socket activation (LISTEN_FDS), optionally chosen by its FileDescriptorName. */
  | { kind: 'systemd'; name?: string };

export interface ListenOptions {
  /** Permission bits for a Unix socket file. Default 0o660, as PHP-FPM's listen.mode. */
  socketMode?: number;
  /** Pending-connection queue length passed to listen(2). Default 511. */
  backlog?: number;
}

const LISTEN_SYNTAX: AddressSyntax = {
  what: 'listen address',
  accepted: 'unix:/path/app.sock, /path/app.sock, HOST:PORT, [IPv6]:PORT, fd:N, or systemd[:NAME]',
  minPort: 0,
  relativePaths: true,
};

/** Parses the listen address forms nodefpm accepts: a socket address (src/address.ts, port 0 and ./PATH allowed), fd:N, systemd[:NAME]. */
export function parseListenAddress(text: string): ListenAddress {
  const value = text.trim();
  const invalid = (why: string): NodefpmError => invalidAddress(LISTEN_SYNTAX, JSON.stringify(text), why);
  if (value.startsWith('fd:')) {
    const fd = value.slice(3);
    if (!/^\d+$/.test(fd)) throw invalid('fd: needs a file descriptor number');
    return { kind: 'fd', fd: Number(fd) };
  }
  if (value === 'systemd') return { kind: 'systemd' };
  if (value.startsWith('systemd:')) {
    const name = value.slice(8);
    if (name === '') throw invalid('no socket name after systemd:');
    return { kind: 'systemd', name };
  }
  return parseSocketAddress(text, LISTEN_SYNTAX);
}

/** Formats an address back into the text form parseListenAddress accepts. */
export function formatListenAddress(address: ListenAddress): string {
  switch (address.kind) {
    case 'unix':
    case 'tcp':
      return formatSocketAddress(address);
    case 'fd':
      return `fd:${address.fd}`;
    case 'systemd':
      return address.name === undefined ? 'systemd' : `systemd:${address.name}`;
  }
}

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
const SYSTEMD_FIRST_FD = 3;

/**
 * The listening sockets systemd passed to this process, if any: LISTEN_FDS counts them from fd 3,
 * LISTEN_PID must be this process (when set), LISTEN_FDNAMES names them (colon-separated).
 */
export function systemdSockets(env: NodeJS.ProcessEnv = process.env): Array<{ fd: number; name: string }> {
  const count = Number(env.LISTEN_FDS);
  if (!Number.isInteger(count) || count <= 0) return [];
  if (env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) !== process.pid) return [];
  const names = env.LISTEN_FDNAMES?.split(':') ?? [];
  return Array.from({ length: count }, (_, index) => ({ fd: SYSTEMD_FIRST_FD + index, name: names[index] ?? 'unknown' }));
}

/** True when fd 0 is a socket, as when a web server or spawn-fcgi started us (section 2.2). */
export function stdinIsSocket(): boolean {
  try {
    return fstatSync(0).isSocket();
  } catch {
    return false;
  }
}

/**
 * The systemd socket a `systemd[:NAME]` address means: the one named NAME (its FileDescriptorName),
 * or the first. Throws NODEFPM_NO_LISTENER, saying why, when there is none.
 */
export function chooseSystemdSocket(name: string | undefined, env: NodeJS.ProcessEnv = process.env): { fd: number; name: string } {
  const sockets = systemdSockets(env);
  const chosen = name === undefined ? sockets[0] : sockets.find((socket) => socket.name === name);
  if (chosen === undefined) {
    throw new NodefpmError(
      'NODEFPM_NO_LISTENER',
      name === undefined
        ? 'systemd passed no sockets (LISTEN_FDS is unset or LISTEN_PID is another process)'
        : `systemd passed no socket named ${name} (LISTEN_FDNAMES=${env.LISTEN_FDNAMES ?? ''})`,
    );
  }
  return chosen;
}

/**
 * The listener this process inherited, when it was started that way: systemd's first socket, else
 * fd 0 when it is a socket. Whether fd 0 is *listening* is known only when listen() is tried on it.
 */
export function inheritedListenAddress(env: NodeJS.ProcessEnv = process.env): ListenAddress | null {
  if (systemdSockets(env).length > 0) return { kind: 'systemd' };
  if (stdinIsSocket()) return { kind: 'fd', fd: 0 };
  return null;
}

/**
 * Why the socket file at `path` must be left alone, or null when it is stale. Only ECONNREFUSED (no
 * one bound) proves a socket file stale: EAGAIN means a live listener whose queue is full, and other
 * errors (EACCES, ...) say nothing about whether one is there.
 */
async function whyInUse(path: string): Promise<string | null> {
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve('a process is listening on it');
    });
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(null);
      else if (error.code === 'EAGAIN') resolve('a process is listening on it (its connection queue is full)');
      else resolve(`cannot tell whether a process listens on it (connect: ${error.code ?? error.message}); not replacing it`);
    });
  });
}

/** Removes a socket file left by a dead process; refuses when something listens on it or it is not a socket. */
export async function clearStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new NodefpmError('NODEFPM_ADDRESS_IN_USE', `${path} exists and is not a socket; not replacing it`);
  }
  const inUse = await whyInUse(path);
  if (inUse !== null) throw new NodefpmError('NODEFPM_ADDRESS_IN_USE', `${path} is in use: ${inUse}`);
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function listenOn(server: net.Server, target: net.ListenOptions | { fd: number }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') reject(new NodefpmError('NODEFPM_ADDRESS_IN_USE', `${what} is in use`, { cause: error }));
      else if (error.code === 'EINVAL' && 'fd' in target) {
        reject(new NodefpmError('NODEFPM_NO_LISTENER', `${what} is not a listening socket`, { cause: error }));
      } else reject(new NodefpmError('NODEFPM_INVALID_ADDRESS', `cannot listen on ${what}: ${error.message}`, { cause: error }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(target);
  });
}

/** Starts `server` listening on `address`; resolves to the address actually bound (a real port for port 0). */
export async function listenAt(server: net.Server, address: ListenAddress, options: ListenOptions = {}): Promise<ListenAddress> {
  const backlog = options.backlog ?? 511;
  switch (address.kind) {
    case 'unix': {
      await clearStaleSocket(address.path);
      await listenOn(server, { path: address.path, backlog }, `unix:${address.path}`);
      await chmod(address.path, options.socketMode ?? 0o660);
      return address;
    }
    case 'tcp': {
      await listenOn(server, { host: address.host, port: address.port, backlog }, formatListenAddress(address));
      const bound = server.address() as net.AddressInfo;
      return { kind: 'tcp', host: address.host, port: bound.port };
    }
    case 'fd':
      await listenOn(server, { fd: address.fd }, `fd ${address.fd}`);
      return address;
    case 'systemd': {
      const chosen = chooseSystemdSocket(address.name);
      await listenOn(server, { fd: chosen.fd }, `systemd socket fd ${chosen.fd}`);
      return address;
    }
  }
}
