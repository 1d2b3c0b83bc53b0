// Real-socket tests of bad input: each broken peer gets a logged reason and a closed connection or an error status, never a crash, and other connections go on.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isNodefpmError, type Handler } from '../src/index.js';
import {
  HEADER_LENGTH,
  KEEP_CONN,
  ProtocolStatus,
  RecordType,
  Role,
  encodeBeginRequest,
  encodeEndRequest,
  encodePairs,
  encodeParams,
  encodeRecord,
  writeHeader,
} from '../src/protocol/index.js';
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

async function eventually(condition: () => boolean, what: string, timeout = WAIT): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function endCount(peer: RawPeer, requestId: number): number {
  return peer.records.filter((r) => r.type === RecordType.EndRequest && r.requestId === requestId).length;
}

/** A record header with arbitrary fields (a bad version, a length that lies), followed by `content` as given. */
function rawRecord(fields: { version?: number; type: number; requestId: number; contentLength?: number; padding?: number }, content: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  writeHeader(header, 0, fields.type, fields.requestId, fields.contentLength ?? content.length, fields.padding ?? 0);
  header[0] = fields.version ?? 1;
  return Buffer.concat([header, content]);
}

/** The echo handler most tests use: reads the body, answers with it. */
const echo: Handler = async (req, res) => {
  const body = await req.text();
  res.setHeader('Content-Type', 'text/plain');
  res.end(`${req.method} ${req.url} ${body}`);
};

/**
 * A well-behaved keep-conn connection, opened before the misbehaving one: `check()` sends a request on
 * it and asserts the answer, so each test shows other connections are unaffected.
 */
async function goodPeer(app: TestServer): Promise<{ peer: RawPeer; check(): Promise<void> }> {
  const peer = await RawPeer.connect(app.address);
  let next = 0;
  const check = async (): Promise<void> => {
    next++;
    const id = (next % 5) + 1;
    const before = endCount(peer, id);
    const uri = `/good/${next}`;
    peer.sendRequest(id, requestParams('POST', uri, { CONTENT_LENGTH: '4' }), 'good');
    await peer.waitFor(() => endCount(peer, id) > before, WAIT, `the good connection's answer to ${uri}`);
    const mine = peer.records.filter((r) => r.requestId === id);
    const lastEnd = mine.findLastIndex((r) => r.type === RecordType.EndRequest);
    const previousEnd = mine.slice(0, lastEnd).findLastIndex((r) => r.type === RecordType.EndRequest);
    const stdout = Buffer.concat(mine.slice(previousEnd + 1, lastEnd).filter((r) => r.type === RecordType.Stdout).map((r) => r.content));
    const cgi = splitCgi(stdout);
    assert.equal(cgi.status, 200, `the good connection is answered 200 for ${uri}`);
    assert.equal(cgi.body.toString(), `POST ${uri} good`);
  };
  await check();
  return { peer, check };
}

test('a wrong version byte closes the connection with a logged reason; others go on', OPTS, async () => {
  const app = await startServer(echo);
  const good = await goodPeer(app);
  try {
    const bad = await RawPeer.connect(app.address);
    bad.send(rawRecord({ version: 2, type: RecordType.BeginRequest, requestId: 1 }, Buffer.from([0, 1, 1, 0, 0, 0, 0, 0])));
    await bad.waitForClose(WAIT);
    const entry = await app.logs.waitFor(/version 2 is not FCGI_VERSION_1/, WAIT);
    assert.equal(entry.level, 'error');
    assert.equal(entry.fields?.code, 'NODEFPM_PROTOCOL_VERSION');
    bad.close();

    // Lost sync after good records: a whole request, then a header whose version byte is garbage.
    const later = await RawPeer.connect(app.address);
    later.sendRequest(1, requestParams('GET', '/fine'));
    await later.waitForEnd(1, WAIT);
    later.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await later.waitForClose(WAIT);
    await app.logs.waitFor(/version 71 is not FCGI_VERSION_1 after 4 good records/, WAIT);
    later.close();
    await good.check();
  } finally {
    good.peer.close();
    await app.close();
  }
});

