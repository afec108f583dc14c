"""The authorization code flow as a person goes through it: a real Chromium (headless,
driven by Selenium) signs in and consents on the example login app, which talks to the
service's admin API through Ory's own SDK for Hydra; the client side is authlib's OAuth 2
client with PKCE. Each test runs on the embedded store and on a three-master Redis Cluster
started on loopback.

Run by `make test` (which installs Chromium, its driver and the pinned packages):

    target/browser-venv/bin/python -m pytest -q tests/browser
"""

import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST_BIN = ROOT / "target/release/tokenginx-host"
GUEST = ROOT / "target/wasm32-unknown-unknown/release/tokenginx_guest.wasm"
LOGIN_APP = ROOT / "examples/login-consent/app.py"
STORAGE_SCHEMA = ROOT / "docs/storage.schema.json"
WEB_SECRET = "web-secret-0123456789"
ADMIN_KEY = "browser-test-admin-key-0123456789abcdef"
INITIAL_ACCESS_TOKEN = "browser-test-initial-access-token-0123456789"
PASSWORD = "alice-password-for-the-test"
WAIT_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_for_port(port: int, process: subprocess.Popen):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Callback(BaseHTTPRequestHandler):
    """The client's redirect URI (a native app's loopback one): records where it was called."""

    calls = []

    def do_GET(self):
        Callback.calls.append(self.path)
        body = b"<!doctype html><title>back at the app</title><p id=done>done</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_cluster(work: pathlib.Path) -> tuple:
    """Three Redis Cluster masters on loopback, their slots assigned: the processes and the
    `tokenginx` section that reaches them."""
    # A port found free can be taken before the node binds it (another process's outgoing
    # connection gets it as its ephemeral port): then the node exits, and the three start
    # again on other ports, rather than the test failing on that luck.
    for attempt in range(5):
        ports = [free_cluster_port() for _ in range(3)]
        nodes = []
        for port in ports:
            node_dir = work / f"redis-{port}-{attempt}"
            node_dir.mkdir()
            nodes.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--dir", str(node_dir), "--logfile", str(node_dir / "redis.log")],
                    stdout=subprocess.DEVNULL,
                )
            )
        try:
            for port, node in zip(ports, nodes):
                wait_for_port(port, node)
            break
        except RuntimeError as failed:
            print(f"a cluster node did not start ({failed}); starting the three again")
            for node in nodes:
                node.terminate()
                node.wait(timeout=WAIT_S)
    else:
        raise RuntimeError("the cluster's nodes did not start in five attempts")
    addrs = [f"127.0.0.1:{p}" for p in ports]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *addrs, "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + WAIT_S
    while not all(
        "cluster_state:ok"
        in subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"],
                          capture_output=True, text=True).stdout
        for p in ports
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not become ready")
        time.sleep(0.1)
    return nodes, ports, f"tokenginx:\n  mode: cluster\n  addrs: [{', '.join(addrs)}]\n"


@pytest.fixture(scope="module", params=["memory", "cluster"])
def service(request, tmp_path_factory):
    """The service (default guest; the embedded store or a Redis Cluster), the login app,
    and the client's callback, each on a loopback port."""
    work = tmp_path_factory.mktemp("browser")
    nodes, ports, store = [], [], ""
    if request.param == "cluster":
        nodes, ports, store = start_cluster(work)
    port, admin_port, login_port = free_port(), free_port(), free_port()
    callback = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=callback.serve_forever, daemon=True).start()
    redirect_uri = f"http://127.0.0.1:{callback.server_address[1]}/cb"
    issuer = f"http://127.0.0.1:{port}"
    (work / "config.yaml").write_text(
        f"""{store}server:
  port: {port}
guest:
  path: {GUEST}
oauth:
  issuer: {issuer}
  login_url: http://127.0.0.1:{login_port}/login
  consent_url: http://127.0.0.1:{login_port}/consent
  # Dynamic registration (RFC 7591) with an initial access token: test_clients_at_runtime.py.
  registration:
    initial_access_tokens_sha256: [{hashlib.sha256(INITIAL_ACCESS_TOKEN.encode()).hexdigest()}]
    allowed_scopes: [read]
  clients:
    - client_id: machine
      client_secret: {WEB_SECRET}
      scopes: [read]
    - client_id: web
      client_secret: {WEB_SECRET}
      client_name: The web app
      scopes: [read, write, offline_access]
      grant_types: [authorization_code, refresh_token]
      redirect_uris: [{redirect_uri}]
admin:
  port: {admin_port}
  api_key: {ADMIN_KEY}
keys:
  secret: ${{KEYS_SECRET}}
log:
  output: {work / "host.log"}
"""
    )
    host = subprocess.Popen(
        [str(HOST_BIN), "serve", "--config", str(work / "config.yaml")],
        env=dict(os.environ, KEYS_SECRET="the browser tests' keys secret, 32+ characters"),
    )
    env = dict(
        os.environ,
        TOKENGINX_ADMIN_URL=f"http://127.0.0.1:{admin_port}",
        TOKENGINX_ADMIN_API_KEY=ADMIN_KEY,
        LOGIN_APP_PORT=str(login_port),
        DEMO_USER_PASSWORD=PASSWORD,
    )
    login = subprocess.Popen([sys.executable, str(LOGIN_APP)], env=env)
    try:
        wait_for_port(port, host)
        wait_for_port(login_port, login)
        yield {
            "issuer": issuer,
            "admin": f"http://127.0.0.1:{admin_port}",
            "redirect_uri": redirect_uri,
            "log": work / "host.log",
            "redis_ports": ports,
        }
    finally:
        for process in (login, host, *nodes):
            process.terminate()
            process.wait(timeout=WAIT_S)
        callback.shutdown()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService("/usr/bin/chromedriver")
    )
    yield driver
    driver.quit()


