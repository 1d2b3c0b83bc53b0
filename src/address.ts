// Socket addresses as every part of nodefpm spells them (unix:PATH or /PATH, HOST:PORT, [IPv6]:PORT): one parser, one set of rules.

import { isIPv6 } from 'node:net';
import { NodefpmError } from './errors.js';

/** A Unix socket path, or a TCP host and port. */
export type SocketAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** What differs between the places an address is written: how errors name it, and two rules. */
export interface AddressSyntax {
  /** How messages name the address: "listen address", "connect address", "HTTP listen address". */
  what: string;
  /** The forms accepted there, listed in every error. */
  accepted: string;
  /** The lowest port: 0 where listening (the system picks one), 1 where connecting. */
  minPort: 0 | 1;
  /** Paths starting with ./ or ../ are Unix sockets without the unix: prefix (listen addresses in config files). */
  relativePaths?: boolean;
}

/** The error for a bad address: quotes it, says why, lists the accepted forms. */
export function invalidAddress(syntax: AddressSyntax, shown: string, why: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_ADDRESS', `${syntax.what} ${shown}: ${why}; accepted forms: ${syntax.accepted}`);
}

/** Why `path` cannot name a Unix socket, or null. */
export function pathProblem(path: string): string | null {
  if (path === '') return 'the socket path is empty';
  if (path.includes('\0')) return 'the socket path contains a NUL byte';
  return null;
}

/** Why `host` (unbracketed) cannot be a host name or address, or null. */
export function hostProblem(host: string): string | null {
  if (host === '') return 'the host is empty';
  // A bare IPv6 address must be bracketed in the text form, so that `::1:9000` cannot be misread.
  if (host.includes(':') && !isIPv6(host)) return `host ${JSON.stringify(host)} is not an IPv6 address`;
  if (/[\s/\\[\]@?#]/.test(host)) return `host ${JSON.stringify(host)} contains characters a host name cannot`;
  return null;
}

/** Why `port` is not a port the syntax takes, or null. */
export function portProblem(port: number, minPort: 0 | 1): string | null {
  return Number.isInteger(port) && port >= minPort && port <= 65535 ? null : `port ${port} is not ${minPort}-65535`;
}

function parsePort(text: string, digits: string, syntax: AddressSyntax): number {
  // Digits only: Number() would also take "0x1f", " 80" and "1e3".
  const port = Number(digits);
  if (!/^[0-9]{1,5}$/.test(digits) || port < syntax.minPort || port > 65535) {
    throw invalidAddress(syntax, JSON.stringify(text), `port ${JSON.stringify(digits)} is not ${syntax.minPort}-65535`);
  }
  return port;
}

/**
 * Parses `unix:PATH`, an absolute `/PATH` (or `./PATH`, `../PATH` with relativePaths), `HOST:PORT` or
 * `[IPv6]:PORT`, surrounding white space ignored. Throws NODEFPM_INVALID_ADDRESS saying what is wrong.
 */
export function parseSocketAddress(text: string, syntax: AddressSyntax): SocketAddress {
  const shown = JSON.stringify(text);
  const fail = (why: string): NodefpmError => invalidAddress(syntax, shown, why);
  const value = text.trim();
  if (value === '') throw fail('it is empty');
  const unixPath = value.startsWith('unix:')
    ? value.slice('unix:'.length)
    : value.startsWith('/') || (syntax.relativePaths === true && (value.startsWith('./') || value.startsWith('../')))
      ? value
      : null;
  if (unixPath !== null) {
    const problem = pathProblem(unixPath);
    if (problem !== null) throw fail(unixPath === '' ? 'no socket path after unix:' : problem);
    return { kind: 'unix', path: unixPath };
  }
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) throw fail('the IPv6 address has no closing bracket');
    const host = value.slice(1, close);
    if (!isIPv6(host)) throw fail(`${JSON.stringify(host)} is not an IPv6 address`);
    if (value[close + 1] !== ':') throw fail('the port is missing after the bracketed address');
    return { kind: 'tcp', host, port: parsePort(text, value.slice(close + 2), syntax) };
  }
  const colon = value.lastIndexOf(':');
  if (colon < 0) {
    throw fail(`no port given (a relative socket path needs the unix: prefix${syntax.relativePaths === true ? ' or ./' : ''})`);
  }
  const host = value.slice(0, colon);
  if (host.includes(':')) throw fail('an IPv6 address must be written in brackets, [::1]:9000');
  const problem = hostProblem(host);
  if (problem !== null) throw fail(problem);
  return { kind: 'tcp', host, port: parsePort(text, value.slice(colon + 1), syntax) };
}

/** The address written back in the form parseSocketAddress reads: `unix:/run/app.sock`, `127.0.0.1:9000`, `[::1]:9000`. */
export function formatSocketAddress(address: SocketAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
