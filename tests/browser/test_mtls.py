"""Mutual TLS (RFC 8705) over real TLS, with certificates this test makes: clients that
authenticate with a certificate a CA issued and that carries their registered name
(`tls_client_auth`), or with one they registered themselves (`self_signed_tls_client_auth`),
and access tokens bound to the certificate (`cnf.x5t#S256`). Python `requests` sends the
certificates, and panva's oauth4webapi (Node, tests/oidc/mtls.mjs, over undici) gets
tokens as tls_client_auth clients, for a machine and for a person signed in, whose token
userinfo takes only over a connection that presents the certificate. On the embedded store and on a three-master Redis
Cluster.

Run by `make test` (after `make oidc-rp`):

    target/py-venv/bin/python -m pytest -q tests/browser/test_mtls.py
"""

import base64
import datetime
import hashlib
import ipaddress

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test_authorization_code import PASSWORD, WEB_SECRET, check_store_against_schema
from test_openid_connect import node, start, stop, store  # noqa: F401 (fixture)

SPIFFE = "spiffe://example.test/payments"
REDIRECT_URI = "http://127.0.0.1:9/cb"


def name(common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, AB"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def certificate(subject, key, issuer=None, issuer_key=None, sans=(), ca=False):
    """A certificate of `key` for `subject`, signed by `issuer_key` (itself when none)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def write_pair(work, label, cert, key):
    """The PEM files of `cert` and `key`: (cert path, key path)."""
    cert_path, key_path = work / f"{label}.pem", work / f"{label}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(cert):
    """RFC 8705 section 3.1: base64url(SHA-256(DER))."""
    return b64url(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


def make_certificates(work):
    """A CA, the server's certificate, the PKI client's (by the CA, with its SPIFFE ID),
    the self-signed client's, and an impostor's: self-signed, with the PKI client's name."""
    key = lambda: ec.generate_private_key(ec.SECP256R1())  # noqa: E731
    ca_key = key()
    ca = certificate(name("tokenginx test CA"), ca_key, ca=True)
    files = {"ca": write_pair(work, "ca", ca, ca_key)[0]}
    server_key = key()
    server = certificate(
        name("127.0.0.1"),
        server_key,
        ca.subject,
        ca_key,
        sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    files["server"] = write_pair(work, "server", server, server_key)
    pki_key = key()
    pki = certificate(
        name("payments"), pki_key, ca.subject, ca_key, sans=[x509.UniformResourceIdentifier(SPIFFE)]
    )
    files["pki"] = write_pair(work, "pki", pki, pki_key)
    self_key = key()
    self_signed = certificate(name("device 7"), self_key)
    files["self"] = write_pair(work, "self", self_signed, self_key)
    impostor_key = key()
    impostor = certificate(
        name("payments"), impostor_key, sans=[x509.UniformResourceIdentifier(SPIFFE)]
    )
    files["impostor"] = write_pair(work, "impostor", impostor, impostor_key)
    return files, {"pki": pki, "self": self_signed}


def jwk_of(cert, x5c=True):
    """The public JWK of an EC certificate's key, with the certificate as its x5c."""
    numbers = cert.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    if x5c:
        jwk["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    return jwk


def test_clients_authenticate_with_certificates_and_their_tokens_are_bound_to_them(store):
    work = store["work"] / "mtls-certs"
    work.mkdir()
    files, certs = make_certificates(work)
    server_cert, server_key = files["server"]
    extra = {
        "server": f"""  tls:
    enabled: true
    cert_file: {server_cert}
    key_file: {server_key}
    client_auth: optional
    client_ca_file: {files["ca"]}
    self_signed_client_certs: true
""",
        "clients": f"""    - client_id: payments
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_san_uri: {SPIFFE}
      tls_client_certificate_bound_access_tokens: true
      scopes: [read]
      default_scopes: [read]
      grant_types: [client_credentials]
    - client_id: payments-web
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_san_uri: {SPIFFE}
      tls_client_certificate_bound_access_tokens: true
      scopes: [openid, read]
      grant_types: [authorization_code]
      redirect_uris: [{REDIRECT_URI}]
    - client_id: device-7
      token_endpoint_auth_method: self_signed_tls_client_auth
      jwks: {{keys: [{jwk_of(certs["self"])}]}}
      tls_client_certificate_bound_access_tokens: true
      scopes: [read]
      default_scopes: [read]
      grant_types: [client_credentials]
    - client_id: device-8
      token_endpoint_auth_method: self_signed_tls_client_auth
      jwks: {{keys: [{jwk_of(certs["self"], x5c=False)}]}}
      scopes: [read]
      default_scopes: [read]
      grant_types: [client_credentials]
""",
    }
    processes, issuer, _urls, login_port, work_dir, _admin = start(
        store, "mtls", extra=extra, scheme="https"
    )
    try:
        http = requests.Session()
        # The test's CA only: no CA bundle, nor proxy, from the environment.
        http.trust_env = False
        http.verify = files["ca"]

        metadata = http.get(f"{issuer}/.well-known/oauth-authorization-server").json()
        methods = metadata["token_endpoint_auth_methods_supported"]
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(methods), methods
        assert metadata["tls_client_certificate_bound_access_tokens"] is True

        def token(client_id, cert):
            return http.post(
                f"{issuer}/api/v1/oauth/token",
                data={"grant_type": "client_credentials", "client_id": client_id},
                cert=files[cert] if cert else None,
            )

        def introspect(access_token):
            return http.post(
                f"{issuer}/api/v1/oauth/introspect",
                data={"token": access_token},
                auth=("web", WEB_SECRET),
            ).json()

        for client_id, cert in [("payments", "pki"), ("device-7", "self"), ("device-8", "self")]:
            issued = token(client_id, cert)
            assert issued.status_code == 200, issued.text
            answer = issued.json()
            assert answer["token_type"] == "Bearer"
            seen = introspect(answer["access_token"])
            assert seen["active"] is True and seen["client_id"] == client_id, seen
            if client_id == "device-8":
                assert "cnf" not in seen, "its tokens are not bound"
            else:
                assert seen["cnf"] == {"x5t#S256": thumbprint(certs[cert])}, seen

        # A certificate no CA issued carries the PKI client's very name, and is refused; so
        # is a certificate another client registered, and none at all.
        for client_id, cert in [
            ("payments", "impostor"),
            ("payments", "self"),
            ("payments", None),
            ("device-7", "impostor"),
            ("device-7", "pki"),
            ("device-7", None),
            ("device-8", "impostor"),
        ]:
            refused = token(client_id, cert)
            assert refused.status_code == 401, (client_id, cert, refused.text)
            assert refused.json()["error"] == "invalid_client"

        out = node(
            "mtls.mjs",
            {
                "ISSUER": issuer,
                "CA": files["ca"],
                "CERT": files["pki"][0],
                "KEY": files["pki"][1],
                "THUMBPRINT": thumbprint(certs["pki"]),
                "WEB_SECRET": WEB_SECRET,
                "REDIRECT_URI": REDIRECT_URI,
                "LOGIN_PORT": str(login_port),
                "LOGIN_PASSWORD": PASSWORD,
                # Node's own fetch, which the sign-in's browser steps use, trusts the CA.
                "NODE_EXTRA_CA_CERTS": files["ca"],
            },
        )
        assert out.count("ok ") == 3, out

        if store["redis_ports"]:
            seen = check_store_against_schema(store["redis_ports"])
            assert {"access_token", "grant_access_token"} <= seen, seen
        log = "".join(p.read_text() for p in work_dir.glob("host-*.log"))
        assert "BEGIN CERTIFICATE" not in log
    finally:
        stop(processes)
