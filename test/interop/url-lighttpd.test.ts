// What lighttpd's mod_fastcgi sends for SCRIPT_NAME, PATH_INFO and HTTP_HOST with the app mounted at / and at /app/ (prefixes with and without a trailing slash, fix-root-scriptname), and what req.basePath / pathInfo / fullUrl make of it.

import { after, before, describe, test } from 'node:test';
import { startWebServer } from './harness.js';
import { lighttpd, type LighttpdMount } from './lighttpd-server.js';
import { checkCases, startUrlApp, type UrlCase } from './url-app.js';

const TIMEOUT = 120_000;

describe('lighttpd mod_fastcgi: SCRIPT_NAME and PATH_INFO', { timeout: TIMEOUT }, () => {
  let app: Awaited<ReturnType<typeof startUrlApp>>;
  before(async () => {
    app = await startUrlApp();
  });
  after(async () => {
    await app.server.close({ timeout: 1000 });
  });

  async function run(mount: Omit<LighttpdMount, 'upstream'>, basePath: string, cases: UrlCase[]): Promise<void> {
    const web = await startWebServer(lighttpd({ mounts: [{ ...mount, upstream: app.upstream }] }));
    try {
      await checkCases(web, basePath, cases);
    } finally {
      await web.stop();
    }
  }

  test('prefix "/": lighttpd splits after the first path segment, so SCRIPT_NAME is not the mount (the basePath option "/" fixes it)', async () => {
    await run({ prefix: '/' }, '/', [
      { target: '/', scriptName: '/', pathInfo: undefined, derived: ['', '/'] },
      { target: '/users/42?x=1&y=%20', scriptName: '/users', pathInfo: '/42', derived: ['/users', '/42'], forced: ['', '/users/42'] },
      { target: '/a%20b/c%2Fd/caf%C3%A9', scriptName: '/a b', pathInfo: '/c/d/café', derived: ['/a b', '/c/d/café'], forced: ['', '/a b/c/d/café'] },
      { target: '/x//y/../z', scriptName: '/x', pathInfo: '/z', derived: ['/x', '/z'], forced: ['', '/x/z'] },
      { target: '/h', host: 'example.com:8080', scriptName: '/h', pathInfo: undefined, derived: ['', '/h'], httpHost: 'example.com:8080', fullUrl: 'http://example.com:8080/h' },
    ]);
  });

  test('prefix "/" with "fix-root-scriptname" => "enable": SCRIPT_NAME="" and PATH_INFO the path', async () => {
    await run({ prefix: '/', extra: { 'fix-root-scriptname': true } }, '/', [
      { target: '/', scriptName: '', pathInfo: '/', derived: ['', '/'] },
      { target: '/users/42?x=1', scriptName: '', pathInfo: '/users/42', derived: ['', '/users/42'] },
      { target: '/x//y/../z', scriptName: '', pathInfo: '/x/z', derived: ['', '/x/z'] },
    ]);
  });

  test('prefix "/app/": the split comes after the first segment below the prefix (the basePath option fixes it)', async () => {
    await run({ prefix: '/app/' }, '/app', [
      { target: '/app/', scriptName: '/app/', pathInfo: undefined, derived: ['', '/app/'], forced: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '/app/users', pathInfo: '/42', derived: ['/app/users', '/42'], forced: ['/app', '/users/42'] },
      { target: '/app/a%20b/caf%C3%A9', scriptName: '/app/a b', pathInfo: '/café', derived: ['/app/a b', '/café'], forced: ['/app', '/a b/café'] },
    ]);
  });

  test('prefix "/app" (no trailing slash): SCRIPT_NAME=/app, PATH_INFO the rest; it also catches /apple', async () => {
    await run({ prefix: '/app' }, '/app', [
      { target: '/app/', scriptName: '/app', pathInfo: '/', derived: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '/app', pathInfo: '/users/42', derived: ['/app', '/users/42'] },
      { target: '/app/x//y/../z', scriptName: '/app', pathInfo: '/x/z', derived: ['/app', '/x/z'] },
      { target: '/app', scriptName: '/app', pathInfo: undefined, derived: ['', '/app'], forced: ['/app', ''] },
      { target: '/apple', scriptName: '/apple', pathInfo: undefined, derived: ['', '/apple'] },
    ]);
  });
});
