// The HTTP front scenario: HTTP in, forwarded over FastCGI to the native hello world, as `nodefpm hello-app.mjs --http ...` runs it;
// --workers=N puts the app in a pool of N workers (the front stays in the master), else it runs in this process.
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { appSetup } from '../../dist/esm/cli/worker-setup.js';
import { createGateway } from '../../dist/esm/gateway/index.js';
import { createLogger, createServer } from '../../dist/esm/index.js';
import { createPool } from '../../dist/esm/pool/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath, flags } = serverArgs();
const logger = createLogger({ level: 'warn' });
// The app's FastCGI socket beside the front's, in the runner's temporary folder.
const fastcgi = join(dirname(socketPath), 'app-fastcgi.sock');
const workers = Number(flags.workers ?? 0);
if (workers > 0) {
  const app = fileURLToPath(new URL('hello-app.mjs', import.meta.url));
  await createPool({ listen: [`unix:${fastcgi}`], workers, setup: appSetup({ app, api: 'native' }), logLevel: 'warn' }).start();
} else {
  const server = createServer(
    (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.end('Hello, world!\n');
    },
    { logger },
  );
  await server.listen(`unix:${fastcgi}`);
}
// The command's default: 32 kept FastCGI connections (--http-connections), one per HTTP connection of the load.
const gateway = createGateway({ upstream: `unix:${fastcgi}`, client: { maxConnections: 32 }, logger });
await gateway.listen(`unix:${socketPath}`);
ready();
