// What Apache's mod_proxy_fcgi sends for SCRIPT_NAME, PATH_INFO and HTTP_HOST with the app mounted at / and at /app/ (ProxyPass alone, and with proxy-fcgi-pathinfo), and what req.basePath / pathInfo / fullUrl make of it.

import { after, before, describe, test } from 'node:test';
import { apache, fcgiTarget, proxyPass } from './apache-server.js';
import { startWebServer } from './harness.js';
import { checkCases, startUrlApp, type UrlCase } from './url-app.js';

const TIMEOUT = 120_000;

/** Makes mod_proxy_fcgi split the path: PATH_INFO = the part below the ProxyPass prefix, decoded; SCRIPT_NAME = the prefix. */
const PATHINFO = 'SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape';

describe('Apache mod_proxy_fcgi: SCRIPT_NAME and PATH_INFO', { timeout: TIMEOUT }, () => {
  let app: Awaited<ReturnType<typeof startUrlApp>>;
  before(async () => {
    app = await startUrlApp();
  });
  after(async () => {
    await app.server.close({ timeout: 1000 });
  });

  async function run(directives: string, mount: string, cases: UrlCase[]): Promise<void> {
    const web = await startWebServer(apache({ directives }));
    try {
      await checkCases(web, mount, cases);
    } finally {
      await web.stop();
    }
  }

  test('ProxyPass / : SCRIPT_NAME is the whole decoded, normalised path; no PATH_INFO; HTTP_HOST keeps the port', async () => {
    await run(proxyPass('/', fcgiTarget(app.upstream)), '/', [
      { target: '/', scriptName: '/', pathInfo: undefined, derived: ['', '/'] },
      { target: '/users/42?x=1&y=%20', scriptName: '/users/42', pathInfo: undefined, derived: ['', '/users/42'] },
      { target: '/a%20b/caf%C3%A9', scriptName: '/a b/café', pathInfo: undefined, derived: ['', '/a b/café'] },
      { target: '/x//y/../z', scriptName: '/x/z', pathInfo: undefined, derived: ['', '/x/z'] },
      { target: '/h', host: 'example.com:8080', scriptName: '/h', pathInfo: undefined, derived: ['', '/h'], httpHost: 'example.com:8080', fullUrl: 'http://example.com:8080/h' },
    ]);
  });

  test('ProxyPass /app/ : SCRIPT_NAME is still the whole path, so only the basePath option finds the mount', async () => {
    await run(proxyPass('/app/', fcgiTarget(app.upstream)), '/app', [
      { target: '/app/', scriptName: '/app/', pathInfo: undefined, derived: ['', '/app/'], forced: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '/app/users/42', pathInfo: undefined, derived: ['', '/app/users/42'], forced: ['/app', '/users/42'] },
      { target: '/app/a%20b/caf%C3%A9', scriptName: '/app/a b/café', pathInfo: undefined, derived: ['', '/app/a b/café'], forced: ['/app', '/a b/café'] },
      { target: '/app/x//y/../z', scriptName: '/app/x/z', pathInfo: undefined, derived: ['', '/app/x/z'], forced: ['/app', '/x/z'] },
    ]);
  });

  test('ProxyPass /app/ with proxy-fcgi-pathinfo=unescape: SCRIPT_NAME=/app, PATH_INFO the rest: the mount is found', async () => {
    await run(`${PATHINFO}\n${proxyPass('/app/', fcgiTarget(app.upstream))}`, '/app', [
      { target: '/app/', scriptName: '/app', pathInfo: '/', derived: ['/app', '/'] },
      { target: '/app/users/42?x=1', scriptName: '/app', pathInfo: '/users/42', derived: ['/app', '/users/42'] },
      { target: '/app/a%20b/caf%C3%A9', scriptName: '/app', pathInfo: '/a b/café', derived: ['/app', '/a b/café'] },
      { target: '/app/x//y/../z', scriptName: '/app', pathInfo: '/x/z', derived: ['/app', '/x/z'] },
    ]);
  });

  test('ProxyPass / with proxy-fcgi-pathinfo=unescape: SCRIPT_NAME="" and PATH_INFO the path', async () => {
    await run(`${PATHINFO}\n${proxyPass('/', fcgiTarget(app.upstream))}`, '/', [
      { target: '/', scriptName: '', pathInfo: '/', derived: ['', '/'] },
      { target: '/users/42?x=1', scriptName: '', pathInfo: '/users/42', derived: ['', '/users/42'] },
    ]);
  });
});
