//! Access token scope (RFC 6749 section 3.3).

use crate::response::OAuthError;
use crate::Client;
use tokenginx_syntax::is_scope_token;

/// The scopes to grant `client` for a request's `scope` parameter: its default scopes when
/// the parameter is omitted, else the requested ones, each of which the client must be
/// allowed. Returned sorted and without repeats, joined by spaces.
pub fn grant(client: &Client, requested: Option<&str>) -> Result<String, OAuthError> {
    let scopes: Vec<&str> = match requested {
        None => client.default_scopes.iter().map(String::as_str).collect(),
        Some(requested) => within(
            requested,
            |s| client.scopes.iter().any(|a| a == s),
            "is not allowed for this client",
        )?,
    };
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope(
            "no scope was requested and the client has no default scope",
        ));
    }
    Ok(canonical(scopes))
}

/// The scope of an access token refreshed from a grant of scope `granted` (RFC 6749
/// section 6): the grant's when `requested` is omitted, else the requested scopes, each of
/// which the grant must hold. Sorted, without repeats.
pub fn narrow(granted: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    match requested {
        None => Ok(granted.to_owned()),
        Some(requested) => Ok(canonical(within(
            requested,
            |s| granted.split(' ').any(|g| g == s),
            "was not granted",
        )?)),
    }
}

/// The scope tokens of a `scope` parameter, each well formed and `allowed`; else
/// `invalid_scope` saying which is not, and `why`.
fn within<'r>(
    requested: &'r str,
    allowed: impl Fn(&str) -> bool,
    why: &str,
) -> Result<Vec<&'r str>, OAuthError> {
    let scopes: Vec<&str> = requested.split(' ').collect();
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "malformed scope token {:?}",
            bad.chars().take(64).collect::<String>()
        )));
    }
    if let Some(denied) = scopes.iter().find(|s| !allowed(s)) {
        return Err(OAuthError::invalid_scope(format!("scope {denied:?} {why}")));
    }
    Ok(scopes)
}

fn canonical(mut scopes: Vec<&str>) -> String {
    scopes.sort_unstable();
    scopes.dedup();
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::demo_client;

    #[test]
    fn omitted_scope_grants_the_default_scopes() {
        assert_eq!(grant(&demo_client(), None).unwrap(), "read");
    }

    #[test]
    fn requested_scopes_are_sorted_and_deduplicated() {
        assert_eq!(
            grant(&demo_client(), Some("write read write")).unwrap(),
            "read write"
        );
    }

    #[test]
    fn a_scope_the_client_may_not_have_is_invalid_scope() {
        let err = grant(&demo_client(), Some("read admin")).unwrap_err();
        assert_eq!((err.status, err.error), (400, "invalid_scope"));
    }

    #[test]
    fn malformed_scope_strings_are_invalid_scope() {
        for bad in ["read  write", " read", "re\"ad", "read\\", "r\u{e9}ad"] {
            assert_eq!(
                grant(&demo_client(), Some(bad)).unwrap_err().error,
                "invalid_scope",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_refresh_may_narrow_the_granted_scope_never_widen_it() {
        let granted = "offline_access read write";
        assert_eq!(narrow(granted, None).unwrap(), granted);
        assert_eq!(narrow(granted, Some("write read")).unwrap(), "read write");
        let wider = narrow(granted, Some("read admin")).unwrap_err();
        assert_eq!((wider.status, wider.error), (400, "invalid_scope"));
        assert!(
            wider.description.contains("\"admin\" was not granted"),
            "{}",
            wider.description
        );
    }

    #[test]
    fn no_default_scope_and_none_requested_is_invalid_scope() {
        let mut client = demo_client();
        client.default_scopes.clear();
        assert_eq!(grant(&client, None).unwrap_err().error, "invalid_scope");
    }
}
