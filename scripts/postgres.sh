#!/usr/bin/env bash
# PostgreSQL for the SQL-poll tests: a private cluster in .state/postgres (git-ignored),
# listening on 127.0.0.1:${PLACEHUB_PG_PORT:-25432} only, with trust auth for user placehub.
# Usage: scripts/postgres.sh start|stop|status|dsn
# PostgreSQL refuses to run as root, so as root the server runs as the 'postgres' user that
# Debian's package creates; the binaries are installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PLACEHUB_PG_PORT:-25432}"
DIR="$(pwd)/.state/postgres"
if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$(pwd)"; then
  # The checkout is not reachable by the postgres user: keep the cluster where it is.
  DIR="/var/tmp/placehub-postgres-$(pwd | sha256sum | cut -c1-12)"
fi
DATA="$DIR/data"
DSN="postgresql://placehub@127.0.0.1:$PORT/postgres"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
BIN="$(find_bin)"
if [ -z "$BIN" ] && [ "${1:-}" = start ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL (apt-get install postgresql) ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    BIN="$(find_bin)"
  fi
  [ -n "$BIN" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    mkdir -p "$DIR/run"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$DIR"
    if [ ! -f "$DATA/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$DATA" -U placehub --auth=trust -E UTF8 --no-locale >"$DIR/initdb.log"
    fi
    if as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
      echo "postgres already running on 127.0.0.1:$PORT"
      exit 0
    fi
    as_owner "$BIN/pg_ctl" start -w -t 60 -D "$DATA" -l "$DIR/server.log" \
      -o "-p $PORT -k $DIR/run -c listen_addresses=127.0.0.1" >/dev/null
    echo "postgres running on 127.0.0.1:$PORT ($DSN); log: $DIR/server.log"
    ;;
  stop)
    if [ -n "$BIN" ] && [ -f "$DATA/PG_VERSION" ]; then
      as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast >/dev/null 2>&1 || true
    fi
    echo "postgres stopped"
    ;;
  status)
    as_owner "$BIN/pg_ctl" status -D "$DATA"
    ;;
  dsn)
    echo "$DSN"
    ;;
  *)
    echo "usage: $0 start|stop|status|dsn" >&2
    exit 2
    ;;
esac
