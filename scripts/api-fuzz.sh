#!/usr/bin/env bash
# Property-based robustness check: schemathesis (from PyPI) reads the served OpenAPI spec and
# sends generated and malformed requests to every endpoint. The bar: zero 5xx responses.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi

cargo build --quiet -p tessera-cli
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
ADMIN_TOKEN=$token TESSERA_DATA_DIR=$data LISTEN_ADDR=127.0.0.1:$port RATE_LIMIT_BURST=0 RUST_LOG=warn \
  target/debug/tessera serve >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error \
  --header "Authorization: Bearer $token" \
  --max-examples "${FUZZ_EXAMPLES:-40}" \
  --seed 42 \
  --no-color
echo "schemathesis: no 5xx from any endpoint"