test('a record truncated by the peer closing mid-record is logged and the connection closed', OPTS, async () => {
  let calls = 0;
  const app = await startServer((req, res) => {
    calls++;
    return echo(req, res);
  });
  const good = await goodPeer(app);
  try {
    const bad = await RawPeer.connect(app.address);
    const params = encodeParams(1, requestParams('GET', '/truncated'));
    bad.sendBegin(1);
    bad.send(params.subarray(0, 20)); // header says more content than ever comes
    await sleep(20);
    bad.socket.end();
    await bad.waitForClose(WAIT);
    const entry = await app.logs.waitFor(/closed the connection in the middle of a record/, WAIT);
    assert.equal(entry.level, 'error');
    bad.close();

    // A header cut short.
    const cut = await RawPeer.connect(app.address);
    cut.send(encodeBeginRequest(1, Role.Responder, KEEP_CONN).subarray(0, 5));
    await sleep(20);
    cut.socket.end();
    await cut.waitForClose(WAIT);
    await eventually(() => app.logs.find(/middle of a record/).length === 2, 'the second truncation to be logged');
    cut.close();

    assert.equal(calls, 1, 'only the good request reached the handler');
    await eventually(() => app.server.activeRequests === 0, 'no request left active');
    await good.check();
  } finally {
    good.peer.close();
    await app.close();
  }
});

test('malformed name-value lengths in PARAMS get 400 on that request; the connection serves on', OPTS, async () => {
  let calls = 0;
  const app = await startServer((req, res) => {
    calls++;
    return echo(req, res);
  });
  const good = await goodPeer(app);
  const bad = await RawPeer.connect(app.address);
  try {
    const cases: Array<[string, Buffer]> = [
      // A 4-byte name length of 4096 with only a few bytes after it.
      ['4-byte length past the end', Buffer.concat([encodePairs({ REQUEST_METHOD: 'GET' }), Buffer.from([0x80, 0x00, 0x10, 0x00, 0x01]), Buffer.from('abc=')])],
      // A 4-byte value length whose own bytes are cut off.
      ['truncated length field', Buffer.concat([encodePairs({ A: 'b' }), Buffer.from([0x01, 0x80, 0x00])])],
      // A name length with no value length at all.
      ['missing value length', Buffer.from([0x05])],
    ];
    let id = 1;
    for (const [what, content] of cases) {
      bad.sendBegin(id);
      bad.send(encodeRecord(RecordType.Params, id, content), encodeRecord(RecordType.Params, id));
      bad.sendStdin(id);
      const response = await bad.waitForEnd(id, WAIT);
      assert.equal(splitCgi(response.stdout).status, 400, `${what}: answered 400`);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(response.endCount, 1);
      id++;
    }
    assert.equal(app.logs.find(/malformed PARAMS stream; answering 400/).length, cases.length, 'each malformed stream is logged');
    assert.equal(calls, 1, 'the handler never saw the malformed requests');
    bad.sendRequest(id, requestParams('GET', '/after'));
    const after = await bad.waitForEnd(id, WAIT);
    assert.equal(splitCgi(after.stdout).status, 200);
    await good.check();
  } finally {
    bad.close();
    good.peer.close();
    await app.close();
  }
});

test('PARAMS over maxParamsBytes get 431 with a logged reason; the connection serves on', OPTS, async () => {
  let calls = 0;
  const app = await startServer(
    (req, res) => {
      calls++;
      return echo(req, res);
    },
    { maxParamsBytes: 1024 },
  );
  const good = await goodPeer(app);
  const bad = await RawPeer.connect(app.address);
  try {
    // Sent in several records, so the limit is hit part-way through the stream.
    const stream = encodePairs(requestParams('GET', '/big', { HTTP_COOKIE: 'c'.repeat(3000) }));
    bad.sendBegin(1);
    for (let offset = 0; offset < stream.length; offset += 500) {
      bad.send(encodeRecord(RecordType.Params, 1, stream.subarray(offset, offset + 500)));
    }
    bad.send(encodeRecord(RecordType.Params, 1));
    bad.sendStdin(1);
    const response = await bad.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).status, 431);
    const entry = await app.logs.waitFor(/maxParamsBytes \(1024\)/, WAIT);
    assert.equal(entry.fields?.code, 'NODEFPM_PARAMS_TOO_LARGE');
    await sleep(50);
    assert.equal(response.endCount, 1);
    assert.equal(endCount(bad, 1), 1, 'the rest of the oversized stream is ignored');
    assert.equal(calls, 1, 'only the good request reached the handler');
    bad.sendRequest(2, requestParams('GET', '/small'));
    assert.equal(splitCgi((await bad.waitForEnd(2, WAIT)).stdout).status, 200);
    await good.check();
  } finally {
    bad.close();
    good.peer.close();
    await app.close();
  }
});

