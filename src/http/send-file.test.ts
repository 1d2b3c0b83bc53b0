// Unit tests of sendFile against a recording response: every traversal attempt, every conditional and range case, modes, backpressure.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isNodefpmError, type ErrorCode } from '../errors.js';
import {
  contentDisposition,
  contentTypeFor,
  parseRange,
  sendFile,
  type SendFileOptions,
  type SendFileRequest,
  type SendFileResponse,
} from './send-file.js';

/** Records what sendFile does to a response; write() can be made to ask for 'drain'. */
class FakeResponse extends EventEmitter implements SendFileResponse {
  statusCode = 200;
  readonly headers = new Map<string, string>();
  readonly chunks: Buffer[] = [];
  headSent = false;
  ended = false;
  /** write() returns false while this is true. */
  blocked = false;
  /** Called after each write (tests use it to act mid-transfer). */
  onWrite: ((count: number) => void) | null = null;
  writes = 0;

  setHeader(name: string, value: string | number): this {
    assert.equal(this.headSent, false, `setHeader(${name}) after the head went out`);
    this.headers.set(name.toLowerCase(), String(value));
    return this;
  }
  hasHeader(name: string): boolean {
    return this.headers.has(name.toLowerCase());
  }
  removeHeader(name: string): this {
    this.headers.delete(name.toLowerCase());
    return this;
  }
  write(chunk: Uint8Array): boolean {
    assert.equal(this.ended, false, 'write after end');
    this.headSent = true;
    this.chunks.push(Buffer.from(chunk));
    this.writes++;
    this.onWrite?.(this.writes);
    return !this.blocked;
  }
  end(chunk?: string): this {
    this.headSent = true;
    if (chunk !== undefined) this.chunks.push(Buffer.from(chunk));
    this.ended = true;
    return this;
  }
  flushHeaders(): void {
    this.headSent = true;
  }
  get body(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Waits until `condition()` holds (file operations run on the thread pool, so no fixed number of ticks will do). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(5);
  }
}

function fakeRequest(method = 'GET', headers: Record<string, string> = {}): SendFileRequest & { aborted: boolean } {
  return { method, header: (name) => headers[name], aborted: false };
}

const CONTENT = 'hello world\n'; // 12 bytes
const MTIME = new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 500)); // with milliseconds, which HTTP dates drop
const LAST_MODIFIED = 'Mon, 06 May 2024 07:08:09 GMT';

let base: string;
let root: string;
let outside: string;

