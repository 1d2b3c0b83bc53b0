// The guestbook example end to end over a real FastCGI connection: page, signing with a photo, the session, sendFile.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FcgiClient } from '../src/client/index.js';
import { createServer, type FcgiServer, type Handler } from '../src/index.js';
import { formatListenAddress } from '../src/server/listen.js';
import { requestParams } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';
import { captureLogger } from './helpers/log-capture.js';

const dir = tempDir('nodefpm-guestbook-');
let server: FcgiServer;
let client: FcgiClient;

// A 1x1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

before(async () => {
  process.env.GUESTBOOK_DIR = join(dir.path, 'data');
  // Uploads go to os.tmpdir(): a folder of this test's own, so that counting temp files there is not
  // disturbed by other test files uploading at the same time (they run in parallel).
  process.env.TMPDIR = join(dir.path, 'tmp');
  mkdirSync(process.env.TMPDIR);
  const guestbook = (await import('../examples/guestbook.js')) as { default: Handler; api: string };
  assert.equal(guestbook.api, 'native');
  server = createServer(guestbook.default, { logger: captureLogger() });
  const bound = await server.listen(`unix:${join(dir.path, 'app.sock')}`);
  client = new FcgiClient({ address: formatListenAddress(bound) });
});

after(async () => {
  await client.close();
  await server.close({ timeout: 1000 });
  dir.remove();
});

function multipart(fields: Record<string, string>, file?: { name: string; filename: string; type: string; data: Buffer }): { type: string; body: Buffer } {
  const boundary = '----nodefpm-guestbook-test';
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  if (file !== undefined) {
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Type: ${file.type}\r\n\r\n`),
      file.data,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { type: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(parts) };
}

function cookieHeader(setCookie: string | string[] | undefined): string {
  const lines = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie];
  return lines.map((line) => line.split(';')[0]!).join('; ');
}

test('signing with a photo: redirect, session cookie, the entry and photo on the page, the photo served', async () => {
  const empty = await client.request({ params: requestParams('GET', '/') });
  assert.equal(empty.status, 200);
  assert.match(await empty.text(), /No one has signed yet/);
  assert.equal(empty.headers['set-cookie'], undefined, 'reading the page creates no session');

  const form = multipart({ name: 'Ada', message: 'Hello <world>' }, { name: 'photo', filename: 'me.png', type: 'image/png', data: PNG });
  const signed = await client.request({
    params: requestParams('POST', '/sign', { CONTENT_TYPE: form.type, CONTENT_LENGTH: String(form.body.length) }),
    body: form.body,
  });
  await signed.text();
  assert.equal(signed.status, 302);
  assert.equal(signed.headers.location, './');
  const cookie = cookieHeader(signed.headers['set-cookie']);
  assert.match(cookie, /^sid=/, 'the session cookie is set');

  const page = await client.request({ params: requestParams('GET', '/', { HTTP_COOKIE: cookie }) });
  const html = await page.text();
  assert.match(html, /Thank you, Ada\./, 'the flash message is shown once');
  assert.match(html, /value="Ada"/, 'the form remembers the name');
  assert.match(html, /Hello &lt;world&gt;/, 'the message is escaped');
  const photo = /src="photos\/([0-9a-f-]+\.png)"/.exec(html)?.[1];
  assert.ok(photo !== undefined, 'the entry shows its photo');

  const again = await client.request({ params: requestParams('GET', '/', { HTTP_COOKIE: cookie }) });
  assert.doesNotMatch(await again.text(), /Thank you/, 'the flash is gone on the next page');

  const image = await client.request({ params: requestParams('GET', `/photos/${photo}`) });
  assert.equal(image.status, 200);
  assert.equal(image.headers['content-type'], 'image/png');
  assert.deepEqual(await image.bytes(), PNG);
  assert.ok(existsSync(join(dir.path, 'data', 'photos', photo)), 'the photo was moved out of the temp folder');
});

test('a photo of the wrong type is refused, its temp file removed; a climb out of the photo folder is a 404', async () => {
  const form = multipart({ name: 'Eve', message: 'x' }, { name: 'photo', filename: 'x.sh', type: 'text/x-shellscript', data: Buffer.from('echo hi') });
  const refused = await client.request({
    params: requestParams('POST', '/sign', { CONTENT_TYPE: form.type, CONTENT_LENGTH: String(form.body.length) }),
    body: form.body,
  });
  assert.equal(refused.status, 415);
  await refused.text();
  // Uploads are removed when the request ends, which may be just after its response has gone out.
  const deadline = Date.now() + 5000;
  while (readdirSync(process.env.TMPDIR!).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(readdirSync(process.env.TMPDIR!), [], 'no temp upload is left behind');

  const climb = await client.request({ params: requestParams('GET', '/photos/..%2fentries.json') });
  assert.equal(climb.status, 404);
  await climb.text();
});