test('BEGIN_REQUEST for an id already active closes the connection with a logged reason', OPTS, async () => {
  const aborted = deferred<unknown>();
  const app = await startServer(async (req, res) => {
    if (req.url === '/held') {
      await new Promise((resolve) => req.signal.addEventListener('abort', resolve, { once: true }));
      aborted.resolve(req.signal.reason);
      res.end();
      return;
    }
    await echo(req, res);
  });
  const good = await goodPeer(app);
  try {
    const bad = await RawPeer.connect(app.address);
    bad.sendRequest(1, requestParams('GET', '/held'));
    await sleep(20);
    bad.sendBegin(1);
    await bad.waitForClose(WAIT);
    const entry = await app.logs.waitFor(/BEGIN_REQUEST for request 1, which is already active/, WAIT);
    assert.equal(entry.fields?.code, 'NODEFPM_PROTOCOL_DUPLICATE_ID');
    assert.ok(isNodefpmError(await aborted.promise, 'NODEFPM_CONNECTION_LOST'), 'the request in progress is aborted with the connection');
    bad.close();
    await eventually(() => app.server.activeRequests === 0, 'no request left active');
    await good.check();
  } finally {
    good.peer.close();
    await app.close();
  }
});

test('BEGIN_REQUEST with a body of the wrong length closes the connection with a logged reason', OPTS, async () => {
  const app = await startServer(echo);
  const good = await goodPeer(app);
  try {
    for (const length of [5, 0, 16]) {
      const bad = await RawPeer.connect(app.address);
      const body = Buffer.alloc(length);
      if (length >= 2) body[1] = Role.Responder;
      bad.send(encodeRecord(RecordType.BeginRequest, 1, body));
      bad.sendParams(1, requestParams());
      bad.sendStdin(1);
      await bad.waitForClose(WAIT);
      await app.logs.waitFor(new RegExp(`FCGI_BEGIN_REQUEST body must be 8 bytes, got ${length}`), WAIT);
      assert.equal(endCount(bad, 1), 0, `${length}-byte BEGIN body: no request was started`);
      bad.close();
    }
    assert.equal(app.server.activeRequests, 0);
    await good.check();
  } finally {
    good.peer.close();
    await app.close();
  }
});

test('STDIN before BEGIN_REQUEST is ignored with a warning and the connection still serves', OPTS, async () => {
  const app = await startServer(echo);
  const good = await goodPeer(app);
  const bad = await RawPeer.connect(app.address);
  try {
    bad.sendStdin(3, 'orphan body');
    const entry = await app.logs.waitFor(/ignored Stdin for request 3, which has no BEGIN_REQUEST/, WAIT);
    assert.equal(entry.level, 'warn');
    bad.sendRequest(3, requestParams('POST', '/real', { CONTENT_LENGTH: '4' }), 'real');
    const response = await bad.waitForEnd(3, WAIT);
    assert.equal(splitCgi(response.stdout).body.toString(), 'POST /real real', 'the orphan bytes did not leak into the request');
    await good.check();
  } finally {
    bad.close();
    good.peer.close();
    await app.close();
  }
});

test('STDIN before the end of PARAMS gets 400', OPTS, async () => {
  let calls = 0;
  const app = await startServer((req, res) => {
    calls++;
    return echo(req, res);
  });
  const good = await goodPeer(app);
  const bad = await RawPeer.connect(app.address);
  try {
    const params = encodeParams(1, requestParams('POST', '/early', { CONTENT_LENGTH: '3' }));
    bad.sendBegin(1);
    bad.send(params.subarray(0, params.length - HEADER_LENGTH)); // PARAMS without its empty record
    bad.sendStdin(1, 'abc', false);
    const response = await bad.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).status, 400);
    await app.logs.waitFor(/STDIN before the end of PARAMS/, WAIT);
    bad.send(encodeRecord(RecordType.Params, 1));
    bad.sendStdin(1);
    await sleep(50);
    assert.equal(endCount(bad, 1), 1);
    assert.equal(calls, 1, 'the handler never ran for it');
    bad.sendRequest(2, requestParams('GET', '/next'));
    assert.equal(splitCgi((await bad.waitForEnd(2, WAIT)).stdout).status, 200);
    await good.check();
  } finally {
    bad.close();
    good.peer.close();
    await app.close();
  }
});

