// The nginx config template for interop tests (the reference config of docs/nginx.md): nodefpm behind fastcgi_pass, everything in the temp folder.

import type { WebServerContext, WebServerKind } from './harness.js';

export interface NginxOptions {
  /** Where nodefpm listens, in nginx's own form: "unix:/path/app.sock" or "127.0.0.1:9000". */
  upstream: string;
  /** fastcgi_keep_conn on, through an upstream block with `keepalive 8;` (off: nginx's default, one connection per request). */
  keepConn: boolean;
  /** Extra directives for the http block (the reference config stays as it is). */
  httpExtra?: string;
}

/**
 * The config. Locations:
 *   /             request bodies buffered by nginx (its default) before the request is passed
 *   /unbuffered/  `fastcgi_request_buffering off`: bodies, chunked ones included, streamed as they arrive
 *   /internal/    files nginx serves itself when the app answers `X-Accel-Redirect: /internal/NAME`
 */
export function nginxConfig(context: WebServerContext, options: NginxOptions): string {
  const pass = options.keepConn ? 'nodefpm' : options.upstream;
  const keepConn = options.keepConn ? '\n      fastcgi_keep_conn on;' : '';
  const upstream = options.keepConn
    ? `
  # A pool of idle FastCGI connections kept per worker; fastcgi_keep_conn makes nginx set FCGI_KEEP_CONN.
  # nginx should drop an idle connection before nodefpm does (its idleTimeout, 60 s by default).
  upstream nodefpm {
    server ${options.upstream};
    keepalive 8;
    keepalive_timeout 50s;
  }
`
    : '';
  const fastcgi = `include /etc/nginx/fastcgi_params;
      fastcgi_pass ${pass};${keepConn}`;
  return `# nginx in front of a nodefpm app (nodefpm interop test); run as: nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log
daemon off;
master_process on;
worker_processes 1;
${context.isRoot ? 'user root;\n' : ''}pid ${context.path('nginx.pid')};
error_log ${context.path('error.log')} info;

events {
  worker_connections 256;
}

http {
  access_log ${context.path('access.log')};
  client_body_temp_path ${context.path('client_body_temp')};
  proxy_temp_path ${context.path('proxy_temp')};
  fastcgi_temp_path ${context.path('fastcgi_temp')};
  uwsgi_temp_path ${context.path('uwsgi_temp')};
  scgi_temp_path ${context.path('scgi_temp')};
  default_type application/octet-stream;
  client_max_body_size 64m;
${upstream}${options.httpExtra ?? ''}
  server {
    listen ${context.host}:${context.port};
    server_name localhost;

    location / {
      ${fastcgi}
    }

    location /unbuffered/ {
      ${fastcgi}
      fastcgi_request_buffering off;
    }

    location /internal/ {
      internal;
      alias ${context.path('static')}/;
    }
  }
}
`;
}

/** The file under /internal/ that X-Accel-Redirect tests ask nginx to serve, and its content. */
export const ACCEL_FILE = 'hello.txt';
export const ACCEL_CONTENT = 'served by nginx after X-Accel-Redirect\n';

/** nginx as a harness server kind. */
export function nginx(options: NginxOptions): WebServerKind {
  return {
    name: 'nginx',
    binary: '/usr/sbin/nginx',
    debianPackage: 'nginx',
    addressInUse: /Address already in use/,
    configure: (context) => ({
      files: { 'nginx.conf': nginxConfig(context, options), [`static/${ACCEL_FILE}`]: ACCEL_CONTENT },
      // -p: prefix for relative paths; -e: the error log used before the config is read (default /var/log/nginx).
      args: ['-p', `${context.dir}/`, '-c', context.path('nginx.conf'), '-e', context.path('error.log')],
      logs: ['error.log', 'access.log'],
      readyFile: 'nginx.pid', // written after the listening sockets are bound
    }),
  };
}
