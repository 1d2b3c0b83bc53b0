// Shared by test/interop/url-*.test.ts: a nodefpm app that reports the URL params a web server sent and what the Request derived from them, and a table runner.

import assert from 'node:assert/strict';
import http from 'node:http';
import { createServer, mountPoint, normalizeBasePath, silentLogger, type FcgiServer } from '../../src/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import type { WebServer } from './harness.js';

/** The params that say where the app is mounted and what the URL was. */
const URL_PARAMS = ['SCRIPT_NAME', 'PATH_INFO', 'REQUEST_URI', 'QUERY_STRING', 'HTTP_HOST', 'SERVER_NAME', 'SERVER_PORT', 'REQUEST_SCHEME', 'HTTPS', 'SERVER_SOFTWARE'] as const;

/** What the app answers: the params as sent (bytes above 0x7f shown as UTF-8), and the Request's view. */
export interface Seen {
  params: Partial<Record<(typeof URL_PARAMS)[number], string>>;
  basePath: string;
  pathInfo: string;
  /** mountPoint() with the basePath option the request's X-Mount header names (the path the test mounted the app on). */
  forced: { basePath: string; pathInfo: string };
  fullUrl: string;
  query: Record<string, string | string[]>;
}

function utf8(value: string): string {
  return Buffer.from(value, 'latin1').toString('utf8');
}

/**
 * Starts the reporting app on TCP (Apache's workers run as www-data and could not enter a 0700 socket
 * folder). `upstream` is "127.0.0.1:PORT".
 */
export async function startUrlApp(): Promise<{ server: FcgiServer; upstream: string }> {
  const server = createServer(
    (req, res) => {
      const params: Seen['params'] = {};
      for (const name of URL_PARAMS) {
        const value = req.param(name);
        if (value !== undefined) params[name] = utf8(value);
      }
      const mount = req.header('x-mount');
      const seen: Seen = {
        params,
        basePath: req.basePath,
        pathInfo: req.pathInfo,
        forced: mountPoint(req, mount === undefined ? null : normalizeBasePath(mount)),
        fullUrl: req.fullUrl.href,
        query: { ...req.query },
      };
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(seen));
    },
    { logger: silentLogger },
  );
  const bound = await server.listen('127.0.0.1:0');
  return { server, upstream: formatListenAddress(bound) };
}

/** A GET through the web server with a raw request target (sent as is) and optional headers. */
export function get(origin: string, target: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(origin);
    const req = http.request({ host: url.hostname, port: url.port, path: target, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer to GET ${target} within 30 s`)));
    req.end();
  });
}

/** One request and what the web server was seen to send for it; `undefined` in params means the param was absent. */
export interface UrlCase {
  target: string;
  /** A Host header to send (default: the web server's own address). */
  host?: string;
  /** SCRIPT_NAME and PATH_INFO exactly as sent (absent: undefined). */
  scriptName: string | undefined;
  pathInfo: string | undefined;
  /** What req.basePath / req.pathInfo derive with no basePath option. */
  derived: [basePath: string, pathInfo: string];
  /** What they derive with the basePath option set to the mount (omitted: the same as `derived`). */
  forced?: [basePath: string, pathInfo: string];
  /** Expected HTTP_HOST and req.fullUrl, when the case is about the host ({port} is the web server's port). */
  httpHost?: string;
  fullUrl?: string;
}

/**
 * Runs each case through `web`, with X-Mount naming `mount`, and checks the params the app saw and
 * what it derived. Failures carry the web server's logs.
 */
export async function checkCases(web: WebServer, mount: string, cases: readonly UrlCase[]): Promise<void> {
  for (const item of cases) {
    const headers: http.OutgoingHttpHeaders = { 'x-mount': mount };
    if (item.host !== undefined) headers.host = item.host;
    const { status, body } = await get(web.origin, item.target, headers);
    const where = `${web.kind.name} mounted at ${mount}: GET ${item.target}${item.host === undefined ? '' : ` (Host: ${item.host})`}`;
    assert.equal(status, 200, `${where} answered ${status}: ${body.slice(0, 500)}\n${web.describe()}`);
    const seen = JSON.parse(body) as Seen;
    assert.deepEqual(
      { SCRIPT_NAME: seen.params.SCRIPT_NAME, PATH_INFO: seen.params.PATH_INFO },
      { SCRIPT_NAME: item.scriptName, PATH_INFO: item.pathInfo },
      `${where}: what the web server sent`,
    );
    assert.equal(seen.params.REQUEST_URI, item.target, `${where}: REQUEST_URI is the raw target`);
    assert.deepEqual([seen.basePath, seen.pathInfo], item.derived, `${where}: req.basePath and req.pathInfo`);
    assert.deepEqual([seen.forced.basePath, seen.forced.pathInfo], item.forced ?? item.derived, `${where}: with the basePath option ${mount}`);
    const port = new URL(web.origin).port;
    if (item.httpHost !== undefined) assert.equal(seen.params.HTTP_HOST, item.httpHost.replace('{port}', port), `${where}: HTTP_HOST`);
    if (item.fullUrl !== undefined) assert.equal(seen.fullUrl, item.fullUrl.replace('{port}', port), `${where}: req.fullUrl`);
  }
}
