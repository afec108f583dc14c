#!/usr/bin/env bash
# An A/B of two host builds on one request, in one run: the builds take turns, ROUNDS
# times, each serving the same guest on the embedded store under the same wrk load; then
# the median of each, in requests/s and in the host's CPU per request (utime + stime from
# /proc, microseconds). For a change on the request path: build the other commit's host into
# a file of its own and name both.
#
#   bash bench/ab.sh A_HOST_BIN B_HOST_BIN [GUEST [B_GUEST]]
#     (ROUNDS=5 DURATION=10s CONNECTIONS=16 REQUEST=introspect|token
#      A_GUEST_EXTRA= B_GUEST_EXTRA=)
#
# The config has no key newer than the oldest host still compared, and the guest must load
# on both (a guest of an older contract does); with B_GUEST, B serves that one instead
# (a change of contract: each host with the guest built for it). The request is an
# introspection of a token issued at start, or with REQUEST=token a client_credentials
# token request (of a client without a rate limit, so that no run is refused).
# A_GUEST_EXTRA and B_GUEST_EXTRA add to a side's guest section (", reuse: {requests: 1000,
# max_age: 1m}"), so one host can be compared with itself: instance reuse on and off.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2
source bench/host.sh
guest=${3:-$guest}
guest_b=${4:-$guest}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
REQUEST=${REQUEST:-introspect}
PORT=18095
command -v wrk >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
}
config() { # guest, a or b, guest section extra -> the config file serving it
cat > "$work/ab-$2.yaml" <<YAML
tokenginx: { mode: memory }
server: { port: $PORT }
guest: { path: $1$3 }
oauth:
  issuer: http://127.0.0.1:$PORT
  clients:
    - client_id: bench
      client_secret: $SECRET
      scopes: [read]
      default_scopes: [read]
      rate_limit: unlimited
log: { level: warn }
YAML
}
config "$guest" a "${A_GUEST_EXTRA:-}"; config "$guest_b" b "${B_GUEST_EXTRA:-}"

run() { # host binary, a or b -> requests/s
  "$1" serve --config "$work/ab-$2.yaml" > /dev/null &
  local pid=$!
  until curl -s "http://127.0.0.1:$PORT/health/ready" | grep -q ready; do
    kill -0 "$pid" 2>/dev/null || { echo "$1 did not start" >&2; exit 1; }
    sleep 0.05
  done
  local token
  token=$(curl -s -u "bench:$SECRET" -d grant_type=client_credentials \
    "http://127.0.0.1:$PORT/api/v1/oauth/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  case $REQUEST in
    introspect) form_script "$work/request.lua" "token=$token" ;;
    token) form_script "$work/request.lua" "grant_type=client_credentials" ;;
    *) echo "REQUEST must be introspect or token" >&2; exit 2 ;;
  esac
  local before after
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$work/request.lua" \
    "http://127.0.0.1:$PORT/api/v1/oauth/$REQUEST" > "$work/wrk.txt"
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  # requests/s, and the host's CPU (utime + stime) per request in microseconds
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1} /Requests\/sec/ {r = $2}
    END {printf "%d %.1f\n", r, ticks / hz * 1e6 / n}' "$work/wrk.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo "# $(date -u +%F) $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# $REQUEST, embedded store, wrk -t2 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds A then B"
: > "$work/a.txt"; : > "$work/b.txt"; : > "$work/a-cpu.txt"; : > "$work/b-cpu.txt"
for round in $(seq "$ROUNDS"); do
  out_a=$(run "$a" a); out_b=$(run "$b" b)
  read -r ra ca <<< "$out_a"; read -r rb cb <<< "$out_b"
  echo "round $round: A $ra req/s $ca cpu-us/req, B $rb req/s $cb cpu-us/req"
  echo "$ra" >> "$work/a.txt"; echo "$rb" >> "$work/b.txt"
  echo "$ca" >> "$work/a-cpu.txt"; echo "$cb" >> "$work/b-cpu.txt"
done
ma=$(median < "$work/a.txt") mb=$(median < "$work/b.txt")
echo "median: A $ma req/s $(median < "$work/a-cpu.txt") cpu-us/req ($a, $guest${A_GUEST_EXTRA:-})"
echo "        B $mb req/s $(median < "$work/b-cpu.txt") cpu-us/req ($b, $guest_b${B_GUEST_EXTRA:-})"
echo "B / A: $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b / a}') in requests/s"
