// Connect addresses: the accepted spellings of where a FastCGI application listens, turned into net.connect options.

import { isIP, isIPv6 } from 'node:net';
import { NodefpmError } from '../errors.js';

/** A Unix socket to connect to. */
export interface UnixTarget {
  path: string;
}

/** A TCP host and port to connect to. */
export interface TcpTarget {
  host: string;
  port: number;
}

/** Where the client connects: parsed, and usable as `net.connect` options as is. */
export type ConnectTarget = UnixTarget | TcpTarget;

/**
 * A connect address as a caller may write it:
 * - `unix:/path/app.sock` or `/path/app.sock` — a Unix socket (`unix:` also takes a relative path);
 * - `HOST:PORT` — TCP, HOST a name or an IPv4 address;
 * - `[IPv6]:PORT` — TCP over IPv6;
 * - `{ path }` or `{ host, port }` — the same, already split.
 */
export type ConnectAddress = string | UnixTarget | TcpTarget;

const acceptedForms = 'unix:/path, /absolute/path, HOST:PORT, [IPv6]:PORT, { path } or { host, port }';

function invalid(address: unknown, why: string): NodefpmError {
  const shown = typeof address === 'string' ? JSON.stringify(address) : safeShow(address);
  return new NodefpmError('NODEFPM_INVALID_ADDRESS', `invalid connect address ${shown}: ${why}; accepted forms: ${acceptedForms}`);
}

function safeShow(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function parsePort(text: string, address: unknown): number {
  // Digits only: Number() would also take "0x1f", " 80" and "1e3".
  if (!/^[0-9]{1,5}$/.test(text)) throw invalid(address, `port ${JSON.stringify(text)} is not a number`);
  return checkPort(Number(text), address);
}

function checkPort(port: number, address: unknown): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(address, `port ${port} is outside 1-65535`);
  return port;
}

function checkHost(host: string, address: unknown): string {
  if (host === '') throw invalid(address, 'the host is empty');
  // A bare IPv6 address must be bracketed in the string form, so `::1:9000` cannot be misread.
  if (host.includes(':') && !isIPv6(host)) throw invalid(address, `host ${JSON.stringify(host)} is not an IPv6 address`);
  if (/[\s/\\[\]@?#]/.test(host)) throw invalid(address, `host ${JSON.stringify(host)} contains characters a host name cannot`);
  return host;
}

function checkPath(path: string, address: unknown): string {
  if (path === '') throw invalid(address, 'the socket path is empty');
  if (path.includes('\0')) throw invalid(address, 'the socket path contains a NUL byte');
  return path;
}

/**
 * Parses a connect address into `net.connect` options. Throws NODEFPM_INVALID_ADDRESS, naming the
 * accepted forms, for anything else (a missing or zero port, an unbracketed IPv6 address, a relative
 * path without `unix:`, an empty string).
 */
export function parseConnectAddress(address: ConnectAddress): ConnectTarget {
  if (typeof address === 'string') return parseString(address);
  if (typeof address !== 'object' || address === null) throw invalid(address, 'expected a string or an object');
  if ('path' in address && typeof address.path === 'string') {
    if ('host' in address || 'port' in address) throw invalid(address, 'give either path or host and port, not both');
    return { path: checkPath(address.path, address) };
  }
  if ('host' in address && typeof address.host === 'string' && 'port' in address && typeof address.port === 'number') {
    // The object form takes the host unbracketed, as net.connect does.
    const host = address.host.startsWith('[') && address.host.endsWith(']') ? address.host.slice(1, -1) : address.host;
    return { host: checkHost(host, address), port: checkPort(address.port, address) };
  }
  throw invalid(address, 'an object needs a string path, or a string host and a numeric port');
}

function parseString(address: string): ConnectTarget {
  if (address.startsWith('unix:')) return { path: checkPath(address.slice('unix:'.length), address) };
  if (address.startsWith('/')) return { path: checkPath(address, address) };
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0) throw invalid(address, 'the IPv6 address has no closing bracket');
    const host = address.slice(1, close);
    if (!isIPv6(host)) throw invalid(address, `${JSON.stringify(host)} is not an IPv6 address`);
    if (address[close + 1] !== ':') throw invalid(address, 'the port is missing after the bracketed address');
    return { host, port: parsePort(address.slice(close + 2), address) };
  }
  const colon = address.lastIndexOf(':');
  if (colon < 0) {
    throw invalid(address, address === '' ? 'it is empty' : 'no port given (a relative socket path needs the unix: prefix)');
  }
  const host = address.slice(0, colon);
  if (host.includes(':')) throw invalid(address, 'an IPv6 address must be written in brackets, [::1]:9000');
  return { host: checkHost(host, address), port: parsePort(address.slice(colon + 1), address) };
}

/** The target written back as an address string, for messages: `unix:/run/app.sock`, `127.0.0.1:9000`, `[::1]:9000`. */
export function formatConnectTarget(target: ConnectTarget): string {
  if ('path' in target) return `unix:${target.path}`;
  return isIP(target.host) === 6 ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}
