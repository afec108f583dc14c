//! The 0.1 contract's imports, each calling the 0.2 import it became: the store's (which
//! also feed the token counters by the 0.1 guests' key prefixes), and `settings` and
//! `caller` with the defaults and the outcome events the 0.1 contract promised.

use super::bindings::tokenginx::oauth as old;
use super::{client_grant_types, OUTCOMES, ROUTES, TOKEN_CREATED, TOKEN_RETRIEVED, TOKEN_REVOKED};
use crate::contract as current;
use crate::runtime::imports::InstanceState;
use crate::store::StoreResult;

/// What a store key holds, for the token counters: an access token (`oauth:access_token:`),
/// a grant (`oauth:grant:`, whose removal revokes its tokens), or neither.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    AccessToken,
    Grant,
    Other,
}

impl Kind {
    fn of(key: &str) -> Kind {
        if key.starts_with("oauth:access_token:") {
            Kind::AccessToken
        } else if key.starts_with("oauth:grant:") {
            Kind::Grant
        } else {
            Kind::Other
        }
    }

    fn revocable(self) -> bool {
        self != Kind::Other
    }
}

impl InstanceState {
    fn count_tokens(&self, counter: &str, by: u64) {
        if by > 0 {
            if let Err(why) = self.counters.count(counter, &[], by) {
                self.refuse_count(counter, &why);
            }
        }
    }
}

impl old::store::Host for InstanceState {
    fn convert_store_error(
        &mut self,
        error: crate::store::StoreError,
    ) -> wasmtime::Result<old::store::StoreError> {
        use crate::store::StoreError as E;
        Ok(match error {
            E::Unavailable(why) => old::store::StoreError::Unavailable(why),
            E::Rejected(why) => old::store::StoreError::Rejected(why),
        })
    }

    async fn get(&mut self, key: String) -> StoreResult<Option<Vec<u8>>> {
        let kind = Kind::of(&key);
        let found = current::store::Host::get(self, key).await?;
        self.count_tokens(
            TOKEN_RETRIEVED,
            (kind == Kind::AccessToken && found.is_some()) as u64,
        );
        Ok(found)
    }

    async fn get_many(&mut self, keys: Vec<String>) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let kinds: Vec<Kind> = keys.iter().map(|k| Kind::of(k)).collect();
        let found = current::store::Host::get_many(self, keys).await?;
        let tokens = kinds
            .iter()
            .zip(&found)
            .filter(|(kind, value)| **kind == Kind::AccessToken && value.is_some())
            .count();
        self.count_tokens(TOKEN_RETRIEVED, tokens as u64);
        Ok(found)
    }

    async fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<()> {
        let kind = Kind::of(&key);
        current::store::Host::set(self, key, value, ttl_ms).await?;
        self.count_tokens(TOKEN_CREATED, (kind == Kind::AccessToken) as u64);
        Ok(())
    }

    async fn insert(&mut self, key: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<bool> {
        let kind = Kind::of(&key);
        let inserted = current::store::Host::insert(self, key, value, ttl_ms).await?;
        self.count_tokens(
            TOKEN_CREATED,
            (kind == Kind::AccessToken && inserted) as u64,
        );
        Ok(inserted)
    }

    async fn delete(&mut self, key: String) -> StoreResult<bool> {
        let kind = Kind::of(&key);
        let deleted = current::store::Host::delete(self, key).await?;
        self.count_tokens(TOKEN_REVOKED, (kind.revocable() && deleted) as u64);
        Ok(deleted)
    }

    async fn ttl(&mut self, key: String) -> StoreResult<Option<u64>> {
        current::store::Host::ttl(self, key).await
    }

    async fn take(&mut self, key: String) -> StoreResult<Option<Vec<u8>>> {
        current::store::Host::take(self, key).await
    }

    async fn apply(&mut self, tx: old::store::Transaction) -> StoreResult<bool> {
        let written = |c: &&old::store::Change, kinds: &[Kind], written: bool| {
            c.value.is_some() == written && kinds.contains(&Kind::of(&c.key))
        };
        let created = tx
            .changes
            .iter()
            .filter(|c| written(c, &[Kind::AccessToken], true))
            .count();
        let revoked = tx
            .changes
            .iter()
            .filter(|c| written(c, &[Kind::AccessToken, Kind::Grant], false))
            .count();
        let tx = current::store::Transaction {
            expect: tx
                .expect
                .into_iter()
                .map(|e| current::store::Expect {
                    key: e.key,
                    value: e.value,
                })
                .collect(),
            changes: tx
                .changes
                .into_iter()
                .map(|c| current::store::Change {
                    key: c.key,
                    value: c.value,
                    ttl_ms: c.ttl_ms,
                })
                .collect(),
        };
        let applied = current::store::Host::apply(self, tx).await?;
        if applied {
            self.count_tokens(TOKEN_CREATED, created as u64);
            self.count_tokens(TOKEN_REVOKED, revoked as u64);
        }
        Ok(applied)
    }
}

