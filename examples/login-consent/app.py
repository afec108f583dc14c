"""A login and consent app for TokenginX, written as one is for Ory Hydra.

The service owns no user accounts and no login page: its authorization endpoint sends the
browser here with a `login_challenge`, and then with a `consent_challenge`. This app reads and
answers them through TokenginX's admin API, using Ory's own SDK for Hydra
(`ory-hydra-client`), unchanged: that is the compatibility the service promises.

One demo user (`alice`, password from DEMO_USER_PASSWORD). Environment:

    TOKENGINX_ADMIN_URL      the admin API (default http://127.0.0.1:4445)
    TOKENGINX_ADMIN_API_KEY  its key, when the service sets admin.api_key
    LOGIN_APP_PORT           where this app listens (default 3000, on 127.0.0.1)
    DEMO_USER_PASSWORD       alice's password (default alice-password)

    python3 examples/login-consent/app.py
"""

import hmac
import html
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ory_hydra_client
from ory_hydra_client.api.o_auth2_api import OAuth2Api
from ory_hydra_client.models import (
    AcceptOAuth2ConsentRequest,
    AcceptOAuth2ConsentRequestSession,
    AcceptOAuth2LoginRequest,
    RejectOAuth2Request,
)

ADMIN_URL = os.environ.get("TOKENGINX_ADMIN_URL", "http://127.0.0.1:4445")
API_KEY = os.environ.get("TOKENGINX_ADMIN_API_KEY")
USERS = {"alice": os.environ.get("DEMO_USER_PASSWORD", "alice-password")}
# What the ID token and userinfo say of each user (Hydra's `session.id_token`), with the
# `openid` scope.
PROFILES = {"alice": {"name": "Alice Liddell", "email": "alice@example.test", "email_verified": True}}


def admin() -> OAuth2Api:
    config = ory_hydra_client.Configuration(host=ADMIN_URL)
    if API_KEY:
        client = ory_hydra_client.ApiClient(
            config, header_name="Authorization", header_value=f"Bearer {API_KEY}"
        )
    else:
        client = ory_hydra_client.ApiClient(config)
    return OAuth2Api(client)


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def login_form(challenge: str, error: str = "") -> str:
    message = f'<p id="error">{html.escape(error)}</p>' if error else ""
    return page(
        "Sign in",
        f"""{message}<form method="post" action="/login">
<input type="hidden" name="challenge" value="{html.escape(challenge)}">
<label>User <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<label><input id="remember" name="remember" type="checkbox"> Remember me</label>
<button id="signin" name="action" value="signin">Sign in</button>
<button id="cancel" name="action" value="cancel">Cancel</button>
</form>""",
    )


def consent_form(challenge: str, client_name: str, scopes: list) -> str:
    boxes = "".join(
        f'<label><input type="checkbox" name="scope" value="{html.escape(s)}" checked> '
        f"{html.escape(s)}</label>"
        for s in scopes
    )
    return page(
        "Allow access",
        f"""<p id="client">{html.escape(client_name)} asks for:</p>
<form method="post" action="/consent">
<input type="hidden" name="challenge" value="{html.escape(challenge)}">{boxes}
<label><input id="remember" name="remember" type="checkbox"> Remember</label>
<button id="allow" name="action" value="allow">Allow</button>
<button id="deny" name="action" value="deny">Deny</button>
</form>""",
    )


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(self.get)

    def do_POST(self):
        self.answer(self.post)

    def answer(self, handle):
        """An unknown, expired or answered challenge (the admin API's 404 or 410) is a page
        that says so, not a dropped connection."""
        try:
            handle()
        except ory_hydra_client.exceptions.ApiException as e:
            if e.status not in (404, 410):
                raise
            self.send_response(400)
            body = page(
                "Sign-in expired",
                "<p id=\"error\">This sign-in link is unknown, used or expired: start again "
                "from the app.</p>",
            ).encode()
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def get(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/login" and "login_challenge" in query:
            challenge = query["login_challenge"]
            request = admin().get_o_auth2_login_request(challenge)
            if request.skip:
                accepted = admin().accept_o_auth2_login_request(
                    challenge, AcceptOAuth2LoginRequest(subject=request.subject)
                )
                return self.redirect(accepted.redirect_to)
            return self.html(login_form(challenge))
        if url.path == "/consent" and "consent_challenge" in query:
            challenge = query["consent_challenge"]
            request = admin().get_o_auth2_consent_request(challenge)
            client = request.client
            if request.skip or (client and client.skip_consent):
                return self.accept_consent(
                    challenge, request.subject, request.requested_scope or [], False
                )
            name = (client.client_name or client.client_id) if client else "An app"
            return self.html(consent_form(challenge, name, request.requested_scope or []))
        self.send_error(404)

    def post(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        field = lambda name: form.get(name, [""])[0]
        challenge = field("challenge")
        if self.path == "/login":
            if field("action") != "signin":
                return self.reject(admin().reject_o_auth2_login_request, challenge)
            user, password = field("username"), field("password")
            expected = USERS.get(user)
            if expected is None or not hmac.compare_digest(password, expected):
                return self.html(login_form(challenge, "Wrong user or password."))
            accepted = admin().accept_o_auth2_login_request(
                challenge,
                AcceptOAuth2LoginRequest(
                    subject=user, remember=field("remember") == "on", remember_for=3600
                ),
            )
            return self.redirect(accepted.redirect_to)
        if self.path == "/consent":
            if field("action") != "allow":
                return self.reject(admin().reject_o_auth2_consent_request, challenge)
            request = admin().get_o_auth2_consent_request(challenge)
            return self.accept_consent(
                challenge, request.subject, form.get("scope", []), field("remember") == "on"
            )
        self.send_error(404)

    def accept_consent(self, challenge: str, subject: str, scopes: list, remember: bool):
        accepted = admin().accept_o_auth2_consent_request(
            challenge,
            AcceptOAuth2ConsentRequest(
                grant_scope=scopes,
                remember=remember,
                remember_for=3600,
                session=AcceptOAuth2ConsentRequestSession(
                    access_token={"consented_by": "example-login-app"},
                    id_token=PROFILES.get(subject, {}),
                ),
            ),
        )
        self.redirect(accepted.redirect_to)

    def reject(self, call, challenge: str):
        rejected = call(
            challenge,
            RejectOAuth2Request(
                error="access_denied", error_description="The user said no."
            ),
        )
        self.redirect(rejected.redirect_to)

    def redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def html(self, body: str):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("LOGIN_APP_PORT", "3000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"login app on http://127.0.0.1:{port}, admin API {ADMIN_URL}", flush=True)
    server.serve_forever()
