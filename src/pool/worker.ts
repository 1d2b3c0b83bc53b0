// The worker side of the pool: loads the app, accepts on the master's sockets, reports to the master, drains, answers status and ping.

import { Buffer } from 'node:buffer';
import net from 'node:net';
import { STATUS_CODES } from 'node:http';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { isNodefpmError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { Connection } from '../server/connection.js';
import type { Exchange, ExchangeOutputObserver } from '../server/exchange.js';
import { FcgiServer, type ExchangeHandler } from '../server/server.js';
import { accessFormatter, statusOfHead, type AccessFormatter } from './access-log.js';
import { LogFile } from './log-file.js';
import type { FromWorker, LastRequestInfo, RequestInfo, ToWorker, WorkerReport, WorkerSettings, WorkerStats } from './messages.js';
import { FROM_SOURCES, importModule, poolModule, tsxEntries } from './paths.js';
import { CONTENT_TYPES, negotiateStatus, renderStatus } from './status.js';
import { SlotTable } from './watchdog-slots.js';

/** What a setup module's setupWorker() is given. */
export interface WorkerSetupContext {
  /** The JSON options the pool was given for it (PoolOptions.setup.options). */
  options: unknown;
  logger: Logger;
  poolName: string;
  slot: number;
  generation: number;
}

/** What a setup module's setupWorker() returns: the per-request callback, and how to describe it in the log. */
export interface WorkerApp {
  handler: ExchangeHandler;
  description: string;
}

/** The export a worker setup module must have (src/cli/worker-setup.ts is the command's). */
export type SetupWorker = (context: WorkerSetupContext) => WorkerApp | Promise<WorkerApp>;

/** How often the main thread tells the watchdog it is alive. */
const TICK_MS = 100;
/** A status request waits this long for the master. */
const STATUS_WAIT_MS = 5000;
const NO_CACHE = 'Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nCache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n';

interface Tracked {
  /** Epoch ms at BEGIN_REQUEST. */
  start: number;
  /** Watchdog slot, or -1. */
  slot: number;
  /** Status and head length seen by writeHead (access log). */
  status: number;
  headLength: number;
}

/**
 * One request's output, as the access log and the watchdog need it: the status from the head, and
 * the moment output may have reached the socket (from then on the watchdog must not answer for the
 * request itself).
 */
class OutputWatch implements ExchangeOutputObserver {
  readonly #tracked: Tracked;
  readonly #logging: boolean;
  readonly #slots: SlotTable | null;

  constructor(tracked: Tracked, logging: boolean, slots: SlotTable | null) {
    this.#tracked = tracked;
    this.#logging = logging;
    this.#slots = slots;
  }

  headQueued(head: string): void {
    if (!this.#logging) return;
    this.#tracked.status = statusOfHead(head);
    this.#tracked.headLength = head.length;
  }

  outputBegan(): void {
    this.#slots?.markOutput(this.#tracked.slot);
  }
}

function send(message: FromWorker, callback?: () => void): void {
  if (process.connected) process.send!(message, undefined, undefined, callback);
  else callback?.();
}

function pathOf(uri: string): string {
  const query = uri.indexOf('?');
  return query === -1 ? uri : uri.slice(0, query);
}

/** The file descriptor of the socket carrying `exchange` (for the watchdog's last-resort answer), or -1. */
function socketFd(exchange: Exchange): number {
  const socket = (exchange.host as Partial<Connection>).socket as unknown as { _handle?: { fd?: unknown } } | undefined;
  const fd = socket?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

function requestInfo(exchange: Exchange, duration: number): RequestInfo {
  return {
    method: exchange.param('REQUEST_METHOD') ?? '-',
    uri: exchange.param('REQUEST_URI') ?? exchange.param('SCRIPT_NAME') ?? '-',
    duration,
    contentLength: Number(exchange.param('CONTENT_LENGTH') || 0) || 0,
    user: exchange.param('REMOTE_USER') || '-',
    script: exchange.param('SCRIPT_FILENAME') || '-',
  };
}

/** Things the server needs from the worker process around it. */
interface WorkerHooks {
  /** A status request arrived; answer it (asks the master). */
  status(exchange: Exchange): void;
  /** A request finished; `finished` is the total so far. */
  finished(finished: number): void;
}

/**
 * The FcgiServer of a worker: counts and tracks requests for the status page, the access log and the
 * watchdog, intercepts the status and ping paths before the app, and drains without refusing anything
 * its peers have already sent.
 */
export class WorkerServer extends FcgiServer {
  readonly #settings: WorkerSettings;
  readonly #hooks: WorkerHooks;
  readonly #active = new Map<Exchange, Tracked>();
  readonly #connectionsOpen = new Set<Connection>();
  readonly #listeners: net.Server[] = [];
  readonly #format: AccessFormatter | null;
  #accessLog: LogFile | null = null;
  #slots: SlotTable | null = null;
  #lastExchange: Exchange | null = null;
  #lastDuration = 0;
  #lastEnded = 0;
  #idleSince: number | null = Date.now();
  #draining = false;
  #drained: (() => void) | null = null;
  /** The worker's latest CPU and memory figures, for %C and %M of the access log. */
  cpu = 0;
  rss = 0;

  constructor(handler: ExchangeHandler, settings: WorkerSettings, logger: Logger, hooks: WorkerHooks) {
    super(handler, { ...settings.server, logger });
    this.#settings = settings;
    this.#hooks = hooks;
    this.#format = settings.accessLog === null ? null : accessFormatter(settings.accessFormat);
    if (settings.accessLog !== null) this.#accessLog = new LogFile(settings.accessLog);
    this.on('connection', (connection: Connection) => {
      this.#connectionsOpen.add(connection);
      connection.socket.once('close', () => {
        this.#connectionsOpen.delete(connection);
        if (this.#draining && this.#connectionsOpen.size === 0) this.#drained?.();
      });
    });
  }

  /** Shares request slots with a watchdog thread. */
  watchWith(slots: SlotTable): void {
    this.#slots = slots;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get idleSince(): number | null {
    return this.#idleSince;
  }

  // ---- accepting ----

  /** Accepts on a listening-socket handle the master sent (shared accept). */
  acceptOn(handle: unknown, backlog: number): Promise<void> {
    // Accepted paused, as FcgiServer.listen() does: see Connection.
    const listener = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.handleConnection(socket));
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(handle as net.ListenOptions, backlog, () => {
        listener.off('error', reject);
        listener.on('error', (error) => this.log.error('listener error', { error }));
        this.#listeners.push(listener);
        resolve();
      });
    });
  }

  /** Serves a connection the master accepted (ondemand pools). */
  adopt(socket: net.Socket): void {
    // Sockets arriving over IPC are made with Node's defaults; serve them as listen() would have.
    (socket as net.Socket & { allowHalfOpen: boolean }).allowHalfOpen = true;
    if (typeof socket.setNoDelay === 'function' && socket.remoteAddress !== undefined) socket.setNoDelay(true);
    this.handleConnection(socket);
  }

  // ---- requests ----

  // FcgiServer's own counters ignore the exchange its connections pass; these overrides use it.
  override requestStarted(): void {
    super.requestStarted();
    this.#idleSince = null;
  }

  override dispatch(exchange: Exchange): void {
    const tracked: Tracked = { start: performance.timeOrigin + exchange.startedAt, slot: -1, status: 0, headLength: 0 };
    this.#active.set(exchange, tracked);
    const slots = this.#slots;
    if (slots !== null) {
      tracked.slot = slots.acquire(socketFd(exchange), exchange.id, tracked.start, exchange.param('REQUEST_METHOD') ?? '-', exchange.param('REQUEST_URI') ?? '-');
    }
    // Only what is asked for is paid for: the access log needs the status, the request timeout needs to know when output began.
    const watchOutput = tracked.slot >= 0 && this.#settings.requestTimeout > 0;
    if (this.#format !== null || watchOutput) exchange.outputObserver = new OutputWatch(tracked, this.#format !== null, watchOutput ? slots : null);
    if (this.#intercept(exchange)) return;
    super.dispatch(exchange);
  }

  override requestFinished(exchange?: Exchange): void {
    super.requestFinished();
    const finished = this.stats.requestsFinished;
    if (this.activeRequests === 0) this.#idleSince = Date.now();
    const tracked = exchange === undefined ? undefined : this.#active.get(exchange);
    if (tracked !== undefined && exchange !== undefined) {
      this.#active.delete(exchange);
      if (tracked.slot >= 0) this.#slots!.release(tracked.slot);
      const now = Date.now();
      this.#lastExchange = exchange;
      this.#lastDuration = now - tracked.start;
      this.#lastEnded = now;
      if (this.#format !== null) this.#logAccess(exchange, tracked, now);
    }
    this.#hooks.finished(finished);
    if (this.#draining) this.#sweep();
  }

  #logAccess(exchange: Exchange, tracked: Tracked, now: number): void {
    const params = exchange.params;
    const line = this.#format!({
      start: tracked.start,
      duration: now - tracked.start,
      status: tracked.status === 0 && exchange.stdoutBytes > 0 ? 200 : tracked.status,
      bytes: Math.max(0, exchange.stdoutBytes - tracked.headLength),
      // One decode of every param (kept by the exchange) beats a scan of the block per placeholder.
      param: (name) => params[name] ?? '',
      pid: process.pid,
      pool: this.#settings.poolName,
      memory: this.rss,
      cpu: this.cpu,
    });
    this.#accessLog!.write(line);
  }

  // ---- status and ping ----

  #intercept(exchange: Exchange): boolean {
    const { statusPath, pingPath } = this.#settings;
    if (statusPath === null && pingPath === null) return false;
    const path = pathOf(exchange.param('REQUEST_URI') ?? '');
    const script = exchange.param('SCRIPT_NAME');
    const at = (target: string | null): boolean => target !== null && (path === target || script === target);
    if (at(pingPath)) {
      respond(exchange, 200, 'text/plain; charset=utf-8', `${this.#settings.pingResponse}\n`);
      return true;
    }
    if (at(statusPath)) {
      this.#hooks.status(exchange);
      return true;
    }
    return false;
  }

  /** The requests in progress, as the status page shows them. */
  currentRequests(): RequestInfo[] {
    const now = Date.now();
    return [...this.#active].map(([exchange, tracked]) => requestInfo(exchange, now - tracked.start));
  }

  lastRequest(cpu: number, memory: number): LastRequestInfo | null {
    const exchange = this.#lastExchange;
    if (exchange === null) return null;
    return { ...requestInfo(exchange, this.#lastDuration), endedAt: this.#lastEnded, cpu, memory };
  }

  get lastEnded(): number {
    return this.#lastEnded;
  }

  reopenLogs(): void {
    this.#accessLog?.reopen();
  }

  flushLogs(): void {
    this.#accessLog?.flush();
  }

  // ---- draining ----

  /**
   * Stops accepting and lets the worker empty: requests in progress finish, used connections close as
   * they become idle (a kept-alive peer then opens a new one, to another worker), and a connection
   * accepted but not used yet may still bring its first request, which its peer has sent or is
   * sending; nothing is refused. Resolves when every connection is closed, or after `timeout` ms
   * (null: none), when what is left is aborted.
   */
  drain(timeout: number | null): Promise<void> {
    if (!this.#draining) {
      this.#draining = true;
      for (const listener of this.#listeners) listener.close();
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.#drained = null;
        resolve();
      };
      this.#drained = done;
      if (timeout !== null) {
        timer = setTimeout(() => {
          this.log.warn(`drain timeout (${timeout} ms) reached with ${this.activeRequests} requests in progress; aborting them`);
          void this.close({ timeout: 0 }).then(done);
        }, timeout);
      }
      this.#sweep();
      if (this.#connectionsOpen.size === 0) done();
    });
  }

  #sweep(): void {
    for (const connection of this.#connectionsOpen) {
      if (connection.used && connection.requestCount === 0) connection.shutdown();
    }
  }
}

function respond(exchange: Exchange, status: number, contentType: string, body: string): void {
  const bytes = Buffer.from(body);
  exchange.endWith(
    `Status: ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: ${contentType}\r\nContent-Length: ${bytes.length}\r\n${NO_CACHE}\r\n`,
    exchange.param('REQUEST_METHOD') === 'HEAD' ? null : bytes,
    status >= 500 ? 1 : 0,
  );
}

function waitFor<T extends ToWorker['type']>(type: T): Promise<Extract<ToWorker, { type: T }>> {
  return new Promise((resolve) => {
    const listener = (message: ToWorker): void => {
      if (message?.type !== type) return;
      process.off('message', listener);
      resolve(message as Extract<ToWorker, { type: T }>);
    };
    process.on('message', listener);
  });
}

async function loadSetup(settings: WorkerSettings, logger: Logger): Promise<WorkerApp> {
  const specifier = settings.setup.module.startsWith('file:') ? settings.setup.module : pathToFileURL(settings.setup.module).href;
  const module = (await importModule(specifier)) as { setupWorker?: SetupWorker; default?: { setupWorker?: SetupWorker } };
  const setup = module.setupWorker ?? module.default?.setupWorker;
  if (typeof setup !== 'function') throw new Error(`${settings.setup.module} exports no setupWorker function`);
  return setup({ options: settings.setup.options, logger, poolName: settings.poolName, slot: settings.slot, generation: settings.generation });
}

/** Starts the watchdog thread on `slots`; it runs as long as the worker does. */
function startWatchdog(settings: WorkerSettings, slots: SlotTable, logger: Logger): void {
  const tsx = FROM_SOURCES ? tsxEntries() : null;
  // A tiny CommonJS bootstrap: it registers tsx when the pool runs from its TypeScript sources, then imports the watchdog module.
  const boot =
    "const { workerData } = require('node:worker_threads');" +
    '(workerData.tsx ? import(workerData.tsx).then((m) => m.register()) : Promise.resolve())' +
    '.then(() => import(workerData.entry)).then((m) => (m.runWatchdog ?? m.default.runWatchdog)(workerData.config))' +
    ".catch((error) => { process.stderr.write('nodefpm watchdog failed to start: ' + (error && error.stack || error) + '\\n'); });";
  const thread = new Worker(boot, {
    eval: true,
    workerData: {
      tsx: tsx?.esmApi ?? null,
      entry: pathToFileURL(poolModule('watchdog')).href,
      config: { buffer: slots.buffer, requestTimeout: settings.requestTimeout, slowlogTimeout: settings.slowlogTimeout, tickInterval: TICK_MS },
    },
  });
  thread.on('error', (error) => logger.error('watchdog thread failed', { error }));
  thread.unref();
  slots.tick();
  setInterval(() => slots.tick(), TICK_MS).unref();
}

/**
 * The worker process's main: waits for its settings, loads the app, accepts where the master says,
 * reports to the master and does what it asks. Never returns: the process exits when it is drained.
 */
export async function runWorker(): Promise<void> {
  if (process.send === undefined) {
    process.stderr.write('nodefpm: this is a pool worker; it is started by the nodefpm master (createPool), not by hand\n');
    process.exit(2);
  }
  const { settings } = await waitFor('init');
  const logger = createLogger({ level: settings.logLevel });
  let app: WorkerApp;
  let server: WorkerServer;
  const pendingStatus = new Map<number, { exchange: Exchange; query: string; accept: string; timer: NodeJS.Timeout }>();
  let statusId = 0;
  let recycleAsked = false;
  const askRecycle = (reason: string): void => {
    if (recycleAsked) return;
    recycleAsked = true;
    send({ type: 'recycle', reason });
  };
  try {
    app = await loadSetup(settings, logger);
    server = new WorkerServer(app.handler, settings, logger, {
      status(exchange) {
        const id = ++statusId;
        const uri = exchange.param('REQUEST_URI') ?? '';
        const query = exchange.param('QUERY_STRING') ?? (uri.includes('?') ? uri.slice(uri.indexOf('?') + 1) : '');
        const timer = setTimeout(() => {
          pendingStatus.delete(id);
          respond(exchange, 503, 'text/plain; charset=utf-8', 'the pool master did not answer the status request in time\n');
        }, STATUS_WAIT_MS);
        pendingStatus.set(id, { exchange, query, accept: exchange.param('HTTP_ACCEPT') ?? '', timer });
        send({ type: 'status-request', id });
      },
      finished(finished) {
        if (settings.maxRequests > 0 && finished >= settings.maxRequests) askRecycle(`served ${finished} requests (--worker-max-requests ${settings.maxRequests})`);
      },
    });
  } catch (error) {
    const code = isNodefpmError(error) ? error.code : 'NODEFPM_APP_LOAD';
    const message = error instanceof Error ? error.message : String(error);
    if (settings.logLevel === 'debug' && error instanceof Error) logger.debug(`stack: ${error.stack ?? ''}`);
    send({ type: 'failed', code, message }, () => process.exit(1));
    return;
  }

  if (settings.requestTimeout > 0 || settings.slowlogTimeout > 0) {
    const capacity = Math.max(16, Math.min(Number.isFinite(server.options.maxRequests) ? server.options.maxRequests : 4096, 4096));
    const slots = new SlotTable(capacity);
    server.watchWith(slots);
    startWatchdog(settings, slots, logger);
  }

  // ---- heartbeat: figures for the master, and the memory ceiling ----
  let elu = performance.eventLoopUtilization();
  let cpu = process.cpuUsage();
  let measuredAt = performance.now();
  let lastElu = 0;
  let lastCpu = 0;
  let lastRequestCpu = 0;
  let lastRequestMemory = 0;
  let lastRequestSeen = 0;
  const stats = (): WorkerStats => {
    const memory = process.memoryUsage();
    return {
      pid: process.pid,
      at: Date.now(),
      connectionsAccepted: server.stats.connectionsAccepted,
      connections: server.connectionCount,
      requestsStarted: server.stats.requestsStarted,
      requestsFinished: server.stats.requestsFinished,
      activeRequests: server.activeRequests,
      maxActiveRequests: server.stats.maxActiveRequests,
      elu: lastElu,
      cpu: lastCpu,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      idleSince: server.idleSince,
      lastRequest: server.lastRequest(lastRequestCpu, lastRequestMemory),
    };
  };
  const heartbeat = (): void => {
    const now = performance.now();
    const eluNow = performance.eventLoopUtilization();
    lastElu = performance.eventLoopUtilization(eluNow, elu).utilization;
    elu = eluNow;
    const cpuDelta = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    lastCpu = ((cpuDelta.user + cpuDelta.system) / 1000 / Math.max(1, now - measuredAt)) * 100;
    measuredAt = now;
    const rss = process.memoryUsage.rss();
    server.cpu = lastCpu;
    server.rss = rss;
    if (server.lastEnded !== lastRequestSeen) {
      // A request ended in this period: its figures are this period's (see WorkerStatus.lastRequestCpu).
      lastRequestSeen = server.lastEnded;
      lastRequestCpu = lastCpu;
      lastRequestMemory = rss;
    }
    send({ type: 'heartbeat', stats: stats() });
    if (settings.maxMemory > 0 && rss > settings.maxMemory) {
      askRecycle(`resident memory ${Math.round(rss / 1048576)} MiB is above --worker-max-memory (${Math.round(settings.maxMemory / 1048576)} MiB)`);
    }
  };
  setInterval(heartbeat, settings.heartbeatInterval).unref();

  // ---- what the master asks ----
  let draining: Promise<void> | null = null;
  const drain = (timeout: number | null, reason: string): void => {
    if (draining !== null) return;
    logger.debug(`draining: ${reason}`);
    draining = server.drain(timeout).then(() => {
      server.flushLogs();
      send({ type: 'drained', stats: stats() }, () => process.exit(0));
      // Without a master (it died) the callback may not come.
      setTimeout(() => process.exit(0), 1000).unref();
    });
  };
  let listening = 0;
  let expected = -1;
  process.on('message', (message: ToWorker, handle: unknown) => {
    switch (message?.type) {
      case 'listen':
        expected = message.count;
        server.acceptOn(handle, settings.listenBacklog).then(
          () => {
            if (++listening === expected) send({ type: 'ready' });
          },
          (error: NodeJS.ErrnoException) => {
            const notListening = error.code === 'EINVAL';
            send(
              {
                type: 'failed',
                code: notListening ? 'NODEFPM_NO_LISTENER' : 'NODEFPM_INVALID_ADDRESS',
                message: notListening ? 'the inherited socket is not a listening socket' : `cannot accept on the shared socket: ${error.message}`,
              },
              () => process.exit(1),
            );
          },
        );
        return;
      case 'connection':
        if (handle instanceof net.Socket) server.adopt(handle);
        return;
      case 'drain':
        drain(message.timeout, message.reason);
        return;
      case 'report': {
        const report: WorkerReport = { ...stats(), current: server.currentRequests() };
        send({ type: 'report', id: message.id, report });
        return;
      }
      case 'status': {
        const pending = pendingStatus.get(message.id);
        if (pending === undefined) return;
        pendingStatus.delete(message.id);
        clearTimeout(pending.timer);
        if (pending.exchange.ended || pending.exchange.aborted) return;
        if (message.status === null) {
          respond(pending.exchange, 503, 'text/plain; charset=utf-8', `${message.error ?? 'the status is not available'}\n`);
          return;
        }
        const { format, full } = negotiateStatus(pending.query, pending.accept);
        respond(pending.exchange, 200, CONTENT_TYPES[format], renderStatus(message.status, format, full));
        return;
      }
      case 'reopen-logs':
        server.reopenLogs();
        return;
    }
  });
  // Signals sent to the whole process group (Ctrl-C in a terminal, systemd stopping a unit with
  // KillMode=control-group) reach the workers as well as the master: a worker then drains as the
  // master would ask it to, instead of dying with its requests. Reloading is the master's business:
  // a group SIGHUP or SIGUSR2 must not kill a worker either.
  process.on('SIGTERM', () => drain(settings.closeTimeout, 'SIGTERM'));
  process.on('SIGINT', () => drain(settings.closeTimeout, 'SIGINT'));
  process.on('SIGQUIT', () => drain(null, 'SIGQUIT'));
  process.on('SIGHUP', () => {});
  process.on('SIGUSR2', () => {});
  // The master is gone (killed): finish what is in progress and leave, rather than serve unmanaged.
  process.on('disconnect', () => drain(settings.closeTimeout, 'the master process is gone'));
  send({ type: 'loaded', description: app.description });
  if (settings.listenerCount === 0) send({ type: 'ready' });
}
