#!/usr/bin/env bash
# Makes sure the services the test suite needs (PostgreSQL, Redis) are running on this machine,
# starting (and, as a last resort, installing) them when they are not. Idempotent: on a machine
# where they already run, it only checks. Prints the PostgreSQL admin URL the tests should use;
# Redis is at redis://127.0.0.1:6379, and `redis-server` is on the PATH for tests that start a
# private one.
set -euo pipefail

log() { echo "ensure-services: $*" >&2; }

pg_host=127.0.0.1
pg_port=5432

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

postgres_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$pg_host" -p "$pg_port"
  else
    (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null
  fi
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "PostgreSQL is not installed; installing it from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    postgres_ready && return 0
    sleep 0.5
  done
  log "PostgreSQL did not come up on $pg_host:$pg_port"
  return 1
}

postgres_ready || start_postgres

redis_host=127.0.0.1
redis_port=6379

redis_ready() {
  if command -v redis-cli >/dev/null 2>&1; then
    [[ $(redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null) == PONG ]]
  else
    (exec 3<>"/dev/tcp/$redis_host/$redis_port") 2>/dev/null
  fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  log "Redis is not installed; installing it from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! redis_ready; then
  log "starting Redis on $redis_host:$redis_port"
  redis-server --daemonize yes --bind "$redis_host" --port "$redis_port" --save '' --appendonly no >/dev/null
  for _ in $(seq 1 60); do
    redis_ready && break
    sleep 0.5
  done
  redis_ready || { log "Redis did not come up on $redis_host:$redis_port"; exit 1; }
fi

# The tests connect as `postgres` without a password (trust auth on loopback, as on CI machines).
echo "postgres://postgres@$pg_host:$pg_port/postgres"