test('a peer that connects and sends nothing is closed after idleTimeout', OPTS, async () => {
  const gate = deferred();
  const app = await startServer(
    async (req, res) => {
      if (req.url === '/hold') await gate.promise;
      await echo(req, res);
    },
    { idleTimeout: 300 },
  );
  // The good connection keeps a request in progress, so idleTimeout does not apply to it meanwhile.
  const good = await RawPeer.connect(app.address);
  try {
    good.sendRequest(1, requestParams('GET', '/hold'));
    const silent = await RawPeer.connect(app.address);
    await silent.waitForClose(WAIT);
    const entry = await app.logs.waitFor(/idle for idleTimeout \(300 ms\)/, WAIT);
    assert.equal(entry.fields?.code, 'NODEFPM_IDLE_TIMEOUT');
    silent.close();

    // Half a header, then silence: also idle.
    const partial = await RawPeer.connect(app.address);
    partial.send(Buffer.from([1, RecordType.BeginRequest, 0]));
    await partial.waitForClose(WAIT);
    partial.close();

    assert.equal(good.closed, false, 'a connection with a request in progress is not idle');
    gate.resolve();
    const held = await good.waitForEnd(1, WAIT);
    assert.equal(splitCgi(held.stdout).status, 200, 'the connection opened before is still served');
    // Once idle itself, the good connection is closed too.
    await good.waitForClose(WAIT);
  } finally {
    gate.resolve();
    good.close();
    await app.close();
  }
});

test('BEGIN and part of PARAMS then a stall gets 408 after paramsTimeout', OPTS, async () => {
  let calls = 0;
  const app = await startServer(
    (req, res) => {
      calls++;
      return echo(req, res);
    },
    { paramsTimeout: 300 },
  );
  const good = await goodPeer(app);
  try {
    const kept = await RawPeer.connect(app.address);
    const params = encodeParams(1, requestParams('GET', '/stalled'));
    kept.sendBegin(1);
    kept.send(params.subarray(0, params.length - HEADER_LENGTH));
    const response = await kept.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).status, 408);
    const entry = await app.logs.waitFor(/PARAMS not complete within paramsTimeout \(300 ms\)/, WAIT);
    assert.equal(entry.fields?.code, 'NODEFPM_PARAMS_TIMEOUT');
    assert.equal(calls, 1, 'the stalled request never reached the handler');
    kept.sendRequest(2, requestParams('GET', '/then'));
    assert.equal(splitCgi((await kept.waitForEnd(2, WAIT)).stdout).status, 200, 'keep-conn: the connection serves on');
    kept.close();

    const once = await RawPeer.connect(app.address);
    once.sendBegin(1, { keepConn: false });
    once.send(params.subarray(0, 30));
    const cut = await once.waitForEnd(1, WAIT);
    assert.equal(splitCgi(cut.stdout).status, 408);
    await once.waitForClose(WAIT);
    once.close();
    await good.check();
  } finally {
    good.peer.close();
    await app.close();
  }
});

test('STDIN shorter or longer than CONTENT_LENGTH fails the body read with NODEFPM_BODY_INCOMPLETE', OPTS, async () => {
  const errors: unknown[] = [];
  const app = await startServer(async (req, res) => {
    if (req.url.startsWith('/good/')) return echo(req, res);
    try {
      await req.text();
    } catch (error) {
      errors.push(error);
      throw error;
    }
    res.end('read it all?');
  });
  const good = await goodPeer(app);
  const bad = await RawPeer.connect(app.address);
  try {
    bad.sendRequest(1, requestParams('POST', '/short', { CONTENT_LENGTH: '10' }), '12345');
    const short = await bad.waitForEnd(1, WAIT);
    assert.equal(splitCgi(short.stdout).status, 400);
    await app.logs.waitFor(/STDIN ended after 5 of CONTENT_LENGTH 10 bytes/, WAIT);

    bad.sendRequest(2, requestParams('POST', '/long', { CONTENT_LENGTH: '5' }), '1234567890');
    const long = await bad.waitForEnd(2, WAIT);
    assert.equal(splitCgi(long.stdout).status, 400);
    await app.logs.waitFor(/STDIN carried more than CONTENT_LENGTH \(5\) bytes/, WAIT);

    assert.equal(errors.length, 2);
    for (const error of errors) assert.ok(isNodefpmError(error, 'NODEFPM_BODY_INCOMPLETE'), `the read fails with NODEFPM_BODY_INCOMPLETE: ${String(error)}`);
    assert.equal(endCount(bad, 1), 1);
    assert.equal(endCount(bad, 2), 1);
    bad.sendRequest(3, requestParams('POST', '/exact', { CONTENT_LENGTH: '5' }), '12345');
    const exact = await bad.waitForEnd(3, WAIT);
    assert.equal(splitCgi(exact.stdout).body.toString(), 'read it all?');
    await good.check();
  } finally {
    bad.close();
    good.peer.close();
    await app.close();
  }
});

