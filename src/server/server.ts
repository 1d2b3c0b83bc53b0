// The FastCGI server: listeners, the set of connections, global request accounting, the allow-list, graceful close.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { NodefpmError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { Connection, type ConnectionHost } from './connection.js';
import type { Exchange } from './exchange.js';
import { formatListenAddress, listenAt, parseListenAddress, type ListenAddress, type ListenOptions } from './listen.js';
import { resolveOptions, type ResolvedOptions, type ServerOptions } from './options.js';
import { raiseMallocThresholds } from './read-buffers.js';

/** Receives each request once its PARAMS are complete. */
export type ExchangeHandler = (exchange: Exchange) => void;

/** Counters since the server started, for status pages. */
export interface ServerStats {
  connectionsAccepted: number;
  connectionsRefused: number;
  requestsStarted: number;
  requestsFinished: number;
  maxActiveRequests: number;
}

/** Beyond maxConnections, this many more are accepted just to be answered FCGI_OVERLOADED; the rest are dropped. */
const OVERLOAD_GRACE_FACTOR = 2;

/**
 * How often connections are checked for idleness, stalled bodies and lingering: a quarter of the
 * shorter of idleTimeout and bodyTimeout, between 10 ms and 1 s, so either fires within its time + 25%
 * of it (+ 1 s at most).
 */
function sweepInterval(idleTimeout: number, bodyTimeout: number): number {
  const shortest = Math.min(idleTimeout > 0 ? idleTimeout : Infinity, bodyTimeout > 0 ? bodyTimeout : Infinity);
  return shortest === Infinity ? 1000 : Math.min(1000, Math.max(10, Math.floor(shortest / 4)));
}

/**
 * Accepts connections on any number of listeners and serves FastCGI on each with a Connection.
 * Events: 'listening' (address), 'connection' (Connection), 'close'.
 */
export class FcgiServer extends EventEmitter implements ConnectionHost {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly stats: ServerStats = {
    connectionsAccepted: 0,
    connectionsRefused: 0,
    requestsStarted: 0,
    requestsFinished: 0,
    maxActiveRequests: 0,
  };
  readonly #handler: ExchangeHandler;
  readonly #listeners: net.Server[] = [];
  readonly #connections = new Set<Connection>();
  #active = 0;
  /** Connections reading into a buffer of their own (bounded by maxReadBuffers). */
  #ownReadBuffers = 0;
  #closing = false;
  /** One timer for every connection's idle and linger timing (none while there are no connections). */
  #sweepTimer: NodeJS.Timeout | null = null;
  #closed: Promise<void> | null = null;
  #addresses: ListenAddress[] = [];

  constructor(handler: ExchangeHandler, options: ServerOptions = {}) {
    super();
    this.#handler = handler;
    this.options = resolveOptions(options);
    this.log = options.logger ?? createLogger();
    if (this.options.allowedClients?.size === 0) {
      this.log.warn('FCGI_WEB_SERVER_ADDRS is set but lists no address: every connection will be refused');
    }
  }

  get closing(): boolean {
    return this.#closing;
  }

