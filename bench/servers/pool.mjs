// The workers scenario: the native hello world (hello-app.mjs) served by a pool of --workers=N processes, as `nodefpm hello-app.mjs --workers N` runs it.
import { fileURLToPath } from 'node:url';
import { appSetup } from '../../dist/esm/cli/worker-setup.js';
import { createPool } from '../../dist/esm/pool/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath, flags } = serverArgs();
const pool = createPool({
  listen: [`unix:${socketPath}`],
  workers: Number(flags.workers ?? 1),
  setup: appSetup({ app: fileURLToPath(new URL('hello-app.mjs', import.meta.url)), api: 'native' }),
  logLevel: 'warn',
});
await pool.start();
ready();
// common.mjs exits on SIGTERM; the workers see the master's IPC channel close and stop themselves.
