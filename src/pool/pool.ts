// The pool master: opens the sockets once, forks and watches the workers, sizes the pool, recycles, reloads, restarts, stops, and aggregates the status.

import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chownSync, closeSync, openSync } from 'node:fs';
import type net from 'node:net';
import { NodefpmError, errorCatalogue, type ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { ListenAddress } from '../server/listen.js';
import { openListener, type SharedListener } from './listeners.js';
import { LogFile, stderrSink, type LogSink } from './log-file.js';
import type { FromWorker, ToWorker, WatchdogEvent, WorkerReport, WorkerSettings, WorkerStats } from './messages.js';
import { resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from './options.js';
import { poolModule, workerExecArgv } from './paths.js';
import { CrashWindow, crashBackoff, dynamicDecision, workerLoad } from './scaler.js';
import type { PoolStatus, WorkerStatus } from './status.js';
import { groupId, primaryGroupOf, userId } from './users.js';

type WorkerState = 'starting' | 'ready' | 'draining' | 'exited';

/** A worker as pool.workers lists it. */
export interface WorkerInfo {
  pid: number;
  slot: number;
  generation: number;
  state: WorkerState;
}

/** Why a worker exited, as the 'worker-exit' event says. */
export type ExitReason = 'drained' | 'exited' | 'crashed' | 'timeout' | 'failed' | 'killed' | 'stopped';

interface Slot {
  index: number;
  /** Workers started in this slot after the first. */
  restarts: number;
  started: boolean;
  /** Crashes in a row (reset once a worker of the slot has served for a while). */
  crashes: number;
  current: WorkerProcess | null;
  /** The replacement of `current` while it starts (recycle, reload). */
  next: WorkerProcess | null;
  restartTimer: NodeJS.Timeout | null;
}

/** A worker that stays up this long after becoming ready ends its slot's run of crashes. */
const STABLE_AFTER_MS = 10_000;
/** After a drain's own timeout, how long before the master kills a worker that still has not exited. */
const KILL_GRACE_MS = 5_000;
/** After a recycle's replacement failed to start, how long until the next try. */
const RECYCLE_RETRY_MS = 5_000;
/** How long a worker has to answer a report request for the status page. */
const REPORT_WAIT_MS = 1_000;
/** How long to wait for a dead worker's last pipe output (its watchdog's reason) before deciding why it died. */
const EXIT_SETTLE_MS = 150;
const LOG_LINE = /^\d{4}-\d\d-\d\dT[\d:.]+Z nodefpm\[\d+\] /;

/** The master's record of one worker process. */
class WorkerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly slot: Slot;
  readonly generation: number;
  readonly startedAt = Date.now();
  readyAt = 0;
  state: WorkerState = 'starting';
  stats: WorkerStats | null = null;
  lastHeartbeat = Date.now();
  /** Connections handed over since the last heartbeat (ondemand routing). */
  handedOver = 0;
  recycleAsked = false;
  timedOut = false;
  failure: { code: string; message: string } | null = null;
  readonly reports = new Map<number, (report: WorkerReport) => void>();
  readonly ready: Promise<void>;
  resolveReady!: () => void;
  rejectReady!: (error: Error) => void;
  readonly exited: Promise<void>;
  resolveExited!: () => void;

  constructor(child: ChildProcess, slot: Slot, generation: number) {
    this.child = child;
    this.pid = child.pid ?? -1;
    this.slot = slot;
    this.generation = generation;
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Callers that stop waiting (the pool is stopping) must not leave an unhandled rejection behind.
    this.ready.catch(() => {});
    this.exited = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
  }

  send(message: ToWorker, handle?: unknown): void {
    if (!this.child.connected) return;
    try {
      this.child.send(message, handle as net.Socket | undefined, (error: Error | null) => {
        // A worker that died meanwhile: its exit is handled where it is noticed.
        if (error !== null) return;
      });
    } catch {
      // The channel closed between the check and the send.
    }
  }

  load(concurrency: number): number {
    return workerLoad(this.stats?.elu ?? 0, (this.stats?.activeRequests ?? 0) + this.handedOver, concurrency);
  }

  info(): WorkerInfo {
    return { pid: this.pid, slot: this.slot.index, generation: this.generation, state: this.state };
  }
}

/** Splits a stream into lines and hands each to `line`; the last partial line comes at the end. */
function eachLine(stream: NodeJS.ReadableStream | null | undefined, line: (text: string) => void): void {
  if (stream === null || stream === undefined) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const text of lines) line(text);
  });
  stream.on('end', () => {
    if (rest !== '') line(rest);
    rest = '';
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/**
 * A PHP-FPM-style pool of worker processes serving FastCGI on shared sockets.
 *
 *     const pool = createPool({ listen: ['unix:/run/app.sock'], workers: 4, setup: appSetup('app.js') });
 *     await pool.start();
 *     ...
 *     await pool.reload();   // new code, no request lost
 *     await pool.stop();     // graceful
 *
 * Events: 'worker-ready' (WorkerInfo), 'worker-exit' (WorkerInfo, reason, code, signal), 'reloaded'
 * (generation), 'emergency-restart' (crashes), 'stopped'.
 */
export class Pool extends EventEmitter {
  #options: ResolvedPoolOptions;
  readonly #given: PoolOptions;
  readonly log: Logger;
  readonly #errorSink: LogSink;
  readonly #ownsErrorSink: boolean;
  readonly #slowSink: LogSink | null;
  readonly #listeners: SharedListener[] = [];
  readonly #slots: Slot[] = [];
  readonly #live = new Set<WorkerProcess>();
  #crashes: CrashWindow;
  readonly #uid: number | undefined;
  readonly #gid: number | undefined;
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  #generation = 0;
  #reloading: Promise<void> | null = null;
  #reloadAgain = false;
  #startTime = 0;
  #maintenance: NodeJS.Timeout | null = null;
  #spawnRate = 1;
  #atMaxEpisode = false;
  #pending: net.Socket[] = [];
  #reportId = 0;
  #stopping: Promise<void> | null = null;
  // Figures for the status page.
  #exitedAccepted = 0;
  #exitedRequests = 0;
  #maxActiveRequests = 0;
  #maxActiveProcesses = 0;
  #maxChildrenReached = 0;
  #slowRequests = 0;
  #maxListenQueue: number | null = null;

  constructor(options: PoolOptions) {
    super();
    this.#given = options;
    this.#options = resolvePoolOptions(options);
    const o = this.#options;
    this.#ownsErrorSink = options.logSink === undefined && o.errorLog !== null;
    this.#errorSink = options.logSink ?? (o.errorLog === null ? stderrSink : new LogFile(o.errorLog));
    this.#slowSink = o.slowlog === null ? null : new LogFile(o.slowlog);
    this.log = createLogger({ level: o.logLevel, write: (line) => this.#errorSink.write(line) });
    this.#crashes = new CrashWindow(o.emergencyRestartThreshold, o.emergencyRestartInterval);
    this.#uid = o.user === undefined ? undefined : userId(o.user, '--user');
    this.#gid = o.group !== undefined ? groupId(o.group, '--group') : o.user !== undefined ? primaryGroupOf(o.user) : undefined;
    if (o.accessLog !== null && this.#uid !== undefined) {
      // Workers running as another user must be able to append to the access log the master may own.
      closeSync(openSync(o.accessLog, 'a', 0o640));
      chownSync(o.accessLog, this.#uid, this.#gid ?? -1);
    }
  }

  /** The options in force (a reload may have changed some). */
  get options(): ResolvedPoolOptions {
    return this.#options;
  }

  /** The addresses the pool listens on, as bound (real ports). */
  get addresses(): ListenAddress[] {
    return this.#listeners.map((listener) => listener.address);
  }

  /** The worker processes alive now. */
  get workers(): WorkerInfo[] {
    return [...this.#live].filter((worker) => worker.state !== 'exited').map((worker) => worker.info());
  }

  get generation(): number {
    return this.#generation;
  }

  get running(): boolean {
    return this.#state === 'running';
  }

  // ---- start ----

  /**
   * Opens the sockets and starts the first workers (static: all; dynamic: startWorkers; ondemand:
   * none), resolving once they accept. Rejects (with what went wrong in a worker, NODEFPM_APP_LOAD
   * for a module that cannot load) after closing whatever it had opened.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new NodefpmError('NODEFPM_SERVER_CLOSING', 'the pool was started already');
    this.#state = 'starting';
    this.#startTime = Date.now();
    const o = this.options;
    try {
      const owner = o.socketOwner === undefined ? undefined : userId(o.socketOwner, '--socket-owner');
      const group = o.socketGroup === undefined ? undefined : groupId(o.socketGroup, '--socket-group');
      for (const address of o.listen) {
        const listener = await openListener(address, {
          socketMode: o.socketMode,
          socketOwner: owner,
          socketGroup: group,
          backlog: o.listenBacklog,
          env: o.env,
        });
        this.#listeners.push(listener);
        if (o.pm === 'ondemand') await listener.serve((socket) => this.#onConnection(socket));
        this.log.info(`listening on ${listener.label}`);
      }
      const initial = o.pm === 'static' ? o.workers : o.pm === 'dynamic' ? o.startWorkers : 0;
      const workers = Array.from({ length: initial }, () => this.#spawn(this.#freeSlot()!, this.#generation));
      await Promise.all(workers.map((worker) => worker.ready));
    } catch (error) {
      await this.#abortStart();
      throw error;
    }
    this.#state = 'running';
    this.#maintenance = setInterval(() => this.#maintain(), 1000);
    this.#maintenance.unref();
  }

  async #abortStart(): Promise<void> {
    this.#state = 'stopped';
    for (const worker of this.#live) worker.child.kill('SIGKILL');
    await Promise.all([...this.#live].map((worker) => worker.exited));
    for (const listener of this.#listeners) listener.close();
    this.#closeSinks();
  }

  // ---- workers ----

  /** The lowest slot with no worker (growing the list up to --workers), or undefined when all are taken. */
  #freeSlot(): Slot | undefined {
    const free = this.#slots.find((slot) => slot.current === null && slot.next === null && slot.restartTimer === null);
    if (free !== undefined) return free;
    if (this.#slots.length >= this.options.workers) return undefined;
    const slot: Slot = { index: this.#slots.length, restarts: 0, started: false, crashes: 0, current: null, next: null, restartTimer: null };
    this.#slots.push(slot);
    return slot;
  }

  #settingsFor(slot: Slot, generation: number): WorkerSettings {
    const o = this.options;
    return {
      poolName: o.poolName,
      slot: slot.index,
      generation,
      setup: o.setup,
      server: o.server,
      logLevel: o.logLevel,
      accessLog: o.accessLog,
      accessFormat: o.accessFormat,
      statusPath: o.statusPath,
      pingPath: o.pingPath,
      pingResponse: o.pingResponse,
      maxRequests: o.workerMaxRequests,
      maxMemory: o.workerMaxMemory,
      requestTimeout: o.requestTimeout,
      slowlogTimeout: o.slowlogTimeout,
      heartbeatInterval: o.heartbeatInterval,
      listenBacklog: o.listenBacklog,
      listenerCount: o.pm === 'ondemand' ? 0 : this.#listeners.length,
      closeTimeout: o.closeTimeout,
      concurrency: o.workerConcurrency,
    };
  }

  /** Forks a worker for `slot` (as its current worker, unless `asNext`: a replacement still starting). */
  #spawn(slot: Slot, generation: number, asNext = false): WorkerProcess {
    const entry = poolModule('worker-main');
    const env: NodeJS.ProcessEnv = {
      ...this.options.env,
      NODEFPM_POOL: this.options.poolName,
      NODEFPM_WORKER_SLOT: String(slot.index),
    };
    // The master took the sockets systemd passed; a worker finds its own in its IPC messages.
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    const child = fork(entry, [], {
      execArgv: [...this.options.workerExecArgv, ...workerExecArgv(entry)],
      // Not the master's stdin: that may be the inherited listening socket (fd 0), which only the master hands out.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe'],
      env,
      ...(this.#uid === undefined ? {} : { uid: this.#uid }),
      ...(this.#gid === undefined ? {} : { gid: this.#gid }),
    });
    const worker = new WorkerProcess(child, slot, generation);
    if (slot.started) slot.restarts++;
    slot.started = true;
    if (asNext) slot.next = worker;
    else slot.current = worker;
    this.#live.add(worker);
    this.log.info(`worker ${worker.pid} starting (slot ${slot.index}, generation ${generation})`);
    const startTimer = setTimeout(() => {
      if (worker.state !== 'starting') return;
      worker.failure = { code: 'NODEFPM_WORKER_START', message: `the worker did not start accepting within ${seconds(this.options.startTimeout)}` };
      child.kill('SIGKILL');
    }, this.options.startTimeout);
    startTimer.unref();

    eachLine(child.stdout, (line) => this.#relay(worker, 'stdout', line));
    eachLine(child.stderr, (line) => this.#relay(worker, 'stderr', line));
    eachLine(child.stdio[4] as NodeJS.ReadableStream | null, (line) => this.#onWatchdog(worker, line));
    child.on('message', (message: FromWorker) => this.#onMessage(worker, message));
    child.once('error', (error) => {
      // Spawning failed (a bad --user, no memory): it counts as a failed start.
      worker.failure ??= { code: 'NODEFPM_WORKER_START', message: `cannot start a worker: ${error.message}` };
      if (child.exitCode === null && child.signalCode === null && child.pid === undefined) this.#onExit(worker, null, null);
    });
    let closed = false;
    child.once('close', () => {
      closed = true;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(startTimer);
      // The watchdog's reason for a kill may still be in the pipe: give it a moment to arrive.
      if (closed) this.#onExit(worker, code, signal);
      else {
        const timer = setTimeout(() => this.#onExit(worker, code, signal), EXIT_SETTLE_MS);
        child.once('close', () => {
          clearTimeout(timer);
          this.#onExit(worker, code, signal);
        });
      }
    });
    child.send({ type: 'init', settings: this.#settingsFor(slot, generation) } satisfies ToWorker);
    return worker;
  }

  #relay(worker: WorkerProcess, stream: 'stdout' | 'stderr', line: string): void {
    // The workers' own log lines carry their pid already; anything else the app printed gets it here.
    this.#errorSink.write(LOG_LINE.test(line) ? `${line}\n` : `${new Date().toISOString()} nodefpm[${worker.pid}] ${stream}: ${line}\n`);
  }

  #onMessage(worker: WorkerProcess, message: FromWorker): void {
    switch (message?.type) {
      case 'loaded':
        if (this.options.pm !== 'ondemand') {
          this.#listeners.forEach((listener, index) => worker.send({ type: 'listen', index, count: this.#listeners.length }, listener.handle));
        }
        return;
      case 'ready':
        if (worker.state !== 'starting') return;
        worker.state = 'ready';
        worker.readyAt = Date.now();
        this.log.info(`worker ${worker.pid} ready (slot ${worker.slot.index}, generation ${worker.generation})`);
        worker.resolveReady();
        this.emit('worker-ready', worker.info());
        this.#flushPending();
        return;
      case 'failed':
        worker.failure = { code: message.code, message: message.message };
        return;
      case 'heartbeat':
        worker.stats = message.stats;
        worker.lastHeartbeat = Date.now();
        worker.handedOver = 0;
        if (worker.readyAt > 0 && worker.lastHeartbeat - worker.readyAt > STABLE_AFTER_MS) worker.slot.crashes = 0;
        this.#sampleActivity();
        return;
      case 'report':
        worker.reports.get(message.id)?.(message.report);
        worker.reports.delete(message.id);
        return;
      case 'status-request':
        this.status().then(
          (status) => worker.send({ type: 'status', id: message.id, status }),
          (error: unknown) => worker.send({ type: 'status', id: message.id, status: null, error: (error as Error).message }),
        );
        return;
      case 'recycle':
        this.#recycle(worker, message.reason);
        return;
      case 'drained':
        worker.stats = message.stats;
        return;
    }
  }

  #onWatchdog(worker: WorkerProcess, line: string): void {
    let event: WatchdogEvent;
    try {
      event = JSON.parse(line) as WatchdogEvent;
    } catch {
      return;
    }
    const stackText = (stack: string | null, note: string | null): string => stack ?? `    (no stack: ${note ?? 'unknown'})`;
    if (event.type === 'slow') {
      this.#slowRequests++;
      // php-fpm's slowlog layout: a header naming pool and pid, the request, then the stack.
      const stack = stackText(event.stack, event.note);
      this.log.warn(
        `worker ${event.pid}: request ${event.method} ${event.uri} is running slowly (${seconds(event.duration)}); ` +
          (this.#slowSink === null ? 'its JavaScript stack follows' : `logged to ${this.options.slowlog}`),
        { code: 'NODEFPM_SLOW_REQUEST' },
      );
      if (this.#slowSink === null) this.#errorSink.write(`${stack}\n`);
      else {
        this.#slowSink.write(
          `[${new Date().toISOString()}] [pool ${this.options.poolName}] pid ${event.pid}\n` +
            `request = ${event.method} ${event.uri}\nduration = ${seconds(event.duration)}\n${stack}\n\n`,
        );
      }
      return;
    }
    worker.timedOut = true;
    const requests = event.requests.map((request) => `${request.method} ${request.uri} (${seconds(request.duration)}, ${request.answered ? 'answered 504' : 'connection closed'})`);
    this.log.error(
      `worker ${event.pid} (slot ${worker.slot.index}) killed: its event loop was blocked for ${seconds(event.blocked)}, longer than ` +
        `--request-timeout (${seconds(this.options.requestTimeout)}); requests: ${requests.length === 0 ? 'none' : requests.join(', ')}; ` +
        'its JavaScript stack follows',
      { code: 'NODEFPM_REQUEST_TIMEOUT' },
    );
    this.#errorSink.write(`${stackText(event.stack, event.note)}\n`);
  }

  #onExit(worker: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (worker.state === 'exited') return;
    const was = worker.state;
    worker.state = 'exited';
    this.#live.delete(worker);
    const slot = worker.slot;
    if (slot.current === worker) slot.current = null;
    if (slot.next === worker) slot.next = null;
    this.#exitedAccepted += worker.stats?.connectionsAccepted ?? 0;
    this.#exitedRequests += worker.stats?.requestsFinished ?? 0;
    for (const resolve of worker.reports.values()) resolve({ ...(worker.stats ?? emptyStats(worker.pid)), current: [] });
    worker.reports.clear();
    const how = signal !== null ? `signal ${signal}` : `code ${code}`;
    let reason: ExitReason;
    if (was === 'starting') {
      reason = 'failed';
      const failure = worker.failure ?? { code: 'NODEFPM_WORKER_START', message: `the worker exited with ${how} before it was ready` };
      const code: ErrorCode = failure.code in errorCatalogue ? (failure.code as ErrorCode) : 'NODEFPM_WORKER_START';
      worker.rejectReady(new NodefpmError(code, failure.message));
      if (this.#state === 'running') this.log.error(`worker ${worker.pid} (slot ${slot.index}) failed to start: ${failure.message}`, { code });
    } else if (was === 'draining' || this.#state === 'stopping' || this.#state === 'stopped') {
      reason = was === 'draining' ? 'drained' : 'stopped';
      this.log.info(`worker ${worker.pid} (slot ${slot.index}) exited (${how})`);
    } else if (worker.timedOut) {
      reason = 'timeout';
    } else if (signal === 'SIGKILL' && worker.failure !== null) {
      reason = 'killed';
    } else if (code === 0) {
      // It left by itself (the app called process.exit(0), or someone sent it SIGTERM): replaced, not a crash.
      reason = 'exited';
      this.log.info(`worker ${worker.pid} (slot ${slot.index}) exited by itself (code 0); replacing it`);
    } else {
      reason = 'crashed';
      this.log.error(`worker ${worker.pid} (slot ${slot.index}) exited unexpectedly with ${how}`, { code: 'NODEFPM_WORKER_CRASHED' });
    }
    worker.resolveExited();
    this.emit('worker-exit', worker.info(), reason, code, signal);
    if (this.#state !== 'running') return;
    if (reason === 'crashed' || reason === 'failed') {
      slot.crashes++;
      if (this.#crashes.record(Date.now())) {
        this.#emergencyRestart();
        return;
      }
    }
    if (reason !== 'drained' && slot.current === null && slot.next === null) this.#restartSlot(slot, reason === 'timeout' ? 0 : crashBackoff(slot.crashes));
    this.#flushPending();
  }

  /** Starts a worker in a slot whose worker died, after `delay` (the crash back-off). */
  #restartSlot(slot: Slot, delay: number): void {
    if (slot.restartTimer !== null) return;
    if (this.options.pm === 'static' && slot.index >= this.options.workers) return;
    // ondemand starts workers when connections need them, not to refill slots.
    if (this.options.pm === 'ondemand' && this.#pending.length === 0) return;
    if (this.options.pm === 'dynamic' && this.#servingWorkers().length + this.#startingCount() >= this.options.workers) return;
    if (delay > 0) this.log.warn(`slot ${slot.index}: crash number ${slot.crashes} in a row; restarting it in ${seconds(delay)}`);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.#state !== 'running' || slot.current !== null || slot.next !== null) return;
      this.#spawn(slot, this.#generation);
    }, delay);
  }

  #emergencyRestart(): void {
    const o = this.options;
    this.log.error(
      `${o.emergencyRestartThreshold} workers crashed within ${seconds(o.emergencyRestartInterval)} ` +
        '(--emergency-restart-threshold, --emergency-restart-interval): restarting the whole pool',
      { code: 'NODEFPM_EMERGENCY_RESTART' },
    );
    this.emit('emergency-restart', o.emergencyRestartThreshold);
    for (const slot of this.#slots) slot.crashes = 0;
    this.reload({ reason: 'emergency restart' }).catch((error: unknown) => this.log.error(`emergency restart failed: ${(error as Error).message}`));
  }

  /**
   * Replaces a worker that asked to be recycled (--worker-max-requests, --worker-max-memory). The
   * worker asks once; when its replacement fails to start, the master asks again itself after
   * RECYCLE_RETRY_MS, for as long as the worker serves.
   */
  #recycle(worker: WorkerProcess, reason: string): void {
    if (worker.state !== 'ready' || worker.recycleAsked || this.#state !== 'running' || worker.slot.current !== worker) return;
    worker.recycleAsked = true;
    this.log.info(`recycling worker ${worker.pid} (slot ${worker.slot.index}): ${reason}`);
    void this.#replace(worker.slot, worker.generation, `recycled: ${reason}`).then((replaced) => {
      if (replaced || worker.slot.current !== worker) return;
      this.log.warn(`worker ${worker.pid} (slot ${worker.slot.index}): recycling again in ${seconds(RECYCLE_RETRY_MS)}`);
      setTimeout(() => this.#recycle(worker, reason), RECYCLE_RETRY_MS).unref();
    });
  }

  /** Starts a replacement for the worker of `slot`; once it accepts, the old one drains. False when the replacement failed (the old one goes on). */
  async #replace(slot: Slot, generation: number, reason: string): Promise<boolean> {
    const old = slot.current;
    if (slot.next !== null) return false;
    const next = this.#spawn(slot, generation, true);
    try {
      await next.ready;
    } catch (error) {
      if (slot.next === next) slot.next = null;
      this.log.error(`the replacement of worker ${old?.pid ?? '-'} (slot ${slot.index}) failed: ${(error as Error).message}; the old worker goes on`);
      if (old !== null) old.recycleAsked = false;
      return false;
    }
    if (slot.next !== next) {
      // A reload took the slot over while this replacement started: it is of the old code, let it go.
      this.#retire(next, 'superseded by a reload');
      return false;
    }
    slot.next = null;
    slot.current = next;
    if (old !== null && old.state !== 'exited') this.#retire(old, reason);
    return true;
  }

  /** Asks a worker to drain and exit; kills it if it has not exited some time after its own deadline. */
  #retire(worker: WorkerProcess, reason: string, timeout: number | null = this.options.closeTimeout): void {
    if (worker.state === 'draining' || worker.state === 'exited') return;
    if (worker.state === 'starting') {
      worker.child.kill('SIGKILL');
      return;
    }
    worker.state = 'draining';
    if (worker.slot.current === worker) worker.slot.current = null;
    this.log.info(`worker ${worker.pid} (slot ${worker.slot.index}) draining: ${reason}`);
    worker.send({ type: 'drain', timeout, reason });
    if (timeout !== null) {
      const timer = setTimeout(() => {
        if (worker.state !== 'exited') {
          this.log.warn(`worker ${worker.pid} did not exit ${seconds(KILL_GRACE_MS)} after its drain deadline: killing it`);
          worker.child.kill('SIGKILL');
        }
      }, timeout + KILL_GRACE_MS);
      timer.unref();
    }
  }

  #servingWorkers(): WorkerProcess[] {
    return [...this.#live].filter((worker) => worker.state === 'ready');
  }

  #startingCount(): number {
    return [...this.#live].filter((worker) => worker.state === 'starting').length;
  }

  // ---- ondemand: the master accepts and hands connections over ----

  #onConnection(socket: net.Socket): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      socket.destroy();
      return;
    }
    const concurrency = this.options.workerConcurrency;
    const serving = this.#servingWorkers().sort((a, b) => a.load(concurrency) - b.load(concurrency));
    const best = serving[0];
    if (best !== undefined && best.load(concurrency) < 1) {
      this.#handOver(best, socket);
      return;
    }
    const starting = this.#startingCount();
    if (starting === 0) {
      const slot = this.#freeSlot();
      if (slot !== undefined) {
        this.#spawn(slot, this.#generation);
        this.#pending.push(socket);
        return;
      }
      this.#countAtMax();
    }
    if (best !== undefined) this.#handOver(best, socket);
    else this.#pending.push(socket);
  }

  #handOver(worker: WorkerProcess, socket: net.Socket): void {
    worker.handedOver++;
    worker.send({ type: 'connection' }, socket);
  }

  /** Hands connections that waited for a worker to the least loaded one. */
  #flushPending(): void {
    if (this.#pending.length === 0) return;
    const serving = this.#servingWorkers();
    if (serving.length === 0) {
      if (this.#startingCount() === 0 && this.#state === 'running') {
        // Nothing is starting (the last start failed): try again, with the slot's back-off.
        const slot = this.#freeSlot();
        if (slot !== undefined) this.#restartSlot(slot, crashBackoff(slot.crashes));
      }
      return;
    }
    const concurrency = this.options.workerConcurrency;
    for (const socket of this.#pending.splice(0)) {
      const target = serving.reduce((a, b) => (b.load(concurrency) < a.load(concurrency) ? b : a));
      this.#handOver(target, socket);
    }
  }

  // ---- maintenance, once a second ----

  #countAtMax(): void {
    if (this.#atMaxEpisode) return;
    this.#atMaxEpisode = true;
    this.#maxChildrenReached++;
    this.log.warn(`pool ${this.options.poolName} needs more capacity but runs --workers (${this.options.workers}) already; consider raising it`, {
      code: 'NODEFPM_MAX_WORKERS_REACHED',
    });
  }

  #sampleActivity(): void {
    let active = 0;
    let busy = 0;
    for (const worker of this.#live) {
      const requests = worker.stats?.activeRequests ?? 0;
      active += requests;
      if (requests > 0) busy++;
    }
    this.#maxActiveRequests = Math.max(this.#maxActiveRequests, active);
    this.#maxActiveProcesses = Math.max(this.#maxActiveProcesses, busy);
  }

  #maintain(): void {
    if (this.#state !== 'running') return;
    const o = this.options;
    const now = Date.now();
    // A worker whose heartbeats stopped although its watchdog should have acted (it died, or the process hangs in native code).
    if (o.requestTimeout > 0) {
      const limit = o.requestTimeout + Math.max(5_000, o.heartbeatInterval * 5);
      for (const worker of this.#live) {
        if ((worker.state === 'ready' || worker.state === 'draining') && now - worker.lastHeartbeat > limit && !worker.timedOut) {
          worker.timedOut = true;
          this.log.error(`worker ${worker.pid} (slot ${worker.slot.index}) sent no heartbeat for ${seconds(now - worker.lastHeartbeat)}: killing it`);
          worker.child.kill('SIGKILL');
        }
      }
    }
    if (o.pm === 'dynamic' && this.#reloading === null) {
      const serving = this.#servingWorkers();
      const decision = dynamicDecision({
        loads: serving.map((worker) => worker.load(o.workerConcurrency)),
        starting: this.#startingCount(),
        max: o.workers,
        minSpare: o.minSpareWorkers,
        maxSpare: o.maxSpareWorkers,
        spawnRate: this.#spawnRate,
      });
      if (decision.spawn > 0 || decision.retire) {
        this.log.debug(`dynamic: spare capacity ${decision.spare.toFixed(2)} (loads ${serving.map((w) => w.load(o.workerConcurrency).toFixed(2)).join(', ')})`);
      }
      if (decision.atMax) this.#countAtMax();
      else if (decision.spawn === 0) this.#atMaxEpisode = false;
      for (let i = 0; i < decision.spawn; i++) {
        const slot = this.#freeSlot();
        if (slot === undefined) break;
        this.#spawn(slot, this.#generation);
      }
      this.#spawnRate = decision.spawn > 0 ? Math.min(32, this.#spawnRate * 2) : 1;
      if (decision.retire) {
        const idle = serving.filter((worker) => (worker.stats?.activeRequests ?? 0) === 0 && worker.handedOver === 0);
        const victim = idle.sort((a, b) => a.load(o.workerConcurrency) - b.load(o.workerConcurrency))[0];
        if (victim !== undefined) this.#retire(victim, `spare capacity ${decision.spare.toFixed(2)} is above --max-spare-workers (${o.maxSpareWorkers})`);
      }
    }
    if (o.pm === 'ondemand') {
      for (const worker of this.#servingWorkers()) {
        const idleSince = worker.stats?.idleSince ?? null;
        if (idleSince !== null && worker.handedOver === 0 && (worker.stats?.activeRequests ?? 0) === 0 && now - idleSince >= o.workerIdleTimeout) {
          this.#retire(worker, `idle for ${seconds(now - idleSince)} (--worker-idle-timeout)`);
        }
      }
      if (this.#servingWorkers().every((worker) => worker.load(o.workerConcurrency) < 1)) this.#atMaxEpisode = false;
    }
    for (const listener of this.#listeners) {
      if (listener.transport !== 'tcp') continue;
      void listener.queue().then(({ length }) => {
        if (length !== null) this.#maxListenQueue = Math.max(this.#maxListenQueue ?? 0, length);
      });
    }
  }

  // ---- reload ----

  /**
   * Starts a new generation of workers (the app module imported afresh, in new processes) and, once
   * every one of them accepts, drains the old ones: nothing is refused and nothing in progress is
   * cut. When a new worker fails (a syntax error in the new code), the new ones are stopped, the old
   * generation goes on serving, and the promise rejects with the failure.
   */
  reload(options: { reason?: string; changes?: Partial<PoolOptions> } | string = {}): Promise<void> {
    const { reason = 'reload', changes } = typeof options === 'string' ? { reason: options } : options;
    if (this.#state !== 'running') return Promise.reject(new NodefpmError('NODEFPM_SERVER_CLOSING', 'the pool is not running'));
    if (changes !== undefined) {
      try {
        this.#applyChanges(changes);
      } catch (error) {
        this.log.error(`${reason}: not reloading: ${(error as Error).message}`);
        return Promise.reject(error as Error);
      }
    }
    if (this.#reloading !== null) {
      // A reload asked during a reload gets one more after it: the code may have changed again.
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = this.#reload(reason).finally(() => {
      this.#reloading = null;
      if (this.#reloadAgain && this.#state === 'running') {
        this.#reloadAgain = false;
        void this.reload({ reason }).catch(() => {});
      }
    });
    return this.#reloading;
  }

  /** Options a reload can change: everything about the workers; the sockets, the mode, the users and the log files stay. */
  #applyChanges(changes: Partial<PoolOptions>): void {
    const fixed = ['listen', 'pm', 'socketMode', 'socketOwner', 'socketGroup', 'listenBacklog', 'errorLog', 'slowlog', 'user', 'group', 'env'] as const;
    const kept: string[] = [];
    const next: PoolOptions = { ...this.#given, ...changes };
    for (const key of fixed) {
      if (key in changes && JSON.stringify(changes[key]) !== JSON.stringify(this.#given[key])) kept.push(key);
      (next as unknown as Record<string, unknown>)[key] = this.#given[key];
    }
    const resolved = resolvePoolOptions(next);
    if (kept.length > 0) this.log.warn(`a reload keeps ${kept.join(', ')} as they were: restart nodefpm to change them`);
    this.#options = resolved;
    Object.assign(this.#given, next);
    this.#crashes = new CrashWindow(resolved.emergencyRestartThreshold, resolved.emergencyRestartInterval);
  }

  async #reload(reason: string): Promise<void> {
    const generation = this.#generation + 1;
    for (const slot of this.#slots) {
      if (slot.restartTimer !== null) {
        clearTimeout(slot.restartTimer);
        slot.restartTimer = null;
      }
    }
    let slots: Slot[];
    if (this.options.pm === 'static') {
      // Every slot up to --workers (which the reload may have changed); workers beyond it go.
      while (this.#slots.length < this.options.workers) this.#freeSlot();
      slots = this.#slots.slice(0, this.options.workers);
    } else {
      slots = this.#slots.filter((slot) => slot.current !== null);
    }
    this.log.info(`${reason}: starting generation ${generation} (${slots.length} worker${slots.length === 1 ? '' : 's'})`);
    const olds = slots.map((slot) => slot.current);
    const news = slots.map((slot) => this.#spawn(slot, generation, true));
    const results = await Promise.allSettled(news.map((worker) => worker.ready));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined || this.#state !== 'running') {
      for (const worker of news) {
        if (worker.slot.next === worker) worker.slot.next = null;
        if (worker.state !== 'exited') this.#retire(worker, 'the reload failed', 0);
      }
      const error = failure?.reason as Error | undefined;
      const message = `${reason} failed: ${error?.message ?? 'the pool stopped'}; the workers of generation ${this.#generation} go on serving`;
      this.log.error(message, { code: 'NODEFPM_RELOAD_FAILED' });
      throw new NodefpmError('NODEFPM_RELOAD_FAILED', message, { cause: error });
    }
    this.#generation = generation;
    slots.forEach((slot, index) => {
      const next = news[index]!;
      if (slot.next === next) slot.next = null;
      slot.current = next;
      const old = olds[index];
      if (old !== null && old !== undefined && old.state !== 'exited') this.#retire(old, reason);
    });
    // Workers of older generations not in a slot any more: a static pool's beyond a lowered --workers, a recycle's replacement.
    for (const worker of this.#live) {
      if (worker.generation < generation && worker.state === 'ready') this.#retire(worker, reason);
    }
    this.log.info(`${reason}: generation ${generation} serving`);
    this.emit('reloaded', generation);
  }

  // ---- stop ----

  /**
   * Graceful stop: the sockets close (new connections are refused), every worker finishes what is in
   * progress (aborting it after `timeout` ms, default closeTimeout; null waits as long as it takes, as
   * SIGQUIT does) and exits. Resolves when all have exited.
   */
  stop(options: { timeout?: number | null } = {}): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    const timeout = options.timeout === undefined ? this.options.closeTimeout : options.timeout;
    this.#stopping = (async () => {
      this.#state = 'stopping';
      this.#shutdownCommon();
      for (const worker of [...this.#live]) this.#retire(worker, 'the pool is stopping', timeout);
      await Promise.all([...this.#live].map((worker) => worker.exited));
      this.#state = 'stopped';
      this.#closeSinks();
      this.emit('stopped');
    })();
    return this.#stopping;
  }

  /** Immediate stop: every worker is killed (SIGKILL), the sockets closed. Requests in progress fail. */
  async kill(): Promise<void> {
    this.#state = 'stopping';
    this.#shutdownCommon();
    for (const worker of this.#live) worker.child.kill('SIGKILL');
    await Promise.all([...this.#live].map((worker) => worker.exited));
    this.#state = 'stopped';
    this.#closeSinks();
    this.emit('stopped');
  }

  #shutdownCommon(): void {
    if (this.#maintenance !== null) clearInterval(this.#maintenance);
    this.#maintenance = null;
    for (const slot of this.#slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
    }
    for (const listener of this.#listeners) listener.close();
    // Connections the master accepted for an ondemand pool and could not place: a worker still serving takes them.
    const serving = this.#servingWorkers();
    for (const socket of this.#pending.splice(0)) {
      if (serving[0] !== undefined) this.#handOver(serving[0], socket);
      else socket.destroy();
    }
  }

  #closeSinks(): void {
    this.#errorSink.flush();
    if (this.#ownsErrorSink) this.#errorSink.close();
    this.#slowSink?.close();
  }

  /** SIGUSR1: the error log and slow log are reopened here, the access log in every worker. */
  reopenLogs(): void {
    this.#errorSink.reopen();
    this.#slowSink?.reopen();
    for (const worker of this.#live) worker.send({ type: 'reopen-logs' });
    this.log.info('log files reopened');
  }

  // ---- status ----

  #report(worker: WorkerProcess): Promise<WorkerReport | null> {
    if (worker.state === 'starting' || worker.state === 'exited' || !worker.child.connected) return Promise.resolve(null);
    const id = ++this.#reportId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        worker.reports.delete(id);
        resolve(null);
      }, REPORT_WAIT_MS);
      worker.reports.set(id, (report) => {
        clearTimeout(timer);
        resolve(report);
      });
      worker.send({ type: 'report', id });
    });
  }

  /** The pool's status, every live worker asked for its figures (the last heartbeat stands in for one that does not answer in time). */
  async status(): Promise<PoolStatus> {
    const now = Date.now();
    const o = this.options;
    const workers = [...this.#live].filter((worker) => worker.state !== 'exited').sort((a, b) => a.slot.index - b.slot.index || a.startedAt - b.startedAt);
    const reports = await Promise.all(workers.map((worker) => this.#report(worker)));
    let length: number | null = null;
    let size: number | null = null;
    for (const listener of this.#listeners) {
      const queue = await listener.queue();
      if (queue.length !== null) length = (length ?? 0) + queue.length;
      if (queue.size !== null) size = Math.max(size ?? 0, queue.size);
    }
    if (length !== null) this.#maxListenQueue = Math.max(this.#maxListenQueue ?? 0, length);
    const statuses: WorkerStatus[] = workers.map((worker, index) => {
      const report = reports[index] ?? null;
      const stats = report ?? worker.stats;
      const current = report?.current ?? [];
      const longest = current.reduce<(typeof current)[number] | null>((a, b) => (a === null || b.duration > a.duration ? b : a), null);
      const shown = longest ?? stats?.lastRequest ?? null;
      const active = stats?.activeRequests ?? 0;
      const state: WorkerStatus['state'] =
        worker.state === 'starting' ? 'Starting' : worker.state === 'draining' ? 'Draining' : report === null && worker.state === 'ready' && worker.stats !== null && now - worker.lastHeartbeat > o.heartbeatInterval * 3 ? 'Stuck' : active > 0 ? 'Running' : 'Idle';
      return {
        pid: worker.pid,
        slot: worker.slot.index,
        generation: worker.generation,
        state,
        startTime: Math.floor(worker.startedAt / 1000),
        startSince: Math.floor((now - worker.startedAt) / 1000),
        requests: stats?.requestsFinished ?? 0,
        activeRequests: active,
        maxActiveRequests: stats?.maxActiveRequests ?? 0,
        connections: stats?.connections ?? 0,
        restarts: worker.slot.restarts,
        requestDuration: Math.round((shown?.duration ?? 0) * 1000),
        requestMethod: shown?.method ?? '-',
        requestUri: shown?.uri ?? '-',
        contentLength: shown?.contentLength ?? 0,
        user: shown?.user ?? '-',
        script: shown?.script ?? '-',
        lastRequestCpu: stats?.lastRequest?.cpu ?? 0,
        lastRequestMemory: stats?.lastRequest?.memory ?? 0,
        current,
        eventLoopUtilization: stats?.elu ?? 0,
        cpu: stats?.cpu ?? 0,
        rss: stats?.rss ?? 0,
        heapUsed: stats?.heapUsed ?? 0,
        load: worker.state === 'ready' ? workerLoad(stats?.elu ?? 0, active, o.workerConcurrency) : 0,
        stale: report === null && worker.state !== 'starting',
      };
    });
    const serving = statuses.filter((worker) => worker.state === 'Idle' || worker.state === 'Running');
    const activeRequests = statuses.reduce((sum, worker) => sum + worker.activeRequests, 0);
    const activeProcesses = statuses.filter((worker) => worker.activeRequests > 0).length;
    this.#maxActiveRequests = Math.max(this.#maxActiveRequests, activeRequests);
    this.#maxActiveProcesses = Math.max(this.#maxActiveProcesses, activeProcesses);
    const activeCapacity = serving.reduce((sum, worker) => sum + worker.load, 0);
    return {
      pool: o.poolName,
      processManager: o.pm,
      startTime: Math.floor(this.#startTime / 1000),
      startSince: Math.floor((now - this.#startTime) / 1000),
      acceptedConnections: this.#exitedAccepted + statuses.reduce((sum, _worker, index) => sum + ((reports[index] ?? workers[index]!.stats)?.connectionsAccepted ?? 0), 0),
      requests: this.#exitedRequests + statuses.reduce((sum, worker) => sum + worker.requests, 0),
      activeRequests,
      maxActiveRequests: this.#maxActiveRequests,
      listenQueue: length,
      maxListenQueue: length === null ? null : this.#maxListenQueue,
      listenQueueLen: size,
      idleProcesses: statuses.length - activeProcesses,
      activeProcesses,
      totalProcesses: statuses.length,
      maxActiveProcesses: this.#maxActiveProcesses,
      maxChildrenReached: this.#maxChildrenReached,
      slowRequests: this.#slowRequests,
      idleCapacity: serving.length - activeCapacity,
      activeCapacity,
      workers: statuses,
    };
  }
}

function emptyStats(pid: number): WorkerStats {
  return {
    pid,
    at: Date.now(),
    connectionsAccepted: 0,
    connections: 0,
    requestsStarted: 0,
    requestsFinished: 0,
    activeRequests: 0,
    maxActiveRequests: 0,
    elu: 0,
    cpu: 0,
    rss: 0,
    heapUsed: 0,
    idleSince: null,
    lastRequest: null,
  };
}

/** Creates a pool (not started): `await createPool(options).start()`. */
export function createPool(options: PoolOptions): Pool {
  return new Pool(options);
}
