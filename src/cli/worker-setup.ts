// What the command's pool workers run: the app module, loaded and adapted through the command's registry of app kinds.

import type { HandlerOptions } from '../http/handler.js';
import type { WorkerApp, WorkerSetupContext, WorkerSetupSpec } from '../pool/index.js';
import { siblingModule } from '../pool/paths.js';
import { describeKind, servedHandlerFor, type ApiKind } from './adapters.js';
import { loadApp } from './app.js';

/** The options the master gives every worker (JSON). */
export interface AppSetupOptions {
  /** The app module, absolute. */
  app: string;
  api?: ApiKind;
  handler?: HandlerOptions;
  /** Serve it under the validator (--validate). */
  validate?: boolean;
}

/** Called once in each worker process: imports the app module afresh (a reload's new code) and builds its handler. */
export async function setupWorker(context: WorkerSetupContext): Promise<WorkerApp> {
  const options = context.options as AppSetupOptions;
  const app = await loadApp(options.app, options.api === undefined ? {} : { api: options.api });
  const validate = options.validate ?? false;
  const handler = servedHandlerFor(app.kind, app.handler, { options: options.handler ?? {}, logger: context.logger }, app.path, validate);
  return { handler, description: `${app.path} as ${describeKind(app.kind)} (kind from ${app.reason})${validate ? ', validated' : ''}` };
}

/**
 * The pool's setup for serving an app module the way the command does, for createPool():
 *
 *     createPool({ listen: ['127.0.0.1:9000'], workers: 4, setup: appSetup({ app: '/srv/app.js', api: 'native' }) })
 */
export function appSetup(options: AppSetupOptions): WorkerSetupSpec {
  return { module: siblingModule('cli/worker-setup'), options };
}
