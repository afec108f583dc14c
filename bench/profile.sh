#!/usr/bin/env bash
# Where the host's CPU goes, per request: perf samples (cpu-clock, DWARF call graphs) of the
# host under wrk on standalone Redis, split by bench/attribute.py into the parts of a request
# and scaled to the host's CPU per request measured in the same run (from /proc).
#
#   bash bench/profile.sh      # ENDPOINT=introspect|token DURATION=10s CONNECTIONS=64
#
# perf's own cost is in the numbers: sampling at 499 Hz with DWARF stacks added 13% to the
# host's CPU per request in one pair of runs (91.0 against 80.7 µs), so read the shares.
set -euo pipefail
cd "$(dirname "$0")/.."
ENDPOINT=${ENDPOINT:-introspect} DURATION=${DURATION:-10s} CONNECTIONS=${CONNECTIONS:-64}
PORT=18190

need=()
for tool in wrk redis-server curl perf; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk redis-server curl linux-perf
fi
cargo build --release -q -p tokenginx-host
make -s guests >/dev/null
host=$PWD/target/release/tokenginx-host
hz=$(getconf CLK_TCK)
source bench/host.sh

redis 17200
"$host" compile-guest "$guest" -o "$work/guest.cwasm" >/dev/null
start_host "tokenginx: { mode: standalone, addrs: [127.0.0.1:17200], password: $PASSWORD }" "$work/guest.cwasm"
url="http://127.0.0.1:$PORT/api/v1/oauth"
case $ENDPOINT in
  introspect)
    token=$(curl -s -u "bench:$SECRET" -d grant_type=client_credentials "$url/token" |
      sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    form_script "$work/load.lua" "token=$token" ;;
  token) form_script "$work/load.lua" "grant_type=client_credentials" ;;
  *) echo "ENDPOINT: introspect or token" >&2; exit 2 ;;
esac
# Warm up: instance slots, connections, allocator.
wrk -t2 -c"$CONNECTIONS" -d2s -s "$work/load.lua" "$url/$ENDPOINT" >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$hpid/stat"; }
before=$(ticks)
perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$hpid" -o "$work/perf.data" \
  -- sleep "${DURATION%s}" 2>/dev/null &
perf_pid=$!
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$work/load.lua" "$url/$ENDPOINT" > "$work/wrk.txt"
after=$(ticks)
wait "$perf_pid"
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
us=$(python3 -c "print(($after - $before) * 1e6 / $hz / $requests)")
echo "# $(date -u +%F) $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# $ENDPOINT on standalone Redis, wrk -t2 -c$CONNECTIONS -d$DURATION: $(awk '/Requests\/sec/ {printf "%d", $2}' "$work/wrk.txt") req/s, host CPU $(printf '%.1f' "$us") µs a request"
echo
# Kept for a closer look: perf report -i target/profile.perf.data
cp "$work/perf.data" target/profile.perf.data
perf script -i "$work/perf.data" --no-inline -F comm,tid,ip,sym,dso 2>/dev/null |
  python3 bench/attribute.py --us-per-request "$us"
