// The TokenginX OAuth guest in JavaScript: the client_credentials grant (RFC 6749 section 4.4)
// with client_secret_basic and client_secret_post (section 2.3.1), introspection (RFC 7662),
// revocation (RFC 7009) and metadata (RFC 8414), as docs/behaviour.md describes them, with
// the records of docs/storage.md.
//
// Built with componentize-js against wit/world.wit (world `js-guest`: the contract's
// `guest` world, tokenginx:oauth@0.2.0). See README.md next to this directory.

import { get, getMany, insert, delete as remove } from 'tokenginx:oauth/store@0.2.0';
import { charge } from 'tokenginx:oauth/rate-limit@0.2.0';
import { nowMs } from 'tokenginx:oauth/clock@0.2.0';
import { bytes as randomBytes } from 'tokenginx:oauth/random@0.2.0';
import { log } from 'tokenginx:oauth/log@0.2.0';
import { issuer, findClient, scopesSupported } from 'tokenginx:oauth/settings@0.2.0';
import { authenticated } from 'tokenginx:oauth/caller@0.2.0';
import { count } from 'tokenginx:oauth/metrics@0.2.0';

import { sha256, hex, constantTimeEqual } from './sha256.js';

const NAME = 'tokenginx-js-guest';
const VERSION = '0.1.0';

const GRANT_TYPE = 'client_credentials';
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post'];
/** The routes this guest answers (`server.routes`): the one place its paths are written. */
const ROUTES = [
  { name: 'token', path: '/api/v1/oauth/token', methods: ['post'], body: 'form', headers: ['authorization'] },
  { name: 'introspect', path: '/api/v1/oauth/introspect', methods: ['post'], body: 'form', headers: ['authorization'] },
  { name: 'revoke', path: '/api/v1/oauth/revoke', methods: ['post'], body: 'form', headers: ['authorization'] },
  { name: 'metadata', path: '/.well-known/oauth-authorization-server', methods: ['get'], body: 'none', headers: [] },
].map((r) => ({ ...r, listener: 'public', anonymous: false, usesStore: r.name !== 'metadata' }));
/** The counters this guest keeps (`server.counters`): the Go guide's token counters. */
const TOKEN_CREATED = 'tokenginx_token_created_total';
const TOKEN_RETRIEVED = 'tokenginx_token_retrieved_total';
const TOKEN_REVOKED = 'tokenginx_token_revoked_total';
const COUNTERS = [
  { name: TOKEN_CREATED, help: 'Tokens written to the store.', labels: [] },
  { name: TOKEN_RETRIEVED, help: 'Token records read back from the store.', labels: [] },
  { name: TOKEN_REVOKED, help: 'Token records deleted from the store by revocation.', labels: [] },
];
const CHALLENGE = 'Basic realm="tokenginx", charset="UTF-8"';
/** RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
/** Compared against when the client is unknown, so that both cases do the same work. */
const NO_DIGEST = new Uint8Array(32);
/** Metadata may be cached; the tokens' answers may not. */
const METADATA_CACHE = 'public, max-age=300';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------------------------------
// Answers

/** An OAuth error answer (RFC 6749 section 5.2), thrown to end a request early. */
class Reply {
  constructor(status, error, description, headers = []) {
    this.status = status;
    this.error = error;
    this.description = description;
    this.headers = headers;
  }
}

function json(status, body, headers) {
  return {
    status,
    headers: [['Content-Type', 'application/json'], ...headers],
    body: JSON.stringify(body),
  };
}

/**
 * Runs one endpoint: an OAuth error it throws becomes its answer, a store that is
 * unavailable becomes 503, and anything else is logged with its stack and rethrown, so the
 * host's trap line has the JavaScript side of the story next to it.
 */
