// Smoke test of the test helpers against a live server: one request, keep-conn on and off.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { startServer } from './helpers/servers.js';

test('a GET is answered and FCGI_KEEP_CONN decides who closes', async () => {
  const app = await startServer((req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end(`hello ${req.method} ${req.url}`);
  });
  try {
    const kept = await RawPeer.connect(app.address);
    kept.sendRequest(1, requestParams('GET', '/a?b=1'));
    const response = await kept.waitForEnd(1);
    const cgi = splitCgi(response.stdout);
    assert.equal(cgi.status, 200);
    assert.equal(cgi.body.toString(), 'hello GET /a?b=1');
    assert.equal(cgi.headers['content-length'], '16');
    assert.equal(response.endCount, 1);
    assert.equal(await kept.staysOpen(100), true, 'KEEP_CONN set: the server must not close');
    kept.close();

    const once = await RawPeer.connect(app.address);
    once.sendRequest(1, requestParams('GET', '/'), '', { keepConn: false });
    await once.waitForEnd(1);
    await once.waitForClose(2000);
    assert.equal(once.closed, true, 'KEEP_CONN clear: the server closes after END_REQUEST');
  } finally {
    await app.close();
  }
});
