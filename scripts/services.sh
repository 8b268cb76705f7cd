#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and NATS (with JetStream) answer on their default local ports, and that the
# C build tools the build needs are installed; with `--browser`, also the browser the dashboard's tests drive.
# A service that is not running is started; one that is not installed is installed from Debian's packages
# first. Services given by DATABASE_URL / REDIS_URL / NATS_URL on another host are left alone.
# Safe to run any number of times.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# host:port of a URL, or the default when the variable is unset.
endpoint() {
  local url=${1:-} default=$2 rest authority
  [ -n "$url" ] || { echo "$default"; return; }
  rest=${url#*://}; authority=${rest%%/*}; authority=${authority%%\?*}; authority=${authority##*@}
  case "$authority" in *:*) echo "$authority" ;; *) echo "$authority:${default##*:}" ;; esac
}

is_local() { case "${1%%:*}" in 127.0.0.1|localhost|::1|"[::1]") return 0 ;; *) return 1 ;; esac; }

listening() { timeout 1 bash -c "exec 3<>/dev/tcp/${1%%:*}/${1##*:}" 2>/dev/null; }

wait_for() {
  local name=$1 addr=$2
  for _ in $(seq 1 60); do listening "$addr" && return 0; sleep 0.5; done
  die "$name did not start listening on $addr"
}

apt_updated=
install_packages() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  local addr; addr=$(endpoint "${DATABASE_URL:-}" 127.0.0.1:5432)
  is_local "$addr" || { log "PostgreSQL at $addr is not local; not managing it"; return; }
  if ! listening "$addr"; then
    command -v pg_ctlcluster >/dev/null 2>&1 || install_packages postgresql postgresql-client
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    if [ -z "$version" ]; then
      version=$(ls /usr/lib/postgresql | sort -V | tail -1)
      log "creating PostgreSQL $version cluster"
      as_root pg_createcluster "$version" main >/dev/null
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL "$addr"
  fi
  # The service's default URL signs in as postgres/postgres. A fresh Debian cluster asks for a password
  # that the postgres role does not have yet: give it that one (only when we can reach it as the OS user).
  if command -v psql >/dev/null 2>&1 && \
     ! PGPASSWORD=postgres psql -h "${addr%%:*}" -p "${addr##*:}" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    if id postgres >/dev/null 2>&1; then
      log "setting the local postgres role's password to 'postgres' (development default)"
      as_root runuser -u postgres -- psql -p "${addr##*:}" -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
    fi
  fi
  log "PostgreSQL ready on $addr"
}

ensure_redis() {
  local addr; addr=$(endpoint "${REDIS_URL:-}" 127.0.0.1:6379)
  is_local "$addr" || { log "Redis at $addr is not local; not managing it"; return; }
  if ! listening "$addr"; then
    command -v redis-server >/dev/null 2>&1 || install_packages redis-server
    as_root mkdir -p /var/lib/redis /var/log/redis
    log "starting Redis"
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "${addr##*:}" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/pdscore.log
    wait_for Redis "$addr"
  fi
  log "Redis ready on $addr"
}

ensure_nats() {
  local addr; addr=$(endpoint "${NATS_URL:-}" 127.0.0.1:4222)
  is_local "$addr" || { log "NATS at $addr is not local; not managing it"; return; }
  if ! listening "$addr"; then
    [ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || install_packages nats-server
    local bin; bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    as_root mkdir -p /var/lib/nats-server
    log "starting NATS with JetStream"
    as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
      -a 127.0.0.1 -p "${addr##*:}" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for NATS "$addr"
  fi
  # The server's greeting says whether JetStream is on.
  local info
  info=$(timeout 2 bash -c "exec 3<>/dev/tcp/${addr%%:*}/${addr##*:}; head -1 <&3" 2>/dev/null || true)
  case "$info" in
    *'"jetstream":true'*) log "NATS ready on $addr (JetStream enabled)" ;;
    INFO*) die "NATS on $addr runs without JetStream: restart it with -js" ;;
    *) die "NATS on $addr did not greet" ;;
  esac
}

# The build compiles C code (jemalloc, the service's allocator): a C compiler and make.
ensure_build_tools() {
  command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 && return
  install_packages build-essential
}

# The dashboard's browser tests drive Debian's Chromium through its chromedriver (`--browser`).
ensure_browser() {
  if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    install_packages chromium chromium-driver
  fi
  log "browser ready: $(chromium --version 2>/dev/null | head -1)"
}

ensure_build_tools
ensure_postgres
ensure_redis
ensure_nats
if [ "${1:-}" = --browser ]; then ensure_browser; fi