impl old::rate_limit::Host for InstanceState {
    async fn charge(&mut self, client_id: String) -> StoreResult<Option<u64>> {
        current::rate_limit::Host::charge(self, client_id).await
    }
}

impl old::seal::Host for InstanceState {
    fn seal(&mut self, purpose: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<String> {
        current::seal::Host::seal(self, purpose, value, ttl_ms)
    }

    fn open(&mut self, purpose: String, sealed: String) -> Option<Vec<u8>> {
        current::seal::Host::open(self, purpose, sealed)
    }
}

impl old::clock::Host for InstanceState {
    fn now_ms(&mut self) -> u64 {
        current::clock::Host::now_ms(self)
    }
}

impl old::random::Host for InstanceState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        current::random::Host::bytes(self, len)
    }
}

impl old::log::Host for InstanceState {
    fn log(&mut self, level: old::log::Level, message: String) {
        use current::log::Level as L;
        let level = match level {
            old::log::Level::Trace => L::Trace,
            old::log::Level::Debug => L::Debug,
            old::log::Level::Info => L::Info,
            old::log::Level::Warn => L::Warn,
            old::log::Level::Error => L::Error,
        };
        current::log::Host::log(self, level, message)
    }
}

impl old::settings::Host for InstanceState {
    fn issuer(&mut self) -> String {
        current::settings::Host::issuer(self)
    }

    fn find_client(&mut self, client_id: String) -> Option<old::settings::Client> {
        let c = current::settings::Host::find_client(self, client_id)?;
        Some(old::settings::Client {
            client_id: c.client_id,
            secret_sha256: c.secret_sha256,
            scopes: c.scopes,
            default_scopes: c.default_scopes,
            grant_types: client_grant_types(&c.grant_types),
            access_token_ttl: c.access_token_ttl,
        })
    }

    fn scopes_supported(&mut self) -> Vec<String> {
        current::settings::Host::scopes_supported(self)
    }

    fn endpoint_url(&mut self, endpoint: String) -> Option<String> {
        let (_, path, ..) = ROUTES.iter().find(|r| r.0 == endpoint && r.0 != "admin")?;
        Some(format!("{}{path}", self.services.oauth.issuer))
    }

    fn find_registration(&mut self, client_id: String) -> Option<old::settings::Registration> {
        let r = current::settings::Host::find_registration(self, client_id)?;
        Some(old::settings::Registration {
            client_name: r.client_name,
            redirect_uris: r.redirect_uris,
            token_endpoint_auth_method: r
                .token_endpoint_auth_method
                .unwrap_or_else(|| "client_secret_basic".into()),
            skip_consent: r.skip_consent,
        })
    }

    fn login_flow(&mut self) -> Option<old::settings::Flow> {
        let f = current::settings::Host::login_flow(self)?;
        Some(old::settings::Flow {
            login_url: f.login_url,
            consent_url: f.consent_url,
            authorization_code_ttl: f.authorization_code_ttl,
        })
    }

    fn find_refresh_policy(&mut self, client_id: String) -> Option<old::settings::RefreshPolicy> {
        let p = current::settings::Host::find_refresh_policy(self, client_id)?;
        Some(old::settings::RefreshPolicy {
            refresh_token_ttl: p.refresh_token_ttl,
            grant_max_lifetime: p.grant_max_lifetime,
            reuse_grace_ms: p.reuse_grace_ms,
        })
    }
}

impl old::caller::Host for InstanceState {
    fn authenticated(&mut self, client_id: String) {
        current::caller::Host::authenticated(self, client_id)
    }

    /// Counts a step the guest reports in its counter, or refuses an event or status the
    /// 0.1 contract does not list, with a warning and a count: a typo must not vanish.
    fn outcome(&mut self, event: String, status: String) {
        let counted = match OUTCOMES.iter().find(|o| o.0 == event) {
            Some((_, name, _, results)) => {
                let labels = match results.is_empty() {
                    true => Vec::new(),
                    false => vec![status.clone()],
                };
                self.counters.count(name, &labels, 1)
            }
            None => Err("the contract has no such event".into()),
        };
        if let Err(why) = counted {
            self.refuse_count(&format!("caller.outcome({event:?}, {status:?})"), &why);
        }
    }
}
