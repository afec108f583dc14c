//! What a guest serves (its grant types, response types and endpoints), and the check of
//! the operator's clients against it. The guest says; the host only compares.

use super::Export;
use crate::config::OAuthSettings;
use crate::contract::optional;
use anyhow::bail;

/// What a loaded guest serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub endpoints: Vec<Export>,
}

impl Capabilities {
    /// What a guest without the `capabilities` export serves: all that contracts 0.1.0 and
    /// 0.1.1 could express, the `client_credentials` grant on the four `handler` endpoints.
    pub fn of_a_base_guest() -> Self {
        Capabilities {
            grant_types: vec!["client_credentials".into()],
            response_types: Vec::new(),
            endpoints: vec![
                Export::Token,
                Export::Introspect,
                Export::Revoke,
                Export::Metadata,
            ],
        }
    }

    /// What the guest's `capabilities.describe` says, if the host can route it.
    pub fn declared(described: optional::capabilities::Capabilities) -> anyhow::Result<Self> {
        let mut endpoints = Vec::new();
        for name in &described.endpoints {
            match Export::named(name) {
                Some(export) if !endpoints.contains(&export) => endpoints.push(export),
                Some(_) => {}
                None => bail!(
                    "it serves the endpoint {:?}, which this host does not route (it routes: {})",
                    super::imports::sanitize(name),
                    Export::ALL.map(Export::name).join(", ")
                ),
            }
        }
        Ok(Capabilities {
            grant_types: described.grant_types,
            response_types: described.response_types,
            endpoints,
        })
    }

    pub fn serves(&self, export: Export) -> bool {
        self.endpoints.contains(&export)
    }

    /// Whether the guest can serve every configured client; if not, which client and grant
    /// it cannot.
    pub fn check(&self, oauth: &OAuthSettings) -> anyhow::Result<()> {
        let mut clients: Vec<_> = oauth.clients.values().map(|c| &c.record).collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        for client in clients {
            if let Some(grant) = client
                .grant_types
                .iter()
                .find(|g| !self.grant_types.contains(g))
            {
                bail!(
                    "client {:?} is configured with the grant type {grant:?}, which this guest \
                     does not serve (it serves: {})",
                    client.client_id,
                    self.grant_types.join(", ")
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(grants: &[&str], endpoints: &[&str]) -> optional::capabilities::Capabilities {
        optional::capabilities::Capabilities {
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            response_types: Vec::new(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn endpoints_are_the_named_exports_and_an_unknown_one_is_refused() {
        let caps = Capabilities::declared(described(&[], &["token", "metadata", "token"]))
            .expect("known endpoints");
        assert_eq!(caps.endpoints, [Export::Token, Export::Metadata]);
        assert!(!caps.serves(Export::Revoke));
        let unknown = Capabilities::declared(described(&[], &["device_authorization"]))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("\"device_authorization\""), "{unknown}");
    }
}
