//! What the HTTP layer and every guest instance share: the token store, the OAuth settings
//! and the metrics. Built once at start; the HTTP layer holds it, and the runtime hands it to
//! each instance's imports.

use crate::config::OAuthSettings;
use crate::keys::sign::SigningKeys;
use crate::keys::Keyring;
use crate::metrics::Metrics;
use crate::store::TokenStore;
use std::sync::Arc;

pub struct Services {
    pub store: Arc<dyn TokenStore>,
    pub oauth: Arc<OAuthSettings>,
    pub metrics: Arc<Metrics>,
    /// What the guest's `seal` import seals with; none without `keys.secret` on Redis.
    pub keys: Option<Arc<Keyring>>,
    /// What the guest's `keys` import signs with; none when nothing is signed, or without
    /// `keys.secret` on Redis.
    pub signing: Option<Arc<SigningKeys>>,
}
