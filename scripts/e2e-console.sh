#!/usr/bin/env bash
# Browser test of the admin console (/console).
#
# Installs what it needs, idempotently: Debian's chromium (apt) when /usr/bin/chromium is
# missing, and playwright-core (npm, pinned; no browser download). Builds `tessera`, starts it on
# a free loopback port with a temporary data directory and a known ADMIN_TOKEN, and runs
# e2e/console/console.test.mjs against it. Screenshots go to artifacts/console/ (gitignored).
# The last line is "N passed, M failed"; the exit status is non-zero on any failure. The server
# is stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
CHROMIUM=/usr/bin/chromium
ARTIFACTS_DIR="$ROOT/artifacts/console"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "$CHROMIUM" ]; then
    echo "== installing chromium (Debian package)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM" --version 2>/dev/null || true

if ! command -v node >/dev/null; then
    echo "node (>= 20) is required: install Node.js" >&2
    exit 1
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
    echo "node >= 20 is required (found $(node --version))" >&2
    exit 1
fi

echo "== npm dependencies (playwright-core, pinned; no browser download)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(
    cd e2e/console
    want="$(node -p 'require("./package.json").dependencies["playwright-core"]')"
    have="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')"
    if [ "$have" != "$want" ]; then
        if [ -f package-lock.json ]; then
            npm ci --no-audit --no-fund --loglevel=error
        else
            npm install --no-audit --no-fund --loglevel=error
        fi
    else
        echo "playwright-core $have already installed"
    fi
)

echo "== building tessera"
cargo build --quiet -p tessera-cli --bin tessera

WORK="$(mktemp -d -t tessera-e2e-console-XXXXXX)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ADMIN_TOKEN="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ADMIN_TOKEN

echo "== starting tessera on a free loopback port"
# Port 0: the kernel picks a free port; the server logs the address it bound (JSON logs).
LISTEN_ADDR=127.0.0.1:0 TESSERA_DATA_DIR="$WORK/data" LOG_FORMAT=json \
    RUST_LOG="info,sqlx=warn" \
    "$ROOT/target/debug/tessera" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

ADDR=""
for _ in $(seq 1 150); do
    ADDR="$(grep -o '"addr":"127\.0\.0\.1:[0-9]*"' "$WORK/server.log" | head -n1 | cut -d'"' -f4 || true)"
    if [ -n "$ADDR" ]; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "tessera exited before listening:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
if [ -z "$ADDR" ]; then
    echo "tessera did not start listening in 30 s:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi
BASE_URL="http://$ADDR"
for _ in $(seq 1 50); do
    curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "server at $BASE_URL"

echo "== browser test"
rm -rf "$ARTIFACTS_DIR"
mkdir -p "$ARTIFACTS_DIR"
status=0
BASE_URL="$BASE_URL" ARTIFACTS_DIR="$ARTIFACTS_DIR" CHROMIUM="$CHROMIUM" \
    node e2e/console/console.test.mjs | tee "$WORK/test.out" || status=$?
if [ "$status" -ne 0 ]; then
    echo "== server log (last 40 lines)"
    tail -n 40 "$WORK/server.log"
    # The count stays the last line.
    tail -n 1 "$WORK/test.out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' || echo "0 passed, 1 failed"
fi
exit "$status"
