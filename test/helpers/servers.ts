// Starts nodefpm servers for tests on a fresh Unix socket or TCP port, with a capturing logger, and cleans up.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type CreateServerOptions, type FcgiServer, type Handler, type RoleHandlers } from '../../src/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import { captureLogger, type CaptureLogger } from './log-capture.js';

export interface TestServer {
  server: FcgiServer;
  /** The address in text form: unix:/... or 127.0.0.1:PORT. */
  address: string;
  logs: CaptureLogger;
  close(): Promise<void>;
}

/** A temporary folder removed at process exit (or by the returned function). */
export function tempDir(prefix = 'nodefpm-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const remove = (): void => {
    // Removed by hand: the exit hook is no longer needed (and would pile up, one per server started).
    process.off('exit', remove);
    rmSync(path, { recursive: true, force: true });
  };
  process.once('exit', remove);
  return { path, remove };
}

export async function startServer(
  handler: Handler | RoleHandlers,
  options: CreateServerOptions & { transport?: 'unix' | 'tcp' } = {},
): Promise<TestServer> {
  const logs = captureLogger();
  const server = createServer(handler, { logger: logs, ...options });
  let dir: { remove(): void } | null = null;
  let bound;
  if (options.transport === 'tcp') {
    bound = await server.listen('127.0.0.1:0');
  } else {
    const temp = tempDir();
    dir = temp;
    bound = await server.listen(`unix:${join(temp.path, 'app.sock')}`);
  }
  return {
    server,
    address: formatListenAddress(bound),
    logs,
    async close() {
      await server.close({ timeout: 1000 });
      dir?.remove();
    },
  };
}
