#!/usr/bin/env bash
# Bytes one access token costs each store: the host's resident memory (embedded store) and
# Redis' used_memory (standalone) before and after issuing tokens under wrk, divided by the
# tokens the host counted in tokenginx_token_created_total.
#
#   bash bench/sizing.sh                 (DURATION=10s)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
DURATION=${DURATION:-10s}
PORT=18091

command -v wrk >/dev/null && command -v redis-server >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk redis-server curl
}
cargo build --release -q -p tokenginx-host
make -s guests >/dev/null
form_script "$work/token.lua" "grant_type=client_credentials"

created() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tokenginx_token_created_total/ {print $2}'; }
rss_bytes() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$hpid/status") * 1024 )); }
issue() { wrk -t2 -c16 -d"$DURATION" -s "$work/token.lua" "http://127.0.0.1:$PORT/api/v1/oauth/token" >/dev/null; }

start_host "tokenginx: { mode: memory }" "$guest"
issue >/dev/null # warm: the first tokens pay for pools and arenas that stay
before=$(rss_bytes); count_before=$(created)
issue
after=$(rss_bytes); count_after=$(created)
tokens=$((count_after - count_before))
echo "embedded store: $(( (after - before) / tokens )) bytes a token (host RSS $((before >> 20)) -> $((after >> 20)) MiB over $tokens tokens)"
kill "$hpid"; wait "$hpid" 2>/dev/null || true

redis-server --bind 127.0.0.1 --port 17020 --save "" --appendonly no --requirepass "$PASSWORD" \
  --dir "$work" --logfile "" >/dev/null &
pids+=($!)
cli() { redis-cli -p 17020 -a "$PASSWORD" --no-auth-warning "$@"; }
until cli ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
start_host "tokenginx: { mode: standalone, addrs: [127.0.0.1:17020], password: $PASSWORD }" "$guest"
used() { cli info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
before=$(used); count_before=$(created)
issue
after=$(used); count_after=$(created)
tokens=$((count_after - count_before))
key=$(cli randomkey)
echo "redis $(cli info server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r'): $(( (after - before) / tokens )) bytes a token (used_memory over $tokens tokens; MEMORY USAGE of one key: $(cli memory usage "$key"))"
