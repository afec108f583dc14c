"""Every OAuth 2.0 decision of the service, in plain Python over a `host` object, so it runs
inside the component (`app.py` binds `host` to the imports of `wit/oauth.wit`) and under
any CPython with a fake host.

It mirrors the default Rust guest (`guest/src`) answer for answer: status codes, JSON
bodies byte for byte, error codes and descriptions, headers, log lines, and the store's
key layout and record format, so both guests can serve from the same store.

`host` provides:
    store_get(key) -> bytes | None
    store_insert(key, value, ttl_ms) -> bool
    store_delete(key) -> bool
    rate_limit(client_id) -> int | None   milliseconds to wait, or None when admitted
        each raising StoreUnavailable or StoreRejected
    now_ms() -> int                    milliseconds since the Unix epoch
    random_bytes(n) -> bytes           the host's secure randomness
    log(level, message)                level: "debug", "info" or "warn"
    issuer() -> str
    client(client_id) -> Client | None
    scopes_supported() -> list[str]
"""

import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from json.decoder import scanstring

from debug_str import debug_str

NAME = "tokenginx-python-guest"
VERSION = "0.1.0"

# The one grant this guest implements; any other answers `unsupported_grant_type`.
CLIENT_CREDENTIALS = "client_credentials"
# 256 bits of randomness per token.
TOKEN_BYTES = 32
# The key family of access tokens (the Go guide's `oauth:access_token:`).
ACCESS_TOKEN_PREFIX = "oauth:access_token:"
# Tokens are 43 base64url characters; anything much longer is not one of ours.
MAX_TOKEN_LEN = 512

TOKEN_PATH = "/api/v1/oauth/token"
INTROSPECTION_PATH = "/api/v1/oauth/introspect"
REVOCATION_PATH = "/api/v1/oauth/revoke"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

CHALLENGE = 'Basic realm="tokenginx", charset="UTF-8"'

# Compared against when the client is unknown: no secret hashes to it, and the comparison
# costs the same as for a known client.
NO_SECRET = bytes(32)

# What Rust's `str::trim` removes: the Unicode White_Space characters.
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX = "0123456789abcdefABCDEF"


# ---------------------------------------------------------------------------------------
# What the host hands in and gets back.


@dataclass
class Client:
    client_id: str
    secret_sha256: bytes
    scopes: list
    default_scopes: list
    grant_types: list
    access_token_ttl: int  # seconds


@dataclass
class Request:
    params: list  # [(name, value)], in the order sent
    authorization: "str | None" = None
    client_ip: str = ""


@dataclass
class Response:
    status: int
    headers: list = field(default_factory=list)
    body: str = ""


class StoreUnavailable(Exception):
    """The store is unreachable or too slow: answer 503."""


class StoreRejected(Exception):
    """The host refused the operation: a bug in this guest."""


# ---------------------------------------------------------------------------------------
# Responses (RFC 6749 section 5.1 and 5.2).


