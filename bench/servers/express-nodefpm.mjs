// The express scenario's nodefpm run: the same Express 5 hello world served over FastCGI by createNodeServer, unchanged.
import { createLogger } from '../../dist/esm/index.js';
import { createNodeServer } from '../../dist/esm/adapters/node/index.js';
import { helloApp } from './express-app.mjs';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();
const server = createNodeServer(helloApp(), { logger: createLogger({ level: 'warn' }) });
await server.listen(`unix:${socketPath}`);
ready();
