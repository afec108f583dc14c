//! The component's export layer: binds [`Host`] to the imports of `wit/oauth.wit` and
//! forwards `server`'s functions to the plain-Rust logic. Nothing here decides anything;
//! the store operations feed the token counters (`counters.rs`) on their way.

wit_bindgen::generate!({ path: "../wit", world: "guest" });

use exports::tokenginx::oauth::server;
use tokenginx::oauth::{
    caller, clock, keys, log, metrics, random, rate_limit, seal, settings, store,
};

struct Component;
export!(Component);

fn purpose_of(purpose: crate::Purpose) -> keys::Purpose {
    match purpose {
        crate::Purpose::IdToken => keys::Purpose::IdToken,
        crate::Purpose::AccessToken => keys::Purpose::AccessToken,
    }
}

fn algorithm(alg: keys::Algorithm) -> crate::Algorithm {
    match alg {
        keys::Algorithm::Rs256 => crate::Algorithm::Rs256,
        keys::Algorithm::Es256 => crate::Algorithm::Es256,
        keys::Algorithm::Eddsa => crate::Algorithm::EdDsa,
    }
}

/// The component's imports, seen through [`crate::Host`].
struct Imports;

impl crate::Host for Imports {
    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::StoreError> {
        let found = store::get(key)?;
        crate::counters::read(self, &[key], &[found.is_some()]);
        Ok(found)
    }
    fn store_get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, crate::StoreError> {
        let found = store::get_many(keys)?;
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let hits: Vec<bool> = found.iter().map(Option::is_some).collect();
        crate::counters::read(self, &names, &hits);
        Ok(found)
    }
    fn store_apply(&self, tx: crate::Transaction) -> Result<bool, crate::StoreError> {
        let wit = store::Transaction {
            expect: tx
                .expect
                .iter()
                .map(|(key, value)| store::Expect {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            changes: tx
                .changes
                .iter()
                .map(|c| store::Change {
                    key: c.key.clone(),
                    value: c.value.clone(),
                    ttl_ms: c.ttl_ms,
                })
                .collect(),
        };
        let applied = store::apply(&wit)?;
        crate::counters::applied(self, &tx, applied);
        Ok(applied)
    }
    fn store_insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: u64,
    ) -> Result<bool, crate::StoreError> {
        let inserted = store::insert(key, value, ttl_ms)?;
        crate::counters::written(self, key, inserted);
        Ok(inserted)
    }
    fn store_delete(&self, key: &str) -> Result<bool, crate::StoreError> {
        let deleted = store::delete(key)?;
        crate::counters::deleted(self, key, deleted);
        Ok(deleted)
    }
    fn store_set(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<(), crate::StoreError> {
        store::set(key, value, ttl_ms)?;
        crate::counters::written(self, key, true);
        Ok(())
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
            grant_types: crate::client_rules::grant_types(c.grant_types),
            access_token_ttl: c.access_token_ttl,
            runtime: None,
        })
    }
    fn registration(&self, client_id: &str) -> Option<crate::Registration> {
        settings::find_registration(client_id).map(|r| crate::Registration {
            client_name: r.client_name,
            redirect_uris: r.redirect_uris,
            token_endpoint_auth_method: crate::client_rules::auth_method(
                r.token_endpoint_auth_method.as_deref(),
            )
            .to_owned(),
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
    fn client_defaults(&self) -> crate::Inherited {
        let d = settings::client_defaults();
        crate::Inherited {
            access_token_ttl: d.access_token_ttl,
            refresh: crate::RefreshPolicy {
                refresh_token_ttl: d.refresh.refresh_token_ttl,
                grant_max_lifetime: d.refresh.grant_max_lifetime,
                reuse_grace_ms: d.refresh.reuse_grace_ms,
            },
            jwt_access_tokens: d.access_token_strategy == settings::AccessTokenStrategy::Jwt,
            id_token_ttl: d.id_token_ttl,
            signs_up_to: d.signs_up_to,
        }
    }
    fn configured_clients(&self) -> Vec<String> {
        settings::configured_clients()
    }
    fn dynamic_registration(&self) -> Option<crate::RegistrationPolicy> {
        settings::dynamic_registration().map(|p| crate::RegistrationPolicy {
            open: p.open,
            initial_access_tokens_sha256: p.initial_access_tokens_sha256,
            max_clients: p.max_clients,
            allowed_scopes: p.allowed_scopes,
            allowed_audiences: p.allowed_audiences,
        })
    }
    fn dpop(&self) -> crate::DpopPolicy {
        let policy = settings::dpop();
        crate::DpopPolicy {
            require_nonce: policy.require_nonce,
            bound_clients: policy.bound_clients,
        }
    }
    fn client_jwks(&self, client_id: &str) -> Option<String> {
        settings::find_client_jwks(client_id)
    }
    fn mtls(&self) -> crate::MtlsPolicy {
        let policy = settings::mtls();
        crate::MtlsPolicy {
            chained: policy.chained,
            self_signed: policy.self_signed,
        }
    }
    fn client_mtls(&self, client_id: &str) -> Option<crate::MtlsClient> {
        use crate::CertificateName as Name;
        use settings::CertificateName as Wit;
        settings::find_client_mtls(client_id).map(|m| crate::MtlsClient {
            certificate_name: m.certificate_name.map(|name| match name {
                Wit::SubjectDn(dn) => Name::SubjectDn(dn),
                Wit::SanDns(dns) => Name::SanDns(dns),
                Wit::SanUri(uri) => Name::SanUri(uri),
                Wit::SanIp(ip) => Name::SanIp(ip),
                Wit::SanEmail(email) => Name::SanEmail(email),
            }),
            bound_access_tokens: m.bound_access_tokens,
        })
    }
    fn presented_cert(&self) -> Option<Vec<u8>> {
        caller::presented_cert()
    }
    fn verify_client_secret_jwt(&self, client_id: &str, token: &str) -> bool {
        keys::verify_client_secret_jwt(client_id, token)
    }
    fn verify_with_key(&self, jwk: &str, token: &str) -> bool {
        keys::verify_with_key(jwk, token)
    }
    fn charge_registration(&self, key: &str) -> Result<Option<u64>, crate::StoreError> {
        rate_limit::charge_registration(key).map_err(Into::into)
    }
    fn token_format(&self, client_id: &str) -> Option<crate::TokenFormat> {
        settings::find_token_format(client_id).map(|f| crate::TokenFormat {
            jwt_access_tokens: f.access_token_strategy == settings::AccessTokenStrategy::Jwt,
            access_token_alg: algorithm(f.access_token_alg),
            id_token_alg: algorithm(f.id_token_alg),
            audience: f.audience,
            id_token_ttl: f.id_token_ttl,
        })
    }
    fn sign(
        &self,
        purpose: crate::Purpose,
        alg: crate::Algorithm,
        claims: &str,
    ) -> Result<String, crate::StoreError> {
        let alg = match alg {
            crate::Algorithm::Rs256 => keys::Algorithm::Rs256,
            crate::Algorithm::Es256 => keys::Algorithm::Es256,
            crate::Algorithm::EdDsa => keys::Algorithm::Eddsa,
        };
        keys::sign(purpose_of(purpose), alg, claims).map_err(Into::into)
    }
    fn verify(&self, purpose: crate::Purpose, token: &str) -> Option<String> {
        keys::verify(purpose_of(purpose), token)
    }
    fn public_keys(&self) -> crate::KeySet {
        let set = keys::public_keys();
        crate::KeySet {
            json: set.json,
            max_age: set.max_age,
        }
    }
    fn authenticated(&self, client_id: &str) {
        caller::authenticated(client_id)
    }
    fn count(&self, name: &str, labels: &[&str], by: u64) {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        metrics::count(name, &labels, by)
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

/// The methods `routes.rs` names, as the contract names them.
const METHODS: [(&str, server::Method); 6] = [
    ("GET", server::Method::Get),
    ("HEAD", server::Method::Head),
    ("POST", server::Method::Post),
    ("PUT", server::Method::Put),
    ("PATCH", server::Method::Patch),
    ("DELETE", server::Method::Delete),
];

/// The request to `route`, its header values named by the route's declared headers.
fn request(route: &str, r: server::Request) -> crate::HttpRequest {
    let (method, _) = METHODS
        .iter()
        .find(|(_, m)| *m == r.method)
        .expect("every method of the contract is in METHODS");
    crate::HttpRequest {
        method: method.to_string(),
        url: r.url,
        path_params: r.path_params,
        query: r.query,
        form: r.form,
        json: r.json,
        cookies: r.cookies,
        headers: crate::routes::named_headers(route, r.headers),
        client_ip: r.client_ip,
        client_cert: r.client_cert,
    }
}

/// A method of `routes.rs`, as the contract names it.
fn method(name: &str) -> server::Method {
    match METHODS.iter().find(|(n, _)| *n == name) {
        Some(&(_, method)) => method,
        None => unreachable!("routes.rs names the method {name}, which HTTP routes lack"),
    }
}

impl server::Guest for Component {
    fn info() -> server::GuestInfo {
        server::GuestInfo {
            name: crate::NAME.into(),
            version: crate::VERSION.into(),
        }
    }

    fn routes() -> Vec<server::Route> {
        let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        crate::routes::ROUTES
            .iter()
            .map(|r| server::Route {
                name: r.name.into(),
                path: r.path.into(),
                methods: r.methods.iter().map(|m| method(m)).collect(),
                listener: match r.listener {
                    crate::routes::Listener::Public => server::Listener::Public,
                    crate::routes::Listener::Admin => server::Listener::Admin,
                },
                body: match r.body {
                    crate::routes::Body::None => server::Body::None,
                    crate::routes::Body::Form => server::Body::Form,
                    crate::routes::Body::Json => server::Body::Json,
                },
                headers: strings(r.headers),
                anonymous: r.anonymous,
                uses_store: r.uses_store,
            })
            .collect()
    }

    fn counters() -> Vec<server::Counter> {
        crate::counters::COUNTERS
            .iter()
            .map(|c| server::Counter {
                name: c.name.into(),
                help: c.help.into(),
                labels: c
                    .labels
                    .iter()
                    .map(|(name, values)| server::Label {
                        name: name.to_string(),
                        values: values.iter().map(|v| v.to_string()).collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn check_client(client: server::ClientConfig) -> Result<(), server::ClientProblem> {
        let client = crate::client_rules::ClientConfig {
            jwks: settings::find_client_jwks(&client.client_id),
            mtls: crate::Host::client_mtls(&Imports, &client.client_id),
            listener: crate::Host::mtls(&Imports),
            token_endpoint_auth_method: client.token_endpoint_auth_method,
            has_secret: client.has_secret,
            secret_chars: client.secret_length,
            scopes: client.scopes,
            default_scopes: client.default_scopes,
            grant_types: client.grant_types,
            redirect_uris: client.redirect_uris,
            access_token_ttl: client.access_token_ttl,
        };
        crate::client_rules::check(&client)
            .map_err(|(key, message)| server::ClientProblem { key, message })
    }

    fn handle(route: String, req: server::Request) -> server::Response {
        let response = crate::routes::handle(&Imports, &route, request(&route, req));
        server::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}
