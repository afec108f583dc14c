"""OpenID Connect and JWT access tokens, judged by independent clients: panva's
openid-client and oauth4webapi (Node, tests/oidc/rp.mjs) sign a user in through the
example login app and check the ID token, userinfo and RFC 9068 access tokens; and a
verifier that caches the JWKS for its max-age (tests/oidc/rotation.mjs, with panva's jose)
meets no unknown kid while keys rotate every few seconds under load. Each runs on the
embedded store and on a three-master Redis Cluster, the rotation there with two replicas.

Run by `make test`, which installs Node and the pinned npm packages (`make oidc-rp`):

    target/py-venv/bin/python -m pytest -q tests/browser/test_openid_connect.py
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.request

import pytest

from test_authorization_code import (
    GUEST,
    HOST_BIN,
    LOGIN_APP,
    PASSWORD,
    WAIT_S,
    WEB_SECRET,
    check_store_against_schema,
    free_port,
    start_cluster,
    wait_for_port,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests/oidc"
# Where `make oidc-rp` installed the pinned npm packages: the scripts run beside them.
RP = ROOT / "target/oidc-rp"
AUDIENCE = "https://api.test"
KEYS_SECRET = "the OpenID Connect tests' keys secret, 32+ characters"


def config(issuer, port, store, login_port, admin_port, extra, log):
    return f"""{store}server:
  port: {port}
{extra.get("server", "")}guest:
  path: {GUEST}
