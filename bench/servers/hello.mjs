// nodefpm's native hello world, the server of the hello and idle-connection scenarios.
import { createLogger, createServer } from '../../dist/esm/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();

const server = createServer(
  (req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end('Hello, world!\n');
  },
  // The idle-connection scenario holds 2000 connections, over the default limit of 1024. Warnings
  // stay on: the runner shows them when a scenario fails.
  { logger: createLogger({ level: 'warn' }), maxConnections: 10_000 },
);
await server.listen(`unix:${socketPath}`);
ready();
