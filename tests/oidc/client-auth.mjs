// Clients that authenticate with a JWT they sign (RFC 7523, OpenID Connect Core section 9),
// judged by panva's oauth4webapi: private_key_jwt for a configured client (its public key in
// oauth.clients[].jwks) and for one created at runtime through Hydra's client API (an RS256
// key), client_secret_jwt (HS256 under the configured secret), at the token, introspection
// and revocation endpoints. Assertions the service must refuse are built by hand with
// panva's jose, and one assertion sent 32 times at once over the replicas gets one token.
//
// Run by tests/browser/test_client_assertions.py: ISSUER, REPLICAS (comma-separated base
// URLs), ADMIN_URL, PRIVATE_JWK (the configured keyed client's key, with kid), MAC_SECRET.
import * as oauth from 'oauth4webapi';
import * as jose from 'jose';
import assert from 'node:assert/strict';
import { env, ok } from './sign-in.mjs';

const issuer = new URL(env('ISSUER'));
const replicas = env('REPLICAS').split(',');
const insecure = { [oauth.allowInsecureRequests]: true };
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
);
for (const method of ['private_key_jwt', 'client_secret_jwt']) {
  assert.ok(as.token_endpoint_auth_methods_supported.includes(method), method);
  assert.ok(as.introspection_endpoint_auth_methods_supported.includes(method), method);
}
assert.ok(as.token_endpoint_auth_signing_alg_values_supported.includes('ES256'));
assert.ok(as.token_endpoint_auth_signing_alg_values_supported.includes('HS256'));
assert.ok(!as.token_endpoint_auth_signing_alg_values_supported.includes('none'));
ok('discovery: private_key_jwt and client_secret_jwt, their algorithms, never none');

const machineToken = async (client, auth) =>
  oauth.processClientCredentialsResponse(as, client,
    await oauth.clientCredentialsGrantRequest(as, client, auth, { scope: 'read' }, insecure));

// The configured client signs with the key whose public half is in its jwks.
const privateJwk = JSON.parse(env('PRIVATE_JWK'));
const keyed = { client_id: 'keyed' };
const keyedAuth = oauth.PrivateKeyJwt({ key: await jose.importJWK(privateJwk, 'ES256'), kid: privateJwk.kid });
const issued = await machineToken(keyed, keyedAuth);
const seen = await oauth.processIntrospectionResponse(as, keyed,
  await oauth.introspectionRequest(as, keyed, keyedAuth, issued.access_token, insecure));
assert.equal(seen.active, true);
assert.equal(seen.client_id, 'keyed');
await oauth.processRevocationResponse(
  await oauth.revocationRequest(as, keyed, keyedAuth, issued.access_token, insecure));
const after = await oauth.processIntrospectionResponse(as, keyed,
  await oauth.introspectionRequest(as, keyed, keyedAuth, issued.access_token, insecure));
assert.equal(after.active, false);
ok('private_key_jwt (configured, ES256): a token, introspected and revoked with fresh assertions');

const mac = { client_id: 'mac' };
const macToken = await machineToken(mac, oauth.ClientSecretJwt(env('MAC_SECRET')));
assert.ok(macToken.access_token);
await assert.rejects(machineToken(mac, oauth.ClientSecretJwt('not-the-secret-0123456789-0123456789')),
  (e) => e.error === 'invalid_client');
ok('client_secret_jwt: HS256 under the configured secret, verified by the host; another secret refused');

// A client made at runtime through Hydra's client API, with an RS256 key.
const runtimeKey = await oauth.generateKeyPair('RS256', { extractable: true });
const created = await fetch(`${env('ADMIN_URL')}/admin/clients`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_id: 'signer', grant_types: ['client_credentials'], scope: 'read',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [{ ...(await jose.exportJWK(runtimeKey.publicKey)), kid: 'r1' }] },
  }),
});
assert.equal(created.status, 201, await created.clone().text());
assert.equal((await created.json()).client_secret, undefined);
const signer = { client_id: 'signer' };
const runtimeToken = await machineToken(signer, oauth.PrivateKeyJwt({ key: runtimeKey.privateKey, kid: 'r1' }));
assert.ok(runtimeToken.access_token);
ok('private_key_jwt (created at runtime with its jwks, RS256): a token, no secret ever');

// Assertions built by hand: each refusal is 401 invalid_client.
const tokenUrl = as.token_endpoint;
const esKey = await jose.importJWK(privateJwk, 'ES256');
const now = () => Math.floor(Date.now() / 1000);
const assertion = (claims = {}, key = esKey, alg = 'ES256') =>
  new jose.SignJWT({ iss: 'keyed', sub: 'keyed', aud: tokenUrl, jti: crypto.randomUUID(),
    iat: now(), exp: now() + 60, ...claims })
    .setProtectedHeader({ alg, kid: privateJwk.kid }).sign(key);
const post = (url, jwt) => fetch(`${url}/api/v1/oauth/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'client_credentials',
    scope: 'read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: jwt,
  }),
});
const stranger = (await jose.generateKeyPair('ES256')).privateKey;
const refusals = {
  'a key it did not register': await assertion({}, stranger),
  'another audience': await assertion({ aud: 'https://elsewhere.test' }),
  'expired': await assertion({ exp: now() - 120 }),
  'living an hour': await assertion({ exp: now() + 3600 }),
  'sub not iss': await assertion({ sub: 'mac' }),
  'no jti': await assertion({ jti: undefined }),
  'HS256 for a keyed client': await assertion({}, new TextEncoder().encode(env('MAC_SECRET')), 'HS256'),
};
for (const [what, jwt] of Object.entries(refusals)) {
  const response = await post(replicas[0], jwt);
  assert.equal(response.status, 401, what);
  assert.equal((await response.json()).error, 'invalid_client', what);
}
ok(`assertions refused with invalid_client: ${Object.keys(refusals).join(', ')}`);

// One assertion, 32 times at once, spread over every replica: one token, 31 refusals.
const once = await assertion();
const storm = await Promise.all(Array.from({ length: 32 }, (_, i) => post(replicas[i % replicas.length], once)));
const statuses = storm.map((r) => r.status).sort();
assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses}`);
assert.ok(statuses.filter((s) => s !== 200).every((s) => s === 401), `statuses: ${statuses}`);
ok(`replay storm: one assertion sent 32 times at once to ${replicas.length} replica(s), exactly one token`);
