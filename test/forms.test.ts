// Forms and uploads over real FastCGI connections: urlencoded and multipart, temp files and stream mode, every limit (413) and malformation (400) logged, temp files gone however the request ends.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { FcgiClient, type FcgiResponse } from '../src/client/index.js';
import type { Handler } from '../src/index.js';
import { captureLogger } from './helpers/log-capture.js';
import { RawPeer, requestParams, splitCgi } from './helpers/raw-peer.js';
import { startServer, tempDir, type TestServer } from './helpers/servers.js';

const MiB = 1024 * 1024;
const TIMEOUT = 120_000;
const BOUNDARY = 'nodefpmFormsTestBoundary0123456789';
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;
const URLENCODED = 'application/x-www-form-urlencoded';

// ---- building bodies ----

interface Part {
  name: string;
  value: string | Buffer;
  filename?: string;
  type?: string;
  /** Extra header lines, each ending in CRLF. */
  headers?: string;
}

function partHead(part: Part, boundary = BOUNDARY): Buffer {
  let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
  if (part.filename !== undefined) head += `; filename="${part.filename}"`;
  head += '\r\n';
  if (part.type !== undefined) head += `Content-Type: ${part.type}\r\n`;
  return Buffer.from(`${head}${part.headers ?? ''}\r\n`, 'utf8');
}

function multipart(parts: Part[], boundary = BOUNDARY): Buffer {
  const pieces: Buffer[] = [];
  for (const part of parts) pieces.push(partHead(part, boundary), Buffer.isBuffer(part.value) ? part.value : Buffer.from(part.value), Buffer.from('\r\n'));
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(pieces);
}

/** Deterministic bytes, so hashes can be computed without keeping the data. */
function patternBlock(size: number, seed: number): Buffer {
  const block = Buffer.alloc(size);
  for (let i = 0; i < size; i++) block[i] = (i * 131 + seed * 7) & 0xff;
  return block;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function postParams(uri: string, contentType: string, length: number | null, extra: Record<string, string> = {}): Record<string, string> {
  return requestParams('POST', uri, { CONTENT_TYPE: contentType, CONTENT_LENGTH: length === null ? '' : String(length), ...extra });
}

/** Polls until `condition()` holds; false after `ms`. */
async function eventually(condition: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

function list(dir: string): string[] {
  return readdirSync(dir);
}

// ---- the app ----

interface FileReport {
  field: string;
  filename: string;
  mimeType: string;
  size: number;
  sha256: string;
  path?: string;
}

/** Hooks the tests set to learn when a handler reached a point (name from the x-gate header). */
const gates = new Map<string, () => void>();

function openGate(name: string): Promise<void> {
  return new Promise((resolve) =>
    gates.set(name, () => {
      gates.delete(name);
      resolve();
    }),
  );
}

/** Handlers that wait at a checkpoint until the test releases them (name from the x-gate header). */
const holds = new Map<string, () => void>();

function hold(name: string): Promise<void> {
  return new Promise((resolve) => holds.set(name, resolve));
}

function release(name: string): void {
  const resume = holds.get(name);
  assert.ok(resume !== undefined, `a handler waits at ${name}`);
  holds.delete(name);
  resume();
}

/**
 * Routes on the path:
 *   /form            req.form(), answers JSON: fields and files (hashed from their temp files)
 *   /form?limit=K&value=N   the same, with req.form({ [K]: N }) (a per-call override)
 *   /stream          req.form({ onFile }) hashing each file's stream (with a slow consumer)
 *   /throw-after     reads the form, then throws
 *   /throw-during    starts req.form() without awaiting it, opens the gate, waits to be released, then throws
 *   /ignore          reads the form, answers without looking at the files
 *   /hang            reads the form (for abort and drop tests: the request never completes on its own)
 *   /query           answers JSON: req.query
 *   /url             answers JSON: fullUrl, host, hostname, port, basePath, pathInfo
 */
const app: Handler = async (req, res) => {
  const path = req.path;
  const gate = req.header('x-gate');
  if (path === '/query') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ query: req.query, searchParams: [...req.searchParams] }));
    return;
  }
  if (path === '/url') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ fullUrl: req.fullUrl.href, host: req.host, hostname: req.hostname, port: req.port, basePath: req.basePath, pathInfo: req.pathInfo }));
    return;
  }
  if (path === '/throw-during') {
    void req.form();
    const released = hold(gate ?? '');
    if (gate !== undefined) gates.get(gate)?.();
    await released;
    throw new Error('handler failed while the form was still being read');
  }
  if (path === '/stream') {
    const files: FileReport[] = [];
    const form = await req.form({
      onFile: async (file) => {
        const hash = createHash('sha256');
        let size = 0;
        for await (const chunk of file.stream) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).length;
          if (size % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
        files.push({ field: file.fieldName, filename: file.filename, mimeType: file.mimeType, size, sha256: hash.digest('hex') });
      },
    });
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ fields: form.fields, files, reportedSizes: Object.values(form.files).flat().map((file) => file.size) }));
    return;
  }
  const limit = req.query.limit;
  const form = typeof limit === 'string' ? await req.form({ [limit]: Number(req.query.value) }) : await req.form();
  if (gate !== undefined) gates.get(gate)?.();
  if (path === '/hang') {
    await new Promise((resolve) => req.signal.addEventListener('abort', resolve));
    return;
  }
  if (path === '/throw-after') throw new Error('handler failed after reading the form');
  if (path === '/ignore') {
    res.end('ignored');
    return;
  }
  const files: FileReport[] = [];
  for (const file of Object.values(form.files).flat()) {
    const hash = createHash('sha256');
    for await (const chunk of file.stream()) hash.update(chunk as Buffer);
    files.push({ field: file.fieldName, filename: file.filename, mimeType: file.mimeType, size: file.size, sha256: hash.digest('hex'), path: file.path });
  }
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ fields: form.fields, files }));
};

