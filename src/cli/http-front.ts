// The command's --http front: a Gateway (src/gateway) forwarding HTTP to the app's FastCGI listener, or to --upstream (PHP-FPM).

import { resolve } from 'node:path';
import { isNodefpmError, NodefpmError } from '../errors.js';
import { createGateway, upstreamFor, type GatewayOptions } from '../gateway/index.js';
import { formatListenAddress } from '../server/listen.js';
import { registerFront, type FrontContext, type RunningFront } from './fronts.js';

/** The option values the front reads (see the 'HTTP front' group in options.ts). */
interface FrontValues {
  http: string | undefined;
  upstream: string | undefined;
  documentRoot: string | undefined;
  frontController: string | undefined;
  httpConnections: number;
}

const DEFAULT_CONNECTIONS = 32;

function frontValues(values: FrontContext['values']): FrontValues {
  return {
    http: values.get('http') as string | undefined,
    upstream: values.get('upstream') as string | undefined,
    documentRoot: values.get('documentRoot') as string | undefined,
    frontController: values.get('frontController') as string | undefined,
    httpConnections: (values.get('httpConnections') as number | undefined) ?? DEFAULT_CONNECTIONS,
  };
}

/** Where the front forwards: --upstream, else the first listener of the app with an address a client can connect to. */
function upstreamOf(front: FrontValues, context: FrontContext): string {
  if (front.upstream !== undefined) return front.upstream;
  for (const listener of context.fastcgi) {
    const address = upstreamFor(listener);
    if (address !== null) return address;
  }
  throw new NodefpmError(
    'NODEFPM_USAGE',
    `--http: the app listens only on ${context.fastcgi.map(formatListenAddress).join(', ')}, whose address is not known; ` +
      'give --listen unix:/path or --listen HOST:PORT too',
  );
}

/**
 * Checks the front's options against each other, before anything starts: --upstream and the
 * script-mode options need --http, and --upstream replaces the app module.
 */
export function checkFrontOptions(values: FrontContext['values'], app: string | undefined): void {
  const front = frontValues(values);
  const needsHttp = (['upstream', 'documentRoot', 'frontController'] as const).filter((key) => front[key] !== undefined);
  if (front.http === undefined && needsHttp.length > 0) {
    throw new NodefpmError('NODEFPM_USAGE', `--${needsHttp.map(kebab).join(' and --')} ${needsHttp.length === 1 ? 'needs' : 'need'} --http HOST:PORT`);
  }
  if (front.upstream !== undefined && app !== undefined) {
    throw new NodefpmError('NODEFPM_USAGE', `give an app module or --upstream, not both: ${app} would never be asked`);
  }
  if (front.frontController !== undefined && (front.upstream === undefined || front.documentRoot === undefined)) {
    throw new NodefpmError('NODEFPM_USAGE', '--front-controller is for script mode: it needs --upstream and --document-root');
  }
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Whether the values ask for the HTTP front (main then listens on a private socket when no --listen is given). */
export function wantsHttpFront(values: FrontContext['values']): boolean {
  return values.get('http') !== undefined;
}

async function startHttpFront(context: FrontContext): Promise<RunningFront | null> {
  const front = frontValues(context.values);
  if (front.http === undefined) return null;
  const scriptMode = front.upstream !== undefined && front.documentRoot !== undefined;
  const options: GatewayOptions = {
    upstream: upstreamOf(front, context),
    client: { maxConnections: front.httpConnections },
    logger: context.logger,
    ...(front.documentRoot === undefined ? {} : { documentRoot: resolve(context.cwd, front.documentRoot) }),
    ...(scriptMode ? { script: front.frontController === undefined ? true : { frontController: front.frontController } } : {}),
  };
  const gateway = createGateway(options);
  let bound;
  try {
    bound = await gateway.listen(front.http);
  } catch (error) {
    await gateway.close({ timeout: 0 });
    if (isNodefpmError(error)) throw new NodefpmError(error.code, `--http: ${error.message}`, { cause: error });
    throw error;
  }
  const closeTimeout = context.settings.closeTimeout;
  return {
    description: bound.url === null ? `HTTP front on ${bound.text}` : `HTTP front: open ${bound.url}`,
    stop: () => gateway.close({ timeout: closeTimeout }),
  };
}

registerFront(startHttpFront);
