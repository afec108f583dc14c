#!/usr/bin/env bash
# The benchmark: a static-response ceiling (nginx) and this service's token issuance,
# introspection and revocation on the embedded store, standalone Redis and a Redis
# Cluster, at 16 and 64 connections, all on loopback; then start-up to ready.
#
#   bash bench/run.sh                    (DURATION=10s CONNECTIONS="16 64" STORES=...)
#
# STORES may also name standalone-wait: a standalone Redis with one replica and
# tokenginx.wait_replicas: 1, so every change (issuance, revocation) waits for the replica.
#
# "token" is charged to the client's rate limit (a budget no run reaches); "token, no limit"
# is the same for a client with `rate_limit: unlimited`, and "token, JWT ES256" (RS256,
# EdDSA) the same again for a client whose access tokens are JWTs the host signs. "token,
# DPoP" is "no limit" with a DPoP proof (RFC 9449, ES256) per request, each proof fresh
# (made just before the run by guest/examples/bench_jwts.rs): its verification in the
# guest, and the store insert that takes its jti once. "token, private_key_jwt" is a client
# like "no limit" authenticating with an ES256 assertion (RFC 7523) instead of a secret,
# each fresh too. "refresh" rotates refresh tokens:
# each connection trades the refresh token its last answer brought for the next pair, over
# grants started beforehand through the authorization code flow (bench/grants.py).
#
# "authorize" is an anonymous GET of the authorization endpoint: the flow sealed into the
# login challenge and the browser cookie, nothing stored (a 302). "login request" is the
# login app's GET of that challenge on the admin API (opened, and one store read for its
# answered marker); "login accept" its PUT on fresh challenges collected beforehand (opened,
# a marker inserted, the verifier's flow stored), cycling back to answered ones (410) if the
# run outlasts them.
#
# On standalone Redis each run also prints the Redis commands it executed per request, and
# which (INFO commandstats: the commands a script runs count too).
#
# For each run it prints requests/s, p50, p99 (wrk -t2 --latency), the CPU the server
# process used per request (utime + stime from /proc, in microseconds) and its peak RSS
# (VmHWM). Redis' own CPU per request is printed beside the host's. The load generator,
# Redis and the server share the machine's cores: ratios within one run are what compare.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16 64}
STORES=${STORES:-memory standalone cluster}
PORT=18090

need=()
for tool in wrk nginx redis-server curl python3 openssl; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nginx redis-server curl openssl
fi
cargo build --release -q -p tokenginx-host
cargo build --release -q -p tokenginx-guest --features testing --example bench_jwts
jwts=target/release/examples/bench_jwts
# The client that signs its assertions with bench_jwts' key (host.sh adds it).
BENCH_CLIENTS="    - client_id: bench-signed
      token_endpoint_auth_method: private_key_jwt
      jwks: {keys: [$($jwts jwk)]}
      scopes: [read]
      default_scopes: [read]
      rate_limit: unlimited
"
make -s guests >/dev/null
host=$PWD/target/release/tokenginx-host
hz=$(getconf CLK_TCK)

