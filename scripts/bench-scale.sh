#!/usr/bin/env bash
# Scale run (issue 8): preload 1,000,000 license keys, 1,000,000 activations and their
# 1,000,000 audit rows straight into a SQLite database (the HTTP API would take hours), then
# measure activation and admin-list latency on it, beside activation on an empty database.
#
#   scripts/bench-scale.sh
#   KEYS=100000 ACTIVATIONS=100000 scripts/bench-scale.sh   # a quicker, smaller run
#   MAX_OFFSET=100000 scripts/bench-scale.sh                # deeper admin pages
#   REUSE=1 scripts/bench-scale.sh      # keep the preloaded database of the previous run
#                                       # (its earlier benchmark rows stay in it)
#   DB=postgres scripts/bench-scale.sh  # the same on PostgreSQL: preloads the database of
#                                       # SCALE_DATABASE_URL (default: tessera_scale on the
#                                       # local server, dropped and re-created)
#
# Steps: `tessera serve` once on a new data directory (so its migrations create the schema),
# stop it, preload with one recursive-CTE INSERT … SELECT per table, then `tessera bench
# --data-dir` starts the server on that directory itself (so its peak RSS is measured too).
# Results: target/bench/scale-*.json (scale-pg-*.json for PostgreSQL). The preloads follow the
# schemas in crates/tessera-server/migrations/: update them when a migration adds a required
# column.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS="${KEYS:-1000000}"
ACTIVATIONS="${ACTIVATIONS:-1000000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
MAX_OFFSET="${MAX_OFFSET:-10000}"
# admin-list runs twice: one operator paging (1 connection: the latency of one page) and
# under load (CONNECTIONS).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET_DIR/bench"
BIN="$TARGET_DIR/release/tessera"
DATA="${SCALE_DATA_DIR:-$OUT/scale-data}"
DB="${DB:-sqlite}"
PG_URL="${SCALE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tessera_scale}"
mkdir -p "$OUT"
case "$DB" in
    sqlite) TOOLS="sqlite3 jq curl"; PREFIX=scale; DB_ARGS=() ;;
    postgres) TOOLS="psql jq curl"; PREFIX=scale-pg; DB_ARGS=(--database-url "$PG_URL") ;;
    *) echo "DB must be sqlite or postgres, not $DB" >&2; exit 2 ;;
esac

for tool in $TOOLS; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "== installing $tool"
        apt-get install -y "$tool" >/dev/null
    fi
done

echo "== build (release)"
cargo build --release -p tessera-cli

# Starts `tessera serve` once so its migrations create the schema, then stops it.
migrate() {
    echo "== schema: start tessera serve once on $DATA ($DB)"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    local database_url
    database_url="$([ "$DB" = postgres ] && echo "$PG_URL" || echo "sqlite://$DATA/tessera.db")"
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    ADMIN_TOKEN="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    TESSERA_DATA_DIR="$DATA" DATABASE_URL="$database_url" LISTEN_ADDR="127.0.0.1:$PORT" \
        ADMIN_TOKEN="$ADMIN_TOKEN" "$BIN" serve >"$OUT/scale-migrate.log" 2>&1 &
    SERVER_PID=$!
    trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
    for _ in $(seq 1 600); do
        if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
            break
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server exited; its log:" >&2
            cat "$OUT/scale-migrate.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    trap - EXIT
}

