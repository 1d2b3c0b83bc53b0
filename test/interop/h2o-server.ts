// The h2o 2.2 config template for interop tests (fastcgi.connect): reusable by any test that puts nodefpm behind h2o.

import type { WebServerContext, WebServerKind } from './harness.js';

/**
 * How to use it:
 *
 *     const web = await startWebServer(h2o({ mounts: [{ path: '/app', upstream: '127.0.0.1:9000' }] }));
 *
 * h2o runs in the foreground (its default without `daemon`), every path in the test's temp folder,
 * one virtual host that also catches requests for any other Host (h2o falls back to the first host).
 * Running as root it is told `user: root`, so Unix sockets in 0700 folders work.
 */
export interface H2oMount {
  /** The path h2o maps to the app: "/" or "/app" (h2o matches "/app" and everything below it). */
  path: string;
  /** Where nodefpm listens: "unix:/path/app.sock", "/path/app.sock" or "127.0.0.1:9000". */
  upstream: string;
  /** More YAML lines for this path (indented by the template), e.g. `fastcgi.timeout.keepalive: 5000`. */
  extra?: string;
}

export interface H2oOptions {
  mounts: readonly H2oMount[];
}

function connect(upstream: string): string {
  if (upstream.startsWith('unix:') || upstream.startsWith('/')) {
    return `{ port: ${JSON.stringify(upstream.replace(/^unix:/, ''))}, type: unix }`;
  }
  const colon = upstream.lastIndexOf(':');
  return `{ host: ${JSON.stringify(upstream.slice(0, colon))}, port: ${upstream.slice(colon + 1)}, type: tcp }`;
}

export function h2oConfig(context: WebServerContext, options: H2oOptions): string {
  const paths = options.mounts
    .map((mount) => {
      const extra = (mount.extra ?? '')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => `        ${line}\n`)
        .join('');
      return `      ${JSON.stringify(mount.path)}:\n        fastcgi.connect: ${connect(mount.upstream)}\n${extra}`;
    })
    .join('');
  return `# h2o in front of a nodefpm app (nodefpm interop test); run as: h2o -c DIR/h2o.conf
${context.isRoot ? 'user: root\n' : ''}pid-file: ${JSON.stringify(context.path('h2o.pid'))}
error-log: ${JSON.stringify(context.path('error.log'))}
num-threads: 1
listen:
  host: ${context.host}
  port: ${context.port}
hosts:
  "localhost":
    access-log: ${JSON.stringify(context.path('access.log'))}
    paths:
${paths}`;
}

/** h2o as a harness server kind. */
export function h2o(options: H2oOptions): WebServerKind {
  return {
    name: 'h2o',
    binary: '/usr/bin/h2o',
    debianPackage: 'h2o',
    addressInUse: /Address already in use|failed to listen/,
    configure: (context) => ({
      files: { 'h2o.conf': h2oConfig(context, options) },
      args: ['-c', context.path('h2o.conf')],
      logs: ['error.log', 'access.log'],
      readyFile: 'h2o.pid',
    }),
  };
}
