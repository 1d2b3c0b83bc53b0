// The server's limits and switches: one table of options with safe defaults, validated in one place.

import net from 'node:net';
import { NodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import { Role } from '../protocol/index.js';

/**
 * Every bound the server enforces. docs/limits.md describes each one; all are per process.
 * Times are in milliseconds; 0 (or Infinity) turns a timeout off.
 */
export interface Limits {
  /** Open connections. Beyond it, a connection's requests get FCGI_OVERLOADED and it is closed. Reported as FCGI_MAX_CONNS. */
  maxConnections: number;
  /** Requests in progress across all connections. Beyond it: FCGI_OVERLOADED. Reported as FCGI_MAX_REQS. */
  maxRequests: number;
  /** Requests in progress on one connection (when multiplexing). Beyond it: FCGI_OVERLOADED. */
  maxRequestsPerConnection: number;
  /** Bytes of one request's PARAMS stream (the CGI environment, HTTP headers included). Beyond it: 431. */
  maxParamsBytes: number;
  /** Bytes of one request body (FCGI_STDIN). Beyond it: 413, before the handler runs when CONTENT_LENGTH says so. */
  maxBodyBytes: number;
  /** Time from BEGIN_REQUEST until the PARAMS stream is complete. Beyond it: 408. */
  paramsTimeout: number;
  /** Time a connection with no request in progress may stay silent before it is closed. */
  idleTimeout: number;
  /**
   * Time an unfinished request body (FCGI_STDIN, FCGI_DATA) may go without a record while nothing on
   * our side holds it back. Beyond it the body fails with 408. Longer than web servers' own send
   * timeouts (nginx: 60 s), so it only ends what the web server has stopped sending and not dropped.
   */
  bodyTimeout: number;
  /** After FCGI_ABORT_REQUEST, how long the handler has to finish before END_REQUEST is sent without it. */
  abortTimeout: number;
  /** Body bytes buffered for one request before the connection stops reading the socket (input backpressure). */
  inputHighWaterMark: number;
  /** Bytes queued on a socket above which `write` returns false (output backpressure). At least 16 KiB. */
  outputHighWaterMark: number;
  /**
   * Connections that may read into a 64 KiB buffer of their own, so that the large body chunks a
   * handler keeps are handed over rather than copied. The others share one buffer and copy what is kept.
   */
  maxReadBuffers: number;
}

export const defaultLimits: Readonly<Limits> = Object.freeze({
  maxConnections: 1024,
  maxRequests: 1024,
  maxRequestsPerConnection: 128,
  maxParamsBytes: 128 * 1024,
  maxBodyBytes: 2 * 1024 * 1024 * 1024,
  paramsTimeout: 30_000,
  idleTimeout: 60_000,
  bodyTimeout: 120_000,
  abortTimeout: 5_000,
  inputHighWaterMark: 128 * 1024,
  outputHighWaterMark: 64 * 1024,
  maxReadBuffers: 256,
});

export interface ServerOptions extends Partial<Limits> {
  /** Accept several concurrent requests on one connection (FCGI_MPXS_CONNS=1). Off: a second one gets FCGI_CANT_MPX_CONN. Default true. */
  multiplex?: boolean;
  /** Roles served; a BEGIN_REQUEST for any other role gets FCGI_UNKNOWN_ROLE. Default [Responder]. */
  roles?: readonly number[];
  /** Peer addresses allowed to connect (IPv4 or IPv6), added to FCGI_WEB_SERVER_ADDRS. Unset and no env: everyone. */
  allowedClients?: readonly string[];
  /** Read FCGI_WEB_SERVER_ADDRS from the environment (section 3.2). Default true. */
  useWebServerAddrs?: boolean;
  /**
   * Raise glibc malloc's trim threshold to 32 MiB for the process once a connection first reads into a
   * buffer of its own (a handler keeps body chunks), so that the read buffers handed to kept chunks are
   * not returned to the kernel and faulted in again at every GC (see raiseMallocThresholds in
   * read-buffers.ts). Default true; false leaves malloc as it is.
   */
  tuneMalloc?: boolean;
  /** Where the server logs its reasons. Default: lines on stderr at level info. */
  logger?: Logger;
}

export interface ResolvedOptions extends Limits {
  multiplex: boolean;
  tuneMalloc: boolean;
  roles: ReadonlySet<number>;
  allowedClients: AllowList | null;
}

function checkCount(name: string, value: number, min: number): void {
  if (!(Number.isInteger(value) || value === Infinity) || value < min) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `option ${name} must be an integer >= ${min} (or Infinity), got ${String(value)}`);
  }
}

