// DPoP (RFC 9449) judged by panva's oauth4webapi: tokens bound to a key, for a machine
// (client credentials, with each algorithm the service takes) and for a person signed in to
// a public app (the code bound by dpop_jkt, refresh tokens bound to the key, userinfo). A
// resource server (oauth4webapi's validateJwtAccessToken) checks a DPoP-bound JWT access
// token with its proof. Proofs the service must refuse are built by hand with panva's jose,
// and one proof sent 32 times at once, spread over the replicas, gets exactly one token.
//
// Run by tests/browser/test_dpop.py: ISSUER, REPLICAS (comma-separated base URLs),
// LOGIN_PORT, LOGIN_PASSWORD, WEB_SECRET, REDIRECT_URI, API_AUDIENCE, NONCE (`required`
// when the service requires DPoP nonces).
import * as oauth from 'oauth4webapi';
import * as jose from 'jose';
import assert from 'node:assert/strict';
import { authorizationUrl, env, ok, signIn } from './sign-in.mjs';

const issuer = new URL(env('ISSUER'));
const replicas = env('REPLICAS').split(',');
const audience = env('API_AUDIENCE');
const redirectUri = env('REDIRECT_URI');
const nonceRequired = process.env.NONCE === 'required';
const insecure = { [oauth.allowInsecureRequests]: true };
const tokenUrl = `${issuer.href.replace(/\/$/, '')}/api/v1/oauth/token`;

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
);
assert.deepEqual(as.dpop_signing_alg_values_supported, ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256']);
ok('discovery: dpop_signing_alg_values_supported ES256, EdDSA (and its RFC 9864 name Ed25519), RS256, PS256');

// oauth4webapi's pattern: a use_dpop_nonce answer leaves the nonce with the DPoP handle,
// and the request is made again.
let nonceRetries = 0;
async function grant(request, process) {
  try {
    return await process(await request());
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    nonceRetries++;
    return process(await request());
  }
}

const machine = { client_id: 'api-client' };
const machineAuth = oauth.ClientSecretBasic(env('WEB_SECRET'));
const machineToken = (DPoP, extra = {}) =>
  grant(
    () => oauth.clientCredentialsGrantRequest(as, machine, machineAuth,
      { scope: 'read', resource: audience, ...extra }, { DPoP, ...insecure }),
    (response) => oauth.processClientCredentialsResponse(as, machine, response),
  );

// Client credentials, bound to an ES256 key: a DPoP-bound JWT, cnf.jkt its thumbprint.
const keyPair = await oauth.generateKeyPair('ES256');
const DPoP = oauth.DPoP(machine, keyPair);
const jkt = await DPoP.calculateThumbprint();
const issued = await machineToken(DPoP);
assert.equal(issued.token_type, 'dpop');
const claims = JSON.parse(Buffer.from(issued.access_token.split('.')[1], 'base64url'));
assert.deepEqual(claims.cnf, { jkt });
ok('client credentials with a proof: token_type DPoP, the JWT\'s cnf.jkt the key\'s thumbprint');

// A resource server takes it with a proof by the key, as oauth4webapi checks one.
let captured;
await oauth.protectedResourceRequest(issued.access_token, 'GET', new URL('https://api.test/things'),
  new Headers(), null, {
    DPoP,
    [oauth.customFetch]: async (url, init) => {
      captured = new Request(url, init);
      return new Response('{}');
    },
  });
const validated = await oauth.validateJwtAccessToken(as, captured, audience, { requireDPoP: true, ...insecure });
assert.equal(validated.cnf.jkt, jkt);
ok('resource server: validateJwtAccessToken takes the DPoP-bound JWT with the client\'s proof');

const introspected = await oauth.processIntrospectionResponse(as, machine,
  await oauth.introspectionRequest(as, machine, machineAuth, issued.access_token, insecure));
assert.equal(introspected.active, true);
assert.equal(introspected.token_type, 'DPoP');
assert.deepEqual(introspected.cnf, { jkt });
ok('introspection: active, token_type DPoP, cnf.jkt');

for (const alg of ['EdDSA', 'RS256', 'PS256']) {
  const handle = oauth.DPoP(machine, await oauth.generateKeyPair(alg));
  const token = await machineToken(handle);
  const { cnf } = JSON.parse(Buffer.from(token.access_token.split('.')[1], 'base64url'));
  assert.equal(cnf.jkt, await handle.calculateThumbprint(), alg);
}
ok('client credentials with EdDSA, RS256 and PS256 proofs: each bound to its key');

// A client registered with dpop_bound_access_tokens gets nothing without a proof.
const bound = { client_id: 'bound' };
await assert.rejects(
  oauth.processClientCredentialsResponse(as, bound, await oauth.clientCredentialsGrantRequest(
    as, bound, oauth.ClientSecretBasic(env('WEB_SECRET')), { scope: 'read' }, insecure)),
  (e) => e.error === 'invalid_dpop_proof',
);
ok('dpop_bound_access_tokens: a token request without a proof is invalid_dpop_proof');

// Proofs built by hand: a nonce first, when the service wants one.
const handKey = await jose.generateKeyPair('ES256', { extractable: true });
const handJwk = await jose.exportJWK(handKey.publicKey);
async function proof(claims = {}, header = {}, key = handKey.privateKey) {
  return new jose.SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: tokenUrl,
    iat: Math.floor(Date.now() / 1000), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: handJwk, ...header })
    .sign(key);
}
const post = (url, dpop) => fetch(`${url}/api/v1/oauth/token`, {
  method: 'POST',
  headers: { authorization: `Basic ${Buffer.from(`api-client:${env('WEB_SECRET')}`).toString('base64')}`, dpop },
  body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
});
let nonce;
if (nonceRequired) {
  const asked = await post(replicas[0], await proof());
  assert.equal((await asked.json()).error, 'use_dpop_nonce');
  nonce = asked.headers.get('dpop-nonce');
  assert.ok(nonce, 'use_dpop_nonce comes with a DPoP-Nonce header');
}
const refusals = {
  'wrong htm': await proof({ htm: 'GET', nonce }),
  'wrong htu': await proof({ htu: `${tokenUrl}/elsewhere`, nonce }),
  'an iat two minutes old': await proof({ iat: Math.floor(Date.now() / 1000) - 120, nonce }),
  'typ JWT': await proof({ nonce }, { typ: 'JWT' }),
  'a private key in jwk': await proof({ nonce }, { jwk: await jose.exportJWK(handKey.privateKey) }),
  'HS256': await new jose.SignJWT({ jti: 'h', htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000) })
    .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: handJwk }).sign(new Uint8Array(32)),
};
for (const [what, bad] of Object.entries(refusals)) {
  const response = await post(replicas[0], bad);
  assert.equal(response.status, 400, what);
  assert.equal((await response.json()).error, 'invalid_dpop_proof', what);
}
ok(`proofs refused with invalid_dpop_proof: ${Object.keys(refusals).join(', ')}`);