oauth:
  issuer: {issuer}
  login_url: http://127.0.0.1:{login_port}/login
  consent_url: http://127.0.0.1:{login_port}/consent
{extra.get("oauth", "")}  clients:
    - client_id: web
      client_secret: {WEB_SECRET}
      client_name: The web app
      scopes: [openid, read, offline_access]
      grant_types: [authorization_code, refresh_token]
      redirect_uris: [http://127.0.0.1:9/cb]
      access_token_strategy: jwt
      access_token_ttl: 60s
      audience: [{AUDIENCE}]
    - client_id: api-client
      client_secret: {WEB_SECRET}
      scopes: [read]
      grant_types: [client_credentials]
      access_token_strategy: jwt
      access_token_signed_response_alg: ES256
      access_token_ttl: 8s
      # The rotation test's load.
      rate_limit: unlimited
      audience: [{AUDIENCE}]
{extra.get("clients", "")}admin:
  port: {admin_port}
keys:
  secret: ${{KEYS_SECRET}}
{extra.get("keys", "")}log:
  output: {log}
"""


@pytest.fixture(scope="module", params=["memory", "cluster"])
def store(request, tmp_path_factory):
    """The store section (and the cluster's processes), and a work directory."""
    work = tmp_path_factory.mktemp("oidc")
    nodes, ports, store = [], [], ""
    if request.param == "cluster":
        nodes, ports, store = start_cluster(work)
    try:
        yield {"kind": request.param, "section": store, "work": work, "redis_ports": ports}
    finally:
        for node in nodes:
            node.terminate()
            node.wait(timeout=WAIT_S)


def start(store, name, extra=None, replicas=1, scheme="http"):
    """`replicas` hosts sharing the store and one configuration (but for the port), and
    the login app talking to the first one's admin API: the processes, the issuer, the
    replicas' URLs, the login app's port, the work directory and the first admin URL.
    `scheme` is `https` when `extra["server"]` turns TLS on."""
    work = store["work"] / name
    work.mkdir()
    ports = [free_port() for _ in range(replicas)]
    admin_ports = [free_port() for _ in range(replicas)]
    login_port = free_port()
    issuer = f"{scheme}://127.0.0.1:{ports[0]}"
    env = dict(os.environ, KEYS_SECRET=KEYS_SECRET)
    processes = []
    for i, (port, admin_port) in enumerate(zip(ports, admin_ports)):
        path = work / f"config-{i}.yaml"
        path.write_text(
            config(issuer, port, store["section"], login_port, admin_port, extra or {},
                   work / f"host-{i}.log")
        )
        processes.append(
            subprocess.Popen([str(HOST_BIN), "serve", "--config", str(path)], env=env)
        )
    login = subprocess.Popen(
        [sys.executable, str(LOGIN_APP)],
        env=dict(
            os.environ,
            TOKENGINX_ADMIN_URL=f"http://127.0.0.1:{admin_ports[0]}",
            LOGIN_APP_PORT=str(login_port),
            DEMO_USER_PASSWORD=PASSWORD,
        ),
    )
    processes.append(login)
    for port, process in zip(ports, processes):
        wait_for_port(port, process)
    wait_for_port(login_port, login)
    urls = [f"{scheme}://127.0.0.1:{p}" for p in ports]
    return processes, issuer, urls, login_port, work, f"http://127.0.0.1:{admin_ports[0]}"


def stop(processes):
    for process in processes:
        process.terminate()
        process.wait(timeout=WAIT_S)


def node(script, env):
    for path in SCRIPTS.glob("*.mjs"):
        shutil.copy(path, RP / path.name)
    result = subprocess.run(
        ["node", str(RP / script)],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_openid_client_signs_in_and_oauth4webapi_validates_jwt_access_tokens(store):
    processes, issuer, urls, login_port, work, _admin = start(store, "rp")
    try:
        out = node(
            "rp.mjs",
            {
                "ISSUER": issuer,
                "LOGIN_PORT": str(login_port),
                "LOGIN_PASSWORD": PASSWORD,
                "WEB_SECRET": WEB_SECRET,
                "REDIRECT_URI": "http://127.0.0.1:9/cb",
                "API_AUDIENCE": AUDIENCE,
            },
        )
        assert out.count("ok ") == 7, out
        # No private key, and no token, in the JWKS or a log line.
        with urllib.request.urlopen(f"{issuer}/.well-known/jwks.json") as response:
            jwks = json.load(response)
        assert {k["alg"] for k in jwks["keys"]} == {"RS256", "ES256", "EdDSA"}
        private = {"d", "p", "q", "dp", "dq", "qi", "k"}
        assert all(private.isdisjoint(k) for k in jwks["keys"]), jwks
        with urllib.request.urlopen(f"{issuer}/metrics") as response:
            metrics = response.read().decode()
        assert 'tokenginx_signing_keys{algorithm="ES256",state="active"} 1' in metrics
        log = "".join(p.read_text() for p in work.glob("host-*.log"))
        # Every JWS the host signs starts with its header, {"alg":...
        for text, where in ((log, "a log line"), (metrics, "the metrics")):
            assert "eyJhbGciOi" not in text, f"a signed token in {where}"
            assert "PRIVATE KEY" not in text
        # What the sign-in left in the store, signing keys and an OpenID grant included,
        # is what docs/storage.schema.json says.
        if store["redis_ports"]:
            seen = check_store_against_schema(store["redis_ports"])
            assert {"signing_keys", "grant", "code_redeemed"} <= seen, seen
    finally:
        stop(processes)


def test_a_cached_jwks_never_meets_an_unknown_kid_while_keys_rotate(store):
    # A new key every 6 s, published 4 s ahead (the JWKS may be cached 2 s); tokens live 8 s
    # and ID tokens 10 s, so a retired key stays 70 s (60 s of clock skew).
    extra = {
        "keys": "  rotate_every: 6s\n  publish_ahead: 4s\n",
        "oauth": "  id_token_ttl: 10s\n",
    }
    replicas = 2 if store["kind"] == "cluster" else 1
    processes, issuer, urls, _login_port, work, _admin = start(
        store, "rotation", extra=extra, replicas=replicas
    )
    try:
        out = node(
            "rotation.mjs",
            {
                "REPLICAS": ",".join(urls),
                "ISSUER": issuer,
                "CLIENT_SECRET": WEB_SECRET,
                "API_AUDIENCE": AUDIENCE,
                "SECONDS": "20",
            },
        )
        assert "0 unknown kids" in out
    finally:
        stop(processes)
