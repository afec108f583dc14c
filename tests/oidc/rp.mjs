// An OpenID Connect relying party and a resource server, written with panva's
// openid-client (an OpenID-certified relying party) and oauth4webapi, judging the service:
// discovery, a user signed in through the example login app (over HTTP, as a browser
// follows redirects), the ID token (its signature checked against the JWKS), userinfo, a
// refresh's new ID token, and JWT access tokens (RFC 9068) validated offline.
//
// Run by tests/browser/test_openid_connect.py, which starts the service and the login app
// and passes them in the environment:
//   ISSUER, LOGIN_PASSWORD, WEB_SECRET, REDIRECT_URI, API_AUDIENCE
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import assert from 'node:assert/strict';
import { env, ok, signIn } from './sign-in.mjs';

const issuer = new URL(env('ISSUER'));
const redirectUri = env('REDIRECT_URI');
const audience = env('API_AUDIENCE');
const insecure = { execute: [client.allowInsecureRequests] };

const config = await client.discovery(issuer, 'web', undefined, client.ClientSecretBasic(env('WEB_SECRET')), insecure);
client.allowInsecureRequests(config);
// ID tokens from the token endpoint are checked against the JWKS too, not just trusted.
client.enableNonRepudiationChecks(config);
const metadata = config.serverMetadata();
assert.equal(metadata.issuer, issuer.href.replace(/\/$/, ''));
assert.equal(metadata.id_token_signing_alg_values_supported[0], 'RS256');
assert.ok(metadata.scopes_supported.includes('openid'));
ok('discovery: /.well-known/openid-configuration names the JWKS, userinfo and RS256 first');

// Sign-in: PKCE, state and nonce, all checked by openid-client.
const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid offline_access read',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  nonce,
  state,
  resource: audience,
});
const callback = await signIn(authorizationUrl.href, redirectUri);
const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
assert.equal(claims.sub, 'alice');
assert.equal(claims.nonce, nonce);
assert.equal(claims.aud, 'web');
assert.equal(claims.email, 'alice@example.test', 'the consent app\'s session.id_token claims');
assert.ok(claims.auth_time <= claims.iat);
ok(`sign-in: an ID token for ${claims.sub}, signed with a published key, nonce echoed`);

const userinfo = await client.fetchUserInfo(config, tokens.access_token, 'alice');
assert.equal(userinfo.email, 'alice@example.test');
ok('userinfo: the subject and the consent app\'s claims, for the access token');

// The web client's access tokens are RFC 9068 JWTs: a resource server validates them
// offline, with the JWKS.
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: true }),
);
const resourceRequest = (token) =>
  new Request('https://api.test/things', { headers: { authorization: `Bearer ${token}` } });
const validate = (token) =>
  oauth.validateJwtAccessToken(as, resourceRequest(token), audience, {
    [oauth.allowInsecureRequests]: true,
  });
const access = await validate(tokens.access_token);
assert.equal(access.sub, 'alice');
assert.equal(access.client_id, 'web');
assert.equal(access.consented_by, 'example-login-app', 'the consent app\'s session.access_token claims');
ok(`JWT access token: validated offline (oauth4webapi validateJwtAccessToken), aud ${access.aud}`);

// A refresh: a new ID token for the same subject (OpenID Connect Core 12.2).
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const again = refreshed.claims();
assert.equal(again.sub, 'alice');
assert.equal(again.auth_time, claims.auth_time);
assert.equal(again.nonce, undefined);
await validate(refreshed.access_token);
ok('refresh: a new ID token for the same subject, a new JWT access token');

// Introspection still answers for a JWT access token, and revocation reaches it.
const introspect = async (token) =>
  (await client.tokenIntrospection(config, token)).active;
const seen = await client.tokenIntrospection(config, refreshed.access_token);
assert.equal(seen.active, true);
assert.deepEqual(seen.aud, [audience], 'introspection names the audiences a resource server checks');
// Its jti is where its record is, not a credential: presented as a token, it is nothing.
const { jti } = JSON.parse(Buffer.from(refreshed.access_token.split('.')[1], 'base64url'));
assert.equal(await introspect(jti), false);
await client.tokenRevocation(config, refreshed.access_token);
assert.equal(await introspect(refreshed.access_token), false);
ok('revocation: introspection answers for a JWT (not for its jti), and inactive once revoked');
// (A verifier that checks only the signature still accepts it until it expires: the
// README says so.)

// A machine client with the JWT strategy (ES256): client credentials with RFC 8707's
// resource, and a resource it was not given refused.
const machine = await client.discovery(issuer, 'api-client', undefined, client.ClientSecretBasic(env('WEB_SECRET')), insecure);
const machineToken = await client.clientCredentialsGrant(machine, { scope: 'read', resource: audience });
const machineClaims = await validate(machineToken.access_token);
assert.equal(machineClaims.sub, 'api-client');
assert.equal(JSON.parse(Buffer.from(machineToken.access_token.split('.')[0], 'base64url')).alg, 'ES256');
await assert.rejects(
  client.clientCredentialsGrant(machine, { scope: 'read', resource: 'https://elsewhere.test' }),
  (e) => e.error === 'invalid_target',
);
ok('client credentials: an ES256 JWT for the resource asked for; another resource is invalid_target');
