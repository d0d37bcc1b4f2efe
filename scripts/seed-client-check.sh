#!/usr/bin/env bash
# Compatibility check: the seed's Python client calls (httpx + PyJWT from PyPI) against a real
# `tessera serve` started on its first-start defaults (generated keys and admin token).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/seed-client-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'pyjwt[crypto]>=2.8' 'httpx>=0.27'
fi

cargo build --quiet -p tessera-cli
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TESSERA_DATA_DIR=$data LISTEN_ADDR=127.0.0.1:$port RUST_LOG=warn \
  env -u ADMIN_TOKEN -u JWT_PRIVATE_KEY_PATH -u JWT_PUBLIC_KEY_PATH -u DATABASE_URL \
  target/debug/tessera serve >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
"$venv/bin/python" scripts/seed_client_check.py "http://127.0.0.1:$port" "$(cat "$data/admin-token")" "$data/keys/public.pem"
