// The messages master and workers exchange over the IPC channel, and the events a worker's watchdog thread writes to its pipe.

import type { LogLevel } from '../log.js';
import type { Limits } from '../server/options.js';
import type { PoolStatus } from './status.js';

/** The server options a worker gets from the master: only what survives JSON (no logger). */
export interface WorkerServerOptions extends Partial<Limits> {
  multiplex?: boolean;
  tuneMalloc?: boolean;
  roles?: number[];
  allowedClients?: string[];
  useWebServerAddrs?: boolean;
}

/** What a worker process runs: a module exporting `setupWorker(context)`, and the JSON options passed to it. */
export interface WorkerSetupSpec {
  /** Absolute path (or file: URL) of the setup module. */
  module: string;
  options?: unknown;
}

/** Everything a worker needs to know, sent once after it starts. */
export interface WorkerSettings {
  poolName: string;
  slot: number;
  generation: number;
  setup: WorkerSetupSpec;
  server: WorkerServerOptions;
  logLevel: LogLevel;
  /** Access log file (each worker appends to it), or null for none. */
  accessLog: string | null;
  accessFormat: string;
  statusPath: string | null;
  pingPath: string | null;
  pingResponse: string;
  /** Requests after which the worker asks to be recycled (0: never). */
  maxRequests: number;
  /** RSS in bytes above which the worker asks to be recycled (0: never). */
  maxMemory: number;
  /** The event-loop stall after which the watchdog kills the worker (0: off). */
  requestTimeout: number;
  /** The request age after which the watchdog logs the request with a stack (0: off). */
  slowlogTimeout: number;
  /** Milliseconds between heartbeats. */
  heartbeatInterval: number;
  listenBacklog: number;
  /** Listening sockets the master will send (0 when the master accepts and sends connections). */
  listenerCount: number;
  /** How long a drain may take when the master is gone and cannot say. */
  closeTimeout: number;
  /** Requests a worker is meant to carry at once: its load is max(event-loop utilisation, active / this). */
  concurrency: number;
}

/** A request as the status page shows it. */
export interface RequestInfo {
  method: string;
  uri: string;
  /** Milliseconds since BEGIN_REQUEST (running) or from BEGIN_REQUEST to END_REQUEST (finished). */
  duration: number;
  contentLength: number;
  user: string;
  script: string;
}

/** A finished request, with what the worker measured around it. */
export interface LastRequestInfo extends RequestInfo {
  /** When it ended (epoch ms). */
  endedAt: number;
  /** The worker's CPU use (percent of one core) over the heartbeat period in which it ended. */
  cpu: number;
  /** The worker's resident set size (bytes) at the first heartbeat after it ended. */
  memory: number;
}

/** A worker's figures, sent with every heartbeat and in reports. */
export interface WorkerStats {
  pid: number;
  /** When these figures were taken (epoch ms). */
  at: number;
  connectionsAccepted: number;
  connections: number;
  requestsStarted: number;
  /** Requests that ended (END_REQUEST sent or connection lost): "requests" on the status page. */
  requestsFinished: number;
  activeRequests: number;
  maxActiveRequests: number;
  /** Event-loop utilisation (0-1) over the last heartbeat period. */
  elu: number;
  /** CPU use (percent of one core) over the last heartbeat period. */
  cpu: number;
  rss: number;
  heapUsed: number;
  /** When the worker last became idle (no request in progress), epoch ms; null while busy. */
  idleSince: number | null;
  lastRequest: LastRequestInfo | null;
}

/** A worker's answer to a report request: its figures plus the requests in progress. */
export interface WorkerReport extends WorkerStats {
  current: RequestInfo[];
}

export type ToWorker =
  | { type: 'init'; settings: WorkerSettings }
  /** Comes with a listening-socket handle to accept on (shared accept). */
  | { type: 'listen'; index: number; count: number }
  /** Comes with an accepted socket (the master accepts for ondemand pools). */
  | { type: 'connection' }
  /** Stop accepting, finish what is in progress, exit. timeout null: no limit (SIGQUIT). */
  | { type: 'drain'; timeout: number | null; reason: string }
  | { type: 'report'; id: number }
  | { type: 'status'; id: number; status: PoolStatus | null; error?: string }
  | { type: 'reopen-logs' };

export type FromWorker =
  /** The app module is loaded and the handler built. */
  | { type: 'loaded'; description: string }
  /** Accepting on every listener it was given. */
  | { type: 'ready' }
  | { type: 'failed'; code: string; message: string }
  | { type: 'heartbeat'; stats: WorkerStats }
  | { type: 'report'; id: number; report: WorkerReport }
  | { type: 'status-request'; id: number }
  /** The worker reached maxRequests or maxMemory: start its replacement, then drain it. */
  | { type: 'recycle'; reason: string }
  /** The last figures, just before a drained worker exits. */
  | { type: 'drained'; stats: WorkerStats };

/** What the watchdog thread writes, one JSON object per line, to the pipe on the worker's fd 4. */
export type WatchdogEvent =
  | {
      type: 'slow';
      pid: number;
      method: string;
      uri: string;
      /** Milliseconds the request had been running when it was logged. */
      duration: number;
      /** The main thread's JavaScript stack at that moment, one frame per line; null when not blocked or not readable. */
      stack: string | null;
      /** Why there is no stack, when there is none. */
      note: string | null;
    }
  | {
      type: 'timeout';
      pid: number;
      /** How long the event loop had been blocked. */
      blocked: number;
      requests: Array<{ method: string; uri: string; duration: number; answered: boolean }>;
      stack: string | null;
      note: string | null;
    };

/** The file descriptor of the watchdog pipe in a worker (stdio: ignore, pipe, pipe, ipc, pipe). */
export const WATCHDOG_FD = 4;
