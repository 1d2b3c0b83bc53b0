// The status page: the pool's and each worker's figures, in php-fpm's text, JSON, XML and HTML layouts and in Prometheus/OpenMetrics.

import type { RequestInfo } from './messages.js';

/** A worker as the status page shows it. Times are epoch seconds, durations microseconds (as php-fpm). */
export interface WorkerStatus {
  pid: number;
  /** The worker's place in the pool; a replacement takes the slot of the worker it replaces. */
  slot: number;
  /** Which reload the worker belongs to (0 at start, +1 per reload). */
  generation: number;
  /** Starting, Idle (no request in progress), Running, Draining (finishing its requests before it exits), Stuck (no heartbeat). */
  state: 'Starting' | 'Idle' | 'Running' | 'Draining' | 'Stuck';
  startTime: number;
  startSince: number;
  /** Requests this worker finished. */
  requests: number;
  activeRequests: number;
  maxActiveRequests: number;
  connections: number;
  /** How many workers ran in this slot before this one (crashes, recycling, timeouts, reloads). */
  restarts: number;
  /** The longest-running request in progress, else the last one finished (php-fpm's "request ..." fields). */
  requestDuration: number;
  requestMethod: string;
  requestUri: string;
  contentLength: number;
  user: string;
  script: string;
  /** The worker's CPU use (percent of a core) in the heartbeat period of its last finished request. */
  lastRequestCpu: number;
  /** The worker's resident memory (bytes) after its last finished request. */
  lastRequestMemory: number;
  /** Every request in progress. */
  current: RequestInfo[];
  /** Event-loop utilisation (0-1), CPU percent, resident and heap memory at the last report. */
  eventLoopUtilization: number;
  cpu: number;
  rss: number;
  heapUsed: number;
  /** max(event-loop utilisation, active requests / concurrency target), 0-1: the share of the worker's capacity in use. */
  load: number;
  /** True when the worker did not answer the status request in time and its last heartbeat is shown. */
  stale: boolean;
}

export interface PoolStatus {
  pool: string;
  processManager: 'static' | 'dynamic' | 'ondemand';
  startTime: number;
  startSince: number;
  /** Connections accepted by all workers since the pool started. */
  acceptedConnections: number;
  /** Requests finished by all workers since the pool started. */
  requests: number;
  activeRequests: number;
  /** Highest number of requests in progress at once seen in the pool (sampled at heartbeats). */
  maxActiveRequests: number;
  /** Connections waiting in the kernel's accept queue; null where it cannot be read. */
  listenQueue: number | null;
  maxListenQueue: number | null;
  /** The accept queue's size (the listen backlog). */
  listenQueueLen: number | null;
  /** Workers with no request in progress / with at least one / all. */
  idleProcesses: number;
  activeProcesses: number;
  totalProcesses: number;
  maxActiveProcesses: number;
  /** Times the pool needed another worker and was at --workers already. */
  maxChildrenReached: number;
  slowRequests: number;
  /** Spare and used capacity, in workers: sum of (1 - load) and of load over the workers. */
  idleCapacity: number;
  activeCapacity: number;
  workers: WorkerStatus[];
}

export type StatusFormat = 'text' | 'json' | 'xml' | 'html' | 'openmetrics' | 'prometheus';

/** What a status request asks for: its query switches (php-fpm's ?json, ?full, ...), else its Accept header. */
export function negotiateStatus(query: string, accept: string): { format: StatusFormat; full: boolean } {
  const switches = new Set(
    query
      .split(/[&;]/)
      .map((part) => decodeURIComponent(part.split('=')[0] ?? '').toLowerCase())
      .filter((part) => part !== ''),
  );
  const full = switches.has('full');
  for (const format of ['json', 'xml', 'html', 'openmetrics', 'prometheus', 'text'] as const) {
    if (switches.has(format)) return { format, full };
  }
  const types = accept.toLowerCase();
  if (types.includes('application/openmetrics-text')) return { format: 'openmetrics', full };
  if (types.includes('application/json')) return { format: 'json', full };
  if (/text\/plain\s*;\s*version=0\.0\.4/.test(types)) return { format: 'prometheus', full };
  if (types.includes('application/xml') || types.includes('text/xml')) return { format: 'xml', full };
  if (types.includes('text/html')) return { format: 'html', full };
  return { format: 'text', full };
}