def wait(browser) -> WebDriverWait:
    """Waits up to WAIT_S for a condition on the page. A page that navigates while it is
    looked at (a form posted, a redirect followed) is looked at again, not a failure:
    Chromium then answers "aborted by navigation"."""
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(WebDriverException,))


def client(service, scope, credentials=("web", WEB_SECRET)) -> OAuth2Session:
    return OAuth2Session(
        *credentials,
        redirect_uri=service["redirect_uri"],
        scope=scope,
        code_challenge_method="S256",
    )


def sign_in(browser, service, password=PASSWORD, scope="read write", credentials=None):
    """Starts the flow in the browser and signs in as alice (to the web app, or the client
    of `credentials`): the authlib session and the PKCE verifier."""
    session = client(service, scope, *([credentials] if credentials else []))
    verifier = generate_token(48)
    url, _state = session.create_authorization_url(
        service["issuer"] + "/api/v1/oauth/authorize", code_verifier=verifier
    )
    browser.get(url)
    wait(browser).until(ready.presence_of_element_located((By.ID, "username")))
    browser.find_element(By.ID, "username").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "signin").click()
    return session, verifier


def back_at_the_app(browser, service) -> str:
    wait(browser).until(
        lambda b: b.current_url.startswith(service["redirect_uri"])
    )
    return browser.current_url


def test_a_person_signs_in_consents_and_the_app_gets_a_token(browser, service):
    session, verifier = sign_in(browser, service)
    wait(browser).until(ready.presence_of_element_located((By.ID, "allow")))
    assert "The web app" in browser.find_element(By.ID, "client").text
    # The person grants read only.
    browser.find_element(By.CSS_SELECTOR, "input[value=write]").click()
    browser.find_element(By.ID, "allow").click()
    callback = back_at_the_app(browser, service)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    assert query["iss"] == service["issuer"]

    token = session.fetch_token(
        service["issuer"] + "/api/v1/oauth/token",
        authorization_response=callback,
        code_verifier=verifier,
    )
    assert token["scope"] == "read"
    seen = requests.post(
        service["issuer"] + "/api/v1/oauth/introspect",
        data={"token": token["access_token"]},
        auth=("web", WEB_SECRET),
        timeout=WAIT_S,
    ).json()
    assert seen["active"] is True
    assert seen["sub"] == "alice"
    assert seen["ext"] == {"consented_by": "example-login-app"}
    if service["redis_ports"]:
        redeemed = sum(
            len(subprocess.run(
                ["redis-cli", "-p", str(p), "--scan", "--pattern", "oauth:code_redeemed:*"],
                capture_output=True, text=True,
            ).stdout.split())
            for p in service["redis_ports"]
        )
        assert redeemed > 0, "the redeemed code's record is in the cluster"

    # The code is single use: authlib's second exchange gets invalid_grant.
    again = requests.post(
        service["issuer"] + "/api/v1/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": service["redirect_uri"],
            "code_verifier": verifier,
        },
        auth=("web", WEB_SECRET),
        timeout=WAIT_S,
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_wrong_password_is_asked_again_and_a_refusal_reaches_the_app(browser, service):
    sign_in(browser, service, password="not-the-password")
    wait(browser).until(ready.presence_of_element_located((By.ID, "error")))
    browser.find_element(By.ID, "cancel").click()
    callback = back_at_the_app(browser, service)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    assert query["error"] == "access_denied"
    assert query["iss"] == service["issuer"]
    assert "state" in query