before(() => {
  base = mkdtempSync(join(tmpdir(), 'nodefpm-sendfile-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  mkdirSync(join(root, 'sub', '.hidden'), { recursive: true });
  mkdirSync(join(root, 'dir'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(root, 'hello.txt'), CONTENT);
  utimesSync(join(root, 'hello.txt'), MTIME, MTIME);
  writeFileSync(join(root, 'empty.txt'), '');
  writeFileSync(join(root, 'page.html'), '<p>hi</p>');
  writeFileSync(join(root, 'image.PNG'), 'png');
  writeFileSync(join(root, 'data.unknownext'), 'data');
  writeFileSync(join(root, 'space name ü.txt'), 'unicode name');
  writeFileSync(join(root, '.secret'), 'dotfile');
  writeFileSync(join(root, 'sub', '.hidden', 'x.txt'), 'hidden');
  writeFileSync(join(root, 'sub', 'a.txt'), 'sub a');
  writeFileSync(join(root, 'dir', 'index.html'), 'index page');
  writeFileSync(join(outside, 'secret.txt'), 'OUTSIDE SECRET');
  writeFileSync(join(base, 'root-sibling.txt'), 'OUTSIDE SIBLING');
  symlinkSync(join(outside, 'secret.txt'), join(root, 'link-out'));
  symlinkSync('../outside', join(root, 'link-dir-out'));
  symlinkSync('hello.txt', join(root, 'link-in'));
  symlinkSync('.secret', join(root, 'link-to-dotfile'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
});

after(() => {
  rmSync(base, { recursive: true, force: true });
});

async function send(path: string, options: SendFileOptions = {}, method = 'GET', headers: Record<string, string> = {}): Promise<FakeResponse> {
  const res = new FakeResponse();
  await sendFile(res, fakeRequest(method, headers), path, { root, ...options });
  return res;
}

async function refusedWith(code: ErrorCode, path: string, options: SendFileOptions = { root: undefined }): Promise<void> {
  const res = new FakeResponse();
  const merged: SendFileOptions = 'root' in options ? options : { root, ...options };
  await assert.rejects(
    sendFile(res, fakeRequest(), path, merged.root === undefined ? { ...merged, root: undefined } : merged),
    (error: unknown) => {
      assert.ok(isNodefpmError(error, code), `${JSON.stringify(path)}: expected ${code}, got ${String(error)}`);
      assert.equal((error as { status?: number }).status, 404, 'refusals answer 404');
      assert.ok(!(error as Error).message.includes('refused'), 'the client-facing message does not say the path was refused');
      return true;
    },
  );
  assert.equal(res.headSent, false, `${JSON.stringify(path)}: nothing may be written`);
  assert.ok(!res.body.includes('OUTSIDE'), 'nothing from outside the root');
}

describe('path checks', () => {
  test('traversal attempts are refused (NODEFPM_PATH_REFUSED, 404) before anything is written', async () => {
    const attempts = [
      '../outside/secret.txt',
      '/../outside/secret.txt',
      'sub/../../outside/secret.txt',
      '..',
      '%2e%2e/outside/secret.txt',
      '%2E%2E/outside/secret.txt',
      '..%2foutside%2fsecret.txt',
      '%2e%2e%2foutside%2fsecret.txt',
      'sub%2f..%2f..%2froot-sibling.txt',
      '..\\outside\\secret.txt',
      '%5c..%5coutside%5csecret.txt',
      'hello.txt\0.png',
      'hello.txt%00.png',
      '%00',
      '%E0%A4%A', // malformed percent-encoding
      '%',
      'link-out', // a symlink to a file outside
      'link-dir-out/secret.txt', // through a symlinked folder
      '.secret',
      'sub/.hidden/x.txt',
      '%2esecret',
      'link-to-dotfile', // a symlink whose target is a dotfile
    ];
    for (const path of attempts) await refusedWith('NODEFPM_PATH_REFUSED', path, { root });
  });

  test('an absolute path with a root is taken under the root, so a file outside is never served', async () => {
    await refusedWith('NODEFPM_FILE_NOT_FOUND', join(outside, 'secret.txt'), { root });
    await refusedWith('NODEFPM_FILE_NOT_FOUND', '/etc/passwd', { root });
    const res = await send('/hello.txt');
    assert.equal(res.body, CONTENT, 'a leading slash is root-relative, as URL paths are');
  });

  test('double encoding is decoded once only: %252e%252e names a folder called %2e%2e, which does not exist', async () => {
    await refusedWith('NODEFPM_FILE_NOT_FOUND', '%252e%252e/outside/secret.txt', { root });
  });

  test('decode: false takes the path literally', async () => {
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'space%20name%20%C3%BC.txt', { root, decode: false });
    assert.equal((await send('space name ü.txt', { decode: false })).body, 'unicode name');
    assert.equal((await send('space%20name%20%C3%BC.txt')).body, 'unicode name', 'decoded by default');
    await refusedWith('NODEFPM_PATH_REFUSED', '../outside/secret.txt', { root, decode: false });
  });

  test('symlinks that stay inside the root are followed', async () => {
    assert.equal((await send('link-in')).body, CONTENT);
  });

  test('missing files, directories, FIFOs: NODEFPM_FILE_NOT_FOUND', async () => {
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'missing.txt', { root });
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'hello.txt/more', { root });
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'dir', { root });
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'sub/', { root });
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'fifo', { root });
    await refusedWith('NODEFPM_FILE_NOT_FOUND', '', { root });
  });

  test('index: a folder serves its index file', async () => {
    assert.equal((await send('dir', { index: 'index.html' })).body, 'index page');
    assert.equal((await send('dir/', { index: 'index.html' })).headers.get('content-type'), 'text/html; charset=utf-8');
    await refusedWith('NODEFPM_FILE_NOT_FOUND', 'sub', { root, index: 'index.html' });
  });

  test('dotfiles: allow serves them', async () => {
    assert.equal((await send('.secret', { dotfiles: 'allow' })).body, 'dotfile');
    assert.equal((await send('sub/.hidden/x.txt', { dotfiles: 'allow' })).body, 'hidden');
  });

  test('without a root: absolute paths only; ".." segments and NULs are still refused', async () => {
    const res = new FakeResponse();
    await sendFile(res, fakeRequest(), join(root, 'hello.txt'));
    assert.equal(res.body, CONTENT);
    await assert.rejects(sendFile(new FakeResponse(), fakeRequest(), 'hello.txt'), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
    await refusedWith('NODEFPM_PATH_REFUSED', `${root}/../outside/secret.txt`);
    await refusedWith('NODEFPM_PATH_REFUSED', `${root}/hello.txt\0`);
    await refusedWith('NODEFPM_PATH_REFUSED', `${root}/.secret`);
    await refusedWith('NODEFPM_FILE_NOT_FOUND', `${root}/nope`);
  });

  test('the log-only reason is in the error cause', async () => {
    await assert.rejects(send('link-out'), (error: unknown) => {
      assert.match(String((error as Error).cause), /symlink leads outside the root/);
      return true;
    });
    await assert.rejects(send('../x'), (error: unknown) => {
      assert.match(String((error as Error).cause), /climbs out of the root/);
      return true;
    });
  });
});

