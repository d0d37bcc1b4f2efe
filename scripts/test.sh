#!/usr/bin/env bash
# The whole test suite (README: "Run all tests"), on both database backends:
#   1. every crate, every target, on SQLite;
#   2. the server and CLI tests again on PostgreSQL (each test server in its own fresh
#      database, dropped afterwards), when PostgreSQL answers at TESSERA_TEST_POSTGRES_URL
#      (default postgres://postgres@127.0.0.1:5432/test).
# Under CI (CI=true) an unreachable PostgreSQL is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

echo "== tests on SQLite"
TESSERA_TEST_DATABASE=sqlite cargo test --workspace --all-targets

pg_reachable() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -d "$PG_URL" -t 5
    elif command -v psql >/dev/null 2>&1; then
        psql "$PG_URL" -Atqc 'SELECT 1' >/dev/null 2>&1
    else
        return 1
    fi
}

if pg_reachable; then
    echo "== tests on PostgreSQL"
    TESSERA_TEST_DATABASE=postgres TESSERA_TEST_POSTGRES_URL="$PG_URL" \
        cargo test -p tessera-server -p tessera-cli --all-targets
elif [ "${CI:-}" = "true" ]; then
    echo "error: PostgreSQL is not reachable at ${PG_URL##*@} and CI=true: the PostgreSQL tests must run in CI" >&2
    exit 1
else
    echo "== PostgreSQL not reachable: the PostgreSQL pass was SKIPPED (set TESSERA_TEST_POSTGRES_URL, or start PostgreSQL on 127.0.0.1:5432)"
fi
