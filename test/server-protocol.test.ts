// Real-socket tests of the engine's FastCGI protocol: Appendix B exchanges, keep-conn, multiplexing, management records, roles, CGI output, handler failures, TCP.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Handler } from '../src/index.js';
import {
  KEEP_CONN,
  ProtocolStatus,
  RecordType,
  Role,
  decodeEndRequest,
  decodePairList,
  encodeBeginRequest,
  encodePairs,
  encodeRecord,
} from '../src/protocol/index.js';
import { RawPeer, requestParams, splitCgi, type ReceivedRecord } from './helpers/raw-peer.js';
import { startServer } from './helpers/servers.js';

/** Generous waits: the machine may be loaded. */
const WAIT = 10_000;
const OPTS = { timeout: 60_000 };

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

function endsFor(peer: RawPeer, requestId: number): ReceivedRecord[] {
  return peer.records.filter((r) => r.type === RecordType.EndRequest && r.requestId === requestId);
}

interface Segment {
  records: ReceivedRecord[];
  stdout: Buffer;
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
}

/** The records of `requestId` cut into one segment per END_REQUEST (for a request id reused in sequence). */
function segments(peer: RawPeer, requestId: number): Segment[] {
  const out: Segment[] = [];
  let current: ReceivedRecord[] = [];
  for (const record of peer.records) {
    if (record.requestId !== requestId) continue;
    current.push(record);
    if (record.type === RecordType.EndRequest) {
      const end = decodeEndRequest(record.content);
      out.push({
        records: current,
        stdout: Buffer.concat(current.filter((r) => r.type === RecordType.Stdout).map((r) => r.content)),
        stderr: Buffer.concat(current.filter((r) => r.type === RecordType.Stderr).map((r) => r.content)),
        appStatus: end.appStatus,
        protocolStatus: end.protocolStatus,
      });
      current = [];
    }
  }
  return out;
}

/** Checks the shape of one request's output: stream records, each stream ended by one empty record, END_REQUEST last. */
function assertWellFormed(records: ReceivedRecord[], requestId: number): void {
  const mine = records.filter((r) => r.requestId === requestId);
  const last = mine[mine.length - 1];
  assert.ok(last !== undefined && last.type === RecordType.EndRequest, `END_REQUEST must be the last record of request ${requestId}`);
  assert.equal(mine.filter((r) => r.type === RecordType.EndRequest).length, 1, `exactly one END_REQUEST for request ${requestId}`);
  for (const type of [RecordType.Stdout, RecordType.Stderr]) {
    const stream = mine.filter((r) => r.type === type);
    if (stream.length === 0) {
      assert.equal(type, RecordType.Stderr, 'STDOUT is always sent, at least its empty record');
      continue;
    }
    const empties = stream.filter((r) => r.content.length === 0);
    assert.equal(empties.length, 1, `stream type ${type} of request ${requestId} has exactly one empty record`);
    assert.equal(stream[stream.length - 1]!.content.length, 0, `the empty record ends stream type ${type}`);
  }
}

async function assertServes(peer: RawPeer, requestId: number, uri = '/check'): Promise<void> {
  const before = endsFor(peer, requestId).length;
  peer.sendRequest(requestId, requestParams('GET', uri));
  await peer.waitFor((records) => records.filter((r) => r.type === RecordType.EndRequest && r.requestId === requestId).length > before, WAIT, `END_REQUEST of ${uri}`);
  const segment = segments(peer, requestId).at(-1)!;
  const cgi = splitCgi(segment.stdout);
  assert.equal(cgi.status, 200, `${uri} is answered 200`);
  assert.equal(segment.protocolStatus, ProtocolStatus.RequestComplete);
}

/** The Appendix B params: "\013\002SERVER_PORT80\013\016SERVER_ADDR199.170.183.42", plus what a handler needs. */
const exampleParams = Buffer.concat([
  Buffer.from('\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42', 'latin1'),
  encodePairs({ REQUEST_METHOD: 'GET', REQUEST_URI: '/example' }),
]);

const exampleBody = '<html>\n<head> ... ';

