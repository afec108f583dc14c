// Mutual TLS (RFC 8705) judged by panva's oauth4webapi: discovery over TLS, then a token for
// a tls_client_auth client that presents its certificate (undici's fetch, with the client's
// certificate and key), bound to that certificate as introspection shows (cnf.x5t#S256);
// the same request without the certificate is refused.
//
// Run by tests/browser/test_mtls.py: ISSUER (https), CA (the PEM the server's certificate
// chains to), CERT and KEY (the client's), THUMBPRINT (its expected x5t#S256), WEB_SECRET.
import * as oauth from 'oauth4webapi';
import { Agent, fetch } from 'undici';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { authorizationUrl, env, ok, signIn } from './sign-in.mjs';

const ca = readFileSync(env('CA'));
const withoutCert = new Agent({ connect: { ca } });
const withCert = new Agent({
  connect: { ca, cert: readFileSync(env('CERT')), key: readFileSync(env('KEY')) },
});
const over = (dispatcher) => ({
  [oauth.customFetch]: (url, options) => fetch(url, { ...options, dispatcher }),
});

const issuer = new URL(env('ISSUER'));
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, over(withoutCert)),
);
assert.ok(as.token_endpoint_auth_methods_supported.includes('tls_client_auth'));
assert.equal(as.tls_client_certificate_bound_access_tokens, true);
ok('discovery over TLS: tls_client_auth, and access tokens bound to certificates');

const client = { client_id: 'payments' };
const token = (dispatcher) =>
  oauth
    .clientCredentialsGrantRequest(as, client, oauth.TlsClientAuth(), { scope: 'read' }, over(dispatcher))
    .then((response) => oauth.processClientCredentialsResponse(as, client, response));
const issued = await token(withCert);
assert.equal(issued.token_type, 'bearer');
const web = { client_id: 'web' };
const seen = await oauth.processIntrospectionResponse(
  as,
  web,
  await oauth.introspectionRequest(
    as,
    web,
    oauth.ClientSecretBasic(env('WEB_SECRET')),
    issued.access_token,
    over(withoutCert),
  ),
);
assert.equal(seen.active, true);
assert.equal(seen.client_id, 'payments');
assert.deepEqual(seen.cnf, { 'x5t#S256': env('THUMBPRINT') });
await assert.rejects(token(withoutCert), (e) => e.error === 'invalid_client');
ok('tls_client_auth: a token bound to the certificate presented; none without one');

// A person signs in to a web app that authenticates with its certificate: the code redeemed
// over a connection with it, the access token is bound to it, and userinfo answers only
// over a connection that presents it.
const redirectUri = env('REDIRECT_URI');
const app = { client_id: 'payments-web' };
const verifier = oauth.generateRandomCodeVerifier();
const authorizeAt = authorizationUrl(as, {
  response_type: 'code',
  client_id: app.client_id,
  redirect_uri: redirectUri,
  scope: 'openid read',
  code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
});
const callback = new URL(await signIn(authorizeAt.href, redirectUri));
const params = oauth.validateAuthResponse(as, app, callback, oauth.expectNoState);
const tokens = await oauth.processAuthorizationCodeResponse(
  as,
  app,
  await oauth.authorizationCodeGrantRequest(
    as, app, oauth.TlsClientAuth(), params, redirectUri, verifier, over(withCert),
  ),
);
const info = await oauth.processUserInfoResponse(
  as,
  app,
  'alice',
  await oauth.userInfoRequest(as, app, tokens.access_token, over(withCert)),
);
assert.equal(info.sub, 'alice');
const without = await oauth.userInfoRequest(as, app, tokens.access_token, over(withoutCert));
assert.equal(without.status, 401);
assert.match(without.headers.get('www-authenticate'), /^Bearer error="invalid_token"/);
ok('sign-in: a token bound to the web app\'s certificate; userinfo only over a connection with it');