  get activeRequests(): number {
    return this.#active;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Addresses the server listens on, as bound. */
  get addresses(): readonly ListenAddress[] {
    return this.#addresses;
  }

  /**
   * Listens on `address` (text form or parsed); may be called several times for several listeners.
   * Resolves to the address bound (with the real port when port 0 was asked).
   */
  async listen(address: string | ListenAddress, options: ListenOptions = {}): Promise<ListenAddress> {
    if (this.#closing) throw new NodefpmError('NODEFPM_SERVER_CLOSING', 'the server is closing');
    const parsed = typeof address === 'string' ? parseListenAddress(address) : address;
    // Accepted paused, so that a Connection can move the socket to reading into reused buffers before any read.
    const listener = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.handleConnection(socket));
    // A failure to start listening is listenAt's to report (it rejects); log only errors of a listening server.
    listener.on('error', (error) => {
      if (listener.listening) this.log.error('listener error', { error });
    });
    const bound = await listenAt(listener, parsed, options);
    this.#listeners.push(listener);
    this.#addresses.push(bound);
    this.log.info(`listening on ${formatListenAddress(bound)}`);
    this.emit('listening', bound);
    return bound;
  }

  /**
   * Serves FastCGI on an accepted socket. listen() calls it; a process manager that accepts
   * elsewhere can hand sockets in directly.
   */
  handleConnection(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const allowed = this.options.allowedClients;
    if (allowed !== null) {
      const peer = socket.remoteAddress;
      if (!allowed.allows(peer)) {
        this.stats.connectionsRefused++;
        this.log.warn(`refused connection from ${peer ?? 'a Unix socket'}: not in FCGI_WEB_SERVER_ADDRS / allowedClients`, {
          code: 'NODEFPM_CLIENT_NOT_ALLOWED',
        });
        socket.destroy();
        return;
      }
    }
    const count = this.#connections.size;
    if (count >= this.options.maxConnections * OVERLOAD_GRACE_FACTOR) {
      this.stats.connectionsRefused++;
      this.log.warn(`dropped connection: ${count} open, far over maxConnections (${this.options.maxConnections})`, { code: 'NODEFPM_OVERLOADED' });
      socket.destroy();
      return;
    }
    const overloaded = count >= this.options.maxConnections;
    const connection = new Connection(socket, this, overloaded);
    this.#connections.add(connection);
    if (this.#sweepTimer === null) {
      this.#sweepTimer = setInterval(() => this.#sweep(), sweepInterval(this.options.idleTimeout, this.options.bodyTimeout));
      this.#sweepTimer.unref();
    }
    if (overloaded) this.stats.connectionsRefused++;
    else this.stats.connectionsAccepted++;
    this.emit('connection', connection);
  }

  // ---- ConnectionHost ----

  requestStarted(): void {
    this.#active++;
    this.stats.requestsStarted++;
    if (this.#active > this.stats.maxActiveRequests) this.stats.maxActiveRequests = this.#active;
  }

  requestFinished(): void {
    this.#active--;
    this.stats.requestsFinished++;
  }

  /** Connections now reading into a read buffer of their own (at most maxReadBuffers). */
  get readBuffersInUse(): number {
    return this.#ownReadBuffers;
  }

  claimReadBuffer(): boolean {
    if (this.#ownReadBuffers >= this.options.maxReadBuffers) return false;
    this.#ownReadBuffers++;
    // Handlers keep body chunks, whose buffers are freed in batches: the churn tuneMalloc is for. A
    // process that never gets here (GET requests, bodies consumed) keeps glibc's defaults.
    if (this.options.tuneMalloc) raiseMallocThresholds();
    return true;
  }

  releaseReadBuffer(): void {
    this.#ownReadBuffers--;
  }

  dispatch(exchange: Exchange): void {
    this.#handler(exchange);
  }

  connectionClosed(connection: Connection): void {
    this.#connections.delete(connection);
    if (this.#connections.size === 0 && this.#sweepTimer !== null) {
      clearInterval(this.#sweepTimer);
      this.#sweepTimer = null;
    }
    if (this.#closing && this.#connections.size === 0) this.emit('drained');
  }

  #sweep(): void {
    const now = performance.now();
    for (const connection of this.#connections) connection.sweep(now);
  }

  // ---- shutdown ----

  /**
   * Graceful close: stop accepting, let requests in progress finish, close each connection as it
   * becomes idle. After `timeout` ms (default 30 s) what is left is aborted (handlers see their
   * signal fire) and its connections closed. Resolves once every connection is closed.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    this.#closing = true;
    const timeout = options.timeout ?? 30_000;
    this.#closed = (async () => {
      const listenersClosed = this.#listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve())));
      for (const connection of this.#connections) connection.shutdown();
      if (this.#connections.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const drained = new Promise<void>((resolve) => this.once('drained', resolve));
        const expired = new Promise<'expired'>((resolve) => {
          timer = setTimeout(() => resolve('expired'), timeout);
        });
        const outcome = await Promise.race([drained, expired]);
        clearTimeout(timer);
        if (outcome === 'expired' && this.#connections.size > 0) {
          this.log.warn(`close timeout (${timeout} ms) reached with ${this.#active} requests in progress; aborting them`);
          const reason = new NodefpmError('NODEFPM_SERVER_CLOSING', 'the server shut down before the request finished');
          for (const connection of this.#connections) connection.destroy(reason);
          if (this.#connections.size > 0) await drained;
        }
      }
      await Promise.all(listenersClosed);
      this.emit('close');
    })();
    return this.#closed;
  }
}
