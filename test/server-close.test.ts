// Graceful close over real sockets: stop accepting, finish what is in flight, close idle connections at once, refuse new requests, abort the rest after the deadline.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { isNodefpmError } from '../src/errors.js';
import { ProtocolStatus } from '../src/protocol/index.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { startServer } from './helpers/servers.js';

const WAIT = 15_000;

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeout = WAIT): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * Tries a new connection and a request on it. 'refused': the connect failed (no listener); 'dropped':
 * it connected but was closed with no answer; 'served': it got an END_REQUEST.
 */
async function tryNewConnection(address: string): Promise<'refused' | 'dropped' | 'served'> {
  let peer: RawPeer;
  try {
    peer = await RawPeer.connect(address);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    assert.ok(code === 'ECONNREFUSED' || code === 'ENOENT', `a refused connect fails with ECONNREFUSED or ENOENT, got ${String(code)}`);
    return 'refused';
  }
  try {
    peer.sendRequest(1, requestParams('GET', '/fast'));
    await peer.waitForClose(WAIT);
    return peer.response(1).endCount > 0 ? 'served' : 'dropped';
  } finally {
    peer.close();
  }
}

describe('FcgiServer.close()', () => {
  for (const transport of ['unix', 'tcp'] as const) {
    test(`stops accepting, closes idle connections at once, refuses new requests with FCGI_OVERLOADED, and lets the request in flight finish whole (${transport})`, async () => {
      const release = gate();
      const payload = randomBytes(1024 * 1024);
      let slowSignal: AbortSignal | undefined;
      const app = await startServer(
        async (req, res) => {
          if (req.url !== '/slow') {
            res.end('fast');
            return;
          }
          slowSignal = req.signal;
          await release.promise;
          // A response bigger than the socket buffers, written with backpressure after close() began.
          for (let offset = 0; offset < payload.length; offset += 100_000) {
            if (!res.write(payload.subarray(offset, offset + 100_000))) await new Promise<void>((resolve) => res.once('drain', resolve));
          }
          res.end();
        },
        { transport },
      );
      const busy = await RawPeer.connect(app.address);
      const used = await RawPeer.connect(app.address);
      const unused = await RawPeer.connect(app.address);
      try {
        busy.sendRequest(1, requestParams('GET', '/slow'));
        used.sendRequest(1, requestParams('GET', '/fast'));
        assert.equal(splitCgi((await used.waitForEnd(1, WAIT)).stdout).body.toString(), 'fast');
        await until(() => slowSignal !== undefined && app.server.connectionCount === 3, 'the slow request running on three connections');

        let closed = false;
        const closing = app.server.close({ timeout: 20_000 }).then(() => {
          closed = true;
        });
        let closeEvent = false;
        app.server.once('close', () => {
          closeEvent = true;
        });

        // Idle keep-conn connections, used or not, are closed at once.
        await used.waitForClose(WAIT);
        await unused.waitForClose(WAIT);
        assert.equal(used.closed && unused.closed, true, 'idle connections are closed without waiting for the busy one');
        assert.equal(busy.closed, false, 'the connection with a request in flight stays open');
        assert.equal(closed, false, 'close() waits for the request in flight');

        // New connections are no longer served.
        assert.equal(await tryNewConnection(app.address), 'refused', 'a connection made after close() is refused');

        // A new request on the open connection is refused, and the request in flight goes on.
        busy.sendRequest(2, requestParams('GET', '/fast'));
        const refused = await busy.waitForEnd(2, WAIT);
        assert.equal(refused.protocolStatus, ProtocolStatus.Overloaded);
        assert.equal(refused.stdout.length, 0);
        await app.logs.waitFor(/refused request: the connection is closing/, WAIT);

        release.open();
        const response = await busy.waitForEnd(1, WAIT);
        assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
        assert.equal(response.appStatus, 0);
        const body = splitCgi(response.stdout).body;
        assert.equal(body.length, payload.length, 'the whole response arrived');
        assert.equal(createHash('sha256').update(body).digest('hex'), createHash('sha256').update(payload).digest('hex'));
        assert.equal(slowSignal!.aborted, false, 'a request that finished in time was never aborted');

        await busy.waitForClose(WAIT);
        assert.equal(busy.closed, true, 'the last connection is closed once its request ended');
        await closing;
        assert.equal(closeEvent, true, "'close' is emitted");
        assert.equal(app.server.connectionCount, 0);
        assert.equal(app.logs.find(/close timeout/).length, 0, 'nothing needed aborting');
      } finally {
        release.open();
        busy.close();
        used.close();
        unused.close();
        await app.close();
      }
    });
  }

  test('after the timeout, what is left is aborted (signal and body reads fail with NODEFPM_SERVER_CLOSING) and close() resolves', async () => {
    const reasons = new Map<string, unknown>();
    let bodyError: unknown = null;
    const app = await startServer(async (req, res) => {
      if (req.url === '/stuck') {
        // Ignores everything but its signal.
        await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
        reasons.set('/stuck', req.signal.reason);
        res.end('too late');
        return;
      }
      if (req.url === '/reading') {
        try {
          await req.bytes();
        } catch (error) {
          bodyError = error;
          reasons.set('/reading', req.signal.reason);
          throw error;
        }
        res.end('read');
      }
    });
    const a = await RawPeer.connect(app.address);
    const b = await RawPeer.connect(app.address);
    try {
      a.sendRequest(1, requestParams('GET', '/stuck'));
      // A body that never ends: the handler waits for the rest.
      b.sendBegin(1);
      b.sendParams(1, requestParams('POST', '/reading', { CONTENT_LENGTH: '100' }));
      b.sendStdin(1, 'only part', false);
      await until(() => app.server.activeRequests === 2, 'both requests running');

      await app.server.close({ timeout: 300 });
      assert.ok(isNodefpmError(reasons.get('/stuck'), 'NODEFPM_SERVER_CLOSING'), `the stuck handler's signal fired with NODEFPM_SERVER_CLOSING, got ${String(reasons.get('/stuck'))}`);
      assert.ok(isNodefpmError(reasons.get('/reading'), 'NODEFPM_SERVER_CLOSING'), 'the reading handler was aborted too');
      assert.ok(isNodefpmError(bodyError, 'NODEFPM_SERVER_CLOSING'), `the pending body read failed with NODEFPM_SERVER_CLOSING, got ${String(bodyError)}`);
      const logged = await app.logs.waitFor(/close timeout \(300 ms\) reached with 2 requests in progress; aborting them/, WAIT);
      assert.equal(logged.level, 'warn');
      await a.waitForClose(WAIT);
      await b.waitForClose(WAIT);
      assert.equal(a.closed && b.closed, true, 'both connections are closed');
      assert.equal(app.server.connectionCount, 0);
      assert.equal(app.server.activeRequests, 0, 'no request is counted as in progress after close()');
      for (const peer of [a, b]) {
        const response = peer.response(1);
        assert.ok(response.endCount <= 1, 'at most one END_REQUEST');
        assert.equal(response.stdout.length, 0, 'nothing of an aborted response is sent');
      }
    } finally {
      a.close();
      b.close();
      await app.close();
    }
  });

  test('with nothing open it resolves at once; it is idempotent; listen() afterwards fails with NODEFPM_SERVER_CLOSING', async () => {
    const app = await startServer((_req, res) => {
      res.end('x');
    }, { transport: 'tcp' });
    try {
      const first = app.server.close({ timeout: 20_000 });
      assert.equal(app.server.close(), first, 'a second close() returns the same promise');
      await first;
      assert.equal(app.server.closing, true);
      await assert.rejects(app.server.listen('127.0.0.1:0'), (error: unknown) => isNodefpmError(error, 'NODEFPM_SERVER_CLOSING'));
      assert.equal(await tryNewConnection(app.address), 'refused');
    } finally {
      await app.close();
    }
  });

  test('a socket handed to handleConnection() after close() began is destroyed', async () => {
    const app = await startServer((_req, res) => {
      res.end('x');
    });
    const [left, right] = await socketPair();
    try {
      await app.server.close({ timeout: 1000 });
      app.server.handleConnection(right);
      await until(() => right.destroyed, 'the socket destroyed');
      assert.equal(app.server.connectionCount, 0);
    } finally {
      left.destroy();
      right.destroy();
      await app.close();
    }
  });
});

/** Two connected TCP sockets on loopback. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const left = net.connect(port, '127.0.0.1');
  const right = await accepted;
  // Stops listening now; its close callback would wait for `right` to close, so it is not awaited.
  listener.close();
  return [left, right];
}
