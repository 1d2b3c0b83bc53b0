// Fronts the command runs beside the FastCGI listeners: the place where the built-in HTTP front (src/gateway, --http) plugs in.

import type { Logger } from '../log.js';
import type { ListenAddress } from '../server/listen.js';
import type { OptionValue, Settings } from './options.js';

/** What a front is told when the FastCGI side is serving. */
export interface FrontContext {
  settings: Settings;
  /** Every option value given (command line over config file), by key: a front reads its own options here. */
  values: ReadonlyMap<string, OptionValue>;
  logger: Logger;
  /** The command's working directory: relative paths in the options are relative to it. */
  cwd: string;
  /** Where the app is served over FastCGI (the pool's or the single server's listeners, real ports). */
  fastcgi: readonly ListenAddress[];
}

export interface RunningFront {
  /** For the start-up log: "HTTP on http://127.0.0.1:8080/". */
  description: string;
  /** Stops it gracefully; called when the command stops, before the FastCGI side. */
  stop(): Promise<void>;
}

/** Starts a front when its options ask for one; resolves to null when they do not. */
export type FrontStarter = (context: FrontContext) => Promise<RunningFront | null>;

const starters: FrontStarter[] = [];

/**
 * Adds a front. The HTTP front registers itself here (one line, as the adapters do in adapters.ts),
 * with its options in the 'HTTP front' group of the option table (options.ts).
 */
export function registerFront(starter: FrontStarter): void {
  starters.push(starter);
}

/** Starts every registered front that its options ask for. A front that fails to start stops those already started, then rethrows. */
export async function startFronts(context: FrontContext): Promise<RunningFront[]> {
  const running: RunningFront[] = [];
  try {
    for (const start of starters) {
      const front = await start(context);
      if (front !== null) {
        running.push(front);
        context.logger.info(front.description);
      }
    }
  } catch (error) {
    await stopFronts(running);
    throw error;
  }
  return running;
}

export async function stopFronts(fronts: readonly RunningFront[]): Promise<void> {
  await Promise.allSettled(fronts.map((front) => front.stop()));
}
