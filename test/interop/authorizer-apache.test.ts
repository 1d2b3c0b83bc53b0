// A nodefpm Authorizer behind a real Apache (mod_authnz_fcgi, TCP): allow with Variable-REMOTE_USER reaching the backend, deny with status, headers and body, and no wait for an FCGI_STDIN Apache never sends.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createServer, type FcgiServer, type Handler } from '../../src/index.js';
import { Role } from '../../src/protocol/index.js';
import { captureLogger, type CaptureLogger } from '../helpers/log-capture.js';
import { apache, fcgiTarget, proxyPass } from './apache-server.js';
import { FcgiRecorder, type RecordedRequest } from './fcgi-recorder.js';
import { startWebServer, type WebServer } from './harness.js';

const TIMEOUT = 120_000;

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on a fresh connection (no keep-alive, so nothing lingers after the test). */
function get(origin: string, path: string, options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers, ...(options.body === undefined ? {} : { 'content-length': Buffer.byteLength(options.body) }) };
    const req = http.request(new URL(path, origin), { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    // Far above Apache's own 30 s FastCGI I/O timeout: an app that hung would show as Apache's 500, not as this.
    req.setTimeout(TIMEOUT, () => req.destroy(new Error(`no answer to ${path} within ${TIMEOUT} ms`)));
    req.end(options.body);
  });
}

function param(request: RecordedRequest, name: string): string | undefined {
  return request.params.find(([key]) => key === name)?.[1];
}

/** Params as a sorted, printable list (the password masked), for the test's diagnostics. */
function printable(request: RecordedRequest): string {
  return request.params
    .map(([name, value]) => `${name}=${name === 'REMOTE_PASSWD' ? '***' : JSON.stringify(value)}`)
    .sort()
    .join(' ');
}

// ---- the app: an authorizer and the responder it guards, one nodefpm server for both roles ----

/** What each authorizer call saw: its body, read whole (empty, at once: Apache sends no STDIN). */
const authorizerCalls: Array<{ uri: string; apacheRole: string | undefined; body: string }> = [];

const authorizer: Handler = async (req, res) => {
  const body = await req.text();
  authorizerCalls.push({ uri: req.url, apacheRole: req.param('FCGI_APACHE_ROLE'), body });
  if (req.param('FCGI_APACHE_ROLE') === 'AUTHORIZER') {
    // Require mode: Apache authenticated the user already and asks whether this user may have this URL.
    if (req.param('REMOTE_USER') === 'alice' && !req.url.includes('admin')) res.allow();
    else res.deny(403);
    return;
  }
  const password = req.param('REMOTE_PASSWD');
  if (password !== undefined) {
    // AuthBasicProvider mode: Apache did the Basic parsing; the app checks the pair.
    if (req.param('REMOTE_USER') === 'alice' && password === 'secret') res.allow();
    else res.deny(401);
    return;
  }
  // check_user_id mode: the app reads the credentials itself and names the user.
  const authorization = req.header('authorization');
  if (authorization === 'Bearer good') {
    res.setHeader('X-Authz-Note', 'checked by nodefpm');
    res.allow({ REMOTE_USER: 'alice', AUTH_GROUPS: 'staff,ops' });
  } else if (authorization === 'Bearer forbidden') {
    res.deny(403, 'you may not see this\n', { 'Content-Type': 'text/plain; charset=utf-8', 'X-Denied-By': 'nodefpm' });
  } else {
    res.deny(401, 'log in first\n', { 'WWW-Authenticate': 'Bearer realm="nodefpm"', 'Content-Type': 'text/plain; charset=utf-8' });
  }
};

const responder: Handler = async (req, res) => {
  const body = await req.text();
  res.setHeader('Content-Type', 'application/json');
  res.end(
    JSON.stringify({
      uri: req.url,
      remoteUser: req.param('REMOTE_USER') ?? null,
      authGroups: req.param('AUTH_GROUPS') ?? null,
      authType: req.param('AUTH_TYPE') ?? null,
      body,
    }),
  );
};

