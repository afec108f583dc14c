//! Strict `application/x-www-form-urlencoded` parsing: a malformed escape, invalid UTF-8 or
//! a repeated parameter (RFC 6749 section 3.1) is an error, never silently repaired.

use std::fmt;

/// Requests with more parameters than this are refused; OAuth requests carry a handful.
pub const MAX_PARAMS: usize = 64;

#[derive(Debug, PartialEq)]
pub enum FormError {
    Malformed(&'static str),
    Repeated(String),
    TooMany,
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::Malformed(why) => write!(f, "malformed form body: {why}"),
            // The name is printed escaped and cut: it comes from the client.
            FormError::Repeated(name) => write!(
                f,
                "parameter {:?} is repeated",
                name.chars().take(64).collect::<String>()
            ),
            FormError::TooMany => write!(f, "more than {MAX_PARAMS} parameters"),
        }
    }
}

/// The parameters of `body`, in order.
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode(name)?;
        if name.is_empty() {
            return Err(FormError::Malformed("a parameter has no name"));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(FormError::Repeated(name));
        }
        if params.len() == MAX_PARAMS {
            return Err(FormError::TooMany);
        }
        params.push((name, decode(value)?));
    }
    Ok(params)
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|&h| hex(h));
                let lo = bytes.next().and_then(|&l| hex(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(FormError::Malformed("invalid percent-encoding")),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| FormError::Malformed("invalid UTF-8"))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &str) -> Vec<(String, String)> {
        parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn decodes_plus_and_percent_escapes() {
        assert_eq!(
            pairs("kind=plain_name&scope=read+write&x=%C3%A9%26"),
            [("kind", "plain_name"), ("scope", "read write"), ("x", "é&")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn empty_segments_and_bare_names_are_accepted() {
        assert_eq!(
            pairs("&a&&b=&"),
            [("a", ""), ("b", "")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert_eq!(
            parse(b"token=a&token=b"),
            Err(FormError::Repeated("token".into()))
        );
    }

    #[test]
    fn malformed_escapes_and_invalid_utf8_are_refused() {
        for body in [&b"a=%zz"[..], b"a=%4", b"a=%", b"a=%ff%fe", b"a=\xff"] {
            assert!(
                matches!(parse(body), Err(FormError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let body: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert_eq!(parse(body.join("&").as_bytes()), Err(FormError::TooMany));
    }
}
