"""Starts grants for the refresh benchmark: runs the authorization code flow N times, playing
the browser and the login app (the admin API's login and consent accepts), redeems each code,
and prints one refresh token a line. Standard library only.

    python3 bench/grants.py ISSUER ADMIN CLIENT_ID SECRET REDIRECT_URI N
"""

import base64
import hashlib
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

issuer, admin, client_id, secret, redirect_uri, count = sys.argv[1:7]
basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class Keep(urllib.request.HTTPRedirectHandler):
    """Redirects are read, not followed."""

    def redirect_request(self, *args, **kwargs):
        return None


def location(opener, url: str) -> str:
    try:
        opener.open(url)
    except urllib.error.HTTPError as e:
        if e.code == 302:
            return e.headers["Location"]
        raise
    raise RuntimeError(f"{url}: no redirect")


def accept(kind: str, challenge: str, body: dict) -> str:
    request = urllib.request.Request(
        f"{admin}/admin/oauth2/auth/requests/{kind}/accept?{kind}_challenge={challenge}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["redirect_to"]


def query(url: str, name: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)[name][0]


def grant() -> str:
    opener = urllib.request.build_opener(Keep, urllib.request.HTTPCookieProcessor())
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = urllib.parse.urlencode({
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "read offline_access",
        "state": "bench",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    })
    login = location(opener, f"{issuer}/api/v1/oauth/authorize?{params}")
    back = accept("login", query(login, "login_challenge"), {"subject": "bench-user"})
    consent = location(opener, back)
    back = accept("consent", query(consent, "consent_challenge"),
                  {"grant_scope": ["read", "offline_access"]})
    code = query(location(opener, back), "code")
    token = urllib.request.Request(
        f"{issuer}/api/v1/oauth/token",
        data=urllib.parse.urlencode({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }).encode(),
        headers={"Authorization": basic},
    )
    with urllib.request.urlopen(token) as response:
        return json.load(response)["refresh_token"]


for _ in range(int(count)):
    print(grant())
