// What h2o's fastcgi handler sends for SCRIPT_NAME, PATH_INFO and HTTP_HOST with the app mounted at / and at /app, and what req.basePath / pathInfo / fullUrl make of it.

import { after, before, describe, test } from 'node:test';
import { h2o } from './h2o-server.js';
import { startWebServer } from './harness.js';
import { checkCases, startUrlApp, type UrlCase } from './url-app.js';

const TIMEOUT = 120_000;

describe('h2o fastcgi.connect: SCRIPT_NAME and PATH_INFO', { timeout: TIMEOUT }, () => {
  let app: Awaited<ReturnType<typeof startUrlApp>>;
  before(async () => {
    app = await startUrlApp();
  });
  after(async () => {
    await app.server.close({ timeout: 1000 });
  });

  async function run(path: string, basePath: string, cases: UrlCase[]): Promise<void> {
    const web = await startWebServer(h2o({ mounts: [{ path, upstream: app.upstream }] }));
    try {
      await checkCases(web, basePath, cases);
    } finally {
      await web.stop();
    }
  }

  test('app at /: SCRIPT_NAME="" and PATH_INFO the decoded path ("//" kept); HTTP_HOST keeps the port; no REQUEST_SCHEME', async () => {
    await run('/', '/', [
      { target: '/', scriptName: '', pathInfo: '/', derived: ['', '/'] },
      { target: '/users/42?x=1&y=%20', scriptName: '', pathInfo: '/users/42', derived: ['', '/users/42'] },
      { target: '/a%20b/c%2Fd/caf%C3%A9', scriptName: '', pathInfo: '/a b/c/d/café', derived: ['', '/a b/c/d/café'] },
      { target: '/x//y/../z', scriptName: '', pathInfo: '/x//z', derived: ['', '/x//z'] },
      { target: '/h', host: 'example.com:8080', scriptName: '', pathInfo: '/h', derived: ['', '/h'], httpHost: 'example.com:8080', fullUrl: 'http://example.com:8080/h' },
    ]);
  });

  test('app at /app: still SCRIPT_NAME="" and the whole path in PATH_INFO, so only the basePath option finds the mount', async () => {
    await run('/app', '/app', [
      { target: '/app', scriptName: '', pathInfo: '/app', derived: ['', '/app'], forced: ['/app', ''] },
      { target: '/app/', scriptName: '', pathInfo: '/app/', derived: ['', '/app/'], forced: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '', pathInfo: '/app/users/42', derived: ['', '/app/users/42'], forced: ['/app', '/users/42'] },
      { target: '/app/a%20b/caf%C3%A9', scriptName: '', pathInfo: '/app/a b/café', derived: ['', '/app/a b/café'], forced: ['/app', '/a b/café'] },
    ]);
  });
});
