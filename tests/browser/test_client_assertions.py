"""Clients that authenticate with a JWT they sign (RFC 7523): private_key_jwt, configured and
created at runtime, and client_secret_jwt, judged by panva's oauth4webapi (Node,
tests/oidc/client-auth.mjs); the assertions the service must refuse; and one assertion sent
32 times at once over the replicas getting one token. On the embedded store and on a
three-master Redis Cluster, there with two replicas.

Run by `make test` (after `make oidc-rp`):

    target/py-venv/bin/python -m pytest -q tests/browser/test_client_assertions.py
"""

import base64
import json

from cryptography.hazmat.primitives.asymmetric import ec

from test_authorization_code import check_store_against_schema
from test_openid_connect import node, start, stop, store  # noqa: F401 (fixture)

MAC_SECRET = "the client_secret_jwt client's secret, 32+ characters"


def es256_jwk(kid):
    """A new P-256 key as a private JWK, and its public half."""
    numbers = ec.generate_private_key(ec.SECP256R1()).private_numbers()

    def b64(n):
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    public = {"kty": "EC", "crv": "P-256", "kid": kid,
              "x": b64(numbers.public_numbers.x), "y": b64(numbers.public_numbers.y)}
    return {**public, "d": b64(numbers.private_value)}, public


def test_oauth4webapi_authenticates_with_signed_assertions_taken_once(store):
    private, public = es256_jwk("k1")
    clients = f"""    - client_id: keyed
      token_endpoint_auth_method: private_key_jwt
      jwks: {json.dumps({"keys": [public]})}
      scopes: [read]
    - client_id: mac
      token_endpoint_auth_method: client_secret_jwt
      client_secret: {MAC_SECRET}
      scopes: [read]
"""
    replicas = 2 if store["kind"] == "cluster" else 1
    processes, issuer, urls, _login, work, admin = start(
        store, "assertions", extra={"clients": clients}, replicas=replicas
    )
    try:
        out = node(
            "client-auth.mjs",
            {
                "ISSUER": issuer,
                "REPLICAS": ",".join(urls),
                "ADMIN_URL": admin,
                "PRIVATE_JWK": json.dumps(private),
                "MAC_SECRET": MAC_SECRET,
            },
        )
        assert out.count("ok ") == 6, out
        if store["redis_ports"]:
            seen = check_store_against_schema(store["redis_ports"])
            assert {"client_assertion_jti", "client"} <= seen, seen
        log = "".join(p.read_text() for p in work.glob("host-*.log"))
        assert "eyJ" not in log, "an assertion or a token in a log line"
        assert MAC_SECRET not in log
    finally:
        stop(processes)
