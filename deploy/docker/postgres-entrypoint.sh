#!/usr/bin/env bash
# The PostgreSQL image's entrypoint (postgres.Dockerfile): on the first start, initdb with the
# superuser POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required), password
# (scram-sha-256) authentication over TCP from anywhere, and the database POSTGRES_DB (default:
# the user's name); then the server in the foreground. Arguments go to `postgres`.
# The root file system may be read-only: PGDATA is a volume, sockets and temporary files go to /tmp.
set -euo pipefail

bin=/usr/lib/postgresql/${PG_MAJOR:?}/bin
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD: there is no default password}"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # Single-user mode: no server, no socket, nothing listening while it runs.
    printf 'CREATE DATABASE "%s" OWNER "%s"\n' "${db//\"/\"\"}" "${user//\"/\"\"}" \
      | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi

exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
