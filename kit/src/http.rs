//! The kit's HTTP client: hyper's HTTP/1.1 client, one connection a request, answers read
//! whole.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use std::fmt;
use std::net::SocketAddr;

/// An answer, read whole; header names in lower case.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The value of header `name`; `None` when absent, or sent more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name);
        match (values.next(), values.next()) {
            (Some((_, value)), None) => Some(value),
            _ => None,
        }
    }

    /// The body as JSON, or an error that shows it.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("the body is not JSON ({e})"))
    }
}

impl fmt::Display for Reply {
    /// The status, the headers the behaviour table speaks of, and the body (cut to 400
    /// characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (name, value) in &self.headers {
            if matches!(
                name.as_str(),
                "content-type" | "cache-control" | "pragma" | "www-authenticate" | "retry-after"
            ) {
                write!(f, ", {name}: {value}")?;
            }
        }
        // A token in a failure report is one of the kit's test clients', but still a live
        // token: shown by its first characters only.
        let masked = mask_tokens(&self.body);
        let body: String = masked.chars().take(400).collect();
        let more = if body.len() < masked.len() { "..." } else { "" };
        write!(f, ", body: {body:?}{more}")
    }
}

/// `body` with the value of every `"access_token"` and `"refresh_token"` cut to its first 6
/// characters.
fn mask_tokens(body: &str) -> String {
    let mut out = body.to_owned();
    for field in ["\"access_token\":\"", "\"refresh_token\":\""] {
        let mut from = 0;
        while let Some(at) = out[from..].find(field) {
            let start = from + at + field.len();
            let end = out[start..].find('"').map_or(out.len(), |e| start + e);
            let cut = out[start..end]
                .char_indices()
                .nth(6)
                .map(|(i, _)| start + i);
            if let Some(cut) = cut {
                out.replace_range(cut..end, "...");
            }
            from = start;
        }
    }
    out
}

/// Sends one request to `addr` and reads the answer.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: String,
) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{method} {path}: reading the body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `application/x-www-form-urlencoded` (every byte but the unreserved ones escaped).
pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(n, v)| format!("{}={}", escape(n), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                char::from(b).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `Authorization` header of client_secret_basic: id and secret form-encoded first (RFC
/// 6749 section 2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", escape(id), escape(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failure_report_shows_tokens_by_their_first_characters_only() {
        let body =
            r#"{"access_token":"abcdefghijklmnop","refresh_token":"qrstuvwxyz0123","x":"é"}"#;
        assert_eq!(
            super::mask_tokens(body),
            r#"{"access_token":"abcdef...","refresh_token":"qrstuv...","x":"é"}"#
        );
        assert_eq!(
            super::mask_tokens(r#"{"access_token":"abc"}"#),
            r#"{"access_token":"abc"}"#
        );
    }
}
