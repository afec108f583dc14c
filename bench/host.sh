# Sourced by the bench scripts: the bench client's secret and the Redis password, a scratch
# directory ($work) removed at exit together with every process the script started ($pids),
# the default guest as `make guests` builds it or the one GUEST names ($guest), and
# start_host.
SECRET=bench-secret-0123456789
PASSWORD=bench-redis-password
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
guest=${GUEST:-$PWD/target/wasm32-unknown-unknown/release/tokenginx_guest.wasm}

# The bench client's Basic credentials, and a wrk script POSTing a form with them.
basic="Basic $(printf 'bench:%s' "$SECRET" | base64 -w0)"
form_script() { # file, form body, [Basic header]
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = "$2"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "${3:-$basic}"
LUA
}

# Starts the host on $PORT with the bench clients and waits until it is ready; sets hpid.

start_host() { # tokenginx section, guest path
  cat > "$work/config.yaml" <<YAML
$1
# No per-address budget: every request of a run comes from 127.0.0.1.
server: { port: $PORT, address_rate_limit: unlimited }
guest: { path: $2 }
# The sealing keys' secret, which a Redis store with a login app needs.
keys: { secret: bench-keys-secret-0123456789-0123456789 }
oauth:
  issuer: http://127.0.0.1:$PORT
  # The budget of a client registered at runtime (bench/runtime_clients.sh): none reached.
  rate_limit: { requests: 1000000, per: 1s, burst: 1000000 }
  # The authorization code flow, for the grants the refresh runs rotate: bench/grants.py
  # plays the browser and the login app (nothing listens at these URLs).
  login_url: http://127.0.0.1:1/login
  consent_url: http://127.0.0.1:1/consent
  clients:
    # A budget no run reaches: the rate limiter is charged on every token request and never
    # refuses, so its cost is in the numbers.
    - client_id: bench
      client_secret: $SECRET
      scopes: [read]
      default_scopes: [read]
      rate_limit: { requests: 1000000, per: 1s, burst: 1000000 }
    # The same client without a rate limit, so a run shows what the limiter costs.
    - client_id: bench-unlimited
      client_secret: $SECRET
      scopes: [read]
      default_scopes: [read]
      rate_limit: unlimited
    # The same, with JWT access tokens (RFC 9068) signed with each algorithm: the host signs
    # each token it issues.
    - client_id: bench-jwt-es256
      client_secret: $SECRET
      scopes: [read]
      default_scopes: [read]
      rate_limit: unlimited
      access_token_strategy: jwt
      access_token_signed_response_alg: ES256
      audience: [https://api.bench]
    - client_id: bench-jwt-rs256
      client_secret: $SECRET
      scopes: [read]
      default_scopes: [read]
      rate_limit: unlimited
      access_token_strategy: jwt
      access_token_signed_response_alg: RS256
      audience: [https://api.bench]
    - client_id: bench-jwt-eddsa
      client_secret: $SECRET
      scopes: [read]
      default_scopes: [read]
      rate_limit: unlimited
      access_token_strategy: jwt
      access_token_signed_response_alg: EdDSA
      audience: [https://api.bench]
    # A web app that signs users in and refreshes, with the same budget as bench.
    - client_id: bench-web
      client_secret: $SECRET
      scopes: [read, offline_access]
      grant_types: [authorization_code, refresh_token]
      redirect_uris: [https://app.example/cb]
      rate_limit: { requests: 1000000, per: 1s, burst: 1000000 }
${BENCH_CLIENTS:-}admin: { port: $((PORT + 1)) }
log: { level: ${LOG_LEVEL:-warn}, output: ${LOG_OUTPUT:-stdout} }
YAML
  "${HOST_BIN:-target/release/tokenginx-host}" serve --config "$work/config.yaml" &
  hpid=$!
  pids+=("$hpid")
  until curl -s "http://127.0.0.1:$PORT/health/ready" | grep -q ready; do
    kill -0 "$hpid" 2>/dev/null || { echo "the host did not start (is port $PORT or a Redis port taken?)" >&2; exit 1; }
    sleep 0.05
  done
}

# Starts a Redis server on loopback at port, with the bench password; waits until it answers.
redis() { # port, extra args...
  local port=$1; shift
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "port $port is taken by a running Redis; stop it first" >&2
    exit 1
  fi
  mkdir -p "$work/$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --requirepass "$PASSWORD" \
    --masterauth "$PASSWORD" --dir "$work/$port" --logfile "" "$@" >/dev/null &
  pids+=($!)
  until redis-cli -p "$port" -a "$PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
}
