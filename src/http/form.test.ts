// Unit tests for forms: Content-Type parsing, the streaming urlencoded parser, the part-header guard, multipart through busboy, temp files and their removal.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isNodefpmError, type ErrorCode } from '../errors.js';
import { InputStream } from '../server/input-stream.js';
import { Body, defaultBodyLimits } from './body.js';
import { FormState } from './form-reader.js';
import { Form, MAX_PART_HEADER_BYTES, UrlencodedParser, defaultFormLimits, formKind, parseMediaType, resolveFormOptions, type FormLimits, type ResolvedFormOptions } from './form.js';
import { PartHeaderGuard, readMultipart } from './multipart.js';
import { UploadStore, type StreamedFile, type UploadedFile } from './uploads.js';

const uploadRoot = mkdtempSync(join(tmpdir(), 'nodefpm-form-unit-'));
after(() => rmSync(uploadRoot, { recursive: true, force: true }));

/** A fresh, empty upload folder. */
function uploadFolder(): string {
  return mkdtempSync(join(uploadRoot, 'f-'));
}

function options(overrides: Partial<FormLimits> = {}, uploadDir?: string): ResolvedFormOptions {
  return { ...defaultFormLimits, ...overrides, uploadDir };
}

/** A Body fed from `chunks`, ended after the last one (or left open with `end: false`). */
function bodyOf(chunks: Array<Buffer | string>, end = true): { body: Body; stream: InputStream } {
  const stream = new InputStream({ inputHasRoom() {} }, 1 << 30);
  for (const chunk of chunks) stream.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  if (end) stream.end();
  return { body: new Body(stream, defaultBodyLimits), stream };
}

const BOUNDARY = '----nodefpmBoundary7MA4YWxkTrZu0gW';

type Part = { name: string; value: string | Buffer; filename?: string; type?: string; headers?: string };

