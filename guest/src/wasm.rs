//! The component's export layer: binds [`Host`] to the imports of `wit/oauth.wit` and
//! forwards each export to the plain-Rust logic. Nothing here decides anything.

wit_bindgen::generate!({ path: "../wit", world: "guest" });

use exports::tokenginx::oauth::{browser, capabilities, handler};
use tokenginx::oauth::{caller, clock, log, random, rate_limit, seal, settings, store};

struct Component;
export!(Component);

/// The component's imports, seen through [`crate::Host`].
struct Imports;

impl crate::Host for Imports {
    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::StoreError> {
        store::get(key).map_err(Into::into)
    }
    fn store_get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, crate::StoreError> {
        store::get_many(keys).map_err(Into::into)
    }
    fn store_apply(&self, tx: crate::Transaction) -> Result<bool, crate::StoreError> {
        let tx = store::Transaction {
            expect: tx
                .expect
                .into_iter()
                .map(|(key, value)| store::Expect { key, value })
                .collect(),
            changes: tx
                .changes
                .into_iter()
                .map(|c| store::Change {
                    key: c.key,
                    value: c.value,
                    ttl_ms: c.ttl_ms,
                })
                .collect(),
        };
        store::apply(&tx).map_err(Into::into)
    }
    fn store_insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: u64,
    ) -> Result<bool, crate::StoreError> {
        store::insert(key, value, ttl_ms).map_err(Into::into)
    }
    fn store_delete(&self, key: &str) -> Result<bool, crate::StoreError> {
        store::delete(key).map_err(Into::into)
    }
    fn store_set(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<(), crate::StoreError> {
        store::set(key, value, ttl_ms).map_err(Into::into)
    }
    fn store_take(&self, key: &str) -> Result<Option<Vec<u8>>, crate::StoreError> {
        store::take(key).map_err(Into::into)
    }
    fn rate_limit(&self, client_id: &str) -> Result<Option<u64>, crate::StoreError> {
        rate_limit::charge(client_id).map_err(Into::into)
    }
    fn seal(&self, purpose: &str, value: &[u8], ttl_ms: u64) -> Result<String, crate::StoreError> {
        seal::seal(purpose, value, ttl_ms).map_err(Into::into)
    }
    fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        seal::open(purpose, sealed)
    }
    fn now_ms(&self) -> u64 {
        clock::now_ms()
    }
    fn random_bytes(&self, len: u32) -> Vec<u8> {
        random::bytes(len)
    }
    fn log(&self, level: crate::Level, message: &str) {
        let level = match level {
            crate::Level::Debug => log::Level::Debug,
            crate::Level::Info => log::Level::Info,
            crate::Level::Warn => log::Level::Warn,
        };
        log::log(level, message)
    }
    fn issuer(&self) -> String {
        settings::issuer()
    }
    fn client(&self, client_id: &str) -> Option<crate::Client> {
        settings::find_client(client_id).map(|c| crate::Client {
            client_id: c.client_id,
            secret_sha256: c.secret_sha256,
            scopes: c.scopes,
            default_scopes: c.default_scopes,
            grant_types: c.grant_types,
            access_token_ttl: c.access_token_ttl,
        })
    }
    fn registration(&self, client_id: &str) -> Option<crate::Registration> {
        settings::find_registration(client_id).map(|r| crate::Registration {
            client_name: r.client_name,
            redirect_uris: r.redirect_uris,
            token_endpoint_auth_method: r.token_endpoint_auth_method,
            skip_consent: r.skip_consent,
        })
    }
    fn login_flow(&self) -> Option<crate::LoginFlow> {
        settings::login_flow().map(|f| crate::LoginFlow {
            login_url: f.login_url,
            consent_url: f.consent_url,
            authorization_code_ttl: f.authorization_code_ttl,
        })
    }
    fn refresh_policy(&self, client_id: &str) -> Option<crate::RefreshPolicy> {
        settings::find_refresh_policy(client_id).map(|p| crate::RefreshPolicy {
            refresh_token_ttl: p.refresh_token_ttl,
            grant_max_lifetime: p.grant_max_lifetime,
            reuse_grace_ms: p.reuse_grace_ms,
        })
    }
    fn scopes_supported(&self) -> Vec<String> {
        settings::scopes_supported()
    }
    fn endpoint_url(&self, name: &str) -> Option<String> {
        settings::endpoint_url(name)
    }
    fn authenticated(&self, client_id: &str) {
        caller::authenticated(client_id)
    }
    fn outcome(&self, event: &str, result: &str) {
        caller::outcome(event, result)
    }
}

impl From<store::StoreError> for crate::StoreError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Unavailable(why) => crate::StoreError::Unavailable(why),
            store::StoreError::Rejected(why) => crate::StoreError::Rejected(why),
        }
    }
}

impl From<handler::Request> for crate::Request {
    fn from(r: handler::Request) -> Self {
        crate::Request {
            params: r.params,
            authorization: r.authorization,
            client_ip: r.client_ip,
        }
    }
}

impl From<crate::Response> for handler::Response {
    fn from(r: crate::Response) -> Self {
        handler::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<browser::Request> for crate::BrowserRequest {
    fn from(r: browser::Request) -> Self {
        crate::BrowserRequest {
            method: r.method,
            params: r.params,
            cookies: r.cookies,
            body: r.body,
            client_ip: r.client_ip,
        }
    }
}

impl From<crate::Response> for browser::Response {
    fn from(r: crate::Response) -> Self {
        browser::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl browser::Guest for Component {
    fn authorize(req: browser::Request) -> browser::Response {
        crate::authorize(&Imports, &req.into()).into()
    }
    fn admin(call: String, req: browser::Request) -> browser::Response {
        crate::admin(&Imports, &call, &req.into()).into()
    }
}

impl capabilities::Guest for Component {
    fn describe() -> capabilities::Capabilities {
        let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        capabilities::Capabilities {
            grant_types: strings(&crate::GRANT_TYPES),
            response_types: strings(&crate::RESPONSE_TYPES),
            endpoints: strings(&crate::ENDPOINTS),
        }
    }
}

impl handler::Guest for Component {
    fn info() -> handler::GuestInfo {
        handler::GuestInfo {
            name: crate::NAME.into(),
            version: crate::VERSION.into(),
        }
    }
    fn token(req: handler::Request) -> handler::Response {
        crate::token(&Imports, &req.into()).into()
    }
    fn introspect(req: handler::Request) -> handler::Response {
        crate::introspect(&Imports, &req.into()).into()
    }
    fn revoke(req: handler::Request) -> handler::Response {
        crate::revoke(&Imports, &req.into()).into()
    }
    fn metadata() -> handler::Response {
        crate::metadata(&Imports).into()
    }
}
