//! A call into the guest: the exports a request can reach (each an endpoint), what it
//! carries, what it answers, and why it may answer nothing.

use super::{BrowserRequest, Request, Response};
use std::time::Duration;

/// The exports a request can call: each an endpoint, named as in `capabilities.endpoints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    Token,
    Introspect,
    Revoke,
    Metadata,
    /// The authorization endpoint (`browser.authorize`).
    Authorize,
    /// The admin API, on the admin listener (`browser.admin`).
    Admin,
}

impl Export {
    pub const ALL: [Export; 6] = [
        Export::Token,
        Export::Introspect,
        Export::Revoke,
        Export::Metadata,
        Export::Authorize,
        Export::Admin,
    ];

    /// The export whose [`name`](Export::name) is `name`.
    pub fn named(name: &str) -> Option<Export> {
        Export::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Where the host serves this endpoint on the public listener, below the issuer: the
    /// one definition of each path (the guest learns the URLs through
    /// `settings.endpoint-url`). The admin API has its own listener and paths.
    pub fn path(self) -> Option<&'static str> {
        match self {
            Export::Token => Some("/api/v1/oauth/token"),
            Export::Introspect => Some("/api/v1/oauth/introspect"),
            Export::Revoke => Some("/api/v1/oauth/revoke"),
            Export::Metadata => Some("/.well-known/oauth-authorization-server"),
            Export::Authorize => Some("/api/v1/oauth/authorize"),
            Export::Admin => None,
        }
    }

    /// The HTTP methods of the endpoint.
    pub fn methods(self) -> &'static [hyper::Method] {
        use hyper::Method;
        match self {
            Export::Metadata => &[Method::GET],
            Export::Authorize => &[Method::GET, Method::POST],
            Export::Admin => &[Method::GET, Method::PUT],
            _ => &[Method::POST],
        }
    }

    /// Whether a call may wait on the store. Such calls get at most
    /// [`store_bound_budget`] instances, so a stalled store cannot hold every instance and
    /// queue the calls that never touch it (metadata) behind it.
    pub(super) fn uses_store(self) -> bool {
        !matches!(self, Export::Metadata)
    }

    /// The endpoint's name in the contract (`capabilities.endpoints`) and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Export::Token => "token",
            Export::Introspect => "introspect",
            Export::Revoke => "revoke",
            Export::Metadata => "metadata",
            Export::Authorize => "authorize",
            Export::Admin => "admin",
        }
    }
}

/// A call into the guest: which export, with what.
pub enum Call {
    /// `token`, `introspect`, `revoke` or `metadata` (which ignores the request).
    Handler(Export, Request),
    /// The authorization endpoint.
    Authorize(BrowserRequest),
    /// An admin API call, by its name in `browser.admin` (`login-request`, ...).
    Admin(&'static str, BrowserRequest),
}

impl Call {
    pub fn export(&self) -> Export {
        match self {
            Call::Handler(export, _) => *export,
            Call::Authorize(_) => Export::Authorize,
            Call::Admin(..) => Export::Admin,
        }
    }
}

/// What a guest call answered.
pub struct Answer {
    pub response: Response,
    /// The registered client the request authenticated as, if the guest said (`caller`).
    pub client_id: Option<String>,
}

/// Why a guest call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest ran past its deadline.
    #[error("guest exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// The guest used up its fuel.
    #[error("guest used up its fuel ({0} units)")]
    Fuel(u64),
    /// No instance became free within the deadline.
    #[error("no guest instance free within {0:?}")]
    Busy(Duration),
    /// The guest answered something the host cannot send.
    #[error("guest returned an invalid response: {0}")]
    InvalidResponse(String),
}

impl CallError {
    /// The metrics label of this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Deadline(_) => "deadline",
            CallError::Fuel(_) => "fuel",
            CallError::Busy(_) => "busy",
            CallError::InvalidResponse(_) => "invalid_response",
        }
    }
}
