//! The grammar of OAuth 2.0's parameters (RFC 6749 Appendix A), and of store keys' hash tags:
//! the one definition of each rule, used by the host (to check the operator's config, and
//! the keys of a `store.apply`) and by the default guest (to check requests; its test host
//! checks its transactions as the host does). Syntax only: what a value means is the
//! guest's to decide; [`registration`] holds the one set of rules about a client's
//! registration that both the default guest and the host's 0.1 adapter apply.

pub mod registration;

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )` (section 3.3, A.4).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// `grant-type = grant-name / URI-reference`, `grant-name = 1*name-char`,
/// `name-char = "-" / "." / "_" / DIGIT / ALPHA` (A.10). A URI reference is taken as any
/// visible ASCII with a `:` (an extension grant, e.g.
/// `urn:ietf:params:oauth:grant-type:device_code`).
pub fn is_grant_type(s: &str) -> bool {
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    let uri = s.contains(':') && s.bytes().all(|b| b.is_ascii_graphic());
    !s.is_empty() && (s.bytes().all(name_char) || uri)
}

/// The part of a store key that picks its Redis Cluster slot: the hash tag, the text
/// between the first `{` and the first `}` after it when that is not empty, else the whole
/// key (the cluster specification's rule). Keys with the same hash tag share a slot, so one
/// script may change them together.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_tag_is_the_first_non_empty_braced_text_else_the_key() {
        assert_eq!(hash_tag("oauth:grant:{abc}"), "abc");
        assert_eq!(hash_tag("oauth:access_token:{abc}:def"), "abc");
        assert_eq!(hash_tag("a{b}{c}"), "b");
        assert_eq!(
            hash_tag("a{}{c}"),
            "a{}{c}",
            "an empty first tag makes the key its own"
        );
        assert_eq!(hash_tag("a{b"), "a{b");
        assert_eq!(hash_tag("plain"), "plain");
    }

    #[test]
    fn scope_tokens_exclude_space_quote_and_backslash() {
        assert!(is_scope_token("read:orders"));
        assert!(is_scope_token("!#[]~"));
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn grant_types_are_names_or_uris() {
        for good in [
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ] {
            assert!(is_grant_type(good), "{good:?}");
        }
        for bad in ["", "client credentials", "grant/type", "é"] {
            assert!(!is_grant_type(bad), "{bad:?}");
        }
    }
}