describe('a plain 200', () => {
  test('headers: type, length, weak ETag, Last-Modified, Accept-Ranges, Cache-Control', async () => {
    const res = await send('hello.txt');
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, CONTENT);
    assert.equal(res.ended, true, 'the response is ended');
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(res.headers.get('content-length'), '12');
    assert.equal(res.headers.get('etag'), `W/"c-${Math.floor(MTIME.getTime()).toString(16)}"`);
    assert.equal(res.headers.get('last-modified'), LAST_MODIFIED);
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
  });

  test('HEAD: the same headers, no body', async () => {
    const res = await send('hello.txt', {}, 'HEAD');
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '');
    assert.equal(res.headers.get('content-length'), '12');
    assert.equal(res.ended, true);
  });

  test('an empty file', async () => {
    const res = await send('empty.txt');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.get('content-length'), '0');
    assert.equal(res.body, '');
  });

  test('content types: by extension, case-insensitive, unknown, option, and one already set', async () => {
    assert.equal((await send('page.html')).headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal((await send('image.PNG')).headers.get('content-type'), 'image/png');
    assert.equal((await send('data.unknownext')).headers.get('content-type'), 'application/octet-stream');
    assert.equal((await send('hello.txt', { contentType: 'text/x-custom' })).headers.get('content-type'), 'text/x-custom');
    const res = new FakeResponse();
    res.setHeader('Content-Type', 'application/x-preset');
    await sendFile(res, fakeRequest(), 'hello.txt', { root });
    assert.equal(res.headers.get('content-type'), 'application/x-preset');
    assert.equal(contentTypeFor('a/b/c.JSON'), 'application/json; charset=utf-8');
    assert.equal(contentTypeFor('x.svg'), 'image/svg+xml; charset=utf-8');
    assert.equal(contentTypeFor('x.woff2'), 'font/woff2');
    assert.equal(contentTypeFor('noext'), 'application/octet-stream');
  });

  test('Cache-Control: maxAge, immutable, a given value, none, and one already set', async () => {
    assert.equal((await send('hello.txt', { maxAge: 3600 })).headers.get('cache-control'), 'public, max-age=3600');
    assert.equal((await send('hello.txt', { maxAge: 60.7, immutable: true })).headers.get('cache-control'), 'public, max-age=60, immutable');
    assert.equal((await send('hello.txt', { cacheControl: 'private, max-age=5' })).headers.get('cache-control'), 'private, max-age=5');
    assert.equal((await send('hello.txt', { cacheControl: false })).headers.has('cache-control'), false);
    const res = new FakeResponse();
    res.setHeader('Cache-Control', 'no-store');
    await sendFile(res, fakeRequest(), 'hello.txt', { root });
    assert.equal(res.headers.get('cache-control'), 'no-store');
  });

  test('etag: false and lastModified: false leave those headers out', async () => {
    const res = await send('hello.txt', { etag: false, lastModified: false });
    assert.equal(res.headers.has('etag'), false);
    assert.equal(res.headers.has('last-modified'), false);
    const ims = await send('hello.txt', { lastModified: false }, 'GET', { 'if-modified-since': 'Tue, 01 Jan 2030 00:00:00 GMT' });
    assert.equal(ims.statusCode, 200, 'If-Modified-Since is not honoured without Last-Modified');
  });

  test('Content-Disposition for downloads, with filename* for non-ASCII names', async () => {
    assert.equal((await send('hello.txt', { download: true })).headers.get('content-disposition'), 'attachment; filename="hello.txt"');
    assert.equal((await send('hello.txt', { download: 'report.csv' })).headers.get('content-disposition'), 'attachment; filename="report.csv"');
    assert.equal(
      (await send('space name ü.txt', { download: true })).headers.get('content-disposition'),
      `attachment; filename="space name ?.txt"; filename*=UTF-8''space%20name%20%C3%BC.txt`,
    );
    assert.equal(contentDisposition('r\u00e9sum\u00e9 "1".pdf'), `attachment; filename="r?sum? \\"1\\".pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf`);
    assert.equal(contentDisposition("it's (1)*.txt"), `attachment; filename="it's (1)*.txt"`);
    assert.equal(contentDisposition('100%.txt'), `attachment; filename="100%.txt"; filename*=UTF-8''100%25.txt`);
    assert.equal(contentDisposition('日本.txt'), `attachment; filename="??.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt`);
    assert.equal(contentDisposition('/a/b/c.txt'), 'attachment; filename="c.txt"', 'only the base name');
    assert.equal(contentDisposition("a'b.txt\u00e9"), `attachment; filename="a'b.txt?"; filename*=UTF-8''a%27b.txt%C3%A9`);
    assert.equal(contentDisposition('x.txt', 'inline'), 'inline; filename="x.txt"');
  });

  test('a status the handler set first is kept and the file is sent whole, without conditionals', async () => {
    const res = new FakeResponse();
    res.statusCode = 404;
    await sendFile(res, fakeRequest('GET', { 'if-none-match': '*', range: 'bytes=0-1' }), 'hello.txt', { root });
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, CONTENT);
    assert.equal(res.headers.get('content-length'), '12');
  });
});

