// The listener scenario's nodefpm run: a bare Node request listener (no framework) served over FastCGI by createNodeServer.
import { createLogger } from '../../dist/esm/index.js';
import { createNodeServer } from '../../dist/esm/adapters/node/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();
const server = createNodeServer(
  (req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end('Hello, world!\n');
  },
  { logger: createLogger({ level: 'warn' }) },
);
await server.listen(`unix:${socketPath}`);
ready();
