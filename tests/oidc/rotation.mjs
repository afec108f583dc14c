// Key rotation under load, judged by a verifier that caches the JWKS exactly as long as its
// Cache-Control max-age allows and never fetches it early (not even for an unknown kid, as
// the forgiving verifiers do): every token it meets, fresh or up to its expiry, must verify
// with the set it holds. Tokens come from every replica in turn, and the set from every
// replica in turn, so replicas that disagreed on the keys would show.
//
// Run by tests/browser/test_openid_connect.py with the service rotating every few seconds:
//   REPLICAS (comma-separated base URLs), ISSUER, CLIENT_SECRET, API_AUDIENCE, SECONDS
import * as jose from 'jose';
import assert from 'node:assert/strict';

const replicas = process.env.REPLICAS.split(',');
const issuer = process.env.ISSUER;
const audience = process.env.API_AUDIENCE;
const seconds = Number(process.env.SECONDS);
const basic = 'Basic ' + Buffer.from(`api-client:${process.env.CLIENT_SECRET}`).toString('base64');

let fetches = 0;
let cached = null; // { set, until }
async function keys(now) {
  if (cached && now < cached.until) return cached.set;
  const response = await fetch(`${replicas[fetches++ % replicas.length]}/.well-known/jwks.json`);
  const maxAge = Number(/max-age=(\d+)/.exec(response.headers.get('cache-control'))[1]);
  cached = { set: jose.createLocalJWKSet(await response.json()), until: now + maxAge * 1000 };
  return cached.set;
}

const stats = { issued: 0, verified: 0, unknownKid: 0, kids: new Set(), fetches: 0 };
const live = []; // { token, exp }
async function verify(token) {
  try {
    const { protectedHeader } = await jose.jwtVerify(token, await keys(Date.now()), {
      issuer,
      audience,
      typ: 'at+jwt',
    });
    stats.kids.add(protectedHeader.kid);
    stats.verified++;
  } catch (e) {
    if (e.code === 'ERR_JWKS_NO_MATCHING_KEY') {
      stats.unknownKid++;
      console.log(`unknown kid at ${new Date().toISOString()}: ${JSON.stringify(jose.decodeProtectedHeader(token))}`);
    } else {
      throw e;
    }
  }
}

const end = Date.now() + seconds * 1000;
let turn = 0;
while (Date.now() < end) {
  const response = await fetch(`${replicas[turn++ % replicas.length]}/api/v1/oauth/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const { access_token, expires_in } = await response.json();
  stats.issued++;
  live.push({ token: access_token, exp: Date.now() + expires_in * 1000 });
  await verify(access_token);
  // Every token still in its time, again: a retired key must still be published.
  const now = Date.now();
  while (live.length && live[0].exp - 1000 < now) live.shift();
  for (const { token } of live.filter((_, i) => i % 5 === turn % 5)) await verify(token);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
stats.fetches = fetches;
console.log(
  `rotation: ${stats.issued} tokens issued, ${stats.verified} verifications, ` +
    `${stats.kids.size} signing keys met, ${fetches} JWKS fetches, ${stats.unknownKid} unknown kids`,
);
assert.equal(stats.unknownKid, 0, 'a verifier honouring max-age met a kid it did not know');
assert.ok(stats.kids.size >= 3, `only ${stats.kids.size} keys signed: the keys did not rotate`);
