// Script mode (PHP-FPM and other script runners): maps a request path onto documentRoot as nginx's PHP location with try_files and fastcgi_split_path_info does.

import { Buffer } from 'node:buffer';
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { NodefpmError } from '../errors.js';
import type { ScriptParams } from './params.js';

/**
 * Script mode, for a FastCGI server that runs script files named by SCRIPT_FILENAME (PHP-FPM). What
 * it reproduces is Debian's `snippets/fastcgi-php.conf` in a location for scripts, plus a `location /`
 * with `try_files $uri $uri/ <frontController>?$query_string` (see resolveScript).
 */
export interface ScriptOptions {
  /** A script name (after the split) that matches is a script, run by the FastCGI server. Default /\.php$/. */
  pattern?: RegExp;
  /**
   * nginx's fastcgi_split_path_info: a match splits the path into the script name (capture 1) and
   * PATH_INFO (capture 2). Default Debian's `^(.+?\.php)(/.*)$`. null: no split.
   */
  splitPathInfo?: RegExp | null;
  /** nginx's fastcgi_index: added to a script name ending with "/". Default "index.php". */
  index?: string;
  /**
   * A front controller, as `try_files $uri $uri/ /index.php?$query_string`: a path that names no
   * script and no file runs this script (SCRIPT_NAME is it, PATH_INFO is "", REQUEST_URI stays the
   * original). A path starting with "/". Default none: such a path is a 404.
   */
  frontController?: string | null;
  /** Serve files under documentRoot that are not scripts, as nginx's static handler does. Default true. */
  staticFiles?: boolean;
}

export interface ResolvedScriptOptions {
  pattern: RegExp;
  splitPathInfo: RegExp | null;
  index: string;
  frontController: string | null;
  staticFiles: boolean;
}

/** Where a script-mode request goes. */
export type Route =
  | { kind: 'script'; params: ScriptParams }
  | { kind: 'static'; file: Buffer; stats: Stats }
  /** A directory asked for without its trailing slash: nginx answers 301 to the slashed path. */
  | { kind: 'redirect'; location: string }
  | { kind: 'not-found'; reason: string };

function invalid(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', message);
}

export function resolveScriptOptions(options: ScriptOptions): ResolvedScriptOptions {
  if (typeof options !== 'object' || options === null) throw invalid('option script must be an object (or true)');
  const pattern = options.pattern ?? /\.php$/;
  if (!(pattern instanceof RegExp)) throw invalid('option script.pattern must be a RegExp');
  const splitPathInfo = options.splitPathInfo === undefined ? /^(.+?\.php)(\/.*)$/ : options.splitPathInfo;
  if (splitPathInfo !== null && !(splitPathInfo instanceof RegExp)) throw invalid('option script.splitPathInfo must be a RegExp or null');
  const index = options.index ?? 'index.php';
  if (typeof index !== 'string' || index === '' || index.includes('/')) throw invalid('option script.index must be a file name such as "index.php"');
  const frontController = options.frontController ?? null;
  if (frontController !== null && (typeof frontController !== 'string' || !frontController.startsWith('/') || frontController.includes('?'))) {
    throw invalid('option script.frontController must be a path such as "/index.php"');
  }
  const staticFiles = options.staticFiles ?? true;
  if (typeof staticFiles !== 'boolean') throw invalid('option script.staticFiles must be true or false');
  return { pattern, splitPathInfo, index, frontController, staticFiles };
}

async function statOf(path: Buffer): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

/** A path from bytes-as-chars (params' form) to a file system path: the same bytes. */
export function fsPath(bytes: string): Buffer {
  return Buffer.from(bytes, 'latin1');
}

/** A segment that starts with "." (.env, .git, .htaccess) other than /.well-known: never served nor run. */
function hasDotSegment(path: string): boolean {
  return path.split('/').some((segment) => segment.startsWith('.') && segment !== '.well-known');
}

/**
 * Maps `path` (nginx's $uri: decoded, normalised, bytes-as-chars) onto `root` (bytes-as-chars, no
 * trailing slash), in nginx's order:
 *
 * 1. fastcgi_split_path_info splits the path into script name and PATH_INFO (no match: the whole path
 *    and ""); a script name ending with "/" gets the index ("/" -> "/index.php").
 * 2. A script name matching `pattern` whose file exists runs: SCRIPT_FILENAME = root + script name
 *    (Debian's `try_files $fastcgi_script_name =404` is why a missing one is not passed on: with
 *    cgi.fix_pathinfo, PHP would otherwise run a shorter path's file).
 * 3. Otherwise the path's own file, if it is one, is served as is (staticFiles); a directory asked for
 *    without its slash gets a 301 to the slashed path.
 * 4. Otherwise the front controller runs, if there is one; else 404.
 */
export async function resolveScript(
  root: string,
  path: string,
  rawPath: string,
  query: string,
  options: ResolvedScriptOptions,
): Promise<Route> {
  if (path === '*' || !path.startsWith('/')) return { kind: 'not-found', reason: `no file for the target ${JSON.stringify(path)}` };
  if (hasDotSegment(path)) return { kind: 'not-found', reason: `${JSON.stringify(path)} names a dotfile, which is never served` };

  let scriptName = path;
  let pathInfo = '';
  const split = options.splitPathInfo?.exec(path);
  if (split !== null && split !== undefined && split[1] !== undefined) {
    scriptName = split[1];
    pathInfo = split[2] ?? '';
  }
  if (scriptName.endsWith('/')) scriptName += options.index;

  if (options.pattern.test(scriptName)) {
    const stats = await statOf(fsPath(root + scriptName));
    if (stats?.isFile() === true) {
      // With the index added, nginx's index module has redirected internally: $document_uri names the script.
      return { kind: 'script', params: { scriptName, pathInfo, documentUri: scriptName + pathInfo, scriptFilename: root + scriptName } };
    }
  } else if (options.staticFiles) {
    const stats = await statOf(fsPath(root + path));
    if (stats?.isFile() === true) return { kind: 'static', file: fsPath(root + path), stats };
    if (stats?.isDirectory() === true && !path.endsWith('/')) {
      return { kind: 'redirect', location: `${rawPath}/${query === '' ? '' : `?${query}`}` };
    }
  }

  const front = options.frontController;
  if (front !== null) {
    const stats = await statOf(fsPath(root + front));
    if (stats?.isFile() === true) {
      return { kind: 'script', params: { scriptName: front, pathInfo: '', documentUri: front, scriptFilename: root + front } };
    }
    return { kind: 'not-found', reason: `neither ${JSON.stringify(path)} nor the front controller ${front} exists under the document root` };
  }
  return { kind: 'not-found', reason: `no script or file for ${JSON.stringify(path)} under the document root` };
}