test('records that travel from application to web server are ignored with a warning', OPTS, async () => {
  const app = await startServer(echo);
  const good = await goodPeer(app);
  const bad = await RawPeer.connect(app.address);
  try {
    bad.sendBegin(1);
    bad.sendParams(1, requestParams('POST', '/mixed', { CONTENT_LENGTH: '6' }));
    bad.send(
      encodeRecord(RecordType.Stdout, 1, Buffer.from('not for you')),
      encodeRecord(RecordType.Stderr, 1, Buffer.from('nor this')),
      encodeEndRequest(1, 0, ProtocolStatus.RequestComplete),
      encodeRecord(RecordType.GetValuesResult, 1, encodePairs({ FCGI_MAX_CONNS: '1' })),
      encodeRecord(RecordType.UnknownType, 1, Buffer.alloc(8)),
    );
    bad.sendStdin(1, 'abcdef');
    const response = await bad.waitForEnd(1, WAIT);
    assert.equal(splitCgi(response.stdout).body.toString(), 'POST /mixed abcdef', 'the request went on as if they were not there');
    assert.equal(response.endCount, 1);
    const warnings = app.logs.find(/ignored record: .* travels from application to web server/);
    assert.equal(warnings.length, 5, 'one warning per misdirected record');
    assert.ok(warnings.every((entry) => entry.level === 'warn'), 'logged as warnings');
    await good.check();
  } finally {
    bad.close();
    good.peer.close();
    await app.close();
  }
});

/** mulberry32: a small seeded PRNG, so a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Bytes for one fuzz connection: sometimes pure noise, mostly plausible requests (BEGIN, PARAMS split
 * anywhere, STDIN, interleaved across ids, with aborts and management records mixed in), then mutated:
 * flipped bytes, lengths that lie, a cut at a random point.
 */
