// Response.beforeHead and Response.beforeEnd on a live server: when they run, what end() holds back until they settle, and failures.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawPeer, requestParams, splitCgi, type PeerResponse } from '../../test/helpers/raw-peer.js';
import { startServer, type TestServer } from '../../test/helpers/servers.js';
import { isNodefpmError } from '../errors.js';
import { RecordType } from '../protocol/index.js';
import type { Handler } from './handler.js';

let app: TestServer;
let current: Handler = (_req, res) => {
  res.end();
};

before(async () => {
  app = await startServer((req, res) => current(req, res));
});

after(async () => {
  await app.close();
});

async function run(handler: Handler, peerAction?: (peer: RawPeer) => Promise<void>): Promise<PeerResponse & { text: string }> {
  current = handler;
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams());
    if (peerAction !== undefined) await peerAction(peer);
    const response = await peer.waitForEnd(1, 10_000);
    assert.equal(response.endCount, 1, 'exactly one END_REQUEST');
    return { ...response, text: response.stdout.toString('latin1') };
  } finally {
    peer.close();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('beforeHead runs once, just before the head of a streamed response, and may still set headers', async () => {
  let calls = 0;
  const { text } = await run((_req, res) => {
    res.beforeHead((r) => {
      calls++;
      r.setHeader('X-Hook', `status ${r.statusCode}`);
    });
    res.statusCode = 201;
    res.write('a');
    res.write('b');
    res.end('c');
  });
  assert.equal(calls, 1);
  const cgi = splitCgi(Buffer.from(text, 'latin1'));
  assert.equal(cgi.headers['x-hook'], 'status 201');
  assert.equal(cgi.body.toString(), 'abc');
});

test('beforeHead runs from end() before Content-Length is decided; adding one after the head is refused', async () => {
  let refused = 'no error';
  const { text } = await run((_req, res) => {
    res.beforeHead((r) => {
      r.statusCode = 204; // a hook may turn the response bodiless: then no Content-Length
    });
    res.end();
    try {
      res.beforeHead(() => undefined);
    } catch (error) {
      refused = isNodefpmError(error) ? error.code : 'other';
    }
  });
  const cgi = splitCgi(Buffer.from(text, 'latin1'));
  assert.equal(cgi.status, 204);
  assert.equal(cgi.headers['content-length'], undefined);
  assert.equal(refused, 'NODEFPM_HEADERS_SENT');
});

test('beforeEnd with a promise: end() holds the head, the last chunk and END_REQUEST until it settles', async () => {
  const gate = deferred();
  const seen: string[] = [];
  const { text, appStatus } = await run(
    (_req, res) => {
      res.beforeEnd(async (r) => {
        await gate.promise;
        r.setHeader('Set-Cookie', 'saved=1'); // the head is still open while end() waits
      });
      res.on('finish', () => seen.push('finish'));
      res.end('body');
      seen.push(`after end(): writableEnded=${res.writableEnded}`);
      try {
        res.write('more');
      } catch (error) {
        seen.push(isNodefpmError(error) ? error.code : 'other');
      }
      res.end('ignored'); // a second end() while holding does nothing
    },
    async (peer) => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const early = peer.records.filter((r) => r.requestId === 1 && (r.type === RecordType.Stdout || r.type === RecordType.EndRequest));
      assert.equal(early.length, 0, `nothing may reach the web server while the hook is pending; got ${early.length} records`);
      assert.deepEqual(seen, ['after end(): writableEnded=true', 'NODEFPM_WRITE_AFTER_END'], 'no finish yet');
      gate.resolve();
    },
  );
  assert.equal(appStatus, 0);
  assert.deepEqual(seen.at(-1), 'finish');
  const cgi = splitCgi(Buffer.from(text, 'latin1'));
  assert.equal(cgi.headers['set-cookie'], 'saved=1');
  assert.equal(cgi.headers['content-length'], '4');
  assert.equal(cgi.body.toString(), 'body');
});

test('synchronous beforeEnd hooks run in order and end() completes at once', async () => {
  const order: string[] = [];
  await run((_req, res) => {
    res.beforeEnd(() => {
      order.push('one');
    });
    res.beforeEnd(() => {
      order.push('two');
    });
    res.on('finish', () => order.push('finish'));
    res.end();
    order.push('returned');
  });
  assert.deepEqual(order, ['one', 'two', 'finish', 'returned']);
});

test('a handler that returns without end(): the implicit end() waits for the hooks too', async () => {
  const { text } = await run(async (_req, res) => {
    res.beforeEnd(async (r) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      r.setHeader('X-Late', 'yes');
    });
    res.setHeader('Content-Type', 'text/plain');
  });
  assert.equal(splitCgi(Buffer.from(text, 'latin1')).headers['x-late'], 'yes');
});

test('a rejected beforeEnd hook before the head: a 500 instead of the held body, app status 1, the error on STDERR', async () => {
  const { text, appStatus, stderr } = await run((_req, res) => {
    res.setHeader('X-Before', 'dropped');
    res.beforeEnd(async () => {
      throw new Error('store down');
    });
    res.end('the body that must not be sent');
  });
  const cgi = splitCgi(Buffer.from(text, 'latin1'));
  assert.equal(cgi.status, 500);
  assert.equal(cgi.headers['x-before'], undefined, 'headers set for the success case are dropped');
  assert.equal(cgi.body.toString(), '500 Internal Server Error\n');
  assert.equal(appStatus, 1);
  assert.match(stderr.toString(), /beforeEnd hook failed: Error: store down/);
});

test('a throwing beforeEnd hook after the head went out: the response is cut short with app status 1', async () => {
  const { text, appStatus } = await run((_req, res) => {
    res.beforeEnd(() => {
      throw new Error('sync failure');
    });
    res.write('streamed ');
    res.end('last chunk');
  });
  const cgi = splitCgi(Buffer.from(text, 'latin1'));
  assert.equal(cgi.status, 200);
  assert.equal(cgi.body.toString(), 'streamed ', 'the held last chunk is not sent');
  assert.equal(appStatus, 1);
});

test('a hook added while end() holds runs after those it waited for', async () => {
  const order: string[] = [];
  await run((_req, res) => {
    res.beforeEnd(async (r) => {
      order.push('first');
      r.beforeEnd(() => {
        order.push('added while holding');
      });
    });
    res.on('finish', () => order.push('finish'));
    res.end();
  });
  assert.deepEqual(order, ['first', 'added while holding', 'finish']);
});