test('Appendix B example 1: a simple GET with no body, connection closed after it (flags 0)', OPTS, async () => {
  const seen: Array<Record<string, string>> = [];
  const app = await startServer((req, res) => {
    seen.push({ ...req.params });
    res.setHeader('Content-type', 'text/html');
    res.end(exampleBody);
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.send(
      encodeBeginRequest(1, Role.Responder, 0),
      encodeRecord(RecordType.Params, 1, exampleParams),
      encodeRecord(RecordType.Params, 1),
      encodeRecord(RecordType.Stdin, 1),
    );
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.SERVER_PORT, '80');
    assert.equal(seen[0]!.SERVER_ADDR, '199.170.183.42');
    assert.equal(
      response.stdout.toString('latin1'),
      `Status: 200 OK\r\nContent-type: text/html\r\nContent-Length: ${exampleBody.length}\r\n\r\n${exampleBody}`,
    );
    assert.equal(response.stderr.length, 0);
    assertWellFormed(peer.records, 1);
    const end = endsFor(peer, 1)[0]!;
    assert.deepEqual([...end.content], [0, 0, 0, 0, ProtocolStatus.RequestComplete, 0, 0, 0], 'END_REQUEST {0, FCGI_REQUEST_COMPLETE}');
    assert.equal(peer.records.filter((r) => r.type === RecordType.Stderr).length, 0, 'no STDERR stream when nothing was written to it');
    await peer.waitForClose(WAIT);
    assert.ok(peer.closed, 'without FCGI_KEEP_CONN the application closes the connection');
  } finally {
    peer.close();
    await app.close();
  }
});

test('Appendix B example 2: PARAMS split mid-name across records, and STDIN the handler reads', OPTS, async () => {
  const seen: Array<{ params: Record<string, string>; body: string }> = [];
  const app = await startServer(async (req, res) => {
    const body = await req.text();
    seen.push({ params: { ...req.params }, body });
    res.setHeader('Content-type', 'text/html');
    res.end(`${exampleBody}${body}`);
  });
  const peer = await RawPeer.connect(app.address);
  try {
    const cut = exampleParams.indexOf('SERVER_ADDR') + 3; // "...\013\016SER" | "VER_ADDR199.170.183.42 ..."
    assert.equal(exampleParams.toString('latin1', cut - 3, cut), 'SER');
    const stdin = 'quantity=100&item=3047936';
    peer.send(
      encodeBeginRequest(1, Role.Responder, 0),
      encodeRecord(RecordType.Params, 1, exampleParams.subarray(0, cut)),
      encodeRecord(RecordType.Params, 1, exampleParams.subarray(cut)),
      encodeRecord(RecordType.Params, 1),
      encodeRecord(RecordType.Stdin, 1, Buffer.from(stdin)),
      encodeRecord(RecordType.Stdin, 1),
    );
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.params.SERVER_ADDR, '199.170.183.42');
    assert.equal(seen[0]!.params.SERVER_PORT, '80');
    assert.equal(seen[0]!.params.REQUEST_URI, '/example');
    assert.equal(seen[0]!.body, stdin);
    assert.equal(splitCgi(response.stdout).body.toString(), `${exampleBody}${stdin}`);
    assert.equal(response.appStatus, 0);
    assertWellFormed(peer.records, 1);
    await peer.waitForClose(WAIT);
  } finally {
    peer.close();
    await app.close();
  }
});