function fuzzBytes(random: () => number): Buffer {
  const int = (n: number): number => Math.floor(random() * n);
  const noise = (length: number): Buffer => Buffer.from(Array.from({ length }, () => int(256)));
  if (random() < 0.15) return noise(1 + int(2048));
  const record = (type: number, requestId: number, content: Buffer): Buffer => {
    const padding = int(8);
    const header = Buffer.alloc(HEADER_LENGTH);
    const declared = random() < 0.97 ? content.length : int(65536);
    writeHeader(header, 0, type, requestId, declared, padding);
    return Buffer.concat([header, content, Buffer.alloc(padding)]);
  };
  const queues: Buffer[][] = [];
  const requests = 1 + int(3);
  for (let r = 0; r < requests; r++) {
    const id = 1 + int(3);
    const queue: Buffer[] = [];
    const role = random() < 0.85 ? Role.Responder : int(5);
    queue.push(record(RecordType.BeginRequest, id, encodeBeginRequest(id, role, random() < 0.5 ? KEEP_CONN : 0).subarray(8)));
    const bodyLength = int(60);
    const declared = random() < 0.8 ? bodyLength : int(60);
    let params = encodePairs(requestParams(random() < 0.5 ? 'POST' : 'GET', `/f/${int(1000)}`, { CONTENT_LENGTH: String(declared) }));
    if (random() < 0.15) params = Buffer.concat([params, noise(1 + int(12))]);
    for (let offset = 0; offset < params.length; ) {
      const size = 1 + int(params.length);
      queue.push(record(RecordType.Params, id, params.subarray(offset, offset + size)));
      offset += size;
    }
    if (random() < 0.9) queue.push(record(RecordType.Params, id, Buffer.alloc(0)));
    const body = noise(bodyLength);
    for (let offset = 0; offset < body.length; ) {
      const size = 1 + int(body.length);
      queue.push(record(RecordType.Stdin, id, body.subarray(offset, offset + size)));
      offset += size;
    }
    if (random() < 0.85) queue.push(record(RecordType.Stdin, id, Buffer.alloc(0)));
    if (random() < 0.15) queue.splice(1 + int(queue.length), 0, record(RecordType.AbortRequest, id, Buffer.alloc(0)));
    queues.push(queue);
  }
  const extras = int(4);
  for (let i = 0; i < extras; i++) {
    const choice = int(4);
    const extra =
      choice === 0
        ? record(RecordType.GetValues, 0, encodePairs({ FCGI_MAX_CONNS: '', FCGI_MPXS_CONNS: '', NOPE: '' }))
        : choice === 1
          ? record(12 + int(244), int(2), noise(int(16)))
          : choice === 2
            ? record(1 + int(11), int(4), noise(int(100)))
            : record(RecordType.GetValues, 0, noise(int(40)));
    queues.push([extra]);
  }
  // Interleave the queues, keeping each one's order.
  const parts: Buffer[] = [];
  while (queues.some((queue) => queue.length > 0)) {
    const live = queues.filter((queue) => queue.length > 0);
    parts.push(live[int(live.length)]!.shift()!);
  }
  const all = Buffer.concat(parts);
  const flips = random() < 0.5 ? 0 : 1 + int(4);
  for (let i = 0; i < flips; i++) all[int(all.length)] = int(256);
  return random() < 0.2 ? all.subarray(0, int(all.length + 1)) : all;
}

test('fuzz: connections sending random bytes never crash the process, and a good connection keeps being served', OPTS, async () => {
  const crashes: unknown[] = [];
  const onCrash = (error: unknown): void => {
    crashes.push(error);
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const app = await startServer(echo, { paramsTimeout: 400, idleTimeout: 5000, abortTimeout: 200, maxParamsBytes: 2048 });
  const good = await goodPeer(app);
  const fuzzPeers: RawPeer[] = [];
  try {
    const seed = Number(process.env.NODEFPM_FUZZ_SEED ?? 20240601);
    const random = prng(seed);
    const rounds = 12;
    const perRound = 5;
    for (let round = 0; round < rounds; round++) {
      const batch = await Promise.all(Array.from({ length: perRound }, () => RawPeer.connect(app.address)));
      fuzzPeers.push(...batch);
      await Promise.all(
        batch.map(async (peer) => {
          const bytes = fuzzBytes(random);
          const ending = random();
          const chunks: Buffer[] = [];
          for (let offset = 0; offset < bytes.length; ) {
            const size = 1 + Math.floor(random() * 700);
            chunks.push(bytes.subarray(offset, offset + size));
            offset += size;
          }
          for (const chunk of chunks) {
            if (peer.closed) break;
            peer.send(chunk);
            await sleep(random() < 0.3 ? 1 : 0);
          }
          if (ending < 0.3) peer.socket.end();
          else if (ending < 0.6) peer.close();
          else await sleep(Math.floor(random() * 50));
        }),
      );
      await good.check();
    }
    for (const peer of fuzzPeers) peer.close();
    await eventually(() => app.server.connectionCount === 1, 'every fuzz connection to be closed');
    await eventually(() => app.server.activeRequests === 0, 'no request left active');
    await good.check();
    if (process.env.NODEFPM_FUZZ_DEBUG === '1') {
      const counts = new Map<string, number>();
      for (const entry of app.logs.entries) {
        const key = `${entry.level} ${entry.message.replace(/\d+/g, 'N').slice(0, 70)}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      console.error(app.server.stats, counts);
    }
    assert.deepEqual(crashes, [], `no uncaught exception or unhandled rejection (seed ${seed})`);
    assert.deepEqual(
      app.logs.find(/request dispatch failed|handler failed/).map((entry) => entry.message),
      [],
      'no internal failure was logged',
    );
  } finally {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    for (const peer of fuzzPeers) peer.close();
    good.peer.close();
    await app.close();
  }
});
