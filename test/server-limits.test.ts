// Every limit of src/server/options.ts over real sockets: refused with a clear (protocol) status and a logged reason, while the connection and other requests go on.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodefpmError, isNodefpmError } from '../src/errors.js';
import { createServer, type Request, type Response } from '../src/index.js';
import { ProtocolStatus, RecordType, Role, decodeEndRequest, decodePairList, encodePairs, encodeRecord } from '../src/protocol/index.js';
import { defaultLimits, resolveOptions, type Limits } from '../src/server/options.js';
import { RawPeer, requestParams, splitCgi, type PeerResponse } from './helpers/raw-peer.js';
import { startServer, type TestServer } from './helpers/servers.js';

const WAIT = 15_000;

/** A promise the test opens later: a slow handler awaits it. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

async function until(condition: () => boolean, what: string, timeout = WAIT): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * The handler most tests use: `/slow/<name>` waits for the gate of that name (created on demand),
 * `/echo` reads the body and answers its length, anything else answers "ok <uri>" at once.
 * Every call is counted per URI so a test can prove the handler never ran.
 */
function routedApp(): {
  handler: (req: Request, res: Response) => Promise<void>;
  gates: Map<string, { promise: Promise<void>; open(): void }>;
  /** The gate a `/slow/<name>` request waits for. */
  gate(name: string): { promise: Promise<void>; open(): void };
  calls: Map<string, number>;
  started: (uri: string) => Promise<void>;
} {
  const gates = new Map<string, { promise: Promise<void>; open(): void }>();
  const calls = new Map<string, number>();
  const startWaiters = new Map<string, () => void>();
  const gateFor = (name: string): { promise: Promise<void>; open(): void } => {
    let g = gates.get(name);
    if (g === undefined) {
      g = gate();
      gates.set(name, g);
    }
    return g;
  };
  return {
    gates,
    gate: gateFor,
    calls,
    started(uri) {
      if ((calls.get(uri) ?? 0) > 0) return Promise.resolve();
      return new Promise((resolve) => startWaiters.set(uri, resolve));
    },
    async handler(req, res) {
      calls.set(req.url, (calls.get(req.url) ?? 0) + 1);
      startWaiters.get(req.url)?.();
      if (req.url.startsWith('/slow/')) {
        await gateFor(req.url.slice(6)).promise;
        res.end(`done ${req.url}`);
        return;
      }
      if (req.url.startsWith('/gated-echo/')) {
        // Reads nothing until its gate opens, then the whole body.
        await gateFor(req.url.slice(12)).promise;
        let total = 0;
        for await (const chunk of req.body) total += chunk.length;
        res.end(`read ${total}`);
        return;
      }
      if (req.url === '/echo') {
        let total = 0;
        for await (const chunk of req.body) total += chunk.length;
        res.end(`read ${total}`);
        return;
      }
      res.end(`ok ${req.url}`);
    },
  };
}

function statusOf(response: PeerResponse): number {
  return splitCgi(response.stdout).status;
}

function bodyOf(response: PeerResponse): string {
  return splitCgi(response.stdout).body.toString();
}

/**
 * Waits for the next END_REQUEST of `id` after record `from` and gathers that request's output since
 * then (RawPeer.response would mix in earlier requests that used the same id).
 */
async function responseAfter(peer: RawPeer, id: number, from: number): Promise<PeerResponse> {
  await peer.waitFor(
    (records) => records.slice(from).some((r) => r.type === RecordType.EndRequest && r.requestId === id),
    WAIT,
    `END_REQUEST for request ${id}`,
  );
  const mine = peer.records.slice(from).filter((r) => r.requestId === id);
  const endIndex = mine.findIndex((r) => r.type === RecordType.EndRequest);
  const upToEnd = mine.slice(0, endIndex + 1);
  const stdoutRecords = upToEnd.filter((r) => r.type === RecordType.Stdout).map((r) => r.content);
  const end = decodeEndRequest(mine[endIndex]!.content);
  return {
    stdout: Buffer.concat(stdoutRecords),
    stderr: Buffer.concat(upToEnd.filter((r) => r.type === RecordType.Stderr).map((r) => r.content)),
    appStatus: end.appStatus,
    protocolStatus: end.protocolStatus,
    stdoutRecords,
    endCount: mine.filter((r) => r.type === RecordType.EndRequest).length,
  };
}

