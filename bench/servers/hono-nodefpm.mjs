// The hono scenario's nodefpm run: the same Hono hello world served over FastCGI by createFetchServer, unchanged.
import { createLogger } from '../../dist/esm/index.js';
import { createFetchServer } from '../../dist/esm/adapters/fetch/index.js';
import { helloApp } from './hono-app.mjs';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();
const server = createFetchServer(helloApp(), { logger: createLogger({ level: 'warn' }) });
await server.listen(`unix:${socketPath}`);
ready();
