"""The component's export layer, the Python twin of `guest/src/wasm.rs`: binds the `host`
that `oauth.py` expects to the imports of `wit/oauth.wit` (world `guest`), and forwards
each export of `tokenginx:oauth/handler` to it. Nothing here decides anything.

Built by `build.sh` with componentize-py, which generates the `wit_world` bindings and
pre-initializes CPython with this module imported, so a request pays for no import.
"""

import oauth
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import handler
from wit_world.imports import clock, log, random, rate_limit, settings, store

_LEVELS = {"debug": log.Level.DEBUG, "info": log.Level.INFO, "warn": log.Level.WARN}


def _store_error(err):
    """The `store-error` inside a raised `Err`, as oauth.py's exceptions."""
    if isinstance(err.value, store.StoreError_Unavailable):
        return oauth.StoreUnavailable(err.value.value)
    return oauth.StoreRejected(err.value.value)


class Imports:
    """The component's imports, as the `host` of oauth.py."""

    def store_get(self, key):
        try:
            return store.get(key)
        except Err as e:
            raise _store_error(e) from None

    def store_insert(self, key, value, ttl_ms):
        try:
            return store.insert(key, value, ttl_ms)
        except Err as e:
            raise _store_error(e) from None

    def store_delete(self, key):
        try:
            return store.delete(key)
        except Err as e:
            raise _store_error(e) from None

    def rate_limit(self, client_id):
        try:
            return rate_limit.charge(client_id)
        except Err as e:
            raise _store_error(e) from None

    def now_ms(self):
        return clock.now_ms()

    def random_bytes(self, n):
        # The host's OS randomness; never Python's own `random` or `os.urandom`.
        return random.bytes(n)

    def log(self, level, message):
        log.log(_LEVELS[level], message)

    def issuer(self):
        return settings.issuer()

    def client(self, client_id):
        c = settings.find_client(client_id)
        if c is None:
            return None
        return oauth.Client(
            client_id=c.client_id,
            secret_sha256=c.secret_sha256,
            scopes=c.scopes,
            default_scopes=c.default_scopes,
            grant_types=c.grant_types,
            access_token_ttl=c.access_token_ttl,
        )

    def scopes_supported(self):
        return settings.scopes_supported()


_HOST = Imports()


def _request(req):
    return oauth.Request(req.params, req.authorization, req.client_ip)


def _response(r):
    return handler.Response(status=r.status, headers=r.headers, body=r.body)


class Handler(exports.Handler):
    def info(self):
        return handler.GuestInfo(name=oauth.NAME, version=oauth.VERSION)

    def token(self, req):
        return _response(oauth.token(_HOST, _request(req)))

    def introspect(self, req):
        return _response(oauth.introspect(_HOST, _request(req)))

    def revoke(self, req):
        return _response(oauth.revoke(_HOST, _request(req)))

    def metadata(self):
        return _response(oauth.metadata(_HOST))
