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

/// `application/x-www-form-urlencoded` decoding of one component; `None` on a malformed
/// escape or invalid UTF-8.
pub(crate) fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(bytes.next()?)?;
                let lo = hex_value(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encoding of everything but the unreserved characters (RFC 3986 section 2.3):
/// a form component (`application/x-www-form-urlencoded`), or a path segment.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
