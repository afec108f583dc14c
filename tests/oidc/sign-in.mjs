// What a person does, done over HTTP as a browser would: follow the service's redirects
// with its cookies, sign in to the example login app as alice, and allow every scope the
// consent page offers. Shared by the scripts that judge the service (rp.mjs, dpop.mjs,
// mtls.mjs).
//   LOGIN_PORT, LOGIN_PASSWORD
import assert from 'node:assert/strict';

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export function ok(what) {
  console.log(`ok   ${what}`);
}

// Follows a browser's redirects from `url` until one leaves for `stop` (the login app's
// form, the client's redirect URI), carrying the service's cookies as a browser does.
export async function follow(url, jar, stop) {
  for (let hops = 0; hops < 10; hops++) {
    if (url.startsWith(stop)) return url;
    const response = await fetch(url, {
      redirect: 'manual',
      headers: jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {},
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = pair.indexOf('=');
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const location = response.headers.get('location');
    if (!location) {
      throw new Error(`${url} answered ${response.status} without a redirect: ${await response.text()}`);
    }
    url = new URL(location, url).href;
  }
  throw new Error('too many redirects');
}

// The authorization endpoint's URL with `params` (response_type, client_id, ...).
export function authorizationUrl(as, params) {
  const url = new URL(as.authorization_endpoint);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url;
}

// What a person does on the example login app: signs in as alice, then allows every scope.
export async function signIn(authorizationUrl, redirectUri, jar = new Map()) {
  const loginApp = new URL(await follow(authorizationUrl, jar, 'http://127.0.0.1:' + env('LOGIN_PORT')));
  const challenge = loginApp.searchParams.get('login_challenge');
  assert.ok(challenge, `the login app got no challenge: ${loginApp}`);
  const login = await fetch(new URL('/login', loginApp), {
    method: 'POST',
    redirect: 'manual',
    body: new URLSearchParams({ challenge, username: 'alice', password: env('LOGIN_PASSWORD'), action: 'signin' }),
  });
  assert.equal(login.status, 302, `the login app refused the sign-in: ${await login.text()}`);
  const consentApp = new URL(await follow(new URL(login.headers.get('location'), loginApp).href, jar, loginApp.origin));
  const consentChallenge = consentApp.searchParams.get('consent_challenge');
  assert.ok(consentChallenge, `the consent app got no challenge: ${consentApp}`);
  const page = await (await fetch(consentApp)).text();
  const scopes = [...page.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]);
  const body = new URLSearchParams({ challenge: consentChallenge, action: 'allow' });
  for (const scope of scopes) body.append('scope', scope);
  const consent = await fetch(new URL('/consent', consentApp), { method: 'POST', redirect: 'manual', body });
  assert.equal(consent.status, 302, `the consent app refused: ${await consent.text()}`);
  return follow(new URL(consent.headers.get('location'), consentApp).href, jar, redirectUri);
}
