#!/usr/bin/env bash
# What ending a grant costs as its access tokens pile up: grants refreshed 0, 100 and 1000
# times (one access token each time) are revoked through their refresh token, on standalone
# Redis. Prints the median and worst revocation latency seen by the client and the Redis
# commands a revocation executes, for each size.
#
#   bash bench/grant_revocation.sh       (GRANTS=20)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
GRANTS=${GRANTS:-20}
PORT=18092

command -v redis-server >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server curl
}
cargo build --release -q -p tokenginx-host
make -s guests >/dev/null

redis-server --bind 127.0.0.1 --port 17030 --save "" --appendonly no --requirepass "$PASSWORD" \
  --dir "$work" --logfile "" >/dev/null &
pids+=($!)
until redis-cli -p 17030 -a "$PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
start_host "tokenginx: { mode: standalone, addrs: [127.0.0.1:17030], password: $PASSWORD }" "$guest"
python3 bench/grants.py "http://127.0.0.1:$PORT" "http://127.0.0.1:$((PORT + 1))" \
  bench-web "$SECRET" https://app.example/cb $((3 * GRANTS)) > "$work/grants.txt"

python3 - "http://127.0.0.1:$PORT" "$SECRET" "$GRANTS" "$work/grants.txt" "$PASSWORD" <<'PY'
import base64, http.client, json, statistics, subprocess, sys, time, urllib.parse
issuer, secret, grants, tokens_file, password = sys.argv[1:6]
grants = int(grants)
basic = "Basic " + base64.b64encode(f"bench-web:{secret}".encode()).decode()
tokens = open(tokens_file).read().split()
# One kept-alive connection, so that a request's time is the service's, not TCP's.
connection = http.client.HTTPConnection(urllib.parse.urlsplit(issuer).netloc)

def post(path, form):
    connection.request("POST", path, body=urllib.parse.urlencode(form), headers={
        "Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    return body

def commands():
    out = subprocess.run(["redis-cli", "-p", "17030", "-a", password, "--no-auth-warning",
                          "info", "commandstats"], capture_output=True, text=True).stdout
    return {l.split(":")[0][8:]: int(l.split("calls=")[1].split(",")[0])
            for l in out.splitlines() if l.startswith("cmdstat_")}

for i, rotations in enumerate([0, 100, 1000]):
    chain = tokens[i * grants:(i + 1) * grants]
    for _ in range(rotations):
        chain = [json.loads(post("/api/v1/oauth/token",
                                 {"grant_type": "refresh_token", "refresh_token": t}))["refresh_token"]
                 for t in chain]
    before, times = commands(), []
    for token in chain:
        start = time.perf_counter()
        post("/api/v1/oauth/revoke", {"token": token, "token_type_hint": "refresh_token"})
        times.append((time.perf_counter() - start) * 1e6)
    after = commands()
    per = {c: (after[c] - before.get(c, 0)) / len(chain) for c in after if after[c] > before.get(c, 0)}
    for own in ("info", "auth"):  # redis-cli's, to read these counts
        per.pop(own, None)
    print(f"a grant with {rotations + 1:5} access tokens: revoked in {statistics.median(times):4.0f} us "
          f"(median of {len(chain)}, worst {max(times):.0f} us); Redis commands per revocation: "
          + " ".join(f"{c} {n:.2f}" for c, n in sorted(per.items())))
PY
