"""Clients managed at runtime through Hydra's client admin API, judged by Ory's own SDK
(@ory/hydra-client, in Node: tests/oidc/hydra-clients.mjs): it creates, lists page by
page, reads, replaces, patches and deletes clients, and registers a client that manages
itself (RFC 7591, 7592, the SDK's OidcApi); then a person signs in in Chromium,
through the example login app, to an app the SDK created, and the app's tokens end when
the app is deleted. She grants a second app, and Ory's Python SDK lists her consents and
revokes one app's: its access and refresh tokens end, the other's live on. On the
embedded store and on a three-master Redis Cluster.

Run by `make test` (after `make oidc-rp`, which installs the pinned npm packages):

    target/py-venv/bin/python -m pytest -q tests/browser/test_clients_at_runtime.py
"""

import json

import ory_hydra_client
import requests
from ory_hydra_client.api.o_auth2_api import OAuth2Api
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

from test_authorization_code import (  # noqa: F401 (fixtures)
    ADMIN_KEY,
    INITIAL_ACCESS_TOKEN,
    WAIT_S,
    back_at_the_app,
    browser,
    check_store_against_schema,
    service,
    sign_in,
    wait,
)
from test_openid_connect import node


def introspect(service, token):
    return requests.post(
        service["issuer"] + "/api/v1/oauth/introspect",
        data={"token": token},
        auth=("machine", "web-secret-0123456789"),
        timeout=WAIT_S,
    ).json()


def test_ory_sdk_manages_clients_and_a_person_signs_in_to_one(browser, service):
    out = node(
        "hydra-clients.mjs",
        {
            "ADMIN_URL": service["admin"],
            "ADMIN_KEY": ADMIN_KEY,
            "ISSUER": service["issuer"],
            "REDIRECT_URI": service["redirect_uri"],
            "INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
        },
    )
    assert out.count("ok ") == 9, out
    app = json.loads(out.strip().splitlines()[-1])
    credentials = (app["client_id"], app["client_secret"])

    session, verifier = sign_in(browser, service, scope="read offline_access",
                                credentials=credentials)
    wait(browser).until(ready.presence_of_element_located((By.ID, "allow")))
    assert "An app made at runtime" in browser.find_element(By.ID, "client").text
    browser.find_element(By.ID, "allow").click()
    token = session.fetch_token(
        service["issuer"] + "/api/v1/oauth/token",
        authorization_response=back_at_the_app(browser, service),
        code_verifier=verifier,
    )
    seen = introspect(service, token["access_token"])
    assert (seen["active"], seen["sub"], seen["client_id"]) == (True, "alice", app["client_id"])
    if service["redis_ports"]:
        kinds = check_store_against_schema(service["redis_ports"])
        assert {"client", "client_index"} <= kinds, kinds

    # Alice signs in to the configured web app too: two apps hold her grants.
    session, verifier = sign_in(browser, service, scope="read offline_access")
    wait(browser).until(ready.presence_of_element_located((By.ID, "allow")))
    browser.find_element(By.ID, "allow").click()
    web = session.fetch_token(
        service["issuer"] + "/api/v1/oauth/token",
        authorization_response=back_at_the_app(browser, service),
        code_verifier=verifier,
    )
    # Ory's Python SDK lists her consents and revokes the runtime app's.
    hydra = OAuth2Api(ory_hydra_client.ApiClient(
        ory_hydra_client.Configuration(host=service["admin"]),
        header_name="Authorization", header_value=f"Bearer {ADMIN_KEY}",
    ))
    sessions = hydra.list_o_auth2_consent_sessions(subject="alice")
    clients = sorted(s.consent_request.client.client_id for s in sessions)
    assert clients == sorted([app["client_id"], "web"]), clients
    hydra.revoke_o_auth2_consent_sessions(subject="alice", client=app["client_id"])
    for kind in ("access_token", "refresh_token"):
        assert introspect(service, token[kind]) == {"active": False}, kind
        assert introspect(service, web[kind])["active"] is True, kind
    assert [s.consent_request.client.client_id
            for s in hydra.list_o_auth2_consent_sessions(subject="alice")] == ["web"]
    # Forgetting her logins: the next sign-in asks who she is.
    hydra.revoke_o_auth2_login_sessions(subject="alice")

    deleted = requests.delete(
        f"{service['admin']}/admin/clients/{app['client_id']}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=WAIT_S,
    )
    assert deleted.status_code == 204
    assert introspect(service, web["access_token"])["active"] is True
