// What nginx sends for SCRIPT_NAME, PATH_INFO and HTTP_HOST with the app mounted at / and at /app/ (Debian's fastcgi_params, and with fastcgi_split_path_info), what req.basePath / pathInfo / fullUrl make of it, and one multipart upload through nginx.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer, silentLogger, type FcgiServer } from '../../src/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import { startWebServer } from './harness.js';
import { nginxMount } from './nginx-mount-server.js';
import { checkCases, startUrlApp, type UrlCase } from './url-app.js';

const TIMEOUT = 120_000;

describe('nginx: SCRIPT_NAME and PATH_INFO', { timeout: TIMEOUT }, () => {
  let app: Awaited<ReturnType<typeof startUrlApp>>;
  before(async () => {
    app = await startUrlApp();
  });
  after(async () => {
    await app.server.close({ timeout: 1000 });
  });

  async function run(prefix: string, splitPathInfo: boolean, mount: string, cases: UrlCase[]): Promise<void> {
    const web = await startWebServer(nginxMount({ locations: [{ prefix, upstream: app.upstream, splitPathInfo }] }));
    try {
      await checkCases(web, mount, cases);
    } finally {
      await web.stop();
    }
  }

  test('Debian fastcgi_params, app at /: SCRIPT_NAME is the whole decoded, normalised path; no PATH_INFO; HTTP_HOST is $host, without the port', async () => {
    await run('/', false, '/', [
      { target: '/', scriptName: '/', pathInfo: undefined, derived: ['', '/'] },
      { target: '/users/42?x=1&y=%20', scriptName: '/users/42', pathInfo: undefined, derived: ['', '/users/42'] },
      { target: '/a%20b/c%2Fd/caf%C3%A9', scriptName: '/a b/c/d/café', pathInfo: undefined, derived: ['', '/a b/c/d/café'] },
      { target: '/x//y/../z', scriptName: '/x/z', pathInfo: undefined, derived: ['', '/x/z'] },
      // Debian's fastcgi_params sets HTTP_HOST to $host (a security workaround): the client's port is lost.
      { target: '/h', host: 'example.com:8080', scriptName: '/h', pathInfo: undefined, derived: ['', '/h'], httpHost: 'example.com', fullUrl: 'http://example.com/h' },
    ]);
  });

  test('Debian fastcgi_params, app at /app/: SCRIPT_NAME is still the whole path, so only the basePath option finds the mount', async () => {
    await run('/app/', false, '/app', [
      { target: '/app/', scriptName: '/app/', pathInfo: undefined, derived: ['', '/app/'], forced: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '/app/users/42', pathInfo: undefined, derived: ['', '/app/users/42'], forced: ['/app', '/users/42'] },
      { target: '/app/a%20b/caf%C3%A9', scriptName: '/app/a b/café', pathInfo: undefined, derived: ['', '/app/a b/café'], forced: ['/app', '/a b/café'] },
      { target: '/app/x//y/../z', scriptName: '/app/x/z', pathInfo: undefined, derived: ['', '/app/x/z'], forced: ['/app', '/x/z'] },
    ]);
  });

  test('fastcgi_split_path_info ^(/app)(/.*)$ with SCRIPT_NAME and PATH_INFO from it: the mount is found', async () => {
    await run('/app/', true, '/app', [
      { target: '/app/', scriptName: '/app', pathInfo: '/', derived: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '/app', pathInfo: '/users/42', derived: ['/app', '/users/42'] },
      { target: '/app/a%20b/caf%C3%A9', scriptName: '/app', pathInfo: '/a b/café', derived: ['/app', '/a b/café'] },
      { target: '/app/x//y/../z', scriptName: '/app', pathInfo: '/x/z', derived: ['/app', '/x/z'] },
    ]);
  });

  test('fastcgi_split_path_info ^()(/.*)$ at /: SCRIPT_NAME="" and PATH_INFO the path', async () => {
    await run('/', true, '/', [
      { target: '/', scriptName: '', pathInfo: '/', derived: ['', '/'] },
      { target: '/users/42?x=1', scriptName: '', pathInfo: '/users/42', derived: ['', '/users/42'] },
    ]);
  });
});