/** Node's timers hold at most 2^31-1 ms (beyond it they fire after 1 ms, and socket.setTimeout throws). */
const MAX_TIMEOUT = 2_147_483_647;

/** A timeout in ms: 0 and Infinity both mean off (resolved to 0). */
function checkTimeout(name: string, value: number): number {
  if (value === Infinity) return 0;
  if (!Number.isInteger(value) || value < 0 || value > MAX_TIMEOUT) {
    throw new NodefpmError(
      'NODEFPM_INVALID_OPTION',
      `option ${name} must be an integer from 0 (off) to ${MAX_TIMEOUT} ms, or Infinity (off), got ${String(value)}`,
    );
  }
  return value;
}

/** Normalises a peer address for display: IPv4-mapped IPv6 ("::ffff:1.2.3.4") becomes plain IPv4. */
export function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

/**
 * The peers allowed to connect (FCGI_WEB_SERVER_ADDRS plus allowedClients). Addresses are compared by
 * value, not spelling (net.BlockList): "::1" matches "0:0:0:0:0:0:0:1", and an IPv4 entry matches the
 * IPv4-mapped form ("::ffff:127.0.0.1", "::ffff:7f00:1") a dual-stack listener reports.
 */
export class AllowList implements Iterable<string> {
  readonly #entries: string[] = [];
  readonly #addresses = new net.BlockList();

  add(address: string): void {
    const entry = normalizeAddress(address);
    if (this.#entries.includes(entry)) return;
    this.#entries.push(entry);
    this.#addresses.addAddress(entry, net.isIPv6(entry) ? 'ipv6' : 'ipv4');
  }

  /** True when `peer` is listed; a Unix-socket peer (no address) never is (section 3.2). */
  allows(peer: string | undefined): boolean {
    if (peer === undefined || net.isIP(peer) === 0) return false;
    return this.#addresses.check(peer, net.isIPv6(peer) ? 'ipv6' : 'ipv4');
  }

  get size(): number {
    return this.#entries.length;
  }

  [Symbol.iterator](): Iterator<string> {
    return this.#entries[Symbol.iterator]();
  }
}

/** Applies defaults and checks every option; throws NODEFPM_INVALID_OPTION naming the bad one. */
export function resolveOptions(options: ServerOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  const limits: Limits = { ...defaultLimits };
  for (const key of Object.keys(defaultLimits) as Array<keyof Limits>) {
    const value = options[key];
    if (value === undefined) continue;
    if (key.endsWith('Timeout')) {
      limits[key] = checkTimeout(key, value);
    } else {
      // Zero read buffers of their own is a choice (every kept chunk copied); zero of anything else is not.
      checkCount(key, value, key === 'maxReadBuffers' ? 0 : 1);
      limits[key] = value;
    }
  }
  if (limits.outputHighWaterMark < 16 * 1024) {
    // Below the socket's own mark the socket never emits 'drain' for our threshold.
    throw new NodefpmError('NODEFPM_INVALID_OPTION', 'option outputHighWaterMark must be at least 16384');
  }
  const roles = new Set(options.roles ?? [Role.Responder]);
  for (const role of roles) {
    if (role !== Role.Responder && role !== Role.Authorizer && role !== Role.Filter) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `option roles: ${String(role)} is not a FastCGI role (1, 2 or 3)`);
    }
  }
  let allowed: AllowList | null = null;
  const fromEnv = options.useWebServerAddrs === false ? undefined : env.FCGI_WEB_SERVER_ADDRS;
  if (fromEnv !== undefined || options.allowedClients !== undefined) {
    allowed = new AllowList();
    const entries = [
      ...(fromEnv?.split(',') ?? []).map((entry) => ['FCGI_WEB_SERVER_ADDRS', entry] as const),
      ...(options.allowedClients ?? []).map((entry) => ['option allowedClients', entry] as const),
    ];
    for (const [source, entry] of entries) {
      const address = entry.trim();
      if (address === '') continue;
      // An entry that can never match a peer would refuse everyone without saying why.
      if (net.isIP(address) === 0) {
        throw new NodefpmError('NODEFPM_INVALID_OPTION', `${source}: ${JSON.stringify(address)} is not an IP address`);
      }
      allowed.add(normalizeAddress(address));
    }
  }
  return { ...limits, multiplex: options.multiplex ?? true, tuneMalloc: options.tuneMalloc ?? true, roles, allowedClients: allowed };
}