describe('conditional requests', () => {
  const etag = `W/"c-${Math.floor(MTIME.getTime()).toString(16)}"`;
  const strongForm = etag.slice(2);
  const cases: Array<[string, string, Record<string, string>, number]> = [
    ['If-None-Match: the ETag', 'GET', { 'if-none-match': etag }, 304],
    ['If-None-Match: its strong form (weak comparison)', 'GET', { 'if-none-match': strongForm }, 304],
    ['If-None-Match: in a list', 'GET', { 'if-none-match': `"other", ${etag}` }, 304],
    ['If-None-Match: *', 'GET', { 'if-none-match': '*' }, 304],
    ['If-None-Match: another tag', 'GET', { 'if-none-match': '"other"' }, 200],
    ['If-None-Match on HEAD', 'HEAD', { 'if-none-match': etag }, 304],
    ['If-None-Match on POST', 'POST', { 'if-none-match': etag }, 412],
    ['If-None-Match takes precedence over If-Modified-Since', 'GET', { 'if-none-match': '"other"', 'if-modified-since': LAST_MODIFIED }, 200],
    ['If-Modified-Since: the Last-Modified date', 'GET', { 'if-modified-since': LAST_MODIFIED }, 304],
    ['If-Modified-Since: later', 'GET', { 'if-modified-since': 'Tue, 01 Jan 2030 00:00:00 GMT' }, 304],
    ['If-Modified-Since: earlier', 'GET', { 'if-modified-since': 'Mon, 06 May 2024 07:08:08 GMT' }, 200],
    ['If-Modified-Since: not a date', 'GET', { 'if-modified-since': 'yesterday' }, 200],
    ['If-Modified-Since on POST is ignored', 'POST', { 'if-modified-since': LAST_MODIFIED }, 200],
    ['If-Match: *', 'GET', { 'if-match': '*' }, 200],
    ['If-Match: the weak ETag (strong comparison never matches a weak tag)', 'GET', { 'if-match': etag }, 412],
    ['If-Match: another tag', 'GET', { 'if-match': '"other"' }, 412],
    ['If-Unmodified-Since: earlier', 'GET', { 'if-unmodified-since': 'Mon, 06 May 2024 07:08:08 GMT' }, 412],
    ['If-Unmodified-Since: the date', 'GET', { 'if-unmodified-since': LAST_MODIFIED }, 200],
    ['If-Unmodified-Since: not a date', 'GET', { 'if-unmodified-since': 'soon' }, 200],
    ['If-Unmodified-Since is ignored when If-Match is given', 'GET', { 'if-match': '*', 'if-unmodified-since': 'Mon, 06 May 2024 07:08:08 GMT' }, 200],
    ['If-Match fails before If-None-Match is looked at', 'GET', { 'if-match': '"other"', 'if-none-match': etag }, 412],
  ];
  for (const [name, method, headers, status] of cases) {
    test(`${name} -> ${status}`, async () => {
      const res = await send('hello.txt', {}, method, headers);
      assert.equal(res.statusCode, status);
      if (status === 304) {
        assert.equal(res.body, '', 'a 304 has no body');
        assert.equal(res.headers.get('etag'), etag, 'a 304 carries the ETag');
        assert.equal(res.headers.get('last-modified'), LAST_MODIFIED);
        assert.equal(res.headers.get('cache-control'), 'no-cache');
        assert.equal(res.headers.has('content-type'), false, 'no Content-Type on a 304');
        assert.equal(res.headers.has('content-length'), false, 'no Content-Length on a 304');
      } else if (status === 412) {
        assert.equal(res.body, '412 Precondition Failed\n');
      } else {
        assert.equal(res.body, method === 'HEAD' ? '' : CONTENT);
      }
    });
  }
});