class OAuthError(Exception):
    def __init__(self, status, error, description, challenge=False, retry_after=None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        # Send `WWW-Authenticate: Basic` (401 when Basic was tried or nothing was sent).
        self.challenge = challenge
        # Send `Retry-After` with these seconds (429).
        self.retry_after = retry_after

    def response(self):
        response = json_response(
            self.status, {"error": self.error, "error_description": self.description}
        )
        if self.challenge:
            response.headers.append(("WWW-Authenticate", CHALLENGE))
        if self.retry_after is not None:
            response.headers.append(("Retry-After", str(self.retry_after)))
        return response


def invalid_request(description):
    return OAuthError(400, "invalid_request", description)


def invalid_client(description, challenge):
    return OAuthError(401, "invalid_client", description, challenge)


def invalid_scope(description):
    return OAuthError(400, "invalid_scope", description)


def temporarily_unavailable():
    return OAuthError(
        503, "temporarily_unavailable", "the token store is unavailable; try again later"
    )


def rate_limited(wait_ms):
    """429: the client spent its request budget; whole seconds, rounded up."""
    seconds = max(1, -(-wait_ms // 1000))
    return OAuthError(
        429,
        "temporarily_unavailable",
        f"this client's rate limit is spent; retry after {seconds} s",
        retry_after=seconds,
    )


def server_error(description):
    return OAuthError(500, "server_error", description)


# One encoder for every answer: `json.dumps` with options builds a new one at each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def to_json(value):
    """The bytes serde_json writes for `value`: compact, UTF-8, the same escapes."""
    return _ENCODER.encode(value)


def json_response(status, body):
    """A JSON response that no cache may keep (RFC 6749 section 5.1)."""
    return Response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
        ],
        to_json(body),
    )


def store_failure(host, error):
    """The answer for a failed store operation: 503 when the store is away, 500 otherwise."""
    why = error.args[0] if error.args else ""
    if isinstance(error, StoreUnavailable):
        host.log("warn", f"token store unavailable: {why}")
        return temporarily_unavailable()
    host.log("warn", f"token store refused an operation: {why}")
    return server_error("internal error")


def finish(answer, host, req):
    try:
        return answer(host, req)
    except OAuthError as e:
        return e.response()


# ---------------------------------------------------------------------------------------
# Parameters and client authentication (RFC 6749 sections 2.3 and 3.1).


def param(req, name):
    """The value of `name`; a parameter sent without a value counts as omitted."""
    for n, v in req.params:
        if n == name:
            return v or None
    return None


def authenticate(host, req):
    """The client that authenticated this request, or raises the RFC's error."""
    client_id, secret, basic = credentials(req)
    client = host.client(client_id)
    presented = hashlib.sha256(secret.encode("utf-8")).digest()
    # Unknown clients cost the same comparison as known ones.
    expected = client.secret_sha256 if client is not None else NO_SECRET
    if hmac.compare_digest(presented, bytes(expected)) and client is not None:
        return client
    raise invalid_client("client authentication failed", basic)


def credentials(req):
    """(client_id, secret, sent with Basic) of `client_secret_basic` or `client_secret_post`."""
    body_id = param(req, "client_id")
    body_secret = param(req, "client_secret")
    header = req.authorization

    if header is None:
        if body_id is not None and body_secret is not None:
            return body_id, body_secret, False
        # No credentials, or an id without a secret (no public clients here): challenge.
        raise invalid_client("client authentication is required", True)

    encoded = strip_scheme(header, "basic")
    if encoded is None:
        raise invalid_client("the Authorization header must use the Basic scheme", True)
    if body_secret is not None:
        raise invalid_request("the client used more than one authentication method")
    decoded = decode_basic(encoded)
    if decoded is None:
        raise invalid_client("malformed Basic credentials", True)
    client_id, secret = decoded
    if body_id is not None and body_id != client_id:
        raise invalid_request("client_id does not match the authenticated client")
    return client_id, secret, True


def strip_scheme(header, scheme):
    """The credentials of `<scheme> <rest>`, the scheme matched ASCII-case-insensitively."""
    name, space, rest = header.partition(" ")
    if not space or not (name.isascii() and name.lower() == scheme):
        return None
    return rest.strip(RUST_WHITESPACE)


def decode_basic(encoded):
    """`base64(form-encode(id) ":" form-encode(secret))`, section 2.3.1; None if malformed."""
    # Only the canonical encoding of some bytes is accepted (padding required, no stray
    # characters, zero trailing bits), as with Rust's `base64` STANDARD engine.
    if not encoded.isascii():
        return None
    raw = encoded.encode("ascii")
    try:
        data = binascii.a2b_base64(raw)
    except binascii.Error:
        return None
    if binascii.b2a_base64(data, newline=False) != raw:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    client_id, colon, secret = text.partition(":")
    if not colon:
        return None
    client_id = form_decode(client_id)
    secret = form_decode(secret)
    if not client_id or not secret:
        return None
    return client_id, secret


def form_decode(s):
    """`application/x-www-form-urlencoded` decoding of one component; None if malformed."""
    if "%" not in s:
        return s.replace("+", " ")
    data = s.encode("utf-8")
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x2B:  # +
            out.append(0x20)
            i += 1
        elif b == 0x25:  # %
            pair = data[i + 1 : i + 3]
            if len(pair) != 2 or chr(pair[0]) not in _HEX or chr(pair[1]) not in _HEX:
                return None
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(b)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------------------
# Scope (RFC 6749 section 3.3).


def grant_scope(client, requested):
    """The scopes to grant, sorted, without repeats, joined by spaces; or raises."""
    if requested is None:
        scopes = list(client.default_scopes)
    else:
        scopes = requested.split(" ")
        for s in scopes:
            if not is_scope_token(s):
                raise invalid_scope(f"malformed scope token {debug_str(s[:64])}")
        for s in scopes:
            if s not in client.scopes:
                raise invalid_scope(f"scope {debug_str(s)} is not allowed for this client")
    if not scopes:
        raise invalid_scope("no scope was requested and the client has no default scope")
    # Code point order is the byte order Rust sorts UTF-8 strings in.
    return " ".join(sorted(set(scopes)))


def is_scope_token(s):
    """`scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`"""
    return bool(s) and all(c == "!" or "#" <= c <= "[" or "]" <= c <= "~" for c in s)


# ---------------------------------------------------------------------------------------
# The token record: never the token itself, a record at a key derived from its SHA-256.


RECORD_FIELDS = (
    "user_id",
    "scope",
    "created_at",
    "client_ip",
    "client_id",
    "expires_at",
    "token_type",
)
_NUMBER_FIELDS = ("created_at", "expires_at")
_U64_MAX = (1 << 64) - 1


def access_token_key(token):
    """`oauth:access_token:{<hex sha256(token)>}`, or None when `token` cannot be ours."""
    if not token or len(token) > MAX_TOKEN_LEN or not _TOKEN_CHARS.issuperset(token):
        return None
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    return ACCESS_TOKEN_PREFIX + "{" + digest + "}"


class RecordError(ValueError):
    pass


# Reading a record the way serde_json reads the Rust guest's `TokenRecord`, so both guests
# accept and refuse the same bytes: an object (or an array of the seven fields in order),
# unknown members ignored whatever their depth, a record field twice refused, the numbers
# u64 (no sign, fraction or exponent), the strings valid UTF-8. Containers are walked with
# an explicit stack: a deeply nested value must not exhaust the Wasm call stack.

_WS = re.compile(r"[ \t\n\r]*")


def _refuse_constant(name):
    raise RecordError(f"invalid number {name}")


def _integer(literal):
    # serde_json reads a negative integer as i64 (and `-0` as a float): never a u64.
    return -1 if literal.startswith("-") else int(literal)


_SCALARS = json.JSONDecoder(parse_int=_integer, parse_constant=_refuse_constant)


def _ws(s, i):
    return _WS.match(s, i).end()


def _expect(s, i, char):
    if not s.startswith(char, i):
        raise RecordError(f"expected {char!r} at {i}")
    return i + 1


def _key(s, i):
    """A member's name and the index of its value."""
    key, i = scanstring(s, _expect(s, _ws(s, i), '"'))
    return key, _ws(s, _expect(s, _ws(s, i), ":"))


def _scalar(s, i):
    """A string, number, true, false or null at `i`, and the index after it."""
    if s.startswith('"', i):
        return scanstring(s, i + 1)
    if s[i : i + 1] in ("[", "{", ""):
        raise RecordError(f"expected a scalar at {i}")
    return _SCALARS.raw_decode(s, i)


def _checked(name, value):
    """`value` as record field `name`, or raises."""
    if name in _NUMBER_FIELDS:
        if type(value) is not int or not 0 <= value <= _U64_MAX:
            raise RecordError(f"invalid type for `{name}`, expected u64")
    elif type(value) is not str:
        raise RecordError(f"invalid type for `{name}`, expected a string")
    else:
        value.encode("utf-8")  # invalid UTF-8 or a lone surrogate escape: no string
    return value


def _field(s, i, name):
    """The value of record field `name` at `i`, checked, and the index after it."""
    value, i = _scalar(s, i)
    return _checked(name, value), i


def _skip(s, i):
    """The index after the JSON value at `i`, which is checked but not kept."""
    open_ = []
    while True:
        i = _ws(s, i)
        if s.startswith("[", i) or s.startswith("{", i):
            open_.append(s[i])
            i = _ws(s, i + 1)
            if s.startswith("]" if open_[-1] == "[" else "}", i):
                open_.pop()
                i += 1
            elif open_[-1] == "{":
                i = _key(s, i)[1]
                continue
            else:
                continue
        else:
            i = _scalar(s, i)[1]
        # After a value: close what ends here, or go on to the next element or member.
        while open_:
            i = _ws(s, i)
            if s.startswith(",", i):
                i += 1
                if open_[-1] == "{":
                    i = _key(s, i)[1]
                break
            i = _expect(s, i, "]" if open_[-1] == "[" else "}")
            open_.pop()
        if not open_:
            return i


def _flat_pairs(pairs):
    """The record of a flat object's members, checked as the explicit parser checks them;
    a member twice is left to that parser (serde ignores an unknown one twice)."""
    members = dict(pairs)
    if len(members) != len(pairs):
        raise RecordError("a member twice")
    "".join(members).encode("utf-8")  # serde reads the member names as strings
    return {name: _checked(name, members[name]) for name in RECORD_FIELDS}


_FLAT = json.JSONDecoder(
    object_pairs_hook=_flat_pairs, parse_int=_integer, parse_constant=_refuse_constant
)


def _flat_record(s):
    """The record of `s` read by the C scanner of `json`, when `s` is one object with
    nothing nested in it (as every record a guest writes is): nothing to recurse into,
    so no depth to fear. None when it is not that, or not a whole record; then the
    explicit parser below decides, and words the error."""
    if s.count("{") != 1 or "[" in s:
        return None
    i = _ws(s, 0)
    if not s.startswith("{", i):
        return None
    try:
        record, i = _FLAT.scan_once(s, i)
    except (ValueError, LookupError, RecursionError, StopIteration):
        return None
    return record if _ws(s, i) == len(s) else None


def parse_record(data):
    """The stored record as a dict of the seven fields; raises ValueError when the Rust
    guest could not read it either."""
    s = bytes(data).decode("utf-8", "surrogateescape")
    record = _flat_record(s)
    return record if record is not None else _any_record(s)


def _any_record(s):
    """The record of `s` in any form serde reads, walked with an explicit stack."""
    record = {}
    i = _ws(s, 0)
    if s.startswith("[", i):
        # serde also reads a struct from an array of its fields, in order.
        i += 1
        for n, name in enumerate(RECORD_FIELDS):
            i = _ws(s, _expect(s, _ws(s, i), ",") if n else i)
            record[name], i = _field(s, i, name)
        i = _expect(s, _ws(s, i), "]")
    else:
        i = _ws(s, _expect(s, i, "{"))
        more = not s.startswith("}", i)
        i = i if more else i + 1
        while more:
            name, i = _key(s, i)
            name.encode("utf-8")  # serde reads the member names as strings
            if name not in RECORD_FIELDS:
                i = _skip(s, i)
            elif name in record:
                raise RecordError(f"duplicate field `{name}`")
            else:
                record[name], i = _field(s, i, name)
            i = _ws(s, i)
            more = s.startswith(",", i)
            i = i + 1 if more else _expect(s, i, "}")
        missing = [name for name in RECORD_FIELDS if name not in record]
        if missing:
            raise RecordError(f"missing field `{missing[0]}`")
    if _ws(s, i) != len(s):
        raise RecordError(f"trailing characters at {i}")
    return record


def live_record(host, token):
    """The record of `token` if it exists and has not expired."""
    key = access_token_key(token)
    if key is None:
        return None
    try:
        data = host.store_get(key)
    except (StoreUnavailable, StoreRejected) as e:
        raise store_failure(host, e) from None
    if data is None:
        return None
    try:
        record = parse_record(data)
    except (ValueError, RecursionError) as e:
        host.log("warn", f"unreadable token record: {e}")
        return None
    # u64 arithmetic, as the Rust guest's release build does it.
    expires_ms = (record["expires_at"] * 1000) & _U64_MAX
    return record if expires_ms > host.now_ms() else None


# ---------------------------------------------------------------------------------------
# The endpoints.


def token(host, req):
    """RFC 6749 section 3.2, the `client_credentials` grant (section 4.4)."""
    return finish(_issue, host, req)


def _issue(host, req):
    grant_type = param(req, "grant_type")
    if grant_type is None:
        raise invalid_request("missing parameter grant_type")
    client = authenticate(host, req)
    if grant_type != CLIENT_CREDENTIALS:
        raise OAuthError(
            400,
            "unsupported_grant_type",
            f"grant type {debug_str(grant_type[:64])} is not supported",
        )
    if CLIENT_CREDENTIALS not in client.grant_types:
        raise OAuthError(
            400,
            "unauthorized_client",
            "this client may not use the client_credentials grant",
        )
    scope = grant_scope(client, param(req, "scope"))
    # Charged only once the client has authenticated, and before anything is written.
    try:
        wait_ms = host.rate_limit(client.client_id)
    except (StoreUnavailable, StoreRejected) as e:
        raise store_failure(host, e) from None
    if wait_ms is not None:
        raise rate_limited(wait_ms)

    now = host.now_ms() // 1000
    ttl = client.access_token_ttl
    record = {
        "user_id": client.client_id,
        "scope": scope,
        "created_at": now,
        "client_ip": req.client_ip,
        "client_id": client.client_id,
        "expires_at": now + ttl,
        "token_type": "Bearer",
    }
    value = to_json(record).encode("utf-8")

    # 256 random bits never collide in practice; `insert` (SET NX) makes sure a collision
    # could never overwrite another client's token.
    for _ in range(3):
        token = new_token(host)
        key = access_token_key(token)
        try:
            inserted = host.store_insert(key, value, ttl * 1000)
        except (StoreUnavailable, StoreRejected) as e:
            raise store_failure(host, e) from None
        if inserted:
            host.log(
                "info",
                f"issued access token to client {debug_str(client.client_id)} "
                f"with scope {debug_str(scope)}",
            )
            return json_response(
                200,
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": ttl,
                    "scope": scope,
                },
            )
    raise server_error("could not store a new token")