interface Setup {
  server: TestServer;
  uploads: string;
  client: FcgiClient;
}

async function setUp(options: Parameters<typeof startServer>[1] = {}): Promise<Setup> {
  const uploads = tempDir('nodefpm-forms-uploads-').path;
  const server = await startServer(app, { uploadDir: uploads, ...options });
  const client = new FcgiClient({ address: server.address, maxConnections: 2 });
  return { server, uploads, client };
}

async function tearDown(setup: Setup): Promise<void> {
  await setup.client.close();
  await setup.server.close();
}

async function json<T>(response: FcgiResponse): Promise<T> {
  const text = await response.text();
  assert.equal(response.status, 200, `expected 200, got ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

describe('forms over FastCGI', { timeout: TIMEOUT }, () => {
  let setup: Setup;
  before(async () => {
    setup = await setUp();
  });
  after(async () => {
    await tearDown(setup);
  });

  test('urlencoded: fields, repeats, "+" and UTF-8, in order', async () => {
    const body = 'name=Ada+Lovelace&lang=en&lang=fr&note=caf%C3%A9+%E2%82%AC&empty=&flag';
    const response = await setup.client.request({ params: postParams('/form', URLENCODED, body.length), body });
    const result = await json<{ fields: Record<string, string[]>; files: FileReport[] }>(response);
    assert.deepEqual(result.fields, { name: ['Ada Lovelace'], lang: ['en', 'fr'], note: ['café €'], empty: [''], flag: [''] });
    assert.deepEqual(result.files, []);
  });

  test('multipart: fields and several files to temp files, hashed back exactly; temp files gone after the response', async () => {
    const photo = patternBlock(700_000, 1);
    const text = Buffer.from('plain text file\n');
    const body = multipart([
      { name: 'title', value: 'Trip ✈' },
      { name: 'photos', value: photo, filename: 'photo.jpg', type: 'image/jpeg' },
      { name: 'photos', value: text, filename: 'notes.txt', type: 'text/plain' },
      { name: 'doc', value: Buffer.alloc(0), filename: 'empty.bin', type: 'application/octet-stream' },
      { name: 'nothing', value: Buffer.alloc(0), filename: '', type: 'application/octet-stream' },
    ]);
    const response = await setup.client.request({ params: postParams('/form', MULTIPART, body.length), body });
    const result = await json<{ fields: Record<string, string[]>; files: FileReport[] }>(response);
    assert.deepEqual(result.fields, { title: ['Trip ✈'] });
    assert.deepEqual(
      result.files.map(({ field, filename, mimeType, size, sha256: hash }) => ({ field, filename, mimeType, size, hash })),
      [
        { field: 'photos', filename: 'photo.jpg', mimeType: 'image/jpeg', size: photo.length, hash: sha256(photo) },
        { field: 'photos', filename: 'notes.txt', mimeType: 'text/plain', size: text.length, hash: sha256(text) },
        { field: 'doc', filename: 'empty.bin', mimeType: 'application/octet-stream', size: 0, hash: sha256(Buffer.alloc(0)) },
      ],
    );
    for (const file of result.files) assert.ok(file.path?.startsWith(setup.uploads), `temp file ${file.path} in the uploadDir`);
    assert.ok(await eventually(() => list(setup.uploads).length === 0), `temp files left after the response: ${list(setup.uploads).join(', ')}`);
  });

  test('multipart streamed by the client in small pieces with no Content-Length (as nginx sends unbuffered uploads)', async () => {
    const file = patternBlock(300_000, 2);
    const body = multipart([{ name: 'f', value: file, filename: 'f.bin' }]);
    async function* trickle(): AsyncGenerator<Buffer> {
      for (let i = 0; i < body.length; i += 1000) {
        yield body.subarray(i, i + 1000);
        if (i % 50_000 === 0) await sleep(1);
      }
    }
    const response = await setup.client.request({ params: postParams('/form', MULTIPART, null), body: trickle() });
    const result = await json<{ files: FileReport[] }>(response);
    assert.equal(result.files[0]?.sha256, sha256(file));
  });

  test('stream mode: onFile gets each file as a stream with backpressure; nothing goes to disk', async () => {
    const big = patternBlock(2 * MiB, 3);
    const body = multipart([
      { name: 'a', value: '1' },
      { name: 'one', value: big, filename: 'big.bin' },
      { name: 'two', value: 'second', filename: 'two.txt', type: 'text/plain' },
    ]);
    let sawFile = false;
    const watcher = setInterval(() => {
      if (list(setup.uploads).length > 0) sawFile = true;
    }, 5);
    try {
      const response = await setup.client.request({ params: postParams('/stream', MULTIPART, body.length), body });
      const result = await json<{ fields: Record<string, string[]>; files: FileReport[]; reportedSizes: number[] }>(response);
      assert.deepEqual(result.fields, { a: ['1'] });
      assert.deepEqual(
        result.files.map((file) => [file.field, file.filename, file.size, file.sha256]),
        [
          ['one', 'big.bin', big.length, sha256(big)],
          ['two', 'two.txt', 6, sha256(Buffer.from('second'))],
        ],
      );
      assert.deepEqual(result.reportedSizes, [big.length, 6]);
    } finally {
      clearInterval(watcher);
    }
    assert.equal(sawFile, false, 'stream mode wrote a temp file');
  });

  test('the query and the URL, over the wire', async () => {
    const query = await json<{ query: Record<string, string | string[]>; searchParams: Array<[string, string]> }>(
      await setup.client.request({ params: requestParams('GET', '/query?a=1&b=x+y&a=2&c=%C3%A9') }),
    );
    assert.deepEqual(query.query, { a: ['1', '2'], b: 'x y', c: 'é' });
    assert.deepEqual(query.searchParams, [['a', '1'], ['b', 'x y'], ['a', '2'], ['c', 'é']]);
    const url = await json<Record<string, unknown>>(
      await setup.client.request({ params: requestParams('GET', '/url?x=1', { HTTP_HOST: 'example.com:8080', HTTPS: 'on', SCRIPT_NAME: '/url', PATH_INFO: '' }) }),
    );
    assert.deepEqual(url, { fullUrl: 'https://example.com:8080/url?x=1', host: 'example.com:8080', hostname: 'example.com', port: 8080, basePath: '', pathInfo: '/url' });
  });
});

/** Sends a request on a fresh RawPeer connection and returns the parsed CGI response. */
async function rawRequest(address: string, params: Record<string, string>, body: Buffer): Promise<{ status: number; body: string; peer: RawPeer }> {
  const peer = await RawPeer.connect(address);
  peer.sendRequest(1, params, body);
  const response = await peer.waitForEnd(1, 30_000);
  const cgi = splitCgi(response.stdout);
  return { status: cgi.status, body: cgi.body.toString('utf8'), peer };
}

/** Proves the connection still serves: a small GET on it answers 200. */
async function servesNext(peer: RawPeer, id: number): Promise<void> {
  peer.sendRequest(id, requestParams('GET', '/query?next=1'));
  const response = await peer.waitForEnd(id, 30_000);
  const cgi = splitCgi(response.stdout);
  assert.equal(cgi.status, 200, `the next request on the connection: ${cgi.body.toString()}`);
  assert.deepEqual(JSON.parse(cgi.body.toString()).query, { next: '1' });
}

describe('limits: 413 with the reason, logged, the rest of the body dropped, the connection kept', { timeout: TIMEOUT }, () => {
  let setup: Setup;
  before(async () => {
    // Handler-level limits (one per case below is crossed; the others stay far off).
    setup = await setUp({ maxFiles: 2, maxFields: 3, maxFieldBytes: 100, maxFieldNameBytes: 20, maxFileBytes: 64 * 1024, maxPartHeaderBytes: 1024, maxFormBytes: 2000, maxMultipartBytes: MiB });
  });
  after(async () => {
    await tearDown(setup);
  });

  const cases: Array<{ what: string; uri?: string; type: string; body: Buffer; code: string; reason: RegExp }> = [
    { what: 'maxFiles', type: MULTIPART, body: multipart([1, 2, 3].map((i) => ({ name: `f${i}`, value: 'x', filename: `${i}.txt` }))), code: 'NODEFPM_FORM_TOO_MANY_FILES', reason: /more than 2 files/ },
    { what: 'maxFields (multipart)', type: MULTIPART, body: multipart([1, 2, 3, 4].map((i) => ({ name: `v${i}`, value: 'x' }))), code: 'NODEFPM_FORM_TOO_MANY_FIELDS', reason: /more than 3 fields/ },
    { what: 'maxFields (urlencoded)', type: URLENCODED, body: Buffer.from('a=1&b=2&c=3&d=4'), code: 'NODEFPM_FORM_TOO_MANY_FIELDS', reason: /more than 3 fields/ },
    { what: 'maxFieldBytes (multipart)', type: MULTIPART, body: multipart([{ name: 'v', value: 'x'.repeat(101) }]), code: 'NODEFPM_FORM_FIELD_TOO_LARGE', reason: /field "v" is larger than 100 bytes/ },
    { what: 'maxFieldBytes (urlencoded)', type: URLENCODED, body: Buffer.from(`v=${'x'.repeat(101)}`), code: 'NODEFPM_FORM_FIELD_TOO_LARGE', reason: /larger than 100 bytes/ },
    { what: 'maxFieldNameBytes', type: MULTIPART, body: multipart([{ name: 'n'.repeat(21), value: 'x' }]), code: 'NODEFPM_FORM_FIELD_NAME_TOO_LARGE', reason: /longer than 20 bytes/ },
    { what: 'maxFileBytes', type: MULTIPART, body: multipart([{ name: 'f', value: patternBlock(64 * 1024 + 1, 4), filename: 'big.bin' }]), code: 'NODEFPM_FORM_FILE_TOO_LARGE', reason: /"big.bin".*larger than 65536 bytes/ },
    { what: 'maxPartHeaderBytes', type: MULTIPART, body: multipart([{ name: 'f', value: 'x', headers: `X-Pad: ${'p'.repeat(2000)}\r\n` }]), code: 'NODEFPM_FORM_PART_HEADER_TOO_LARGE', reason: /larger than 1024 bytes/ },
    { what: 'maxFormBytes', type: URLENCODED, body: Buffer.from(`a=${'x'.repeat(50)}&`.repeat(60)), code: 'NODEFPM_FORM_TOO_LARGE', reason: /larger than 2000 bytes/ },
    { what: 'maxMultipartBytes', type: MULTIPART, body: multipart([{ name: 'f', value: patternBlock(60 * 1024, 5), filename: `${'a'.repeat(1)}.bin` }, ...Array.from({ length: 20 }, () => ({ name: 'g', value: patternBlock(60 * 1024, 6), filename: 'g.bin' }))]), code: 'NODEFPM_FORM_TOO_LARGE', reason: /larger than 1048576 bytes/ },
    { what: 'a per-call override (req.form({ maxFiles: 1 }))', uri: '/form?limit=maxFiles&value=1', type: MULTIPART, body: multipart([1, 2].map((i) => ({ name: `f${i}`, value: 'x', filename: `${i}.txt` }))), code: 'NODEFPM_FORM_TOO_MANY_FILES', reason: /more than 1 files/ },
    { what: 'maxQueryParams', uri: `/form?${Array.from({ length: 1001 }, (_, i) => `k${i}=1`).join('&')}`, type: URLENCODED, body: Buffer.from('a=1'), code: 'NODEFPM_QUERY_TOO_MANY_PARAMS', reason: /more than 1000 parameters/ },
  ];

  for (const { what, uri, type, body, code, reason } of cases) {
    test(`${what}`, async () => {
      const expectedStatus = code === 'NODEFPM_QUERY_TOO_MANY_PARAMS' ? 400 : 413;
      const before = setup.server.logs.entries.length;
      const { status, body: text, peer } = await rawRequest(setup.server.address, postParams(uri ?? '/form', type, body.length), body);
      try {
        assert.equal(status, expectedStatus, `${what}: ${text}`);
        assert.match(text, reason, `${what}: the reason is in the response`);
        const logged = setup.server.logs.entries.slice(before).find((entry) => entry.level === 'warn' && entry.fields?.code === code);
        assert.ok(logged !== undefined, `${what}: a warning with code ${code} was logged`);
        assert.match(logged.message, new RegExp(`request refused with ${expectedStatus}: POST`));
        assert.match(logged.message, reason);
        await servesNext(peer, 2);
        assert.ok(await eventually(() => list(setup.uploads).length === 0), `${what}: temp files left: ${list(setup.uploads).join(', ')}`);
      } finally {
        peer.close();
      }
    });
  }

  test('a 413 while the client is still sending: the answer comes early and the rest is read and dropped', async () => {
    const peer = await RawPeer.connect(setup.server.address);
    try {
      const head = partHead({ name: 'f', value: '', filename: 'huge.bin' });
      peer.sendBegin(1);
      peer.sendParams(1, postParams('/form', MULTIPART, null));
      peer.sendStdin(1, head, false);
      // Past maxFileBytes (64 KiB) and still going: the 413 arrives before the upload is over.
      for (let i = 0; i < 4; i++) peer.sendStdin(1, patternBlock(32 * 1024, i), false);
      const response = await peer.waitForEnd(1, 30_000);
      assert.equal(splitCgi(response.stdout).status, 413);
      for (let i = 0; i < 16; i++) peer.sendStdin(1, patternBlock(32 * 1024, i), false);
      peer.sendStdin(1, `\r\n--${BOUNDARY}--\r\n`);
      await servesNext(peer, 2);
    } finally {
      peer.close();
    }
  });
});

describe('bad input: 400 with the reason, logged, no crash, no temp file left', { timeout: TIMEOUT }, () => {
  let setup: Setup;
  before(async () => {
    setup = await setUp();
  });
  after(async () => {
    await tearDown(setup);
  });

  const good = multipart([
    { name: 'a', value: 'x' },
    { name: 'f', value: patternBlock(20_000, 7), filename: 'f.bin' },
  ]);
  const cases: Array<{ what: string; uri?: string; type: string | null; body: Buffer; code: string; reason: RegExp }> = [
    { what: 'no boundary parameter', type: 'multipart/form-data', body: good, code: 'NODEFPM_FORM_MALFORMED', reason: /no boundary/ },
    { what: 'an invalid boundary parameter', type: `multipart/form-data; boundary="${'b'.repeat(80)}"`, body: good, code: 'NODEFPM_FORM_MALFORMED', reason: /boundary .* is not valid/ },
    { what: 'a boundary that is not in the body', type: 'multipart/form-data; boundary=somethingElse', body: good, code: 'NODEFPM_FORM_MALFORMED', reason: /ended before .* closing boundary/ },
    { what: 'a truncated part', type: MULTIPART, body: good.subarray(0, good.length - 5000), code: 'NODEFPM_FORM_MALFORMED', reason: /truncated/ },
    { what: 'a malformed part header', type: MULTIPART, body: Buffer.from(`--${BOUNDARY}\r\nContent-Disposition form-data; name="a"\r\n\r\nx\r\n--${BOUNDARY}--\r\n`), code: 'NODEFPM_FORM_MALFORMED', reason: /part header .* malformed/ },
    { what: 'a huge part header (busboy\'s bound, over the default 8 KiB option)', type: MULTIPART, body: multipart([{ name: 'a', value: 'x', headers: `X-Pad: ${'p'.repeat(100_000)}\r\n` }]), code: 'NODEFPM_FORM_PART_HEADER_TOO_LARGE', reason: /larger than 8192 bytes/ },
    { what: 'no Content-Type', type: null, body: Buffer.from('a=1'), code: 'NODEFPM_FORM_UNSUPPORTED_TYPE', reason: /no Content-Type/ },
    { what: 'a Content-Type req.form() does not read', type: 'application/json', body: Buffer.from('{"a":1}'), code: 'NODEFPM_FORM_UNSUPPORTED_TYPE', reason: /application\/json/ },
    { what: 'bad percent-encoding in a urlencoded body', type: URLENCODED, body: Buffer.from('a=1&b=%zz'), code: 'NODEFPM_FORM_MALFORMED', reason: /"%zz" at offset 6/ },
    { what: 'truncated UTF-8 in a urlencoded body', type: URLENCODED, body: Buffer.from('a=%E0%A4'), code: 'NODEFPM_FORM_MALFORMED', reason: /"%E0%A4" at offset 2 .*truncated/ },
    { what: 'bad percent-encoding in the query', uri: '/query?a=%zz', type: null, body: Buffer.alloc(0), code: 'NODEFPM_QUERY_MALFORMED', reason: /"%zz" at offset 2/ },
    { what: 'truncated UTF-8 in the query', uri: '/query?x=%E0%A4', type: null, body: Buffer.alloc(0), code: 'NODEFPM_QUERY_MALFORMED', reason: /"%E0%A4" at offset 2/ },
    { what: 'a Host that is not a host name', uri: '/url', type: null, body: Buffer.alloc(0), code: 'NODEFPM_BAD_URL', reason: /is not a host name/ },
  ];

  for (const { what, uri, type, body, code, reason } of cases) {
    test(what, async () => {
      const expected = code === 'NODEFPM_FORM_PART_HEADER_TOO_LARGE' ? 413 : 400;
      const before = setup.server.logs.entries.length;
      const params = postParams(uri ?? '/form', type ?? '', body.length, code === 'NODEFPM_BAD_URL' ? { HTTP_HOST: 'evil.test/x' } : {});
      if (type === null) delete params.CONTENT_TYPE;
      const { status, body: text, peer } = await rawRequest(setup.server.address, params, body);
      try {
        assert.equal(status, expected, `${what}: ${text}`);
        assert.match(text, reason, `${what}: the reason is in the response`);
        const logged = setup.server.logs.entries.slice(before).find((entry) => entry.level === 'warn' && entry.fields?.code === code);
        assert.ok(logged !== undefined, `${what}: a warning with code ${code} was logged`);
        assert.match(logged.message, reason);
        await servesNext(peer, 2);
        assert.ok(await eventually(() => list(setup.uploads).length === 0), `${what}: temp files left: ${list(setup.uploads).join(', ')}`);
      } finally {
        peer.close();
      }
    });
  }
});

describe('temp files are removed however the request ends', { timeout: TIMEOUT }, () => {
  let setup: Setup;
  before(async () => {
    setup = await setUp();
  });
  after(async () => {
    await tearDown(setup);
  });

  const body = multipart([
    { name: 'a', value: 'x' },
    { name: 'f1', value: patternBlock(100_000, 8), filename: 'one.bin' },
    { name: 'f2', value: patternBlock(50_000, 9), filename: 'two.bin' },
  ]);

  /** Sends the upload on a RawPeer with an x-gate header; resolves when the handler has read the form (both files on disk). */
  async function uploadAndWait(path: string, gate: string): Promise<RawPeer> {
    const reached = openGate(gate);
    const peer = await RawPeer.connect(setup.server.address);
    peer.sendRequest(1, postParams(path, MULTIPART, body.length, { HTTP_X_GATE: gate }), body);
    await reached;
    return peer;
  }

  test('after a normal end', async () => {
    const peer = await uploadAndWait('/ignore', 'normal');
    try {
      const response = await peer.waitForEnd(1, 30_000);
      assert.equal(splitCgi(response.stdout).body.toString(), 'ignored');
      assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
      await servesNext(peer, 2);
    } finally {
      peer.close();
    }
  });

  test('after the handler throws (a 500), and the error is logged', async () => {
    const peer = await uploadAndWait('/throw-after', 'throw');
    try {
      const response = await peer.waitForEnd(1, 30_000);
      assert.equal(splitCgi(response.stdout).status, 500);
      assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
      assert.ok(setup.server.logs.find('handler failed').length > 0, 'the failure was logged');
      await servesNext(peer, 2);
    } finally {
      peer.close();
    }
  });

  test('after the handler throws while the form is still being read', async () => {
    const gate = openGate('during');
    const peer = await RawPeer.connect(setup.server.address);
    try {
      // Only part of the body: the form is mid-file when the handler fails.
      peer.sendBegin(1);
      peer.sendParams(1, postParams('/throw-during', MULTIPART, body.length, { HTTP_X_GATE: 'during' }));
      peer.sendStdin(1, body.subarray(0, 60_000), false);
      await gate;
      assert.ok(await eventually(() => list(setup.uploads).length === 1), 'the first file is being written');
      release('during');
      const response = await peer.waitForEnd(1, 30_000);
      assert.equal(splitCgi(response.stdout).status, 500);
      assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
      peer.sendStdin(1, body.subarray(60_000));
      await servesNext(peer, 2);
    } finally {
      peer.close();
    }
  });

  test('after FCGI_ABORT_REQUEST', async () => {
    const peer = await uploadAndWait('/hang', 'abort');
    try {
      assert.equal(list(setup.uploads).length, 2, 'both files are on disk while the handler runs');
      peer.sendAbort(1);
      await peer.waitForEnd(1, 30_000);
      assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
      await servesNext(peer, 2);
    } finally {
      peer.close();
    }
  });

  test('after FCGI_ABORT_REQUEST in the middle of a file', async () => {
    const peer = await RawPeer.connect(setup.server.address);
    try {
      peer.sendBegin(1);
      peer.sendParams(1, postParams('/form', MULTIPART, body.length));
      peer.sendStdin(1, body.subarray(0, 70_000), false);
      assert.ok(await eventually(() => list(setup.uploads).length === 1), 'the first file is being written');
      peer.sendAbort(1);
      await peer.waitForEnd(1, 30_000);
      assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
      await servesNext(peer, 2);
    } finally {
      peer.close();
    }
  });

  test('after the web server drops the connection, and a new connection is served', async () => {
    const peer = await uploadAndWait('/hang', 'drop');
    assert.equal(list(setup.uploads).length, 2, 'both files are on disk while the handler runs');
    peer.close();
    assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
    const next = await RawPeer.connect(setup.server.address);
    try {
      await servesNext(next, 1);
    } finally {
      next.close();
    }
  });

  test('after the connection drops in the middle of a file', async () => {
    const peer = await RawPeer.connect(setup.server.address);
    peer.sendBegin(1);
    peer.sendParams(1, postParams('/form', MULTIPART, body.length));
    peer.sendStdin(1, body.subarray(0, 70_000), false);
    assert.ok(await eventually(() => list(setup.uploads).length === 1), 'the first file is being written');
    peer.close();
    assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
  });

  test('after a handler that never looked at its files', async () => {
    const response = await setup.client.request({ params: postParams('/ignore', MULTIPART, body.length), body });
    assert.equal(await response.text(), 'ignored');
    assert.ok(await eventually(() => list(setup.uploads).length === 0), `left: ${list(setup.uploads).join(', ')}`);
  });
});

describe('a 50 MB upload goes to disk in chunks and does not grow the server by its size', { timeout: TIMEOUT }, () => {
  const SIZE = 50 * MiB;
  const CHUNK = 64 * 1024;

  test('peak RSS of the server process grows by far less than the file; the temp file grows while the upload is under way', async () => {
    const dir = tempDir('nodefpm-forms-big-');
    const uploads = join(dir.path, 'uploads');
    (await import('node:fs')).mkdirSync(uploads);
    const fixture = fileURLToPath(new URL('./fixtures/form-upload-server.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, `unix:${join(dir.path, 'app.sock')}`, uploads], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const client = new FcgiClient({ address: { path: join(dir.path, 'app.sock') }, maxConnections: 1 });
    try {
      const ready = await new Promise<{ address: string; pid: number }>((resolve, reject) => {
        let buffered = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          const newline = buffered.indexOf('\n');
          if (newline !== -1) resolve(JSON.parse(buffered.slice(0, newline)) as { address: string; pid: number });
        });
        child.once('exit', (code) => reject(new Error(`the server process exited early (code ${code})`)));
      });
      assert.ok(ready.pid > 0, 'the server process said its pid');

      type Reply = { files: FileReport[]; peakRss: number };
      const upload = async (size: number, seed: number, onChunk?: (sent: number) => Promise<void>): Promise<{ reply: Reply; hash: string }> => {
        const hash = createHash('sha256');
        const head = partHead({ name: 'big', value: '', filename: 'big.bin', type: 'application/octet-stream' });
        const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
        async function* stream(): AsyncGenerator<Buffer> {
          yield head;
          const block = patternBlock(CHUNK, seed);
          for (let sent = 0; sent < size; sent += CHUNK) {
            const piece = size - sent >= CHUNK ? block : block.subarray(0, size - sent);
            hash.update(piece);
            yield piece;
            await onChunk?.(sent + piece.length);
          }
          yield tail;
        }
        const response = await client.request({ params: postParams('/form', MULTIPART, head.length + size + tail.length), body: stream() });
        const text = await response.text();
        assert.equal(response.status, 200, text);
        return { reply: JSON.parse(text) as Reply, hash: hash.digest('hex') };
      };

      // Warm up: code paths loaded, buffers allocated, the garbage collector's pace for external memory set; this peak is the baseline.
      const warm = await upload(10 * MiB, 1);
      const baseline = warm.reply.peakRss;
      assert.ok(baseline > 0, 'the server reports its peak RSS');

      // While the big upload streams, watch its temp file grow on disk.
      const sizesSeen = new Set<number>();
      const big = await upload(SIZE, 2, async (sent) => {
        if (sent % (4 * MiB) !== 0) return;
        await sleep(20);
        for (const name of list(uploads)) sizesSeen.add(statSync(join(uploads, name)).size);
      });
      assert.equal(big.reply.files[0]?.size, SIZE);
      assert.equal(big.reply.files[0]?.sha256, big.hash, 'the temp file holds exactly the bytes sent');
      const partial = [...sizesSeen].filter((size) => size > 0 && size < SIZE);
      assert.ok(partial.length >= 3, `the temp file grew in chunks during the upload (sizes seen: ${[...sizesSeen].join(', ')})`);
      const growth = big.reply.peakRss - baseline;
      // V8 collects Buffers' external memory in batches of tens of MiB, whatever the upload's size (a
      // 400 MiB upload peaks about 10 MiB above a 50 MiB one): what must not happen is growth by the file's size.
      assert.ok(growth < 0.8 * SIZE, `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB for a ${SIZE / MiB} MiB upload (baseline ${(baseline / MiB).toFixed(1)} MiB)`);
      assert.ok(await eventually(() => list(uploads).length === 0), `temp files left: ${list(uploads).join(', ')}`);
    } finally {
      await client.close();
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
      const killer = setTimeout(() => {
        if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 5000);
      await exited;
      clearTimeout(killer);
      dir.remove();
    }
  });
});

test('logs: nothing above warn for a well-formed form (a capture of a clean run)', async () => {
  const logs = captureLogger();
  const server = await startServer(app, { logger: logs, uploadDir: tempDir('nodefpm-forms-clean-').path });
  const client = new FcgiClient({ address: server.address });
  try {
    const body = 'a=1';
    const response = await client.request({ params: postParams('/form', URLENCODED, body.length), body });
    await json(response);
    assert.deepEqual(logs.entries.filter((entry) => entry.level === 'error' || entry.level === 'warn'), []);
  } finally {
    await client.close();
    await server.close();
  }
});
