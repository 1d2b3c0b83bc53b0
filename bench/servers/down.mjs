// nodefpm handler of the download scenario: writes --bytes (default 1 GiB) in 64 KiB chunks, honouring write()'s return value and 'drain'.
import { createLogger, createServer } from '../../dist/esm/index.js';
import { ready, serverArgs } from './common.mjs';

const { socketPath, flags } = serverArgs();
const total = Number(flags.bytes ?? 1024 ** 3);
const CHUNK = 64 * 1024;
// One buffer written again and again, as the null server does: the scenario measures the server's
// output path, not the application's allocation of fresh bytes.
const chunk = Buffer.alloc(CHUNK, 'x');

const server = createServer(
  (req, res) => {
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(total));
    let left = total;
    const pump = () => {
      while (left > 0) {
        const size = Math.min(CHUNK, left);
        left -= size;
        if (!res.write(size === CHUNK ? chunk : chunk.subarray(0, size))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  },
  { logger: createLogger({ level: 'warn' }) },
);
await server.listen(`unix:${socketPath}`);
ready();
