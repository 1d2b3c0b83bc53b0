// X-Accel-Redirect (nginx) and X-Sendfile (lighttpd, Apache's mod_xsendfile): which file an app's header names, within the mapping the operator configured.

import { Buffer } from 'node:buffer';
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { isAbsolute, resolve, sep } from 'node:path';
import { NodefpmError } from '../errors.js';
import { normalizePath, percentDecodePath } from './uri.js';

/**
 * Where X-Accel-Redirect and X-Sendfile may point. Without it the two headers are passed to the
 * HTTP client untouched, as Apache and h2o do (see docs/gateway.md).
 */
export interface SendfileOptions {
  /**
   * X-Accel-Redirect: URI prefixes and the directories they stand for, as nginx `internal` locations
   * with `alias`: `{ '/protected/': '/srv/files/' }` serves `X-Accel-Redirect: /protected/a.pdf` from
   * /srv/files/a.pdf.
   */
  accel?: Readonly<Record<string, string>>;
  /** X-Sendfile: absolute paths are served when they lie inside one of these directories (lighttpd's x-sendfile-docroot). */
  roots?: readonly string[];
}

export interface ResolvedSendfile {
  /** Prefix and directory (with a trailing separator), the longest prefix first. */
  accel: Array<[string, string]>;
  /** Directories with a trailing separator. */
  roots: string[];
}

function invalid(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', message);
}

function withSeparator(dir: string): string {
  return dir.endsWith(sep) ? dir : dir + sep;
}

export function resolveSendfileOptions(options: SendfileOptions | undefined): ResolvedSendfile | null {
  if (options === undefined) return null;
  if (typeof options !== 'object' || options === null) throw invalid('option sendfile must be an object with accel and/or roots');
  const accel: Array<[string, string]> = [];
  for (const [prefix, dir] of Object.entries(options.accel ?? {})) {
    if (!prefix.startsWith('/')) throw invalid(`sendfile.accel prefix ${JSON.stringify(prefix)} must start with "/"`);
    if (typeof dir !== 'string' || !isAbsolute(dir)) throw invalid(`sendfile.accel directory for ${prefix} must be an absolute path`);
    accel.push([prefix, withSeparator(resolve(dir))]);
  }
  accel.sort((a, b) => b[0].length - a[0].length);
  const roots: string[] = [];
  for (const root of options.roots ?? []) {
    if (typeof root !== 'string' || !isAbsolute(root)) throw invalid(`sendfile.roots entries must be absolute paths, got ${JSON.stringify(root)}`);
    roots.push(withSeparator(resolve(root)));
  }
  if (accel.length === 0 && roots.length === 0) return null;
  return { accel, roots };
}

function refused(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_GATEWAY_SENDFILE', message);
}

async function regularFile(path: Buffer, what: string): Promise<Stats> {
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    throw refused(`${what} names ${JSON.stringify(path.toString('latin1'))}, which cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!stats.isFile()) throw refused(`${what} names ${JSON.stringify(path.toString('latin1'))}, which is not a regular file`);
  return stats;
}

/**
 * The file an X-Accel-Redirect value names: the URI is decoded and normalised as a request path (its
 * query dropped), then the longest configured prefix is replaced by its directory. Named locations
 * (`@name`) and URIs under no prefix are refused (NODEFPM_GATEWAY_SENDFILE, answered 404 as nginx
 * answers an internal redirect to nowhere).
 */
export async function accelFile(value: string, config: ResolvedSendfile): Promise<{ file: Buffer; stats: Stats }> {
  if (!value.startsWith('/')) throw refused(`X-Accel-Redirect ${JSON.stringify(value)} is not a URI path (named locations are not supported)`);
  const mark = value.indexOf('?');
  let path: string;
  try {
    path = normalizePath(percentDecodePath(mark < 0 ? value : value.slice(0, mark)));
  } catch (error) {
    throw refused(`X-Accel-Redirect ${JSON.stringify(value)} is not a valid path: ${(error as Error).message}`);
  }
  for (const [prefix, dir] of config.accel) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length).replace(/^\/+/, '');
    // The path is bytes-as-chars; the directory is a JS string: both become the bytes the file system wants.
    const file = Buffer.concat([Buffer.from(dir, 'utf8'), Buffer.from(rest, 'latin1')]);
    return { file, stats: await regularFile(file, 'X-Accel-Redirect') };
  }
  throw refused(`X-Accel-Redirect ${JSON.stringify(value)} is under none of the configured prefixes (${config.accel.map(([prefix]) => prefix).join(', ') || 'none'})`);
}

/** The file an X-Sendfile value names: an absolute path, resolved, which must lie inside a configured root. */
export async function sendfileFile(value: string, config: ResolvedSendfile): Promise<{ file: Buffer; stats: Stats }> {
  // Header values are bytes-as-chars; file names are usually UTF-8.
  const text = Buffer.from(value, 'latin1').toString('utf8');
  if (!isAbsolute(text) || text.includes('\0')) throw refused(`X-Sendfile ${JSON.stringify(value)} is not an absolute path`);
  const path = resolve(text);
  if (!config.roots.some((root) => path.startsWith(root))) {
    throw refused(`X-Sendfile ${JSON.stringify(path)} is outside the configured roots (${config.roots.join(', ') || 'none'})`);
  }
  const file = Buffer.from(path, 'utf8');
  return { file, stats: await regularFile(file, 'X-Sendfile') };
}