/** Sends a whole request and waits for its answer (request ids may be reused). */
async function ask(peer: RawPeer, id: number, uri: string, body = '', extra: Record<string, string> = {}): Promise<PeerResponse> {
  const from = peer.records.length;
  peer.sendRequest(id, requestParams(body === '' ? 'GET' : 'POST', uri, body === '' ? extra : { CONTENT_LENGTH: String(Buffer.byteLength(body)), ...extra }), body);
  return responseAfter(peer, id, from);
}

async function getValues(peer: RawPeer, names: string[]): Promise<Record<string, string>> {
  const before = peer.records.length;
  peer.sendGetValues(names);
  const records = await peer.waitFor(
    (all) => all.slice(before).some((r) => r.type === RecordType.GetValuesResult),
    WAIT,
    'FCGI_GET_VALUES_RESULT',
  );
  const result = records.slice(before).find((r) => r.type === RecordType.GetValuesResult)!;
  return Object.fromEntries(decodePairList(result.content));
}

/** Starts a server with the routed app; `peers` are closed by `done()`. */
async function setup(options: Partial<Limits> & { multiplex?: boolean } = {}): Promise<{
  app: TestServer;
  routes: ReturnType<typeof routedApp>;
  connect(): Promise<RawPeer>;
  done(): Promise<void>;
}> {
  const routes = routedApp();
  const app = await startServer(routes.handler, options);
  const peers: RawPeer[] = [];
  return {
    app,
    routes,
    async connect() {
      const peer = await RawPeer.connect(app.address);
      peers.push(peer);
      return peer;
    },
    async done() {
      for (const g of routes.gates.values()) g.open();
      for (const peer of peers) peer.close();
      await app.close();
    },
  };
}

describe('maxConnections', () => {
  test('an extra connection gets FCGI_OVERLOADED and is closed; existing connections keep working; FCGI_MAX_CONNS reports it', async () => {
    const t = await setup({ maxConnections: 2 });
    try {
      const a = await t.connect();
      const b = await t.connect();
      await until(() => t.app.server.connectionCount === 2, 'two connections accepted');
      assert.equal(bodyOf(await ask(a, 1, '/a')), 'ok /a');
      assert.equal(bodyOf(await ask(b, 1, '/b')), 'ok /b');

      const extra = await t.connect();
      extra.sendRequest(1, requestParams('GET', '/extra'));
      const refused = await extra.waitForEnd(1, WAIT);
      assert.equal(refused.protocolStatus, ProtocolStatus.Overloaded);
      assert.equal(refused.stdout.length, 0, 'a refused request gets no STDOUT');
      assert.equal(refused.endCount, 1);
      await extra.waitForClose(WAIT);
      assert.equal(extra.closed, true, 'the connection beyond maxConnections is closed after its refusal');
      assert.equal(t.routes.calls.get('/extra'), undefined, 'the handler never saw the refused request');
      const logged = await t.app.logs.waitFor(/refused request: maxConnections \(2\) reached/, WAIT);
      assert.equal(logged.fields?.protocolStatus, ProtocolStatus.Overloaded);

      // The two connections within the limit go on, with keep-conn.
      assert.equal(bodyOf(await ask(a, 2, '/a2')), 'ok /a2');
      assert.equal(bodyOf(await ask(b, 1, '/b2')), 'ok /b2');
      assert.deepEqual(await getValues(a, ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']), {
        FCGI_MAX_CONNS: '2',
        FCGI_MAX_REQS: String(defaultLimits.maxRequests),
        FCGI_MPXS_CONNS: '1',
      });

      // Once one closes, a new connection is served again.
      b.close();
      await until(() => t.app.server.connectionCount === 1, 'the closed connection forgotten');
      const c = await t.connect();
      assert.equal(bodyOf(await ask(c, 1, '/c')), 'ok /c');
    } finally {
      await t.done();
    }
  });

  test('far beyond it (twice the limit) a connection is dropped without an answer, and that is logged', async () => {
    const t = await setup({ maxConnections: 1 });
    try {
      const a = await t.connect();
      await until(() => t.app.server.connectionCount === 1, 'first connection accepted');
      const overloaded = await t.connect();
      await until(() => t.app.server.connectionCount === 2, 'second (overloaded) connection accepted');
      const dropped = await t.connect();
      await dropped.waitForClose(WAIT);
      assert.equal(dropped.closed, true, 'a connection at twice maxConnections is dropped at once');
      assert.equal(dropped.records.length, 0, 'a dropped connection gets no records');
      await t.app.logs.waitFor(/dropped connection: 2 open, far over maxConnections \(1\)/, WAIT);
      assert.equal(t.app.server.stats.connectionsRefused, 2, 'the overloaded and the dropped connection are both counted as refused');

      overloaded.sendRequest(1, requestParams('GET', '/over'));
      assert.equal((await overloaded.waitForEnd(1, WAIT)).protocolStatus, ProtocolStatus.Overloaded);
      assert.equal(bodyOf(await ask(a, 1, '/still')), 'ok /still');
    } finally {
      await t.done();
    }
  });
});

