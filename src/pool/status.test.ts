// Tests for the status page: format negotiation (query switches, Accept) and each layout's fields and names.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { negotiateStatus, renderStatus, type PoolStatus, type WorkerStatus } from './status.js';

const worker: WorkerStatus = {
  pid: 4242,
  slot: 0,
  generation: 1,
  state: 'Running',
  startTime: 1_700_000_000,
  startSince: 60,
  requests: 10,
  activeRequests: 1,
  maxActiveRequests: 3,
  connections: 2,
  restarts: 2,
  requestDuration: 1500,
  requestMethod: 'GET',
  requestUri: '/slow?x="1"',
  contentLength: 0,
  user: '-',
  script: '-',
  lastRequestCpu: 1.234,
  lastRequestMemory: 50_000_000,
  current: [{ method: 'GET', uri: '/slow?x="1"', duration: 1.5, contentLength: 0, user: '-', script: '-' }],
  eventLoopUtilization: 0.1234,
  cpu: 5,
  rss: 60_000_000,
  heapUsed: 9_000_000,
  load: 0.1234,
  stale: false,
};

const status: PoolStatus = {
  pool: 'www',
  processManager: 'dynamic',
  startTime: 1_700_000_000,
  startSince: 61,
  acceptedConnections: 20,
  requests: 30,
  activeRequests: 1,
  maxActiveRequests: 4,
  listenQueue: 0,
  maxListenQueue: 2,
  listenQueueLen: 511,
  idleProcesses: 0,
  activeProcesses: 1,
  totalProcesses: 1,
  maxActiveProcesses: 1,
  maxChildrenReached: 1,
  slowRequests: 5,
  idleCapacity: 0.8766,
  activeCapacity: 0.1234,
  workers: [worker],
};

test('the query switches choose (php-fpm: ?json, ?xml, ?html, ?openmetrics, ?full), else the Accept header, else text', () => {
  assert.deepEqual(negotiateStatus('json&full', ''), { format: 'json', full: true });
  assert.deepEqual(negotiateStatus('full;xml', ''), { format: 'xml', full: true });
  assert.deepEqual(negotiateStatus('prometheus', 'application/json'), { format: 'prometheus', full: false });
  assert.deepEqual(negotiateStatus('', 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5'), { format: 'openmetrics', full: false });
  assert.deepEqual(negotiateStatus('', 'text/plain;version=0.0.4'), { format: 'prometheus', full: false });
  assert.deepEqual(negotiateStatus('full', 'text/html,application/xhtml+xml'), { format: 'html', full: true });
  assert.deepEqual(negotiateStatus('', '*/*'), { format: 'text', full: false });
});

test("text: php-fpm's names and alignment, then nodefpm's; ?full adds each worker", () => {
  const text = renderStatus(status, 'text', true);
  assert.match(text, /^pool:                 www\nprocess manager:      dynamic\nstart time:           \d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\nstart since:          61\naccepted conn:        20\n/);
  assert.match(text, /\nmax children reached: 1\nslow requests:        5\nrequests:             30\n/);
  assert.match(text, /\n\*{24}\npid:                  4242\nstate:                Running\n/);
  assert.match(text, /\nevent loop utilization: 0\.123\n/, 'a long name still gets a space');
  assert.match(text, /\ncurrent request:      GET \/slow\?x="1" \(2 ms\)\n/);
  assert.doesNotMatch(renderStatus(status, 'text', false), /pid:/);
});

test("json: php-fpm's keys (processes with ?full), durations in microseconds", () => {
  const json = JSON.parse(renderStatus(status, 'json', true)) as Record<string, unknown> & { processes: Array<Record<string, unknown>> };
  assert.equal(json['accepted conn'], 20);
  assert.equal(json['start time'], 1_700_000_000);
  assert.equal(json['listen queue len'], 511);
  assert.equal(json['idle capacity'], 0.88);
  assert.equal(json.processes[0]!['request uri'], '/slow?x="1"');
  assert.equal(json.processes[0]!['request duration'], 1500);
  assert.equal(json.processes[0]!.restarts, 2);
  assert.deepEqual(json.processes[0]!['current requests'], [{ method: 'GET', uri: '/slow?x="1"', duration: 1500, 'content length': 0 }]);
  assert.equal((JSON.parse(renderStatus({ ...status, listenQueue: null }, 'json', false)) as Record<string, unknown>)['listen queue'], -1, 'unknown is -1');
});

test('xml and html escape what they show', () => {
  assert.match(renderStatus(status, 'xml', true), /<request-uri>\/slow\?x=&#34;1&#34;<\/request-uri>/);
  assert.match(renderStatus(status, 'html', true), /GET \/slow\?x=&#34;1&#34; \(2 ms\)/);
});

test('prometheus and openmetrics: HELP and TYPE per family, counters with _total, a pool label, per-worker pid and slot; # EOF', () => {
  const prometheus = renderStatus(status, 'prometheus', false);
  assert.match(prometheus, /^# HELP nodefpm_accepted_connections Connections accepted by the pool\.\n# TYPE nodefpm_accepted_connections counter\nnodefpm_accepted_connections_total\{pool="www"\} 20$/m);
  assert.match(prometheus, /^nodefpm_listen_queue\{pool="www"\} 0$/m);
  assert.match(prometheus, /^nodefpm_worker_restarts_total\{pool="www",pid="4242",slot="0"\} 2$/m);
  assert.match(prometheus, /^nodefpm_worker_cpu_ratio\{pool="www",pid="4242",slot="0"\} 0\.05$/m);
  assert.doesNotMatch(prometheus, /# EOF/);
  assert.doesNotMatch(renderStatus({ ...status, listenQueue: null }, 'prometheus', false), /^nodefpm_listen_queue\{/m, 'an unknown value is left out');
  assert.match(renderStatus(status, 'openmetrics', false), /\n# EOF\n$/);
  assert.match(renderStatus({ ...status, pool: 'a"b' }, 'openmetrics', false), /pool="a\\"b"/);
});