describe('Apache mod_authnz_fcgi in front of a nodefpm Authorizer', { timeout: 10 * TIMEOUT }, () => {
  let app: FcgiServer;
  let logs: CaptureLogger;
  let recorder: FcgiRecorder;
  let web: WebServer;

  before(async () => {
    logs = captureLogger();
    app = createServer({ responder, authorizer }, { logger: logs });
    const bound = await app.listen('127.0.0.1:0');
    const port = bound.kind === 'tcp' ? bound.port : 0;
    // Apache reaches the authorizer through the recorder, to show what it sends; the responder directly.
    recorder = await FcgiRecorder.start({ host: '127.0.0.1', port });
    const provider = `fcgi://127.0.0.1:${recorder.port}/`;
    web = await startWebServer(
      apache({
        modules: ['authnz_fcgi', 'auth_basic', 'authz_user'],
        directives: `
# The authorizer is TCP only (mod_authnz_fcgi has no Unix sockets). One app process, two providers:
# "authnz" for check_user_id mode (the app reads the credentials and names the user), "authn" for
# AuthBasicProvider mode (Apache parses Basic credentials and asks the app about the pair).
AuthnzFcgiDefineProvider authnz NodefpmAuthnz ${provider}
AuthnzFcgiDefineProvider authn NodefpmAuthn ${provider}
AuthnzFcgiDefineProvider authz NodefpmAuthz ${provider}

${proxyPass('/private/', fcgiTarget(`127.0.0.1:${port}`))}
${proxyPass('/basic/', fcgiTarget(`127.0.0.1:${port}`))}
${proxyPass('/authz/', fcgiTarget(`127.0.0.1:${port}`))}

<Location "/private/">
  # Apache keeps the Authorization header from CGI and FastCGI apps unless told otherwise.
  CGIPassAuth On
  # REMOTE_USER comes from the app's Variable-REMOTE_USER header on 200.
  AuthnzFcgiCheckAuthnProvider NodefpmAuthnz Authoritative On RequireBasicAuth Off UserExpr "%{reqenv:REMOTE_USER}"
  Require NodefpmAuthnz
</Location>

<Location "/basic/">
  AuthType Basic
  AuthName "nodefpm"
  AuthBasicProvider NodefpmAuthn
  Require valid-user
</Location>

<Location "/authz/">
  # Two calls per request: the app authenticates the pair, then authorizes the user for the URL.
  AuthType Basic
  AuthName "nodefpm"
  AuthBasicProvider NodefpmAuthn
  Require NodefpmAuthz
</Location>
`,
      }),
    );
  });

  after(async () => {
    await web?.stop();
    await recorder?.close();
    await app?.close({ timeout: 5000 });
  });

  /** The authorizer requests recorded since index `from`. */
  function authorizerRequests(from: number): RecordedRequest[] {
    return recorder.requests().slice(from);
  }

  test('allow: 200 with Variable-REMOTE_USER and Variable-AUTH_GROUPS, which reach the backend as REMOTE_USER and AUTH_GROUPS', async (t) => {
    const from = recorder.requests().length;
    const result = await get(web.origin, '/private/page?x=1', { headers: { Authorization: 'Bearer good' } });
    assert.equal(result.status, 200, web.describe());
    const echo = JSON.parse(result.body) as Record<string, string | null>;
    assert.equal(echo.remoteUser, 'alice', 'REMOTE_USER from Variable-REMOTE_USER (through UserExpr)');
    assert.equal(echo.authGroups, 'staff,ops', 'AUTH_GROUPS from Variable-AUTH_GROUPS');
    // What FASTCGI.md reports: Apache passes the authorizer's other headers to the client even on 200.
    assert.equal(result.headers['x-authz-note'], 'checked by nodefpm');
    assert.equal(result.headers['variable-remote_user'], undefined, 'Variable- headers are taken out of the response');

    const [seen] = authorizerRequests(from);
    assert.ok(seen !== undefined, `Apache called the authorizer (recorder errors: ${recorder.errors.join('; ') || 'none'})`);
    t.diagnostic(`Apache authorizer records: ${seen.sent.join(' ')}`);
    t.diagnostic(`Apache authorizer params: ${printable(seen)}`);
    assert.equal(seen.role, Role.Authorizer);
    assert.equal(seen.flags, 0, 'no FCGI_KEEP_CONN: one connection per call');
    assert.equal(param(seen, 'FCGI_ROLE'), 'AUTHORIZER');
    assert.equal(param(seen, 'FCGI_APACHE_ROLE'), 'AUTHENTICATOR');
    assert.equal(param(seen, 'HTTP_AUTHORIZATION'), 'Bearer good', 'the credentials reach the app');
    assert.equal(param(seen, 'REQUEST_URI'), '/private/page?x=1');
    for (const absent of ['CONTENT_LENGTH', 'SCRIPT_NAME', 'PATH_INFO', 'PATH_TRANSLATED']) {
      assert.equal(param(seen, absent), undefined, `${absent} is not sent to an authorizer (section 6.3)`);
    }
    assert.equal(seen.stdinRecords, 0, 'Apache sends no FCGI_STDIN record at all');
    assert.deepEqual(seen.end, { appStatus: 0, protocolStatus: 0 }, 'the app answered with END_REQUEST all the same');
    assert.deepEqual(recorder.errors, []);
  });

  test('deny with 401: the status, WWW-Authenticate and the body reach the client', async () => {
    const result = await get(web.origin, '/private/page');
    assert.equal(result.status, 401, web.describe());
    assert.equal(result.headers['www-authenticate'], 'Bearer realm="nodefpm"');
    assert.equal(result.body, 'log in first\n');
  });

  test('deny with 403 and a custom header: status, header and body reach the client; the backend is never called', async () => {
    const before = logs.entries.length;
    const result = await get(web.origin, '/private/secret', { headers: { Authorization: 'Bearer forbidden' } });
    assert.equal(result.status, 403, web.describe());
    assert.equal(result.body, 'you may not see this\n');
    assert.equal(result.headers['x-denied-by'], 'nodefpm');
    assert.ok(!JSON.stringify(logs.entries.slice(before)).includes('handler failed'), 'no handler failure was logged');
  });

  test('a POST body goes to the responder, never to the authorizer, whose body reads empty at once', async () => {
    const from = recorder.requests().length;
    const calls = authorizerCalls.length;
    const result = await get(web.origin, '/private/upload', { method: 'POST', headers: { Authorization: 'Bearer good', 'Content-Type': 'text/plain' }, body: 'payload' });
    assert.equal(result.status, 200, web.describe());
    assert.equal((JSON.parse(result.body) as { body: string }).body, 'payload');
    const [seen] = authorizerRequests(from);
    assert.ok(seen !== undefined, 'the authorizer was called for the POST');
    assert.equal(seen.stdinRecords, 0, 'no FCGI_STDIN for the authorizer, even with a request body');
    assert.equal(param(seen, 'CONTENT_LENGTH'), undefined);
    assert.deepEqual(authorizerCalls.slice(calls), [{ uri: '/private/upload', apacheRole: 'AUTHENTICATOR', body: '' }]);
    // Apache gives up on an authorizer after 30 s (500); the errors it would log are absent.
    assert.doesNotMatch(web.errorLog(), /AH0251[0-4]|AH02501|timed out/i, web.describe());
  });

  test('AuthBasicProvider mode: Apache parses Basic credentials and sends REMOTE_USER and REMOTE_PASSWD; right ones pass, wrong ones get 401', async (t) => {
    const from = recorder.requests().length;
    const good = await get(web.origin, '/basic/page', { headers: { Authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` } });
    assert.equal(good.status, 200, web.describe());
    const echo = JSON.parse(good.body) as Record<string, string | null>;
    assert.equal(echo.remoteUser, 'alice');
    assert.equal(echo.authType, 'Basic');
    const [seen] = authorizerRequests(from);
    assert.ok(seen !== undefined, 'the authenticator was called');
    t.diagnostic(`Apache AuthBasicProvider params: ${printable(seen)}`);
    assert.equal(param(seen, 'FCGI_ROLE'), 'AUTHORIZER');
    assert.equal(param(seen, 'FCGI_APACHE_ROLE'), 'AUTHENTICATOR');
    assert.equal(param(seen, 'REMOTE_USER'), 'alice');
    assert.equal(param(seen, 'REMOTE_PASSWD'), 'secret');
    assert.equal(seen.stdinRecords, 0);

    const bad = await get(web.origin, '/basic/page', { headers: { Authorization: `Basic ${Buffer.from('alice:wrong').toString('base64')}` } });
    assert.equal(bad.status, 401, web.describe());
    assert.match(String(bad.headers['www-authenticate']), /^Basic realm="nodefpm"/);
  });

  test('Require mode: after authentication, a second call with FCGI_APACHE_ROLE=AUTHORIZER decides per user and URL', async (t) => {
    const credentials = { Authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` };
    const from = recorder.requests().length;
    const allowed = await get(web.origin, '/authz/page', { headers: credentials });
    assert.equal(allowed.status, 200, web.describe());
    assert.equal((JSON.parse(allowed.body) as { remoteUser: string }).remoteUser, 'alice');
    const calls = recorder.requests().slice(from);
    assert.deepEqual(
      calls.map((call) => param(call, 'FCGI_APACHE_ROLE')),
      ['AUTHENTICATOR', 'AUTHORIZER'],
      'first the pair is checked, then the user is authorized',
    );
    const authz = calls[1]!;
    t.diagnostic(`Apache Require-mode params: ${printable(authz)}`);
    assert.equal(param(authz, 'REMOTE_USER'), 'alice');
    assert.equal(param(authz, 'REMOTE_PASSWD'), undefined, 'no password for the authorization call');
    assert.equal(authz.stdinRecords, 0);

    const refused = await get(web.origin, '/authz/admin', { headers: credentials });
    // The app's 403 only says "denied" here: Apache answers with its own 401, asking for other credentials.
    assert.equal(refused.status, 401, web.describe());
  });
});
