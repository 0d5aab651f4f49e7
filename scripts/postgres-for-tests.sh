# Sourced by test.sh: makes TEST_DATABASE_URL point at a PostgreSQL server that answers. A
# server already answering there is used as it is; otherwise a throwaway cluster is made
# with Debian's postgresql (installed if missing) in a temporary folder, on a free loopback
# port, and removed when the calling script exits.

postgres_answers() {
  psql "$1" -v ON_ERROR_STOP=1 -qAtc 'SELECT 1' >/dev/null 2>&1
}

throwaway_postgres() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null; then
    printf '==> installing PostgreSQL from Debian\n' >&2
    $sudo apt-get update
    # Debian's package starts a cluster of its own on 5432 where it can; ours does not need it.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y postgresql postgresql-client
  fi
  pg_throwaway_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pg_throwaway_dir=$(mktemp -d /tmp/subscriptions-pg.XXXXXX)
  # initdb refuses to run as root: the cluster then belongs to the package's postgres user.
  pg_throwaway_as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_throwaway_dir"
    pg_throwaway_as=(runuser -u postgres --)
  fi
  "${pg_throwaway_as[@]}" "$pg_throwaway_bin/initdb" -D "$pg_throwaway_dir/data" -U postgres -A trust -E UTF8 >/dev/null
  "${pg_throwaway_as[@]}" "$pg_throwaway_bin/pg_ctl" -D "$pg_throwaway_dir/data" -l "$pg_throwaway_dir/log" -w \
    -o "-p $port -k $pg_throwaway_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  pg_throwaway_stop() {
    "${pg_throwaway_as[@]}" "$pg_throwaway_bin/pg_ctl" -D "$pg_throwaway_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_throwaway_dir"
  }
  trap pg_throwaway_stop EXIT
  psql "postgres://postgres@127.0.0.1:$port/postgres" -qAtc 'CREATE DATABASE test' >/dev/null
  TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
  printf '==> no PostgreSQL answered; a throwaway cluster serves this run at %s\n' "$TEST_DATABASE_URL" >&2
}

if ! command -v psql >/dev/null || ! postgres_answers "$TEST_DATABASE_URL"; then
  throwaway_postgres
fi
export TEST_DATABASE_URL
