// The hono scenario's reference: the Hono hello world on Node's http server through @hono/node-server (its defaults), loaded over HTTP/1.1 keep-alive.
import { rmSync } from 'node:fs';
import { createAdaptorServer } from '@hono/node-server';
import { helloApp } from './hono-app.mjs';
import { ready, serverArgs } from './common.mjs';

const { socketPath: where } = serverArgs();
// createAdaptorServer is what serve() uses, without its listen(port): so it can listen on a Unix socket too.
const server = createAdaptorServer({ fetch: helloApp().fetch });
if (where.includes(':') && !where.startsWith('/')) {
  const [host, port] = [where.slice(0, where.lastIndexOf(':')), Number(where.slice(where.lastIndexOf(':') + 1))];
  server.listen(port, host, () => ready(`${host}:${server.address().port}`));
} else {
  rmSync(where, { force: true });
  server.listen(where, () => ready());
}
