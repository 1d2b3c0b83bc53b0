// nodefpm handler of the POST scenario: reads the request body to the end, then answers with its length.
//
//   node bench/servers/post.mjs <socket>                  for await over the body: each chunk is the handler's to keep
//   node bench/servers/post.mjs <socket> --read=consume   req.body.consume(): each chunk lent, valid during the call
//   node bench/servers/post.mjs <socket> --tune-malloc=false   for await, with glibc's malloc left as it is
import { createLogger, createServer } from '../../dist/esm/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath, flags } = serverArgs();
const consume = flags.read === 'consume';

const server = createServer(
  async (req, res) => {
    let bytes = 0;
    if (consume) bytes = await req.body.consume(() => {});
    else for await (const chunk of req) bytes += chunk.length;
    res.setHeader('Content-Type', 'text/plain');
    res.end(`${bytes}\n`);
  },
  { logger: createLogger({ level: 'warn' }), tuneMalloc: flags['tune-malloc'] !== 'false' },
);
await server.listen(`unix:${socketPath}`);
ready();