def test_no_code_verifier_challenge_or_subject_reaches_the_log(browser, service):
    session, verifier = sign_in(browser, service)
    wait(browser).until(ready.presence_of_element_located((By.ID, "allow")))
    browser.find_element(By.ID, "allow").click()
    callback = back_at_the_app(browser, service)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["code"]
    token = session.fetch_token(
        service["issuer"] + "/api/v1/oauth/token",
        authorization_response=callback,
        code_verifier=verifier,
    )
    code_challenge = create_s256_code_challenge(verifier)
    log = service["log"].read_text()
    assert "started grant" in log, "the log was written"
    for secret in (code, verifier, code_challenge, token["access_token"]):
        assert secret not in log
    assert "login_challenge=" not in log
    assert "alice" not in log, "no subject in the log"


def introspect(service, token: str) -> dict:
    return requests.post(
        service["issuer"] + "/api/v1/oauth/introspect",
        data={"token": token},
        auth=("web", WEB_SECRET),
        timeout=WAIT_S,
    ).json()


def test_the_app_stays_signed_in_with_refresh_tokens_and_a_replay_ends_the_grant(
    browser, service
):
    session, verifier = sign_in(browser, service, scope="read offline_access")
    wait(browser).until(ready.presence_of_element_located((By.ID, "allow")))
    browser.find_element(By.ID, "allow").click()
    callback = back_at_the_app(browser, service)
    token_url = service["issuer"] + "/api/v1/oauth/token"
    first = session.fetch_token(
        token_url, authorization_response=callback, code_verifier=verifier
    )
    assert first["scope"] == "offline_access read"
    assert "refresh_token" in first

    # authlib's refresh: a new pair, the used refresh token dead.
    second = session.refresh_token(token_url, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert introspect(service, second["access_token"])["sub"] == "alice"
    assert introspect(service, second["refresh_token"])["token_type"] == "refresh_token"
    assert introspect(service, first["refresh_token"]) == {"active": False}

    # Someone replays the first refresh token: the grant ends, the app's tokens with it.
    replay = requests.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("web", WEB_SECRET),
        timeout=WAIT_S,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    for token in (second["access_token"], second["refresh_token"]):
        assert introspect(service, token) == {"active": False}
    with pytest.raises(Exception, match="invalid_grant"):
        session.refresh_token(token_url, refresh_token=second["refresh_token"])
    log = service["log"].read_text()
    assert "came back" in log
    for token in (first["refresh_token"], second["refresh_token"]):
        assert token.rsplit(".", 1)[1] not in log


def check_store_against_schema(redis_ports) -> set:
    """Every key on every node of the store matches exactly one pattern of
    docs/storage.schema.json, and its value validates: the kinds of record seen."""
    schema = json.loads(STORAGE_SCHEMA.read_text())
    families = [(re.compile(k["pattern"]), k) for k in schema["x-tokenginx-keys"]]
    seen = set()
    for port in redis_ports:
        keys = subprocess.run(
            ["redis-cli", "-p", str(port), "--scan"], capture_output=True, text=True, check=True
        ).stdout.split()
        for key in keys:
            matching = [k for pattern, k in families if pattern.match(key)]
            assert len(matching) == 1, f"{key} matches {len(matching)} patterns of the schema"
            family = matching[0]
            raw = subprocess.run(
                ["redis-cli", "-p", str(port), "--raw", "get", key],
                capture_output=True, check=True,
            ).stdout.removesuffix(b"\n")
            text = raw.decode("utf-8")
            value = json.loads(text) if family["encoding"] == "json" else text
            record = {"$ref": "#/$defs/" + family["record"]}
            jsonschema.validate(
                value,
                {**schema, **record},
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
            seen.add(family["kind"])
    return seen


def test_every_record_in_the_store_matches_the_storage_schema(browser, service):
    """docs/storage.schema.json against what the default guest wrote: a machine token, a
    user's grant with a refreshed token, a redeemed code, and whatever the earlier tests of
    this module left. Every key on every node matches exactly one pattern, and its value
    validates."""
    if not service["redis_ports"]:
        pytest.skip("the embedded store cannot be listed from outside; the cluster run checks")
    machine = requests.post(
        service["issuer"] + "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=("machine", WEB_SECRET),
        timeout=WAIT_S,
    )
    assert machine.status_code == 200, machine.text
    session, verifier = sign_in(browser, service, scope="read offline_access")
    wait(browser).until(ready.presence_of_element_located((By.ID, "allow")))
    browser.find_element(By.ID, "allow").click()
    token_url = service["issuer"] + "/api/v1/oauth/token"
    first = session.fetch_token(
        token_url, authorization_response=back_at_the_app(browser, service), code_verifier=verifier
    )
    session.refresh_token(token_url, refresh_token=first["refresh_token"])

    seen = check_store_against_schema(service["redis_ports"])
    for kind in ("access_token", "grant", "grant_access_token", "code_redeemed",
                 "challenge_answered", "keyring"):
        assert kind in seen, f"no {kind} record was found to check"
