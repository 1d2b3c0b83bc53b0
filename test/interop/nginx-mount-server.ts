// An nginx config template for mount-point interop tests: the app behind chosen locations with Debian's fastcgi_params, optionally split with fastcgi_split_path_info.

import type { WebServerContext, WebServerKind } from './harness.js';

/**
 * nginx-server.ts holds the reference config of docs/nginx.md (the app at /); this one mounts the app
 * where a test says, the way nginx users do it:
 *
 *     nginxMount({ locations: [{ prefix: '/app/', upstream }] })                      // Debian's fastcgi_params only
 *     nginxMount({ locations: [{ prefix: '/app/', upstream, splitPathInfo: true }] }) // SCRIPT_NAME=/app, PATH_INFO=/rest
 */
export interface NginxLocation {
  /** The location prefix ("/" or "/app/"). */
  prefix: string;
  /** Where nodefpm listens, in nginx's own form: "unix:/path/app.sock" or "127.0.0.1:9000". */
  upstream: string;
  /**
   * Split the path with `fastcgi_split_path_info ^(/app)(/.*)$;` and send SCRIPT_NAME=$fastcgi_script_name
   * (the mount) and PATH_INFO=$fastcgi_path_info (the rest), the config docs/request.md recommends.
   */
  splitPathInfo?: boolean;
  /** More directives inside the location block. */
  extra?: string;
}

export interface NginxMountOptions {
  locations: readonly NginxLocation[];
  /** client_max_body_size (nginx's default is 1m). Default 64m. */
  maxBodySize?: string;
}

/** `fastcgi_split_path_info` regex for a prefix: "/app/" -> ^(/app)(/.*)$ ; "/" -> ^()(/.*)$. */
function splitRegex(prefix: string): string {
  const mount = prefix.replace(/\/+$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return `^(${mount})(/.*)$`;
}

function location(spec: NginxLocation): string {
  // fastcgi_param after the include replaces the include's SCRIPT_NAME (nginx keeps the last one given).
  const split = spec.splitPathInfo === true
    ? `
      fastcgi_split_path_info ${splitRegex(spec.prefix)};
      fastcgi_param SCRIPT_NAME $fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;`
    : '';
  return `
    location ${spec.prefix} {
      include /etc/nginx/fastcgi_params;${split}
      fastcgi_pass ${spec.upstream};${spec.extra === undefined ? '' : `\n      ${spec.extra}`}
    }`;
}

export function nginxMountConfig(context: WebServerContext, options: NginxMountOptions): string {
  return `# nginx mounting a nodefpm app at chosen prefixes (nodefpm interop test); run as: nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log
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
  client_max_body_size ${options.maxBodySize ?? '64m'};
  server {
    listen ${context.host}:${context.port};
    server_name localhost;${options.locations.map(location).join('')}
  }
}
`;
}

/** nginx with mounts as a harness server kind. */
export function nginxMount(options: NginxMountOptions): WebServerKind {
  return {
    name: 'nginx',
    binary: '/usr/sbin/nginx',
    debianPackage: 'nginx',
    addressInUse: /Address already in use/,
    configure: (context) => ({
      files: { 'nginx.conf': nginxMountConfig(context, options) },
      args: ['-p', `${context.dir}/`, '-c', context.path('nginx.conf'), '-e', context.path('error.log')],
      logs: ['error.log', 'access.log'],
      readyFile: 'nginx.pid',
    }),
  };
}