# Rows are spread one second apart from 2026-10-01 (epoch 1790812800), in the fixed-width
# RFC 3339 form the server writes (2026-10-01T00:00:00.000000Z), so ordering by time means
# something. Activation i belongs to key ((i - 1) % KEYS) + 1.
preload_sqlite() {
    sqlite3 "$DATA/tessera.db" >/dev/null <<SQL
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = OFF;
    PRAGMA cache_size = -262144;
    BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $KEYS)
    INSERT INTO license_keys (id, key_display, product, tier, seats, valid_until, revoked,
                              customer_email, source, trial, notes, created_at, lease_ttl_secs)
    SELECT printf('00000000-5ca1-4000-8000-%012d', i),
           printf('CFG-SCAL-%s-%s-%s', substr(d, 1, 4), substr(d, 5, 4), substr(d, 9, 4)),
           'peregrine', 'paid', 5, NULL, 0,
           printf('customer%d@example.com', i), 'scale', 0, NULL,
           strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1790812800 + i, 'unixepoch'), NULL
    FROM (SELECT i, printf('%012d', i) AS d FROM n);

    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ACTIVATIONS)
    INSERT INTO activations (id, key_id, machine_id, app_version, platform, activated_at,
                             last_refresh, deactivated_at)
    SELECT printf('00000000-ac71-4000-8000-%012d', i),
           printf('00000000-5ca1-4000-8000-%012d', ((i - 1) % $KEYS) + 1),
           printf('scale-machine-%d', i), '1.0.0', 'linux-x86_64', t, t, NULL
    FROM (SELECT i, strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1790812800 + i + 60, 'unixepoch') AS t FROM n);

    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ACTIVATIONS)
    INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at)
    SELECT printf('00000000-a0d1-4000-8000-%012d', i), 'activation',
           printf('00000000-ac71-4000-8000-%012d', i), 'activated',
           printf('machine:scale-machine-%d', i),
           printf('{"machine_id":"scale-machine-%d"}', i),
           strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1790812800 + i + 60, 'unixepoch')
    FROM n;
    COMMIT;
    PRAGMA wal_checkpoint(TRUNCATE);
    ANALYZE;
SQL
}