describe('ranges', () => {
  const cases: Array<[string, Record<string, string>, number, string, string | null]> = [
    ['first five bytes', { range: 'bytes=0-4' }, 206, 'hello', 'bytes 0-4/12'],
    ['from an offset to the end', { range: 'bytes=6-' }, 206, 'world\n', 'bytes 6-11/12'],
    ['a suffix', { range: 'bytes=-6' }, 206, 'world\n', 'bytes 6-11/12'],
    ['a suffix longer than the file', { range: 'bytes=-100' }, 206, CONTENT, 'bytes 0-11/12'],
    ['an end past the file is clamped', { range: 'bytes=6-100' }, 206, 'world\n', 'bytes 6-11/12'],
    ['one byte', { range: 'bytes=11-11' }, 206, '\n', 'bytes 11-11/12'],
    ['spaces and case', { range: ' Bytes = 0 - 1 ' }, 206, 'he', 'bytes 0-1/12'],
    ['a start at the size: 416', { range: 'bytes=12-' }, 416, '', 'bytes */12'],
    ['a start past the size: 416', { range: 'bytes=100-200' }, 416, '', 'bytes */12'],
    ['an empty suffix: 416', { range: 'bytes=-0' }, 416, '', 'bytes */12'],
    ['several ranges: the whole file', { range: 'bytes=0-1,3-4' }, 200, CONTENT, null],
    ['an end before the start: ignored', { range: 'bytes=4-2' }, 200, CONTENT, null],
    ['not bytes: ignored', { range: 'items=0-1' }, 200, CONTENT, null],
    ['garbage: ignored', { range: 'bytes=a-b' }, 200, CONTENT, null],
    ['no numbers: ignored', { range: 'bytes=-' }, 200, CONTENT, null],
    ['If-Range with the (weak) ETag: the whole file', { range: 'bytes=0-4', 'if-range': `W/"c-${Math.floor(MTIME.getTime()).toString(16)}"` }, 200, CONTENT, null],
    ['If-Range with the Last-Modified date', { range: 'bytes=0-4', 'if-range': LAST_MODIFIED }, 206, 'hello', 'bytes 0-4/12'],
    ['If-Range with another date', { range: 'bytes=0-4', 'if-range': 'Tue, 01 Jan 2030 00:00:00 GMT' }, 200, CONTENT, null],
    ['If-Range with garbage', { range: 'bytes=0-4', 'if-range': 'whenever' }, 200, CONTENT, null],
    ['If-None-Match wins over Range', { range: 'bytes=0-4', 'if-none-match': '*' }, 304, '', null],
  ];
  for (const [name, headers, status, body, contentRange] of cases) {
    test(`${name} -> ${status}`, async () => {
      const res = await send('hello.txt', {}, 'GET', headers);
      assert.equal(res.statusCode, status);
      if (status === 416) assert.match(res.body, /^416 Range Not Satisfiable/);
      else assert.equal(res.body, body);
      assert.equal(res.headers.get('content-range') ?? null, contentRange);
      if (status === 206) assert.equal(res.headers.get('content-length'), String(body.length));
    });
  }

  test('HEAD and POST ignore Range (only GET has range semantics)', async () => {
    const head = await send('hello.txt', {}, 'HEAD', { range: 'bytes=0-4' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers.get('content-length'), '12');
    const post = await send('hello.txt', {}, 'POST', { range: 'bytes=0-4' });
    assert.equal(post.statusCode, 200);
    assert.equal(post.body, CONTENT);
  });

  test('acceptRanges: false ignores Range and sends no Accept-Ranges', async () => {
    const res = await send('hello.txt', { acceptRanges: false }, 'GET', { range: 'bytes=0-4' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.has('accept-ranges'), false);
    assert.equal(res.body, CONTENT);
  });

  test('an empty file cannot satisfy any range', async () => {
    const res = await send('empty.txt', {}, 'GET', { range: 'bytes=0-' });
    assert.equal(res.statusCode, 416);
    assert.equal(res.headers.get('content-range'), 'bytes */0');
  });

  test('parseRange table', () => {
    assert.deepEqual(parseRange('bytes=0-0', 1), { start: 0, end: 0 });
    assert.deepEqual(parseRange('bytes=0-', 0), 'unsatisfiable');
    assert.deepEqual(parseRange('bytes=-5', 0), 'unsatisfiable');
    assert.deepEqual(parseRange('bytes=, 2-3 ,', 10), { start: 2, end: 3 }, 'empty list elements are allowed');
    assert.equal(parseRange('bytes=1-2, 5-6', 10), null);
    assert.equal(parseRange('bytes 0-1', 10), null);
    assert.equal(parseRange('bytes=0x1-2', 10), null);
    assert.deepEqual(parseRange('bytes=99999999999999999999-', 10), 'unsatisfiable');
  });
});

describe('web server modes', () => {
  test('x-sendfile: X-Sendfile with the real absolute path, no body, no Content-Length', async () => {
    const res = await send('link-in', { mode: 'x-sendfile', download: true });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.get('x-sendfile'), realpathSync(join(root, 'hello.txt')));
    assert.equal(res.headers.has('content-length'), false);
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="hello.txt"');
    assert.equal(res.headers.has('etag'), false, 'the web server makes its own validators');
    assert.equal(res.body, '');
    assert.equal(res.ended, true);
  });

  test('x-sendfile: a non-ASCII path goes out as its UTF-8 bytes', async () => {
    const res = await send('space name ü.txt', { mode: 'x-sendfile' });
    const header = res.headers.get('x-sendfile')!;
    assert.equal(Buffer.from(header, 'latin1').toString('utf8'), realpathSync(join(root, 'space name ü.txt')));
  });

  test("x-sendfile: a path with '%' is streamed instead (lighttpd would percent-decode it)", async () => {
    writeFileSync(join(root, '100%41.txt'), 'percent');
    try {
      const res = await send('100%2541.txt', { mode: 'x-sendfile' });
      assert.equal(res.headers.has('x-sendfile'), false);
      assert.equal(res.body, 'percent');
      assert.equal(res.headers.get('content-length'), '7');
      const accel = await send('100%2541.txt', { mode: 'x-accel-redirect', internalLocation: '/p/' });
      assert.equal(accel.headers.get('x-accel-redirect'), '/p/100%2541.txt', 'nginx decodes once: % is sent as %25');
    } finally {
      rmSync(join(root, '100%41.txt'));
    }
  });

  test('x-accel-redirect: the internal location plus the encoded path under the root', async () => {
    const options: SendFileOptions = { mode: 'x-accel-redirect', internalLocation: '/protected' };
    assert.equal((await send('sub/a.txt', options)).headers.get('x-accel-redirect'), '/protected/sub/a.txt');
    assert.equal((await send('link-in', options)).headers.get('x-accel-redirect'), '/protected/hello.txt', 'the symlink target under the root');
    assert.equal((await send('space name ü.txt', options)).headers.get('x-accel-redirect'), '/protected/space%20name%20%C3%BC.txt');
    const res = await send('hello.txt', { ...options, internalLocation: '/protected/' });
    assert.equal(res.headers.get('x-accel-redirect'), '/protected/hello.txt');
    assert.equal(res.body, '');
  });

  test('x-accel-redirect needs root and internalLocation; an unknown mode is refused', async () => {
    const invalid = (error: unknown): boolean => isNodefpmError(error, 'NODEFPM_INVALID_OPTION');
    await assert.rejects(send('hello.txt', { mode: 'x-accel-redirect' }), invalid);
    await assert.rejects(sendFile(new FakeResponse(), fakeRequest(), join(root, 'hello.txt'), { mode: 'x-accel-redirect', internalLocation: '/p/' }), invalid);
    await assert.rejects(send('hello.txt', { mode: 'sendfile' as 'stream' }), invalid);
  });

  test('the path checks apply in every mode', async () => {
    for (const mode of ['x-sendfile', 'x-accel-redirect'] as const) {
      for (const path of ['../outside/secret.txt', '%2e%2e/outside/secret.txt', 'link-out', '.secret', 'a\0b']) {
        await refusedWith('NODEFPM_PATH_REFUSED', path, { root, mode, internalLocation: '/p/' });
      }
      await refusedWith('NODEFPM_FILE_NOT_FOUND', 'missing', { root, mode, internalLocation: '/p/' });
    }
  });
});

describe('streaming', () => {
  test('waits for drain whenever write() returns false, chunk by chunk', async () => {
    const res = new FakeResponse();
    res.blocked = true;
    const done = sendFile(res, fakeRequest(), 'hello.txt', { root, chunkSize: 4 });
    for (let expected = 1; expected <= 3; expected++) {
      await until(() => res.writes >= expected, `write ${expected}`);
      // Give sendFile every chance to run ahead: it must not write again before 'drain'.
      await sleep(50);
      assert.equal(res.writes, expected, `write ${expected} waits for drain`);
      res.emit('drain');
    }
    await done;
    assert.equal(res.body, CONTENT);
    assert.deepEqual(res.chunks.map((chunk) => chunk.length), [4, 4, 4]);
  });

  test('stops when the request is aborted, and still ends the response', async () => {
    const res = new FakeResponse();
    const req = fakeRequest();
    res.onWrite = () => {
      req.aborted = true;
    };
    await sendFile(res, req, 'hello.txt', { root, chunkSize: 4 });
    assert.equal(res.writes, 1);
    assert.equal(res.ended, true);
  });

  test('a close while waiting for drain ends the wait', async () => {
    const res = new FakeResponse();
    const req = fakeRequest();
    res.blocked = true;
    const done = sendFile(res, req, 'hello.txt', { root, chunkSize: 4 });
    await until(() => res.writes >= 1, 'the first write');
    req.aborted = true;
    res.emit('close');
    await done;
    assert.equal(res.writes, 1);
  });

  test('a file that shrinks mid-transfer rejects after the head went out', async () => {
    const file = join(root, 'shrinking.txt');
    writeFileSync(file, 'x'.repeat(64));
    const res = new FakeResponse();
    res.onWrite = () => truncateSync(file, 8);
    await assert.rejects(sendFile(res, fakeRequest(), 'shrinking.txt', { root, chunkSize: 16 }), /shrank/);
    assert.equal(res.headers.get('content-length'), '64');
    assert.equal(res.headSent, true);
    rmSync(file);
  });
});
