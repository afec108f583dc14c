#!/usr/bin/env bash
# Introspection throughput against each store: embedded, standalone Redis, Redis Cluster.
# Everything runs on loopback and stops by itself; each load run lasts $DURATION.
#
#   bash bench/introspect.sh            (after `make guests`; needs wrk, redis-server)
#
# Prints one line per store: requests/s, p50, p99 (wrk -t2 -c$CONNECTIONS).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
SECRET=bench-secret-0123456789
PASSWORD=bench-redis-password
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null && command -v redis-server >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk redis-server; }
cargo build --release -q -p tokenginx-host
host=target/release/tokenginx-host
guest=$PWD/target/wasm32-wasip2/release/tokenginx_guest.wasm
[ -f "$guest" ] || { echo "build the guest first: make guests" >&2; exit 1; }

redis() { # port, extra args...
  local port=$1; shift
  mkdir -p "$work/$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --requirepass "$PASSWORD" \
    --masterauth "$PASSWORD" --dir "$work/$port" --logfile "" "$@" >/dev/null &
  pids+=($!)
  until redis-cli -p "$port" -a "$PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
}

bench() { # label, tokenginx section
  local label=$1 store=$2 port=18090
  cat > "$work/config.yaml" <<YAML
$store
server: { port: $port }
guest: { path: $guest }
oauth:
  issuer: http://127.0.0.1:$port
  clients:
    - { client_id: bench, client_secret: $SECRET, scopes: [read], default_scopes: [read] }
log: { level: warn }
YAML
  "$host" serve --config "$work/config.yaml" & local hpid=$!
  until curl -s "http://127.0.0.1:$port/health/ready" | grep -q ready; do sleep 0.05; done
  local token
  token=$(curl -s -u "bench:$SECRET" -d grant_type=client_credentials "http://127.0.0.1:$port/api/v1/oauth/token" |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  cat > "$work/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf 'bench:%s' "$SECRET" | base64)"
LUA
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/introspect.lua" \
    "http://127.0.0.1:$port/api/v1/oauth/introspect" > "$work/wrk.txt"
  printf '%-12s %10s req/s   p50 %8s   p99 %8s   non-2xx: %s\n' "$label" \
    "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")" \
    "$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt" | grep . || echo 0)"
  kill "$hpid"; wait "$hpid" 2>/dev/null || true
}

echo "introspection, wrk -t2 -c$CONNECTIONS -d$DURATION, $(nproc) cores"
bench memory "tokenginx: { mode: memory }"

redis 17000
bench standalone "tokenginx: { mode: standalone, addrs: [127.0.0.1:17000], password: $PASSWORD }"

ports=(17101 17102 17103 17104 17105 17106)
for p in "${ports[@]}"; do
  redis "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf"
done
redis-cli -a "$PASSWORD" --no-auth-warning --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") \
  --cluster-replicas 1 --cluster-yes >/dev/null
until redis-cli -p 17101 -a "$PASSWORD" --no-auth-warning cluster info | grep -q cluster_state:ok; do sleep 0.1; done
bench cluster "tokenginx: { mode: cluster, addrs: [127.0.0.1:17101, 127.0.0.1:17102, 127.0.0.1:17103], password: $PASSWORD }"
