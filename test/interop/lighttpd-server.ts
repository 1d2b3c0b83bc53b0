// The lighttpd 1.4 config template for interop tests (mod_fastcgi, Responder and Authorizer modes): reusable by any test that puts nodefpm behind lighttpd.

import type { WebServerContext, WebServerKind } from './harness.js';

/**
 * How to use it (the Authorizer tests reuse this file too):
 *
 *     const web = await startWebServer(lighttpd({ mounts: [{ prefix: '/app/', upstream: '127.0.0.1:9000' }] }));
 *     const web = await startWebServer(lighttpd({ mounts: [{ prefix: '/', upstream, extra: { mode: 'authorizer', 'docroot': '/x' } }] }));
 *
 * lighttpd runs in the foreground (`-D`) with every path in the test's temp folder. Each mount is one
 * `fastcgi.server` entry with `check-local => disable` (the app, not a file on disk, answers). Running as
 * root it stays root (no server.username), so Unix sockets in 0700 folders work.
 */
export interface LighttpdMount {
  /** The URL prefix lighttpd hands to the app: "/" or "/app/" (or an extension such as ".php"). */
  prefix: string;
  /** Where nodefpm listens: "unix:/path/app.sock", "/path/app.sock" or "127.0.0.1:9000". */
  upstream: string;
  /** More keys for this backend, written as lighttpd values: strings quoted, numbers and booleans as is. */
  extra?: Record<string, string | number | boolean>;
}

export interface LighttpdOptions {
  mounts: readonly LighttpdMount[];
  /** More lines for the config (after the mounts): e.g. `server.stream-request-body = 2`. */
  extra?: string;
}

function value(item: string | number | boolean): string {
  if (typeof item === 'boolean') return item ? '"enable"' : '"disable"';
  return typeof item === 'number' ? String(item) : JSON.stringify(item);
}

function backend(mount: LighttpdMount): string {
  const keys: Record<string, string | number | boolean> = { 'check-local': 'disable' };
  if (mount.upstream.startsWith('unix:') || mount.upstream.startsWith('/')) {
    keys.socket = mount.upstream.replace(/^unix:/, '');
  } else {
    const colon = mount.upstream.lastIndexOf(':');
    keys.host = mount.upstream.slice(0, colon);
    keys.port = Number(mount.upstream.slice(colon + 1));
  }
  Object.assign(keys, mount.extra);
  const pairs = Object.entries(keys).map(([key, item]) => `"${key}" => ${value(item)}`);
  return `  "${mount.prefix}" => (( ${pairs.join(', ')} ))`;
}

export function lighttpdConfig(context: WebServerContext, options: LighttpdOptions): string {
  return `# lighttpd in front of a nodefpm app (nodefpm interop test); run as: lighttpd -D -f DIR/lighttpd.conf
server.modules = ( "mod_access", "mod_accesslog", "mod_fastcgi" )
server.document-root = "${context.path('htdocs')}"
server.bind = "${context.host}"
server.port = ${context.port}
server.pid-file = "${context.path('lighttpd.pid')}"
server.errorlog = "${context.path('error.log')}"
accesslog.filename = "${context.path('access.log')}"
server.upload-dirs = ( "${context.path('upload')}" )
server.max-request-size = 65536
fastcgi.debug = 0
fastcgi.server = (
${options.mounts.map(backend).join(',\n')}
)
${options.extra ?? ''}
`;
}

/** lighttpd as a harness server kind. */
export function lighttpd(options: LighttpdOptions): WebServerKind {
  return {
    name: 'lighttpd',
    binary: '/usr/sbin/lighttpd',
    debianPackage: 'lighttpd',
    addressInUse: /Address already in use|can't bind/,
    configure: (context) => ({
      files: {
        'lighttpd.conf': lighttpdConfig(context, options),
        'htdocs/index.html': 'lighttpd test root\n',
        'upload/.keep': '',
      },
      args: ['-D', '-f', context.path('lighttpd.conf')],
      logs: ['error.log', 'access.log'],
      readyFile: 'lighttpd.pid',
    }),
  };
}