describe('maxRequests', () => {
  test('requests in progress across connections beyond it get FCGI_OVERLOADED; the connection goes on; FCGI_MAX_REQS reports it', async () => {
    const t = await setup({ maxRequests: 2 });
    try {
      const a = await t.connect();
      const b = await t.connect();
      a.sendRequest(1, requestParams('GET', '/slow/a'));
      b.sendRequest(1, requestParams('GET', '/slow/b'));
      await t.routes.started('/slow/a');
      await t.routes.started('/slow/b');
      assert.equal(t.app.server.activeRequests, 2);

      a.sendRequest(2, requestParams('GET', '/third'));
      const refused = await a.waitForEnd(2, WAIT);
      assert.equal(refused.protocolStatus, ProtocolStatus.Overloaded);
      assert.equal(t.routes.calls.get('/third'), undefined, 'the refused request never reached the handler');
      await t.app.logs.waitFor(/refused request: maxRequests \(2\) reached/, WAIT);
      assert.equal(await a.staysOpen(100), true, 'FCGI_KEEP_CONN set: a refused request does not close the connection');
      assert.equal((await getValues(b, ['FCGI_MAX_REQS'])).FCGI_MAX_REQS, '2');

      // The requests in progress are not disturbed; once one ends there is room again.
      t.routes.gate('a').open();
      assert.equal(bodyOf(await a.waitForEnd(1, WAIT)), 'done /slow/a');
      assert.equal(bodyOf(await ask(a, 3, '/fourth')), 'ok /fourth');
      t.routes.gate('b').open();
      assert.equal(bodyOf(await b.waitForEnd(1, WAIT)), 'done /slow/b');
      assert.equal(t.app.server.activeRequests, 0);
    } finally {
      await t.done();
    }
  });
});

