// Connect addresses: the accepted spellings of where a FastCGI application listens, turned into net.connect options.

import { formatSocketAddress, hostProblem, invalidAddress, parseSocketAddress, pathProblem, portProblem, type AddressSyntax } from '../address.js';
import type { NodefpmError } from '../errors.js';

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

const CONNECT_SYNTAX: AddressSyntax = {
  what: 'connect address',
  accepted: 'unix:/path, /absolute/path, HOST:PORT, [IPv6]:PORT, { path } or { host, port }',
  minPort: 1,
};

function invalid(address: unknown, why: string): NodefpmError {
  return invalidAddress(CONNECT_SYNTAX, typeof address === 'string' ? JSON.stringify(address) : safeShow(address), why);
}

function safeShow(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Parses a connect address into `net.connect` options (the string forms by src/address.ts's rules, port
 * 1-65535). Throws NODEFPM_INVALID_ADDRESS, naming the accepted forms, for anything else (a missing or
 * zero port, an unbracketed IPv6 address, a relative path without `unix:`, an empty string).
 */
export function parseConnectAddress(address: ConnectAddress): ConnectTarget {
  if (typeof address === 'string') {
    const parsed = parseSocketAddress(address, CONNECT_SYNTAX);
    return parsed.kind === 'unix' ? { path: parsed.path } : { host: parsed.host, port: parsed.port };
  }
  if (typeof address !== 'object' || address === null) throw invalid(address, 'expected a string or an object');
  if ('path' in address && typeof address.path === 'string') {
    if ('host' in address || 'port' in address) throw invalid(address, 'give either path or host and port, not both');
    const problem = pathProblem(address.path);
    if (problem !== null) throw invalid(address, problem);
    return { path: address.path };
  }
  if ('host' in address && typeof address.host === 'string' && 'port' in address && typeof address.port === 'number') {
    // The object form takes the host unbracketed, as net.connect does.
    const host = address.host.startsWith('[') && address.host.endsWith(']') ? address.host.slice(1, -1) : address.host;
    const problem = hostProblem(host) ?? portProblem(address.port, CONNECT_SYNTAX.minPort);
    if (problem !== null) throw invalid(address, problem);
    return { host, port: address.port };
  }
  throw invalid(address, 'an object needs a string path, or a string host and a numeric port');
}

/** The target written back as an address string, for messages: `unix:/run/app.sock`, `127.0.0.1:9000`, `[::1]:9000`. */
export function formatConnectTarget(target: ConnectTarget): string {
  return formatSocketAddress('path' in target ? { kind: 'unix', path: target.path } : { kind: 'tcp', host: target.host, port: target.port });
}
