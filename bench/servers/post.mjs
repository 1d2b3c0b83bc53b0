// nodefpm handler of the POST scenario: reads the request body to the end, then answers with its length.
import { createLogger, createServer } from '../../dist/esm/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();

const server = createServer(
  async (req, res) => {
    let bytes = 0;
    for await (const chunk of req) bytes += chunk.length;
    res.setHeader('Content-Type', 'text/plain');
    res.end(`${bytes}\n`);
  },
  { logger: createLogger({ level: 'warn' }) },
);
await server.listen(`unix:${socketPath}`);
ready();