describe('maxRequestsPerConnection', () => {
  test('a connection with that many requests in progress gets FCGI_OVERLOADED for one more; other connections are unaffected', async () => {
    const t = await setup({ maxRequestsPerConnection: 2 });
    try {
      const a = await t.connect();
      a.sendRequest(1, requestParams('GET', '/slow/1'));
      a.sendRequest(2, requestParams('GET', '/slow/2'));
      await t.routes.started('/slow/1');
      await t.routes.started('/slow/2');
      a.sendRequest(3, requestParams('GET', '/three'));
      const refused = await a.waitForEnd(3, WAIT);
      assert.equal(refused.protocolStatus, ProtocolStatus.Overloaded);
      assert.equal(t.routes.calls.get('/three'), undefined, 'the refused request never reached the handler');
      await t.app.logs.waitFor(/refused request: maxRequestsPerConnection \(2\) reached/, WAIT);

      const b = await t.connect();
      assert.equal(bodyOf(await ask(b, 1, '/other')), 'ok /other');

      t.routes.gate('1').open();
      assert.equal(bodyOf(await a.waitForEnd(1, WAIT)), 'done /slow/1');
      // Request id 3 was refused (inactive again), so it may be reused.
      const again = await ask(a, 3, '/three-again');
      assert.equal(again.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(bodyOf(again), 'ok /three-again');
      t.routes.gate('2').open();
      assert.equal(bodyOf(await a.waitForEnd(2, WAIT)), 'done /slow/2');
    } finally {
      await t.done();
    }
  });
});

describe('maxParamsBytes', () => {
  test('params over the limit get 431 before the handler runs; exactly at the limit is served; the connection goes on', async () => {
    const small = requestParams('GET', '/params', { HTTP_X_FILL: 'x'.repeat(500) });
    const limit = encodePairs(small).length;
    const t = await setup({ maxParamsBytes: limit });
    try {
      const peer = await t.connect();
      // A request in progress on the same connection must not be disturbed.
      peer.sendRequest(7, requestParams('GET', '/slow/neighbour'));
      await t.routes.started('/slow/neighbour');

      const atLimit = await ask(peer, 1, '/params', '', { HTTP_X_FILL: 'x'.repeat(500) });
      assert.equal(statusOf(atLimit), 200, 'params of exactly maxParamsBytes are accepted');

      const over = await ask(peer, 2, '/params', '', { HTTP_X_FILL: 'x'.repeat(501) });
      assert.equal(over.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(statusOf(over), 431);
      assert.match(bodyOf(over), /params exceed maxParamsBytes/);
      assert.equal(t.routes.calls.get('/params'), 1, 'the handler ran only for the request within the limit');
      const logged = await t.app.logs.waitFor('NODEFPM_PARAMS_TOO_LARGE', WAIT);
      assert.match(logged.message, /params exceed maxParamsBytes \(\d+\); answering 431/);

      // A huge PARAMS stream (several records) is cut off at the first record over the limit.
      const huge = await ask(peer, 3, '/params', '', { HTTP_X_FILL: 'y'.repeat(300_000) });
      assert.equal(statusOf(huge), 431);
      assert.equal(bodyOf(await ask(peer, 4, '/after')), 'ok /after');
      t.routes.gate('neighbour').open();
      assert.equal(bodyOf(await peer.waitForEnd(7, WAIT)), 'done /slow/neighbour');
    } finally {
      await t.done();
    }
  });
});

describe('maxBodyBytes', () => {
  test('CONTENT_LENGTH over the limit gets 413 before the handler runs; the body sent anyway is skipped; the connection goes on', async () => {
    const t = await setup({ maxBodyBytes: 1000 });
    try {
      const peer = await t.connect();
      const over = await ask(peer, 1, '/echo', 'z'.repeat(1001));
      assert.equal(over.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(statusOf(over), 413);
      assert.match(bodyOf(over), /CONTENT_LENGTH 1001 exceeds maxBodyBytes \(1000\)/);
      assert.equal(t.routes.calls.get('/echo'), undefined, 'the handler was not called for a declared body over the limit');
      const logged = await t.app.logs.waitFor('NODEFPM_BODY_TOO_LARGE', WAIT);
      assert.match(logged.message, /answering 413/);

      // A huge declared length, with no body sent at all, is refused just the same.
      peer.sendBegin(2);
      peer.sendParams(2, requestParams('PUT', '/echo', { CONTENT_LENGTH: String(2 ** 40) }));
      assert.equal(statusOf(await peer.waitForEnd(2, WAIT)), 413);
      assert.equal(t.routes.calls.get('/echo'), undefined, 'still not called');

      const atLimit = await ask(peer, 3, '/echo', 'z'.repeat(1000));
      assert.equal(statusOf(atLimit), 200);
      assert.equal(bodyOf(atLimit), 'read 1000');
    } finally {
      await t.done();
    }
  });

  for (const variant of [
    { name: 'CONTENT_LENGTH="" (nginx, unbuffered chunked upload)', extra: { CONTENT_LENGTH: '', HTTP_TRANSFER_ENCODING: 'chunked' } },
    { name: 'no CONTENT_LENGTH at all (Apache, chunked upload)', extra: {} as Record<string, string> },
  ]) {
    test(`a body of undeclared length that streams past the limit fails the handler's read with NODEFPM_BODY_TOO_LARGE and its error path answers 413: ${variant.name}`, async () => {
      const limit = 100_000;
      let readError: unknown = null;
      let bytesRead = 0;
      let calls = 0;
      const app = await startServer(
        async (req, res) => {
          calls++;
          if (req.url === '/next') {
            res.end(`next read ${(await req.bytes()).length}`);
            return;
          }
          try {
            for await (const chunk of req.body) bytesRead += chunk.length;
          } catch (error) {
            readError = error;
            throw error;
          }
          res.end('read it all?');
        },
        { maxBodyBytes: limit },
      );
      const peer = await RawPeer.connect(app.address);
      try {
        peer.sendBegin(1);
        peer.sendParams(1, requestParams('POST', '/upload', variant.extra));
        // 300 KB in 8 KiB records, as nginx sends an unbuffered body; the terminator comes last.
        const chunk = Buffer.alloc(8192, 0x61);
        for (let sent = 0; sent < 300_000; sent += chunk.length) peer.sendStdin(1, chunk, false);
        peer.sendStdin(1, '', true);
        const response = await peer.waitForEnd(1, WAIT);
        assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
        const cgi = splitCgi(response.stdout);
        assert.equal(cgi.status, 413);
        assert.match(cgi.body.toString(), /request body exceeds maxBodyBytes \(100000\)/);
        assert.ok(isNodefpmError(readError, 'NODEFPM_BODY_TOO_LARGE'), `the handler's read failed with NODEFPM_BODY_TOO_LARGE, got ${String(readError)}`);
        assert.equal((readError as NodefpmError).status, 413);
        assert.ok(bytesRead <= limit, `the handler read at most maxBodyBytes (${bytesRead})`);
        const logged = await app.logs.waitFor(/request body exceeds maxBodyBytes/, WAIT);
        assert.equal(logged.fields?.code, 'NODEFPM_BODY_TOO_LARGE');
        assert.equal(logged.fields?.uri, '/upload');
        await app.logs.waitFor(/request refused with 413: POST \/upload/, WAIT);
        assert.equal(response.appStatus, 0, 'a 4xx refusal is not an application failure');

        // The rest of the body was skipped and the kept connection serves the next request.
        const next = await ask(peer, 1, '/next', 'hello');
        assert.equal(bodyOf(next), 'next read 5');
        assert.equal(calls, 2);
      } finally {
        peer.close();
        await app.close();
      }
    });
  }
});

describe('idleTimeout', () => {
  test('a silent connection with nothing in progress is closed and that is logged; a long request is not cut off', async () => {
    const t = await setup({ idleTimeout: 1000 });
    try {
      const idle = await t.connect();
      const busy = await t.connect();
      busy.sendRequest(1, requestParams('GET', '/slow/long'));
      await t.routes.started('/slow/long');

      await idle.waitForClose(WAIT);
      assert.equal(idle.closed, true, 'the idle connection was closed');
      const logged = await t.app.logs.waitFor('NODEFPM_IDLE_TIMEOUT', WAIT);
      assert.match(logged.message, /idle for idleTimeout \(1000 ms\)/);

      // Several idle periods pass while the request is in progress: the connection stays.
      assert.equal(await busy.staysOpen(2500), true, 'a connection with a request in progress is not idle');
      t.routes.gate('long').open();
      assert.equal(bodyOf(await busy.waitForEnd(1, WAIT)), 'done /slow/long');
      // The timer fired while the request ran; once the connection is idle again, it counts again.
      await busy.waitForClose(WAIT);
      assert.equal(busy.closed, true, 'once idle again, it is closed too');
      assert.equal(t.app.logs.find('NODEFPM_IDLE_TIMEOUT').length, 2, 'each idle close is logged');
    } finally {
      await t.done();
    }
  });
});

describe('paramsTimeout', () => {
  test('PARAMS not complete in time gets 408 and a logged reason; other requests on the connection go on', async () => {
    const t = await setup({ paramsTimeout: 250 });
    try {
      const peer = await t.connect();
      peer.sendRequest(5, requestParams('GET', '/slow/neighbour'));
      await t.routes.started('/slow/neighbour');

      peer.sendBegin(1);
      // Part of the PARAMS stream, never terminated.
      peer.send(encodeRecord(RecordType.Params, 1, encodePairs(requestParams('GET', '/stalled'))));
      const response = await peer.waitForEnd(1, WAIT);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(statusOf(response), 408);
      assert.match(bodyOf(response), /PARAMS not complete within paramsTimeout \(250 ms\)/);
      assert.equal(t.routes.calls.get('/stalled'), undefined, 'the handler never saw the stalled request');
      const logged = await t.app.logs.waitFor('NODEFPM_PARAMS_TIMEOUT', WAIT);
      assert.match(logged.message, /answering 408/);

      // The late terminator is ignored; the connection serves the next request and the neighbour.
      peer.send(encodeRecord(RecordType.Params, 1));
      assert.equal(bodyOf(await ask(peer, 2, '/next')), 'ok /next');
      t.routes.gate('neighbour').open();
      assert.equal(bodyOf(await peer.waitForEnd(5, WAIT)), 'done /slow/neighbour');
      assert.equal(peer.response(1).endCount, 1, 'exactly one END_REQUEST for the timed-out request');
    } finally {
      await t.done();
    }
  });
});

describe('bodyTimeout', () => {
  test('a body the web server stops sending fails with 408 and a logged reason; late records are dropped; the connection goes on', async () => {
    const t = await setup({ bodyTimeout: 200 });
    try {
      const peer = await t.connect();
      peer.sendRequest(5, requestParams('GET', '/slow/neighbour'));
      await t.routes.started('/slow/neighbour');

      const from = peer.records.length;
      peer.sendBegin(1);
      peer.sendParams(1, requestParams('POST', '/echo', { CONTENT_LENGTH: '1000' }));
      peer.sendStdin(1, 'x'.repeat(300), false);
      const response = await responseAfter(peer, 1, from);
      assert.equal(statusOf(response), 408);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      const logged = await t.app.logs.waitFor('NODEFPM_BODY_TIMEOUT', WAIT);
      assert.match(logged.message, /no FCGI_STDIN record for bodyTimeout \(200 ms\) after 300 bytes; answering 408/);

      // The rest of the body arrives late: dropped, and no second END_REQUEST.
      peer.sendStdin(1, 'x'.repeat(700), true);
      assert.equal(bodyOf(await ask(peer, 2, '/next')), 'ok /next');
      t.routes.gate('neighbour').open();
      assert.equal(bodyOf(await peer.waitForEnd(5, WAIT)), 'done /slow/neighbour', 'the neighbour, silent all along, was not timed out');
      assert.equal(response.endCount, 1);
      assert.equal(peer.records.filter((r) => r.type === RecordType.EndRequest && r.requestId === 1).length, 1, 'one END_REQUEST for request 1');
    } finally {
      await t.done();
    }
  });

  test('silence while the server itself holds the body back (input backpressure) is not a stall', async () => {
    const t = await setup({ bodyTimeout: 150, inputHighWaterMark: 16 * 1024 });
    try {
      const peer = await t.connect();
      const body = 'y'.repeat(256 * 1024);
      const from = peer.records.length;
      // The whole body is sent, but the handler reads nothing for four bodyTimeouts: the connection
      // stops reading once the request's buffer is full, and the rest waits in the socket.
      peer.sendRequest(1, requestParams('POST', '/gated-echo/late', { CONTENT_LENGTH: String(body.length) }), body);
      await t.routes.started('/gated-echo/late');
      await new Promise((resolve) => setTimeout(resolve, 600));
      t.routes.gate('late').open();
      const response = await responseAfter(peer, 1, from);
      assert.equal(statusOf(response), 200);
      assert.equal(bodyOf(response), `read ${body.length}`);
      assert.deepEqual(t.app.logs.find('NODEFPM_BODY_TIMEOUT'), [], 'no body timeout logged');
    } finally {
      await t.done();
    }
  });

  test('0 turns it off', () => {
    assert.equal(resolveOptions({ bodyTimeout: 0 }, {}).bodyTimeout, 0);
    assert.equal(resolveOptions({}, {}).bodyTimeout, defaultLimits.bodyTimeout);
  });
});

describe('abortTimeout', () => {
  test('a handler that ignores FCGI_ABORT_REQUEST gets END_REQUEST sent without it after abortTimeout, logged; the connection goes on', async () => {
    const release = gate();
    let signalReason: unknown = null;
    let lateEnd = false;
    const app = await startServer(
      async (req, res) => {
        if (req.url !== '/stubborn') {
          res.end('fine');
          return;
        }
        req.signal.addEventListener('abort', () => {
          signalReason = req.signal.reason;
        });
        await release.promise;
        res.end('too late');
        lateEnd = true;
      },
      { abortTimeout: 250 },
    );
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('GET', '/stubborn'));
      await until(() => app.server.activeRequests === 1, 'the request running');
      peer.sendAbort(1);
      const response = await peer.waitForEnd(1, WAIT);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(response.stdout.length, 0, 'nothing of the aborted response is sent');
      assert.ok(isNodefpmError(signalReason, 'NODEFPM_REQUEST_ABORTED'), `the handler's signal fired with NODEFPM_REQUEST_ABORTED, got ${String(signalReason)}`);
      await app.logs.waitFor(/did not finish within abortTimeout \(250 ms\)/, WAIT);
      assert.equal(app.server.activeRequests, 0, 'the request no longer counts as in progress');

      assert.equal(bodyOf(await ask(peer, 2, '/other')), 'fine');
      release.open();
      await until(() => lateEnd, 'the handler finishing late');
      // The late end() sends nothing more for request 1.
      assert.equal(bodyOf(await ask(peer, 3, '/other')), 'fine');
      assert.equal(peer.response(1).endCount, 1, 'exactly one END_REQUEST for the aborted request');
      assert.equal(peer.response(1).stdout.length, 0, 'no STDOUT for the aborted request, even from the late end()');
    } finally {
      release.open();
      peer.close();
      await app.close();
    }
  });
});

describe('FCGI_GET_VALUES', () => {
  test('reports the configured limits, the largest 31-bit value for Infinity, and FCGI_MPXS_CONNS=0 with multiplex off', async () => {
    const t = await setup({ maxConnections: Infinity, maxRequests: 17, multiplex: false });
    try {
      const peer = await t.connect();
      assert.deepEqual(await getValues(peer, ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'NOT_A_NAME']), {
        FCGI_MAX_CONNS: '2147483647',
        FCGI_MAX_REQS: '17',
        FCGI_MPXS_CONNS: '0',
      });
    } finally {
      await t.done();
    }
  });
});