describe('nginx: a multipart upload through nginx', { timeout: TIMEOUT }, () => {
  let server: FcgiServer;
  let uploads: string;
  let upstream: string;
  before(async () => {
    uploads = mkdtempSync(join(tmpdir(), 'nodefpm-nginx-uploads-'));
    server = createServer(
      async (req, res) => {
        const form = await req.form();
        const files = [];
        for (const file of Object.values(form.files).flat()) {
          const hash = createHash('sha256');
          for await (const chunk of file.stream()) hash.update(chunk as Buffer);
          files.push({ field: file.fieldName, filename: file.filename, size: file.size, sha256: hash.digest('hex') });
        }
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ basePath: req.basePath, pathInfo: req.pathInfo, fields: form.fields, files }));
      },
      { logger: silentLogger, uploadDir: uploads },
    );
    upstream = formatListenAddress(await server.listen('127.0.0.1:0'));
  });
  after(async () => {
    await server.close({ timeout: 1000 });
    rmSync(uploads, { recursive: true, force: true });
  });

  for (const buffering of [true, false]) {
    test(`fields and a 5 MB file, nginx request buffering ${buffering ? 'on (its default)' : 'off (streamed, chunked)'}; temp files removed`, async () => {
      const web = await startWebServer(
        nginxMount({ locations: [{ prefix: '/app/', upstream, splitPathInfo: true, extra: buffering ? undefined : 'fastcgi_request_buffering off;' }] }),
      );
      try {
        const boundary = 'nginxUploadBoundary42';
        const file = Buffer.alloc(5 * 1024 * 1024);
        for (let i = 0; i < file.length; i++) file[i] = (i * 17) & 0xff;
        const body = Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nholiday ✈\r\n`),
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="photo"; filename="photo.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
          file,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]);
        const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const url = new URL(web.origin);
          const headers: http.OutgoingHttpHeaders = { 'content-type': `multipart/form-data; boundary=${boundary}` };
          // Unbuffered, send it chunked: nginx then passes it on as it comes, with CONTENT_LENGTH="".
          if (buffering) headers['content-length'] = body.length;
          else headers['transfer-encoding'] = 'chunked';
          const req = http.request({ host: url.hostname, port: url.port, path: '/app/upload', method: 'POST', headers, agent: false }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          });
          req.on('error', reject);
          if (buffering) req.end(body);
          else {
            void (async () => {
              for (let i = 0; i < body.length; i += 256 * 1024) {
                if (!req.write(body.subarray(i, i + 256 * 1024))) await new Promise((drained) => req.once('drain', drained));
              }
              req.end();
            })();
          }
        });
        assert.equal(result.status, 200, `${result.body}\n${web.describe()}`);
        const reply = JSON.parse(result.body) as { basePath: string; pathInfo: string; fields: Record<string, string[]>; files: Array<{ size: number; sha256: string; filename: string }> };
        assert.equal(reply.basePath, '/app');
        assert.equal(reply.pathInfo, '/upload');
        assert.deepEqual(reply.fields, { title: ['holiday ✈'] });
        assert.equal(reply.files.length, 1);
        assert.equal(reply.files[0]!.filename, 'photo.bin');
        assert.equal(reply.files[0]!.size, file.length);
        assert.equal(reply.files[0]!.sha256, createHash('sha256').update(file).digest('hex'));
        const deadline = Date.now() + 10_000;
        while (readdirSync(uploads).length > 0 && Date.now() < deadline) await sleep(20);
        assert.deepEqual(readdirSync(uploads), [], 'temp files removed after the response');
      } finally {
        await web.stop();
      }
    });
  }
});
