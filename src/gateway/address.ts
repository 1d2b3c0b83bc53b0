// Where the HTTP front listens: the accepted address forms, opening a server on one, and the URL to print for it.

import net from 'node:net';
import { formatSocketAddress, invalidAddress, parseSocketAddress, type AddressSyntax, type SocketAddress } from '../address.js';
import { NodefpmError } from '../errors.js';
import { clearStaleSocket } from '../server/listen.js';

/** A parsed HTTP listen address. Port 0 asks the system for a free port. */
export type HttpListenAddress = SocketAddress;

/** Where the front ended up listening, once it does. */
export interface GatewayAddress {
  /** The bound address: the real port when 0 was asked for. */
  readonly address: HttpListenAddress;
  /** The address as text, in the form `parseHttpAddress` accepts: `127.0.0.1:8080`, `[::1]:8080`, `unix:/run/front.sock`. */
  readonly text: string;
  /**
   * A URL a person can open: `http://127.0.0.1:8080/` (a wildcard host is shown as the loopback
   * address), or null for a Unix socket, which browsers cannot reach (`curl --unix-socket` can).
   */
  readonly url: string | null;
}

const HTTP_SYNTAX: AddressSyntax = {
  what: 'HTTP listen address',
  accepted: 'HOST:PORT, [IPv6]:PORT, unix:/path/front.sock or /path/front.sock',
  minPort: 0,
};

/**
 * Parses an HTTP listen address: `HOST:PORT` (a name or IPv4 address; `0.0.0.0` for every interface),
 * `[IPv6]:PORT`, `unix:PATH` or an absolute `/PATH` (src/address.ts has the rules). Throws
 * NODEFPM_INVALID_ADDRESS otherwise. The CLI can call it while parsing `--http`, so a bad value fails
 * before anything starts.
 */
export function parseHttpAddress(text: string): HttpListenAddress {
  if (typeof text !== 'string') throw invalidAddress(HTTP_SYNTAX, String(text), 'expected a string');
  return parseSocketAddress(text, HTTP_SYNTAX);
}

/** The address written back in the form parseHttpAddress accepts. */
export function formatHttpAddress(address: HttpListenAddress): string {
  return formatSocketAddress(address);
}

/** The URL to print for a bound address (see GatewayAddress.url). */
export function urlFor(address: HttpListenAddress, secure: boolean): string | null {
  if (address.kind === 'unix') return null;
  // A wildcard is where the server listens, not somewhere to go: show the loopback address of its family.
  const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  const scheme = secure ? 'https' : 'http';
  const defaultPort = secure ? 443 : 80;
  const shown = net.isIPv6(host) ? `[${host}]` : host;
  return `${scheme}://${shown}${address.port === defaultPort ? '' : `:${address.port}`}/`;
}

/**
 * The address to connect to for a FastCGI listener the process opened (the CLI's listen addresses,
 * structurally: `{ kind: 'unix', path }`, `{ kind: 'tcp', host, port }`), as an upstream for
 * createGateway. A wildcard host becomes the loopback address of its family. null for listeners whose
 * address is not known from their description (an inherited fd, a systemd socket): ask the socket.
 */
export function upstreamFor(listener: { kind: string; path?: string; host?: string; port?: number }): string | null {
  if (listener.kind === 'unix' && typeof listener.path === 'string') return formatSocketAddress({ kind: 'unix', path: listener.path });
  if (listener.kind !== 'tcp' || typeof listener.host !== 'string' || typeof listener.port !== 'number' || listener.port === 0) return null;
  const host = listener.host === '0.0.0.0' ? '127.0.0.1' : listener.host === '::' ? '::1' : listener.host;
  return formatSocketAddress({ kind: 'tcp', host, port: listener.port });
}

/** Starts `server` listening on `address`; resolves to the bound address (the real port for port 0). */
export async function listenOn(server: net.Server, address: HttpListenAddress): Promise<HttpListenAddress> {
  if (address.kind === 'unix') await clearStaleSocket(address.path);
  const what = formatHttpAddress(address);
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') reject(new NodefpmError('NODEFPM_ADDRESS_IN_USE', `${what} is in use`, { cause: error }));
      else reject(new NodefpmError('NODEFPM_INVALID_ADDRESS', `cannot listen on ${what}: ${error.message}`, { cause: error }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    if (address.kind === 'unix') server.listen({ path: address.path });
    else server.listen({ host: address.host, port: address.port });
  });
  if (address.kind === 'unix') return address;
  const bound = server.address() as net.AddressInfo;
  return { kind: 'tcp', host: address.host, port: bound.port };
}
