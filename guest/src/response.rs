//! OAuth responses: JSON bodies, the error format of RFC 6749 section 5.2, and the
//! `no-store` caching rules every token-bearing answer needs.

use crate::{Host, Level, Response, StoreError};
use serde::Serialize;

/// An OAuth error response (RFC 6749 section 5.2, RFC 6750 section 3 for the challenge).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    /// Send `WWW-Authenticate: Basic` (401 when Basic was tried or no credentials were sent).
    pub challenge: bool,
    /// Send `Retry-After` with these seconds (429).
    pub retry_after: Option<u64>,
    /// Send `DPoP-Nonce` with this nonce (`use_dpop_nonce`, RFC 9449 section 8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }
    pub fn invalid_client(description: impl Into<String>, challenge: bool) -> Self {
        OAuthError {
            challenge,
            ..Self::new(401, "invalid_client", description)
        }
    }
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_scope", description)
    }
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", description)
    }
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(400, "unauthorized_client", description)
    }
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(400, "unsupported_grant_type", description)
    }
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            503,
            "temporarily_unavailable",
            "the token store is unavailable; try again later",
        )
    }
    /// 429: the client spent its request budget; it may try again in `wait_ms`. The code is
    /// RFC 6749's registered one for a temporary refusal; the status and `Retry-After`
    /// (RFC 9110 section 10.2.3, whole seconds rounded up) say it is the client's pace.
    pub fn rate_limited(wait_ms: u64) -> Self {
        let seconds = wait_ms.div_ceil(1000).max(1);
        OAuthError {
            retry_after: Some(seconds),
            ..Self::new(
                429,
                "temporarily_unavailable",
                format!("this client's rate limit is spent; retry after {seconds} s"),
            )
        }
    }
    pub fn server_error(description: impl Into<String>) -> Self {
        Self::new(500, "server_error", description)
    }

    pub(crate) fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: false,
            retry_after: None,
            dpop_nonce: None,
        }
    }

    pub fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let mut response = json(
            self.status,
            &Body {
                error: self.error,
                error_description: &self.description,
            },
        );
        if self.challenge {
            response.headers.push((
                "WWW-Authenticate".into(),
                r#"Basic realm="tokenginx", charset="UTF-8""#.into(),
            ));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers
                .push(("Retry-After".into(), seconds.to_string()));
        }
        if let Some(nonce) = self.dpop_nonce {
            response.headers.push(("DPoP-Nonce".into(), nonce));
        }
        response
    }
}

/// A JSON response that no cache may keep (RFC 6749 section 5.1).
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    Response {
        status,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Cache-Control".into(), "no-store".into()),
            ("Pragma".into(), "no-cache".into()),
        ],
        body: serde_json::to_string(body).expect("response bodies serialize"),
    }
}

/// Either the endpoint's answer or its error, as one response.
pub fn finish(result: Result<Response, OAuthError>) -> Response {
    result.unwrap_or_else(OAuthError::into_response)
}

/// The answer for a failed store operation: 503 when the store is away, 500 otherwise.
pub fn store_failure(host: &impl Host, error: StoreError) -> OAuthError {
    match error {
        StoreError::Unavailable(why) => {
            host.log(Level::Warn, &format!("token store unavailable: {why}"));
            OAuthError::temporarily_unavailable()
        }
        StoreError::Rejected(why) => {
            host.log(
                Level::Warn,
                &format!("token store refused an operation: {why}"),
            );
            OAuthError::server_error("internal error")
        }
    }
}
