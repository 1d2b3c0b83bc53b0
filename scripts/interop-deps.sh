#!/usr/bin/env bash
# Installs the Debian packages `npm run test:interop` needs when they are missing, without leaving their services running.
#
# Idempotent: when every server is present it only checks (dpkg-query) and exits 0. Otherwise, as root,
# it runs apt-get update and installs the missing packages with --no-install-recommends, with a
# policy-rc.d in place for the duration so the packages' own services are not started (the tests run
# their own instances in the foreground from configs in temporary folders), and stops any that started
# anyway. Not root and something missing: exits 1 saying what to install.
set -euo pipefail

# One line per server the interop tests use:
#   need SERVICE BINARY PACKAGE [OTHER PACKAGES THAT ALSO PROVIDE IT...]
# SERVICE is the package's own system service (stopped after install; "-" if none), BINARY must exist
# afterwards, PACKAGE is what gets installed when none of the listed packages is. Later interop tests
# add their line here, e.g. `need apache2 /usr/sbin/apache2 apache2`.
declare -a MISSING=() SERVICES=() BINARIES=() PRESENT=()

need() {
  local service=$1 binary=$2 package=$3
  shift 2
  local candidate status
  if [[ -x $binary ]]; then
    for candidate in "$@"; do
      status=$(dpkg-query -W -f='${Status}' "$candidate" 2>/dev/null || true)
      if [[ $status == 'install ok installed' ]]; then
        PRESENT+=("$candidate")
        return 0
      fi
    done
  fi
  MISSING+=("$package")
  SERVICES+=("$service")
  BINARIES+=("$binary")
}

# Debian 12's `nginx` package holds /usr/sbin/nginx with the FastCGI module (nginx-light/-core/-full/-extras add modules).
need nginx /usr/sbin/nginx nginx nginx-light nginx-core nginx-full nginx-extras
# Apache 2.4 with mod_proxy_fcgi (and mod_authnz_fcgi), both in Debian's apache2 package (apache2-bin holds the binary).
need apache2 /usr/sbin/apache2 apache2 apache2-bin
# lighttpd 1.4 with mod_fastcgi built in.
need lighttpd /usr/sbin/lighttpd lighttpd
# h2o 2.2 with its fastcgi handler.
need h2o /usr/bin/h2o h2o
# Redis 7 for the Redis session store test (run in the foreground from a temp config, no persistence).
need redis-server /usr/bin/redis-server redis-server
# PHP-FPM 8.2 (Debian 12's php8.2-fpm) behind the built-in HTTP front (src/gateway), run in the foreground from a temp config.
need php8.2-fpm /usr/sbin/php-fpm8.2 php8.2-fpm

log() { printf 'interop-deps: %s\n' "$*" >&2; }

if [[ ${#MISSING[@]} -eq 0 ]]; then
  log "present: ${PRESENT[*]}"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "missing Debian packages: ${MISSING[*]}"
  log "the interop tests need them and only root can install them; run as root:"
  log "  apt-get update && apt-get install -y --no-install-recommends ${MISSING[*]}"
  log "or run \`npm run test:interop\` as root (it installs them itself)"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "missing packages (${MISSING[*]}) and no apt-get on this machine: install them by hand"
  exit 1
fi

# Keep maintainer scripts from starting services: policy-rc.d exit 101 = "action forbidden".
# Any existing policy-rc.d is put back afterwards.
POLICY=/usr/sbin/policy-rc.d
BACKUP=''
restore_policy() {
  if [[ -n $BACKUP ]]; then mv -f "$BACKUP" "$POLICY"; else rm -f "$POLICY"; fi
}
if [[ -e $POLICY ]]; then
  BACKUP=$(mktemp /usr/sbin/policy-rc.d.interop-deps.XXXXXX)
  cp -p "$POLICY" "$BACKUP"
fi
trap restore_policy EXIT
printf '#!/bin/sh\n# written by nodefpm scripts/interop-deps.sh for the duration of an install\nexit 101\n' >"$POLICY"
chmod 755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -y -o DPkg::Lock::Timeout=600)
log "installing: ${MISSING[*]}"
"${APT[@]}" update
"${APT[@]}" install --no-install-recommends "${MISSING[@]}"

# Belt and braces: stop the packages' services if something started them regardless.
for service in "${SERVICES[@]}"; do
  [[ $service == - ]] && continue
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet "$service" 2>/dev/null; then
      log "stopping the $service service that the package started"
      systemctl stop "$service" || true
    fi
  elif [[ -x /etc/init.d/$service ]]; then
    if "/etc/init.d/$service" status >/dev/null 2>&1; then
      log "stopping the $service service that the package started"
      "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    fi
  fi
done

for binary in "${BINARIES[@]}"; do
  if [[ ! -x $binary ]]; then
    log "installed ${MISSING[*]} but $binary is still missing"
    exit 1
  fi
done
log "installed: ${MISSING[*]}"