def new_token(host):
    """32 bytes of the host's randomness, base64url without padding (43 characters)."""
    data = bytes(host.random_bytes(TOKEN_BYTES))
    if len(data) != TOKEN_BYTES:
        # The Rust guest panics here: the call traps and the host answers 500.
        raise RuntimeError("host returned short randomness")
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii").translate(
        _URLSAFE
    )


_URLSAFE = str.maketrans("+/", "-_")


def introspect(host, req):
    """RFC 7662."""
    return finish(_introspect, host, req)


def _introspect(host, req):
    authenticate(host, req)
    token = param(req, "token")
    if token is None:
        raise invalid_request("missing parameter token")
    # `token_type_hint` is only a hint (section 2.1): there is one token type to search.
    record = live_record(host, token)
    if record is None:
        # Unknown, expired and revoked tokens look the same (section 2.2).
        return json_response(200, {"active": False})
    return json_response(
        200,
        {
            "active": True,
            "scope": record["scope"],
            "client_id": record["client_id"],
            "sub": record["user_id"],
            "token_type": record["token_type"],
            "exp": record["expires_at"],
            "iat": record["created_at"],
            "iss": host.issuer(),
        },
    )


def revoke(host, req):
    """RFC 7009."""
    return finish(_revoke, host, req)


def _revoke(host, req):
    client = authenticate(host, req)
    token = param(req, "token")
    if token is None:
        raise invalid_request("missing parameter token")
    # Unknown and already invalid tokens answer 200 too (section 2.2). A client revokes only
    # its own tokens; another's stays active, and the answer does not tell the difference.
    record = live_record(host, token)
    if record is not None:
        if record["client_id"] == client.client_id:
            try:
                host.store_delete(access_token_key(token))
            except (StoreUnavailable, StoreRejected) as e:
                raise store_failure(host, e) from None
            host.log("info", f"client {debug_str(client.client_id)} revoked an access token")
        else:
            host.log(
                "warn",
                f"client {debug_str(client.client_id)} tried to revoke a token of client "
                f"{debug_str(record['client_id'])}",
            )
    return Response(200, [("Cache-Control", "no-store")], "")


def metadata(host):
    """RFC 8414 authorization server metadata."""
    issuer = host.issuer()
    document = {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "grant_types_supported": [CLIENT_CREDENTIALS],
        # No authorization endpoint, so no response type.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": host.scopes_supported(),
    }
    return Response(
        200,
        [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=300")],
        to_json(document),
    )