// One proof, 32 times at once, spread over every replica: one token, 31 refusals.
const once = await proof({ nonce });
const storm = await Promise.all(
  Array.from({ length: 32 }, (_, i) => post(replicas[i % replicas.length], once)),
);
const statuses = storm.map((r) => r.status).sort();
const errors = await Promise.all(storm.filter((r) => r.status !== 200).map(async (r) => (await r.json()).error));
assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses}`);
assert.deepEqual(new Set(errors), new Set(['invalid_dpop_proof']));
ok(`replay storm: one proof sent 32 times at once to ${replicas.length} replica(s), exactly one token`);

// A person signs in to a public app, the code bound to its key by dpop_jkt.
const app = { client_id: 'native', token_endpoint_auth_method: 'none' };
const appKey = await oauth.generateKeyPair('ES256');
const appDPoP = oauth.DPoP(app, appKey);
const verifier = oauth.generateRandomCodeVerifier();
const authorizeAt = authorizationUrl(as, {
  response_type: 'code',
  client_id: app.client_id,
  redirect_uri: redirectUri,
  scope: 'openid offline_access read',
  code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  dpop_jkt: await appDPoP.calculateThumbprint(),
});
const callback = new URL(await signIn(authorizeAt.href, redirectUri));
const params = oauth.validateAuthResponse(as, app, callback, oauth.expectNoState);
const tokens = await grant(
  () => oauth.authorizationCodeGrantRequest(as, app, oauth.None(), params, redirectUri, verifier,
    { DPoP: appDPoP, ...insecure }),
  (response) => oauth.processAuthorizationCodeResponse(as, app, response),
);
assert.equal(tokens.token_type, 'dpop');
ok('sign-in: the code bound by dpop_jkt, redeemed with a proof by that key: DPoP-bound tokens');

const info = await grant(
  () => oauth.userInfoRequest(as, app, tokens.access_token, { DPoP: appDPoP, ...insecure }),
  (response) => oauth.processUserInfoResponse(as, app, 'alice', response),
);
assert.equal(info.sub, 'alice');
const asBearer = await fetch(as.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
assert.equal(asBearer.status, 401);
assert.match(asBearer.headers.get('www-authenticate'), /^DPoP error="invalid_token"/);
ok('userinfo: the token with a proof by its key; the same token as Bearer is refused');

// The public app's refresh token is bound to its key: another key gets nothing.
const otherDPoP = oauth.DPoP(app, await oauth.generateKeyPair('ES256'));
await assert.rejects(
  grant(
    () => oauth.refreshTokenGrantRequest(as, app, oauth.None(), tokens.refresh_token, { DPoP: otherDPoP, ...insecure }),
    (response) => oauth.processRefreshTokenResponse(as, app, response),
  ),
  (e) => e.error === 'invalid_grant',
);
const refreshed = await grant(
  () => oauth.refreshTokenGrantRequest(as, app, oauth.None(), tokens.refresh_token, { DPoP: appDPoP, ...insecure }),
  (response) => oauth.processRefreshTokenResponse(as, app, response),
);
assert.equal(refreshed.token_type, 'dpop');
ok('refresh: the public app\'s refresh token works only with a proof by its key');

if (nonceRequired) {
  assert.ok(nonceRetries >= 1, 'oauth4webapi met use_dpop_nonce and retried');
  ok(`nonces: oauth4webapi retried ${nonceRetries} time(s) with the service's DPoP-Nonce`);
}
