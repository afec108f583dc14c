#!/usr/bin/env bash
# Guest swaps under load: wrk on introspection at $CONNECTIONS connections while the guest
# file is replaced and the host sent SIGHUP every $EVERY seconds. Prints what wrk saw
# (non-2xx answers and socket errors count as lost requests) and how many reloads the host
# reports. Two builds of the default guest alternate (the second with a custom section
# appended), so every reload installs a different guest.
#
#   bash bench/swap.sh        (CONNECTIONS=64 DURATION=10 EVERY=0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
EVERY=${EVERY:-0.5}
PORT=18092

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p tokenginx-host
make -s guests >/dev/null
cp "$guest" "$work/a.wasm"
# A custom section (id 0, size, name length, name, payload) makes a second, equivalent guest.
{ cat "$guest"; printf '\x00\x0c\x0bswap-test-b'; } > "$work/b.wasm"
cp "$work/a.wasm" "$work/guest.wasm"
start_host "tokenginx: { mode: memory }" "$work/guest.wasm"
token=$(curl -s -u "bench:$SECRET" -d grant_type=client_credentials "http://127.0.0.1:$PORT/api/v1/oauth/token" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/')
form_script "$work/introspect.lua" "token=$token"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/introspect.lua" \
  "http://127.0.0.1:$PORT/api/v1/oauth/introspect" > "$work/wrk.txt" &
wrk_pid=$!
swaps=0
next=b
sleep 1
while kill -0 "$wrk_pid" 2>/dev/null; do
  cp "$work/$next.wasm" "$work/guest.new" && mv "$work/guest.new" "$work/guest.wasm"
  kill -HUP "$hpid"
  swaps=$((swaps + 1))
  next=$([ "$next" = a ] && echo b || echo a)
  sleep "$EVERY"
done
wait "$wrk_pid"
reloads=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tokenginx_guest_reloads_total\{result="ok"\}/ {print $2}')
refused=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tokenginx_guest_reloads_total\{result="refused"\}/ {print $2}')
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt"); non2xx=${non2xx:-0}
errors=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$work/wrk.txt"); errors=${errors:-0}
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s introspection; SIGHUP every ${EVERY}s"
echo "swaps signalled: $swaps; reloads ok: $reloads, refused: $refused"
echo "requests: $requests; req/s: $(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt"); p99: $(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
echo "lost (non-2xx + socket errors): $((non2xx + errors))"
