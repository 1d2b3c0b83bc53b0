// The process manager: a PHP-FPM-style pool of worker processes serving FastCGI on shared sockets (createPool), and what it is made of.

export { Pool, createPool, type ExitReason, type WorkerInfo } from './pool.js';
export { POOL_MODES, resolvePoolOptions, type PoolMode, type PoolOptions, type ResolvedPoolOptions } from './options.js';
export type { WorkerApp, WorkerSetupContext, SetupWorker } from './worker.js';
export type { WorkerServerOptions, WorkerSetupSpec, RequestInfo } from './messages.js';
export { renderStatus, negotiateStatus, CONTENT_TYPES, type PoolStatus, type StatusFormat, type WorkerStatus } from './status.js';
export { ACCESS_FORMATS, accessFormatter, type AccessRecord } from './access-log.js';
export { LogFile, stderrSink, type LogSink } from './log-file.js';
export { workerLoad, spareCapacity, dynamicDecision, crashBackoff, CrashWindow } from './scaler.js';
