// Ory's own SDK for Hydra (@ory/hydra-client) against the service's client admin API:
// create, list page by page (the Link header's rel="next"), read, replace, patch and
// delete clients, and a created client getting tokens (oauth4webapi). Then it creates the
// web app the browser test signs a person in with, and prints it as the last line.
//
// Then dynamic registration (RFC 7591, 7592) through the SDK's OidcApi, with an initial
// access token.
//
// Env: ADMIN_URL, ADMIN_KEY, ISSUER, REDIRECT_URI, INITIAL_ACCESS_TOKEN.
import assert from "node:assert/strict";
import hydra from "@ory/hydra-client";
import * as oauth from "oauth4webapi";

const { Configuration, OAuth2Api, OidcApi } = hydra;
const { ADMIN_URL, ADMIN_KEY, ISSUER, REDIRECT_URI, INITIAL_ACCESS_TOKEN } = process.env;
const api = new OAuth2Api(
  new Configuration({
    basePath: ADMIN_URL,
    baseOptions: { headers: { Authorization: `Bearer ${ADMIN_KEY}` } },
  }),
);
const ok = (what) => console.log(`ok ${what}`);

/** The HTTP status of a call the SDK refused (it throws on anything but 2xx). */
async function status(call) {
  try {
    await call;
  } catch (e) {
    return e.response?.status;
  }
  return 200;
}

const issuer = new URL(ISSUER);
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { [oauth.allowInsecureRequests]: true }),
);
async function clientCredentials(id, secret, scope) {
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    { client_id: id },
    oauth.ClientSecretBasic(secret),
    new URLSearchParams({ scope }),
    { [oauth.allowInsecureRequests]: true },
  );
  return oauth.processClientCredentialsResponse(as, { client_id: id }, response);
}

