// nodefpm handler of the 1 GiB upload scenario: reads the whole body as it streams in and answers with its length.
import { createLogger, createServer } from '../../dist/esm/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();

const server = createServer(
  async (req, res) => {
    // Counting only: memory must stay flat however large the body is (the bound is 64 MiB of growth).
    let bytes = 0;
    for await (const chunk of req) bytes += chunk.length;
    res.setHeader('Content-Type', 'text/plain');
    res.end(`${bytes}\n`);
  },
  { logger: createLogger({ level: 'warn' }) },
);
await server.listen(`unix:${socketPath}`);
ready();
