// User and group names to ids, for socket ownership and the workers' user (Node has no getpwnam).

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NodefpmError } from '../errors.js';

/** The entry for `name` in a passwd- or group-format database, via getent (NSS: LDAP and the like too), else the local file. */
function lookup(database: 'passwd' | 'group', name: string): string[] | null {
  const getent = spawnSync('getent', [database, name], { encoding: 'utf8', timeout: 5000 });
  if (getent.error === undefined) {
    const line = getent.status === 0 ? getent.stdout.split('\n')[0] : undefined;
    return line === undefined || line === '' ? null : line.split(':');
  }
  try {
    for (const line of readFileSync(`/etc/${database}`, 'utf8').split('\n')) {
      const fields = line.split(':');
      if (fields[0] === name) return fields;
    }
  } catch {
    // No database to read: the name is unknown.
  }
  return null;
}

function resolve(database: 'passwd' | 'group', what: string, option: string, value: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const entry = lookup(database, value);
  const id = entry?.[2];
  if (id === undefined || !/^\d+$/.test(id)) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `${option}: no ${what} named ${JSON.stringify(value)} on this system`);
  }
  return Number(id);
}

/** A user name or numeric id to its uid; throws NODEFPM_INVALID_OPTION naming `option` when there is no such user. */
export function userId(value: string, option: string): number {
  return resolve('passwd', 'user', option, value);
}

/** A group name or numeric id to its gid. */
export function groupId(value: string, option: string): number {
  return resolve('group', 'group', option, value);
}

/** The primary group of a user (for --user without --group, as php-fpm does). */
export function primaryGroupOf(value: string): number | undefined {
  const entry = /^\d+$/.test(value) ? null : lookup('passwd', value);
  const gid = entry?.[3];
  return gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined;
}
