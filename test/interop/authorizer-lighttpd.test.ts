// A nodefpm Authorizer behind a real lighttpd (fastcgi.server "mode" => "authorizer"): allow with Variable- headers reaching a CGI backend's environment, deny with status, headers and body.

import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer, type FcgiServer, type Handler } from '../../src/index.js';
import { Role } from '../../src/protocol/index.js';
import { captureLogger } from '../helpers/log-capture.js';
import { FcgiRecorder, type RecordedRequest } from './fcgi-recorder.js';
import { startWebServer, type WebServer } from './harness.js';
import { lighttpd } from './lighttpd-server.js';

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
    req.setTimeout(TIMEOUT, () => req.destroy(new Error(`no answer to ${path} within ${TIMEOUT} ms`)));
    req.end(options.body);
  });
}

function param(request: RecordedRequest, name: string): string | undefined {
  return request.params.find(([key]) => key === name)?.[1];
}

/** `NAME=value` lines of a CGI script's environment dump, as an object. */
function environment(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const equals = line.indexOf('=');
    if (equals > 0) env[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return env;
}

/** The backend lighttpd serves once the authorizer allows: a CGI script that prints its environment. */
const ENV_SCRIPT = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env
`;

const authorizerBodies: string[] = [];

const authorizer: Handler = async (req, res) => {
  authorizerBodies.push(await req.text());
  const authorization = req.header('authorization');
  if (authorization === 'Bearer good') res.allow({ REMOTE_USER: 'alice', AUTH_GROUPS: 'staff,ops' });
  else if (authorization === 'Bearer forbidden') res.deny(403, 'you may not see this\n', { 'X-Denied-By': 'nodefpm' });
  else res.deny(401, 'log in first\n', { 'WWW-Authenticate': 'Bearer realm="nodefpm"', 'Content-Type': 'text/plain; charset=utf-8' });
};

describe('lighttpd authorizer mode in front of a nodefpm Authorizer', { timeout: 10 * TIMEOUT }, () => {
  let app: FcgiServer;
  let recorder: FcgiRecorder;
  let web: WebServer;

  before(async () => {
    app = createServer({ authorizer }, { logger: captureLogger() });
    const bound = await app.listen('127.0.0.1:0');
    recorder = await FcgiRecorder.start({ host: '127.0.0.1', port: bound.kind === 'tcp' ? bound.port : 0 });
    web = await startWebServer(
      lighttpd({
        // Every URL is checked by the app; allowed requests go on to what lighttpd serves itself (here mod_cgi and static files).
        mounts: [{ prefix: '/', upstream: `127.0.0.1:${recorder.port}`, extra: { mode: 'authorizer' } }],
        extra: 'server.modules += ( "mod_cgi" )\ncgi.assign = ( ".sh" => "/bin/sh" )',
      }),
    );
    const script = join(web.dir, 'htdocs', 'env.sh');
    writeFileSync(script, ENV_SCRIPT);
    chmodSync(script, 0o755);
    writeFileSync(join(web.dir, 'htdocs', 'hello.txt'), 'static file\n');
  });

  after(async () => {
    await web?.stop();
    await recorder?.close();
    await app?.close({ timeout: 5000 });
  });

  test('allow: the request goes on, and Variable-REMOTE_USER / Variable-AUTH_GROUPS reach the CGI environment', async (t) => {
    const from = recorder.requests().length;
    const result = await get(web.origin, '/env.sh?x=1', { headers: { Authorization: 'Bearer good' } });
    assert.equal(result.status, 200, web.describe());
    const env = environment(result.body);
    assert.equal(env.REMOTE_USER, 'alice', 'REMOTE_USER from Variable-REMOTE_USER');
    assert.equal(env.AUTH_GROUPS, 'staff,ops', 'AUTH_GROUPS from Variable-AUTH_GROUPS');

    const [seen] = recorder.requests().slice(from);
    assert.ok(seen !== undefined, `lighttpd called the authorizer (recorder errors: ${recorder.errors.join('; ') || 'none'})`);
    t.diagnostic(`lighttpd authorizer records: ${seen.sent.join(' ')}; BEGIN_REQUEST flags ${seen.flags}`);
    t.diagnostic(`lighttpd authorizer params: ${seen.params.map(([name, value]) => `${name}=${JSON.stringify(value)}`).sort().join(' ')}`);
    assert.equal(seen.role, Role.Authorizer);
    assert.equal(param(seen, 'REQUEST_URI'), '/env.sh?x=1');
    assert.equal(param(seen, 'HTTP_AUTHORIZATION'), 'Bearer good');
    for (const absent of ['CONTENT_LENGTH', 'SCRIPT_NAME', 'PATH_INFO']) {
      assert.equal(param(seen, absent), undefined, `${absent} is not sent to an authorizer (section 6.3)`);
    }
    assert.equal(seen.stdinRecords, 1, 'lighttpd sends the STDIN stream, as its terminator only');
    assert.equal(seen.stdinBytes, 0, 'an empty STDIN');
    assert.deepEqual(seen.end, { appStatus: 0, protocolStatus: 0 });

    const file = await get(web.origin, '/hello.txt', { headers: { Authorization: 'Bearer good' } });
    assert.equal(file.status, 200, web.describe());
    assert.equal(file.body, 'static file\n');
  });

  test('deny with 401: the status, WWW-Authenticate and the body reach the client', async () => {
    const result = await get(web.origin, '/hello.txt');
    assert.equal(result.status, 401, web.describe());
    assert.equal(result.headers['www-authenticate'], 'Bearer realm="nodefpm"');
    assert.equal(result.body, 'log in first\n');
  });

  test('deny with 403: status, custom header and body reach the client', async () => {
    const result = await get(web.origin, '/env.sh', { headers: { Authorization: 'Bearer forbidden' } });
    assert.equal(result.status, 403, web.describe());
    assert.equal(result.headers['x-denied-by'], 'nodefpm');
    assert.equal(result.body, 'you may not see this\n');
  });

  test('a POST body goes to the backend; the authorizer gets an empty STDIN and reads an empty body', async () => {
    const from = recorder.requests().length;
    const bodies = authorizerBodies.length;
    const result = await get(web.origin, '/env.sh', { method: 'POST', headers: { Authorization: 'Bearer good', 'Content-Type': 'text/plain' }, body: 'payload' });
    assert.equal(result.status, 200, web.describe());
    assert.equal(environment(result.body).CONTENT_LENGTH, '7', 'the backend gets the body');
    const [seen] = recorder.requests().slice(from);
    assert.ok(seen !== undefined, 'the authorizer was called for the POST');
    assert.equal(param(seen, 'CONTENT_LENGTH'), undefined);
    assert.equal(seen.stdinBytes, 0, 'no body bytes for the authorizer');
    assert.deepEqual(authorizerBodies.slice(bodies), ['']);
    assert.deepEqual(recorder.errors, []);
  });
});
