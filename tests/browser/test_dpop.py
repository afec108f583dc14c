"""DPoP (RFC 9449), judged by panva's oauth4webapi (Node, tests/oidc/dpop.mjs): tokens bound
to a key for a machine and for a person signed in to a public app, a resource server's
check of a DPoP-bound JWT, the proofs the service must refuse, and one proof sent 32 times
at once over the replicas getting one token. With and without server nonces; on the
embedded store and on a three-master Redis Cluster, there with two replicas.

Run by `make test` (after `make oidc-rp`):

    target/py-venv/bin/python -m pytest -q tests/browser/test_dpop.py
"""

import pytest

from test_authorization_code import PASSWORD, WEB_SECRET, check_store_against_schema
from test_openid_connect import AUDIENCE, node, start, stop, store  # noqa: F401 (fixture)

REDIRECT_URI = "http://127.0.0.1:9/cb"
CLIENTS = f"""    - client_id: bound
      client_secret: {WEB_SECRET}
      scopes: [read]
      grant_types: [client_credentials]
      dpop_bound_access_tokens: true
    - client_id: native
      token_endpoint_auth_method: none
      scopes: [openid, read, offline_access]
      grant_types: [authorization_code, refresh_token]
      redirect_uris: [{REDIRECT_URI}]
"""


@pytest.mark.parametrize("nonce", ["", "required"])
def test_oauth4webapi_binds_tokens_to_keys_and_one_proof_gets_one_token(store, nonce):
    extra = {"clients": CLIENTS}
    if nonce:
        extra["oauth"] = "  dpop:\n    require_nonce: true\n"
    replicas = 2 if store["kind"] == "cluster" else 1
    processes, issuer, urls, login_port, work, _admin = start(
        store, f"dpop{nonce}", extra=extra, replicas=replicas
    )
    try:
        out = node(
            "dpop.mjs",
            {
                "ISSUER": issuer,
                "REPLICAS": ",".join(urls),
                "LOGIN_PORT": str(login_port),
                "LOGIN_PASSWORD": PASSWORD,
                "WEB_SECRET": WEB_SECRET,
                "REDIRECT_URI": REDIRECT_URI,
                "API_AUDIENCE": AUDIENCE,
                "NONCE": nonce,
            },
        )
        assert out.count("ok ") == (12 if nonce else 11), out
        # What the proofs and the bound grant left in the store is what
        # docs/storage.schema.json says; no proof, nonce or token in a log line.
        if store["redis_ports"]:
            seen = check_store_against_schema(store["redis_ports"])
            assert {"dpop_jti", "grant"} <= seen, seen
        log = "".join(p.read_text() for p in work.glob("host-*.log"))
        assert "eyJ" not in log, "a JWS (a proof or a token) in a log line"
    finally:
        stop(processes)
