//! The grammar of OAuth 2.0's parameters (RFC 6749 Appendix A): the one definition of each
//! rule, used by the host to check the operator's config and by the default guest to check
//! requests. Syntax only: what a value means is the guest's to decide.

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

#[cfg(test)]
mod tests {
    use super::*;

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
