// Real-socket tests of aborts: FCGI_ABORT_REQUEST before and during the handler, abortTimeout, dropped connections, and multiplexed neighbours.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodefpmError, isNodefpmError, type Request } from '../src/index.js';
import { ProtocolStatus, RecordType, encodeParams, encodeRecord } from '../src/protocol/index.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { startServer, type TestServer } from './helpers/servers.js';

const WAIT = 10_000;
const OPTS = { timeout: 60_000 };

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

function endCount(peer: RawPeer, requestId: number): number {
  return peer.records.filter((r) => r.type === RecordType.EndRequest && r.requestId === requestId).length;
}

/** Waits until `condition` holds, polling (for server-side counters). */
async function eventually(condition: () => boolean, what: string, timeout = WAIT): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function signalAborted(req: Request): Promise<unknown> {
  return new Promise((resolve) => {
    if (req.signal.aborted) resolve(req.signal.reason);
    else req.signal.addEventListener('abort', () => resolve(req.signal.reason), { once: true });
  });
}

test('FCGI_ABORT_REQUEST while the handler awaits: signal aborted, pending read rejects, one END_REQUEST after the handler ends', OPTS, async () => {
  const observed = deferred<{ aborted: boolean; reason: unknown; readError: unknown; abortEvents: number }>();
  const release = deferred();
  const started = deferred();
  let finished = false;
  const app = await startServer(async (req, res) => {
    let abortEvents = 0;
    req.signal.addEventListener('abort', () => abortEvents++);
    started.resolve();
    let readError: unknown = null;
    try {
      await req.body.read(); // CONTENT_LENGTH says 10 and nothing arrives: this waits.
    } catch (error) {
      readError = error;
    }
    observed.resolve({ aborted: req.signal.aborted, reason: req.signal.reason, readError, abortEvents });
    await release.promise;
    res.end('too late to matter');
    finished = true;
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendBegin(1);
    peer.sendParams(1, requestParams('POST', '/upload', { CONTENT_LENGTH: '10' }));
    await started.promise;
    await sleep(20);
    peer.sendAbort(1);
    const seen = await observed.promise;
    assert.equal(seen.aborted, true);
    assert.equal(seen.abortEvents, 1);
    assert.ok(isNodefpmError(seen.reason, 'NODEFPM_REQUEST_ABORTED'), `signal.reason is NODEFPM_REQUEST_ABORTED: ${String(seen.reason)}`);
    assert.ok(seen.reason instanceof NodefpmError, 'the reason is a NodefpmError');
    assert.ok(isNodefpmError(seen.readError, 'NODEFPM_REQUEST_ABORTED'), `the pending body read rejects: ${String(seen.readError)}`);

    // The handler has not ended: no END_REQUEST yet.
    await sleep(150);
    assert.equal(endCount(peer, 1), 0, 'END_REQUEST waits for the handler');
    release.resolve();
    const response = await peer.waitForEnd(1, WAIT);
    assert.ok(finished, 'END_REQUEST came after the handler ended');
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    assert.equal(response.stdout.length, 0, 'output written after the abort is dropped');
    await sleep(100);
    assert.equal(endCount(peer, 1), 1, 'exactly one END_REQUEST');
    assert.equal(app.server.activeRequests, 0);
    assert.equal(await peer.staysOpen(20), true, 'keep-conn connection stays open after an abort');
  } finally {
    peer.close();
    await app.close();
  }
});

test('a handler that ends in reaction to the abort signal gets its END_REQUEST sent once', OPTS, async () => {
  const app = await startServer(async (req, res) => {
    await signalAborted(req);
    res.end();
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/wait-for-abort'));
    await sleep(50);
    peer.sendAbort(1);
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    peer.sendAbort(1); // a second abort for a request already ended is ignored
    await sleep(100);
    assert.equal(endCount(peer, 1), 1);
  } finally {
    peer.close();
    await app.close();
  }
});

test('ABORT before PARAMS ends: END_REQUEST at once and the handler never runs', OPTS, async () => {
  let calls = 0;
  const app = await startServer((_req, res) => {
    calls++;
    res.end('ran');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    const params = encodeParams(1, requestParams('GET', '/never'));
    const firstRecord = params.subarray(0, params.length - 8); // without the empty terminator
    peer.sendBegin(1);
    peer.send(firstRecord);
    peer.sendAbort(1);
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    assert.equal(response.stdout.length, 0);
    // The rest of that request now concerns an inactive id: ignored.
    peer.send(encodeRecord(RecordType.Params, 1));
    peer.sendStdin(1);
    await sleep(100);
    assert.equal(calls, 0, 'the handler never ran');
    assert.equal(endCount(peer, 1), 1);
    assert.equal(app.server.activeRequests, 0);

    peer.sendRequest(2, requestParams('GET', '/next'));
    const next = await peer.waitForEnd(2, WAIT);
    assert.equal(splitCgi(next.stdout).body.toString(), 'ran');
    assert.equal(calls, 1);
  } finally {
    peer.close();
    await app.close();
  }
});

test('a handler that ignores the abort: END_REQUEST after abortTimeout, with the reason logged', OPTS, async () => {
  const release = deferred();
  const lateEnd = deferred();
  const started = deferred();
  const app = await startServer(
    async (_req, res) => {
      started.resolve();
      await release.promise;
      res.write('written after the deadline');
      res.end();
      lateEnd.resolve();
    },
    { abortTimeout: 200 },
  );
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/stubborn'));
    await started.promise;
    peer.sendAbort(1);
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    const entry = await app.logs.waitFor(/did not finish within abortTimeout \(200 ms\)/, WAIT);
    assert.equal(entry.fields?.request, 1);
    assert.equal(app.server.activeRequests, 0, 'the request no longer counts once END_REQUEST is out');

    release.resolve();
    await lateEnd.promise;
    await sleep(100);
    assert.equal(endCount(peer, 1), 1, 'the handler ending later sends no second END_REQUEST');
    assert.equal(peer.response(1).stdout.length, 0, 'nor any output');

    // The id is free again and the connection serves.
    peer.sendRequest(1, requestParams('GET', '/again'));
    await peer.waitFor(() => endCount(peer, 1) === 2, WAIT, 'the next request on id 1');
  } finally {
    release.resolve();
    peer.close();
    await app.close();
  }
});

test('repeated FCGI_ABORT_REQUEST does not push the abortTimeout deadline back', OPTS, async () => {
  const release = deferred();
  const started = deferred();
  const app = await startServer(
    async (_req, res) => {
      started.resolve();
      await release.promise;
      res.end();
    },
    { abortTimeout: 300 },
  );
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/stubborn'));
    await started.promise;
    // Abort again every 100 ms for 3 s: were each abort to restart the 300 ms timer, END_REQUEST would
    // not come before the barrage ends.
    let endedDuringBarrage = false;
    for (let i = 0; i < 30 && !endedDuringBarrage; i++) {
      peer.sendAbort(1);
      await sleep(100);
      endedDuringBarrage = endCount(peer, 1) === 1;
    }
    assert.ok(endedDuringBarrage, 'END_REQUEST came while aborts kept arriving');
    assert.equal(app.logs.find(/did not finish within abortTimeout/).length, 1, 'the deadline passed once');
  } finally {
    release.resolve();
    peer.close();
    await app.close();
  }
});

async function dropWhileRunning(app: TestServer, peer: RawPeer, started: Promise<void>): Promise<void> {
  await started;
  assert.equal(app.server.activeRequests, 1);
  peer.close();
}

test('a dropped connection aborts the request with NODEFPM_CONNECTION_LOST and activeRequests returns to 0', OPTS, async () => {
  const reason = deferred<unknown>();
  const started = deferred();
  const app = await startServer(async (req, res) => {
    started.resolve();
    reason.resolve(await signalAborted(req));
    res.end('nobody listens');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/long-poll'));
    await dropWhileRunning(app, peer, started.promise);
    const seen = await reason.promise;
    assert.ok(isNodefpmError(seen, 'NODEFPM_CONNECTION_LOST'), `signal.reason is NODEFPM_CONNECTION_LOST: ${String(seen)}`);
    await eventually(() => app.server.activeRequests === 0, 'activeRequests to return to 0');
    await eventually(() => app.server.connectionCount === 0, 'the connection to be forgotten');
  } finally {
    peer.close();
    await app.close();
  }
});

test('a handler that ignores a dropped connection no longer counts once the connection is gone', OPTS, async () => {
  const started = deferred();
  const release = deferred();
  let sawAbort = false;
  const app = await startServer(async (req, res) => {
    started.resolve();
    await release.promise;
    sawAbort = req.signal.aborted;
    res.end('after the fact');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/ignores-everything'));
    await dropWhileRunning(app, peer, started.promise);
    await eventually(() => app.server.activeRequests === 0, 'activeRequests to return to 0 while the handler still runs');
    await eventually(() => app.server.connectionCount === 0, 'the connection to close');
    release.resolve();
    await sleep(50);
    assert.equal(sawAbort, true, 'the handler, when it looks, sees the request aborted');
    assert.equal(app.server.activeRequests, 0, 'ending the handler later does not count twice');
  } finally {
    release.resolve();
    peer.close();
    await app.close();
  }
});

test('a dropped connection fails a pending body read with NODEFPM_CONNECTION_LOST', OPTS, async () => {
  const readError = deferred<unknown>();
  const started = deferred();
  const app = await startServer(async (req, res) => {
    started.resolve();
    try {
      await req.text();
      readError.resolve(null);
    } catch (error) {
      readError.resolve(error);
    }
    res.end();
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendBegin(1);
    peer.sendParams(1, requestParams('POST', '/upload', { CONTENT_LENGTH: '100' }));
    peer.sendStdin(1, 'only part of it', false);
    await dropWhileRunning(app, peer, started.promise);
    const error = await readError.promise;
    assert.ok(isNodefpmError(error, 'NODEFPM_CONNECTION_LOST'), `the read fails with NODEFPM_CONNECTION_LOST: ${String(error)}`);
    await eventually(() => app.server.activeRequests === 0, 'activeRequests to return to 0');
  } finally {
    peer.close();
    await app.close();
  }
});

test('a dropped TCP connection aborts the request too', OPTS, async () => {
  const reason = deferred<unknown>();
  const started = deferred();
  const app = await startServer(
    async (req, res) => {
      started.resolve();
      reason.resolve(await signalAborted(req));
      res.end();
    },
    { transport: 'tcp' },
  );
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/long-poll'));
    await dropWhileRunning(app, peer, started.promise);
    const seen = await reason.promise;
    assert.ok(isNodefpmError(seen, 'NODEFPM_CONNECTION_LOST'), `signal.reason is NODEFPM_CONNECTION_LOST: ${String(seen)}`);
    await eventually(() => app.server.activeRequests === 0, 'activeRequests to return to 0');
  } finally {
    peer.close();
    await app.close();
  }
});

test('aborting one multiplexed request leaves the other on the same connection undisturbed', OPTS, async () => {
  const releaseTwo = deferred();
  const startedBoth = { one: deferred(), two: deferred() };
  const twoSignal = deferred<boolean>();
  const app = await startServer(async (req, res) => {
    if (req.url === '/one') {
      startedBoth.one.resolve();
      await signalAborted(req);
      res.end('one');
      return;
    }
    startedBoth.two.resolve();
    res.write('two: first half, ');
    const body = await req.text();
    await releaseTwo.promise;
    twoSignal.resolve(req.signal.aborted);
    res.end(`second half, body ${body}`);
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendBegin(1);
    peer.sendParams(1, requestParams('GET', '/one'));
    peer.sendBegin(2);
    peer.sendParams(2, requestParams('POST', '/two', { CONTENT_LENGTH: '6' }));
    peer.sendStdin(2, 'abc', false);
    await Promise.all([startedBoth.one.promise, startedBoth.two.promise]);
    peer.sendAbort(1);
    const one = await peer.waitForEnd(1, WAIT);
    assert.equal(one.protocolStatus, ProtocolStatus.RequestComplete);
    assert.equal(endCount(peer, 2), 0, 'request 2 is still running');
    peer.sendStdin(2, 'def');
    releaseTwo.resolve();
    const two = await peer.waitForEnd(2, WAIT);
    assert.equal(await twoSignal.promise, false, 'request 2 was not aborted');
    assert.equal(two.protocolStatus, ProtocolStatus.RequestComplete);
    assert.equal(splitCgi(two.stdout).body.toString(), 'two: first half, second half, body abcdef');
    assert.equal(endCount(peer, 1), 1);
    assert.equal(endCount(peer, 2), 1);
    assert.equal(app.server.activeRequests, 0);
  } finally {
    releaseTwo.resolve();
    peer.close();
    await app.close();
  }
});