function serve(endpoint, cacheHeaders, handle) {
  try {
    return handle();
  } catch (e) {
    if (e instanceof Reply) {
      return json(
        e.status,
        { error: e.error, error_description: e.description },
        [...cacheHeaders, ...e.headers],
      );
    }
    const storeError = e && e.payload && typeof e.payload.tag === 'string' ? e.payload : null;
    if (storeError && storeError.tag === 'unavailable') {
      log('warn', `${endpoint}: the store is unavailable: ${storeError.val}`);
      return json(
        503,
        { error: 'temporarily_unavailable', error_description: 'the token store is unavailable; retry later' },
        cacheHeaders,
      );
    }
    // A bug (a `rejected` store call, a TypeError, ...): log it where the operator looks,
    // then trap. A ComponentError's message is "[object Object] (see error.payload)", so
    // its payload is logged as well.
    const what = storeError
      ? `store error ${storeError.tag}: ${storeError.val}`
      : String(e && e.message !== undefined ? e.message : e);
    log('error', `${endpoint} failed: ${what}\n${e && e.stack ? e.stack : '(no stack)'}`);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// Requests

/** The form's parameters; an empty value counts as omitted (RFC 6749 section 3.1). */
function paramsOf(req) {
  const params = new Map();
  for (const [name, value] of req.params) {
    if (value !== '') params.set(name, value);
  }
  return params;
}

/** application/x-www-form-urlencoded decoding, as RFC 6749 section 2.3.1 asks of Basic. */
function formDecode(s) {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

/**
 * The id and secret of an `Authorization: Basic` header; null for another scheme; throws
 * invalid_client (with the challenge) for a Basic header that cannot be read.
 */
function basicCredentials(authorization) {
  const m = /^Basic +(\S*) *$/i.exec(authorization);
  if (!m) return null;
  const bad = () => new Reply(401, 'invalid_client', 'malformed Basic credentials', [['WWW-Authenticate', CHALLENGE]]);
  let text;
  try {
    const binary = atob(m[1]);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    text = decoder.decode(bytes);
  } catch {
    throw bad();
  }
  const colon = text.indexOf(':');
  if (colon < 0) throw bad();
  try {
    return { id: formDecode(text.slice(0, colon)), secret: formDecode(text.slice(colon + 1)) };
  } catch {
    throw bad();
  }
}

/**
 * Authenticates the client (RFC 6749 section 2.3.1): client_secret_basic or
 * client_secret_post, not both. Returns the registered client; throws the error answer.
 */
function authenticateClient(req, params) {
  const basic = req.authorization === undefined ? null : basicCredentials(req.authorization);
  let id;
  let secret;
  let viaHeader;
  if (basic) {
    if (params.has('client_secret')) {
      throw new Reply(400, 'invalid_request', 'use one client authentication method: the Authorization header or client_secret in the body, not both');
    }
    if (params.has('client_id') && params.get('client_id') !== basic.id) {
      throw new Reply(400, 'invalid_request', 'client_id in the body differs from the Authorization header');
    }
    ({ id, secret } = basic);
    viaHeader = true;
  } else if (params.has('client_secret')) {
    id = params.get('client_id');
    secret = params.get('client_secret');
    viaHeader = false;
    if (id === undefined) {
      throw new Reply(401, 'invalid_client', 'client_secret without client_id');
    }
  } else {
    throw new Reply(401, 'invalid_client', 'client authentication is required', [['WWW-Authenticate', CHALLENGE]]);
  }

  const client = findClient(id);
  const presented = sha256(secret);
  const matches = constantTimeEqual(presented, client ? client.secretSha256 : NO_DIGEST);
  if (!client || !matches) {
    // The same answer for an unknown client and a wrong secret.
    throw new Reply(401, 'invalid_client', 'client authentication failed',
      viaHeader ? [['WWW-Authenticate', CHALLENGE]] : []);
  }
  authenticated(client.clientId);
  return client;
}

// ---------------------------------------------------------------------------------------
// Tokens and their records (docs/storage.md)

function base64url(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function nowSeconds() {
  return Number(nowMs() / 1000n);
}

function isRecord(r) {
  return r !== null && typeof r === 'object'
    && typeof r.client_id === 'string'
    && typeof r.user_id === 'string'
    && typeof r.scope === 'string'
    && Number.isInteger(r.created_at)
    && Number.isInteger(r.expires_at);
}

/**
 * The stored record of `token`, as `{ key, record }`, or null when the store has none.
 *
 * - A machine token (any shape without a `.`, 43 base64url characters from this guest and
 *   the default one): `oauth:access_token:{sha256(token)}`.
 * - An access token of a user's grant, `<access id>.<secret>`:
 *   `oauth:access_token:{g}:sha256(token)` with g = sha256(access id), live only while
 *   `oauth:grant:{g}` is. This guest issues none, but one written by the guest it replaced
 *   must still introspect.
 * - Anything else (a refresh token `<grant id>.<generation>.<secret>`) has no record this
 *   guest reads: inactive.
 */
function lookup(token) {
  const digest = hex(sha256(token));
  let key;
  let value;
  const parts = token.split('.');
  if (parts.length === 1) {
    key = `oauth:access_token:{${digest}}`;
    value = get(key);
  } else if (parts.length === 2 && parts[0] !== '') {
    const g = hex(sha256(parts[0]));
    key = `oauth:access_token:{${g}}:${digest}`;
    const [tokenValue, grantValue] = getMany([key, `oauth:grant:{${g}}`]);
    value = grantValue === undefined ? undefined : tokenValue;
  }
  if (value === undefined) return null;
  count(TOKEN_RETRIEVED, [], 1n);
  let record;
  try {
    record = JSON.parse(decoder.decode(value));
  } catch {
    record = null;
  }
  if (!isRecord(record)) {
    log('error', `the record at ${key} is not a token record`);
    throw new Reply(500, 'server_error', 'a stored token record is corrupt');
  }
  return { key, record };
}

// ---------------------------------------------------------------------------------------
// Endpoints

const TOKEN_CACHE = [['Cache-Control', 'no-store'], ['Pragma', 'no-cache']];
const NO_STORE = [['Cache-Control', 'no-store']];

function token(req) {
  const params = paramsOf(req);
  const client = authenticateClient(req, params);

  const wait = charge(client.clientId);
  if (wait !== undefined) {
    const seconds = Math.max(1, Math.ceil(Number(wait) / 1000));
    throw new Reply(429, 'temporarily_unavailable', 'rate limit exceeded; retry later',
      [['Retry-After', String(seconds)]]);
  }

  const grantType = params.get('grant_type');
  if (grantType === undefined) {
    throw new Reply(400, 'invalid_request', 'grant_type is required');
  }
  if (grantType !== GRANT_TYPE) {
    throw new Reply(400, 'unsupported_grant_type', `this server serves the grant type ${GRANT_TYPE} only`);
  }
  // A registration that names no grant types gets this guest's one.
  if (!(client.grantTypes ?? [GRANT_TYPE]).includes(GRANT_TYPE)) {
    throw new Reply(400, 'unauthorized_client', `the client may not use ${GRANT_TYPE}`);
  }

  let scopes;
  const requested = params.get('scope');
  if (requested === undefined) {
    scopes = client.defaultScopes;
    if (scopes.length === 0) {
      throw new Reply(400, 'invalid_scope', 'no scope was requested and the client has no default scopes');
    }
  } else {
    scopes = requested.split(' ');
    if (!scopes.every((s) => SCOPE_TOKEN.test(s))) {
      throw new Reply(400, 'invalid_scope', 'the scope is malformed: scope tokens separated by single spaces');
    }
    if (!scopes.every((s) => client.scopes.includes(s))) {
      throw new Reply(400, 'invalid_scope', 'the requested scope exceeds what the client may request');
    }
  }
  const scope = [...new Set(scopes)].sort().join(' ');

  const ttl = client.accessTokenTtl; // u64: a BigInt, in seconds
  const createdAt = nowSeconds();
  const record = {
    user_id: client.clientId,
    scope,
    created_at: createdAt,
    client_ip: req.clientIp,
    client_id: client.clientId,
    expires_at: createdAt + Number(ttl),
    token_type: 'Bearer',
  };
  const value = encoder.encode(JSON.stringify(record));
  for (let attempt = 0; attempt < 3; attempt++) {
    const accessToken = base64url(randomBytes(32));
    // Set only if absent: a token is never written over another.
    if (insert(`oauth:access_token:{${hex(sha256(accessToken))}}`, value, ttl * 1000n)) {
      count(TOKEN_CREATED, [], 1n);
      return json(200, {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: Number(ttl),
        scope,
      }, TOKEN_CACHE);
    }
  }
  throw new Error('three random 256-bit tokens collided with stored ones');
}

function introspect(req) {
  const params = paramsOf(req);
  authenticateClient(req, params);
  const presented = params.get('token');
  if (presented === undefined) {
    throw new Reply(400, 'invalid_request', 'token is required');
  }
  // token_type_hint is only a hint: one lookup finds any token this guest knows.
  const found = lookup(presented);
  if (!found || !(nowSeconds() < found.record.expires_at)) {
    return json(200, { active: false }, NO_STORE);
  }
  const r = found.record;
  const answer = {
    active: true,
    scope: r.scope,
    client_id: r.client_id,
    sub: r.user_id,
    token_type: 'Bearer',
    exp: r.expires_at,
    iat: r.created_at,
    iss: issuer(),
    token_use: 'access_token',
  };
  if (r.ext !== undefined && r.ext !== null) answer.ext = r.ext;
  return json(200, answer, NO_STORE);
}

function revoke(req) {
  const params = paramsOf(req);
  const client = authenticateClient(req, params);
  const presented = params.get('token');
  if (presented === undefined) {
    throw new Reply(400, 'invalid_request', 'token is required');
  }
  const found = lookup(presented);
  if (found) {
    if (found.record.client_id === client.clientId) {
      if (remove(found.key)) count(TOKEN_REVOKED, [], 1n);
    } else {
      // RFC 7009 section 2.1: a client revokes only its own tokens; the answer is 200 anyway.
      log('warn', `client "${client.clientId}" asked to revoke a token of client "${found.record.client_id}": refused`);
    }
  }
  // An unknown token is no error (RFC 7009 section 2.2).
  return { status: 200, headers: NO_STORE, body: '' };
}

function metadata() {
  const doc = { issuer: issuer() };
  for (const [field, endpoint] of [
    ['token_endpoint', 'token'],
    ['introspection_endpoint', 'introspect'],
    ['revocation_endpoint', 'revoke'],
  ]) {
    doc[field] = issuer() + ROUTES.find((r) => r.name === endpoint).path;
  }
  Object.assign(doc, {
    grant_types_supported: [GRANT_TYPE],
    response_types_supported: [],
    token_endpoint_auth_methods_supported: AUTH_METHODS,
    introspection_endpoint_auth_methods_supported: AUTH_METHODS,
    revocation_endpoint_auth_methods_supported: AUTH_METHODS,
    scopes_supported: scopesSupported(),
  });
  return json(200, doc, [['Cache-Control', METADATA_CACHE]]);
}

// ---------------------------------------------------------------------------------------
// The registrations this guest serves (`server.check-client`)

/** Why a registration is refused: thrown, it is `check-client`'s error. */
function refuse(key, message) {
  const e = new Error(message);
  e.key = key;
  e.payload = { key, message };
  return e;
}

function checkClient(client) {
  const method = client.tokenEndpointAuthMethod ?? AUTH_METHODS[0];
  if (!AUTH_METHODS.includes(method)) {
    throw refuse('token_endpoint_auth_method', `"${method}" is not ${AUTH_METHODS.join(' or ')}: this guest serves no public clients`);
  }
  if (!client.hasSecret) {
    throw refuse('client_secret', `${method} needs a client_secret or client_secret_sha256`);
  }
  if (client.secretLength !== undefined && client.secretLength < 16) {
    throw refuse('client_secret', 'must be at least 16 characters (is its variable set?)');
  }
  const extra = client.defaultScopes.find((s) => !client.scopes.includes(s));
  if (extra !== undefined) throw refuse('default_scopes', `"${extra}" is not in scopes`);
  const grant = (client.grantTypes ?? [GRANT_TYPE]).find((g) => g !== GRANT_TYPE);
  if (grant !== undefined) {
    throw refuse('grant_types', `"${grant}" is not a grant type this guest serves (it serves: ${GRANT_TYPE})`);
  }
  if (client.accessTokenTtl < 1n || client.accessTokenTtl > 86400n) {
    throw refuse('access_token_ttl', 'must be between 1s and 24h');
  }
}

// ---------------------------------------------------------------------------------------
// Export: tokenginx:oauth/server@0.2.0

const ENDPOINTS = { token, introspect, revoke, metadata };
const CACHE = { token: TOKEN_CACHE, introspect: NO_STORE, revoke: NO_STORE, metadata: [] };

export const server = {
  info() {
    return { name: NAME, version: VERSION };
  },
  routes() {
    return ROUTES;
  },
  counters() {
    return COUNTERS;
  },
  checkClient,
  handle(route, req) {
    // The form endpoints read `Authorization`, the one header they declare.
    const request = { params: req.form, authorization: req.headers[0] };
    return serve(route, CACHE[route], () => ENDPOINTS[route](request));
  },
};