test('Appendix B example 3: STDERR between STDOUT writes, ended by an empty STDERR record, appStatus 938', OPTS, async () => {
  const app = await startServer((_req, res) => {
    res.setHeader('Content-type', 'text/html');
    res.write('<ht');
    res.writeStderr('config error: missing SI_UID\n');
    res.write(`ml>\n<head> ... `);
    res.appStatus = 938;
    res.end();
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.send(
      encodeBeginRequest(1, Role.Responder, 0),
      encodeRecord(RecordType.Params, 1, exampleParams),
      encodeRecord(RecordType.Params, 1),
      encodeRecord(RecordType.Stdin, 1),
    );
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(response.stderr.toString(), 'config error: missing SI_UID\n');
    assert.equal(response.stdout.toString('latin1'), `Status: 200 OK\r\nContent-type: text/html\r\n\r\n<html>\n<head> ... `);
    assert.equal(response.appStatus, 938);
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    assertWellFormed(peer.records, 1);

    // The interleaving is kept: what was written to STDOUT before the STDERR write precedes it on the wire.
    const mine = peer.records.filter((r) => r.requestId === 1);
    const firstStderr = mine.findIndex((r) => r.type === RecordType.Stderr);
    const stdoutBefore = Buffer.concat(mine.slice(0, firstStderr).filter((r) => r.type === RecordType.Stdout).map((r) => r.content));
    assert.ok(stdoutBefore.toString('latin1').endsWith('<ht'), 'STDOUT written before the STDERR write goes out before it');
    const stdoutAfter = Buffer.concat(mine.slice(firstStderr).filter((r) => r.type === RecordType.Stdout).map((r) => r.content));
    assert.equal(stdoutAfter.toString(), `ml>\n<head> ... `);
    const emptyStderr = mine.findIndex((r) => r.type === RecordType.Stderr && r.content.length === 0);
    const endIndex = mine.findIndex((r) => r.type === RecordType.EndRequest);
    assert.ok(emptyStderr > firstStderr && emptyStderr < endIndex, 'the empty STDERR record comes after the error text and before END_REQUEST');
    const end = endsFor(peer, 1)[0]!;
    assert.deepEqual([...end.content], [0, 0, 0x03, 0xaa, 0, 0, 0, 0], 'END_REQUEST {938, FCGI_REQUEST_COMPLETE}');
    await peer.waitForClose(WAIT);
  } finally {
    peer.close();
    await app.close();
  }
});

test('Appendix B example 4: two requests multiplexed on one keep-conn connection, finishing out of order', OPTS, async () => {
  const fastDone = deferred();
  const app = await startServer(async (req, res) => {
    res.setHeader('Content-type', 'text/html');
    if (req.url === '/slow') {
      res.write('<html>\n<head> one part ');
      await fastDone.promise;
      await sleep(20);
      res.end('and the rest</html>');
      return;
    }
    await req.text();
    res.on('finish', () => fastDone.resolve());
    res.end('<html>\n<head> the fast one</html>');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    const params = (uri: string): Buffer => Buffer.concat([exampleParams, encodePairs({ REQUEST_URI: uri })]);
    peer.send(
      encodeBeginRequest(1, Role.Responder, KEEP_CONN),
      encodeRecord(RecordType.Params, 1, params('/slow')),
      encodeRecord(RecordType.Params, 1),
      encodeBeginRequest(2, Role.Responder, KEEP_CONN),
      encodeRecord(RecordType.Params, 2, params('/fast')),
      encodeRecord(RecordType.Params, 2),
      encodeRecord(RecordType.Stdin, 1),
      encodeRecord(RecordType.Stdin, 2),
    );
    const [one, two] = await Promise.all([peer.waitForEnd(1, WAIT), peer.waitForEnd(2, WAIT)]);
    const endOrder = peer.records.filter((r) => r.type === RecordType.EndRequest).map((r) => r.requestId);
    assert.deepEqual(endOrder, [2, 1], 'the second request ends first');
    const firstOut = peer.records.findIndex((r) => r.type === RecordType.Stdout && r.requestId === 1 && r.content.length > 0);
    const twoEnd = peer.records.findIndex((r) => r.type === RecordType.EndRequest && r.requestId === 2);
    assert.ok(firstOut < twoEnd, 'request 1 output started before request 2 ended: the streams interleave');
    assert.equal(splitCgi(one.stdout).body.toString(), '<html>\n<head> one part and the rest</html>');
    assert.equal(splitCgi(two.stdout).body.toString(), '<html>\n<head> the fast one</html>');
    assertWellFormed(peer.records, 1);
    assertWellFormed(peer.records, 2);
    assert.equal(await peer.staysOpen(100), true, 'FCGI_KEEP_CONN: the connection stays open');
  } finally {
    peer.close();
    await app.close();
  }
});

test('KEEP_CONN clear: the connection is closed after END_REQUEST, even when the handler is slow', OPTS, async () => {
  const app = await startServer(async (_req, res) => {
    await sleep(150);
    res.end('slow but done');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/slow'), '', { keepConn: false });
    assert.equal(await peer.staysOpen(50), true, 'not closed while the request is in progress');
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).body.toString(), 'slow but done');
    await peer.waitForClose(WAIT);
    assert.ok(peer.closed, 'closed after END_REQUEST');
    assert.equal(endsFor(peer, 1).length, 1);
  } finally {
    peer.close();
    await app.close();
  }
});

test('KEEP_CONN set: never closed, across sequential requests reusing the same id', OPTS, async () => {
  let calls = 0;
  const app = await startServer(async (req, res) => {
    calls++;
    if (req.url.endsWith('/slow')) await sleep(50);
    res.end(`answer ${req.url} ${await req.text()}`);
  });
  const peer = await RawPeer.connect(app.address);
  try {
    const rounds = 6;
    for (let i = 0; i < rounds; i++) {
      const uri = i % 2 === 0 ? `/n/${i}/slow` : `/n/${i}`;
      peer.sendRequest(1, requestParams('POST', uri, { CONTENT_LENGTH: String(`body${i}`.length) }), `body${i}`);
      await peer.waitFor((records) => records.filter((r) => r.type === RecordType.EndRequest).length === i + 1, WAIT, `END_REQUEST ${i + 1}`);
      assert.equal(peer.closed, false, `still open after request ${i + 1}`);
    }
    const all = segments(peer, 1);
    assert.equal(all.length, rounds, 'one END_REQUEST per request');
    all.forEach((segment, i) => {
      const uri = i % 2 === 0 ? `/n/${i}/slow` : `/n/${i}`;
      assert.equal(splitCgi(segment.stdout).body.toString(), `answer ${uri} body${i}`);
      assert.equal(segment.protocolStatus, ProtocolStatus.RequestComplete);
    });
    assert.equal(calls, rounds);
    assert.equal(await peer.staysOpen(200), true, 'FCGI_KEEP_CONN set: the web server owns the connection');
    assert.equal(endsFor(peer, 1).length, rounds, 'no extra END_REQUEST arrived later');
  } finally {
    peer.close();
    await app.close();
  }
});

function getValuesAnswer(peer: RawPeer): Promise<Array<[string, string]>> {
  return peer
    .waitFor((records) => records.some((r) => r.type === RecordType.GetValuesResult), WAIT, 'FCGI_GET_VALUES_RESULT')
    .then((records) => {
      const answer = records.find((r) => r.type === RecordType.GetValuesResult)!;
      assert.equal(answer.requestId, 0, 'GET_VALUES_RESULT is a management record');
      return decodePairList(answer.content);
    });
}

test('FCGI_GET_VALUES is answered from the configured limits, unknown names omitted', OPTS, async () => {
  const app = await startServer(
    (_req, res) => {
      res.end('x');
    },
    { maxConnections: 7, maxRequests: 9, multiplex: false },
  );
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendGetValues(['FCGI_MAX_CONNS', 'FCGI_NOT_A_NAME', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']);
    assert.deepEqual(await getValuesAnswer(peer), [
      ['FCGI_MAX_CONNS', '7'],
      ['FCGI_MAX_REQS', '9'],
      ['FCGI_MPXS_CONNS', '0'],
    ]);
    await assertServes(peer, 1);
  } finally {
    peer.close();
    await app.close();
  }
});

test('FCGI_GET_VALUES with the defaults: 1024, 1024, multiplexing on', OPTS, async () => {
  const app = await startServer((_req, res) => {
    res.end('x');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendGetValues(['FCGI_MPXS_CONNS', 'FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'SOMETHING_ELSE']);
    assert.deepEqual(await getValuesAnswer(peer), [
      ['FCGI_MPXS_CONNS', '1'],
      ['FCGI_MAX_CONNS', '1024'],
      ['FCGI_MAX_REQS', '1024'],
    ]);
  } finally {
    peer.close();
    await app.close();
  }
});

test('FCGI_GET_VALUES arriving mid-request on the same connection is answered and the request completes', OPTS, async () => {
  const gate = deferred();
  const started = deferred();
  const app = await startServer(async (_req, res) => {
    started.resolve();
    await gate.promise;
    res.end('finished');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendBegin(1);
    peer.sendParams(1, requestParams('GET', '/wait'));
    await started.promise;
    peer.sendGetValues(['FCGI_MAX_REQS']);
    assert.deepEqual(await getValuesAnswer(peer), [['FCGI_MAX_REQS', '1024']]);
    assert.equal(endsFor(peer, 1).length, 0, 'the request is still in progress');
    peer.sendStdin(1);
    gate.resolve();
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).body.toString(), 'finished');
    assertWellFormed(peer.records, 1);
  } finally {
    peer.close();
    await app.close();
  }
});

test('an unknown management record type gets FCGI_UNKNOWN_TYPE with the exact 8-byte body', OPTS, async () => {
  const app = await startServer((_req, res) => {
    res.end('x');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.send(encodeRecord(42, 0, Buffer.from('whatever')));
    const records = await peer.waitFor((all) => all.some((r) => r.type === RecordType.UnknownType), WAIT, 'FCGI_UNKNOWN_TYPE');
    const answer = records.find((r) => r.type === RecordType.UnknownType)!;
    assert.equal(answer.requestId, 0);
    assert.deepEqual([...answer.content], [42, 0, 0, 0, 0, 0, 0, 0]);
    await assertServes(peer, 1);
    assert.equal(peer.records.filter((r) => r.type === RecordType.UnknownType).length, 1);
  } finally {
    peer.close();
    await app.close();
  }
});

test('records for inactive request ids are ignored and the connection still serves', OPTS, async () => {
  let calls = 0;
  const app = await startServer(async (req, res) => {
    calls++;
    res.end(`got ${await req.text()}`);
  });
  const peer = await RawPeer.connect(app.address);
  try {
    await assertServes(peer, 1, '/first');
    // STDIN for request 1 after its END_REQUEST, and an ABORT and PARAMS for ids never begun.
    peer.sendStdin(1, 'late body bytes');
    peer.sendAbort(5);
    peer.send(encodeRecord(RecordType.Params, 6, encodePairs({ A: 'b' })));
    await app.logs.waitFor(/ignored AbortRequest for request 5, which has no BEGIN_REQUEST/, WAIT);
    await assertServes(peer, 1, '/second');
    await assertServes(peer, 2, '/third');
    assert.equal(calls, 3);
    assert.equal(endsFor(peer, 5).length, 0, 'nothing is answered for an id never begun');
    assert.equal(endsFor(peer, 6).length, 0);
    assert.equal(endsFor(peer, 1).length, 2);
    const second = segments(peer, 1)[1]!;
    assert.equal(splitCgi(second.stdout).body.toString(), 'got ', 'the late STDIN did not leak into the next request with the same id');
  } finally {
    peer.close();
    await app.close();
  }
});

test('unknown, Authorizer and Filter roles get FCGI_UNKNOWN_ROLE; a keep-conn connection stays usable', OPTS, async () => {
  let calls = 0;
  const app = await startServer((_req, res) => {
    calls++;
    res.end('ok');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    let id = 1;
    for (const role of [9, Role.Authorizer, Role.Filter]) {
      peer.sendRequest(id, requestParams('GET', '/role'), '', { role });
      const response = await peer.waitForEnd(id, WAIT);
      assert.equal(response.protocolStatus, ProtocolStatus.UnknownRole, `role ${role} is refused`);
      assert.equal(response.stdout.length, 0);
      assert.equal(response.endCount, 1);
      id++;
    }
    await assertServes(peer, id);
    assert.equal(calls, 1, 'the handler ran only for the Responder request');
    assert.equal(endsFor(peer, 1).length, 1, 'the refused request got exactly one END_REQUEST');
    assert.ok(app.logs.find(/role 9 is not served/).length > 0, 'the refusal is logged with the role');

    // Without KEEP_CONN the refusal also closes the connection.
    const once = await RawPeer.connect(app.address);
    try {
      once.sendRequest(1, requestParams(), '', { role: 9, keepConn: false });
      const response = await once.waitForEnd(1, WAIT);
      assert.equal(response.protocolStatus, ProtocolStatus.UnknownRole);
      await once.waitForClose(WAIT);
    } finally {
      once.close();
    }
  } finally {
    peer.close();
    await app.close();
  }
});

test('multiplex: false refuses a second concurrent request with FCGI_CANT_MPX_CONN; the first completes', OPTS, async () => {
  const gate = deferred();
  const started = deferred();
  let calls = 0;
  const app = await startServer(
    async (req, res) => {
      calls++;
      if (req.url === '/slow') {
        started.resolve();
        await gate.promise;
      }
      res.end(`done ${req.url}`);
    },
    { multiplex: false },
  );
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/slow'));
    await started.promise;
    peer.sendRequest(2, requestParams('GET', '/second'));
    const refused = await peer.waitForEnd(2, WAIT);
    assert.equal(refused.protocolStatus, ProtocolStatus.CantMpxConn);
    assert.equal(refused.stdout.length, 0);
    assert.equal(endsFor(peer, 1).length, 0, 'the first request is still running');
    gate.resolve();
    const first = await peer.waitForEnd(1, WAIT);
    assert.equal(first.protocolStatus, ProtocolStatus.RequestComplete);
    assert.equal(splitCgi(first.stdout).body.toString(), 'done /slow');
    assertWellFormed(peer.records, 1);
    assert.equal(calls, 1);
    assert.ok(app.logs.find(/multiplexing is off/).length > 0, 'the refusal is logged');
    await assertServes(peer, 2, '/after');
  } finally {
    peer.close();
    await app.close();
  }
});

test('output is CGI: a Status line and no Transfer-Encoding, Connection or Keep-Alive headers', OPTS, async () => {
  const app = await startServer((_req, res) => {
    res.statusCode = 201;
    res.setHeader('Transfer-Encoding', 'chunked');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('Keep-Alive', 'timeout=5');
    res.setHeader('X-Kept', 'yes');
    res.write('part one, ');
    res.end('part two');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/cgi'));
    const response = await peer.waitForEnd(1, WAIT);
    const text = response.stdout.toString('latin1');
    assert.ok(text.startsWith('Status: 201 Created\r\n'), `the head starts with a Status line: ${JSON.stringify(text.slice(0, 40))}`);
    const cgi = splitCgi(response.stdout);
    assert.equal(cgi.headers['x-kept'], 'yes');
    for (const name of ['transfer-encoding', 'connection', 'keep-alive']) {
      assert.equal(cgi.headers[name], undefined, `${name} is not sent`);
    }
    assert.doesNotMatch(text.slice(0, text.indexOf('\r\n\r\n')), /transfer-encoding|keep-alive|^connection:/im);
    assert.equal(cgi.body.toString(), 'part one, part two');
  } finally {
    peer.close();
    await app.close();
  }
});

test('a 66000-byte response comes out as STDOUT records of at most 65535 bytes', OPTS, async () => {
  const big = Buffer.alloc(66_000, 0x61);
  big[65_999] = 0x7a;
  const app = await startServer((req, res) => {
    if (req.url === '/streamed') {
      res.write(big.subarray(0, 1000));
      res.write(big.subarray(1000));
      res.end();
    } else {
      res.end(big);
    }
  });
  const peer = await RawPeer.connect(app.address);
  try {
    let id = 1;
    for (const uri of ['/whole', '/streamed']) {
      peer.sendRequest(id, requestParams('GET', uri));
      const response = await peer.waitForEnd(id, WAIT);
      const cgi = splitCgi(response.stdout);
      assert.equal(cgi.body.length, big.length, `${uri}: every byte arrives`);
      assert.ok(cgi.body.equals(big), `${uri}: the bytes arrive in order`);
      const sizes = response.stdoutRecords.map((r) => r.length);
      assert.ok(sizes.every((size) => size <= 65535), `${uri}: record sizes ${sizes.join(',')}`);
      assert.ok(sizes.filter((size) => size > 0).length >= 2, `${uri}: split into at least two records`);
      assertWellFormed(peer.records, id);
      id++;
    }
  } finally {
    peer.close();
    await app.close();
  }
});

test('many small writes in one tick are coalesced into few STDOUT records', OPTS, async () => {
  const app = await startServer(async (req, res) => {
    const chunk = '0123456789';
    if (req.url === '/then-end') {
      for (let i = 0; i < 100; i++) res.write(chunk);
      res.end();
      return;
    }
    for (let i = 0; i < 100; i++) res.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
    res.end();
  });
  const peer = await RawPeer.connect(app.address);
  try {
    let id = 1;
    for (const uri of ['/then-end', '/end-later']) {
      peer.sendRequest(id, requestParams('GET', uri));
      const response = await peer.waitForEnd(id, WAIT);
      assert.equal(splitCgi(response.stdout).body.toString(), '0123456789'.repeat(100));
      const withContent = response.stdoutRecords.filter((r) => r.length > 0).length;
      assert.ok(withContent <= 2, `${uri}: 100 writes of 10 bytes took ${withContent} STDOUT records`);
      id++;
    }
  } finally {
    peer.close();
    await app.close();
  }
});

for (const kind of ['throws synchronously', 'rejects'] as const) {
  test(`a handler that ${kind} yields a 500, the error on FCGI_STDERR, appStatus 1, and the connection serves on`, OPTS, async () => {
    const handler: Handler =
      kind === 'throws synchronously'
        ? (req, res) => {
            if (req.url === '/fail') throw new Error('boom from the handler');
            res.end('fine');
          }
        : async (req, res) => {
            await sleep(5);
            if (req.url === '/fail') throw new Error('boom from the handler');
            res.end('fine');
          };
    const app = await startServer(handler);
    const peer = await RawPeer.connect(app.address);
    try {
      peer.sendRequest(1, requestParams('GET', '/fail'));
      const failed = await peer.waitForEnd(1, WAIT);
      const cgi = splitCgi(failed.stdout);
      assert.equal(cgi.status, 500);
      assert.match(cgi.body.toString(), /^500 Internal Server Error/);
      assert.doesNotMatch(cgi.body.toString(), /boom/, 'no error details to the client outside development');
      assert.match(failed.stderr.toString(), /boom from the handler/);
      assert.equal(failed.appStatus, 1);
      assert.equal(failed.protocolStatus, ProtocolStatus.RequestComplete);
      assertWellFormed(peer.records, 1);
      await app.logs.waitFor(/handler failed: GET \/fail/, WAIT);

      peer.sendRequest(1, requestParams('GET', '/ok'));
      await peer.waitFor((records) => endsFor(peer, 1).length === 2 && records.length > 0, WAIT, 'second END_REQUEST');
      const next = segments(peer, 1)[1]!;
      assert.equal(splitCgi(next.stdout).status, 200);
      assert.equal(splitCgi(next.stdout).body.toString(), 'fine');
      assert.equal(next.appStatus, 0);
      assert.equal(next.stderr.length, 0);
    } finally {
      peer.close();
      await app.close();
    }
  });
}

test('a handler that fails after its head went out: the response is cut short, the error on STDERR, one END_REQUEST', OPTS, async () => {
  const app = await startServer(async (req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.write('the first part');
    await sleep(5);
    if (req.url === '/fail') throw new Error('failed half-way');
    res.end(' and the rest');
  });
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('GET', '/fail'));
    const failed = await peer.waitForEnd(1, WAIT);
    const cgi = splitCgi(failed.stdout);
    assert.equal(cgi.status, 200, 'the status already sent stands');
    assert.equal(cgi.body.toString(), 'the first part');
    assert.match(failed.stderr.toString(), /failed half-way/);
    assert.equal(failed.appStatus, 1);
    assertWellFormed(peer.records, 1);
    peer.sendRequest(2, requestParams('GET', '/ok'));
    const next = await peer.waitForEnd(2, WAIT);
    assert.equal(splitCgi(next.stdout).body.toString(), 'the first part and the rest');
    assert.equal(next.appStatus, 0);
  } finally {
    peer.close();
    await app.close();
  }
});

test('TCP transport over 127.0.0.1: requests, keep-conn and GET_VALUES', OPTS, async () => {
  const app = await startServer(
    async (req, res) => {
      res.end(`tcp ${req.method} ${await req.text()}`);
    },
    { transport: 'tcp' },
  );
  assert.match(app.address, /^127\.0\.0\.1:\d+$/);
  const peer = await RawPeer.connect(app.address);
  try {
    peer.sendRequest(1, requestParams('POST', '/t', { CONTENT_LENGTH: '5' }), 'hello');
    const response = await peer.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).body.toString(), 'tcp POST hello');
    peer.sendGetValues(['FCGI_MPXS_CONNS']);
    assert.deepEqual(await getValuesAnswer(peer), [['FCGI_MPXS_CONNS', '1']]);
    await assertServes(peer, 2);
    assert.equal(await peer.staysOpen(50), true, 'keep-conn over TCP');

    const once = await RawPeer.connect(app.address);
    try {
      once.sendRequest(1, requestParams(), '', { keepConn: false });
      await once.waitForEnd(1, WAIT);
      await once.waitForClose(WAIT);
    } finally {
      once.close();
    }
  } finally {
    peer.close();
    await app.close();
  }
});