/** A multipart/form-data body with CRLF line ends, as browsers send. */
function multipart(parts: Part[], boundary = BOUNDARY): Buffer {
  const pieces: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += '\r\n';
    if (part.type !== undefined) head += `Content-Type: ${part.type}\r\n`;
    if (part.headers !== undefined) head += part.headers;
    pieces.push(Buffer.from(`${head}\r\n`, 'utf8'), Buffer.isBuffer(part.value) ? part.value : Buffer.from(part.value, 'utf8'), Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(pieces);
}

/** Splits a buffer into pieces of `size` bytes. */
function pieces(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

function readForm(
  chunks: Buffer[],
  formOptions: ResolvedFormOptions,
  extra: { uploads?: UploadStore; onFile?: Parameters<typeof readMultipart>[3]; declaredLength?: number | null; contentType?: string } = {},
): Promise<Form<UploadedFile | StreamedFile>> {
  const { body } = bodyOf(chunks);
  const contentType = extra.contentType ?? `multipart/form-data; boundary=${BOUNDARY}`;
  const kind = formKind(contentType);
  assert.ok(kind.kind === 'multipart', 'a multipart content type');
  return readMultipart(
    { body, contentType, boundary: kind.boundary, declaredLength: extra.declaredLength ?? null, uploads: extra.uploads ?? new UploadStore() },
    formOptions,
    formOptions.uploadDir ?? tmpdir(),
    extra.onFile,
  );
}

/** Asserts a promise rejects with a NodefpmError of `code` whose message matches `reason`. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, status: number | undefined, reason: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isNodefpmError(error, code), `expected ${code}, got ${String((error as { code?: string })?.code)}: ${(error as Error)?.message}`);
    assert.equal(error.status, status, `status of ${code}`);
    assert.match(error.message, reason);
    return true;
  });
}

// ---- Content-Type ----

test('parseMediaType: type, parameters (quoted, escaped, any case), and refusals', () => {
  assert.deepEqual(parseMediaType('Multipart/Form-Data; Boundary="a b\\"c"; charset=UTF-8'), {
    type: 'multipart/form-data',
    params: Object.assign(Object.create(null), { boundary: 'a b"c', charset: 'UTF-8' }),
  });
  assert.equal(parseMediaType('application/x-www-form-urlencoded')?.type, 'application/x-www-form-urlencoded');
  assert.equal(parseMediaType('text/plain;')?.type, 'text/plain');
  assert.equal(parseMediaType('nonsense'), null);
  assert.equal(parseMediaType('a/b; =x'), null);
  assert.equal(parseMediaType('a/b; x="unterminated'), null);
});

test('formKind: the two form types; a missing or invalid boundary is 400 NODEFPM_FORM_MALFORMED; anything else 400 NODEFPM_FORM_UNSUPPORTED_TYPE', () => {
  assert.deepEqual(formKind('application/x-www-form-urlencoded'), { kind: 'urlencoded' });
  assert.deepEqual(formKind('application/x-www-form-urlencoded; charset=UTF-8'), { kind: 'urlencoded' });
  assert.deepEqual(formKind(`multipart/form-data; boundary=${BOUNDARY}`), { kind: 'multipart', boundary: BOUNDARY });
  const refused: Array<[string | undefined, ErrorCode, RegExp]> = [
    [undefined, 'NODEFPM_FORM_UNSUPPORTED_TYPE', /no Content-Type/],
    ['text/plain', 'NODEFPM_FORM_UNSUPPORTED_TYPE', /"text\/plain"/],
    ['application/json', 'NODEFPM_FORM_UNSUPPORTED_TYPE', /application\/json/],
    ['application/x-www-form-urlencoded; charset=iso-8859-1', 'NODEFPM_FORM_UNSUPPORTED_TYPE', /charset/],
    ['multipart/form-data', 'NODEFPM_FORM_MALFORMED', /no boundary/],
    ['multipart/form-data; boundary=', 'NODEFPM_FORM_MALFORMED', /no boundary|cannot be parsed/],
    [`multipart/form-data; boundary=${'x'.repeat(71)}`, 'NODEFPM_FORM_MALFORMED', /not valid/],
    ['multipart/form-data; boundary="ends with space "', 'NODEFPM_FORM_MALFORMED', /not valid/],
    ['multipart/form-data; boundary="bad\u0001char"', 'NODEFPM_FORM_MALFORMED', /not valid/],
    ['garbage', 'NODEFPM_FORM_MALFORMED', /cannot be parsed/],
  ];
  for (const [contentType, code, reason] of refused) {
    assert.throws(
      () => formKind(contentType),
      (error: unknown) => isNodefpmError(error, code) && error.status === 400 && reason.test(error.message),
      String(contentType),
    );
  }
});

test('resolveFormOptions: overrides merge over the base; bad values are NODEFPM_INVALID_OPTION naming the option', () => {
  const base = options();
  assert.equal(resolveFormOptions(base, undefined), base);
  assert.equal(resolveFormOptions(base, { maxFiles: 3 }).maxFiles, 3);
  assert.equal(resolveFormOptions(base, { maxFileBytes: Infinity }).maxFileBytes, Infinity);
  for (const bad of [{ maxFiles: 0 }, { maxFields: -1 }, { maxFieldBytes: 1.5 }, { maxPartHeaderBytes: 16_001 }, { uploadDir: '' }]) {
    assert.throws(
      () => resolveFormOptions(base, bad as never),
      (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION') && error.message.includes(Object.keys(bad)[0]!),
      JSON.stringify(bad),
    );
  }
});

// ---- urlencoded ----

function parseUrlencoded(text: string, limits: Partial<FormLimits> = {}, chunkSize = Infinity): Array<[string, string]> {
  const parser = new UrlencodedParser({ ...defaultFormLimits, ...limits });
  const data = Buffer.from(text, 'latin1');
  for (const piece of chunkSize === Infinity ? [data] : pieces(data, chunkSize)) parser.push(piece);
  return parser.end();
}

test('UrlencodedParser: pairs, "+" as space, strict escapes, repeats kept, empty pairs skipped', () => {
  assert.deepEqual(parseUrlencoded('a=1&b=x+y&a=2&&c&d=&e=caf%C3%A9&f=a%3Db'), [
    ['a', '1'],
    ['b', 'x y'],
    ['a', '2'],
    ['c', ''],
    ['d', ''],
    ['e', 'café'],
    ['f', 'a=b'],
  ]);
  assert.deepEqual(parseUrlencoded(''), []);
});

test('UrlencodedParser: the same result wherever the body is split into chunks', () => {
  const text = 'first=Ada+Lovelace&note=caf%C3%A9%20%E2%82%AC&first=again&empty=&flag&last=%2B';
  const expected = parseUrlencoded(text);
  for (let size = 1; size <= text.length; size++) assert.deepEqual(parseUrlencoded(text, {}, size), expected, `chunks of ${size}`);
});

test('UrlencodedParser: limits on fields, value bytes and name bytes are 413s, exact limits pass', () => {
  assert.equal(parseUrlencoded('a=1&b=2&c=3', { maxFields: 3 }).length, 3);
  assert.throws(() => parseUrlencoded('a=1&b=2&c=3&d=4', { maxFields: 3 }), (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_TOO_MANY_FIELDS') && error.status === 413);
  // Limits count decoded bytes: "%C3%A9" is two.
  assert.deepEqual(parseUrlencoded('v=%C3%A9%C3%A9', { maxFieldBytes: 4 }), [['v', 'éé']]);
  assert.throws(
    () => parseUrlencoded('v=%C3%A9%C3%A9x', { maxFieldBytes: 4 }),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_FIELD_TOO_LARGE') && error.status === 413 && /"v"/.test(error.message),
  );
  // A huge value fails as it streams in, long before the pair ends.
  const parser = new UrlencodedParser({ ...defaultFormLimits, maxFieldBytes: 10 });
  assert.throws(() => parser.push(Buffer.from(`v=${'x'.repeat(100)}`)), (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_FIELD_TOO_LARGE'));
  assert.deepEqual(parseUrlencoded('abcd=1', { maxFieldNameBytes: 4 }), [['abcd', '1']]);
  assert.throws(() => parseUrlencoded('abcde=1', { maxFieldNameBytes: 4 }), (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_FIELD_NAME_TOO_LARGE') && error.status === 413);
});

test('UrlencodedParser: bad percent-encoding is 400 NODEFPM_FORM_MALFORMED naming the sequence and its offset in the body', () => {
  assert.throws(
    () => parseUrlencoded('ok=1&bad=%zz'),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_MALFORMED') && error.status === 400 && /"%zz" at offset 9/.test(error.message),
  );
  assert.throws(
    () => parseUrlencoded('name=%E0%A4', {}, 3),
    (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_MALFORMED') && /"%E0%A4" at offset 5 .*truncated/.test(error.message),
  );
});

// ---- the part-header guard ----

test('PartHeaderGuard: a header block of exactly the limit passes, one byte more is a 413, wherever the chunks split', () => {
  const limit = 120;
  // The header block counted: from after the boundary line's CRLF through the blank line's CRLF.
  const header = (size: number): Buffer => {
    const base = 'Content-Disposition: form-data; name="f"\r\nX-Pad: ';
    return Buffer.from(`${base}${'p'.repeat(size - base.length - 4)}\r\n\r\n`);
  };
  const body = (size: number): Buffer =>
    Buffer.concat([Buffer.from(`--${BOUNDARY}\r\n`), header(size), Buffer.from(`value\r\n--${BOUNDARY}\r\n`), header(size), Buffer.from(`v\r\n--${BOUNDARY}--\r\n`)]);
  for (const size of [1, 7, 13, 64, 1000]) {
    const guard = new PartHeaderGuard(BOUNDARY, limit);
    for (const piece of pieces(body(limit), size)) guard.check(piece);
    const over = new PartHeaderGuard(BOUNDARY, limit);
    assert.throws(
      () => {
        for (const piece of pieces(body(limit + 1), size)) over.check(piece);
      },
      (error: unknown) => isNodefpmError(error, 'NODEFPM_FORM_PART_HEADER_TOO_LARGE') && error.status === 413,
      `chunks of ${size}`,
    );
  }
});

test('PartHeaderGuard: file bytes are not headers, however large, and false delimiters do not start one', () => {
  const guard = new PartHeaderGuard(BOUNDARY, 100);
  const data = Buffer.alloc(200_000, 0x41);
  // Almost-delimiters inside the file: the boundary without its leading CRLF, and "--boundary" followed by other bytes.
  data.write(`--${BOUNDARY}`, 1000, 'latin1');
  data.write(`\r\n--${BOUNDARY}X`, 5000, 'latin1');
  const body = Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n`), data, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
  for (const size of [3, 4096, 65536]) {
    const fresh = new PartHeaderGuard(BOUNDARY, 100);
    for (const piece of pieces(body, size)) fresh.check(piece);
  }
  guard.check(body);
});

// ---- Form ----

test('Form: fields and files by name, first and all values, has, entries in order, keys once', () => {
  const file = { fieldName: 'doc', filename: 'a.txt', mimeType: 'text/plain', encoding: '7bit', size: 3 } satisfies StreamedFile;
  const form = new Form<StreamedFile>([
    ['a', '1'],
    ['doc', file],
    ['a', '2'],
    ['b', ''],
  ]);
  assert.equal(form.get('a'), '1');
  assert.deepEqual(form.getAll('a'), ['1', '2']);
  assert.deepEqual(form.getAll('missing'), []);
  assert.equal(form.get('missing'), undefined);
  assert.equal(form.has('doc'), true);
  assert.equal(form.has('b'), true);
  assert.equal(form.has('c'), false);
  assert.equal(form.file('doc'), file);
  assert.deepEqual(form.getFiles('doc'), [file]);
  assert.deepEqual(form.keys(), ['a', 'doc', 'b']);
  assert.deepEqual([...form].map(([name]) => name), ['a', 'doc', 'a', 'b']);
  assert.equal(Object.getPrototypeOf(form.fields), null);
  assert.deepEqual({ ...form.fields }, { a: ['1', '2'], b: [''] });
});

// ---- multipart ----

test('multipart: fields and several files to temp files, sizes and contents exact, whatever the chunking', async () => {
  const dir = uploadFolder();
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const data = multipart([
    { name: 'title', value: 'Holiday €' },
    { name: 'photos', value: big, filename: 'big.bin', type: 'application/octet-stream' },
    { name: 'photos', value: 'small file\n', filename: 'Ünïcode name.txt', type: 'text/plain' },
    { name: 'tags', value: 'a' },
    { name: 'tags', value: 'b' },
    { name: 'empty', value: '', filename: '', type: 'application/octet-stream' },
  ]);
  for (const size of [1 << 20, 1000, 17]) {
    const uploads = new UploadStore();
    const form = (await readForm(pieces(data, size), options({}, dir), { uploads })) as Form<UploadedFile>;
    assert.equal(form.get('title'), 'Holiday €');
    assert.deepEqual(form.getAll('tags'), ['a', 'b']);
    const [first, second] = form.getFiles('photos');
    assert.ok(first !== undefined && second !== undefined, 'two files under photos');
    assert.equal(first.filename, 'big.bin');
    assert.equal(first.size, big.length);
    assert.deepEqual(readFileSync(first.path), big);
    assert.equal(second.filename, 'Ünïcode name.txt');
    assert.equal(second.mimeType, 'text/plain');
    assert.equal(await (await second.bytes()).toString(), 'small file\n');
    assert.equal(form.has('empty'), false, 'an empty file input (filename="" and no bytes) is not a file');
    assert.equal(readdirSync(dir).length, 2, `chunks of ${size}: two temp files`);
    await uploads.cleanup();
    assert.deepEqual(readdirSync(dir), [], 'cleanup removes every temp file');
  }
});

test('multipart: UploadedFile.moveTo keeps the file past cleanup', async () => {
  const dir = uploadFolder();
  const keepDir = uploadFolder();
  const uploads = new UploadStore();
  const form = (await readForm([multipart([{ name: 'f', value: 'keep me', filename: 'k.txt' }])], options({}, dir), { uploads })) as Form<UploadedFile>;
  const file = form.file('f')!;
  await file.moveTo(join(keepDir, 'kept.txt'));
  await uploads.cleanup();
  assert.equal(readFileSync(join(keepDir, 'kept.txt'), 'utf8'), 'keep me');
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(file.moveTo(join(keepDir, 'again.txt')), /already moved/);
});

test('multipart: stream mode hands each file to onFile with backpressure and writes nothing to disk', async () => {
  const dir = uploadFolder();
  const received: Array<{ name: string; filename: string; text: string }> = [];
  const form = (await readForm(
    pieces(
      multipart([
        { name: 'a', value: 'x' },
        { name: 'f1', value: 'first file', filename: 'one.txt' },
        { name: 'f2', value: Buffer.alloc(200_000, 0x62), filename: 'two.bin' },
      ]),
      4096,
    ),
    options({}, dir),
    {
      onFile: async (file) => {
        const chunks: Buffer[] = [];
        for await (const chunk of file.stream) {
          chunks.push(chunk as Buffer);
          await new Promise((resolve) => setImmediate(resolve)); // a slow consumer
        }
        received.push({ name: file.fieldName, filename: file.filename, text: Buffer.concat(chunks).toString('latin1') });
      },
    },
  )) as Form<StreamedFile>;
  assert.deepEqual(
    received.map((file) => [file.name, file.filename, file.text.length]),
    [
      ['f1', 'one.txt', 10],
      ['f2', 'two.bin', 200_000],
    ],
  );
  assert.equal(form.get('a'), 'x');
  assert.equal(form.file('f2')?.size, 200_000);
  assert.deepEqual(readdirSync(dir), [], 'stream mode writes no temp file');
});

test('multipart: stream mode drains a file the handler did not read; a rejecting onFile fails the form', async () => {
  const data = multipart([
    { name: 'f1', value: Buffer.alloc(100_000, 1), filename: 'ignored.bin' },
    { name: 'after', value: 'still parsed' },
  ]);
  const form = await readForm(pieces(data, 8192), options(), { onFile: () => {} });
  assert.equal(form.get('after'), 'still parsed');
  assert.equal(form.file('f1')?.size, 100_000);
  await assert.rejects(readForm([data], options(), { onFile: () => Promise.reject(new Error('storage down')) }), /storage down/);
});

/** Every limit and what it answers, with a form one step over it. */
const overLimits: Array<{ what: string; limits: Partial<FormLimits>; parts: Part[]; code: ErrorCode; reason: RegExp }> = [
  { what: 'files', limits: { maxFiles: 2 }, parts: [1, 2, 3].map((i) => ({ name: `f${i}`, value: 'x', filename: `${i}.txt` })), code: 'NODEFPM_FORM_TOO_MANY_FILES', reason: /more than 2 files/ },
  { what: 'fields', limits: { maxFields: 2 }, parts: [1, 2, 3].map((i) => ({ name: `v${i}`, value: 'x' })), code: 'NODEFPM_FORM_TOO_MANY_FIELDS', reason: /more than 2 fields/ },
  { what: 'field bytes', limits: { maxFieldBytes: 5 }, parts: [{ name: 'v', value: '123456' }], code: 'NODEFPM_FORM_FIELD_TOO_LARGE', reason: /field "v" is larger than 5 bytes/ },
  { what: 'field name bytes', limits: { maxFieldNameBytes: 4 }, parts: [{ name: 'abcde', value: 'x' }], code: 'NODEFPM_FORM_FIELD_NAME_TOO_LARGE', reason: /longer than 4 bytes/ },
  { what: 'file name bytes', limits: { maxFieldNameBytes: 4 }, parts: [{ name: 'abcde', value: 'x', filename: 'a' }], code: 'NODEFPM_FORM_FIELD_NAME_TOO_LARGE', reason: /longer than 4 bytes/ },
  { what: 'file bytes', limits: { maxFileBytes: 1000 }, parts: [{ name: 'f', value: Buffer.alloc(1001), filename: 'big.bin' }], code: 'NODEFPM_FORM_FILE_TOO_LARGE', reason: /"big.bin".*larger than 1000 bytes/ },
  { what: 'multipart bytes', limits: { maxMultipartBytes: 10_000 }, parts: [{ name: 'f', value: Buffer.alloc(20_000), filename: 'big.bin' }], code: 'NODEFPM_FORM_TOO_LARGE', reason: /larger than 10000 bytes/ },
  { what: 'part header bytes', limits: { maxPartHeaderBytes: 200 }, parts: [{ name: 'f', value: 'x', headers: `X-Pad: ${'p'.repeat(300)}\r\n` }], code: 'NODEFPM_FORM_PART_HEADER_TOO_LARGE', reason: /larger than 200 bytes/ },
];

test('multipart: every limit, one step over, is a 413 with the reason, and leaves no temp file', async () => {
  for (const { what, limits, parts, code, reason } of overLimits) {
    const dir = uploadFolder();
    const { body, stream } = bodyOf(pieces(multipart(parts), 512));
    const kind = formKind(`multipart/form-data; boundary=${BOUNDARY}`);
    assert.ok(kind.kind === 'multipart', 'multipart');
    const uploads = new UploadStore();
    await rejectsWith(
      readMultipart({ body, contentType: `multipart/form-data; boundary=${BOUNDARY}`, boundary: kind.boundary, declaredLength: null, uploads }, options(limits, dir), dir, undefined),
      code,
      413,
      reason,
    );
    assert.equal(stream.discarded, true, `${what}: the rest of the body is dropped`);
    await uploads.cleanup();
    assert.deepEqual(readdirSync(dir), [], `${what}: no temp file left`);
  }
});

test('multipart: exactly at each limit is accepted', async () => {
  const dir = uploadFolder();
  const form = await readForm(
    [
      multipart([
        { name: 'f1', value: Buffer.alloc(1000), filename: 'a' },
        { name: 'f2', value: 'x', filename: 'b' },
        { name: 'abcd', value: '12345' },
        { name: 'v2', value: 'x' },
      ]),
    ],
    options({ maxFiles: 2, maxFields: 2, maxFieldBytes: 5, maxFieldNameBytes: 4, maxFileBytes: 1000 }, dir),
  );
  assert.equal(form.get('abcd'), '12345');
  assert.equal(form.file('f1')?.size, 1000);
});

test('multipart: a declared Content-Length over maxMultipartBytes fails before reading', async () => {
  const { body, stream } = bodyOf([], false);
  await rejectsWith(
    readMultipart({ body, contentType: `multipart/form-data; boundary=${BOUNDARY}`, boundary: BOUNDARY, declaredLength: 5000, uploads: new UploadStore() }, options({ maxMultipartBytes: 4000 }), tmpdir(), undefined),
    'NODEFPM_FORM_TOO_LARGE',
    413,
    /4000/,
  );
  assert.equal(stream.discarded, true, 'body dropped');
});

test('multipart: malformed bodies are 400 NODEFPM_FORM_MALFORMED with the reason, and leave no temp file', async () => {
  const good = multipart([
    { name: 'a', value: 'x' },
    { name: 'f', value: Buffer.alloc(5000, 0x61), filename: 'f.txt' },
  ]);
  const cases: Array<{ what: string; body: Buffer; reason: RegExp }> = [
    { what: 'truncated in a file', body: good.subarray(0, good.length - 2000), reason: /ended before .* closing boundary/ },
    { what: 'truncated before the close delimiter', body: good.subarray(0, good.length - 8), reason: /ended before/ },
    { what: 'a boundary that is not in the body', body: multipart([{ name: 'a', value: 'x' }], 'otherBoundary'), reason: /boundary is not the one Content-Type names/ },
    { what: 'an empty body', body: Buffer.alloc(0), reason: /ended before/ },
    { what: 'a header line without a colon', body: Buffer.from(`--${BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nx\r\n--${BOUNDARY}--\r\n`), reason: /part header .* malformed/ },
  ];
  for (const { what, body: data, reason } of cases) {
    const dir = uploadFolder();
    const uploads = new UploadStore();
    await rejectsWith(readForm(pieces(data, 700), options({}, dir), { uploads }), 'NODEFPM_FORM_MALFORMED', 400, reason).catch((error: unknown) => {
      throw new Error(`${what}: ${(error as Error).message}`);
    });
    await uploads.cleanup();
    assert.deepEqual(readdirSync(dir), [], `${what}: no temp file left`);
  }
});

test('multipart: with maxPartHeaderBytes at its highest, a huge part header is our 413, not busboy\'s "malformed"', async () => {
  const huge = multipart([{ name: 'f', value: 'x', headers: `X-Pad: ${'p'.repeat(20_000)}\r\n` }]);
  await rejectsWith(readForm(pieces(huge, 1000), options({ maxPartHeaderBytes: MAX_PART_HEADER_BYTES })), 'NODEFPM_FORM_PART_HEADER_TOO_LARGE', 413, /16000/);
  // A header block of exactly the highest bound (Content-Disposition line, padding line, blank line) passes both ours and busboy's.
  const disposition = 'Content-Disposition: form-data; name="f"\r\n';
  const padding = `X-Pad: ${'p'.repeat(MAX_PART_HEADER_BYTES - disposition.length - 'X-Pad: '.length - 4)}\r\n`;
  const exact = Buffer.from(`--${BOUNDARY}\r\n${disposition}${padding}\r\nvalue\r\n--${BOUNDARY}--\r\n`);
  assert.equal((await readForm(pieces(exact, 1000), options({ maxPartHeaderBytes: MAX_PART_HEADER_BYTES }))).get('f'), 'value');
});

test('multipart: an upload folder that does not exist is a 500 NODEFPM_FORM_UPLOAD_FAILED naming it', async () => {
  const missing = join(uploadRoot, 'does-not-exist');
  await rejectsWith(readForm([multipart([{ name: 'f', value: 'x', filename: 'a' }])], options({}, missing)), 'NODEFPM_FORM_UPLOAD_FAILED', 500, /does-not-exist/);
});

test('UploadStore.cleanup while a form is being written removes everything, even files still opening', async () => {
  const dir = uploadFolder();
  const uploads = new UploadStore();
  // The body never ends: the form is mid-file when the "response" closes.
  const { body, stream } = bodyOf([Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n`), Buffer.alloc(50_000, 1)], false);
  const reading = readMultipart({ body, contentType: `multipart/form-data; boundary=${BOUNDARY}`, boundary: BOUNDARY, declaredLength: null, uploads }, options({}, dir), dir, undefined);
  reading.catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(readdirSync(dir).length, 1, 'a temp file is being written');
  await uploads.cleanup();
  assert.deepEqual(readdirSync(dir), []);
  stream.push(Buffer.alloc(10_000));
  stream.end();
  // A store that is closed refuses new files.
  assert.throws(() => uploads.create(dir), /response is over/);
});

test('FormState: the body is read once (same promise in the same mode, NODEFPM_BODY_CONSUMED in the other); a closed response refuses', async () => {
  const data = Buffer.from('a=1&b=2');
  const { body } = bodyOf([data]);
  const request = { body, contentType: 'application/x-www-form-urlencoded', contentLength: data.length };
  const state = new FormState(options(), null, false);
  const first = state.read(request, undefined);
  assert.equal(state.read(request, {}), first);
  await assert.rejects(state.read(request, { onFile: () => {} }), (error: unknown) => isNodefpmError(error, 'NODEFPM_BODY_CONSUMED'));
  assert.equal((await first).get('b'), '2');

  let closeListener: (() => void) | null = null;
  const response = { writableEnded: false, once: (_event: 'close', listener: () => void) => (closeListener = listener) };
  const open = new FormState(options(), response, false);
  assert.ok(closeListener !== null, 'the form state listens for the response to close');
  assert.equal(open.uploads.closed, false);
  (closeListener as () => void)();
  assert.equal(open.uploads.closed, true, 'close empties and closes the store');

  const ended = new FormState(options(), { writableEnded: true, once: () => undefined }, false);
  const { body: other } = bodyOf([multipart([{ name: 'f', value: 'x', filename: 'a' }])]);
  await rejectsWith(
    ended.read({ body: other, contentType: `multipart/form-data; boundary=${BOUNDARY}`, contentLength: null }, undefined),
    'NODEFPM_FORM_AFTER_END',
    undefined,
    /response ended/,
  );
});

test('FormState: urlencoded over maxFormBytes (declared or streamed) is a 413; bad encoding a 400', async () => {
  const state = (): FormState => new FormState(options({ maxFormBytes: 10 }), null, false);
  const declared = bodyOf([], false);
  await rejectsWith(state().read({ body: declared.body, contentType: 'application/x-www-form-urlencoded', contentLength: 11 }, undefined), 'NODEFPM_FORM_TOO_LARGE', 413, /larger than 10 bytes/);
  assert.equal(declared.stream.discarded, true, 'body dropped unread');
  const streamed = bodyOf(['a=12345', '67890']);
  await rejectsWith(state().read({ body: streamed.body, contentType: 'application/x-www-form-urlencoded', contentLength: null }, undefined), 'NODEFPM_FORM_TOO_LARGE', 413, /maxFormBytes/);
  const bad = bodyOf(['a=%zz']);
  await rejectsWith(state().read({ body: bad.body, contentType: 'application/x-www-form-urlencoded', contentLength: null }, undefined), 'NODEFPM_FORM_MALFORMED', 400, /"%zz"/);
});