# The same rows. Triggers are off during the load (the seat-count trigger would update a key
# per activation); the seat counts are set in one pass afterwards, as migration 0003 does.
preload_postgres() {
    psql -q -v ON_ERROR_STOP=1 "$PG_URL" >/dev/null <<SQL
    SET session_replication_role = replica;
    BEGIN;
    INSERT INTO license_keys (id, key_display, product, tier, seats, valid_until, revoked,
                              customer_email, source, trial, notes, created_at, lease_ttl_secs)
    SELECT format('00000000-5ca1-4000-8000-%s', lpad(i::text, 12, '0')),
           format('CFG-SCAL-%s-%s-%s', substr(d, 1, 4), substr(d, 5, 4), substr(d, 9, 4)),
           'peregrine', 'paid', 5, NULL, FALSE,
           format('customer%s@example.com', i), 'scale', FALSE, NULL,
           to_char(to_timestamp(1790812800 + i) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000000Z"'), NULL
    FROM (SELECT i, lpad(i::text, 12, '0') AS d FROM generate_series(1, $KEYS) AS i) n;

    INSERT INTO activations (id, key_id, machine_id, app_version, platform, activated_at,
                             last_refresh, deactivated_at)
    SELECT format('00000000-ac71-4000-8000-%s', lpad(i::text, 12, '0')),
           format('00000000-5ca1-4000-8000-%s', lpad((((i - 1) % $KEYS) + 1)::text, 12, '0')),
           format('scale-machine-%s', i), '1.0.0', 'linux-x86_64', t, t, NULL
    FROM (SELECT i, to_char(to_timestamp(1790812800 + i + 60) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD"T"HH24:MI:SS".000000Z"') AS t
          FROM generate_series(1, $ACTIVATIONS) AS i) n;

    INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at)
    SELECT format('00000000-a0d1-4000-8000-%s', lpad(i::text, 12, '0')), 'activation',
           format('00000000-ac71-4000-8000-%s', lpad(i::text, 12, '0')), 'activated',
           format('machine:scale-machine-%s', i),
           format('{"machine_id":"scale-machine-%s"}', i),
           to_char(to_timestamp(1790812800 + i + 60) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000000Z"')
    FROM generate_series(1, $ACTIVATIONS) AS i;

    UPDATE license_keys k SET active_seats = s.n
    FROM (SELECT key_id, COUNT(*) AS n FROM activations WHERE deactivated_at IS NULL GROUP BY key_id) s
    WHERE s.key_id = k.id;
    COMMIT;
    SET session_replication_role = DEFAULT;
    VACUUM ANALYZE;
SQL
}

counts() {
    local sql='SELECT (SELECT COUNT(*) FROM license_keys) || '"'"' keys, '"'"' || (SELECT COUNT(*) FROM activations) || '"'"' activations, '"'"' || (SELECT COUNT(*) FROM audit_log) || '"'"' audit rows'"'"''
    if [ "$DB" = postgres ]; then
        echo "$(psql -tA "$PG_URL" -c "$sql"), $(psql -tA "$PG_URL" -c 'SELECT pg_size_pretty(pg_database_size(current_database()))')"
    else
        echo "$(sqlite3 "$DATA/tessera.db" "$sql"), $(du -h "$DATA/tessera.db" | cut -f1)"
    fi
}

preloaded() {
    if [ "$DB" = postgres ]; then
        [ "$(psql -tA "$PG_URL" -c 'SELECT COUNT(*) > 0 FROM activations' 2>/dev/null)" = t ]
    else
        [ -f "$DATA/tessera.db" ]
    fi
}

if [ "${REUSE:-0}" = "1" ] && preloaded; then
    echo "== reusing the preloaded $DB database"
else
    if [ "$DB" = postgres ]; then
        admin_url="${PG_URL%/*}/postgres"
        name="${PG_URL##*/}"
        psql -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\""
    fi
    migrate
    echo "== preload: $KEYS keys, $ACTIVATIONS activations, $ACTIVATIONS audit rows ($DB)"
    start=$(date +%s.%N)
    "preload_$DB"
    # Write the preload back now, not during the first benchmark (1.3 GB of dirty pages
    # stalled an activation run for up to 0.8 s).
    sync
    end=$(date +%s.%N)
    echo "preloaded in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s: $(counts)"
fi

run() {
    local name="$1" connections="$2"
    shift 2
    echo
    echo "== $name: tessera bench --connections $connections $*"
    "$BIN" bench --duration "$DURATION" --connections "$connections" --output json "$@" \
        >"$OUT/$name.json"
    jq -c '{requests_per_sec, latency_ms, errors, endpoints, peak_rss_mb}' "$OUT/$name.json"
}

EMPTY_ARGS=()
if [ "$DB" = postgres ]; then
    # The empty baseline gets an empty database of its own.
    empty_url="${PG_URL}_empty"
    psql -q "${PG_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS \"${empty_url##*/}\"" \
        -c "CREATE DATABASE \"${empty_url##*/}\""
    EMPTY_ARGS=(--database-url "$empty_url")
fi
run "$PREFIX-activate-empty" "$CONNECTIONS" --scenario activate "${EMPTY_ARGS[@]}"
run "$PREFIX-activate" "$CONNECTIONS" --scenario activate --data-dir "$DATA" "${DB_ARGS[@]}"
run "$PREFIX-admin-list-1" 1 --scenario admin-list --data-dir "$DATA" "${DB_ARGS[@]}" \
    --max-offset "$MAX_OFFSET"
run "$PREFIX-admin-list" "$CONNECTIONS" --scenario admin-list --data-dir "$DATA" "${DB_ARGS[@]}" \
    --max-offset "$MAX_OFFSET"

echo
echo "== summary ($DB: $KEYS keys, $ACTIVATIONS activations; $DURATION, $CONNECTIONS connections)"
printf '%-34s %5s %10s %9s %9s %9s %9s\n' run conns 'req/s' 'p50 ms' 'p99 ms' 'max ms' 'RSS MB'
for name in "$PREFIX-activate-empty" "$PREFIX-activate" "$PREFIX-admin-list-1" "$PREFIX-admin-list"; do
    jq -r --arg name "$name" '[$name, .connections, .requests_per_sec, .latency_ms.p50, .latency_ms.p99,
            .latency_ms.max, (.peak_rss_mb // "-")] | @tsv' "$OUT/$name.json" |
        awk -F'\t' '{ printf "%-34s %5d %10.1f %9.2f %9.2f %9.2f %9s\n", $1, $2, $3, $4, $5, $6, $7 }'
    jq -r '(.endpoints // [])[] | [("  " + .name), .requests_per_sec, .latency_ms.p50, .latency_ms.p99,
            .latency_ms.max] | @tsv' "$OUT/$name.json" |
        awk -F'\t' '{ printf "%-34s %5s %10.1f %9.2f %9.2f %9.2f\n", $1, "", $2, $3, $4, $5 }'
done
jq -rn --slurpfile empty "$OUT/$PREFIX-activate-empty.json" --slurpfile full "$OUT/$PREFIX-activate.json" \
    '"activation p99 at scale / empty: \(($full[0].latency_ms.p99 / $empty[0].latency_ms.p99 * 100 | round) / 100)× (target ≤ 2×)"'
