// The express scenario's reference: the Express 5 hello world on Node's own http server, loaded over HTTP/1.1 keep-alive.
import http from 'node:http';
import { rmSync } from 'node:fs';
import { helloApp } from './express-app.mjs';
import { ready, serverArgs } from './common.mjs';

const { socketPath: where } = serverArgs();
const server = http.createServer(helloApp());
// As http.createServer is deployed: no timeouts changed. The load keeps its connections busy, so the
// 5 s keep-alive timeout never closes one.
if (where.includes(':') && !where.startsWith('/')) {
  const [host, port] = [where.slice(0, where.lastIndexOf(':')), Number(where.slice(where.lastIndexOf(':') + 1))];
  server.listen(port, host, () => ready(`${host}:${server.address().port}`));
} else {
  rmSync(where, { force: true });
  server.listen(where, () => ready());
}
