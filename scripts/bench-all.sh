#!/usr/bin/env bash
# Measure Tessera on this machine (issue 8): release build, machine facts, OpenSSL's RSA-2048
# signing rate (the physical floor of an activation), then every `tessera bench` scenario
# against a fresh server started by the tool, each as JSON in target/bench/<scenario>.json,
# and a summary table.
#
#   scripts/bench-all.sh                                    # SQLite, 10 s, 32 connections
#   DURATION=30s CONNECTIONS=64 scripts/bench-all.sh
#   SCENARIOS="activate refresh" scripts/bench-all.sh
#   scripts/bench-all.sh --database-url postgres://…        # extra flags go to every run
#
# The load tool runs on the same machine as the server: both share the CPU, as the targets
# in issue 8 assume. Other heavy work on the machine (a compile) skews every figure; the
# load average is printed first so a noisy run is visible.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
SCENARIOS="${SCENARIOS:-activate refresh token usage}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET_DIR/bench"
BIN="$TARGET_DIR/release/tessera"
mkdir -p "$OUT"

if ! command -v jq >/dev/null 2>&1; then
    echo "bench-all.sh needs jq for the summary (apt-get install -y jq)" >&2
    exit 1
fi

echo "== build (release)"
cargo build --release -p tessera-cli

echo
echo "== machine"
echo "nproc: $(nproc)"
lscpu | head -n 20
free -m
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# A durable commit waits for the disk: synchronous 4 KiB writes per second bound what one
# writer can commit without batching. Probed where the benchmark's databases live ($TMPDIR).
probe="$(mktemp "${TMPDIR:-/tmp}/tessera-fsync-probe.XXXXXX")"
dd_line="$(dd if=/dev/zero of="$probe" bs=4k count=1000 oflag=dsync 2>&1 | tail -n 1)"
rm -f "$probe"
echo "synchronous 4 KiB writes (dd oflag=dsync): $(echo "$dd_line" | awk '{ printf "%.0f/s", 1000 / $(NF-3) }') ($dd_line)"

echo
echo "== openssl speed -seconds 3 -multi 2 rsa2048"
openssl version
openssl speed -seconds 3 -multi 2 rsa2048 2>/dev/null | tee "$OUT/openssl-speed.txt" | grep -E '^(rsa| +sign)' || true
# The result line: "rsa 2048 bits <sign s> <verify s> <sign/s> <verify/s>".
OPENSSL_SIGN_PER_SEC="$(awk '$1 == "rsa" && $2 == "2048" { print $6; exit }' "$OUT/openssl-speed.txt")"
OPENSSL_VERIFY_PER_SEC="$(awk '$1 == "rsa" && $2 == "2048" { print $7; exit }' "$OUT/openssl-speed.txt")"
echo "openssl rsa2048 (2 processes): ${OPENSSL_SIGN_PER_SEC:-?} sign/s, ${OPENSSL_VERIFY_PER_SEC:-?} verify/s"
jq -n --arg sign "${OPENSSL_SIGN_PER_SEC:-0}" --arg verify "${OPENSSL_VERIFY_PER_SEC:-0}" \
    '{rsa2048_multi2_sign_per_sec: ($sign | tonumber), rsa2048_multi2_verify_per_sec: ($verify | tonumber)}' \
    >"$OUT/openssl-speed.json"

failed=()
for scenario in $SCENARIOS; do
    echo
    echo "== tessera bench --scenario $scenario --duration $DURATION --connections $CONNECTIONS $*"
    if "$BIN" bench --scenario "$scenario" --duration "$DURATION" --connections "$CONNECTIONS" \
        --output json "$@" >"$OUT/$scenario.json.tmp"; then
        mv "$OUT/$scenario.json.tmp" "$OUT/$scenario.json"
        jq -c '{requests_per_sec, latency_ms, errors, peak_rss_mb}' "$OUT/$scenario.json"
    else
        rm -f "$OUT/$scenario.json.tmp"
        failed+=("$scenario")
    fi
done

echo
echo "== summary ($DURATION, $CONNECTIONS connections; JSON in $OUT/)"
printf '%-12s %10s %9s %9s %9s %9s %8s %9s\n' scenario 'req/s' 'p50 ms' 'p90 ms' 'p99 ms' 'max ms' errors 'RSS MB'
for scenario in $SCENARIOS; do
    [ -f "$OUT/$scenario.json" ] || continue
    jq -r '[.scenario, .requests_per_sec, .latency_ms.p50, .latency_ms.p90, .latency_ms.p99,
            .latency_ms.max, .failed, (.peak_rss_mb // "-")] | @tsv' "$OUT/$scenario.json" |
        awk -F'\t' '{ printf "%-12s %10.1f %9.2f %9.2f %9.2f %9.2f %8d %9s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
done
echo "openssl speed rsa2048, 2 processes: ${OPENSSL_SIGN_PER_SEC:-?} sign/s"
for scenario in activate refresh; do
    if [ -f "$OUT/$scenario.json" ] && [ -n "${OPENSSL_SIGN_PER_SEC:-}" ]; then
        jq -r --arg s "$OPENSSL_SIGN_PER_SEC" --arg name "$scenario" \
            '"\($name): \(.requests_per_sec) req/s = \((.requests_per_sec / ($s | tonumber) * 1000 | round) / 10)% of openssl RS256 sign/s (target ≥ 55%)"' \
            "$OUT/$scenario.json"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed scenarios: ${failed[*]}" >&2
    exit 1
fi