describe('resolveOptions', () => {
  const invalid = (options: Parameters<typeof resolveOptions>[0], pattern: RegExp) => {
    assert.throws(
      () => resolveOptions(options, {}),
      (error: unknown) => {
        assert.ok(isNodefpmError(error, 'NODEFPM_INVALID_OPTION'), `NODEFPM_INVALID_OPTION expected, got ${String(error)}`);
        assert.match((error as Error).message, pattern);
        return true;
      },
    );
  };

  test('rejects negative, zero, non-integer and non-number counts with NODEFPM_INVALID_OPTION naming the option', () => {
    invalid({ maxConnections: -1 }, /maxConnections/);
    invalid({ maxRequests: 0 }, /maxRequests must be an integer >= 1/);
    invalid({ maxRequestsPerConnection: 1.5 }, /maxRequestsPerConnection/);
    invalid({ maxParamsBytes: Number.NaN }, /maxParamsBytes/);
    invalid({ maxBodyBytes: -Infinity }, /maxBodyBytes/);
    invalid({ inputHighWaterMark: '65536' as unknown as number }, /inputHighWaterMark/);
    invalid({ paramsTimeout: -1 }, /paramsTimeout/);
    invalid({ idleTimeout: 0.5 }, /idleTimeout/);
    invalid({ abortTimeout: -5 }, /abortTimeout/);
  });

  test('rejects outputHighWaterMark below 16384 and roles that are not FastCGI roles', () => {
    invalid({ outputHighWaterMark: 16383 }, /outputHighWaterMark must be at least 16384/);
    invalid({ outputHighWaterMark: 1 }, /outputHighWaterMark/);
    invalid({ roles: [Role.Responder, 4] }, /roles: 4 is not a FastCGI role/);
    invalid({ roles: [0] }, /roles/);
  });

  test('createServer refuses bad options the same way, before listening', () => {
    assert.throws(() => createServer(() => {}, { maxConnections: -3 }), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
  });

  test('accepts the boundaries: timeouts of 0 (off), Infinity, outputHighWaterMark 16384; fills in the defaults', () => {
    const resolved = resolveOptions({ paramsTimeout: 0, idleTimeout: 0, abortTimeout: 0, maxConnections: Infinity, outputHighWaterMark: 16384 }, {});
    assert.equal(resolved.paramsTimeout, 0);
    assert.equal(resolved.maxConnections, Infinity);
    assert.equal(resolved.outputHighWaterMark, 16384);
    assert.equal(resolved.maxBodyBytes, defaultLimits.maxBodyBytes);
    assert.equal(resolved.multiplex, true);
    assert.deepEqual([...resolved.roles], [Role.Responder]);
    assert.equal(resolved.allowedClients, null);
  });

  test('allowedClients and FCGI_WEB_SERVER_ADDRS combine; useWebServerAddrs=false ignores the environment', () => {
    const env = { FCGI_WEB_SERVER_ADDRS: '10.0.0.1, 10.0.0.2' };
    assert.deepEqual([...resolveOptions({ allowedClients: ['::ffff:10.0.0.3', '::1'] }, env).allowedClients!].sort(), [
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.3',
      '::1',
    ]);
    assert.equal(resolveOptions({ useWebServerAddrs: false }, env).allowedClients, null);
    assert.deepEqual([...resolveOptions({}, { FCGI_WEB_SERVER_ADDRS: '' }).allowedClients!], [], 'set but empty: nobody is allowed');
  });
});