// Created without an id or a secret: the service makes both, and shows the secret once.
const created = [];
for (let i = 0; i < 5; i++) {
  const { data, status: code } = await api.createOAuth2Client({
    oAuth2Client: {
      client_name: `batch job ${i}`,
      grant_types: ["client_credentials"],
      scope: "read write",
      metadata: { team: "payments", i },
    },
  });
  assert.equal(code, 201);
  assert.match(data.client_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(data.client_secret.length, 43);
  created.push(data);
}
ok("created five clients with generated ids and secrets");

const [first] = created;
const token = await clientCredentials(first.client_id, first.client_secret, "read");
assert.equal(token.scope, "read");
ok("a created client gets a token");

// Listed two by two, following rel="next" until there is none.
const seen = [];
let pageToken;
for (let pages = 0; ; pages++) {
  assert.ok(pages < 50, "the pages end");
  const { data, headers } = await api.listOAuth2Clients({ pageSize: 2, pageToken });
  assert.ok(data.length <= 2);
  assert.ok(data.every((c) => c.client_secret === undefined), "no secret in a list");
  seen.push(...data.map((c) => c.client_id));
  const next = /<([^>]*)>; rel="next"/.exec(headers.link ?? "");
  if (!next) break;
  pageToken = new URL(next[1], ADMIN_URL).searchParams.get("page_token");
}
assert.deepEqual(seen, [...seen].sort(), "by id");
assert.equal(new Set(seen).size, seen.length, "each once");
for (const c of created) assert.ok(seen.includes(c.client_id));
assert.ok(seen.includes("web"), "the configured clients are listed too");
const { data: named } = await api.listOAuth2Clients({ clientName: "batch job 3" });
assert.deepEqual(named.map((c) => c.client_id), [created[3].client_id]);
ok(`listed ${seen.length} clients in pages of two, and by name`);

const { data: read } = await api.getOAuth2Client({ id: first.client_id });
assert.equal(read.client_secret, undefined);
assert.deepEqual(read.metadata, { team: "payments", i: 0 });
ok("a client reads back without its secret");

// A replacement without a secret keeps it; a patch that sets one ends the old one.
const { data: replaced } = await api.setOAuth2Client({
  id: first.client_id,
  oAuth2Client: { ...read, client_name: "renamed", scope: "read" },
});
assert.equal(replaced.client_name, "renamed");
assert.equal(replaced.client_secret, undefined);
await clientCredentials(first.client_id, first.client_secret, "read");
const newSecret = "a-new-secret-of-at-least-32-characters";
const { data: patched } = await api.patchOAuth2Client({
  id: first.client_id,
  jsonPatch: [
    { op: "replace", path: "/client_secret", value: newSecret },
    { op: "add", path: "/metadata/owner", value: "ops" },
  ],
});
assert.equal(patched.client_secret, newSecret);
assert.deepEqual(patched.metadata, { team: "payments", i: 0, owner: "ops" });
await assert.rejects(clientCredentials(first.client_id, first.client_secret, "read"));
await clientCredentials(first.client_id, newSecret, "read");
ok("put keeps the secret, patch changes it");

const again = { client_id: first.client_id, grant_types: ["client_credentials"], scope: "read" };
assert.equal(await status(api.createOAuth2Client({ oAuth2Client: again })), 409);
assert.equal(await status(api.deleteOAuth2Client({ id: "web" })), 403);
assert.equal(
  await status(api.createOAuth2Client({ oAuth2Client: { client_secret: "short" } })),
  400,
);
ok("a taken id is 409, a configured client 403, a short secret 400");

for (const c of created) {
  const { status: code } = await api.deleteOAuth2Client({ id: c.client_id });
  assert.equal(code, 204);
}
assert.equal(await status(api.getOAuth2Client({ id: first.client_id })), 404);
await assert.rejects(clientCredentials(first.client_id, newSecret, "read"));
ok("deleted clients are gone");

// Dynamic registration: the initial access token registers, the registration access token
// reads, changes and deletes; the initial token manages nothing.
const registrar = new OidcApi(
  new Configuration({
    basePath: ISSUER,
    baseOptions: { headers: { Authorization: `Bearer ${INITIAL_ACCESS_TOKEN}` } },
  }),
);
const anonymous = new OidcApi(new Configuration({ basePath: ISSUER }));
const self = { client_name: "self-registered", grant_types: ["client_credentials"], scope: "read" };
assert.equal(await status(anonymous.createOidcDynamicClient({ oAuth2Client: self })), 401);
const { data: registered, status: registeredStatus } = await registrar.createOidcDynamicClient({
  oAuth2Client: self,
});
assert.equal(registeredStatus, 201);
assert.equal(
  registered.registration_client_uri,
  `${ISSUER}/oauth2/register/${registered.client_id}`,
);
await clientCredentials(registered.client_id, registered.client_secret, "read");
const owner = (token) =>
  new OidcApi(new Configuration({ basePath: ISSUER, accessToken: token }));
const { data: own } = await owner(registered.registration_access_token).getOidcDynamicClient({
  id: registered.client_id,
});
assert.equal(own.client_name, "self-registered");
assert.equal(await status(owner(INITIAL_ACCESS_TOKEN).getOidcDynamicClient({ id: registered.client_id })), 401);
const { data: renamed } = await owner(registered.registration_access_token).setOidcDynamicClient({
  id: registered.client_id,
  oAuth2Client: { ...self, client_name: "renamed itself" },
});
assert.equal(renamed.client_name, "renamed itself");
const { status: gone } = await owner(renamed.registration_access_token).deleteOidcDynamicClient({
  id: registered.client_id,
});
assert.equal(gone, 204);
await assert.rejects(clientCredentials(registered.client_id, registered.client_secret, "read"));
ok("a client registers itself, reads, changes and deletes itself");

const { data: web } = await api.createOAuth2Client({
  oAuth2Client: {
    client_name: "An app made at runtime",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: [REDIRECT_URI],
    scope: "read write offline_access",
  },
});
ok("created the web app");
console.log(JSON.stringify({ client_id: web.client_id, client_secret: web.client_secret }));
