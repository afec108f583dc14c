#!/usr/bin/env bash
# What a client registered at runtime (Hydra's client API, kept in the store) costs against
# one the operator configured: token requests and introspections of each, taking turns,
# on the embedded store and on a standalone Redis. A configured client's lookup is in
# process; a runtime one's is a store read, one a request.
#
#   bash bench/runtime_clients.sh   (ROUNDS=3 DURATION=8s CONNECTIONS=32)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-32}
PORT=18097
RUNTIME_SECRET=bench-runtime-secret-0123456789-0123456789

rate() { # script, path -> requests/s (every answer 200, else it fails)
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$1" "http://127.0.0.1:$PORT$2")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $out" >&2; exit 1; fi
  awk '/Requests\/sec/ {printf "%d\n", $2}' <<<"$out"
}
token() { # client id, secret -> an access token
  curl -sf -u "$1:$2" -d grant_type=client_credentials "http://127.0.0.1:$PORT/api/v1/oauth/token" |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/'
}
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

bench_store() { # label, tokenginx section
  start_host "$1" "$guest"
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$((PORT + 1))/admin/clients" \
    -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"bench-runtime\",\"client_secret\":\"$RUNTIME_SECRET\",\"grant_types\":[\"client_credentials\"],\"scope\":\"read\"}"
  local runtime_basic="Basic $(printf 'bench-runtime:%s' "$RUNTIME_SECRET" | base64 -w0)"
  local unlimited_basic="Basic $(printf 'bench-unlimited:%s' "$SECRET" | base64 -w0)"
  form_script "$work/token-configured.lua" "grant_type=client_credentials" "$unlimited_basic"
  form_script "$work/token-runtime.lua" "grant_type=client_credentials" "$runtime_basic"
  # Both introspected by the configured client: the runtime token's client is read.
  form_script "$work/introspect-configured.lua" "token=$(token bench-unlimited "$SECRET")" "$unlimited_basic"
  form_script "$work/introspect-runtime.lua" "token=$(token bench-runtime "$RUNTIME_SECRET")" "$unlimited_basic"
  for request in token introspect; do
    : > "$work/c.txt"; : > "$work/r.txt"
    for _ in $(seq "$ROUNDS"); do
      rate "$work/$request-configured.lua" "/api/v1/oauth/$request" >> "$work/c.txt"
      rate "$work/$request-runtime.lua" "/api/v1/oauth/$request" >> "$work/r.txt"
    done
    printf '%-10s %-10s configured %6d req/s, runtime %6d req/s (medians of %s)\n' "$2" "$request" \
      "$(median < "$work/c.txt")" "$(median < "$work/r.txt")" "$ROUNDS"
  done
  kill "$hpid"; wait "$hpid" 2>/dev/null || true
}

echo "# $(date -u +%F) $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# wrk -t2 -c$CONNECTIONS -d$DURATION, configured and runtime clients taking turns"
bench_store "tokenginx: { mode: memory }" memory
redis 17090
bench_store "tokenginx: { mode: standalone, addrs: [127.0.0.1:17090], password: $PASSWORD }" redis
