// The redis-server config template for interop tests: loopback only, a free port, no persistence, everything in the temp folder.

import type { WebServerContext, WebServerKind } from './harness.js';

/**
 * The config. Nothing is written to disk but the pid file and the log: no RDB snapshots (`save ""`),
 * no AOF, and the working directory is the temp folder, so a crash leaves nothing behind outside it.
 */
export function redisConfig(context: WebServerContext): string {
  return `# redis-server for a nodefpm interop test; run as: redis-server DIR/redis.conf
bind ${context.host}
port ${context.port}
protected-mode yes
daemonize no
supervised no
pidfile ${context.path('redis.pid')}
logfile ${context.path('redis.log')}
loglevel notice
dir ${context.dir}
save ""
appendonly no
databases 1
# Keyspace events are off; expiry is Redis's own (lazy on access, plus its active expiry cycle).
`;
}

/** redis-server as a harness server kind (the harness starts it in the foreground and waits for its port). */
export const redis: WebServerKind = {
  name: 'redis',
  binary: '/usr/bin/redis-server',
  debianPackage: 'redis-server',
  addressInUse: /Address already in use/,
  configure: (context) => ({
    files: { 'redis.conf': redisConfig(context) },
    args: [context.path('redis.conf')],
    logs: ['redis.log'],
    readyFile: 'redis.pid',
  }),
};