export const CONTENT_TYPES: Record<StatusFormat, string> = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json',
  xml: 'text/xml; charset=utf-8',
  html: 'text/html; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
};

/** php-fpm's time layout on its status page: 01/Jan/2024:10:00:00 +0000. */
function clfTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (value: number): string => String(value).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const zone = `${offset >= 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`;
  return (
    `${pad(date.getDate())}/${months[date.getMonth()]}/${date.getFullYear()}:` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`
  );
}

/** The pool's fields, in php-fpm's order and names, then nodefpm's. Values as the text layout shows them. */
function poolFields(status: PoolStatus, timeStyle: 'text' | 'number'): Array<[string, string | number]> {
  const optional = (value: number | null): string | number => (value === null ? (timeStyle === 'text' ? '-' : -1) : value);
  return [
    ['pool', status.pool],
    ['process manager', status.processManager],
    ['start time', timeStyle === 'text' ? clfTime(status.startTime) : status.startTime],
    ['start since', status.startSince],
    ['accepted conn', status.acceptedConnections],
    ['listen queue', optional(status.listenQueue)],
    ['max listen queue', optional(status.maxListenQueue)],
    ['listen queue len', optional(status.listenQueueLen)],
    ['idle processes', status.idleProcesses],
    ['active processes', status.activeProcesses],
    ['total processes', status.totalProcesses],
    ['max active processes', status.maxActiveProcesses],
    ['max children reached', status.maxChildrenReached],
    ['slow requests', status.slowRequests],
    ['requests', status.requests],
    ['active requests', status.activeRequests],
    ['max active requests', status.maxActiveRequests],
    ['idle capacity', round(status.idleCapacity)],
    ['active capacity', round(status.activeCapacity)],
  ];
}

function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function workerFields(worker: WorkerStatus, timeStyle: 'text' | 'number'): Array<[string, string | number]> {
  return [
    ['pid', worker.pid],
    ['state', worker.state],
    ['start time', timeStyle === 'text' ? clfTime(worker.startTime) : worker.startTime],
    ['start since', worker.startSince],
    ['requests', worker.requests],
    ['request duration', worker.requestDuration],
    ['request method', worker.requestMethod],
    ['request URI', worker.requestUri],
    ['content length', worker.contentLength],
    ['user', worker.user],
    ['script', worker.script],
    ['last request cpu', round(worker.lastRequestCpu)],
    ['last request memory', worker.lastRequestMemory],
    ['slot', worker.slot],
    ['generation', worker.generation],
    ['restarts', worker.restarts],
    ['active requests', worker.activeRequests],
    ['max active requests', worker.maxActiveRequests],
    ['connections', worker.connections],
    ['event loop utilization', round(worker.eventLoopUtilization, 3)],
    ['cpu', round(worker.cpu)],
    ['memory', worker.rss],
    ['heap used', worker.heapUsed],
    ['load', round(worker.load, 3)],
  ];
}

function describeRequest(request: RequestInfo): string {
  return `${request.method} ${request.uri} (${Math.round(request.duration)} ms)`;
}

function renderText(status: PoolStatus, full: boolean): string {
  // php-fpm aligns values at column 22; a longer name still gets a space.
  const line = ([name, value]: [string, string | number]): string => `${`${name}: `.padEnd(22)}${value}`;
  const out = poolFields(status, 'text').map(line);
  if (full) {
    for (const worker of status.workers) {
      out.push('', '************************', ...workerFields(worker, 'text').map(line));
      for (const request of worker.current) out.push(line(['current request', describeRequest(request)]));
      if (worker.stale) out.push(line(['stale', 'yes: no answer in time, last heartbeat shown']));
    }
  }
  return `${out.join('\n')}\n`;
}

function jsonKey(name: string): string {
  // php-fpm's JSON uses the text layout's names ("accepted conn"), with "request uri" in lower case.
  return name === 'request URI' ? 'request uri' : name;
}

function renderJson(status: PoolStatus, full: boolean): string {
  const object: Record<string, unknown> = {};
  for (const [name, value] of poolFields(status, 'number')) object[jsonKey(name)] = value;
  if (full) {
    object.processes = status.workers.map((worker) => {
      const entry: Record<string, unknown> = {};
      for (const [name, value] of workerFields(worker, 'number')) entry[jsonKey(name)] = value;
      entry['current requests'] = worker.current.map((request) => ({
        method: request.method,
        uri: request.uri,
        duration: Math.round(request.duration * 1000),
        'content length': request.contentLength,
      }));
      entry.stale = worker.stale;
      return entry;
    });
  }
  return `${JSON.stringify(object)}\n`;
}

function escapeXml(value: string | number): string {
  return String(value).replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function renderXml(status: PoolStatus, full: boolean): string {
  const tag = (name: string): string => name.toLowerCase().replaceAll(' ', '-');
  const fields = (list: Array<[string, string | number]>, indent: string): string =>
    list.map(([name, value]) => `${indent}<${tag(name)}>${escapeXml(value)}</${tag(name)}>`).join('\n');
  let out = `<?xml version="1.0" ?>\n<status>\n${fields(poolFields(status, 'number'), '')}\n`;
  if (full) {
    out += '<processes>\n';
    for (const worker of status.workers) out += `<process>\n${fields(workerFields(worker, 'number'), '')}\n</process>\n`;
    out += '</processes>\n';
  }
  return `${out}</status>\n`;
}

function renderHtml(status: PoolStatus, full: boolean): string {
  const rows = (list: Array<[string, string | number]>): string =>
    list.map(([name, value]) => `<tr><th>${escapeXml(name)}</th><td>${escapeXml(value)}</td></tr>`).join('\n');
  let out =
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>nodefpm status</title></head><body>\n' +
    `<table border="1">\n${rows(poolFields(status, 'text'))}\n</table>\n`;
  if (full && status.workers.length > 0) {
    const names = workerFields(status.workers[0]!, 'text').map(([name]) => name);
    out += `<table border="1">\n<tr>${names.map((name) => `<th>${escapeXml(name)}</th>`).join('')}<th>current requests</th></tr>\n`;
    for (const worker of status.workers) {
      const cells = workerFields(worker, 'text').map(([, value]) => `<td>${escapeXml(value)}</td>`).join('');
      out += `<tr>${cells}<td>${worker.current.map((request) => escapeXml(describeRequest(request))).join('<br>')}</td></tr>\n`;
    }
    out += '</table>\n';
  }
  return `${out}</body></html>\n`;
}

interface Metric {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  samples: Array<{ labels: Record<string, string | number>; value: number }>;
}

function escapeLabel(value: string | number): string {
  return String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function metrics(status: PoolStatus): Metric[] {
  const pool = { pool: status.pool };
  const one = (name: string, type: Metric['type'], help: string, value: number | null): Metric[] =>
    value === null ? [] : [{ name, type, help, samples: [{ labels: pool, value }] }];
  const perWorker = (name: string, type: Metric['type'], help: string, value: (worker: WorkerStatus) => number): Metric => ({
    name,
    type,
    help,
    samples: status.workers.map((worker) => ({ labels: { ...pool, pid: worker.pid, slot: worker.slot }, value: value(worker) })),
  });
  return [
    ...one('nodefpm_up', 'gauge', `Whether pool ${status.pool} (pm ${status.processManager}) could be reached.`, 1),
    ...one('nodefpm_start_time_seconds', 'gauge', 'When the pool started, in seconds since the epoch.', status.startTime),
    ...one('nodefpm_start_since_seconds', 'gauge', 'Seconds since the pool started.', status.startSince),
    ...one('nodefpm_accepted_connections', 'counter', 'Connections accepted by the pool.', status.acceptedConnections),
    ...one('nodefpm_requests', 'counter', 'Requests finished by the pool.', status.requests),
    ...one('nodefpm_active_requests', 'gauge', 'Requests in progress.', status.activeRequests),
    ...one('nodefpm_max_active_requests', 'gauge', 'Most requests in progress at once since the pool started (sampled).', status.maxActiveRequests),
    ...one('nodefpm_listen_queue', 'gauge', 'Connections waiting in the accept queue.', status.listenQueue),
    ...one('nodefpm_max_listen_queue', 'gauge', 'Most connections seen waiting in the accept queue.', status.maxListenQueue),
    ...one('nodefpm_listen_queue_length', 'gauge', 'Size of the accept queue (listen backlog).', status.listenQueueLen),
    ...one('nodefpm_idle_processes', 'gauge', 'Workers with no request in progress.', status.idleProcesses),
    ...one('nodefpm_active_processes', 'gauge', 'Workers with requests in progress.', status.activeProcesses),
    ...one('nodefpm_total_processes', 'gauge', 'Workers.', status.totalProcesses),
    ...one('nodefpm_max_active_processes', 'gauge', 'Most workers busy at once since the pool started.', status.maxActiveProcesses),
    ...one('nodefpm_max_children_reached', 'counter', 'Times the pool wanted another worker but had --workers already.', status.maxChildrenReached),
    ...one('nodefpm_slow_requests', 'counter', 'Requests that ran longer than --slowlog-timeout.', status.slowRequests),
    ...one('nodefpm_idle_capacity', 'gauge', 'Spare capacity, in workers: the sum of (1 - load).', round(status.idleCapacity, 3)),
    ...one('nodefpm_active_capacity', 'gauge', 'Capacity in use, in workers: the sum of load.', round(status.activeCapacity, 3)),
    perWorker('nodefpm_worker_requests', 'counter', 'Requests the worker finished.', (w) => w.requests),
    perWorker('nodefpm_worker_active_requests', 'gauge', 'Requests in progress in the worker.', (w) => w.activeRequests),
    perWorker('nodefpm_worker_restarts', 'counter', 'Workers that ran in this slot before this one.', (w) => w.restarts),
    perWorker('nodefpm_worker_start_time_seconds', 'gauge', 'When the worker started, in seconds since the epoch.', (w) => w.startTime),
    perWorker('nodefpm_worker_event_loop_utilization', 'gauge', 'Event-loop utilisation over the last heartbeat period.', (w) => round(w.eventLoopUtilization, 4)),
    perWorker('nodefpm_worker_cpu_ratio', 'gauge', 'CPU use over the last heartbeat period, in cores.', (w) => round(w.cpu / 100, 4)),
    perWorker('nodefpm_worker_resident_memory_bytes', 'gauge', 'Resident set size.', (w) => w.rss),
    perWorker('nodefpm_worker_heap_used_bytes', 'gauge', 'V8 heap in use.', (w) => w.heapUsed),
    perWorker('nodefpm_worker_load', 'gauge', 'max(event-loop utilisation, active requests / concurrency target).', (w) => round(w.load, 4)),
  ];
}

function renderMetrics(status: PoolStatus, openMetrics: boolean): string {
  const out: string[] = [];
  for (const metric of metrics(status)) {
    out.push(`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} ${metric.type}`);
    const sampleName = metric.type === 'counter' ? `${metric.name}_total` : metric.name;
    for (const sample of metric.samples) {
      const labels = Object.entries(sample.labels)
        .map(([name, value]) => `${name}="${escapeLabel(value)}"`)
        .join(',');
      out.push(`${sampleName}{${labels}} ${sample.value}`);
    }
  }
  if (openMetrics) out.push('# EOF');
  return `${out.join('\n')}\n`;
}

/** The body of a status response in `format`; `full` adds every worker (always there in the metrics formats). */
export function renderStatus(status: PoolStatus, format: StatusFormat, full: boolean): string {
  switch (format) {
    case 'text':
      return renderText(status, full);
    case 'json':
      return renderJson(status, full);
    case 'xml':
      return renderXml(status, full);
    case 'html':
      return renderHtml(status, full);
    case 'openmetrics':
      return renderMetrics(status, true);
    case 'prometheus':
      return renderMetrics(status, false);
  }
}
