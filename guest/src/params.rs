//! Reading form parameters (RFC 6749 section 3.1).

use crate::{BrowserRequest, Request};

/// The value of parameter `name`. A parameter sent without a value is treated as omitted
/// (RFC 6749 section 3.1); the host has already refused repeated parameters.
pub fn param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    find(&req.params, name)
}

/// The same, for the authorization endpoint and the admin API.
pub fn browser_param<'a>(req: &'a BrowserRequest, name: &str) -> Option<&'a str> {
    find(&req.params, name)
}

fn find<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}