cpu_ticks() { # pids... -> utime+stime summed
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# Redis' command counts on $commands_port (when set), as `name calls` lines.
command_counts() {
  [ -n "${commands_port:-}" ] || return 0
  redis-cli -p "$commands_port" -a "$PASSWORD" --no-auth-warning info commandstats |
    sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p'
}

# wrk with a Lua script, then one result line.
load() { # label, connections, script, url, server pids (space separated), redis pids
  local label=$1 conns=$2 script=$3 url=$4 server=$5 store=${6:-}
  local before store_before
  before=$(cpu_ticks $server)
  store_before=$( [ -n "$store" ] && cpu_ticks $store || echo 0)
  command_counts > "$work/commands-before.txt"
  wrk -t2 -c"$conns" -d"$DURATION" --latency -s "$script" "$url" > "$work/wrk.txt"
  local after store_after requests
  after=$(cpu_ticks $server)
  store_after=$( [ -n "$store" ] && cpu_ticks $store || echo 0)
  command_counts > "$work/commands-after.txt"
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
  local rss=0 pid
  for pid in $server; do rss=$((rss + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status"))); done
  printf '%-26s %4s %10s %9s %9s %9s %9s %8s %s\n' "$label" "$conns" \
    "$(awk '/Requests\/sec/ {printf "%d", $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")" \
    "$(( (after - before) * 1000000 / hz / requests ))" \
    "$( [ -n "$store" ] && echo $(( (store_after - store_before) * 1000000 / hz / requests )) || echo -)" \
    "$((rss / 1024))MiB" \
    "$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$work/wrk.txt")"
  if [ -n "${commands_port:-}" ]; then
    # Per request: every command, and each one's share (the commands of the store's own
    # calls, e.g. `info`, are a handful against hundreds of thousands).
    awk -v n="$requests" -v label="$label" '
      NR == FNR { before[$1] = $2; next }
      { d = $2 - before[$1]; if (d > 0) { total += d; each[$1] = d } }
      END {
        line = sprintf("#   %s: %.2f Redis commands per request:", label, total / n)
        for (c in each) if (each[c] / n >= 0.01) line = line sprintf(" %s %.2f", c, each[c] / n)
        print line
      }' "$work/commands-before.txt" "$work/commands-after.txt"
  fi
}

header() {
  printf '%-26s %4s %10s %9s %9s %9s %9s %8s\n' run conns req/s p50 p99 "cpu-us/req" "redis-us" "peakRSS"
}

echo "# $(date -u +%F) $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# wrk -t2 -d$DURATION --latency; connections: $CONNECTIONS"
header

# The ceiling: nginx answering a fixed small JSON to the same request shape.
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
user root;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT;
    location / {
      default_type application/json;
      return 200 '{"active":true,"scope":"read","client_id":"bench","token_type":"Bearer","exp":1900000000}';
    }
  }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")
until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do sleep 0.05; done
form_script "$work/static.lua" "token=0123456789abcdef0123456789abcdef0123456789a"
for c in $CONNECTIONS; do
  load "nginx static" "$c" "$work/static.lua" "http://127.0.0.1:$PORT/api/v1/oauth/introspect" \
    "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
done
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true

# Tokens for the revocation runs, collected from a priming load on the token endpoint.
cat > "$work/collect.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "$basic"
local out
function init(args) out = io.open("$work/tokens-" .. tostring(math.random(1e9)), "w") end
function response(status, headers, body)
  local t = body:match('"access_token":"([^"]+)"')
  if t then out:write(t, "\n") end
end
LUA
# A wrk script sending each line of a file in turn (the two threads interleaved), cycling
# back to the first when the lines run out: its header lines, then how a line (`item`)
# becomes a request.
cycling_script() { # script, lines file, header lines (Lua), request (Lua, of item)
  cat > "$1" <<LUA
$3
local items, i = {}, 0
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
function init(args)
  for line in io.lines("$2") do items[#items + 1] = line end
  i = id or 0
end
function request()
  i = i + 2
  local item = items[(i % #items) + 1]
  return $4
end
LUA
}
cycling_script "$work/token-dpop.lua" "$work/proofs.txt" "wrk.method = \"POST\"" \
  "wrk.format(nil, nil, {[\"Content-Type\"] = \"application/x-www-form-urlencoded\",
    [\"Authorization\"] = \"Basic $(printf 'bench-unlimited:%s' "$SECRET" | base64 -w0)\",
    [\"DPoP\"] = item}, \"grant_type=client_credentials\")"
cycling_script "$work/token-signed.lua" "$work/assertions.txt" "wrk.method = \"POST\"
wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"" \
  "wrk.format(nil, nil, nil, \"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=\" .. item)"
cycling_script "$work/revoke.lua" "$work/tokens.txt" "wrk.method = \"POST\"
wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"
wrk.headers[\"Authorization\"] = \"$basic\"" 'wrk.format(nil, nil, nil, "token=" .. item)'

# Each thread takes every other refresh token of the file; a request draws one from the
# thread's pool and its answer puts the next one back, so no token is ever used twice.
cat > "$work/refresh.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf 'bench-web:%s' "$SECRET" | base64 -w0)"
local pool, threads = {}, 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args)
  local n = 0
  for line in io.lines("$work/refresh-tokens.txt") do
    if n % 2 == id - 1 then pool[#pool + 1] = line end
    n = n + 1
  end
end
function request()
  local token = table.remove(pool) or "the-pool-ran-dry"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
LUA

# Login challenges, collected from the Location of authorization requests.
cat > "$work/collect-challenges.lua" <<LUA
local out
function init(args) out = io.open("$work/challenges-" .. tostring(math.random(1e9)), "w") end
function response(status, headers, body)
  local c = (headers["location"] or headers["Location"] or ""):match("login_challenge=([^&]+)")
  if c then out:write(c, "\n") end
end
LUA
cycling_script "$work/accept.lua" "$work/challenges.txt" "wrk.method = \"PUT\"
wrk.body = '{\"subject\":\"bench\"}'
wrk.headers[\"Content-Type\"] = \"application/json\"" \
  'wrk.format(nil, "/admin/oauth2/auth/requests/login/accept?login_challenge=" .. item)'

bench_store() { # label, tokenginx section, store pids
  local label=$1 store=$2 store_pids=${3:-}
  start_host "$store" "$guest"
  local url="http://127.0.0.1:$PORT/api/v1/oauth"
  local token
  token=$(curl -s -u "bench:$SECRET" -d grant_type=client_credentials "$url/token" |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  form_script "$work/token.lua" "grant_type=client_credentials"
  form_script "$work/token-unlimited.lua" "grant_type=client_credentials" \
    "Basic $(printf 'bench-unlimited:%s' "$SECRET" | base64 -w0)"
  form_script "$work/introspect.lua" "token=$token"
  local alg
  for alg in es256 rs256 eddsa; do
    form_script "$work/token-jwt-$alg.lua" "grant_type=client_credentials" \
      "Basic $(printf 'bench-jwt-%s:%s' "$alg" "$SECRET" | base64 -w0)"
  done
  echo 'wrk.method = "GET"' > "$work/get.lua"
  local admin="http://127.0.0.1:$((PORT + 1))"
  local pkce
  pkce=$(printf %s "bench-verifier-0123456789-0123456789-0123456789" | openssl dgst -sha256 -binary |
    openssl base64 -A | tr '+/' '-_' | tr -d '=')
  local authorize="$url/authorize?response_type=code&client_id=bench-web&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=read&state=bench-state&code_challenge=$pkce&code_challenge_method=S256"
  for c in $CONNECTIONS; do
    if [ -z "${http_layer_measured:-}" ]; then
      # The HTTP layer alone (hyper and tokio, routing, metrics, a 405): no guest, no store.
      load "HTTP layer (POST /health/live)" "$c" "$work/token.lua" "http://127.0.0.1:$PORT/health/live" "$hpid"
    fi
    load "$label token" "$c" "$work/token.lua" "$url/token" "$hpid" "$store_pids"
    load "$label token, no limit" "$c" "$work/token-unlimited.lua" "$url/token" "$hpid" "$store_pids"
    # Fresh proofs and assertions (an iat of now), 15,000 a second of the run: more than
    # a 2-core machine takes (9,300/s at most), and made fast enough (about 14 s for a 10 s
    # run, on every core) that the last proof's iat is within its 60 s when the run ends.
    # At 25,000/s, made on one core, the generation took 44 s on an idle machine, and in
    # one run over a third of the proofs were refused as too old.
    $jwts dpop "$url/token" $(( ${DURATION%s} * 15000 )) > "$work/proofs.txt"
    load "$label token, DPoP" "$c" "$work/token-dpop.lua" "$url/token" "$hpid" "$store_pids"
    $jwts assertion bench-signed "http://127.0.0.1:$PORT" $(( ${DURATION%s} * 15000 )) > "$work/assertions.txt"
    load "$label token, private_key_jwt" "$c" "$work/token-signed.lua" "$url/token" "$hpid" "$store_pids"
    load "$label token, JWT ES256" "$c" "$work/token-jwt-es256.lua" "$url/token" "$hpid" "$store_pids"
    load "$label token, JWT EdDSA" "$c" "$work/token-jwt-eddsa.lua" "$url/token" "$hpid" "$store_pids"
    load "$label token, JWT RS256" "$c" "$work/token-jwt-rs256.lua" "$url/token" "$hpid" "$store_pids"
    load "$label introspect" "$c" "$work/introspect.lua" "$url/introspect" "$hpid" "$store_pids"
    rm -f "$work"/tokens-*
    wrk -t2 -c16 -d"$DURATION" -s "$work/collect.lua" "$url/token" >/dev/null
    cat "$work"/tokens-* > "$work/tokens.txt"
    load "$label revoke" "$c" "$work/revoke.lua" "$url/revoke" "$hpid" "$store_pids"
    echo "#   (revocation cycled through $(wc -l < "$work/tokens.txt") fresh tokens, then revoked ones again)"
    # Two grants per connection: each thread's connections draw from a pool of its own.
    python3 bench/grants.py "http://127.0.0.1:$PORT" "http://127.0.0.1:$((PORT + 1))" \
      bench-web "$SECRET" https://app.example/cb $((2 * c)) > "$work/refresh-tokens.txt"
    load "$label refresh" "$c" "$work/refresh.lua" "$url/token" "$hpid" "$store_pids"
    load "$label authorize" "$c" "$work/get.lua" "$authorize" "$hpid" "$store_pids"
    rm -f "$work"/challenges-*
    wrk -t2 -c16 -d"$DURATION" -s "$work/collect-challenges.lua" "$authorize" >/dev/null
    cat "$work"/challenges-* > "$work/challenges.txt"
    load "$label login request" "$c" "$work/get.lua" \
      "$admin/admin/oauth2/auth/requests/login?login_challenge=$(head -1 "$work/challenges.txt")" \
      "$hpid" "$store_pids"
    load "$label login accept" "$c" "$work/accept.lua" "$admin" "$hpid" "$store_pids"
    echo "#   (login accept cycled through $(wc -l < "$work/challenges.txt") fresh challenges, then answered ones again)"
  done
  kill "$hpid"; wait "$hpid" 2>/dev/null || true
  http_layer_measured=1
}

for store in $STORES; do
  case $store in
    # Room for every token the memory runs issue (about 1.5 million at 64 connections).
    memory) bench_store memory "tokenginx: { mode: memory, max_entries: 10000000 }" ;;
    standalone)
      redis 17000
      commands_port=17000
      bench_store standalone \
        "tokenginx: { mode: standalone, addrs: [127.0.0.1:17000], password: $PASSWORD }" \
        "$(pgrep -f 'redis-server 127.0.0.1:17000')"
      commands_port=
      ;;
    standalone-wait)
      redis 17010
      redis 17011 --replicaof 127.0.0.1 17010
      until redis-cli -p 17010 -a "$PASSWORD" --no-auth-warning info replication | grep -q 'state=online'; do sleep 0.1; done
      bench_store standalone-wait \
        "tokenginx: { mode: standalone, addrs: [127.0.0.1:17010], password: $PASSWORD, wait_replicas: 1 }" \
        "$(pgrep -f 'redis-server 127.0.0.1:1701' | tr '\n' ' ')"
      ;;
    cluster)
      ports=(17101 17102 17103 17104 17105 17106)
      for p in "${ports[@]}"; do
        redis "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf"
      done
      redis-cli -a "$PASSWORD" --no-auth-warning --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") \
        --cluster-replicas 1 --cluster-yes >/dev/null
      until redis-cli -p 17101 -a "$PASSWORD" --no-auth-warning cluster info | grep -q cluster_state:ok; do sleep 0.1; done
      bench_store cluster \
        "tokenginx: { mode: cluster, addrs: [127.0.0.1:17101], password: $PASSWORD }" \
        "$(pgrep -f 'redis-server 127.0.0.1:171' | tr '\n' ' ')"
      ;;
  esac
done

# Start-up to ready (first 200 from /health/ready), embedded store, median of 5 starts:
# compiling the component, from the cache, and a precompiled .cwasm.
"$host" compile-guest "$guest" -o "$work/guest.cwasm" >/dev/null
mkdir -m 700 "$work/cache"
ready() { # guest path, extra guest lines
  cat > "$work/ready.yaml" <<YAML
server: { port: $PORT }
guest:
  path: $1
$2
oauth:
  issuer: http://127.0.0.1:$PORT
  clients: []
log: { level: warn }
YAML
  python3 - "$host" "$work/ready.yaml" "$PORT" <<'PY'
import socket, statistics, subprocess, sys, time
host, config, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ready():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05) as s:
            s.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
times = []
for _ in range(5):
    start = time.perf_counter()
    p = subprocess.Popen([host, "serve", "--config", config], stdout=subprocess.DEVNULL)
    while not ready():
        time.sleep(0.001)
    times.append((time.perf_counter() - start) * 1000)
    p.terminate(); p.wait()
print(f"{statistics.median(times):.0f} ms (min {min(times):.0f}, max {max(times):.0f})")
PY
}
echo "# start-up to ready, median of 5:"
echo "#   component, compiled at start: $(ready "$guest" "")"
echo "#   component, from guest.cache_dir: $(ready "$guest" "  cache_dir: $work/cache")"
echo "#   precompiled .cwasm: $(ready "$work/guest.cwasm" "")"

# The guest call path alone (embedded store, no HTTP): each call a fresh instance, as served.
echo "# guest call path ($host bench-guest, 20,000 calls a phase):"
"$host" bench-guest "$guest" --phases token,introspect 2>/dev/null | sed 's/^/#   /'
