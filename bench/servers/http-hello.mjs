// The HTTP front scenario's reference: the same hello world on Node's own http server, loaded over HTTP/1.1 keep-alive.
import { rmSync } from 'node:fs';
import http from 'node:http';
import { ready, serverArgs } from './common.mjs';

const { socketPath } = serverArgs();
const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('Hello, world!\n');
});
rmSync(socketPath, { force: true });
server.listen(socketPath, () => ready());
