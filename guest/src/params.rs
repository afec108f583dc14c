//! Reading form parameters (RFC 6749 section 3.1).

use crate::Request;

/// The value of parameter `name`. A parameter sent without a value is treated as omitted
/// (RFC 6749 section 3.1); the host has already refused repeated parameters.
pub fn param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}
