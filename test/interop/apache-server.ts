// The Apache 2.4 config template for interop tests (mod_proxy_fcgi, mod_authnz_fcgi): reusable by any test that puts nodefpm behind Apache.

import type { WebServerContext, WebServerKind } from './harness.js';

/**
 * How to use it (the Authorizer tests reuse this file too):
 *
 *     const web = await startWebServer(apache({ directives: proxyPass('/app/', fcgiTarget('127.0.0.1:9000')) }));
 *     const web = await startWebServer(apache({ modules: ['authnz_fcgi'], directives: `AuthnzFcgiDefineProvider authnz ...` }));
 *
 * The fixed part is the smallest config Debian's Apache runs in the foreground with (`-DFOREGROUND`),
 * every path inside the test's temp folder (pid, logs, mutexes, runtime dir), one event-MPM process
 * group. `directives` is appended at server level: mounts, Location blocks, auth providers.
 *
 * Running as root, Apache still switches its workers to `www-data` (it refuses to serve as root), so
 * the app should listen on TCP, or on a Unix socket in a folder www-data can enter (mkdtemp folders
 * are 0700). mod_authnz_fcgi is TCP only anyway.
 */
export interface ApacheOptions {
  /** Server-level directives after the fixed part: ProxyPass lines, <Location> blocks, AuthnzFcgi providers... */
  directives: string;
  /** More modules by their Debian names (`authnz_fcgi`, `rewrite`, `headers`), loaded after the base set. */
  modules?: readonly string[];
}

/** Loaded in every instance: what ProxyPass to FastCGI, SetEnvIf and `Require` need. */
const BASE_MODULES = ['mpm_event', 'authz_core', 'authz_host', 'authn_core', 'env', 'setenvif', 'proxy', 'proxy_fcgi'];

/** Apache's spelling of a FastCGI backend: `fcgi://127.0.0.1:9000` or `unix:/path/app.sock|fcgi://localhost`. */
export function fcgiTarget(upstream: string): string {
  if (upstream.startsWith('unix:')) return `${upstream}|fcgi://localhost`;
  if (upstream.startsWith('/')) return `unix:${upstream}|fcgi://localhost`;
  return `fcgi://${upstream}`;
}

/**
 * A ProxyPass mount: `prefix` ("/" or "/app/") is sent to the app at `target`. The `/` after the
 * target makes Apache pass the path below the prefix, the way a front controller is usually mounted.
 */
export function proxyPass(prefix: string, target: string): string {
  return `ProxyPass "${prefix}" "${target}/"`;
}

export function apacheConfig(context: WebServerContext, options: ApacheOptions): string {
  const modules = [...BASE_MODULES, ...(options.modules ?? [])]
    .filter((name, index, all) => all.indexOf(name) === index)
    .map((name) => `LoadModule ${name}_module /usr/lib/apache2/modules/mod_${name}.so`)
    .join('\n');
  return `# Apache in front of a nodefpm app (nodefpm interop test); run as: apache2 -d DIR -f DIR/apache2.conf -DFOREGROUND
ServerRoot "${context.dir}"
DefaultRuntimeDir "${context.dir}"
PidFile "${context.path('apache2.pid')}"
Mutex file:${context.dir} default
${modules}
${context.isRoot ? 'User www-data\nGroup www-data\n' : ''}ServerName localhost
Listen ${context.host}:${context.port}
ErrorLog "${context.path('error.log')}"
LogLevel warn proxy_fcgi:info
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "${context.path('access.log')}" common
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
KeepAlive On
Timeout 60
DocumentRoot "${context.path('htdocs')}"
<Directory />
  Require all granted
</Directory>

${options.directives}
`;
}

/** Apache as a harness server kind. */
export function apache(options: ApacheOptions): WebServerKind {
  return {
    name: 'apache2',
    binary: '/usr/sbin/apache2',
    debianPackage: 'apache2',
    addressInUse: /Address already in use|could not bind/,
    configure: (context) => ({
      files: { 'apache2.conf': apacheConfig(context, options), 'htdocs/index.html': 'apache test root\n' },
      args: ['-d', context.dir, '-f', context.path('apache2.conf'), '-DFOREGROUND'],
      // Debian's apache2ctl sets these; the binary itself reads none, but modules may log them.
      env: { LANG: 'C' },
      logs: ['error.log', 'access.log'],
      readyFile: 'apache2.pid', // written after the listening socket is bound
    }),
  };
}
